#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Write the series in $TREE (base tag..series branch) as git format-patch
# files, cover letter included, into OUTDIR (default: patches/).  Dates,
# commit ids and the signature are normalised so that exporting an
# unchanged tree is byte-identical.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

out=${1:-$TOP/patches}
git -C "$TREE" rev-parse --git-dir >/dev/null 2>&1 || die "no git tree at $TREE; run 'make tree' first"
git -C "$TREE" rev-parse -q --verify "refs/tags/$BASE_TAG" >/dev/null ||
	die "$TREE has no '$BASE_TAG' tag; recreate it with 'make tree FORCE=1'"
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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/export.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GIT_COMMITTER_NAME=$PH_NAME GIT_COMMITTER_EMAIL=$PH_EMAIL \
GIT_COMMITTER_DATE=$FIXED_DATE \
	git -C "$TREE" -c core.abbrev=12 -c diff.noprefix=false format-patch -q \
		--cover-letter --cover-from-description=subject \
		--zero-commit --no-signature --base="$BASE_TAG" \
		-o "$tmp" "$BASE_TAG..HEAD"

mkdir -p "$out"
rm -f "$out"/*.patch
cp "$tmp"/*.patch "$out"/
msg "exported $n patches and a cover letter to ${out#"$TOP"/}"
