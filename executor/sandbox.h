/* sandbox: the local sandbox launcher (`executor sandbox --id ID --ready-fd N`)
 * and the install sandbox's (`executor install`). Owns the ordered setup of one
 * sandbox: cgroups, namespaces (user, pid, mount, net, ipc, uts, cgroup),
 * uid/gid maps, the minimal read-only root, /workspace, /tmp, /proc, /dev,
 * loopback, rlimits; then, as pid 1 inside, the executor server (a run's
 * sandbox) or the locked-down command (an install's). Both kinds are the same
 * steps with different options, never a copy. Any failed step is fatal. It
 * never runs user code itself. */
#ifndef SANDBOX_H
#define SANDBOX_H

#include <sys/types.h>

#include "config.h"
/* sbx_id_valid, sbx_dir, sbx_socket_path: in common/ (the service needs them) */
#include "sandbox_paths.h"

/* Runs the launcher: sets the sandbox up, starts the server inside, writes one
 * byte "R" to ready_fd when the server (and its warm Python runner) is ready,
 * and waits until the sandbox ends. The sandbox dies with the launcher
 * (PR_SET_PDEATHSIG) and the launcher with its parent. Returns the process exit
 * status for main(). */
int sbx_launch(const struct config *cfg, const char *id, int ready_fd);

/* The zygote's spawner, once before its first sbx_spawn: moves the caller into
 * a mount namespace of its own in which the read-only part of every sandbox's
 * root (system directories, /etc, runner, package cache, /dev) is built once,
 * at APP_RUN_DIR/zygote/root; each sandbox then binds a copy of it (one mount
 * call) instead of building its own (some forty). A failed mount step ends the
 * caller, as it would end every sandbox. 0, or -1 (logged; sandboxes build
 * their own). */
int sbx_root_prepare(const struct config *cfg);

/* The zygote's variant (executor/zygote.c): the same steps, but the caller is
 * the sandbox's parent instead of a launcher of its own, and the server asks
 * the zygote for its runner on runner_fd (see zygote.h) instead of forking it.
 * Closes neither descriptor (the sandbox has its copies). On success *pid is
 * the sandbox's pid 1 (a child of the caller, who must reap it), and *keep_fd
 * and *slot_fd (its uid slot, below) descriptors to close once it has been
 * reaped, not before. 0, or -1 (logged;
 * nothing is left). */
int sbx_spawn(const struct config *cfg, const char *id, int ready_fd, int runner_fd, pid_t *pid,
	      int *keep_fd, int *slot_fd);

/* Each live sandbox has host uids of its own (its uid slot: SBX_UID_STRIDE,
 * SBX_UID_SLOTS and sbx_root_uid_valid in sandbox_paths.h), taken by spawn
 * with a flock on APP_RUN_DIR/uid-slots/N held by whoever waits for the
 * sandbox: the launcher, or the zygote's spawner through *slot_fd until it
 * reaps it. */

/* Where the package cache's dists/ appear inside a run's sandbox (read-only);
 * the runner (python/runner.py) puts the directories a run is given below it on
 * sys.path. */
#define SBX_INSIDE_PACKAGES "/opt/code-interpreter/packages"

/* The options of an install sandbox (executor/install.c fills them in). */
struct sbx_install {
	/* [0-9a-zA-Z_-]{1,64}: the directory APP_RUN_DIR/installs/ID (removed at
	 * the end) and the cgroup CGROUP_INSTALL_PREFIX "ID" (cgroup.h) */
	const char *id;
	/* an empty host directory the caller checked: made the sandbox user's
	 * (0700) and bound read-write at INSTALL_INSIDE_STAGING (install.h), the
	 * only host directory the sandbox can write to; never removed here */
	const char *staging;
	/* a host directory bound read-only at INSTALL_INSIDE_FIND_LINKS, or NULL */
	const char *find_links;
	/* 1: the host's network namespace, its /etc/resolv.conf and DNS in
	 * nsswitch.conf; 0: a network namespace of its own (loopback only) */
	int host_network;
	double timeout; /* seconds, from the start, until the sandbox is killed */
	/* the command pid 1 runs as its child, locked down as user code is
	 * (sbx_lockdown(cfg, 1)): argv[0] a path inside; envp all its environment */
	const char *const *argv;
	const char *const *envp;
};

/* Runs o->argv in an install sandbox: the steps of a run's sandbox with
 * these options: the same namespaces (the network's as o->host_network says),
 * its own cgroup (memory APP_PACKAGE_INSTALL_MB, pids APP_SANDBOX_PIDS, one CPU
 * where a cpu controller is), the same read-only system directories, /etc and /dev but
 * neither the runner nor the package cache, /tmp a tmpfs of
 * APP_PACKAGE_INSTALL_MB. The command's stdout and stderr are the caller's. The
 * sandbox dies with the caller's parent. Waits for the command, then removes
 * the sandbox's directory and cgroup. Returns the exit status for main(): the
 * command's (128+S when signal S ended it), 124 when the timeout passed (the
 * sandbox killed, and a line on stderr saying so), 128+S when signal S
 * (SIGTERM, SIGINT, SIGHUP) stopped it, 1 when a setup step failed (logged),
 * 2 for an invalid id. */
int sbx_install(const struct config *cfg, const struct sbx_install *o);

/* Locks the calling process down for user code, in this order: clear
 * supplementary groups and empty the bounding and ambient capability sets
 * (these need privileges, so they come first), drop to the sandbox user
 * (uid/gid 1000 inside) when change_uid, empty the remaining capability sets,
 * set no_new_privs, apply the rlimits (RLIMIT_AS only when no memory cgroup is
 * in force, see sbx_memory_cgroup) and install the seccomp filter last. Keeps
 * the parent-death signal. Unprivileged callers (change_uid 0, e.g. a pod
 * running as non-root) may lack the right to clear groups and the bounding set;
 * that is tolerated. After it returns 0, only execve of the Python runner
 * should follow. -1 on failure (logged, naming the step and errno). */
int sbx_lockdown(const struct config *cfg, int change_uid);

/* Whether a memory cgroup limit is in force for this process: what the launcher
 * recorded with sbx_set_memory_cgroup inside a local sandbox, else a probe of
 * /proc/self/cgroup (pods). 1 or 0. */
int sbx_memory_cgroup(void);
void sbx_set_memory_cgroup(int in_force);

#endif
