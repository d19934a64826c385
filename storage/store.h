/* store: the content-addressed object store (APP_FILE_STORAGE_PATH).
 * Owns the files under the store directory: each object is one file named by the
 * lowercase hex SHA-256 of its content, written to a temporary name, fsynced and
 * renamed, mode 0444. It never modifies or truncates an object once it exists. */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_ID_LEN 64 /* hex SHA-256, without the NUL */

enum store_status {
	STORE_OK = 0,
	STORE_NOT_FOUND, /* no object with that id */
	STORE_BAD_ID,    /* id does not match ^[0-9a-zA-Z_-]{1,255}$ */
	STORE_TOO_LARGE, /* a writer went over its max_bytes */
	STORE_IO,        /* the file system failed; errno is kept */
};

struct store {
	char *dir; /* owned; absolute path of the store directory */
	int dirfd; /* owned; O_DIRECTORY|O_PATH-free handle on dir */
	int lockfd; /* owned; the store's lock file (.lock), opened by store_open: each
		     * process opens its own store, a lock is per open file */
};

/* Opens (and creates, mode 0700) the store directory and its lock file.
 * Returns STORE_OK or STORE_IO. */
enum store_status store_open(struct store *st, const char *dir);
/* Releases what store_open acquired; safe on a zeroed or closed store. */
void store_close(struct store *st);

/* True when id (NUL-terminated, may be NULL) passes valid_object_id (the API's
 * object id rule, common/validate.h). */
int store_id_valid(const char *id);

/* Stores len bytes; writes the object's id (64 hex chars + NUL) to id_out.
 * Same content gives the same id; an existing object is left untouched. */
enum store_status store_put(struct store *st, const void *data, size_t len,
			    char id_out[STORE_ID_LEN + 1]);

/* Streaming writer for content that arrives in pieces (uploads, downloads from
 * a sandbox). begin opens a temp file; write appends (STORE_TOO_LARGE past
 * max_bytes, 0 = no cap); commit hashes, fsyncs, renames and fills id_out;
 * abort (also safe after commit or on a zeroed writer) removes the temp file. */
struct store_writer {
	struct store *st;  /* borrowed */
	int fd;            /* -1 when not open */
	char tmpname[64];  /* name of the temp file inside the store dir */
	void *sha;         /* owned EVP_MD_CTX * */
	uint64_t size;
	uint64_t max_bytes;
	int error;         /* errno of the last failed write or commit (ENOSPC...), else 0 */
};
enum store_status store_writer_begin(struct store *st, struct store_writer *w, uint64_t max_bytes);
enum store_status store_writer_write(struct store_writer *w, const void *data, size_t len);
enum store_status store_writer_commit(struct store_writer *w, char id_out[STORE_ID_LEN + 1]);
void store_writer_abort(struct store_writer *w);

/* Opens an object read-only (O_NOFOLLOW); fills *size. The caller closes *fd_out.
 * STORE_BAD_ID for an invalid id, STORE_NOT_FOUND when absent. */
enum store_status store_open_object(struct store *st, const char *id, int *fd_out, uint64_t *size);

/* True when an object with this (valid) id exists. */
int store_exists(struct store *st, const char *id);

/* Removes one object (cleanup). STORE_NOT_FOUND when it was not there. */
enum store_status store_remove(struct store *st, const char *id);

/* Removes temp files left by a crash (names starting with ".tmp-"); returns
 * how many it removed. */
int store_remove_stale_temps(struct store *st);

/* The store lock (flock on <dir>/.lock) orders object lifetimes between
 * processes: whoever makes an object used (a writer committing and touching
 * its row, a reader touching an input) holds it shared; cleanup holds it
 * exclusive while it deletes rows and files. 0, or -1 (logged; the caller
 * goes on without it). */
int store_lock_shared(struct store *st);
int store_lock_exclusive(struct store *st);
void store_unlock(struct store *st);

/* Calls fn for every file named like an object (64 lowercase hex chars) with
 * its size and modification time; returns how many were seen, -1 on error. */
int store_each_object(struct store *st, void (*fn)(const char *id, uint64_t size, int64_t mtime_s, void *arg),
		      void *arg);

#endif
