/* workspace: see workspace.h. Every path is resolved one component at a time
 * with openat(O_NOFOLLOW|O_DIRECTORY) from the workspace's directory fd, which
 * works the same on any kernel or sandbox runtime (no openat2 needed). */
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "validate.h"

#define SANDBOX_UID 1000
#define SANDBOX_GID 1000

struct ws_entry {
	char *rel;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

int ws_open(struct workspace *ws, const char *dir, unsigned flags)
{
	memset(ws, 0, sizeof(*ws));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		log_error("workspace %s: %s", dir, strerror(errno));
		return -1;
	}
	/* Never fd 0: a released workspace is told by rootfd <= 0. */
	ws->rootfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	if (ws->rootfd < 0) {
		log_error("workspace %s: %s", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(ws->rootfd, &st) < 0) {
		log_error("workspace %s: %s", dir, strerror(errno));
		close(ws->rootfd);
		ws->rootfd = -1;
		return -1;
	}
	ws->dev = st.st_dev;
	ws->flags = flags;
	pthread_mutex_init(&ws->lock, NULL);
	return 0;
}

void ws_release(struct workspace *ws)
{
	if (!ws || ws->rootfd <= 0)
		return;
	close(ws->rootfd);
	ws->rootfd = -1;
	for (size_t i = 0; i < ws->nknown; i++)
		free(ws->known[i].rel);
	free(ws->known);
	ws->known = NULL;
	ws->nknown = ws->capknown = 0;
	pthread_mutex_destroy(&ws->lock);
}

static enum ws_status errno_status(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
		return WS_NO_SPACE;
	case ENOENT:
		return WS_NOT_FOUND;
	case ELOOP:
	case ENOTDIR:
	case EISDIR:
	case ENXIO:
	case ENAMETOOLONG:
	case EEXIST:
		return WS_BAD_PATH;
	default:
		return WS_IO;
	}
}

/* Opens the directory holding the last component of rel (a valid path) and
 * points *leaf into buf at that component. With create, missing directories are
 * made (0755, chowned when configured). Returns the dirfd (a fresh fd, never the
 * root fd itself) or -1 with *st set. */
static int open_parent(struct workspace *ws, char *buf, int create, char **leaf,
		       enum ws_status *st)
{
	int cur = fcntl(ws->rootfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0) {
		*st = WS_IO;
		return -1;
	}
	char *comp = buf;
	for (char *slash; (slash = strchr(comp, '/')) != NULL; comp = slash + 1) {
		*slash = '\0';
		int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
		int next = openat(cur, comp, flags);
		int made = 0;
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, comp, 0755) == 0)
				made = 1;
			else if (errno != EEXIST)
				goto fail;
			next = openat(cur, comp, flags);
		}
		if (next < 0)
			goto fail;
		if (made) {
			if (fchmod(next, 0755) < 0 ||
			    ((ws->flags & WS_CHOWN) && fchown(next, SANDBOX_UID, SANDBOX_GID) < 0)) {
				int e = errno;
				close(next);
				errno = e;
				goto fail;
			}
		}
		close(cur);
		cur = next;
		*slash = '/';
	}
	*leaf = comp;
	return cur;
fail:
	*st = errno_status(errno);
	if (*st == WS_IO)
		log_warn("workspace: opening a directory of the path: %s", strerror(errno));
	close(cur);
	return -1;
}

/* Adds or replaces the identity of rel. Caller holds ws->lock. */
static void remember(struct workspace *ws, const char *rel, const struct stat *st)
{
	struct ws_entry *e = NULL;
	for (size_t i = 0; i < ws->nknown; i++) {
		if (strcmp(ws->known[i].rel, rel) == 0) {
			e = &ws->known[i];
			break;
		}
	}
	if (!e) {
		if (ws->nknown == ws->capknown) {
			ws->capknown = ws->capknown ? ws->capknown * 2 : 16;
			ws->known = xrealloc(ws->known, ws->capknown * sizeof(*ws->known));
		}
		e = &ws->known[ws->nknown++];
		e->rel = xstrdup(rel);
	}
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->ctime = st->st_ctim;
}

enum ws_status ws_file_create(struct workspace *ws, const char *rel, struct ws_file *f)
{
	enum ws_status st = WS_IO;
	f->fd = f->dirfd = -1;
	f->leaf = f->rel = NULL;
	if (valid_workspace_rel(rel, strlen(rel)) != NULL)
		return WS_BAD_PATH;
	char *buf = xstrdup(rel);
	char *leaf;
	int dirfd = open_parent(ws, buf, 1, &leaf, &st);
	if (dirfd < 0)
		goto out;
	int read_only = (ws->flags & WS_READ_ONLY) != 0;
	mode_t mode = read_only ? 0444 : 0644;
	int fd = openat(dirfd, leaf, O_WRONLY | O_CREAT | (read_only ? O_EXCL : O_TRUNC) | O_NOFOLLOW |
				       O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
	if (fd < 0) {
		st = errno_status(errno);
		if (st == WS_NOT_FOUND)
			st = WS_IO;
		goto close_dir;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		st = WS_BAD_PATH;
		goto close_file;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || fchmod(fd, mode) < 0 ||
	    ((ws->flags & WS_CHOWN) && fchown(fd, SANDBOX_UID, SANDBOX_GID) < 0)) {
		log_warn("workspace: preparing %s: %s", rel, strerror(errno));
		st = WS_IO;
		goto close_file;
	}
	f->fd = fd;
	f->dirfd = dirfd;
	f->leaf = xstrdup(leaf);
	f->rel = xstrdup(rel);
	st = WS_OK;
	goto out;
close_file:
	close(fd);
close_dir:
	close(dirfd);
out:
	free(buf);
	return st;
}

enum ws_status ws_file_write(struct ws_file *f, const void *buf, size_t len)
{
	if (write_all(f->fd, buf, len) == 0)
		return WS_OK;
	if (errno == ENOSPC || errno == EDQUOT)
		return WS_NO_SPACE;
	log_warn("workspace: writing %s: %s", f->rel, strerror(errno));
	return WS_IO;
}

static void file_close(struct ws_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->dirfd >= 0)
		close(f->dirfd);
	free(f->leaf);
	free(f->rel);
	f->fd = f->dirfd = -1;
	f->leaf = f->rel = NULL;
}

enum ws_status ws_file_commit(struct workspace *ws, struct ws_file *f)
{
	struct stat st;
	if (fstat(f->fd, &st) < 0) {
		log_warn("workspace: %s: %s", f->rel, strerror(errno));
		ws_file_abort(f);
		return WS_IO;
	}
	if (!(ws->flags & WS_READ_ONLY)) {
		pthread_mutex_lock(&ws->lock);
		remember(ws, f->rel, &st);
		pthread_mutex_unlock(&ws->lock);
	}
	file_close(f);
	return WS_OK;
}

void ws_file_abort(struct ws_file *f)
{
	if (f->fd >= 0 && f->dirfd >= 0 && f->leaf)
		unlinkat(f->dirfd, f->leaf, 0);
	file_close(f);
}

int ws_open_read(struct workspace *ws, const char *rel, uint64_t *size)
{
	if (valid_workspace_rel(rel, strlen(rel)) != NULL)
		return -1;
	int fd = -1;
	enum ws_status st;
	char *buf = xstrdup(rel);
	char *leaf;
	int dirfd = open_parent(ws, buf, 0, &leaf, &st);
	if (dirfd < 0)
		goto out;
	struct stat sb;
	/* Look before opening: opening a FIFO or device may have effects. */
	if (fstatat(dirfd, leaf, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
		goto out;
	fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		fd = -1;
		goto out;
	}
	*size = (uint64_t)sb.st_size;
out:
	if (dirfd >= 0)
		close(dirfd);
	free(buf);
	return fd;
}

/* The symlink-free walk. visit() gets each regular file's relative path. */
struct walk {
	struct workspace *ws;
	char path[PATH_MAX];
	int (*visit)(struct walk *w, const struct stat *st);
	char **out;            /* ws_list_changed: collected paths */
	size_t nout, capout;
	int max_depth;         /* directories at this depth are not walked */
	int truncated;
};

static int walk_dir(struct walk *w, int fd, size_t plen, int depth)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		size_t nlen = strlen(name);
		size_t sep = plen ? 1 : 0;
		if (plen + sep + nlen + 1 > sizeof(w->path) || plen + sep + nlen > VALID_REL_MAX) {
			log_warn("workspace: skipping a path longer than %zu bytes", VALID_REL_MAX);
			continue;
		}
		if (sep)
			w->path[plen] = '/';
		memcpy(w->path + plen + sep, name, nlen + 1);
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* vanished */
		if (S_ISDIR(st.st_mode)) {
			if (st.st_dev != w->ws->dev)
				continue;
			if (depth + 1 >= w->max_depth) {
				if (w->max_depth == WS_MAX_DEPTH)
					log_warn("workspace: not walking below depth %d", WS_MAX_DEPTH);
				continue;
			}
			int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				continue;
			if (walk_dir(w, sub, plen + sep + nlen, depth + 1) < 0)
				rc = -1;
		} else if (S_ISREG(st.st_mode)) {
			if (w->visit(w, &st) < 0)
				rc = -1;
		}
		w->path[plen] = '\0';
	}
	closedir(d);
	return rc;
}

static int walk(struct walk *w)
{
	/* A fresh open file description: its directory offset is our own. */
	int fd = openat(w->ws->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		log_error("workspace: %s", strerror(errno));
		return -1;
	}
	w->path[0] = '\0';
	return walk_dir(w, fd, 0, 0);
}

static int visit_snapshot(struct walk *w, const struct stat *st)
{
	remember(w->ws, w->path, st); /* caller holds the lock */
	return 0;
}

int ws_snapshot(struct workspace *ws)
{
	struct walk *w = xcalloc(1, sizeof(*w));
	w->ws = ws;
	w->visit = visit_snapshot;
	w->max_depth = WS_MAX_DEPTH;
	pthread_mutex_lock(&ws->lock);
	int rc = walk(w);
	pthread_mutex_unlock(&ws->lock);
	free(w);
	return rc;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct ws_entry *)a)->rel, ((const struct ws_entry *)b)->rel);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int visit_changed(struct walk *w, const struct stat *st)
{
	struct ws_entry key = {.rel = w->path};
	const struct ws_entry *e = NULL;
	if (w->ws->nknown)
		e = bsearch(&key, w->ws->known, w->ws->nknown, sizeof(*w->ws->known), cmp_entry);
	if (e && e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	    e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	    e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec)
		return 0;
	if (!utf8_valid(w->path, strlen(w->path))) {
		log_warn("workspace: skipping a file whose name is not valid UTF-8");
		return 0;
	}
	if (w->nout >= WS_MAX_FILES) {
		w->truncated = 1;
		return 0;
	}
	if (w->nout == w->capout) {
		w->capout = w->capout ? w->capout * 2 : 16;
		w->out = xrealloc(w->out, w->capout * sizeof(*w->out));
	}
	w->out[w->nout++] = xasprintf(WS_PREFIX "%s", w->path);
	return 0;
}

int ws_list_changed(struct workspace *ws, int subdirectories, char ***paths, size_t *n)
{
	struct walk *w = xcalloc(1, sizeof(*w));
	w->ws = ws;
	w->visit = visit_changed;
	w->max_depth = subdirectories ? WS_MAX_DEPTH : 1;
	pthread_mutex_lock(&ws->lock);
	if (ws->nknown)
		qsort(ws->known, ws->nknown, sizeof(*ws->known), cmp_entry);
	int rc = walk(w);
	pthread_mutex_unlock(&ws->lock);
	if (w->truncated)
		log_warn("workspace: more than %d changed files, listing the first %d found",
			 WS_MAX_FILES, WS_MAX_FILES);
	if (w->nout)
		qsort(w->out, w->nout, sizeof(*w->out), cmp_str);
	*paths = w->out;
	*n = w->nout;
	free(w);
	return rc;
}
