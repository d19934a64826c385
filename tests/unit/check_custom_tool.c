/* Unit tests for fcgi-app/custom_tool.c and request_tool: the validation of
 * custom-tool bodies, and how the result channel of our program becomes the
 * 200/400/500 answers (including a channel the tool tried to spoil). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custom_tool.h"
#include "http.h"
#include "request.h"

static json_object *validate(const char *body, int with_input, int *rc, struct tool_request *t)
{
	json_object *detail = detail_new();
	json_object *root = request_parse_json(body, strlen(body), detail);
	*rc = -1;
	if (root) {
		*rc = request_tool(root, with_input, t, detail);
		if (*rc < 0)
			tool_request_release(t);
	}
	return detail;
}

static int has_loc(json_object *detail, const char *field)
{
	for (size_t i = 0; i < json_object_array_length(detail); i++) {
		json_object *loc;
		json_object_object_get_ex(json_object_array_get_idx(detail, i), "loc", &loc);
		for (size_t j = 0; j < json_object_array_length(loc); j++)
			if (strcmp(json_object_get_string(json_object_array_get_idx(loc, j)), field) == 0)
				return 1;
	}
	return 0;
}

START_TEST(parse_body_valid)
{
	int rc;
	struct tool_request t;
	json_object *d = validate("{\"tool_source_code\": \"def f(a: int): pass\"}", 0, &rc, &t);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(t.source_code, "def f(a: int): pass");
	ck_assert_uint_eq(t.source_len, strlen("def f(a: int): pass"));
	ck_assert_ptr_null(t.input_json);
	ck_assert_uint_eq(t.n_env, 0);
	tool_request_release(&t);
	json_object_put(d);
}
END_TEST

START_TEST(parse_body_refuses_input_env_and_extras)
{
	int rc;
	struct tool_request t;
	json_object *d = validate("{\"tool_source_code\": \"x\", \"tool_input_json\": \"{}\", \"env\": {}, \"x\": 1}",
				  0, &rc, &t);
	ck_assert_int_eq(rc, -1);
	ck_assert_uint_eq(json_object_array_length(d), 3);
	ck_assert(has_loc(d, "tool_input_json") && has_loc(d, "env") && has_loc(d, "x"));
	json_object_put(d);
}
END_TEST

START_TEST(missing_and_wrong_types_named)
{
	int rc;
	struct tool_request t;
	json_object *d = validate("{}", 1, &rc, &t);
	ck_assert_int_eq(rc, -1);
	ck_assert(has_loc(d, "tool_source_code") && has_loc(d, "tool_input_json"));
	json_object_put(d);
	d = validate("{\"tool_source_code\": 1, \"tool_input_json\": {}, \"env\": []}", 1, &rc, &t);
	ck_assert_int_eq(rc, -1);
	ck_assert_uint_eq(json_object_array_length(d), 3);
	json_object_put(d);
	d = validate("[]", 0, &rc, &t);
	ck_assert_int_eq(rc, -1);
	json_object_put(d);
}
END_TEST

START_TEST(execute_body_with_env)
{
	int rc;
	struct tool_request t;
	json_object *d = validate("{\"tool_source_code\": \"s\", \"tool_input_json\": \"{\\\"a\\\": 1}\", "
				  "\"env\": {\"MY_NAME\": \"bee\"}}", 1, &rc, &t);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(t.input_json, "{\"a\": 1}");
	ck_assert_uint_eq(t.n_env, 1);
	ck_assert_str_eq(t.env[0].name, "MY_NAME");
	ck_assert_str_eq(t.env[0].value, "bee");
	tool_request_release(&t);
	json_object_put(d);
	d = validate("{\"tool_source_code\": \"s\", \"tool_input_json\": \"{}\", \"env\": {\"PYTHONPATH\": \"/x\"}}",
		     1, &rc, &t);
	ck_assert_int_eq(rc, -1);
	ck_assert(has_loc(d, "PYTHONPATH"));
	json_object_put(d);
}
END_TEST

/* A finished run: what execution_run_kind leaves in r->body. */
static struct exec_result run_result(const char *out, const char *err, int exit_code)
{
	struct exec_result r;
	memset(&r, 0, sizeof(r));
	memcpy(r.id, "0000-id", 8);
	r.body = json_object_new_object();
	json_object_object_add(r.body, "stdout", json_object_new_string(out));
	json_object_object_add(r.body, "stderr", json_object_new_string(err));
	json_object_object_add(r.body, "exit_code", json_object_new_int(exit_code));
	json_object_object_add(r.body, "files", json_object_new_object());
	return r;
}

static const char *respond(int execute, const char *out, const char *err, int exit_code, struct response *resp)
{
	struct exec_result r = run_result(out, err, exit_code);
	memset(resp, 0, sizeof(*resp));
	custom_tool_respond(execute, CI_OK, &r, resp);
	exec_result_release(&r);
	ck_assert_str_eq(resp->execution_id, "0000-id");
	return json_object_to_json_string_ext(resp->body, JSON_C_TO_STRING_PLAIN);
}

START_TEST(parse_success_is_200_with_three_fields)
{
	struct response resp;
	const char *body = respond(0, "{\"tool_name\": \"f\", \"tool_input_schema_json\": \"{}\", "
				   "\"tool_description\": \"d\"}\n", "", 0, &resp);
	ck_assert_int_eq(http_code(resp.status), 200);
	ck_assert_str_eq(body, "{\"tool_name\":\"f\",\"tool_input_schema_json\":\"{}\",\"tool_description\":\"d\"}");
	json_object_put(resp.body);
}
END_TEST

START_TEST(parse_errors_are_400)
{
	struct response resp;
	const char *body = respond(0, "{\"error_messages\": [\"a\", \"b\"]}\n", "", 0, &resp);
	ck_assert_int_eq(http_code(resp.status), 400);
	ck_assert_str_eq(body, "{\"error_messages\":[\"a\",\"b\"]}");
	json_object_put(resp.body);
}
END_TEST

START_TEST(parse_killed_is_400_with_last_stderr_line)
{
	struct response resp;
	const char *body = respond(0, "", "x\nExecution timed out: the time limit of 60 seconds was hit.\n", -1, &resp);
	ck_assert_int_eq(http_code(resp.status), 400);
	ck_assert_str_eq(body, "{\"error_messages\":[\"Execution timed out: the time limit of 60 seconds was hit.\"]}");
	json_object_put(resp.body);
}
END_TEST

START_TEST(parse_without_result_is_500)
{
	static const char *const outs[] = {"", "not json", "{\"tool_name\": \"f\"}", "[1]",
					   "{\"error_messages\": []} trailing"};
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		struct response resp;
		respond(0, outs[i], "Traceback", 1, &resp);
		ck_assert_int_eq(http_code(resp.status), 500);
		json_object_put(resp.body);
	}
}
END_TEST

START_TEST(execute_success_is_200)
{
	struct response resp;
	const char *body = respond(1, "{\"tool_output_json\": \"[1, 2]\"}\n", "tool noise\n", 0, &resp);
	ck_assert_int_eq(http_code(resp.status), 200);
	ck_assert_str_eq(body, "{\"tool_output_json\":\"[1, 2]\"}");
	json_object_put(resp.body);
}
END_TEST

START_TEST(execute_failure_is_400_with_stderr)
{
	struct response resp;
	const char *body = respond(1, "", "ZeroDivisionError: division by zero\n", 1, &resp);
	ck_assert_int_eq(http_code(resp.status), 400);
	ck_assert_str_eq(body, "{\"stderr\":\"ZeroDivisionError: division by zero\\n\"}");
	json_object_put(resp.body);
	/* a result followed by a non-zero exit (an atexit handler failed) is still a failure */
	respond(1, "{\"tool_output_json\": \"1\"}\n", "boom", 3, &resp);
	ck_assert_int_eq(http_code(resp.status), 400);
	json_object_put(resp.body);
}
END_TEST

START_TEST(execute_spoiled_channel_is_400)
{
	static const char *const outs[] = {"", "{\"tool_output_json\": \"1\"}{\"tool_output_json\": \"2\"}",
					   "junk{\"tool_output_json\": \"1\"}", "{\"tool_output_json\": 1}"};
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		struct response resp;
		const char *body = respond(1, outs[i], "", 0, &resp);
		ck_assert_int_eq(http_code(resp.status), 400);
		ck_assert_ptr_nonnull(strstr(body, "without a result"));
		json_object_put(resp.body);
	}
}
END_TEST

START_TEST(internal_failure_is_passed_on)
{
	struct exec_result r;
	memset(&r, 0, sizeof(r));
	snprintf(r.error, sizeof(r.error), "no sandbox");
	struct response resp;
	memset(&resp, 0, sizeof(resp));
	custom_tool_respond(1, CI_UNAVAILABLE, &r, &resp);
	ck_assert_int_eq(http_code(resp.status), 503);
	ck_assert_str_eq(json_object_to_json_string_ext(resp.body, JSON_C_TO_STRING_PLAIN), "{\"detail\":\"no sandbox\"}");
	json_object_put(resp.body);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("custom_tool");
	TCase *tc = tcase_create("request");
	tcase_add_test(tc, parse_body_valid);
	tcase_add_test(tc, parse_body_refuses_input_env_and_extras);
	tcase_add_test(tc, missing_and_wrong_types_named);
	tcase_add_test(tc, execute_body_with_env);
	suite_add_tcase(s, tc);
	tc = tcase_create("respond");
	tcase_add_test(tc, parse_success_is_200_with_three_fields);
	tcase_add_test(tc, parse_errors_are_400);
	tcase_add_test(tc, parse_killed_is_400_with_last_stderr_line);
	tcase_add_test(tc, parse_without_result_is_500);
	tcase_add_test(tc, execute_success_is_200);
	tcase_add_test(tc, execute_failure_is_400_with_stderr);
	tcase_add_test(tc, execute_spoiled_channel_is_400);
	tcase_add_test(tc, internal_failure_is_passed_on);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
