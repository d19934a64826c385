/* package_layout: the directories of the package cache ($APP_PACKAGE_CACHE),
 * their owners and modes, made by the service at start (package_cache.c) and
 * by a sandbox launcher that finds them missing (executor/sandbox.c): one
 * definition for both binaries. Never writes into them. */
#ifndef PACKAGE_LAYOUT_H
#define PACKAGE_LAYOUT_H

#include "config.h"

/* Makes $APP_PACKAGE_CACHE (0711), dists/ (0711: a sandbox can enter a
 * directory it was told about, never list the cache), staging/ (0711) and
 * locks/ (0700), all owned by root, modes set even when they existed. 0, or -1
 * (logged, errno set). */
int pkg_layout_prepare(const struct config *cfg);

#endif
