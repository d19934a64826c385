/* imports: the executor server's import check (POST /imports). Owns running
 * executor/python/imports.py in a short-lived helper process, locked down like
 * the runner, on code that is about to run; never runs the code itself. */
#ifndef IMPORTS_H
#define IMPORTS_H

#include <stddef.h>

#include <json-c/json.h>

#include "config.h"

/* Runs runner_dir/imports.py on source (len bytes) with workspace and the
 * package cache's mount point searched too; when sandboxed the helper is
 * locked down with sbx_lockdown(cfg, 1) first. On success *out is the helper's
 * answer, checked to be {"missing": [str], "pip": [str], "source_code": str}
 * (the caller puts it) and 0 is returned; -1 (logged) when the helper failed,
 * timed out (10 s) or answered something else. */
int imports_check(const struct config *cfg, const char *runner_dir, const char *workspace,
		  int sandboxed, const char *source, size_t len, json_object **out);

#endif
