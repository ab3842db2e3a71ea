#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make debug: one debug kernel built in-tree from $TREE (KVM, kvm_amd and
# the Hyper-V code built in, the KUnit suite with them: it is part of
# kvm), booted under the QEMU TCG runner of qemu.sh, running the KUnit
# suite at boot (its KTAP from the console, parsed by kunit.py parse), every Hyper-V selftest of the same tree and
# a short fuzzer budget, under KASAN, UBSAN, lockdep, KFENCE, DEBUG_LIST and
# DEBUG_ATOMIC_SLEEP.  Any report of theirs, or any WARN, fails the run.
#
# The config comes only from the kernel's tools: kunit.py build with the
# series' arch/x86/kvm/.kunitconfig, configs/debug.config and
# CONFIG_KVM_HYPERV_KUNIT_TEST=y (--kconfig_add).  kunit.py builds a
# mirror of $TREE as it is (committed or not) in $CACHE/debug/<series>/src,
# into $CACHE/debug/<series>/build, with ccache: out of the tree, shared by
# every clone, incremental, and kept by 'make clean'.
#
#   SERIES=stable|mainline  the 6.12.y series (build/tree) or the mainline
#                           one (build/tree-mainline, on the 7.1.3 tarball)
#   CPU=48|la57             the guest's host CPU (default 48)
#   DEBUG_TESTS="..."       the selftests (default: every Hyper-V selftest)
#   FUZZ_ROUNDS=<n>         fuzzer rounds (default 500; 0: no fuzzer boot)
#   SEED=<n>                fuzzer seed (default: today, YYYYMMDD)
#   TIMING_ATTEMPTS=<n>     when only upstream's timing-bound hyperv_clock
#                           or hyperv_ipi failed: their second boot runs
#                           each up to n times, and it must pass once (5)
#   DEBUG_PATCH=<file>      a scratch change (faults/*.patch) applied to the
#                           mirror for this run only, never to $TREE
#   debug.sh --check        make check's stage: the run above; on mainline
#                           also hyperv_tlb_flush_ranges on a 57-bit host
#                           (the guest gets CR4.LA57: mainline's selftest
#                           library pages 5 levels deep there), and
#                           faults/revert-45692aa4a7ce.patch, with
#                           which hyperv_tlb_flush_ranges must fail (RED);
#                           exits 4 saying SKIP without the 7.1.3 tarball
#
# Results: build/debug/<series>/ (build.log, tests/, retry/, fuzz/ and red/ as
# selftests.sh leaves them: console.log, KTAP per test, summary.tsv;
# kunit.json).  Exit status: 0 passed; 3 the kernel ran and a check failed;
# 4 skipped; 1 anything else.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CHECK=
case ${1:-} in
--check) CHECK=1 ;;
'') ;;
*) die "usage: $0 [--check]" ;;
esac
CPU=${CPU:-48}
case $CPU in 48 | la57) ;; *) die "CPU must be 48 or la57, not '$CPU'" ;; esac
FUZZ_ROUNDS=${FUZZ_ROUNDS:-500}
[[ $FUZZ_ROUNDS =~ ^[0-9]+$ ]] || die "FUZZ_ROUNDS must be a number of rounds, not '$FUZZ_ROUNDS'"
SEED=${SEED:-$(date -u +%Y%m%d)}
[[ $SEED =~ ^[1-9][0-9]*$ ]] || die "SEED must be a positive number, not '$SEED'"
TIMING_ATTEMPTS=${TIMING_ATTEMPTS:-5}
[[ $TIMING_ATTEMPTS =~ ^[1-9]$ ]] || die "TIMING_ATTEMPTS must be a number of runs from 1 to 9, not '$TIMING_ATTEMPTS'"
: "${KUNIT_MIN_CASES:=20}"
# Wall-time bounds of one selftest run and of one boot (TEST_TIMEOUT= and
# QEMU_TIMEOUT= override them).  A boot of the debug kernel with every
# selftest takes about a minute quiet and three on a loaded machine; a
# hung guest costs at most the boot bound, and the fuzzer's boot gets
# FUZZ_ROUNDS/4 s more (500 rounds take about 30 s).
DEBUG_TEST_TIMEOUT=240
DEBUG_QEMU_TIMEOUT=900
KUNIT_SUITE=kvm_hv_tlb_flush_range
KUNIT_DIR=arch/x86/kvm
FRAGMENT=$DEBUG_FRAGMENT
MODULE_CONFIG=$DEBUG_KCONFIG_ADD
REVERT=$TOP/faults/revert-45692aa4a7ce.patch

if [ -n "$CHECK" ] && [ "$SERIES" = mainline ]; then
	tarball=${MAINLINE_TARBALL:-$TOP/../shared/linux-7.1.3.tar.xz}
	if [ ! -f "$tarball" ]; then
		echo "SKIP debug-mainline: no Linux 7.1.3 tarball at $tarball (MAINLINE_TARBALL=); the mainline debug kernel was NOT built or tested"
		exit 4
	fi
	export MAINLINE_TARBALL=$tarball
fi

harness_lock
DEBUG_HOME=$CACHE/debug/$SERIES
harness_lock "$DEBUG_HOME"
need_stage kunit qemu selftests
[ -f "$FRAGMENT" ] || die "no config fragment $FRAGMENT"
if [ -n "$CHECK" ] && ! is_git_tree "$TREE"; then
	# make check may run this stage on its own: make the tree.
	"$TOP/scripts/tree.sh" --ensure
fi
base_env
tree_require
[ -f "$TREE/$KUNIT_DIR/.kunitconfig" ] ||
	die "$TREE has no $KUNIT_DIR/.kunitconfig, so the KUnit patch is not in it; run 'make tree${SERIES:+ SERIES=$SERIES}'"
tree_report

SRC=$DEBUG_HOME/src
KBUILD=$DEBUG_HOME/build
OUT=$BUILD/debug/$SERIES
mkdir -p "$SRC" "$KBUILD" "$OUT" "$CCACHE_DIR"

msg "mirroring ${TREE#"$TOP"/} (as it is, committed or not) into $SRC"
t=$(date +%s)
# In-tree build output is left out: kunit.py builds with O=.
rsync -rlc --delete --exclude=/.git --exclude=/.kunit/ --exclude='/.config*' \
	--exclude=/include/config/ --exclude=/include/generated/ \
	--exclude='/arch/*/include/generated/' --exclude='*.o' --exclude='*.ko' \
	--exclude='*.a' --exclude='.*.cmd' --exclude='*.mod' --exclude='*.mod.c' \
	--exclude='/vmlinux*' --exclude=/System.map --exclude=/Module.symvers \
	--exclude='/modules.*' --exclude='/.tmp_*' \
	"$TREE/" "$SRC/"
msg "mirror in sync in $(($(date +%s) - t)) s"

# apply_scratch PATCH: a scratch change to the mirror, taken out at exit.
# The next build rebuilds what it touched (the mtimes changed).
apply_scratch() {
	local p=$1
	[ -f "$p" ] || die "DEBUG_PATCH: no file $p"
	patch -p1 -s -N --dry-run --no-backup-if-mismatch -d "$SRC" <"$p" >/dev/null ||
		die "the scratch change $p does not apply to ${TREE#"$TOP"/}"
	msg "applying the scratch change ${p#"$TOP"/} to the mirror (never to ${TREE#"$TOP"/})"
	patch -p1 -s -N --no-backup-if-mismatch -d "$SRC" <"$p"
	on_exit "patch -p1 -s -R --no-backup-if-mismatch -d '$SRC' <'$p'"
}

# build: configure with kunit.py, build vmlinux and the modules, and check
# that the .config has every option asked for.
build() {
	local log=$OUT/build.log t rc=0 missing
	msg "kunit.py build: $KUNIT_DIR/.kunitconfig + ${FRAGMENT#"$TOP"/} + $MODULE_CONFIG, in $KBUILD (log: ${log#"$TOP"/})"
	t=$(date +%s)
	kcc_install
	(cd "$SRC" && ./tools/testing/kunit/kunit.py build --arch=x86_64 \
		"${DEBUG_KUNIT_ARGS[@]}" --build_dir="$KBUILD" \
		--jobs="$(nproc)" --make_options "CC=$KCC") >"$log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		grep -E 'error|Error|Missing|ERROR' "$log" | tail -n 20 >&2 || tail -n 20 "$log" >&2
		die "kunit.py build failed (exit $rc) after $(($(date +%s) - t)) s; see $log"
	fi
	make -s -C "$SRC" O="$KBUILD" ARCH=x86_64 CC="$KCC" -j"$(nproc)" modules >>"$log" 2>&1 ||
		die "make modules failed; see $log"
	BUILD_SECS=$(($(date +%s) - t))
	msg "kernel and modules built in $BUILD_SECS s"

	# kunit.py already refuses a .config without an option it was given;
	# say it again here, by name, with the fragment's own lines.
	missing=$(cat "$SRC/$KUNIT_DIR/.kunitconfig" "$FRAGMENT" <(echo "$MODULE_CONFIG") |
		sed -n 's/^\(CONFIG_[A-Za-z0-9_]*=.*\)$/\1/p' |
		sort -u |
		while read -r opt; do grep -qxF "$opt" "$KBUILD/.config" || echo "$opt"; done)
	[ -z "$missing" ] ||
		die "kconfig dropped options asked for (unmet dependencies?): $(echo "$missing" | tr '\n' ' ')"
	KIMAGE=$KBUILD/arch/x86/boot/bzImage
	[ -f "$KIMAGE" ] || die "no $KIMAGE after the build"
	bzimage_check "$KBUILD"
	msg "config has all $(cat "$SRC/$KUNIT_DIR/.kunitconfig" "$FRAGMENT" | grep -c '^CONFIG_') options asked for, the suite built into kvm"
}

# boot NAME TESTS [VAR=VALUE...]: selftests.sh with this kernel; results in
# $OUT/NAME.  Returns selftests.sh's status.
boot() {
	local name=$1 tests=$2 rc=0
	shift 2
	rm -rf "${OUT:?}/$name"
	msg "booting the debug kernel: $name (${tests:-every Hyper-V selftest})"
	env KERNEL="$KIMAGE" CPU="$CPU" TESTS="$tests" SELFTESTS_OUT="$OUT/$name" \
		QEMU_APPEND="log_buf_len=8M" TEST_TIMEOUT="${TEST_TIMEOUT:-$DEBUG_TEST_TIMEOUT}" \
		QEMU_TIMEOUT="${QEMU_TIMEOUT:-$DEBUG_QEMU_TIMEOUT}" "$@" \
		"$TOP/scripts/selftests.sh" >"$OUT/$name.log" 2>&1 || rc=$?
	grep -E '^(==> (all|booting)|ERROR|WARNING|kernel: |RETRY |[a-z_]+: (not ok|# ))' "$OUT/$name.log" >&2 || true
	# A test that crashed: where (selftests.sh resolved its addresses).
	sed -n '/^--- where /,/^--- last/p' "$OUT/$name.log" | grep -v '^--- last' >&2 || true
	# A boot that went wrong as a whole (hang, panic, no summary): the end
	# of its console, so that make check's output alone shows where.
	if [ "$rc" -ne 0 ] && ! awk -F'\t' '$1 == "kernel" && $2 == "pass"' "$OUT/$name/summary.tsv" 2>/dev/null | grep -q .; then
		{
			grep '^==>   guest: ' "$OUT/$name.log" || echo "(no progress line from the guest)"
			sed -n '/^--- last 40 console lines ---$/,/^ERROR: /p' "$OUT/$name.log" | grep -v '^ERROR: '
		} | sed 's/^/    | /' >&2
	fi
	return "$rc"
}

# reports DIR: the kernel's reports in DIR/console.log, shown in full.
reports() {
	awk '
		/^@@DMESG-BEGIN$/ { d = 1; next }
		/^@@DMESG-END$/ { d = 0 }
		!d { next }
		/^=+$/ && !r { hdr = $0; next }
		/BUG: |WARNING: CPU: |WARNING: (possible|suspicious|inconsistent|bad unlock)|UBSAN: |list_(add|del) corruption|kernel BUG at|general protection fault/ {
			if (!r && hdr != "") print hdr
			r = 60
		}
		r { print; r-- }
	' "$1/console.log" 2>/dev/null || true
}

# kunit_parse DIR: the suite's KTAP (the console of a boot at loglevel 7,
# where KUnit runs the built-in suites) through kunit.py parse; at least
# KUNIT_MIN_CASES cases, all passed.
kunit_parse() {
	local dir=$1 json=$OUT/kunit.json summary nsuite total passed failed skipped crashed
	grep -q "$KUNIT_SUITE" "$dir/console.log" 2>/dev/null || { warn "the KUnit suite printed nothing at boot"; return 1; }
	rm -f "$json"
	(cd "$SRC" && ./tools/testing/kunit/kunit.py parse --json="$json" "$dir/console.log") \
		>"$OUT/kunit-parse.log" 2>&1 || true
	[ -s "$json" ] || { tail -n 20 "$OUT/kunit-parse.log" >&2; warn "kunit.py parse gave no results"; return 1; }
	summary=$(python3 - "$json" "$KUNIT_SUITE" <<'EOF'
import json, sys

def leaves(group, path):
    for case in group.get("test_cases", []):
        yield path + [case["name"]], case["status"]
    for sub in group.get("sub_groups", []):
        yield from leaves(sub, path + [sub["name"]])

def suites(group):
    if group.get("name") == sys.argv[2]:
        yield group
    for sub in group.get("sub_groups", []):
        yield from suites(sub)

root = json.load(open(sys.argv[1]))
found = list(suites(root))
counts = {"PASS": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
bad = []
for g in found:
    for path, status in leaves(g, [g["name"]]):
        counts[status] = counts.get(status, 0) + 1
        if status != "PASS":
            bad.append("%s %s" % (status, ".".join(path)))
total = sum(counts.values())
print("%d %d %d %d %d %d" % (len(found), total, counts["PASS"], counts["FAIL"],
                             counts["SKIP"], counts["ERROR"]))
for b in bad:
    print(b)
EOF
)
	read -r nsuite total passed failed skipped crashed <<<"$(head -n1 <<<"$summary")"
	tail -n +2 <<<"$summary" | sed 's/^/    kunit: /' >&2
	KUNIT_LINE="$total cases, $passed passed, $failed failed, $skipped skipped, $crashed crashed"
	msg "KUnit suite $KUNIT_SUITE (at boot, kunit.py parse): $KUNIT_LINE"
	[ "$nsuite" -eq 1 ] && [ "$passed" -eq "$total" ] && [ "$total" -ge "$KUNIT_MIN_CASES" ]
}

# npassed DIR...: the selftests that passed in the boots of DIR... (one
# passing run of a test is enough; the kernel's row is not a test).
npassed() {
	local d
	for d in "$@"; do
		awk -F'\t' 'NR > 1 && $1 != "kernel" && $2 == "pass" { print $1 }' "$OUT/$d/summary.tsv" 2>/dev/null
	done | sort -u | wc -l
}

# assertion KTAP: the first assertion a selftest printed.
assertion() {
	grep -m1 -A1 'Test Assertion Failure' "$1" 2>/dev/null | tail -n1 | sed 's/^# attempt [0-9]*: *//; s/^ *//'
}

# tsc_skew DIR: whether the boot in DIR gave KVM a TSC rate the guest's
# TSC does not run at: KVM, built in, initialized before the kernel's
# refined TSC calibration changed tsc_khz, and then refused the (early)
# rate as a vCPU's rate.  Prints the reason; fails if the boot shows no
# such skew.  On such a boot every check of hyperv_clock measures the
# skew (the TSC-page bounds) or the skew plus the machine's load (the 1%
# bound), so none of them is judged there.
tsc_skew() {
	local log=$1/console.log early refined
	early=$(sed -n 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' "$log" | head -n1)
	refined=$(sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' "$log" | head -n1)
	[ -n "$early" ] && [ -n "$refined" ] && [ "$early" != "$refined" ] || return 1
	grep -q 'kvm: user requested TSC rate below hardware speed' "$log" || return 1
	# KVM's init (kvm_amd's lines) came before the refinement.
	awk '/kvm_amd: |kvm_intel: / && !k { k = NR } /Refined TSC clocksource calibration/ && !r { r = NR }
		END { exit !(k && r && k < r) }' "$log" || return 1
	echo "KVM (built in) kept the early TSC calibration, $early MHz, and the kernel refined it to $refined MHz after KVM's init (\"user requested TSC rate below hardware speed\"), so the guest's TSC runs faster than the rate its Hyper-V TSC page is computed with"
}

# The run: build, boot with the KUnit module and the selftests, boot with
# the fuzzer.  Prints PASS/FAIL lines; returns non-zero on any FAIL.
run() {
	local bad=0 secs t calls rep failing d f why still notes unjudged=
	rm -rf "${OUT:?}"/{tests,retry,fuzz}
	build
	t=$(date +%s)
	# No DEBUG_TESTS: selftests.sh's default, every Hyper-V selftest.
	# loglevel=7: KUnit's KTAP is printed at KERN_INFO.
	if boot tests "${DEBUG_TESTS:-}" QEMU_APPEND="log_buf_len=8M loglevel=7"; then
		echo "PASS debug $SERIES: selftests ($(npassed tests) passed), kernel clean ($(($(date +%s) - t)) s boot+tests)"
	else
		failing=$(awk -F'\t' 'NR > 1 && $2 == "fail" { print $1 }' "$OUT/tests/summary.tsv" 2>/dev/null | tr '\n' ' ')
		failing=${failing% }
		# Upstream's hyperv_clock (10 ms and 1% bounds between clock reads)
		# and hyperv_ipi (a fixed busy loop for the receiving vCPU to take
		# the IPI) assume a vCPU runs on promptly, which the vCPU threads
		# of a KASAN kernel under single-threaded TCG sometimes do not.
		# When only they failed, on a clean kernel: one more boot for
		# them alone, where each may run up to TIMING_ATTEMPTS times and
		# must pass once; every failed run's assertion is shown.  A
		# clock or IPI that is really broken fails every run.
		#
		# hyperv_clock also needs the guest's TSC to run at the rate KVM
		# computes the Hyper-V TSC page with.  With KVM built in, that
		# rate is the boot's early TSC calibration; when the kernel's
		# refined calibration came out higher (by more than KVM's 250 ppm
		# tsc_tolerance_ppm: KVM then warns), every run of that boot
		# fails.  If the second boot is such a boot too, hyperv_clock is
		# not judged here, and the reason is printed (it is judged on
		# Debian's kernel, where kvm.ko loads after the refinement, by
		# make's red/green run).
		if [ -n "$failing" ] && ! tr ' ' '\n' <<<"$failing" | grep -qvxE 'hyperv_clock|hyperv_ipi' &&
			{ boot retry "$failing" TIMING_ATTEMPTS="$TIMING_ATTEMPTS" || true; } &&
			awk -F'\t' '$1 == "kernel" && $2 == "pass"' "$OUT/retry/summary.tsv" 2>/dev/null | grep -q .; then
			still='' notes=$OUT/retry/notes
			for f in $failing; do
				echo "    first boot, $f: $(assertion "$OUT/tests/$f.ktap")"
				grep -A1 'Test Assertion Failure' "$OUT/retry/$f.ktap" | grep -v 'Test Assertion Failure' |
					sed -n 's/^# attempt \([0-9]*\): *\(.*\)/    second boot, run \1 of '"$f"': \2/p' || true
				if awk -F'\t' -v t="$f" '$1 == t && $2 == "pass"' "$OUT/retry/summary.tsv" | grep -q .; then
					echo "    second boot, $f: passed on run $(sed -n "s/^@@END $f .* attempt=\([0-9]*\).*/\1/p" "$OUT/retry/console.log") of at most $TIMING_ATTEMPTS"
				elif [ "$f" = hyperv_clock ] && why=$(tsc_skew "$OUT/tests") && why=$(tsc_skew "$OUT/retry"); then
					echo "    second boot, $f: $(assertion "$OUT/retry/$f.ktap")"
					unjudged="hyperv_clock not judged: $why"
				else
					echo "    second boot, $f: failed all $TIMING_ATTEMPTS runs: $(assertion "$OUT/retry/$f.ktap")"
					still+="$f "
				fi
			done >"$notes"
			if [ -z "$still" ]; then
				echo "PASS debug $SERIES: selftests ($(npassed tests retry) passed; $failing failed on the first boot${unjudged:+; $unjudged}), kernel clean ($(($(date +%s) - t)) s)"
			else
				echo "FAIL debug $SERIES: ${still% } on both boots (see ${OUT#"$TOP"/}/tests.log and retry.log)"
				bad=1
			fi
			cat "$notes"
		else
			echo "FAIL debug $SERIES: ${failing:-the kernel} (see ${OUT#"$TOP"/}/tests.log)"
			bad=1
		fi
	fi
	awk -F'\t' 'NR > 1 { printf "    %-28s %-5s %5ss\n", $1, $2, $4 }' "$OUT/tests/summary.tsv" 2>/dev/null || true
	# The detectors are armed: their boot lines are in the log.
	for d in 'KernelAddressSanitizer initialized' 'kfence: initialized' 'Lock dependency validator'; do
		grep -q "$d" "$OUT/tests/console.log" 2>/dev/null ||
			{ echo "FAIL debug $SERIES: the kernel did not say '$d'"; bad=1; }
	done
	if kunit_parse "$OUT/tests"; then
		echo "PASS debug $SERIES: KUnit at boot: $KUNIT_LINE"
	else
		echo "FAIL debug $SERIES: KUnit at boot: ${KUNIT_LINE:-no results}"
		bad=1
	fi
	if [ "$FUZZ_ROUNDS" -gt 0 ]; then
		t=$(date +%s)
		if boot fuzz hyperv_tlb_flush_ranges \
			TEST_TIMEOUT="${TEST_TIMEOUT:-$((DEBUG_TEST_TIMEOUT + FUZZ_ROUNDS / 4))}" \
			QEMU_TIMEOUT="${QEMU_TIMEOUT:-$((DEBUG_QEMU_TIMEOUT + FUZZ_ROUNDS / 4))}" \
			TEST_ENV="HV_FLUSH_FUZZ_ROUNDS=$FUZZ_ROUNDS HV_FLUSH_FUZZ_SEED=$SEED"; then
			secs=$(($(date +%s) - t))
			calls=$(sed -n 's/^# fuzzer: [0-9]* rounds, \([0-9]*\) hypercalls in.*/\1/p' \
				"$OUT/fuzz/hyperv_tlb_flush_ranges.ktap" | tail -n1)
			echo "PASS debug $SERIES: fuzzer: $FUZZ_ROUNDS rounds, ${calls:-?} hypercalls, no wrong one, kernel clean ($secs s boot+fuzz; seed $SEED)"
		else
			echo "FAIL debug $SERIES: fuzzer (seed $SEED; see ${OUT#"$TOP"/}/fuzz.log)"
			grep -E '^# (fuzzer|verdicts)' "$OUT/fuzz/hyperv_tlb_flush_ranges.ktap" 2>/dev/null | sed 's/^/    /' || true
			bad=1
		fi
	fi
	rep=$(for d in tests retry fuzz; do reports "$OUT/$d"; done)
	if [ -n "$rep" ]; then
		echo "FAIL debug $SERIES: the kernel reported:"
		printf "%s\n" "$rep" | sed "s/^/    | /"
		bad=1
	fi
	return "$bad"
}

# red: with the fix reverted (scratch), hyperv_tlb_flush_ranges must fail
# on wrong cases, on a clean kernel.
red() {
	local rc=0 cases
	apply_scratch "$REVERT"
	build
	boot red hyperv_tlb_flush_ranges || rc=$?
	cases=$(awk -F'\t' '$1 == "hyperv_tlb_flush_ranges" { print $5 }' "$OUT/red/summary.tsv" 2>/dev/null)
	if [ "$rc" -ne 0 ] && grep -q '^not ok ' "$OUT/red/hyperv_tlb_flush_ranges.ktap" 2>/dev/null &&
		awk -F'\t' '$1 == "kernel" && $2 == "pass"' "$OUT/red/summary.tsv" | grep -q .; then
		echo "PASS debug $SERIES: RED with upstream 45692aa4a7ce reverted (scratch): $(grep -c '^not ok ' "$OUT/red/hyperv_tlb_flush_ranges.ktap") cases wrong ($cases)"
		grep -m1 '^# verdicts' "$OUT/red/hyperv_tlb_flush_ranges.ktap" | sed 's/^/    /' || true
		return 0
	fi
	echo "FAIL debug $SERIES: NOT RED with upstream 45692aa4a7ce reverted (exit $rc; see ${OUT#"$TOP"/}/red.log)"
	return 1
}

# la57: hyperv_tlb_flush_ranges on a 57-bit host, where mainline's selftest
# library gives the guest 5-level paging: it must pass, say that the guest
# has CR4.LA57 set, on a clean kernel.
la57() {
	local k=$OUT/la57/hyperv_tlb_flush_ranges.ktap rep
	if ! boot la57 hyperv_tlb_flush_ranges CPU=la57; then
		echo "FAIL debug $SERIES: hyperv_tlb_flush_ranges with LA57 (see ${OUT#"$TOP"/}/la57.log)"
		return 1
	fi
	if ! grep -q '^# guest paging: CR4.LA57=1$' "$k"; then
		echo "FAIL debug $SERIES: with LA57 the guest did not run with CR4.LA57 set ($(grep -m1 '^# guest paging' "$k" || echo 'no "guest paging" line'))"
		return 1
	fi
	rep=$(reports "$OUT/la57")
	if [ -n "$rep" ]; then
		echo "FAIL debug $SERIES: the kernel reported, with LA57:"
		printf "%s\n" "$rep" | sed "s/^/    | /"
		return 1
	fi
	echo "PASS debug $SERIES: hyperv_tlb_flush_ranges on a 57-bit host, guest CR4.LA57=1: $(grep -m1 '^# verdicts' "$k" | sed 's/^# //')"
}

start=$(date +%s)
rc=0
[ -z "${DEBUG_PATCH:-}" ] || apply_scratch "$DEBUG_PATCH"
run || rc=3
if [ -n "$CHECK" ] && [ "$SERIES" = mainline ] && [ -z "${DEBUG_PATCH:-}" ]; then
	la57 || rc=3
	red || rc=3
fi
msg "debug $SERIES took $(($(date +%s) - start)) s (last build $BUILD_SECS s)"
if [ "$rc" -ne 0 ]; then
	printf 'ERROR: %s\n' "the debug run on $SERIES FAILED (see above; results in ${OUT#"$TOP"/})" >&2
	exit "$rc"
fi
msg "debug $SERIES passed"
