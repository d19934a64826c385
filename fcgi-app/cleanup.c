/* cleanup: retention passes and the process that runs them (see cleanup.h). */
#include "cleanup.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "files.h"
#include "log.h"
#include "scoreboard.h"
#include "util.h"

#define BATCH 256
#define EXEC_BATCH 500
#define CHECKPOINT_MS 1000 /* the WAL's copy back into the database (db.h) */

struct victim { char id[STORE_ID_LEN + 1]; uint64_t size; int deleted; };

struct batch { struct victim *v; size_t n; };

static void add_expired(const char *id, uint64_t size, void *arg)
{
	struct batch *b = arg;
	if (strlen(id) > STORE_ID_LEN)
		return;
	memcpy(b->v[b->n].id, id, strlen(id) + 1);
	b->v[b->n].size = size;
	b->v[b->n].deleted = 0;
	b->n++;
}

/* Whether an object whose row expired was used since cutoff on another
 * replica sharing the store (its file's modification time): its row then
 * takes that time and it stays. -1 when the file cannot be read (kept, for
 * the next pass to decide). */
static int used_elsewhere(struct db *db, struct store *st, const char *id, int64_t cutoff, struct cleanup_report *r)
{
	int64_t used = 0;
	enum store_status s = store_last_used(st, id, &used);
	if (s == STORE_NOT_FOUND)
		return 0; /* gone already: the row goes */
	if (s != STORE_OK)
		return -1;
	if (used < cutoff)
		return 0;
	if (db_object_touch(db, id, 0, used) == DB_OK)
		r->renewed++;
	return 1;
}

/* Expired objects, BATCH at a time: rows deleted in one transaction, then the
 * files, all under the exclusive lock; an object another replica used since
 * the cutoff keeps its file and row (used_elsewhere). */
static int expire_objects(struct db *db, struct store *st, int64_t cutoff, struct cleanup_report *r)
{
	struct batch b = {.v = xcalloc(BATCH, sizeof(struct victim))};
	char after[STORE_ID_LEN + 1] = "";
	int rc = 0;
	for (;;) {
		b.n = 0;
		if (db_objects_expired(db, cutoff, after, BATCH, add_expired, &b) != DB_OK) {
			rc = -1;
			break;
		}
		if (b.n == 0)
			break;
		memcpy(after, b.v[b.n - 1].id, sizeof(after));
		int locked = store_lock_exclusive(st) == 0;
		if (!locked || db_begin(db) != DB_OK) {
			if (locked)
				store_unlock(st);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < b.n; i++)
			b.v[i].deleted = used_elsewhere(db, st, b.v[i].id, cutoff, r) == 0 &&
					 db_object_delete_expired(db, b.v[i].id, cutoff) == DB_OK;
		if (db_commit(db) != DB_OK) {
			store_unlock(st);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < b.n; i++) {
			if (!b.v[i].deleted)
				continue;
			enum store_status s = store_remove(st, b.v[i].id);
			if (s != STORE_OK && s != STORE_NOT_FOUND)
				continue; /* logged; the file is an orphan for the next pass */
			r->objects++;
			r->bytes += b.v[i].size;
		}
		store_unlock(st);
		if (b.n < BATCH)
			break;
	}
	free(b.v);
	return rc;
}

struct files { struct victim *v; size_t n, cap; int64_t cutoff_s; };

static void add_old_file(const char *id, uint64_t size, int64_t mtime_s, void *arg)
{
	struct files *f = arg;
	if (mtime_s >= f->cutoff_s)
		return;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
	}
	memcpy(f->v[f->n].id, id, STORE_ID_LEN + 1);
	f->v[f->n].size = size;
	f->n++;
}

/* Object files older than the TTL with no row: a cleanup that died between
 * its row delete and its unlink, a writer that died between its rename and
 * its touch, or the object of another replica sharing the store that nobody
 * used within the TTL (its file's modification time is its last use on any
 * replica). Checked again, through a fresh open (store_last_used), and
 * removed under the exclusive lock; their ownership entries go with them. */
static int remove_orphans(struct db *db, struct store *st, int64_t cutoff_ms, struct cleanup_report *r)
{
	struct files f = {.cutoff_s = cutoff_ms / 1000};
	int rc = 0;
	if (store_each_object(st, add_old_file, &f) < 0)
		return -1;
	for (size_t i = 0; i < f.n && rc == 0; i += BATCH) {
		if (store_lock_exclusive(st) < 0) {
			rc = -1;
			break;
		}
		for (size_t k = i; k < f.n && k < i + BATCH; k++) {
			enum db_status s = db_object_known(db, f.v[k].id);
			if (s != DB_OK && s != DB_NOT_FOUND) {
				rc = -1;
				break;
			}
			int64_t used = 0;
			if (s == DB_NOT_FOUND && store_last_used(st, f.v[k].id, &used) == STORE_OK &&
			    used < cutoff_ms && store_remove(st, f.v[k].id) == STORE_OK) {
				log_info("cleanup: removed orphan object file %s", f.v[k].id);
				r->orphans++;
			}
		}
		store_unlock(st);
	}
	free(f.v);
	return rc;
}

int cleanup_pass(const struct config *cfg, struct db *db, struct store *st, int64_t now,
		 struct cleanup_report *r)
{
	memset(r, 0, sizeof(*r));
	int64_t object_cutoff = now - (int64_t)(cfg->file_ttl * 1000);
	int64_t exec_cutoff = now - (int64_t)(cfg->audit_retention * 1000);
	int rc = 0;

	r->temps = store_remove_stale_temps(st);
	if (expire_objects(db, st, object_cutoff, r) < 0)
		rc = -1;
	if (rc == 0 && remove_orphans(db, st, object_cutoff, r) < 0)
		rc = -1;
	if (rc == 0 && store_lock_exclusive(st) == 0) {
		r->owners = store_remove_stale_owners(st, object_cutoff);
		store_unlock(st);
	}
	for (int n = EXEC_BATCH; rc == 0 && n == EXEC_BATCH;) {
		if (db_executions_delete_before(db, exec_cutoff, EXEC_BATCH, &n) != DB_OK)
			rc = -1;
		r->executions += n;
	}
	return rc;
}

static void count(const struct cleanup_report *r)
{
	scoreboard_cleanup(CLEANUP_OBJECTS, (uint64_t)r->objects);
	scoreboard_cleanup(CLEANUP_BYTES, r->bytes);
	scoreboard_cleanup(CLEANUP_EXECUTIONS, (uint64_t)r->executions);
	scoreboard_cleanup(CLEANUP_TEMPS, (uint64_t)r->temps);
	scoreboard_cleanup(CLEANUP_ORPHANS, (uint64_t)r->orphans);
	scoreboard_cleanup(CLEANUP_PASSES, 1);
}

int cleanup_run(const struct config *cfg)
{
	struct db *db = NULL;
	struct store st = {.dirfd = -1, .lockfd = -1};
	int rc = 1;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	db = db_open(cfg->db_path);
	if (sfd < 0 || !db || files_store_open(&st, cfg, 0) != STORE_OK)
		goto out;
	int64_t interval = (int64_t)(cfg->cleanup_interval * 1000);
	int64_t next = monotonic_ms() + interval;
	int ckpt_failed = 0;
	for (;;) {
		int64_t wait = next - monotonic_ms();
		struct pollfd p = {.fd = sfd, .events = POLLIN};
		int n = poll(&p, 1, wait > 0 ? (int)(wait > CHECKPOINT_MS ? CHECKPOINT_MS : wait) : 0);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0) {
			rc = 0; /* SIGTERM or SIGINT */
			break;
		}
		/* logged once per run of failures, not every second */
		enum db_status ck = db_checkpoint(db, NULL);
		if (ck == DB_ERROR && !ckpt_failed)
			log_warn("cleanup: checkpoint failed; connections checkpoint past %d WAL pages",
				 DB_WAL_BACKSTOP_PAGES);
		ckpt_failed = ck == DB_ERROR;
		if (monotonic_ms() < next)
			continue;
		struct cleanup_report r;
		if (cleanup_pass(cfg, db, &st, now_ms(), &r) < 0)
			log_warn("cleanup: pass stopped early (the database is busy or failing); next in %g s",
				 cfg->cleanup_interval);
		count(&r);
		if (r.objects || r.executions || r.temps || r.orphans || r.owners || r.renewed)
			log_info("cleanup: removed %d objects (%llu bytes), %d executions, %d temp files, "
				 "%d orphan files, %d stale owner entries; kept %d used on another replica",
				 r.objects, (unsigned long long)r.bytes, r.executions, r.temps, r.orphans, r.owners,
				 r.renewed);
		next = monotonic_ms() + interval;
	}
out:
	store_close(&st);
	db_close(&db);
	if (sfd >= 0)
		close(sfd);
	return rc;
}

int cleanup_once(const struct config *cfg, FILE *out)
{
	struct db *db = db_open(cfg->db_path);
	struct store st = {.dirfd = -1, .lockfd = -1};
	int rc = 1;
	char *migrations = xasprintf("%s/migrations", cfg->data_dir);
	enum db_status mst = db ? db_migrate(db, migrations) : DB_ERROR;
	free(migrations);
	if (mst != DB_OK || files_store_open(&st, cfg, 0) != STORE_OK)
		goto done;
	struct cleanup_report r;
	int pass = cleanup_pass(cfg, db, &st, now_ms(), &r);
	fprintf(out, "removed %d objects (%llu bytes), %d executions, %d temp files, %d orphan files, "
		"%d stale owner entries; kept %d used on another replica\n", r.objects, (unsigned long long)r.bytes,
		r.executions, r.temps, r.orphans, r.owners, r.renewed);
	if (pass < 0)
		fprintf(out, "the pass stopped early: the database is busy or failing (see the log)\n");
	rc = pass < 0 ? 1 : 0;
done:
	store_close(&st);
	db_close(&db);
	return rc;
}
