/* custom_tool: see custom_tool.h. The tool's source and input reach the sandbox
 * as files under /workspace/.tool; the program that reads them is ours, run
 * from the read-only runner directory every sandbox has. */
#include "custom_tool.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "request.h"
#include "util.h"

#define TOOL_DIR "/workspace/.tool"
/* executor/python as mounted in every sandbox (INSIDE_RUNNER in executor/sandbox.c) */
#define RUNNER_DIR "/opt/code-interpreter/python"

#define BOOTSTRAP(module)                                 \
	"import sys\n"                                    \
	"sys.path.insert(0, '" RUNNER_DIR "')\n"          \
	"try:\n"                                          \
	"    import " module " as _tool\n"                \
	"finally:\n"                                      \
	"    del sys.path[0]\n"                           \
	"_tool.main('" TOOL_DIR "')\n"

static enum ci_status run_tool(struct app *app, const char *key, const struct tool_request *t, int execute,
			       struct exec_result *r)
{
	const struct exec_blob blobs[] = {
		{TOOL_DIR "/source.py", t->source_code, t->source_len},
		{TOOL_DIR "/input.json", t->input_json, t->input_len},
	};
	const struct exec_request req = {
		.source_code = execute ? BOOTSTRAP("tool_execute") : BOOTSTRAP("tool_parse"),
		.env = t->env,
		.n_env = t->n_env,
		.timeout = app->cfg->execution_timeout,
		.key = key,
	};
	const struct exec_kind k = {
		.kind = execute ? "execute-custom-tool" : "parse-custom-tool",
		.recorded_source = t->source_code,
		.blobs = blobs,
		.n_blobs = execute ? 2 : 1,
		.collect_files = 0,
	};
	return execution_run_kind(app, &req, &k, r);
}

static const char *field_str(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The one JSON object our program wrote to stdout, or NULL. */
static json_object *channel(json_object *body)
{
	json_object *v;
	if (!json_object_object_get_ex(body, "stdout", &v))
		return NULL;
	const char *text = json_object_get_string(v);
	int len = json_object_get_string_len(v);
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *doc = json_tokener_parse_ex(tok, text, len);
	int ok = doc && json_tokener_get_error(tok) == json_tokener_success &&
		 json_object_is_type(doc, json_type_object);
	for (size_t i = ok ? json_tokener_get_parse_end(tok) : 0; ok && i < (size_t)len; i++)
		ok = strchr(" \t\r\n", text[i]) != NULL;
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(doc);
		return NULL;
	}
	return doc;
}

/* The last non-empty line of s, at most cap - 1 bytes, into buf. */
static void last_line(const char *s, char *buf, size_t cap)
{
	size_t end = strlen(s);
	while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == ' '))
		end--;
	size_t start = end;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	size_t n = end - start < cap - 1 ? end - start : cap - 1;
	memcpy(buf, s + start, n);
	buf[n] = '\0';
}

static void respond_parse(const struct exec_result *r, struct response *out)
{
	json_object *doc = channel(r->body), *v;
	const char *stderr_text = field_str(r->body, "stderr");
	json_object_object_get_ex(r->body, "exit_code", &v);
	int exit_code = json_object_get_int(v);
	json_object *msgs = NULL;
	if (doc && json_object_object_get_ex(doc, "error_messages", &msgs) &&
	    json_object_is_type(msgs, json_type_array)) {
		out->status = CI_BAD_REQUEST;
		out->body = json_object_new_object();
		json_object_object_add(out->body, "error_messages", json_object_get(msgs));
	} else if (field_str(doc, "tool_name") && field_str(doc, "tool_input_schema_json") &&
		   field_str(doc, "tool_description")) {
		out->status = CI_OK;
		out->body = json_object_new_object();
		static const char *const keys[] = {"tool_name", "tool_input_schema_json", "tool_description"};
		for (size_t i = 0; i < 3; i++)
			json_object_object_add(out->body, keys[i], json_object_new_string(field_str(doc, keys[i])));
	} else if (exit_code < 0) {
		/* killed by the time or memory limit: the source is to blame */
		char line[512];
		last_line(stderr_text ? stderr_text : "", line, sizeof(line));
		out->status = CI_BAD_REQUEST;
		out->body = json_object_new_object();
		msgs = json_object_new_array();
		json_object_array_add(msgs, json_object_new_string(line[0] ? line : "The tool could not be parsed"));
		json_object_object_add(out->body, "error_messages", msgs);
	} else {
		log_error("execution %s: the tool parser gave no result (exit %d): %.500s", r->id, exit_code,
			  stderr_text ? stderr_text : "");
		http_error(out, CI_INTERNAL, "the tool parser failed");
	}
	json_object_put(doc);
}

static void respond_execute(const struct exec_result *r, struct response *out)
{
	json_object *doc = channel(r->body), *v;
	const char *stderr_text = field_str(r->body, "stderr");
	json_object_object_get_ex(r->body, "exit_code", &v);
	int exit_code = json_object_get_int(v);
	const char *output = field_str(doc, "tool_output_json");
	out->body = json_object_new_object();
	if (exit_code == 0 && output) {
		out->status = CI_OK;
		json_object_object_add(out->body, "tool_output_json", json_object_new_string(output));
	} else {
		out->status = CI_BAD_REQUEST;
		const char *text = stderr_text ? stderr_text : "";
		if (exit_code == 0) {
			/* it exited 0 without our result: os._exit, or it wrote on the channel */
			size_t len = strlen(text);
			char *s = xasprintf("%s%sThe tool ended without a result (it exited early, wrote to the "
					    "result channel, or its result is larger than the output limit).\n",
					    text, len && text[len - 1] != '\n' ? "\n" : "");
			json_object_object_add(out->body, "stderr", json_object_new_string(s));
			free(s);
		} else {
			json_object_object_add(out->body, "stderr", json_object_new_string(text));
		}
	}
	json_object_put(doc);
}

void custom_tool_respond(int execute, enum ci_status st, const struct exec_result *r,
			 struct response *out)
{
	memcpy(out->execution_id, r->id, sizeof(r->id));
	if (st != CI_OK) {
		http_error(out, st, "%s", r->error[0] ? r->error : "internal error");
		return;
	}
	if (execute)
		respond_execute(r, out);
	else
		respond_parse(r, out);
}

static void handle(struct app *app, const struct request_in *in, struct response *out, int execute)
{
	json_object *detail = detail_new();
	json_object *root = request_parse_json(in->body, in->body_len, detail);
	struct tool_request t;
	if (!root || request_tool(root, execute, &t, detail) < 0) {
		if (root)
			tool_request_release(&t);
		http_invalid(out, detail);
		return;
	}
	json_object_put(detail);
	struct exec_result r;
	enum ci_status st = run_tool(app, in->key, &t, execute, &r);
	custom_tool_respond(execute, st, &r, out);
	exec_result_release(&r);
	tool_request_release(&t);
}

void handle_parse_custom_tool(struct app *app, const struct request_in *in, struct response *out)
{
	handle(app, in, out, 0);
}

void handle_execute_custom_tool(struct app *app, const struct request_in *in, struct response *out)
{
	handle(app, in, out, 1);
}
