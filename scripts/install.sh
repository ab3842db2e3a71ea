#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install the patched KVM modules built by 'make modules' into a kernel's
# module tree, or remove them again.
#
#   install.sh install     kvm.ko, kvm-amd.ko, kvm-intel.ko into
#                          /lib/modules/<KREL>/updates/kvm-hv-flush/, with a
#                          manifest of their checksums; then depmod
#   install.sh uninstall   remove exactly what the manifest lists (refusing
#                          if any of it changed since); then depmod
#
#   KREL=<release>     the target kernel (default: the running one, uname -r)
#   DESTDIR=<root>     install into <root>/lib/modules/<KREL> instead of /
#                      (like INSTALL_MOD_PATH; depmod -b <root>); no root needed
#   PATCHED_MODS_DIR=  where the modules are taken from (build/modules/patched)
#
# The modules are built for one release only (Debian's 6.12.117, see
# base.sh); install refuses any other target, a target whose module tree
# is missing, and one whose vermagic differs.  Nothing is half-written:
# the files are staged next to their place and moved in with one rename,
# and a failing depmod puts everything back.
set -euo pipefail
# lib.sh sets KREL (the base's release) for the other scripts: keep the
# user's choice of target first.
target=${KREL:-}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# depmod and modinfo live in /usr/sbin, which a user's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

action=${1:-}
case $action in
install | uninstall) ;;
*) die "usage: $0 install|uninstall  (KREL=<release> DESTDIR=<root>)" ;;
esac

MODS=(kvm kvm-amd kvm-intel)
SUBDIR=updates/kvm-hv-flush
src=$(realpath -m "${PATCHED_MODS_DIR:-$BUILD/modules/patched}")

target_from="the running kernel (uname -r)"
krel_arg=
if [ -n "$target" ]; then
	target_from="KREL="
	krel_arg=" KREL=$target"
else
	target=$(uname -r)
fi
[[ $target =~ ^[A-Za-z0-9._+~-]+$ ]] || die "KREL='$target' is not a kernel release name"

root=
if [ -n "${DESTDIR:-}" ]; then
	[ -d "$DESTDIR" ] || die "DESTDIR=$DESTDIR is not a directory; create the install root first"
	root=$(realpath "$DESTDIR")
	[ "$root" != / ] || root=
fi
moddir=$root/lib/modules/$target
depmod_args=()
[ -z "$root" ] || depmod_args=(-b "$root")
[ -z "${DESTDIR:-}" ] || msg "install root: $root (DESTDIR)"

harness_lock
need_cmd depmod kmod
need_cmd modinfo kmod

indent() { sed "s/^/    /"; }

# vermagic FILE: the module's vermagic ("<release> SMP preempt ...").
vermagic() { modinfo -F vermagic "$1" 2>/dev/null | sed 's/ *$//'; }

# need_writable: as non-root, installing into / is refused up front.
need_writable() {
	if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
		die "writing to $moddir needs root: run 'sudo make $action$krel_arg' (or DESTDIR=<dir> to $action into a staging root)"
	fi
	if [ ! -w "$moddir" ] || [ ! -w "${moddir%/*}" ]; then
		die "$moddir or ${moddir%/*} is not writable by $(id -un); $action as their owner or pick another DESTDIR="
	fi
}

# run_depmod: rebuild the module index of the target.
run_depmod() {
	msg "depmod${depmod_args[*]:+ ${depmod_args[*]}} $target"
	depmod "${depmod_args[@]}" "$target"
}

# which_file MOD: the file modprobe loads for MOD in the target.
which_file() {
	modinfo "${depmod_args[@]}" -k "$target" -n "$1" 2>/dev/null || true
}

# manifest_check DIR: DIR holds exactly the files its manifest lists,
# unchanged.  Says what differs on stdout; nothing when all is well.
manifest_check() {
	local dir=$1 f
	if [ ! -f "$dir/manifest" ]; then
		echo "${dir#"$moddir"/} has no manifest"
		return
	fi
	(cd "$moddir" && grep -v '^#' "$dir/manifest" | sha256sum --quiet -c 2>/dev/null) |
		sed 's/: FAILED open.*/: missing/; s/: FAILED$/: changed since it was installed/' || true
	for f in "$dir"/* "$dir"/.[!.]*; do
		[ -e "$f" ] || continue
		[ "$(basename "$f")" = manifest ] && continue
		awk -v p="${f#"$moddir"/}" '$2 == p { found = 1 } END { exit !found }' "$dir/manifest" ||
			echo "${f#"$moddir"/}: not installed by make install"
	done
}

reload_hint() {
	local what=$1 vendors=() v
	grep -qw vmx /proc/cpuinfo && vendors+=(kvm_intel)
	grep -qw svm /proc/cpuinfo && vendors+=(kvm_amd)
	[ -z "$root" ] && [ ${#vendors[@]} -gt 0 ] || vendors=(kvm_amd kvm_intel)
	if [ -n "$root" ]; then
		echo "A system that runs $target from $root loads $what at its next boot; to switch without a reboot, stop every VM (kvm cannot be unloaded while a VM holds /dev/kvm), then:"
	elif [ "$target" != "$(uname -r)" ]; then
		echo "Boot $target: it loads $what at boot.  To switch a running $target without a reboot, stop every VM (kvm cannot be unloaded while a VM holds /dev/kvm), then:"
	else
		echo "To load $what now (or reboot): stop every VM first (kvm cannot be unloaded while a VM holds /dev/kvm), then:"
	fi
	for v in "${vendors[@]}"; do
		echo "    sudo modprobe -r $v kvm && sudo modprobe $v      # ${v#kvm_} host"
	done
}

if [ "$action" = uninstall ]; then
	dest=$moddir/$SUBDIR
	[ -d "$moddir" ] || die "no $moddir: kernel $target ($target_from) has no module tree${root:+ in $root}; set KREL= to the release you installed for"
	[ -e "$dest" ] || die "nothing to uninstall: make install put nothing into $moddir/updates (no ${dest#"$moddir"/}); set KREL= to the release you installed for"
	need_writable
	problems=$(manifest_check "$dest")
	[ -z "$problems" ] ||
		die "refusing to remove $dest, which holds what make install did not put there:
$(indent <<<"$problems")
Look at these files; if they are yours, move them away, then remove the rest with: rm -r $dest && depmod ${depmod_args[*]} $target"
	created=$(sed -n 's/^# created://p' "$dest/manifest")
	n=$(grep -vc '^#' "$dest/manifest" || true)
	# Beside the release directory, where depmod does not look.
	old=$(mktemp -d "${moddir%/*}/.kvm-hv-flush.$target.old.XXXXXX")
	# Until depmod has succeeded, an interrupt puts the files back.
	on_exit "[ ! -d '$old/kvm-hv-flush' ] || mv -T '$old/kvm-hv-flush' '$dest'; rm -rf '$old'"
	mv -T "$dest" "$old/kvm-hv-flush"
	run_depmod || die "depmod failed (see above); $dest is left as it was"
	rm -rf "$old"
	# The directories install made, if nothing else is in them now.
	for d in $created; do
		rmdir "$moddir/$d" 2>/dev/null || true
	done
	msg "removed the $n modules and the manifest in $dest; modprobe now finds: $(for m in "${MODS[@]}"; do printf '%s ' "$(which_file "$m" | sed "s|^$root||")"; done)"
	reload_hint "Debian's KVM modules again"
	exit 0
fi

# --- install -----------------------------------------------------------------
for m in "${MODS[@]}"; do
	[ -f "$src/$m.ko" ] || die "no $src/$m.ko; run 'make modules' first (PATCHED_MODS_DIR= to take them from elsewhere)"
done
vm=$(vermagic "$src/kvm.ko")
built_for=${vm%% *}
[ -n "$built_for" ] || die "$src/kvm.ko has no vermagic; is it a kernel module? rebuild it with 'make modules'"
for m in "${MODS[@]}"; do
	[ "$(vermagic "$src/$m.ko")" = "$vm" ] ||
		die "$src/$m.ko has vermagic '$(vermagic "$src/$m.ko")', kvm.ko '$vm'; rebuild them together with 'make modules'"
done

if [ "$target" != "$built_for" ]; then
	die "the modules in ${src#"$TOP"/} were built for $built_for, but the target kernel is $target ($target_from); they would not load into it.
    Install them for $built_for with 'make install KREL=$built_for' (then boot it), or run 'make install' on a host running $built_for.
    The harness builds only for the Debian release it is pinned to (scripts/lib.sh: KABI_PIN)."
fi
[ -d "$moddir" ] ||
	die "no $moddir: kernel $target is not installed${root:+ in $root} (on Debian: apt-get install linux-image-$target)"

# The target's own modules say which vermagic it accepts.
if grep -qsE '(^|/)kvm\.ko' "$moddir/modules.builtin"; then
	die "kernel $target has KVM built in (modules.builtin lists kvm.ko); modules cannot replace it"
fi
ref=$(find "$moddir/kernel/arch/x86/kvm" -name 'kvm.ko*' 2>/dev/null | head -n1)
[ -n "$ref" ] || ref=$(find "$moddir/kernel" -name '*.ko*' 2>/dev/null | head -n1)
[ -n "$ref" ] || die "$moddir has no modules of its own to check the vermagic against; is linux-image-$target installed there?"
tvm=$(vermagic "$ref")
[ "$tvm" = "$vm" ] ||
	die "vermagic mismatch: the modules have '$vm', kernel $target's ${ref#"$moddir"/} has '$tvm'; the kernel would refuse them. Rebuild them against $target's headers."

need_writable
dest=$moddir/$SUBDIR
if [ -e "$dest" ]; then
	problems=$(manifest_check "$dest")
	[ -z "$problems" ] ||
		die "refusing to replace $dest, which holds what make install did not put there:
$(indent <<<"$problems")
Look at these files and move them away, or run 'make uninstall$krel_arg' first."
	msg "replacing the modules a previous make install put into $dest"
fi
# Another kvm module under updates/ would compete with ours.
others=$(find "$moddir/updates" -regextype egrep -path "$dest" -prune -o \
	-regex '.*/kvm(-amd|-intel|_amd|_intel)?\.ko(\.[a-z]+)?' -print 2>/dev/null || true)
[ -z "$others" ] || die "other KVM modules are already in $moddir/updates: $(tr '\n' ' ' <<<"$others")
    Remove them first (they are not this project's), then 'make install' again."

# The directories install makes, which uninstall removes again; a
# replaced install passes on its list.
created=
if [ -f "$dest/manifest" ]; then
	created=$(sed -n 's/^# created://p' "$dest/manifest")
elif [ ! -d "$moddir/updates" ]; then
	created=" updates"
fi
[ -d "$moddir/updates" ] || mkdir -m 0755 "$moddir/updates"
# Beside the release directory, where depmod does not look, and on its
# file system, so that the moves are renames.
stage=$(mktemp -d "${moddir%/*}/.kvm-hv-flush.$target.new.XXXXXX")
# state: staged, then moving (from the first rename until depmod and the
# check succeeded), then installed.  An error or an interrupt while moving
# puts back what was there.
state=staged
undo() {
	[ "$state" = moving ] || return 0
	state=undone
	rm -rf "$dest"
	[ ! -e "$stage/old" ] || mv -T "$stage/old" "$dest"
	for d in $created; do rmdir "$moddir/$d" 2>/dev/null || true; done
	depmod "${depmod_args[@]}" "$target" >/dev/null 2>&1 || true
}
on_exit "undo; rm -rf '$stage'"
mkdir -m 0755 "$stage/kvm-hv-flush"
for m in "${MODS[@]}"; do
	install -m 0644 "$src/$m.ko" "$stage/kvm-hv-flush/$m.ko"
done
{
	echo "# kvm-hv-flush: the patched KVM modules, put here by 'make install'; 'make uninstall' removes them"
	echo "# release: $target"
	echo "# vermagic: $vm"
	echo "# from: $src"
	echo "# tree: $(tree_meta desc 2>/dev/null || true) $(git -C "$TREE" rev-parse HEAD 2>/dev/null || true)"
	echo "# installed: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# created:$created"
	for m in "${MODS[@]}"; do
		sha256sum "$stage/kvm-hv-flush/$m.ko" | sed "s|  .*|  $SUBDIR/$m.ko|"
	done
} >"$stage/kvm-hv-flush/manifest"
chmod 0644 "$stage/kvm-hv-flush/manifest"

# One rename puts the new files in place; the old ones wait beside them
# until depmod has succeeded.
state=moving
if [ -e "$dest" ]; then
	mv -T "$dest" "$stage/old"
fi
mv -T "$stage/kvm-hv-flush" "$dest"
run_depmod || die "depmod failed (see above); nothing was installed"
for m in "${MODS[@]}"; do
	f=$(which_file "$m")
	[ "$f" = "$dest/$m.ko" ] ||
		die "after depmod, modprobe would load '${f:-nothing}' for $m, not $dest/$m.ko (a depmod.d 'override' or 'search' line?); nothing was installed"
done
state=installed
rm -rf "$stage"

msg "installed ${MODS[*]/%/.ko} for $target into $dest, with a manifest of their checksums"
msg "modprobe now finds: $(for m in "${MODS[@]}"; do printf '%s ' "$(which_file "$m" | sed "s|^$root||")"; done)"
if [ -z "$root" ] && [ "$(cat /sys/module/module/parameters/sig_enforce 2>/dev/null)" = Y ]; then
	warn "this kernel enforces module signatures (Secure Boot?): it will refuse these unsigned modules unless you sign them with a key it trusts (see Debian's SecureBoot wiki, 'MOK')"
fi
reload_hint "the patched modules"
echo "Check: 'modinfo -n kvm' names ${dest#"$root"}/kvm.ko, and /sys/module/kvm/taint shows OE (out of tree, unsigned) once the patched kvm is loaded; Debian's shows nothing."
echo "Undo: sudo make uninstall$krel_arg${DESTDIR:+ DESTDIR=$DESTDIR}"
