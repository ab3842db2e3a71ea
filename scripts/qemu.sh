# SPDX-License-Identifier: GPL-2.0
# Boot the pinned Debian kernel under QEMU with a busybox initramfs that
# loads the KVM modules; shared by smoke.sh and selftests.sh.  Sourced
# after lib.sh and base_env, never run.
# shellcheck shell=bash

: "${QEMU_TIMEOUT:=300}"
# Where the patched modules are taken from (make modules puts them here).
: "${PATCHED_MODS_DIR:=$BUILD/modules/patched}"
# The kernel to boot: Debian's (VMLINUZ from base_env), or one built with
# KVM in it (debug.sh) that needs no KVM modules: QEMU_INSMOD="".
: "${QEMU_KERNEL:=}"
# Taint bits a clean run may show: O=4096 and E=8192 (out-of-tree,
# unsigned modules); debug.sh adds N=262144 (a KUnit test was loaded).
: "${QEMU_TAINT_OK:=$((4096 | 8192))}"

# The guest prints "@@<TAG> ..." lines on the serial console; everything
# else is kernel or test output.

# qemu_need_pkgs: the packages a boot needs.
qemu_need_pkgs() {
	[ "$SERIES" = stable ] || [ -n "$QEMU_KERNEL" ] ||
		die "SERIES=$SERIES: the QEMU targets boot Debian's 6.12 kernel with out-of-tree modules; the $SERIES series needs a kernel built from its own tree: 'make debug SERIES=$SERIES' builds one and runs KUnit, the selftests and the fuzzer on it"
	need_stage qemu
}

# qemu_host_has_virt: true when the host CPU itself can run KVM guests.
qemu_host_has_virt() {
	grep -qw -e vmx -e svm /proc/cpuinfo
}

# qemu_vendor: amd or intel, the KVM vendor module the guest will use.
qemu_vendor() {
	if qemu_host_has_virt && grep -qw vmx /proc/cpuinfo; then
		echo intel
	else
		echo amd
	fi
}

# qemu_set_args CPU: fill QEMU_ARGS for a 48-bit or an LA57 (la57) host.
qemu_set_args() {
	local cpu=$1 model
	QEMU_ARGS=(-machine q35 -smp 2 -m 2048 -display none -monitor none
		-serial stdio -no-reboot)
	if qemu_host_has_virt; then
		QEMU_ARGS+=(-accel kvm -cpu host)
		if [ "$cpu" = la57 ] && ! grep -qw la57 /proc/cpuinfo; then
			die "CPU=la57 needs a host with la57 when QEMU uses KVM; use CPU=48"
		fi
	else
		# Multi-threaded TCG crashes the guest while KVM patches static keys.
		model=EPYC-Rome,+svm,+npt
		[ "$cpu" = la57 ] && model+=,+la57
		QEMU_ARGS+=(-accel "tcg,thread=single" -cpu "$model")
	fi
}

# qemu_stage_modules DIR MODS: put irqbypass, ccp, kvm and the vendor
# modules (patched or stock) into DIR, uncompressed.
# With GUEST_MODROOT=<root>, the guest gets <root>/lib/modules instead (a
# module tree with its depmod index, as 'make install DESTDIR=<root>'
# leaves it), and /init loads KVM from it with modprobe.
qemu_stage_modules() {
	local dir=$1 mods=$2 m src
	mkdir -p "$dir"
	if [ -n "${GUEST_MODROOT:-}" ]; then
		[ -f "$GUEST_MODROOT/lib/modules/$KREL/modules.dep" ] ||
			die "GUEST_MODROOT=$GUEST_MODROOT has no lib/modules/$KREL/modules.dep; run depmod -b there"
		mkdir -p "$dir/../lib"
		cp -a "$GUEST_MODROOT/lib/modules" "$dir/../lib/"
		msg "guest modules: modprobe from ${GUEST_MODROOT#"$TOP"/}/lib/modules/$KREL, not MODS=$mods"
		return 0
	fi
	for m in kernel/virt/lib/irqbypass kernel/drivers/crypto/ccp/ccp; do
		src=$STOCK_MODDIR/$m.ko.xz
		[ -f "$src" ] || die "missing $src; rerun 'make base'"
		xz -dc "$src" >"$dir/$(basename "$m").ko"
	done
	for m in kvm kvm-amd kvm-intel; do
		case $mods in
		patched)
			src=$PATCHED_MODS_DIR/$m.ko
			[ -f "$src" ] || die "missing $src; run 'make modules' first"
			cp "$src" "$dir/$m.ko"
			;;
		stock)
			src=$STOCK_MODDIR/kernel/arch/x86/kvm/$m.ko.xz
			[ -f "$src" ] || die "missing $src; rerun 'make base'"
			xz -dc "$src" >"$dir/$m.ko"
			;;
		*) die "MODS must be 'patched' or 'stock', not '$mods'" ;;
		esac
	done
}

# qemu_stage_init STAGE VENDOR: busybox and an /init that mounts the
# pseudo file systems, loads the modules from /mods (QEMU_INSMOD, default
# irqbypass, ccp, kvm and the vendor's), runs /payload.sh, then reports
# the taint and dmesg and powers off (QEMU_KERNEL: reboot -f, which
# -no-reboot turns into an exit, for a kernel without ACPI power-off).
qemu_stage_init() {
	local stage=$1 vendor=$2 insmod halt=poweroff
	insmod=${QEMU_INSMOD-irqbypass ccp kvm kvm-$vendor}
	[ -z "${GUEST_MODROOT:-}" ] || insmod=
	[ -z "$QEMU_KERNEL" ] || halt=reboot
	halt+=" -f"
	mkdir -p "$stage"/{bin,dev,proc,sys,tmp,mods}
	cp /bin/busybox "$stage/bin/busybox"
	cat >"$stage/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
echo "@@PROGRESS booted \$(uname -r), loading modules"
for m in $insmod; do
	insmod /mods/\$m.ko || echo "@@FAIL insmod \$m.ko"
done
${GUEST_MODROOT:+modprobe -v kvm-$vendor || echo "@@FAIL modprobe kvm-$vendor"}
# What was loaded: each module's build ID (the note's last 20 bytes), taint.
for m in kvm kvm_$vendor; do
	[ -f /sys/module/\$m/taint ] || continue
	echo "@@LOADED \$m build-id=\$(od -An -tx1 -v /sys/module/\$m/notes/.note.gnu.build-id | tr -d ' \\n' | tail -c 40) taint=\$(cat /sys/module/\$m/taint)"
done
if [ -c /dev/kvm ]; then
	echo "@@KVM ok"
else
	echo "@@FAIL no /dev/kvm"
fi
. /payload.sh
echo "@@TAINTED \$(cat /proc/sys/kernel/tainted)"
echo "@@DMESG-BEGIN"
dmesg
echo "@@DMESG-END"
echo "@@DONE"
$halt
EOF
	chmod +x "$stage/init"
}

# qemu_pack STAGE OUT: pack STAGE into the initramfs OUT.
qemu_pack() {
	local stage=$1 out=$2
	(cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet) >"$out.tmp"
	mv "$out.tmp" "$out"
}

# qemu_boot INITRD LOG CPU: boot the Debian kernel with INITRD, the serial
# console goes to LOG (CRs stripped), guest progress lines to stderr.
# Returns QEMU's status (124 on timeout).
#
# QEMU runs in the background under 'timeout' (which puts it in a process
# group of its own, out of reach of a Ctrl-C), and the script waits for
# it; a cleanup registered with on_exit kills it by its pid file when the
# script ends for any reason, Ctrl-C and SIGTERM included.
QEMU_PIDFILE=
qemu_kill() {
	[ -n "$QEMU_PIDFILE" ] || return 0
	# The pid file's name is unique to this boot and on the command line
	# of both 'timeout' and QEMU, so this finds them even before QEMU
	# wrote the file.
	local pat="-pidfile $QEMU_PIDFILE"
	if pgrep -f -- "$pat" >/dev/null; then
		msg "stopping QEMU"
		pkill -TERM -f -- "$pat" || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			pgrep -f -- "$pat" >/dev/null || break
			sleep 0.5
		done
		pkill -KILL -f -- "$pat" || true
	fi
	rm -f "$QEMU_PIDFILE"
}
qemu_boot() {
	local initrd=$1 log=$2 cpu=$3 rc=0 job
	qemu_set_args "$cpu"
	QEMU_PIDFILE=$(mktemp -u "${TMPDIR:-/tmp}/kvm-hv-qemu.XXXXXX")
	if [[ " ${CLEANUPS[*]} " != *" qemu_kill "* ]]; then
		on_exit qemu_kill
	fi
	(
		set -o pipefail
		timeout -k 10 "$QEMU_TIMEOUT" qemu-system-x86_64 "${QEMU_ARGS[@]}" \
			-pidfile "$QEMU_PIDFILE" -name kvm-hv-flush \
			-kernel "${QEMU_KERNEL:-$VMLINUZ}" -initrd "$initrd" \
			-append "console=ttyS0 loglevel=3 panic=-1 ${QEMU_APPEND:-}" </dev/null 2>&1 |
			tr -d '\r' | tee "$log" | sed -un 's/^@@PROGRESS /==>   guest: /p' >&2
	) &
	job=$!
	wait "$job" || rc=$?
	qemu_kill
	return "$rc"
}

# qemu_section LOG BEGIN END: the lines between two marker lines.
qemu_section() {
	awk -v b="$2" -v e="$3" '$0 == e { p = 0 } p { print } $0 == b { p = 1 }' "$1"
}

# What a kernel report looks like in dmesg: a WARN, BUG, Oops, a detector's
# report, a lockdep splat, a hung task, a panic, a stack dump.
QEMU_SPLAT_RE='WARNING: CPU: [0-9]+ PID: [0-9]+ at|BUG:|Oops|kernel BUG at|general protection fault|KASAN|UBSAN|KFENCE|WARNING: (possible|suspicious|inconsistent|bad unlock|held lock|lock held|nested lock)|INFO: possible|lockdep is turned off|DEBUG_LOCKS_WARN_ON|list_(add|del) corruption|corruption\.|INFO: task .* blocked|Kernel panic|Call Trace:'

# qemu_check_kernel LOG: complain (on stdout) about a guest that did not
# finish, modules that did not load or gave no /dev/kvm, kernel splats and
# unexpected taint.
# Taint O (out of tree, 4096) and E (unsigned, 8192) are expected
# (QEMU_TAINT_OK).
qemu_check_kernel() {
	local log=$1 t
	grep -q '^@@DONE$' "$log" || echo "the guest did not finish (crash, hang or timeout)"
	grep -q '^@@KVM ok$' "$log" || echo "/dev/kvm did not appear"
	grep '^@@FAIL ' "$log" | sed 's/^@@FAIL //' || true
	qemu_section "$log" @@DMESG-BEGIN @@DMESG-END | grep -E "$QEMU_SPLAT_RE" |
		sed 's/^/dmesg: /' || true
	t=$(sed -n 's/^@@TAINTED //p' "$log" | tail -n1)
	if [ -z "$t" ]; then
		grep -q '^@@DONE$' "$log" && echo "the guest did not report its taint"
	elif [ $((t & ~QEMU_TAINT_OK)) -ne 0 ]; then
		echo "kernel tainted $t (only $QEMU_TAINT_OK of it is expected)"
	fi
}
