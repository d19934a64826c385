/* pool: see pool.h. The worker side (claim, release, endpoint, token) is the
 * same for every backend; the manager is the backend's (pool_local.c,
 * pool_k8s.c). */
#include "pool.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pool_backend.h"
#include "util.h"

static const struct pool_backend *backend(const struct config *cfg)
{
	return strcmp(cfg->backend, "kubernetes") == 0 ? &pool_k8s_backend : &pool_local_backend;
}

int pool_manager_run(const struct config *cfg, int notify_fd, int ready_fd)
{
	return backend(cfg)->run(cfg, notify_fd, ready_fd);
}

int pool_endpoint(struct db *db, const struct config *cfg, const char *id, char *out, size_t cap)
{
	return backend(cfg)->endpoint(db, cfg, id, out, cap);
}

int pool_token(const struct config *cfg, const char *id, char *out, size_t cap)
{
	const struct pool_backend *b = backend(cfg);
	if (cap)
		out[0] = '\0';
	return b->token ? b->token(id, out, cap) : 0;
}

void pool_wake(int notify_fd)
{
	char b = 1;
	ssize_t w = write(notify_fd, &b, 1); /* full pipe: the manager is awake anyway */
	(void)w;
}

void pool_announce(int ready_fd)
{
	uint64_t one = 1;
	ssize_t w = write(ready_fd, &one, sizeof(one)); /* only fails at 2^64 - 1 */
	(void)w;
}

/* Sleeps until a sandbox is announced or wait_ms pass; 1 when this worker took
 * an announcement (a semaphore's unit: one waiter per sandbox tries the
 * claim), 0 otherwise. */
static int await_announcement(int ready_fd, int wait_ms)
{
	struct pollfd p = {ready_fd, POLLIN, 0};
	uint64_t unit;
	if (poll(&p, 1, wait_ms) <= 0)
		return 0;
	return read(ready_fd, &unit, sizeof(unit)) == (ssize_t)sizeof(unit);
}

enum ci_status pool_claim(struct db *db, int64_t deadline, int notify_fd, int ready_fd, char id[POOL_ID_MAX])
{
	for (;;) {
		enum db_status st = db_sandbox_claim(db, getpid(), now_ms(), id, POOL_ID_MAX);
		if (st == DB_OK) {
			pool_wake(notify_fd);
			return CI_OK;
		}
		if (st == DB_BUSY)
			return CI_UNAVAILABLE; /* locked past the busy timeout: 503, not 500 */
		if (st != DB_NOT_FOUND)
			return CI_INTERNAL;
		if (monotonic_ms() >= deadline)
			return CI_UNAVAILABLE;
		/* no ready sandbox: the manager is starting some and announces each
		 * one it marks ready; there are never fewer announcements than ready
		 * sandboxes. Retried every 64 ms all the same, for an announcement
		 * taken by a worker that died before its claim. */
		int64_t left = deadline - monotonic_ms();
		pool_await(ready_fd, left < POOL_RETRY_MS ? (int)left : POOL_RETRY_MS);
	}
}

int pool_await(int ready_fd, int max_ms)
{
	int64_t until = monotonic_ms() + max_ms, left;
	while ((left = until - monotonic_ms()) > 0)
		if (await_announcement(ready_fd, (int)left))
			return 1;
	return 0;
}

void pool_release(struct db *db, const char *id, int notify_fd)
{
	enum db_status st = db_sandbox_set_state(db, id, "used", now_ms());
	if (st != DB_OK && st != DB_NOT_FOUND) /* not found: the manager forgot it already */
		log_error("sandbox %s: could not mark it used; the manager will reap it", id);
	pool_wake(notify_fd);
}
