#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: run every check in order, each logged to build/check/NAME.log,
# keep going after a failure, and end with "N passed, N failed".
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

logs=$BUILD/check
mkdir -p "$logs"
passed=0
failed=0
failures=()
t0=$(date +%s)

# stage NAME CMD...: run CMD, log its output, count the result.
stage() {
	local name=$1 start rc
	shift
	start=$(date +%s)
	msg "[$name] $*"
	set +e
	"$@" >"$logs/$name.log" 2>&1
	rc=$?
	set -e
	local secs=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-12s %4ds\n' "$name" "$secs"
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf 'FAIL  %-12s %4ds  (exit %d; log: %s)\n' "$name" "$secs" "$rc" "${logs#"$TOP"/}/$name.log"
		tail -n 25 "$logs/$name.log" | sed 's/^/      | /'
	fi
	# Every stage's own verdict lines, so the CI log shows them.
	grep -E '^(ok|not ok|PASS|FAIL|#|killed|==> .*(passed|killed|table))' "$logs/$name.log" |
		grep -vE '^# (Subtest|TAP)' | tail -n 40 | sed 's/^/      /' || true
}

roundtrip() {
	local tmp
	tmp=$(mktemp -d)
	"$TOP/scripts/export.sh" "$tmp"
	diff -r "$tmp" "$TOP/patches"
	rm -rf "$tmp"
	echo "PASS make tree && make export is byte-identical"
}

stage shellcheck "$TOP/scripts/test-harness.sh" shellcheck
stage tree       "$TOP/scripts/tree.sh"
stage roundtrip  roundtrip
stage errors     "$TOP/scripts/test-harness.sh" errors
stage modules    "$TOP/scripts/modules.sh"
stage smoke      "$TOP/scripts/smoke.sh"
stage kunit      "$TOP/scripts/kunit.sh"
stage mutants    "$TOP/scripts/mutants.sh"
stage redgreen   "$TOP/scripts/redgreen.sh"
stage lint       "$TOP/scripts/lint.sh"
stage send       "$TOP/scripts/test-send.sh"

msg "make check took $(($(date +%s) - t0)) s${failures[*]:+; failed: ${failures[*]}}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
