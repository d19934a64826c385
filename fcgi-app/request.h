/* request: turns a hostile request body into a validated request. Owns the JSON
 * parsing rules (strict, depth-limited, UTF-8 checked) and the field rules of
 * DESIGN §1 (timeout, at most APP_MAX_INPUT_FILES files; paths, object ids and
 * env names by common/validate.h). Never touches the store, the database or a
 * sandbox. */
#ifndef REQUEST_H
#define REQUEST_H

#include <stddef.h>
#include <json-c/json.h>

#include "config.h"

#define REQUEST_MAX_DEPTH 16

/* Parses body as one JSON value. On failure returns NULL and adds a
 * json_invalid entry to detail. The caller owns the result. */
json_object *request_parse_json(const char *body, size_t len, json_object *detail);

struct exec_file { const char *path; const char *object_id; }; /* borrowed from the JSON */
struct exec_env { const char *name; const char *value; };

struct exec_request {
	json_object *root;        /* owned; every string below points into it */
	const char *source_code;
	struct exec_file *files;  /* owned array */
	size_t n_files;
	struct exec_env *env;     /* owned array */
	size_t n_env;
	double timeout;           /* seconds, validated */
	int include_subdirectories; /* also list changed files below /workspace's top level */
	const char *key;          /* the caller's API key name (not parsed; set by the handler), or NULL */
};

/* Validates a parsed /v1/execute body (takes the reference to root). Returns 0,
 * or -1 after adding every problem found to detail (FastAPI's shape). */
int request_execute(json_object *root, const struct config *cfg, struct exec_request *out,
		    json_object *detail);
void exec_request_release(struct exec_request *r);

/* A validated /v1/parse-custom-tool or /v1/execute-custom-tool body. */
struct tool_request {
	json_object *root;        /* owned; every string below points into it */
	const char *source_code;  /* tool_source_code */
	size_t source_len;
	const char *input_json;   /* tool_input_json; NULL when parsing */
	size_t input_len;
	struct exec_env *env;     /* owned array; empty when parsing */
	size_t n_env;
};

/* Validates a parsed custom-tool body (takes the reference to root):
 * {"tool_source_code": str} when with_input is 0, else {"tool_source_code": str,
 * "tool_input_json": str, "env"?: {str: str}}. Extra fields are refused.
 * Returns 0, or -1 after adding every problem found to detail. */
int request_tool(json_object *root, int with_input, struct tool_request *out, json_object *detail);
void tool_request_release(struct tool_request *r);

#endif
