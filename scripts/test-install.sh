#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make test-install: 'make install' and 'make uninstall' (scripts/install.sh)
# tested, one PASS/FAIL line a check.
#
# 1. On scratch install roots: the refusals of a target release other than
#    the modules' (KREL= and the running kernel), a missing release
#    directory, a vermagic mismatch, another kvm.ko under updates/, a
#    non-root user without DESTDIR, and an uninstall of files changed or
#    added since; a failing depmod and a
#    SIGTERM during depmod, which must take the install back; each leaves
#    the root as it was.  Installs into / run in a private mount namespace
#    with a tmpfs on /lib/modules, so the host's tree is never touched:
#    root installs and uninstalls there, a non-root user into a DESTDIR.
# 2. In the QEMU guest: a root with Debian's own irqbypass, ccp, kvm,
#    kvm-amd and kvm-intel (.ko.xz, as the image ships them) and their
#    depmod index; 'install.sh install DESTDIR=<root>' adds the patched
#    modules under updates/; the guest boots with that tree, runs
#    'modprobe kvm-amd', and must have loaded the patched modules (their
#    GNU build IDs, read from /sys/module/*/notes, are those of
#    build/modules/patched) and pass the hostile selftest
#    hyperv_tlb_flush_ranges through them (Debian's modules fail it).
# 3. 'install.sh uninstall DESTDIR=<root>' leaves the root as it was before
#    the install: the same files, modes and contents, depmod index included.
#
#   PATCHED_MODS_DIR=<dir>   install these modules instead of the patched
#                            build (a fault: Debian's must FAIL step 2)
#   CPU=48|la57              the guest's CPU (default 48)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/qemu.sh
. "$(dirname "$0")/qemu.sh"

harness_lock
qemu_need_pkgs
need_stage install selftests
base_env
vendor=$(qemu_vendor)
INSTALL=$TOP/scripts/install.sh
# The patched build, whose build IDs the guest must show.
ref=$BUILD/modules/patched
mods=${PATCHED_MODS_DIR:-$ref}
for m in kvm kvm-amd kvm-intel; do
	[ -f "$ref/$m.ko" ] || die "no $ref/$m.ko; run 'make modules' first"
	[ -f "$mods/$m.ko" ] || die "no $mods/$m.ko (PATCHED_MODS_DIR)"
done
[ "$mods" = "$ref" ] || warn "installing the modules of $mods, not the patched build (PATCHED_MODS_DIR)"

fails=0
ok() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# expect ok|fail NAME PATTERN CMD...: CMD must succeed or fail, and say PATTERN.
expect() {
	local want=$1 name=$2 pat=$3 out rc=0 t0=$SECONDS
	shift 3
	out=$("$@" 2>&1) || rc=$?
	if [ "$want" = fail ] && [ "$rc" -eq 0 ]; then
		bad "$name: succeeded, expected a refusal"
	elif [ "$want" = ok ] && [ "$rc" -ne 0 ]; then
		bad "$name: failed (exit $rc)"
	elif grep -qE -- "$pat" <<<"$out"; then
		ok "$name ($((SECONDS - t0)) s): $(grep -E -- "$pat" <<<"$out" | head -n1)"
		return
	else
		bad "$name: the output did not say /$pat/"
	fi
	printf '%s\n' "$out" | tail -n 12 | sed 's/^/    /'
}
# same NAME ROOT SNAPSHOT: ROOT is as SNAPSHOT recorded it.
same() {
	if snapshot "$2" | diff -u "$3" - >"$work/diff" 2>&1; then
		ok "$1: the root is as before ($(grep -c '^[dfl] ' "$3") entries, every file's checksum the same)"
	else
		bad "$1: the root changed:"
		head -n 20 "$work/diff" | sed 's/^/    /'
	fi
}
# snapshot ROOT: every entry's type, mode and path, and every file's checksum.
snapshot() {
	(cd "$1" && find . -printf '%y %m %p\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}
# mkroot ROOT: Debian's modules that KVM needs, as the image ships them
# (compressed), with the image's modules.builtin/order and depmod's index.
mkroot() {
	local root=$1 d=$1/lib/modules/$KREL m
	mkdir -p "$d"
	for m in kernel/virt/lib/irqbypass kernel/drivers/crypto/ccp/ccp \
		kernel/arch/x86/kvm/kvm kernel/arch/x86/kvm/kvm-amd kernel/arch/x86/kvm/kvm-intel; do
		mkdir -p "$d/$(dirname "$m")"
		cp "$STOCK_MODDIR/$m.ko.xz" "$d/$m.ko.xz"
	done
	cp "$STOCK_MODDIR"/modules.builtin "$STOCK_MODDIR"/modules.builtin.modinfo "$STOCK_MODDIR"/modules.order "$d/"
	depmod -b "$root" "$KREL"
}
# in_private_lib_modules [SRC] CMD...: CMD in a mount namespace of its own
# whose /lib/modules is an empty tmpfs (holding a copy of SRC/lib/modules
# when SRC is a directory), so that nothing reaches the host's tree.  A
# host without /lib/modules gets one on an overlay of /lib in there.
in_private_lib_modules() {
	local src=
	[ ! -d "$1" ] || { src=$1; shift; }
	local ovl
	ovl=$(mktemp -d "$work/ovl.XXXXXX")
	mkdir "$ovl/u" "$ovl/w"
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m bash -c '
		set -e
		if [ ! -d /lib/modules ]; then
			l=$(realpath /lib)
			mount -t overlay overlay -o "lowerdir=$l,upperdir=$1/u,workdir=$1/w" "$l"
			mkdir /lib/modules
		fi
		mount -t tmpfs none /lib/modules
		[ -z "$2" ] || cp -a "$2/lib/modules/." /lib/modules/
		shift 2
		exec "$@"' - "$ovl" "$src" "$@"
}
build_id() { readelf -n "$1" | awk '/Build ID:/ { print $3 }'; }

work=$(mktemp -d "$BUILD/test-install.XXXXXX")
on_exit "rm -rf '$work'"
# Readable by the unprivileged user of the non-root check.
chmod 755 "$work"
run() { env -u KREL -u DESTDIR "$@"; }
re() { local s=${1//./\\.}; echo "${s//+/\\+}"; }
kre=$(re "$KREL")

# --- 1. refusals -----------------------------------------------------------------
t1=$SECONDS
msg "refusals on scratch roots in ${work#"$TOP"/}"
r=$work/other
mkdir -p "$r/lib/modules/6.1.0-99-amd64/kernel"
snapshot "$r" >"$work/other.snap"
expect fail "KREL= another release" "built for $kre, but the target kernel is 6\.1\.0-99-amd64 \(KREL=\)" \
	run KREL=6.1.0-99-amd64 DESTDIR="$r" PATCHED_MODS_DIR="$mods" "$INSTALL" install
same "KREL= another release" "$r" "$work/other.snap"

# A plain 'make install' targets the running kernel.  It runs in a mount
# namespace of its own with an empty tmpfs on /lib/modules, so even on a
# host that runs $KREL it cannot touch the real tree.
if [ "$(uname -r)" != "$KREL" ]; then
	expect fail "plain make install on this host ($(uname -r))" \
		"built for $kre, but the target kernel is $(re "$(uname -r)") \(the running kernel" \
		in_private_lib_modules env -u KREL -u DESTDIR make -s -C "$TOP" install PATCHED_MODS_DIR="$mods"
else
	ok "plain make install: skipped, this host runs $KREL itself"
fi

r=$work/empty
mkdir -p "$r"
expect fail "no lib/modules/$KREL" "no .*/empty/lib/modules/$kre: kernel $kre is not installed" \
	run KREL="$KREL" DESTDIR="$r" PATCHED_MODS_DIR="$mods" "$INSTALL" install
if [ -z "$(ls -A "$r")" ]; then
	ok "no lib/modules/$KREL: nothing written"
else
	bad "no lib/modules/$KREL: files were written: $(ls -A "$r")"
fi

# A target whose kvm.ko has another vermagic (same release, another config).
r=$work/vermagic
mkroot "$r"
xz -dc "$r/lib/modules/$KREL/kernel/arch/x86/kvm/kvm.ko.xz" |
	LC_ALL=C sed 's/mod_unload modversions/mod_unload modversionX/' >"$r/lib/modules/$KREL/kernel/arch/x86/kvm/kvm.ko"
rm "$r/lib/modules/$KREL/kernel/arch/x86/kvm/kvm.ko.xz"
snapshot "$r" >"$work/vermagic.snap"
expect fail "vermagic mismatch" "vermagic mismatch: .*modversionX" \
	run KREL="$KREL" DESTDIR="$r" PATCHED_MODS_DIR="$mods" "$INSTALL" install
same "vermagic mismatch" "$r" "$work/vermagic.snap"

# Non-root into / : a copy of a good tree on a private tmpfs /lib/modules,
# and a build directory the user owns.
r=$work/nonroot
mkroot "$r"
mkdir -p "$work/nobody/mods"
cp "$mods"/kvm*.ko "$work/nobody/mods/"
chown -R 65534:65534 "$work/nobody"
expect fail "non-root without DESTDIR" "writing to /lib/modules/$kre needs root: run 'sudo make install" \
	in_private_lib_modules "$r" setpriv --reuid=65534 --regid=65534 --clear-groups \
	env -u DESTDIR -u KVM_HV_LOCKED KREL="$KREL" BUILD="$work/nobody" PATCHED_MODS_DIR="$work/nobody/mods" "$INSTALL" install
# Root into / (here a private /lib/modules): depmod without -b; then the
# uninstall.
# shellcheck disable=SC2016 # expanded by the inner shell
expect ok "root without DESTDIR" "removed the 3 modules and the manifest in /lib/modules/$kre/updates/kvm-hv-flush; modprobe now finds: /lib/modules/$kre/kernel/arch/x86/kvm/kvm\.ko\.xz" \
	in_private_lib_modules "$r" env -u DESTDIR KREL="$KREL" PATCHED_MODS_DIR="$mods" bash -c \
	'"$0" install && [ "$(modinfo -k "$KREL" -n kvm)" = "/lib/modules/$KREL/updates/kvm-hv-flush/kvm.ko" ] && "$0" uninstall' "$INSTALL"
# A user installs into a root of their own.
chown -R 65534:65534 "$r"
expect ok "non-root with DESTDIR" "installed kvm.ko kvm-amd.ko kvm-intel.ko for $kre" \
	setpriv --reuid=65534 --regid=65534 --clear-groups env -u KVM_HV_LOCKED KREL="$KREL" DESTDIR="$r" \
	BUILD="$work/nobody" PATCHED_MODS_DIR="$work/nobody/mods" "$INSTALL" install

# depmod fails: nothing may be left installed.
r=$work/depmod
mkroot "$r"
snapshot "$r" >"$work/depmod.snap"
mkdir -p "$work/fakebin"
printf '#!/bin/sh\necho "depmod: injected failure" >&2\nexit 1\n' >"$work/fakebin/depmod"
chmod +x "$work/fakebin/depmod"
expect fail "depmod fails" "depmod failed .*nothing was installed" \
	run PATH="$work/fakebin:$PATH" KREL="$KREL" DESTDIR="$r" PATCHED_MODS_DIR="$mods" "$INSTALL" install
same "depmod fails" "$r" "$work/depmod.snap"

# SIGTERM while the new files are in place but depmod has not finished:
# the install must be taken back.
r=$work/interrupt
mkroot "$r"
snapshot "$r" >"$work/interrupt.snap"
mkdir -p "$work/slowbin"
printf '#!/bin/sh\n[ ! -e %s ] || sleep 60\nexec %s "$@"\n' "$work/slow" "$(command -v depmod)" >"$work/slowbin/depmod"
chmod +x "$work/slowbin/depmod"
touch "$work/slow"
setsid env -u KREL -u DESTDIR PATH="$work/slowbin:$PATH" KREL="$KREL" DESTDIR="$r" PATCHED_MODS_DIR="$mods" \
	"$INSTALL" install >"$work/interrupt.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ ! -e "$r/lib/modules/$KREL/updates/kvm-hv-flush/manifest" ] || break
	sleep 0.1
done
rm -f "$work/slow"
if [ -e "$r/lib/modules/$KREL/updates/kvm-hv-flush/manifest" ]; then
	kill -TERM -- "-$pid"
	rc=0
	wait "$pid" || rc=$?
	if [ "$rc" -ne 0 ] && grep -q terminated "$work/interrupt.log"; then
		ok "SIGTERM during depmod: install.sh exited $rc"
	else
		bad "SIGTERM during depmod: install.sh exited $rc"
	fi
	same "SIGTERM during depmod" "$r" "$work/interrupt.snap"
else
	wait "$pid" || true
	bad "SIGTERM during depmod: the install never reached depmod:"
	sed 's/^/    /' "$work/interrupt.log"
fi

# Another kvm.ko under updates/ (not ours) would compete with ours.
r=$work/foreign
mkroot "$r"
mkdir -p "$r/lib/modules/$KREL/updates/dkms"
cp "$mods/kvm.ko" "$r/lib/modules/$KREL/updates/dkms/kvm.ko"
snapshot "$r" >"$work/foreign.snap"
expect fail "another kvm.ko in updates/" "other KVM modules are already in .*updates: .*updates/dkms/kvm\.ko" \
	run KREL="$KREL" DESTDIR="$r" PATCHED_MODS_DIR="$mods" "$INSTALL" install
same "another kvm.ko in updates/" "$r" "$work/foreign.snap"

# Uninstall refuses files changed, or added, since the install.
r=$work/changed
mkroot "$r"
expect ok "install into a scratch root" "installed kvm.ko kvm-amd.ko kvm-intel.ko" \
	run KREL="$KREL" DESTDIR="$r" PATCHED_MODS_DIR="$mods" "$INSTALL" install
echo >>"$r/lib/modules/$KREL/updates/kvm-hv-flush/kvm-amd.ko"
: >"$r/lib/modules/$KREL/updates/kvm-hv-flush/extra.ko"
snapshot "$r" >"$work/changed.snap"
expect fail "uninstall of changed files" "kvm-amd.ko: changed since it was installed" \
	run KREL="$KREL" DESTDIR="$r" "$INSTALL" uninstall
expect fail "uninstall of added files" "extra.ko: not installed by make install" \
	run KREL="$KREL" DESTDIR="$r" "$INSTALL" uninstall
same "uninstall of changed files" "$r" "$work/changed.snap"
msg "refusals took $((SECONDS - t1)) s"

# --- 2. in the guest -------------------------------------------------------------
t2=$SECONDS
root=$work/guest
mkroot "$root"
snapshot "$root" >"$work/guest.snap"
# Twice: the second replaces what the first installed.
expect ok "make install DESTDIR=<guest root>" "installed kvm.ko kvm-amd.ko kvm-intel.ko for $kre" \
	run KREL="$KREL" DESTDIR="$root" PATCHED_MODS_DIR="$mods" "$INSTALL" install
expect ok "make install again (replaces)" "replacing the modules a previous make install put" \
	run KREL="$KREL" DESTDIR="$root" PATCHED_MODS_DIR="$mods" "$INSTALL" install
grep -E '^(updates|kernel)/[^:]*kvm[^:]*:' "$root/lib/modules/$KREL/modules.dep" | sed 's/^/    modules.dep: /'

msg "booting the guest: modprobe kvm-$vendor from that tree, then hyperv_tlb_flush_ranges"
rc=0
GUEST_MODROOT=$root TESTS=hyperv_tlb_flush_ranges SELFTESTS_OUT="$work/run" CPU=${CPU:-48} \
	"$TOP/scripts/selftests.sh" >"$work/selftests.log" 2>&1 || rc=$?
log=$work/run/console.log
if [ ! -f "$log" ]; then
	tail -n 20 "$work/selftests.log" | sed 's/^/    /'
	bad "guest: no console log (selftests.sh exit $rc)"
else
	grep -E '^(insmod|modprobe)|^@@LOADED|^@@FAIL' "$log" | sed 's/^/    guest: /'
	for m in kvm kvm-$vendor; do
		want=$(build_id "$ref/$m.ko")
		line=$(grep -m1 "^@@LOADED ${m//-/_} " "$log" || true)
		got=$(sed -n 's/.*build-id=\([0-9a-f]*\).*/\1/p' <<<"$line")
		taint=$(sed -n 's/.*taint=//p' <<<"$line")
		if [ -z "$line" ]; then
			bad "guest: ${m//-/_} is not loaded"
		elif [ "$got" = "$want" ]; then
			ok "guest: modprobe loaded the patched $m.ko (build ID $got, taint $taint)"
		else
			bad "guest: the loaded ${m//-/_} has build ID ${got:-none}, not the patched $m.ko's $want (taint '$taint')"
		fi
	done
	res=$(awk -F'\t' '$1 == "hyperv_tlb_flush_ranges" { print $2 }' "$work/run/summary.tsv" 2>/dev/null || true)
	kern=$(awk -F'\t' '$1 == "kernel" { print $2 " " $5 }' "$work/run/summary.tsv" 2>/dev/null || true)
	if [ "$rc" -eq 0 ] && [ "$res" = pass ]; then
		ok "guest: hyperv_tlb_flush_ranges passed on the modprobe-loaded modules; kernel ${kern%% *}"
	else
		bad "guest: hyperv_tlb_flush_ranges ${res:-did not run} (selftests.sh exit $rc; kernel: $kern)"
		grep -E '^(hyperv_tlb_flush_ranges|kernel): ' "$work/selftests.log" | head -n 10 | sed 's/^/    /'
	fi
fi
msg "guest test took $((SECONDS - t2)) s"

# --- 3. uninstall ----------------------------------------------------------------
expect ok "make uninstall DESTDIR=<guest root>" "removed the 3 modules" \
	run KREL="$KREL" DESTDIR="$root" "$INSTALL" uninstall
same "make uninstall" "$root" "$work/guest.snap"

if [ "$fails" -ne 0 ]; then
	mkdir -p "$BUILD/test-install"
	rm -rf "$BUILD/test-install/run"
	[ ! -d "$work/run" ] || mv "$work/run" "$BUILD/test-install/run"
	cp "$work/selftests.log" "$BUILD/test-install/" 2>/dev/null || true
	die "$fails install check(s) FAILED; the guest's logs are in ${BUILD#"$TOP"/}/test-install/"
fi
msg "make install, make uninstall: all checks passed"
