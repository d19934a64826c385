/* pool: the warm sandbox pool. The pool manager process keeps cfg->pool_size
 * sandboxes (local `executor sandbox` processes, or Kubernetes pods) starting or
 * ready, destroys each one after its single use, and removes what a previous
 * run left.
 * Workers claim and release sandboxes through SQLite and wake the manager with
 * a byte on the notify pipe; the manager announces each sandbox it marks ready
 * on the ready eventfd (a semaphore), on which workers waiting for one sleep.
 * A sandbox is never handed out twice. */
#ifndef POOL_H
#define POOL_H

#include <stddef.h>

#include "config.h"
#include "db.h"
#include "http.h"

#define POOL_ID_MAX 40

/* The pool manager's main loop; returns when SIGTERM has been handled and every
 * sandbox is gone. notify_fd is the read end of the workers' pipe, ready_fd
 * the eventfd it announces ready sandboxes on. */
int pool_manager_run(const struct config *cfg, int notify_fd, int ready_fd);

/* Worker side. Claims a ready sandbox, waiting on ready_fd's announcements
 * until deadline (monotonic ms; a run's is APP_CLAIM_TIMEOUT from its first
 * claim); CI_UNAVAILABLE when none became ready in time, CI_INTERNAL on
 * database errors. */
enum ci_status pool_claim(struct db *db, int64_t deadline, int notify_fd, int ready_fd, char id[POOL_ID_MAX]);
/* Where the claimed sandbox's executor server listens: a unix socket path
 * (local) or "http://IP:8000" (pod), into out. 0, or -1. */
int pool_endpoint(struct db *db, const struct config *cfg, const char *id, char *out, size_t cap);
/* The bearer token the claimed sandbox's executor server wants, into out (cap
 * at least POOL_TOKEN_MAX): the pod's token (pod_token.h), or "" for a local
 * sandbox (its socket is the service's alone). 0, or -1. The caller wipes it. */
#define POOL_TOKEN_MAX 65
int pool_token(const struct config *cfg, const char *id, char *out, size_t cap);
/* Marks the sandbox used so the manager destroys it, and wakes the manager. */
void pool_release(struct db *db, const char *id, int notify_fd);
/* Wakes the manager after a claim or a release the caller wrote itself, with
 * the execution's records (db_execution_begin_claim, db_execution_finish). */
void pool_wake(int notify_fd);
/* Manager side: one more sandbox recorded ready (after its commit); a worker
 * gives back an announcement it took but made no claim for. */
void pool_announce(int ready_fd);
/* Worker side: waits up to max_ms for an announcement and takes it: 1, then
 * the caller tries a claim (or gives it back); 0 at the time limit. */
int pool_await(int ready_fd, int max_ms);
#define POOL_RETRY_MS 64 /* a claim is retried this often without announcement */

#endif
