#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Red/green: for a 48-bit and an LA57 host, run hyperv_tlb_flush_ranges
# against Debian's stock KVM modules, where it must fail, and the whole
# Hyper-V selftest suite against the patched modules, where everything
# must pass.  Prints a table; exits non-zero unless stock is red and
# patched is green everywhere.  Logs go to build/redgreen/.
#
#   REDGREEN_CPUS="48 la57"   the CPU models to run (default both)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
harness_lock

NEW_TEST=hyperv_tlb_flush_ranges
out=$BUILD/redgreen
mkdir -p "$out"

if [ -t 1 ]; then
	red=$'\e[31m' green=$'\e[32m' off=$'\e[0m'
else
	red='' green='' off=''
fi

rows=()
bad=0
start=$(date +%s)
for cpu in ${REDGREEN_CPUS:-48 la57}; do
	for mods in stock patched; do
		res=$BUILD/selftests/$mods-$cpu
		log=$out/$mods-$cpu.log
		rm -rf "$res"
		tests=
		[ "$mods" = stock ] && tests=$NEW_TEST
		msg "CPU=$cpu MODS=$mods: running ${tests:-the Hyper-V selftests} (log: ${log#"$TOP"/})"
		t0=$(date +%s)
		rc=0
		CPU=$cpu MODS=$mods TESTS=$tests "$TOP/scripts/selftests.sh" >"$log" 2>&1 || rc=$?
		secs=$(($(date +%s) - t0))

		sum=$res/summary.tsv
		if [ ! -f "$sum" ]; then
			tail -n 20 "$log" >&2
			die "CPU=$cpu MODS=$mods produced no results (exit $rc); see ${log#"$TOP"/}"
		fi
		kernel=$(awk -F'\t' '$1 == "kernel" { print $2 }' "$sum")
		new=$(awk -F'\t' -v t="$NEW_TEST" '$1 == t { print $2 }' "$sum")
		cases=$(awk -F'\t' -v t="$NEW_TEST" '$1 == t { print $5 }' "$sum")
		skipped=$(awk -F'\t' -v t="$NEW_TEST" '$1 == t { print $6 }' "$sum")
		# Upstream's timing-bound tests may have run again (selftests.sh's
		# one rule, TIMING_ATTEMPTS): each retry is listed, and counted.
		retried=$(grep -c ' failed' "$res/retries.txt" 2>/dev/null || true)
		grep '^RETRY ' "$res/retries.txt" 2>/dev/null | sed "s/^/CPU=$cpu MODS=$mods: /" >&2 || true
		others=$(awk -F'\t' -v t="$NEW_TEST" 'NR > 1 && $1 != t && $1 != "kernel" && $2 == "fail" { print $1 }' "$sum" | tr '\n' ' ')

		if [ "$mods" = stock ]; then
			expect=RED
			if [ "$new" = fail ] && [ "$kernel" = pass ] && [ "$cases" != "did not finish" ]; then
				verdict="${red}RED${off} (as required)"
			else
				verdict="NOT RED: $NEW_TEST $new, kernel $kernel"
				bad=$((bad + 1))
			fi
		else
			expect=GREEN
			if [ "$rc" -eq 0 ] && [ "$new" = pass ] && [ "$skipped" = 0 ] &&
				[ "$kernel" = pass ] && [ -z "$others" ]; then
				verdict="${green}GREEN${off}"
			else
				verdict="NOT GREEN: $NEW_TEST $new ($skipped skipped), kernel $kernel${others:+, failed: $others}"
				bad=$((bad + 1))
			fi
		fi
		msg "CPU=$cpu MODS=$mods: $verdict in $secs s"
		rows+=("$cpu|$mods|$expect|$verdict|$secs|${retried:-0}|${cases:--}")
	done
done
total=$(($(date +%s) - start))

{
	printf '\n%-5s %-8s %-6s %-22s %5s %7s  %s\n' CPU MODULES WANT RESULT SECS RETRIES "FAILING CASES of $NEW_TEST"
	for r in "${rows[@]}"; do
		IFS='|' read -r cpu mods expect verdict secs retried cases <<<"$r"
		printf '%-5s %-8s %-6s %-22s %5s %7s  %s\n' "$cpu" "$mods" "$expect" "$verdict" "$secs" "$retried" "$cases"
	done
	echo
} | tee "$out/table.txt.tmp"
mv "$out/table.txt.tmp" "$out/table.txt"
# The same rows for 'make results', the failing cases counted.
{
	printf 'cpu\tmodules\twant\tresult\tsecs\tretries\tfailing\n'
	for r in "${rows[@]}"; do
		IFS='|' read -r cpu mods expect verdict secs retried cases <<<"$r"
		n=0
		[ "$cases" = - ] || n=$(wc -w <<<"$cases")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cpu" "$mods" "$expect" "${verdict//$'\e'\[[0-9]*m/}" "$secs" "$retried" "$n"
	done
} >"$out/table.tsv"

[ "$bad" -eq 0 ] || die "$bad of ${#rows[@]} red/green runs are wrong (${total} s); logs in ${out#"$TOP"/}"
msg "red/green OK in $total s: stock fails $NEW_TEST, patched passes the Hyper-V suite, on 48-bit and LA57"
