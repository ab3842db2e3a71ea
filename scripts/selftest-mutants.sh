#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Mutation testing of the whole PV TLB flush path with the selftest: every
# mutants/flush-path/*.patch breaks KVM's Hyper-V flush path in
# arch/x86/kvm/hyperv.c in one plausible way outside the range expansion
# (an input check, the VP set, the FIFO, a fallback, the L2 path), where
# the KUnit suite cannot see it.  Each mutant is applied to a scratch clone
# of $TREE (never $TREE itself) and kvm.ko is rebuilt out of tree.  One
# QEMU boot then runs hyperv_tlb_flush_ranges on the patched modules and on
# each mutant's kvm.ko in turn.  The patched run must pass with a clean
# kernel; each mutant must be "killed": the test fails, or the kernel
# reports a problem while it runs.  The mutants never enter the series.
# A mutant is a "Mutant: <what it breaks>" line followed by a diff of
# arch/x86/kvm/hyperv.c that 'git apply' takes.
#
#   selftest-mutants.sh [MUTANT.patch...]  default: every
#                       $FLUSH_MUTANTS_DIR/*.patch (mutants/flush-path/)
#   CPU=48|la57         the guest's host CPU (default 48)
#   TEST_TIMEOUT=<s>    each run's own time limit in the guest (120)
#
# Results: build/selftest-mutants/ (console.log, <variant>.ktap, results.txt).
# Exits non-zero unless the patched run passes and every mutant is killed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/qemu.sh"

TEST=hyperv_tlb_flush_ranges
target=arch/x86/kvm/hyperv.c
: "${FLUSH_MUTANTS_DIR:=$TOP/mutants/flush-path}"
CPU=${CPU:-48}
case $CPU in 48 | la57) ;; *) die "CPU must be 48 or la57, not '$CPU'" ;; esac
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
[[ $TEST_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "TEST_TIMEOUT must be a number of seconds, not '$TEST_TIMEOUT'"

mutant_files "$FLUSH_MUTANTS_DIR" "$@"
mutants=("${MUTANTS[@]}")
names=()
for m in "${mutants[@]}"; do
	n=$(basename "$m" .patch)
	[[ $n =~ ^[A-Za-z0-9._-]+$ ]] || die "mutant file name '$n' must be letters, digits, '.', '_' or '-'"
	names+=("$n")
done

harness_lock
qemu_need_pkgs
need_stage selftests modules
base_env
tree_require
[ "$SERIES" = stable ] ||
	die "SERIES=$SERIES: the flush-path mutants run on Debian's $KREL with out-of-tree modules, for the 6.12.y series only"
[ -f "$TREE/$target" ] || die "$TREE has no $target"
tree_report
vendor=$(qemu_vendor)
out=$BUILD/selftest-mutants
mkdir -p "$out"
work=$(mktemp -d "$out/.run.XXXXXX")
on_exit "rm -rf '$work'"
start=$(date +%s)

# --- the modules: patched, then one kvm.ko per mutant --------------------------
MODULES_QUIET=1 "$TOP/scripts/modules.sh"
# The mutants' build is in the cache, at a fixed path, so that every clone
# of the project shares it: kbuild rebuilds only hyperv.o, and ccache
# knows a mutant it has compiled before.
mbuild=$CACHE/selftest-mutants/$KREL
harness_lock "$mbuild"
clone=$out/tree
msg "mutants are applied to a scratch clone, ${clone#"$TOP"/}"
scratch_clone "$clone" arch/x86/kvm virt/kvm include arch/x86/include
for m in "${mutants[@]}"; do
	(cd "$clone" && git apply --check "$m" 2>/dev/null) ||
		die "mutant $(basename "$m") no longer applies to $target of ${TREE#"$TOP"/}; regenerate it against the current flush path"
done
cp "$clone/$target" "$work/hyperv.c.orig"
# A fresh copy (new mtime), so that kbuild rebuilds it after a mutant.
restore() { cp "$work/hyperv.c.orig" "$clone/$target"; }
on_exit restore
vdir=$work/stage/mutants
for i in "${!mutants[@]}"; do
	name=${names[i]}
	msg "building mutant $name: $(sed -n 's/^Mutant: //p' "${mutants[i]}")"
	(cd "$clone" && git apply "${mutants[i]}")
	rc=0
	MODULES_QUIET=1 TREE=$clone "$TOP/scripts/modules.sh" "$mbuild" >"$work/build-$name.log" 2>&1 || rc=$?
	restore
	[ "$rc" -eq 0 ] || { tail -n 20 "$work/build-$name.log" >&2; die "mutant $name does not build (exit $rc)"; }
	mkdir -p "$vdir/$name"
	cp "$mbuild/kvm.ko" "$vdir/$name/kvm.ko"
done

# --- the selftest, and one boot for every variant ------------------------------
bindir=$(SELFTESTS_BUILD_ONLY=1 TESTS=$TEST "$TOP/scripts/selftests.sh" | tail -n1)
[ -x "$bindir/$TEST" ] || die "no $TEST in $bindir after the build"
stage=$work/stage
qemu_stage_modules "$stage/mods" patched
qemu_stage_init "$stage" "$vendor"
mkdir -p "$vdir/patched"
cp "$stage/mods/kvm.ko" "$vdir/patched/kvm.ko"
cp "$bindir/$TEST" "$stage/$TEST"
{
	echo "variants='patched ${names[*]}' vendor=$vendor TEST_TIMEOUT=$TEST_TIMEOUT"
	cat <<'EOF'
for v in $variants; do
	rmmod kvm_$vendor kvm || echo "@@FAIL rmmod before $v"
	n=$(dmesg | wc -l)
	echo "@@PROGRESS $v"
	if insmod /mutants/$v/kvm.ko && insmod /mods/kvm-$vendor.ko; then
		s=$(date +%s)
		echo "@@BEGIN $v"
		timeout -s KILL "$TEST_TIMEOUT" /hyperv_tlb_flush_ranges 2>&1
		echo "@@END $v rc=$? secs=$(($(date +%s) - s))"
	else
		echo "@@END $v rc=insmod secs=0"
	fi
	echo "@@VDMESG-BEGIN $v"
	dmesg | tail -n +$((n + 1))
	echo "@@VDMESG-END $v"
done
EOF
} >"$stage/payload.sh"
qemu_pack "$stage" "$work/initrd.cpio"
rm -rf "$stage"

msg "booting QEMU (CPU=$CPU): $TEST on the patched modules, then on ${#names[@]} mutants"
t=$(date +%s)
rc=0
QEMU_TIMEOUT=${QEMU_TIMEOUT:-$(((${#names[@]} + 1) * (TEST_TIMEOUT + 30) + 120))} \
	qemu_boot "$work/initrd.cpio" "$work/console.log" "$CPU" || rc=$?
rm -f "$work/initrd.cpio"
[ "$rc" -eq 124 ] && warn "QEMU timed out (QEMU_TIMEOUT=...)"
log=$work/console.log
msg "boot and $((${#names[@]} + 1)) runs took $(($(date +%s) - t)) s"

# verdict VARIANT: sets v_rc, v_secs, v_cases (the failing cases), v_splat.
verdict() {
	local v=$1 end
	qemu_section "$log" "@@BEGIN $v" "$(grep -m1 "^@@END $v " "$log" || echo "@@END $v")" >"$work/$v.ktap"
	end=$(grep -m1 "^@@END $v " "$log" || true)
	v_rc=$(sed -n 's/.* rc=\([a-z0-9]*\).*/\1/p' <<<"$end")
	v_secs=$(sed -n 's/.* secs=\([0-9]*\).*/\1/p' <<<"$end")
	v_cases=$(grep -E '^not ok ' "$work/$v.ktap" | sed -E 's/^not ok [0-9]+ //' | tr '\n' ' ' | sed 's/ $//' || true)
	v_splat=$(qemu_section "$log" "@@VDMESG-BEGIN $v" "@@VDMESG-END $v" | grep -m1 -E "$QEMU_SPLAT_RE" || true)
}

# The patched run is the control: it must pass, on a clean kernel.
verdict patched
if [ -z "$v_rc" ] || [ "$v_rc" != 0 ] || [ -n "$v_cases" ] || [ -n "$v_splat" ]; then
	grep -v '^@@' "$log" | tail -n 40 >&2
	die "$TEST does not pass on the patched modules in this boot (rc ${v_rc:-none}${v_cases:+; failing: $v_cases}${v_splat:+; kernel: $v_splat}), so killing mutants means nothing; see ${out#"$TOP"/}/console.log"
fi
msg "control: $TEST passed on the patched modules in ${v_secs}s ($(grep -m1 '^# verdicts' "$work/patched.ktap" | sed 's/^# //'))"

killed=0
results=()
for i in "${!names[@]}"; do
	name=${names[i]}
	verdict "$name"
	if [ -z "$v_rc" ] && grep -q "^@@BEGIN $name$" "$log" &&
		sed -n "/^@@BEGIN $name\$/,\$p" "$log" | grep -qE "$QEMU_SPLAT_RE"; then
		# The kernel died with this mutant loaded: a kill, but the
		# mutants after it did not run, so the run fails all the same.
		killed=$((killed + 1))
		line="killed   $name by a kernel crash while it ran: $(sed -n "/^@@BEGIN $name\$/,\$p" "$log" | grep -m1 -E "$QEMU_SPLAT_RE")"
	elif [ -z "$v_rc" ]; then
		line="ERROR    $name: did not run to its end (the guest crashed or timed out earlier)"
	elif [ "$v_rc" = insmod ]; then
		line="ERROR    $name: its kvm.ko did not load"
	elif [ "$v_rc" != 0 ] || [ -n "$v_cases" ] || [ -n "$v_splat" ]; then
		killed=$((killed + 1))
		line="killed   $name in ${v_secs}s (exit $v_rc)"
		[ -z "$v_cases" ] || line+=" by $(wc -w <<<"$v_cases") case(s): $v_cases"
		[ -z "$v_splat" ] || line+="; kernel: $v_splat"
	else
		line="SURVIVED $name in ${v_secs}s: $TEST passed ($(grep -m1 '^# verdicts' "$work/$name.ktap" | sed 's/^# //'))"
	fi
	results+=("$line")
done

rm -rf "${out:?}/results"
mkdir -p "$out/results"
cp "$log" "$work"/*.ktap "$out/results/"
printf '%s\n' "${results[@]}" | tee "$out/results/results.txt"
msg "killed $killed/${#names[@]} flush-path mutants in $(($(date +%s) - start)) s (results in ${out#"$TOP"/}/results)"
[ "$killed" -eq ${#names[@]} ] ||
	die "$((${#names[@]} - killed)) flush-path mutant(s) not killed; add a case to $TEST that catches each"
