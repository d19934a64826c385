/* Unit tests for fcgi-app/api_keys.c and access.c: the keys file's grammar,
 * matching a bearer header, the digests-only copy the workers read, and the
 * per-key limit on requests in flight. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "api_keys.h"
#include "config.h"
#include "scoreboard.h"

#define ALICE "alice-0123456789abcdef"
/* some SHA-256: bob is known by a digest only */
#define BOB_DIGEST "5e5d3f7ac0c6b2d1a03c2a8c1dbd7f0c2f5e0b9f2b6f3d0c1a4e8b7d6c5a4f3e"

static int parses(const char *text, char *err)
{
	struct api_keys k;
	int rc = api_keys_parse(text, strlen(text), &k, err, 256);
	api_keys_free(&k);
	return rc;
}

START_TEST(plain_and_digest_keys_match_by_name)
{
	char err[256];
	const char *text = "# the team's keys\n\nalice:" ALICE "\r\n  bob:sha256:" BOB_DIGEST "  \n";
	struct api_keys k;
	ck_assert_int_eq(api_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0);
	ck_assert_uint_eq(k.n, 2);
	ck_assert_str_eq(api_keys_match(&k, "Bearer " ALICE), "alice");
	ck_assert_str_eq(api_keys_match(&k, "bearer  " ALICE " "), "alice");
	ck_assert_ptr_null(api_keys_match(&k, "Bearer " ALICE "x"));
	ck_assert_ptr_null(api_keys_match(&k, "Bearer alice-0123456789ABCDEF"));
	ck_assert_ptr_null(api_keys_match(&k, "Basic " ALICE));
	ck_assert_ptr_null(api_keys_match(&k, ALICE));
	ck_assert_ptr_null(api_keys_match(&k, "Bearer "));
	ck_assert_ptr_null(api_keys_match(&k, NULL));
	/* the digest line stands for the key whose SHA-256 it is, not for itself */
	ck_assert_ptr_null(api_keys_match(&k, "Bearer sha256:" BOB_DIGEST));
	api_keys_free(&k);
}
END_TEST

START_TEST(a_digest_line_matches_its_key)
{
	char err[256];
	/* `printf %s carol-key-0123456789 | sha256sum`, in capitals: the case of
	 * the digits does not matter */
	const char *line = "carol:sha256:14BCF0F9ADB27C0ED9CCEF2466EC8F5DE89FE791CA3CA0E7675EA0561F656696\n";
	struct api_keys k;
	ck_assert_int_eq(api_keys_parse(line, strlen(line), &k, err, sizeof(err)), 0);
	ck_assert_str_eq(api_keys_match(&k, "Bearer carol-key-0123456789"), "carol");
	ck_assert_ptr_null(api_keys_match(&k, "Bearer carol-key-0123456780"));
	api_keys_free(&k);
}
END_TEST

/* A file without a key gives none, and its digests copy too: nothing
 * matches (the master's reload of a broken file publishes that). */
START_TEST(no_keys_match_nothing)
{
	char err[256], dir[] = "/tmp/check-keys-XXXXXX", path[300];
	struct api_keys k;
	ck_assert_int_eq(api_keys_parse("# only a comment\n", 17, &k, err, sizeof(err)), 0);
	ck_assert_uint_eq(k.n, 0);
	ck_assert_ptr_null(api_keys_match(&k, "Bearer " ALICE));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/api-keys", dir);
	ck_assert_int_eq(api_keys_write_digests(&k, path, (gid_t)-1), 0);
	api_keys_free(&k);
	ck_assert_int_eq(api_keys_load(path, &k, err, sizeof(err)), 0);
	ck_assert_uint_eq(k.n, 0);
	ck_assert_ptr_null(api_keys_match(&k, "Bearer " ALICE));
	api_keys_free(&k);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(bad_files_are_refused_with_the_line)
{
	char err[256];
	ck_assert_int_eq(parses("alice " ALICE "\n", err), -1);
	ck_assert_str_eq(err, "line 1: expected NAME:KEY or NAME:sha256:HEX");
	ck_assert_int_eq(parses("ok:" ALICE "\nshort:0123456789\n", err), -1);
	ck_assert_str_eq(err, "line 2: the key is shorter than 16 characters");
	ck_assert_int_eq(parses(":" ALICE "\n", err), -1);
	ck_assert_int_eq(parses("al ice:" ALICE "\n", err), -1);
	ck_assert_int_eq(parses("alice:" ALICE "\nalice:another-key-0123456789\n", err), -1);
	ck_assert_str_eq(err, "line 2: the name is used twice");
	ck_assert_int_eq(parses("alice:" ALICE "\nbob:" ALICE "\n", err), -1);
	ck_assert_str_eq(err, "line 2: the same key is given twice");
	ck_assert_int_eq(parses("bob:sha256:abc\n", err), -1);
	ck_assert_int_eq(parses("bob:sha256:" BOB_DIGEST "0\n", err), -1);
	ck_assert_int_eq(parses("bob:key with spaces 0123456789\n", err), -1);
	/* the message never quotes the key */
	ck_assert_int_eq(parses("short:secret-12\n", err), -1);
	ck_assert_ptr_null(strstr(err, "secret"));
	const char nul[] = "alice:" ALICE "\0x\n";
	struct api_keys k;
	ck_assert_int_eq(api_keys_parse(nul, sizeof(nul) - 1, &k, err, sizeof(err)), -1);
}
END_TEST

START_TEST(the_digests_copy_holds_no_key_and_reads_back)
{
	char err[256], dir[] = "/tmp/check-keys-XXXXXX", path[300];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/api-keys", dir);
	const char *text = "alice:" ALICE "\nbob:sha256:" BOB_DIGEST "\n";
	struct api_keys k, back;
	ck_assert_int_eq(api_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0);
	ck_assert_int_eq(api_keys_write_digests(&k, path, (gid_t)-1), 0);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	FILE *f = fopen(path, "r");
	char buf[1024] = "";
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	ck_assert_ptr_null(strstr(buf, ALICE));
	ck_assert_ptr_nonnull(strstr(buf, "bob:sha256:" BOB_DIGEST "\n"));
	ck_assert_int_eq(api_keys_load(path, &back, err, sizeof(err)), 0);
	ck_assert_str_eq(api_keys_match(&back, "Bearer " ALICE), "alice");
	api_keys_free(&k);
	api_keys_free(&back);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(metrics_key_lists)
{
	ck_assert(api_keys_name_listed("ops", "ops"));
	ck_assert(api_keys_name_listed("alice, ops ,bob", "ops"));
	ck_assert(!api_keys_name_listed("alice,operators", "ops"));
	ck_assert(!api_keys_name_listed("", "ops"));
}
END_TEST

/* access_check over a real digests file and a real scoreboard: who gets what. */
START_TEST(access_decides_routes_and_limits_each_key)
{
	char err[256], dir[] = "/tmp/check-access-XXXXXX", path[300];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char run_dir[320], keys_env[320];
	snprintf(run_dir, sizeof(run_dir), "APP_RUN_DIR=%s", dir);
	snprintf(keys_env, sizeof(keys_env), "APP_API_KEYS_FILE=%s/keys", dir);
	char *env[] = {run_dir, keys_env, (char *)"APP_METRICS_KEYS=ops", (char *)"APP_KEY_MAX_CONCURRENT=1", NULL};
	struct config cfg;
	ck_assert_int_eq(config_load(&cfg, env, err, sizeof(err)), 0);
	const char *text = "alice:" ALICE "\nops:ops-key-0123456789ab\n";
	struct api_keys k;
	ck_assert_int_eq(api_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0);
	access_digests_path(&cfg, path, sizeof(path));
	ck_assert_int_eq(api_keys_write_digests(&k, path, (gid_t)-1), 0);
	api_keys_free(&k);
	ck_assert_int_eq(scoreboard_create(), 0);
	scoreboard_set_slot(0);

	struct access a = {0};
	struct response out = {0};
	const char *name;
	ck_assert_int_eq(access_check(&a, &cfg, "/healthz", NULL, &name, &out), 0);
	ck_assert_ptr_null(name);
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", NULL, &name, &out), -1);
	ck_assert_int_eq(out.status, CI_UNAUTHORIZED);
	json_object_put(out.body);
	out.body = NULL;
	ck_assert_int_eq(access_check(&a, &cfg, "/metrics", "Bearer " ALICE, &name, &out), -1);
	ck_assert_int_eq(out.status, CI_FORBIDDEN);
	json_object_put(out.body);
	out.body = NULL;
	ck_assert_int_eq(access_check(&a, &cfg, "/metrics", "Bearer ops-key-0123456789ab", &name, &out), 0);
	ck_assert_str_eq(name, "ops");

	/* alice in slot 0; in slot 1 alice is over her limit of one, ops is not */
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", "Bearer " ALICE, &name, &out), 0);
	ck_assert_str_eq(name, "alice");
	scoreboard_set_slot(1);
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", "Bearer " ALICE, &name, &out), -1);
	ck_assert_int_eq(out.status, CI_TOO_MANY);
	json_object_put(out.body);
	out.body = NULL;
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/files", "Bearer ops-key-0123456789ab", &name, &out), 0);
	access_done();
	/* slot 0's request ends: alice may again */
	scoreboard_set_slot(0);
	access_done();
	scoreboard_set_slot(1);
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", "Bearer " ALICE, &name, &out), 0);
	access_done();

	/* new keys: read again only once the generation changes */
	const char *next = "bob:bob-key-0123456789abc\n";
	ck_assert_int_eq(api_keys_parse(next, strlen(next), &k, err, sizeof(err)), 0);
	ck_assert_int_eq(api_keys_write_digests(&k, path, (gid_t)-1), 0);
	api_keys_free(&k);
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", "Bearer " ALICE, &name, &out), 0);
	access_done();
	scoreboard_keys_changed();
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", "Bearer " ALICE, &name, &out), -1);
	ck_assert_int_eq(out.status, CI_UNAUTHORIZED);
	json_object_put(out.body);
	out.body = NULL;
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", "Bearer bob-key-0123456789abc", &name, &out), 0);
	ck_assert_str_eq(name, "bob");
	access_done();

	/* an unreadable copy at the first request fails closed */
	struct access fresh = {0};
	unlink(path);
	ck_assert_int_eq(access_check(&fresh, &cfg, "/v1/execute", "Bearer bob-key-0123456789abc", &name, &out), -1);
	ck_assert_int_eq(out.status, CI_INTERNAL);
	json_object_put(out.body);
	out.body = NULL;
	/* and so does one that cannot be read when the master says it changed:
	 * the keys of before are not kept */
	scoreboard_keys_changed();
	ck_assert_int_eq(access_check(&a, &cfg, "/v1/execute", "Bearer bob-key-0123456789abc", &name, &out), -1);
	ck_assert_int_eq(out.status, CI_INTERNAL);
	json_object_put(out.body);
	out.body = NULL;
	access_release(&a);
	access_release(&fresh);
	config_release(&cfg);
	rmdir(dir);
}
END_TEST

static Suite *api_keys_suite(void)
{
	Suite *s = suite_create("api_keys");
	TCase *tc = tcase_create("keys");
	tcase_add_test(tc, plain_and_digest_keys_match_by_name);
	tcase_add_test(tc, a_digest_line_matches_its_key);
	tcase_add_test(tc, bad_files_are_refused_with_the_line);
	tcase_add_test(tc, the_digests_copy_holds_no_key_and_reads_back);
	tcase_add_test(tc, metrics_key_lists);
	tcase_add_test(tc, no_keys_match_nothing);
	tcase_add_test(tc, access_decides_routes_and_limits_each_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(api_keys_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
