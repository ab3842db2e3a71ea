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
: "${CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/kvm-hv-flush}"
: "${TREE:=$BUILD/tree}"
export CCACHE_DIR="${CCACHE_DIR:-$CACHE/ccache}"

# The branch that carries the series in $TREE, and the tag of its base.
SERIES_BRANCH=hv-flush-ranges
BASE_TAG=series-base

# The neutral identity the stored series carries; send.sh replaces it
# with the sender's own.
PH_NAME="KVM Hyper-V Series"
PH_EMAIL="series@example.invalid"
FIXED_DATE="2026-01-01T00:00:00Z"

msg()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

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
		die "missing packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
	fi
	msg "installing ${missing[*]}"
	if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +1440)" ]; then
		mkdir -p "$CACHE"
		apt-get update -qq && touch "$CACHE/.apt-updated"
	fi
	local log
	log=$(mktemp)
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		rm -f "$log"
		die "apt-get install -y ${missing[*]} failed (see above)"
	fi
	rm -f "$log"
}

# Set by base_env from the cache's base.env (written by base.sh).
BASE_VER='' KREL='' BASE_REPO='' HDRS='' VMLINUZ='' STOCK_MODDIR=''

# The base chosen by base.sh (version, paths); empty before it ran.
base_env() {
	[ -f "$CACHE/base.env" ] || die "no base in $CACHE; run 'make base' first"
	# shellcheck source=/dev/null
	. "$CACHE/base.env"
}
