/* Unit tests for fcgi-app/pod_token.c: a pod's token is the lowercase hex
 * HMAC-SHA256 of its name under the service's secret (known answers from RFC
 * 4231 and Python's hmac), one per pod, none without a secret. */
#include <check.h>
#include <ctype.h>
#include <string.h>

#include "pod_token.h"

static void teardown(void)
{
	pod_token_forget();
}

static int lower_hex(const char *s)
{
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
			return 0;
	return 1;
}

START_TEST(rfc4231_test_case_2)
{
	char out[POD_TOKEN_LEN + 1];
	pod_token_set_secret("Jefe", 4);
	ck_assert_int_eq(pod_token_for("what do ya want for nothing?", out), 0);
	ck_assert_str_eq(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

START_TEST(a_32_byte_secret_and_a_pod_name)
{
	/* hmac.new(bytes(range(32)), name, hashlib.sha256).hexdigest() */
	unsigned char key[POD_TOKEN_SECRET_LEN];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	pod_token_set_secret(key, sizeof(key));
	char a[POD_TOKEN_LEN + 1], b[POD_TOKEN_LEN + 1];
	ck_assert_int_eq(pod_token_for("code-executor-0123456789", a), 0);
	ck_assert_str_eq(a, "cb88b53b6d2b61a4b24f103d572a52a1365dce00c62fba35a92aaf94c227273b");
	ck_assert_int_eq(pod_token_for("code-executor-012345678a", b), 0);
	ck_assert_str_eq(b, "2a9b9c63c6f22507ba2ee44e09d9867f13e05125e52bb52e98355c816c6ae9b2");
	/* the same name, the same token: what the spec got is what a worker sends */
	ck_assert_int_eq(pod_token_for("code-executor-0123456789", b), 0);
	ck_assert_str_eq(a, b);
}
END_TEST

START_TEST(no_secret_no_token)
{
	char out[POD_TOKEN_LEN + 1];
	memset(out, 'x', sizeof(out));
	ck_assert_int_eq(pod_token_for("code-executor-0123456789", out), -1);
	ck_assert_str_eq(out, "");
	pod_token_set_secret("k", 1);
	ck_assert_int_eq(pod_token_for("p", out), 0);
	pod_token_forget();
	ck_assert_int_eq(pod_token_for("p", out), -1);
	ck_assert_str_eq(out, "");
	pod_token_set_secret("", 0); /* refused: still none */
	ck_assert_int_eq(pod_token_for("p", out), -1);
}
END_TEST

START_TEST(random_secrets_differ)
{
	char a[POD_TOKEN_LEN + 1], b[POD_TOKEN_LEN + 1];
	pod_token_init();
	ck_assert_int_eq(pod_token_for("code-executor-0123456789", a), 0);
	ck_assert_uint_eq(strlen(a), POD_TOKEN_LEN);
	ck_assert(lower_hex(a));
	pod_token_init(); /* a restarted service */
	ck_assert_int_eq(pod_token_for("code-executor-0123456789", b), 0);
	ck_assert_str_ne(a, b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pod_token");
	TCase *t = tcase_create("pod_token");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_add_test(t, rfc4231_test_case_2);
	tcase_add_test(t, a_32_byte_secret_and_a_pod_name);
	tcase_add_test(t, no_secret_no_token);
	tcase_add_test(t, random_secrets_differ);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
