/* package_delivery: packages for executor pods (the kubernetes backend). A
 * pod has no network and does not see the service's package cache, so before
 * the run the worker sends it each cache directory the run's sys.path gets
 * (dists/<dir>, package_cache.h): one PUT /packages/<dir>/<path> per regular
 * file, with its modification time (so the .pyc files pip compiled stay
 * valid), into the pod's packages emptyDir (docs/executor-protocol.md). Reads
 * the cache only, never through a symlink and never outside dists/<dir>;
 * never writes to it. */
#ifndef PACKAGE_DELIVERY_H
#define PACKAGE_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "executor_client.h"

/* Sends the cache directory dir (pkg_dir_name_valid) to the pod behind executor
 * before deadline_ms (monotonic_ms). 0; or -1 with why (cap bytes) saying in
 * one line for the run's stderr what failed (also logged). A directory sent
 * in part stays in the pod in part: the caller then leaves it off the run's
 * sys.path. */
int pkgdeliver_dir(const struct config *cfg, struct executor_client *executor, const char *dir, int64_t deadline_ms,
		   char *why, size_t cap);

#endif
