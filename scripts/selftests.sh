#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the KVM Hyper-V selftests of $TREE statically (output under
# build/selftests, never in the source tree), boot the Debian kernel under
# QEMU with them and the chosen KVM modules, and run them.  Results go to
# build/selftests/<MODS>-<CPU>/: console.log, <test>.ktap, summary.tsv.
#
#   CPU=48|la57          the host's virtual address width (default 48)
#   MODS=patched|stock   build/modules/patched or Debian's modules (patched)
#   TESTS="..."          the tests to run (default: all Hyper-V selftests)
#   TREE=<git tree>      the kernel tree to build the selftests from
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/qemu.sh"

CPU=${CPU:-48}
MODS=${MODS:-patched}
case $CPU in 48 | la57) ;; *) die "CPU must be 48 or la57, not '$CPU'" ;; esac
case $MODS in patched | stock) ;; *) die "MODS must be patched or stock, not '$MODS'" ;; esac

qemu_need_pkgs
need_pkgs gcc make libc6-dev rsync flex bison bc
base_env
[ -d "$TREE/tools/testing/selftests/kvm" ] ||
	die "no KVM selftests in $TREE; run 'make tree' or set TREE=<kernel tree>"
vendor=$(qemu_vendor)

HV_TESTS="hyperv_tlb_flush_ranges hyperv_tlb_flush hyperv_features hyperv_ipi
hyperv_clock hyperv_cpuid hyperv_svm_test hyperv_extended_hypercalls hyperv_evmcs"
if [ -z "${TESTS:-}" ]; then
	TESTS=$HV_TESTS
	# eVMCS is Intel only; on AMD it would only skip.
	[ "$vendor" = intel ] || TESTS=${TESTS/hyperv_evmcs/}
fi
read -r -d '' -a tests <<<"$TESTS" || true
[ ${#tests[@]} -gt 0 ] || die "TESTS is empty"

sbuild=$BUILD/selftests
mkdir -p "$sbuild"

# UAPI headers, installed out of tree once per header content.
hdr_key=$( (git -C "$TREE" rev-parse HEAD:include/uapi HEAD:arch/x86/include/uapi &&
	git -C "$TREE" diff HEAD -- include/uapi arch/x86/include/uapi) | sha1sum | cut -c1-12)
hdr=$sbuild/headers-$hdr_key
if [ ! -d "$hdr/include" ]; then
	msg "installing the UAPI headers of ${TREE#"$TOP"/} into ${hdr#"$TOP"/}"
	rm -rf "$hdr.tmp" "$sbuild/kobj"
	make -s -C "$TREE" O="$sbuild/kobj" INSTALL_HDR_PATH="$hdr.tmp" headers_install ||
		die "headers_install failed in $TREE; 'make -C $TREE mrproper' if it complains about a dirty tree"
	rm -rf "$sbuild/kobj"
	mv "$hdr.tmp" "$hdr"
fi

# The tests themselves; make rebuilds only what changed.
obj=$sbuild/obj-$(echo "$TREE" | sha1sum | cut -c1-8)-$hdr_key
targets=()
for t in "${tests[@]}"; do
	[ -f "$TREE/tools/testing/selftests/kvm/x86_64/$t.c" ] ||
		die "$TREE has no selftest '$t'; apply the selftest patch there or set TREE=<tree with it>"
done
for t in $HV_TESTS; do
	if [ -f "$TREE/tools/testing/selftests/kvm/x86_64/$t.c" ]; then
		targets+=("$obj/x86_64/$t")
	fi
done
mkdir -p "$obj"
msg "building ${#targets[@]} Hyper-V selftests statically from ${TREE#"$TOP"/} into ${obj#"$TOP"/}"
start=$(date +%s)
make -s -C "$TREE/tools/testing/selftests/kvm" -j"$(nproc)" OUTPUT="$obj" \
	KHDR_INCLUDES="-isystem $hdr/include" EXTRA_CFLAGS=-static "${targets[@]}" \
	>"$obj/build.log" 2>&1 || {
	tail -n 30 "$obj/build.log" >&2
	die "building the selftests failed; full log in ${obj#"$TOP"/}/build.log"
}
msg "selftests built in $(($(date +%s) - start)) s"

work=$(mktemp -d "$sbuild/.run.XXXXXX")
trap 'rm -rf "$work"' EXIT

msg "staging an initramfs: busybox, $MODS KVM modules, ${#tests[@]} tests"
stage=$work/stage
qemu_stage_modules "$stage/mods" "$MODS"
qemu_stage_init "$stage" "$vendor"
mkdir -p "$stage/tests"
for t in "${tests[@]}"; do
	[ -x "$obj/x86_64/$t" ] || die "no selftest '$t' in ${TREE#"$TOP"/}"
	cp "$obj/x86_64/$t" "$stage/tests/$t"
done
{
	echo "for t in ${tests[*]}; do"
	cat <<'EOF'
	echo "@@PROGRESS running $t"
	s=$(date +%s)
	/tests/$t >/tmp/$t.out 2>&1
	rc=$?
	echo "@@BEGIN $t"
	cat /tmp/$t.out
	echo "@@END $t rc=$rc secs=$(($(date +%s) - s))"
done
EOF
} >"$stage/payload.sh"
qemu_pack "$stage" "$work/initrd.cpio"
rm -rf "$stage"

out=$sbuild/$MODS-$CPU
msg "booting under QEMU (CPU=$CPU, MODS=$MODS); results go to ${out#"$TOP"/}"
start=$(date +%s)
rc=0
qemu_boot "$work/initrd.cpio" "$work/console.log" "$CPU" || rc=$?
secs=$(($(date +%s) - start))
rm -f "$work/initrd.cpio"
[ "$rc" -eq 124 ] && warn "QEMU timed out after $QEMU_TIMEOUT s (QEMU_TIMEOUT=...)"

# One KTAP file and one summary row per test; pseudo tests for the kernel.
log=$work/console.log
failed=0
printf 'test\tresult\trc\tsecs\tfailing_cases\tskipped_cases\n' >"$work/summary.tsv"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$work/summary.tsv"; }
for t in "${tests[@]}"; do
	qemu_section "$log" "@@BEGIN $t" "$(grep -m1 "^@@END $t " "$log" || echo "@@END $t")" \
		>"$work/$t.ktap"
	end=$(grep -m1 "^@@END $t " "$log" || true)
	trc=$(sed -n 's/.* rc=\([0-9]*\).*/\1/p' <<<"$end")
	tsecs=$(sed -n 's/.* secs=\([0-9]*\).*/\1/p' <<<"$end")
	bad=$(grep -E '^not ok ' "$work/$t.ktap" | grep -v '# SKIP' |
		sed -E 's/^not ok [0-9]+ //' | tr '\n' ' ' | sed 's/ $//' || true)
	if [ -z "$end" ]; then
		result=fail bad="did not finish"
	elif [ "$trc" = 4 ] && [ -z "$bad" ]; then
		result=skip
	elif [ "$trc" = 0 ] && [ -z "$bad" ]; then
		result=pass
	else
		result=fail
	fi
	[ "$result" = fail ] && failed=$((failed + 1))
	skipped=$(grep -cE '^(not )?ok [0-9]+ .*# SKIP' "$work/$t.ktap" || true)
	row "$t" "$result" "${trc:--}" "${tsecs:--}" "${bad:--}" "$skipped"
done
kproblems=$(qemu_check_kernel "$log")
kproblems=$(sed '/^$/d' <<<"$kproblems")
if [ -n "$kproblems" ]; then
	row kernel fail - "$secs" "$(tr '\n' ';' <<<"$kproblems")" 0
	failed=$((failed + 1))
else
	row kernel pass - "$secs" - 0
fi

rm -rf "$out"
mv "$work" "$out"
trap - EXIT

column -t -s $'\t' "$out/summary.tsv" | sed 's/^/    /' >&2
if [ "$failed" -ne 0 ]; then
	echo "--- failing KTAP lines ---" >&2
	for t in "${tests[@]}"; do
		grep -E -e '^not ok ' -e '^# .*(first mismatch|expected status|dropped)' \
			-e 'Test Assertion Failure' -e '^Bail out' "$out/$t.ktap" |
			grep -v '# SKIP' | sed "s/^/$t: /" >&2 || true
	done
	[ -n "$kproblems" ] && printf '%s\n' "$kproblems" | sed 's/^/kernel: /' >&2
	echo "--- last 40 console lines ---" >&2
	grep -v '^@@' "$out/console.log" | tail -n 40 >&2
	die "$failed of $((${#tests[@]} + 1)) checks FAILED (CPU=$CPU MODS=$MODS, boot+tests $secs s); see ${out#"$TOP"/}"
fi
msg "all ${#tests[@]} selftests passed, kernel clean (CPU=$CPU MODS=$MODS): boot+tests took $secs s"
