#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build kvm.ko, kvm-amd.ko and kvm-intel.ko from $TREE out of tree, with
# Kbuild (M=) against the Debian headers, so that they load into the
# pinned Debian kernel.  arch/x86/kvm and virt/kvm are mirrored into the
# build directory; headers the series changes under include/ and
# arch/x86/include/ are put ahead of the packaged ones.
#
#   modules.sh [OUT]   OUT defaults to $BUILD/modules/patched
#   W=1, C=2 and other Kbuild variables pass through from the environment.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

out=${1:-$BUILD/modules/patched}
need_pkgs gcc-12 make ccache rsync bc flex bison libelf-dev libssl-dev dwarves kmod
base_env
[ -d "$TREE/.git" ] || die "no tree at $TREE; run 'make tree' first"
git -C "$TREE" rev-parse -q --verify "refs/tags/$BASE_TAG" >/dev/null ||
	die "$TREE has no '$BASE_TAG' tag; recreate it with 'make tree FORCE=1'"

src=$out/src
mkdir -p "$src/arch/x86" "$src/virt" "$src/overlay"
# rsync keeps the mtimes, so an unchanged file is not rebuilt.
rsync -a --delete --exclude='*.o' --exclude='*.ko' --exclude='.*.cmd' \
	--exclude='*.mod*' --exclude='modules.order' --exclude='Module.symvers' \
	--exclude='kvm-asm-offsets.[hs]' \
	"$TREE/arch/x86/kvm" "$src/arch/x86/"
rsync -a --delete --exclude='*.o' --exclude='.*.cmd' "$TREE/virt/kvm" "$src/virt/"
# shellcheck disable=SC2016 # $(src) and $(srctree) are make's
sed -i -e 's|^ccflags-y += -I $(srctree)/arch/x86/kvm$|ccflags-y += -I $(src)|' \
	-e 's|^include $(srctree)/virt/kvm/Makefile.kvm$|include $(src)/../../../virt/kvm/Makefile.kvm|' \
	"$src/arch/x86/kvm/Makefile"
# shellcheck disable=SC2016
grep -qF 'include $(src)/../../../virt/kvm/Makefile.kvm' "$src/arch/x86/kvm/Makefile" ||
	die "arch/x86/kvm/Makefile in $TREE has an unexpected layout; cannot build it out of tree"

# Headers changed by the series, in front of the packaged ones.
mapfile -t hdrs < <(git -C "$TREE" diff --name-only "$BASE_TAG" HEAD -- include arch/x86/include)
overlay_flags=
if [ ${#hdrs[@]} -gt 0 ]; then
	(cd "$TREE" && rsync -a --relative "${hdrs[@]}" "$src/overlay/")
	overlay_flags="-I$src/overlay/arch/x86/include -I$src/overlay/include"
fi

msg "building KVM modules out of tree in ${out#"$TOP"/} (${#hdrs[@]} series headers)"
start=$(date +%s)
make -s -C "$HDRS" M="$src/arch/x86/kvm" DEBIAN_KERNEL_USE_CCACHE=1 \
	NOSTDINC_FLAGS="-nostdinc $overlay_flags" -j"$(nproc)" modules
for m in kvm kvm-amd kvm-intel; do
	cp "$src/arch/x86/kvm/$m.ko" "$out/$m.ko"
done
vm=$(modinfo -F vermagic "$out/kvm.ko")
case "$vm" in
"$KREL "*) ;;
*) die "kvm.ko has vermagic '$vm', not $KREL" ;;
esac
msg "modules built in $(($(date +%s) - start)) s: $(cd "$out" && echo ./*.ko)"
