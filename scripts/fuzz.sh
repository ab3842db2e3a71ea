#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The fuzzer of hyperv_tlb_flush_ranges (its -f mode): seeded rounds of
# random flush hypercalls from random vCPUs, judged by the same oracle as
# the named cases, under QEMU.  A failure prints the seed and the smallest
# input that reproduces it.
#
#   fuzz.sh           N=<rounds> (default 600) SEED=<seed> (default 20261202,
#                     fixed, so a run repeats), MODS=patched|stock, CPU=48|la57
#   fuzz.sh --check   make check's budget: the patched modules must run at
#                     least FUZZ_CALLS hypercalls (default 30000) and
#                     FUZZ_SECONDS (default 60), whichever takes longer,
#                     with no wrong round; prints the count and which bound
#                     held.  Then the stock modules must be caught; prints
#                     after how many hypercalls and seconds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
harness_lock

N=${N:-600}
SEED=${SEED:-20261202}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a number of rounds, not '$N'"
[[ $SEED =~ ^[1-9][0-9]*$ ]] || die "SEED must be a positive number, not '$SEED'"

# run MODS ROUNDS [CALLS SECONDS]: the fuzzer once, for ROUNDS rounds and
# then on until CALLS hypercalls and SECONDS seconds; its KTAP lands in
# $BUILD/selftests/MODS-CPU.
run() {
	local mods=$1 rounds=$2 calls=${3:-0} secs=${4:-0} rc=0 limit
	msg "fuzzer: at least $rounds rounds, $calls hypercalls and $secs s; seed $SEED, $mods modules, CPU=${CPU:-48}"
	# QEMU TCG: about 300 hypercalls (1.6 a round) a second on a quiet
	# machine, about half that beside make check's other lane; 50 a second
	# is still fine.  Bochs (HOST=intel) keeps a bound for 20 a second; a
	# 300-round run there reported 189 a second (by the guest's clock).
	if [ "${HOST:-amd}" = intel ]; then
		limit=$((rounds / 6 + calls / 10 + secs * 2 + 120))
	else
		limit=$((rounds / 30 + calls / 50 + secs * 2 + 120))
	fi
	MODS=$mods TESTS=hyperv_tlb_flush_ranges TEST_TIMEOUT=$limit QEMU_TIMEOUT=$((limit + 180)) \
		TEST_ENV="HV_FLUSH_FUZZ_ROUNDS=$rounds HV_FLUSH_FUZZ_SEED=$SEED HV_FLUSH_FUZZ_CALLS=$calls HV_FLUSH_FUZZ_SECONDS=$secs" \
		"$TOP/scripts/selftests.sh" >"$BUILD/fuzz-$mods.log" 2>&1 || rc=$?
	FUZZ_KTAP=$(selftests_out "$mods" "${CPU:-48}")/hyperv_tlb_flush_ranges.ktap
	grep -E '^# (fuzzer|verdicts|  )' "$FUZZ_KTAP" 2>/dev/null | sed 's/^/    /' || true
	# A crash of the validator itself: where (selftests.sh resolved it).
	sed -n '/^--- where /,/^--- last/p' "$BUILD/fuzz-$mods.log" | grep -v '^--- last' | sed 's/^/    /' || true
	return "$rc"
}

# failure MODS: why the last run of MODS failed, from its summary.
failure() {
	local sum
	sum=$(selftests_out "$1" "${CPU:-48}")/summary.tsv
	if grep -q "is wrong:" "$FUZZ_KTAP" 2>/dev/null; then
		# "# fuzzer: round R (hypercall H) is wrong: WHY", then whether it repeats
		echo "the fuzzer found a wrong $(sed -n 's/^# fuzzer: \(round .* is wrong: .*\)/\1/p' "$FUZZ_KTAP" | head -n1);" \
			"$(sed -n 's/^# fuzzer: the wrong round run alone again: //p' "$FUZZ_KTAP" | head -n1)"
	elif grep -q '^# crash: ' "$FUZZ_KTAP" 2>/dev/null; then
		echo "the validator itself crashed ($(sed -n 's/^# crash: \(signal [0-9]*\).*/\1/p' "$FUZZ_KTAP" | head -n1)), no wrong round until then"
	elif grep -q 'timed out' "$sum" 2>/dev/null; then
		echo "the fuzzer did not finish in time ($(awk -F'\t' '$1 == "hyperv_tlb_flush_ranges" { print $5 }' "$sum"); a loaded machine runs fewer hypercalls a second), no wrong round until then"
	else
		echo "the fuzzer's run failed ($(awk -F'\t' '$2 == "fail" { print $1 ": " $5 }' "$sum" 2>/dev/null | tr '\n' ' '))"
	fi
}

if [ "${1:-}" != --check ]; then
	rc=0
	run "${MODS:-patched}" "$N" || rc=$?
	[ "$rc" -eq 0 ] || { tail -n 30 "$BUILD/fuzz-${MODS:-patched}.log" >&2; die "$(failure "${MODS:-patched}") (seed $SEED; rerun with SEED=$SEED N=$N)"; }
	msg "fuzzer: no wrong round in $N rounds (seed $SEED)"
	exit 0
fi

min_calls=${FUZZ_CALLS:-30000}
min_secs=${FUZZ_SECONDS:-60}
[[ $min_calls =~ ^[0-9]+$ ]] || die "FUZZ_CALLS must be a number of hypercalls, not '$min_calls'"
[[ $min_secs =~ ^[0-9]+$ ]] || die "FUZZ_SECONDS must be a number of seconds, not '$min_secs'"
rc=0
t0=$(date +%s)
run patched 1 "$min_calls" "$min_secs" || rc=$?
secs=$(($(date +%s) - t0))
# "# fuzzer: R rounds, H hypercalls in S s: X hypercalls/s"
read -r rounds calls fsecs rate < <(sed -n 's/^# fuzzer: \([0-9]*\) rounds, \([0-9]*\) hypercalls in \([0-9.]*\) s: \([0-9]*\) hypercalls.*/\1 \2 \3 \4/p' \
	"$FUZZ_KTAP" 2>/dev/null | tail -n1) || true
[ "$rc" -eq 0 ] || { tail -n 30 "$BUILD/fuzz-patched.log" >&2; die "patched modules: $(failure patched) (seed $SEED)"; }
[ -n "${calls:-}" ] || die "patched modules: the fuzzer did not report its hypercall count"
[ "$calls" -ge "$min_calls" ] || die "patched modules: only $calls hypercalls ran, below the budget of $min_calls"
# The run stops once both bounds are reached: the one reached last held.
if [ "$calls" -le $((min_calls + min_calls / 50 + 10)) ]; then
	bound="the $min_calls-hypercall bound was the larger (it took $fsecs s, over $min_secs s)"
else
	bound="the $min_secs s bound was the larger ($calls hypercalls, over $min_calls)"
fi
echo "PASS fuzz patched: $calls hypercalls in $rounds rounds and $fsecs s ($rate hypercalls/s), no wrong one; $bound ($secs s with the boot; seed $SEED)"

rc=0
run stock 400 || rc=$?
first=$(sed -n 's/^# fuzzer: smallest wrong input found (seed [0-9]*, hypercall \([0-9]*\)).*/\1/p' "$FUZZ_KTAP" 2>/dev/null | tail -n1)
if [ "$rc" -ne 0 ] && [ -n "$first" ]; then
	echo "PASS fuzz stock: caught at hypercall $first, $(sed -n 's/^# fuzzer: [0-9]* rounds, [0-9]* hypercalls in \([0-9.]*\) s.*/\1/p' "$FUZZ_KTAP" | tail -n1) s into the run (seed $SEED)"
else
	die "stock modules: the fuzzer did not catch the bug in 400 rounds (seed $SEED, exit $rc)"
fi
