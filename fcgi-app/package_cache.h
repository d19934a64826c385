/* package_cache: the directories of the package cache ($APP_PACKAGE_CACHE) on
 * the host. dists/ holds one directory per installed distribution version (a
 * pip --target tree: the distribution and the dependencies pip resolved for
 * it), owned by root, read-only, published by one rename; dists/ itself is
 * 0711, so a sandbox can enter a directory it was told about but never list
 * the cache. staging/ holds installs in progress, locks/ the install locks.
 * Owns publishing, what a published distribution provides, eviction and the
 * start-up check; never runs pip and never serves a directory without a row. */
#ifndef PACKAGE_CACHE_H
#define PACKAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "package_names.h"

/* At start, before any worker: pkg_layout_prepare (package_layout.h), then removes what no
 * install can still be using (staging/, APP_RUN_DIR/installs, the layout of
 * earlier versions: site-packages/ and .locks/), rows whose directory is gone
 * and directories without a row (each removal a package_evictions row), and
 * evicts down to APP_PACKAGE_CACHE_MB. */
void pkgcache_startup(const struct config *cfg, struct db *db);

/* Makes a new, empty staging directory; its path goes to out. 0, or -1. */
int pkgcache_staging_make(const struct config *cfg, char *out, size_t cap);

/* Host path of dists/<dir> into out. 0, or -1 when it does not fit or dir is
 * no valid directory name (pkg_dir_name_valid): names come from the database,
 * which the service user can write, and root removes what they name. */
int pkgcache_dir_path(const struct config *cfg, const char *dir, char *out, size_t cap);

/* Serves a distribution from the cache when a directory was installed that
 * may serve it (db_package_dist_find: norm, kind, key) and still holds its
 * metadata (an operator may have removed it: its row then goes), recording
 * its use by the execution (which keeps it from eviction). 1 with its name in
 * dir and its *.dist-info in metadata (256 bytes), or 0. */
int pkgcache_lookup(const struct config *cfg, struct db *db, const char *execution_id, const char *norm,
		    const char *kind, const char *key, char dir[PKG_DIR_NAME_MAX + 1], char metadata[256]);

/* Finds in the directory at path the *.dist-info of the distribution norm
 * (a normalized name), "<name>-<version>.dist-info" with a version of
 * [A-Za-z0-9.+!] only (so "a" version "b-1.0" is never "a-b" 1.0); its name
 * goes to metadata and its version to version. 0, or -1 when there is none
 * (or it does not fit). */
int pkgcache_find_metadata(const char *path, const char *norm, char *metadata, size_t mcap,
			   char *version, size_t vcap);

/* Whether the distribution whose metadata directory is metadata, in the
 * directory at path, declares the top-level module: its top_level.txt, or
 * else the first path components of its RECORD. 1 or 0. */
int pkgcache_provides(const char *path, const char *metadata, const char *module);

/* Publishes the staging directory as dists/<dir>: entries that are neither
 * regular files nor directories are removed, the rest owned by root and
 * stripped of write and set-id bits, then one rename. *size gets its disk
 * use. 0; 1 when dists/<dir> exists already (staging is left as it was); -1
 * (logged). */
int pkgcache_publish(const struct config *cfg, const char *staging, const char *dir, uint64_t *size);

/* Takes a published or staging directory out of the cache (a rename into
 * staging/, then removal). 0, or -1 (logged). */
int pkgcache_remove(const struct config *cfg, const char *path);

/* While the rows' sizes add up to more than APP_PACKAGE_CACHE_MB, removes
 * the least recently used distribution that no running execution uses (its
 * row moves to package_evictions in the same transaction). */
void pkgcache_evict(const struct config *cfg, struct db *db);

/* Takes the lock of a distribution name (normalized), waiting until
 * deadline_ms (monotonic_ms): locks/name-<name>.lock, a file that exists only
 * while someone holds it, so that locks/ holds no more files than installs
 * run and two names never wait for each other. The descriptor, to give to
 * pkgcache_unlock, or -1: errno ETIMEDOUT when the deadline passed. */
int pkgcache_lock(const struct config *cfg, const char *name, int64_t deadline_ms);
/* Removes the name's lock file and releases the lock (closes fd). */
void pkgcache_unlock(const struct config *cfg, const char *name, int fd);

/* Takes one of APP_PACKAGE_INSTALL_CONCURRENCY turns to run pip, waiting until
 * deadline_ms. The descriptor (close it to give the turn back), or -1 (errno
 * ETIMEDOUT when the deadline passed). */
int pkgcache_turn(const struct config *cfg, int64_t deadline_ms);

#endif
