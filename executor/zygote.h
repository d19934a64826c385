/* zygote: `executor zygote --control-fd N`, the pre-initialised interpreter the
 * local pool forks every sandbox from. It embeds CPython, imports
 * APP_PRELOAD_MODULES once (single-threaded: BLAS/OpenMP pools limited to one
 * thread) and then, per request, runs the same ordered sandbox setup as
 * `executor sandbox` (sbx_spawn) in a forked child whose runner is a fork of the
 * warm interpreter instead of an exec of python. It never runs user code itself
 * and never forks while it has a second thread.
 *
 * Control socket (SOCK_SEQPACKET, one message each way per sandbox):
 *   zygote -> manager  "R" once warm
 *   manager -> zygote  the sandbox id, with the write end of its ready pipe
 *                      attached (SCM_RIGHTS); the sandbox writes "R" there
 *   zygote -> manager  "OK <pid>" with a pidfd of the sandbox's pid 1 attached
 *                      (kill with pidfd_send_signal; readable once it exited),
 *                      or "ERR" when the setup failed (logged)
 * EOF on the socket, SIGTERM or the manager's death end the zygote and with it
 * every sandbox it made. */
#ifndef ZYGOTE_H
#define ZYGOTE_H

#include "config.h"

#define ZYGOTE_MSG_MAX 128

/* Runs the zygote on the control socket ctl. Returns the exit status. */
int zygote_run(const struct config *cfg, int ctl);

#endif
