#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the KUnit suite of the series (arch/x86/kvm/hyperv_kunit.c) with
# kunit.py run: configured, built with ccache and booted under QEMU.  The
# kernel is the debug kernel of debug.sh (arch/x86/kvm/.kunitconfig plus
# configs/debug.config: KASAN, UBSAN, lockdep), in the same mirror and
# build directory, so one kernel build serves kunit, mutants and debug.
# The results come from kunit.py's own parser (--json); the suite must
# pass with at least $KUNIT_MIN_CASES test cases and none failed.
#
# kunit.py builds from a mirror of $TREE as it is (committed or not), in
# $CACHE/debug/<series>/src, with its build directory beside it: the
# user's tree is never written to, in-tree build output in it does not
# bother kunit.py, and every clone of the project shares one incremental
# build (rsync --checksum leaves unchanged files and their mtimes alone).
# mutants.sh applies its mutants to the same mirror.
#
#   kunit.sh          TREE=<kernel git tree> to test another tree
#   KUNIT_NO_SYNC=1   run the mirror as it is (mutants.sh)
#   KUNIT_KERNEL=plain  a kernel of the .kunitconfig alone, no detectors,
#                     in $CACHE/kunit/<series> (bench.sh's timing case)
#
# Exit status: 0 passed; 3 the kernel ran but the suite did not pass (failed,
# crashed or too few test cases); 130 interrupted; 1 anything else (setup,
# config or build).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

case ${KUNIT_KERNEL:-debug} in
debug) KUNIT_HOME=$CACHE/debug/$SERIES KCONFIG_ARGS=("${DEBUG_KUNIT_ARGS[@]}") ;;
plain) KUNIT_HOME=$CACHE/kunit/$SERIES KCONFIG_ARGS=(--kunitconfig=arch/x86/kvm) ;;
*) die "KUNIT_KERNEL must be debug or plain, not '$KUNIT_KERNEL'" ;;
esac
KUNIT_SRC=$KUNIT_HOME/src
: "${KUNIT_BUILD:=$KUNIT_HOME/build}"
: "${KUNIT_MIN_CASES:=20}"
: "${KUNIT_SUITE:=kvm_hv_tlb_flush_range}"
KUNIT_DIR=arch/x86/kvm

harness_lock
harness_lock "$KUNIT_HOME"
need_stage kunit

if [ -z "${KUNIT_NO_SYNC:-}" ]; then
	is_git_tree "$TREE" ||
		die "no kernel git tree at $TREE; run 'make tree' first (or set TREE=)"
	[ -f "$TREE/$KUNIT_DIR/.kunitconfig" ] ||
		die "$TREE has no $KUNIT_DIR/.kunitconfig, so the KUnit patch is not in it; add it to patches/ and run 'make tree', or set TREE= to a tree that has it"
	tree_report
	msg "mirroring ${TREE#"$TOP"/} (as it is, committed or not) into $KUNIT_SRC"
	ms=$(date +%s)
	mkdir -p "$KUNIT_SRC"
	# In-tree build output is left out: kunit.py builds with O=, which the
	# kernel refuses next to it.
	rsync -rlc --delete --exclude=/.git --exclude=/.kunit/ --exclude='/.config*' \
		--exclude=/include/config/ --exclude=/include/generated/ \
		--exclude='/arch/*/include/generated/' --exclude='*.o' --exclude='*.ko' \
		--exclude='*.a' --exclude='.*.cmd' --exclude='*.mod' --exclude='*.mod.c' \
		--exclude='/vmlinux*' --exclude=/System.map --exclude=/Module.symvers \
		--exclude='/modules.*' --exclude='/.tmp_*' \
		"$TREE/" "$KUNIT_SRC/"
	msg "mirror in sync in $(($(date +%s) - ms)) s"
fi
[ -f "$KUNIT_SRC/$KUNIT_DIR/.kunitconfig" ] || die "no mirror in $KUNIT_SRC; run 'make kunit'"

mkdir -p "$KUNIT_BUILD" "$CCACHE_DIR"
json=$KUNIT_BUILD/results.json
log=$KUNIT_BUILD/kunit.log
rm -f "$json"

# ccache (CCACHE_DIR from lib.sh) makes a fresh build directory cheap for
# a tree built before.  Different trees do not share hits: with O= outside
# the source tree kbuild passes absolute source paths, which end up in
# ccache's keys even when made relative with CCACHE_BASEDIR.
msg "kunit.py run in $KUNIT_SRC (${KUNIT_KERNEL:-debug} kernel), build directory $KUNIT_BUILD"
start=$(date +%s)
rc=0
# Newer kunit.py asks QEMU for -accel kvm first.  On a host whose CPU has
# no vmx/svm, a /dev/kvm that exists cannot run the guest and QEMU hangs;
# hide it in a private mount namespace so that QEMU falls back to TCG.
hide_kvm=()
if [ -e /dev/kvm ] && ! grep -qw -e vmx -e svm /proc/cpuinfo && [ "$(id -u)" -eq 0 ]; then
	hide_kvm=(unshare -m sh -c 'mount --bind /dev/null /dev/kvm && exec "$@"' hide-kvm)
fi
kcc_install
(cd "$KUNIT_SRC" && "${hide_kvm[@]}" ./tools/testing/kunit/kunit.py run --arch=x86_64 \
	"${KCONFIG_ARGS[@]}" --build_dir="$KUNIT_BUILD" \
	--jobs="$(nproc)" --make_options "CC=$KCC" --json="$json") \
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
# The results are those of the kernel just built only if it was the one
# booted.
bzimage_check "$KUNIT_BUILD"

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
