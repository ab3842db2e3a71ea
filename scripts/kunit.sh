#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the KUnit suite of the series (arch/x86/kvm/hyperv_kunit.c) with
# kunit.py: a KUnit kernel for x86_64 is configured from
# arch/x86/kvm/.kunitconfig, built with ccache in $CACHE/kunit-build (it
# survives 'make clean'; a rerun is an incremental build) and booted
# under QEMU.  The results come from kunit.py's own parser (--json); the
# suite must pass with at least $KUNIT_MIN_CASES test cases and none failed.
#
#   kunit.sh          TREE=<kernel git tree> to test another tree
#
# Exit status: 0 passed; 3 the kernel ran but the suite did not pass (failed,
# crashed or too few test cases); 130 interrupted; 1 anything else (setup,
# config or build).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# One build directory per tree: kbuild records the source path in every
# .cmd file, so alternating trees in one directory would rebuild it all.
: "${KUNIT_BUILD:=$CACHE/kunit-build/$(basename "$TREE")-$(printf %s "$TREE" | cksum | cut -d' ' -f1)}"
: "${KUNIT_MIN_CASES:=20}"
KUNIT_SUITE=kvm_hyperv_tlb_flush
KUNIT_DIR=arch/x86/kvm

need_pkgs gcc make ccache bc flex bison libelf-dev libssl-dev python3 qemu-system-x86

git -C "$TREE" rev-parse --git-dir >/dev/null 2>&1 ||
	die "no kernel git tree at $TREE; run 'make tree' first (or set TREE=)"
[ -f "$TREE/$KUNIT_DIR/.kunitconfig" ] ||
	die "$TREE has no $KUNIT_DIR/.kunitconfig, so the KUnit patch is not in it; add it to patches/ and run 'make tree', or set TREE= to a tree that has it"

# kunit.py builds with O=, which the kernel refuses next to in-tree output.
for f in .config include/config include/generated arch/x86/include/generated vmlinux; do
	[ -e "$TREE/$f" ] &&
		die "$TREE has in-tree build output ($f), which kunit.py refuses; run 'make -C $TREE mrproper' (it deletes the in-tree .config and build files)"
done

mkdir -p "$KUNIT_BUILD" "$CCACHE_DIR"
json=$KUNIT_BUILD/results.json
log=$KUNIT_BUILD/kunit.log
rm -f "$json"

# ccache (CCACHE_DIR from lib.sh) makes a fresh build directory cheap for
# a tree built before.  Different trees do not share hits: with O= outside
# the source tree kbuild passes absolute source paths, which end up in
# ccache's keys even when made relative with CCACHE_BASEDIR.
msg "kunit.py run in ${TREE}, build directory $KUNIT_BUILD"
start=$(date +%s)
rc=0
(cd "$TREE" && ./tools/testing/kunit/kunit.py run --arch=x86_64 \
	--kunitconfig="$KUNIT_DIR" --build_dir="$KUNIT_BUILD" \
	--jobs="$(nproc)" --make_options "CC=ccache gcc" --json="$json") \
	>"$log" 2>&1 || rc=$?
secs=$(($(date +%s) - start))
tail -n 60 "$log" >&2

# kunit.py catches Ctrl-C and exits 1, so bash would not see the interrupt.
if grep -q 'interruption occurred\|KeyboardInterrupt' "$log"; then
	warn "kunit.py was interrupted after $secs s"
	exit 130
fi
if [ ! -s "$json" ]; then
	die "kunit.py exited with $rc without test results after $secs s: configuring, building or booting failed; see $log"
fi

# Count the leaves of kunit.py's JSON tree: every test case, and every
# parameter of a parameterised one.
summary=$(python3 - "$json" "$KUNIT_SUITE" <<'EOF'
import json, sys

def leaves(group, path):
    for case in group.get("test_cases", []):
        yield path + [case["name"]], case["status"]
    for sub in group.get("sub_groups", []):
        yield from leaves(sub, path + [sub["name"]])

root = json.load(open(sys.argv[1]))
suite = [g for g in root.get("sub_groups", []) if g["name"] == sys.argv[2]]
counts = {"PASS": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
bad = []
for g in suite:
    for path, status in leaves(g, [g["name"]]):
        counts[status] = counts.get(status, 0) + 1
        if status not in ("PASS", "SKIP"):
            bad.append("%s %s" % (status, ".".join(path)))
total = sum(counts.values())
print("%d %d %d %d %d %d" % (len(suite), total, counts["PASS"], counts["FAIL"],
                             counts["SKIP"], counts["ERROR"]))
for b in bad:
    print(b)
EOF
)
read -r nsuite total passed failed skipped crashed <<<"$(head -n1 <<<"$summary")"
tail -n +2 <<<"$summary" | while read -r status name; do
	[ -n "$name" ] && msg "failed test: $name ($status)"
done
elapsed=$(grep -o 'Elapsed time: .*' "$log" | tail -n1 || true)
msg "suite $KUNIT_SUITE: $total test cases, $passed passed, $failed failed, $skipped skipped, $crashed crashed; $secs s wall (${elapsed:-no kunit.py timing})"

[ "$nsuite" -eq 1 ] || { warn "suite $KUNIT_SUITE did not run; see $log"; exit 3; }
if [ "$failed" -ne 0 ] || [ "$crashed" -ne 0 ]; then
	warn "suite $KUNIT_SUITE failed; see $log"
	exit 3
fi
[ "$total" -ge "$KUNIT_MIN_CASES" ] ||
	{ warn "only $total test cases ran, at least $KUNIT_MIN_CASES expected; see $log"; exit 3; }
[ "$rc" -eq 0 ] || { warn "kunit.py exited with $rc although the suite passed; see $log"; exit 3; }
msg "KUnit passed"
