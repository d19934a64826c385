/* files: stored objects as the service uses them (POST/GET /v1/files, a run's
 * inputs and outputs). Owns the order that keeps the store and SQLite
 * consistent with cleanup running beside us: an object is made "used" (its
 * file's modification time, which replicas sharing the store see, and its
 * row's last_used_ms set to now) under the store's shared lock, and only
 * after its file exists; cleanup deletes the row, then the file, under the
 * exclusive lock, and only when both are unused since its cutoff. So a
 * request that has touched an object can rely on it for APP_FILE_TTL, on
 * every replica, and a row of this service's never names a file it removed
 * (another replica's cleanup may remove an object this one did not use
 * within the TTL: its row then names a missing file until its own cleanup).
 * Never parses HTTP. */
#ifndef FILES_H
#define FILES_H

#include <fcgiapp.h>
#include <stdint.h>

#include "app.h"
#include "http.h"
#include "store.h"

/* Opens the store as configured: APP_FILE_STORAGE_PATH, shared with
 * APP_FILE_STORAGE_GROUP when it is set (its lock then in APP_RUN_DIR);
 * master: the process that makes the folder the group's at start (and checks
 * that its path is safe to share). STORE_OK, or the failure (logged). */
enum store_status files_store_open(struct store *st, const struct config *cfg, int master);

/* With API keys an object is the key's that uploaded it or whose run
 * produced it (store_own: recorded in the store, so on every replica): key
 * is the caller's key name, NULL without keys. */

/* Streams len bytes of in into the store (never all in memory), the object
 * the key's from then on. CI_CREATED with id; CI_BAD_REQUEST when the body ends early; CI_TOO_LARGE past
 * APP_MAX_FILE_BYTES; CI_INSUFFICIENT_STORAGE when the disk is full;
 * CI_UNAVAILABLE when the database stays locked; CI_INTERNAL. */
enum ci_status files_upload(struct app *app, const char *key, FCGX_Stream *in, uint64_t len,
			    char id[STORE_ID_LEN + 1]);

/* Marks the object used and gets it: CI_OK with *size and, for an object of
 * at most FILES_WHOLE bytes, its bytes in *data (owned by the caller; checked
 * against the id, for a shared folder's member may have put others under it),
 * else *fd open on it (the caller closes it; its bytes are checked as they
 * are sent, http.c); CI_NOT_FOUND, also when the object is not the key's
 * (files_visible); CI_UNAVAILABLE; CI_INTERNAL. id must be valid. */
#define FILES_WHOLE (1u << 20)
enum ci_status files_open(struct app *app, const char *key, const char *id, int *fd, char **data, uint64_t *size);

/* Whether key may use the object: always without keys; with keys when the
 * key owns it, or, with a shared folder (APP_FILE_STORAGE_GROUP), when no key
 * owns it (a member put it there; every member can read it anyway). CI_OK,
 * CI_NOT_FOUND or CI_INTERNAL. */
enum ci_status files_visible(struct app *app, const char *key, const char *id);

/* True when key may use the object and it exists, in that order: another
 * key's object and an unknown id take the same steps, so the time taken does
 * not tell them apart. Marks nothing. */
int files_usable(struct app *app, const char *key, const char *id);

/* For a run's input, under the store's shared lock: files_usable's checks in
 * its order, then marks its file used (store_touch; the caller records the
 * row's use). CI_OK, CI_NOT_FOUND (as for an unknown id), CI_INTERNAL when
 * the ownership could not be read. */
enum ci_status files_use(struct app *app, const char *key, const char *id);

/* Commits a writer, marks the object used and the key's (see store_writer_commit): CI_OK
 * with id, or the status of the failure (CI_INSUFFICIENT_STORAGE for ENOSPC
 * and EDQUOT, CI_TOO_LARGE, CI_UNAVAILABLE, CI_INTERNAL). The writer is always
 * finished (committed or aborted) on return. */
enum ci_status files_commit(struct app *app, const char *key, struct store_writer *w, char id[STORE_ID_LEN + 1]);

/* The status for a writer that failed with st (after begin or write). */
enum ci_status files_writer_status(const struct store_writer *w, enum store_status st);

#endif
