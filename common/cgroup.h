/* cgroup: per-sandbox control groups for memory, process and CPU limits.
 * Supports cgroup v2 (a unified hierarchy with the memory and pids controllers
 * enabled, at /sys/fs/cgroup or /sys/fs/cgroup/unified; cpu where it can be
 * enabled) and cgroup v1 (memory, pids and cpu controllers under
 * /sys/fs/cgroup/<controller>, cpu also at cpu,cpuacct). Socket buffers count
 * against the memory limit: v2 charges them to memory.max itself, v1 to
 * memory.kmem.tcp.limit_in_bytes, set to the same limit. Owns the directories
 * <controller root>/<cfg->cgroup_parent>/<name>; never touches others. A name
 * is a sandbox id ([0-9a-zA-Z_-]{1,64}) or "install.<sandbox id>" (an install
 * sandbox's: the dot keeps it from ever equalling a sandbox id). */
#ifndef CGROUP_H
#define CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/* The period of v2 cpu.max and v1 cpu.cfs_period_us: a quota of this much is
 * one CPU. */
#define CGROUP_CPU_PERIOD_US 100000

/* The group name of install sandbox ID is CGROUP_INSTALL_PREFIX "ID". */
#define CGROUP_INSTALL_PREFIX "install."

/* The limits of one group. */
struct cgroup_limits {
	uint64_t memory_bytes; /* memory; swap is not allowed on top of it */
	int pids;              /* processes and threads */
	/* CPU time per 100 ms period in microseconds (v2 cpu.max, v1
	 * cpu.cfs_quota_us; 100000 is one CPU), applied where the cpu controller
	 * exists (else said once in the log; RLIMIT_CPU remains); 0: no limit */
	long cpu_quota_us;
};

/* Creates the groups of name (see above), sets the limits and moves pid into
 * them. Returns 1 when the memory limit is in force (and the pids
 * limit wherever the kernel has that controller), 0 when the kernel offers no
 * usable memory controller (rlimits remain; a v1 pids group may still apply),
 * -1 on a failure that must stop the sandbox (what it created is removed).
 * A leftover group of the same id is killed and replaced. */
int cgroup_setup(const struct config *cfg, const char *id, const struct cgroup_limits *limits,
		 pid_t pid);
/* Which hierarchies the host mounts is probed once per process and kept; a
 * process whose forked children each join a group (the warm interpreter)
 * probes first, so that none of them probes again. */
void cgroup_probe(void);
/* Moves the calling process into the sandbox groups that process model is in,
 * as the kernel names them in /proc/<model>/cgroup (only groups of ours under
 * cfg->cgroup_parent). Returns what cgroup_setup returned for model's sandbox:
 * 1 when a memory limit is now in force, 0 when model is in none of our groups
 * (or there are none), -1 on failure (logged). */
int cgroup_join(const struct config *cfg, pid_t model);
/* How many times the sandbox's memory limit killed a process (oom_kill), 0 when
 * unknown. */
uint64_t cgroup_oom_kills(const struct config *cfg, const char *id);
/* The memory group the calling process is in (/proc/self/cgroup), such as a
 * pod's or a systemd unit's: its limit in bytes, 0 when it has none or none
 * can be read; and how many times that limit killed a process (oom_kill), 0
 * when unknown. */
uint64_t cgroup_self_memory_limit(void);
uint64_t cgroup_self_oom_kills(void);
/* Kills whatever still runs in the sandbox's groups and removes them. 0 or -1. */
int cgroup_remove(const struct config *cfg, const char *id);
/* Removes every sandbox group under cfg->cgroup_parent, killing what runs in
 * them (start-up cleanup); an install sandbox's group only when it is empty
 * (an install in progress belongs to a worker, not to the pool). */
void cgroup_remove_all(const struct config *cfg);

#endif
