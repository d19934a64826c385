/* zygote_client: the pool manager's side of `executor zygote` (protocol in
 * executor/zygote.h): starts it, learns when it is warm, asks it for sandboxes.
 * Owns the control socket and the zygote's pid; the caller reaps (waitpid) and
 * reports the zygote's death with zc_reaped. Never blocks: requests are sent
 * and their answers read when the socket is readable, in the order sent (the
 * zygote answers one request after the other). */
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
	int pending;              /* requests not answered yet */
	int64_t waiting_since_ms; /* monotonic: the oldest answer expected since */
};

enum { ZC_OK, ZC_REFUSED, ZC_NONE, ZC_BROKEN };

#define ZC_ANSWER_TIMEOUT_MS 30000 /* an answer takes milliseconds */

void zc_init(struct zygote_client *z);

/* Forks and execs `executor zygote --control-fd 3`. 0, or -1 (logged). */
int zc_start(struct zygote_client *z, const struct config *cfg);

/* Call when z->fd is readable before it is ready: 1 once it said "R", 0 not
 * yet, -1 when it failed (it is killed; wait for zc_reaped). */
int zc_on_readable(struct zygote_client *z);

/* Asks for sandbox id whose ready pipe's write end is ready_wr (not closed
 * here); the answer comes later, through zc_reply. 0, or -1 (logged; when the
 * socket is broken the zygote is killed). */
int zc_request(struct zygote_client *z, const char *id, int ready_wr);

/* Reads the answer to the oldest pending request, when z->fd is readable:
 * ZC_OK (*pid is the sandbox's pid 1 and *pidfd a pidfd of it, the caller's),
 * ZC_REFUSED (the zygote could not set it up: see its log), ZC_NONE (nothing
 * to read) or ZC_BROKEN (a malformed answer or a closed socket: the zygote is
 * killed, and every pending request failed). */
int zc_reply(struct zygote_client *z, pid_t *pid, int *pidfd);

/* Kills the zygote when an answer is overdue (it should take milliseconds):
 * 1 when it did, then every pending request failed. */
int zc_overdue(struct zygote_client *z);

/* SIGKILLs the zygote (and so every sandbox it made). */
void zc_kill(struct zygote_client *z);

/* Tells the client that pid was reaped: 1 when it was the zygote (its socket
 * is then closed), else 0. */
int zc_reaped(struct zygote_client *z, pid_t pid);

#endif
