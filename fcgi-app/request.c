/* request: see request.h. Messages and types follow pydantic v2 so that
 * FastAPI clients of the original service read them unchanged. */
#include "request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"
#include "validate.h"

/* True when the body holds the escape \u0000 outside of an escaped backslash:
 * json-c keeps object keys as C strings, so a NUL inside a key would silently
 * cut it short. No field of the API may contain NUL, so refuse it up front. */
static int has_nul_escape(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
			return 1;
		i++; /* skip the escaped character, so "\\u0000" is not a NUL */
	}
	return 0;
}

json_object *request_parse_json(const char *body, size_t len, json_object *detail)
{
	json_object *root = NULL;
	json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	const char *why = NULL;
	if (len > (size_t)INT32_MAX) {
		why = "body too large";
		goto out;
	}
	/* strict UTF-8 (no surrogates, no overlongs): json-c's check lets surrogates by */
	if (!utf8_valid(body, len)) {
		why = "the body is not valid UTF-8";
		goto out;
	}
	if (has_nul_escape(body, len)) {
		why = "strings must not contain NUL (\\u0000)";
		goto out;
	}
	root = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		why = "unexpected end of input";
		goto fail;
	}
	if (jerr != json_tokener_success) {
		why = json_tokener_error_desc(jerr);
		goto fail;
	}
	/* only whitespace may follow the value */
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
		if (!strchr(" \t\r\n", body[i])) {
			why = "extra data after the JSON value";
			goto fail;
		}
	}
	goto out;
fail:
	json_object_put(root);
	root = NULL;
out:
	if (why) {
		char msg[256];
		snprintf(msg, sizeof(msg), "JSON decode error: %s", why);
		detail_add(detail, "json_invalid", msg, "#0", NULL);
	}
	json_tokener_free(tok);
	return root;
}

static const char *str_of(json_object *v, size_t *len)
{
	*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

static void check_files(json_object *files, int max_files, struct exec_request *out,
			json_object *detail)
{
	if (!json_object_is_type(files, json_type_object)) {
		detail_add(detail, "dict_type", "Input should be a valid dictionary", "files", NULL);
		return;
	}
	size_t n = (size_t)json_object_object_length(files);
	if (n > (size_t)max_files) {
		char msg[128];
		snprintf(msg, sizeof(msg), "Dictionary should have at most %d items after validation, not %zu",
			 max_files, n);
		detail_add(detail, "too_long", msg, "files", NULL);
		return;
	}
	out->files = xcalloc(n, sizeof(*out->files));
	json_object_object_foreach(files, key, val) {
		const char *why = valid_workspace_path(key, strlen(key));
		if (why) {
			detail_add(detail, "string_pattern_mismatch", why, "files", key, "[key]", NULL);
			continue;
		}
		if (!json_object_is_type(val, json_type_string)) {
			detail_add(detail, "string_type", "Input should be a valid string", "files", key, NULL);
			continue;
		}
		size_t len;
		const char *id = str_of(val, &len);
		if (!valid_object_id(id, len)) {
			detail_add(detail, "string_pattern_mismatch",
				   "String should match pattern '^[0-9a-zA-Z_-]{1,255}$'", "files", key, NULL);
			continue;
		}
		out->files[out->n_files].path = key;
		out->files[out->n_files].object_id = id;
		out->n_files++;
	}
}

static void check_env(json_object *env, struct exec_request *out, json_object *detail)
{
	if (!json_object_is_type(env, json_type_object)) {
		detail_add(detail, "dict_type", "Input should be a valid dictionary", "env", NULL);
		return;
	}
	size_t n = (size_t)json_object_object_length(env);
	out->env = xcalloc(n, sizeof(*out->env));
	json_object_object_foreach(env, key, val) {
		const char *why = valid_env_name(key, strlen(key));
		if (why) {
			char msg[160];
			snprintf(msg, sizeof(msg), "Value error, %s", why);
			detail_add(detail, "value_error", msg, "env", key, "[key]", NULL);
			continue;
		}
		if (!json_object_is_type(val, json_type_string)) {
			detail_add(detail, "string_type", "Input should be a valid string", "env", key, NULL);
			continue;
		}
		size_t len;
		const char *v = str_of(val, &len);
		if (memchr(v, '\0', len)) {
			detail_add(detail, "value_error", "Value error, an environment value must not contain NUL",
				   "env", key, NULL);
			continue;
		}
		out->env[out->n_env].name = key;
		out->env[out->n_env].value = v;
		out->n_env++;
	}
}

int request_execute(json_object *root, const struct config *cfg, struct exec_request *out,
		    json_object *detail)
{
	memset(out, 0, sizeof(*out));
	out->root = root;
	out->timeout = cfg->execution_timeout;
	size_t before = json_object_array_length(detail);
	if (!json_object_is_type(root, json_type_object)) {
		detail_add(detail, "model_attributes_type",
			   "Input should be a valid dictionary or object to extract fields from", NULL);
		return -1;
	}
	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "source_code") == 0) {
			if (!json_object_is_type(val, json_type_string)) {
				detail_add(detail, "string_type", "Input should be a valid string", key, NULL);
				continue;
			}
			size_t len;
			const char *src = str_of(val, &len);
			if (memchr(src, '\0', len)) {
				detail_add(detail, "value_error", "Value error, source code must not contain NUL", key, NULL);
				continue;
			}
			out->source_code = src;
		} else if (strcmp(key, "files") == 0) {
			check_files(val, cfg->max_input_files, out, detail);
		} else if (strcmp(key, "env") == 0) {
			check_env(val, out, detail);
		} else if (strcmp(key, "timeout") == 0) {
			if (json_object_is_type(val, json_type_null))
				continue;
			if (!json_object_is_type(val, json_type_int) && !json_object_is_type(val, json_type_double)) {
				detail_add(detail, "float_type", "Input should be a valid number", key, NULL);
				continue;
			}
			double t = json_object_get_double(val);
			char msg[128];
			if (!isfinite(t) || t <= 0) {
				detail_add(detail, "greater_than", "Input should be greater than 0", key, NULL);
			} else if (t > cfg->max_execution_timeout) {
				snprintf(msg, sizeof(msg), "Input should be less than or equal to %g",
					 cfg->max_execution_timeout);
				detail_add(detail, "less_than_equal", msg, key, NULL);
			} else {
				out->timeout = t;
			}
		} else if (strcmp(key, "include_subdirectories") == 0) {
			if (!json_object_is_type(val, json_type_boolean)) {
				detail_add(detail, "bool_type", "Input should be a valid boolean", key, NULL);
				continue;
			}
			out->include_subdirectories = json_object_get_boolean(val);
		} else {
			detail_add(detail, "extra_forbidden", "Extra inputs are not permitted", key, NULL);
		}
	}
	if (!json_object_object_get_ex(root, "source_code", NULL))
		detail_add(detail, "missing", "Field required", "source_code", NULL);
	return json_object_array_length(detail) == before ? 0 : -1;
}

void exec_request_release(struct exec_request *r)
{
	free(r->files);
	free(r->env);
	json_object_put(r->root);
	memset(r, 0, sizeof(*r));
}

int request_tool(json_object *root, int with_input, struct tool_request *out, json_object *detail)
{
	memset(out, 0, sizeof(*out));
	out->root = root;
	size_t before = json_object_array_length(detail);
	if (!json_object_is_type(root, json_type_object)) {
		detail_add(detail, "model_attributes_type",
			   "Input should be a valid dictionary or object to extract fields from", NULL);
		return -1;
	}
	json_object_object_foreach(root, key, val) {
		int is_source = strcmp(key, "tool_source_code") == 0;
		if (is_source || (with_input && strcmp(key, "tool_input_json") == 0)) {
			if (!json_object_is_type(val, json_type_string)) {
				detail_add(detail, "string_type", "Input should be a valid string", key, NULL);
				continue;
			}
			size_t len;
			const char *s = str_of(val, &len);
			if (is_source) {
				out->source_code = s;
				out->source_len = len;
			} else {
				out->input_json = s;
				out->input_len = len;
			}
		} else if (with_input && strcmp(key, "env") == 0) {
			struct exec_request env = {0};
			check_env(val, &env, detail);
			out->env = env.env;
			out->n_env = env.n_env;
		} else {
			detail_add(detail, "extra_forbidden", "Extra inputs are not permitted", key, NULL);
		}
	}
	if (!json_object_object_get_ex(root, "tool_source_code", NULL))
		detail_add(detail, "missing", "Field required", "tool_source_code", NULL);
	if (with_input && !json_object_object_get_ex(root, "tool_input_json", NULL))
		detail_add(detail, "missing", "Field required", "tool_input_json", NULL);
	return json_object_array_length(detail) == before ? 0 : -1;
}

void tool_request_release(struct tool_request *r)
{
	free(r->env);
	json_object_put(r->root);
	memset(r, 0, sizeof(*r));
}
