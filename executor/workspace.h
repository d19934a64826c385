/* workspace: the executor's view of /workspace. Owns the
 * symlink-free walk (openat with O_NOFOLLOW, component by component), PUT file
 * writes, and the list of regular files a run created or changed. It never
 * follows a symlink, never opens anything but a regular file or a directory. */
#ifndef WORKSPACE_H
#define WORKSPACE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WS_PREFIX "/workspace/"  /* how listed paths start, whatever the real dir */
#define WS_MAX_FILES 10000       /* at most this many paths in one listing */
#define WS_MAX_DEPTH 64          /* directories deeper than this are not walked */

enum ws_status {
	WS_OK = 0,
	WS_BAD_PATH,    /* invalid path, or a non-directory / symlink on the way */
	WS_NOT_FOUND,
	WS_NO_SPACE,    /* ENOSPC / EDQUOT */
	WS_IO,          /* any other failure (logged) */
};

struct ws_entry;

/* ws_open's flags */
#define WS_CHOWN 1u      /* chown what PUT creates to uid/gid 1000 */
#define WS_READ_ONLY 2u  /* files are created 0444 and never replace one that
			  * exists; their identities are not recorded (a pod's
			  * packages directory, pod_packages.h) */

struct workspace {
	int rootfd;
	dev_t dev;
	unsigned flags;           /* WS_CHOWN, WS_READ_ONLY */
	struct ws_entry *known;   /* identities recorded at start and by PUT */
	size_t nknown, capknown;
	pthread_mutex_t lock;     /* guards known */
};

/* A file being written by PUT. */
struct ws_file {
	int fd;                   /* -1 when none */
	int dirfd;
	char *leaf;
	char *rel;
};

/* Opens dir as the workspace, with flags (WS_CHOWN, WS_READ_ONLY). 0, or -1
 * (logged). */
int ws_open(struct workspace *ws, const char *dir, unsigned flags);
/* Closes and frees; safe on a zeroed or released workspace. */
void ws_release(struct workspace *ws);

/* Paths (rel, without "/workspace/") are checked with valid_workspace_rel
 * (common/validate.h): the rule the service checks too. */

/* Records the identity of every regular file now in the workspace (so that a
 * later listing reports only what changed). 0 or -1. */
int ws_snapshot(struct workspace *ws);

/* Opens rel for writing (creating missing directories, mode 0755; the file gets
 * mode 0644, truncated; with WS_READ_ONLY mode 0444, and WS_BAD_PATH when it
 * exists). On WS_OK f holds the open file; finish it with ws_file_commit or
 * ws_file_abort. */
enum ws_status ws_file_create(struct workspace *ws, const char *rel, struct ws_file *f);
/* Appends len bytes. WS_OK, WS_NO_SPACE or WS_IO. */
enum ws_status ws_file_write(struct ws_file *f, const void *buf, size_t len);
/* Records the file's identity (unless WS_READ_ONLY) and closes it. WS_OK or
 * WS_IO. */
enum ws_status ws_file_commit(struct workspace *ws, struct ws_file *f);
/* Removes the half-written file and closes it; safe when nothing is open. */
void ws_file_abort(struct ws_file *f);

/* Opens the regular file rel for reading (no symlink anywhere, O_NONBLOCK).
 * Returns the fd and sets *size, or -1 when rel is not a regular file there. */
int ws_open_read(struct workspace *ws, const char *rel, uint64_t *size);

/* Lists regular files that are new or whose identity differs from the record,
 * as sorted WS_PREFIX-prefixed paths (valid UTF-8 names only): those directly
 * in the workspace (upstream's rule, which clients rely on), and with
 * subdirectories also those below it. The caller frees each string and the
 * array. 0 or -1. */
int ws_list_changed(struct workspace *ws, int subdirectories, char ***paths, size_t *n);

#endif
