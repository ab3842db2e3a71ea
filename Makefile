# SPDX-License-Identifier: GPL-2.0
#
# KVM Hyper-V PV TLB flush range series: build, test and send it.
# Every target is a thin wrapper around one script in scripts/.

SHELL := /bin/bash
S := scripts

.PHONY: all base tree export modules smoke selftests redgreen kunit mutants \
	lint send test-send check clean distclean help

## all: the main job: tree, modules, smoke boot, red/green selftest table
all: tree modules smoke redgreen

## base: fetch and unpack the pinned Debian kernel into the cache
base:
	$(S)/base.sh

## tree: build/tree = base + one commit per patch (KSRC=<git tree> for your own)
tree:
	$(S)/tree.sh

## export: rewrite patches/ from build/tree
export:
	$(S)/export.sh

## modules: build the patched kvm.ko, kvm-amd.ko, kvm-intel.ko out of tree
modules: tree
	$(S)/modules.sh

## smoke: boot the Debian kernel under QEMU and load the patched modules
smoke: modules
	$(S)/smoke.sh

## selftests: run the Hyper-V selftests under QEMU (CPU=48|la57, MODS=patched|stock)
selftests: modules
	$(S)/selftests.sh

## redgreen: the new selftest on stock (must fail) and patched (must pass) modules
redgreen: modules
	$(S)/redgreen.sh

## kunit: run the KUnit suite with kunit.py
kunit: tree
	$(S)/kunit.sh

## mutants: require the KUnit suite to kill every mutant of the helper
mutants: tree
	$(S)/mutants.sh

## lint: checkpatch, per-patch W=1 and sparse builds, kernel-doc, Sphinx
lint: tree
	$(S)/lint.sh

## send: git send-email the series (dry run unless SEND=1; V=2 for a v2)
send: tree
	$(S)/send.sh

## test-send: send the series to an SMTP server on 127.0.0.1 and git am it back
test-send: tree
	$(S)/test-send.sh

## check: every check; ends with "N passed, N failed"
check:
	$(S)/check.sh

## clean: remove build/ (the download and ccache cache stays)
clean:
	rm -rf build

## distclean: also remove the cache ($$XDG_CACHE_HOME/kvm-hv-flush)
distclean: clean
	. $(S)/lib.sh && rm -rf "$$CACHE"

## help: list the targets
help:
	@sed -n 's/^## //p' Makefile
