/* handlers: see handlers.h. */
#include "handlers.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "execution.h"
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
