/* package_cache: see package_cache.h. */
#include "package_cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "package_layout.h"
#include "package_names.h"
#include "util.h"

#define SEAL_MAX_DEPTH 128
#define EVICT_MAX_PASSES 10000
#define METADATA_SUFFIX ".dist-info"
#define TOP_LEVEL_MAX (1u << 20) /* largest top_level.txt or RECORD read */
#define VERSION_CHARS "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+!"

static int path_of(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int pkgcache_dir_path(const struct config *cfg, const char *dir, char *out, size_t cap)
{
	if (!pkg_dir_name_valid(dir)) {
		log_warn("packages: the database names %.80s as a cached directory; no such name is used", dir);
		return -1;
	}
	int n = snprintf(out, cap, "%s/dists/%s", cfg->package_cache, dir);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int pkgcache_staging_make(const struct config *cfg, char *out, size_t cap)
{
	char id[17] = "";
	random_hex(id, 8);
	int n = snprintf(out, cap, "%s/staging/%s", cfg->package_cache, id);
	if (n < 0 || (size_t)n >= cap || mkdir(out, 0700) < 0) {
		log_error("packages: staging directory %s: %s", out, strerror(errno));
		return -1;
	}
	return 0;
}

int pkgcache_remove(const struct config *cfg, const char *path)
{
	char trash[PATH_MAX], id[17] = "";
	random_hex(id, 8);
	int n = snprintf(trash, sizeof(trash), "%s/staging/removed-%s", cfg->package_cache, id);
	/* the rename takes it out of dists/ at once; the removal may take long */
	if (n < 0 || (size_t)n >= sizeof(trash) || rename(path, trash) < 0) {
		if (errno == ENOENT)
			return 0;
		log_error("packages: remove %s: %s", path, strerror(errno));
		return -1;
	}
	if (remove_tree(trash) < 0) {
		log_error("packages: remove %s: %s", trash, strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether the cached directory dir still holds metadata (an operator may
 * have removed it): 1 or 0. */
static int dir_intact(const struct config *cfg, const char *dir, const char *metadata)
{
	char path[PATH_MAX], file[PATH_MAX];
	struct stat st;
	if (pkgcache_dir_path(cfg, dir, path, sizeof(path)) < 0 || !pkg_metadata_name_valid(metadata))
		return 0;
	int n = snprintf(file, sizeof(file), "%s/%s", path, metadata);
	return n > 0 && (size_t)n < sizeof(file) && lstat(file, &st) == 0 && S_ISDIR(st.st_mode);
}

int pkgcache_lookup(const struct config *cfg, struct db *db, const char *execution_id, const char *norm,
		    const char *kind, const char *key, char dir[PKG_DIR_NAME_MAX + 1], char metadata[256])
{
	struct db_package_dist row;
	for (int tries = 0; tries < 3; tries++) {
		if (db_package_dist_find(db, norm, kind, key, &row) != DB_OK)
			return 0;
		if (!dir_intact(cfg, row.dir, row.metadata)) {
			if (db_package_evict(db, row.dir, "missing", 1, now_ms()) == DB_OK)
				log_warn("packages: %s was recorded but is not in the cache", row.dir);
			continue;
		}
		enum db_status st = db_package_dist_use(db, execution_id, row.dir, now_ms());
		if (st == DB_NOT_FOUND)
			continue; /* evicted meanwhile: look again */
		if (st != DB_OK)
			return 0;
		snprintf(dir, PKG_DIR_NAME_MAX + 1, "%s", row.dir);
		snprintf(metadata, 256, "%s", row.metadata);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ metadata */

/* The normalized distribution name of a "<name>-<version>.dist-info" entry
 * and its version. 0, or -1 when the entry is not such a name. */
static int parse_metadata_name(const char *entry, char *norm, size_t ncap, char *version, size_t vcap)
{
	size_t len = strlen(entry), sl = strlen(METADATA_SUFFIX);
	if (len <= sl || strcmp(entry + len - sl, METADATA_SUFFIX) != 0 || len - sl >= NAME_MAX)
		return -1;
	char base[NAME_MAX + 1];
	memcpy(base, entry, len - sl);
	base[len - sl] = '\0';
	char *dash = strchr(base, '-'); /* wheel names escape '-' in both parts */
	if (!dash || dash == base || !dash[1])
		return -1;
	*dash = '\0';
	/* a wheel's version has no '-' (nor '_'): NAME-VERSION is then one
	 * distribution only, and "a" version "b-1.0" is no "a-b" 1.0 */
	const char *v = dash + 1;
	if (!isalnum((unsigned char)v[0]) || strspn(v, VERSION_CHARS) != strlen(v))
		return -1;
	int n = snprintf(version, vcap, "%s", v);
	if (n < 0 || (size_t)n >= vcap)
		return -1;
	return pkg_normalize(base, norm, ncap);
}

int pkgcache_find_metadata(const char *path, const char *norm, char *metadata, size_t mcap,
			   char *version, size_t vcap)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int rc = -1;
	struct dirent *e;
	while (rc < 0 && (e = readdir(d)) != NULL) {
		char have[PKG_NAME_MAX + 1], ver[128];
		if (parse_metadata_name(e->d_name, have, sizeof(have), ver, sizeof(ver)) < 0 ||
		    strcmp(have, norm) != 0)
			continue;
		int a = snprintf(metadata, mcap, "%s", e->d_name), b = snprintf(version, vcap, "%s", ver);
		if (a >= 0 && (size_t)a < mcap && b >= 0 && (size_t)b < vcap)
			rc = 0;
	}
	closedir(d);
	return rc;
}

/* Reads a small regular file (never through a symlink) into a new string;
 * NULL when it is missing or too large. */
static char *read_text(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > TOP_LEVEL_MAX) {
		close(fd);
		return NULL;
	}
	char *buf = xmalloc((size_t)st.st_size + 1);
	ssize_t n = read_all(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Whether a RECORD line's path is the module's: its first component is
 * module (a package), or module followed by '.' (module.py, an extension
 * module.cpython-311-x86_64-linux-gnu.so). */
static int record_line_is(const char *line, size_t len, const char *module)
{
	size_t m = strlen(module);
	return len > m && strncmp(line, module, m) == 0 && (line[m] == '/' || line[m] == '.');
}

int pkgcache_provides(const char *path, const char *metadata, const char *module)
{
	char file[PATH_MAX];
	int found = 0;
	if (snprintf(file, sizeof(file), "%s/%s/top_level.txt", path, metadata) >= (int)sizeof(file))
		return 0;
	char *text = read_text(file);
	int top_level = text != NULL;
	if (!text) {
		if (snprintf(file, sizeof(file), "%s/%s/RECORD", path, metadata) >= (int)sizeof(file))
			return 0;
		text = read_text(file);
	}
	for (char *line = text; !found && line && *line;) {
		char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (top_level)
			found = len == strlen(module) && strncmp(line, module, len) == 0;
		else
			found = record_line_is(line, len, module);
		line = end ? end + 1 : NULL;
	}
	free(text);
	return found;
}

/* ------------------------------------------------------------ publish */

/* Owns the entry name (in the directory parent) and what it holds for root,
 * without write or set-id bits; removes anything that is not a regular file
 * or a directory, and regular files with other links. Adds the disk use to
 * *size. 0, or -1. */
static int seal_at(int parent, const char *name, uint64_t *size, int depth)
{
	struct stat st;
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode) && !(S_ISREG(st.st_mode) && st.st_nlink == 1))
		return unlinkat(parent, name, 0);
	int dir = S_ISDIR(st.st_mode);
	if (dir && depth >= SEAL_MAX_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	int fd = openat(parent, name, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = 0;
	if (dir) {
		int copy = dup(fd);
		DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
		if (!d) {
			if (copy >= 0)
				close(copy);
			close(fd);
			return -1;
		}
		struct dirent *e;
		while (rc == 0 && (e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				rc = seal_at(fd, e->d_name, size, depth + 1);
		closedir(d);
	}
	mode_t mode = dir || (st.st_mode & 0111) ? 0755 : 0644;
	if (rc == 0 && (fchown(fd, 0, 0) < 0 || fchmod(fd, mode) < 0))
		rc = -1;
	*size += (uint64_t)st.st_blocks * 512;
	close(fd);
	return rc;
}

int pkgcache_publish(const struct config *cfg, const char *staging, const char *dir, uint64_t *size)
{
	char target[PATH_MAX];
	struct stat st;
	*size = 0;
	if (pkgcache_dir_path(cfg, dir, target, sizeof(target)) < 0) {
		log_error("packages: %s is no name for the cache", dir);
		return -1;
	}
	if (lstat(target, &st) == 0)
		return 1;
	if (seal_at(AT_FDCWD, staging, size, 0) < 0) {
		log_error("packages: sealing %s: %s", staging, strerror(errno));
		return -1;
	}
	/* RENAME_NOREPLACE: a directory of that name published meanwhile stays */
	if (renameat2(AT_FDCWD, staging, AT_FDCWD, target, RENAME_NOREPLACE) < 0) {
		if (errno == EEXIST)
			return 1;
		log_error("packages: publishing %s as %s: %s", staging, target, strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ eviction */

void pkgcache_evict(const struct config *cfg, struct db *db)
{
	for (int pass = 0; pass < EVICT_MAX_PASSES; pass++) {
		uint64_t total = 0;
		char dir[PKG_DIR_NAME_MAX + 1], path[PATH_MAX];
		if (db_package_dists_size(db, &total) != DB_OK || total <= cfg->package_cache_bytes)
			return;
		enum db_status st = db_package_evict_candidate(db, dir, sizeof(dir));
		if (st == DB_NOT_FOUND) {
			log_warn("packages: the cache holds %llu MiB, over APP_PACKAGE_CACHE_MB, and running "
				 "executions use all of it", (unsigned long long)(total >> 20));
			return;
		}
		if (st != DB_OK)
			return;
		st = db_package_evict(db, dir, "cache full", 0, now_ms());
		if (st == DB_NOT_FOUND)
			continue; /* used or evicted meanwhile: the next candidate */
		if (st != DB_OK)
			return;
		log_info("packages: evicted %s (the cache was over %llu MiB)", dir,
			 (unsigned long long)(cfg->package_cache_bytes >> 20));
		if (pkgcache_dir_path(cfg, dir, path, sizeof(path)) == 0)
			pkgcache_remove(cfg, path);
	}
}

/* ------------------------------------------------------------ start-up */

struct startup {
	const struct config *cfg;
	struct db *db;
};

static void drop_missing(const char *dir, void *arg)
{
	struct startup *s = arg;
	char path[PATH_MAX];
	struct stat st;
	if (pkgcache_dir_path(s->cfg, dir, path, sizeof(path)) == 0 && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return;
	if (db_package_evict(s->db, dir, "missing", 1, now_ms()) == DB_OK)
		log_warn("packages: %s was recorded but is not in the cache; its row is removed", dir);
}

/* Removes every entry of the directory at path (keeping it). */
static void empty_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char sub[PATH_MAX];
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    path_of(sub, sizeof(sub), path, e->d_name) < 0)
			continue;
		if (remove_tree(sub) < 0)
			log_warn("packages: remove %s: %s", sub, strerror(errno));
	}
	closedir(d);
}

void pkgcache_startup(const struct config *cfg, struct db *db)
{
	char path[PATH_MAX];
	static const char *const legacy[] = {"site-packages", ".locks"};
	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
		struct stat st;
		if (path_of(path, sizeof(path), cfg->package_cache, legacy[i]) == 0 && lstat(path, &st) == 0) {
			log_warn("packages: removing %s (the shared layout of earlier versions)", path);
			remove_tree(path);
		}
	}
	if (pkg_layout_prepare(cfg) < 0)
		return;
	if (path_of(path, sizeof(path), cfg->package_cache, "staging") == 0)
		empty_dir(path);
	if (path_of(path, sizeof(path), cfg->run_dir, "installs") == 0)
		remove_tree(path);
	struct startup s = {cfg, db};
	db_package_dist_each(db, drop_missing, &s);
	if (path_of(path, sizeof(path), cfg->package_cache, "dists") < 0)
		return;
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		struct db_package_dist row;
		char sub[PATH_MAX];
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (pkg_dir_name_valid(e->d_name) && db_package_dist_get(db, e->d_name, &row) == DB_OK)
			continue;
		if (path_of(sub, sizeof(sub), path, e->d_name) < 0)
			continue;
		log_warn("packages: %s has no row; removed", sub);
		if (pkgcache_remove(cfg, sub) == 0)
			db_package_eviction_orphan(db, e->d_name, now_ms());
	}
	if (d)
		closedir(d);
	pkgcache_evict(cfg, db);
}

/* ------------------------------------------------------------ locks */

/* Sleeps a little less than what is left before deadline_ms, at most max_ms. */
static void pause_until(int64_t deadline_ms, long max_ms)
{
	int64_t left = deadline_ms - monotonic_ms();
	long ms = left < max_ms ? (long)(left > 0 ? left : 0) : max_ms;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Writes the path of locks/<name>.lock into out. 0, or -1 (ENAMETOOLONG). */
static int lock_path(const struct config *cfg, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/locks/%s.lock", cfg->package_cache, name);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Takes locks/<name>.lock now if it is free: the descriptor, or -1 (errno
 * EWOULDBLOCK when another holds it). A name's file lives only while it is
 * held (pkgcache_unlock removes it first), so a lock taken on a file that was
 * removed meanwhile is no lock: taken again on the new file. */
static int try_lock(const struct config *cfg, const char *name)
{
	char path[PATH_MAX];
	if (lock_path(cfg, name, path, sizeof(path)) < 0)
		return -1;
	for (;;) {
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno == EINTR ? EWOULDBLOCK : errno;
			close(fd);
			errno = e;
			return -1;
		}
		struct stat held, now;
		if (fstat(fd, &held) == 0 && stat(path, &now) == 0 && held.st_dev == now.st_dev &&
		    held.st_ino == now.st_ino)
			return fd;
		close(fd);
	}
}

/* Takes the first free of the n locks named, waiting until deadline_ms:
 * flock cannot wait with a deadline, so tries every 10 ms, then less often,
 * up to every 100 ms (installs take seconds). The descriptor, or -1 (errno
 * ETIMEDOUT when the deadline passed). */
static int lock_any(const struct config *cfg, const char *const *names, int n, int64_t deadline_ms)
{
	long wait_ms = 10;
	for (;;) {
		for (int i = 0; i < n; i++) {
			int fd = try_lock(cfg, names[i]);
			if (fd >= 0)
				return fd;
			if (errno != EWOULDBLOCK)
				return -1;
		}
		if (monotonic_ms() >= deadline_ms) {
			errno = ETIMEDOUT;
			return -1;
		}
		pause_until(deadline_ms, wait_ms);
		if (wait_ms < 100)
			wait_ms *= 2;
	}
}

int pkgcache_lock(const struct config *cfg, const char *name, int64_t deadline_ms)
{
	char file[PKG_NAME_MAX + 8];
	snprintf(file, sizeof(file), "name-%s", name);
	const char *names[] = {file};
	return lock_any(cfg, names, 1, deadline_ms);
}

void pkgcache_unlock(const struct config *cfg, const char *name, int fd)
{
	char file[PKG_NAME_MAX + 8], path[PATH_MAX];
	snprintf(file, sizeof(file), "name-%s", name);
	/* removed while held: a waiter that then takes the old file sees it
	 * gone and takes the new one (try_lock) */
	if (lock_path(cfg, file, path, sizeof(path)) == 0)
		unlink(path);
	close(fd);
}

int pkgcache_turn(const struct config *cfg, int64_t deadline_ms)
{
	int n = cfg->package_install_concurrency;
	char(*files)[16] = xcalloc((size_t)n, sizeof(*files));
	const char **names = xcalloc((size_t)n, sizeof(*names));
	for (int i = 0; i < n; i++) {
		snprintf(files[i], sizeof(files[i]), "turn-%d", i);
		names[i] = files[i];
	}
	int fd = lock_any(cfg, names, n, deadline_ms);
	int saved = errno;
	free(names);
	free(files);
	errno = saved;
	return fd;
}
