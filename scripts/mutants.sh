#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Mutation testing of the KUnit suite: every mutants/*.patch breaks the PV
# TLB flush range helper in arch/x86/kvm/hyperv.c in one plausible way.  Each
# is applied in turn to $TREE, the suite is rebuilt incrementally and run
# with scripts/kunit.sh, and it must fail ("kill" the mutant).  hyperv.c is
# always restored from git afterwards.  The mutants are never part of the
# series.  A mutant is a "Mutant: <what it breaks>" line followed by a diff
# of arch/x86/kvm/hyperv.c that 'git apply' takes.
#
#   mutants.sh [MUTANT.patch...]   default: every mutants/*.patch
#
# Exits non-zero unless the unmutated suite passes and every mutant is killed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

target=arch/x86/kvm/hyperv.c
kunit=$TOP/scripts/kunit.sh

if [ $# -gt 0 ]; then
	mutants=()
	for m in "$@"; do
		[ -f "$m" ] || die "no mutant file $m"
		mutants+=("$(realpath "$m")")	# git -C "$TREE" would resolve it in $TREE
	done
else
	mutants=("$TOP"/mutants/*.patch)
fi
[ -e "${mutants[0]}" ] || die "no mutants in $TOP/mutants"

git -C "$TREE" rev-parse --git-dir >/dev/null 2>&1 ||
	die "no kernel git tree at $TREE; run 'make tree' first (or set TREE=)"
[ -f "$TREE/$target" ] || die "$TREE has no $target"
[ -z "$(git -C "$TREE" status --porcelain)" ] ||
	die "$TREE has uncommitted changes; commit or stash them first ('git -C $TREE status'): the mutants are applied to its $target and it is restored with 'git checkout'"
for m in "${mutants[@]}"; do
	git -C "$TREE" apply --check "$m" 2>/dev/null ||
		die "mutant $(basename "$m") no longer applies to $TREE/$target; regenerate it against the current kvm_hv_flush_gva_range()"
done

logs=$BUILD/mutants
mkdir -p "$logs"

restore() { git -C "$TREE" checkout -q -- "$target"; }
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)
msg "unmutated suite first: it must pass"
rc=0
"$kunit" >"$logs/unmutated.log" 2>&1 || rc=$?
[ "$rc" -ne 130 ] || die "interrupted"
[ "$rc" -eq 0 ] ||
	die "the unmutated suite does not pass in $TREE, so killing mutants means nothing; see $logs/unmutated.log or run 'make kunit'"

killed=0
results=()
for m in "${mutants[@]}"; do
	name=$(basename "$m" .patch)
	what=$(sed -n 's/^Mutant: //p' "$m")
	msg "mutant $name: ${what:-?}"
	git -C "$TREE" apply "$m" || die "mutant $name does not apply to $TREE/$target"
	t0=$(date +%s)
	rc=0
	"$kunit" >"$logs/$name.log" 2>&1 || rc=$?
	restore
	secs=$(($(date +%s) - t0))
	# "failed test: SUITE.CASE[.PARAMETER] (STATUS)", shortened to CASE[.PARAMETER]
	mapfile -t caught < <(sed -n -e 's/^==> failed test: kvm_hyperv_tlb_flush\.//' \
		-e 's/^kvm_hv_flush_gva_range_test\.//' -e 's/ (FAIL)$//p' "$logs/$name.log")
	case $rc in
	3)
		killed=$((killed + 1))
		line="killed   $name in $secs s by ${#caught[@]} test case(s): $(printf '%s; ' "${caught[@]}")"
		;;
	130)
		die "interrupted during mutant $name"
		;;
	0)
		line="SURVIVED $name in $secs s: the suite passed"
		;;
	*)
		line="ERROR    $name in $secs s: kunit.sh exited $rc (build or setup failure, not a kill); see $logs/$name.log"
		;;
	esac
	msg "$line"
	results+=("$line")
done

printf '%s\n' "${results[@]}"
msg "killed $killed/${#mutants[@]} mutants in $(($(date +%s) - start)) s (logs in $logs)"
[ "$killed" -eq ${#mutants[@]} ] || die "$((${#mutants[@]} - killed)) mutant(s) not killed; strengthen the KUnit tests"
