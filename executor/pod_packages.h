/* pod_packages: a pod's packages directory (`executor serve --packages DIR`,
 * an emptyDir at SBX_INSIDE_PACKAGES): the package cache directories the
 * service delivers for the pod's one run, file by file (PUT /packages/...,
 * docs/executor-protocol.md). Owns the path rule, the size and count limits
 * and making the tree read-only before the code runs; the writing itself is
 * workspace.c's symlink-free walk (WS_READ_ONLY). Never serves a file back,
 * never replaces or removes one. */
#ifndef POD_PACKAGES_H
#define POD_PACKAGES_H

#include <pthread.h>
#include <stdint.h>

#include "workspace.h"

#define PODPKG_MAX_FILES 100000 /* files one pod takes */
#define PODPKG_BLOCK 4096u      /* what a file is charged in: whole blocks, plus one */

enum podpkg_status {
	PODPKG_OK = 0,
	PODPKG_BAD_PATH,  /* not <dir>/<path> by pkg_file_path_valid, a symlink or
			   * non-directory on the way, or the file exists */
	PODPKG_FULL,      /* the size limit (or PODPKG_MAX_FILES) would be passed */
	PODPKG_NO_SPACE,  /* ENOSPC / EDQUOT */
	PODPKG_IO,        /* any other failure (logged) */
};

struct podpkg {
	struct workspace ws; /* the directory, WS_READ_ONLY */
	uint64_t cap;        /* bytes the files may be charged in all */
	uint64_t used;       /* bytes charged so far */
	long files;          /* files begun and not refused or removed */
	pthread_mutex_t lock; /* guards used and files */
};

/* Opens dir (which must exist) with a limit of cap bytes. 0, or -1 (logged). */
int podpkg_open(struct podpkg *p, const char *dir, uint64_t cap);
/* Closes; safe on a zeroed or released podpkg. */
void podpkg_release(struct podpkg *p);

/* Begins the file rel ("<dir>/<path>", already percent-decoded) of size bytes
 * (the request's Content-Length; 0 when unknown: charged as it arrives):
 * checks the path, charges the file (its size in whole PODPKG_BLOCKs, plus
 * one for its share of the directories) into *charged, creates it mode 0444
 * (missing directories 0755), never through a symlink. On PODPKG_OK f holds
 * the open file; finish it with podpkg_commit or podpkg_abort. */
enum podpkg_status podpkg_begin(struct podpkg *p, const char *rel, uint64_t size, struct ws_file *f,
				uint64_t *charged);
/* Charges the file for received bytes in all, when that is more than
 * *charged covers (the body was longer than announced). PODPKG_OK or
 * PODPKG_FULL. */
enum podpkg_status podpkg_charge(struct podpkg *p, uint64_t *charged, uint64_t received);
/* Sets the file's modification time (mtime >= 0, seconds; -1 leaves it) and
 * closes it. PODPKG_OK, or PODPKG_IO: the file is removed then and what it
 * was charged (charged) given back. */
enum podpkg_status podpkg_commit(struct podpkg *p, struct ws_file *f, int64_t mtime, uint64_t charged);
/* Removes a file not committed and gives back what it was charged; safe when
 * nothing is open. */
void podpkg_abort(struct podpkg *p, struct ws_file *f, uint64_t charged);

/* Makes every directory below the packages directory 0555 (files are 0444
 * already), walking without following symlinks or leaving its file system.
 * Called once the execution starts, when no more files come. */
void podpkg_seal(struct podpkg *p);

#endif
