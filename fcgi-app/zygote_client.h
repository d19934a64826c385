/* zygote_client: the pool manager's side of `executor zygote` (protocol in
 * executor/zygote.h): starts it, learns when it is warm, asks it for sandboxes.
 * Owns the control socket and the zygote's pid; the caller reaps (waitpid) and
 * reports the zygote's death with zc_reaped. Never blocks longer than the
 * zygote takes to answer one request (bounded). */
#ifndef ZYGOTE_CLIENT_H
#define ZYGOTE_CLIENT_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct zygote_client {
	pid_t pid;          /* > 0 while started and not reaped */
	int fd;             /* control socket, -1 when not started */
	int ready;          /* it said "R" */
	int64_t started_ms; /* monotonic */
};

void zc_init(struct zygote_client *z);

/* Forks and execs `executor zygote --control-fd 3`. 0, or -1 (logged). */
int zc_start(struct zygote_client *z, const struct config *cfg);

/* Call when z->fd is readable before it is ready: 1 once it said "R", 0 not
 * yet, -1 when it failed (it is killed; wait for zc_reaped). */
int zc_on_readable(struct zygote_client *z);

/* Asks for sandbox id whose ready pipe's write end is ready_wr (not closed
 * here). On success *pidfd is a pidfd of the sandbox's pid 1 (the caller owns
 * it) and *pid its pid. 0, or -1 (logged); when the zygote itself misbehaved
 * it is killed. */
int zc_spawn(struct zygote_client *z, const char *id, int ready_wr, pid_t *pid, int *pidfd);

/* SIGKILLs the zygote (and so every sandbox it made). */
void zc_kill(struct zygote_client *z);

/* Tells the client that pid was reaped: 1 when it was the zygote (its socket
 * is then closed), else 0. */
int zc_reaped(struct zygote_client *z, pid_t pid);

#endif
