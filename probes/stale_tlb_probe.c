// SPDX-License-Identifier: GPL-2.0-only
/*
 * Can a guest see a stale translation on this (emulated) host?
 *
 * The guest reads a test page through one GVA, its PTE is then pointed at
 * another page without any flush, and the guest reads again: the old
 * page's value means the translation was kept.  Asked after no VM exit, a
 * VM exit to user space (the host changes the PTE), an exit KVM handles
 * itself (CPUID), INVLPG, and a Hyper-V HvFlushVirtualAddressList for the
 * page (KVM's vendor flush of one GVA: INVVPID on Intel) or for another
 * page.  Upstream's hyperv_tlb_flush.c relies on the same kind of read.
 *
 * KTAP: one line per question; "ok" lines are controls that must hold
 * whatever the answer (INVLPG, a flush of the page), the rest report.
 * The test page and the guest's view of its page table sit at different
 * indices of a direct-mapped TLB (Bochs: 1024 entries by GVA bits 21:12),
 * away from the code, stack and data pages (low indices), so neither
 * writing the PTE nor running the guest evicts the test page's entry.
 */
#include <stdint.h>

#include "kvm_util.h"
#include "processor.h"
#include "hyperv.h"
#include "test_util.h"

#define TEST_GVA	0x702ab000ULL
#define VAL_A		0xaaaaaaaaaaaaaaaaULL
#define VAL_B		0xbbbbbbbbbbbbbbbbULL

static uint64_t pte_a, pte_b;	/* the test PTE pointing at page A or B */
static uint64_t pte_gva;	/* where the guest sees the test PTE */
static uint64_t hcall_gva, hcall_gpa;

enum { NO_EXIT = 1, USER_EXIT, CPUID_EXIT, INVLPG, FLUSH_PAGE, FLUSH_OTHER, DONE };

static inline void flush_page(uint64_t gva)
{
	asm volatile("invlpg (%0)" : : "r"(gva) : "memory");
}

static inline uint64_t rd(void)
{
	return READ_ONCE(*(volatile uint64_t *)TEST_GVA);
}

static inline void set_pte(uint64_t v)
{
	WRITE_ONCE(*(volatile uint64_t *)pte_gva, v);
}

static uint64_t flush_one(uint64_t gva)
{
	struct hv_tlb_flush *f = (void *)hcall_gva;
	uint64_t status;
	uint8_t vec;

	f->address_space = 0;
	f->flags = 0;
	f->processor_mask = 1;	/* vCPU 0: itself */
	f->gva_list[0] = gva & ~0xfffULL;	/* one page */
	vec = __hyperv_hypercall(HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST |
				 (1ULL << HV_HYPERCALL_REP_COMP_OFFSET),
				 hcall_gpa, 0, &status);
	return vec ? 0xdead0000ULL | vec : status & 0xffff;
}

static void guest_code(void)
{
	uint64_t before, after, st;
	uint32_t a, b, c, d;

	wrmsr(HV_X64_MSR_GUEST_OS_ID, HYPERV_LINUX_OS_ID);

	/* 1: A cached, PTE -> B, read again with no exit in between. */
	before = rd();
	set_pte(pte_b);
	after = rd();
	GUEST_SYNC_ARGS(NO_EXIT, before, after, 0, 0);

	/* 2: PTE is B; user space points it at A meanwhile (no flush). */
	flush_page(TEST_GVA);	/* B cached */
	before = rd();
	GUEST_SYNC_ARGS(USER_EXIT, before, 0, 0, 0);
	after = rd();
	GUEST_SYNC_ARGS(USER_EXIT, before, after, 1, 0);

	/* 3: PTE -> B, an exit KVM handles in the kernel (CPUID). */
	flush_page(TEST_GVA);
	before = rd();
	set_pte(pte_b);
	cpuid(0, &a, &b, &c, &d);
	after = rd();
	GUEST_SYNC_ARGS(CPUID_EXIT, before, after, 0, 0);

	/* 4: control: INVLPG makes the new mapping visible. */
	set_pte(pte_a);
	flush_page(TEST_GVA);
	after = rd();
	GUEST_SYNC_ARGS(INVLPG, 0, after, 0, 0);

	/* 5: PTE -> B, a Hyper-V flush of this page: must see B. */
	before = rd();
	set_pte(pte_b);
	st = flush_one(TEST_GVA);
	after = rd();
	GUEST_SYNC_ARGS(FLUSH_PAGE, before, after, st, 0);

	/* 6: PTE -> A, a Hyper-V flush of another page only. */
	before = rd();
	set_pte(pte_a);
	st = flush_one(TEST_GVA + 16 * 4096);
	after = rd();
	GUEST_SYNC_ARGS(FLUSH_OTHER, before, after, st, 0);

	GUEST_DONE();
}

static const char *what(uint64_t v)
{
	return v == VAL_A ? "A" : v == VAL_B ? "B" : "?";
}

int main(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	uint64_t *pte, page_a, page_b, ptpage_gva;
	vm_paddr_t pte_gpa;
	int stale = 0, fresh = 0;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_HYPERV_TLBFLUSH));

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vcpu_set_hv_cpuid(vcpu);

	page_a = vm_vaddr_alloc_page(vm);
	page_b = vm_vaddr_alloc_page(vm);
	*(uint64_t *)addr_gva2hva(vm, page_a) = VAL_A;
	*(uint64_t *)addr_gva2hva(vm, page_b) = VAL_B;

	virt_pg_map(vm, TEST_GVA, addr_gva2gpa(vm, page_a));
	pte = vm_get_page_table_entry(vm, TEST_GVA);
	pte_a = *pte;
	pte_b = (pte_a & ~(PHYSICAL_PAGE_MASK)) | (addr_gva2gpa(vm, page_b) & PHYSICAL_PAGE_MASK);

	/* The page table page holding the test PTE, mapped for the guest. */
	pte_gpa = addr_hva2gpa(vm, pte);
	ptpage_gva = vm_vaddr_unused_gap(vm, 4096, 0x80355000ULL);
	virt_pg_map(vm, ptpage_gva, pte_gpa & ~0xfffULL);
	pte_gva = ptpage_gva + (pte_gpa & 0xfff);

	hcall_gva = vm_vaddr_alloc_page(vm);
	hcall_gpa = addr_gva2gpa(vm, hcall_gva);
	sync_global_to_guest(vm, pte_a);
	sync_global_to_guest(vm, pte_b);
	sync_global_to_guest(vm, pte_gva);
	sync_global_to_guest(vm, hcall_gva);
	sync_global_to_guest(vm, hcall_gpa);

	ksft_print_header();
	ksft_set_plan(6);
	for (;;) {
		vcpu_run(vcpu);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		case UCALL_DONE:
			goto done;
		case UCALL_SYNC:
			break;
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
		uint64_t stage = uc.args[1], before = uc.args[2], after = uc.args[3], st = uc.args[4];
		/* The mapping changed between the reads: the old value is stale. */
		bool old = after == before;

		switch (stage) {
		case NO_EXIT:
		case CPUID_EXIT:
			ksft_test_result_pass("%s: before %s, after the PTE -> B: %s (%s)\n",
					      stage == NO_EXIT ? "no_exit" : "cpuid_exit",
					      what(before), what(after),
					      old ? "STALE translation seen" : "fresh");
			old ? stale++ : fresh++;
			break;
		case USER_EXIT:
			if (!st) {	/* the guest waits: change the PTE now */
				*pte = pte_a;
				continue;
			}
			ksft_test_result_pass("user_exit: before %s, after user space's PTE -> A: %s (%s)\n",
					      what(before), what(after),
					      old ? "STALE translation seen" : "fresh");
			old ? stale++ : fresh++;
			break;
		case INVLPG:
			ksft_test_result(after == VAL_A, "invlpg: after PTE -> A and INVLPG: %s (control, must be A)\n",
					 what(after));
			break;
		case FLUSH_PAGE:
			ksft_test_result(after == VAL_B && st == 0,
					 "hv_flush_page: before %s, PTE -> B, HvFlushVirtualAddressList(page): %s, status %#lx (control, must be B)\n",
					 what(before), what(after), st);
			break;
		case FLUSH_OTHER:
			ksft_test_result_pass("hv_flush_other: before %s, PTE -> A, flush of another page: %s, status %#lx (%s)\n",
					      what(before), what(after), st,
					      old ? "STALE translation seen" : "fresh");
			old ? stale++ : fresh++;
			break;
		}
	}
done:
	ksft_print_msg("stale translations seen: %d of %d questions (%s)\n", stale, stale + fresh,
		       stale ? "a guest-visible flush check is possible here" :
		       "every change was seen at once: memory cannot tell flushed from not flushed");
	kvm_vm_free(vm);
	ksft_finished();
}
