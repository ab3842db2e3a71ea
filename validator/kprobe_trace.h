/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Host-side oracles from kprobe events, recorded in a private tracefs
 * instance.
 *
 * The instance, the probes and the event PID filter belong to the test:
 * the probes are enabled only in the instance, their names carry the
 * test's PID (kprobe_profile shows no group), nothing of the host's global
 * tracing state is changed, and everything is removed again at exit, also
 * when the test fails or dies of a signal (the handler does only
 * async-signal-safe writes prepared beforehand).  The probes themselves
 * are global while they exist: other VMs' vCPUs hit them too.
 */
#ifndef SELFTEST_KVM_KPROBE_TRACE_H
#define SELFTEST_KVM_KPROBE_TRACE_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * Create the private instance "<name>_<pid>" with a buffer of @buffer_kb
 * on each CPU of @cpus (the CPUs the test's threads are bound to) and the
 * smallest one elsewhere, and the global trace clock, so that events of
 * different CPUs are ordered.  If tracefs is not mounted, it is mounted in
 * a mount namespace of the test's own.  Returns NULL on success, else why
 * it is not possible.
 */
const char *kprobe_trace_init(const char *name, unsigned int buffer_kb,
			      const cpu_set_t *cpus);

/*
 * The number of other processes that hold a KVM VM: kprobes are global,
 * so the test's probes also fire for their vCPUs (their events are not
 * recorded) while it runs.
 */
int kprobe_trace_other_vms(void);

/*
 * Add the kprobe event @event, defined as in kprobe_events without the
 * "p:group/event" prefix (e.g. "p kvm:func arg=%si:x64" or
 * "r kvm:func ret=$retval:s32"), and enable it in the instance only.
 */
const char *kprobe_trace_add_probe(const char *event, const char *def);

/* Enable the existing trace event @system/@event in the instance only. */
const char *kprobe_trace_enable_event(const char *system, const char *event);

/* Record only events of these threads. */
const char *kprobe_trace_set_pids(const pid_t *pids, int nr_pids);

/*
 * Drop the recorded events and start counting losses anew: from the
 * counters the last kprobe_trace_lost() read, if it came after the last
 * clear, so that no loss goes uncounted.
 */
void kprobe_trace_clear(void);

/*
 * Events lost since the last clear: ring buffer overruns and dropped
 * events of the instance, and misses of the test's probes.
 */
unsigned long kprobe_trace_lost(void);

/* A recorded event: its record starts with the common fields. */
struct kprobe_trace_event {
	uint64_t ts;		/* the global trace clock */
	int id;			/* see kprobe_trace_event_id() */
	pid_t pid;
	const void *data;	/* the record */
};

/*
 * The events recorded since the last clear or read, oldest first, read in
 * binary from the ring buffers; reading consumes them.  *@events stays
 * valid until the next read or clear.  Returns how many there are.
 */
size_t kprobe_trace_read(struct kprobe_trace_event **events);

/*
 * The id of the event @system/@event, and the offset of its @field in the
 * record; a NULL @system means the test's own kprobe events.
 */
int kprobe_trace_event_id(const char *system, const char *event);
int kprobe_trace_field(const char *system, const char *event, const char *field);

/* Remove the instance and the test's probes (also done at exit). */
void kprobe_trace_exit(void);

#endif /* SELFTEST_KVM_KPROBE_TRACE_H */
