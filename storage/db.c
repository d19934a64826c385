/* db: the SQLite record (see db.h). Owns the connection, the migration runner
 * and every SQL statement of the service; statements are prepared once per
 * connection and always bound, never formatted. */
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 5000
#define MIGRATION_MAX_BYTES (16u << 20)
#define OBJECT_ID_MAX 256 /* object ids are at most 255 characters */

enum stmt_id {
	ST_USER_VERSION,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_OBJECT_TOUCH,
	ST_EXEC_INSERT,
	ST_EXEC_FILE_INSERT,
	ST_SBX_INSERT,
	ST_SBX_SET_STATE,
	ST_SBX_CLAIM,
	ST_SBX_COUNT,
	ST_SBX_EACH,
	ST_SBX_DELETE,
	ST_SBX_DELETE_ALL,
	ST_SBX_SET_READY,
	ST_SBX_ENDPOINT,
	ST_OBJECT_KNOWN,
	ST_OBJECT_STATS,
	ST_OBJECTS_EXPIRED,
	ST_OBJECT_DELETE_EXPIRED,
	ST_OBJECT_USE,
	ST_EXEC_FINISH,
	ST_EXEC_INTERRUPT,
	ST_EXEC_INTERRUPT_ALL,
	ST_EXEC_DELETE_BEFORE,
	ST_PKG_INSERT,
	ST_PKG_DIST_FIND,
	ST_PKG_DIST_GET,
	ST_PKG_DIST_TOUCH,
	ST_PKG_USE_INSERT,
	ST_PKG_DIST_INSERT,
	ST_PKG_DISTS_SIZE,
	ST_PKG_EVICT_CANDIDATE,
	ST_PKG_EVICTION_RECORD,
	ST_PKG_DIST_DELETE,
	ST_PKG_EVICTION_ORPHAN,
	ST_PKG_DIST_EACH,
	ST_COUNT_
};

static const char *const stmt_sql[ST_COUNT_] = {
	[ST_USER_VERSION] = "PRAGMA user_version",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_OBJECT_TOUCH] =
		"INSERT INTO file_objects (id, size, created_ms, last_used_ms) VALUES (?1, ?2, ?3, ?3)"
		" ON CONFLICT (id) DO UPDATE SET"
		" last_used_ms = max(last_used_ms, excluded.last_used_ms),"
		/* a caller that does not know the size passes 0; never shrink */
		" size = max(size, excluded.size)",
	[ST_EXEC_INSERT] =
		"INSERT INTO executions (id, kind, started_ms, finished_ms, exit_code, status,"
		" source_code, env_names, stdout_bytes, stderr_bytes, sandbox, error, api_key)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[ST_EXEC_FILE_INSERT] =
		"INSERT INTO execution_files (execution_id, direction, path, object_id)"
		" VALUES (?1, ?2, ?3, ?4)",
	[ST_SBX_INSERT] =
		"INSERT INTO sandboxes (id, pid, state, claimer, created_ms, updated_ms)"
		" VALUES (?1, ?2, 'starting', NULL, ?3, ?3)",
	[ST_SBX_SET_STATE] =
		"UPDATE sandboxes SET state = ?2, updated_ms = ?3 WHERE id = ?1",
	/* one statement, so one write transaction: two claimers never get the same row */
	[ST_SBX_CLAIM] =
		"UPDATE sandboxes SET state = 'claimed', claimer = ?1, updated_ms = ?2"
		" WHERE id = (SELECT id FROM sandboxes WHERE state = 'ready'"
		"             ORDER BY created_ms, rowid LIMIT 1)"
		" RETURNING id",
	[ST_SBX_COUNT] =
		"SELECT count(*) FROM sandboxes WHERE ?1 IS NULL OR state = ?1",
	[ST_SBX_EACH] =
		"SELECT id, pid, state, coalesce(claimer, 0), updated_ms FROM sandboxes"
		" WHERE ?1 IS NULL OR state = ?1 ORDER BY created_ms, rowid",
	[ST_SBX_DELETE] = "DELETE FROM sandboxes WHERE id = ?1",
	[ST_SBX_DELETE_ALL] = "DELETE FROM sandboxes",
	[ST_SBX_SET_READY] =
		"UPDATE sandboxes SET state = 'ready', endpoint = ?2, updated_ms = ?3"
		" WHERE id = ?1 AND state = 'starting'",
	[ST_SBX_ENDPOINT] = "SELECT endpoint FROM sandboxes WHERE id = ?1",
	[ST_OBJECT_KNOWN] = "SELECT 1 FROM file_objects WHERE id = ?1",
	[ST_OBJECT_STATS] = "SELECT count(*), coalesce(sum(size), 0) FROM file_objects",
	[ST_OBJECTS_EXPIRED] =
		"SELECT id, size FROM file_objects WHERE last_used_ms < ?1 AND id > ?2"
		" ORDER BY id LIMIT ?3",
	/* an input of a run in flight is never deleted, whatever its age */
	[ST_OBJECT_DELETE_EXPIRED] =
		"DELETE FROM file_objects WHERE id = ?1 AND last_used_ms < ?2 AND NOT EXISTS"
		" (SELECT 1 FROM execution_files f JOIN executions e ON e.id = f.execution_id"
		"  WHERE f.object_id = ?1 AND f.direction = 'input' AND e.status = 'running')",
	/* a run's input: known objects get fresh, unknown ones a row (size 0 = unknown) */
	[ST_OBJECT_USE] =
		"INSERT INTO file_objects (id, size, created_ms, last_used_ms) VALUES (?1, 0, ?2, ?2)"
		" ON CONFLICT (id) DO UPDATE SET last_used_ms = max(last_used_ms, excluded.last_used_ms)",
	[ST_EXEC_FINISH] =
		"UPDATE executions SET finished_ms = ?2, exit_code = ?3, status = ?4, stdout_bytes = ?5,"
		" stderr_bytes = ?6, sandbox = ?7, error = ?8 WHERE id = ?1",
	[ST_EXEC_INTERRUPT] =
		"UPDATE executions SET status = 'interrupted', finished_ms = ?3, error = ?2"
		" WHERE id = ?1 AND status = 'running'",
	[ST_EXEC_INTERRUPT_ALL] =
		"UPDATE executions SET status = 'interrupted', finished_ms = ?1,"
		" error = 'the service stopped before the run finished' WHERE status = 'running'",
	[ST_EXEC_DELETE_BEFORE] =
		"DELETE FROM executions WHERE id IN (SELECT id FROM executions"
		" WHERE started_ms < ?1 AND status <> 'running' ORDER BY started_ms LIMIT ?2)",
	[ST_PKG_INSERT] =
		"INSERT INTO package_installs (package, requirement, module, version, status, started_ms,"
		" duration_ms, log_tail, execution_id, dir) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	/* a bare name only what was installed for a bare name (never another
	 * client's pin or range); a pin that version of those or of pins; any
	 * other requirement only what was installed for exactly it */
	[ST_PKG_DIST_FIND] =
		"SELECT dir, package, version, requirement, kind, metadata, size_bytes, installed_ms, last_used_ms"
		" FROM package_dists WHERE package = ?1 AND CASE ?2"
		"  WHEN 'latest' THEN kind = 'latest'"
		"  WHEN 'pin' THEN kind IN ('latest', 'pin') AND version = ?3"
		"  ELSE kind = 'requirement' AND requirement = ?3 END"
		" ORDER BY installed_ms DESC, rowid DESC LIMIT 1",
	[ST_PKG_DIST_GET] =
		"SELECT dir, package, version, requirement, kind, metadata, size_bytes, installed_ms, last_used_ms"
		" FROM package_dists WHERE dir = ?1",
	[ST_PKG_DIST_TOUCH] =
		"UPDATE package_dists SET last_used_ms = max(last_used_ms, ?2) WHERE dir = ?1",
	[ST_PKG_USE_INSERT] =
		"INSERT OR IGNORE INTO execution_packages (execution_id, dir) VALUES (?1, ?2)",
	[ST_PKG_DIST_INSERT] =
		"INSERT INTO package_dists (dir, package, version, requirement, kind, metadata,"
		" size_bytes, installed_ms, last_used_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
	[ST_PKG_DISTS_SIZE] = "SELECT coalesce(sum(size_bytes), 0) FROM package_dists",
	/* what no running execution has on its sys.path, least recently used first */
	[ST_PKG_EVICT_CANDIDATE] =
		"SELECT dir FROM package_dists d WHERE NOT EXISTS"
		" (SELECT 1 FROM execution_packages p JOIN executions e ON e.id = p.execution_id"
		"  WHERE p.dir = d.dir AND e.status = 'running')"
		" ORDER BY last_used_ms, installed_ms, rowid LIMIT 1",
	[ST_PKG_EVICTION_RECORD] =
		"INSERT INTO package_evictions (dir, package, version, size_bytes, last_used_ms, evicted_ms, reason)"
		" SELECT dir, package, version, size_bytes, last_used_ms, ?2, ?3 FROM package_dists d"
		" WHERE dir = ?1 AND (?4 OR NOT EXISTS"
		" (SELECT 1 FROM execution_packages p JOIN executions e ON e.id = p.execution_id"
		"  WHERE p.dir = d.dir AND e.status = 'running'))",
	[ST_PKG_DIST_DELETE] = "DELETE FROM package_dists WHERE dir = ?1",
	[ST_PKG_EVICTION_ORPHAN] =
		"INSERT INTO package_evictions (dir, evicted_ms, reason) VALUES (?1, ?2, 'orphan')",
	[ST_PKG_DIST_EACH] = "SELECT dir FROM package_dists ORDER BY dir",
};

struct db {
	sqlite3 *h;
	char *path;
	sqlite3_stmt *stmt[ST_COUNT_];
	struct timespec busy_since; /* first try of the lock being waited for */
	/* db_checkpoint: the WAL was started over by this connection, when the
	 * database stood at this version and this count of our own changes */
	int restarted;
	int64_t restart_version, restart_changes;
};

/* SQLite's own busy handler sleeps 1, 2, 5, 10, 15 ms... between tries: more
 * than a whole execution takes here, where a write transaction holds the lock
 * for a fraction of a millisecond (and the pool manager and the workers take
 * turns at it all the time). Ours sleeps 50 us, doubling up to 2 ms, until
 * BUSY_TIMEOUT_MS have passed since the first try. */
static int busy_wait(void *arg, int tries)
{
	struct db *db = arg;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (tries == 0)
		db->busy_since = now;
	else if ((now.tv_sec - db->busy_since.tv_sec) * 1000 +
			 (now.tv_nsec - db->busy_since.tv_nsec) / 1000000 >= BUSY_TIMEOUT_MS)
		return 0;
	long us = tries < 6 ? 50L << tries : 2000L;
	struct timespec ts = {0, (us > 2000 ? 2000 : us) * 1000L};
	nanosleep(&ts, NULL);
	return 1;
}

static void log_db(struct db *db, const char *what)
{
	log_error("db: %s: %s (%s)", what, sqlite3_errmsg(db->h), db->path);
}

/* Returns the prepared statement for id, reset and with no bindings; NULL on
 * failure (logged). Statements live until db_close. */
static sqlite3_stmt *stmt(struct db *db, enum stmt_id id)
{
	sqlite3_stmt *s = db->stmt[id];

	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return s;
	}
	if (sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		log_error("db: prepare \"%s\": %s", stmt_sql[id], sqlite3_errmsg(db->h));
		sqlite3_finalize(s);
		return NULL;
	}
	db->stmt[id] = s;
	return s;
}

/* Steps s to completion (no rows expected); resets it. SQLITE_DONE or an error code. */
static int run(struct db *db, sqlite3_stmt *s, const char *what)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		log_db(db, what);
	sqlite3_reset(s);
	return rc;
}

/* Maps a step result to a status: SQLITE_BUSY/LOCKED (after the busy
 * timeout) is DB_BUSY, so callers can answer 503 instead of 500. */
static enum db_status status_of(int rc)
{
	if (rc == SQLITE_DONE || rc == SQLITE_OK)
		return DB_OK;
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return DB_BUSY;
	return DB_ERROR;
}

/* Runs a bound INSERT/UPDATE/DELETE: DB_NOT_FOUND when it changed no row. */
static enum db_status run_change(struct db *db, sqlite3_stmt *s, const char *what)
{
	int rc = run(db, s, what);
	if (rc != SQLITE_DONE)
		return status_of(rc);
	return sqlite3_changes(db->h) > 0 ? DB_OK : DB_NOT_FOUND;
}

/* Runs one of the argument-less statements (BEGIN, COMMIT, ROLLBACK). */
static enum db_status simple(struct db *db, enum stmt_id id)
{
	sqlite3_stmt *s = stmt(db, id);

	if (!s)
		return DB_ERROR;
	return status_of(run(db, s, stmt_sql[id]));
}

static void rollback(struct db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		(void)simple(db, ST_ROLLBACK);
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

/* Runs a pragma whose one-row answer is text; copies it into out. */
static int pragma_text(struct db *db, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *s = NULL;
	int ok = 0;

	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK) {
		log_db(db, sql);
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		log_db(db, sql);
		goto out;
	}
	const unsigned char *t = sqlite3_column_text(s, 0);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
	ok = 1;
out:
	sqlite3_finalize(s);
	return ok;
}

struct db *db_open(const char *path)
{
	struct db *db = xcalloc(1, sizeof(*db));
	char mode[16];
	int ok = 0;
	int rc;

	db->path = xstrdup(path);
	rc = sqlite3_open_v2(path, &db->h,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		if (rc == SQLITE_NOMEM)
			log_fatal("db: out of memory opening %s", path);
		log_error("db: cannot open %s: %s", path,
			  db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_handler(db->h, busy_wait, db);
	if (!pragma_text(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode)))
		goto out;
	if (strcmp(mode, "wal") != 0) {
		log_error("db: %s: journal_mode is %s, WAL refused", path, mode);
		goto out;
	}
	/* the -wal and -shm files stay when the last connection closes: made
	 * once (as root, SQLite gives them the database file's owner), they are
	 * never made again by a worker, which may not create files beside the
	 * database (service_user.h) */
	int persist = 1;
	sqlite3_file_control(db->h, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	if (sqlite3_exec(db->h, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK) {
		log_db(db, "PRAGMA foreign_keys");
		goto out;
	}
	/* WAL + NORMAL: a commit is not fsynced, the WAL is at each checkpoint.
	 * A process crash loses nothing; a power cut may lose the last commits
	 * (claims, releases, the last records), never corrupts. Keeps the four
	 * writes of each execution off the disk's flush latency. */
	if (sqlite3_exec(db->h, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
		log_db(db, "PRAGMA synchronous");
		goto out;
	}
	/* the cleanup process checkpoints (db.h); SQLite's default, at 1000
	 * pages, would have a worker fsync twice in the middle of a request
	 * every fifty or so executions */
	sqlite3_wal_autocheckpoint(db->h, DB_WAL_BACKSTOP_PAGES);
	if (sqlite3_exec(db->h, "PRAGMA cache_size = -" STRINGIFY(DB_CACHE_KIB), NULL, NULL, NULL) !=
	    SQLITE_OK) {
		log_db(db, "PRAGMA cache_size");
		goto out;
	}
	ok = 1;
out:
	if (!ok)
		db_close(&db);
	return db;
}

/* The first integer of sql's first row, or -1. */
static int64_t pragma_value(struct db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Starts the WAL over, now that all of it is back in the database: the
 * first writer after a complete checkpoint does, writing and fsyncing the
 * WAL's new header, and that is better this connection than a worker in the
 * middle of a request (an agent's calls seconds apart each came after one).
 * The write: the header's application_id, set to what it is, in one
 * transaction. version: the database's data_version before the checkpoint
 * (a commit of another connection since then makes the next pass copy it). */
static void restart_wal(struct db *db, int64_t version)
{
	if (version < 0 || sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return; /* busy: a request's write starts it over, as before */
	int64_t id = pragma_value(db, "PRAGMA application_id");
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %lld", (long long)id);
	int ok = sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK &&
		 sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	if (!ok) {
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
		return;
	}
	db->restarted = 1;
	db->restart_version = version;
	db->restart_changes = sqlite3_total_changes64(db->h);
}

enum db_status db_checkpoint(struct db *db, int *wal_pages)
{
	/* nothing written since this connection started the WAL over: nothing
	 * to copy (and copying its own write would have the next writer start
	 * the WAL over again) */
	int64_t version = pragma_value(db, "PRAGMA data_version");
	if (db->restarted && version == db->restart_version &&
	    sqlite3_total_changes64(db->h) == db->restart_changes) {
		if (wal_pages)
			*wal_pages = 1;
		return DB_OK;
	}
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	if (wal_pages)
		*wal_pages = log;
	if (rc == SQLITE_OK) {
		db->restarted = 0;
		if (log > 0 && done == log)
			restart_wal(db, version);
		return DB_OK;
	}
	if (status_of(rc) == DB_BUSY)
		return DB_BUSY; /* another checkpoint runs: not an error */
	log_db(db, "checkpoint");
	return DB_ERROR;
}

void db_close(struct db **pdb)
{
	struct db *db = pdb ? *pdb : NULL;

	if (!db)
		return;
	for (int i = 0; i < ST_COUNT_; i++)
		sqlite3_finalize(db->stmt[i]);
	if (db->h && sqlite3_close(db->h) != SQLITE_OK)
		log_error("db: close %s: %s", db->path, sqlite3_errmsg(db->h));
	free(db->path);
	free(db);
	*pdb = NULL;
}

static enum db_status user_version(struct db *db, int *version)
{
	sqlite3_stmt *s = stmt(db, ST_USER_VERSION);
	enum db_status rc = DB_ERROR;

	if (!s)
		return DB_ERROR;
	if (sqlite3_step(s) != SQLITE_ROW) {
		log_db(db, "PRAGMA user_version");
		goto out;
	}
	*version = sqlite3_column_int(s, 0);
	rc = DB_OK;
out:
	sqlite3_reset(s);
	return rc;
}

enum db_status db_ping(struct db *db)
{
	int v;

	return user_version(db, &v);
}

/* --- migrations ----------------------------------------------------------- */

struct migration {
	int version;
	char *name; /* file name inside the migrations dir */
};

/* Parses "NNNN_name.sql" (name of [A-Za-z0-9_-]+). Returns the version (1..9999)
 * or -1 when the file is not a migration. */
static int migration_version(const char *name)
{
	size_t n = strlen(name);
	int v = 0;

	if (n < 4 + 1 + 1 + 4 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_')
		return -1;
	for (int i = 0; i < 4; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (name[i] - '0');
	}
	for (size_t i = 5; i < n - 4; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '_' || c == '-'))
			return -1;
	}
	return v >= 1 ? v : -1;
}

static int migration_cmp(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	if (x->version != y->version)
		return x->version < y->version ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Lists the migrations of dir sorted by version. Returns 0, or -1 (logged)
 * when the directory cannot be read. */
static int list_migrations(const char *dir, struct migration **out, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct migration *m = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	*count = 0;
	if (!d) {
		log_error("db: cannot read migrations directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		int v = migration_version(de->d_name);
		if (v < 0) {
			size_t len = strlen(de->d_name);
			if (len >= 4 && strcmp(de->d_name + len - 4, ".sql") == 0)
				log_warn("db: ignoring %s/%s: not named NNNN_name.sql", dir, de->d_name);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			m = xrealloc(m, cap * sizeof(*m));
		}
		m[n].version = v;
		m[n].name = xstrdup(de->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(m, n, sizeof(*m), migration_cmp);
	*out = m;
	*count = n;
	return 0;
}

/* Reads a whole migration file into a fresh NUL-terminated string, or NULL (logged). */
static char *read_sql(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *buf = NULL;
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		log_error("db: cannot open migration %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > MIGRATION_MAX_BYTES) {
		log_error("db: migration %s is not a regular file of at most %u bytes", path,
			  MIGRATION_MAX_BYTES);
		goto out;
	}
	buf = xmalloc((size_t)sb.st_size + 1);
	ssize_t got = read_all(fd, buf, (size_t)sb.st_size);
	if (got < 0) {
		log_error("db: cannot read migration %s: %s", path, strerror(errno));
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[got] = '\0';
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return buf;
}

/* Applies one migration and its user_version in one transaction. */
static enum db_status apply_migration(struct db *db, const char *dir, const struct migration *m)
{
	enum db_status rc = DB_ERROR;
	char *sql = read_sql(dir, m->name);
	char *err = NULL;
	char setver[64];
	int current = 0;

	if (!sql)
		goto out;
	if (simple(db, ST_BEGIN) != DB_OK)
		goto out;
	/* another process may have migrated while we waited for the write lock */
	if (user_version(db, &current) != DB_OK)
		goto out;
	if (current >= m->version) {
		rc = simple(db, ST_COMMIT);
		goto out;
	}
	if (sqlite3_exec(db->h, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_error("db: migration %s/%s failed, rolled back: %s", dir, m->name,
			  err ? err : sqlite3_errmsg(db->h));
		goto out;
	}
	if (sqlite3_get_autocommit(db->h)) {
		log_error("db: migration %s/%s ended the transaction; migrations must not"
			  " contain BEGIN/COMMIT", dir, m->name);
		goto out;
	}
	snprintf(setver, sizeof(setver), "PRAGMA user_version = %d", m->version);
	if (sqlite3_exec(db->h, setver, NULL, NULL, NULL) != SQLITE_OK) {
		log_db(db, setver);
		goto out;
	}
	if (simple(db, ST_COMMIT) != DB_OK)
		goto out;
	log_info("db: applied migration %s (user_version %d)", m->name, m->version);
	rc = DB_OK;
out:
	if (rc != DB_OK)
		rollback(db);
	sqlite3_free(err);
	free(sql);
	return rc;
}

enum db_status db_migrate(struct db *db, const char *migrations_dir)
{
	enum db_status rc = DB_ERROR;
	struct migration *m = NULL;
	size_t n = 0;
	int current = 0;

	if (list_migrations(migrations_dir, &m, &n) < 0)
		goto out;
	/* the versions must be exactly 1, 2, ..., n: no gap, no duplicate */
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && m[i].version == m[i - 1].version) {
			log_error("db: migrations %s and %s in %s share version %04d; refusing to migrate",
				  m[i - 1].name, m[i].name, migrations_dir, m[i].version);
			goto out;
		}
		if (m[i].version != (int)i + 1) {
			log_error("db: migration %s in %s: expected version %04zu next (a gap);"
				  " refusing to migrate", m[i].name, migrations_dir, i + 1);
			goto out;
		}
	}
	if (user_version(db, &current) != DB_OK)
		goto out;
	if (current > (int)n) {
		log_error("db: %s has schema version %d, newer than the newest migration (%zu) in %s",
			  db->path, current, n, migrations_dir);
		goto out;
	}
	for (size_t i = (size_t)current; i < n; i++)
		if (apply_migration(db, migrations_dir, &m[i]) != DB_OK)
			goto out;
	rc = DB_OK;
out:
	for (size_t i = 0; i < n; i++)
		free(m[i].name);
	free(m);
	return rc;
}

/* --- file objects --------------------------------------------------------- */

enum db_status db_object_touch(struct db *db, const char *id, uint64_t size, int64_t now)
{
	if (size > INT64_MAX) {
		log_error("db: object %s: size %llu out of range", id, (unsigned long long)size);
		return DB_ERROR;
	}
	sqlite3_stmt *s = stmt(db, ST_OBJECT_TOUCH);
	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)size);
	sqlite3_bind_int64(s, 3, now);
	return status_of(run(db, s, "file object touch"));
}

enum db_status db_object_known(struct db *db, const char *id)
{
	sqlite3_stmt *s = stmt(db, ST_OBJECT_KNOWN);
	enum db_status rc = DB_ERROR;

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW)
		rc = DB_OK;
	else if (step == SQLITE_DONE)
		rc = DB_NOT_FOUND;
	else
		rc = status_of(step) == DB_BUSY ? DB_BUSY : DB_ERROR;
	sqlite3_reset(s);
	return rc;
}

enum db_status db_object_stats(struct db *db, uint64_t *count, uint64_t *bytes)
{
	sqlite3_stmt *s = stmt(db, ST_OBJECT_STATS);
	enum db_status rc = DB_ERROR;

	if (!s)
		return DB_ERROR;
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW) {
		*count = (uint64_t)sqlite3_column_int64(s, 0);
		*bytes = (uint64_t)sqlite3_column_int64(s, 1);
		rc = DB_OK;
	} else {
		log_db(db, "object stats");
		rc = status_of(step) == DB_BUSY ? DB_BUSY : DB_ERROR;
	}
	sqlite3_reset(s);
	return rc;
}

struct expired_row { char id[OBJECT_ID_MAX]; uint64_t size; };

enum db_status db_objects_expired(struct db *db, int64_t cutoff, const char *after_id, int limit,
				  void (*fn)(const char *id, uint64_t size, void *arg), void *arg)
{
	sqlite3_stmt *s = stmt(db, ST_OBJECTS_EXPIRED);
	struct expired_row *rows = NULL;
	size_t n = 0;
	int step;

	if (!s)
		return DB_ERROR;
	if (limit <= 0)
		return DB_OK;
	rows = xcalloc((size_t)limit, sizeof(*rows));
	sqlite3_bind_int64(s, 1, cutoff);
	bind_text(s, 2, after_id ? after_id : "");
	sqlite3_bind_int(s, 3, limit);
	while ((step = sqlite3_step(s)) == SQLITE_ROW && n < (size_t)limit) {
		const unsigned char *id = sqlite3_column_text(s, 0);
		int len = snprintf(rows[n].id, sizeof(rows[n].id), "%s", id ? (const char *)id : "");
		if (len <= 0 || (size_t)len >= sizeof(rows[n].id))
			continue; /* not a store id: never a file of ours */
		rows[n].size = (uint64_t)sqlite3_column_int64(s, 1);
		n++;
	}
	enum db_status rc = step == SQLITE_DONE || step == SQLITE_ROW ? DB_OK : status_of(step);
	if (rc != DB_OK)
		log_db(db, "expired objects");
	sqlite3_reset(s);
	for (size_t i = 0; rc == DB_OK && i < n; i++)
		fn(rows[i].id, rows[i].size, arg);
	free(rows);
	return rc;
}

enum db_status db_object_delete_expired(struct db *db, const char *id, int64_t cutoff)
{
	sqlite3_stmt *s = stmt(db, ST_OBJECT_DELETE_EXPIRED);

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, cutoff);
	return run_change(db, s, "object delete");
}

enum db_status db_begin(struct db *db)
{
	return simple(db, ST_BEGIN);
}

enum db_status db_commit(struct db *db)
{
	enum db_status rc = simple(db, ST_COMMIT);
	if (rc != DB_OK)
		rollback(db);
	return rc;
}

void db_rollback(struct db *db)
{
	rollback(db);
}

/* --- executions ----------------------------------------------------------- */

static int64_t clamp_u64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static enum db_status insert_files(struct db *db, const char *exec_id, const char *direction,
				   const struct db_file *files, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = stmt(db, ST_EXEC_FILE_INSERT);
		if (!s)
			return DB_ERROR;
		bind_text(s, 1, exec_id);
		bind_text(s, 2, direction);
		bind_text(s, 3, files[i].path);
		bind_text(s, 4, files[i].object_id);
		if (run(db, s, "execution file insert") != SQLITE_DONE)
			return DB_ERROR;
	}
	return DB_OK;
}

enum db_status db_execution_insert(struct db *db, const struct db_execution *e)
{
	enum db_status rc = DB_ERROR;
	sqlite3_stmt *s;

	if (simple(db, ST_BEGIN) != DB_OK)
		return DB_ERROR;
	s = stmt(db, ST_EXEC_INSERT);
	if (!s)
		goto out;
	bind_text(s, 1, e->id);
	bind_text(s, 2, e->kind);
	sqlite3_bind_int64(s, 3, e->started_ms);
	sqlite3_bind_int64(s, 4, e->finished_ms);
	sqlite3_bind_int(s, 5, e->exit_code);
	bind_text(s, 6, e->status);
	bind_text(s, 7, e->source_code);
	bind_text(s, 8, e->env_names ? e->env_names : "[]");
	sqlite3_bind_int64(s, 9, clamp_u64(e->stdout_bytes));
	sqlite3_bind_int64(s, 10, clamp_u64(e->stderr_bytes));
	bind_text(s, 11, e->sandbox);
	bind_text(s, 12, e->error);
	bind_text(s, 13, e->api_key);
	if (run(db, s, "execution insert") != SQLITE_DONE)
		goto out;
	if (insert_files(db, e->id, "input", e->inputs, e->n_inputs) != DB_OK ||
	    insert_files(db, e->id, "output", e->outputs, e->n_outputs) != DB_OK)
		goto out;
	rc = simple(db, ST_COMMIT);
out:
	if (rc != DB_OK)
		rollback(db);
	return rc;
}

/* db_execution_begin, and with claimer > 0 the claim of a ready sandbox in the
 * same transaction (*claimed: 1, id in id_out; 0: none was ready). */
static enum db_status begin(struct db *db, const struct db_execution *e, int64_t now,
			    pid_t claimer, char *id_out, size_t id_cap, int *claimed)
{
	enum db_status rc = simple(db, ST_BEGIN);
	sqlite3_stmt *s;
	int step = SQLITE_DONE;

	if (rc != DB_OK)
		return rc;
	rc = DB_ERROR;
	s = stmt(db, ST_EXEC_INSERT);
	if (!s)
		goto out;
	bind_text(s, 1, e->id);
	bind_text(s, 2, e->kind);
	sqlite3_bind_int64(s, 3, e->started_ms);
	sqlite3_bind_int64(s, 4, e->started_ms);
	sqlite3_bind_int(s, 5, e->exit_code);
	bind_text(s, 6, e->status);
	bind_text(s, 7, e->source_code);
	bind_text(s, 8, e->env_names ? e->env_names : "[]");
	sqlite3_bind_int64(s, 9, 0);
	sqlite3_bind_int64(s, 10, 0);
	bind_text(s, 11, e->sandbox);
	bind_text(s, 12, e->error);
	bind_text(s, 13, e->api_key);
	if ((step = run(db, s, "execution begin")) != SQLITE_DONE)
		goto out;
	if (insert_files(db, e->id, "input", e->inputs, e->n_inputs) != DB_OK)
		goto out;
	for (size_t i = 0; i < e->n_inputs; i++) {
		s = stmt(db, ST_OBJECT_USE);
		if (!s)
			goto out;
		bind_text(s, 1, e->inputs[i].object_id);
		sqlite3_bind_int64(s, 2, now);
		if ((step = run(db, s, "object use")) != SQLITE_DONE)
			goto out;
	}
	if (claimer > 0) {
		enum db_status c = db_sandbox_claim(db, claimer, now, id_out, id_cap);
		if (c != DB_OK && c != DB_NOT_FOUND) {
			step = c == DB_BUSY ? SQLITE_BUSY : SQLITE_ERROR;
			goto out;
		}
		*claimed = c == DB_OK;
	}
	rc = simple(db, ST_COMMIT);
out:
	if (rc != DB_OK) {
		if (rc == DB_ERROR && status_of(step) == DB_BUSY)
			rc = DB_BUSY;
		rollback(db);
	}
	return rc;
}

enum db_status db_execution_begin(struct db *db, const struct db_execution *e, int64_t now)
{
	return begin(db, e, now, 0, NULL, 0, NULL);
}

enum db_status db_execution_begin_claim(struct db *db, const struct db_execution *e, int64_t now,
					pid_t claimer, char *id_out, size_t id_cap, int *claimed)
{
	*claimed = 0;
	enum db_status rc = begin(db, e, now, claimer, id_out, id_cap, claimed);
	if (rc != DB_OK)
		*claimed = 0;
	return rc;
}

enum db_status db_execution_finish(struct db *db, const struct db_execution *e)
{
	enum db_status rc = simple(db, ST_BEGIN);
	sqlite3_stmt *s;
	int step = SQLITE_DONE;

	if (rc != DB_OK)
		return rc;
	rc = DB_ERROR;
	s = stmt(db, ST_EXEC_FINISH);
	if (!s)
		goto out;
	bind_text(s, 1, e->id);
	sqlite3_bind_int64(s, 2, e->finished_ms);
	sqlite3_bind_int(s, 3, e->exit_code);
	bind_text(s, 4, e->status);
	sqlite3_bind_int64(s, 5, clamp_u64(e->stdout_bytes));
	sqlite3_bind_int64(s, 6, clamp_u64(e->stderr_bytes));
	bind_text(s, 7, e->sandbox);
	bind_text(s, 8, e->error);
	if ((step = run(db, s, "execution finish")) != SQLITE_DONE)
		goto out;
	if (sqlite3_changes(db->h) == 0) {
		log_error("db: execution %s was never begun", e->id);
		goto out;
	}
	if (insert_files(db, e->id, "output", e->outputs, e->n_outputs) != DB_OK)
		goto out;
	/* inside the transaction: its lock is held, no busy wait here */
	if (e->release && db_sandbox_set_state(db, e->release, "used", e->finished_ms) == DB_ERROR)
		goto out;
	rc = simple(db, ST_COMMIT);
out:
	if (rc != DB_OK) {
		if (rc == DB_ERROR && status_of(step) == DB_BUSY)
			rc = DB_BUSY;
		rollback(db);
	}
	return rc;
}

enum db_status db_execution_interrupt(struct db *db, const char *id, const char *error, int64_t now)
{
	sqlite3_stmt *s = stmt(db, ST_EXEC_INTERRUPT);

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	bind_text(s, 2, error);
	sqlite3_bind_int64(s, 3, now);
	return run_change(db, s, "execution interrupt");
}

enum db_status db_executions_interrupt_all(struct db *db, int64_t now, int *count)
{
	sqlite3_stmt *s = stmt(db, ST_EXEC_INTERRUPT_ALL);

	*count = 0;
	if (!s)
		return DB_ERROR;
	sqlite3_bind_int64(s, 1, now);
	int rc = run(db, s, "interrupt running executions");
	if (rc != SQLITE_DONE)
		return status_of(rc);
	*count = sqlite3_changes(db->h);
	return DB_OK;
}

enum db_status db_executions_delete_before(struct db *db, int64_t cutoff, int limit, int *count)
{
	sqlite3_stmt *s = stmt(db, ST_EXEC_DELETE_BEFORE);

	*count = 0;
	if (!s)
		return DB_ERROR;
	sqlite3_bind_int64(s, 1, cutoff);
	sqlite3_bind_int(s, 2, limit);
	int rc = run(db, s, "delete old executions");
	if (rc != SQLITE_DONE)
		return status_of(rc);
	*count = sqlite3_changes(db->h);
	return DB_OK;
}

/* --- sandbox pool --------------------------------------------------------- */

enum db_status db_sandbox_insert(struct db *db, const char *id, pid_t pid, int64_t now)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_INSERT);

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, pid);
	sqlite3_bind_int64(s, 3, now);
	return run(db, s, "sandbox insert") == SQLITE_DONE ? DB_OK : DB_ERROR;
}

enum db_status db_sandbox_set_state(struct db *db, const char *id, const char *state, int64_t now)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_SET_STATE);

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	bind_text(s, 2, state);
	sqlite3_bind_int64(s, 3, now);
	return run_change(db, s, "sandbox set state");
}

enum db_status db_sandbox_claim(struct db *db, pid_t claimer, int64_t now,
				char *id_out, size_t id_cap)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_CLAIM);
	enum db_status rc = DB_ERROR;
	int step;

	if (!s)
		return DB_ERROR;
	sqlite3_bind_int64(s, 1, claimer);
	sqlite3_bind_int64(s, 2, now);
	step = sqlite3_step(s);
	if (step == SQLITE_DONE) {
		rc = DB_NOT_FOUND;
		goto out;
	}
	if (step != SQLITE_ROW) {
		log_db(db, "sandbox claim");
		if (status_of(step) == DB_BUSY)
			rc = DB_BUSY;
		goto out;
	}
	/* copy before the next step invalidates the text */
	const unsigned char *id = sqlite3_column_text(s, 0);
	int len = snprintf(id_out, id_cap, "%s", id ? (const char *)id : "");
	if (len < 0 || (size_t)len >= id_cap) {
		log_error("db: claimed sandbox id %s does not fit in %zu bytes",
			  (const char *)id, id_cap);
		goto out;
	}
	/* finish the statement so its write transaction commits now */
	while ((step = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (step != SQLITE_DONE) {
		log_db(db, "sandbox claim");
		goto out;
	}
	rc = DB_OK;
out:
	sqlite3_reset(s);
	return rc;
}

enum db_status db_sandbox_count(struct db *db, const char *state, int *count)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_COUNT);
	enum db_status rc = DB_ERROR;

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, state);
	if (sqlite3_step(s) != SQLITE_ROW) {
		log_db(db, "sandbox count");
		goto out;
	}
	*count = sqlite3_column_int(s, 0);
	rc = DB_OK;
out:
	sqlite3_reset(s);
	return rc;
}

enum db_status db_sandbox_each(struct db *db, const char *state,
			       void (*fn)(const struct db_sandbox *sandbox, void *arg), void *arg)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_EACH);
	enum db_status rc = DB_ERROR;
	struct db_sandbox *rows = NULL;
	size_t n = 0, cap = 0;
	int step;

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, state);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(s, 0);
		const unsigned char *st = sqlite3_column_text(s, 2);
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		struct db_sandbox *r = &rows[n];
		memset(r, 0, sizeof(*r));
		int idlen = snprintf(r->id, sizeof(r->id), "%s", id ? (const char *)id : "");
		if (idlen < 0 || (size_t)idlen >= sizeof(r->id)) {
			log_error("db: sandbox id %s is longer than %zu bytes; skipped",
				  (const char *)id, sizeof(r->id) - 1);
			continue;
		}
		r->pid = (pid_t)sqlite3_column_int64(s, 1);
		snprintf(r->state, sizeof(r->state), "%s", st ? (const char *)st : "");
		r->claimer = (pid_t)sqlite3_column_int64(s, 3);
		r->updated_ms = sqlite3_column_int64(s, 4);
		n++;
	}
	if (step != SQLITE_DONE) {
		log_db(db, "sandbox list");
		goto out;
	}
	/* rows are copied and the statement is reset: fn may change the table */
	sqlite3_reset(s);
	for (size_t i = 0; i < n; i++)
		fn(&rows[i], arg);
	rc = DB_OK;
out:
	sqlite3_reset(s);
	free(rows);
	return rc;
}

enum db_status db_sandbox_delete(struct db *db, const char *id)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_DELETE);

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	return run_change(db, s, "sandbox delete");
}

enum db_status db_sandbox_delete_all(struct db *db)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_DELETE_ALL);

	if (!s)
		return DB_ERROR;
	return run(db, s, "sandbox delete all") == SQLITE_DONE ? DB_OK : DB_ERROR;
}

enum db_status db_sandbox_set_ready(struct db *db, const char *id, const char *endpoint, int64_t now)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_SET_READY);

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	bind_text(s, 2, endpoint);
	sqlite3_bind_int64(s, 3, now);
	return run_change(db, s, "sandbox set ready");
}

enum db_status db_sandbox_endpoint(struct db *db, const char *id, char *out, size_t cap)
{
	sqlite3_stmt *s = stmt(db, ST_SBX_ENDPOINT);
	enum db_status rc = DB_ERROR;
	int step;

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, id);
	out[0] = '\0';
	step = sqlite3_step(s);
	if (step == SQLITE_DONE) {
		rc = DB_NOT_FOUND;
		goto out;
	}
	if (step != SQLITE_ROW) {
		log_db(db, "sandbox endpoint");
		goto out;
	}
	const unsigned char *ep = sqlite3_column_text(s, 0);
	int len = snprintf(out, cap, "%s", ep ? (const char *)ep : "");
	if (len < 0 || (size_t)len >= cap) {
		log_error("db: endpoint of sandbox %s does not fit in %zu bytes", id, cap);
		out[0] = '\0';
		goto out;
	}
	rc = DB_OK;
out:
	sqlite3_reset(s);
	return rc;
}

enum db_status db_package_install_insert(struct db *db, const struct db_package_install *p)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_INSERT);

	if (!s)
		return DB_ERROR;
	bind_text(s, 1, p->package);
	bind_text(s, 2, p->requirement);
	bind_text(s, 3, p->module);
	bind_text(s, 4, p->version);
	bind_text(s, 5, p->status);
	sqlite3_bind_int64(s, 6, p->started_ms);
	sqlite3_bind_int64(s, 7, p->duration_ms);
	bind_text(s, 8, p->log_tail ? p->log_tail : "");
	bind_text(s, 9, p->execution_id);
	bind_text(s, 10, p->dir);
	return status_of(run(db, s, "package install insert"));
}

/* Copies column i (text) into out, "" for NULL; -1 when it does not fit. */
static int column_copy(sqlite3_stmt *s, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	int n = snprintf(out, cap, "%s", t ? (const char *)t : "");
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Steps s (a package_dists query bound by the caller) once into out. */
static enum db_status dist_row(struct db *db, sqlite3_stmt *s, const char *package, struct db_package_dist *out)
{
	enum db_status rc = DB_ERROR;
	int step = sqlite3_step(s);
	if (step == SQLITE_DONE) {
		rc = DB_NOT_FOUND;
	} else if (step != SQLITE_ROW) {
		log_db(db, "package dist find");
		rc = status_of(step);
	} else {
		memset(out, 0, sizeof(*out));
		if (column_copy(s, 0, out->dir, sizeof(out->dir)) < 0 ||
		    column_copy(s, 1, out->package, sizeof(out->package)) < 0 ||
		    column_copy(s, 2, out->version, sizeof(out->version)) < 0 ||
		    column_copy(s, 3, out->requirement, sizeof(out->requirement)) < 0 ||
		    column_copy(s, 4, out->kind, sizeof(out->kind)) < 0 ||
		    column_copy(s, 5, out->metadata, sizeof(out->metadata)) < 0) {
			log_error("db: package_dists row of %s is too long", package);
		} else {
			out->size_bytes = (uint64_t)sqlite3_column_int64(s, 6);
			out->installed_ms = sqlite3_column_int64(s, 7);
			out->last_used_ms = sqlite3_column_int64(s, 8);
			rc = DB_OK;
		}
	}
	sqlite3_reset(s);
	return rc;
}

enum db_status db_package_dist_find(struct db *db, const char *package, const char *kind, const char *key,
				    struct db_package_dist *out)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_DIST_FIND);
	if (!s)
		return DB_ERROR;
	bind_text(s, 1, package);
	bind_text(s, 2, kind);
	bind_text(s, 3, key);
	return dist_row(db, s, package, out);
}

enum db_status db_package_dist_get(struct db *db, const char *dir, struct db_package_dist *out)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_DIST_GET);
	if (!s)
		return DB_ERROR;
	bind_text(s, 1, dir);
	return dist_row(db, s, dir, out);
}

/* Inside a transaction: dir used by execution_id (when not NULL) at now.
 * DB_NOT_FOUND when dir has no row. */
static enum db_status dist_use(struct db *db, const char *execution_id, const char *dir, int64_t now)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_DIST_TOUCH);
	if (!s)
		return DB_ERROR;
	bind_text(s, 1, dir);
	sqlite3_bind_int64(s, 2, now);
	enum db_status rc = run_change(db, s, "package dist touch");
	if (rc != DB_OK || !execution_id)
		return rc;
	if (!(s = stmt(db, ST_PKG_USE_INSERT)))
		return DB_ERROR;
	bind_text(s, 1, execution_id);
	bind_text(s, 2, dir);
	return status_of(run(db, s, "execution package insert"));
}

/* Ends a transaction begun by the caller: commit when rc is DB_OK (or
 * DB_NOT_FOUND, which changed nothing), else roll back. */
static enum db_status finish_tx(struct db *db, enum db_status rc)
{
	if (rc == DB_OK || rc == DB_NOT_FOUND) {
		enum db_status c = simple(db, ST_COMMIT);
		if (c == DB_OK)
			return rc;
		rc = c;
	}
	rollback(db);
	return rc;
}

enum db_status db_package_dist_use(struct db *db, const char *execution_id, const char *dir, int64_t now)
{
	enum db_status rc = simple(db, ST_BEGIN);
	if (rc != DB_OK)
		return rc;
	return finish_tx(db, dist_use(db, execution_id, dir, now));
}

enum db_status db_package_dist_insert(struct db *db, const struct db_package_dist *d, const char *execution_id)
{
	enum db_status rc = simple(db, ST_BEGIN);
	if (rc != DB_OK)
		return rc;
	sqlite3_stmt *s = stmt(db, ST_PKG_DIST_INSERT);
	if (!s)
		return finish_tx(db, DB_ERROR);
	bind_text(s, 1, d->dir);
	bind_text(s, 2, d->package);
	bind_text(s, 3, d->version);
	bind_text(s, 4, d->requirement);
	bind_text(s, 5, d->kind);
	bind_text(s, 6, d->metadata);
	sqlite3_bind_int64(s, 7, clamp_u64(d->size_bytes));
	sqlite3_bind_int64(s, 8, d->installed_ms);
	rc = status_of(run(db, s, "package dist insert"));
	if (rc == DB_OK)
		rc = dist_use(db, execution_id, d->dir, d->installed_ms);
	return finish_tx(db, rc);
}

enum db_status db_package_dists_size(struct db *db, uint64_t *bytes)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_DISTS_SIZE);
	if (!s)
		return DB_ERROR;
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW)
		*bytes = (uint64_t)sqlite3_column_int64(s, 0);
	else
		log_db(db, "package dists size");
	sqlite3_reset(s);
	return step == SQLITE_ROW ? DB_OK : status_of(step);
}

enum db_status db_package_evict_candidate(struct db *db, char *dir, size_t cap)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_EVICT_CANDIDATE);
	if (!s)
		return DB_ERROR;
	int step = sqlite3_step(s);
	enum db_status rc = step == SQLITE_DONE ? DB_NOT_FOUND : step == SQLITE_ROW ? DB_OK : status_of(step);
	if (step == SQLITE_ROW && column_copy(s, 0, dir, cap) < 0)
		rc = DB_ERROR;
	else if (rc != DB_OK && rc != DB_NOT_FOUND)
		log_db(db, "package evict candidate");
	sqlite3_reset(s);
	return rc;
}

enum db_status db_package_evict(struct db *db, const char *dir, const char *reason, int even_in_use, int64_t now)
{
	enum db_status rc = simple(db, ST_BEGIN);
	if (rc != DB_OK)
		return rc;
	sqlite3_stmt *s = stmt(db, ST_PKG_EVICTION_RECORD);
	if (!s)
		return finish_tx(db, DB_ERROR);
	bind_text(s, 1, dir);
	sqlite3_bind_int64(s, 2, now);
	bind_text(s, 3, reason);
	sqlite3_bind_int(s, 4, even_in_use != 0);
	rc = run_change(db, s, "package eviction record"); /* DB_NOT_FOUND: no row, or in use */
	if (rc == DB_OK) {
		if (!(s = stmt(db, ST_PKG_DIST_DELETE)))
			return finish_tx(db, DB_ERROR);
		bind_text(s, 1, dir);
		rc = status_of(run(db, s, "package dist delete"));
	}
	return finish_tx(db, rc);
}

enum db_status db_package_eviction_orphan(struct db *db, const char *dir, int64_t now)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_EVICTION_ORPHAN);
	if (!s)
		return DB_ERROR;
	bind_text(s, 1, dir);
	sqlite3_bind_int64(s, 2, now);
	return status_of(run(db, s, "package eviction orphan"));
}

enum db_status db_package_dist_each(struct db *db, void (*fn)(const char *dir, void *arg), void *arg)
{
	sqlite3_stmt *s = stmt(db, ST_PKG_DIST_EACH);
	if (!s)
		return DB_ERROR;
	char **dirs = NULL;
	size_t n = 0, cap = 0;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			dirs = xrealloc(dirs, cap * sizeof(*dirs));
		}
		dirs[n++] = xstrdup(t ? (const char *)t : "");
	}
	enum db_status rc = step == SQLITE_DONE ? DB_OK : status_of(step);
	if (rc != DB_OK)
		log_db(db, "package dist list");
	sqlite3_reset(s);
	/* copied first: fn may change the table */
	for (size_t i = 0; i < n; i++) {
		if (rc == DB_OK)
			fn(dirs[i], arg);
		free(dirs[i]);
	}
	free(dirs);
	return rc;
}
