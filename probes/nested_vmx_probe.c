// SPDX-License-Identifier: GPL-2.0-only
/*
 * Does nested VMX run an L2 guest here?  L1 sets up VMX with the selftest
 * library's helpers (vcpu_alloc_vmx, prepare_for_vmx_operation, load_vmcs,
 * prepare_vmcs), launches L2, and L2 makes VMCALLS that exit to L1, which
 * resumes it each time.  One KTAP line per step, and the round trips a
 * second.
 */
#include <stdint.h>
#include <time.h>

#include "kvm_util.h"
#include "processor.h"
#include "vmx.h"
#include "test_util.h"

#define ROUND_TRIPS	1000

static void l2_guest_code(void)
{
	for (;;)
		vmcall();
}

static void l1_guest_code(struct vmx_pages *vmx)
{
#define L2_STACK 256
	unsigned long l2_stack[L2_STACK];
	int i;

	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(load_vmcs(vmx));
	prepare_vmcs(vmx, l2_guest_code, &l2_stack[L2_STACK]);
	GUEST_SYNC(1);
	GUEST_ASSERT(!vmlaunch());
	GUEST_ASSERT_EQ(vmreadz(VM_EXIT_REASON), EXIT_REASON_VMCALL);
	GUEST_SYNC(2);
	for (i = 0; i < ROUND_TRIPS; i++) {
		vmwrite(GUEST_RIP, vmreadz(GUEST_RIP) + vmreadz(VM_EXIT_INSTRUCTION_LEN));
		GUEST_ASSERT(!vmresume());
		GUEST_ASSERT_EQ(vmreadz(VM_EXIT_REASON), EXIT_REASON_VMCALL);
	}
	GUEST_SYNC(3);
	GUEST_DONE();
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	vm_vaddr_t vmx_gva;
	struct ucall uc;
	double t = 0;

	TEST_REQUIRE(kvm_cpu_has(X86_FEATURE_VMX));

	vm = vm_create_with_one_vcpu(&vcpu, l1_guest_code);
	vcpu_alloc_vmx(vm, &vmx_gva);
	vcpu_args_set(vcpu, 1, vmx_gva);

	ksft_print_header();
	ksft_set_plan(3);
	for (;;) {
		vcpu_run(vcpu);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		case UCALL_SYNC:
			switch (uc.args[1]) {
			case 1:
				ksft_test_result_pass("l1_vmxon_vmcs: L1 entered VMX operation and loaded a VMCS\n");
				break;
			case 2:
				ksft_test_result_pass("l2_launch: L2 ran and its VMCALL exited to L1\n");
				t = now();
				break;
			case 3:
				t = now() - t;
				ksft_test_result_pass("l2_round_trips: %d VMRESUME/VMCALL round trips in %.2f s (%.0f/s)\n",
						      ROUND_TRIPS, t, ROUND_TRIPS / t);
				break;
			}
			break;
		case UCALL_DONE:
			kvm_vm_free(vm);
			ksft_finished();
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}
