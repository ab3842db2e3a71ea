#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: time the Hyper-V PV TLB flush hypercalls with
# hyperv_tlb_flush_bench (bench/hyperv_tlb_flush_bench.c, a tool of this
# harness, not part of either series: built against $TREE's selftest
# library like the validator, never copied into $TREE) on Debian's
# stock KVM modules, the patched ones
# (make modules) and the patched ones plus the optional bounding patch
# (patches/optional/6.12.y/, applied to a scratch clone, never to $TREE),
# all in one QEMU boot: each round reloads kvm/kvm-amd once per variant,
# in a rotating order, so that drift hits every variant alike.  Prints a
# table of medians with patched/stock and bound/patched ratios, their
# spread over the rounds, and the targets.  Results: build/bench/.
#
#   ROUNDS=5              rounds (each runs every variant once)
#   BENCH_ARGS="-t 300"   arguments of the benchmark: -n/-m the least and
#                         most calls per case, -w warm-up calls, -t the
#                         time per case in ms, -c <case> (repeatable)
#   VARIANTS="stock patched bound"   which modules (bound needs the patch)
#   BENCH_SMOKE=1         make check's smoke test: stock and patched, one
#                         round, a few calls per case; checks only that
#                         every case reported parsable numbers
#   KUNIT_BENCH=0         skip the expansion alone: a KUnit case (in
#                         patches/optional/6.12.y/bench/, applied to the
#                         KUnit mirror like the mutants, never to $TREE)
#                         that times 6.12.117's loop against the canonical run
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/qemu.sh
. "$(dirname "$0")/qemu.sh"

TEST=hyperv_tlb_flush_bench
OPTIONAL=$TOP/patches/optional/6.12.y
if [ -n "${BENCH_SMOKE:-}" ]; then
	: "${ROUNDS:=1}" "${VARIANTS:=stock patched}" "${BENCH_ARGS:=-n 3 -m 3 -w 0 -t 0}" "${KUNIT_BENCH:=0}"
else
	: "${ROUNDS:=5}" "${VARIANTS:=stock patched bound}" "${BENCH_ARGS:=-t 300}" "${KUNIT_BENCH:=1}"
fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
read -r -a variants <<<"$VARIANTS"
for v in "${variants[@]}"; do
	case $v in stock | patched | bound) ;; *) die "VARIANTS: '$v' is not stock, patched or bound" ;; esac
done
[ ${#variants[@]} -gt 0 ] || die "VARIANTS is empty"
[[ $BENCH_ARGS =~ ^[-\ a-z0-9_]*$ ]] || die "BENCH_ARGS may hold only options, numbers and case names, not '$BENCH_ARGS'"

harness_lock
qemu_need_pkgs
need_stage selftests modules
base_env
tree_require
[ -d "$TREE/tools/testing/selftests/kvm/x86_64" ] ||
	die "${TREE#"$TOP"/} has no tools/testing/selftests/kvm/x86_64: make bench runs on the 6.12.y series only"
tree_report
vendor=$(qemu_vendor)
out=$BUILD/bench
mkdir -p "$out"
work=$(mktemp -d "$out/.run.XXXXXX")
on_exit "rm -rf '$work'"

# --- the modules -----------------------------------------------------------
MODULES_QUIET=1 "$TOP/scripts/modules.sh"
bound_tree=''
if [[ " ${variants[*]} " == *" bound "* ]]; then
	mapfile -t opt < <(find "$OPTIONAL" -maxdepth 1 -name '*.patch' 2>/dev/null | sort)
	[ ${#opt[@]} -gt 0 ] || die "no optional patch in ${OPTIONAL#"$TOP"/}; VARIANTS=\"stock patched\" runs without it"
	# A sparse, shared clone of the tree as it is: the KVM sources, the
	# headers modules.sh overlays, uncommitted changes, then the patch.
	# Reused from run to run: a checkout rewrites only the files that
	# changed, so modules.sh rebuilds little.
	bound_tree=$out/tree-bound
	msg "applying ${#opt[@]} optional patch(es) to a scratch clone, ${bound_tree#"$TOP"/}"
	scratch_clone "$bound_tree" arch/x86/kvm virt/kvm include arch/x86/include
	for p in "${opt[@]}"; do
		git -C "$bound_tree" apply --check "$p" 2>"$work/apply.err" || {
			cat "$work/apply.err" >&2
			die "optional patch $(basename "$p") does not apply to ${TREE#"$TOP"/}; refresh it against the series"
		}
		git -C "$bound_tree" apply "$p"
	done
	MODULES_QUIET=1 TREE=$bound_tree "$TOP/scripts/modules.sh" "$BUILD/modules/bound"
fi

# --- the benchmark, built statically like the selftests ------------------------
# bench/$TEST.c is this harness's own program, in no series and in no
# selftests Makefile: selftests.sh builds it against $TREE's selftest
# library as an extra program (TEST_SOURCES=), the way it builds the
# validator, so a series change to the Makefile cannot break it.
msg "building $TEST (bench/$TEST.c) against ${TREE#"$TOP"/}'s selftest library"
bindir=$(SELFTESTS_BUILD_ONLY=1 TESTS='' TEST_SOURCES="$TOP/bench/$TEST.c" "$TOP/scripts/selftests.sh" | tail -n1)
bin=$(dirname "$bindir")/extra/$TEST
[ -x "$bin" ] || die "building bench/$TEST.c gave no $bin"

# --- one boot: every round loads each variant once -------------------------------
stage=$work/stage
qemu_stage_modules "$stage/mods" patched
qemu_stage_init "$stage" "$vendor"
for v in "${variants[@]}"; do
	if [ "$v" = bound ]; then
		PATCHED_MODS_DIR=$BUILD/modules/bound qemu_stage_modules "$stage/mods-$v" patched
	else
		qemu_stage_modules "$stage/mods-$v" "$v"
	fi
done
cp "$bin" "$stage/$TEST"
{
	echo "variants='${variants[*]}' rounds=$ROUNDS vendor=$vendor"
	cat <<EOF
args='$BENCH_ARGS'
EOF
	cat <<'EOF'
set -- $variants
n=$#
r=1
while [ $r -le $rounds ]; do
	# Rotate the order each round: drift then hits every variant alike.
	i=0
	while [ $i -lt $n ]; do
		k=$(( (i + r - 1) % n + 1 ))
		eval v=\${$k}
		rmmod kvm_$vendor kvm || echo "@@FAIL rmmod before $v"
		insmod /mods-$v/kvm.ko && insmod /mods-$v/kvm-$vendor.ko || echo "@@FAIL insmod $v"
		echo "@@PROGRESS round $r/$rounds: $v modules"
		echo "@@BENCH-BEGIN $v $r"
		timeout -s KILL 900 /hyperv_tlb_flush_bench $args 2>&1
		echo "@@BENCH-END $v $r rc=$?"
		i=$((i + 1))
	done
	r=$((r + 1))
done
EOF
} >"$stage/payload.sh"
qemu_pack "$stage" "$work/initrd.cpio"
rm -rf "$stage"

msg "booting QEMU: ${variants[*]} modules, $ROUNDS round(s), benchmark args '$BENCH_ARGS'"
start=$(date +%s)
rc=0
QEMU_TIMEOUT=${QEMU_TIMEOUT:-3600} qemu_boot "$work/initrd.cpio" "$work/console.log" 48 || rc=$?
secs=$(($(date +%s) - start))
rm -f "$work/initrd.cpio"
cp "$work/console.log" "$out/console.log"
[ "$rc" -eq 124 ] && warn "QEMU timed out after ${QEMU_TIMEOUT:-3600} s (QEMU_TIMEOUT=...)"
kproblems=$(qemu_check_kernel "$work/console.log" | sed '/^$/d')
if [ -n "$kproblems" ]; then
	printf '%s\n' "$kproblems" | sed 's/^/kernel: /' >&2
	die "the benchmark boot had problems (see above); console log: ${out#"$TOP"/}/console.log"
fi
msg "boot and benchmark took $secs s"

# --- the expansion alone, at the KUnit level ------------------------------------------
kunit_lines=$work/kunit.txt
: >"$kunit_lines"
if [ "$KUNIT_BENCH" = 1 ]; then
	kdiff=$OPTIONAL/bench/kunit-expansion-timing.diff
	ksrc=$CACHE/kunit/$SERIES/src
	kfile=arch/x86/kvm/hyperv_kunit.c
	[ -f "$kdiff" ] || die "no $kdiff; KUNIT_BENCH=0 skips the KUnit timing"
	harness_lock "$CACHE/kunit/$SERIES"
	msg "KUnit: the suite as it is (mirrors ${TREE#"$TOP"/}), then with the timing case (log: ${out#"$TOP"/}/kunit.log)"
	KUNIT_KERNEL=plain "$TOP/scripts/kunit.sh" >"$out/kunit.log" 2>&1 ||
		die "the KUnit suite of ${TREE#"$TOP"/} does not pass; see ${out#"$TOP"/}/kunit.log or run 'make kunit'"
	(cd "$ksrc" && git apply --check "$kdiff" 2>/dev/null) ||
		die "$(basename "$kdiff") does not apply to $kfile of ${TREE#"$TOP"/}; refresh it"
	on_exit "cp '$TREE/$kfile' '$ksrc/$kfile'"
	(cd "$ksrc" && git apply "$kdiff")
	rc=0
	KUNIT_KERNEL=plain KUNIT_NO_SYNC=1 "$TOP/scripts/kunit.sh" >>"$out/kunit.log" 2>&1 || rc=$?
	cp "$TREE/$kfile" "$ksrc/$kfile"
	[ "$rc" -eq 0 ] || die "the KUnit timing run failed (exit $rc); see ${out#"$TOP"/}/kunit.log"
	grep -ho 'BENCH-KUNIT .*' "$CACHE/kunit/$SERIES/build/test.log" >"$kunit_lines" || true
	[ -s "$kunit_lines" ] || die "the KUnit timing case printed no BENCH-KUNIT lines; see $CACHE/kunit/$SERIES/build/test.log"
fi

# --- the table -------------------------------------------------------------------
machine="$(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo); guest: QEMU TCG EPYC-Rome,+svm,+npt, Debian $KREL"
python3 - "$work/console.log" "${BENCH_SMOKE:-}" "$machine" "$kunit_lines" "${variants[@]}" >"$out/table.txt" <<'EOF' || { cat "$out/table.txt" >&2; die "the benchmark's output did not parse; console log: ${out#"$TOP"/}/console.log"; }
import re, statistics as st, sys

log, smoke, machine, kunit, variants = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
cur = None
runs = {}        # (variant, round) -> {case: (median_ns, p10, p90, median_cycles, pages, n)}
plans = {}
order = []
errors = []
for line in open(log, errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"^@@BENCH-BEGIN (\S+) (\d+)$", line)
    if m:
        cur = (m.group(1), int(m.group(2)))
        runs[cur] = {}
        continue
    m = re.match(r"^@@BENCH-END (\S+) (\d+) rc=(\d+)$", line)
    if m:
        if m.group(3) != "0":
            errors.append("%s round %s: the benchmark exited with %s" % (m.group(1), m.group(2), m.group(3)))
        cur = None
        continue
    if cur is None:
        continue
    m = re.match(r"^1\.\.(\d+)$", line)
    if m:
        plans[cur] = int(m.group(1))
    m = re.match(r"^# BENCH (\S+) n=(\d+) median=(\d+) p10=(\d+) p90=(\d+) median_ns=(\d+) pages=(\d+)$", line)
    if m:
        name = m.group(1)
        n, med, p10, p90, ns, pages = (int(x) for x in m.groups()[1:])
        if n < 1 or not p10 <= med <= p90:
            errors.append("%s: inconsistent numbers: %s" % (name, line))
        runs[cur][name] = (ns, p10 * ns / max(med, 1), p90 * ns / max(med, 1), med, pages, n)
        if name not in order:
            order.append(name)
    if re.match(r"^not ok ", line):
        errors.append("%s round %d: %s" % (cur[0], cur[1], line))
rounds = sorted({r for (_, r) in runs})
for v in variants:
    for r in rounds or [1]:
        if (v, r) not in runs:
            errors.append("%s round %d: no output" % (v, r))
        elif not runs[(v, r)] or plans.get((v, r)) != len(runs[(v, r)]):
            errors.append("%s round %d: %d BENCH lines for a plan of %s" % (v, r, len(runs[(v, r)]), plans.get((v, r))))
if errors or not order:
    print("\n".join(errors) or "no BENCH lines at all")
    sys.exit(1)

def med(v, c):
    return st.median(runs[(v, r)][c][0] for r in rounds)

def ratios(a, b, c):
    return [runs[(a, r)][c][0] / runs[(b, r)][c][0] for r in rounds]

def fmt_ns(x):
    return "%.1f ms" % (x / 1e6) if x >= 1e6 else "%.1f us" % (x / 1e3) if x >= 1e4 else "%d ns" % x

print("Hyper-V PV TLB flush hypercalls, median time per call (TSC), %d round(s)" % len(rounds))
print("machine: %s" % machine)
print("Absolute times are QEMU TCG emulation times, far from hardware; the ratios count.")
print("The spread [min-max] of a ratio is over the rounds; one round compares variants of one boot.")
print()
head = ["case", "pages"] + variants
if "stock" in variants and "patched" in variants:
    head.append("patched/stock")
if "patched" in variants and "bound" in variants:
    head.append("bound/patched")
rows = [head]
for c in order:
    row = [c, str(runs[(variants[0], rounds[0])][c][4])]
    row += [fmt_ns(med(v, c)) for v in variants]
    for a, b in (("patched", "stock"), ("bound", "patched")):
        if a in variants and b in variants:
            q = ratios(a, b, c)
            row.append("%.3f [%.3f-%.3f]" % (st.median(q), min(q), max(q)))
    rows.append(row)
w = [max(len(r[i]) for r in rows) for i in range(len(head))]
for r in rows:
    print("  ".join(x.ljust(w[i]) if i == 0 else x.rjust(w[i]) for i, x in enumerate(r)))

if smoke:
    print()
    print("smoke run: %d cases x %d variant(s) parsed; no timing judged" % (len(order), len(variants)))
    sys.exit(0)

# Noise: how much a variant's median moves from round to round, and the
# in-run spread (p90/p10) of the single calls.
print()
for v in variants:
    d = [(max(runs[(v, r)][c][0] for r in rounds) - min(runs[(v, r)][c][0] for r in rounds)) / med(v, c)
         for c in order]
    s = [runs[(v, r)][c][2] / max(runs[(v, r)][c][1], 1) for c in order for r in rounds]
    print("noise %-8s round-to-round (max-min)/median: median %.1f%%, worst %.1f%%; in-run p90/p10: median %.2f"
          % (v, 100 * st.median(d), 100 * max(d), st.median(s)))

# Per page: the 4096-page range against the one-page one, on the sender.
print()
for v in (x for x in variants if x != "bound"):
    for code in ("list", "listex"):
        a, b = "%s_self_1x4096" % code, "%s_self_1x1" % code
        if a in order and b in order:
            print("per page %-8s %-6s self: %.1f ns/page ((1x4096 - 1x1) / 4095)"
                  % (v, code, (med(v, a) - med(v, b)) / 4095))

kl = [l.split() for l in open(kunit) if l.startswith("BENCH-KUNIT ")]
if kl:
    print()
    print("The expansion alone (KUnit, QEMU TCG, both loops out of line with the same indirect")
    print("callback; median of 7 interleaved trials of 100 x 4096 pages; [min-max]):")
    for f in kl:
        d = dict(x.split("=") for x in f[2:])
        ps = lambda k: int(d[k]) / 1000
        sp = int(d["stock_ps_per_page"])
        # The 6.12.117 loop drops a range with a non-canonical base after one check.
        ratio = "ratio %.3f" % (int(d["patched_ps_per_page"]) / sp) if sp >= 100 else "the 6.12.117 loop checks only the base"
        print("  %-13s 6.12.117 loop %.2f ns/page [%.2f-%.2f], canonical run %.2f ns/page [%.2f-%.2f], %s"
              % (f[1], ps("stock_ps_per_page"), ps("stock_min"), ps("stock_max"),
                 ps("patched_ps_per_page"), ps("patched_min"), ps("patched_max"), ratio))

print()
if "stock" in variants and "patched" in variants:
    # The sender's own flushes: waits for the other vCPU are time slices.
    canon = [c for c in order if "_self_" in c and "noncanonical" not in c]
    q = [st.median(ratios("patched", "stock", c)) for c in canon]
    spread = st.median([max(ratios("patched", "stock", c)) - min(ratios("patched", "stock", c)) for c in canon])
    verdict = ("MET" if max(q) <= 1.02 else
               "MET within the noise" if max(q) - 1 <= spread else "NOT MET")
    print("target patched/stock <= 1.02 or within the noise (canonical cases, self): median ratio %.3f,"
          " worst %.3f (%s); median round-to-round spread of the ratio %.3f: %s"
          % (st.median(q), max(q), canon[q.index(max(q))], spread, verdict))
    # A wholly non-canonical range: 6.12.117 drops it after one check of
    # its base, the canonical run after one check of each end.
    for c in (x for x in order if "_self_" in x and "noncanonical" in x):
        r = st.median(ratios("patched", "stock", c))
        print("target patched/stock <= 1.05 (%s, wholly non-canonical): median ratio %.3f: %s"
              % (c, r, "MET" if r <= 1.05 else "NOT MET"))
if "patched" in variants and "bound" in variants:
    for c in ("list_self_15x4096", "listex_self_15x4096"):
        if c in order:
            x = med("patched", c) / med("bound", c)
            print("target worst case %s >= 10x cheaper bound: %s -> %s, %.1fx %s"
                  % (c, fmt_ns(med("patched", c)), fmt_ns(med("bound", c)), x,
                     "MET" if x >= 10 else "NOT MET"))
    for c in ("list_other_15x4096", "listex_other_15x4096"):
        if c in order:
            print("not judged: %s %s -> %s; under TCG with thread=single one host thread runs"
                  " both vCPUs in turns, so waiting for the other vCPU costs whole time slices"
                  % (c, fmt_ns(med("patched", c)), fmt_ns(med("bound", c))))
EOF
cat "$out/table.txt"
msg "table in ${out#"$TOP"/}/table.txt, console log in ${out#"$TOP"/}/console.log"
