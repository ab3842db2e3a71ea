#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Materialise the base as a git work tree in $TREE (one base commit) and
# apply the series with git am, one commit per patch.  KSRC=<git tree>
# uses the user's own kernel tree (its HEAD) as the base, with git am -3.
# The tree is built aside and moved in place only when every patch
# applied, so a failure leaves no half-applied tree.
#
#   tree.sh            'make tree': make or rebuild $TREE; refuses to
#                      replace work in it that is not in patches/
#   tree.sh --ensure   what every other target runs first: make $TREE if
#                      there is none, rebuild it when patches/ changed
#                      and the tree holds no work of its own, otherwise
#                      use it as it is (and say how it differs)
#
# The tree records where it came from (.git/kvm-hv-flush/): a KSRC tree
# stays a KSRC tree without repeating KSRC, and a pull that changes
# patches/ is told apart from work done in the tree.  Only trees the
# harness made ('owner') are ever replaced; a TREE= of the user's and a
# KSRC are never deleted, reset or written to.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
harness_lock
# One tree.sh at a time per tree, also within one make check (its lanes
# share the build directory's lock): a second one waits, then finds the
# tree made.
mkdir -p "$BUILD"
exec {tree_lock}>>"$BUILD/.tree-$(printf '%s' "$TREE" | sha1sum | cut -c1-12).lock"
flock -w "${LOCK_WAIT:-3600}" "$tree_lock" || die "another 'make tree' is still making $TREE after ${LOCK_WAIT:-3600} s"

mode=explicit
[ "${1:-}" = --ensure ] && mode=ensure
need_stage tree
patchdir=$PATCHES
mapfile -t series < <(find "$patchdir" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' 2>/dev/null | sort)
[ ${#series[@]} -gt 0 ] || die "no patches in $patchdir"
cover=$patchdir/0000-cover-letter.patch
[ -f "$cover" ] || die "$cover is missing"
pid=$(patches_id "$patchdir")

# --- what is there now ---------------------------------------------------------
exists=0 owned=0
if [ -e "$TREE" ]; then
	if is_git_tree "$TREE" && [ "$(git -C "$TREE" rev-parse --show-toplevel)" = "$TREE" ]; then
		exists=1
		[ -n "$(tree_meta owner)" ] && owned=1
	elif [ -n "$(ls -A "$TREE" 2>/dev/null)" ]; then
		die "$TREE exists and is not a git tree; the harness does not touch it. Move it away or set TREE= to another directory"
	fi
fi

if [ "$exists" = 1 ] && [ "$owned" = 0 ]; then
	# The user's own tree given as TREE=: used as it is, never replaced.
	tree_require
	[ "$mode" = ensure ] || [ -z "${KSRC:-}" ] ||
		die "TREE=$TREE is your own tree, not one the harness made; it is never replaced. Drop TREE= to build the series on KSRC in ${BUILD#"$TOP"/}/tree"
	msg "TREE=$TREE was not made by the harness: using it as it is, never replacing it"
	exit 0
fi

# --- which base ------------------------------------------------------------------
ksrc=${KSRC:-}
if [ -z "$ksrc" ] && [ "$exists" = 1 ]; then
	# Keep the base the tree was made on: a KSRC tree stays one.
	case $(tree_meta origin) in
	ksrc:*) ksrc=$(tree_meta origin) ksrc=${ksrc#ksrc:} ;;
	esac
fi
if [ -n "$ksrc" ]; then
	[ -d "$ksrc" ] || die "KSRC=$ksrc: no such directory"
	is_git_tree "$ksrc" ||
		die "KSRC=$ksrc is not a git work tree; point KSRC at a kernel git checkout"
	ksrc=$(git -C "$ksrc" rev-parse --show-toplevel)
	{ [ -f "$ksrc/arch/x86/kvm/hyperv.c" ] && grep -q '^PATCHLEVEL' "$ksrc/Makefile"; } ||
		die "KSRC=$ksrc does not look like a Linux tree with arch/x86/kvm/hyperv.c"
	[ "$ksrc" != "$TREE" ] || die "KSRC and TREE are the same directory ($TREE); the series is applied to a copy of KSRC, in TREE"
	git -C "$ksrc" diff --quiet HEAD 2>/dev/null ||
		warn "KSRC=$ksrc has uncommitted changes; only its HEAD commit is used"
	# A worktree's HEAD lives in its own git dir; its objects in the common one.
	origin_repo=$(git -C "$ksrc" rev-parse --path-format=absolute --git-common-dir)
	base_rev=$(git -C "$ksrc" rev-parse HEAD)
	am_opts=(-3)
	origin="ksrc:$ksrc"
	base_desc="$(git -C "$ksrc" log -1 --format='%h ("%s")' HEAD) of $ksrc"
	clone_opts=()
else
	"$TOP/scripts/base.sh"
	base_env
	origin_repo=$BASE_REPO
	base_rev=$(git -C "$BASE_REPO" rev-parse "$BASE_TAG")
	am_opts=()
	if [ "$SERIES" = mainline ]; then
		origin="tarball:$BASE_VER"
		base_desc="Linux $BASE_VER (source tarball)"
	else
		origin="debian:$BASE_VER"
		base_desc="Debian linux-source-6.12 $BASE_VER"
	fi
	# The cached base belongs to the harness: sharing its objects is safe.
	clone_opts=(--shared)
fi

# --- is a rebuild needed, and is it allowed? ---------------------------------------
if [ "$exists" = 1 ]; then
	diffs=$(tree_diff)
	old_pid=$(tree_meta patches-id)
	same_base=0
	[ "$(git -C "$TREE" rev-parse "$BASE_TAG^{commit}" 2>/dev/null)" = "$base_rev" ] &&
		[ "$(tree_meta origin)" = "$origin" ] && same_base=1
	if [ "$old_pid" = "$pid" ] && [ "$same_base" = 1 ]; then
		if [ -n "$diffs" ]; then
			msg "tree kept as it is: it holds work not in ${patchdir#"$TOP"/} ($(tr '\n' ' ' <<<"$diffs" | sed 's/ $//'))"
		else
			msg "tree is up to date with ${patchdir#"$TOP"/} ($base_desc)"
		fi
		exit 0
	fi
	why="${patchdir#"$TOP"/} changed since the tree was built"
	[ "$same_base" = 1 ] || why="the base changed to $base_desc"
	if [ -n "$diffs" ] && [ -z "${FORCE:-}" ]; then
		if [ "$mode" = ensure ]; then
			warn "$why, but ${TREE#"$TOP"/} holds work of its own; testing the tree as it is. 'make tree' says how to bring the two together"
			exit 0
		fi
		keep="git -C $TREE format-patch -o <dir> $BASE_TAG..HEAD"
		if [ "$old_pid" != "$pid" ]; then
			die "${TREE#"$TOP"/} holds work that is not in ${patchdir#"$TOP"/}, and ${patchdir#"$TOP"/} itself changed since the tree was built (a pull?). Exporting now would undo that change. Keep your work with '$keep' (and commit or stash uncommitted changes first), then 'make tree FORCE=1' and re-apply it with git am -3"
		fi
		die "${TREE#"$TOP"/} holds work that is not in ${patchdir#"$TOP"/} and $why; 'make export' keeps the work in ${patchdir#"$TOP"/}, '$keep' keeps it elsewhere, 'make tree FORCE=1' discards it"
	fi
	msg "$why; rebuilding ${TREE#"$TOP"/}"
fi

# --- build it aside, move it in place ----------------------------------------------
mkdir -p "$(dirname "$TREE")"
tmp=$(mktemp -d "$TREE.new.XXXXXX")
on_exit "rm -rf '$tmp'"
rmdir "$tmp"
msg "checking out $base_desc into ${TREE#"$TOP"/}"
git clone -q "${clone_opts[@]}" --no-checkout "$origin_repo" "$tmp"
# Apply the series in a sparse checkout of the directories it touches, so
# that a series that does not apply fails fast; check out the rest after.
mapfile -t dirs < <(sed -n 's|^diff --git a/\(.*\)/[^/]* b/.*|\1|p' "${series[@]}" | sort -u)
git -C "$tmp" sparse-checkout set --cone "${dirs[@]}" scripts
git -C "$tmp" checkout -q -b "$SERIES_BRANCH" "$base_rev"
git -C "$tmp" tag -f "$BASE_TAG" "$base_rev" >/dev/null
git -C "$tmp" config user.name "$PH_NAME"
git -C "$tmp" config user.email "$PH_EMAIL"
git -C "$tmp" remote remove origin 2>/dev/null || true

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
		die "${patchdir#"$TOP"/}/$name does not apply to $base_desc${failing:+ (failing: ${failing% })}; rebase the series or pick another base"
	fi
	msg "applied $name"
done

if [ -z "${TREE_SPARSE:-}" ]; then
	msg "checking out the rest of the tree"
	git -C "$tmp" sparse-checkout disable
fi
meta=$tmp/.git/kvm-hv-flush
mkdir -p "$meta"
echo "made by $TOP/scripts/tree.sh on $(date -u +%FT%TZ); the harness may replace this tree" >"$meta/owner"
printf '%s\n' "$origin" >"$meta/origin"
printf '%s\n' "$base_desc" >"$meta/desc"
printf '%s\n' "$SERIES" >"$meta/series"
printf '%s\n' "$pid" >"$meta/patches-id"
# What the tree exports to as built: later differences are work done in it.
export_to "$meta/export" "$tmp"

# Replace the old tree only if the harness made it (checked above).
if [ "$exists" = 1 ]; then
	[ "$owned" = 1 ] || die "internal: refusing to replace $TREE, which the harness did not make"
	old=$(mktemp -d "$TREE.old.XXXXXX")
	mv "$TREE" "$old/tree"
	mv "$tmp" "$TREE"
	rm -rf "$old"
else
	rmdir "$TREE" 2>/dev/null || true
	mv "$tmp" "$TREE"
fi
msg "tree ready: ${TREE#"$TOP"/} on branch $SERIES_BRANCH, ${#series[@]} patches of ${patchdir#"$TOP"/} on $base_desc"
