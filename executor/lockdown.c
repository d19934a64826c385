/* lockdown: sbx_lockdown, the ordered lock-down of the process that is about to
 * exec the Python runner: groups, capabilities, uid, no_new_privs, rlimits and
 * the seccomp filter last. Also knows whether a memory cgroup limit applies. */
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "caps.h"
#include "log.h"
#include "sbx_seccomp.h"
#include "setup.h"


static int memory_cgroup = -1; /* -1 unknown, else 0/1 */

void sbx_set_memory_cgroup(int in_force)
{
	memory_cgroup = in_force ? 1 : 0;
}

/* Reads the first line of path into buf. 0 or -1. */
static int read_line(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int ok = fgets(buf, (int)cap, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* A finite limit in memory.max (v2) or memory.limit_in_bytes (v1) of the
 * group named in /proc/self/cgroup: what a pod or a systemd unit would have. */
static int probe_memory_cgroup(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return 0;
	char line[1024], path[PATH_MAX + 64], val[64];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *controllers = c1 + 1, *group = c2 + 1;
		if (strcmp(group, "/") == 0)
			group = "";
		if (*controllers == '\0') {
			static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
			for (int i = 0; i < 2 && !found; i++) {
				snprintf(path, sizeof(path), "%s%s/memory.max", roots[i], group);
				found = read_line(path, val, sizeof(val)) == 0 && strcmp(val, "max") != 0;
			}
		} else if (strstr(controllers, "memory")) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", group);
			found = read_line(path, val, sizeof(val)) == 0 &&
				strtoull(val, NULL, 10) < (UINT64_C(1) << 62);
		}
	}
	fclose(f);
	return found;
}

int sbx_memory_cgroup(void)
{
	if (memory_cgroup < 0)
		memory_cgroup = probe_memory_cgroup();
	return memory_cgroup;
}

static int fail(const char *step)
{
	log_error("lockdown: %s: %s", step, strerror(errno));
	return -1;
}

/* Lowers (never raises) a limit: soft = min(soft, hard). */
static int limit(int resource, const char *name, rlim_t soft, rlim_t hard)
{
	struct rlimit cur, want;
	if (getrlimit(resource, &cur) < 0)
		return fail(name);
	want.rlim_max = hard < cur.rlim_max ? hard : cur.rlim_max;
	want.rlim_cur = soft < want.rlim_max ? soft : want.rlim_max;
	if (setrlimit(resource, &want) < 0)
		return fail(name);
	return 0;
}

static int apply_rlimits(const struct config *cfg)
{
	rlim_t cpu = (rlim_t)cfg->sandbox_cpu_seconds;
	if (limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", cfg->sandbox_file_bytes, cfg->sandbox_file_bytes) < 0 ||
	    limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", (rlim_t)cfg->sandbox_open_files,
		  (rlim_t)cfg->sandbox_open_files) < 0 ||
	    /* SIGXCPU at the soft limit, SIGKILL a second later */
	    limit(RLIMIT_CPU, "RLIMIT_CPU", cpu, cpu + 1) < 0 ||
	    limit(RLIMIT_CORE, "RLIMIT_CORE", 0, 0) < 0 ||
	    limit(RLIMIT_NPROC, "RLIMIT_NPROC", (rlim_t)cfg->sandbox_pids, (rlim_t)cfg->sandbox_pids) < 0)
		return -1;
	if (!sbx_memory_cgroup()) {
		/* Address space, not memory: numpy/OpenBLAS and glibc's per-thread
		 * arenas reserve far more than they touch, hence the generous factor. */
		rlim_t as = (rlim_t)cfg->sandbox_memory_bytes * 4 + ((rlim_t)1 << 30);
		if (limit(RLIMIT_AS, "RLIMIT_AS", as, as) < 0)
			return -1;
	}
	return 0;
}

int sbx_lockdown(const struct config *cfg, int change_uid)
{
	/* Credential changes clear the parent-death signal; keep it. */
	int pdeath = 0;
	if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) < 0)
		return fail("PR_GET_PDEATHSIG");

	/* 1. supplementary groups (needs CAP_SETGID: before the uid change) */
	if (setgroups(0, NULL) < 0 && (change_uid || errno != EPERM))
		return fail("setgroups(0)");
	/* 2. bounding and ambient sets (need CAP_SETPCAP: before the uid change) */
	if (caps_drop_bounding_set() < 0)
		return fail("PR_CAPBSET_DROP");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return fail("PR_CAP_AMBIENT_CLEAR_ALL");
	/* 3. the sandbox user */
	if (change_uid) {
		if (setresgid(SANDBOX_USER, SANDBOX_USER, SANDBOX_USER) < 0)
			return fail("setresgid(1000)");
		if (setresuid(SANDBOX_USER, SANDBOX_USER, SANDBOX_USER) < 0)
			return fail("setresuid(1000)");
		if (getuid() != SANDBOX_USER || geteuid() != SANDBOX_USER || getgid() != SANDBOX_USER) {
			errno = EPERM;
			return fail("uid check");
		}
	}
	/* 4. permitted, effective, inheritable: empty */
	if (caps_clear() < 0)
		return fail("capset(empty)");
	if (pdeath && prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0) < 0)
		return fail("PR_SET_PDEATHSIG");
	/* 5. no_new_privs: no setuid binary or file capability can give any back */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail("PR_SET_NO_NEW_PRIVS");
	/* 6. rlimits */
	if (apply_rlimits(cfg) < 0)
		return -1;
	/* 7. seccomp, last */
	if (sbx_seccomp_load() < 0)
		return fail("seccomp");
	return 0;
}
