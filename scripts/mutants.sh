#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Mutation testing of the KUnit suite: every mutants/*.patch breaks the PV
# TLB flush range helper in arch/x86/kvm/hyperv.c in one plausible way.
# Each is applied in turn to kunit.sh's mirror of $TREE (a scratch copy
# the harness owns, never $TREE itself), the suite is rebuilt
# incrementally and run, and it must fail ("kill" the mutant).  The mirror's
# hyperv.c is put back from $TREE after each mutant.  The mutants are never
# part of the series.  A mutant is a "Mutant: <what it breaks>" line
# followed by a diff of arch/x86/kvm/hyperv.c that 'git apply' takes.
#
#   mutants.sh [MUTANT.patch...]   default: every $MUTANTS_DIR/*.patch
#                                  (MUTANTS_DIR defaults to mutants/)
#
# Exits non-zero unless the unmutated suite passes and every mutant is killed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

target=arch/x86/kvm/hyperv.c
kunit=$TOP/scripts/kunit.sh
KUNIT_SRC=$CACHE/debug/$SERIES/src
: "${MUTANTS_DIR:=$TOP/mutants}"

mutant_files "$MUTANTS_DIR" "$@"
mutants=("${MUTANTS[@]}")

harness_lock
harness_lock "$CACHE/debug/$SERIES"
is_git_tree "$TREE" || die "no kernel git tree at $TREE; run 'make tree' first (or set TREE=)"
[ -f "$TREE/$target" ] || die "$TREE has no $target"

logs=$BUILD/mutants
mkdir -p "$logs"

start=$(date +%s)
msg "unmutated suite first (this also mirrors ${TREE#"$TOP"/}): it must pass"
rc=0
"$kunit" >"$logs/unmutated.log" 2>&1 || rc=$?
[ "$rc" -ne 130 ] || die "interrupted"
[ "$rc" -eq 0 ] ||
	die "the unmutated suite does not pass in $TREE, so killing mutants means nothing; see $logs/unmutated.log or run 'make kunit'"
grep '^==> testing' "$logs/unmutated.log" >&2 || true

for m in "${mutants[@]}"; do
	(cd "$KUNIT_SRC" && git apply --check "$m" 2>/dev/null) ||
		die "mutant $(basename "$m") no longer applies to $target of ${TREE#"$TOP"/}; regenerate it against the current kvm_hv_gva_range_canonical()"
done

# A fresh copy (new mtime) so that kbuild rebuilds it after a mutant.
restore() { cp "$TREE/$target" "$KUNIT_SRC/$target"; }
on_exit restore

killed=0
results=()
for m in "${mutants[@]}"; do
	name=$(basename "$m" .patch)
	mdesc=$(sed -n 's/^Mutant: //p' "$m")
	msg "mutant $name: ${mdesc:-?}"
	(cd "$KUNIT_SRC" && git apply "$m") || die "mutant $name does not apply to the mirror of $target"
	t0=$(date +%s)
	rc=0
	KUNIT_NO_SYNC=1 "$kunit" >"$logs/$name.log" 2>&1 || rc=$?
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
