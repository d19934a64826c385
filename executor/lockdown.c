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
#include "cgroup.h"
#include "log.h"
#include "sbx_seccomp.h"
#include "setup.h"

static int memory_cgroup = -1; /* -1 unknown, else 0/1 */

void sbx_set_memory_cgroup(int in_force)
{
	memory_cgroup = in_force ? 1 : 0;
}

int sbx_memory_cgroup(void)
{
	if (memory_cgroup < 0)
		memory_cgroup = cgroup_self_memory_limit() != 0;
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
	/* 1-4. no supplementary group, the sandbox user (or the ids as they
	 * are), every capability set empty */
	const char *step = NULL;
	if (caps_become(change_uid ? SANDBOX_USER : (uid_t)-1, SANDBOX_USER, NULL, 0, &step) < 0)
		return fail(step);
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
