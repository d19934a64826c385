/* check_cleanup: retention (fcgi-app/cleanup.c) with the db and store calls it
 * relies on, the execution lifecycle rows (begin, finish, interrupt) and the
 * scoreboard, on a fresh store and database under /tmp. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "db.h"
#include "scoreboard.h"
#include "store.h"
#include "util.h"

#define REPO_MIGRATIONS DATADIR "/migrations"

static char tmpdir[64];
static struct db *db;
static struct store st;
static struct config cfg;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_cleanup.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	char *dbpath = xasprintf("%s/record.db", tmpdir);
	char *objects = xasprintf("%s/objects", tmpdir);
	db = db_open(dbpath);
	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(db_migrate(db, REPO_MIGRATIONS), DB_OK);
	ck_assert_int_eq(store_open(&st, objects), STORE_OK);
	memset(&cfg, 0, sizeof(cfg));
	cfg.file_ttl = 100;         /* seconds */
	cfg.audit_retention = 1000; /* seconds */
	free(dbpath);
	free(objects);
}

static void teardown(void)
{
	db_close(&db);
	store_close(&st);
	ck_assert_int_eq(remove_tree(tmpdir), 0);
}

/* Stores text and gives it a row last used at used_ms. */
static void put(const char *text, int64_t used_ms, char id[STORE_ID_LEN + 1])
{
	ck_assert_int_eq(store_put(&st, text, strlen(text), id), STORE_OK);
	ck_assert_int_eq(db_object_touch(db, id, strlen(text), used_ms, NULL), DB_OK);
}

static void begin_run(const char *id, const char *input, int64_t started)
{
	struct db_file in = {"/workspace/in.txt", input};
	struct db_execution e = {.id = id, .kind = "execute", .started_ms = started, .exit_code = -1,
				 .status = "running", .source_code = "pass", .inputs = input ? &in : NULL,
				 .n_inputs = input ? 1 : 0};
	ck_assert_int_eq(db_execution_begin(db, &e, started), DB_OK);
}

static void finish_run(const char *id, int64_t started, int64_t finished)
{
	struct db_execution e = {.id = id, .kind = "execute", .started_ms = started, .finished_ms = finished,
				 .exit_code = 0, .status = "ok", .source_code = "pass"};
	ck_assert_int_eq(db_execution_finish(db, &e), DB_OK);
}

START_TEST(test_expired_object_goes_row_and_file_fresh_and_in_use_stay)
{
	int64_t now = 10000000;
	char old[STORE_ID_LEN + 1], fresh[STORE_ID_LEN + 1], used[STORE_ID_LEN + 1];
	put("old", now - 200000, old);
	put("fresh", now - 1000, fresh);
	put("in use", now - 200000, used);
	/* a run in flight has 'used' as input, then its row is made old again */
	begin_run("run-1", used, now - 300000);
	ck_assert_int_eq(db_object_touch(db, used, 6, 0, NULL), DB_OK); /* never lowers last_used */
	struct cleanup_report r;
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now + 200000, &r), 0);
	/* at now+200 s: 'fresh' (used now-1 s) expired too; 'used' is pinned by the running run */
	ck_assert(!store_exists(&st, old));
	ck_assert_int_eq(db_object_known(db, old), DB_NOT_FOUND);
	ck_assert(!store_exists(&st, fresh));
	ck_assert(store_exists(&st, used));
	ck_assert_int_eq(db_object_known(db, used), DB_OK);
	ck_assert_int_eq(r.objects, 2);
	ck_assert_int_eq(r.bytes, 3 + 5);
	/* the run finishes: now its input can expire */
	finish_run("run-1", now - 300000, now);
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now + 200000, &r), 0);
	ck_assert_int_eq(r.objects, 1);
	ck_assert(!store_exists(&st, used));
}
END_TEST

START_TEST(test_fresh_objects_are_kept)
{
	int64_t now = 10000000;
	char id[STORE_ID_LEN + 1];
	put("recent", now - 99000, id);
	struct cleanup_report r;
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert_int_eq(r.objects, 0);
	ck_assert(store_exists(&st, id));
	uint64_t n = 0, bytes = 0;
	ck_assert_int_eq(db_object_stats(db, &n, &bytes), DB_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(bytes, 6);
}
END_TEST

START_TEST(test_orphan_files_and_stale_temps_are_removed)
{
	char id[STORE_ID_LEN + 1];
	ck_assert_int_eq(store_put(&st, "no row", 6, id), STORE_OK); /* a file without a row */
	char *tmp = xasprintf("%s/.tmp-crash", st.dir);
	int fd = open(tmp, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
	ck_assert_int_eq(utimensat(AT_FDCWD, tmp, old, 0), 0);
	struct cleanup_report r;
	/* orphans count only once older than the TTL: the pass runs "later" */
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now_ms() + 200000, &r), 0);
	ck_assert_int_eq(r.orphans, 1);
	ck_assert_int_eq(r.temps, 1);
	ck_assert(!store_exists(&st, id));
	ck_assert_int_eq(access(tmp, F_OK), -1);
	free(tmp);
}
END_TEST

START_TEST(test_old_finished_records_go_running_ones_stay)
{
	int64_t now = 100000000;
	begin_run("old", NULL, now - 2000000);
	finish_run("old", now - 2000000, now - 1999000);
	begin_run("recent", NULL, now - 10000);
	finish_run("recent", now - 10000, now - 9000);
	begin_run("old-running", NULL, now - 2000000);
	struct cleanup_report r;
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert_int_eq(r.executions, 1);
	ck_assert_int_eq(db_execution_interrupt(db, "old", "x", now), DB_NOT_FOUND); /* gone */
	ck_assert_int_eq(db_execution_interrupt(db, "old-running", "worker died", now), DB_OK);
	ck_assert_int_eq(db_execution_interrupt(db, "old-running", "again", now), DB_NOT_FOUND);
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert_int_eq(r.executions, 1); /* interrupted now, so old enough to go */
}
END_TEST

START_TEST(test_interrupt_all_marks_only_running_rows)
{
	begin_run("a", NULL, 1000);
	begin_run("b", NULL, 1000);
	finish_run("b", 1000, 2000);
	int n = -1;
	ck_assert_int_eq(db_executions_interrupt_all(db, 3000, &n), DB_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(db_executions_interrupt_all(db, 3000, &n), DB_OK);
	ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_finish_of_a_run_never_begun_fails)
{
	struct db_execution e = {.id = "nope", .kind = "execute", .status = "ok", .source_code = ""};
	ck_assert_int_eq(db_execution_finish(db, &e), DB_ERROR);
}
END_TEST

START_TEST(test_scoreboard_counts_and_hands_unfinished_runs_to_the_next_worker)
{
	struct scoreboard_view v;
	scoreboard_request(1, 200); /* no board yet: a no-op */
	scoreboard_read(&v);
	ck_assert_int_eq(v.present, 0);
	ck_assert_int_eq(scoreboard_create(), 0);
	scoreboard_request(1, 200);
	scoreboard_request(1, 200);
	scoreboard_request(99, 418); /* out of range: route 0, code "other" */
	scoreboard_execution(SB_OK, 70);
	scoreboard_execution(SB_TIMEOUT, 700000);
	scoreboard_cleanup(SB_CL_OBJECTS, 3);
	scoreboard_read(&v);
	ck_assert_int_eq(v.requests[1][0], 2);
	ck_assert_int_eq(v.requests[0][SB_CODES - 1], 1);
	ck_assert_int_eq(v.buckets[1], 1);          /* 70 ms: le 0.1 */
	ck_assert_int_eq(v.buckets[SB_BUCKETS], 1); /* 700 s: over the top bound */
	ck_assert_int_eq(v.exec_count, 2);
	ck_assert_int_eq(v.outcomes[SB_TIMEOUT], 1);
	ck_assert_int_eq(v.cleanup[SB_CL_OBJECTS], 3);

	char id[SB_EXEC_ID];
	scoreboard_set_slot(3);
	ck_assert_int_eq(scoreboard_take_unfinished(id), 0);
	scoreboard_exec_begin("exec-1");
	scoreboard_exec_end();
	ck_assert_int_eq(scoreboard_take_unfinished(id), 0);
	scoreboard_exec_begin("exec-2"); /* ... and the worker dies here */
	ck_assert_int_eq(scoreboard_take_unfinished(id), 1);
	ck_assert_str_eq(id, "exec-2");
	ck_assert_int_eq(scoreboard_take_unfinished(id), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cleanup");
	TCase *t = tcase_create("retention");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, test_expired_object_goes_row_and_file_fresh_and_in_use_stay);
	tcase_add_test(t, test_fresh_objects_are_kept);
	tcase_add_test(t, test_orphan_files_and_stale_temps_are_removed);
	tcase_add_test(t, test_old_finished_records_go_running_ones_stay);
	tcase_add_test(t, test_interrupt_all_marks_only_running_rows);
	tcase_add_test(t, test_finish_of_a_run_never_begun_fails);
	suite_add_tcase(s, t);
	TCase *b = tcase_create("scoreboard");
	tcase_add_test(b, test_scoreboard_counts_and_hands_unfinished_runs_to_the_next_worker);
	suite_add_tcase(s, b);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
