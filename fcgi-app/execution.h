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
void exec_result_release(struct exec_result *r);

#endif
