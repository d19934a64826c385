/* package_delivery: see package_delivery.h. */
#include "package_delivery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "package_cache.h"
#include "package_names.h"
#include "util.h"
#include "validate.h"

#define WALK_MAX_DEPTH 128 /* as deep as publishing seals (package_cache.c) */

struct walk {
	const struct config *cfg;
	struct executor_client *executor;
	int64_t deadline_ms;
	char rel[VALID_REL_MAX + 1]; /* "<dir>/<path>" of the entry at hand */
	uint64_t files, bytes;
	char *why;
	size_t cap;
};

static int walk_dir(struct walk *w, int fd, size_t len, int depth);

/* Sends the regular file name of the directory dirfd as w->rel. 0 or -1. */
static int send_file(struct walk *w, int dirfd, const char *name)
{
	int64_t left = w->deadline_ms - monotonic_ms();
	if (left <= 0) {
		snprintf(w->why, w->cap, "the installs and copies of this request took longer than "
			 "APP_PACKAGE_INSTALL_TIMEOUT (%g s)", w->cfg->package_install_timeout);
		return -1;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(w->why, w->cap, "reading %.300s: %s", w->rel, fd < 0 ? strerror(errno) : "not a file");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int rc = executor_put_package_file(w->executor, w->rel, fd, (uint64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
					   (long)left);
	close(fd);
	if (rc < 0) {
		if (w->executor->status == 413)
			snprintf(w->why, w->cap, "the run's packages are larger than the pod takes "
				 "(APP_EXECUTOR_PACKAGES_MB %llu MiB in all, APP_SANDBOX_FILE_MB a file)",
				 (unsigned long long)(w->cfg->executor_packages_bytes >> 20));
		else if (monotonic_ms() >= w->deadline_ms)
			snprintf(w->why, w->cap, "the installs and copies of this request took longer than "
				 "APP_PACKAGE_INSTALL_TIMEOUT (%g s)", w->cfg->package_install_timeout);
		else
			snprintf(w->why, w->cap, "%s", w->executor->error);
		return -1;
	}
	w->files++;
	w->bytes += (uint64_t)st.st_size;
	return 0;
}

/* Sends the entry name of the directory dirfd, w->rel ending at len. */
static int send_entry(struct walk *w, int dirfd, const char *name, size_t len, int depth)
{
	int n = snprintf(w->rel + len, sizeof(w->rel) - len, "/%s", name);
	if (n < 0 || (size_t)n >= sizeof(w->rel) - len || !pkg_file_path_valid(w->rel, len + (size_t)n)) {
		snprintf(w->why, w->cap, "%.200s... is no path the pod takes", w->rel);
		return -1;
	}
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		snprintf(w->why, w->cap, "reading %.300s: %s", w->rel, strerror(errno));
		return -1;
	}
	if (S_ISREG(st.st_mode))
		return send_file(w, dirfd, name);
	if (!S_ISDIR(st.st_mode))
		return 0; /* publishing left none (package_cache.h); nothing a run needs */
	if (depth >= WALK_MAX_DEPTH) {
		snprintf(w->why, w->cap, "%.300s is deeper than %d directories", w->rel, WALK_MAX_DEPTH);
		return -1;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(w->why, w->cap, "reading %.300s: %s", w->rel, strerror(errno));
		return -1;
	}
	int rc = walk_dir(w, fd, len + (size_t)n, depth + 1);
	close(fd);
	return rc;
}

/* Sends every file below the directory fd, whose path is w->rel[0..len). */
static int walk_dir(struct walk *w, int fd, size_t len, int depth)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
	if (!d) {
		if (copy >= 0)
			close(copy);
		snprintf(w->why, w->cap, "reading %.300s: %s", w->rel, strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		rc = send_entry(w, fd, e->d_name, len, depth);
		w->rel[len] = '\0';
	}
	closedir(d);
	return rc;
}

int pkgdeliver_dir(const struct config *cfg, struct executor_client *executor, const char *dir, int64_t deadline_ms,
		   char *why, size_t cap)
{
	char path[PATH_MAX];
	struct walk w = {.cfg = cfg, .executor = executor, .deadline_ms = deadline_ms, .why = why, .cap = cap};
	int64_t t0 = monotonic_ms();
	why[0] = '\0';
	if (pkgcache_dir_path(cfg, dir, path, sizeof(path)) < 0) {
		snprintf(why, cap, "%.200s is no directory of the cache", dir);
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, cap, "reading %.200s: %s", dir, strerror(errno));
		log_warn("packages: %s", why);
		return -1;
	}
	snprintf(w.rel, sizeof(w.rel), "%s", dir);
	int rc = walk_dir(&w, fd, strlen(w.rel), 0);
	close(fd);
	if (rc < 0)
		log_warn("packages: copying %s to the pod: %s", dir, why);
	else
		log_info("packages: copied %s to the pod: %llu files, %llu bytes in %lld ms", dir,
			 (unsigned long long)w.files, (unsigned long long)w.bytes, (long long)(monotonic_ms() - t0));
	return rc;
}
