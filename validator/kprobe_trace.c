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
/* The counters kprobe_trace_lost() read last, if no clear came since. */
static bool lost_read;
static unsigned long lost_rb, lost_misses[MAX_PROBES];

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

/*
 * Read a whole small tracefs file into @buf, keeping it open in *@fd
 * (-1 at first): reading again from offset 0 renders it anew.
 */
static char *read_small(int *fd, const char *path, char *buf, size_t size)
{
	ssize_t n, len = 0;

	if (*fd < 0) {
		*fd = open(path, O_RDONLY);
		TEST_ASSERT(*fd >= 0, "Cannot read %s", path);
	}
	while ((n = pread(*fd, buf + len, size - 1 - len, len)) > 0)
		len += n;
	TEST_ASSERT(!n, "Cannot read %s", path);
	buf[len] = '\0';
	return buf;
}

static int stats_fd[256], profile_fd = -1;
static int nr_stats = -1;

/* Sum of the "<key>: <n>" lines of the instance's per-CPU stats. */
static unsigned long ring_buffer_lost(void)
{
	static const char * const keys[] = {
		"overrun:", "commit overrun:", "dropped events:",
	};
	static glob_t g;
	char pattern[PATH_MAX], buf[1024], *line;
	unsigned long total = 0;
	int i, k;

	if (nr_stats < 0) {
		if (g.gl_pathv)
			globfree(&g);
		snprintf(pattern, sizeof(pattern), "%s/per_cpu/cpu*/stats", instance);
		TEST_ASSERT(!glob(pattern, 0, NULL, &g) && g.gl_pathc <= ARRAY_SIZE(stats_fd),
			    "No %s", pattern);
		nr_stats = g.gl_pathc;
		for (i = 0; i < nr_stats; i++)
			stats_fd[i] = -1;
	}
	for (i = 0; i < nr_stats; i++) {
		read_small(&stats_fd[i], g.gl_pathv[i], buf, sizeof(buf));
		for (line = buf; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
			for (k = 0; k < ARRAY_SIZE(keys); k++) {
				if (!strncmp(line, keys[k], strlen(keys[k])))
					total += strtoul(line + strlen(keys[k]), NULL, 10);
			}
		}
	}
	return total;
}

/* Misses of the test's probes: the third column of kprobe_profile. */
static unsigned long probes_missed(unsigned long *per_probe)
{
	char path[PATH_MAX], buf[16384], name[128], *line;
	unsigned long hits, misses, total = 0;
	int i;

	if (!nr_probes)
		return 0;
	snprintf(path, sizeof(path), "%s/kprobe_profile", tracefs);
	read_small(&profile_fd, path, buf, sizeof(buf));
	for (line = buf; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
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
	return total;
}

static void close_raw(void);

/*
 * Async-signal-safe: only prepared strings, open(), write(), close(),
 * rmdir() and strlen().  Runs once.
 */
static void cleanup(void)
{
	const char *cmd;
	size_t len;
	int fd, i;

	if (cleaned)
		return;
	cleaned = 1;
	/* Open files of the instance would keep rmdir() from removing it. */
	close_raw();
	for (i = 0; i < nr_stats; i++) {
		if (stats_fd[i] >= 0)
			close(stats_fd[i]);
	}
	nr_stats = -1;
	if (profile_fd >= 0)
		close(profile_fd);
	profile_fd = -1;
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
	lost_read = false;
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

/*
 * The instance's per-CPU ring buffers, read in binary (trace_pipe_raw):
 * no event is formatted as text, which under emulation costs far more than
 * recording it.  A read consumes one page: a header (u64 timestamp, u64
 * commit: the length of the data, flags in bits 30-31), then the events,
 * each a u32 header (type_len in bits 0-4, time delta in bits 5-31) and
 * the record.
 */
#define MAX_CPUS	256
#define RB_TYPE_PADDING	29
#define RB_TYPE_EXTEND	30
#define RB_TYPE_STAMP	31
#define RB_DELTA_SHIFT	27
#define RB_COMMIT_MASK	((1ULL << 30) - 1)

static int raw_fd[MAX_CPUS];
static int nr_cpus;
static char *raw_buf[MAX_CPUS];
static size_t raw_len[MAX_CPUS], raw_size[MAX_CPUS];
static struct kprobe_trace_event *events;
static size_t events_size;

static void open_raw(void)
{
	char pattern[PATH_MAX];
	glob_t g;
	size_t i;

	snprintf(pattern, sizeof(pattern), "%s/per_cpu/cpu*/trace_pipe_raw", instance);
	TEST_ASSERT(!glob(pattern, 0, NULL, &g), "No %s", pattern);
	TEST_ASSERT(g.gl_pathc <= MAX_CPUS, "Too many CPUs");
	for (i = 0; i < g.gl_pathc; i++) {
		raw_fd[i] = open(g.gl_pathv[i], O_RDONLY | O_NONBLOCK);
		TEST_ASSERT(raw_fd[i] >= 0, "Cannot read %s", g.gl_pathv[i]);
	}
	nr_cpus = g.gl_pathc;
	globfree(&g);
}

static void close_raw(void)
{
	int cpu;

	for (cpu = 0; cpu < nr_cpus; cpu++)
		close(raw_fd[cpu]);
	nr_cpus = 0;
}

/* Every page recorded on @cpu so far, appended to raw_buf[cpu]. */
static void read_raw(int cpu)
{
	size_t page = getpagesize();
	ssize_t n;

	raw_len[cpu] = 0;
	for (;;) {
		if (raw_size[cpu] - raw_len[cpu] < page) {
			raw_size[cpu] = raw_size[cpu] ? 2 * raw_size[cpu] : 64 * page;
			raw_buf[cpu] = realloc(raw_buf[cpu], raw_size[cpu]);
			TEST_ASSERT(raw_buf[cpu], "Out of memory");
		}
		n = read(raw_fd[cpu], raw_buf[cpu] + raw_len[cpu], page);
		if (n <= 0) {
			TEST_ASSERT(!n || errno == EAGAIN,
				    "Cannot read CPU %d's ring buffer", cpu);
			return;
		}
		TEST_ASSERT(n == page, "Short read of CPU %d's ring buffer", cpu);
		raw_len[cpu] += page;
	}
}

static void add_event(size_t *nr, uint64_t ts, const char *rec)
{
	struct kprobe_trace_event *e;

	if (*nr == events_size) {
		events_size = events_size ? 2 * events_size : 4096;
		events = realloc(events, events_size * sizeof(*events));
		TEST_ASSERT(events, "Out of memory");
	}
	e = &events[(*nr)++];
	e->ts = ts;
	e->id = *(const uint16_t *)rec;
	e->pid = *(const int32_t *)(rec + 4);
	e->data = rec;
}

/* Decode the pages of @cpu into events[*nr...], in the order recorded. */
static void decode_raw(int cpu, size_t *nr)
{
	size_t page = getpagesize(), off;
	const char *p, *end;
	uint64_t ts, commit;
	uint32_t hdr, type, len;

	for (off = 0; off < raw_len[cpu]; off += page) {
		p = raw_buf[cpu] + off;
		ts = *(const uint64_t *)p;
		commit = *(const uint64_t *)(p + 8) & RB_COMMIT_MASK;
		TEST_ASSERT(commit <= page - 16, "Bad ring buffer page on CPU %d", cpu);
		end = p + 16 + commit;
		p += 16;
		while (p + 4 <= end) {
			hdr = *(const uint32_t *)p;
			type = hdr & 31;
			p += 4;
			switch (type) {
			case RB_TYPE_PADDING:
				if (!(hdr >> 5))
					p = end;
				else
					p += *(const uint32_t *)p;
				continue;
			case RB_TYPE_EXTEND:
				ts += (hdr >> 5) +
				      ((uint64_t)*(const uint32_t *)p << RB_DELTA_SHIFT);
				p += 4;
				continue;
			case RB_TYPE_STAMP:
				/* Absolute; the top bits come from the page. */
				ts = (ts & ~((1ULL << 59) - 1)) | (hdr >> 5) |
				     ((uint64_t)*(const uint32_t *)p << RB_DELTA_SHIFT);
				p += 4;
				continue;
			case 0:
				len = *(const uint32_t *)p - 4;
				len = (len + 3) & ~3U;
				p += 4;
				break;
			default:
				len = type * 4;
				break;
			}
			ts += hdr >> 5;
			TEST_ASSERT(p + len <= end && len >= 8, "Bad event on CPU %d", cpu);
			add_event(nr, ts, p);
			p += len;
		}
	}
}

size_t kprobe_trace_read(struct kprobe_trace_event **out)
{
	static struct kprobe_trace_event *merged;
	static size_t merged_size;
	size_t start[MAX_CPUS + 1], pos[MAX_CPUS], nr = 0, i;
	int cpu, best;

	if (!nr_cpus)
		open_raw();
	for (cpu = 0; cpu < nr_cpus; cpu++) {
		read_raw(cpu);
		start[cpu] = nr;
		decode_raw(cpu, &nr);
	}
	start[nr_cpus] = nr;
	if (nr > merged_size) {
		merged_size = events_size;
		merged = realloc(merged, merged_size * sizeof(*merged));
		TEST_ASSERT(merged, "Out of memory");
	}
	/* Each CPU's events are in time order: merge them (earlier CPU first on a tie). */
	for (cpu = 0; cpu < nr_cpus; cpu++)
		pos[cpu] = start[cpu];
	for (i = 0; i < nr; i++) {
		best = -1;
		for (cpu = 0; cpu < nr_cpus; cpu++) {
			if (pos[cpu] < start[cpu + 1] &&
			    (best < 0 || events[pos[cpu]].ts < events[pos[best]].ts))
				best = cpu;
		}
		merged[i] = events[pos[best]++];
	}
	*out = merged;
	return nr;
}

void kprobe_trace_clear(void)
{
	struct kprobe_trace_event *e;

	kprobe_trace_read(&e);
	/*
	 * Counting anew from the last kprobe_trace_lost() saves reading the
	 * counters again; a loss in between counts for the next reader.
	 */
	if (lost_read) {
		lost_base = lost_rb;
		memcpy(probe_misses, lost_misses, sizeof(probe_misses));
	} else {
		lost_base = ring_buffer_lost();
		probes_missed(probe_misses);
	}
	lost_read = false;
}

static int read_event_file(const char *system, const char *event, const char *file,
			   char *buf, size_t size)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	/* The test's own probes carry its PID in their names too. */
	snprintf(path, sizeof(path), "%s/events/%s/%s%s/%s", instance,
		 system ? system : group, event, system ? "" : suffix, file);
	fd = open(path, O_RDONLY);
	TEST_ASSERT(fd >= 0, "Cannot read %s", path);
	n = read(fd, buf, size - 1);
	TEST_ASSERT(n > 0, "Cannot read %s", path);
	buf[n] = '\0';
	close(fd);
	return 0;
}

int kprobe_trace_event_id(const char *system, const char *event)
{
	char buf[32];

	read_event_file(system, event, "id", buf, sizeof(buf));
	return atoi(buf);
}

int kprobe_trace_field(const char *system, const char *event, const char *field)
{
	char buf[4096], pat[80];
	const char *p;

	read_event_file(system, event, "format", buf, sizeof(buf));
	snprintf(pat, sizeof(pat), " %s;", field);
	p = strstr(buf, pat);
	TEST_ASSERT(p, "%s/%s has no field %s", system ? system : group, event, field);
	p = strstr(p, "offset:");
	TEST_ASSERT(p, "Malformed format of %s", event);
	return atoi(p + 7);
}

unsigned long kprobe_trace_lost(void)
{
	unsigned long now[MAX_PROBES] = {}, lost;
	int i;

	lost_rb = ring_buffer_lost();
	lost = lost_rb - lost_base;
	probes_missed(now);
	for (i = 0; i < nr_probes; i++)
		lost += now[i] - probe_misses[i];
	memcpy(lost_misses, now, sizeof(lost_misses));
	lost_read = true;
	return lost;
}
