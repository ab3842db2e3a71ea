#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the pinned Debian kernel under QEMU (AMD SVM with nested paging;
# HOST=intel: under Bochs, Intel VMX with EPT),
# load irqbypass, ccp and the patched kvm and kvm-amd modules, and check
# that /dev/kvm appears, kvm_amd uses nested paging and the kernel log is
# clean.
#
#   smoke.sh          MODS=stock boots Debian's own KVM modules instead
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/qemu.sh"

MODS=${MODS:-patched}
case $MODS in patched | stock) ;; *) die "MODS must be patched or stock, not '$MODS'" ;; esac
harness_lock
qemu_need_pkgs
base_env
[ "$MODS" = stock ] || tree_report
vendor=$(qemu_vendor)

work=$(mktemp -d "${TMPDIR:-/tmp}/smoke.XXXXXX")
on_exit "rm -rf '$work'"

msg "staging an initramfs with the $MODS KVM modules"
qemu_stage_modules "$work/stage/mods" "$MODS"
qemu_stage_init "$work/stage" "$vendor"
cat >"$work/stage/payload.sh" <<'EOF'
for m in kvm_amd kvm_intel; do
	[ -d /sys/module/$m ] || continue
	echo "@@MODULE $m"
	for p in npt ept; do
		[ -f /sys/module/$m/parameters/$p ] &&
			echo "@@PARAM $p=$(cat /sys/module/$m/parameters/$p)"
	done
done
EOF
qemu_pack "$work/stage" "$work/initrd.cpio"

mkdir -p "$BUILD/smoke"
log=$BUILD/smoke/console.log
msg "booting $(basename "$VMLINUZ") under $(qemu_emulator) (HOST=$HOST; log: ${log#"$TOP"/})"
start=$(date +%s)
rc=0
qemu_boot "$work/initrd.cpio" "$work/console.log" 48 || rc=$?
mv "$work/console.log" "$log"
secs=$(($(date +%s) - start))
[ "$rc" -eq 124 ] && warn "$(qemu_emulator) timed out after $(qemu_wall_limit) s (QEMU_TIMEOUT=...)"

problems=$(qemu_check_kernel "$log")
case $vendor in
amd)
	grep -q '^@@PARAM npt=[Y1]$' "$log" ||
		problems+=$'\n'"kvm_amd does not use nested paging (npt is not Y)"
	grep -q 'kvm_amd: Nested Paging enabled' "$log" ||
		problems+=$'\n'"dmesg lacks 'kvm_amd: Nested Paging enabled'"
	;;
intel)
	grep -q '^@@PARAM ept=[Y1]$' "$log" ||
		problems+=$'\n'"kvm_intel does not use EPT (ept is not Y)"
	;;
esac
problems=$(sed '/^$/d' <<<"$problems")

if [ -n "$problems" ]; then
	printf '%s\n' "$problems" | sed 's/^/    /' >&2
	echo "--- last 40 console lines ---" >&2
	tail -n 40 "$log" >&2
	die "smoke test FAILED after $secs s ($MODS modules); console log in ${log#"$TOP"/}"
fi
msg "smoke test PASSED in $secs s: $MODS kvm and kvm-$vendor loaded, /dev/kvm present, $(sed -n 's/^@@PARAM //p' "$log" | tr '\n' ' ')taint $(sed -n 's/^@@TAINTED //p' "$log"), dmesg clean"
