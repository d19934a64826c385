/* Unit tests for common/: configuration parsing, UTF-8 repair, ids, the
 * file-system helpers and the field rules both binaries share (validate.h). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "executor_client.h"
#include "util.h"
#include "validate.h"

START_TEST(config_defaults)
{
	struct config cfg;
	char err[256];
	char *env[] = {NULL};
	ck_assert_int_eq(config_load(&cfg, env, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.http_port, 50081);
	ck_assert(cfg.execution_timeout == 60);
	ck_assert_uint_eq(cfg.max_output_bytes, 1048576);
	ck_assert_str_eq(cfg.fcgi_socket, "/run/code-interpreter/fcgi.sock");
	ck_assert_uint_eq(cfg.sandbox_memory_bytes, 1024ull << 20);
	config_release(&cfg);
	config_release(&cfg); /* safe twice */
}
END_TEST

START_TEST(config_overrides_and_errors)
{
	struct config cfg;
	char err[256];
	char *env[] = {(char *)"APP_HTTP_PORT=8080", (char *)"APP_RUN_DIR=/tmp/r", NULL};
	ck_assert_int_eq(config_load(&cfg, env, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.http_port, 8080);
	ck_assert_str_eq(cfg.fcgi_socket, "/tmp/r/fcgi.sock");
	config_release(&cfg);
	char *bad[][2] = {{(char *)"APP_HTTP_PORT=99999", NULL}, {(char *)"APP_WORKERS=two", NULL},
			  {(char *)"APP_WORKERS=1.5", NULL}, {(char *)"APP_RUN_DIR=relative", NULL},
			  {(char *)"APP_EXECUTOR_BACKEND=elsewhere", NULL},
			  {(char *)"APP_EXECUTION_TIMEOUT=700", NULL}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_int_eq(config_load(&cfg, bad[i], err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, "APP_") || strstr(err, "relative"), "%s", err);
	}
}
END_TEST

/* The README's configuration table is the one the code prints. */
/* A secret variable leaves the environment and its bytes are wiped where
 * they were (what /proc/PID/environ would show of an exec'd block). */
START_TEST(env_take_unsets_and_wipes)
{
	static char first[] = "CI_SECRET=hunter2-hunter2", second[] = "CI_SECRET=other";
	ck_assert_ptr_null(env_take("CI_SECRET"));
	ck_assert_int_eq(putenv(first), 0);
	ck_assert_int_eq(putenv((char *)"CI_SECRETS=stays"), 0);
	char *v = env_take("CI_SECRET");
	ck_assert_str_eq(v, "hunter2-hunter2");
	free(v);
	ck_assert_ptr_null(getenv("CI_SECRET"));
	ck_assert_str_eq(getenv("CI_SECRETS"), "stays");
	for (size_t i = 0; i < sizeof(first) - 1; i++)
		ck_assert_int_eq(first[i], 0);
	ck_assert_int_eq(putenv(second), 0);
	v = env_take("CI_SECRET");
	ck_assert_str_eq(v, "other");
	free(v);
	ck_assert_int_eq(second[0], 0);
}
END_TEST

START_TEST(readme_lists_every_option_as_the_code_does)
{
	FILE *f = fopen(DATADIR "/README.md", "r");
	ck_assert_ptr_nonnull(f);
	static char readme[1 << 20];
	size_t n = fread(readme, 1, sizeof(readme) - 1, f);
	fclose(f);
	readme[n] = '\0';
	size_t count = 0;
	for (const struct config_option *o; (o = config_option(count)) != NULL; count++) {
		char row[1024];
		snprintf(row, sizeof(row), "| `%s` | %s | %s |\n", o->name, o->default_value, o->meaning);
		ck_assert_msg(strstr(readme, row), "README lacks or differs on: %s", row);
	}
	ck_assert_uint_gt(count, 30);
}
END_TEST

START_TEST(utf8_repair_replaces_invalid)
{
	size_t len;
	char *s = utf8_repair("ok\xff!", 4, &len);
	ck_assert_str_eq(s, "ok\xef\xbf\xbd!");
	ck_assert_uint_eq(len, 6);
	free(s);
	/* overlong, surrogate, truncated sequence, NUL */
	s = utf8_repair("\xc0\xaf" "\xed\xa0\x80" "\xe2\x82" "a\0b", 10, &len);
	ck_assert(utf8_valid(s, len));
	ck_assert_ptr_null(memchr(s, '\0', len));
	free(s);
	s = utf8_repair("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, &len);
	ck_assert_str_eq(s, "h\xc3\xa9llo \xf0\x9f\x98\x80");
	free(s);
	ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
}
END_TEST

START_TEST(ids_are_random_and_well_formed)
{
	char a[37], b[37], h[17];
	uuid4(a);
	uuid4(b);
	ck_assert_uint_eq(strlen(a), 36);
	ck_assert_str_ne(a, b);
	ck_assert(a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' && a[23] == '-');
	random_hex(h, 8);
	ck_assert_uint_eq(strspn(h, "0123456789abcdef"), 16);
}
END_TEST

START_TEST(tree_helpers)
{
	char tmpl[] = "/tmp/check_common.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	char path[256], outside[] = "/tmp/check_common_outside.XXXXXX";
	int ofd = mkstemp(outside);
	ck_assert_int_ge(ofd, 0);
	close(ofd);
	snprintf(path, sizeof(path), "%s/a/b/c", tmpl);
	ck_assert_int_eq(mkdir_p(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/a/b/c/link", tmpl);
	ck_assert_int_eq(symlink(outside, path), 0);
	ck_assert_int_eq(remove_tree(tmpl), 0);
	struct stat st;
	ck_assert_int_eq(stat(tmpl, &st), -1);
	ck_assert_int_eq(stat(outside, &st), 0); /* the symlink's target survives */
	unlink(outside);
}
END_TEST

START_TEST(config_input_files_and_output_cap_bounds)
{
	struct config cfg;
	char err[256];
	char *none[] = {NULL};
	ck_assert_int_eq(config_load(&cfg, none, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.max_input_files, 1000);
	config_release(&cfg);
	char *ok[] = {(char *)"APP_MAX_INPUT_FILES=0", (char *)"APP_MAX_OUTPUT_BYTES=67108864", NULL};
	ck_assert_int_eq(config_load(&cfg, ok, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.max_input_files, 0);
	ck_assert_uint_eq(cfg.max_output_bytes, CONFIG_MAX_OUTPUT_BYTES);
	config_release(&cfg);
	char *bad[][2] = {{(char *)"APP_MAX_INPUT_FILES=-1", NULL}, {(char *)"APP_MAX_INPUT_FILES=100001", NULL},
			  {(char *)"APP_MAX_INPUT_FILES=1.5", NULL},
			  {(char *)"APP_MAX_OUTPUT_BYTES=67108865", NULL},
			  {(char *)"APP_MAX_OUTPUT_BYTES=10000000000", NULL}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_msg(config_load(&cfg, bad[i], err, sizeof(err)) == -1, "%s accepted", bad[i][0]);
		ck_assert_msg(strstr(err, "APP_MAX_"), "%s", err);
	}
}
END_TEST

/* Whatever APP_MAX_OUTPUT_BYTES is, the executor's answer (two capped streams,
 * each byte up to 6 once JSON-escaped, with the truncation marker and the
 * timeout line) fits what the service's client reads, and json-c's int sizes. */
START_TEST(output_cap_fits_the_executor_answer)
{
	const uint64_t caps[] = {64, 1048576, 8u << 20, CONFIG_MAX_OUTPUT_BYTES};
	for (size_t i = 0; i < sizeof(caps) / sizeof(*caps); i++) {
		uint64_t answer = 2 * (6 * (caps[i] + 200)) + 10000;
		ck_assert_uint_ge(executor_response_limit(caps[i]), answer);
		ck_assert_uint_lt(executor_response_limit(caps[i]), (uint64_t)INT32_MAX);
	}
	ck_assert_uint_ge(executor_response_limit(64), (uint64_t)64 << 20); /* the files list's room */
}
END_TEST

START_TEST(workspace_paths)
{
	const char *good[] = {"/workspace/a", "/workspace/a/b/c.csv", "/workspace/.hidden", "/workspace/a..b",
			      "/workspace/ x", "/workspace/\xc3\xa9"};
	const char *bad[] = {"", "/", "//workspace/a", "workspace/a", "/workspace", "/workspace/",
			     "/workspace/../etc/passwd", "/workspace/a/../../x", "/workspace//x",
			     "/workspace/./x", "/workspace/x/", "/etc/passwd", "/workspacex/a", "/workspace/..",
			     "/workspace/a/.", "/Workspace/a"};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ck_assert_msg(valid_workspace_path(good[i], strlen(good[i])) == NULL, "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(valid_workspace_path(bad[i], strlen(bad[i])) != NULL, "%s", bad[i]);
	ck_assert_ptr_nonnull(valid_workspace_path("/workspace/a\0b", 14));
	ck_assert_ptr_nonnull(valid_workspace_rel("a\0b", 3));
	/* the relative form, as the executor's URLs carry it */
	const char *rgood[] = {"a", "a/b/c.csv", ".hidden", "a..b"};
	const char *rbad[] = {"", "/", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../x"};
	for (size_t i = 0; i < sizeof(rgood) / sizeof(*rgood); i++)
		ck_assert_msg(valid_workspace_rel(rgood[i], strlen(rgood[i])) == NULL, "%s", rgood[i]);
	for (size_t i = 0; i < sizeof(rbad) / sizeof(*rbad); i++)
		ck_assert_msg(valid_workspace_rel(rbad[i], strlen(rbad[i])) != NULL, "%s", rbad[i]);
	/* components: 255 bytes fine, 256 not */
	char comp[11 + 256];
	memcpy(comp, "/workspace/", 11);
	memset(comp + 11, 'c', 256);
	ck_assert_ptr_null(valid_workspace_path(comp, 11 + 255));
	ck_assert_ptr_nonnull(valid_workspace_path(comp, 11 + 256));
	ck_assert_ptr_nonnull(valid_workspace_rel(comp + 11, 256));
	/* one whole-length limit for both forms: VALID_PATH_MAX with the prefix */
	ck_assert_int_eq(VALID_PATH_MAX, 4096);
	ck_assert_uint_eq(VALID_REL_MAX, 4096 - 11);
	char *p = xmalloc(VALID_PATH_MAX + 2);
	memcpy(p, "/workspace/", 11);
	for (size_t i = 11; i < VALID_PATH_MAX + 1; i++)
		p[i] = (i - 11) % 200 == 199 ? '/' : 'x';
	p[VALID_PATH_MAX - 1] = 'x'; /* no trailing slash at either length */
	p[VALID_PATH_MAX] = 'x';
	ck_assert_ptr_null(valid_workspace_path(p, VALID_PATH_MAX));
	ck_assert_ptr_nonnull(valid_workspace_path(p, VALID_PATH_MAX + 1));
	ck_assert_ptr_null(valid_workspace_rel(p + 11, VALID_REL_MAX));
	ck_assert_ptr_nonnull(valid_workspace_rel(p + 11, VALID_REL_MAX + 1));
	free(p);
}
END_TEST

START_TEST(object_ids)
{
	ck_assert(valid_object_id("abc-DEF_09", 10));
	ck_assert(!valid_object_id("", 0));
	ck_assert(!valid_object_id(NULL, 3));
	const char *bad[] = {"a/b", "../x", "a.b", "a b", "\xc3\xa9", "a\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(!valid_object_id(bad[i], strlen(bad[i])), "%s", bad[i]);
	ck_assert(!valid_object_id("a\0b", 3));
	char id[256];
	memset(id, 'a', sizeof(id));
	ck_assert(valid_object_id(id, 255));
	ck_assert(!valid_object_id(id, 256));
}
END_TEST

START_TEST(env_names)
{
	const char *good[] = {"A", "HELLO", "_", "_a1", "a_B_9", "LD", "PYTHO", "MY_LD_X", "XPYTHONPATH"};
	const char *bad[] = {"", " X", "X ", "A-B", "1A", "A=B", "A.B", "\xc3\xa9", "A\tB",
			     "LD_PRELOAD", "LD_", "PYTHONPATH", "PYTHONSTARTUP", "PYTHON"};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ck_assert_msg(valid_env_name(good[i], strlen(good[i])) == NULL, "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(valid_env_name(bad[i], strlen(bad[i])) != NULL, "%s", bad[i]);
	ck_assert_ptr_nonnull(valid_env_name("A\0B", 3));
	ck_assert_ptr_nonnull(strstr(valid_env_name("A-B", 3), "[A-Za-z_][A-Za-z0-9_]*"));
	char name[VALID_ENV_NAME_MAX + 1];
	memset(name, 'N', sizeof(name));
	ck_assert_ptr_null(valid_env_name(name, VALID_ENV_NAME_MAX));
	ck_assert_ptr_nonnull(valid_env_name(name, VALID_ENV_NAME_MAX + 1));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("common");
	tcase_add_test(tc, config_defaults);
	tcase_add_test(tc, config_overrides_and_errors);
	tcase_add_test(tc, readme_lists_every_option_as_the_code_does);
	tcase_add_test(tc, env_take_unsets_and_wipes);
	tcase_add_test(tc, utf8_repair_replaces_invalid);
	tcase_add_test(tc, ids_are_random_and_well_formed);
	tcase_add_test(tc, tree_helpers);
	tcase_add_test(tc, config_input_files_and_output_cap_bounds);
	tcase_add_test(tc, output_cap_fits_the_executor_answer);
	tcase_add_test(tc, workspace_paths);
	tcase_add_test(tc, object_ids);
	tcase_add_test(tc, env_names);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
