// SPDX-License-Identifier: GPL-2.0-only
/*
 * A microbenchmark of the Hyper-V PV TLB flush hypercalls.
 *
 * The sender vCPU times HvFlushVirtualAddressList{,Ex} and
 * HvFlushVirtualAddressSpace with RDTSC, for ranges of 1 to 16 entries of
 * 1 to 4096 pages, flushing itself or another vCPU that spins in the guest.
 * A flush of another vCPU is timed until that vCPU runs guest code again,
 * i.e. until KVM has serviced the flush request on its way back into the
 * guest; a flush of the sender itself is serviced before the hypercall
 * returns to it.
 *
 * For each case it prints one KTAP result and a line
 *   # BENCH <case> n=<calls> median=<cycles> p10=<cycles> p90=<cycles>
 *     median_ns=<ns> pages=<pages per call>
 * The numbers depend on the host and, under emulation, on the emulator;
 * compare them only between KVM builds run on the same machine.
 */
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "kvm_util.h"
#include "processor.h"
#include "hyperv.h"

#define SENDER_VCPU_ID	0
#define TARGET_VCPU_ID	1

#define MAX_ENTRIES	16
#define MAX_SAMPLES	4096

enum bench_call {
	CALL_LIST,
	CALL_LIST_EX,
	CALL_SPACE,
};

struct bench_case {
	const char *name;
	enum bench_call call;
	u32 target;
	u32 nr_entries;
	u32 pages;	/* pages per entry */
	bool noncanonical;
};

/*
 * 15 entries are the most that KVM queues for a vCPU in one call; with 16 or
 * more it flushes the vCPU's whole TLB instead (a KVM implementation choice:
 * its FIFO holds 16 entries, one of which stays free for that fallback).
 */
static const struct bench_case cases[] = {
	{ "list_self_1x1", CALL_LIST, SENDER_VCPU_ID, 1, 1 },
	{ "list_self_1x4096", CALL_LIST, SENDER_VCPU_ID, 1, 4096 },
	{ "list_self_1x64", CALL_LIST, SENDER_VCPU_ID, 1, 64 },
	{ "list_self_1x128", CALL_LIST, SENDER_VCPU_ID, 1, 128 },
	{ "list_self_1x1024", CALL_LIST, SENDER_VCPU_ID, 1, 1024 },
	{ "list_self_15x4096", CALL_LIST, SENDER_VCPU_ID, 15, 4096 },
	{ "list_self_16x4096", CALL_LIST, SENDER_VCPU_ID, 16, 4096 },
	{ "list_self_15x4096_noncanonical", CALL_LIST, SENDER_VCPU_ID, 15, 4096, true },
	{ "list_other_1x1", CALL_LIST, TARGET_VCPU_ID, 1, 1 },
	{ "list_other_1x4096", CALL_LIST, TARGET_VCPU_ID, 1, 4096 },
	{ "list_other_15x4096", CALL_LIST, TARGET_VCPU_ID, 15, 4096 },
	{ "list_other_16x4096", CALL_LIST, TARGET_VCPU_ID, 16, 4096 },
	{ "list_other_15x4096_noncanonical", CALL_LIST, TARGET_VCPU_ID, 15, 4096, true },
	{ "listex_self_1x1", CALL_LIST_EX, SENDER_VCPU_ID, 1, 1 },
	{ "listex_self_1x4096", CALL_LIST_EX, SENDER_VCPU_ID, 1, 4096 },
	{ "listex_self_15x4096", CALL_LIST_EX, SENDER_VCPU_ID, 15, 4096 },
	{ "listex_self_16x4096", CALL_LIST_EX, SENDER_VCPU_ID, 16, 4096 },
	{ "listex_self_15x4096_noncanonical", CALL_LIST_EX, SENDER_VCPU_ID, 15, 4096, true },
	{ "listex_other_1x1", CALL_LIST_EX, TARGET_VCPU_ID, 1, 1 },
	{ "listex_other_1x4096", CALL_LIST_EX, TARGET_VCPU_ID, 1, 4096 },
	{ "listex_other_15x4096", CALL_LIST_EX, TARGET_VCPU_ID, 15, 4096 },
	{ "listex_other_16x4096", CALL_LIST_EX, TARGET_VCPU_ID, 16, 4096 },
	{ "listex_other_15x4096_noncanonical", CALL_LIST_EX, TARGET_VCPU_ID, 15, 4096, true },
	{ "space_self", CALL_SPACE, SENDER_VCPU_ID },
	{ "space_other", CALL_SPACE, TARGET_VCPU_ID },
};

/* Shared with the guest: what to run, and the sender's samples. */
struct bench_params {
	u32 case_idx;
	u32 min_calls;
	u32 max_calls;
	u32 warmup;
	uint64_t budget_cycles;
};

static struct bench_params params;
static uint64_t samples[MAX_SAMPLES];
static uint64_t nr_samples;
static u64 target_ticks;

static vm_vaddr_t hcall_gva;
static vm_paddr_t hcall_gpa;

/* The first page of each entry: apart, so that no two ranges overlap. */
static u64 entry_base(const struct bench_case *c, u32 i)
{
	/* 2^47 is the first non-canonical address with 48 bits. */
	u64 base = c->noncanonical ? BIT_ULL(47) : 0x40000000ULL;

	return base + (u64)i * HV_TLB_FLUSH_GVA_MAX_PAGES * PAGE_SIZE;
}

static u64 prepare_input(const struct bench_case *c)
{
	struct hv_tlb_flush *flush = (struct hv_tlb_flush *)hcall_gva;
	struct hv_tlb_flush_ex *flush_ex = (struct hv_tlb_flush_ex *)hcall_gva;
	u64 *gva_list;
	u64 control;
	u32 i;

	memset(flush, 0, PAGE_SIZE);
	switch (c->call) {
	case CALL_SPACE:
		flush->flags = HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES;
		flush->processor_mask = BIT_ULL(c->target);
		return HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE;
	case CALL_LIST:
		flush->flags = HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES;
		flush->processor_mask = BIT_ULL(c->target);
		gva_list = flush->gva_list;
		control = HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST;
		break;
	default:
		flush_ex->flags = HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES;
		flush_ex->hv_vp_set.format = HV_GENERIC_SET_SPARSE_4K;
		flush_ex->hv_vp_set.valid_bank_mask = BIT_ULL(0);
		flush_ex->hv_vp_set.bank_contents[0] = BIT_ULL(c->target);
		/* One bank of the VP set precedes the GVA list. */
		gva_list = flush_ex->gva_list + 1;
		control = HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX |
			  (1ULL << HV_HYPERCALL_VARHEAD_OFFSET);
		break;
	}
	for (i = 0; i < c->nr_entries; i++)
		gva_list[i] = entry_base(c, i) | (c->pages - 1);
	return control | ((u64)c->nr_entries << HV_HYPERCALL_REP_COMP_OFFSET);
}

static void target_guest_code(void)
{
	wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);
	for (;;)
		WRITE_ONCE(target_ticks, target_ticks + 1);
}

static u64 timed_call(u64 control, bool wait_target)
{
	u64 t0, ticks;

	t0 = rdtsc();
	hyperv_hypercall(control, hcall_gpa, hcall_gpa + PAGE_SIZE);
	if (wait_target) {
		/*
		 * KVM kicked the target out of the guest before the hypercall
		 * returned, and services the flush before the target runs
		 * guest code again: wait for its next tick.
		 */
		ticks = READ_ONCE(target_ticks);
		while (READ_ONCE(target_ticks) == ticks)
			cpu_relax();
	}
	return rdtsc() - t0;
}

static void sender_guest_code(void)
{
	wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);
	wrmsr(HV_X64_MSR_HYPERCALL, hcall_gpa);

	for (;;) {
		const struct bench_case *c = &cases[READ_ONCE(params.case_idx)];
		bool wait_target = c->target != SENDER_VCPU_ID;
		u64 control = prepare_input(c);
		u64 start;
		u32 i, n;

		for (i = 0; i < params.warmup; i++)
			timed_call(control, wait_target);

		start = rdtsc();
		for (n = 0; n < params.max_calls;) {
			samples[n++] = timed_call(control, wait_target);
			if (n >= params.min_calls &&
			    rdtsc() - start >= params.budget_cycles)
				break;
		}
		nr_samples = n;
		GUEST_SYNC(n);
	}
}

static void *target_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;
	int old;

	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old);
	vcpu_run(vcpu);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_FAIL("The target vCPU left its loop, exit reason %u",
		  vcpu->run->exit_reason);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static void run_case(struct kvm_vcpu *sender, u32 idx)
{
	const struct bench_case *c = &cases[idx];
	struct ucall uc;
	uint64_t med, pages;
	u32 n;

	params.case_idx = idx;
	sync_global_to_guest(sender->vm, params);
	vcpu_run(sender);
	TEST_ASSERT_KVM_EXIT_REASON(sender, KVM_EXIT_IO);
	switch (get_ucall(sender, &uc)) {
	case UCALL_SYNC:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		/* NOT REACHED */
	default:
		TEST_FAIL("Unexpected ucall %lu", uc.cmd);
	}

	sync_global_from_guest(sender->vm, nr_samples);
	sync_global_from_guest(sender->vm, samples);
	n = nr_samples;
	TEST_ASSERT(n >= params.min_calls && n <= params.max_calls &&
		    n == uc.args[1], "%s: %u samples", c->name, n);
	qsort(samples, n, sizeof(samples[0]), cmp_u64);
	med = samples[n / 2];
	pages = (u64)c->nr_entries * c->pages;
	ksft_print_msg("BENCH %s n=%u median=%lu p10=%lu p90=%lu median_ns=%lu pages=%lu\n",
		       c->name, n, med, samples[n / 10], samples[n * 9 / 10],
		       med * 1000000 / guest_tsc_khz, pages);
	ksft_test_result_pass("%s\n", c->name);
}

static void help(const char *name)
{
	u32 i;

	printf("usage: %s [-n min_calls] [-m max_calls] [-w warmup_calls]\n"
	       "       [-t budget_ms] [-c case]...\n"
	       "Each case runs its warm-up calls, then at least min_calls and\n"
	       "at most max_calls (%u at most) timed calls, stopping once\n"
	       "budget_ms of guest TSC time have passed.  Cases:\n",
	       name, MAX_SAMPLES);
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		printf("  %s\n", cases[i].name);
}

static u32 parse_u32(const char *opt, const char *arg, u32 max)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 0);

	TEST_ASSERT(*arg && !*end && v <= max,
		    "-%s: '%s' is not a number from 0 to %u", opt, arg, max);
	return v;
}

int main(int argc, char *argv[])
{
	bool selected[ARRAY_SIZE(cases)] = {};
	u32 budget_ms = 300, nr_selected = 0, i;
	struct kvm_vcpu *sender, *target;
	pthread_t thread;
	struct kvm_vm *vm;
	int opt;

	params.min_calls = 20;
	params.max_calls = MAX_SAMPLES;
	params.warmup = 5;
	while ((opt = getopt(argc, argv, "n:m:w:t:c:h")) != -1) {
		switch (opt) {
		case 'n':
			params.min_calls = parse_u32("n", optarg, MAX_SAMPLES);
			break;
		case 'm':
			params.max_calls = parse_u32("m", optarg, MAX_SAMPLES);
			break;
		case 'w':
			params.warmup = parse_u32("w", optarg, 1000000);
			break;
		case 't':
			budget_ms = parse_u32("t", optarg, 3600000);
			break;
		case 'c':
			for (i = 0; i < ARRAY_SIZE(cases); i++) {
				if (!strcmp(optarg, cases[i].name))
					break;
			}
			TEST_ASSERT(i < ARRAY_SIZE(cases),
				    "-c: no case '%s'; -h lists them", optarg);
			nr_selected += !selected[i];
			selected[i] = true;
			break;
		case 'h':
		default:
			help(argv[0]);
			exit(opt == 'h' ? 0 : KSFT_FAIL);
		}
	}
	TEST_ASSERT(params.min_calls >= 1 && params.min_calls <= params.max_calls,
		    "need 1 <= -n (%u) <= -m (%u)", params.min_calls,
		    params.max_calls);

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_HYPERV_TLBFLUSH));

	vm = vm_create_with_one_vcpu(&sender, sender_guest_code);
	hcall_gva = vm_vaddr_alloc_pages(vm, 2);
	hcall_gpa = addr_gva2gpa(vm, hcall_gva);
	sync_global_to_guest(vm, hcall_gva);
	sync_global_to_guest(vm, hcall_gpa);
	vcpu_set_hv_cpuid(sender);
	vcpu_set_msr(sender, HV_X64_MSR_VP_INDEX, SENDER_VCPU_ID);

	target = vm_vcpu_add(vm, TARGET_VCPU_ID, target_guest_code);
	vcpu_set_hv_cpuid(target);
	vcpu_set_msr(target, HV_X64_MSR_VP_INDEX, TARGET_VCPU_ID);
	TEST_ASSERT(!pthread_create(&thread, NULL, target_thread, target),
		    "pthread_create() failed");

	params.budget_cycles = (u64)budget_ms * guest_tsc_khz;

	ksft_print_header();
	if (!nr_selected) {
		nr_selected = ARRAY_SIZE(cases);
		memset(selected, true, sizeof(selected));
	}
	ksft_set_plan(nr_selected);
	ksft_print_msg("guest TSC %lu kHz; %u-%u calls per case, %u ms each, %u warm-up calls\n",
		       guest_tsc_khz, params.min_calls, params.max_calls,
		       budget_ms, params.warmup);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		if (selected[i])
			run_case(sender, i);
	}

	pthread_cancel(thread);
	pthread_join(thread, NULL);
	kvm_vm_free(vm);
	ksft_finished();
}
