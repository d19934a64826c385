/* store: the content-addressed object store (see store.h). Owns every open,
 * rename and unlink under the store directory; ids are checked before any of
 * them touches the file system. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "util.h"
#include "validate.h"

#define TMP_PREFIX ".tmp-"
#define TMP_PREFIX_LEN (sizeof(TMP_PREFIX) - 1)
/* A temp file is stale when no writer holds its lock (a writer locks it from
 * begin to commit/abort) and it has not been modified for this long; the age
 * only covers the instant between a writer's create and its lock. */
#define STALE_TEMP_AGE_S 10
#define PUT_CHUNK (1u << 20)

static const char hexdig[] = "0123456789abcdef";

static DIR *open_dir(struct store *st);

int store_id_valid(const char *id)
{
	return id && valid_object_id(id, strnlen(id, VALID_OBJECT_ID_MAX + 1));
}

/* True when id can name an object file: exactly 64 lowercase hex chars. Other
 * ids that pass store_id_valid are simply never found. */
static int is_object_name(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++) {
		char c = id[n];
		if (n >= STORE_ID_LEN || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return n == STORE_ID_LEN;
}

/* Maps an id to STORE_OK (it may name an object), STORE_BAD_ID or STORE_NOT_FOUND. */
static enum store_status check_id(const char *id)
{
	if (!store_id_valid(id))
		return STORE_BAD_ID;
	return is_object_name(id) ? STORE_OK : STORE_NOT_FOUND;
}

enum store_status store_open(struct store *st, const char *dir)
{
	return store_open_locked(st, dir, NULL);
}

enum store_status store_open_locked(struct store *st, const char *dir, const char *lock_path)
{
	enum store_status rc = STORE_IO;
	char *real = NULL;

	st->dir = NULL;
	st->dirfd = -1;
	st->lockfd = -1;
	st->shared = 0;
	st->max_object_bytes = 0;
	st->give = NULL;
	st->give_arg = NULL;
	if (mkdir_p(dir, 0700) < 0) {
		log_error("store: cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	real = realpath(dir, NULL);
	if (!real) {
		log_error("store: cannot resolve %s: %s", dir, strerror(errno));
		goto out;
	}
	/* realpath resolved every symlink, so O_NOFOLLOW only guards against a swap */
	st->dirfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (st->dirfd < 0) {
		log_error("store: cannot open %s: %s", real, strerror(errno));
		goto out;
	}
	/* the lock file now, not at the first lock: a process's open files stay
	 * the same from its start (an fd that appears later looks like a leak) */
	st->lockfd = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)
			       : openat(st->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (st->lockfd < 0) {
		log_error("store: cannot open the lock %s%s: %s", lock_path ? lock_path : real,
			  lock_path ? "" : "/.lock", strerror(errno));
		close(st->dirfd);
		st->dirfd = -1;
		goto out;
	}
	st->real_path = strcmp(real, dir) == 0;
	st->dir = real;
	real = NULL;
	rc = STORE_OK;
out:
	free(real);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->dir && st->dirfd >= 0)
		close(st->dirfd);
	if (st->dir && st->lockfd >= 0)
		close(st->lockfd);
	free(st->dir);
	st->dir = NULL;
	st->dirfd = -1;
	st->lockfd = -1;
}

/* The gid group names (a group name, or a number); -1 when there is none. */
static int group_id(const char *group, gid_t *gid)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(group, &end, 10);
	if (*group >= '0' && *group <= '9' && *end == '\0' && errno == 0 && n < (gid_t)-1) {
		*gid = (gid_t)n;
		return 0;
	}
	struct group gr, *found = NULL;
	char buf[16384];
	if (getgrnam_r(group, &gr, buf, sizeof(buf), &found) != 0 || !found)
		return -1;
	*gid = found->gr_gid;
	return 0;
}

/* Gives an open object the shared owner, group and mode. 0 or -1. */
static int share_fd(const struct store *st, int fd)
{
	return fchown(fd, st->share_uid, st->share_gid) < 0 || fchmod(fd, 0660) < 0 ? -1 : 0;
}

enum store_status store_give_temp(struct store *st, const char *name, uid_t uid)
{
	size_t n = strlen(name);
	if (!st->shared || n != TMP_PREFIX_LEN + 32 || strncmp(name, TMP_PREFIX, TMP_PREFIX_LEN) != 0 ||
	    strspn(name + TMP_PREFIX_LEN, hexdig) != 32)
		return STORE_BAD_ID;
	int fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? STORE_BAD_ID : STORE_IO;
	struct stat sb;
	enum store_status rc = STORE_OK;
	if (fstat(fd, &sb) < 0)
		rc = STORE_IO;
	else if (!S_ISREG(sb.st_mode) || sb.st_nlink != 1 || sb.st_uid != uid)
		rc = STORE_BAD_ID;
	else if (share_fd(st, fd) < 0)
		rc = STORE_IO;
	if (rc == STORE_IO)
		log_error("store: cannot give %s/%s to the folder's owner: %s", st->dir, name, strerror(errno));
	close(fd);
	return rc;
}

/* The same for an object file already there (a regular file only). */
static void share_object(struct store *st, const char *name)
{
	int fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat sb;
	if (fd < 0)
		return;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_nlink == 1 &&
	    (sb.st_uid != st->share_uid || sb.st_gid != st->share_gid || (sb.st_mode & 07777) != 0660) &&
	    share_fd(st, fd) < 0)
		log_warn("store: cannot share %s/%s: %s", st->dir, name, strerror(errno));
	close(fd);
}

/* True when no one but root can put something else in dir's place: every
 * directory above it root's and writable by root alone, or sticky. */
static int only_root_above(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", dir);
	for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
		*slash = '\0';
		struct stat sb;
		const char *p = path[0] ? path : "/";
		if (lstat(p, &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != 0 ||
		    ((sb.st_mode & 022) && !(sb.st_mode & S_ISVTX))) {
			log_error("store: %s is not root's alone, so the folder below it cannot be shared "
				  "(APP_FILE_STORAGE_GROUP)", p);
			return 0;
		}
		if (!path[0])
			break;
	}
	return 1;
}

enum store_status store_share(struct store *st, const char *group, const char *lock_path, int fix_existing)
{
	struct stat sb;
	if (group_id(group, &st->share_gid) < 0) {
		log_error("store: no group %s (APP_FILE_STORAGE_GROUP)", group);
		return STORE_BAD_ID;
	}
	if (fix_existing && (!st->real_path || !only_root_above(st->dir))) {
		if (!st->real_path)
			log_error("store: %s is reached through a symlink; give its real path to share it", st->dir);
		return STORE_BAD_ID;
	}
	if (fstat(st->dirfd, &sb) < 0) {
		log_error("store: fstat %s: %s", st->dir, strerror(errno));
		return STORE_IO;
	}
	/* the lock where no member reaches it, on the same descriptor number */
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || dup3(fd, st->lockfd, O_CLOEXEC) < 0) {
		log_error("store: cannot open the lock %s: %s", lock_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return STORE_IO;
	}
	close(fd);
	st->share_uid = sb.st_uid;
	st->shared = 1;
	if (!fix_existing)
		return STORE_OK;
	if (fchown(st->dirfd, (uid_t)-1, st->share_gid) < 0 || fchmod(st->dirfd, 02770) < 0) {
		log_error("store: cannot share %s with group %s: %s", st->dir, group, strerror(errno));
		return STORE_IO;
	}
	DIR *d = open_dir(st);
	if (!d)
		return STORE_IO;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (is_object_name(de->d_name))
			share_object(st, de->d_name);
	closedir(d);
	return STORE_OK;
}

static int lock(struct store *st, int op, const char *what)
{
	while (flock(st->lockfd, op) < 0) {
		if (errno != EINTR) {
			log_error("store: %s lock on %s/.lock: %s", what, st->dir, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int store_lock_shared(struct store *st)
{
	return lock(st, LOCK_SH, "shared");
}

int store_lock_exclusive(struct store *st)
{
	return lock(st, LOCK_EX, "exclusive");
}

void store_unlock(struct store *st)
{
	if (st->lockfd >= 0)
		(void)flock(st->lockfd, LOCK_UN);
}

static EVP_MD_CTX *sha256_new(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		log_fatal("store: out of memory (EVP_MD_CTX_new)");
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		log_fatal("store: EVP_DigestInit_ex(sha256) failed");
	return ctx;
}

/* Puts the writer back to "not begun" after releasing what it holds. */
static void writer_reset(struct store_writer *w)
{
	if (w->st && w->fd >= 0)
		close(w->fd);
	EVP_MD_CTX_free(w->sha);
	w->sha = NULL;
	w->fd = -1;
	w->tmpname[0] = '\0';
	w->size = 0;
	w->max_bytes = 0;
	w->st = NULL;
}

enum store_status store_writer_begin(struct store *st, struct store_writer *w, uint64_t max_bytes)
{
	char rnd[33];

	w->st = st;
	w->fd = -1;
	w->tmpname[0] = '\0';
	w->sha = NULL;
	w->size = 0;
	w->max_bytes = max_bytes;
	w->error = 0;

	random_hex(rnd, 16);
	snprintf(w->tmpname, sizeof(w->tmpname), TMP_PREFIX "%s", rnd);
	w->fd = openat(st->dirfd, w->tmpname,
		       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (w->fd < 0) {
		int e = errno;
		w->error = e;
		log_error("store: cannot create temp file in %s: %s", st->dir, strerror(e));
		w->tmpname[0] = '\0';
		writer_reset(w);
		errno = e;
		return STORE_IO;
	}
	/* held until commit/abort: tells store_remove_stale_temps the file is live */
	if (flock(w->fd, LOCK_EX | LOCK_NB) < 0)
		log_warn("store: cannot lock %s: %s", w->tmpname, strerror(errno));

	w->sha = sha256_new();
	return STORE_OK;
}

enum store_status store_writer_write(struct store_writer *w, const void *data, size_t len)
{
	if (!w->st || w->fd < 0) {
		if (w->st && w->tmpname[0])
			return STORE_TOO_LARGE; /* spent by an earlier overflow */
		errno = EBADF;
		return STORE_IO;
	}
	if (w->max_bytes && (len > w->max_bytes || w->size > w->max_bytes - len)) {
		/* the writer is spent: only abort is left, commit refuses */
		close(w->fd);
		w->fd = -1;
		return STORE_TOO_LARGE;
	}
	if (len == 0)
		return STORE_OK;
	if (write_all(w->fd, data, len) < 0) {
		w->error = errno;
		log_error("store: write to %s/%s: %s", w->st->dir, w->tmpname, strerror(errno));
		return STORE_IO;
	}
	if (EVP_DigestUpdate(w->sha, data, len) != 1)
		log_fatal("store: EVP_DigestUpdate failed");
	w->size += len;
	return STORE_OK;
}

/* Gives tmp its final name without ever replacing an existing file. Returns 0
 * when tmp became name, 1 when name already existed, -1 on error (errno set). */
static int link_noreplace(int dirfd, const char *tmp, const char *name)
{
	if (renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST)
		return 1;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* file systems without RENAME_NOREPLACE: link() never replaces either */
	if (linkat(dirfd, tmp, dirfd, name, 0) < 0)
		return errno == EEXIST ? 1 : -1;
	if (unlinkat(dirfd, tmp, 0) < 0)
		log_warn("store: cannot remove temp file %s: %s", tmp, strerror(errno));
	return 0;
}

/* The hex SHA-256 the context has summed up; frees nothing. */
static void final_hex(EVP_MD_CTX *ctx, char id[STORE_ID_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen * 2 != STORE_ID_LEN)
		log_fatal("store: EVP_DigestFinal_ex failed");
	for (unsigned int i = 0; i < mdlen; i++) {
		id[2 * i] = hexdig[md[i] >> 4];
		id[2 * i + 1] = hexdig[md[i] & 15];
	}
	id[STORE_ID_LEN] = '\0';
}

enum store_status store_check_begin(struct store_check *c, const char *id, uint64_t size)
{
	c->sha = sha256_new();
	c->left = size;
	snprintf(c->id, sizeof(c->id), "%s", id);
	return size == 0 ? store_check_update(c, "", 0) : STORE_OK;
}

enum store_status store_check_update(struct store_check *c, const void *data, size_t len)
{
	if (len > c->left || !c->sha)
		return STORE_CHANGED;
	if (len > 0 && EVP_DigestUpdate(c->sha, data, len) != 1)
		log_fatal("store: EVP_DigestUpdate failed");
	c->left -= len;
	if (c->left > 0)
		return STORE_OK;
	char got[STORE_ID_LEN + 1];
	final_hex(c->sha, got);
	EVP_MD_CTX_free(c->sha);
	c->sha = NULL; /* nothing more may come */
	if (strcmp(got, c->id) == 0)
		return STORE_OK;
	log_warn("store: object %s does not hash to its id (it is being rewritten, or holds other bytes)", c->id);
	return STORE_CHANGED;
}

void store_check_end(struct store_check *c)
{
	EVP_MD_CTX_free(c->sha);
	c->sha = NULL;
}

enum store_status store_check_fd(int fd, const char *id, uint64_t size, void *copy)
{
	struct store_check c;
	enum store_status rc = store_check_begin(&c, id, size);
	char scratch[64 * 1024];
	for (uint64_t off = 0; rc == STORE_OK && c.left > 0;) {
		char *buf = copy ? (char *)copy + off : &scratch[0];
		size_t want = copy || c.left < sizeof(scratch) ? (size_t)c.left : sizeof(scratch);
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		rc = n <= 0 ? STORE_CHANGED : store_check_update(&c, buf, (size_t)n);
		off += n > 0 ? (uint64_t)n : 0;
	}
	store_check_end(&c);
	return rc;
}

/* True when the object file id holds exactly the bytes its name says. */
static int object_intact(struct store *st, const char *id)
{
	int fd;
	uint64_t size;
	if (store_open_object(st, id, &fd, &size) != STORE_OK)
		return 0;
	enum store_status rc = store_check_fd(fd, id, size, NULL);
	close(fd);
	return rc == STORE_OK;
}

enum store_status store_writer_commit(struct store_writer *w, char id_out[STORE_ID_LEN + 1])
{
	enum store_status rc = STORE_IO;
	char id[STORE_ID_LEN + 1];
	int e = 0;

	if (!w->st || w->fd < 0) {
		if (w->st && w->tmpname[0]) {
			store_writer_abort(w);
			return STORE_TOO_LARGE;
		}
		errno = EBADF;
		return STORE_IO;
	}
	final_hex(w->sha, id);

	/* its final owner and mode before it gets its real name, and durable before the rename */
	int owned = !w->st->shared ? fchmod(w->fd, 0444)
		    : w->st->give ? w->st->give(w->tmpname, w->st->give_arg) : share_fd(w->st, w->fd);
	if (owned < 0 || fsync(w->fd) < 0) {
		e = errno;
		log_error("store: cannot finish %s/%s: %s", w->st->dir, w->tmpname, strerror(e));
		goto out;
	}
	int r = link_noreplace(w->st->dirfd, w->tmpname, id);
	/* In a shared folder a member may have left something else under the
	 * name (a copy cut short, a directory): exchanged for the object whole,
	 * never rewritten in place; what was there goes with the temp name. */
	if (r == 1 && w->st->shared && !object_intact(w->st, id)) {
		r = renameat2(w->st->dirfd, w->tmpname, w->st->dirfd, id, RENAME_EXCHANGE);
		if (r == 0) {
			log_warn("store: replaced %s, which did not hold the bytes its name says", id);
			if (unlinkat(w->st->dirfd, w->tmpname, 0) < 0 &&
			    unlinkat(w->st->dirfd, w->tmpname, AT_REMOVEDIR) < 0)
				log_warn("store: left what was under %s as %s: %s", id, w->tmpname, strerror(errno));
		}
	}
	if (r < 0) {
		e = errno;
		log_error("store: cannot rename %s to %s in %s: %s", w->tmpname, id,
			  w->st->dir, strerror(e));
		goto out;
	}
	if (r == 0)
		w->tmpname[0] = '\0'; /* the temp name is gone; nothing to unlink */
	if (fsync(w->st->dirfd) < 0) {
		e = errno;
		log_error("store: fsync %s: %s", w->st->dir, strerror(e));
		goto out;
	}
	memcpy(id_out, id, sizeof(id));
	rc = STORE_OK;
out:
	/* an existing object (r == 1) or a failure: the temp file is dropped */
	if (rc != STORE_OK)
		w->error = e;
	store_writer_abort(w);
	if (rc != STORE_OK)
		errno = e;
	return rc;
}

void store_writer_abort(struct store_writer *w)
{
	if (!w || !w->st)
		return;
	if (w->tmpname[0] && unlinkat(w->st->dirfd, w->tmpname, 0) < 0 && errno != ENOENT)
		log_warn("store: cannot remove %s/%s: %s", w->st->dir, w->tmpname, strerror(errno));
	writer_reset(w);
}

enum store_status store_put(struct store *st, const void *data, size_t len,
			    char id_out[STORE_ID_LEN + 1])
{
	struct store_writer w;
	const char *p = data;
	enum store_status rc = store_writer_begin(st, &w, 0);

	if (rc != STORE_OK)
		return rc;
	while (len > 0) {
		size_t k = len < PUT_CHUNK ? len : PUT_CHUNK;
		rc = store_writer_write(&w, p, k);
		if (rc != STORE_OK) {
			store_writer_abort(&w);
			return rc;
		}
		p += k;
		len -= k;
	}
	return store_writer_commit(&w, id_out);
}

static int too_large(const struct store *st, const struct stat *sb)
{
	return st->max_object_bytes && (uint64_t)sb->st_size > st->max_object_bytes;
}

enum store_status store_open_object(struct store *st, const char *id, int *fd_out, uint64_t *size)
{
	enum store_status rc = check_id(id);
	struct stat sb;
	int fd;

	*fd_out = -1;
	if (rc != STORE_OK)
		return rc;
	/* O_NONBLOCK: a FIFO planted under an object name must not hang us */
	fd = openat(st->dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return STORE_NOT_FOUND;
		if (errno == ELOOP) {
			log_warn("store: %s/%s is a symlink, not an object", st->dir, id);
			return STORE_NOT_FOUND;
		}
		log_error("store: open %s/%s: %s", st->dir, id, strerror(errno));
		return STORE_IO;
	}
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		log_error("store: fstat %s/%s: %s", st->dir, id, strerror(e));
		close(fd);
		errno = e;
		return STORE_IO;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_warn("store: %s/%s is not a regular file", st->dir, id);
		close(fd);
		return STORE_NOT_FOUND;
	}
	/* the store never links an object twice: a second name is a file
	 * linked in from elsewhere (a shared folder's member could), which
	 * must not be read on its behalf, nor given to it (store_share) */
	if (sb.st_nlink != 1 || too_large(st, &sb)) {
		log_warn("store: %s/%s has %ju links and %jd bytes; not an object", st->dir, id,
			 (uintmax_t)sb.st_nlink, (intmax_t)sb.st_size);
		close(fd);
		return STORE_NOT_FOUND;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	*fd_out = fd;
	if (size)
		*size = (uint64_t)sb.st_size;
	return STORE_OK;
}

int store_exists(struct store *st, const char *id)
{
	struct stat sb;

	if (check_id(id) != STORE_OK)
		return 0;
	if (fstatat(st->dirfd, id, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return S_ISREG(sb.st_mode) && sb.st_nlink == 1 && !too_large(st, &sb); /* as store_open_object */
}

static void disown(struct store *st, const char *id);

enum store_status store_remove(struct store *st, const char *id)
{
	enum store_status rc = check_id(id);

	if (rc != STORE_OK)
		return rc;
	if (unlinkat(st->dirfd, id, 0) < 0) {
		if (errno == ENOENT)
			rc = STORE_NOT_FOUND;
		else {
			log_error("store: remove %s/%s: %s", st->dir, id, strerror(errno));
			return STORE_IO;
		}
	}
	/* the object first: a crash in between leaves entries without an
	 * object (store_remove_stale_owners), never an object without them */
	disown(st, id);
	return rc;
}

/* Removes one temp file unless a live writer holds it or it is too fresh.
 * Returns 1 when it removed it. */
static int remove_temp_if_stale(struct store *st, const char *name, time_t now)
{
	struct stat sb;
	int removed = 0;
	/* for writing where it may be: over NFS flock is a lock on the server,
	 * and an exclusive one needs a descriptor open for writing */
	int fd = openat(st->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && (errno == EACCES || errno == EISDIR || errno == ETXTBSY))
		fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0) {
		/* not openable (symlink, vanished): a plain file entry, or nothing */
		if (errno == ELOOP && unlinkat(st->dirfd, name, 0) < 0 && errno != ENOENT)
			log_warn("store: cannot remove %s/%s: %s", st->dir, name, strerror(errno));
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		goto out; /* a writer is still at work */
	if (fstat(fd, &sb) < 0 || (S_ISREG(sb.st_mode) && now - sb.st_mtime < STALE_TEMP_AGE_S))
		goto out;
	if (unlinkat(st->dirfd, name, S_ISDIR(sb.st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
		log_warn("store: cannot remove %s/%s: %s", st->dir, name, strerror(errno));
	else {
		log_info("store: removed stale temp file %s/%s", st->dir, name);
		removed = 1;
	}
out:
	close(fd);
	return removed;
}

/* A fresh DIR on the store directory (the caller closes it), or NULL (logged). */
static DIR *open_dir(struct store *st)
{
	int fd = openat(st->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (fd < 0) {
		log_error("store: cannot reopen %s: %s", st->dir, strerror(errno));
		return NULL;
	}
	d = fdopendir(fd);
	if (!d) {
		log_error("store: fdopendir %s: %s", st->dir, strerror(errno));
		close(fd);
	}
	return d;
}

int store_remove_stale_temps(struct store *st)
{
	struct dirent *de;
	time_t now = time(NULL);
	int n = 0;
	DIR *d = open_dir(st);

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, TMP_PREFIX, TMP_PREFIX_LEN) == 0)
			n += remove_temp_if_stale(st, de->d_name, now);
	}
	closedir(d);
	return n;
}

int store_each_object(struct store *st, void (*fn)(const char *id, uint64_t size, int64_t mtime_s, void *arg),
		      void *arg)
{
	struct dirent *de;
	int n = 0;
	DIR *d = open_dir(st);

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		struct stat sb;
		if (!is_object_name(de->d_name))
			continue;
		if (fstatat(st->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
			continue;
		n++;
		fn(de->d_name, (uint64_t)sb.st_size, (int64_t)sb.st_mtime, arg);
	}
	closedir(d);
	return n;
}

/* --- what replicas share ------------------------------------------------- */

static int64_t mtime_ms(const struct stat *sb)
{
	return (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
}

enum store_status store_touch(struct store *st, const char *id)
{
	enum store_status rc = check_id(id);
	/* the modification time only: UTIME_NOW needs write access or
	 * ownership, never more */
	const struct timespec now[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_NOW}};

	if (rc != STORE_OK)
		return rc;
	if (utimensat(st->dirfd, id, now, AT_SYMLINK_NOFOLLOW) == 0)
		return STORE_OK;
	if (errno == ENOENT)
		return STORE_NOT_FOUND;
	if (errno == EPERM || errno == EACCES)
		log_debug("store: cannot mark %s/%s used: %s", st->dir, id, strerror(errno));
	else
		log_error("store: cannot mark %s/%s used: %s", st->dir, id, strerror(errno));
	return STORE_IO;
}

enum store_status store_last_used(struct store *st, const char *id, int64_t *ms)
{
	enum store_status rc = check_id(id);
	struct stat sb;

	if (rc != STORE_OK)
		return rc;
	/* close-to-open: an open makes an NFS client ask the server for the
	 * attributes, which another client's touch changed */
	int fd = openat(st->dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	int r = fd >= 0 ? fstat(fd, &sb) : fstatat(st->dirfd, id, &sb, AT_SYMLINK_NOFOLLOW);
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		if (e == ENOENT)
			return STORE_NOT_FOUND;
		log_error("store: stat %s/%s: %s", st->dir, id, strerror(e));
		return STORE_IO;
	}
	if (!S_ISREG(sb.st_mode))
		return STORE_NOT_FOUND;
	*ms = mtime_ms(&sb);
	return STORE_OK;
}

/* The name of owner's entry: the hex SHA-256 of the name. */
static void owner_tag(const char *owner, char tag[STORE_ID_LEN + 1])
{
	EVP_MD_CTX *ctx = sha256_new();
	if (EVP_DigestUpdate(ctx, owner, strlen(owner)) != 1)
		log_fatal("store: EVP_DigestUpdate failed");
	final_hex(ctx, tag);
	EVP_MD_CTX_free(ctx);
}

/* .owners as a directory descriptor, or -1 with errno (ENOENT: there is
 * none yet). In a shared folder, whose members may rename what is in it, an
 * unprivileged process takes only one that is its user's and that no one
 * else may write (EPERM, logged). */
static int open_owners(struct store *st)
{
	int fd = openat(st->dirfd, STORE_OWNERS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat sb;

	if (fd < 0 || !st->shared || geteuid() == 0)
		return fd;
	if (fstat(fd, &sb) < 0) {
		log_error("store: fstat %s/%s: %s", st->dir, STORE_OWNERS, strerror(errno));
		close(fd);
		errno = EIO;
		return -1;
	}
	if (sb.st_uid != geteuid() || (sb.st_mode & 022)) {
		log_error("store: %s/%s is not this user's alone (uid %d, mode %o): no object is anyone's own "
			  "until it is", st->dir, STORE_OWNERS, (int)sb.st_uid, (unsigned)(sb.st_mode & 07777));
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

enum store_status store_own(struct store *st, const char *id, const char *owner)
{
	enum store_status rc = check_id(id);
	char tag[STORE_ID_LEN + 1];
	int ofd = -1, idfd = -1, fd = -1;

	if (rc != STORE_OK)
		return rc;
	if (!owner || !owner[0])
		return STORE_BAD_ID;
	owner_tag(owner, tag);
	rc = STORE_IO;
	int made_owners = mkdirat(st->dirfd, STORE_OWNERS, 0700) == 0;
	if (!made_owners && errno != EEXIST)
		goto out;
	if ((ofd = open_owners(st)) < 0)
		goto out;
	int made_id = mkdirat(ofd, id, 0700) == 0;
	if (!made_id && errno != EEXIST)
		goto out;
	if ((idfd = openat(ofd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		goto out;
	fd = openat(idfd, tag, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		rc = STORE_OK; /* had it already: nothing new to make durable */
		goto out;
	}
	/* durable as the object is: its entry, and the directories made for it */
	if (fd < 0 || fsync(idfd) < 0 || (made_id && fsync(ofd) < 0) || (made_owners && fsync(st->dirfd) < 0))
		goto out;
	rc = STORE_OK;
out:
	if (rc != STORE_OK)
		log_error("store: cannot record an owner of %s in %s/%s: %s", id, st->dir, STORE_OWNERS,
			  strerror(errno));
	if (fd >= 0)
		close(fd);
	if (idfd >= 0)
		close(idfd);
	if (ofd >= 0)
		close(ofd);
	return rc;
}

enum store_status store_owned(struct store *st, const char *id, const char *owner, int unowned_too)
{
	char tag[STORE_ID_LEN + 1];
	char path[2 * STORE_ID_LEN + 2];
	struct stat sb;

	if (check_id(id) != STORE_OK || !owner)
		return STORE_NOT_FOUND;
	owner_tag(owner, tag);
	int ofd = open_owners(st);
	if (ofd < 0) {
		if (errno == ENOENT)
			return unowned_too ? STORE_OK : STORE_NOT_FOUND;
		return STORE_IO;
	}
	/* one lookup of <id>/<tag>: another owner's object and an unknown id
	 * take the same steps */
	snprintf(path, sizeof(path), "%s/%s", id, tag);
	enum store_status rc = STORE_OK;
	if (fstatat(ofd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		rc = S_ISREG(sb.st_mode) ? STORE_OK : STORE_NOT_FOUND;
	else if (errno != ENOENT && errno != ENOTDIR)
		rc = STORE_IO;
	else if (unowned_too && fstatat(ofd, id, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		rc = STORE_OK; /* nobody's */
	else
		rc = STORE_NOT_FOUND;
	if (rc == STORE_IO)
		log_error("store: %s/%s/%s: %s", st->dir, STORE_OWNERS, path, strerror(errno));
	close(ofd);
	return rc;
}

/* Removes the entry name of the directory parent: a directory with the
 * files in it, or anything else that is no directory. 0, or -1 (logged). */
static int remove_entry(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if ((errno == ENOTDIR || errno == ELOOP) && (unlinkat(parent, name, 0) == 0 || errno == ENOENT))
			return 0;
		log_warn("store: cannot remove %s/%s: %s", STORE_OWNERS, name, strerror(errno));
		return -1;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		log_warn("store: cannot remove %s/%s: %s", STORE_OWNERS, name, strerror(errno));
		return -1;
	}
	return 0;
}

/* Removes .owners/<id>, if there is one. */
static void disown(struct store *st, const char *id)
{
	int ofd = open_owners(st);
	if (ofd < 0)
		return; /* none (ENOENT), or not to be trusted (logged) */
	(void)remove_entry(ofd, id);
	close(ofd);
}

int store_remove_stale_owners(struct store *st, int64_t cutoff_ms)
{
	int n = 0;
	int ofd = open_owners(st);
	if (ofd < 0)
		return 0;
	int fd = fcntl(ofd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		close(ofd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat sb;
		if (!is_object_name(de->d_name))
			continue;
		if (fstatat(st->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
			continue; /* the object is there (or cannot be told gone) */
		if (fstatat(ofd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || mtime_ms(&sb) >= cutoff_ms)
			continue;
		if (remove_entry(ofd, de->d_name) == 0) {
			log_info("store: removed the owners of %s, an object that is gone", de->d_name);
			n++;
		}
	}
	closedir(d);
	close(ofd);
	return n;
}
