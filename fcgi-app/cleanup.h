/* cleanup: retention. Removes file objects unused for APP_FILE_TTL (row first,
 * then file, under the store's exclusive lock; never an input of a run in
 * flight: see files.h), execution records older than APP_AUDIT_RETENTION,
 * temp files a crash left in the store, object files without a row (a crash
 * between a cleanup's row delete and its unlink, or another replica's
 * objects) and ownership entries of objects that are gone. "Unused" is
 * decided by the row and by the object file's modification time, which
 * every replica sharing the store sets on each use: an object whose row
 * expired but whose file another replica used since is kept, its row
 * renewed from the file. Runs in a child of the master every
 * APP_CLEANUP_INTERVAL, or once by `code-interpreter cleanup`. The child
 * also checkpoints the database's WAL every second (db.h). */
#ifndef CLEANUP_H
#define CLEANUP_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "db.h"
#include "store.h"

struct cleanup_report {
	int objects;        /* expired objects removed (row and file) */
	uint64_t bytes;     /* their size */
	int executions;     /* execution records removed */
	int temps;          /* stale temp files removed */
	int orphans;        /* object files without a row removed */
	int owners;         /* ownership entries of objects that are gone, removed */
	int renewed;        /* expired rows kept: another replica used the file since */
};

/* One pass at time now_ms. 0, or -1 when it stopped early (database locked or
 * failing; what was removed so far is in r). */
int cleanup_pass(const struct config *cfg, struct db *db, struct store *st, int64_t now_ms,
		 struct cleanup_report *r);

/* The cleanup process: a pass every cfg->cleanup_interval seconds until
 * SIGTERM; counts removals on the scoreboard. Returns the exit status. */
int cleanup_run(const struct config *cfg);

/* `code-interpreter cleanup`: one pass, a summary on out. Exit status. */
int cleanup_once(const struct config *cfg, FILE *out);

#endif
