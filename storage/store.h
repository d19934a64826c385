/* store: the content-addressed object store (APP_FILE_STORAGE_PATH).
 * Owns the files under the store directory: each object is one file named by the
 * lowercase hex SHA-256 of its content, written to a temporary name, fsynced and
 * renamed, mode 0444. It never modifies or truncates an object once it exists.
 * Replicas may share the folder, each with its own database: an object's
 * last use and its owners live in the folder (see "what replicas share").
 * The folder may be shared with a group of client processes (store_share),
 * which then write objects too (the clients' LocalPythonStorage): whoever reads
 * an object for a run or a download checks its bytes against its name as they
 * pass (store_check), and never passes on bytes that do not match. */
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
	STORE_CHANGED,   /* an object's bytes do not hash to its id (store_check) */
};

struct store {
	char *dir; /* owned; absolute path of the store directory */
	int shared; /* store_share was called: objects are the folder owner's, group-writable */
	uid_t share_uid; /* the folder's owner, when shared */
	gid_t share_gid; /* the group it is shared with */
	int dirfd; /* owned; O_DIRECTORY|O_PATH-free handle on dir */
	int real_path; /* the path store_open was given has no symlink */
	uint64_t max_object_bytes; /* 0, or larger files are no objects (APP_MAX_FILE_BYTES:
				    * a shared folder's member may put a giant there) */
	int lockfd; /* owned; the store's lock file (.lock), opened by store_open: each
		     * process opens its own store, a lock is per open file */
	/* NULL, or for a process that may not chown (an unprivileged worker):
	 * a shared store's writer asks it to give its temp file tmpname the
	 * folder's owner and group, mode 0660 (store_give_temp, on the root
	 * side), instead of doing that itself. 0, or -1 with errno. */
	int (*give)(const char *tmpname, void *arg);
	void *give_arg; /* borrowed; give's arg */
};

/* Opens (and creates, mode 0700) the store directory and its lock file.
 * Returns STORE_OK or STORE_IO. */
enum store_status store_open(struct store *st, const char *dir);
/* The same with the lock file at lock_path instead of <dir>/.lock (a shared
 * folder's: a file of the service's own, store_share). */
enum store_status store_open_locked(struct store *st, const char *dir, const char *lock_path);
/* Releases what store_open acquired; safe on a zeroed or closed store. */
void store_close(struct store *st);

/* Shares the folder with the group named by group (a name or a number;
 * APP_FILE_STORAGE_GROUP): the directory becomes that group's, mode 02770
 * (setgid: what clients write is the group's too), and the objects this
 * store writes from now on belong to the folder's owner and the group, mode
 * 0660. With fix_existing (the master, at start) objects already there get
 * the same. A client's LocalPythonStorage (node's fs.copyFile) copies over
 * existing objects and gives them its source's mode, which only a file's
 * owner may do: the folder's owner is meant to be the client's user. Nothing
 * a client writes is trusted (store_check). The lock (store_lock_shared)
 * moves to lock_path, a file of the service's own: in the folder, a member
 * could take it. With fix_existing the folder's path must be its real one,
 * every directory above it root's and writable by root alone (or sticky, as
 * /tmp): else a member could put another directory in the folder's place for
 * the service to give the group. STORE_OK, STORE_BAD_ID when there is no such
 * group or the path is not safe, STORE_IO (logged). */
enum store_status store_share(struct store *st, const char *group, const char *lock_path, int fix_existing);

/* The root side of give (above), for a shared store: the temp file name
 * (".tmp-" and 32 lowercase hex digits, as a writer names it) must be a
 * regular file with one link that uid (the asking writer's) owns; it then
 * gets the folder's owner and group, mode 0660. Opened without following
 * symlinks, changed through that descriptor. STORE_OK; STORE_BAD_ID when the
 * name or the file is not such (nothing changed); STORE_IO. */
enum store_status store_give_temp(struct store *st, const char *name, uid_t uid);

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
 * STORE_BAD_ID for an invalid id, STORE_NOT_FOUND when absent, or when the file
 * is no object: not regular, a second link, larger than max_object_bytes. */
enum store_status store_open_object(struct store *st, const char *id, int *fd_out, uint64_t *size);

/* Checks bytes read from an object against its name as they go by: begin
 * with the object's id and size, then feed each piece before passing it on.
 * store_check_update answers STORE_OK while the bytes may still be the
 * object's, and for the piece that completes them only when all of them hash
 * to the id; STORE_CHANGED when they do not (give the caller's reader nothing
 * more: the last piece is the one that completes the hash) or when more than
 * size bytes are fed. An empty object is checked by begin. */
struct store_check {
	void *sha;          /* owned EVP_MD_CTX * */
	uint64_t left;      /* bytes still expected */
	char id[STORE_ID_LEN + 1];
};
enum store_status store_check_begin(struct store_check *c, const char *id, uint64_t size);
/* The whole check at once on size bytes of fd from offset 0 (pread: the
 * offset is left alone), copied to copy (size bytes) unless it is NULL:
 * STORE_OK or STORE_CHANGED. */
enum store_status store_check_fd(int fd, const char *id, uint64_t size, void *copy);
enum store_status store_check_update(struct store_check *c, const void *data, size_t len);
void store_check_end(struct store_check *c);

/* True when an object with this (valid) id exists. */
int store_exists(struct store *st, const char *id);

/* Removes one object (cleanup), then its ownership entries (store_own).
 * STORE_NOT_FOUND when it was not there. */
enum store_status store_remove(struct store *st, const char *id);

/* --- what replicas share -------------------------------------------------
 * Several services (replicas) may share one store folder, each with its own
 * database. What they must all see lives in the folder: an object's last use
 * is its file's modification time, and which API keys may see it are its
 * ownership entries, <dir>/.owners/<id>/<owner tag> (empty files; the tag is
 * the lowercase hex SHA-256 of the key's name, so any name is a safe file
 * name). .owners and the directories in it are 0700: a shared folder's
 * group cannot write them. No scan of objects or temp files looks at them. */
#define STORE_OWNERS ".owners"

/* The object was used now: its file's modification time becomes now
 * (utimensat through the store's directory, no symlink followed; on a
 * network volume the server's clock). STORE_OK; STORE_BAD_ID;
 * STORE_NOT_FOUND when there is no such file; STORE_IO when it may not be
 * changed (a file a shared folder's member made with its own mode: logged
 * at debug) or the file system failed (logged). */
enum store_status store_touch(struct store *st, const char *id);

/* The object file's modification time in unix milliseconds into *ms, read
 * after a fresh open where the file may be opened (a network file system
 * revalidates on open what another client changed). STORE_OK,
 * STORE_NOT_FOUND (no such regular file), STORE_BAD_ID, STORE_IO (logged). */
enum store_status store_last_used(struct store *st, const char *id, int64_t *ms);

/* Records that owner (a key's name, not empty) has the object: its entry
 * made durable when new. STORE_OK; STORE_NOT_FOUND for an id that can name
 * no object; STORE_BAD_ID; STORE_IO (logged). */
enum store_status store_own(struct store *st, const char *id, const char *owner);

/* Whether owner may see the object: STORE_OK when owner has it, or when
 * unowned_too and nobody has it (no .owners/<id>); else STORE_NOT_FOUND
 * (also for a bad id). In a shared folder (store_share) an .owners that is
 * not this process's user's alone is refused (STORE_IO, logged): a member
 * could have put it there. STORE_IO when the file system fails. */
enum store_status store_owned(struct store *st, const char *id, const char *owner, int unowned_too);

/* Removes the ownership entries of objects that are gone (a crash between
 * an object's removal and its entries') and have not changed since
 * before cutoff_ms; returns how many objects' entries it removed. */
int store_remove_stale_owners(struct store *st, int64_t cutoff_ms);

/* Removes temp files left by a crash (names starting with ".tmp-"); returns
 * how many it removed. */
int store_remove_stale_temps(struct store *st);

/* The store lock (flock on <dir>/.lock) orders object lifetimes between
 * processes: whoever makes an object used (a writer committing and touching
 * its row, a reader touching an input) holds it shared; cleanup holds it
 * exclusive while it deletes rows and files. Replicas sharing the folder
 * share <dir>/.lock too (over NFS v4 a flock is a lock on the server). 0, or
 * -1 (logged; the caller goes on without it). */
int store_lock_shared(struct store *st);
int store_lock_exclusive(struct store *st);
void store_unlock(struct store *st);

/* Calls fn for every file named like an object (64 lowercase hex chars) with
 * its size and modification time; returns how many were seen, -1 on error. */
int store_each_object(struct store *st, void (*fn)(const char *id, uint64_t size, int64_t mtime_s, void *arg),
		      void *arg);

#endif
