// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Hyper-V PV TLB flush hypercalls, HvFlushVirtualAddress{Space,List}
 * and their Ex forms, checked against the flushes KVM really does.
 *
 * A stale TLB entry cannot be observed reliably from inside the guest, so
 * the host watches KVM instead: kprobe events in a private tracefs instance
 * record every GVA KVM hands to the vendor's per-GVA flush, every full
 * flush of a vCPU's TLB, when the Hyper-V flush path falls back to a full
 * flush, and each VM entry and nested transition.  A flush is in time if
 * it is done before the vCPU runs guest code of the caller's level (L1 or
 * L2) again: the sender before its call returns, another target before
 * its first VM entry after that.  Each case gets one verdict:
 *
 *  - exact: the flushes were what KVM's flush FIFO implies: the pages of
 *    the ranges that are canonical for the host's address width, or a full
 *    flush where KVM falls back to one;
 *  - superset: some pages were covered by a full flush done for another
 *    reason (which also empties the FIFO), or more pages were flushed;
 *  - wrong: a non-canonical GVA reached the vendor flush, a canonical page
 *    was neither flushed nor covered by a full flush in time, the
 *    hypercall returned an unexpected status, or the oracle lost events.
 *
 * Only "wrong" fails.  The test fails, rather than skips, when the oracle
 * cannot be set up (no tracefs or kprobe events, or TDP off, where KVM
 * always flushes everything), unless HV_FLUSH_ALLOW_NO_ORACLE=1 asks for a
 * skip (for manual runs on hosts without kprobe events).
 *
 * With -f [-s seed] [-n rounds] [-c calls] [-t seconds], or
 * HV_FLUSH_FUZZ_{ROUNDS,SEED,CALLS,SECONDS} in the environment, the test
 * runs seeded random rounds of hypercalls instead of the cases, judged the
 * same way (see fuzz()): at least the given rounds, and then more until at
 * least the given number of hypercalls and seconds are reached.  A batch
 * whose trace was not read whole is judged again one round at a time.
 *
 * Expectations are marked TLFS where they follow from the Hyper-V TLFS,
 * and KVM where they are implementation choices of KVM (checked against
 * arch/x86/kvm/hyperv.c): the 16-slot flush FIFO per vCPU, with one slot
 * kept for a flush-all entry, and processing the FIFO in order up to the
 * first flush-all entry.
 */
#include <execinfo.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <asm/barrier.h>

#include "apic.h"
#include "kvm_util.h"
#include "processor.h"
#include "hyperv.h"
#include "kprobe_trace.h"
#include "hv_flush_defs.h"
#include "svm_util.h"
#include "test_util.h"
#include "vmx.h"

/* vCPU 0 runs the rounds; every vCPU may send hypercalls in a round. */
#define NR_VCPUS	3
#define SENDER		0

/* VP index 65 puts vCPU 2 into the second sparse bank. */
static const u32 vp_index[NR_VCPUS] = { 0, 1, 65 };

/* Targets of a flush: vCPU indexes, or every vCPU. */
#define T_SELF		BIT(0)
#define T_W1		BIT(1)
#define T_W2		BIT(2)
#define T_ALL		BIT(7)

/*
 * KVM: a vCPU's FIFO has 16 slots and a request is queued only if it
 * leaves a slot free, so a list of up to 15 entries is queued as is and a
 * longer one, or one that does not fit behind pending requests, becomes a
 * flush-all entry.  KVM does not even read lists longer than 15 entries.
 */
#define FIFO_SLOTS	16
#define MAX_QUEUED	(FIFO_SLOTS - 1)
/* TLFS: fast hypercalls pass their input in six XMM registers. */
#define XMM_REGS	6
#define XMM_HALVES	(2 * XMM_REGS)
/* TLFS: 12 bits of rep count. */
#define MAX_REPS	4095

/* Enough for 4095 entries after the header and a few banks. */
#define INPUT_PAGES	10

/* An entry of the GVA list: 'extra' pages follow the page at 'base'. */
#define RANGE(base, extra)						\
	(((u64)(base) & GVA_PAGE_MASK) |			\
	 ((u64)(extra) & GVA_EXTRA_PAGES_MASK))
/* KVM: its internal flush-all marker, also a legal (wrapping) range. */
#define FLUSH_ALL_ENTRY	RANGE(~0ULL, GVA_MAX_PAGES - 1)
#define LAST		(GVA_MAX_PAGES - 1)

/* The last page below and the first page above each non-canonical hole. */
#define LO48_END	0x00007ffffffff000ULL
#define HI48_START	0xffff800000000000ULL
#define LO57_END	0x00fffffffffff000ULL
#define HI57_START	0xff00000000000000ULL
#define NC_BOTH		0x8000000000000000ULL
#define TOP_PAGE	0xfffffffffffff000ULL

#define LIST		HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST
#define LIST_EX		HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX
#define SPACE		HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE
#define SPACE_EX	HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX

#define STATUS_BAD	HV_STATUS_INVALID_HYPERCALL_INPUT

/* One hypercall of a case, made by one vCPU. */
struct flush_call {
	u16 code;
	bool fast;
	u8 targets;
	/* The GVA list; it repeats its last entry up to 'reps' entries. */
	u8 nr;
	const u64 *entries;
	u16 reps;		/* rep count if not 'nr' */
	u16 rep_start;		/* rep start index */
	s8 var_cnt_delta;	/* var_cnt minus the number of banks */
	u8 set_all_banks;	/* banks sent along with HV_GENERIC_SET_ALL */
	bool empty_bank;	/* a sparse set with an empty bank after the last */
	bool mask_zero;		/* processor_mask 0, no HV_FLUSH_ALL_PROCESSORS */
	bool l2;		/* made by vCPU 0's nested guest */
};

struct flush_case {
	const char *name;
	struct flush_call call[NR_VCPUS];	/* indexed by the sending vCPU */
	u8 park;		/* vCPUs kept out of the guest until all calls are made */
	u8 purge;		/* parked vCPUs that get an unrelated full flush */
	u16 status;		/* expected status of every call */
	u8 full;		/* vCPUs expected to fall back to a full flush */
};

#define ENTRIES(...)							\
	.nr = ARRAY_SIZE(((const u64[]){ __VA_ARGS__ })),		\
	.entries = (const u64[]){ __VA_ARGS__ }

#define CALL(_code, _fast, _targets, ...)				\
	.code = _code, .fast = _fast, .targets = _targets, ENTRIES(__VA_ARGS__)

/* A case with one hypercall from vCPU 0 that flushes page by page. */
#define CASE(_name, _code, _fast, _targets, ...)			\
{									\
	.name = _name,							\
	.call[SENDER] = { CALL(_code, _fast, _targets, __VA_ARGS__) },	\
}

/* The same, expected to make the targets flush everything. */
#define CASE_FULL(_name, _code, _fast, _targets, _full, ...)		\
{									\
	.name = _name, .full = _full,					\
	.call[SENDER] = { CALL(_code, _fast, _targets, __VA_ARGS__) },	\
}

#define ALL_VCPUS	(T_SELF | T_W1 | T_W2)

/* The most one request queues (KVM): plain, crossing, hole, wrapping. */
static const u64 fifteen_mixed[] = {
	RANGE(0x1000, 2), RANGE(LO48_END - 0x1000, 2),
	RANGE(HI48_START - 0x1000, 2), RANGE(LO57_END - 0x1000, 2),
	RANGE(HI57_START - 0x1000, 2), RANGE(NC_BOTH, 3),
	RANGE(TOP_PAGE, 1), RANGE(0x200000, 0), RANGE(LO48_END, 3),
	RANGE(HI48_START - 0x3000, 3), RANGE(LO57_END, 3),
	RANGE(HI57_START - 0x3000, 3), RANGE(TOP_PAGE - 0x1000, 2),
	RANGE(LO48_END + 0x1000, 1), RANGE(LO48_END, LAST),
};

static const struct flush_case cases[] = {
	/* TLFS: each GVA of a range is valid or ignored on its own. */
	CASE("list_self_lower_half_into_noncanonical", LIST, false, T_SELF,
	     RANGE(LO48_END - 0x1000, 5)),
	CASE("list_w1_noncanonical_into_upper_half", LIST, false, T_W1,
	     RANGE(HI48_START - 0x3000, 4)),
	CASE("list_self_w1_wholly_noncanonical", LIST, false, T_SELF | T_W1,
	     RANGE(LO48_END + 0x1000, 15), RANGE(NC_BOTH, LAST)),
	/* KVM: pages are computed modulo 2^64. */
	CASE("list_all_wrap_past_2_64", LIST, false, T_ALL,
	     RANGE(TOP_PAGE - 0x1000, 3)),
	CASE("list_w1_4096_pages_off_lower_half", LIST, false, T_W1,
	     RANGE(LO48_END - 0x7f000, LAST)),
	CASE("list_all_4096_pages_into_upper_half", LIST, false, T_ALL,
	     RANGE(HI48_START - 0x80000, LAST)),
	/* KVM: (u64)-1 is its flush-all marker; earlier entries are flushed. */
	CASE_FULL("list_self_flush_all_entry", LIST, false, T_SELF, T_SELF,
		  FLUSH_ALL_ENTRY),
	CASE_FULL("list_all_flush_all_entry_first", LIST, false, T_ALL, ALL_VCPUS,
		  FLUSH_ALL_ENTRY, RANGE(LO48_END, 7)),
	CASE_FULL("list_w1_ranges_then_flush_all_entry", LIST, false, T_W1, T_W1,
		  RANGE(LO48_END - 0x1000, 3), FLUSH_ALL_ENTRY),
	{
		.name = "list_w1_15_entries_mixed",
		.call[SENDER] = { .code = LIST, .targets = T_W1,
				  .entries = fifteen_mixed, .nr = ARRAY_SIZE(fifteen_mixed) },
	},
	/* XMM ("fast") input */
	CASE("list_fast_self_both_boundaries", LIST, true, T_SELF,
	     RANGE(LO48_END - 0x1000, 5), RANGE(HI48_START - 0x2000, 5)),
	CASE("list_fast_all_11_entries_mixed", LIST, true, T_ALL,
	     RANGE(0x1000, 2), RANGE(LO48_END - 0x1000, 2),
	     RANGE(HI48_START - 0x1000, 2), RANGE(LO57_END - 0x1000, 2),
	     RANGE(HI57_START - 0x1000, 2), RANGE(NC_BOTH, 3),
	     RANGE(TOP_PAGE, 1), RANGE(LO48_END, LAST),
	     RANGE(HI48_START - 0x1000, 0), RANGE(LO57_END, 1), RANGE(0, 0)),
	CASE_FULL("list_fast_w1_flush_all_entry", LIST, true, T_W1, T_W1,
		  FLUSH_ALL_ENTRY),
	/* The Ex forms, with sparse banks */
	CASE("ex_w1_w2_both_boundaries", LIST_EX, false, T_W1 | T_W2,
	     RANGE(LO48_END, 3), RANGE(HI48_START - 0x1000, 3)),
	CASE("ex_all_4096_pages_both_boundaries", LIST_EX, false, T_ALL,
	     RANGE(LO48_END - 0x7f000, LAST), RANGE(HI48_START - 0x80000, LAST)),
	CASE("ex_self_w2_wrap_and_noncanonical", LIST_EX, false, T_SELF | T_W2,
	     RANGE(TOP_PAGE, 2), RANGE(LO48_END + 0x1000, 2),
	     RANGE(HI48_START - 0x1000, 1)),
	CASE_FULL("ex_all_flush_all_entry", LIST_EX, false, T_ALL, ALL_VCPUS,
		  FLUSH_ALL_ENTRY),
	CASE("ex_fast_w2_four_boundaries", LIST_EX, true, T_W2,
	     RANGE(LO48_END - 0x1000, 2), RANGE(HI48_START - 0x1000, 2),
	     RANGE(LO57_END - 0x1000, 2), RANGE(HI57_START - 0x1000, 2)),
	CASE("ex_fast_all_10_entries_mixed", LIST_EX, true, T_ALL,
	     RANGE(0x1000, 2), RANGE(LO48_END - 0x1000, 2),
	     RANGE(HI48_START - 0x1000, 2), RANGE(LO57_END - 0x1000, 2),
	     RANGE(HI57_START - 0x1000, 2), RANGE(NC_BOTH, 3),
	     RANGE(TOP_PAGE, 1), RANGE(LO48_END - 0x7f000, LAST),
	     RANGE(HI57_START - 0x80000, LAST), RANGE(0, 0)),
	CASE("ex_fast_self_w2_two_banks", LIST_EX, true, T_SELF | T_W2,
	     RANGE(LO48_END, 1), RANGE(HI48_START - 0x1000, 1),
	     RANGE(LO57_END, 1), RANGE(HI57_START - 0x1000, 1),
	     RANGE(TOP_PAGE, 1), RANGE(NC_BOTH, 1)),
	CASE_FULL("ex_fast_w1_flush_all_entry_first", LIST_EX, true, T_W1, T_W1,
		  FLUSH_ALL_ENTRY, RANGE(LO48_END, 1)),
	/* 57-bit boundaries, which only matter on an LA57 host */
	CASE("list_self_57_lower_half_into_noncanonical", LIST, false, T_SELF,
	     RANGE(LO57_END - 0x1000, 5)),
	CASE("list_w1_57_noncanonical_into_upper_half", LIST, false, T_W1,
	     RANGE(HI57_START - 0x3000, 4)),
	CASE("ex_all_57_4096_pages_both_boundaries", LIST_EX, false, T_ALL,
	     RANGE(LO57_END - 0x7f000, LAST), RANGE(HI57_START - 0x80000, LAST)),
	CASE("list_fast_all_57_mixed", LIST, true, T_ALL,
	     RANGE(LO57_END, 3), RANGE(HI57_START - 0x2000, 3),
	     RANGE(LO57_END + 0x1000, 1), RANGE(HI48_START - 0x1000, 1)),

	/*
	 * TLFS: the address space hypercalls flush the named address space
	 * and take no reps.  KVM: it flushes all of the target's TLB, a
	 * superset.
	 */
	{
		.name = "space_w1", .full = T_W1,
		.call[SENDER] = { .code = SPACE, .targets = T_W1 },
	},
	{
		.name = "space_fast_all", .full = ALL_VCPUS,
		.call[SENDER] = { .code = SPACE, .fast = true, .targets = T_ALL },
	},
	{
		.name = "space_ex_self_w2", .full = T_SELF | T_W2,
		.call[SENDER] = { .code = SPACE_EX, .targets = T_SELF | T_W2 },
	},
	{
		.name = "space_ex_fast_all", .full = ALL_VCPUS,
		.call[SENDER] = { .code = SPACE_EX, .fast = true, .targets = T_ALL },
	},
	/* TLFS: reps are not allowed for the address space hypercalls. */
	{
		.name = "space_with_reps_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { CALL(SPACE, false, T_W1, RANGE(0x1000, 0)) },
	},

	/* KVM: lists longer than the FIFO turn into full flushes. */
	{
		.name = "list_16_entries_flush_all", .full = T_W1,
		.call[SENDER] = { CALL(LIST, false, T_W1, RANGE(LO48_END, 1)),
				  .reps = 16 },
	},
	{
		.name = "list_ex_17_entries_flush_all", .full = T_W2,
		.call[SENDER] = { CALL(LIST_EX, false, T_W2, RANGE(HI48_START - 0x1000, 1)),
				  .reps = 17 },
	},
	{
		.name = "list_all_256_entries_flush_all", .full = ALL_VCPUS,
		.call[SENDER] = { CALL(LIST, false, T_ALL, RANGE(LO48_END - 0x1000, 2)),
				  .reps = 256 },
	},
	{
		.name = "list_ex_all_4095_entries_flush_all", .full = ALL_VCPUS,
		.call[SENDER] = { CALL(LIST_EX, false, T_ALL, RANGE(NC_BOTH, LAST)),
				  .reps = MAX_REPS },
	},
	/*
	 * TLFS: input that does not fit into the XMM registers is invalid,
	 * also when the list is longer than KVM's FIFO and would be flushed
	 * as a whole without being read.
	 */
	{
		.name = "list_fast_16_entries_overflow_xmm", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST, true, T_W1, RANGE(LO48_END, 0)),
				  .reps = 16 },
	},
	{
		.name = "list_fast_12_entries_overflow_xmm", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST, true, T_W1, RANGE(LO48_END, 0)),
				  .reps = 12 },
	},
	{
		.name = "list_ex_fast_11_entries_overflow_xmm", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST_EX, true, T_W1, RANGE(LO48_END, 0)),
				  .reps = 11 },
	},
	{
		.name = "list_ex_fast_2_banks_9_entries_overflow_xmm", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST_EX, true, T_W1 | T_W2, RANGE(LO48_END, 0)),
				  .reps = 9 },
	},
	/*
	 * KVM: a non-zero rep start index is rejected.  The TLFS defines it
	 * for continuing a rep hypercall that returned early; KVM never
	 * returns early, so it takes no continuation.
	 */
	{
		.name = "list_rep_start_1_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST, false, T_W1, RANGE(LO48_END, 1), RANGE(0, 0)),
				  .rep_start = 1 },
	},
	{
		.name = "list_ex_rep_start_1_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST_EX, false, T_W2, RANGE(LO48_END, 1), RANGE(0, 0)),
				  .rep_start = 1 },
	},
	/* KVM: a list with no rep is invalid input. */
	{
		.name = "list_zero_reps_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { .code = LIST, .targets = T_W1 },
	},
	/* TLFS: the variable header size must match the VP set. */
	{
		.name = "list_ex_var_cnt_too_big_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST_EX, false, T_W2, RANGE(LO48_END, 1)),
				  .var_cnt_delta = 1 },
	},
	{
		.name = "list_ex_var_cnt_too_small_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST_EX, false, T_W1 | T_W2, RANGE(LO48_END, 1)),
				  .var_cnt_delta = -1 },
	},
	{
		.name = "space_ex_fast_var_cnt_mismatch_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { .code = SPACE_EX, .fast = true, .targets = T_W2,
				  .var_cnt_delta = 1 },
	},
	{
		.name = "list_with_var_cnt_is_rejected", .status = STATUS_BAD,
		.call[SENDER] = { CALL(LIST, false, T_W1, RANGE(LO48_END, 1)),
				  .var_cnt_delta = 1 },
	},
	/*
	 * KVM: banks sent along with HV_GENERIC_SET_ALL are accepted and
	 * skipped, the GVA list is read after them (the banks hold
	 * non-canonical garbage).  The TLFS does not say so; KVM's comment
	 * says only that it does not forbid them.
	 */
	{
		.name = "list_ex_set_all_with_3_banks", .full = 0,
		.call[SENDER] = { CALL(LIST_EX, false, T_ALL,
				       RANGE(LO48_END - 0x1000, 3), RANGE(HI48_START, 0)),
				  .set_all_banks = 3 },
	},
	{
		.name = "list_ex_fast_set_all_with_2_banks",
		.call[SENDER] = { CALL(LIST_EX, true, T_ALL,
				       RANGE(LO48_END - 0x1000, 3), RANGE(TOP_PAGE, 1)),
				  .set_all_banks = 2 },
	},
	/* KVM: processor_mask 0 without HV_FLUSH_ALL_PROCESSORS means all. */
	{
		.name = "list_empty_processor_mask_flushes_all_vcpus",
		.call[SENDER] = { CALL(LIST, false, T_W1, RANGE(LO48_END - 0x2000, 4)),
				  .mask_zero = true },
	},
	{
		.name = "space_empty_processor_mask_flushes_all_vcpus", .full = ALL_VCPUS,
		.call[SENDER] = { .code = SPACE, .targets = T_W1, .mask_zero = true },
	},
	/* KVM: an empty sparse VP set flushes nothing and succeeds. */
	{
		.name = "list_ex_empty_vp_set",
		.call[SENDER] = { CALL(LIST_EX, false, 0, RANGE(LO48_END, 3)) },
	},
	/*
	 * TLFS: the banks follow the set bits of valid_bank_mask in order, and
	 * a bank may be empty: VP 65 is in bank 1, sent first, and bank 2,
	 * sent second, is empty.
	 */
	{
		.name = "list_ex_w2_bank_1_then_empty_bank_2",
		.call[SENDER] = { CALL(LIST_EX, false, T_W2, RANGE(LO48_END - 0x1000, 3)),
				  .empty_bank = true },
	},

	/*
	 * Several vCPUs flush the same target at once.  With the target kept
	 * out of the guest, two 15-entry lists cannot both be queued (KVM): the
	 * second becomes a flush-all entry, and no canonical page is lost.
	 */
	{
		.name = "two_senders_overflow_parked_target_fifo",
		.park = T_W2, .full = T_W2,
		.call[0] = { .code = LIST_EX, .targets = T_W2,
			     .entries = fifteen_mixed, .nr = ARRAY_SIZE(fifteen_mixed) },
		.call[1] = { CALL(LIST_EX, false, T_W2, RANGE(HI48_START - 0x2000, 3),
				  RANGE(LO57_END - 0x2000, 3), RANGE(0x40000000, 3)),
			     .reps = MAX_QUEUED },
	},
	/*
	 * From L2, with L0 handling the call directly (KVM: the same range
	 * expansion, on the vCPU's L2 FIFO).  Only vCPUs running an L2 of the
	 * same VM id are targets: the sender itself here.
	 */
	{
		.name = "l2_list_self_lower_half_into_noncanonical",
		.call[SENDER] = { CALL(LIST, false, T_SELF, RANGE(LO48_END - 0x1000, 5),
				       RANGE(HI48_START - 0x2000, 3)), .l2 = true },
	},
	{
		.name = "l2_list_ex_fast_all_both_boundaries",
		.call[SENDER] = { CALL(LIST_EX, true, T_ALL, RANGE(LO57_END - 0x1000, 3),
				       RANGE(HI57_START - 0x1000, 1), RANGE(TOP_PAGE, 2)),
				  .l2 = true },
	},
	{
		.name = "l2_list_4096_pages_off_lower_half",
		.call[SENDER] = { CALL(LIST, false, T_ALL, RANGE(LO48_END - 0x7f000, LAST)),
				  .l2 = true },
	},
	{
		.name = "l2_space_ex_self", .full = T_SELF,
		.call[SENDER] = { .code = SPACE_EX, .targets = T_SELF, .l2 = true },
	},
	/*
	 * KVM: any full flush of a vCPU's TLB for another reason (here
	 * KVM_SET_SREGS toggling CR4.PGE while the vCPU is held) empties its
	 * flush FIFO, which is a superset of the flushes asked for.
	 */
	{
		.name = "list_ex_w2_fifo_emptied_by_unrelated_full_flush",
		.park = T_W2, .purge = T_W2, .full = T_W2,
		.call[SENDER] = { CALL(LIST_EX, false, T_W2, RANGE(LO48_END - 0x1000, 3),
				       RANGE(HI48_START - 0x1000, 2)) },
	},
	/* ... and at full speed, where either outcome is right. */
	{
		.name = "three_senders_race_to_all",
		.call[0] = { CALL(LIST, false, T_ALL, RANGE(LO48_END - 0x3000, 5)),
			     .reps = 10 },
		.call[1] = { CALL(LIST_EX, true, T_ALL, RANGE(HI48_START - 0x2000, 4),
				  RANGE(TOP_PAGE, 2)) },
		.call[2] = { CALL(LIST_EX, false, T_SELF | T_W1, RANGE(LO57_END - 0x1000, 4)),
			     .reps = 7 },
	},
};

/* Shared with the guest. */
struct hcall_job {
	u64 control;	/* 0: no hypercall */
	u64 input;	/* RDX: input GPA, or the address space if fast */
	u64 output;	/* R8: output GPA, or the flags if fast */
	u64 result;
	u8 vector;
	bool park;
	bool l2;
};

/*
 * The fuzzer runs up to BATCH rounds per guest entry: the host prepares
 * rounds first .. last in jobs[0 .. last - first] and vCPU 0 starts each
 * next round itself once every vCPU is through the last one.  The oracle
 * reads the trace once per batch and splits it by the rounds' hypercalls:
 * every flush of a round is done before the next round's first call.
 */
#define BATCH		16
#define INPUT_SLOT	1
#define INPUT_AREA	0x10000000ULL
#define INPUT_AREA_PAGES	(BATCH * NR_VCPUS * INPUT_PAGES)

struct round_sync {
	u64 round;
	u64 first, last;
	u64 parked[NR_VCPUS];
	u64 issued[NR_VCPUS];
	u64 seen[NR_VCPUS];
};

static struct hcall_job jobs[BATCH][NR_VCPUS];
static struct round_sync rsync;
static u64 input_gva[BATCH][NR_VCPUS];
/* vCPU 0's job of the round and its input, for its L2. */
static struct hcall_job *l2_job;
static u64 l2_input;
static u64 hypercall_page_gpa;
static struct svm_test_data *svm;
static struct vmx_pages *vmx;
static bool l2_launched;
static struct hyperv_test_pages *hv_pages;
static unsigned long l2_stack[256];

/* vCPU 0's nested guest makes a hypercall each time L1 runs it. */
static void l2_guest_code(void)
{
	struct hcall_job *job;

	for (;;) {
		job = READ_ONCE(l2_job);
		if (job->control & HV_HYPERCALL_FAST_BIT)
			hyperv_write_xmm_input((void *)l2_input + 16, XMM_REGS);
		job->vector = __hyperv_hypercall(job->control, job->input,
						 job->output, &job->result);
		if (vmx)
			/* Not VMCALL: L0 would take it for a flush call again. */
			cpuid(0, &(u32){0}, &(u32){0}, &(u32){0}, &(u32){0});
		else
			vmmcall();
	}
}

/* Let L0 handle L2's flush hypercalls itself (HV_X64_NESTED_DIRECT_FLUSH). */
static void l2_setup_vmx(void)
{
	enable_vp_assist(hv_pages->vp_assist_gpa, hv_pages->vp_assist);
	evmcs_enable();
	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(load_evmcs(hv_pages));
	prepare_vmcs(vmx, l2_guest_code, &l2_stack[ARRAY_SIZE(l2_stack)]);
	current_evmcs->partition_assist_page = hv_pages->partition_assist_gpa;
	current_evmcs->hv_enlightenments_control.nested_flush_hypercall = 1;
	current_evmcs->hv_vm_id = 1;
	current_evmcs->hv_vp_id = vp_index[SENDER];
	current_vp_assist->nested_control.features.directhypercall = 1;
	*(u32 *)hv_pages->partition_assist = 0;
}

static void l2_setup(void)
{
	struct hv_vmcb_enlightenments *hve;

	if (vmx) {
		l2_setup_vmx();
		return;
	}
	hve = &svm->vmcb->control.hv_enlightenments;
	enable_vp_assist(hv_pages->vp_assist_gpa, hv_pages->vp_assist);
	generic_svm_setup(svm, l2_guest_code, &l2_stack[ARRAY_SIZE(l2_stack)]);
	hve->partition_assist_page = hv_pages->partition_assist_gpa;
	hve->hv_enlightenments_control.nested_flush_hypercall = 1;
	hve->hv_vm_id = 1;
	hve->hv_vp_id = vp_index[SENDER];
	current_vp_assist->nested_control.features.directhypercall = 1;
	/* No synthetic exit to L1 after the flush. */
	*(u32 *)hv_pages->partition_assist = 0;
}

static void l2_hypercall(void)
{
	if (vmx) {
		GUEST_ASSERT(!(l2_launched ? vmresume() : vmlaunch()));
		l2_launched = true;
		GUEST_ASSERT_EQ(vmreadz(VM_EXIT_REASON), EXIT_REASON_CPUID);
		vmwrite(GUEST_RIP, vmreadz(GUEST_RIP) + vmreadz(VM_EXIT_INSTRUCTION_LEN));
		return;
	}
	run_guest(svm->vmcb, svm->vmcb_gpa);
	/* #VMEXIT clears GIF, which would hold off the wakeup IPIs. */
	asm volatile("stgi");
	GUEST_ASSERT_EQ(svm->vmcb->control.exit_code, SVM_EXIT_VMMCALL);
	svm->vmcb->save.rip += 3;
}

/*
 * vCPUs that wait for each other halt, and whoever makes progress wakes the
 * others with an IPI: under an emulator with one host thread, a spinning
 * vCPU would take the emulated CPU from the ones that have work to do.
 * Interrupts are off but while halted; an IPI that arrives earlier stays
 * pending and ends the next HLT at once.  Each exit costs a lot under an
 * emulator, so a vCPU says when it is about to halt and the others send an
 * IPI only then: the waiter sets its flag before it checks once more, the
 * waker writes before it reads the flags, and a full barrier on both sides
 * makes at least one see the other.  Under QEMU TCG a halted vCPU still
 * missed its IPI about once in 10,000 rounds, so a periodic APIC timer on
 * the same vector ends every halt within WAKE_TICK_NS as well; a tick costs
 * each vCPU two exits (the interrupt and its EOI), hence the long period.
 */
#define WAKE_VECTOR	0x40
#define WAKE_TICK_NS	(NSEC_PER_SEC / 10)
/* KVM: the APIC timer counts at 1 GHz by default; 0xb divides by 1. */
#define APIC_TDCR_DIV_1	0xb

static bool asleep[NR_VCPUS];

static void wake_handler(struct ex_regs *regs)
{
	x2apic_write_reg(APIC_EOI, 0);
}

static void wake_vcpu(int i)
{
	x2apic_write_reg(APIC_ICR, ((u64)i << 32) | APIC_DEST_PHYSICAL | APIC_DM_FIXED |
			 WAKE_VECTOR);
}

/*
 * After a write another vCPU may wait for: wake the ones that halted, and
 * only those, as an interrupt costs a running vCPU two exits (it and the
 * EOI).
 */
static void wake_others(int idx)
{
	u32 others = (BIT(NR_VCPUS) - 1) & ~BIT(idx), mask = 0;
	int i;

	/* Pairs with the one in wait_for(): the write before it, the flags after. */
	smp_mb();
	for (i = 0; i < NR_VCPUS; i++) {
		if ((others & BIT(i)) && READ_ONCE(asleep[i]))
			mask |= BIT(i);
	}
	if (mask && mask == others) {
		x2apic_write_reg(APIC_ICR, APIC_DEST_ALLBUT | APIC_DM_FIXED | WAKE_VECTOR);
		return;
	}
	for (i = 0; i < NR_VCPUS; i++) {
		if (mask & BIT(i))
			wake_vcpu(i);
	}
}

/* vCPU 0 alone waits for the last barrier. */
static void wake_sender(void)
{
	/* Pairs with the one in wait_for(), as in wake_others(). */
	smp_mb();
	if (READ_ONCE(asleep[SENDER]))
		wake_vcpu(SENDER);
}

/* Halt until *@p reaches @r (a round number: it only grows). */
static void wait_for(int idx, u64 *p, u64 r)
{
	while (READ_ONCE(*p) < r) {
		WRITE_ONCE(asleep[idx], true);
		/* Pairs with the wakers': the flag before, *@p after. */
		smp_mb();
		if (READ_ONCE(*p) < r)
			asm volatile("sti; hlt; cli" ::: "memory");
		WRITE_ONCE(asleep[idx], false);
	}
}

static void wait_round(int idx, u64 *arr, u64 r)
{
	int i;

	for (i = 0; i < NR_VCPUS; i++)
		wait_for(idx, &arr[i], r);
}

/*
 * Each round, every vCPU makes the hypercall the host prepared for it, if
 * any, and then waits for the others.  A vCPU that runs guest code after a
 * hypercall returned has processed the KVM_REQ_HV_TLB_FLUSH it got from it:
 * the request kicks the vCPU out of the guest (or finds it halted) and is
 * serviced before the vCPU enters the guest again.  So once vCPU 0 has seen
 * every vCPU pass the barrier, all flushes of the round are done.
 */
static void guest_code(void)
{
	u32 vp = rdmsr(HV_X64_MSR_VP_INDEX);
	struct hcall_job *job, *round_jobs;
	int idx, i;
	u64 r, input;

	for (idx = 0; idx < NR_VCPUS && vp_index[idx] != vp; idx++)
		;
	GUEST_ASSERT(idx < NR_VCPUS);
	x2apic_enable();
	x2apic_write_reg(APIC_TDCR, APIC_TDCR_DIV_1);
	x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_PERIODIC | WAKE_VECTOR);
	x2apic_write_reg(APIC_TMICT, WAKE_TICK_NS);

	if (idx == SENDER) {
		wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);
		wrmsr(HV_X64_MSR_HYPERCALL, hypercall_page_gpa);
		if (svm || vmx)
			l2_setup();
		GUEST_SYNC(0);
	}

	for (r = 1;; r++) {
		/* Also for the host's write of the batch's first round. */
		if (idx == SENDER)
			wake_others(idx);
		wait_for(idx, &rsync.round, r);
		round_jobs = jobs[r - READ_ONCE(rsync.first)];
		input = input_gva[r - READ_ONCE(rsync.first)][idx];
		job = &round_jobs[idx];

		if (READ_ONCE(job->park)) {
			/* The host holds this vCPU until all calls are made. */
			GUEST_SYNC(r);
		} else if (READ_ONCE(job->control)) {
			/* Written by the host: wait for it without an IPI. */
			for (i = 0; i < NR_VCPUS; i++) {
				if (READ_ONCE(round_jobs[i].park)) {
					while (READ_ONCE(rsync.parked[i]) != r)
						cpu_relax();
				}
			}
			if (READ_ONCE(job->l2)) {
				WRITE_ONCE(l2_job, job);
				WRITE_ONCE(l2_input, input);
				l2_hypercall();
			} else {
				if (job->control & HV_HYPERCALL_FAST_BIT)
					hyperv_write_xmm_input((void *)input + 16, XMM_REGS);
				job->vector = __hyperv_hypercall(job->control, job->input,
								 job->output, &job->result);
			}
		}

		WRITE_ONCE(rsync.issued[idx], r);
		wake_others(idx);
		wait_round(idx, rsync.issued, r);
		WRITE_ONCE(rsync.seen[idx], r);
		if (idx == SENDER) {
			wait_round(idx, rsync.seen, r);
			if (r == READ_ONCE(rsync.last))
				GUEST_SYNC(r);
			else
				WRITE_ONCE(rsync.round, r + 1);
		} else {
			wake_sender();
		}
	}
}

/* The host side */
static struct kvm_vm *vm;
static struct kvm_vcpu *vcpus[NR_VCPUS];
static pid_t vcpu_tid[NR_VCPUS];
static struct hcall_job (*host_jobs)[NR_VCPUS];
static struct round_sync *host_sync;
static u64 *input_hva[BATCH][NR_VCPUS];
static u64 input_gpa[BATCH][NR_VCPUS];
static u64 round_nr;
/* The first round of the batch that runs, and what each round purges. */
static u64 batch_first;
static u8 round_purge[BATCH];
static int va_bits;

static u8 vp_set_banks(u8 targets, u64 *valid_bank_mask, u64 *banks)
{
	u8 nr_banks = 0;
	u64 mask = 0;
	int i, bank;

	for (i = 0; i < NR_VCPUS; i++) {
		if (targets & BIT(i))
			mask |= BIT_ULL(vp_index[i] / 64);
	}
	for (bank = 0; bank < 64; bank++) {
		if (!(mask & BIT_ULL(bank)))
			continue;
		banks[nr_banks] = 0;
		for (i = 0; i < NR_VCPUS; i++) {
			if ((targets & BIT(i)) && vp_index[i] / 64 == bank)
				banks[nr_banks] |= BIT_ULL(vp_index[i] % 64);
		}
		nr_banks++;
	}
	*valid_bank_mask = mask;
	return nr_banks;
}

static bool is_list(u16 code)
{
	return code == LIST || code == LIST_EX;
}

static bool is_ex(u16 code)
{
	return code == LIST_EX || code == SPACE_EX;
}

/* The input as the guest passes it: d[0], d[1] in RDX/R8 if fast. */
struct raw_call {
	u64 control;
	u64 d[4 + 64 + MAX_REPS];
};

static void encode_call(const struct flush_call *c, struct raw_call *raw)
{
	u64 flags = HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES;
	u16 reps = c->reps ? c->reps : c->nr;
	int i, var_cnt = 0, pos;
	u64 *d = raw->d;

	memset(d, 0, 4 * sizeof(u64));
	if (!is_ex(c->code)) {
		if ((c->targets & T_ALL) && !c->mask_zero)
			flags |= HV_FLUSH_ALL_PROCESSORS;
		for (i = 0; i < NR_VCPUS && !(c->targets & T_ALL) && !c->mask_zero; i++) {
			if (!(c->targets & BIT(i)))
				continue;
			/* A 64-bit processor mask cannot name VP 64 or above. */
			TEST_ASSERT(vp_index[i] < 64,
				    "code 0x%x: a processor mask cannot target VP %u",
				    c->code, vp_index[i]);
			d[2] |= BIT_ULL(vp_index[i]);
		}
		pos = 3;
	} else if (c->targets & T_ALL) {
		d[2] = VPSET_ALL;
		var_cnt = c->set_all_banks;
		d[3] = GENMASK_ULL(var_cnt, 0) >> 1;
		for (i = 0; i < var_cnt; i++)
			d[4 + i] = NC_BOTH | (0x5a5a5000ULL + i * 0x1000);
		pos = 4 + var_cnt;
	} else {
		d[2] = VPSET_SPARSE_4K;
		var_cnt = vp_set_banks(c->targets, &d[3], &d[4]);
		if (c->empty_bank) {
			d[3] |= d[3] ? BIT_ULL(64 - __builtin_clzll(d[3])) : BIT_ULL(0);
			d[4 + var_cnt++] = 0;
		}
		pos = 4 + var_cnt;
	}
	d[1] = flags;
	var_cnt += c->var_cnt_delta;

	for (i = 0; i < reps && c->nr; i++)
		d[pos + i] = c->entries[min(i, c->nr - 1)];

	raw->control = c->code | (c->fast ? HV_HYPERCALL_FAST_BIT : 0) |
		       ((u64)var_cnt << HV_HYPERCALL_VARHEAD_OFFSET) |
		       ((u64)reps << HV_HYPERCALL_REP_COMP_OFFSET) |
		       ((u64)c->rep_start << HCALL_REP_START_OFFSET);
}

/* What KVM does with a call: the reference model. */
struct call_model {
	u16 status;
	u16 reps;		/* reps completed */
	u8 targets;		/* vCPUs that get a flush request */
	bool full;		/* the request is a flush-all entry */
	u16 nr;			/* else these entries are queued */
	const u64 *entries;
};

static void model_call(const struct raw_call *raw, struct call_model *m)
{
	u64 control = raw->control;
	u16 code = control & 0xffff;
	bool fast = control & HV_HYPERCALL_FAST_BIT;
	u16 var_cnt = (control >> HV_HYPERCALL_VARHEAD_OFFSET) & 0x3ff;
	u16 rep_cnt = (control >> HV_HYPERCALL_REP_COMP_OFFSET) & 0xfff;
	u16 rep_idx = (control >> HCALL_REP_START_OFFSET) & 0xfff;
	const u64 *d = raw->d;
	bool all = false;
	int i, pos, bank;

	memset(m, 0, sizeof(*m));
	m->status = STATUS_BAD;

	/* TLFS: no variable header for the non-Ex calls, reps only for lists. */
	if (!is_ex(code) && var_cnt)
		return;
	if (is_list(code) && (!rep_cnt || rep_idx))
		return;
	if (!is_list(code) && (rep_cnt || rep_idx))
		return;

	if (!is_ex(code)) {
		/* KVM: an empty processor mask is taken as all processors. */
		all = (d[1] & HV_FLUSH_ALL_PROCESSORS) || !d[2];
		for (i = 0; i < NR_VCPUS && !all; i++) {
			if (vp_index[i] < 64 && (d[2] & BIT_ULL(vp_index[i])))
				m->targets |= BIT(i);
		}
		pos = 3;
	} else {
		if (var_cnt != __builtin_popcountll(d[3]))
			return;
		/* KVM: any format but the sparse one means all VPs. */
		all = d[2] != VPSET_SPARSE_4K;
		if (!all) {
			if (!var_cnt)
				goto success;
			if (fast && var_cnt > XMM_HALVES - 2)
				return;
			for (i = 0; i < NR_VCPUS; i++) {
				bank = vp_index[i] / 64;
				if (!(d[3] & BIT_ULL(bank)))
					continue;
				if (d[4 + __builtin_popcountll(d[3] & (BIT_ULL(bank) - 1))] &
				    BIT_ULL(vp_index[i] % 64))
					m->targets |= BIT(i);
			}
		}
		pos = 4 + var_cnt;
	}
	if (all)
		m->targets = GENMASK(NR_VCPUS - 1, 0);

	/* TLFS: fast input must fit in the XMM registers, whatever its length. */
	if (is_list(code) && fast && pos - 2 + rep_cnt > XMM_HALVES)
		return;
	if (!is_list(code) || rep_cnt > MAX_QUEUED) {
		m->full = true;
	} else {
		m->nr = rep_cnt;
		m->entries = &d[pos];
	}
success:
	m->status = HV_STATUS_SUCCESS;
	m->reps = rep_cnt;
}

/* What the oracle saw on one vCPU. */
struct obs_gva {
	u64 gva;
	long seq;
	u8 level;	/* 0: the vCPU was running L1, 1: L2 */
};

/* Trace sequence numbers, in the order they were seen. */
struct seq_list {
	long *seq;
	int nr, size;
};

/*
 * Per level (L1, L2): a vCPU in L2 does not use L1's translations, and
 * KVM keeps a flush FIFO for each, checked again on every transition.
 */
struct vcpu_obs {
	struct obs_gva *gva;
	int nr, size;
	u8 level;			/* the level it runs now */
	struct seq_list entries[2];	/* its VM entries */
	/*
	 * Its full TLB flushes, each at the vCPU's next VM entry (after the
	 * last event if it did not enter again): the guest cannot refill its
	 * TLB before that, and KVM empties the flush FIFO after the vendor
	 * callback, so entries queued by another vCPU between the callback
	 * and that entry are covered by it.
	 */
	struct seq_list fulls[2];
	bool full_pending[2];	/* a full flush not followed by a VM entry yet */
	long last_fallback;	/* last full flush by the Hyper-V flush path */
	long hypercall;		/* its (last) hypercall */
	u8 hypercall_level;
};

#define KP_GVA		"flush_gva"
#define KP_GUEST	"flush_guest"
#define KP_CURRENT	"flush_current"
#define KP_ALL		"flush_all"
#define KP_HV_RET	"hv_flush_ret"

static void seq_add(struct seq_list *l, long seq)
{
	if (l->nr == l->size) {
		l->size = l->size ? 2 * l->size : 64;
		l->seq = realloc(l->seq, l->size * sizeof(*l->seq));
		TEST_ASSERT(l->seq, "Out of memory");
	}
	l->seq[l->nr++] = seq;
}

/* The first sequence number in @l after @after, LONG_MAX if none. */
static long seq_next(const struct seq_list *l, long after)
{
	int i;

	for (i = 0; i < l->nr; i++) {
		if (l->seq[i] > after)
			return l->seq[i];
	}
	return LONG_MAX;
}

static void obs_free(struct vcpu_obs *o)
{
	int l;

	free(o->gva);
	for (l = 0; l < 2; l++) {
		free(o->entries[l].seq);
		free(o->fulls[l].seq);
	}
}

static void obs_add(struct vcpu_obs *o, u64 gva, long seq)
{
	if (o->nr == o->size) {
		o->size = o->size ? 2 * o->size : 4096;
		o->gva = realloc(o->gva, o->size * sizeof(*o->gva));
		TEST_ASSERT(o->gva, "Out of memory");
	}
	o->gva[o->nr].gva = gva;
	o->gva[o->nr].level = o->level;
	o->gva[o->nr++].seq = seq;
}

/* The end of the ascending run of @a that starts at @i. */
static int run_end(const struct obs_gva *a, int i, int n)
{
	for (i++; i < n && a[i].gva >= a[i - 1].gva; i++)
		;
	return i;
}

/*
 * Sort @a by GVA and keep equal ones in the order they came, by merging
 * neighbouring ascending runs until one is left.  The oracle appends in
 * trace order, so this is the order by GVA and then sequence number that
 * obs_flushed() searches.  A range's pages come in order, so a round's
 * list takes a few passes; qsort() would make an indirect call per
 * comparison, which under an emulator cost more than the rest of judging.
 */
static void sort_gvas(struct obs_gva *a, int n)
{
	static struct obs_gva *buf;
	static int buf_size;
	struct obs_gva *src = a, *dst, *t;
	int i, j, k, o, mid, end, runs;

	if (n < 2)
		return;
	if (n > buf_size) {
		buf_size = n;
		buf = realloc(buf, n * sizeof(*buf));
		TEST_ASSERT(buf, "Out of memory");
	}
	dst = buf;
	do {
		for (i = 0, runs = 0; i < n; i = end, runs++) {
			mid = run_end(src, i, n);
			end = mid < n ? run_end(src, mid, n) : n;
			/* On a tie, the earlier run's element first. */
			for (j = i, k = mid, o = i; j < mid && k < end; o++)
				dst[o] = src[k].gva < src[j].gva ? src[k++] : src[j++];
			memcpy(&dst[o], &src[j], (mid - j) * sizeof(*dst));
			memcpy(&dst[o + mid - j], &src[k], (end - k) * sizeof(*dst));
		}
		t = src;
		src = dst;
		dst = t;
	} while (runs > 1);
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
}

/* Events the oracle read, for the fuzzer's summary. */
static unsigned long oracle_events;

/* The events the oracle reads, and where their arguments are. */
enum {
	EV_GVA, EV_GUEST, EV_CURRENT, EV_ALL, EV_HV_RET, EV_HYPERCALL, EV_ENTRY,
	EV_VMENTER, EV_VMEXIT_INJECT, NR_EVENTS
};

static int ev_id[NR_EVENTS];
/* Per event, and NR_EVENTS for any other, for the fuzzer's summary. */
static unsigned long ev_count[NR_EVENTS + 1];
static int gva_off, ret_off;

static void oracle_ids(void)
{
	static const char * const name[NR_EVENTS][2] = {
		{ NULL, KP_GVA }, { NULL, KP_GUEST }, { NULL, KP_CURRENT },
		{ NULL, KP_ALL }, { NULL, KP_HV_RET }, { "kvm", "kvm_hv_hypercall" },
		{ "kvm", "kvm_entry" }, { "kvm", "kvm_nested_vmenter" },
		{ "kvm", "kvm_nested_vmexit_inject" },
	};
	int i;

	for (i = 0; i < NR_EVENTS; i++)
		ev_id[i] = kprobe_trace_event_id(name[i][0], name[i][1]);
	gva_off = kprobe_trace_field(NULL, KP_GVA, "gva");
	ret_off = kprobe_trace_field(NULL, KP_HV_RET, "ret");
}

static void obs_init(struct vcpu_obs *obs)
{
	int i;

	/* Every batch starts, and ends, with each vCPU in L1. */
	for (i = 0; i < NR_VCPUS; i++) {
		memset(&obs[i], 0, sizeof(obs[i]));
		obs[i].last_fallback = -1;
		obs[i].hypercall = -1;
	}
}

static void obs_end(struct vcpu_obs *obs, long seq)
{
	int i, l;

	for (i = 0; i < NR_VCPUS; i++) {
		/* Not entered since: in effect at an entry after everything read. */
		for (l = 0; l < 2; l++) {
			if (obs[i].full_pending[l])
				seq_add(&obs[i].fulls[l], seq + 1);
		}
		sort_gvas(obs[i].gva, obs[i].nr);
	}
}

/*
 * The events of a batch of @nr_rounds rounds, round k's into obs[k][]:
 * round k + 1 begins with the hypercall after round k's @calls[k] ones.
 * Returns false if the hypercalls seen were not the @calls expected.
 */
static bool oracle_read(struct vcpu_obs (*obs_batch)[NR_VCPUS], const int *calls,
			int nr_rounds)
{
	struct vcpu_obs *obs = obs_batch[0];
	struct kprobe_trace_event *ev;
	int i, l, e, k = 0, seen = 0;
	size_t nr, n;
	long seq = 0;

	for (k = 0; k < nr_rounds; k++)
		obs_init(obs_batch[k]);
	k = 0;

	nr = kprobe_trace_read(&ev);
	oracle_events += nr;
	for (n = 0; n < nr; n++) {
		for (i = 0; i < NR_VCPUS && vcpu_tid[i] != ev[n].pid; i++)
			;
		if (i == NR_VCPUS)
			continue;
		for (e = 0; e < NR_EVENTS && ev_id[e] != ev[n].id; e++)
			;
		ev_count[e]++;
		seq++;
		if (e == EV_HYPERCALL && seen == calls[k]) {
			/* The next round's first call: this round is complete. */
			if (k + 1 == nr_rounds)
				return false;
			obs_end(obs, seq - 1);
			/*
			 * vCPU 0 may have entered L2 for this call already:
			 * the levels go on from the last round's events.
			 */
			for (l = 0; l < NR_VCPUS; l++)
				obs_batch[k + 1][l].level = obs[l].level;
			obs = obs_batch[++k];
			seen = 0;
		}
		switch (e) {
		case EV_GVA:
			obs_add(&obs[i], *(const u64 *)((const char *)ev[n].data + gva_off), seq);
			break;
		case EV_GUEST:
		case EV_CURRENT:
		case EV_ALL:
			obs[i].full_pending[obs[i].level] = true;
			break;
		case EV_ENTRY:
			l = obs[i].level;
			seq_add(&obs[i].entries[l], seq);
			if (obs[i].full_pending[l])
				seq_add(&obs[i].fulls[l], seq);
			obs[i].full_pending[l] = false;
			break;
		case EV_VMENTER:
			obs[i].level = 1;
			break;
		case EV_VMEXIT_INJECT:
			obs[i].level = 0;
			break;
		case EV_HV_RET:
			if (*(const s32 *)((const char *)ev[n].data + ret_off))
				obs[i].last_fallback = seq;
			break;
		case EV_HYPERCALL:
			seen++;
			obs[i].hypercall = seq;
			obs[i].hypercall_level = obs[i].level;
			break;
		}
	}
	obs_end(obs, seq);
	return k + 1 == nr_rounds && seen == calls[k];
}

static bool is_canonical(u64 gva)
{
	return (u64)((s64)(gva << (64 - va_bits)) >> (64 - va_bits)) == gva;
}

enum verdict { EXACT, SUPERSET, WRONG };
/* Whether @gva was flushed at @level after @after and before @before. */
static bool obs_flushed(const struct vcpu_obs *o, u64 gva, u8 level, long after,
			long before)
{
	int lo = 0, hi = o->nr;

	/* The first flush of @gva after @after: the list is sorted by both. */
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (o->gva[mid].gva < gva ||
		    (o->gva[mid].gva == gva && o->gva[mid].seq <= after))
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < o->nr && o->gva[lo].gva == gva && o->gva[lo].seq < before; lo++) {
		if (o->gva[lo].level == level)
			return true;
	}
	return false;
}

static const char * const verdict_name[] = { "exact", "superset", "wrong" };

/* Pages in .gva, to share sort_gvas(); the rest is unused. */
struct page_set {
	struct obs_gva *page;
	int nr, size;
};

static void set_add(struct page_set *s, u64 page)
{
	if (s->nr == s->size) {
		s->size = s->size ? 2 * s->size : 4096;
		s->page = realloc(s->page, s->size * sizeof(*s->page));
		TEST_ASSERT(s->page, "Out of memory");
	}
	s->page[s->nr++] = (struct obs_gva){ .gva = page };
}

static void set_sort(struct page_set *s)
{
	int i, n = 0;

	sort_gvas(s->page, s->nr);
	for (i = 0; i < s->nr; i++) {
		if (!n || s->page[n - 1].gva != s->page[i].gva)
			s->page[n++] = s->page[i];
	}
	s->nr = n;
}

struct round {
	struct raw_call raw[NR_VCPUS];
	bool active[NR_VCPUS];
	u8 park;
	u8 purge;
	u8 l2;			/* calls made from L2 */
};

/*
 * KVM: an L2 call targets only vCPUs running an L2 with the same VM id;
 * only vCPU 0 runs one.
 */
static void model_round_call(const struct round *rd, int s, struct call_model *m)
{
	model_call(&rd->raw[s], m);
	if (rd->l2 & BIT(s))
		m->targets &= BIT(s);
}

/* Big (the longest lists), so on the heap rather than in the guest's image. */
static struct round *scratch;

struct round_result {
	enum verdict verdict;
	char why[256];
	int nr_pages[NR_VCPUS], nr_flushed[NR_VCPUS];
	bool fallback[NR_VCPUS];
};

static void set_why(struct round_result *res, const char *fmt, ...)
{
	va_list ap;

	res->verdict = WRONG;
	if (res->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
}

/*
 * Judge one vCPU of a round: @m are the models of the round's calls, @obs
 * what the oracle saw on each vCPU.
 */
static enum verdict judge_vcpu(const struct round *rd, const struct call_model *m,
			       const struct vcpu_obs *obs, int v, struct round_result *res)
{
	const struct vcpu_obs *o = &obs[v];
	int s, j, k, nr_calls = 0, extra = 0, missing = 0;
	bool full = false, covered_full, queued, exact;
	struct page_set want = {};
	u64 base, page, nr_pages;
	long after, ret, deadline, full_at;
	u8 l;

	/* TLFS: invalid GVAs are ignored, they never reach the vendor flush. */
	for (j = 0; j < o->nr; j++) {
		if (!is_canonical(o->gva[j].gva)) {
			set_why(res, "vCPU%d flushed non-canonical 0x%016lx", v, o->gva[j].gva);
			return WRONG;
		}
	}

	for (s = 0; s < NR_VCPUS; s++) {
		if (!rd->active[s] || m[s].status || !(m[s].targets & BIT(v)))
			continue;
		nr_calls++;
		after = obs[s].hypercall;
		if (after < 0) {
			set_why(res, "no trace of vCPU%d's hypercall", s);
			return WRONG;
		}
		/*
		 * The flush must be done before the vCPU runs guest code of the
		 * caller's level (L1 or L2) again: the sender, before it returns
		 * from the call; another target, before its first VM entry at
		 * that level after that.  (KVM: the sender waits until every
		 * target has left guest mode, and a target handles the request,
		 * or again on its next L1/L2 transition, before it enters; an
		 * entry in between may have begun before the request.)  A flush
		 * after that deadline leaves the guest running on stale
		 * translations.
		 */
		l = obs[s].hypercall_level;
		ret = seq_next(&obs[s].entries[l], after);
		deadline = (v == s || ret == LONG_MAX) ? ret : seq_next(&o->entries[l], ret);
		/*
		 * A full flush in effect after the call, by then, covers it
		 * (seq_next() gives LONG_MAX for none, and a vCPU that did not
		 * enter again has LONG_MAX for its deadline).
		 */
		full_at = seq_next(&o->fulls[l], after);
		covered_full = full_at != LONG_MAX && full_at <= deadline;
		if (m[s].full) {
			full = true;
			if (!covered_full) {
				set_why(res, "vCPU%d: no full flush after vCPU%d's call %s",
					v, s, "before it ran again");
				return WRONG;
			}
			continue;
		}
		/* KVM: entries after its flush-all marker are not looked at. */
		queued = true;
		for (k = 0; k < m[s].nr; k++) {
			if (m[s].entries[k] == FLUSH_ALL_ENTRY) {
				full = true;
				queued = false;
			}
			base = m[s].entries[k] & GVA_PAGE_MASK;
			nr_pages = (m[s].entries[k] & GVA_EXTRA_PAGES_MASK) + 1;
			for (j = 0; j < nr_pages; j++) {
				page = base + j * PAGE_SIZE;
				if (!is_canonical(page))
					continue;
				if (queued)
					set_add(&want, page);
				if (covered_full || obs_flushed(o, page, l, after, deadline))
					continue;
				set_why(res, "vCPU%d: 0x%016lx (vCPU%d's call) %s %s",
					v, page, s, "neither flushed nor covered",
					"before it ran again");
				free(want.page);
				return WRONG;
			}
		}
	}
	set_sort(&want);

	/* Both sorted: walk them side by side, each flushed GVA once. */
	for (j = 0, k = 0; j < o->nr || k < want.nr;) {
		if (j == o->nr || (k < want.nr && want.page[k].gva < o->gva[j].gva)) {
			missing++;
			k++;
			continue;
		}
		page = o->gva[j].gva;
		if (k < want.nr && want.page[k].gva == page)
			k++;
		else
			extra++;
		res->nr_flushed[v]++;
		while (j < o->nr && o->gva[j].gva == page)
			j++;
	}
	res->nr_pages[v] = want.nr;
	res->fallback[v] = o->last_fallback >= 0;
	free(want.page);

	/*
	 * KVM falls back to a full flush for a flush-all entry, or when the
	 * FIFO overflows, which takes more than one request.  Pages that were
	 * only covered by some other full flush (which empties the FIFO) or
	 * that were not asked for make a superset.
	 */
	if (o->last_fallback >= 0)
		exact = !extra && (nr_calls > 1 || (full && !missing));
	else
		exact = !extra && !missing && !full;
	return exact ? EXACT : SUPERSET;
}

/* Where the rounds' time goes, for the fuzzer's summary. */
enum { PH_SETUP, PH_GUEST, PH_CLEAR, PH_READ, PH_LOST, PH_JUDGE, NR_PHASES };
static double phase_secs[NR_PHASES];

/* Adds the time since *@t to @phase, and restarts *@t. */
static void phase_lap(int phase, struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	phase_secs[phase] += (now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) / 1e9;
	*t = now;
}

/*
 * Run @nr rounds (at most BATCH) in one guest entry, read the trace once
 * and judge each round on its own: @res[k] is round k's verdict.  Returns
 * false if the trace could not be read whole: events were lost (a CPU's
 * buffer filled up) or its hypercalls did not split into the rounds, which
 * made every round wrong for want of a trace, not for KVM.
 */
static bool run_batch(struct round *const *rds, int nr, struct round_result *res)
{
	static struct vcpu_obs obs[BATCH][NR_VCPUS];
	static struct call_model m[BATCH][NR_VCPUS];
	int i, k, calls[BATCH];
	const struct round *rd;
	struct timespec t;
	unsigned long lost;
	struct ucall uc;
	enum verdict v;
	bool split;
	u64 result;

	TEST_ASSERT(nr >= 1 && nr <= BATCH, "A batch of %d rounds", nr);
	clock_gettime(CLOCK_MONOTONIC, &t);
	batch_first = round_nr + 1;
	for (k = 0; k < nr; k++) {
		rd = rds[k];
		memset(&res[k], 0, sizeof(res[k]));
		calls[k] = 0;
		for (i = 0; i < NR_VCPUS; i++) {
			struct hcall_job *job = &host_jobs[k][i];

			job->park = rd->park & BIT(i);
			job->l2 = rd->l2 & BIT(i);
			job->control = 0;
			job->result = -1;
			job->vector = 0;
			if (!rd->active[i])
				continue;
			calls[k]++;
			model_round_call(rd, i, &m[k][i]);
			memcpy(input_hva[k][i], rd->raw[i].d, sizeof(rd->raw[i].d));
			if (rd->raw[i].control & HV_HYPERCALL_FAST_BIT) {
				job->input = rd->raw[i].d[0];
				job->output = rd->raw[i].d[1];
			} else {
				job->input = input_gpa[k][i];
				job->output = 0;
			}
			job->control = rd->raw[i].control;
		}
		round_purge[k] = rd->purge;
	}
	round_nr += nr;

	phase_lap(PH_SETUP, &t);
	kprobe_trace_clear();
	phase_lap(PH_CLEAR, &t);
	host_sync->first = batch_first;
	host_sync->last = round_nr;
	__atomic_store_n(&host_sync->round, batch_first, __ATOMIC_SEQ_CST);

	vcpu_run(vcpus[SENDER]);
	TEST_ASSERT_KVM_EXIT_REASON(vcpus[SENDER], KVM_EXIT_IO);
	switch (get_ucall(vcpus[SENDER], &uc)) {
	case UCALL_SYNC:
		TEST_ASSERT(uc.args[1] == round_nr, "Round %lu done, expected %lu",
			    uc.args[1], round_nr);
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("Unknown ucall %lu", uc.cmd);
	}

	phase_lap(PH_GUEST, &t);
	for (k = 0; k < nr; k++) {
		res[k].verdict = EXACT;
		for (i = 0; i < NR_VCPUS; i++) {
			if (!rds[k]->active[i])
				continue;
			result = host_jobs[k][i].result;
			if (host_jobs[k][i].vector || (result & 0xffff) != m[k][i].status ||
			    ((result >> HV_HYPERCALL_REP_COMP_OFFSET) & 0xfff) != m[k][i].reps)
				set_why(&res[k], "vCPU%d: vector %u, result 0x%lx; expected status %u, %u reps",
					i, host_jobs[k][i].vector, result, m[k][i].status,
					m[k][i].reps);
		}
	}

	split = oracle_read(obs, calls, nr);
	phase_lap(PH_READ, &t);
	lost = kprobe_trace_lost();
	for (k = 0; k < nr; k++) {
		if (lost)
			set_why(&res[k], "the oracle lost %lu events", lost);
		if (!split)
			set_why(&res[k], "the trace's hypercalls are not the batch's %d rounds' calls",
				nr);
	}
	phase_lap(PH_LOST, &t);

	for (k = 0; k < nr; k++) {
		for (i = 0; i < NR_VCPUS; i++) {
			v = judge_vcpu(rds[k], m[k], obs[k], i, &res[k]);
			if (v > res[k].verdict)
				res[k].verdict = v;
		}
		/* Only now: judging a target reads its senders' entries too. */
		for (i = 0; i < NR_VCPUS; i++)
			obs_free(&obs[k][i]);
	}
	phase_lap(PH_JUDGE, &t);
	return split && !lost;
}

static void run_round(struct round *rd, struct round_result *res)
{
	run_batch(&rd, 1, res);
}

static void case_to_round(const struct flush_case *c, struct round *rd)
{
	int i;

	memset(rd, 0, sizeof(*rd));
	rd->park = c->park;
	rd->purge = c->purge;
	for (i = 0; i < NR_VCPUS; i++) {
		if (!c->call[i].code)
			continue;
		rd->active[i] = true;
		if (c->call[i].l2)
			rd->l2 |= BIT(i);
		encode_call(&c->call[i], &rd->raw[i]);
	}
}

/*
 * The table says what each case expects; make sure it agrees with the
 * model, so that neither can drift silently.
 */
static void check_table(void)
{
	struct call_model m;
	const struct flush_case *c;
	int queued[NR_VCPUS];
	u8 full;
	int i, s, v;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		c = &cases[i];
		case_to_round(c, scratch);
		full = 0;
		memset(queued, 0, sizeof(queued));
		for (s = 0; s < NR_VCPUS; s++) {
			if (!scratch->active[s])
				continue;
			model_round_call(scratch, s, &m);
			TEST_ASSERT(m.status == c->status,
				    "%s: the model expects status %u, the table %u",
				    c->name, m.status, c->status);
			if (m.full)
				full |= m.targets;
			for (int k = 0; k < m.nr; k++) {
				if (m.entries[k] == FLUSH_ALL_ENTRY)
					full |= m.targets;
			}
			for (v = 0; v < NR_VCPUS; v++) {
				if (!m.status && !m.full && (m.targets & BIT(v)))
					queued[v] += m.nr;
			}
		}
		/*
		 * KVM: a held target drains nothing, so its FIFO overflows
		 * into a flush-all entry once the calls queue more than its
		 * free slots; a purged target gets a full flush anyway.
		 */
		for (v = 0; v < NR_VCPUS; v++) {
			if ((c->park & BIT(v)) && queued[v] > MAX_QUEUED)
				full |= BIT(v);
		}
		full |= c->park & c->purge;
		TEST_ASSERT(full == c->full,
			    "%s: the model expects full flushes on 0x%x, the table on 0x%x",
			    c->name, full, c->full);
	}
}

/* Make KVM flush all of the vCPU's TLB: CR4.PGE toggled and restored. */
static void purge_tlb(struct kvm_vcpu *vcpu)
{
	struct kvm_sregs sregs;

	vcpu_sregs_get(vcpu, &sregs);
	sregs.cr4 ^= X86_CR4_PGE;
	vcpu_sregs_set(vcpu, &sregs);
	sregs.cr4 ^= X86_CR4_PGE;
	vcpu_sregs_set(vcpu, &sregs);
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;
	int i, old;
	u64 slot;

	WRITE_ONCE(vcpu_tid[vcpu->id], gettid());
	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old);

	for (;;) {
		vcpu_run(vcpu);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			/* Parked: hold the vCPU until every call was made. */
			slot = uc.args[1] - batch_first;
			TEST_ASSERT(slot < BATCH, "vCPU %u parked in round %lu, batch from %lu",
				    vcpu->id, uc.args[1], batch_first);
			__atomic_store_n(&host_sync->parked[vcpu->id], uc.args[1],
					 __ATOMIC_SEQ_CST);
			for (i = 0; i < NR_VCPUS; i++) {
				if (!host_jobs[slot][i].control || host_jobs[slot][i].park)
					continue;
				while (__atomic_load_n(&host_sync->issued[i], __ATOMIC_SEQ_CST) !=
				       uc.args[1])
					usleep(100);
			}
			if (round_purge[slot] & BIT(vcpu->id))
				purge_tlb(vcpu);
			break;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("vCPU %u: unexpected ucall %lu", vcpu->id, uc.cmd);
		}
	}
	return NULL;
}

/*
 * The prefix of a kprobe on a function of KVM's module @mod: "mod:" when
 * @mod is a loaded module, none when it is built into the kernel, where a
 * "mod:" prefix would leave the probe waiting for a module that never
 * loads.  Only a loaded module has an initstate in sysfs.
 */
static void probe_prefix(char *buf, size_t size, const char *mod)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/%s/initstate", mod);
	if (access(path, F_OK))
		buf[0] = '\0';
	else
		snprintf(buf, size, "%s:", mod);
}

#define TRACE_BUFFER_KB	16384

static bool env_is_1(const char *name)
{
	const char *val = getenv(name);

	return val && !strcmp(val, "1");
}

/* Sets up the oracle; returns NULL or why it cannot be set up. */
static const char *oracle_setup(void)
{
	const char *gva_fn = getenv("HV_FLUSH_PROBE_FUNC");
	const char *mod = host_cpu_is_amd ? "kvm_amd" : "kvm_intel";
	const char *pfx = host_cpu_is_amd ? "svm" : "vmx";
	const char *tdp = host_cpu_is_amd ? "npt" : "ept";
	char path[128], def[256], val[8] = "", vm[32], km[32];
	cpu_set_t allowed, cpus;
	int cpu, n, other_vms;
	const char *why;
	FILE *f;

	/* KVM: without TDP, the Hyper-V flush path always flushes everything. */
	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", mod, tdp);
	f = fopen(path, "r");
	if (!f || !fgets(val, sizeof(val), f) || (val[0] != 'Y' && val[0] != '1')) {
		static char msg[160];

		if (f)
			fclose(f);
		snprintf(msg, sizeof(msg), "TDP is off (%s is '%.1s')", path, val);
		return msg;
	}
	fclose(f);

	/*
	 * kprobes are global: while the test runs, every vCPU of every VM on
	 * the host hits them.  Refuse to slow down other VMs unless asked to.
	 */
	other_vms = kprobe_trace_other_vms();
	if (other_vms && !env_is_1("HV_FLUSH_SHARED_HOST")) {
		static char msg[200];

		snprintf(msg, sizeof(msg),
			 "%d other process(es) run KVM VMs, whose vCPUs would hit the probes too; stop them or set HV_FLUSH_SHARED_HOST=1",
			 other_vms);
		return msg;
	}

	/*
	 * Bind the test (its vCPU threads inherit it) to at most one CPU per
	 * vCPU, so that only those CPUs need a big trace buffer: one call
	 * can flush 15 x 4096 pages, an event each.
	 */
	TEST_ASSERT(!sched_getaffinity(0, sizeof(allowed), &allowed), "sched_getaffinity() failed");
	CPU_ZERO(&cpus);
	for (cpu = 0, n = 0; cpu < CPU_SETSIZE && n < NR_VCPUS; cpu++) {
		if (CPU_ISSET(cpu, &allowed)) {
			CPU_SET(cpu, &cpus);
			n++;
		}
	}
	TEST_ASSERT(!sched_setaffinity(0, sizeof(cpus), &cpus), "sched_setaffinity() failed");
	ksft_print_msg("oracle: %d CPU(s), %d KiB of trace buffer each\n", n, TRACE_BUFFER_KB);

	why = kprobe_trace_init("hv_tlb_flush_ranges", TRACE_BUFFER_KB, &cpus);
	if (why)
		return why;

	probe_prefix(vm, sizeof(vm), mod);
	probe_prefix(km, sizeof(km), "kvm");
	snprintf(def, sizeof(def), "p %s%s_flush_tlb_gva gva=%%si:x64", vm, pfx);
	if (gva_fn)
		snprintf(def, sizeof(def), "p %s%s gva=%%si:x64", vm, gva_fn);
	why = kprobe_trace_add_probe(KP_GVA, def);
	if (why)
		return why;

	/* The vendor callbacks that flush all of the vCPU's TLB entries. */
	snprintf(def, sizeof(def), "p %s%s", vm,
		 host_cpu_is_amd ? "svm_flush_tlb_asid" : "vmx_flush_tlb_guest");
	why = kprobe_trace_add_probe(KP_GUEST, def);
	if (!why) {
		snprintf(def, sizeof(def), "p %s%s_flush_tlb_current", vm, pfx);
		why = kprobe_trace_add_probe(KP_CURRENT, def);
	}
	if (!why) {
		snprintf(def, sizeof(def), "p %s%s_flush_tlb_all", vm, pfx);
		why = kprobe_trace_add_probe(KP_ALL, def);
	}
	/* KVM: non-zero when the Hyper-V flush path falls back to a full flush. */
	if (!why) {
		snprintf(def, sizeof(def), "r %skvm_hv_vcpu_flush_tlb ret=$retval:s32", km);
		why = kprobe_trace_add_probe(KP_HV_RET, def);
	}
	if (!why)
		why = kprobe_trace_enable_event("kvm", "kvm_hv_hypercall");
	if (!why)
		why = kprobe_trace_enable_event("kvm", "kvm_entry");
	/* Which level (L1 or L2) each VM entry and flush is for. */
	if (!why)
		why = kprobe_trace_enable_event("kvm", "kvm_nested_vmenter");
	if (!why)
		why = kprobe_trace_enable_event("kvm", "kvm_nested_vmexit_inject");
	return why;
}

static int verdicts[3];
static bool has_l2;

static void report(const char *name, const struct round_result *res)
{
	char buf[256];
	size_t pos = 0;
	int i;

	for (i = 0; i < NR_VCPUS; i++)
		pos += snprintf(buf + pos, sizeof(buf) - pos, "%svCPU%d %d/%d%s",
				i ? ", " : "", i, res->nr_flushed[i], res->nr_pages[i],
				res->fallback[i] ? "+full" : "");
	ksft_print_msg("%s: %s (flushed/expected pages: %s)%s%s\n", name,
		       verdict_name[res->verdict], buf, res->why[0] ? "; " : "", res->why);
	verdicts[res->verdict]++;
	ksft_test_result(res->verdict != WRONG, "%s\n", name);
}

/*
 * The fuzzer: seeded rounds of random flush hypercalls from random vCPUs,
 * judged like the cases.  On the first wrong round it prints the seed and
 * the smallest call it can find that is still judged wrong.
 */
static u64 fuzz_state;
#define FUZZ_DEFAULT_SEED	20261202

static u64 fuzz_next(void)
{
	/* xorshift64* */
	fuzz_state ^= fuzz_state >> 12;
	fuzz_state ^= fuzz_state << 25;
	fuzz_state ^= fuzz_state >> 27;
	return fuzz_state * 0x2545f4914f6cdd1dULL;
}

static u64 fuzz_below(u64 n)
{
	return n ? fuzz_next() % n : 0;
}

/* A GVA range entry near a canonical boundary, the wrap, or anywhere. */
static u64 fuzz_entry(void)
{
	static const u64 edges[] = {
		0, LO48_END + PAGE_SIZE, HI48_START, LO57_END + PAGE_SIZE,
		HI57_START, NC_BOTH,
	};
	static const u64 extras[] = { 0, 1, 2, 3, 4, 7, 15, 16, 31 };
	u64 base, extra;

	switch (fuzz_below(10)) {
	case 0:
		return FLUSH_ALL_ENTRY;
	case 1:
		base = fuzz_next();
		break;
	case 2:
		base = fuzz_below(1ULL << 47);
		break;
	default:
		/* Up to a whole range below an edge, a few pages above it. */
		base = edges[fuzz_below(ARRAY_SIZE(edges))];
		if (fuzz_below(2))
			base -= PAGE_SIZE * (1 + fuzz_below(fuzz_below(4) ? 4 : LAST + 1));
		else
			base += PAGE_SIZE * fuzz_below(4);
		break;
	}
	/*
	 * Mostly short ranges: crossing an edge takes only a few pages, and
	 * every page flushed costs the oracle an event.  A whole 4096-page
	 * range, or one of random length, in 1 of 32 entries each.
	 */
	switch (fuzz_below(32)) {
	case 0:
		extra = LAST;
		break;
	case 1:
		extra = fuzz_below(LAST + 1);
		break;
	default:
		extra = extras[fuzz_below(ARRAY_SIZE(extras))];
		break;
	}
	return RANGE(base, extra);
}

/* The entries of each batch slot's calls. */
static u64 fuzz_entries[BATCH][NR_VCPUS][64];

static void fuzz_call(int slot, int sender, struct flush_call *c)
{
	static const u16 codes[] = { LIST, LIST, LIST_EX, LIST_EX, SPACE, SPACE_EX };
	u16 reps;
	int i;

	memset(c, 0, sizeof(*c));
	c->code = codes[fuzz_below(ARRAY_SIZE(codes))];
	c->fast = fuzz_below(2);
	if (fuzz_below(5))
		c->targets = fuzz_below(BIT(NR_VCPUS));
	else
		c->targets = T_ALL;
	/* A processor mask cannot name VP 65: the non-Ex calls target fewer vCPUs. */
	if (!is_ex(c->code))
		c->targets &= ~T_W2;
	c->mask_zero = !fuzz_below(30);
	if (is_ex(c->code) && (c->targets & T_ALL) && !fuzz_below(4))
		c->set_all_banks = 1 + fuzz_below(3);
	if (!fuzz_below(50))
		c->rep_start = 1 + fuzz_below(MAX_REPS);
	if (!fuzz_below(50))
		c->var_cnt_delta = fuzz_below(2) ? 1 : -1;

	if (!is_list(c->code)) {
		if (!fuzz_below(30))
			c->reps = 1 + fuzz_below(3);
		return;
	}

	switch (fuzz_below(20)) {
	case 0:
		reps = 16 + fuzz_below(MAX_REPS - 15);
		break;
	case 1:
	case 2:
		reps = 16 + fuzz_below(48);
		break;
	case 3:
		reps = 0;
		break;
	default:
		reps = 1 + fuzz_below(c->fast ? 10 : MAX_QUEUED);
		break;
	}
	for (i = 0; i < reps && i < 64; i++)
		fuzz_entries[slot][sender][i] = fuzz_entry();
	/* Long lists are never read by KVM; repeat the last entry. */
	c->entries = fuzz_entries[slot][sender];
	c->nr = min_t(int, reps, 64);
	c->reps = reps;
}

static void print_call(int sender, const struct flush_call *c, const struct raw_call *raw)
{
	int i;

	ksft_print_msg("  vCPU%d%s: code 0x%x%s, targets 0x%x%s, control 0x%016lx, %u entries%s\n",
		       sender, c->l2 ? " (L2)" : "", c->code, c->fast ? " fast" : "",
		       c->targets,
		       c->mask_zero ? " (processor mask 0)" : "", raw->control, c->nr,
		       c->nr ? ":" : "");
	for (i = 0; i < c->nr; i++)
		ksft_print_msg("    RANGE(0x%016llx, %llu)\n",
			       c->entries[i] & GVA_PAGE_MASK,
			       c->entries[i] & GVA_EXTRA_PAGES_MASK);
}

struct fuzz_round {
	struct flush_call call[NR_VCPUS];
	bool active[NR_VCPUS];
	u8 park;
	u8 purge;
};

static void fuzz_encode(const struct fuzz_round *f, struct round *rd)
{
	int i;

	memset(rd, 0, sizeof(*rd));
	rd->park = f->park;
	rd->purge = f->purge;
	for (i = 0; i < NR_VCPUS; i++) {
		rd->active[i] = f->active[i];
		if (!f->active[i])
			continue;
		if (f->call[i].l2)
			rd->l2 |= BIT(i);
		encode_call(&f->call[i], &rd->raw[i]);
	}
}

/* One round alone, as the shrinker runs it. */
static enum verdict fuzz_run(const struct fuzz_round *f, struct round_result *res)
{
	fuzz_encode(f, scratch);
	run_round(scratch, res);
	return res->verdict;
}

/* Is @f still wrong?  Races may hide it, so give it a few tries. */
static bool fuzz_still_wrong(const struct fuzz_round *f, int *tries)
{
	struct round_result res;
	int i;

	for (i = 0; i < 3 && *tries > 0; i++, (*tries)--) {
		if (fuzz_run(f, &res) == WRONG)
			return true;
	}
	return false;
}

/* Shrink @f: one sender only, then as few entries as possible. */
static void fuzz_shrink(struct fuzz_round *f, int tries)
{
	static u64 cur[64], trial[64];
	static struct fuzz_round t;
	int i, k, s;

	for (s = 0; s < NR_VCPUS; s++) {
		if (!f->active[s])
			continue;
		t = *f;
		t.park = 0;
		t.purge = 0;
		for (i = 0; i < NR_VCPUS; i++)
			t.active[i] = i == s;
		if (fuzz_still_wrong(&t, &tries)) {
			*f = t;
			break;
		}
	}
	if (s == NR_VCPUS)
		return;

	memcpy(cur, f->call[s].entries, f->call[s].nr * sizeof(u64));
	f->call[s].entries = cur;
	for (k = f->call[s].nr - 1; k >= 0 && f->call[s].nr > 1 && tries > 0; k--) {
		t = *f;
		for (i = 0; i < f->call[s].nr - 1; i++)
			trial[i] = cur[i < k ? i : i + 1];
		t.call[s].entries = trial;
		t.call[s].nr--;
		if (t.call[s].reps > MAX_QUEUED)
			t.call[s].reps--;
		else
			t.call[s].reps = t.call[s].nr;
		if (fuzz_still_wrong(&t, &tries)) {
			memcpy(cur, trial, t.call[s].nr * sizeof(u64));
			t.call[s].entries = cur;
			*f = t;
		}
	}
}

static double fuzz_elapsed(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * Run at least @rounds rounds, then go on until at least @min_calls
 * hypercalls were sent and @min_secs seconds passed; stop at the first
 * wrong round.
 */
static void fuzz(u64 seed, long rounds, long min_calls, long min_secs)
{
	static struct fuzz_round fb[BATCH], first;
	static struct round_result res[BATCH];
	static struct round *rb[BATCH];
	long r = 0, calls = 0, first_calls = 0, reread_batches = 0;
	int i, n[BATCH], k, nr, batch = BATCH, again;
	struct timespec t0;
	double secs;

	for (k = 0; k < BATCH; k++) {
		rb[k] = calloc(1, sizeof(*rb[k]));
		TEST_ASSERT(rb[k], "Out of memory");
	}
	/* HV_FLUSH_FUZZ_BATCH=1..BATCH: rounds per guest entry, to compare. */
	if (getenv("HV_FLUSH_FUZZ_BATCH"))
		batch = atoi(getenv("HV_FLUSH_FUZZ_BATCH"));
	TEST_ASSERT(batch >= 1 && batch <= BATCH, "HV_FLUSH_FUZZ_BATCH must be 1 to %d",
		    BATCH);
	fuzz_state = seed ? seed : 1;
	ksft_print_msg("fuzzer: seed %lu, at least %ld rounds, %ld hypercalls and %ld s; %d rounds a batch\n",
		       seed, rounds, min_calls, min_secs, batch);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!first_calls && (r < rounds || calls < min_calls ||
				(min_secs && fuzz_elapsed(&t0) < min_secs))) {
		/* The rounds are drawn as if they ran one at a time. */
		nr = r < rounds && rounds - r < batch ? rounds - r : batch;
		for (k = 0; k < nr; k++) {
			struct fuzz_round *f = &fb[k];

			memset(f, 0, sizeof(*f));
			for (i = 0, n[k] = 0; i < NR_VCPUS; i++) {
				f->active[i] = !fuzz_below(2) || (i == NR_VCPUS - 1 && !n[k]);
				if (!f->active[i])
					continue;
				n[k]++;
				fuzz_call(k, i, &f->call[i]);
			}
			/* Sometimes vCPU 0 calls from L2. */
			if (has_l2 && f->active[SENDER] && !fuzz_below(6))
				f->call[SENDER].l2 = true;
			/*
			 * Sometimes hold an idle vCPU out of the guest to fill its
			 * FIFO, and sometimes flush its whole TLB for another
			 * reason then.
			 */
			for (i = 1; i < NR_VCPUS; i++) {
				if (!f->active[i] && !fuzz_below(8)) {
					f->park |= BIT(i);
					if (!fuzz_below(4))
						f->purge |= BIT(i);
				}
			}
			fuzz_encode(f, rb[k]);
		}
		/*
		 * Which CPU's buffer a vCPU's events land in depends on the
		 * scheduler, so a batch of big rounds may overflow one.  Judge
		 * such a batch again one round at a time, with the same input;
		 * a round that alone cannot be read stays wrong.
		 */
		if (!run_batch(rb, nr, res) && nr > 1) {
			ksft_print_msg("fuzzer: rounds %ld-%ld: %s; judging them one at a time\n",
				       r, r + nr - 1, res[0].why);
			reread_batches++;
			for (k = 0; k < nr; k++)
				run_batch(&rb[k], 1, &res[k]);
		}
		/* Up to the first wrong round; the batch's later ones do not count. */
		for (k = 0; k < nr && !first_calls; k++, r++) {
			verdicts[res[k].verdict]++;
			calls += n[k];
			if (res[k].verdict == WRONG) {
				first_calls = calls;
				first = fb[k];
				ksft_print_msg("fuzzer: round %ld (hypercall %ld) is wrong: %s\n",
					       r, calls, res[k].why);
			}
		}
	}
	secs = fuzz_elapsed(&t0);
	ksft_print_msg("fuzzer: %ld rounds, %ld hypercalls in %.1f s: %.0f hypercalls/s\n",
		       r, calls, secs, calls / secs);

	if (first_calls) {
		for (i = 0; i < NR_VCPUS; i++) {
			if (first.active[i]) {
				encode_call(&first.call[i], &scratch->raw[i]);
				print_call(i, &first.call[i], &scratch->raw[i]);
			}
		}
		/* A race may not repeat: say whether the round alone does. */
		again = 3;
		ksft_print_msg("fuzzer: the wrong round run alone again: %s\n",
			       fuzz_still_wrong(&first, &again) ? "wrong again" :
			       "right 3 times (it depends on timing)");
		fuzz_shrink(&first, 200);
		ksft_print_msg("fuzzer: smallest wrong input found (seed %lu, hypercall %ld):\n",
			       seed, first_calls);
		for (i = 0; i < NR_VCPUS; i++) {
			if (first.active[i]) {
				encode_call(&first.call[i], &scratch->raw[i]);
				print_call(i, &first.call[i], &scratch->raw[i]);
			}
		}
	}
	ksft_print_msg("fuzzer: setup/guest/oracle/judging: %.1f/%.1f/%.1f/%.1f s, %lu events; oracle: clear %.2f, read %.2f, loss counters %.2f s\n",
		       phase_secs[PH_SETUP], phase_secs[PH_GUEST],
		       phase_secs[PH_CLEAR] + phase_secs[PH_READ] + phase_secs[PH_LOST],
		       phase_secs[PH_JUDGE], oracle_events,
		       phase_secs[PH_CLEAR], phase_secs[PH_READ], phase_secs[PH_LOST]);
	ksft_print_msg("fuzzer: events: %lu GVA flushes, %lu full flushes, %lu VM entries, %lu hypercalls, %lu other\n",
		       ev_count[EV_GVA], ev_count[EV_GUEST] + ev_count[EV_CURRENT] + ev_count[EV_ALL],
		       ev_count[EV_ENTRY], ev_count[EV_HYPERCALL],
		       ev_count[EV_HV_RET] + ev_count[EV_VMENTER] + ev_count[EV_VMEXIT_INJECT] +
		       ev_count[NR_EVENTS]);
	ksft_print_msg("fuzzer: %ld batches judged again one round at a time, their trace not read whole\n",
		       reread_batches);
	ksft_print_msg("verdicts: exact %d, superset %d, wrong %d\n",
		       verdicts[EXACT], verdicts[SUPERSET], verdicts[WRONG]);
	ksft_test_result(!first_calls, "fuzz_seed_%lu\n", seed);
}

/*
 * A crash of the validator itself: say where, as return addresses of the
 * static binary (addr2line -e <binary> turns them into lines), so that a
 * console log alone tells which code crashed.  Then the handler that was
 * there before (the oracle's clean-up), and the default action.
 */
static const int crash_sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
static struct sigaction crash_old[ARRAY_SIZE(crash_sigs)];

static void crash_handler(int sig, siginfo_t *si, void *ctx)
{
	void *pc[32];
	char buf[160];
	int i, n, len;

	len = snprintf(buf, sizeof(buf),
		       "# crash: signal %d at address %p in thread %d; return addresses:\n",
		       sig, si->si_addr, (int)gettid());
	if (write(STDERR_FILENO, buf, len) == len) {
		n = backtrace(pc, ARRAY_SIZE(pc));
		backtrace_symbols_fd(pc, n, STDERR_FILENO);
	}
	for (i = 0; i < ARRAY_SIZE(crash_sigs); i++) {
		if (crash_sigs[i] != sig || crash_old[i].sa_handler == SIG_DFL ||
		    crash_old[i].sa_handler == SIG_IGN)
			continue;
		if (crash_old[i].sa_flags & SA_SIGINFO)
			crash_old[i].sa_sigaction(sig, si, ctx);
		else
			crash_old[i].sa_handler(sig);
	}
}

/* After the oracle's set-up, whose handler it calls; before any thread. */
static void catch_crashes(void)
{
	struct sigaction sa = {
		.sa_sigaction = crash_handler,
		.sa_flags = SA_SIGINFO | SA_RESETHAND,
	};
	int i;

	/* The unwinder's first use may allocate: not in a signal handler. */
	backtrace((void *[1]){}, 1);
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < ARRAY_SIZE(crash_sigs); i++)
		TEST_ASSERT(!sigaction(crash_sigs[i], &sa, &crash_old[i]),
			    "sigaction(%d)", crash_sigs[i]);
}

int main(int argc, char *argv[])
{
	struct round_result res;
	pthread_t threads[NR_VCPUS];
	long fuzz_rounds = 0, fuzz_calls = 0, fuzz_secs = 0;
	u64 fuzz_seed = 0;
	int opt;
	const char *why;
	struct kvm_sregs sregs;
	struct ucall uc;
	u64 gva;
	int i, k;

	/* -f [-s seed] [-n rounds], or the same in the environment. */
	if (getenv("HV_FLUSH_FUZZ_ROUNDS"))
		fuzz_rounds = strtol(getenv("HV_FLUSH_FUZZ_ROUNDS"), NULL, 0);
	if (getenv("HV_FLUSH_FUZZ_SEED"))
		fuzz_seed = strtoull(getenv("HV_FLUSH_FUZZ_SEED"), NULL, 0);
	if (getenv("HV_FLUSH_FUZZ_CALLS"))
		fuzz_calls = strtol(getenv("HV_FLUSH_FUZZ_CALLS"), NULL, 0);
	if (getenv("HV_FLUSH_FUZZ_SECONDS"))
		fuzz_secs = strtol(getenv("HV_FLUSH_FUZZ_SECONDS"), NULL, 0);
	while ((opt = getopt(argc, argv, "fs:n:c:t:h")) != -1) {
		switch (opt) {
		case 'f':
			fuzz_rounds = fuzz_rounds ? fuzz_rounds : 1000;
			break;
		case 's':
			fuzz_seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			fuzz_rounds = strtol(optarg, NULL, 0);
			break;
		case 'c':
			fuzz_calls = strtol(optarg, NULL, 0);
			break;
		case 't':
			fuzz_secs = strtol(optarg, NULL, 0);
			break;
		default:
			printf("usage: %s [-f] [-s seed] [-n rounds] [-c calls] [-t seconds]\n"
			       "  -f  fuzz instead of running the cases (1000 rounds,\n"
			       "      seed %d unless -s)\n"
			       "  -c, -t  fuzz on until at least that many hypercalls\n"
			       "          and seconds\n",
			       argv[0], FUZZ_DEFAULT_SEED);
			exit(opt == 'h' ? 0 : KSFT_FAIL);
		}
	}
	if ((fuzz_calls > 0 || fuzz_secs > 0) && !fuzz_rounds)
		fuzz_rounds = 1;
	/* A fixed default, so that a run can always be repeated. */
	if (fuzz_rounds && !fuzz_seed)
		fuzz_seed = FUZZ_DEFAULT_SEED;

	ksft_print_header();
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_HYPERV_TLBFLUSH));
	scratch = calloc(1, sizeof(*scratch));
	TEST_ASSERT(scratch, "Out of memory");
	check_table();

	/* KVM checks canonicality against the host's width, not the guest's. */
	va_bits = kvm_cpu_has(X86_FEATURE_LA57) ? 57 : 48;
	ksft_print_msg("host virtual address width: %d bits\n", va_bits);

	why = oracle_setup();
	if (why) {
		ksft_print_msg("oracle unavailable: %s\n", why);
		if (env_is_1("HV_FLUSH_ALLOW_NO_ORACLE"))
			ksft_exit_skip("oracle unavailable: %s\n", why);
		ksft_exit_fail_msg("oracle unavailable: %s\n", why);
	}
	catch_crashes();

	ksft_set_plan(fuzz_rounds ? 1 : ARRAY_SIZE(cases));

	/* The batch's inputs, in a memslot of their own mapped 1:1. */
	vm = __vm_create_with_vcpus(VM_SHAPE_DEFAULT, NR_VCPUS, INPUT_AREA_PAGES,
				    guest_code, vcpus);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, INPUT_AREA, INPUT_SLOT,
				    INPUT_AREA_PAGES, 0);
	virt_map(vm, INPUT_AREA, INPUT_AREA, INPUT_AREA_PAGES);
	vm_install_exception_handler(vm, WAKE_VECTOR, wake_handler);
	/* The guest's own paging mode does not change what KVM flushes. */
	vcpu_sregs_get(vcpus[0], &sregs);
	ksft_print_msg("guest paging: CR4.LA57=%d\n", !!(sregs.cr4 & X86_CR4_LA57));
	for (k = 0; k < BATCH; k++) {
		for (i = 0; i < NR_VCPUS; i++) {
			gva = INPUT_AREA + (k * NR_VCPUS + i) * INPUT_PAGES * PAGE_SIZE;
			input_gva[k][i] = gva;
			input_gpa[k][i] = addr_gva2gpa(vm, gva);
			input_hva[k][i] = addr_gva2hva(vm, gva);
		}
	}
	gva = val_alloc_page(vm);
	hypercall_page_gpa = addr_gva2gpa(vm, gva);
	/*
	 * L2 senders need L2 TLB flush, and nested SVM or nested VMX with
	 * the enlightened VMCS (where L1 turns the direct flush on).
	 */
	has_l2 = kvm_hv_cpu_has(HV_X64_NESTED_DIRECT_FLUSH) &&
		 (kvm_cpu_has(X86_FEATURE_SVM) ||
		  (kvm_cpu_has(X86_FEATURE_VMX) && kvm_has_cap(KVM_CAP_HYPERV_ENLIGHTENED_VMCS)));
	if (has_l2) {
		u64 l2_gva, hv_pages_gva;

		if (kvm_cpu_has(X86_FEATURE_SVM)) {
			vcpu_alloc_svm(vm, &l2_gva);
			svm = (void *)l2_gva;
		} else {
			vcpu_alloc_vmx(vm, &l2_gva);
			vmx = (void *)l2_gva;
		}
		vcpu_alloc_hyperv_test_pages(vm, &hv_pages_gva);
		hv_pages = (void *)hv_pages_gva;
		sync_global_to_guest(vm, svm);
		sync_global_to_guest(vm, vmx);
		sync_global_to_guest(vm, hv_pages);
	}
	sync_global_to_guest(vm, input_gva);
	sync_global_to_guest(vm, hypercall_page_gpa);
	host_jobs = addr_gva2hva(vm, (u64)jobs);
	host_sync = addr_gva2hva(vm, (u64)&rsync);

	for (i = 0; i < NR_VCPUS; i++) {
		vcpu_set_hv_cpuid(vcpus[i]);
		vcpu_set_msr(vcpus[i], HV_X64_MSR_VP_INDEX, vp_index[i]);
	}
	if (vmx)
		vcpu_enable_evmcs(vcpus[SENDER]);

	/* vCPU 0 sets up the hypercall page before the others start. */
	vcpu_run(vcpus[SENDER]);
	TEST_ASSERT_KVM_EXIT_REASON(vcpus[SENDER], KVM_EXIT_IO);
	if (get_ucall(vcpus[SENDER], &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);

	vcpu_tid[SENDER] = gettid();
	for (i = 0; i < NR_VCPUS; i++) {
		if (i == SENDER)
			continue;
		TEST_ASSERT(!pthread_create(&threads[i], NULL, vcpu_thread, vcpus[i]),
			    "pthread_create() failed");
		while (!READ_ONCE(vcpu_tid[i]))
			usleep(100);
	}
	why = kprobe_trace_set_pids(vcpu_tid, NR_VCPUS);
	if (why)
		ksft_exit_fail_msg("oracle unavailable: %s\n", why);
	oracle_ids();

	if (fuzz_rounds) {
		fuzz(fuzz_seed, fuzz_rounds, fuzz_calls, fuzz_secs);
	} else {
		for (i = 0; i < ARRAY_SIZE(cases); i++) {
			if (cases[i].call[SENDER].l2 && !has_l2) {
				ksft_test_result_skip("%s (no nested L2 TLB flush)\n",
						      cases[i].name);
				continue;
			}
			case_to_round(&cases[i], scratch);
			run_round(scratch, &res);
			report(cases[i].name, &res);
		}
		ksft_print_msg("verdicts: exact %d, superset %d, wrong %d\n",
			       verdicts[EXACT], verdicts[SUPERSET], verdicts[WRONG]);
	}

	for (i = 0; i < NR_VCPUS; i++) {
		if (i == SENDER)
			continue;
		pthread_cancel(threads[i]);
		pthread_join(threads[i], NULL);
	}
	kvm_vm_free(vm);
	kprobe_trace_exit();

	ksft_finished();
}
