#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Lint the series in $TREE ($BASE_TAG..HEAD), one PASS/FAIL line a check:
#
#   checkpatch   checkpatch.pl --strict on every patch (patches/, or the
#                format-patch output of $TREE when TREE= names another tree)
#   maintainers  scripts/get_maintainer.pl names the KVM Hyper-V entry for
#                every file the series adds
#   build-w1     6.12.y: the KVM modules build out of tree (scripts/modules.sh)
#                at every step of the series with W=1; mainline: 'make W=1
#                arch/x86/kvm/' in the full tree at every step, O= in the
#                cache, with defconfig plus configs/lint-mainline.config
#                (KVM_INTEL=m KVM_AMD=m KVM_WERROR=y, as kvm-x86 asks); no
#                step has a warning the base does not have
#   sparse       6.12.y: likewise for sparse (C=1 on every rebuilt object)
#   kernel-doc   scripts/kernel-doc -none is silent on the touched .c/.h files
#   htmldocs     the Sphinx build of the touched Documentation directories
#                has no warning that names a touched file
#
# The steps are checked out, one after the other, in build/lint-tree, a
# sparse checkout that borrows the objects of $TREE, so $TREE itself is
# never touched.  Exits non-zero when a check fails.
#
#   LINT_CHECKS="checkpatch maintainers"   run only these checks
set -euo pipefail
. "$(dirname "$0")/lib.sh"

harness_lock
need_stage lint
t0=$(date +%s)
# Each series lints in directories of its own, locked, so that make
# check's two lanes may lint both series at once.
sfx=
[ "$SERIES" = stable ] || sfx=-$SERIES
out=$BUILD/lint$sfx
wt=$BUILD/lint-tree$sfx
harness_lock "$out"
# The per-step build: 6.12.y builds out of tree against Debian's headers,
# mainline builds its own tree (a full checkout, build/lint-kernel).
: "${LINT_CHECKS:=checkpatch maintainers build kernel-doc htmldocs}"
want() { [[ " $LINT_CHECKS " == *" $1 "* ]]; }

tree_require
tree_report
base=$(git -C "$TREE" rev-parse "$BASE_TAG^{commit}")
head=$(git -C "$TREE" rev-parse HEAD)
mapfile -t commits < <(git -C "$TREE" rev-list --reverse "$base..$head")
[ ${#commits[@]} -gt 0 ] || die "$TREE has no commits on top of $BASE_TAG; nothing to lint"
if ! git -C "$TREE" diff --quiet HEAD -- || ! git -C "$TREE" diff --cached --quiet; then
	warn "$TREE has uncommitted changes; only its commits are linted"
fi
mapfile -t touched < <(git -C "$TREE" diff --name-only "$base" "$head")
mkdir -p "$out"

# The kernel's Python helpers (spdxcheck.py, run by checkpatch; the netlink
# spec generator of htmldocs) need Debian's python3 modules, which a python3
# from pyenv or a venv ahead in PATH does not see.
if ! python3 -c 'import ply, git, yaml' 2>/dev/null; then
	mkdir -p "$out/bin"
	ln -sf /usr/bin/python3 "$out/bin/python3"
	export PATH="$out/bin:$PATH"
fi

# lint-tree: a sparse checkout of what the checks read (the kernel-doc
# and Sphinx helpers live under tools/ in newer trees), sharing the
# objects of $TREE.
lint_tree() {
	if [ ! -d "$wt/.git" ]; then
		msg "creating ${wt#"$TOP"/} (sparse checkout sharing the objects of $TREE)"
		rm -rf "$wt"
		git init -q "$wt"
	fi
	git -C "$wt" sparse-checkout set --cone arch/x86/kvm arch/x86/include virt \
		include Documentation scripts tools/net/ynl tools/docs tools/lib/python
	printf '%s/objects\n' "$(git -C "$TREE" rev-parse --path-format=absolute --git-common-dir)" \
		>"$wt/.git/objects/info/alternates"
}

results=()
failed=0
result() { # result PASS|FAIL NAME DETAIL
	results+=("$(printf '%s %-12s %s' "$1" "$2" "$3")")
	[ "$1" = PASS ] || failed=1
	msg "$1 $2: $3"
}

# --- checkpatch -------------------------------------------------------------
if [ -n "$(tree_meta owner)" ] && [ -z "$(tree_diff)" ] &&
	[ "$(patches_id "$PATCHES")" = "$(tree_meta patches-id)" ]; then
	pdir=$PATCHES
else
	pdir=$out/patches
	rm -rf "$pdir"
	git -C "$TREE" -c core.abbrev=12 -c diff.noprefix=false format-patch -q \
		--zero-commit --no-signature -o "$pdir" "$base..$head"
fi
mapfile -t patches < <(find "$pdir" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-*' | sort)
[ ${#patches[@]} -eq ${#commits[@]} ] ||
	warn "${pdir#"$TOP"/} has ${#patches[@]} patches but $TREE has ${#commits[@]} commits; run 'make export'"

# $TREE is an import of a source tarball without upstream history, so the
# commit a Fixes: tag names cannot be found in it and checkpatch would
# report UNKNOWN_COMMIT_ID.  Ignore that only for ids $TREE really lacks
# (a tree made with KSRC= from a kernel git tree keeps the check); the
# format of the tag (12+ hex digits, quoted subject) is still checked.
ignore=()
unknown=$({
	sed -n 's/^Fixes: \([0-9a-f]\{6,40\}\) .*/\1/p' "${patches[@]}"
	# "commit <id>" in the change logs, as checkpatch finds them.
	awk 'FNR == 1 { p = 1 } /^---$/ { p = 0 } p' "${patches[@]}" |
		{ grep -oiE '\bcommit [0-9a-f]{12,40}\b' || true; } | cut -d' ' -f2
} | sort -u |
	while read -r id; do
		git -C "$TREE" cat-file -e "$id^{commit}" 2>/dev/null || printf '%s ' "$id"
	done)
[ -n "$unknown" ] && ignore+=(UNKNOWN_COMMIT_ID)
# A series that updates MAINTAINERS in a patch of its own gets checkpatch's
# "does MAINTAINERS need updating?" on every patch that adds a file; the
# maintainers check below proves the entry covers each added file.
mpatch=$(grep -l '^diff --git a/MAINTAINERS b/MAINTAINERS' "${patches[@]}" | head -n1 || true)
if [ -n "$mpatch" ] && want maintainers; then
	ignore+=(FILE_PATH_CHANGES)
	msg "FILE_PATH_CHANGES ignored: $(basename "$mpatch") updates MAINTAINERS, and the maintainers check covers every added file"
fi
ign=$(IFS=,; echo "${ignore[*]}")

if want checkpatch; then
[ -x "$TREE/scripts/checkpatch.pl" ] || die "$TREE has no scripts/checkpatch.pl"
msg "checkpatch --strict on ${#patches[@]} patches of ${pdir#"$TOP"/}${ign:+ (ignoring $ign: ${unknown% } not in the tree)}"
mkdir -p "$out/checkpatch"
rm -f "$out/checkpatch"/*.log
e=0 w=0 c=0 bad=()
for p in "${patches[@]}"; do
	log=$out/checkpatch/$(basename "$p" .patch).log
	# Run from the tree: checkpatch finds .git and spdxcheck.py there.
	(cd "$TREE" && ./scripts/checkpatch.pl --strict --no-summary --color=never \
		${ign:+--ignore "$ign"} "$p") >"$log" 2>&1 && rc=0 || rc=$?
	pe=$(grep -c '^ERROR:' "$log" || true)
	pw=$(grep -c '^WARNING:' "$log" || true)
	pc=$(grep -c '^CHECK:' "$log" || true)
	e=$((e + pe)) w=$((w + pw)) c=$((c + pc))
	if [ "$rc" -ne 0 ] || [ $((pe + pw + pc)) -ne 0 ] || grep -q '^Traceback' "$log"; then
		bad+=("$(basename "$p")")
		sed 's/^/    /' "$log" >&2
	fi
done
if [ ${#bad[@]} -eq 0 ]; then
	result PASS checkpatch "${#patches[@]} patches: $e errors, $w warnings, $c checks"
else
	result FAIL checkpatch "$e errors, $w warnings, $c checks in ${bad[*]} (logs in ${out#"$TOP"/}/checkpatch)"
fi
fi

# --- maintainers ------------------------------------------------------------
# Every file the series adds must belong to the KVM Hyper-V entry, as
# scripts/get_maintainer.pl sees it in $TREE (at HEAD).
if want maintainers; then
entry="KVM X86 HYPER-V (KVM/hyper-v)"
# arch/x86/kvm/.kunitconfig configures every KUnit test of the directory,
# so the KVM x86 entry may own it instead.
kvm_entry="KERNEL VIRTUAL MACHINE FOR X86 (KVM/x86)"
mapfile -t added < <(git -C "$TREE" diff --name-only --diff-filter=AR "$base" "$head")
uncovered=()
for f in "${added[@]}"; do
	owners=$(cd "$TREE" && ./scripts/get_maintainer.pl --no-git --no-git-fallback \
		--no-email --no-l --subsystem --no-status -f "$f" 2>&1)
	grep -qxF "$entry" <<<"$owners" && continue
	[ "$f" = arch/x86/kvm/.kunitconfig ] && grep -qxF "$kvm_entry" <<<"$owners" && continue
	uncovered+=("$f")
done
if [ ${#uncovered[@]} -eq 0 ]; then
	result PASS maintainers "get_maintainer.pl names $entry for all ${#added[@]} added files"
else
	result FAIL maintainers "get_maintainer.pl does not name $entry for: ${uncovered[*]}"
fi
fi

# --- build-w1 and sparse, one step at a time --------------------------------
# The warnings of a step are kept under its commit id (which names the
# whole tree and history) and the harness that produced them, so a rerun
# builds only the steps it has not seen.  The first step built in a run is
# a full build of what is checked (every object, ccache makes gcc fast); the
# ones after it are incremental: make rebuilds exactly what changed,
# everything else was checked at an earlier step.
if want build; then
if [ "$SERIES" = stable ]; then
	lint_tree
	git -C "$wt" tag -f "$BASE_TAG" "$base" >/dev/null
	src=$wt
	bdir=$out/build
	strip_dirs=("$bdir/src/overlay" "$bdir/src")
	flags="W=1 C=1"
	stamp=$(cat "$TOP/scripts/modules.sh" "$0" | sha1sum | cut -c1-12)
	step_clean() { [ ! -d "$bdir/src" ] || find "$bdir/src" -name '*.o' -delete; }
	step_build() {
		W=1 C=1 MODULES_QUIET=1 TREE=$wt "$TOP/scripts/modules.sh" "$bdir"
	}
else
	# The whole tree at each step (the kernel's own build needs all of it),
	# sharing the objects of $TREE; the objects of the build in the cache,
	# one directory shared by every clone (hence its lock).
	src=$BUILD/lint-kernel
	if [ ! -d "$src/.git" ]; then
		msg "creating ${src#"$TOP"/} (full checkout sharing the objects of $TREE)"
		rm -rf "$src"
		git init -q "$src"
	fi
	printf '%s/objects\n' "$(git -C "$TREE" rev-parse --path-format=absolute --git-common-dir)" \
		>"$src/.git/objects/info/alternates"
	frag=$TOP/configs/lint-mainline.config
	kobj=$CACHE/lint-mainline/obj
	mkdir -p "$kobj"
	exec {klock}>"$CACHE/lint-mainline/lock"
	flock -w "${LOCK_WAIT:-3600}" "$klock" || die "$CACHE/lint-mainline is in use; try again later"
	strip_dirs=("$src")
	flags="W=1 (${frag#"$TOP"/})"
	stamp=$(printf '%s\n' mainline | cat - "$frag" "$0" | sha1sum | cut -c1-12)
	kcc_install
	kmake() { make -C "$src" O="$kobj" ARCH=x86_64 CC="$KCC" -j"$(nproc)" "$@"; }
	step_clean() { [ ! -d "$kobj/arch/x86/kvm" ] || find "$kobj/arch/x86/kvm" -name '*.o' -delete; }
	# The config of a step: defconfig (made once per base and fragment)
	# plus the fragment, resolved against the step's Kconfig.  Every value
	# of the fragment must survive, unless the step does not declare the
	# symbol yet (a later patch adds it).
	step_config() {
		local key line sym want got
		key=$base-$(sha1sum <"$frag" | cut -c1-12)
		if [ "$(cat "$kobj/lint-defconfig.key" 2>/dev/null)" != "$key" ]; then
			git -C "$src" checkout -q --detach -f "$base"
			kmake defconfig && cp "$kobj/.config" "$kobj/lint-defconfig" &&
				printf '%s\n' "$key" >"$kobj/lint-defconfig.key" || return 1
			git -C "$src" checkout -q --detach -f "$c"
		fi
		(cd "$src" && ./scripts/kconfig/merge_config.sh -m -O "$kobj" "$kobj/lint-defconfig" "$frag") &&
			kmake olddefconfig || return 1
		while IFS= read -r line; do
			sym=${line%%=*} want=${line#*=}
			got=$(grep -E "^$sym=|^# $sym is not set" "$kobj/.config" || true)
			[ "$got" = "$sym=$want" ] && continue
			if git -C "$src" grep -qE "^[[:space:]]*(menu)?config ${sym#CONFIG_}\$" -- '*Kconfig*'; then
				echo "ERROR: ${frag#"$TOP"/} asks for $sym=$want, but olddefconfig gave '${got:-nothing}': its dependencies are not met (see $kobj/.config)"
				return 1
			fi
			echo "note: $sym is not declared at this step; ignored"
		done < <(grep -E '^CONFIG_[A-Za-z0-9_]+=' "$frag")
		grep -E '^CONFIG_KVM(_INTEL|_AMD|_WERROR|_HYPERV_KUNIT_TEST)?=' "$kobj/.config" | paste -sd' ' | sed 's/^/config: /'
	}
	step_build() { step_config && kmake W=1 arch/x86/kvm/; }
fi

# Normalise compiler and sparse output to "file: warning: text" (paths
# relative to the tree, line and column numbers dropped), one per line.
norm() {
	local sx=() d
	for d in "${strip_dirs[@]}"; do sx+=(-e "s|$d/||g"); done
	sed -E 's/\x1b\[[0-9;]*[mK]//g' "$1" | { grep -E '(warning|error):' || true; } |
		sed -E "${sx[@]}" \
			-e 's|arch/x86/kvm/\.\./\.\./\.\./||g' \
			-e 's|^/[^ :]*/linux-headers-[^/ :]*/||' \
			-e 's|^([^ :]+):[0-9]+:[0-9]+:|\1:|' -e 's|^([^ :]+):[0-9]+:|\1:|' |
		sort -u
}
# Shared by every clone: a commit id names the same tree everywhere.
wcache=$CACHE/lint-results
mkdir -p "$wcache"
# One lint of a series builds at a time: a second one (another copy of
# the project, or make check's other lane) waits, then finds the first
# one's steps here instead of building the same steps beside it.
harness_lock "$wcache/$SERIES"
rm -f "$out"/step-*
build_fail=() new_w1=() new_sp=() cached=0 full=1
nsteps=$((${#commits[@]} + 1))
for ((k = 0; k < nsteps; k++)); do
	if [ "$k" -eq 0 ]; then
		c=$base label="base"
	else
		c=${commits[k - 1]}
		label="$k/${#commits[@]} $(git -C "$TREE" log -1 --format=%s "$c")"
	fi
	res=$wcache/$c-$stamp.warnings
	# A step that changes only what the build never reads (selftests,
	# documents, MAINTAINERS) has the warnings of the step before it.
	builds=
	[ "$k" -eq 0 ] || builds=$(git -C "$TREE" diff --name-only "$c^" "$c" |
		grep -vE '^(tools/|Documentation/|MAINTAINERS$)' || true)
	if [ "$k" -gt 0 ] && [ -z "$builds" ] && [ -f "$out/step-$((k - 1)).warnings" ]; then
		cp "$out/step-$((k - 1)).warnings" "$out/step-$k.warnings"
		msg "step $label: changes only tools/, Documentation/ or MAINTAINERS, which the build does not read: the warnings of step $((k - 1))"
	elif [ -f "$res" ]; then
		cp "$res" "$out/step-$k.warnings"
		cached=$((cached + 1)) full=1
		msg "step $label: known from an earlier run"
	else
		git -C "$src" checkout -q --detach -f "$c"
		[ "$full" = 1 ] && step_clean
		full=0
		log=$out/step-$k.log
		msg "step $label: $flags build"
		ss=$(date +%s)
		if ! step_build >"$log" 2>&1; then
			[ "$k" -eq 0 ] && { sed 's/^/    /' "$log" | tail -20 >&2; die "the base does not build (log: $log); fix that first"; }
			build_fail+=("$label")
			sed 's/^/    /' "$log" | grep -E 'error|ERROR' | head -10 >&2 || true
			full=1
			continue
		fi
		norm "$log" >"$res.tmp" && mv "$res.tmp" "$res"
		cp "$res" "$out/step-$k.warnings"
		msg "step $label: built in $(($(date +%s) - ss)) s, $(grep -c . "$res" || true) warnings"
	fi
	grep -E '\[-W[^]]*\]$' "$out/step-$k.warnings" >"$out/step-$k.w1" || true
	grep -vE '\[-W[^]]*\]$' "$out/step-$k.warnings" >"$out/step-$k.sparse" || true
	[ "$k" -eq 0 ] && continue
	while IFS= read -r l; do new_w1+=("$k: $l"); done < <(comm -13 "$out/step-0.w1" "$out/step-$k.w1")
	while IFS= read -r l; do new_sp+=("$k: $l"); done < <(comm -13 "$out/step-0.sparse" "$out/step-$k.sparse")
done
nb=$(wc -l <"$out/step-0.w1") ns=$(wc -l <"$out/step-0.sparse")
if [ ${#build_fail[@]} -eq 0 ] && [ ${#new_w1[@]} -eq 0 ]; then
	result PASS build-w1 "$nsteps steps build with $flags ($cached known from earlier runs), no new warnings (base: $nb)"
else
	[ ${#new_w1[@]} -eq 0 ] || printf '    new: %s\n' "${new_w1[@]}" >&2
	result FAIL build-w1 "${build_fail[*]:+steps that do not build: ${build_fail[*]}; }${#new_w1[@]} new W=1 warnings (logs: ${out#"$TOP"/}/step-*.log)"
fi
if [ "$SERIES" = stable ]; then
	if [ ${#new_sp[@]} -eq 0 ]; then
		result PASS sparse "no new sparse warnings in $nsteps steps (base: $ns)"
	else
		printf '    new: %s\n' "${new_sp[@]}" >&2
		result FAIL sparse "${#new_sp[@]} new sparse warnings (logs: ${out#"$TOP"/}/step-*.log)"
	fi
fi
fi

# --- kernel-doc and htmldocs read lint-tree at HEAD ---------------------------
if want kernel-doc || want htmldocs; then
lint_tree
git -C "$wt" checkout -q --detach -f "$head"
fi
if want kernel-doc; then
kd=()
for f in "${touched[@]}"; do
	case $f in *.c | *.h) [ -f "$wt/$f" ] && kd+=("$f") ;; esac
done
if [ ${#kd[@]} -eq 0 ]; then
	result PASS kernel-doc "no .c/.h files touched"
elif kout=$(cd "$wt" && ./scripts/kernel-doc -none "${kd[@]}" 2>&1) && [ -z "$kout" ]; then
	result PASS kernel-doc "${#kd[@]} files clean: ${kd[*]}"
else
	printf '    %s\n' "$kout" >&2
	result FAIL kernel-doc "$(grep -c . <<<"$kout") lines of output on ${kd[*]}"
fi
fi

# --- htmldocs ---------------------------------------------------------------
if want htmldocs; then
mapfile -t docs < <(printf '%s\n' "${touched[@]}" | grep '^Documentation/' || true)
if [ ${#docs[@]} -eq 0 ]; then
	result PASS htmldocs "no Documentation changes"
else
	# Build only the top-level Documentation directories the series touches.
	dirs=$(printf '%s\n' "${docs[@]}" | awk -F/ 'NF > 2 { print $2 }' | sort -u | tr '\n' ' ')
	dirs=${dirs% }
	if printf '%s\n' "${docs[@]}" | awk -F/ 'NF == 2 { found = 1 } END { exit !found }'; then
		dirs= # a file right under Documentation/: build everything
	fi
	dlog=$out/htmldocs.log
	msg "htmldocs SPHINXDIRS='${dirs:-(all)}'"
	ds=$(date +%s)
	# Sphinx only rereads changed files; make sure the touched ones are,
	# so that their warnings show on every run.
	(cd "$wt" && touch "${docs[@]}")
	if make -C "$wt" O="$out/docs" ${dirs:+SPHINXDIRS="$dirs"} htmldocs >"$dlog" 2>&1; then
		dt=$(($(date +%s) - ds))
		pat=$(printf '%s\n' "${docs[@]}" "${kd[@]}" | sed 's/[.[\*^$]/\\&/g' | paste -sd'|')
		hits=$(grep -E "$pat" "$dlog" | grep -iE 'warning|error' || true)
		if [ -z "$hits" ]; then
			result PASS htmldocs "SPHINXDIRS='${dirs:-(all)}' in $dt s, no warnings about the touched files"
		else
			printf '    %s\n' "$hits" >&2
			result FAIL htmldocs "$(grep -c . <<<"$hits") warnings about touched files (log: ${dlog#"$TOP"/})"
		fi
	else
		tail -20 "$dlog" | sed 's/^/    /' >&2
		result FAIL htmldocs "make htmldocs failed (log: ${dlog#"$TOP"/})"
	fi
fi
fi

printf '%s\n' "${results[@]}"
msg "lint took $(($(date +%s) - t0)) s"
[ "$failed" -eq 0 ] || die "lint found problems; see the FAIL lines above"
