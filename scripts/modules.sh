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
#   W=1 and C=1|2 in the environment are passed on to Kbuild.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

out=$(realpath -m "${1:-$BUILD/modules/patched}")
harness_lock
need_stage modules
base_env
tree_require
[ "$SERIES" = stable ] ||
	die "SERIES=$SERIES: out-of-tree modules are built for Debian's $KREL only; the $SERIES series is tested in its own kernel build"
[ -n "${MODULES_QUIET:-}" ] || tree_report

if [ -z "${1:-}" ]; then
	# make modules: one mirror and its objects in the cache, shared by
	# every clone and scratch copy of the project (the README's flows,
	# faults), so that a new copy rebuilds only what differs from the
	# last build.  Locked while in use.
	src=$CACHE/modules/$KREL/src
	harness_lock "$CACHE/modules/$KREL"
else
	src=$out/src
fi
mkdir -p "$out" "$src/arch/x86" "$src/virt" "$src/overlay"
# By content (--checksum, no --times): a file that differs from the last
# build is written and so newer than its object, whatever its mtime in
# $TREE; an unchanged one is left alone and not rebuilt.
rsync -rlc --delete --exclude='*.o' --exclude='*.ko' --exclude='.*.cmd' \
	--exclude='*.mod*' --exclude='modules.order' --exclude='Module.symvers' \
	--exclude='kvm-asm-offsets.[hs]' \
	"$TREE/arch/x86/kvm" "$src/arch/x86/"
rsync -rlc --delete --exclude='*.o' --exclude='.*.cmd' "$TREE/virt/kvm" "$src/virt/"
# shellcheck disable=SC2016 # $(src) and $(srctree) are make's
sed -i -e 's|^ccflags-y += -I $(srctree)/arch/x86/kvm$|ccflags-y += -I $(src)|' \
	-e 's|^include $(srctree)/virt/kvm/Makefile.kvm$|include $(src)/../../../virt/kvm/Makefile.kvm|' \
	"$src/arch/x86/kvm/Makefile"
# shellcheck disable=SC2016
grep -qF 'include $(src)/../../../virt/kvm/Makefile.kvm' "$src/arch/x86/kvm/Makefile" ||
	die "arch/x86/kvm/Makefile in $TREE has an unexpected layout; cannot build it out of tree"

# Headers changed by the series (committed or not) go in front of the
# packaged ones.  The
# overlay's include/ is always on the path: the trace headers name their
# directory relative to it (TRACE_INCLUDE_PATH ../../arch/x86/kvm), which
# then resolves to the mirrored arch/x86/kvm.
mapfile -t hdrs < <(git -C "$TREE" diff --name-only "$BASE_TAG" -- include arch/x86/include)
ovl=$(mktemp -d "$src/.overlay.XXXXXX")
on_exit "rm -rf '$ovl'"
mkdir -p "$ovl/include"
if [ ${#hdrs[@]} -gt 0 ]; then
	(cd "$TREE" && rsync -a --relative "${hdrs[@]}" "$ovl/")
fi
# By content again, for the same reason.
rsync -rlc --delete "$ovl/" "$src/overlay/"
overlay_flags="-I$src/overlay/include"
[ -d "$src/overlay/arch/x86/include" ] &&
	overlay_flags="-I$src/overlay/arch/x86/include $overlay_flags"

msg "building KVM modules out of tree in ${out#"$TOP"/} (${#hdrs[@]} series headers)"
start=$(date +%s)
# W= and C= count only on make's command line, so pass them on.
make -s -C "$HDRS" M="$src/arch/x86/kvm" DEBIAN_KERNEL_USE_CCACHE=1 \
	NOSTDINC_FLAGS="-nostdinc $overlay_flags" ${W:+W="$W"} ${C:+C="$C"} \
	-j"$(nproc)" modules
for m in kvm kvm-amd kvm-intel; do
	cp "$src/arch/x86/kvm/$m.ko" "$out/$m.ko"
done
vm=$(modinfo -F vermagic "$out/kvm.ko")
case "$vm" in
"$KREL "*) ;;
*) die "kvm.ko has vermagic '$vm', not $KREL" ;;
esac
msg "modules built in $(($(date +%s) - start)) s: $(cd "$out" && echo ./*.ko)"
