/* Unit tests for the root helper's checks (fcgi-app/root_helper.c,
 * root_helper_parse): what a worker, which may be compromised, can ask of the
 * root side. Every field is checked, derived values are recomputed, anything
 * else is refused. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "root_helper.h"

#define ID "0f8b3c1e-2a4d-4e6f-8a9b-0c1d2e3f4a5b"
#define MAX_MS 120000

static int parse(const char *text, struct root_helper_request *rq, const char **why)
{
	return root_helper_parse(text, strlen(text), MAX_MS, rq, why);
}

START_TEST(test_an_install_request_is_taken_with_derived_fields_recomputed)
{
	struct root_helper_request rq;
	const char *why;
	ck_assert_int_eq(parse("{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"Scikit_Learn==1.3.0\","
			       "\"module\":\"sklearn\",\"timeout_ms\":5000}", &rq, &why), 0);
	ck_assert_int_eq(rq.op, RH_INSTALL);
	ck_assert_str_eq(rq.execution_id, ID);
	ck_assert_str_eq(rq.want.requirement, "Scikit_Learn==1.3.0");
	ck_assert_str_eq(rq.want.norm, "scikit-learn");
	ck_assert_str_eq(rq.want.kind, "pin");
	ck_assert_str_eq(rq.want.pin, "1.3.0");
	ck_assert_str_eq(rq.want.module, "sklearn");
	ck_assert_int_eq(rq.timeout_ms, 5000);
	/* a pip line has no module; a bare name is "latest", a range a "requirement" */
	ck_assert_int_eq(parse("{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\","
			       "\"timeout_ms\":1}", &rq, &why), 0);
	ck_assert_str_eq(rq.want.kind, "latest");
	ck_assert_str_eq(rq.want.module, "");
	ck_assert_int_eq(parse("{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy>=1,<2\","
			       "\"timeout_ms\":120000}", &rq, &why), 0);
	ck_assert_str_eq(rq.want.kind, "requirement");
	ck_assert_str_eq(rq.want.pin, "");
}
END_TEST

START_TEST(test_a_give_request_is_taken)
{
	struct root_helper_request rq;
	const char *why;
	ck_assert_int_eq(parse("{\"op\":\"give\",\"name\":\".tmp-0123456789abcdef0123456789abcdef\"}", &rq, &why), 0);
	ck_assert_int_eq(rq.op, RH_GIVE);
	ck_assert_str_eq(rq.name, ".tmp-0123456789abcdef0123456789abcdef");
}
END_TEST

START_TEST(test_anything_else_is_refused)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{\"op\":\"give\",\"name\":\"x\"} trailing",
		"{\"op\":\"give\",\"name\":\"x\"}{}",
		"{\"op\":\"chown\",\"path\":\"/etc/shadow\"}",
		"{\"name\":\"x\"}",
		"{\"op\":1,\"name\":\"x\"}",
		"{\"op\":\"give\"}",
		"{\"op\":\"give\",\"name\":7}",
		"{\"op\":\"give\",\"name\":\"x\",\"uid\":0}",
		"{\"op\":\"give\",\"name\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
		/* install: an id that is no UUID */
		"{\"op\":\"install\",\"execution_id\":\"x\",\"requirement\":\"numpy\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"0F8B3C1E-2A4D-4E6F-8A9B-0C1D2E3F4A5B\",\"requirement\":\"numpy\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "'\",\"requirement\":\"numpy\",\"timeout_ms\":1}",
		/* what pip must never be given: URLs, paths, options, markers */
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy @ https://e.com/x.whl\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"--index-url=http://e.com\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"./evil\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"a; python_version<'4'\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"\",\"timeout_ms\":1}",
		/* a module that is no module name */
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"module\":\"../x\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"module\":3,\"timeout_ms\":1}",
		/* the derived fields are the root side's to compute */
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"kind\":\"pin\",\"timeout_ms\":1}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"norm\":\"scipy\",\"timeout_ms\":1}",
		/* the deadline: an integer within APP_PACKAGE_INSTALL_TIMEOUT */
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\"}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"timeout_ms\":0}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"timeout_ms\":-5}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"timeout_ms\":120001}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"timeout_ms\":1.5}",
		"{\"op\":\"install\",\"execution_id\":\"" ID "\",\"requirement\":\"numpy\",\"timeout_ms\":\"1\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct root_helper_request rq;
		const char *why = NULL;
		if (parse(bad[i], &rq, &why) != -1)
			ck_abort_msg("taken: %s", bad[i]);
		ck_assert_ptr_nonnull(why);
	}
}
END_TEST

START_TEST(test_nul_long_and_duplicate_requests_are_refused)
{
	struct root_helper_request rq;
	const char *why;
	/* a NUL inside the text, or inside a string */
	static const char with_nul[] = "{\"op\":\"give\",\"name\":\"a\"}\0";
	ck_assert_int_eq(root_helper_parse(with_nul, sizeof(with_nul) - 1, MAX_MS, &rq, &why), -1);
	ck_assert_int_eq(parse("{\"op\":\"give\",\"name\":\"a\\u0000b\"}", &rq, &why), -1);
	/* longer than a request may be */
	char big[ROOT_HELPER_REQUEST_MAX + 64];
	int n = snprintf(big, sizeof(big), "{\"op\":\"give\",\"name\":\"x\",\"pad\":\"");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 3);
	memcpy(big + sizeof(big) - 3, "\"}", 3);
	ck_assert_int_eq(parse(big, &rq, &why), -1);
	/* a requirement longer than pip is given */
	char req[2 * PKG_REQUIREMENT_MAX];
	n = snprintf(req, sizeof(req), "{\"op\":\"install\",\"execution_id\":\"" ID "\",\"timeout_ms\":1,"
		     "\"requirement\":\"a[");
	memset(req + n, 'b', (size_t)PKG_REQUIREMENT_MAX);
	snprintf(req + n + PKG_REQUIREMENT_MAX, sizeof(req) - (size_t)n - PKG_REQUIREMENT_MAX, "]\"}");
	ck_assert_int_eq(parse(req, &rq, &why), -1);
}
END_TEST

static Suite *root_helper_suite(void)
{
	Suite *s = suite_create("root_helper");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, test_an_install_request_is_taken_with_derived_fields_recomputed);
	tcase_add_test(tc, test_a_give_request_is_taken);
	tcase_add_test(tc, test_anything_else_is_refused);
	tcase_add_test(tc, test_nul_long_and_duplicate_requests_are_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(root_helper_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
