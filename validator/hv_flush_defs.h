/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the validator needs beyond the selftest library of the tree it is
 * built against (6.12.y or mainline, with or without a series applied):
 * its own names, so that they never clash with a library that has them.
 */
#ifndef VALIDATOR_HV_FLUSH_DEFS_H
#define VALIDATOR_HV_FLUSH_DEFS_H

#include "test_util.h"

/*
 * TLFS: an entry of the GVA list of HvFlushVirtualAddressList{,Ex}: bits
 * 63:12 are the first page, bits 11:0 the number of pages after it.
 */
#define GVA_PAGE_MASK		GENMASK_ULL(63, 12)
#define GVA_EXTRA_PAGES_MASK	GENMASK_ULL(11, 0)
#define GVA_MAX_PAGES		(GVA_EXTRA_PAGES_MASK + 1)

/* TLFS: the formats of a VP set (HV_GENERIC_SET_FORMAT). */
#define VPSET_SPARSE_4K		0ULL
#define VPSET_ALL		1ULL

/* TLFS: the rep start index of the hypercall input value, bits 59:48. */
#define HCALL_REP_START_OFFSET	48

/*
 * The selftest library renamed its GVA allocators in mainline;
 * validator.mk says which names the tree has.
 */
#ifdef VALIDATOR_VM_VADDR_API
#define val_alloc_pages(vm, n)	vm_vaddr_alloc_pages(vm, n)
#define val_alloc_page(vm)	vm_vaddr_alloc_page(vm)
#else
#define val_alloc_pages(vm, n)	vm_alloc_pages(vm, n)
#define val_alloc_page(vm)	vm_alloc_page(vm)
#endif

#endif /* VALIDATOR_HV_FLUSH_DEFS_H */
