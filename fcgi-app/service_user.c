/* service_user: see service_user.h. */
#include "service_user.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "log.h"
#include "util.h"

/* The gid a group names (a name or a number). 0, or -1. */
static int group_gid(const char *group, gid_t *gid)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(group, &end, 10);
	if (*group >= '0' && *group <= '9' && *end == '\0' && errno == 0 && n < (gid_t)-1) {
		*gid = (gid_t)n;
		return 0;
	}
	struct group *g = getgrnam(group);
	if (!g)
		return -1;
	*gid = g->gr_gid;
	return 0;
}

int service_user_lookup(const struct config *cfg, struct service_user *u)
{
	memset(u, 0, sizeof(*u));
	if (geteuid() != 0) {
		u->uid = geteuid();
		u->gid = getegid();
		log_info("running as uid %d, not root: the workers keep that uid (APP_SERVICE_USER is not used)",
			 (int)u->uid);
		return 0;
	}
	struct passwd *pw = getpwnam(cfg->service_user);
	if (!pw) {
		log_error("APP_SERVICE_USER: there is no user %s; the workers must not run as root. "
			  "Create it with `make deps` (or: useradd --system --user-group --no-create-home "
			  "--shell /usr/sbin/nologin %s)", cfg->service_user, cfg->service_user);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		log_error("APP_SERVICE_USER=%s is root (uid or gid 0): the workers must be unprivileged",
			  cfg->service_user);
		return -1;
	}
	u->drop = 1;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	u->groups[u->n_groups++] = pw->pw_gid;
	if (cfg->file_storage_group[0]) {
		gid_t g;
		if (group_gid(cfg->file_storage_group, &g) < 0) {
			log_error("APP_FILE_STORAGE_GROUP: no group %s", cfg->file_storage_group);
			return -1;
		}
		if (g == 0) {
			log_error("APP_FILE_STORAGE_GROUP is root's group: the workers would be in it");
			return -1;
		}
		if (g != pw->pw_gid)
			u->groups[u->n_groups++] = g;
	}
	log_info("the workers and the cleanup process run as %s (uid %d, gid %d)", cfg->service_user,
		 (int)u->uid, (int)u->gid);
	return 0;
}

/* Makes the entry name of the directory dirfd the user's with mode, never
 * through a symlink and only a regular file with one link (a hard link would
 * hand over whatever else it names); create: made when missing. 0 (also when
 * it is missing and not to be made), or -1 (logged). */
static int own_file_at(int dirfd, const char *dir, const char *name, int create, const struct service_user *u,
		       mode_t mode)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (create ? O_CREAT : 0), mode);
	if (fd < 0) {
		if (errno == ENOENT && !create)
			return 0;
		log_error("%s/%s: %s", dir, name, strerror(errno));
		return -1;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_error("%s/%s is not a regular file with one link; it is left alone and the service does not "
			  "start", dir, name);
		rc = -1;
	} else if (fchown(fd, u->uid, u->gid) < 0 || fchmod(fd, mode) < 0) {
		log_error("giving %s/%s to uid %d: %s", dir, name, (int)u->uid, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* The directory at path (made when missing), as an O_DIRECTORY descriptor
 * whose last component is no symlink; or -1 (logged). */
static int open_dir(const char *path, mode_t mode)
{
	if (mkdir_p(path, mode) < 0) {
		log_error("mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		log_error("%s: %s", path, strerror(errno));
	return fd;
}

/* The database file and its WAL files: the user's, 0600. */
static int own_database(const char *db_path, const struct service_user *u)
{
	char dir[PATH_MAX], name[NAME_MAX + 1];
	const char *slash = strrchr(db_path, '/');
	int n = snprintf(dir, sizeof(dir), "%.*s", (int)(slash - db_path), db_path);
	int m = snprintf(name, sizeof(name) - 4, "%s", slash + 1);
	if (n < 0 || (size_t)n >= sizeof(dir) || m <= 0 || (size_t)m >= sizeof(name) - 4) {
		log_error("APP_DB_PATH %s: no file name", db_path);
		return -1;
	}
	int dfd = open_dir(dir[0] ? dir : "/", 0711);
	if (dfd < 0)
		return -1;
	int rc = own_file_at(dfd, dir, name, 1, u, 0600);
	static const char *const suffix[] = {"-wal", "-shm"};
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		char other[NAME_MAX + 1];
		snprintf(other, sizeof(other), "%s%s", name, suffix[i]);
		rc = own_file_at(dfd, dir, other, 0, u, 0600);
	}
	close(dfd);
	return rc;
}

/* The store's directory (unless shared: its owner's) and its lock. */
static int own_store(const struct config *cfg, const struct service_user *u)
{
	int dfd = open_dir(cfg->file_storage_path, 0700);
	if (dfd < 0)
		return -1;
	int rc = 0;
	if (cfg->file_storage_group[0]) {
		/* the lock lives in APP_RUN_DIR (files.h); the folder is its owner's */
		int rfd = open_dir(cfg->run_dir, 0711);
		rc = rfd < 0 ? -1 : own_file_at(rfd, cfg->run_dir, "store.lock", 1, u, 0600);
		if (rfd >= 0)
			close(rfd);
	} else if (fchown(dfd, u->uid, u->gid) < 0 || fchmod(dfd, 0700) < 0) {
		log_error("giving %s to uid %d: %s", cfg->file_storage_path, (int)u->uid, strerror(errno));
		rc = -1;
	} else {
		rc = own_file_at(dfd, cfg->file_storage_path, ".lock", 1, u, 0600);
	}
	close(dfd);
	return rc;
}

/* Whether the user may search the directory of st (its owner, a group of its,
 * or anyone). */
static int searchable(const struct stat *st, const struct service_user *u)
{
	if (st->st_uid == u->uid)
		return (st->st_mode & S_IXUSR) != 0;
	for (size_t i = 0; i < u->n_groups; i++)
		if (st->st_gid == u->groups[i])
			return (st->st_mode & S_IXGRP) != 0;
	return (st->st_mode & S_IXOTH) != 0;
}

/* Every directory above path must let the user through; else -1, naming the
 * one that does not (a clearer message than the workers' EACCES loop). */
static int reachable(const char *what, const char *path, const struct service_user *u)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *slash = strrchr(dir, '/'); slash; slash = strrchr(dir, '/')) {
		*slash = '\0';
		struct stat st;
		const char *d = dir[0] ? dir : "/";
		if (stat(d, &st) == 0 && !searchable(&st, u)) {
			log_error("%s %s: the workers' user (uid %d) cannot pass through %s (mode %o, owner %d): "
				  "give others search permission (chmod o+x) or move it", what, path, (int)u->uid, d,
				  (unsigned)(st.st_mode & 07777), (int)st.st_uid);
			return -1;
		}
		if (!dir[0])
			break;
	}
	return 0;
}

int service_user_own_state(const struct config *cfg, const struct service_user *u)
{
	if (!u->drop)
		return 0;
	if (reachable("APP_DB_PATH", cfg->db_path, u) < 0 ||
	    reachable("APP_FILE_STORAGE_PATH", cfg->file_storage_path, u) < 0 ||
	    reachable("APP_PACKAGE_CACHE", cfg->package_cache, u) < 0)
		return -1;
	return own_database(cfg->db_path, u) < 0 || own_store(cfg, u) < 0 ? -1 : 0;
}

static int fail(const char *step)
{
	log_error("dropping to the service user: %s: %s", step, strerror(errno));
	return -1;
}

int service_user_become(const struct service_user *u)
{
	const char *step = NULL;
	if (u->drop && caps_become(u->uid, u->gid, u->groups, u->n_groups, &step) < 0)
		return fail(step);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail("PR_SET_NO_NEW_PRIVS");
	return 0;
}
