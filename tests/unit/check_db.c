/* check_db: the SQLite record's contract (storage/db.h) on a fresh database
 * under /tmp, inspected with a second, plain sqlite3 connection. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "util.h"

#define REPO_MIGRATIONS DATADIR "/migrations"

static char tmpdir[64];
static char *dbpath;
static char *migdir;
static struct db *db;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_db.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	dbpath = xasprintf("%s/record.db", tmpdir);
	migdir = xasprintf("%s/migrations", tmpdir);
	ck_assert_int_eq(mkdir(migdir, 0700), 0);
	db = db_open(dbpath);
	ck_assert_ptr_nonnull(db);
}

static void teardown(void)
{
	db_close(&db);
	ck_assert_int_eq(remove_tree(tmpdir), 0);
	free(dbpath);
	free(migdir);
}

/* Setup for the tests that need the real schema. */
static void setup_schema(void)
{
	setup();
	ck_assert_int_eq(db_migrate(db, REPO_MIGRATIONS), DB_OK);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, text, strlen(text)), 0);
	close(fd);
	free(path);
}

/* Runs one query on a separate connection and returns the first column of its
 * first row as a fresh string ("" for NULL, "<none>" when there is no row). */
static char *query(const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	char *out;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK, "%s: %s", sql,
		      sqlite3_errmsg(h));
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		out = xstrdup(t ? (const char *)t : "");
	} else {
		ck_assert_int_eq(rc, SQLITE_DONE);
		out = xstrdup("<none>");
	}
	sqlite3_finalize(s);
	sqlite3_close(h);
	return out;
}

#define ck_assert_query(sql, expected)                  \
	do {                                            \
		char *got_ = query(sql);                \
		ck_assert_str_eq(got_, expected);       \
		free(got_);                             \
	} while (0)

/* --- open and migrate ---------------------------------------------------- */

START_TEST(test_open_sets_wal)
{
	ck_assert_query("PRAGMA journal_mode", "wal");
	ck_assert_int_eq(db_ping(db), DB_OK);
	db_close(&db);
	ck_assert_ptr_null(db);
	db_close(&db);
	db_close(NULL);
}
END_TEST

START_TEST(test_open_fails_cleanly)
{
	char *bad = xasprintf("%s/missing/dir/x.db", tmpdir);
	ck_assert_ptr_null(db_open(bad));
	free(bad);
}
END_TEST

START_TEST(test_migrate_from_zero_and_idempotent)
{
	ck_assert_query("PRAGMA user_version", "0");
	ck_assert_int_eq(db_migrate(db, REPO_MIGRATIONS), DB_OK);
	char *v = query("PRAGMA user_version");
	ck_assert_int_ge(strtol(v, NULL, 10), 1);
	ck_assert_query("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema"
			" WHERE type = 'table' ORDER BY name)",
			"execution_files,execution_packages,executions,file_objects,"
			"package_dists,package_evictions,package_installs,sandboxes");
	/* 0005: the key's name on each run; which objects are whose is the store's (store_own) */
	ck_assert_query("SELECT count(*) FROM pragma_table_info('executions') WHERE name = 'api_key'", "1");
	ck_assert_query("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'executions_by_key'", "1");
	ck_assert_int_eq(db_execution_insert(db, &(struct db_execution){
		.id = "e1", .kind = "execute", .status = "ok", .source_code = "",
	}), DB_OK);
	ck_assert_int_eq(db_migrate(db, REPO_MIGRATIONS), DB_OK);
	ck_assert_query("PRAGMA user_version", v);
	ck_assert_query("SELECT count(*) FROM executions", "1");
	free(v);
}
END_TEST

START_TEST(test_migrate_custom_in_order)
{
	write_file(migdir, "0002_second.sql", "INSERT INTO t (v) VALUES ('two');");
	write_file(migdir, "0001_first.sql", "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('one');");
	write_file(migdir, "README", "not a migration");
	ck_assert_int_eq(db_migrate(db, migdir), DB_OK);
	ck_assert_query("PRAGMA user_version", "2");
	ck_assert_query("SELECT group_concat(v, ',') FROM t", "one,two");
	/* a later file is applied on the next start, the earlier ones are not rerun */
	write_file(migdir, "0003_third.sql", "INSERT INTO t (v) VALUES ('three');");
	ck_assert_int_eq(db_migrate(db, migdir), DB_OK);
	ck_assert_query("PRAGMA user_version", "3");
	ck_assert_query("SELECT group_concat(v, ',') FROM t", "one,two,three");
}
END_TEST

START_TEST(test_migrate_broken_rolls_back)
{
	write_file(migdir, "0001_first.sql", "CREATE TABLE t (v TEXT);");
	write_file(migdir, "0002_broken.sql",
		   "CREATE TABLE u (v TEXT); INSERT INTO t VALUES ('x'); THIS IS NOT SQL;");
	ck_assert_int_eq(db_migrate(db, migdir), DB_ERROR);
	ck_assert_query("PRAGMA user_version", "1");
	ck_assert_query("SELECT count(*) FROM sqlite_schema WHERE name = 'u'", "0");
	ck_assert_query("SELECT count(*) FROM t", "0");
	/* the connection is usable again and a fixed file applies */
	write_file(migdir, "0002_broken.sql", "CREATE TABLE u (v TEXT);");
	ck_assert_int_eq(db_migrate(db, migdir), DB_OK);
	ck_assert_query("PRAGMA user_version", "2");
	ck_assert_query("SELECT count(*) FROM sqlite_schema WHERE name = 'u'", "1");
}
END_TEST

START_TEST(test_migrate_refuses_gap)
{
	write_file(migdir, "0001_first.sql", "CREATE TABLE t (v TEXT);");
	write_file(migdir, "0003_third.sql", "CREATE TABLE w (v TEXT);");
	ck_assert_int_eq(db_migrate(db, migdir), DB_ERROR);
	/* nothing applied, not even the part before the gap */
	ck_assert_query("PRAGMA user_version", "0");
	ck_assert_query("SELECT count(*) FROM sqlite_schema", "0");
}
END_TEST

START_TEST(test_migrate_refuses_duplicate)
{
	write_file(migdir, "0001_first.sql", "CREATE TABLE t (v TEXT);");
	write_file(migdir, "0001_again.sql", "CREATE TABLE w (v TEXT);");
	ck_assert_int_eq(db_migrate(db, migdir), DB_ERROR);
	ck_assert_query("PRAGMA user_version", "0");
	ck_assert_query("SELECT count(*) FROM sqlite_schema", "0");
}
END_TEST

START_TEST(test_migrate_refuses_transaction_statements)
{
	write_file(migdir, "0001_first.sql", "CREATE TABLE t (v TEXT); COMMIT;");
	ck_assert_int_eq(db_migrate(db, migdir), DB_ERROR);
	ck_assert_query("PRAGMA user_version", "0");
}
END_TEST

START_TEST(test_migrate_refuses_newer_database)
{
	write_file(migdir, "0001_first.sql", "CREATE TABLE t (v TEXT);");
	write_file(migdir, "0002_second.sql", "CREATE TABLE u (v TEXT);");
	ck_assert_int_eq(db_migrate(db, migdir), DB_OK);
	char *p = xasprintf("%s/0002_second.sql", migdir);
	ck_assert_int_eq(unlink(p), 0);
	free(p);
	ck_assert_int_eq(db_migrate(db, migdir), DB_ERROR);
	ck_assert_query("PRAGMA user_version", "2");
}
END_TEST

START_TEST(test_migrate_missing_dir)
{
	ck_assert_int_eq(db_migrate(db, "/nonexistent/migrations"), DB_ERROR);
}
END_TEST

/* --- executions and objects -------------------------------------------- */

START_TEST(test_execution_insert_with_files)
{
	const struct db_file in[] = {{"/workspace/data.csv", "aaaa"}, {"/workspace/x/y.txt", "bbbb"}};
	const struct db_file out[] = {{"/workspace/plot.png", "cccc"}};
	struct db_execution e = {
		.id = "0b6e3c1e-1111-4222-8333-444455556666",
		.kind = "execute",
		.started_ms = 1700000000000,
		.finished_ms = 1700000001234,
		.exit_code = 3,
		.status = "error",
		.source_code = "import os\nprint(os.environ['TOKEN'])\n",
		.env_names = "[\"TOKEN\",\"MODE\"]",
		.stdout_bytes = 2000000,
		.stderr_bytes = 17,
		.sandbox = "sbx-1",
		.error = NULL,
		.inputs = in, .n_inputs = 2,
		.outputs = out, .n_outputs = 1,
	};

	ck_assert_int_eq(db_execution_insert(db, &e), DB_OK);
	ck_assert_query("SELECT kind || '|' || exit_code || '|' || status || '|' || duration_ms"
			" || '|' || stdout_bytes || '|' || stderr_bytes || '|' || sandbox"
			" || '|' || coalesce(error, 'NULL') FROM executions",
			"execute|3|error|1234|2000000|17|sbx-1|NULL");
	ck_assert_query("SELECT started_at || ' ' || finished_at FROM executions",
			"2023-11-14T22:13:20.000Z 2023-11-14T22:13:21.234Z");
	ck_assert_query("SELECT source_code FROM executions", e.source_code);
	ck_assert_query("SELECT env_names FROM executions", "[\"TOKEN\",\"MODE\"]");
	ck_assert_query("SELECT group_concat(value, ',') FROM executions, json_each(env_names)",
			"TOKEN,MODE");
	ck_assert_query("SELECT group_concat(direction || ':' || path || '=' || object_id, ',')"
			" FROM (SELECT * FROM execution_files ORDER BY direction, path)",
			"input:/workspace/data.csv=aaaa,input:/workspace/x/y.txt=bbbb,"
			"output:/workspace/plot.png=cccc");
}
END_TEST

START_TEST(test_execution_insert_is_atomic)
{
	const struct db_file dup[] = {{"/workspace/a", "1"}, {"/workspace/a", "2"}};
	struct db_execution e = {
		.id = "e-dup", .kind = "execute", .status = "ok", .source_code = "pass",
		.env_names = "[]", .outputs = dup, .n_outputs = 2,
	};

	/* the second output violates the primary key: nothing of the run is kept */
	ck_assert_int_eq(db_execution_insert(db, &e), DB_ERROR);
	ck_assert_query("SELECT count(*) FROM executions", "0");
	ck_assert_query("SELECT count(*) FROM execution_files", "0");

	e.n_outputs = 1;
	ck_assert_int_eq(db_execution_insert(db, &e), DB_OK);
	/* the same id twice is refused */
	ck_assert_int_eq(db_execution_insert(db, &e), DB_ERROR);
	/* env_names must be a JSON array; NULL is stored as [] */
	e.id = "e-badenv";
	e.env_names = "TOKEN";
	ck_assert_int_eq(db_execution_insert(db, &e), DB_ERROR);
	e.id = "e-noenv";
	e.env_names = NULL;
	e.n_outputs = 0;
	ck_assert_int_eq(db_execution_insert(db, &e), DB_OK);
	ck_assert_query("SELECT env_names FROM executions WHERE id = 'e-noenv'", "[]");
	ck_assert_query("SELECT count(*) FROM executions", "2");
	ck_assert_query("SELECT count(*) FROM execution_files", "1");
}
END_TEST

START_TEST(test_execution_files_cascade)
{
	const struct db_file in[] = {{"/workspace/a", "1"}};
	struct db_execution e = {
		.id = "e1", .kind = "execute", .status = "ok", .source_code = "pass",
		.inputs = in, .n_inputs = 1,
	};
	sqlite3 *h = NULL;

	ck_assert_int_eq(db_execution_insert(db, &e), DB_OK);
	ck_assert_int_eq(sqlite3_open(dbpath, &h), SQLITE_OK);
	ck_assert_int_eq(sqlite3_busy_timeout(h, 5000), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(h, "PRAGMA foreign_keys = ON;"
				      " DELETE FROM executions WHERE id = 'e1'", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(h);
	ck_assert_query("SELECT count(*) FROM execution_files", "0");
}
END_TEST

START_TEST(test_object_touch)
{
	ck_assert_int_eq(db_object_touch(db, "abc", 5, 1000), DB_OK);
	ck_assert_query("SELECT size || '|' || created_ms || '|' || last_used_ms FROM file_objects",
			"5|1000|1000");
	ck_assert_int_eq(db_object_touch(db, "abc", 5, 5000), DB_OK);
	ck_assert_query("SELECT size || '|' || created_ms || '|' || last_used_ms FROM file_objects",
			"5|1000|5000");
	/* an older touch (another worker's, late) does not move last use back */
	ck_assert_int_eq(db_object_touch(db, "abc", 5, 3000), DB_OK);
	ck_assert_query("SELECT last_used_ms FROM file_objects", "5000");
	ck_assert_query("SELECT last_used_at FROM file_objects", "1970-01-01T00:00:05.000Z");
	ck_assert_query("SELECT count(*) FROM file_objects", "1");
	/* a caller that does not know the size passes 0: a known size stays, an
	 * unknown one is filled in later */
	ck_assert_int_eq(db_object_touch(db, "abc", 0, 6000), DB_OK);
	ck_assert_query("SELECT size FROM file_objects WHERE id = 'abc'", "5");
	ck_assert_int_eq(db_object_touch(db, "def", 0, 6000), DB_OK);
	ck_assert_int_eq(db_object_touch(db, "def", 42, 7000), DB_OK);
	ck_assert_query("SELECT size || '|' || created_ms || '|' || last_used_ms FROM file_objects"
			" WHERE id = 'def'", "42|6000|7000");
}
END_TEST

/* A scan of a large file_objects table (db_object_stats, at every /metrics
 * scrape) leaves at most DB_CACHE_KIB of pages with the connection, not
 * SQLite's default 2000 KiB: without the bound, each worker's memory grew by
 * about that much as the store grew. */
START_TEST(test_a_scan_leaves_the_page_cache_within_its_bound)
{
	sqlite3 *h = NULL;
	ck_assert_int_eq(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(h,
				      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
				      " WHERE i < 40000)"
				      " INSERT INTO file_objects (id, size, created_ms, last_used_ms)"
				      " SELECT printf('%064x', i), i, i, i FROM n",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(h), SQLITE_OK);
	ck_assert_query("SELECT page_count * page_size > 2 * 2000 * 1024 FROM pragma_page_count,"
			" pragma_page_size", "1");
	uint64_t count = 0, bytes = 0;
	sqlite3_int64 before = sqlite3_memory_used();
	ck_assert_msg(before > 0, "this SQLite counts no memory (SQLITE_DEFAULT_MEMSTATUS=0): "
				  "nothing to measure the cache with");
	ck_assert_int_eq(db_object_stats(db, &count, &bytes), DB_OK);
	sqlite3_int64 grown = sqlite3_memory_used() - before;
	ck_assert_uint_eq(count, 40000);
	ck_assert_uint_eq(bytes, 40000ULL * 40001 / 2);
	/* half again as headroom: SQLite's own page headers and the scan's cursor */
	ck_assert_msg(grown <= DB_CACHE_KIB * 1024 * 3 / 2, "the scan kept %lld bytes",
		      (long long)grown);
}
END_TEST

/* --- sandbox pool ---------------------------------------------------------- */

static void insert_ready(const char *id, pid_t pid, int64_t created)
{
	ck_assert_int_eq(db_sandbox_insert(db, id, pid, created), DB_OK);
	ck_assert_int_eq(db_sandbox_set_state(db, id, "ready", created + 1), DB_OK);
}

/* A connection leaves checkpoints to the cleanup process: its commits let the
 * WAL grow past SQLite's default 1000 pages (where a commit would checkpoint
 * and fsync), and db_checkpoint copies all of it back. */
START_TEST(test_checkpoints_are_left_to_db_checkpoint)
{
	char id[80];
	int pages = 0;
	for (int i = 0; i < 600; i++) {
		snprintf(id, sizeof(id), "%064d", i);
		ck_assert_int_eq(db_object_touch(db, id, 1, 1000 + i), DB_OK);
	}
	ck_assert_int_eq(db_checkpoint(db, &pages), DB_OK);
	ck_assert_int_gt(pages, 1000);
	ck_assert_int_lt(pages, DB_WAL_BACKSTOP_PAGES);
	char *n = query("SELECT count(*) FROM file_objects");
	ck_assert_str_eq(n, "600");
	free(n);
	/* all copied back: the next commit starts the WAL over */
	ck_assert_int_eq(db_object_touch(db, id, 1, 5000), DB_OK);
	ck_assert_int_eq(db_checkpoint(db, &pages), DB_OK);
	ck_assert_int_lt(pages, 10);
}
END_TEST

/* The first 32 bytes of the WAL: its header, which a writer that starts the
 * WAL over writes anew (and fsyncs). */
static void wal_header(unsigned char out[32])
{
	char *path = xasprintf("%s-wal", dbpath);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, out, 32, 0), 32);
	close(fd);
	free(path);
}

/* Once the cleanup process's checkpoint has copied everything back, the WAL is
 * started over by the cleanup process, not by the next request's write (which
 * would write and fsync its header in the middle of the request); and a pass
 * when nobody wrote does nothing. */
START_TEST(test_the_checkpointer_starts_the_wal_over)
{
	struct db *cleanup = db_open(dbpath);
	ck_assert_ptr_nonnull(cleanup);
	int pages = 0;
	ck_assert_int_eq(db_object_touch(db, "a", 1, 1000), DB_OK);
	ck_assert_int_eq(db_checkpoint(cleanup, &pages), DB_OK);
	ck_assert_int_gt(pages, 0);
	unsigned char before[32], after[32];
	wal_header(before);
	/* a request's write: appended, the header left as it was */
	ck_assert_int_eq(db_object_touch(db, "b", 1, 1001), DB_OK);
	wal_header(after);
	ck_assert_int_eq(memcmp(before, after, 32), 0);
	/* the next pass copies it back and starts over again */
	ck_assert_int_eq(db_checkpoint(cleanup, &pages), DB_OK);
	ck_assert_int_gt(pages, 1);
	wal_header(after);
	ck_assert_int_ne(memcmp(before, after, 32), 0);
	/* nobody wrote since: the WAL keeps the cleanup's own write */
	memcpy(before, after, 32);
	ck_assert_int_eq(db_checkpoint(cleanup, &pages), DB_OK);
	ck_assert_int_eq(pages, 1);
	ck_assert_int_eq(db_object_touch(db, "c", 1, 1002), DB_OK);
	wal_header(after);
	ck_assert_int_eq(memcmp(before, after, 32), 0);
	char *n = query("SELECT count(*) FROM file_objects");
	ck_assert_str_eq(n, "3");
	free(n);
	db_close(&cleanup);
}
END_TEST

/* The pool's table has no index (0006): each change of a sandbox's state, five
 * per execution, writes the table's one page to the WAL, not an index's too. */
START_TEST(test_a_sandbox_state_change_writes_one_page)
{
	char id[64];
	int before = 0, after = 0;
	insert_ready("s1", 1, 100);
	insert_ready("s2", 2, 200);
	ck_assert_int_eq(db_checkpoint(db, &before), DB_OK);
	ck_assert_int_eq(db_checkpoint(db, &before), DB_OK); /* the WAL started over */
	ck_assert_int_eq(db_sandbox_claim(db, 4242, 1000, id, sizeof(id)), DB_OK);
	ck_assert_int_eq(db_sandbox_set_state(db, id, "used", 1001), DB_OK);
	ck_assert_int_eq(db_checkpoint(db, &after), DB_OK);
	ck_assert_int_eq(after - before, 2);
}
END_TEST

START_TEST(test_sandbox_insert_and_state)
{
	int n = -1;

	ck_assert_int_eq(db_sandbox_insert(db, "s1", 101, 1000), DB_OK);
	ck_assert_query("SELECT state || '|' || pid || '|' || coalesce(claimer, 'NULL')"
			" FROM sandboxes", "starting|101|NULL");
	ck_assert_int_eq(db_sandbox_insert(db, "s1", 102, 1000), DB_ERROR); /* same id */
	ck_assert_int_eq(db_sandbox_set_state(db, "s1", "ready", 2000), DB_OK);
	ck_assert_query("SELECT state || '|' || updated_ms FROM sandboxes", "ready|2000");
	ck_assert_int_eq(db_sandbox_set_state(db, "s1", "bogus", 3000), DB_ERROR);
	ck_assert_int_eq(db_sandbox_set_state(db, "nope", "used", 3000), DB_NOT_FOUND);
	ck_assert_query("SELECT state FROM sandboxes", "ready");
	ck_assert_int_eq(db_sandbox_count(db, "ready", &n), DB_OK);
	ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(test_sandbox_claim_oldest_first)
{
	char id[64];

	/* created s-old first, but made ready last */
	ck_assert_int_eq(db_sandbox_insert(db, "s-old", 1, 100), DB_OK);
	insert_ready("s-mid", 2, 200);
	insert_ready("s-new", 3, 300);
	ck_assert_int_eq(db_sandbox_insert(db, "s-starting", 4, 50), DB_OK);
	ck_assert_int_eq(db_sandbox_set_state(db, "s-old", "ready", 999), DB_OK);

	ck_assert_int_eq(db_sandbox_claim(db, 4242, 1000, id, sizeof(id)), DB_OK);
	ck_assert_str_eq(id, "s-old");
	ck_assert_query("SELECT state || '|' || claimer || '|' || updated_ms FROM sandboxes"
			" WHERE id = 's-old'", "claimed|4242|1000");
	ck_assert_int_eq(db_sandbox_claim(db, 4243, 1001, id, sizeof(id)), DB_OK);
	ck_assert_str_eq(id, "s-mid");
	ck_assert_int_eq(db_sandbox_claim(db, 4244, 1002, id, sizeof(id)), DB_OK);
	ck_assert_str_eq(id, "s-new");
	snprintf(id, sizeof(id), "unchanged");
	ck_assert_int_eq(db_sandbox_claim(db, 4245, 1003, id, sizeof(id)), DB_NOT_FOUND);
	ck_assert_query("SELECT state FROM sandboxes WHERE id = 's-starting'", "starting");
	ck_assert_query("SELECT count(*) FROM sandboxes WHERE state = 'claimed'", "3");
}
END_TEST

/* Claims until none is left; writes each claimed id as one line to fd. */
static int claim_all(const char *path, int fd)
{
	struct db *mine = db_open(path);
	char id[64];
	char line[80];
	enum db_status rc;

	if (!mine)
		return 2;
	while ((rc = db_sandbox_claim(mine, getpid(), 5000, id, sizeof(id))) == DB_OK) {
		int n = snprintf(line, sizeof(line), "%s\n", id);
		if (write_all(fd, line, (size_t)n) < 0)
			return 3;
	}
	db_close(&mine);
	return rc == DB_NOT_FOUND ? 0 : 4;
}

START_TEST(test_sandbox_claim_atomic_across_processes)
{
	enum { N = 300, PROCS = 2 };
	int out[2], go[2];
	pid_t pids[PROCS];
	char name[32];

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "sbx-%03d", i);
		insert_ready(name, 1000 + i, 100 + i);
	}
	/* never carry a connection across fork: close ours first */
	db_close(&db);
	ck_assert_int_eq(pipe(out), 0);
	ck_assert_int_eq(pipe(go), 0);
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] == 0) {
			char c;
			close(out[0]);
			close(go[1]);
			/* start together: wait until the parent closes the go pipe */
			if (read(go[0], &c, 1) != 0)
				_exit(5);
			_exit(claim_all(dbpath, out[1]));
		}
	}
	close(out[1]);
	close(go[0]);
	close(go[1]);

	static char buf[N * 16];
	size_t len = 0;
	ssize_t r;
	while ((r = read(out[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	ck_assert_int_eq(r, 0);
	close(out[0]);
	buf[len] = '\0';
	for (int p = 0; p < PROCS; p++) {
		int status = 0;
		ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
		ck_assert(WIFEXITED(status));
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	}

	/* every sandbox claimed exactly once */
	int seen[N] = {0};
	int lines = 0;
	for (char *p = buf; *p; lines++) {
		char *nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		ck_assert_int_eq(strncmp(p, "sbx-", 4), 0);
		long k = strtol(p + 4, NULL, 10);
		ck_assert(k >= 0 && k < N);
		ck_assert_msg(seen[k] == 0, "%s claimed twice", p);
		seen[k] = 1;
		p = nl + 1;
	}
	ck_assert_int_eq(lines, N);
	ck_assert_query("SELECT count(*) FROM sandboxes WHERE state = 'claimed'", "300");
}
END_TEST

struct collected {
	char ids[8][128];
	pid_t claimers[8];
	int n;
};

static void collect(const struct db_sandbox *sandbox, void *arg)
{
	struct collected *c = arg;

	ck_assert_int_lt(c->n, 8);
	snprintf(c->ids[c->n], sizeof(c->ids[c->n]), "%s|%d|%s", sandbox->id, (int)sandbox->pid, sandbox->state);
	c->claimers[c->n] = sandbox->claimer;
	c->n++;
}

/* Deletes each row it is shown: db_sandbox_each must allow that. */
static void delete_it(const struct db_sandbox *sandbox, void *arg)
{
	int *deleted = arg;

	ck_assert_int_eq(db_sandbox_delete(db, sandbox->id), DB_OK);
	(*deleted)++;
}

START_TEST(test_sandbox_each_count_delete)
{
	struct collected c = {.n = 0};
	char id[64];
	int n = -1, deleted = 0;

	ck_assert_int_eq(db_sandbox_count(db, NULL, &n), DB_OK);
	ck_assert_int_eq(n, 0);
	insert_ready("a", 11, 100);
	insert_ready("b", 12, 200);
	ck_assert_int_eq(db_sandbox_insert(db, "c", 13, 300), DB_OK);
	ck_assert_int_eq(db_sandbox_claim(db, 77, 400, id, sizeof(id)), DB_OK);

	ck_assert_int_eq(db_sandbox_each(db, NULL, collect, &c), DB_OK);
	ck_assert_int_eq(c.n, 3);
	ck_assert_str_eq(c.ids[0], "a|11|claimed");
	ck_assert_int_eq(c.claimers[0], 77);
	ck_assert_str_eq(c.ids[1], "b|12|ready");
	ck_assert_int_eq(c.claimers[1], 0);
	ck_assert_str_eq(c.ids[2], "c|13|starting");

	c.n = 0;
	ck_assert_int_eq(db_sandbox_each(db, "ready", collect, &c), DB_OK);
	ck_assert_int_eq(c.n, 1);
	ck_assert_str_eq(c.ids[0], "b|12|ready");
	c.n = 0;
	ck_assert_int_eq(db_sandbox_each(db, "used", collect, &c), DB_OK);
	ck_assert_int_eq(c.n, 0);

	ck_assert_int_eq(db_sandbox_count(db, NULL, &n), DB_OK);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(db_sandbox_count(db, "claimed", &n), DB_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(db_sandbox_count(db, "used", &n), DB_OK);
	ck_assert_int_eq(n, 0);

	ck_assert_int_eq(db_sandbox_delete(db, "b"), DB_OK);
	ck_assert_int_eq(db_sandbox_delete(db, "b"), DB_NOT_FOUND);
	ck_assert_int_eq(db_sandbox_count(db, NULL, &n), DB_OK);
	ck_assert_int_eq(n, 2);

	ck_assert_int_eq(db_sandbox_each(db, NULL, delete_it, &deleted), DB_OK);
	ck_assert_int_eq(deleted, 2);
	ck_assert_int_eq(db_sandbox_count(db, NULL, &n), DB_OK);
	ck_assert_int_eq(n, 0);

	insert_ready("d", 14, 500);
	insert_ready("e", 15, 600);
	ck_assert_int_eq(db_sandbox_delete_all(db), DB_OK);
	ck_assert_int_eq(db_sandbox_count(db, NULL, &n), DB_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(db_sandbox_delete_all(db), DB_OK);
}
END_TEST

/* The final record of a run releases its sandbox in the same transaction:
 * both or neither. */
START_TEST(test_finish_releases_the_sandbox_with_the_record)
{
	char id[64];
	insert_ready("sb-1", 21, 100);
	ck_assert_int_eq(db_sandbox_claim(db, 77, 200, id, sizeof(id)), DB_OK);
	struct db_execution e = {.id = "11111111-2222-4333-8444-555555555555", .kind = "execute",
				 .started_ms = 300, .finished_ms = 400, .exit_code = -1,
				 .status = "running", .source_code = "pass", .sandbox = "sb-1",
				 .release = "sb-1"};
	ck_assert_int_eq(db_execution_begin(db, &e, 300), DB_OK);
	ck_assert_query("SELECT state FROM sandboxes WHERE id = 'sb-1'", "claimed");

	/* a record that fails (an unknown execution) releases nothing */
	e.id = "99999999-2222-4333-8444-555555555555";
	ck_assert_int_eq(db_execution_finish(db, &e), DB_ERROR);
	ck_assert_query("SELECT state FROM sandboxes WHERE id = 'sb-1'", "claimed");

	e.id = "11111111-2222-4333-8444-555555555555";
	e.status = "ok";
	e.exit_code = 0;
	ck_assert_int_eq(db_execution_finish(db, &e), DB_OK);
	ck_assert_query("SELECT status || '|' || finished_ms FROM executions", "ok|400");
	ck_assert_query("SELECT state || '|' || updated_ms FROM sandboxes WHERE id = 'sb-1'", "used|400");

	/* the sandbox row already gone (the manager reaped it): still recorded */
	ck_assert_int_eq(db_sandbox_delete(db, "sb-1"), DB_OK);
	ck_assert_int_eq(db_execution_finish(db, &e), DB_OK);
}
END_TEST

/* The record of a run's start claims a ready sandbox in the same transaction:
 * none ready still begins the run; a start that fails claims nothing. */
START_TEST(test_begin_claims_a_ready_sandbox_with_the_record)
{
	char id[64] = "";
	int claimed = -1;
	struct db_execution e = {.id = "11111111-2222-4333-8444-555555555555", .kind = "execute",
				 .started_ms = 300, .exit_code = -1, .status = "running",
				 .source_code = "pass"};
	ck_assert_int_eq(db_execution_begin_claim(db, &e, 300, 77, id, sizeof(id), &claimed), DB_OK);
	ck_assert_int_eq(claimed, 0);
	ck_assert_query("SELECT status FROM executions", "running");

	insert_ready("sb-1", 21, 100);
	/* the same execution id again: the insert fails, nothing is claimed */
	ck_assert_int_eq(db_execution_begin_claim(db, &e, 400, 77, id, sizeof(id), &claimed), DB_ERROR);
	ck_assert_int_eq(claimed, 0);
	ck_assert_query("SELECT state FROM sandboxes WHERE id = 'sb-1'", "ready");

	e.id = "22222222-2222-4333-8444-555555555555";
	ck_assert_int_eq(db_execution_begin_claim(db, &e, 500, 77, id, sizeof(id), &claimed), DB_OK);
	ck_assert_int_eq(claimed, 1);
	ck_assert_str_eq(id, "sb-1");
	ck_assert_query("SELECT state || '|' || claimer FROM sandboxes WHERE id = 'sb-1'", "claimed|77");
	ck_assert_query("SELECT count(*) FROM executions", "2");
}
END_TEST

START_TEST(test_package_install_recorded)
{
	ck_assert_int_eq(db_package_install_insert(db, &(struct db_package_install){
		.package = "opencv-python", .requirement = "opencv-python", .module = "cv2",
		.version = "4.9.0", .status = "ok", .started_ms = 1714564800000, .duration_ms = 1234,
		.log_tail = "Successfully installed", .execution_id = "e1",
	}), DB_OK);
	ck_assert_int_eq(db_package_install_insert(db, &(struct db_package_install){
		.package = "nope", .requirement = "nope==1", .status = "failed", .started_ms = 1,
	}), DB_OK);
	ck_assert_query("SELECT group_concat(package || '/' || requirement || '/' || coalesce(module, '-') || '/'"
			" || coalesce(version, '-') || '/' || status || '/' || duration_ms || '/' || log_tail"
			" || '/' || coalesce(execution_id, '-'), '|') FROM (SELECT * FROM package_installs ORDER BY id)",
			"opencv-python/opencv-python/cv2/4.9.0/ok/1234/Successfully installed/e1|"
			"nope/nope==1/-/-/failed/0//-");
	ck_assert_query("SELECT started_at FROM package_installs WHERE package = 'opencv-python'",
			"2024-05-01T12:00:00.000Z");
}
END_TEST

static void insert_dist(const char *dir, const char *package, const char *version, const char *requirement,
			const char *kind, uint64_t size, int64_t at, const char *execution_id)
{
	struct db_package_dist d = {.size_bytes = size, .installed_ms = at};
	snprintf(d.kind, sizeof(d.kind), "%s", kind);
	snprintf(d.dir, sizeof(d.dir), "%s", dir);
	snprintf(d.package, sizeof(d.package), "%s", package);
	snprintf(d.version, sizeof(d.version), "%s", version);
	snprintf(d.requirement, sizeof(d.requirement), "%s", requirement);
	snprintf(d.metadata, sizeof(d.metadata), "%s-%s.dist-info", package, version);
	ck_assert_int_eq(db_package_dist_insert(db, &d, execution_id), DB_OK);
}

/* Which cached directory serves a requirement: a bare name only what was
 * installed for a bare name (another client's pin never downgrades it), a pin
 * that version of those or of pins, anything else only what was installed for
 * exactly that requirement. */
START_TEST(test_package_dist_found_by_kind)
{
	struct db_package_dist d;
	insert_dist("b-2.0-x1", "b", "2.0", "b", "latest", 10, 100, NULL);
	insert_dist("b-1.0-x2", "b", "1.0", "b==1.0", "pin", 20, 200, NULL);
	insert_dist("b-2.0-x3", "b", "2.0", "b[x]>=2", "requirement", 30, 300, NULL);
	ck_assert_int_eq(db_package_dist_find(db, "b", "latest", NULL, &d), DB_OK);
	ck_assert_str_eq(d.dir, "b-2.0-x1");
	ck_assert_str_eq(d.kind, "latest");
	ck_assert_str_eq(d.metadata, "b-2.0.dist-info");
	ck_assert_int_eq(db_package_dist_find(db, "b", "pin", "1.0", &d), DB_OK);
	ck_assert_str_eq(d.dir, "b-1.0-x2");
	ck_assert_int_eq(db_package_dist_find(db, "b", "pin", "2.0", &d), DB_OK);
	ck_assert_str_eq(d.dir, "b-2.0-x1");
	ck_assert_int_eq(db_package_dist_find(db, "b", "pin", "3.0", &d), DB_NOT_FOUND);
	ck_assert_int_eq(db_package_dist_find(db, "b", "requirement", "b[x]>=2", &d), DB_OK);
	ck_assert_str_eq(d.dir, "b-2.0-x3");
	ck_assert_int_eq(db_package_dist_find(db, "b", "requirement", "b>=3", &d), DB_NOT_FOUND);
	ck_assert_int_eq(db_package_dist_find(db, "c", "latest", NULL, &d), DB_NOT_FOUND);
	/* a newer pin of an older version does not become the latest */
	insert_dist("b-0.9-x4", "b", "0.9", "b==0.9", "pin", 5, 400, NULL);
	ck_assert_int_eq(db_package_dist_find(db, "b", "latest", NULL, &d), DB_OK);
	ck_assert_str_eq(d.dir, "b-2.0-x1");
	ck_assert_int_eq(db_package_dist_get(db, "b-1.0-x2", &d), DB_OK);
	ck_assert_uint_eq(d.size_bytes, 20);
	uint64_t total = 0;
	ck_assert_int_eq(db_package_dists_size(db, &total), DB_OK);
	ck_assert_uint_eq(total, 65);
}
END_TEST

/* Eviction: least recently used first, never what a running execution uses,
 * each removal a package_evictions row in the same transaction. */
START_TEST(test_package_eviction_skips_what_running_executions_use)
{
	char dir[256];
	struct db_execution e = {.id = "11111111-2222-4333-8444-555555555555", .kind = "execute",
				 .started_ms = 50, .exit_code = -1, .status = "running", .source_code = "import a"};
	ck_assert_int_eq(db_execution_begin(db, &e, 50), DB_OK);
	insert_dist("a-1.0", "a", "1.0", "a", "latest", 10, 100, e.id); /* in use */
	insert_dist("b-1.0", "b", "1.0", "b", "latest", 10, 200, NULL);
	insert_dist("c-1.0", "c", "1.0", "c", "latest", 10, 300, NULL);
	ck_assert_int_eq(db_package_dist_use(db, NULL, "b-1.0", 400), DB_OK); /* b used last */
	ck_assert_int_eq(db_package_dist_use(db, e.id, "nope-1.0", 400), DB_NOT_FOUND);
	ck_assert_int_eq(db_package_evict_candidate(db, dir, sizeof(dir)), DB_OK);
	ck_assert_str_eq(dir, "c-1.0");
	ck_assert_int_eq(db_package_evict(db, "a-1.0", "cache full", 0, 500), DB_NOT_FOUND);
	ck_assert_int_eq(db_package_evict(db, "c-1.0", "cache full", 0, 500), DB_OK);
	ck_assert_int_eq(db_package_evict(db, "c-1.0", "cache full", 0, 500), DB_NOT_FOUND);
	ck_assert_int_eq(db_package_evict_candidate(db, dir, sizeof(dir)), DB_OK);
	ck_assert_str_eq(dir, "b-1.0");
	ck_assert_int_eq(db_package_evict(db, "b-1.0", "cache full", 0, 600), DB_OK);
	ck_assert_int_eq(db_package_evict_candidate(db, dir, sizeof(dir)), DB_NOT_FOUND);
	ck_assert_query("SELECT group_concat(dir || '/' || reason || '/' || last_used_ms || '/' || evicted_ms, '|')"
			" FROM (SELECT * FROM package_evictions ORDER BY id)",
			"c-1.0/cache full/300/500|b-1.0/cache full/400/600");
	/* once the run has finished its directory may go */
	e.status = "ok";
	e.finished_ms = 700;
	ck_assert_int_eq(db_execution_finish(db, &e), DB_OK);
	ck_assert_int_eq(db_package_evict_candidate(db, dir, sizeof(dir)), DB_OK);
	ck_assert_str_eq(dir, "a-1.0");
	ck_assert_int_eq(db_package_eviction_orphan(db, "x-1.0", 800), DB_OK);
	ck_assert_query("SELECT reason || '/' || coalesce(package, '-') FROM package_evictions WHERE dir = 'x-1.0'",
			"orphan/-");
}
END_TEST

static Suite *db_suite(void)
{
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("migrate");
	TCase *tr = tcase_create("record");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_sets_wal);
	tcase_add_test(tc, test_open_fails_cleanly);
	tcase_add_test(tc, test_migrate_from_zero_and_idempotent);
	tcase_add_test(tc, test_migrate_custom_in_order);
	tcase_add_test(tc, test_migrate_broken_rolls_back);
	tcase_add_test(tc, test_migrate_refuses_gap);
	tcase_add_test(tc, test_migrate_refuses_duplicate);
	tcase_add_test(tc, test_migrate_refuses_transaction_statements);
	tcase_add_test(tc, test_migrate_refuses_newer_database);
	tcase_add_test(tc, test_migrate_missing_dir);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tr, setup_schema, teardown);
	tcase_set_timeout(tr, 30);
	tcase_add_test(tr, test_execution_insert_with_files);
	tcase_add_test(tr, test_execution_insert_is_atomic);
	tcase_add_test(tr, test_execution_files_cascade);
	tcase_add_test(tr, test_object_touch);
	tcase_add_test(tr, test_a_scan_leaves_the_page_cache_within_its_bound);
	tcase_add_test(tr, test_sandbox_insert_and_state);
	tcase_add_test(tr, test_a_sandbox_state_change_writes_one_page);
	tcase_add_test(tr, test_checkpoints_are_left_to_db_checkpoint);
	tcase_add_test(tr, test_the_checkpointer_starts_the_wal_over);
	tcase_add_test(tr, test_sandbox_claim_oldest_first);
	tcase_add_test(tr, test_sandbox_claim_atomic_across_processes);
	tcase_add_test(tr, test_sandbox_each_count_delete);
	tcase_add_test(tr, test_finish_releases_the_sandbox_with_the_record);
	tcase_add_test(tr, test_begin_claims_a_ready_sandbox_with_the_record);
	tcase_add_test(tr, test_package_install_recorded);
	tcase_add_test(tr, test_package_dist_found_by_kind);
	tcase_add_test(tr, test_package_eviction_skips_what_running_executions_use);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(db_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
