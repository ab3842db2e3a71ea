#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: run every check in order, each logged to build/check/NAME.log,
# keep going after a failure, and end with "N passed, N failed".
#
#   STAGES="tree roundtrip"   run only these stages, in this order
#
# Every stage is a separate process run with 'set -e' in force, so a
# failing command inside it fails the stage.  A stage that exits 4 could
# not run here (the mainline stages without the 7.1.3 tarball): it is
# counted as skipped, never as passed, and says why.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
harness_lock

DEFAULT_STAGES="deps shellcheck tree roundtrip errors make install fuzz intel intel-fuzz bench kunit mutants selftest-mutants debug lint send mainline debug-mainline flows readme faults"
# What each stage runs.
declare -A RUN=(
	[deps]="$TOP/scripts/deps.sh"
	[shellcheck]="$TOP/scripts/test-harness.sh shellcheck"
	[tree]="$TOP/scripts/tree.sh"
	[roundtrip]="$TOP/scripts/test-harness.sh roundtrip"
	[errors]="$TOP/scripts/test-harness.sh errors"
	# The AMD rows here; the Intel host (Bochs) has stages of its own.
	[make]="make -C $TOP HOST=amd"
	[modules]="$TOP/scripts/modules.sh"
	[smoke]="$TOP/scripts/smoke.sh"
	[selftests]="$TOP/scripts/selftests.sh"
	[redgreen]="$TOP/scripts/redgreen.sh"
	[install]="$TOP/scripts/test-install.sh"
	[fuzz]="$TOP/scripts/fuzz.sh --check"
	# Intel (Bochs): stock RED with the INVVPID WARN, patched GREEN; then
	# a fuzz budget scaled to Bochs's speed.
	[intel]="env HOST=intel REDGREEN_INTEL_TESTS=hyperv_tlb_flush_ranges $TOP/scripts/redgreen.sh"
	[intel-fuzz]="env HOST=intel FUZZ_CALLS=${INTEL_FUZZ_CALLS:-1000} FUZZ_SECONDS=${INTEL_FUZZ_SECONDS:-30} $TOP/scripts/fuzz.sh --check"
	[bench]="env BENCH_SMOKE=1 $TOP/scripts/bench.sh"
	[kunit]="$TOP/scripts/kunit.sh"
	[mutants]="$TOP/scripts/mutants.sh"
	[selftest-mutants]="$TOP/scripts/selftest-mutants.sh"
	[lint]="$TOP/scripts/lint.sh"
	[send]="$TOP/scripts/test-send.sh"
	[flows]="$TOP/scripts/test-harness.sh flows"
	[readme]="$TOP/scripts/test-harness.sh readme"
	[faults]="$TOP/scripts/test-harness.sh faults"
	[mainline]="$TOP/scripts/test-harness.sh mainline"
	[debug]="$TOP/scripts/debug.sh --check"
	[debug-mainline]="env -u TREE -u PATCHES SERIES=mainline $TOP/scripts/debug.sh --check"
)
read -r -a stages <<<"${STAGES:-$DEFAULT_STAGES}"
[ ${#stages[@]} -gt 0 ] || die "STAGES is empty"
for s in "${stages[@]}"; do
	[ -n "${RUN[$s]+x}" ] || die "no stage '$s'; the stages are: ${!RUN[*]}"
done

logs=$BUILD/check
mkdir -p "$logs"
passed=0
failed=0
skipped=0
failures=()
times=()
t0=$(date +%s)

# stage NAME: run the stage, log its output, count the result.
stage() {
	local name=$1 start rc=0 secs
	local -a cmd
	read -r -a cmd <<<"${RUN[$name]}"
	start=$(date +%s)
	msg "[$name] ${cmd[*]#"$TOP"/}"
	"${cmd[@]}" >"$logs/$name.log" 2>&1 </dev/null || rc=$?
	# A stage interrupted by Ctrl-C ends make check too.
	[ "$rc" -eq 130 ] && die "interrupted during stage $name"
	secs=$(($(date +%s) - start))
	times+=("$name=${secs}s")
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-12s %4ds\n' "$name" "$secs"
	elif [ $rc -eq 4 ] && grep -q '^SKIP ' "$logs/$name.log"; then
		skipped=$((skipped + 1))
		printf 'SKIP  %-12s %4ds  %s\n' "$name" "$secs" "$(grep -m1 '^SKIP ' "$logs/$name.log")"
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf 'FAIL  %-12s %4ds  (exit %d; log: %s)\n' "$name" "$secs" "$rc" "${logs#"$TOP"/}/$name.log"
		tail -n 25 "$logs/$name.log" | sed 's/^/      | /'
	fi
	# Every stage's own verdict lines, so the CI log shows them.
	grep -E '^(ok|not ok|PASS|FAIL|#|killed|SURVIVED|==> .*(passed|killed|table|testing|FAIL))' "$logs/$name.log" |
		grep -vE '^# (Subtest|TAP)' | tail -n 40 | sed 's/^/      /' || true
}

for s in "${stages[@]}"; do
	stage "$s"
done

msg "make check took $(($(date +%s) - t0)) s (${times[*]})${failures[*]:+; failed: ${failures[*]}}"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
