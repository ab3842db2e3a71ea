#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The fuzzer of hyperv_tlb_flush_ranges (its -f mode): seeded rounds of
# random flush hypercalls from random vCPUs, judged by the same oracle as
# the named cases, under QEMU.  A failure prints the seed and the smallest
# input that reproduces it.
#
#   fuzz.sh           N=<rounds> (default 600) SEED=<seed> (default: today,
#                     YYYYMMDD), MODS=patched|stock, CPU=48|la57
#   fuzz.sh --check   make check's budget: the patched modules must run
#                     FUZZ_ROUNDS (default 1500, about 2,500 hypercalls and
#                     more than 2 minutes under TCG) with no wrong round, and
#                     the stock modules must be caught; prints how many
#                     hypercalls that took.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
harness_lock

N=${N:-600}
SEED=${SEED:-$(date -u +%Y%m%d)}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a number of rounds, not '$N'"
[[ $SEED =~ ^[1-9][0-9]*$ ]] || die "SEED must be a positive number, not '$SEED'"

# run MODS ROUNDS: the fuzzer once; its KTAP lands in $BUILD/selftests/MODS-CPU.
run() {
	local mods=$1 rounds=$2 rc=0
	msg "fuzzer: $rounds rounds, seed $SEED, $mods modules, CPU=${CPU:-48}"
	MODS=$mods TESTS=hyperv_tlb_flush_ranges TEST_TIMEOUT=$((rounds * 2 + 120)) \
		QEMU_TIMEOUT=$((rounds * 2 + 300)) \
		TEST_ENV="HV_FLUSH_FUZZ_ROUNDS=$rounds HV_FLUSH_FUZZ_SEED=$SEED" \
		"$TOP/scripts/selftests.sh" >"$BUILD/fuzz-$mods.log" 2>&1 || rc=$?
	FUZZ_KTAP=$BUILD/selftests/$mods-${CPU:-48}/hyperv_tlb_flush_ranges.ktap
	grep -E '^# (fuzzer|verdicts|  )' "$FUZZ_KTAP" 2>/dev/null | sed 's/^/    /' || true
	return "$rc"
}

if [ "${1:-}" != --check ]; then
	rc=0
	run "${MODS:-patched}" "$N" || rc=$?
	[ "$rc" -eq 0 ] || { tail -n 30 "$BUILD/fuzz-${MODS:-patched}.log" >&2; die "the fuzzer found a wrong round (seed $SEED; rerun with SEED=$SEED N=$N)"; }
	msg "fuzzer: no wrong round in $N rounds (seed $SEED)"
	exit 0
fi

rounds=${FUZZ_ROUNDS:-1500}
rc=0
t0=$(date +%s)
run patched "$rounds" || rc=$?
secs=$(($(date +%s) - t0))
calls=$(sed -n 's/^# fuzzer: [0-9]* rounds, \([0-9]*\) hypercalls in.*/\1/p' "$FUZZ_KTAP" 2>/dev/null | tail -n1)
[ "$rc" -eq 0 ] || { tail -n 30 "$BUILD/fuzz-patched.log" >&2; die "patched modules: the fuzzer found a wrong round (seed $SEED)"; }
[ -n "$calls" ] || die "patched modules: the fuzzer did not report its hypercall count"
echo "PASS fuzz patched: ${calls} hypercalls in $rounds rounds, no wrong one ($secs s with the boot; seed $SEED)"

rc=0
run stock 400 || rc=$?
first=$(sed -n 's/^# fuzzer: smallest wrong input found (seed [0-9]*, hypercall \([0-9]*\)).*/\1/p' "$FUZZ_KTAP" 2>/dev/null | tail -n1)
if [ "$rc" -ne 0 ] && [ -n "$first" ]; then
	echo "PASS fuzz stock: caught at hypercall $first (seed $SEED)"
else
	die "stock modules: the fuzzer did not catch the bug in 400 rounds (seed $SEED, exit $rc)"
fi
