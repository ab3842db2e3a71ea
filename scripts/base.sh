#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch the pinned Debian kernel (source, headers, image) into the cache
# and turn the source into a git repository with one base commit.
# Falls back to the newest 6.12 Debian has when the pin is gone.
#
#   base.sh           fetch and unpack (KVER_PIN=... pins another version)
#   base.sh --which   only print the version that would be used
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

need_stage base

# commit_base SRC REPO MESSAGE: commit the unpacked source SRC as the one
# base commit (fixed identity and date, so its id is the same on every
# machine), tag it and move it to REPO.
commit_base() {
	local src=$1 repo=$2 message=$3
	(
		cd "$src"
		git init -q -b base .
		# Debian's top-level .gitignore ignores every top-level entry.
		git add -Af
		GIT_AUTHOR_DATE=$FIXED_DATE GIT_COMMITTER_DATE=$FIXED_DATE \
			git -c user.name="$PH_NAME" -c user.email="$PH_EMAIL" \
			commit -q -m "$message"
		git tag "$BASE_TAG"
	)
	rm -rf "$repo"
	mv "$src" "$repo"
	touch "$repo/.git/base-done"
}

# SERIES=mainline: the base is the Linux 7.1.3 source tarball (see
# ../shared/FACTS.md for where it comes from), committed as one commit.
if [ "$SERIES" = mainline ]; then
	tarball=${MAINLINE_TARBALL:-$TOP/../shared/linux-7.1.3.tar.xz}
	sum=429c4c16227ff867518659f07b389bc3aa4c08a0bb927c33891eafb12566d600
	[ "${1:-}" != --which ] || { echo 7.1.3; exit 0; }
	[ -f "$tarball" ] ||
		die "SERIES=mainline needs the Linux 7.1.3 source tarball at $tarball; set MAINLINE_TARBALL=<path to linux-7.1.3.tar.xz>"
	harness_lock "$CACHE"
	repo=$CACHE/mainline-7.1.3/base
	if [ ! -f "$repo/.git/base-done" ]; then
		msg "checking $tarball"
		echo "$sum  $tarball" | sha256sum -c --quiet - ||
			die "$tarball is not the 7.1.3 tarball FACTS.md describes (sha256 differs)"
		msg "unpacking Linux 7.1.3 and committing it as the base (about 1 minute)"
		rm -rf "$repo.tmp"
		mkdir -p "$repo.tmp"
		tar -xJf "$tarball" -C "$repo.tmp"
		commit_base "$repo.tmp/linux-7.1.3" "$repo" "Linux 7.1.3 (source tarball)"
		rm -rf "$repo.tmp"
	fi
	printf "BASE_VER='7.1.3'\nBASE_REPO='%s'\n" "$repo" >"$CACHE/mainline.env.tmp"
	mv "$CACHE/mainline.env.tmp" "$CACHE/mainline.env"
	msg "base: Linux 7.1.3 in $repo"
	exit 0
fi

src_pkg=linux-source-6.12

# Pick the version: the pin when Debian (or the cache) still has it.
madison() {
	apt-cache madison "$src_pkg" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}'
}

pick_version() {
	if [ -s "$CACHE/debs/${src_pkg}_${KVER_PIN}_all.deb" ]; then
		echo "$KVER_PIN"
		return
	fi
	local avail
	avail=$(madison)
	if ! grep -qxF "$KVER_PIN" <<<"$avail" && [ "$(id -u)" -eq 0 ]; then
		msg "apt-get update (looking for $src_pkg $KVER_PIN)"
		apt-get update -qq >/dev/null 2>&1 || warn "apt-get update failed"
		avail=$(madison)
	fi
	[ -n "$avail" ] || die "apt knows no $src_pkg; add Debian bookworm and bookworm-security to the apt sources and run 'apt-get update'"
	if grep -qxF "$KVER_PIN" <<<"$avail"; then
		echo "$KVER_PIN"
		return
	fi
	local newest
	newest=$(sort -V <<<"$avail" | tail -n1)
	warn "the pinned $src_pkg $KVER_PIN is gone from apt; falling back to the newest 6.12, $newest"
	echo "$newest"
}

ver=$(pick_version)
if [ "${1:-}" = --which ]; then
	echo "$ver"
	exit 0
fi
# The cache is shared by every clone and build directory: one writer.
harness_lock "$CACHE"
upstream=${ver%%-*}                      # 6.12.117
abi="$upstream+deb12"                    # 6.12.117+deb12
krel="$abi-$KFLAVOUR"                    # 6.12.117+deb12-amd64
debs=(
	"${src_pkg}_${ver}_all.deb"
	"linux-headers-${krel}_${ver}_amd64.deb"
	"linux-headers-${abi}-common_${ver}_all.deb"
	"linux-kbuild-${abi}_${ver}_amd64.deb"
	"linux-image-${krel}-unsigned_${ver}_amd64.deb"
)

mkdir -p "$CACHE/debs"
for d in "${debs[@]}"; do
	[ -s "$CACHE/debs/$d" ] && continue
	pkg=${d%%_*}
	msg "downloading $pkg=$ver"
	(cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) ||
		die "apt-get download $pkg=$ver failed (is bookworm-security in apt sources? try 'apt-get update')"
	[ -s "$CACHE/debs/$d" ] || die "apt-get download did not produce $d"
done

root="$CACHE/$ver/root"
if [ ! -f "$root/.done" ]; then
	msg "unpacking headers and image $krel"
	rm -rf "$root.tmp"
	mkdir -p "$root.tmp"
	for d in "${debs[@]:1}"; do
		dpkg-deb -x "$CACHE/debs/$d" "$root.tmp"
	done
	# The headers Makefile includes the common part by absolute path.
	sed -i "s|^include /usr/src/|include $root/usr/src/|" \
		"$root.tmp/usr/src/linux-headers-$krel/Makefile"
	rm -rf "$root"
	mv "$root.tmp" "$root"
	touch "$root/.done"
fi

repo="$CACHE/$ver/base"
if [ ! -f "$repo/.git/base-done" ]; then
	msg "unpacking $src_pkg $ver and committing it as the base (about 1 minute)"
	rm -rf "$repo.tmp"
	mkdir -p "$repo.tmp"
	dpkg-deb --fsys-tarfile "$CACHE/debs/${debs[0]}" |
		tar -xO "./usr/src/$src_pkg.tar.xz" | tar -xJ -C "$repo.tmp"
	commit_base "$repo.tmp/$src_pkg" "$repo" "Debian $src_pkg $ver"
	rmdir "$repo.tmp"
fi

hdrs="$root/usr/src/linux-headers-$krel"
cat >"$CACHE/base.env.tmp" <<EOT
BASE_VER='$ver'
KREL='$krel'
BASE_REPO='$repo'
HDRS='$hdrs'
VMLINUZ='$root/boot/vmlinuz-$krel'
STOCK_MODDIR='$root/lib/modules/$krel'
EOT
mv "$CACHE/base.env.tmp" "$CACHE/base.env"
msg "base: Debian $src_pkg $ver ($krel) in $CACHE"
