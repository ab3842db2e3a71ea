# SPDX-License-Identifier: GPL-2.0
#
# KVM Hyper-V PV TLB flush range series: build, test and send it.
# Every target is a thin wrapper around one script in scripts/.
# SERIES=stable (default: patches/6.12.y) or SERIES=mainline (patches/mainline).

SHELL := /bin/bash
S := scripts

.PHONY: all deps base tree ensure-tree export modules smoke selftests redgreen \
	fuzz kunit debug mutants lint send test-send check clean distclean help

## all: the main job: tree, modules, smoke boot, red/green selftest table
all: tree modules smoke redgreen

## deps: install every package the harness uses, and prove each program works
deps:
	$(S)/deps.sh

## base: fetch and unpack the pinned Debian kernel into the cache
base:
	$(S)/base.sh

## tree: build/tree = base + one commit per patch (KSRC=<git tree> for your own)
tree:
	$(S)/tree.sh

# Every other target tests the tree as it is; this only makes a missing
# tree, or rebuilds one that holds no work of its own after patches/ changed.
ensure-tree:
	$(S)/tree.sh --ensure

## export: rewrite patches/<series>/ from build/tree
export:
	$(S)/export.sh

## modules: build the patched kvm.ko, kvm-amd.ko, kvm-intel.ko out of tree
modules: ensure-tree
	$(S)/modules.sh

.PHONY: install uninstall test-install

## install: put the patched modules into /lib/modules/<KREL>/updates, depmod (KREL= DESTDIR=)
install:
	$(S)/install.sh install

## uninstall: remove exactly what make install put there, depmod (KREL= DESTDIR=)
uninstall:
	$(S)/install.sh uninstall

## test-install: install's refusals, and modprobe of the installed modules in the QEMU guest
test-install: modules
	$(S)/test-install.sh

## smoke: boot the Debian kernel under QEMU and load the patched modules
smoke: modules
	$(S)/smoke.sh

## selftests: run the Hyper-V selftests under QEMU (CPU=48|la57, MODS=patched|stock)
selftests: modules
	$(S)/selftests.sh

## redgreen: the new selftest on stock (must fail) and patched (must pass) modules
redgreen: modules
	$(S)/redgreen.sh

## fuzz: the selftest's fuzzer under QEMU (N=rounds SEED=seed MODS= CPU=)
fuzz: modules
	$(S)/fuzz.sh

.PHONY: bench

## bench: time the PV TLB flush hypercalls, stock vs patched vs bounded modules in one QEMU boot (ROUNDS= BENCH_ARGS= VARIANTS=)
bench: modules
	$(S)/bench.sh

## kunit: run the KUnit suite with kunit.py
kunit: ensure-tree
	$(S)/kunit.sh

## debug: a KASAN/UBSAN/lockdep kernel built from the tree (KVM built in, KUnit
##   as a module) under QEMU: KUnit, every Hyper-V selftest, fuzzer (SERIES=, FUZZ_ROUNDS=)
debug: ensure-tree
	$(S)/debug.sh

## mutants: require the KUnit suite to kill every mutant of the helper
mutants: ensure-tree
	$(S)/mutants.sh

.PHONY: selftest-mutants

## selftest-mutants: require hyperv_tlb_flush_ranges to kill every mutant of the flush path (mutants/flush-path/), all in one QEMU boot (CPU=)
selftest-mutants: modules
	$(S)/selftest-mutants.sh

## lint: checkpatch, per-patch W=1 builds (and sparse on 6.12.y), kernel-doc, Sphinx
lint: ensure-tree
	$(S)/lint.sh

## send: SERIES=stable: the stable-kernel-rules option-2 request for 45692aa4a7ce; SERIES=mainline: git send-email the series (dry run unless SEND=1; V=2 for a v2; SIGNOFF=1 signs the mainline series off as you)
send: ensure-tree
	$(S)/send.sh

## test-send: send the series to an SMTP server on 127.0.0.1 and git am it back
test-send: ensure-tree
	$(S)/test-send.sh

.PHONY: results

## results: rewrite the README's results tables from the last make check, red/green and fuzz runs
results:
	$(S)/results.sh

## check: every check; ends with "N passed, N failed" (STAGES="a b" for some)
check:
	$(S)/check.sh

## clean: remove build/ (refuses while build/tree holds unexported work)
clean:
	$(S)/clean.sh

## distclean: also remove the download and build cache (not the sent records)
distclean:
	$(S)/clean.sh --cache

## help: list the targets
help:
	@sed -n 's/^## //p' Makefile
