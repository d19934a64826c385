/* pool_backend: what a backend gives the pool: its manager loop (launch, mark
 * ready, destroy used and dead sandboxes, remove a previous run's leftovers)
 * and where a worker reaches a claimed sandbox. Internal to pool*.c. */
#ifndef POOL_BACKEND_H
#define POOL_BACKEND_H

#include <stddef.h>

#include "pool.h"

struct pool_backend {
	const char *name;
	/* The manager loop: see pool_manager_run. */
	int (*run)(const struct config *cfg, int notify_fd, int ready_fd);
	/* See pool_endpoint. */
	int (*endpoint)(struct db *db, const struct config *cfg, const char *id, char *out, size_t cap);
	/* See pool_token; NULL: the backend's executors want none. */
	int (*token)(const char *id, char *out, size_t cap);
};

extern const struct pool_backend pool_local_backend; /* pool_local.c */
extern const struct pool_backend pool_k8s_backend;   /* pool_k8s.c */

#endif
