# SPDX-License-Identifier: GPL-2.0
#
# Build the validator against the selftest library of a kernel tree,
# with that tree's own flags:
#
#   make -C <tree>/tools/testing/selftests/kvm -f <this file> \
#	VALIDATOR_SRC=<dir of this file> VALIDATOR_ARCH_DIR=x86_64|x86 \
#	OUTPUT=<dir> [other selftests] <OUTPUT>/<arch dir>/hyperv_tlb_flush_ranges
#
# The tree's Makefile is included unchanged, so the tree is only read
# and every object of the library lands under OUTPUT.  Works with 6.12's
# (ARCH_DIR x86_64) and mainline's (ARCH x86, Makefile.kvm) layouts.

include Makefile

ifeq ($(VALIDATOR_SRC),)
$(error VALIDATOR_SRC is not set: the directory of the validator's sources)
endif
ifeq ($(VALIDATOR_ARCH_DIR),)
$(error VALIDATOR_ARCH_DIR is not set: x86_64 (6.12) or x86 (mainline))
endif

VALIDATOR_BIN := $(OUTPUT)/$(VALIDATOR_ARCH_DIR)/hyperv_tlb_flush_ranges
VALIDATOR_OBJ := $(OUTPUT)/validator/hyperv_tlb_flush_ranges.o \
		 $(OUTPUT)/validator/kprobe_trace.o

# The library's GVA allocators before mainline renamed them.
ifneq ($(shell grep -sw vm_vaddr_alloc_pages include/kvm_util.h),)
VALIDATOR_CPPFLAGS := -DVALIDATOR_VM_VADDR_API
endif

-include $(VALIDATOR_OBJ:.o=.d)

$(OUTPUT)/validator/%.o: $(VALIDATOR_SRC)/%.c $(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(VALIDATOR_CPPFLAGS) $(TARGET_ARCH) -c $< -o $@

$(VALIDATOR_BIN): $(VALIDATOR_OBJ) $(LIBKVM_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) $(TARGET_ARCH) $^ $(LDLIBS) -o $@
