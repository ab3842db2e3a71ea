#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Materialise the base as a git work tree in $TREE (one base commit) and
# apply the series with git am, one commit per patch.  KSRC=<git tree>
# uses the user's own kernel tree (its HEAD) as the base, with git am -3.
# The tree is built aside and moved in place only when every patch
# applied, so a failure leaves no half-applied tree.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

need_pkgs git
ksrc=${KSRC:-}
patchdir=${PATCHES:-$TOP/patches}
mapfile -t series < <(find "$patchdir" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' | sort)
[ ${#series[@]} -gt 0 ] || die "no patches in $patchdir"
cover=$patchdir/0000-cover-letter.patch
[ -f "$cover" ] || die "$cover is missing"

if [ -n "$ksrc" ]; then
	[ -d "$ksrc" ] || die "KSRC=$ksrc: no such directory"
	git -C "$ksrc" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
		die "KSRC=$ksrc is not a git work tree; point KSRC at a kernel git checkout"
	ksrc=$(git -C "$ksrc" rev-parse --show-toplevel)
	{ [ -f "$ksrc/arch/x86/kvm/hyperv.c" ] && grep -q '^PATCHLEVEL' "$ksrc/Makefile"; } ||
		die "KSRC=$ksrc does not look like a Linux tree with arch/x86/kvm/hyperv.c"
	git -C "$ksrc" diff --quiet HEAD 2>/dev/null ||
		warn "KSRC=$ksrc has uncommitted changes; only its HEAD commit is used"
	origin=$ksrc
	base_rev=$(git -C "$ksrc" rev-parse HEAD)
	am_opts=(-3)
	base_desc="$(git -C "$ksrc" log -1 --format='%h ("%s")' HEAD) of $ksrc"
else
	"$TOP/scripts/base.sh"
	base_env
	origin=$BASE_REPO
	base_rev=$(git -C "$BASE_REPO" rev-parse "$BASE_TAG")
	am_opts=()
	base_desc="Debian linux-source-6.12 $BASE_VER"
fi

# Refuse to throw away work that was not exported.
if [ -d "$TREE/.git" ] && [ -z "${FORCE:-}" ]; then
	chk=$(mktemp -d "${TMPDIR:-/tmp}/chk.XXXXXX")
	if ! "$TOP/scripts/export.sh" "$chk" 2>/dev/null || ! diff -qr "$chk" "$patchdir" >/dev/null; then
		rm -rf "$chk"
		die "$TREE holds work that differs from patches/; run 'make export' to keep it or 'make tree FORCE=1' to discard it"
	fi
	rm -rf "$chk"
	if [ "$(git -C "$TREE" rev-parse "$BASE_TAG")" = "$base_rev" ]; then
		msg "tree is up to date with patches/ ($base_desc)"
		exit 0
	fi
fi

tmp="$TREE.tmp"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$TREE")"
msg "checking out $base_desc into ${TREE#"$TOP"/}"
git clone -q --shared --no-checkout "$origin" "$tmp"
# Apply the series in a sparse checkout of the directories it touches, so
# that a series that does not apply fails fast; check out the rest after.
mapfile -t dirs < <(sed -n 's|^diff --git a/\(.*\)/[^/]* b/.*|\1|p' "${series[@]}" | sort -u)
git -C "$tmp" sparse-checkout set --cone "${dirs[@]}"
git -C "$tmp" checkout -q -b "$SERIES_BRANCH" "$base_rev"
git -C "$tmp" tag -f "$BASE_TAG" "$base_rev" >/dev/null
git -C "$tmp" config user.name "$PH_NAME"
git -C "$tmp" config user.email "$PH_EMAIL"

# The cover letter's subject and blurb become the branch description,
# which export.sh turns back into the cover letter.
python3 "$TOP/scripts/cover.py" extract "$cover" >"$tmp/.git/cover-desc"
git -C "$tmp" config "branch.$SERIES_BRANCH.description" "$(cat "$tmp/.git/cover-desc")"

for p in "${series[@]}"; do
	name=$(basename "$p")
	if ! out=$(git -C "$tmp" am "${am_opts[@]}" --committer-date-is-author-date "$p" 2>&1); then
		printf '%s\n' "$out" | grep -vE '^(hint|When you|If you|To restore)' | sed 's/^/    /' >&2
		# "error: patch failed: FILE:LINE" from git apply, unmerged paths from -3.
		failing=$({
			printf '%s\n' "$out" | sed -n 's/^error: patch failed: //p; s/^error: \(.*\): patch does not apply$/\1/p'
			git -C "$tmp" diff --name-only --diff-filter=U 2>/dev/null
		} | sort -u | tr '\n' ' ')
		git -C "$tmp" am --abort >/dev/null 2>&1 || true
		die "patches/$name does not apply to $base_desc${failing:+ (failing: ${failing% })}; rebase the series or pick another base"
	fi
	msg "applied $name"
done

if [ -z "${TREE_SPARSE:-}" ]; then
	msg "checking out the rest of the tree"
	git -C "$tmp" sparse-checkout disable
fi
rm -rf "$TREE"
mv "$tmp" "$TREE"
trap - EXIT
msg "tree ready: ${TREE#"$TOP"/} on branch $SERIES_BRANCH, ${#series[@]} patches on $base_desc"
