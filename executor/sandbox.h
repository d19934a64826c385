/* sandbox: the local sandbox launcher (`executor sandbox --id ID --ready-fd N`).
 * Owns the ordered setup of one sandbox: cgroups, namespaces (user, pid, mount,
 * net, ipc, uts, cgroup), uid/gid maps, the minimal read-only root, /workspace,
 * /tmp, /proc, /dev, loopback, rlimits; then it runs the executor server as pid 1
 * inside. Any failed step is fatal. It never runs user code itself. */
#ifndef SANDBOX_H
#define SANDBOX_H

#include "config.h"

/* Host paths of one sandbox, all under cfg->run_dir/sandboxes/ID. */
/* Writes cfg->run_dir "/sandboxes/" id into out. 0, or -1 when it does not fit. */
int sbx_dir(const struct config *cfg, const char *id, char *out, size_t cap);
/* Writes the host path of the sandbox's executor socket into out. 0 or -1. */
int sbx_socket_path(const struct config *cfg, const char *id, char *out, size_t cap);

/* Runs the launcher: sets the sandbox up, starts the server inside, writes one
 * byte "R" to ready_fd when the server (and its warm Python runner) is ready,
 * and waits until the sandbox ends. The sandbox dies with the launcher
 * (PR_SET_PDEATHSIG) and the launcher with its parent. Returns the process exit
 * status for main(). */
int sbx_launch(const struct config *cfg, const char *id, int ready_fd);

/* Locks the calling process down for user code, in this order: drop to the
 * sandbox user (uid/gid 1000 inside) when change_uid, clear supplementary
 * groups, empty the capability sets (bounding and ambient too), set
 * no_new_privs, apply the rlimits and install the seccomp filter. After it
 * returns 0, only execve of the Python runner should follow. -1 on failure. */
int sbx_lockdown(const struct config *cfg, int change_uid);

#endif
