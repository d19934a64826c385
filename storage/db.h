/* db: the SQLite record (APP_DB_PATH): executions with their files, file objects,
 * and the sandbox pool. Owns every SQL statement of the service; no other module
 * speaks SQL. One connection per process, opened after fork, never carried across
 * fork. WAL mode, busy timeout, foreign keys on. Checkpoints are the cleanup
 * process's (db_checkpoint, every second): a connection checkpoints itself
 * only once the WAL passes DB_WAL_BACKSTOP_PAGES, so that the fsyncs of a
 * checkpoint stay off the requests' path. */
#ifndef DB_H
#define DB_H

#include <stdint.h>
#include <sys/types.h>

enum db_status {
	DB_OK = 0,
	DB_NOT_FOUND, /* no such row (or no ready sandbox for db_sandbox_claim) */
	DB_ERROR,     /* SQLite failed; the message went to the log */
	DB_BUSY,      /* still locked by another connection after the busy timeout */
};

struct db; /* opaque */

#define DB_WAL_BACKSTOP_PAGES 10000 /* 40 MB: only if nobody checkpointed */
/* The page cache of a connection, at most (db_open): a statement of ours
 * touches a few dozen pages, and in WAL mode a connection drops its cache
 * whenever another one has committed since its last transaction, so a larger
 * cache keeps nothing between transactions; only a scan (db_object_stats
 * reads the whole file_objects table) would fill it, and the heap of each
 * process that ran one would keep that much. */
#define DB_CACHE_KIB 256

/* Opens (creating) the database, sets WAL, busy_timeout 5000 ms, foreign_keys,
 * synchronous NORMAL and a page cache of DB_CACHE_KIB. Returns NULL on failure
 * (logged). */
struct db *db_open(const char *path);

/* Copies what the WAL holds back into the database (a passive checkpoint:
 * never waits for readers or writers; two fsyncs when there was anything to
 * copy) and, when all of it is back, starts the WAL over with a write of its
 * own (one more fsync, of the WAL's new header, which the next writer would
 * otherwise pay); nothing when nobody wrote since. *wal_pages: the WAL's size
 * in pages, when not NULL. */
enum db_status db_checkpoint(struct db *db, int *wal_pages);
/* Closes and sets *db to NULL; safe on NULL. */
void db_close(struct db **db);

/* Applies migrations_dir/NNNN_name.sql with NNNN > PRAGMA user_version, in order,
 * each in one transaction that also sets user_version = NNNN. */
enum db_status db_migrate(struct db *db, const char *migrations_dir);

/* Quick health probe: a read of the schema version. */
enum db_status db_ping(struct db *db);

/* --- file objects ------------------------------------------------------- */
/* Inserts the object or, when known, moves its last_used_ms forward to
 * now_ms (never back; a size of 0 never shrinks a known one). Which keys
 * may see an object is no row: it lives in the store (store_own), which
 * replicas share. */
enum db_status db_object_touch(struct db *db, const char *id, uint64_t size, int64_t now_ms);

/* True (DB_OK) when the object has a row, DB_NOT_FOUND when not. */
enum db_status db_object_known(struct db *db, const char *id);
/* Number of objects and the sum of their sizes. */
enum db_status db_object_stats(struct db *db, uint64_t *count, uint64_t *bytes);
/* Calls fn for up to limit objects last used before cutoff_ms whose id sorts
 * after after_id ("" to start), in id order; rows are copied first. */
enum db_status db_objects_expired(struct db *db, int64_t cutoff_ms, const char *after_id, int limit,
				  void (*fn)(const char *id, uint64_t size, void *arg), void *arg);
/* Deletes the object's row when it is still unused since before cutoff_ms and
 * no 'running' execution has it as an input: DB_OK when deleted, DB_NOT_FOUND
 * when kept. The caller removes the file afterwards (a row never outlives its
 * file; a crash in between leaves an orphan file, which cleanup removes). */
enum db_status db_object_delete_expired(struct db *db, const char *id, int64_t cutoff_ms);

/* Explicit transactions (BEGIN IMMEDIATE / COMMIT / ROLLBACK), for batches. */
enum db_status db_begin(struct db *db);
enum db_status db_commit(struct db *db);
void db_rollback(struct db *db);

/* --- executions ---------------------------------------------------------- */
struct db_file { const char *path; const char *object_id; };

struct db_execution {
	const char *id;          /* UUID text */
	const char *kind;        /* "execute", "parse-custom-tool", "execute-custom-tool" */
	const char *api_key;     /* the caller's key name (never the key), or NULL */
	int64_t started_ms;      /* unix epoch milliseconds */
	int64_t finished_ms;
	int exit_code;
	const char *status;      /* "running", then "ok", "error", "timeout", "memory", "failed";
				  * "interrupted" when the service died under it */
	const char *source_code;
	const char *env_names;   /* JSON array of the env variable names (never values) */
	uint64_t stdout_bytes;   /* bytes produced before capping */
	uint64_t stderr_bytes;
	const char *sandbox;     /* sandbox id (or pod name) */
	const char *error;       /* internal failure message, or NULL */
	const struct db_file *inputs;  size_t n_inputs;
	const struct db_file *outputs; size_t n_outputs;
	const char *release;     /* finish: this sandbox becomes 'used' in the same
				  * transaction (the pool's release); NULL: none */
};
/* Inserts the execution and its files in one transaction. */
enum db_status db_execution_insert(struct db *db, const struct db_execution *e);
/* Records a run as it starts, in one transaction: the row (status
 * e->status, normally "running", finished_ms = started_ms), its input files,
 * and last_used_ms = now for each input object (inserted, size 0, when the
 * object had no row). Outputs are ignored. */
enum db_status db_execution_begin(struct db *db, const struct db_execution *e, int64_t now_ms);
/* db_execution_begin and, in the same transaction, db_sandbox_claim for claimer:
 * *claimed is 1 with the sandbox id in id_out, or 0 when none was ready (the
 * run is begun all the same; nothing is claimed when the result is not DB_OK). */
enum db_status db_execution_begin_claim(struct db *db, const struct db_execution *e, int64_t now_ms,
					pid_t claimer, char *id_out, size_t id_cap, int *claimed);
/* Completes a begun run in one transaction: finished_ms, exit_code, status,
 * output sizes, sandbox, error, its output files and, with e->release, the
 * release of its sandbox (state 'used'; a sandbox row already gone is no
 * error). */
enum db_status db_execution_finish(struct db *db, const struct db_execution *e);
/* Marks one 'running' execution 'interrupted' (its worker died): DB_NOT_FOUND
 * when it was not running. */
enum db_status db_execution_interrupt(struct db *db, const char *id, const char *error, int64_t now_ms);
/* Marks every 'running' execution 'interrupted' (at start, after a crash). */
enum db_status db_executions_interrupt_all(struct db *db, int64_t now_ms, int *count);
/* Deletes up to limit finished executions started before cutoff_ms (their
 * files rows go with them); *count gets how many. */
enum db_status db_executions_delete_before(struct db *db, int64_t cutoff_ms, int limit, int *count);

/* --- sandbox pool -------------------------------------------------------- */
/* States: "starting" (launched, not ready), "ready", "claimed", "used" (to be
 * destroyed). */
enum db_status db_sandbox_insert(struct db *db, const char *id, pid_t pid, int64_t now_ms);
enum db_status db_sandbox_set_state(struct db *db, const char *id, const char *state, int64_t now_ms);
/* Atomically claims the oldest ready sandbox for claimer (a worker pid): copies
 * its id into id_out (up to id_cap bytes). DB_NOT_FOUND when none is ready. */
enum db_status db_sandbox_claim(struct db *db, pid_t claimer, int64_t now_ms,
				char *id_out, size_t id_cap);
/* Counts sandboxes in the given state (NULL: all). */
enum db_status db_sandbox_count(struct db *db, const char *state, int *count);
struct db_sandbox { char id[64]; pid_t pid; char state[16]; pid_t claimer; int64_t updated_ms; };
/* Calls fn for every sandbox row (NULL state: all). Rows are copied before fn runs,
 * so fn may change the table. */
enum db_status db_sandbox_each(struct db *db, const char *state,
			       void (*fn)(const struct db_sandbox *sandbox, void *arg), void *arg);
enum db_status db_sandbox_delete(struct db *db, const char *id);
/* starting -> ready, recording where the executor server listens (NULL for a
 * local sandbox, "http://IP:8000" for a pod). DB_NOT_FOUND unless it was starting. */
enum db_status db_sandbox_set_ready(struct db *db, const char *id, const char *endpoint, int64_t now_ms);
/* Copies the sandbox's endpoint into out ("" when NULL). DB_NOT_FOUND: no such row. */
enum db_status db_sandbox_endpoint(struct db *db, const char *id, char *out, size_t cap);
enum db_status db_sandbox_delete_all(struct db *db);

/* --- package installs ---------------------------------------------------- */
struct db_package_install {
	const char *package;      /* distribution name */
	const char *requirement;  /* what pip was given */
	const char *module;       /* the import that asked, or NULL (a pip line) */
	const char *version;      /* installed version, or NULL */
	const char *status;       /* "ok", "failed" or "timeout" */
	int64_t started_ms;
	int64_t duration_ms;
	const char *log_tail;     /* pip's last lines (NULL: "") */
	const char *execution_id; /* the run that asked, or NULL */
	const char *dir;          /* the directory published under dists/, or NULL */
};
/* Records one pip invocation. Strings are borrowed for the call. */
enum db_status db_package_install_insert(struct db *db, const struct db_package_install *p);

/* --- the package cache: one directory per distribution ------------------- */
struct db_package_dist {
	char dir[201];          /* directory under $APP_PACKAGE_CACHE/dists */
	char package[101];      /* normalized distribution name */
	char version[128];
	char requirement[256];  /* what pip was given for it */
	char kind[16];          /* "latest", "pin" or "requirement": what it may serve */
	char metadata[256];     /* its *.dist-info directory inside dir */
	uint64_t size_bytes;    /* disk use of the directory */
	int64_t installed_ms, last_used_ms;
};
/* The newest cached distribution of package that may serve a requirement of
 * that kind: "latest" (a bare name: only what was installed for a bare name,
 * key unused), "pin" (NAME==key: of version key, installed for a bare name or
 * a pin) or "requirement" (only what was installed for exactly the
 * requirement key). DB_NOT_FOUND when none. */
enum db_status db_package_dist_find(struct db *db, const char *package, const char *kind, const char *key,
				    struct db_package_dist *out);
/* The row of dir. DB_NOT_FOUND when none. */
enum db_status db_package_dist_get(struct db *db, const char *dir, struct db_package_dist *out);
/* In one transaction: dir's last use is now and, when execution_id is not
 * NULL, that (running) execution uses it, which keeps it from eviction.
 * DB_NOT_FOUND when dir has no row (evicted meanwhile). */
enum db_status db_package_dist_use(struct db *db, const char *execution_id, const char *dir, int64_t now);
/* Records a published directory and, in the same transaction, its use by
 * execution_id (NULL: none). */
enum db_status db_package_dist_insert(struct db *db, const struct db_package_dist *d, const char *execution_id);
/* The sum of size_bytes of every cached distribution. */
enum db_status db_package_dists_size(struct db *db, uint64_t *bytes);
/* The least recently used directory that no running execution uses.
 * DB_NOT_FOUND when every one is in use (or there is none). */
enum db_status db_package_evict_candidate(struct db *db, char *dir, size_t cap);
/* In one transaction: a package_evictions row for dir (reason: 'cache full',
 * 'missing') and its package_dists row removed; DB_NOT_FOUND when it has no
 * row or, unless even_in_use, a running execution uses it (nothing changed).
 * The caller removes the directory afterwards. */
enum db_status db_package_evict(struct db *db, const char *dir, const char *reason, int even_in_use, int64_t now);
/* Records the removal of a directory that had no row ('orphan'). */
enum db_status db_package_eviction_orphan(struct db *db, const char *dir, int64_t now);
/* Calls fn for the dir of every package_dists row (copied first: fn may
 * change the table). */
enum db_status db_package_dist_each(struct db *db, void (*fn)(const char *dir, void *arg), void *arg);

#endif
