/* cgroup: see cgroup.h. Creates, limits, inspects and removes the per-sandbox
 * groups under <controller root>/<cfg->cgroup_parent>/<id>, for v2 and v1. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sandbox_paths.h"
#include "util.h"

#define V1_MEMORY "/sys/fs/cgroup/memory"
#define V1_PIDS "/sys/fs/cgroup/pids"
/* Most groups of one sandbox: v1 memory, pids and cpu. */
#define MAX_GROUPS 3

enum cg_kind { CG_NONE, CG_V1, CG_V2 };

/* What this machine offers. v1 may have only one of the two controllers. */
struct cg_layout {
	enum cg_kind kind;
	const char *v2_root; /* CG_V2: the unified hierarchy */
	int v1_memory;       /* CG_V1: memory controller mounted */
	int v1_pids;         /* CG_V1: pids controller mounted */
	const char *v1_cpu;  /* CG_V1: where the cpu controller is mounted, or NULL */
};

/* snprintf for paths: 0, or -1 (ENAMETOOLONG) when the result does not fit. */
__attribute__((format(printf, 3, 4))) static int pathf(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Reads a small file into buf (NUL-terminated). Bytes read, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read_all(fd, buf, cap - 1);
	int saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return -1;
	}
	buf[n] = '\0';
	return n;
}

/* Writes s to a cgroup control file. 0, or -1 with errno set. */
static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, s, strlen(s));
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* True when the list (words separated by spaces, newlines or commas, as in
 * cgroup.controllers or a v1 line of /proc/self/cgroup) contains word. */
static int has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
		int start = p == list || strchr(" \n,", p[-1]);
		int end = p[n] == '\0' || strchr(" \n,", p[n]);
		if (start && end)
			return 1;
	}
	return 0;
}

static struct cg_layout probe(void)
{
	static const char *const v2_roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	/* a v1 cpu is mounted alone, or with cpuacct (often "cpu" is a symlink) */
	static const char *const v1_cpu_roots[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"};
	struct cg_layout l = {CG_NONE, NULL, 0, 0, NULL};
	char buf[512], path[PATH_MAX];
	for (size_t i = 0; i < 2; i++) {
		pathf(path, sizeof(path), "%s/cgroup.controllers", v2_roots[i]);
		if (read_small(path, buf, sizeof(buf)) < 0)
			continue;
		if (has_word(buf, "memory") && has_word(buf, "pids")) {
			l.kind = CG_V2;
			l.v2_root = v2_roots[i];
			return l;
		}
	}
	l.v1_memory = file_exists(V1_MEMORY "/memory.limit_in_bytes");
	l.v1_pids = file_exists(V1_PIDS "/cgroup.procs") && !file_exists(V1_PIDS "/cgroup.controllers");
	for (size_t i = 0; i < 2 && !l.v1_cpu; i++) {
		pathf(path, sizeof(path), "%s/cpu.cfs_quota_us", v1_cpu_roots[i]);
		if (file_exists(path))
			l.v1_cpu = v1_cpu_roots[i];
	}
	if (l.v1_memory || l.v1_pids || l.v1_cpu)
		l.kind = CG_V1;
	return l;
}

/* The mounts do not change under a running service: probed once per process
 * (a worker asks on every execution, for the OOM count). */
static struct cg_layout detect(void)
{
	static struct cg_layout cached;
	static int known;
	if (!known) {
		cached = probe();
		known = 1;
	}
	return cached;
}

void cgroup_probe(void)
{
	if (detect().kind == CG_NONE)
		log_warn("cgroup: no usable memory, pids or cpu hierarchy; sandboxes get rlimits only");
}

/* The parent may be nested ("a/b") but stays relative and never climbs. */
static int parent_ok(const char *p)
{
	if (!p[0] || p[0] == '/' || strlen(p) > 200)
		return 0;
	for (const char *c = p; *c; c++)
		if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') ||
		      ('0' <= *c && *c <= '9') || *c == '_' || *c == '-' || *c == '.' || *c == '/'))
			return 0;
	return strstr(p, "..") == NULL && strstr(p, "//") == NULL;
}

/* An install sandbox's group name: CGROUP_INSTALL_PREFIX and a sandbox id. */
static int is_install_group(const char *id)
{
	size_t n = strlen(CGROUP_INSTALL_PREFIX);
	return strncmp(id, CGROUP_INSTALL_PREFIX, n) == 0 && sbx_id_valid(id + n);
}

/* A group name of ours: a sandbox id, or an install sandbox's. */
static int id_ok(const char *id)
{
	return sbx_id_valid(id) || is_install_group(id);
}

/* Formats <root>/<parent>[/<id>] into out. 0, or -1 when it does not fit. */
static int group_path(char *out, size_t cap, const char *root, const struct config *cfg,
		      const char *id)
{
	return id ? pathf(out, cap, "%s/%s/%s", root, cfg->cgroup_parent, id)
		  : pathf(out, cap, "%s/%s", root, cfg->cgroup_parent);
}

/* The group directories of this sandbox on this machine (0 to MAX_GROUPS). */
static int group_dirs(const struct config *cfg, const char *id, char dirs[MAX_GROUPS][PATH_MAX])
{
	struct cg_layout l = detect();
	int n = 0;
	if (!parent_ok(cfg->cgroup_parent) || !id_ok(id))
		return 0;
	if (l.kind == CG_V2) {
		if (group_path(dirs[n], PATH_MAX, l.v2_root, cfg, id) == 0)
			n++;
	} else if (l.kind == CG_V1) {
		if (l.v1_memory && group_path(dirs[n], PATH_MAX, V1_MEMORY, cfg, id) == 0)
			n++;
		if (l.v1_pids && group_path(dirs[n], PATH_MAX, V1_PIDS, cfg, id) == 0)
			n++;
		if (l.v1_cpu && group_path(dirs[n], PATH_MAX, l.v1_cpu, cfg, id) == 0)
			n++;
	}
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* True while /proc/<pid>/cgroup still names a group ending in suffix. */
static int pid_in_group(pid_t pid, const char *suffix)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	size_t sl = strlen(suffix);
	for (char *line = buf; *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len >= sl && memcmp(line + len - sl, suffix, sl) == 0)
			return 1;
		if (!nl)
			break;
		line = nl + 1;
	}
	return 0;
}

/* SIGKILL for pid, through a pidfd so that a recycled pid is never hit: the
 * pidfd pins the process, then we check it is still in our group. */
static void kill_member(pid_t pid, const char *suffix)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		if (errno == ENOSYS && pid_in_group(pid, suffix))
			kill(pid, SIGKILL);
		return;
	}
	if (pid_in_group(pid, suffix))
		syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
	close(pfd);
}

/* Kills every member of the group at dir and removes it; waits at most ~5 s for
 * the members to die. 0 (also when it did not exist) or -1. A group with no
 * member left (a sandbox that has ended: the usual case) goes at the first
 * rmdir, without a look for cgroup.kill. */
static int remove_group(const char *dir, const char *suffix)
{
	char path[PATH_MAX + 32];
	for (int attempt = 0; attempt < 500; attempt++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY) {
			log_warn("cgroup: rmdir %s: %s", dir, strerror(errno));
			return -1;
		}
		if (attempt == 0 && pathf(path, sizeof(path), "%s/cgroup.kill", dir) == 0 && file_exists(path)) {
			write_file(path, "1"); /* v2, Linux 5.14+: kills the whole subtree */
			continue;
		}
		if (pathf(path, sizeof(path), "%s/cgroup.procs", dir) < 0)
			return -1;
		FILE *f = fopen(path, "re");
		if (f) {
			int pid;
			while (fscanf(f, "%d", &pid) == 1)
				if (pid > 0)
					kill_member(pid, suffix);
			fclose(f);
		}
		sleep_ms(10);
	}
	log_warn("cgroup: %s still busy after 5 s", dir);
	errno = EBUSY;
	return -1;
}

/* Enables the controllers (NULL-terminated) for the children of every level
 * from the v2 root down to the parent group (the root itself may not have them
 * enabled yet). 0, or -1 with errno. */
static int v2_enable(const char *root, const char *parent, const char *const *controllers)
{
	char path[PATH_MAX], level[PATH_MAX];
	if (pathf(level, sizeof(level), "%s", root) < 0)
		return -1;
	const char *rest = parent;
	for (;;) {
		char cur[512], plus[32];
		if (pathf(path, sizeof(path), "%s/cgroup.subtree_control", level) < 0 ||
		    read_small(path, cur, sizeof(cur)) < 0)
			return -1;
		for (const char *const *c = controllers; *c; c++) {
			snprintf(plus, sizeof(plus), "+%s", *c);
			if (!has_word(cur, *c) && write_file(path, plus) < 0)
				return -1;
		}
		if (!*rest)
			return 0;
		const char *slash = strchr(rest, '/');
		size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
		size_t used = strlen(level);
		if (used + 1 + len >= sizeof(level)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		level[used] = '/';
		memcpy(level + used + 1, rest, len);
		level[used + 1 + len] = '\0';
		rest = slash ? slash + 1 : rest + len;
	}
}

/* Writes value into dir/file. 0 or -1 (logged, naming the file). */
static int set_value(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX + 64];
	if (pathf(path, sizeof(path), "%s/%s", dir, file) < 0 || write_file(path, value) < 0) {
		log_error("cgroup: writing %s to %s: %s", value, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The parent groups this process has made (and, on v2, enabled the memory and
 * pids controllers under): made once, not once per sandbox. */
static char made_parents[MAX_GROUPS][PATH_MAX];

static int parent_made(const char *parent)
{
	for (int i = 0; i < MAX_GROUPS; i++)
		if (strcmp(made_parents[i], parent) == 0)
			return 1;
	return 0;
}

static void parent_remember(const char *parent)
{
	for (int i = 0; i < MAX_GROUPS && !parent_made(parent); i++)
		if (made_parents[i][0] == '\0')
			snprintf(made_parents[i], sizeof(made_parents[i]), "%s", parent);
}

/* Makes the parent group (on v2, v2_root given: with memory and pids enabled
 * for its children). 0; 1 when the controllers cannot be enabled; -1. */
static int make_parent(const char *parent, const char *v2_root, const struct config *cfg)
{
	if (mkdir_p(parent, 0755) < 0) {
		log_error("cgroup: mkdir %s: %s", parent, strerror(errno));
		return -1;
	}
	static const char *const memory_pids[] = {"memory", "pids", NULL};
	if (v2_root && v2_enable(v2_root, cfg->cgroup_parent, memory_pids) < 0)
		return 1;
	parent_remember(parent);
	return 0;
}

/* Creates dir in parent (removing a stale group of the same name first); the
 * parent is made first when this process has not made it yet, or it has gone
 * since. 0; 1 when the v2 controllers cannot be enabled; -1 (logged). */
static int make_group(const char *parent, const char *dir, const char *suffix, const char *v2_root,
		      const struct config *cfg)
{
	int rc;
	if (!parent_made(parent) && (rc = make_parent(parent, v2_root, cfg)) != 0)
		return rc;
	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno == ENOENT) { /* the parent was removed since: make it again */
		if ((rc = make_parent(parent, v2_root, cfg)) != 0)
			return rc;
		if (mkdir(dir, 0755) == 0)
			return 0;
	}
	if (errno == EEXIST) {
		log_warn("cgroup: %s left over, removing it", dir);
		if (remove_group(dir, suffix) == 0 && mkdir(dir, 0755) == 0)
			return 0;
	}
	log_error("cgroup: mkdir %s: %s", dir, strerror(errno));
	return -1;
}

/* Whether the kernel offers a swap limit (memory.memsw.* on v1,
 * memory.swap.max on v2): learnt from the first group, -1 until then. */
static int swap_file = -1;

/* Whether the v1 memory controller charges socket buffers to a group of its
 * own (memory.kmem.tcp.limit_in_bytes): learnt from the first group. */
static int tcp_file = -1;

/* Says once per process that sandboxes get no cpu limit here, and why. */
static void no_cpu_limit(const char *why)
{
	static int said;
	if (!said)
		log_warn("cgroup: no cpu controller (%s): a sandbox's CPU is bounded only by RLIMIT_CPU",
			 why);
	said = 1;
}

/* The v2 cpu limit of the group at dir, where the cpu controller can be
 * enabled in the parents' cgroup.subtree_control (it may be missing, or
 * refused while real-time processes run outside the root group): else nothing
 * is limited (said once). 0, or -1 (logged). */
static int v2_cpu_limit(const char *v2_root, const char *dir, const struct config *cfg, long quota_us)
{
	static const char *const cpu[] = {"cpu", NULL};
	char path[PATH_MAX + 32], value[64];
	if (pathf(path, sizeof(path), "%s/cpu.max", dir) < 0)
		return -1;
	if (!file_exists(path) && v2_enable(v2_root, cfg->cgroup_parent, cpu) < 0) {
		no_cpu_limit(strerror(errno));
		return 0;
	}
	if (!file_exists(path)) {
		no_cpu_limit("no cpu.max in the group");
		return 0;
	}
	snprintf(value, sizeof(value), "%ld %d", quota_us, CGROUP_CPU_PERIOD_US);
	return set_value(dir, "cpu.max", value);
}

/* Makes the sandbox's group under the v1 controller mounted at root; its path
 * goes to dir (PATH_MAX). 0, or -1 (logged). */
static int v1_group(const char *root, const struct config *cfg, const char *id, const char *suffix,
		    char *dir)
{
	char parent[PATH_MAX];
	if (group_path(parent, sizeof(parent), root, cfg, NULL) < 0 ||
	    group_path(dir, PATH_MAX, root, cfg, id) < 0)
		return -1;
	return make_group(parent, dir, suffix, NULL, cfg) < 0 ? -1 : 0;
}

int cgroup_setup(const struct config *cfg, const char *id, const struct cgroup_limits *limits,
		 pid_t pid)
{
	struct cg_layout l = detect();
	char dir[PATH_MAX], parent[PATH_MAX], suffix[300];
	char mem[32], pids[32], pidstr[32];
	int rc = -1;

	if (!parent_ok(cfg->cgroup_parent) || !id_ok(id)) {
		log_error("cgroup: invalid parent \"%s\" or id \"%s\"", cfg->cgroup_parent, id);
		return -1;
	}
	if (l.kind == CG_NONE) {
		log_warn("cgroup: no memory, pids or cpu controller available; only rlimits apply");
		return 0;
	}
	snprintf(suffix, sizeof(suffix), ":/%s/%s", cfg->cgroup_parent, id);
	snprintf(mem, sizeof(mem), "%" PRIu64, limits->memory_bytes);
	snprintf(pids, sizeof(pids), "%d", limits->pids);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);

	if (l.kind == CG_V2) {
		if (group_path(parent, sizeof(parent), l.v2_root, cfg, NULL) < 0 ||
		    group_path(dir, sizeof(dir), l.v2_root, cfg, id) < 0)
			return -1;
		int made = make_group(parent, dir, suffix, l.v2_root, cfg);
		if (made < 0)
			return -1;
		if (made == 1) {
			/* e.g. a container's cgroup namespace root that holds processes */
			log_warn("cgroup: cannot enable memory and pids under %s: %s; only rlimits apply",
				 parent, strerror(errno));
			return 0;
		}
		char swap[PATH_MAX + 32];
		if (swap_file < 0)
			swap_file = pathf(swap, sizeof(swap), "%s/memory.swap.max", dir) == 0 && file_exists(swap);
		if (set_value(dir, "memory.max", mem) < 0 ||
		    (swap_file && set_value(dir, "memory.swap.max", "0") < 0) ||
		    set_value(dir, "pids.max", pids) < 0 ||
		    (limits->cpu_quota_us > 0 &&
		     v2_cpu_limit(l.v2_root, dir, cfg, limits->cpu_quota_us) < 0) ||
		    set_value(dir, "cgroup.procs", pidstr) < 0)
			goto fail;
		return 1;
	}

	/* v1: one group per controller */
	rc = 0;
	if (l.v1_cpu) {
		/* made without a quota too: a runner joins every group of its sandbox */
		char period[32], quota[32];
		snprintf(period, sizeof(period), "%d", CGROUP_CPU_PERIOD_US);
		snprintf(quota, sizeof(quota), "%ld", limits->cpu_quota_us > 0 ? limits->cpu_quota_us : -1L);
		if (v1_group(l.v1_cpu, cfg, id, suffix, dir) < 0 ||
		    set_value(dir, "cpu.cfs_period_us", period) < 0 ||
		    set_value(dir, "cpu.cfs_quota_us", quota) < 0 || set_value(dir, "cgroup.procs", pidstr) < 0)
			goto fail;
	} else if (limits->cpu_quota_us > 0) {
		no_cpu_limit("neither /sys/fs/cgroup/cpu nor /sys/fs/cgroup/cpu,cpuacct is mounted");
	}
	if (l.v1_pids) {
		if (v1_group(V1_PIDS, cfg, id, suffix, dir) < 0 || set_value(dir, "pids.max", pids) < 0 ||
		    set_value(dir, "cgroup.procs", pidstr) < 0)
			goto fail;
	}
	if (l.v1_memory) {
		if (v1_group(V1_MEMORY, cfg, id, suffix, dir) < 0)
			goto fail;
		char memsw[PATH_MAX + 32];
		if (swap_file < 0)
			swap_file = pathf(memsw, sizeof(memsw), "%s/memory.memsw.limit_in_bytes", dir) == 0 &&
				    file_exists(memsw);
		char tcp[PATH_MAX + 48];
		if (tcp_file < 0) {
			tcp_file = pathf(tcp, sizeof(tcp), "%s/memory.kmem.tcp.limit_in_bytes", dir) == 0 &&
				   file_exists(tcp);
			if (!tcp_file)
				log_warn("cgroup: no memory.kmem.tcp.limit_in_bytes: a sandbox's socket "
					 "buffers are bounded only by the host's net.ipv4.tcp_mem");
		}
		/* memsw must stay >= limit: set the limit first; equal means no swap.
		 * v1 leaves socket buffers out of the memory limit: the tcp limit
		 * charges them (the sockets made once it is set: so before any
		 * process joins) to a counter of their own, bounded the same */
		if (set_value(dir, "memory.limit_in_bytes", mem) < 0 ||
		    (swap_file && set_value(dir, "memory.memsw.limit_in_bytes", mem) < 0) ||
		    (tcp_file && set_value(dir, "memory.kmem.tcp.limit_in_bytes", mem) < 0) ||
		    set_value(dir, "cgroup.procs", pidstr) < 0)
			goto fail;
		rc = 1;
	}
	return rc;

fail:
	cgroup_remove(cfg, id);
	return -1;
}

/* The sandbox id in a group path "/<parent>/<id>" of /proc/PID/cgroup, or NULL. */
static const char *sandbox_of(const struct config *cfg, const char *path)
{
	size_t n = strlen(cfg->cgroup_parent);
	if (path[0] != '/' || strncmp(path + 1, cfg->cgroup_parent, n) != 0 || path[1 + n] != '/')
		return NULL;
	return id_ok(path + n + 2) ? path + n + 2 : NULL;
}

int cgroup_join(const struct config *cfg, pid_t model)
{
	struct cg_layout l = detect();
	char path[64], buf[4096], dirs[MAX_GROUPS][PATH_MAX];
	if (l.kind == CG_NONE || !parent_ok(cfg->cgroup_parent))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)model);
	if (read_small(path, buf, sizeof(buf)) < 0) {
		log_error("cgroup: reading %s: %s", path, strerror(errno));
		return -1;
	}
	/* "hierarchy:controllers:path" per line; the one hierarchy that counts:
	 * the unified one (v2), else the first of memory and pids (v1) */
	const char *id = NULL;
	for (char *line = buf, *next; !id && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *controllers = c1 + 1;
		int v2_line = *controllers == '\0';
		int v1_line = strstr(controllers, "memory") || strstr(controllers, "pids");
		if ((l.kind == CG_V2 && v2_line) || (l.kind == CG_V1 && v1_line))
			id = sandbox_of(cfg, c2 + 1);
	}
	if (!id)
		return 0; /* the model is in no group of ours: neither are we */
	int n = group_dirs(cfg, id, dirs);
	for (int i = 0; i < n; i++)
		if (set_value(dirs[i], "cgroup.procs", "0") < 0)
			return -1;
	return n > 0 && (l.kind == CG_V2 || l.v1_memory) ? 1 : 0;
}

/* The oom_kill count in a v2 memory.events or a v1 memory.oom_control. 0 when
 * unknown. */
static uint64_t oom_kill_field(const char *path)
{
	char buf[4096];
	if (read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	for (char *p = buf; (p = strstr(p, "oom_kill ")) != NULL; p++)
		if (p == buf || p[-1] == '\n')
			return strtoull(p + strlen("oom_kill "), NULL, 10);
	return 0;
}

uint64_t cgroup_oom_kills(const struct config *cfg, const char *id)
{
	char dirs[MAX_GROUPS][PATH_MAX], path[PATH_MAX + 32];
	struct cg_layout l = detect();
	int n = group_dirs(cfg, id, dirs);
	for (int i = 0; i < n; i++) {
		const char *file = l.kind == CG_V2 ? "memory.events" : "memory.oom_control";
		if (l.kind == CG_V1 && strncmp(dirs[i], V1_MEMORY "/", strlen(V1_MEMORY) + 1) != 0)
			continue;
		if (pathf(path, sizeof(path), "%s/%s", dirs[i], file) < 0)
			return 0;
		return oom_kill_field(path);
	}
	return 0;
}

/* The memory group of the calling process: its directory and whether it is a
 * v2 one. 0, or -1 when /proc/self/cgroup names none that can be read. A
 * group is looked for where /proc/self/cgroup says, then at the controller's
 * root, which is where a container without a cgroup namespace of its own
 * sees its group. The root group of a v2 hierarchy has no memory.max, so it
 * is never taken for a limited one. */
static int self_memory_group(char *dir, size_t cap, int *v2)
{
	static const char *const v2_roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char line[1024], path[PATH_MAX + 32];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *controllers = c1 + 1, *group = strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1;
		int is_v2 = *controllers == '\0';
		if (!is_v2 && !has_word(controllers, "memory"))
			continue;
		const char *roots[2] = {is_v2 ? v2_roots[0] : V1_MEMORY, is_v2 ? v2_roots[1] : NULL};
		const char *probe = is_v2 ? "memory.max" : "memory.limit_in_bytes";
		for (int r = 0; r < 2 && roots[r] && !found; r++)
			for (int at_root = 0; at_root < 2 && !found; at_root++) {
				if (pathf(dir, cap, "%s%s", roots[r], at_root ? "" : group) < 0 ||
				    pathf(path, sizeof(path), "%s/%s", dir, probe) < 0)
					continue;
				found = file_exists(path);
				*v2 = is_v2;
			}
	}
	fclose(f);
	return found ? 0 : -1;
}

uint64_t cgroup_self_memory_limit(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], buf[64];
	int v2;
	if (self_memory_group(dir, sizeof(dir), &v2) < 0 ||
	    pathf(path, sizeof(path), "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes") < 0 ||
	    read_small(path, buf, sizeof(buf)) < 0 || strncmp(buf, "max", 3) == 0)
		return 0;
	uint64_t limit = strtoull(buf, NULL, 10);
	return limit < (UINT64_C(1) << 62) ? limit : 0; /* v1 says "none" with a huge number */
}

uint64_t cgroup_self_oom_kills(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	int v2;
	if (self_memory_group(dir, sizeof(dir), &v2) < 0 ||
	    pathf(path, sizeof(path), "%s/%s", dir, v2 ? "memory.events" : "memory.oom_control") < 0)
		return 0;
	return oom_kill_field(path);
}

int cgroup_remove(const struct config *cfg, const char *id)
{
	char dirs[MAX_GROUPS][PATH_MAX], suffix[300];
	int rc = 0;
	int n = group_dirs(cfg, id, dirs);
	snprintf(suffix, sizeof(suffix), ":/%s/%s", cfg->cgroup_parent, id);
	for (int i = 0; i < n; i++)
		if (remove_group(dirs[i], suffix) < 0)
			rc = -1;
	return rc;
}

void cgroup_remove_all(const struct config *cfg)
{
	struct cg_layout l = detect();
	const char *roots[MAX_GROUPS];
	int nroots = 0;
	char parent[PATH_MAX];
	if (!parent_ok(cfg->cgroup_parent))
		return;
	if (l.kind == CG_V2) {
		roots[nroots++] = l.v2_root;
	} else if (l.kind == CG_V1) {
		if (l.v1_memory)
			roots[nroots++] = V1_MEMORY;
		if (l.v1_pids)
			roots[nroots++] = V1_PIDS;
		if (l.v1_cpu)
			roots[nroots++] = l.v1_cpu;
	}
	for (int i = 0; i < nroots; i++) {
		if (group_path(parent, sizeof(parent), roots[i], cfg, NULL) < 0)
			continue;
		DIR *d = opendir(parent);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_type != DT_DIR || !id_ok(e->d_name))
				continue;
			char dir[PATH_MAX + 80], suffix[300];
			if (pathf(dir, sizeof(dir), "%s/%s", parent, e->d_name) < 0 ||
			    pathf(suffix, sizeof(suffix), ":/%s/%s", cfg->cgroup_parent, e->d_name) < 0)
				continue;
			if (is_install_group(e->d_name))
				rmdir(dir); /* EBUSY while its install runs */
			else
				remove_group(dir, suffix);
		}
		closedir(d);
	}
}
