#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make deps: install the packages of every stage (lib.sh's STAGE_PKGS, the
# one list of what each stage needs) and prove that each stage's programs
# work, not only that they exist: for example, that git send-email loads
# its Perl modules and that busybox is the static one the guest needs.
#
#   deps.sh [STAGE...]   default: every stage
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -gt 0 ]; then
	stages=("$@")
else
	mapfile -t stages < <(printf '%s\n' "${!STAGE_PKGS[@]}" | sort)
fi
for s in "${stages[@]}"; do
	need_stage "$s"
	echo "PASS deps $s: ${STAGE_PKGS[$s]}"
done
msg "every stage's packages are installed and its programs work"
