/* execution: see execution.h. */
#include "execution.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cgroup.h"
#include "executor_client.h"
#include "files.h"
#include "log.h"
#include "packages.h"
#include "pool.h"
#include "sandbox.h"
#include "scoreboard.h"
#include "util.h"
#include "validate.h"

struct run {
	struct app *app;
	const struct exec_request *req;
	const struct exec_kind *k;  /* never NULL */
	struct exec_result *r;
	char sandbox[POOL_ID_MAX];
	struct executor_client executor;
	json_object *resp;        /* the executor's answer */
	json_object *files;       /* the response's "files" */
	struct db_file *outputs;  /* paths borrowed from resp, ids owned */
	size_t n_outputs;
	char *stderr_text;        /* owned, possibly with notes appended */
	struct pkg_outcome pkg;   /* installs made for the run (packages.h) */
	int check_imports;        /* the executor's import check comes first */
	const char *status;
	int exit_code;
	int64_t started_ms;
	int64_t claim_deadline;   /* monotonic ms: no sandbox claimed past it, retries included */
	enum ci_status failure;   /* what a failed step answers (CI_INTERNAL unless set) */
};

static const char *input_id(const struct exec_request *req, const char *path)
{
	for (size_t i = 0; i < req->n_files; i++)
		if (strcmp(req->files[i].path, path) == 0)
			return req->files[i].object_id;
	return NULL;
}

static void append_note(struct run *run, const char *note)
{
	size_t len = strlen(run->stderr_text);
	const char *sep = (len > 0 && run->stderr_text[len - 1] != '\n') ? "\n" : "";
	char *s = xasprintf("%s%s%s\n", run->stderr_text, sep, note);
	free(run->stderr_text);
	run->stderr_text = s;
}

static int upload_blob(struct run *run, const struct exec_blob *b)
{
	int fd = memfd_create("blob", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(run->r->error, sizeof(run->r->error), "memfd_create: %s", strerror(errno));
		return -1;
	}
	int rc = write_all(fd, b->data, b->len) < 0 || lseek(fd, 0, SEEK_SET) != 0 ? -1 : 0;
	if (rc < 0)
		snprintf(run->r->error, sizeof(run->r->error), "writing %.100s: %s", b->path, strerror(errno));
	else if ((rc = executor_put_file(&run->executor, b->path, fd, b->len, NULL)) < 0)
		snprintf(run->r->error, sizeof(run->r->error), "%s", run->executor.error);
	close(fd);
	return rc;
}

/* Each input object, checked against its id on its way into the sandbox
 * (a client sharing the store folder may be rewriting it): an object that is
 * not what its id says is a 422 naming it, and none of its last piece
 * reaches the sandbox, which is never run. */
static int upload_inputs(struct run *run)
{
	for (size_t i = 0; i < run->req->n_files; i++) {
		const struct exec_file *f = &run->req->files[i];
		int fd = -1;
		uint64_t size = 0;
		if (store_open_object(&run->app->store, f->object_id, &fd, &size) != STORE_OK) {
			snprintf(run->r->error, sizeof(run->r->error), "object %s vanished from the store",
				 f->object_id);
			return -1;
		}
		struct store_check check;
		int rc = store_check_begin(&check, f->object_id, size) == STORE_OK
				 ? executor_put_file(&run->executor, f->path, fd, size, &check) : EXECUTOR_CHANGED;
		store_check_end(&check);
		close(fd);
		if (rc == EXECUTOR_CHANGED) {
			char msg[400];
			snprintf(msg, sizeof(msg), "Value error, object '%s' does not hold the content its id names "
				 "(it changed while it was read, or was written with other bytes)", f->object_id);
			run->r->detail = detail_new();
			detail_add(run->r->detail, "value_error", msg, "files", f->path, NULL);
			snprintf(run->r->error, sizeof(run->r->error), "input object %s does not match its id",
				 f->object_id);
			run->failure = CI_INVALID;
			return -1;
		}
		if (rc < 0) {
			snprintf(run->r->error, sizeof(run->r->error), "%s", run->executor.error);
			return -1;
		}
	}
	for (size_t i = 0; i < run->k->n_blobs; i++)
		if (upload_blob(run, &run->k->blobs[i]) < 0)
			return -1;
	return 0;
}

/* POST /execute: 0 when the code ran (run->resp its answer), 1 when the import
 * check asked for found something and the code did not run (run->resp
 * {"imports": {...}}), -1 on failure. */
static int run_code(struct run *run)
{
	json_object *body = json_object_new_object();
	json_object *env = json_object_new_object();
	const char *code = run->pkg.source_code ? run->pkg.source_code : run->req->source_code;
	json_object_object_add(body, "source_code", json_object_new_string(code));
	for (size_t i = 0; i < run->req->n_env; i++)
		json_object_object_add(env, run->req->env[i].name, json_object_new_string(run->req->env[i].value));
	json_object_object_add(body, "env", env);
	json_object_object_add(body, "timeout", json_object_new_double(run->req->timeout));
	if (run->req->include_subdirectories)
		json_object_object_add(body, "include_subdirectories", json_object_new_boolean(1));
	if (run->pkg.n_dirs > 0) {
		json_object *dirs = json_object_new_array();
		for (size_t i = 0; i < run->pkg.n_dirs; i++)
			json_object_array_add(dirs, json_object_new_string(run->pkg.dirs[i]));
		json_object_object_add(body, "packages", dirs);
	}
	if (run->check_imports)
		json_object_object_add(body, "check_imports", json_object_new_boolean(1));
	int rc = executor_execute(&run->executor, body, run->req->timeout, run->app->cfg->max_output_bytes, &run->resp);
	json_object_put(body);
	if (rc < 0) {
		snprintf(run->r->error, sizeof(run->r->error), "%s", run->executor.error);
		return -1;
	}
	json_object *v;
	if (run->check_imports && json_object_object_get_ex(run->resp, "imports", &v))
		return 1;
	if (!json_object_object_get_ex(run->resp, "exit_code", &v) || !json_object_is_type(v, json_type_int)) {
		snprintf(run->r->error, sizeof(run->r->error), "the executor's answer has no exit_code");
		return -1;
	}
	run->exit_code = json_object_get_int(v);
	/* failed installs first: they happened before the code ran */
	const char *code_stderr = json_object_object_get_ex(run->resp, "stderr", &v) ? json_object_get_string(v) : "";
	run->stderr_text = xasprintf("%s%s", run->pkg.notes ? run->pkg.notes : "", code_stderr);
	int timed_out = json_object_object_get_ex(run->resp, "timed_out", &v) && json_object_get_boolean(v);
	run->status = timed_out ? "timeout" : run->exit_code == 0 ? "ok" : "error";
	/* a local sandbox's group is ours to read; a pod's executor reads its own */
	uint64_t limit = run->app->cfg->sandbox_memory_bytes;
	int memory_hit;
	if (strcmp(run->app->cfg->backend, "local") == 0) {
		memory_hit = cgroup_oom_kills(run->app->cfg, run->sandbox) > 0;
	} else {
		memory_hit = json_object_object_get_ex(run->resp, "memory_limit_hit", &v) &&
			     json_object_get_boolean(v);
		if (json_object_object_get_ex(run->resp, "memory_limit_bytes", &v) &&
		    json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
			limit = (uint64_t)json_object_get_int64(v);
	}
	if (!timed_out && memory_hit) {
		char note[160];
		snprintf(note, sizeof(note), "Memory limit exceeded: the sandbox's limit of %llu MiB was hit.",
			 (unsigned long long)(limit >> 20));
		append_note(run, note);
		run->status = "memory";
	}
	return 0;
}

static int download_outputs(struct run *run)
{
	json_object *list;
	run->files = json_object_new_object();
	if (!run->k->collect_files)
		return 0;
	if (!json_object_object_get_ex(run->resp, "files", &list) || !json_object_is_type(list, json_type_array))
		return 0;
	size_t n = json_object_array_length(list);
	run->outputs = xcalloc(n, sizeof(*run->outputs));
	for (size_t i = 0; i < n; i++) {
		const char *path = json_object_get_string(json_object_array_get_idx(list, i));
		if (!path || valid_workspace_path(path, strlen(path)) != NULL) {
			log_warn("execution %s: executor listed an invalid path; ignored", run->r->id);
			continue;
		}
		struct store_writer w;
		enum store_status sst = store_writer_begin(&run->app->store, &w, run->app->cfg->max_file_bytes);
		if (sst != STORE_OK) {
			run->failure = files_writer_status(&w, sst);
			snprintf(run->r->error, sizeof(run->r->error), "the store cannot take files: %s",
				 strerror(errno));
			return -1;
		}
		int rc = executor_get_file(&run->executor, path, &w);
		char id[STORE_ID_LEN + 1];
		if (rc == 1) {
			store_writer_abort(&w);
			char note[512];
			snprintf(note, sizeof(note), "File %.300s was not returned: it is larger than %llu bytes.", path,
				 (unsigned long long)run->app->cfg->max_file_bytes);
			append_note(run, note);
			continue;
		}
		enum ci_status cst = CI_INTERNAL;
		if (rc < 0 && (w.error == ENOSPC || w.error == EDQUOT))
			cst = CI_INSUFFICIENT_STORAGE;
		if (rc < 0 || (cst = files_commit(run->app, run->req->key, &w, id)) != CI_OK) {
			store_writer_abort(&w);
			run->failure = cst;
			snprintf(run->r->error, sizeof(run->r->error), "collecting %.100s: %.120s", path,
				 cst == CI_INSUFFICIENT_STORAGE ? "the file store is full"
				 : rc < 0 ? run->executor.error : "the store failed");
			return -1;
		}
		const char *in = input_id(run->req, path);
		if (in && strcmp(in, id) == 0)
			continue; /* rewritten with the same content: unchanged */
		json_object_object_add(run->files, path, json_object_new_string(id));
		run->outputs[run->n_outputs].path = path;
		run->outputs[run->n_outputs].object_id = xstrdup(id);
		run->n_outputs++;
	}
	return 0;
}

static json_object *env_names(const struct exec_request *req)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < req->n_env; i++)
		json_object_array_add(a, json_object_new_string(req->env[i].name));
	return a;
}

/* Fills e from the run; the caller owns names and inputs. */
static void describe(struct run *run, struct db_execution *e, json_object *names, struct db_file *inputs)
{
	for (size_t i = 0; i < run->req->n_files; i++) {
		inputs[i].path = run->req->files[i].path;
		inputs[i].object_id = run->req->files[i].object_id;
	}
	json_object *v;
	*e = (struct db_execution){
		.id = run->r->id,
		.kind = run->k->kind,
		.api_key = run->req->key,
		.started_ms = run->started_ms,
		.finished_ms = now_ms(),
		.exit_code = run->exit_code,
		.status = run->status,
		.source_code = run->k->recorded_source ? run->k->recorded_source : run->req->source_code,
		.env_names = json_object_to_json_string_ext(names, JSON_C_TO_STRING_PLAIN),
		.stdout_bytes = run->resp && json_object_object_get_ex(run->resp, "stdout_bytes", &v)
					? (uint64_t)json_object_get_int64(v) : 0,
		.stderr_bytes = run->resp && json_object_object_get_ex(run->resp, "stderr_bytes", &v)
					? (uint64_t)json_object_get_int64(v) : 0,
		.sandbox = run->sandbox[0] ? run->sandbox : NULL,
		.error = run->r->error[0] ? run->r->error : NULL,
		.inputs = inputs,
		.n_inputs = run->req->n_files,
		.outputs = run->outputs,
		.n_outputs = run->n_outputs,
	};
}

/* Whether the input object exists and the caller may use it, marking it
 * used (files_use): an object of another key's is refused exactly as an
 * unknown one. */
static int input_usable(struct run *run, const char *id)
{
	return files_use(run->app, run->req->key, id) == CI_OK;
}

/* Checks the input objects and records the run as 'running' with its inputs
 * marked used, all under the store's shared lock (see files.h): from here on
 * cleanup keeps them. The same transaction claims a ready sandbox when there
 * is one (run->sandbox; empty: pool_claim waits for one). CI_OK, CI_INVALID
 * (unknown ids, r->detail), CI_UNAVAILABLE (database locked) or CI_INTERNAL;
 * no row is left unless CI_OK. */
static enum ci_status begin_record(struct run *run)
{
	struct app *app = run->app;
	const struct exec_request *req = run->req;
	struct exec_result *r = run->r;
	/* nothing for cleanup to spare without inputs: no lock on the hot path */
	int locked = req->n_files > 0 && store_lock_shared(&app->store) == 0;
	enum ci_status st = CI_OK;
	for (size_t i = 0; i < req->n_files; i++) {
		if (input_usable(run, req->files[i].object_id))
			continue;
		if (!r->detail)
			r->detail = detail_new();
		char msg[320];
		snprintf(msg, sizeof(msg), "Value error, unknown object id '%s'", req->files[i].object_id);
		detail_add(r->detail, "value_error", msg, "files", req->files[i].path, NULL);
		st = CI_INVALID;
	}
	if (st == CI_OK) {
		json_object *names = env_names(req);
		struct db_file *inputs = xcalloc(req->n_files, sizeof(*inputs));
		struct db_execution e;
		const char *final_status = run->status;
		run->status = "running";
		describe(run, &e, names, inputs);
		run->status = final_status;
		int claimed = 0;
		enum db_status dst = db_execution_begin_claim(app->db, &e, now_ms(), getpid(), run->sandbox,
							      sizeof(run->sandbox), &claimed);
		if (!claimed)
			run->sandbox[0] = '\0';
		st = dst == DB_OK ? CI_OK : dst == DB_BUSY ? CI_UNAVAILABLE : CI_INTERNAL;
		free(inputs);
		json_object_put(names);
	}
	if (locked)
		store_unlock(&app->store);
	return st;
}

/* A sandbox for the run from the pool (pool_claim); when none comes, the
 * run's error says why. */
static enum ci_status claim(struct run *run)
{
	struct app *app = run->app;
	enum ci_status st = pool_claim(app->db, run->claim_deadline, app->notify_fd, app->ready_fd, run->sandbox);
	if (st != CI_OK) {
		snprintf(run->r->error, sizeof(run->r->error), st == CI_UNAVAILABLE
			 ? "no sandbox became available in time; try again" : "the sandbox pool failed");
		run->sandbox[0] = '\0';
		run->status = "unavailable";
	}
	return st;
}

/* How many sandboxes a run may be given in all, when one turns out to have
 * taken nothing of it: its socket gone with a spawner that died, its runner
 * killed while it waited (executor_unused). */
#define SANDBOX_ATTEMPTS 3

/* Puts the claimed sandbox to use: its executor, the inputs uploaded, the
 * first POST /execute. As run_code; on -1 run->executor tells whether the
 * sandbox took anything. */
static int begin_in_sandbox(struct run *run)
{
	char endpoint[512], token[POOL_TOKEN_MAX];
	if (pool_endpoint(run->app->db, run->app->cfg, run->sandbox, endpoint, sizeof(endpoint)) < 0 ||
	    pool_token(run->app->cfg, run->sandbox, token, sizeof(token)) < 0) {
		snprintf(run->r->error, sizeof(run->r->error), "sandbox %s has no endpoint", run->sandbox);
		return -1;
	}
	executor_init(&run->executor, endpoint, token);
	explicit_bzero(token, sizeof(token));
	scoreboard_stage_mark(STAGE_CLAIM);
	if (upload_inputs(run) < 0)
		return -1;
	scoreboard_stage_mark(STAGE_UPLOAD);
	return run_code(run);
}

/* Under load the pool is empty when a request arrives: waiting for a
 * sandbox's announcement before the record lets the record's transaction
 * claim it too (one write instead of two). Not for a request begin_record
 * refuses at once (unknown inputs), and not past POOL_RETRY_MS: pool_claim
 * waits the rest. 1 when an announcement was taken. */
static int await_sandbox(const struct run *run)
{
	for (size_t i = 0; i < run->req->n_files; i++)
		if (!files_usable(run->app, run->req->key, run->req->files[i].object_id))
			return 0;
	return pool_await(run->app->ready_fd, POOL_RETRY_MS);
}

/* The metrics outcome of a finished run. */
static enum scoreboard_outcome outcome(const struct run *run)
{
	json_object *v;
	if (strcmp(run->status, "ok") == 0)
		return OUTCOME_OK;
	if (strcmp(run->status, "timeout") == 0)
		return OUTCOME_TIMEOUT;
	if (strcmp(run->status, "memory") == 0)
		return OUTCOME_MEMORY;
	if (strcmp(run->status, "error") == 0)
		return run->resp && json_object_object_get_ex(run->resp, "signal", &v) && json_object_get_int(v) > 0
				 ? OUTCOME_KILLED : OUTCOME_ERROR;
	return OUTCOME_FAILED;
}

/* The run's final record and, in the same transaction, the release of its
 * sandbox (one write instead of two); released on its own if that fails. The
 * pool manager hears of the release after the answer has gone (worker.c):
 * woken here, it and the spawner it wakes took the CPU from the worker's
 * last step of a call that found the pool full, ~2 ms of its answer on a
 * 2-core machine. */
static void record(struct run *run)
{
	json_object *names = env_names(run->req);
	struct db_file *inputs = xcalloc(run->req->n_files, sizeof(*inputs));
	struct db_execution e;
	describe(run, &e, names, inputs);
	e.release = run->sandbox[0] ? run->sandbox : NULL;
	/* outputs were marked used when they were stored, inputs when the run began */
	if (db_execution_finish(run->app->db, &e) != DB_OK) {
		log_error("execution %s: its outcome could not be recorded", run->r->id);
		if (e.release)
			pool_release(run->app->db, e.release, run->app->notify_fd);
	} else if (e.release) {
		run->app->wake_pool = 1;
	}
	scoreboard_execution(outcome(run), e.finished_ms - e.started_ms);
	free(inputs);
	json_object_put(names);
}

enum ci_status execution_run(struct app *app, const struct exec_request *req, struct exec_result *r)
{
	return execution_run_kind(app, req, NULL, r);
}

enum ci_status execution_run_kind(struct app *app, const struct exec_request *req,
				  const struct exec_kind *k, struct exec_result *r)
{
	static const struct exec_kind plain = {.kind = "execute", .collect_files = 1};
	memset(r, 0, sizeof(*r));
	uuid4(r->id);
	struct run run = {.app = app, .req = req, .k = k ? k : &plain, .r = r, .status = "failed",
			  .exit_code = -1, .started_ms = now_ms()};
	scoreboard_stage_mark(STAGE_REQUEST);
	int announced = await_sandbox(&run);
	scoreboard_stage_mark(STAGE_CLAIM);
	enum ci_status st = begin_record(&run);
	scoreboard_stage_mark(STAGE_RECORD);
	if (announced && st != CI_OK)
		pool_announce(app->ready_fd); /* not ours to take: the next worker's */
	if (st != CI_OK) {
		if (st == CI_UNAVAILABLE)
			snprintf(r->error, sizeof(r->error), "the database is busy; try again");
		return st;
	}
	/* a worker that dies from here on leaves the id in its slot; its
	 * successor marks the row interrupted */
	scoreboard_exec_begin(r->id);

	run.claim_deadline = monotonic_ms() + (int64_t)(app->cfg->claim_timeout * 1000);
	if (run.sandbox[0])
		pool_wake(app->notify_fd); /* claimed with the record: the manager refills */
	else if ((st = claim(&run)) != CI_OK)
		goto out;
	/* plain runs only: a custom tool's code is ours */
	run.check_imports = run.k == &plain && packages_check_wanted(app->cfg, req->source_code);
	run.failure = CI_INTERNAL;
	int ran;
	for (int attempt = 1;; attempt++) {
		ran = begin_in_sandbox(&run);
		if (ran >= 0 || !executor_unused(&run.executor) || attempt == SANDBOX_ATTEMPTS)
			break;
		log_warn("execution %s: sandbox %s took nothing (%s); taking another", r->id, run.sandbox, r->error);
		executor_release(&run.executor);
		pool_release(app->db, run.sandbox, app->notify_fd);
		r->error[0] = '\0';
		if ((st = claim(&run)) != CI_OK)
			goto out;
	}
	if (ran == 1) { /* installs (or pip lines) first, then the run */
		packages_prepare(app, &run.executor, r->id, json_object_object_get(run.resp, "imports"), &run.pkg);
		json_object_put(run.resp);
		run.resp = NULL;
		run.check_imports = 0;
		ran = run_code(&run);
	}
	scoreboard_stage_mark(STAGE_RUN);
	if (ran < 0 || download_outputs(&run) < 0) {
		st = run.failure;
		goto release;
	}
	scoreboard_stage_mark(STAGE_COLLECT);
	st = CI_OK;
	r->body = json_object_new_object();
	json_object *v = NULL;
	json_object_object_get_ex(run.resp, "stdout", &v);
	json_object_object_add(r->body, "stdout", json_object_new_string(v ? json_object_get_string(v) : ""));
	json_object_object_add(r->body, "stderr", json_object_new_string(run.stderr_text));
	json_object_object_add(r->body, "exit_code", json_object_new_int(run.exit_code));
	json_object_object_add(r->body, "files", json_object_get(run.files));
release:
	executor_release(&run.executor);
	if (st != CI_OK) {
		run.status = "failed";
		log_error("execution %s in %s: %s", r->id, run.sandbox, r->error);
	}
out:
	record(&run);
	scoreboard_stage_mark(STAGE_RECORD);
	scoreboard_exec_end();
	json_object_put(run.resp);
	json_object_put(run.files);
	for (size_t i = 0; i < run.n_outputs; i++)
		free((char *)run.outputs[i].object_id);
	free(run.outputs);
	free(run.stderr_text);
	pkg_outcome_release(&run.pkg);
	return st;
}

void exec_result_release(struct exec_result *r)
{
	json_object_put(r->body);
	json_object_put(r->detail);
	r->body = r->detail = NULL;
}
