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

/* Sets the object file's modification time (its last use on any replica). */
static void set_file_used(const char *id, int64_t used_ms)
{
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {used_ms / 1000, (used_ms % 1000) * 1000000}};
	ck_assert_int_eq(utimensat(st.dirfd, id, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Stores text and gives it a row last used at used_ms, its file too. */
static void put(const char *text, int64_t used_ms, char id[STORE_ID_LEN + 1])
{
	ck_assert_int_eq(store_put(&st, text, strlen(text), id), STORE_OK);
	ck_assert_int_eq(db_object_touch(db, id, strlen(text), used_ms), DB_OK);
	set_file_used(id, used_ms);
}

static void find_id(const char *id, uint64_t size, void *arg)
{
	const char **want = arg;
	(void)size;
	if (*want && strcmp(id, *want) == 0)
		*want = NULL;
}

/* Whether d has a row for id last used before cutoff_ms. */
static int row_older(struct db *d, const char *id, int64_t cutoff_ms)
{
	const char *want = id;
	ck_assert_int_eq(db_objects_expired(d, cutoff_ms, "", 1000, find_id, &want), DB_OK);
	return want == NULL;
}

/* Whether the store holds .owners/<id>. */
static int has_owners(const char *id)
{
	char *path = xasprintf("%s/" STORE_OWNERS "/%s", st.dir, id);
	int r = access(path, F_OK) == 0;
	free(path);
	return r;
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
	ck_assert_int_eq(db_object_touch(db, used, 6, 0), DB_OK); /* never lowers last_used */
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

/* Replica A (db, this test's database) and replica B (its own database)
 * share the store. B uses an object A last used long ago: A's cleanup keeps
 * it and renews its row from the file; once nobody used it within the TTL,
 * A's cleanup removes it, its ownership entries too. */
START_TEST(test_an_object_another_replica_used_is_kept_until_nobody_uses_it)
{
	int64_t now = now_ms();
	char id[STORE_ID_LEN + 1], idle[STORE_ID_LEN + 1];
	put("shared", now - 200000, id);
	put("idle", now - 200000, idle);
	ck_assert_int_eq(store_own(&st, id, "alice"), STORE_OK);
	ck_assert_int_eq(store_own(&st, idle, "alice"), STORE_OK);
	char *b_path = xasprintf("%s/replica-b.db", tmpdir);
	struct db *b = db_open(b_path);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(db_migrate(b, REPO_MIGRATIONS), DB_OK);
	/* B's use: its own row, and the file (files_open) */
	ck_assert_int_eq(store_touch(&st, id), STORE_OK);
	ck_assert_int_eq(db_object_touch(b, id, 6, now_ms()), DB_OK);

	struct cleanup_report r;
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert(store_exists(&st, id));
	ck_assert(has_owners(id));
	ck_assert_int_eq(db_object_known(db, id), DB_OK);
	ck_assert(!row_older(db, id, now - 2000)); /* renewed from the file */
	ck_assert_int_eq(r.renewed, 1);
	/* what neither used went, with its entries */
	ck_assert(!store_exists(&st, idle));
	ck_assert(!has_owners(idle));
	ck_assert_int_eq(r.objects, 1);

	/* a TTL later nobody has used it: A's row and the file are old */
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now + 200000, &r), 0);
	ck_assert_int_eq(r.objects, 1);
	ck_assert_int_eq(r.renewed, 0);
	ck_assert(!store_exists(&st, id));
	ck_assert(!has_owners(id));
	ck_assert_int_eq(db_object_known(db, id), DB_NOT_FOUND);
	/* B's row names a file that is gone: its own cleanup drops it */
	ck_assert_int_eq(cleanup_pass(&cfg, b, &st, now + 200000, &r), 0);
	ck_assert_int_eq(db_object_known(b, id), DB_NOT_FOUND);
	db_close(&b);
	free(b_path);
}
END_TEST

/* An object without a row here is another replica's (or a crash's): judged
 * by its file's modification time alone. */
START_TEST(test_another_replicas_object_goes_only_when_its_file_is_old)
{
	int64_t now = now_ms();
	char id[STORE_ID_LEN + 1];
	ck_assert_int_eq(store_put(&st, "theirs", 6, id), STORE_OK);
	ck_assert_int_eq(store_own(&st, id, "bob"), STORE_OK);
	struct cleanup_report r;
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert_int_eq(r.orphans, 0);
	ck_assert(store_exists(&st, id));
	/* used just now by the other replica, whatever its age before */
	set_file_used(id, now - 200000);
	ck_assert_int_eq(store_touch(&st, id), STORE_OK);
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert_int_eq(r.orphans, 0);
	ck_assert(store_exists(&st, id));
	set_file_used(id, now - 200000);
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert_int_eq(r.orphans, 1);
	ck_assert(!store_exists(&st, id));
	ck_assert(!has_owners(id));
}
END_TEST

/* Ownership entries whose object is gone (a crash between the two
 * removals) go once older than the TTL. */
START_TEST(test_stale_owner_entries_are_removed)
{
	int64_t now = now_ms();
	char id[STORE_ID_LEN + 1];
	ck_assert_int_eq(store_put(&st, "gone", 4, id), STORE_OK);
	ck_assert_int_eq(store_own(&st, id, "alice"), STORE_OK);
	char *path = xasprintf("%s/%s", st.dir, id);
	ck_assert_int_eq(unlink(path), 0); /* the object, not its entries */
	free(path);
	struct cleanup_report r;
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now, &r), 0);
	ck_assert_int_eq(r.owners, 0);
	ck_assert(has_owners(id));
	ck_assert_int_eq(cleanup_pass(&cfg, db, &st, now + 200000, &r), 0);
	ck_assert_int_eq(r.owners, 1);
	ck_assert(!has_owners(id));
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
	scoreboard_execution(OUTCOME_OK, 70);
	scoreboard_execution(OUTCOME_TIMEOUT, 700000);
	scoreboard_cleanup(CLEANUP_OBJECTS, 3);
	scoreboard_read(&v);
	ck_assert_int_eq(v.requests[1][0], 2);
	ck_assert_int_eq(v.requests[0][SCOREBOARD_CODES - 1], 1);
	ck_assert_int_eq(v.buckets[1], 1);          /* 70 ms: le 0.1 */
	ck_assert_int_eq(v.buckets[SCOREBOARD_BUCKETS], 1); /* 700 s: over the top bound */
	ck_assert_int_eq(v.exec_count, 2);
	ck_assert_int_eq(v.outcomes[OUTCOME_TIMEOUT], 1);
	ck_assert_int_eq(v.cleanup[CLEANUP_OBJECTS], 3);

	char id[SCOREBOARD_EXEC_ID];
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
	tcase_add_test(t, test_an_object_another_replica_used_is_kept_until_nobody_uses_it);
	tcase_add_test(t, test_another_replicas_object_goes_only_when_its_file_is_old);
	tcase_add_test(t, test_stale_owner_entries_are_removed);
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
