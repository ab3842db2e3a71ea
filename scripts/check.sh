#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: run every check in order, each logged to build/check/NAME.log,
# keep going after a failure, and end with "N passed, N failed".
#
#   STAGES="tree roundtrip"   run only these stages, in this order
#   LANES=2                   (default) the stages that mostly wait for one
#                             emulated CPU (LANE_B) run beside the ones that
#                             build kernels; LANES=1 runs all in order
#
# Every stage is a separate process run with 'set -e' in force, so a
# failing command inside it fails the stage.  A stage that exits 4 could
# not run here (the mainline stages without the 7.1.3 tarball): it is
# counted as skipped, never as passed, and says why.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
harness_lock

DEFAULT_STAGES="deps shellcheck cc-cache tree roundtrip errors make install fuzz bench kunit mutants selftest-mutants debug lint send intel mainline debug-mainline flows readme faults"
# What each stage runs.
declare -A RUN=(
	[deps]="$TOP/scripts/deps.sh"
	[shellcheck]="$TOP/scripts/test-harness.sh shellcheck"
	[cc-cache]="$TOP/scripts/test-harness.sh cc-cache"
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
	# Intel (Bochs): stock RED with the INVVPID WARN, patched GREEN.  The
	# fuzz budget under Bochs is not a default stage: 1000 hypercalls had
	# not run after 10 minutes (STAGES=intel-fuzz runs it).
	[intel]="env HOST=intel REDGREEN_INTEL_TESTS=hyperv_tlb_flush_ranges,hyperv_tlb_flush_canonical $TOP/scripts/redgreen.sh"
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
# Two lanes on two cores, of about equal length on a new machine: lane A
# builds the two debug kernels (make -j) and runs what boots them, lane B
# the QEMU and Bochs stages on Debian's kernel and both series' lint
# (before readme, whose 'make lint' then finds every step known).  They
# share no directory that one of them writes unlocked: the cache's
# mirrors, each series' lint directories and lint results, and each tree
# have locks of their own, selftests.sh locks its object directory while
# it builds.  The stages before lane A and B make what both use
# (packages, build/tree); shellcheck needs nothing and starts lane A.
# faults runs make check itself, each fault in a build directory of its
# own; it ends lane B, by when lane A's kunit has built the debug kernel
# its KASAN fault needs.
FIRST="deps cc-cache tree roundtrip errors"
LANE_B="make install fuzz bench selftest-mutants intel lint mainline readme faults"
LAST=""
: "${LANES:=2}"
case $LANES in 1 | 2) ;; *) die "LANES=$LANES: 1 (every stage in order) or 2 (two lanes side by side)" ;; esac
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

# excerpt LOG: what a failed stage's log says about its failure, for a
# CI output that keeps no logs: from the first failure report a script
# prints ("--- ..." sections: failing KTAP lines, each failed test's last
# lines, the console) to the end, at most 200 lines; else the last 60.
excerpt() {
	local n
	n=$(grep -n -m1 -E '^--- (failing|the last|last [0-9]+ console)' "$1" | cut -d: -f1 || true)
	if [ -n "$n" ]; then
		tail -n +"$((n > 20 ? n - 20 : 1))" "$1" | head -n 200
	else
		tail -n 60 "$1"
	fi
}

# stage NAME: run the stage, log its output, record the result in
# stages.tsv and print it in one piece (the other lane prints too).
stage() {
	local name=$1 start rc=0 secs out
	local -a cmd
	read -r -a cmd <<<"${RUN[$name]}"
	start=$(date +%s)
	msg "[$name] ${cmd[*]#"$TOP"/}"
	# CPU time (user + system) of the stage and everything it waited
	# for: with two lanes on two cores, the wall time of a stage depends
	# on the other lane, its CPU time much less.  Timed in a subshell of
	# its own: the main shell also reaps lane B's, whose whole CPU time
	# 'time' there would add to the lane A stage running at that moment.
	local cpu
	(TIMEFORMAT='%U %S' && time "${cmd[@]}" >"$logs/$name.log" 2>&1 </dev/null) 2>"$logs/$name.cpu" || rc=$?
	# A stage interrupted by Ctrl-C ends make check too.
	[ "$rc" -eq 130 ] && die "interrupted during stage $name"
	secs=$(($(date +%s) - start))
	cpu=$(awk '{ printf "%d", $1 + $2 + 0.5 }' "$logs/$name.cpu" 2>/dev/null || true)
	rm -f "$logs/$name.cpu"
	cpu=${cpu:-?}
	out=$logs/$name.out
	if [ $rc -eq 0 ]; then
		printf '%s\tpass\t%s\t%s\n' "$name" "$secs" "$cpu" >>"$logs/stages.tsv"
		printf 'PASS  %-12s %4ds  (CPU %ss)\n' "$name" "$secs" "$cpu" >"$out"
	elif [ $rc -eq 4 ] && grep -q '^SKIP ' "$logs/$name.log"; then
		printf '%s\tskip\t%s\t%s\n' "$name" "$secs" "$cpu" >>"$logs/stages.tsv"
		printf 'SKIP  %-12s %4ds  %s\n' "$name" "$secs" "$(grep -m1 '^SKIP ' "$logs/$name.log")" >"$out"
	else
		printf '%s\tfail\t%s\t%s\n' "$name" "$secs" "$cpu" >>"$logs/stages.tsv"
		printf 'FAIL  %-12s %4ds  (CPU %ss; exit %d; log: %s)\n' "$name" "$secs" "$cpu" "$rc" "${logs#"$TOP"/}/$name.log" >"$out"
		excerpt "$logs/$name.log" | sed 's/^/      | /' >>"$out"
	fi
	# Every stage's own verdict lines, so the CI log shows them.
	grep -E '^(ok|not ok|PASS|FAIL|RETRY|#|killed|SURVIVED|==> .*(passed|killed|table|testing|FAIL))' "$logs/$name.log" |
		grep -vE '^# (Subtest|TAP)' | tail -n 40 | sed 's/^/      /' >>"$out" || true
	cat "$out"
	rm -f "$out"
}

# member LIST NAME: whether NAME is one of the words of LIST.
member() { [[ " $1 " == *" $2 "* ]]; }

# stages.tsv: one row per stage of this run, for 'make results'.
{
	printf '# commit %s%s\n' "$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
		"$(git -C "$TOP" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
	printf '# started %s on %s cores; cache %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" \
		"$([ -d "$CACHE" ] && echo "$(du -sh "$CACHE" 2>/dev/null | cut -f1) at the start" || echo "empty at the start")"
	printf 'stage\tresult\tsecs\tcpu\n'
} >"$logs/stages.tsv"
if [ "$LANES" -eq 1 ]; then
	for s in "${stages[@]}"; do
		stage "$s"
	done
else
	first=() lane_a=() lane_b=() last=()
	for s in "${stages[@]}"; do
		if member "$FIRST" "$s"; then first+=("$s")
		elif member "$LANE_B" "$s"; then lane_b+=("$s")
		elif member "$LAST" "$s"; then last+=("$s")
		else lane_a+=("$s")
		fi
	done
	for s in "${first[@]}"; do stage "$s"; done
	lane_pid=
	if [ ${#lane_b[@]} -gt 0 ]; then
		msg "lane B (${lane_b[*]}) beside lane A (${lane_a[*]:-nothing})"
		(for s in "${lane_b[@]}"; do stage "$s"; done) &
		lane_pid=$!
		on_exit "kill $lane_pid 2>/dev/null || true"
	fi
	for s in "${lane_a[@]}"; do stage "$s"; done
	[ -z "$lane_pid" ] || wait "$lane_pid" || true
	for s in "${last[@]}"; do stage "$s"; done
fi
printf '# total %s\n' "$(($(date +%s) - t0))" >>"$logs/stages.tsv"

# The counts, from the rows of this run.
cpu_total=0
while IFS=$'\t' read -r name result secs cpu; do
	case $result in
	pass) passed=$((passed + 1)) ;;
	skip) skipped=$((skipped + 1)) ;;
	fail) failed=$((failed + 1)) failures+=("$name") ;;
	*) continue ;;
	esac
	times+=("$name=${secs}s")
	[[ ${cpu:-} =~ ^[0-9]+$ ]] && cpu_total=$((cpu_total + cpu))
done < <(grep -v '^#' "$logs/stages.tsv")
# Each failed stage's verdict lines once more, next to the counts: a CI
# that keeps only the end of the output still says why.
for s in "${failures[@]}"; do
	echo "--- why $s failed (${logs#"$TOP"/}/$s.log) ---"
	grep -E '^(FAIL|ERROR|not ok|SURVIVED)|^ *(\| )?(kernel: |==>   guest: )' "$logs/$s.log" | head -n 20 || true
done
msg "make check took $(($(date +%s) - t0)) s, $cpu_total s of CPU on $(nproc) cores (${times[*]})${failures[*]:+; failed: ${failures[*]}}"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
