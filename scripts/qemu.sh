# SPDX-License-Identifier: GPL-2.0
# Boot the pinned Debian kernel with a busybox initramfs that loads the KVM
# modules; shared by smoke.sh, selftests.sh and the scripts that run them.
# HOST=amd (default) boots it under QEMU TCG (AMD SVM with nested paging),
# HOST=intel under Bochs (Intel VMX with EPT and VPID), from an isolinux
# ISO; the initramfs, its markers and their checks are the same for both.
# Sourced after lib.sh and base_env, never run.
# shellcheck shell=bash

: "${QEMU_TIMEOUT:=300}"
# Where the patched modules are taken from (make modules puts them here).
: "${PATCHED_MODS_DIR:=$BUILD/modules/patched}"
# The kernel to boot: Debian's (VMLINUZ from base_env), or one built with
# KVM in it (debug.sh) that needs no KVM modules: QEMU_INSMOD="".
: "${QEMU_KERNEL:=}"
# Taint bits a clean run may show: O=4096 and E=8192 (out-of-tree,
# unsigned modules); debug.sh adds N=262144 (a KUnit test was loaded).
# Under Bochs, S=4 too: its CPU boots clean only with clearcpuid=ht
# (BOCHS_APPEND), which marks the CPU as out of spec.
: "${QEMU_TAINT_OK:=$((4096 | 8192))}"
[ "$HOST" != intel ] || QEMU_TAINT_OK=$((QEMU_TAINT_OK | 4))
# Bochs: the CPU model (one that loads kvm_intel with ept, vpid and
# nested), the kernel's extra command line, and how much longer than
# QEMU_TIMEOUT a boot may take in wall time (Bochs is slower than TCG).
: "${BOCHS_CPU:=corei7_haswell_4770}"
: "${BOCHS_APPEND:=clearcpuid=ht}"
: "${BOCHS_SLOWDOWN:=4}"

# The guest prints "@@<TAG> ..." lines on the serial console; everything
# else is kernel or test output.

# qemu_need_pkgs: the packages a boot needs.
qemu_need_pkgs() {
	[ "$SERIES" = stable ] || [ -n "$QEMU_KERNEL" ] ||
		die "SERIES=$SERIES: the QEMU targets boot Debian's 6.12 kernel with out-of-tree modules; the $SERIES series needs a kernel built from its own tree: 'make debug SERIES=$SERIES' builds one and runs KUnit, the selftests and the fuzzer on it"
	if [ "$HOST" = intel ]; then
		need_stage bochs
	else
		need_stage qemu
	fi
}

# qemu_host_has_virt: true when the host CPU itself can run KVM guests.
qemu_host_has_virt() {
	grep -qw -e vmx -e svm /proc/cpuinfo
}

# qemu_vendor: amd or intel, the KVM vendor module the guest will use.
qemu_vendor() {
	if [ "$HOST" = intel ]; then
		echo intel
	elif qemu_host_has_virt && grep -qw vmx /proc/cpuinfo; then
		echo intel
	else
		echo amd
	fi
}

# qemu_emulator: the emulator a boot uses, for messages.
qemu_emulator() {
	if [ "$HOST" = intel ]; then echo Bochs; else echo QEMU; fi
}

# qemu_wall_limit: a boot's limit in wall-time seconds.
qemu_wall_limit() {
	if [ "$HOST" = intel ]; then echo $((QEMU_TIMEOUT * BOCHS_SLOWDOWN)); else echo "$QEMU_TIMEOUT"; fi
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
	# Bochs loses the last serial lines at power-off unless they had time.
	[ "$HOST" != intel ] || halt="sleep 2; $halt"
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
echo "@@PROGRESS modules loaded"
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
# What the serial port has not sent yet is lost at power-off (a debug
# boot under load lost the last 90 lines of its dmesg): wait until its
# transmit count stays the same for a second (at most 30 s).
last=
for _ in \$(seq 30); do
	tx=\$(sed -n 's/^0:.* tx:\([0-9]*\).*/\1/p' /proc/tty/driver/serial 2>/dev/null)
	[ "\$tx" = "\$last" ] && break
	last=\$tx
	sleep 1
done
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
	if [ "$HOST" = intel ]; then
		bochs_boot "$@"
		return
	fi
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

# --- Bochs (HOST=intel) ---------------------------------------------------------
# Bochs cannot load a kernel itself: the kernel and the (uncompressed cpio)
# initramfs go onto an isolinux ISO it boots from.  Its quirks: no 'nogui'
# display (rfb, waiting for no client), a debugger that stops at time 0
# (the -rc command file continues), an exit status of 1 even after a clean
# power-off (runs are judged by the markers), and guest time slower than
# wall time.
BOCHS_DIR=
bochs_kill() {
	[ -n "$BOCHS_DIR" ] || return 0
	# The bochsrc path is unique to this boot and on the command line of
	# both 'timeout' and bochs-bin.
	local pat="bochs-bin -q -f $BOCHS_DIR/bochsrc"
	if pgrep -f -- "$pat" >/dev/null; then
		msg "stopping Bochs"
		pkill -TERM -f -- "$pat" || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			pgrep -f -- "$pat" >/dev/null || break
			sleep 0.5
		done
		pkill -KILL -f -- "$pat" || true
	fi
	rm -rf "$BOCHS_DIR"
	BOCHS_DIR=
}

# bochs_iso INITRD ISO: an isolinux ISO that boots the kernel with INITRD.
bochs_iso() {
	local initrd=$1 iso=$2 d
	d=$BOCHS_DIR/iso
	mkdir -p "$d/isolinux"
	cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$d/isolinux/"
	cp "${QEMU_KERNEL:-$VMLINUZ}" "$d/vmlinuz"
	ln "$initrd" "$d/initrd" 2>/dev/null || cp "$initrd" "$d/initrd"
	cat >"$d/isolinux/isolinux.cfg" <<CFG
default linux
prompt 0
timeout 0
label linux
  kernel /vmlinuz
  append initrd=/initrd console=ttyS0,115200 loglevel=3 panic=-1 mitigations=off $BOCHS_APPEND ${QEMU_APPEND:-}
CFG
	xorriso -as mkisofs -quiet -o "$iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
		-no-emul-boot -boot-load-size 4 -boot-info-table "$d" 2>"$BOCHS_DIR/xorriso.log" || {
		cat "$BOCHS_DIR/xorriso.log" >&2
		die "xorriso could not make the boot ISO"
	}
	rm -rf "$d"
}

# bochs_boot INITRD LOG CPU: as qemu_boot, under Bochs.  Returns 0 when
# Bochs ended (its exit status says nothing), 124 on timeout.  Bochs's own
# log lines about INVVPID/INVEPT go to LOG.bochs, counted.
bochs_boot() {
	local initrd=$1 log=$2 cpu=$3 rc=0 job tailjob limit start done_at='' t0 serial
	[ "$cpu" = 48 ] || die "HOST=intel: Bochs emulates no LA57 (48-bit virtual addresses only); use CPU=48"
	limit=$(qemu_wall_limit)
	BOCHS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kvm-hv-bochs.XXXXXX")
	if [[ " ${CLEANUPS[*]} " != *" bochs_kill "* ]]; then
		on_exit bochs_kill
	fi
	t0=$(date +%s)
	bochs_iso "$initrd" "$BOCHS_DIR/boot.iso"
	msg "Bochs: boot ISO made in $(($(date +%s) - t0)) s; CPU $BOCHS_CPU, wall-time limit $limit s (QEMU_TIMEOUT x BOCHS_SLOWDOWN)"
	serial=$BOCHS_DIR/serial.txt
	: >"$serial"
	cat >"$BOCHS_DIR/bochsrc" <<RC
cpu: model=$BOCHS_CPU, count=1, ips=200000000, reset_on_triple_fault=0, ignore_bad_msrs=1
memory: guest=2048, host=2048
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
pci: enabled=1, chipset=i440fx
ata0-master: type=cdrom, path=$BOCHS_DIR/boot.iso, status=inserted
boot: cdrom
clock: sync=none, time0=local
com1: enabled=1, mode=file, dev=$serial
display_library: rfb, options="timeout=0, hideIPS"
plugin_ctrl: e1000=0, ne2k=0, pcipnic=0, sb16=0, es1370=0, gameport=0, usb_uhci=0, usb_ohci=0, usb_ehci=0, usb_xhci=0
log: $BOCHS_DIR/bochs.log
RC
	printf 'c\nquit\n' >"$BOCHS_DIR/cmds"
	(cd "$BOCHS_DIR" && exec timeout -k 10 "$limit" bochs-bin -q -f "$BOCHS_DIR/bochsrc" -rc "$BOCHS_DIR/cmds" \
		</dev/null >"$BOCHS_DIR/bochs.out" 2>&1) &
	job=$!
	# Progress lines with the wall time since Bochs started.
	(tail -n +1 -F --pid="$job" "$serial" 2>/dev/null |
		while IFS= read -r l; do
			l=${l%$'\r'}
			case $l in "@@PROGRESS "*) printf '==>   guest (%3d s): %s\n' $(($(date +%s) - t0)) "${l#@@PROGRESS }" >&2 ;; esac
		done) &
	tailjob=$!
	start=$(date +%s)
	# The guest powers Bochs off at the end; after a panic (panic=-1) it
	# would boot again, so a finished guest gets 30 s, then is stopped.
	while kill -0 "$job" 2>/dev/null; do
		if [ -z "$done_at" ] && grep -qa -e '^@@DONE' -e 'Kernel panic - not syncing' "$serial"; then
			done_at=$(date +%s)
		fi
		if [ -n "$done_at" ] && [ $(($(date +%s) - done_at)) -gt 30 ]; then
			msg "Bochs still runs 30 s after the guest finished; stopping it"
			pkill -TERM -f -- "bochs-bin -q -f $BOCHS_DIR/bochsrc" || true
			done_at=$((done_at + 30))
		fi
		sleep 1
	done
	wait "$job" || rc=$?
	kill "$tailjob" 2>/dev/null || true
	wait "$tailjob" 2>/dev/null || true
	tr -d '\r' <"$serial" >"$log"
	grep -a -E 'INVVPID|INVEPT' "$BOCHS_DIR/bochs.log" 2>/dev/null | sed -E 's/^[0-9]+[a-z]?\[[^]]*\] *//' |
		sort | uniq -c | sed 's/^ */# bochs: /' >"$log.bochs" || true
	[ -s "$log.bochs" ] || rm -f "$log.bochs"
	msg "Bochs ran $(($(date +%s) - start)) s (exit $rc; judged by the console's markers)"
	bochs_kill
	[ "$rc" -eq 124 ] && return 124
	return 0
}

# qemu_section LOG BEGIN END: the lines between two marker lines.
qemu_section() {
	awk -v b="$2" -v e="$3" '$0 == e { p = 0 } p { print } $0 == b { p = 1 }' "$1"
}

# What a kernel report looks like in dmesg: a WARN, BUG, Oops, a detector's
# report, a lockdep splat, a hung task, a panic, a stack dump.
QEMU_SPLAT_RE='WARNING: CPU: [0-9]+ PID: [0-9]+ at|BUG:|Oops|kernel BUG at|general protection fault|KASAN|UBSAN|KFENCE|WARNING: (possible|suspicious|inconsistent|bad unlock|held lock|lock held|nested lock)|INFO: possible|lockdep is turned off|DEBUG_LOCKS_WARN_ON|list_(add|del) corruption|corruption\.|INFO: task .* blocked|Kernel panic|Call Trace:'

# The bug the series fixes, as an Intel host shows it: KVM hands a
# non-canonical GVA to INVVPID, which fails, and KVM WARNs (once):
#   kvm_intel: invvpid failed: ext=0x0 vpid=1 gva=0x800000000000
#   WARNING: CPU: 0 PID: 244 at arch/x86/kvm/vmx/vmx.c:483 invvpid_error+0x75/0x80 [kvm_intel]
# qemu_check_kernel names it on a line of its own that starts with this.
QEMU_BUG_NAME="the bug this series fixes: INVVPID WARN"

# qemu_dmesg_split LOG: the guest's dmesg without timestamps, with the
# INVVPID failure lines and the WARN at invvpid_error (up to its end-trace
# line) cut out to "$QEMU_DMESG_BUG" (one line, empty when none); the rest
# to "$QEMU_DMESG_REST", where any other report is still seen.
QEMU_DMESG_BUG='' QEMU_DMESG_REST=''
qemu_dmesg_split() {
	local d
	d=$(qemu_section "$1" @@DMESG-BEGIN @@DMESG-END | sed -E 's/^\[ *[0-9]+\.[0-9]+\] //')
	QEMU_DMESG_REST=$(awk '
		/WARNING: CPU: [0-9]+ PID: [0-9]+ at .* invvpid_error/ { skip = 1 }
		skip { if (/---\[ end trace/) skip = 0; next }
		/invvpid failed/ { next }
		{ print }' <<<"$d")
	QEMU_DMESG_BUG=$( (grep -m1 'invvpid failed' <<<"$d" || true
		grep -m1 -E 'WARNING: CPU: [0-9]+ PID: [0-9]+ at .* invvpid_error' <<<"$d" || true) |
		sed -E 's/ +$//' | paste -sd'|' | sed 's/|/, then /')
}

# qemu_check_kernel LOG: complain (on stdout) about a guest that did not
# finish, modules that did not load or gave no /dev/kvm, kernel splats and
# unexpected taint.
# Taint O (out of tree, 4096) and E (unsigned, 8192) are expected
# (QEMU_TAINT_OK).  The INVVPID WARN is named as the bug this series fixes
# ("$QEMU_BUG_NAME: ..."), with the taint W it causes; every other report
# is listed as it is.
qemu_check_kernel() {
	local log=$1 t ok=$QEMU_TAINT_OK
	grep -q '^@@DONE$' "$log" || echo "the guest did not finish (crash, hang or timeout)"
	grep -q '^@@KVM ok$' "$log" || echo "/dev/kvm did not appear"
	grep '^@@FAIL ' "$log" | sed 's/^@@FAIL //' || true
	qemu_dmesg_split "$log"
	if [ -n "$QEMU_DMESG_BUG" ]; then
		echo "$QEMU_BUG_NAME: $QEMU_DMESG_BUG"
		ok=$((ok | 512))
	fi
	grep -E "$QEMU_SPLAT_RE" <<<"$QEMU_DMESG_REST" | sed 's/^/dmesg: /' || true
	t=$(sed -n 's/^@@TAINTED //p' "$log" | tail -n1)
	# (an if, not '&&': a guest that did not finish must not make this
	# function fail, which would end a caller under set -e unheard)
	if [ -z "$t" ]; then
		if grep -q '^@@DONE$' "$log"; then echo "the guest did not report its taint"; fi
	elif [ $((t & ~ok)) -ne 0 ]; then
		echo "kernel tainted $t (only $ok of it is expected)"
	fi
}
