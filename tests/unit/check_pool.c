/* check_pool: the worker's side of the pool (fcgi-app/pool.c) against a real
 * database: a waiting claim is woken by the manager's announcement of a ready
 * sandbox (not by its own periodic retry), stale announcements do not make it
 * spin, it gives up at the claim timeout, and a sandbox is handed out once. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "pool.h"
#include "util.h"

#define REPO_MIGRATIONS DATADIR "/migrations"

static char tmpdir[64];
static char *dbpath;
static struct db *db;
static int notify[2];
static int ready_fd;
static struct config cfg;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_pool.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	dbpath = xasprintf("%s/record.db", tmpdir);
	db = db_open(dbpath);
	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(db_migrate(db, REPO_MIGRATIONS), DB_OK);
	ck_assert_int_eq(pipe2(notify, O_NONBLOCK | O_CLOEXEC), 0);
	ready_fd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(ready_fd, 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.claim_timeout = 5;
}

static void teardown(void)
{
	db_close(&db);
	close(notify[0]);
	close(notify[1]);
	close(ready_fd);
	ck_assert_int_eq(remove_tree(tmpdir), 0);
	free(dbpath);
}

/* A worker waiting in pool_claim on a thread of its own. */
struct claimer {
	pid_t tid;
	enum ci_status st;
	char id[POOL_ID_MAX];
	int64_t claimed_ms; /* monotonic */
	int64_t cpu_ms;     /* the thread's own CPU time during the claim */
};

static int64_t thread_cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *claimer(void *arg)
{
	struct claimer *c = arg;
	struct db *own = db_open(dbpath);
	ck_assert_ptr_nonnull(own);
	__atomic_store_n(&c->tid, gettid(), __ATOMIC_RELEASE);
	int64_t cpu0 = thread_cpu_ms();
	c->st = pool_claim(own, monotonic_ms() + (int64_t)(cfg.claim_timeout * 1000), notify[1], ready_fd, c->id);
	c->claimed_ms = monotonic_ms();
	c->cpu_ms = thread_cpu_ms() - cpu0;
	db_close(&own);
	return NULL;
}

/* Waits until the claimer sleeps (its first claim failed: it waits for an
 * announcement), reading its state from /proc. */
static void wait_until_asleep(struct claimer *c)
{
	pid_t tid;
	while ((tid = __atomic_load_n(&c->tid, __ATOMIC_ACQUIRE)) == 0)
		sched_yield();
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (;;) {
		FILE *f = fopen(path, "r");
		ck_assert_ptr_nonnull(f);
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *end = strrchr(buf, ')'); /* the state follows the command's name */
		ck_assert_ptr_nonnull(end);
		if (end[2] == 'S')
			return;
		sched_yield();
	}
}

START_TEST(woken_by_the_announcement)
{
	struct claimer c = {0};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, claimer, &c), 0);
	wait_until_asleep(&c);
	ck_assert_int_eq(db_sandbox_insert(db, "sbx-announced", 42, now_ms()), DB_OK);
	ck_assert_int_eq(db_sandbox_set_state(db, "sbx-announced", "ready", now_ms()), DB_OK);
	int64_t announced_ms = monotonic_ms();
	pool_announce(ready_fd);
	pthread_join(t, NULL);
	ck_assert_int_eq(c.st, CI_OK);
	ck_assert_str_eq(c.id, "sbx-announced");
	/* without the announcement the retry comes 64 ms after the wait began */
	ck_assert_int_lt(c.claimed_ms - announced_ms, 30);
	char b;
	ck_assert_int_eq(read(notify[0], &b, 1), 1); /* the manager was woken to refill */
}
END_TEST

START_TEST(stale_announcements_do_not_spin)
{
	/* five announcements for sandboxes other workers took: each costs one
	 * claim attempt, then the worker sleeps until the timeout */
	for (int i = 0; i < 5; i++)
		pool_announce(ready_fd);
	cfg.claim_timeout = 0.3;
	struct claimer c = {0};
	pthread_t t;
	int64_t t0 = monotonic_ms();
	ck_assert_int_eq(pthread_create(&t, NULL, claimer, &c), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(c.st, CI_UNAVAILABLE);
	ck_assert_int_ge(c.claimed_ms - t0, 300);
	ck_assert_int_lt(c.cpu_ms, 100); /* asleep, not polling the database */
	uint64_t left;
	ck_assert_int_eq(read(ready_fd, &left, sizeof(left)), -1); /* all taken */
}
END_TEST

START_TEST(ready_before_the_wait)
{
	ck_assert_int_eq(db_sandbox_insert(db, "sbx-waiting", 7, now_ms()), DB_OK);
	ck_assert_int_eq(db_sandbox_set_state(db, "sbx-waiting", "ready", now_ms()), DB_OK);
	char id[POOL_ID_MAX];
	ck_assert_int_eq(pool_claim(db, monotonic_ms() + (int64_t)(cfg.claim_timeout * 1000), notify[1], ready_fd, id), CI_OK);
	ck_assert_str_eq(id, "sbx-waiting");
	/* claimed once: nothing left for the next worker */
	ck_assert_int_eq(pool_claim(db, monotonic_ms() + 50, notify[1], ready_fd, id), CI_UNAVAILABLE);
}
END_TEST

START_TEST(await_takes_one_announcement)
{
	ck_assert_int_eq(pool_await(ready_fd, 20), 0); /* none: back after the limit */
	pool_announce(ready_fd);
	pool_announce(ready_fd);
	ck_assert_int_eq(pool_await(ready_fd, 1000), 1);
	ck_assert_int_eq(pool_await(ready_fd, 1000), 1);
	int64_t t0 = monotonic_ms();
	ck_assert_int_eq(pool_await(ready_fd, 50), 0); /* both taken */
	ck_assert_int_ge(monotonic_ms() - t0, 50);
}
END_TEST

static Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("claim");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, woken_by_the_announcement);
	tcase_add_test(tc, stale_announcements_do_not_spin);
	tcase_add_test(tc, ready_before_the_wait);
	tcase_add_test(tc, await_takes_one_announcement);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
