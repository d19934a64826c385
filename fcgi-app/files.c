/* files: see files.h for the ordering rules between requests and cleanup. */
#include "files.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "root_helper.h"
#include "util.h"

#define CHUNK (64u * 1024)

enum store_status files_store_open(struct store *st, const struct config *cfg, int master)
{
	if (!cfg->file_storage_group[0]) {
		enum store_status rc = store_open(st, cfg->file_storage_path);
		if (rc == STORE_OK)
			st->max_object_bytes = cfg->max_file_bytes;
		return rc;
	}
	/* shared: the lock is the service's (in the folder, a member could take
	 * it); an unprivileged process asks the root side to give its objects
	 * the folder's owner */
	char *lock = xasprintf("%s/store.lock", cfg->run_dir);
	enum store_status rc = store_open_locked(st, cfg->file_storage_path, lock);
	if (rc != STORE_OK) {
		free(lock);
		return rc;
	}
	st->max_object_bytes = cfg->max_file_bytes;
	if (geteuid() != 0) {
		st->give = root_helper_give;
		st->give_arg = (void *)cfg;
	}
	rc = store_share(st, cfg->file_storage_group, lock, master);
	free(lock);
	if (rc != STORE_OK)
		store_close(st);
	return rc;
}

enum ci_status files_writer_status(const struct store_writer *w, enum store_status st)
{
	if (st == STORE_TOO_LARGE)
		return CI_TOO_LARGE;
	if (w->error == ENOSPC || w->error == EDQUOT)
		return CI_INSUFFICIENT_STORAGE;
	return CI_INTERNAL;
}

static enum ci_status from_db(enum db_status st)
{
	return st == DB_OK ? CI_OK : st == DB_BUSY ? CI_UNAVAILABLE : CI_INTERNAL;
}

enum ci_status files_commit(struct app *app, const char *key, struct store_writer *w, char id[STORE_ID_LEN + 1])
{
	/* the rename and the touch happen together under the shared lock: cleanup
	 * (exclusive) sees either neither or both, never a fresh file it could
	 * take for an expired one */
	int locked = store_lock_shared(&app->store) == 0;
	uint64_t size = w->size;
	enum store_status st = store_writer_commit(w, id);
	enum ci_status rc = st == STORE_OK ? CI_OK : files_writer_status(w, st);
	if (rc == CI_OK) {
		/* the same bytes may have been there, unused for long */
		(void)store_touch(&app->store, id);
		rc = from_db(db_object_touch(app->db, id, size, now_ms()));
	}
	if (rc == CI_OK && key && store_own(&app->store, id, key) != STORE_OK)
		rc = CI_INTERNAL;
	if (locked)
		store_unlock(&app->store);
	return rc;
}

enum ci_status files_upload(struct app *app, const char *key, FCGX_Stream *in, uint64_t len,
			    char id[STORE_ID_LEN + 1])
{
	struct store_writer w;
	enum store_status st = store_writer_begin(&app->store, &w, app->cfg->max_file_bytes);
	if (st != STORE_OK)
		return files_writer_status(&w, st);
	char *buf = xmalloc(CHUNK);
	enum ci_status rc = CI_OK;
	uint64_t got = 0;
	while (got < len) {
		int want = len - got > CHUNK ? (int)CHUNK : (int)(len - got);
		int n = FCGX_GetStr(buf, want, in);
		if (n <= 0) {
			rc = CI_BAD_REQUEST;
			break;
		}
		st = store_writer_write(&w, buf, (size_t)n);
		if (st != STORE_OK) {
			rc = files_writer_status(&w, st);
			break;
		}
		got += (uint64_t)n;
	}
	free(buf);
	if (rc != CI_OK) {
		store_writer_abort(&w);
		return rc;
	}
	rc = files_commit(app, key, &w, id);
	return rc == CI_OK ? CI_CREATED : rc;
}

enum ci_status files_visible(struct app *app, const char *key, const char *id)
{
	if (!key)
		return CI_OK;
	enum store_status st = store_owned(&app->store, id, key, app->cfg->file_storage_group[0] != '\0');
	return st == STORE_OK ? CI_OK : st == STORE_NOT_FOUND ? CI_NOT_FOUND : CI_INTERNAL;
}

int files_usable(struct app *app, const char *key, const char *id)
{
	return files_visible(app, key, id) == CI_OK && store_exists(&app->store, id);
}

enum ci_status files_use(struct app *app, const char *key, const char *id)
{
	/* visibility first: another key's object and an unknown id then take
	 * the same steps, so the time taken does not tell them apart */
	enum ci_status st = files_visible(app, key, id);
	if (st != CI_OK)
		return st;
	if (!store_exists(&app->store, id))
		return CI_NOT_FOUND;
	(void)store_touch(&app->store, id);
	return CI_OK;
}

enum ci_status files_open(struct app *app, const char *key, const char *id, int *fd, char **data, uint64_t *size)
{
	*fd = -1;
	*data = NULL;
	enum ci_status seen = files_visible(app, key, id);
	if (seen != CI_OK)
		return seen;
	int locked = store_lock_shared(&app->store) == 0;
	enum ci_status rc = CI_NOT_FOUND;
	enum store_status st = store_open_object(&app->store, id, fd, size);
	if (st == STORE_OK && *size <= FILES_WHOLE) {
		*data = xmalloc(*size + 1);
		st = store_check_fd(*fd, id, *size, *data) == STORE_OK ? STORE_OK : STORE_NOT_FOUND;
		close(*fd);
		*fd = -1;
	}
	if (st == STORE_OK) {
		(void)store_touch(&app->store, id);
		rc = from_db(db_object_touch(app->db, id, *size, now_ms()));
	} else if (st == STORE_IO) {
		rc = CI_INTERNAL;
	}
	if (rc != CI_OK) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		free(*data);
		*data = NULL;
	}
	if (locked)
		store_unlock(&app->store);
	return rc;
}
