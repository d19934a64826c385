/* Unit tests for the package naming rules (common/package_names.c: which pip
 * requirements are handed to pip, everything else, options, URLs and paths
 * above all, is refused; normalized names; cache directory names) and for the
 * package cache (fcgi-app/package_cache.c: what a distribution provides,
 * publishing, locks with a deadline). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "package_cache.h"
#include "package_layout.h"
#include "packages.h"
#include "util.h"

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

START_TEST(test_cache_directory_names)
{
	static const char *const ok[] = {"numpy-1.26.4", "ci-plain-1.0", "b-1.0_0a1b2c3d", "x-1.0+local", "y-1!2.0"};
	static const char *const bad[] = {"", ".", "..", ".hidden", "a/b", "-x", "a b", "a\\b", "x\n"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(pkg_dir_name_valid(ok[i]), "%s refused", ok[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!pkg_dir_name_valid(bad[i]), "%s accepted", bad[i]);
	char longname[PKG_DIR_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert(!pkg_dir_name_valid(longname));
	longname[PKG_DIR_NAME_MAX] = '\0';
	ck_assert(pkg_dir_name_valid(longname));
	ck_assert(pkg_metadata_name_valid("typing_extensions-4.9.0.dist-info"));
	static const char *const bad_metadata[] = {"", ".dist-info", "../x.dist-info", "x-1.0", "a/b.dist-info",
						   "x-1.0.dist-info/..", ".."};
	for (size_t i = 0; i < sizeof(bad_metadata) / sizeof(bad_metadata[0]); i++)
		ck_assert_msg(!pkg_metadata_name_valid(bad_metadata[i]), "%s accepted", bad_metadata[i]);
}
END_TEST

/* The cache's directory names come from the database, which the service user
 * can write; root removes what they name (eviction, start-up): a name that
 * reaches out of dists/ gives no path at all. */
START_TEST(test_database_names_outside_the_cache_give_no_path)
{
	struct config c = {.package_cache = (char *)"/var/cache/x"};
	char path[PATH_MAX];
	ck_assert_int_eq(pkgcache_dir_path(&c, "../../victim-root", path, sizeof(path)), -1);
	ck_assert_int_eq(pkgcache_dir_path(&c, "..", path, sizeof(path)), -1);
	ck_assert_int_eq(pkgcache_dir_path(&c, "a/../../b", path, sizeof(path)), -1);
	ck_assert_int_eq(pkgcache_dir_path(&c, "ci-demo-2.0", path, sizeof(path)), 0);
	ck_assert_str_eq(path, "/var/cache/x/dists/ci-demo-2.0");
}
END_TEST

/* ---------------------------------------------------------- the cache */

static char cache_root[512];
static struct config cache_cfg;

static void cache_setup(void)
{
	snprintf(cache_root, sizeof(cache_root), "/tmp/check-pkgcache-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(cache_root));
	memset(&cache_cfg, 0, sizeof(cache_cfg));
	cache_cfg.package_cache = xasprintf("%s/cache", cache_root);
	cache_cfg.run_dir = xasprintf("%s/run", cache_root);
	cache_cfg.package_install_concurrency = 2;
	cache_cfg.package_cache_bytes = 1 << 20;
	ck_assert_int_eq(pkg_layout_prepare(&cache_cfg), 0);
}

static void cache_teardown(void)
{
	remove_tree(cache_root);
	free(cache_cfg.package_cache);
	free(cache_cfg.run_dir);
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* A staging directory as pip --target leaves it: the distribution ci-demo
 * 2.0 (top-level ci_demo/ and ci_extra.py in RECORD, no top_level.txt) and its
 * dependency ci-dep 1.0 (with top_level.txt). */
static void make_staged(char *out, size_t cap)
{
	char sub[PATH_MAX];
	ck_assert_int_eq(pkgcache_staging_make(&cache_cfg, out, cap), 0);
	static const char *const dirs[] = {"ci_demo", "ci_demo-2.0.dist-info", "ci_dep-1.0.dist-info"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", out, dirs[i]);
		ck_assert_int_eq(mkdir(sub, 0777), 0);
	}
	write_file(out, "ci_demo/__init__.py", "X = 1\n", 0666);
	write_file(out, "ci_extra.py", "", 04755);
	write_file(out, "ci_demo-2.0.dist-info/RECORD",
		   "ci_demo/__init__.py,sha256=x,6\r\nci_extra.py,,\n\"ci_demo/a,b\",,\n"
		   "ci_demo-2.0.dist-info/RECORD,,\n../../bin/ci-tool,,\n", 0644);
	write_file(out, "ci_dep-1.0.dist-info/top_level.txt", "ci_dep\n_ci_dep_speedups\n", 0644);
}

START_TEST(test_metadata_found_by_normalized_name)
{
	char staged[1024], meta[256], version[64];
	make_staged(staged, sizeof(staged));
	ck_assert_int_eq(pkgcache_find_metadata(staged, "ci-demo", meta, sizeof(meta), version, sizeof(version)), 0);
	ck_assert_str_eq(meta, "ci_demo-2.0.dist-info");
	ck_assert_str_eq(version, "2.0");
	ck_assert_int_eq(pkgcache_find_metadata(staged, "ci-dep", meta, sizeof(meta), version, sizeof(version)), 0);
	ck_assert_str_eq(version, "1.0");
	ck_assert_int_eq(pkgcache_find_metadata(staged, "ci-other", meta, sizeof(meta), version, sizeof(version)), -1);
	/* a wheel of "ci" whose metadata names version "demo-2.0" is not "ci-demo" 2.0,
	 * nor any version of "ci" */
	char path[1100];
	snprintf(path, sizeof(path), "%s/ci-demo-2.0.dist-info", staged);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/ci_demo-2.0.dist-info", staged);
	ck_assert_int_eq(remove_tree(path), 0);
	ck_assert_int_eq(pkgcache_find_metadata(staged, "ci", meta, sizeof(meta), version, sizeof(version)), -1);
	ck_assert_int_eq(pkgcache_find_metadata(staged, "ci-demo", meta, sizeof(meta), version, sizeof(version)), -1);
}
END_TEST

START_TEST(test_a_distribution_provides_only_what_it_declares)
{
	char staged[1024];
	make_staged(staged, sizeof(staged));
	/* RECORD: a package, a module file */
	ck_assert(pkgcache_provides(staged, "ci_demo-2.0.dist-info", "ci_demo"));
	ck_assert(pkgcache_provides(staged, "ci_demo-2.0.dist-info", "ci_extra"));
	ck_assert(!pkgcache_provides(staged, "ci_demo-2.0.dist-info", "ci_dep"));
	ck_assert(!pkgcache_provides(staged, "ci_demo-2.0.dist-info", "ci"));
	ck_assert(!pkgcache_provides(staged, "ci_demo-2.0.dist-info", "bin"));
	/* top_level.txt, when there is one */
	ck_assert(pkgcache_provides(staged, "ci_dep-1.0.dist-info", "ci_dep"));
	ck_assert(pkgcache_provides(staged, "ci_dep-1.0.dist-info", "_ci_dep_speedups"));
	ck_assert(!pkgcache_provides(staged, "ci_dep-1.0.dist-info", "ci_demo"));
	ck_assert(!pkgcache_provides(staged, "no-such.dist-info", "ci_demo"));
}
END_TEST

START_TEST(test_publish_seals_and_renames_once)
{
	char staged[1024], path[2048], other[PATH_MAX];
	struct stat st;
	uint64_t size = 0;
	make_staged(staged, sizeof(staged));
	snprintf(path, sizeof(path), "%s/ci_demo/link", staged);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	snprintf(path, sizeof(path), "%s/ci_demo/fifo", staged);
	ck_assert_int_eq(mkfifo(path, 0666), 0);
	/* a hard link to a file outside the staging tree: never made root's */
	snprintf(other, sizeof(other), "%s/outside", cache_root);
	write_file(cache_root, "outside", "host file\n", 0600);
	ck_assert_int_eq(chown(other, 1234, 1234), 0);
	snprintf(path, sizeof(path), "%s/ci_demo/hard", staged);
	ck_assert_int_eq(link(other, path), 0);
	ck_assert_int_eq(chown(staged, 1234, 1234), 0);

	ck_assert_int_eq(pkgcache_publish(&cache_cfg, staged, "ci-demo-2.0", &size), 0);
	ck_assert_uint_gt(size, 0);
	ck_assert_int_eq(lstat(staged, &st), -1);
	ck_assert_int_eq(pkgcache_dir_path(&cache_cfg, "ci-demo-2.0", path, sizeof(path)), 0);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
	static const char *const gone[] = {"ci_demo/link", "ci_demo/fifo", "ci_demo/hard"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(other, sizeof(other), "%s/%s", path, gone[i]);
		ck_assert_msg(lstat(other, &st) < 0, "%s was kept", gone[i]);
	}
	snprintf(other, sizeof(other), "%s/ci_demo/__init__.py", path);
	ck_assert_int_eq(lstat(other, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	snprintf(other, sizeof(other), "%s/ci_extra.py", path); /* set-id bits dropped, exec kept */
	ck_assert_int_eq(lstat(other, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
	snprintf(other, sizeof(other), "%s/outside", cache_root);
	ck_assert_int_eq(lstat(other, &st), 0);
	ck_assert_uint_eq(st.st_uid, 1234);
	/* the same name again: left to the caller, nothing replaced */
	make_staged(staged, sizeof(staged));
	ck_assert_int_eq(pkgcache_publish(&cache_cfg, staged, "ci-demo-2.0", &size), 1);
	ck_assert_int_eq(lstat(staged, &st), 0);
	ck_assert_int_eq(pkgcache_publish(&cache_cfg, staged, "../escape", &size), -1);
	/* removal takes it out of dists/ */
	ck_assert_int_eq(pkgcache_remove(&cache_cfg, path), 0);
	ck_assert_int_eq(lstat(path, &st), -1);
}
END_TEST

START_TEST(test_cache_directories_are_not_listable_for_others)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/dists", cache_cfg.package_cache);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0711);
	snprintf(path, sizeof(path), "%s/locks", cache_cfg.package_cache);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
}
END_TEST

START_TEST(test_locks_and_turns_wait_until_the_deadline)
{
	int a = pkgcache_lock(&cache_cfg, "ci-x", monotonic_ms() + 1000);
	ck_assert_int_ge(a, 0);
	/* flock: another open file description of the same file conflicts */
	int64_t t0 = monotonic_ms();
	errno = 0;
	ck_assert_int_eq(pkgcache_lock(&cache_cfg, "ci-x", t0 + 150), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	int64_t took = monotonic_ms() - t0;
	ck_assert_int_ge(took, 150);
	ck_assert_int_lt(took, 1000);
	int b = pkgcache_lock(&cache_cfg, "ci-y", monotonic_ms() + 100);
	ck_assert_int_ge(b, 0);
	/* a waiter holding the file its holder then removes takes the new one:
	 * never two holders */
	char path[700];
	snprintf(path, sizeof(path), "%s/locks/name-ci-x.lock", cache_cfg.package_cache);
	int stale = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(stale, 0);
	pkgcache_unlock(&cache_cfg, "ci-x", a);
	ck_assert_int_eq(access(path, F_OK), -1); /* a name's file lives while held */
	ck_assert_int_eq(flock(stale, LOCK_EX | LOCK_NB), 0); /* the removed file: no lock */
	a = pkgcache_lock(&cache_cfg, "ci-x", monotonic_ms() + 100);
	ck_assert_int_ge(a, 0);
	close(stale);
	/* two turns (APP_PACKAGE_INSTALL_CONCURRENCY=2), then none */
	int t1 = pkgcache_turn(&cache_cfg, monotonic_ms() + 100);
	int t2 = pkgcache_turn(&cache_cfg, monotonic_ms() + 100);
	ck_assert_int_ge(t1, 0);
	ck_assert_int_ge(t2, 0);
	ck_assert_int_eq(pkgcache_turn(&cache_cfg, monotonic_ms() + 100), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	close(t1);
	int t3 = pkgcache_turn(&cache_cfg, monotonic_ms() + 100);
	ck_assert_int_ge(t3, 0);
	close(t2);
	close(t3);
	pkgcache_unlock(&cache_cfg, "ci-x", a);
	pkgcache_unlock(&cache_cfg, "ci-y", b);
	snprintf(path, sizeof(path), "%s/locks", cache_cfg.package_cache);
	DIR *d = opendir(path);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(strncmp(e->d_name, "name-", 5) != 0, "%s left in locks/", e->d_name);
	closedir(d);
}
END_TEST

static Suite *packages_suite(void)
{
	Suite *s = suite_create("packages");
	TCase *tc = tcase_create("requirements");
	tcase_add_test(tc, test_plain_requirements_are_valid);
	tcase_add_test(tc, test_options_urls_paths_and_markers_are_refused);
	tcase_add_test(tc, test_normalize);
	tcase_add_test(tc, test_cache_directory_names);
	tcase_add_test(tc, test_database_names_outside_the_cache_give_no_path);
	suite_add_tcase(s, tc);
	TCase *cache = tcase_create("cache");
	tcase_add_checked_fixture(cache, cache_setup, cache_teardown);
	tcase_add_test(cache, test_metadata_found_by_normalized_name);
	tcase_add_test(cache, test_a_distribution_provides_only_what_it_declares);
	tcase_add_test(cache, test_publish_seals_and_renames_once);
	tcase_add_test(cache, test_cache_directories_are_not_listable_for_others);
	tcase_add_test(cache, test_locks_and_turns_wait_until_the_deadline);
	suite_add_tcase(s, cache);
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
