/* zygote: `executor zygote --control-fd N`, two processes:
 *
 * - the spawner (this process, small: it never starts Python) makes the local
 *   pool's sandboxes: per request of the pool manager it runs the same ordered
 *   setup as `executor sandbox` (sbx_spawn) in a forked child, the sandbox's
 *   pid 1, which runs the executor server. Forking a small process is cheap.
 * - the warm interpreter (its child, `executor-warm`, executor/warm.c, a
 *   program of its own beside the executor's) embeds CPython, imports APP_PRELOAD_MODULES once (single-threaded: BLAS/OpenMP
 *   pools limited to one thread) and makes each sandbox's runner when that
 *   sandbox's server asks: it forks the runner from itself straight into the
 *   server's namespaces and cgroups (setns), as a child of the server. It never
 *   runs user code itself and never forks while it has a second thread.
 *
 * Control socket (SOCK_SEQPACKET, one message each way per sandbox):
 *   zygote -> manager  "R" once warm
 *   manager -> zygote  the sandbox id, with the write end of its ready pipe
 *                      attached (SCM_RIGHTS); the sandbox writes "R" there
 *   zygote -> manager  "OK <pid>" with a pidfd of the sandbox's pid 1 attached
 *                      (kill with pidfd_send_signal; readable once it exited),
 *                      or "ERR" when the setup failed (logged)
 * EOF on the socket, SIGTERM or the manager's death end the zygote and with it
 * every sandbox it made.
 *
 * The warm interpreter is exec'd from a descriptor with an empty environment
 * and argv "executor-warm --request-fd 3 --config-fd 4": fd 4 a memfd of
 * "NAME=value\0" strings, the few options it needs (warm_options in zygote.c,
 * never a secret), read once and wiped. Nothing of the service's environment
 * reaches the image every runner is forked from.
 *
 * Request socket (SOCK_SEQPACKET pair: the warm interpreter holds one end as
 * its fd 3, the spawner and every sandbox's pid 1 the other): RUNNER_REQUEST (runner.h) with
 * the runner's five descriptors attached. The sender's pid comes from the kernel
 * (SO_PASSCRED); only pid 1 of a sandbox the spawner made, running as that
 * sandbox's root, is served. Nothing is ever answered on the socket: the runner
 * reports on its ready pipe (runner.h). */
#ifndef ZYGOTE_H
#define ZYGOTE_H

#include "config.h"

#define ZYGOTE_MSG_MAX 128
/* The most bytes of configuration the warm interpreter reads on its fd 4. */
#define ZYGOTE_WARM_CONFIG_MAX 65536

/* Runs the zygote on the control socket ctl. Returns the exit status. */
int zygote_run(const struct config *cfg, int ctl);

#endif
