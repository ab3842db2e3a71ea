// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host-side oracles from kprobe events, recorded in a private tracefs
 * instance.  See kprobe_trace.h.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <glob.h>
#include <sched.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kprobe_trace.h"
#include "test_util.h"

#define MAX_PROBES	8

static const char *tracefs;
static char instance[256];
static char group[64];
/* Event names carry the PID too: kprobe_profile shows no group. */
static char probes[MAX_PROBES][64];
static char suffix[16];
static unsigned long probe_misses[MAX_PROBES];
static int nr_probes;
static unsigned long lost_base;
static bool registered;
static char why[512];

/*
 * What the cleanup writes, prepared beforehand so that a signal handler
 * can run it with nothing but open(), write(), close() and rmdir(),
 * which are async-signal-safe.
 */
static char clean_enable[PATH_MAX];	/* <instance>/events/enable */
static char clean_kprobes[PATH_MAX];	/* <tracefs>/kprobe_events */
static char clean_cmds[MAX_PROBES * 96];	/* "-:group/event\n"... */
static volatile sig_atomic_t cleaned;

static const char *fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return why;
}

static int write_file(const char *dir, const char *file, const char *val,
		      int flags)
{
	char path[PATH_MAX];
	ssize_t len = strlen(val);
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | flags);
	if (fd < 0)
		return -errno;
	if (write(fd, val, len) != len)
		ret = errno ? -errno : -EIO;
	close(fd);
	return ret;
}

static bool tracefs_at(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/instances", dir);
	if (access(path, W_OK))
		return false;
	tracefs = dir;
	return true;
}

/*
 * The host's tracefs if it is mounted.  Else tracefs is mounted in a
 * mount namespace of the test's own, which the host never sees and which
 * goes away with the test: nothing to unmount, also after a crash.
 */
static bool find_tracefs(void)
{
	static const char * const dirs[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};
	int i;

	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (tracefs_at(dirs[i]))
			return true;
	}
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("nodev", dirs[0], "tracefs", 0, NULL))
		return false;
	return tracefs_at(dirs[0]);
}

/* Sum of the "<key>: <n>" lines of the instance's per-CPU stats. */
static unsigned long ring_buffer_lost(void)
{
	static const char * const keys[] = {
		"overrun:", "commit overrun:", "dropped events:",
	};
	char pattern[PATH_MAX], line[128];
	unsigned long total = 0;
	glob_t g;
	size_t i;
	int k;
	FILE *f;

	snprintf(pattern, sizeof(pattern), "%s/per_cpu/cpu*/stats", instance);
	if (glob(pattern, 0, NULL, &g))
		return 0;
	for (i = 0; i < g.gl_pathc; i++) {
		f = fopen(g.gl_pathv[i], "r");
		TEST_ASSERT(f, "Cannot read %s", g.gl_pathv[i]);
		while (fgets(line, sizeof(line), f)) {
			for (k = 0; k < ARRAY_SIZE(keys); k++) {
				if (!strncmp(line, keys[k], strlen(keys[k])))
					total += strtoul(line + strlen(keys[k]), NULL, 10);
			}
		}
		fclose(f);
	}
	globfree(&g);
	return total;
}

/* Misses of the test's probes: the third column of kprobe_profile. */
static unsigned long probes_missed(unsigned long *per_probe)
{
	char path[PATH_MAX], line[256], name[128];
	unsigned long hits, misses, total = 0;
	FILE *f;
	int i;

	if (!nr_probes)
		return 0;
	snprintf(path, sizeof(path), "%s/kprobe_profile", tracefs);
	f = fopen(path, "r");
	TEST_ASSERT(f, "Cannot read %s", path);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %127s %lu %lu", name, &hits, &misses) != 3)
			continue;
		for (i = 0; i < nr_probes; i++) {
			if (strcmp(name, probes[i]))
				continue;
			if (per_probe)
				per_probe[i] = misses;
			total += misses;
		}
	}
	fclose(f);
	return total;
}

/*
 * Async-signal-safe: only prepared strings, open(), write(), close(),
 * rmdir() and strlen().  Runs once.
 */
static void cleanup(void)
{
	const char *cmd;
	size_t len;
	int fd;

	if (cleaned)
		return;
	cleaned = 1;
	if (instance[0]) {
		/* Disabling the probes first lets them be deleted. */
		fd = open(clean_enable, O_WRONLY | O_TRUNC);
		if (fd >= 0) {
			if (write(fd, "0", 1) < 0)
				;
			close(fd);
		}
		rmdir(instance);
	}
	/* One command per write(): kprobe_events takes one at a time. */
	for (cmd = clean_cmds; *cmd; cmd += len) {
		for (len = 0; cmd[len] && cmd[len] != '\n'; len++)
			;
		len += cmd[len] == '\n';
		fd = open(clean_kprobes, O_WRONLY | O_APPEND);
		if (fd >= 0) {
			if (write(fd, cmd, len) < 0)
				;
			close(fd);
		}
	}
}

void kprobe_trace_exit(void)
{
	cleanup();
	instance[0] = '\0';
	nr_probes = 0;
	clean_cmds[0] = '\0';
}

/* A test that dies on a signal (abort() included) cleans up as well. */
static void kprobe_trace_signal(int sig)
{
	cleanup();
	/* SA_RESETHAND restored the default action: die of the signal. */
	raise(sig);
}

/*
 * How many processes other than this one hold a KVM VM: the probes fire
 * for their vCPUs too while this test runs.
 */
int kprobe_trace_other_vms(void)
{
	char path[PATH_MAX], link[64];
	struct dirent *p, *f;
	DIR *proc, *fds;
	int n = 0, found;
	ssize_t len;

	proc = opendir("/proc");
	if (!proc)
		return 0;
	while ((p = readdir(proc))) {
		if (!isdigit((unsigned char)p->d_name[0]) ||
		    atoi(p->d_name) == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		fds = opendir(path);
		if (!fds)
			continue;
		found = 0;
		while (!found && (f = readdir(fds))) {
			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, f->d_name);
			len = readlink(path, link, sizeof(link) - 1);
			if (len <= 0)
				continue;
			link[len] = '\0';
			found = !strcmp(link, "anon_inode:kvm-vm");
		}
		closedir(fds);
		n += found;
	}
	closedir(proc);
	return n;
}

const char *kprobe_trace_init(const char *name, unsigned int buffer_kb,
			      const cpu_set_t *cpus)
{
	char path[PATH_MAX], val[32];
	int ret, cpu;

	if (!find_tracefs())
		return fail("tracefs is not available (not root, or no CONFIG_TRACING?)");
	snprintf(path, sizeof(path), "%s/kprobe_events", tracefs);
	if (access(path, W_OK))
		return fail("%s is not writable (CONFIG_KPROBE_EVENTS, lockdown?)", path);

	if (!registered) {
		static const int sigs[] = {
			SIGABRT, SIGBUS, SIGHUP, SIGINT, SIGSEGV, SIGTERM,
		};
		struct sigaction sa = {
			.sa_handler = kprobe_trace_signal,
			.sa_flags = SA_RESETHAND,
		};
		int i;

		sigemptyset(&sa.sa_mask);
		atexit(kprobe_trace_exit);
		for (i = 0; i < ARRAY_SIZE(sigs); i++)
			sigaction(sigs[i], &sa, NULL);
		registered = true;
	}

	snprintf(group, sizeof(group), "%s_%d", name, getpid());
	snprintf(suffix, sizeof(suffix), "_%d", getpid());
	snprintf(clean_kprobes, sizeof(clean_kprobes), "%s/kprobe_events", tracefs);
	clean_cmds[0] = '\0';
	cleaned = 0;
	snprintf(instance, sizeof(instance), "%s/instances/%s", tracefs, group);
	snprintf(clean_enable, sizeof(clean_enable), "%s/events/enable", instance);
	if (mkdir(instance, 0700)) {
		ret = errno;
		instance[0] = '\0';
		return fail("cannot create the tracefs instance %s/instances/%s: %s",
			    tracefs, group, strerror(ret));
	}

	/*
	 * A big buffer only on the CPUs the test's threads run on; the
	 * smallest one elsewhere, where nothing of the test is recorded.
	 */
	ret = write_file(instance, "buffer_size_kb", "4", O_TRUNC);
	for (cpu = 0; !ret && cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, cpus))
			continue;
		snprintf(path, sizeof(path), "per_cpu/cpu%d/buffer_size_kb", cpu);
		snprintf(val, sizeof(val), "%u", buffer_kb);
		ret = write_file(instance, path, val, O_TRUNC);
	}
	if (ret)
		return fail("cannot size the instance's buffer to %u KiB on the test's CPUs: %s",
			    buffer_kb, strerror(-ret));
	ret = write_file(instance, "trace_clock", "global", O_TRUNC);
	if (ret)
		return fail("cannot select the global trace clock: %s", strerror(-ret));
	return NULL;
}

const char *kprobe_trace_add_probe(const char *event, const char *def)
{
	char cmd[512], file[256];
	int ret;

	TEST_ASSERT(instance[0], "kprobe_trace_init() first");
	TEST_ASSERT(nr_probes < MAX_PROBES, "Too many probes");

	snprintf(cmd, sizeof(cmd), "%c:%s/%s%s %s\n", def[0], group, event, suffix, def + 2);
	ret = write_file(tracefs, "kprobe_events", cmd, O_APPEND);
	if (ret) {
		cmd[strlen(cmd) - 1] = '\0';
		return fail("cannot add the kprobe event '%s': %s", cmd, strerror(-ret));
	}
	snprintf(probes[nr_probes++], sizeof(probes[0]), "%s%s", event, suffix);
	snprintf(cmd, sizeof(cmd), "-:%s/%s%s\n", group, event, suffix);
	TEST_ASSERT(strlen(clean_cmds) + strlen(cmd) < sizeof(clean_cmds), "Too many probes");
	strcat(clean_cmds, cmd);

	snprintf(file, sizeof(file), "events/%s/%s%s/enable", group, event, suffix);
	ret = write_file(instance, file, "1", O_TRUNC);
	if (ret)
		return fail("cannot enable %s in the instance: %s", event, strerror(-ret));
	return NULL;
}

const char *kprobe_trace_enable_event(const char *system, const char *event)
{
	char file[256];
	int ret;

	snprintf(file, sizeof(file), "events/%s/%s/enable", system, event);
	ret = write_file(instance, file, "1", O_TRUNC);
	if (ret)
		return fail("cannot enable the trace event %s/%s: %s", system, event,
			    strerror(-ret));
	return NULL;
}

const char *kprobe_trace_set_pids(const pid_t *pids, int nr_pids)
{
	char buf[16 * 64] = "";
	size_t pos = 0;
	int i, ret;

	for (i = 0; i < nr_pids && pos < sizeof(buf) - 16; i++)
		pos += snprintf(buf + pos, sizeof(buf) - pos, "%d ", pids[i]);
	TEST_ASSERT(i == nr_pids, "Too many PIDs");
	ret = write_file(instance, "set_event_pid", buf, O_TRUNC);
	if (ret)
		return fail("cannot set the instance's set_event_pid: %s", strerror(-ret));
	return NULL;
}

/* The instance's trace_pipe, read without waiting and consumed. */
static FILE *open_pipe(void)
{
	char path[PATH_MAX];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/trace_pipe", instance);
	fd = open(path, O_RDONLY | O_NONBLOCK);
	TEST_ASSERT(fd >= 0, "Cannot read %s", path);
	f = fdopen(fd, "r");
	TEST_ASSERT(f, "fdopen() failed");
	return f;
}

void kprobe_trace_clear(void)
{
	char buf[4096];
	FILE *f = open_pipe();

	/* Consuming what is left is cheaper than resetting the buffer. */
	while (fread(buf, 1, sizeof(buf), f) > 0)
		;
	fclose(f);
	lost_base = ring_buffer_lost();
	probes_missed(probe_misses);
}

unsigned long kprobe_trace_lost(void)
{
	unsigned long now[MAX_PROBES] = {}, lost;
	int i;

	lost = ring_buffer_lost() - lost_base;
	probes_missed(now);
	for (i = 0; i < nr_probes; i++)
		lost += now[i] - probe_misses[i];
	return lost;
}

FILE *kprobe_trace_open(void)
{
	return open_pipe();
}

/* "<comm>-<pid> [<cpu>] <flags> <timestamp>: <event>: <args>" */
const char *kprobe_trace_parse(const char *line, pid_t *pid, char *event,
			       size_t size)
{
	const char *p = strstr(line, " ["), *end, *ev;
	size_t len;

	if (line[0] == '#' || !p)
		return NULL;
	while (p > line && p[-1] == ' ')
		p--;
	end = p;
	while (p > line && isdigit((unsigned char)p[-1]))
		p--;
	if (p == end || p == line || p[-1] != '-')
		return NULL;
	*pid = strtol(p, NULL, 10);

	p = strchr(end, ']');
	if (!p)
		return NULL;
	p = strstr(p, ": ");
	if (!p)
		return NULL;
	ev = p + 2;
	end = strchr(ev, ':');
	if (!end || (size_t)(end - ev) >= size)
		return NULL;
	memcpy(event, ev, end - ev);
	event[end - ev] = '\0';
	/* The test's own probes: without the PID suffix. */
	len = strlen(event);
	if (suffix[0] && len > strlen(suffix) &&
	    !strcmp(event + len - strlen(suffix), suffix))
		event[len - strlen(suffix)] = '\0';
	return end + 1;
}
