/* pod_packages: see pod_packages.h. */
#include "pod_packages.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "package_names.h"

#define SEAL_MAX_DEPTH 128

int podpkg_open(struct podpkg *p, const char *dir, uint64_t cap)
{
	memset(p, 0, sizeof(*p));
	if (ws_open(&p->ws, dir, WS_READ_ONLY) < 0)
		return -1;
	p->cap = cap;
	pthread_mutex_init(&p->lock, NULL);
	return 0;
}

void podpkg_release(struct podpkg *p)
{
	if (!p || p->ws.rootfd <= 0)
		return;
	ws_release(&p->ws);
	pthread_mutex_destroy(&p->lock);
}

/* What a file of size bytes is charged. */
static uint64_t cost(uint64_t size)
{
	return (size / PODPKG_BLOCK + (size % PODPKG_BLOCK != 0) + 1) * PODPKG_BLOCK;
}

/* Takes n more bytes of the limit. 1, or 0 when they would pass it. */
static int take(struct podpkg *p, uint64_t n)
{
	pthread_mutex_lock(&p->lock);
	int ok = n <= p->cap - p->used;
	if (ok)
		p->used += n;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* Gives back n bytes of the limit and one file: a file that was refused or
 * removed counts against neither. */
static void give_back(struct podpkg *p, uint64_t n)
{
	pthread_mutex_lock(&p->lock);
	p->used -= n <= p->used ? n : p->used;
	p->files -= p->files > 0;
	pthread_mutex_unlock(&p->lock);
}

enum podpkg_status podpkg_begin(struct podpkg *p, const char *rel, uint64_t size, struct ws_file *f,
				uint64_t *charged)
{
	f->fd = f->dirfd = -1;
	f->leaf = f->rel = NULL;
	*charged = 0;
	if (!pkg_file_path_valid(rel, strlen(rel)))
		return PODPKG_BAD_PATH;
	pthread_mutex_lock(&p->lock);
	int too_many = p->files >= PODPKG_MAX_FILES;
	if (!too_many)
		p->files++;
	pthread_mutex_unlock(&p->lock);
	if (too_many)
		return PODPKG_FULL;
	uint64_t c = size > p->cap ? p->cap + 1 : cost(size);
	if (!take(p, c)) {
		give_back(p, 0);
		return PODPKG_FULL;
	}
	enum ws_status st = ws_file_create(&p->ws, rel, f);
	if (st != WS_OK) {
		give_back(p, c);
		return st == WS_NO_SPACE ? PODPKG_NO_SPACE : st == WS_IO ? PODPKG_IO : PODPKG_BAD_PATH;
	}
	*charged = c;
	return PODPKG_OK;
}

enum podpkg_status podpkg_charge(struct podpkg *p, uint64_t *charged, uint64_t received)
{
	uint64_t need = received > p->cap ? p->cap + 1 : cost(received);
	if (need <= *charged)
		return PODPKG_OK;
	if (!take(p, need - *charged))
		return PODPKG_FULL;
	*charged = need;
	return PODPKG_OK;
}

void podpkg_abort(struct podpkg *p, struct ws_file *f, uint64_t charged)
{
	if (f->fd < 0)
		return;
	ws_file_abort(f);
	give_back(p, charged);
}

enum podpkg_status podpkg_commit(struct podpkg *p, struct ws_file *f, int64_t mtime, uint64_t charged)
{
	if (mtime >= 0) {
		struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = (time_t)mtime}};
		if (futimens(f->fd, t) < 0) {
			log_warn("packages: setting the time of %s: %s", f->rel, strerror(errno));
			podpkg_abort(p, f, charged);
			return PODPKG_IO;
		}
	}
	if (ws_file_commit(&p->ws, f) != WS_OK) { /* removed it */
		give_back(p, charged);
		return PODPKG_IO;
	}
	return PODPKG_OK;
}

/* Makes the directory fd (open, on dev) and every directory below it 0555. */
static void seal_dir(int fd, dev_t dev, int depth)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_dev != dev)
		return;
	if (depth >= SEAL_MAX_DEPTH) {
		log_warn("packages: a directory deeper than %d levels stays writable", SEAL_MAX_DEPTH);
		return;
	}
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
	if (!d) {
		if (copy >= 0)
			close(copy);
		log_warn("packages: sealing: %s", strerror(errno));
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
			continue;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue; /* not a directory (or a symlink): nothing to seal */
		seal_dir(sub, dev, depth + 1);
		close(sub);
	}
	closedir(d);
	/* the walk is done: without write bits it is still readable and searchable */
	if (depth > 0 && fchmod(fd, 0555) < 0)
		log_warn("packages: sealing a directory: %s", strerror(errno));
}

void podpkg_seal(struct podpkg *p)
{
	if (p->ws.rootfd <= 0)
		return;
	/* the packages directory itself is the emptyDir's mount point (the
	 * kubelet's, 0777): only what was delivered into it is sealed */
	seal_dir(p->ws.rootfd, p->ws.dev, 0);
}
