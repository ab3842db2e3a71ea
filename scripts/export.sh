#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Write the series in $TREE (base tag..series branch) as git format-patch
# files, cover letter included, into OUTDIR (default: patches/<series>/).
# Dates, commit ids and the signature are normalised so that exporting an
# unchanged tree is byte-identical.
#
# A tree made with KSRC= sits on another base than patches/.  Its export
# goes to build/export-ksrc/ unless EXPORT_ONTO_KSRC=1 says to move
# patches/ onto that base.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
harness_lock

out=${1:-}
tree_require
branch=$(git -C "$TREE" symbolic-ref --short HEAD 2>/dev/null || true)
[ "$branch" = "$SERIES_BRANCH" ] ||
	die "$TREE is on '${branch:-a detached HEAD}', not '$SERIES_BRANCH'; check it out first"
if ! git -C "$TREE" diff --quiet HEAD -- || ! git -C "$TREE" diff --cached --quiet; then
	die "$TREE has uncommitted changes; commit (or stash) them, then export"
fi
n=$(git -C "$TREE" rev-list --count "$BASE_TAG..HEAD")
[ "$n" -gt 0 ] || die "$TREE has no commits on top of $BASE_TAG"
git -C "$TREE" config "branch.$SERIES_BRANCH.description" >/dev/null ||
	die "branch '$SERIES_BRANCH' has no description; 'git branch --edit-description' writes the cover letter"

origin=$(tree_meta origin)
desc=$(tree_meta desc)
if [ -z "$out" ]; then
	out=$PATCHES
	case $origin in
	ksrc:*)
		if [ -z "${EXPORT_ONTO_KSRC:-}" ]; then
			out=$BUILD/export-ksrc
			msg "${TREE#"$TOP"/} is based on $desc, not on the base of ${PATCHES#"$TOP"/}:"
			msg "exporting to ${out#"$TOP"/} instead, so that ${PATCHES#"$TOP"/} stays on its base"
			msg "(EXPORT_ONTO_KSRC=1 moves ${PATCHES#"$TOP"/} onto $desc)"
		else
			msg "moving ${PATCHES#"$TOP"/} onto $desc (EXPORT_ONTO_KSRC=1)"
		fi
		;;
	esac
fi
out=$(realpath -m "$out")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/export.XXXXXX")
on_exit "rm -rf '$tmp'"
export_to "$tmp"

mkdir -p "$out"
rm -f "$out"/*.patch
cp "$tmp"/*.patch "$out"/
# patches/ now holds what the tree holds: record that, so that the tree
# counts as built from it.
meta=$(tree_meta_dir)
if [ "$out" = "$PATCHES" ] && [ -n "$(tree_meta owner)" ]; then
	rm -rf "$meta/export"
	mkdir -p "$meta/export"
	cp "$tmp"/*.patch "$meta/export/"
	patches_id "$out" >"$meta/patches-id"
fi
msg "exported $n patches and a cover letter to ${out#"$TOP"/}"
