/* Unit tests for fcgi-app/request.c and http.c: the validation of hostile
 * request bodies and the FastAPI-shaped errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "request.h"
#include "util.h"

static struct config cfg;

static void setup(void)
{
	char err[256];
	char *env[] = {NULL};
	ck_assert_int_eq(config_load(&cfg, env, err, sizeof(err)), 0);
}

static void teardown(void)
{
	config_release(&cfg);
}

/* Validates body; returns the detail array (caller puts) and the result code. */
static json_object *validate(const char *body, int *rc, struct exec_request *req)
{
	json_object *detail = detail_new();
	json_object *root = request_parse_json(body, strlen(body), detail);
	*rc = -1;
	if (root) {
		*rc = request_execute(root, &cfg, req, detail);
		if (*rc < 0)
			exec_request_release(req);
	}
	return detail;
}

static const char *first(json_object *detail, const char *field)
{
	json_object *e = json_object_array_get_idx(detail, 0), *v;
	ck_assert_ptr_nonnull(e);
	ck_assert(json_object_object_get_ex(e, field, &v));
	return json_object_get_string(v);
}

START_TEST(valid_minimal_request)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"print(1)\"}", &rc, &req);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(req.source_code, "print(1)");
	ck_assert_uint_eq(req.n_files, 0);
	ck_assert(req.timeout == cfg.execution_timeout);
	exec_request_release(&req);
	json_object_put(d);
}
END_TEST

START_TEST(valid_full_request)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"x\", \"files\": {\"/workspace/a/b.txt\": \"abc_-1\"},"
				  " \"env\": {\"HELLO\": \"world\"}, \"timeout\": 2.5}", &rc, &req);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(req.n_files, 1);
	ck_assert_str_eq(req.files[0].path, "/workspace/a/b.txt");
	ck_assert_str_eq(req.files[0].object_id, "abc_-1");
	ck_assert_uint_eq(req.n_env, 1);
	ck_assert_str_eq(req.env[0].value, "world");
	ck_assert(req.timeout == 2.5);
	exec_request_release(&req);
	json_object_put(d);
}
END_TEST

START_TEST(malformed_json)
{
	const char *bodies[] = {"{", "{\"source_code\": }", "[1,]", "{} x", "", "nul", "{\"a\" 1}"};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
		int rc;
		struct exec_request req;
		json_object *d = validate(bodies[i], &rc, &req);
		ck_assert_int_eq(rc, -1);
		ck_assert_str_eq(first(d, "type"), "json_invalid");
		json_object_put(d);
	}
}
END_TEST

START_TEST(invalid_utf8_is_rejected)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"\xff\xfe\"}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "json_invalid");
	json_object_put(d);
}
END_TEST

START_TEST(nul_escapes_and_surrogates_are_rejected)
{
	const char *bodies[] = {
		"{\"source_code\": \"\", \"files\": {\"/workspace/a\\u0000b\": \"x\"}}",
		"{\"source_code\": \"\", \"env\": {\"A\\u0000B\": \"x\"}}",
		"{\"source_code\": \"\xed\xa0\x80\"}",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
		int rc;
		struct exec_request req;
		json_object *d = validate(bodies[i], &rc, &req);
		ck_assert_msg(rc == -1, "accepted: %s", bodies[i]);
		ck_assert_str_eq(first(d, "type"), "json_invalid");
		json_object_put(d);
	}
	/* an escaped backslash followed by u0000 is text, not a NUL */
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"print('\\\\u0000')\"}", &rc, &req);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(req.source_code, "print('\\u0000')");
	exec_request_release(&req);
	json_object_put(d);
}
END_TEST

START_TEST(deep_nesting_is_rejected)
{
	size_t n = 10000;
	char *body = malloc(2 * n + 1);
	memset(body, '[', n);
	memset(body + n, ']', n);
	body[2 * n] = '\0';
	json_object *d = detail_new();
	ck_assert_ptr_null(request_parse_json(body, 2 * n, d));
	ck_assert_str_eq(first(d, "type"), "json_invalid");
	json_object_put(d);
	free(body);
}
END_TEST

START_TEST(wrong_types_are_each_reported)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": 5, \"files\": [], \"env\": {\"A\": 1}, \"timeout\": \"x\"}",
				  &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq((int)json_object_array_length(d), 4);
	json_object_put(d);
}
END_TEST

START_TEST(missing_source_code)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "missing");
	ck_assert_str_eq(json_object_to_json_string_ext(
				 json_object_object_get(json_object_array_get_idx(d, 0), "loc"),
				 JSON_C_TO_STRING_PLAIN), "[\"body\",\"source_code\"]");
	json_object_put(d);
}
END_TEST

START_TEST(extra_fields_and_non_objects)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"\", \"sauce\": 1}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "extra_forbidden");
	json_object_put(d);
	d = validate("[\"source_code\"]", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "model_attributes_type");
	json_object_put(d);
}
END_TEST

START_TEST(env_names)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"\", \"env\": {\"LD_PRELOAD\": \"/x.so\"}}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "value_error");
	json_object_put(d);
}
END_TEST

/* Env names by the common rule [A-Za-z_][A-Za-z0-9_]*: each refused one is a
 * value_error at ["body", "env", name, "[key]"]. */
START_TEST(env_names_by_pattern)
{
	const char *bad[] = {" X", "A-B", "1A", "", "A B", "A=B", "\\u00e9", "A\\u0000B"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char *body = xasprintf("{\"source_code\": \"\", \"env\": {\"%s\": \"v\"}}", bad[i]);
		int rc;
		struct exec_request req;
		json_object *d = validate(body, &rc, &req);
		ck_assert_msg(rc == -1, "%s accepted", bad[i]);
		ck_assert_int_eq(json_object_array_length(d), 1);
		free(body);
		json_object_put(d);
	}
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"\", \"env\": {\" X\": \"v\", \"_ok9\": \"w\"}}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "value_error");
	ck_assert_ptr_nonnull(strstr(first(d, "msg"), "[A-Za-z_][A-Za-z0-9_]*"));
	ck_assert_str_eq(json_object_to_json_string_ext(json_object_object_get(json_object_array_get_idx(d, 0), "loc"),
							JSON_C_TO_STRING_PLAIN),
			 "[\"body\",\"env\",\" X\",\"[key]\"]");
	json_object_put(d);
	d = validate("{\"source_code\": \"\", \"env\": {\"_ok9\": \"w\", \"a\": \"\"}}", &rc, &req);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(req.n_env, 2);
	exec_request_release(&req);
	json_object_put(d);
}
END_TEST

/* A body whose files map has n entries, all valid. */
static char *files_body(size_t n)
{
	size_t cap = 64 + n * 48;
	char *b = xmalloc(cap);
	size_t o = (size_t)snprintf(b, cap, "{\"source_code\": \"\", \"files\": {");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(b + o, cap - o, "%s\"/workspace/f%zu\": \"id%zu\"", i ? ", " : "", i, i);
	snprintf(b + o, cap - o, "}}");
	return b;
}

START_TEST(files_over_the_limit)
{
	ck_assert_int_eq(cfg.max_input_files, 1000);
	int rc;
	struct exec_request req;
	char *body = files_body(1000);
	json_object *d = validate(body, &rc, &req);
	free(body);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(req.n_files, 1000);
	exec_request_release(&req);
	json_object_put(d);

	body = files_body(1001);
	d = validate(body, &rc, &req);
	free(body);
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(json_object_array_length(d), 1); /* one entry, not one per file */
	ck_assert_str_eq(first(d, "type"), "too_long");
	ck_assert_str_eq(first(d, "msg"), "Dictionary should have at most 1000 items after validation, not 1001");
	ck_assert_str_eq(json_object_to_json_string_ext(json_object_object_get(json_object_array_get_idx(d, 0), "loc"),
							JSON_C_TO_STRING_PLAIN),
			 "[\"body\",\"files\"]");
	json_object_put(d);

	/* APP_MAX_INPUT_FILES=0: no files at all, an empty map still fine */
	config_release(&cfg);
	char err[256];
	char *env[] = {(char *)"APP_MAX_INPUT_FILES=0", NULL};
	ck_assert_int_eq(config_load(&cfg, env, err, sizeof(err)), 0);
	d = validate("{\"source_code\": \"\", \"files\": {}}", &rc, &req);
	ck_assert_int_eq(rc, 0);
	exec_request_release(&req);
	json_object_put(d);
	d = validate("{\"source_code\": \"\", \"files\": {\"/workspace/a\": \"x\"}}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "too_long");
	json_object_put(d);
}
END_TEST

START_TEST(timeouts)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"\", \"timeout\": 0}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "greater_than");
	json_object_put(d);
	d = validate("{\"source_code\": \"\", \"timeout\": 1e9}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(first(d, "type"), "less_than_equal");
	json_object_put(d);
	d = validate("{\"source_code\": \"\", \"timeout\": true}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	json_object_put(d);
}
END_TEST

START_TEST(nul_in_strings)
{
	int rc;
	struct exec_request req;
	json_object *d = validate("{\"source_code\": \"a\\u0000b\"}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	json_object_put(d);
	d = validate("{\"source_code\": \"\", \"env\": {\"A\": \"x\\u0000y\"}}", &rc, &req);
	ck_assert_int_eq(rc, -1);
	json_object_put(d);
}
END_TEST

START_TEST(status_mapping)
{
	ck_assert_int_eq(http_code(CI_OK), 200);
	ck_assert_int_eq(http_code(CI_INVALID), 422);
	ck_assert_int_eq(http_code(CI_NOT_FOUND), 404);
	ck_assert_int_eq(http_code(CI_METHOD), 405);
	ck_assert_int_eq(http_code(CI_TOO_LARGE), 413);
	ck_assert_int_eq(http_code(CI_UNAVAILABLE), 503);
	ck_assert_int_eq(http_code(CI_INTERNAL), 500);
	json_object *d = detail_new();
	detail_add(d, "t", "m", "files", "#3", NULL);
	ck_assert_str_eq(json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN),
			 "[{\"type\":\"t\",\"loc\":[\"body\",\"files\",3],\"msg\":\"m\"}]");
	json_object_put(d);
}
END_TEST

static Suite *request_suite(void)
{
	Suite *s = suite_create("request");
	TCase *tc = tcase_create("validation");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, valid_minimal_request);
	tcase_add_test(tc, valid_full_request);
	tcase_add_test(tc, malformed_json);
	tcase_add_test(tc, invalid_utf8_is_rejected);
	tcase_add_test(tc, deep_nesting_is_rejected);
	tcase_add_test(tc, nul_escapes_and_surrogates_are_rejected);
	tcase_add_test(tc, wrong_types_are_each_reported);
	tcase_add_test(tc, missing_source_code);
	tcase_add_test(tc, extra_fields_and_non_objects);
	tcase_add_test(tc, env_names);
	tcase_add_test(tc, env_names_by_pattern);
	tcase_add_test(tc, files_over_the_limit);
	tcase_add_test(tc, timeouts);
	tcase_add_test(tc, nul_in_strings);
	tcase_add_test(tc, status_mapping);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(request_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
