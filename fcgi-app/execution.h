/* execution: one /v1/execute from validated request to recorded result: claim a
 * warm sandbox, upload the input files, run, collect the changed files into
 * the store, record the execution in SQLite, release the sandbox. Owns the
 * order of those steps and the status of a run; never parses HTTP. */
#ifndef EXECUTION_H
#define EXECUTION_H

#include <json-c/json.h>

#include "app.h"
#include "http.h"
#include "request.h"

struct exec_result {
	char id[40];          /* execution id (also X-Execution-Id) */
	json_object *body;    /* owned: {"stdout","stderr","exit_code","files"} on CI_OK */
	char error[256];      /* reason when not CI_OK */
	json_object *detail;  /* owned: 422 detail when CI_INVALID */
};

/* Runs req. Returns CI_OK with r->body, CI_INVALID (unknown object ids) with
 * r->detail, CI_UNAVAILABLE when no sandbox could be had, CI_INTERNAL. */
enum ci_status execution_run(struct app *app, const struct exec_request *req, struct exec_result *r);

/* A file placed in /workspace before the run from memory, not from the store. */
struct exec_blob { const char *path; const char *data; size_t len; };

/* What a run of our own program (custom tools) changes about an execution. */
struct exec_kind {
	const char *kind;            /* recorded kind, e.g. "parse-custom-tool" */
	const char *recorded_source; /* recorded as source_code instead of req's */
	const struct exec_blob *blobs;  /* borrowed; paths under /workspace/ */
	size_t n_blobs;
	int collect_files;           /* 0: files the run writes are not stored */
};

/* execution_run with k applied; k NULL is a plain /v1/execute. */
enum ci_status execution_run_kind(struct app *app, const struct exec_request *req,
				  const struct exec_kind *k, struct exec_result *r);
void exec_result_release(struct exec_result *r);

#endif
