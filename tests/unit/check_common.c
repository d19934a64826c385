/* Unit tests for common/: configuration parsing, UTF-8 repair, ids and the
 * file-system helpers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

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

int main(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("common");
	tcase_add_test(tc, config_defaults);
	tcase_add_test(tc, config_overrides_and_errors);
	tcase_add_test(tc, readme_lists_every_option_as_the_code_does);
	tcase_add_test(tc, utf8_repair_replaces_invalid);
	tcase_add_test(tc, ids_are_random_and_well_formed);
	tcase_add_test(tc, tree_helpers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
