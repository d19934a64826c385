/* Unit tests for fcgi-app/packages.c: which pip requirements are handed to
 * pip (everything else, options, URLs and paths above all, is refused) and the
 * normalized distribution names the install locks and records use. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "packages.h"

START_TEST(test_plain_requirements_are_valid)
{
	static const char *const ok[] = {
		"numpy", "opencv-python", "b==1.2", "c>=2", "d~=1.4.2", "e!=3", "f<4,>=2",
		"Pillow", "python_dateutil", "zope.interface", "g[extra]", "h[a,b]==1.0", "i==1.*",
		"j==2.0rc1", "k==1.0+local",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(pkg_spec_valid(ok[i]), "%s refused", ok[i]);
}
END_TEST

START_TEST(test_options_urls_paths_and_markers_are_refused)
{
	static const char *const bad[] = {
		"", "-r", "--index-url=http://x", "-e.", "../../etc", "/tmp/x.whl", "./pkg", "x @ http://y",
		"x@http://y", "git+https://h/r.git", "x; python_version<'3'", "x==1 ; os", "x[", "x[a b]",
		"x y", "file:///etc/passwd", "x==1\ny", "x>=1 -r y", ".hidden", "_x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!pkg_spec_valid(bad[i]), "%s accepted", bad[i]);
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert(!pkg_spec_valid(longname));
}
END_TEST

START_TEST(test_normalize)
{
	char out[64];
	ck_assert_int_eq(pkg_normalize("Python_Dateutil==2.8", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "python-dateutil");
	ck_assert_int_eq(pkg_normalize("zope.interface[x]", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "zope-interface");
	ck_assert_int_eq(pkg_normalize("a__-.b", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "a-b");
	ck_assert_int_eq(pkg_normalize("ci_plain", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "ci-plain");
	ck_assert_int_eq(pkg_normalize("toolongname", out, 5), -1);
	ck_assert_int_eq(pkg_normalize("==1", out, sizeof(out)), -1);
}
END_TEST

static Suite *packages_suite(void)
{
	Suite *s = suite_create("packages");
	TCase *tc = tcase_create("requirements");
	tcase_add_test(tc, test_plain_requirements_are_valid);
	tcase_add_test(tc, test_options_urls_paths_and_markers_are_refused);
	tcase_add_test(tc, test_normalize);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(packages_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
