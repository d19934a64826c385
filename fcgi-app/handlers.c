/* handlers: see handlers.h. */
#include "handlers.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "execution.h"
#include "files.h"
#include "metrics.h"
#include "request.h"

void handle_execute(struct app *app, const struct request_in *in, struct response *out)
{
	json_object *detail = detail_new();
	json_object *root = request_parse_json(in->body, in->body_len, detail);
	struct exec_request req;
	if (!root || request_execute(root, app->cfg, &req, detail) < 0) {
		if (root)
			exec_request_release(&req);
		http_invalid(out, detail);
		return;
	}
	json_object_put(detail);
	req.key = in->key;
	struct exec_result r;
	enum ci_status st = execution_run(app, &req, &r);
	memcpy(out->execution_id, r.id, sizeof(r.id));
	if (st == CI_OK) {
		out->status = CI_OK;
		out->body = json_object_get(r.body);
	} else if (st == CI_INVALID) {
		http_invalid(out, json_object_get(r.detail));
	} else {
		http_error(out, st, "%s", r.error[0] ? r.error : "internal error");
	}
	exec_result_release(&r);
	exec_request_release(&req);
}

void handle_healthz(struct app *app, const struct request_in *in, struct response *out)
{
	(void)app;
	(void)in;
	out->status = CI_OK;
	out->body = json_object_new_object();
	json_object_object_add(out->body, "status", json_object_new_string("ok"));
}

void handle_readyz(struct app *app, const struct request_in *in, struct response *out)
{
	(void)in;
	json_object *checks = json_object_new_object();
	int ok = 1;
	int store_ok = faccessat(app->store.dirfd, ".", W_OK, AT_EACCESS) == 0;
	int db_ok = db_ping(app->db) == DB_OK;
	int ready = 0, starting = 0;
	int pool_ok = db_ok && db_sandbox_count(app->db, "ready", &ready) == DB_OK &&
		      db_sandbox_count(app->db, "starting", &starting) == DB_OK &&
		      (ready > 0 || app->cfg->pool_size == 0);
	json_object_object_add(checks, "store", json_object_new_boolean(store_ok));
	json_object_object_add(checks, "database", json_object_new_boolean(db_ok));
	json_object_object_add(checks, "sandbox", json_object_new_boolean(pool_ok));
	json_object_object_add(checks, "sandboxes_ready", json_object_new_int(ready));
	json_object_object_add(checks, "sandboxes_starting", json_object_new_int(starting));
	ok = store_ok && db_ok && pool_ok;
	out->status = ok ? CI_OK : CI_UNAVAILABLE;
	out->body = json_object_new_object();
	json_object_object_add(out->body, "status", json_object_new_string(ok ? "ready" : "not ready"));
	json_object_object_add(out->body, "checks", checks);
}

void handle_file_upload(struct app *app, const struct request_in *in, struct response *out)
{
	uint64_t limit = app->cfg->max_file_bytes < app->cfg->max_request_bytes ? app->cfg->max_file_bytes
										: app->cfg->max_request_bytes;
	if (in->content_length > limit) {
		http_error(out, CI_TOO_LARGE, "File is larger than %llu bytes", (unsigned long long)limit);
		return;
	}
	char id[STORE_ID_LEN + 1];
	enum ci_status st = files_upload(app, in->key, in->stream, in->content_length, id);
	if (st != CI_CREATED) {
		http_error(out, st, "%s", st == CI_INSUFFICIENT_STORAGE ? "Insufficient storage: the file store is full"
				    : st == CI_BAD_REQUEST ? "request body ended early"
				    : st == CI_TOO_LARGE ? "File is too large"
				    : st == CI_UNAVAILABLE ? "the database is busy; try again"
				    : "the file could not be stored");
		return;
	}
	out->status = CI_CREATED;
	out->body = json_object_new_object();
	json_object_object_add(out->body, "object_id", json_object_new_string(id));
}

void handle_file_download(struct app *app, const struct request_in *in, struct response *out)
{
	const char *id = strrchr(in->path, '/') + 1; /* the router matched /v1/files/{id} */
	if (!store_id_valid(id)) {
		json_object *d = json_object_new_array();
		json_object *e = json_object_new_object();
		json_object *loc = json_object_new_array();
		json_object_array_add(loc, json_object_new_string("path"));
		json_object_array_add(loc, json_object_new_string("object_id"));
		json_object_object_add(e, "type", json_object_new_string("string_pattern_mismatch"));
		json_object_object_add(e, "loc", loc);
		json_object_object_add(e, "msg", json_object_new_string(
			"String should match pattern '^[0-9a-zA-Z_-]{1,255}$'"));
		json_object_array_add(d, e);
		http_invalid(out, d);
		return;
	}
	int fd;
	char *data;
	uint64_t size;
	enum ci_status st = files_open(app, in->key, id, &fd, &data, &size);
	if (st != CI_OK) {
		http_error(out, st, "%s", st == CI_NOT_FOUND ? "Not Found: no object with that id"
				    : st == CI_UNAVAILABLE ? "the database is busy; try again"
				    : "the object could not be read");
		return;
	}
	out->status = CI_OK;
	out->content_type = "application/octet-stream";
	if (data) {
		out->text = data;
		out->text_len = (size_t)size;
		return;
	}
	out->has_fd = 1;
	out->fd = fd;
	out->fd_size = size;
	snprintf(out->fd_object, sizeof(out->fd_object), "%s", id);
}

void handle_metrics(struct app *app, const struct request_in *in, struct response *out)
{
	(void)in;
	out->status = CI_OK;
	out->text = metrics_render(app, &out->text_len);
	out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
