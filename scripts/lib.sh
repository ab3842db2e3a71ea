# SPDX-License-Identifier: GPL-2.0
# Common settings for the harness scripts; sourced, never run.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are for the scripts that source this

# The pinned base: Debian's 6.12.117 source, headers and image.
: "${KVER_PIN:=6.12.117-1~deb12u1}"
: "${KABI_PIN:=6.12.117+deb12}"
: "${KFLAVOUR:=amd64}"

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${BUILD:=$TOP/build}"
BUILD=$(realpath -m "$BUILD")
: "${CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/kvm-hv-flush}"
# What must outlive 'make distclean': the records of sent versions.
: "${STATE:=${XDG_STATE_HOME:-$HOME/.local/state}/kvm-hv-flush}"
export CCACHE_DIR="${CCACHE_DIR:-$CACHE/ccache}"
# ccache in depend mode: no preprocessor run before a miss, so a cold
# build costs what gcc alone does.  Depend mode does not see an .incbin
# (it once handed back an older piggy.o, so a bzImage of an older
# kernel); KCC, the CC of the kernel builds here, compiles such sources
# without ccache.  The namespace keeps out entries written before that.
export CCACHE_DEPEND=1
export CCACHE_NAMESPACE=kvm-hv-flush-3
# KCC is scripts/cc-cache.sh copied into the cache, so that every copy of
# the project gives the build directories in the cache the same CC: with
# another, kbuild would compile every object again.  kcc_install puts it
# there (by rename, so a build running beside it never sees half a file).
KCC=$CACHE/bin/cc-cache
kcc_install() {
	cmp -s "$TOP/scripts/cc-cache.sh" "$KCC" && return
	mkdir -p "$CACHE/bin"
	cp "$TOP/scripts/cc-cache.sh" "$KCC.$$"
	chmod 755 "$KCC.$$"
	mv -f "$KCC.$$" "$KCC"
}
# No 'git gc --auto' in the background: it would outlive the command that
# started it, holding the build directory's lock (an inherited fd).
if [ -z "${KVM_HV_NO_AUTO_GC:-}" ]; then
	export KVM_HV_NO_AUTO_GC=1 GIT_CONFIG_COUNT=$((${GIT_CONFIG_COUNT:-0} + 2))
	export "GIT_CONFIG_KEY_$((GIT_CONFIG_COUNT - 2))=gc.auto" "GIT_CONFIG_VALUE_$((GIT_CONFIG_COUNT - 2))=0"
	export "GIT_CONFIG_KEY_$((GIT_CONFIG_COUNT - 1))=maintenance.auto" "GIT_CONFIG_VALUE_$((GIT_CONFIG_COUNT - 1))=false"
fi

# The series: SERIES=stable (the 6.12.y backport, default) or mainline.
: "${SERIES:=stable}"
case $SERIES in
stable) SERIES_DIR=6.12.y ;;
mainline) SERIES_DIR=mainline ;;
*) printf 'ERROR: SERIES must be stable or mainline, not %s\n' "'$SERIES'" >&2; exit 1 ;;
esac
# The host's CPU vendor the guest emulates: HOST=amd (default, QEMU TCG
# with SVM) or HOST=intel (Bochs with VMX, EPT and VPID).
: "${HOST:=amd}"
case $HOST in
amd | intel) ;;
*) printf 'ERROR: HOST must be amd (QEMU, SVM) or intel (Bochs, VMX), not %s\n' "'$HOST'" >&2; exit 1 ;;
esac
export HOST
if [ "$SERIES" = stable ]; then
	: "${TREE:=$BUILD/tree}"
else
	: "${TREE:=$BUILD/tree-$SERIES}"
fi
TREE=$(realpath -m "$TREE")
: "${PATCHES:=$TOP/patches/$SERIES_DIR}"
PATCHES=$(realpath -m "$PATCHES")

# The branch that carries the series in $TREE, and the tag of its base.
SERIES_BRANCH=hv-flush-ranges
BASE_TAG=series-base

# The project's own validator (validator/): kprobe oracle, verdict engine,
# fuzzer.  Never part of a series; selftests.sh builds it with the tree's
# selftest library.
VALIDATOR=hyperv_tlb_flush_ranges

# The neutral identity the stored series carries; send.sh puts the
# sender's own in its place only when asked (SIGNOFF=1).
PH_NAME="KVM Hyper-V Series"
PH_EMAIL="series@example.invalid"
FIXED_DATE="2026-01-01T00:00:00Z"

msg()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# --- cleanup and interrupts --------------------------------------------------
# Cleanup commands run once at exit, whatever ends the script: success,
# an error, Ctrl-C (SIGINT) or SIGTERM.  A trapped signal also interrupts
# a 'wait', so a script waiting for QEMU reacts at once.
CLEANUPS=()
on_exit() { CLEANUPS+=("$1"); }
run_cleanups() {
	local i
	for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${CLEANUPS[i]}" || true
	done
	CLEANUPS=()
}
trap run_cleanups EXIT
trap 'msg "interrupted"; exit 130' INT
trap 'msg "terminated"; exit 143' TERM
trap 'exit 129' HUP

# --- one harness command at a time per build directory -----------------------
# Every script takes the lock of its build directory; scripts it runs
# inherit it.  A second command waits for the first (LOCK_WAIT seconds,
# default an hour; LOCK_WAIT=0 refuses at once).
# shellcheck disable=SC2120 # no argument: the build directory
harness_lock() {
	local dir=${1:-$BUILD} fd
	case ":${KVM_HV_LOCKED:-}:" in *":$dir:"*) return 0 ;; esac
	mkdir -p "$dir"
	# Marks a build directory as the harness's: 'make clean' deletes only such.
	[ "$dir" != "$BUILD" ] || [ -e "$dir/.kvm-hv-flush-build" ] ||
		echo "a build directory of $TOP" >"$dir/.kvm-hv-flush-build"
	exec {fd}>>"$dir/.lock"
	if ! flock -n "$fd"; then
		local who
		who=$(cat "$dir/.lock.who" 2>/dev/null || echo "another harness command")
		[ "${LOCK_WAIT:-3600}" -gt 0 ] ||
			die "$dir is in use by $who; wait for it to finish or use another BUILD="
		msg "waiting for $who to finish with $dir (LOCK_WAIT=${LOCK_WAIT:-3600} s)"
		flock -w "${LOCK_WAIT:-3600}" "$fd" ||
			die "$dir is still in use by $who after ${LOCK_WAIT:-3600} s; try again later or use another BUILD="
	fi
	printf '%s (pid %s)\n' "$(basename "$0")" "$$" >"$dir/.lock.who"
	export KVM_HV_LOCKED="${KVM_HV_LOCKED:+$KVM_HV_LOCKED:}$dir"
}

# The debug kernel's configuration, as kunit.py arguments (run from the
# kernel tree): the series' arch/x86/kvm/.kunitconfig, configs/debug.config,
# and the suite built in with KVM (a second kunitconfig may not change a
# value of the first, hence --kconfig_add).  debug.sh builds it, and
# kunit.sh and mutants.sh run the suite in the same build.
DEBUG_FRAGMENT=$TOP/configs/debug.config
DEBUG_KCONFIG_ADD=CONFIG_KVM_HYPERV_KUNIT_TEST=y
DEBUG_KUNIT_ARGS=(--kunitconfig=arch/x86/kvm --kunitconfig="$DEBUG_FRAGMENT"
	--kconfig_add="$DEBUG_KCONFIG_ADD")

# --- packages: one list of what each stage needs ------------------------------
# The Debian packages each stage needs.  'make deps' installs and probes
# them all; each script asks for its own with need_stage.
declare -A STAGE_PKGS=(
	[base]="git xz-utils ca-certificates"
	[tree]="git python3"
	[modules]="gcc-12 gcc make ccache rsync bc flex bison libelf-dev libssl-dev dwarves kmod"
	[install]="kmod binutils"
	[qemu]="qemu-system-x86 busybox-static xz-utils cpio coreutils procps"
	[bochs]="bochs bochsbios vgabios bochs-term syslinux syslinux-common isolinux xorriso busybox-static xz-utils cpio coreutils procps"
	[selftests]="gcc make libc6-dev rsync flex bison bc"
	[kunit]="gcc make ccache bc flex bison libelf-dev libssl-dev python3 qemu-system-x86 rsync"
	[lint]="git perl gcc-12 make ccache rsync sparse bc flex bison libelf-dev libssl-dev util-linux python3 python3-ply python3-git python3-yaml python3-sphinx python3-sphinx-rtd-theme"
	[send]="git git-email libmailtools-perl python3"
	[test-send]="git git-email libmailtools-perl python3-aiosmtpd"
	[harness]="shellcheck util-linux"
)

# The probe that shows a stage's programs really work, not only exist.
probe_stage() {
	case $1 in
	modules | kunit) ccache --version >/dev/null && gcc --version >/dev/null && flex --version >/dev/null ;;
	qemu)
		qemu-system-x86_64 -version >/dev/null &&
			# The guest has no libc: busybox must be the static one.
			! ldd /bin/busybox >/dev/null 2>&1 && /bin/busybox timeout --help >/dev/null 2>&1
		;;
	lint)
		sparse --version >/dev/null 2>&1 || return 1
		python3 -c 'import ply, git, yaml, sphinx' 2>/dev/null ||
			/usr/bin/python3 -c 'import ply, git, yaml, sphinx'
		;;
	send | test-send)
		# git send-email loads Mail::Address when it parses an address;
		# --dry-run with a dummy patch proves it runs end to end.
		local d rc=0
		d=$(mktemp -d)
		printf 'From: A <a@example.invalid>\nSubject: [PATCH] probe\n\nprobe\n---\n' >"$d/0001-probe.patch"
		(cd "$d" && GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_COMMITTER_NAME=probe GIT_AUTHOR_NAME=probe \
			GIT_COMMITTER_EMAIL=probe@example.invalid GIT_AUTHOR_EMAIL=probe@example.invalid git send-email --dry-run \
			--confirm=never --to=probe@example.invalid --from=probe@example.invalid \
			--smtp-server=/bin/true 0001-probe.patch) >"$d/log" 2>&1 || rc=$?
		[ "$rc" -eq 0 ] || sed 's/^/    /' "$d/log" >&2
		rm -rf "$d"
		[ "$rc" -eq 0 ] || return 1
		[ "$1" = send ] || /usr/bin/python3 -c 'import aiosmtpd'
		;;
	bochs)
		# Debian's Bochs has no 'nogui' display: the rfb one must be there.
		[ -x /usr/bin/bochs-bin ] && [ -f /usr/share/bochs/BIOS-bochs-latest ] &&
			[ -f /usr/share/vgabios/vgabios.bin ] && [ -f /usr/lib/ISOLINUX/isolinux.bin ] &&
			[ -f /usr/lib/syslinux/modules/bios/ldlinux.c32 ] && xorriso -version >/dev/null 2>&1 &&
			! ldd /bin/busybox >/dev/null 2>&1
		;;
	harness) shellcheck --version >/dev/null && flock --version >/dev/null ;;
	*) true ;;
	esac
}

# need_stage STAGE...: install the stages' packages and probe them.
need_stage() {
	local s pkgs=()
	for s; do
		[ -n "${STAGE_PKGS[$s]+x}" ] || die "internal: no package list for stage '$s'"
		read -r -a p <<<"${STAGE_PKGS[$s]}"
		pkgs+=("${p[@]}")
	done
	need_pkgs "${pkgs[@]}"
	for s; do
		probe_stage "$s" ||
			die "the programs of stage '$s' are installed but do not work (see above); reinstall them: apt-get install --reinstall ${STAGE_PKGS[$s]}"
	done
}

# need_cmd CMD PACKAGE: make sure CMD exists, installing PACKAGE as root.
need_cmd() {
	local cmd=$1 pkg=$2
	command -v "$cmd" >/dev/null 2>&1 && return 0
	need_pkgs "$pkg"
	command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is still missing after installing $pkg"
}

# need_pkgs PKG...: install the Debian packages that are not installed yet.
need_pkgs() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing packages: ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
	fi
	msg "installing ${missing[*]}"
	# dpkg allows one installer at a time; so do we.
	mkdir -p "$CACHE"
	exec {aptfd}>>"$CACHE/.apt.lock"
	flock "$aptfd"
	if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +1440)" ]; then
		apt-get update -qq && touch "$CACHE/.apt-updated"
	fi
	local log
	log=$(mktemp)
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		rm -f "$log"
		exec {aptfd}>&-
		die "apt-get install -y --no-install-recommends ${missing[*]} failed (see above)"
	fi
	rm -f "$log"
	exec {aptfd}>&-
}

# --- the base ------------------------------------------------------------------
# Set by base_env from the cache's base.env (written by base.sh).
BASE_VER='' KREL='' BASE_REPO='' HDRS='' VMLINUZ='' STOCK_MODDIR=''

# The base chosen by base.sh (version, paths); empty before it ran.
base_env() {
	local env=$CACHE/base.env
	[ "$SERIES" = stable ] || env=$CACHE/$SERIES.env
	[ -f "$env" ] || die "no base in $CACHE; run 'make base${SERIES:+ SERIES=$SERIES}' first"
	# shellcheck source=/dev/null
	. "$env"
}

# --- the tree and where it came from ---------------------------------------------
# tree.sh records in $TREE/.git/kvm-hv-flush/: 'owner' (the harness made
# this tree and may replace it), 'origin' (the base: Debian's source or a
# KSRC), 'desc', 'series', 'patches-id' (a hash of the patches it was
# built from) and 'export/' (what it exported to as built).
tree_meta_dir() {
	local gd
	gd=$(git -C "${1:-$TREE}" rev-parse --path-format=absolute --git-dir 2>/dev/null) || return 1
	printf '%s/kvm-hv-flush\n' "$gd"
}
tree_meta() { # tree_meta KEY [TREE]
	local d
	d=$(tree_meta_dir "${2:-$TREE}") || return 0
	cat "$d/$1" 2>/dev/null || true
}
is_git_tree() { git -C "$1" rev-parse --is-inside-work-tree >/dev/null 2>&1; }

# tree_require: $TREE is a kernel git tree with the base tag.
tree_require() {
	is_git_tree "$TREE" || die "no git tree at $TREE; run 'make tree' first (or set TREE=)"
	git -C "$TREE" rev-parse -q --verify "refs/tags/$BASE_TAG" >/dev/null ||
		die "$TREE has no '$BASE_TAG' tag; 'make tree' makes a tree with it (TREE= trees need it too: git -C $TREE tag $BASE_TAG <base commit>)"
}

# export_to DIR [TREE]: the series of TREE as format-patch files in DIR.
export_to() {
	local out=$1 tree=${2:-$TREE}
	mkdir -p "$out"
	GIT_COMMITTER_NAME=$PH_NAME GIT_COMMITTER_EMAIL=$PH_EMAIL \
	GIT_COMMITTER_DATE=$FIXED_DATE \
		git -C "$tree" -c core.abbrev=12 -c diff.noprefix=false format-patch -q \
			--cover-letter --cover-from-description=subject \
			--zero-commit --no-signature --base="$BASE_TAG" \
			-o "$out" "$BASE_TAG..HEAD"
}

# patches_id DIR: one hash of the series files in DIR.
patches_id() {
	(cd "$1" 2>/dev/null && find . -maxdepth 1 -name '*.patch' | sort | xargs -r cat) | sha1sum | cut -c1-12
}

# tree_diff: how $TREE differs from the patches it was built from, as
# lines on stdout: "commits" when its commits are not those patches,
# "uncommitted FILE..." when files are changed but not committed.
tree_diff() {
	local d tmp
	d=$(tree_meta_dir) || return 0
	tmp=$(mktemp -d)
	if ! export_to "$tmp" 2>/dev/null || [ ! -d "$d/export" ] ||
		! diff -qr "$tmp" "$d/export" >/dev/null 2>&1; then
		echo commits
	fi
	rm -rf "$tmp"
	local files
	files=$(git -C "$TREE" status --porcelain --untracked-files=no | awk '{ print $NF }' | head -n 5 | tr '\n' ' ')
	[ -z "$files" ] || echo "uncommitted ${files% }"
}

# tree_report: say what is being tested, and how it differs from patches/.
tree_report() {
	local desc diffs parts=()
	desc=$(tree_meta desc)
	diffs=$(tree_diff)
	if [ -z "$(tree_meta owner)" ]; then
		msg "testing $TREE (your tree, used as it is)"
		return 0
	fi
	grep -q '^commits$' <<<"$diffs" && parts+=("commits not in ${PATCHES#"$TOP"/}")
	grep -q '^uncommitted' <<<"$diffs" && parts+=("uncommitted changes in $(sed -n 's/^uncommitted //p' <<<"$diffs")")
	if [ "$(patches_id "$PATCHES")" != "$(tree_meta patches-id)" ]; then
		parts+=("${PATCHES#"$TOP"/} changed since the tree was built; 'make tree' rebuilds it")
	fi
	if [ ${#parts[@]} -eq 0 ]; then
		msg "testing ${TREE#"$TOP"/} = ${PATCHES#"$TOP"/} on ${desc:-its base}"
	else
		msg "testing ${TREE#"$TOP"/} as it is, on ${desc:-its base}, with $(printf '%s; ' "${parts[@]}" | sed 's/; $//')"
	fi
}

# --- scratch clones ----------------------------------------------------------------
# scratch_clone DIR PATH...: DIR becomes a sparse clone of $TREE as it is
# (its HEAD, then its uncommitted changes under PATH...), sharing the tree's
# objects.  Reused from run to run: a checkout rewrites only the files that
# changed, so a build from it redoes little.  $TREE itself is only read.
scratch_clone() {
	local dir=$1 diff
	shift
	# --shared: the tree's objects are there already; its tags may move.
	# A clone whose objects went with a rebuilt tree is made again.
	if is_git_tree "$dir" && ! git -C "$dir" fetch -q -f --tags "$TREE" 2>/dev/null; then
		msg "${dir#"$TOP"/} lost its objects with the tree it was cloned from: cloning it again"
		rm -rf "$dir"
	fi
	if ! is_git_tree "$dir"; then
		rm -rf "$dir"
		git clone -q --shared --no-checkout "$TREE" "$dir"
		git -C "$dir" sparse-checkout set "$@"
		git -C "$dir" fetch -q -f --tags "$TREE"
	fi
	git -C "$dir" checkout -q -f --detach "$(git -C "$TREE" rev-parse HEAD)"
	git -C "$dir" clean -q -fdx -- "$@"
	diff=$(mktemp)
	git -C "$TREE" diff HEAD -- "$@" >"$diff"
	if [ -s "$diff" ] && ! git -C "$dir" apply "$diff"; then
		rm -f "$diff"
		die "the uncommitted changes of ${TREE#"$TOP"/} do not apply to its HEAD in $dir"
	fi
	rm -f "$diff"
}

# --- results ------------------------------------------------------------------------
# selftests_out MODS CPU [HOST]: where selftests.sh puts a run's results by
# default: build/selftests/<MODS>-<CPU>, with an "intel-" prefix on Intel.
selftests_out() {
	local pfx=
	[ "${3:-$HOST}" = amd ] || pfx=${3:-$HOST}-
	printf '%s/selftests/%s%s-%s\n' "$BUILD" "$pfx" "$1" "$2"
}

# bzimage_check KBUILD: die unless KBUILD's bzImage holds the kernel last
# built there, that is, unless the compressed kernel in piggy.o is the
# vmlinux.bin.* its piggy.S names with .incbin.  A compiler cache that
# misses the .incbin hands back an older piggy.o and so boots an older
# kernel (ccache's depend mode did before KCC, see CCACHE_DEPEND above).
bzimage_check() {
	local kb=$1 c blob
	c=$kb/arch/x86/boot/compressed
	blob=$(sed -n 's/^\.incbin "\(.*\)"$/\1/p' "$c/piggy.S" 2>/dev/null || true)
	if [ -z "$blob" ] || [ ! -f "$kb/$blob" ] || [ ! -f "$c/piggy.o" ]; then
		die "no arch/x86/boot/compressed/piggy.{S,o} or compressed kernel in $kb: the build did not make a bzImage"
	fi
	objcopy -O binary --only-section=.rodata..compressed "$c/piggy.o" "$c/piggy.check"
	if ! cmp -s "$c/piggy.check" "$kb/$blob"; then
		rm -f "$c/piggy.check"
		die "$kb/arch/x86/boot/bzImage does not hold the kernel just built: piggy.o is older than $blob (a compiler cache that cached the .incbin?); remove $c/piggy.o and build again"
	fi
	rm -f "$c/piggy.check"
}

# --- mutants -------------------------------------------------------------------------
# mutant_files DIR [FILE...]: MUTANTS becomes the mutant patches named, or
# every DIR/*.patch; dies when there is none or a named one is missing.
mutant_files() {
	local dir=$1 m
	shift
	MUTANTS=()
	if [ $# -gt 0 ]; then
		for m in "$@"; do
			[ -f "$m" ] || die "no mutant file $m"
			MUTANTS+=("$(realpath "$m")")
		done
	else
		MUTANTS=("$dir"/*.patch)
	fi
	[ -e "${MUTANTS[0]}" ] || die "no mutants in $dir"
}
