#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the KVM Hyper-V selftests of $TREE statically (output under
# build/selftests, never in the source tree), boot the Debian kernel under
# QEMU (HOST=intel: Bochs) with them and the chosen KVM modules, and run
# them.  Results go to build/selftests/<MODS>-<CPU>/ (on Intel
# build/selftests/intel-<MODS>-<CPU>/): console.log, <test>.ktap,
# summary.tsv.
#
#   HOST=amd|intel       the emulated host: QEMU TCG with AMD SVM (default)
#                        or Bochs with Intel VMX (48-bit only)
#   TEST_SOURCES="a.c .." extra programs of the selftest library, from
#                        outside the tree, built and run like the tests
#   CPU=48|la57          the host's virtual address width (default 48)
#   MODS=patched|stock   build/modules/patched or Debian's modules (patched)
#   TESTS="..."          the tests to run (default: all Hyper-V selftests)
#   TREE=<git tree>      the kernel tree to build the selftests from
#   TEST_TIMEOUT=<s>     each test's own time limit in the guest (default 120)
#   TIMING_ATTEMPTS=<n>  the one rule for tests bound by wall time: a failing
#                        test of TIMING_TESTS runs again, up to n runs in all
#                        (default 3, 1 to 9); the last run is judged, the
#                        earlier ones are kept as "# attempt K: " comment
#                        lines and each retry is reported (a RETRY line, and
#                        the summary's attempts column).  Every other test,
#                        our own above all, runs exactly once.
#   TIMING_TESTS="..."   upstream's tests whose verdicts depend on how
#                        promptly a vCPU runs (default: hyperv_ipi, a fixed
#                        busy loop for the IPI; hyperv_clock, 10 ms and 1%
#                        bounds between clock reads)
#   SELFTESTS_OBJ_ROOT=<dir>  build the tests in <dir>/obj-* instead of
#                        build/selftests/obj-* (the faults stage shares
#                        make check's objects this way; a lock guards them)
#   TEST_ENV="VAR=val .." environment of the tests in the guest, e.g.
#                        HV_FLUSH_PROBE_FUNC=bogus to break the flush oracle
#   GUEST_SLEEP=<s>      keep the guest idle that long before the tests
#                        (the interrupt tests need a guest that runs on)
#   KERNEL=<bzImage>     boot this kernel, with KVM built in, instead of
#                        Debian's with modules (debug.sh); MODS is then
#                        "builtin" and a KUnit taint (N) is expected
#   GUEST_KMODS="a.ko .." modules of that kernel to insmod before the
#                        tests; the dmesg lines each one adds (a KUnit
#                        module's KTAP) land in <module>.dmesg
#   SELFTESTS_OUT=<dir>  where the results go (build/selftests/<MODS>-<CPU>)
#   SELFTESTS_BUILD_ONLY=1  build the tests, print the directory of their
#                        binaries and stop (selftest-mutants.sh)
#
# Each test's output goes to the console as it runs, between "@@BEGIN t"
# and "@@END t rc=N" lines, so a guest that crashes keeps the output of
# the test that crashed it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/qemu.sh"

CPU=${CPU:-48}
MODS=${MODS:-patched}
if [ -n "${KERNEL:-}" ]; then
	[ -f "$KERNEL" ] || die "KERNEL=$KERNEL: no such kernel image; 'make debug' builds one"
	QEMU_KERNEL=$KERNEL QEMU_INSMOD='' MODS=builtin
	QEMU_TAINT_OK=$((QEMU_TAINT_OK | 262144))
fi
case $CPU in 48 | la57) ;; *) die "CPU must be 48 or la57, not '$CPU'" ;; esac
[ "$HOST" = amd ] || [ "$CPU" = 48 ] ||
	die "HOST=intel CPU=$CPU: Bochs emulates no LA57 (48-bit virtual addresses only); use CPU=48, or HOST=amd for LA57"
case $MODS in
patched | stock) ;;
builtin) [ -n "${KERNEL:-}" ] || die "MODS=builtin is for a KERNEL= with KVM built in ('make debug')" ;;
*) die "MODS must be patched or stock, not '$MODS'" ;;
esac
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
[[ $TEST_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "TEST_TIMEOUT must be a number of seconds, not '$TEST_TIMEOUT'"
[ -z "${TEST_ATTEMPTS:-}" ] ||
	die "TEST_ATTEMPTS is gone: only upstream's timing-bound tests are retried, TIMING_ATTEMPTS=<n> times (TIMING_TESTS=)"
TIMING_ATTEMPTS=${TIMING_ATTEMPTS:-3}
[[ $TIMING_ATTEMPTS =~ ^[1-9]$ ]] || die "TIMING_ATTEMPTS must be a number of runs from 1 to 9, not '$TIMING_ATTEMPTS'"
TIMING_TESTS=${TIMING_TESTS-hyperv_ipi hyperv_clock}
for t in $TIMING_TESTS; do
	case $t in
	hyperv_tlb_flush_ranges | hyperv_tlb_flush_canonical) die "TIMING_TESTS: $t is our own test; our own tests are never retried" ;;
	*[!a-z0-9_]*) die "TIMING_TESTS: '$t' is not a test name" ;;
	esac
done

for f in ${TEST_SOURCES:-}; do
	[[ $f == *.c && -f $f ]] || die "TEST_SOURCES: '$f' is not a C file; name selftest-library programs (foo.c)"
done
harness_lock
qemu_need_pkgs
need_stage selftests
base_env
[ -d "$TREE/tools/testing/selftests/kvm" ] ||
	die "no KVM selftests in $TREE; run 'make tree' or set TREE=<kernel tree>"
tree_report
vendor=$(qemu_vendor)
# x86_64/ until 6.12, x86/ in mainline.
sd=x86_64
[ -d "$TREE/tools/testing/selftests/kvm/x86_64" ] || sd=x86

HV_TESTS="hyperv_tlb_flush_ranges hyperv_tlb_flush_canonical hyperv_tlb_flush hyperv_features hyperv_ipi
hyperv_clock hyperv_cpuid hyperv_svm_test hyperv_extended_hypercalls hyperv_evmcs"
# Extra programs of the selftest library from outside the tree: alone
# unless TESTS names tree tests too.
extras=()
for f in ${TEST_SOURCES:-}; do
	extras+=("$(realpath "$f")")
done
if [ -z "${TESTS:-}" ] && [ ${#extras[@]} -gt 0 ]; then
	TESTS=
elif [ -z "${TESTS:-}" ]; then
	TESTS=$HV_TESTS
	# eVMCS is Intel only, hyperv_svm_test AMD only; elsewhere they would only skip.
	if [ "$vendor" = intel ]; then
		TESTS=${TESTS/hyperv_svm_test/}
	else
		TESTS=${TESTS/hyperv_evmcs/}
	fi
fi
read -r -d '' -a tests <<<"$TESTS" || true
[ ${#tests[@]} -gt 0 ] || [ ${#extras[@]} -gt 0 ] || die "TESTS is empty"

sbuild=$BUILD/selftests
mkdir -p "$sbuild"

# UAPI headers, installed out of tree once per header content.
hdr_key=$( (git -C "$TREE" rev-parse HEAD:include/uapi HEAD:arch/x86/include/uapi &&
	git -C "$TREE" diff HEAD -- include/uapi arch/x86/include/uapi) | sha1sum | cut -c1-12)
# Keyed by their content, so every clone shares them.
hdr=$CACHE/uapi-headers/$hdr_key
if [ ! -d "$hdr/include" ]; then
	msg "installing the UAPI headers of ${TREE#"$TOP"/} into $hdr"
	mkdir -p "$CACHE/uapi-headers"
	htmp=$(mktemp -d "$hdr.tmp.XXXXXX")
	on_exit "rm -rf '$htmp'"
	make -s -C "$TREE" O="$htmp/kobj" INSTALL_HDR_PATH="$htmp/out" headers_install ||
		die "headers_install failed in $TREE; 'make -C $TREE mrproper' if it complains about a dirty tree"
	mv -T "$htmp/out" "$hdr" 2>/dev/null || [ -d "$hdr/include" ] || die "could not store the headers in $hdr"
fi

# The tests themselves; make rebuilds only what changed.
# SELFTESTS_OBJ_ROOT: another build directory's objects for the same tree
# (the faults stage reuses make check's own; the lock below makes that safe).
obj=${SELFTESTS_OBJ_ROOT:-$sbuild}/obj-$(echo "$TREE" | sha1sum | cut -c1-8)-$hdr_key
targets=()
# The validator is the project's own test, in validator/, not in any
# series: it is built against $TREE's selftest library (validator.mk).
for t in "${tests[@]}"; do
	[ "$t" = "$VALIDATOR" ] || [ -f "$TREE/tools/testing/selftests/kvm/$sd/$t.c" ] ||
		die "$TREE has no selftest '$t'; apply the selftest patch there or set TREE=<tree with it>"
done
for t in $HV_TESTS; do
	if [ "$t" = "$VALIDATOR" ] || [ -f "$TREE/tools/testing/selftests/kvm/$sd/$t.c" ]; then
		targets+=("$obj/$sd/$t")
	fi
done
mkdir -p "$obj"
# Another command (make check's other lane) may build the same objects:
# one make at a time in a directory.
exec {objfd}>>"$obj.lock"
flock "$objfd"
# The extra programs: copied beside the objects, built by one more rule.
# validator.mk includes the tree's Makefile and adds the validator's rule.
mkfiles=(-f "$TOP/validator/validator.mk")
if [ ${#extras[@]} -gt 0 ]; then
	mkdir -p "$obj/extra-src" "$obj/extra"
	for f in "${extras[@]}"; do
		t=$(basename "$f" .c)
		for u in "${tests[@]}"; do
			[ "$u" != "$t" ] || die "TEST_SOURCES: $t is also in TESTS"
		done
		cmp -s "$f" "$obj/extra-src/$t.c" || cp "$f" "$obj/extra-src/$t.c"
		targets+=("$obj/extra/$t")
		tests+=("$t")
	done
	cat >"$obj/extra.mk" <<'EOF'
$(OUTPUT)/extra/%: $(OUTPUT)/extra-src/%.c $(LIBKVM_OBJS)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) $(TARGET_ARCH) $< $(LIBKVM_OBJS) $(LDLIBS) -o $@
EOF
	mkfiles+=(-f "$obj/extra.mk")
fi
msg "building ${#targets[@]} selftests statically from ${TREE#"$TOP"/}${extras[*]:+ and TEST_SOURCES} into ${obj#"$TOP"/}"
start=$(date +%s)
make -s -C "$TREE/tools/testing/selftests/kvm" "${mkfiles[@]}" \
	VALIDATOR_SRC="$TOP/validator" VALIDATOR_ARCH_DIR="$sd" -j"$(nproc)" OUTPUT="$obj" \
	KHDR_INCLUDES="-isystem $hdr/include" EXTRA_CFLAGS=-static "${targets[@]}" \
	>"$obj/build.log" 2>&1 || {
	tail -n 30 "$obj/build.log" >&2
	die "building the selftests failed; full log in ${obj#"$TOP"/}/build.log"
}
flock -u "$objfd"
msg "selftests built in $(($(date +%s) - start)) s"
# For scripts that stage the tests themselves: where the binaries are.
if [ -n "${SELFTESTS_BUILD_ONLY:-}" ]; then
	printf '%s\n' "$obj/$sd"
	exit 0
fi

work=$(mktemp -d "$sbuild/.run.XXXXXX")
on_exit "rm -rf '$work'"

msg "staging an initramfs: busybox, $MODS KVM modules, ${#tests[@]} tests"
stage=$work/stage
[ "$MODS" = builtin ] || qemu_stage_modules "$stage/mods" "$MODS"
qemu_stage_init "$stage" "$vendor"
kmods=()
for km in ${GUEST_KMODS:-}; do
	[ -f "$km" ] || die "GUEST_KMODS: no module $km"
	mkdir -p "$stage/kmods"
	cp "$km" "$stage/kmods/"
	kmods+=("$(basename "$km" .ko)")
done
mkdir -p "$stage/tests"
for t in "${tests[@]}"; do
	if [ -x "$obj/extra/$t" ] && [ -f "$obj/extra-src/$t.c" ] && [[ " ${extras[*]} " == *"/$t.c "* ]]; then
		cp "$obj/extra/$t" "$stage/tests/$t"
		continue
	fi
	[ -x "$obj/$sd/$t" ] || die "no selftest '$t' in ${TREE#"$TOP"/}"
	cp "$obj/$sd/$t" "$stage/tests/$t"
done
{
	echo "TEST_TIMEOUT=$TEST_TIMEOUT"
	echo "TIMING_ATTEMPTS=$TIMING_ATTEMPTS"
	echo "TIMING_TESTS='$TIMING_TESTS'"
	for kv in ${TEST_ENV:-}; do
		[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "TEST_ENV: '$kv' is not VAR=value"
		printf 'export %q\n' "$kv"
	done
	[[ ${GUEST_SLEEP:-0} =~ ^[0-9]+$ ]] || die "GUEST_SLEEP must be a number of seconds"
	for km in "${kmods[@]}"; do
		cat <<EOF
echo "@@PROGRESS loading $km.ko"
n=\$(dmesg | wc -l)
insmod /kmods/$km.ko || echo "@@FAIL insmod $km.ko"
echo "@@KMOD-BEGIN $km"
dmesg | tail -n +\$((n + 1))
echo "@@KMOD-END $km"
EOF
	done
	echo "sleep ${GUEST_SLEEP:-0}"
	echo "for t in ${tests[*]}; do"
	cat <<'EOF'
	echo "@@PROGRESS running $t"
	s=$(date +%s)
	echo "@@BEGIN $t"
	n=1
	case " $TIMING_TESTS " in *" $t "*) n=$TIMING_ATTEMPTS ;; esac
	a=1
	while [ "$a" -lt "$n" ]; do
		timeout -s KILL "$TEST_TIMEOUT" /tests/$t >/tmp/attempt.log 2>&1
		rc=$?
		[ "$rc" -eq 0 ] && break
		sed "s/^/# attempt $a: /" /tmp/attempt.log
		echo "# attempt $a of $n: rc=$rc, running $t again"
		a=$((a + 1))
	done
	if [ "$a" -lt "$n" ]; then
		cat /tmp/attempt.log
	else
		timeout -s KILL "$TEST_TIMEOUT" /tests/$t 2>&1
		rc=$?
	fi
	echo "@@END $t rc=$rc secs=$(($(date +%s) - s)) attempt=$a of=$n"
done
EOF
} >"$stage/payload.sh"
qemu_pack "$stage" "$work/initrd.cpio"
rm -rf "$stage"

out=${SELFTESTS_OUT:-$(selftests_out "$MODS" "$CPU")}
msg "booting under $(qemu_emulator) (HOST=$HOST CPU=$CPU, MODS=$MODS); results go to ${out#"$TOP"/}"
start=$(date +%s)
rc=0
qemu_boot "$work/initrd.cpio" "$work/console.log" "$CPU" || rc=$?
secs=$(($(date +%s) - start))
rm -f "$work/initrd.cpio"
[ "$rc" -eq 124 ] && warn "$(qemu_emulator) timed out after $(qemu_wall_limit) s (QEMU_TIMEOUT=...)"

# One KTAP file and one summary row per test; pseudo tests for the kernel.
log=$work/console.log
failed=0
printf 'test\tresult\trc\tsecs\tfailing_cases\tskipped_cases\tattempts\n' >"$work/summary.tsv"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$work/summary.tsv"; }
# crash_lines T KTAP: the source lines of a crash a test reported itself
# ("# crash: ..." and its return addresses, as the validator prints them),
# from the static binary it ran.
crash_lines() {
	local t=$1 ktap=$2 bin addrs
	grep -q '^# crash: ' "$ktap" || return 0
	bin=$obj/$sd/$t
	[ -x "$obj/extra/$t" ] && [[ " ${extras[*]} " == *"/$t.c "* ]] && bin=$obj/extra/$t
	addrs=$(sed -n '/^# crash: /,$p' "$ktap" | grep -oE '^\[0x[0-9a-f]+\]$' | tr -d '[]' || true)
	echo "--- where $t crashed ($(grep -m1 '^# crash: ' "$ktap" | sed 's/^# crash: //; s/; return addresses:$//')) ---"
	# shellcheck disable=SC2086 # one word per address
	[ -n "$addrs" ] && addr2line -f -i -p -e "$bin" $addrs 2>&1 | sed 's|^|  |'
	return 0
}
# retries T: one RETRY line per failed run of a retried test, with its
# assertion (or its first "not ok" line), and how the test ended.
retries() {
	local t=$1 end=$2 a of
	a=$(sed -n 's/.* attempt=\([0-9]*\).*/\1/p' <<<"$end")
	of=$(sed -n 's/.* of=\([0-9]*\).*/\1/p' <<<"$end")
	[ -n "$a" ] && [ -n "$of" ] && [ "$of" -gt 1 ] || return 0
	awk -v t="$t" -v of="$of" '
		/^# attempt [0-9]+ of [0-9]+: rc=/ {
			k = $3
			rc = $6; sub(/,$/, "", rc)
			printf "RETRY %s: run %d of at most %d failed (%s)%s\n", t, k, of, rc, why[k] ? ": " why[k] : ""
			next
		}
		/^# attempt [0-9]+: / {
			k = $3; sub(/:$/, "", k)
			line = $0; sub(/^# attempt [0-9]+: */, "", line)
			if (want[k]) { sub(/^ */, "", line); why[k] = line; want[k] = 0 }
			else if (line ~ /Test Assertion Failure/) want[k] = 1
			else if (!why[k] && line ~ /^not ok |# SKIP/) why[k] = line
		}' "$work/$t.ktap"
}
for km in "${kmods[@]}"; do
	qemu_section "$log" "@@KMOD-BEGIN $km" "@@KMOD-END $km" >"$work/$km.dmesg"
done
for t in "${tests[@]}"; do
	qemu_section "$log" "@@BEGIN $t" "$(grep -m1 "^@@END $t " "$log" || echo "@@END $t")" \
		>"$work/$t.ktap"
	end=$(grep -m1 "^@@END $t " "$log" || true)
	trc=$(sed -n 's/.* rc=\([0-9]*\).*/\1/p' <<<"$end")
	tsecs=$(sed -n 's/.* secs=\([0-9]*\).*/\1/p' <<<"$end")
	bad=$(grep -E '^not ok ' "$work/$t.ktap" | grep -v '# SKIP' |
		sed -E 's/^not ok [0-9]+ //' | tr '\n' ' ' | sed 's/ $//' || true)
	if [ -z "$end" ]; then
		result=fail bad="did not finish"
	elif [ "$trc" = 137 ]; then
		result=fail bad="timed out after $TEST_TIMEOUT s"
	elif [ "$trc" = 4 ] && [ -z "$bad" ]; then
		# A test that could not observe has not passed: a skip fails here.
		result=fail
		bad="skipped: $(grep -m1 -oE '(# SKIP|SKIP).*|KSFT_SKIP.*|[Oo]racle unavailable.*' "$work/$t.ktap" || echo 'no reason given')"
	elif [ "$trc" = 0 ] && [ -z "$bad" ]; then
		result=pass
	else
		result=fail
	fi
	[ "$result" = fail ] && failed=$((failed + 1))
	skipped=$(grep -cE '^(not )?ok [0-9]+ .*# SKIP' "$work/$t.ktap" || true)
	att=$(sed -n 's/.* attempt=\([0-9]*\) of=\([0-9]*\).*/\1\/\2/p' <<<"$end")
	row "$t" "$result" "${trc:--}" "${tsecs:--}" "${bad:--}" "$skipped" "${att:--}"
	retries "$t" "$end" | tee -a "$work/retries.txt" >&2
	if [ -n "$att" ] && [ "${att%/*}" -gt 1 ]; then
		echo "RETRY $t: $result on run ${att%/*} of at most ${att#*/}" | tee -a "$work/retries.txt" >&2
	fi
done
kproblems=$(qemu_check_kernel "$log")
kproblems=$(sed '/^$/d' <<<"$kproblems")
if [ -n "$kproblems" ]; then
	row kernel fail - "$secs" "$(tr '\n' ';' <<<"$kproblems")" 0 -
	failed=$((failed + 1))
else
	row kernel pass - "$secs" - 0 -
fi

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$work" "$out"

column -t -s $'\t' "$out/summary.tsv" | sed 's/^/    /' >&2
if [ "$failed" -ne 0 ]; then
	echo "--- failing KTAP lines ---" >&2
	for t in "${tests[@]}"; do
		grep -E -e '^not ok ' -e '^# .*(first mismatch|expected status|dropped|: wrong |oracle unavailable|verdicts:)' \
			-e 'Test Assertion Failure' -e '^Bail out' "$out/$t.ktap" |
			grep -v '# SKIP' | sed "s/^/$t: /" >&2 || true
	done
	# The end of each failed test's own output: its assertion or last
	# verdicts, enough to find the cause from make check's output alone.
	awk -F'\t' 'NR > 1 && $2 == "fail" && $1 != "kernel" { print $1 }' "$out/summary.tsv" |
		while read -r t; do
			echo "--- the last 30 lines of $t's output (${out#"$TOP"/}/$t.ktap) ---"
			grep -v '^# attempt [0-9]*: ' "$out/$t.ktap" | tail -n 30
			crash_lines "$t" "$out/$t.ktap"
		done >&2
	[ -n "$kproblems" ] && printf '%s\n' "$kproblems" | sed 's/^/kernel: /' >&2
	echo "--- last 40 console lines ---" >&2
	grep -v '^@@' "$out/console.log" | tail -n 40 >&2
	die "$failed of $((${#tests[@]} + 1)) checks FAILED (CPU=$CPU MODS=$MODS, boot+tests $secs s); see ${out#"$TOP"/}"
fi
msg "all ${#tests[@]} selftests passed, kernel clean (CPU=$CPU MODS=$MODS): boot+tests took $secs s"
