/* check_store: the object store's contract (storage/store.h), on real files
 * in a fresh directory under /tmp. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

#define HELLO_ID "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
/* sha256("hello world") */
#define HELLO_WORLD_ID "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
/* sha256("") */
#define EMPTY_ID "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static char tmpdir[64];
static char storedir[128];
static char lockpath[128]; /* a shared store's lock, outside the folder */
static struct store st;

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(storedir, sizeof(storedir), "%s/objects", tmpdir);
	snprintf(lockpath, sizeof(lockpath), "%s/store.lock", tmpdir);
	ck_assert_int_eq(store_open(&st, storedir), STORE_OK);
}

static void teardown(void)
{
	store_close(&st);
	/* objects are 0444: remove_tree unlinks them (the directory is writable) */
	ck_assert_int_eq(remove_tree(tmpdir), 0);
}

/* Number of entries in the store dir (without . and ..); names starting with
 * prefix when prefix is not NULL. */
static int count_entries(const char *prefix)
{
	DIR *d = opendir(storedir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, ".lock") == 0) /* the store's own, from store_open */
			continue;
		if (!prefix || strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Reads a whole object through store_open_object into buf; returns its size. */
static size_t read_object(const char *id, char *buf, size_t cap)
{
	int fd = -1;
	uint64_t size = 0;

	ck_assert_int_eq(store_open_object(&st, id, &fd, &size), STORE_OK);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_le(size, cap);
	ssize_t got = read_all(fd, buf, cap);
	ck_assert_int_eq(got, (ssize_t)size);
	close(fd);
	return (size_t)got;
}

static void object_stat(const char *id, struct stat *sb)
{
	char *path = xasprintf("%s/%s", storedir, id);
	ck_assert_int_eq(lstat(path, sb), 0);
	free(path);
}

/* Writes a new file at path with data (a file no writer of the store made). */
static void plant(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, data, strlen(data)), 0);
	close(fd);
}

START_TEST(test_open_creates_private_dir)
{
	struct stat sb;

	ck_assert_int_eq(stat(storedir, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	ck_assert_str_eq(st.dir, storedir);
	ck_assert_int_eq(count_entries(NULL), 0);
	/* the lock file is there from the start, private, and held open */
	char lock[PATH_MAX];
	snprintf(lock, sizeof(lock), "%s/.lock", storedir);
	ck_assert_int_eq(stat(lock, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_ge(st.lockfd, 0);
}
END_TEST

START_TEST(test_close_is_idempotent)
{
	struct store zero;

	memset(&zero, 0, sizeof(zero));
	store_close(&zero);
	store_close(NULL);
	store_close(&st);
	ck_assert_ptr_null(st.dir);
	ck_assert_int_eq(st.dirfd, -1);
	store_close(&st);
	/* stdin was never closed by the zeroed store */
	ck_assert_int_ne(fcntl(0, F_GETFD), -1);
}
END_TEST

START_TEST(test_put_hello_known_id)
{
	char id[STORE_ID_LEN + 1];
	char buf[16];

	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	ck_assert_str_eq(id, HELLO_ID);
	ck_assert(store_exists(&st, HELLO_ID));
	size_t n = read_object(id, buf, sizeof(buf));
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(buf, "hello", 5);
}
END_TEST

START_TEST(test_put_empty)
{
	char id[STORE_ID_LEN + 1];
	char buf[4];

	ck_assert_int_eq(store_put(&st, "", 0, id), STORE_OK);
	ck_assert_str_eq(id, EMPTY_ID);
	ck_assert_uint_eq(read_object(id, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(test_same_content_same_id)
{
	char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1], c[STORE_ID_LEN + 1];

	ck_assert_int_eq(store_put(&st, "hello", 5, a), STORE_OK);
	ck_assert_int_eq(store_put(&st, "hello", 5, b), STORE_OK);
	ck_assert_int_eq(store_put(&st, "hellO", 5, c), STORE_OK);
	ck_assert_str_eq(a, b);
	ck_assert_str_ne(a, c);
	ck_assert_int_eq(count_entries(NULL), 2);
	ck_assert_int_eq(count_entries(".tmp-"), 0);
}
END_TEST

START_TEST(test_object_is_read_only)
{
	char id[STORE_ID_LEN + 1];
	struct stat sb;

	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	object_stat(id, &sb);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 07777, 0444);
	ck_assert_int_eq(sb.st_size, 5);
}
END_TEST

START_TEST(test_existing_object_never_replaced)
{
	char id[STORE_ID_LEN + 1];
	struct stat before, after;
	char buf[16];

	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	object_stat(id, &before);
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	object_stat(id, &after);
	ck_assert_uint_eq(before.st_ino, after.st_ino);

	/* a file already under the name of "hello world" (even a wrong one) stays */
	char *path = xasprintf("%s/%s", storedir, HELLO_WORLD_ID);
	plant(path, "planted", 0444);
	object_stat(HELLO_WORLD_ID, &before);

	struct store_writer w;
	ck_assert_int_eq(store_writer_begin(&st, &w, 0), STORE_OK);
	ck_assert_int_eq(store_writer_write(&w, "hello world", 11), STORE_OK);
	ck_assert_int_eq(store_writer_commit(&w, id), STORE_OK);
	ck_assert_str_eq(id, HELLO_WORLD_ID);
	object_stat(HELLO_WORLD_ID, &after);
	ck_assert_uint_eq(before.st_ino, after.st_ino);
	ck_assert_uint_eq(read_object(HELLO_WORLD_ID, buf, sizeof(buf)), 7);
	ck_assert_mem_eq(buf, "planted", 7);
	ck_assert_int_eq(count_entries(".tmp-"), 0);
	free(path);
}
END_TEST

START_TEST(test_streaming_writer)
{
	struct store_writer w;
	char id[STORE_ID_LEN + 1], whole[STORE_ID_LEN + 1];
	static char big[300000];
	static char back[300000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 251);
	ck_assert_int_eq(store_writer_begin(&st, &w, 0), STORE_OK);
	/* the temp file lives in the store dir under .tmp- while writing */
	ck_assert_int_eq(strncmp(w.tmpname, ".tmp-", 5), 0);
	ck_assert_int_eq(count_entries(".tmp-"), 1);
	for (size_t off = 0; off < sizeof(big);) {
		size_t k = sizeof(big) - off < 4099 ? sizeof(big) - off : 4099;
		ck_assert_int_eq(store_writer_write(&w, big + off, k), STORE_OK);
		off += k;
	}
	ck_assert_int_eq(store_writer_write(&w, "", 0), STORE_OK);
	ck_assert_uint_eq(w.size, sizeof(big));
	ck_assert_int_eq(store_writer_commit(&w, id), STORE_OK);
	ck_assert_int_eq(count_entries(".tmp-"), 0);
	ck_assert_int_eq(w.fd, -1);
	store_writer_abort(&w); /* safe after commit */
	ck_assert(store_exists(&st, id));

	ck_assert_int_eq(store_put(&st, big, sizeof(big), whole), STORE_OK);
	ck_assert_str_eq(id, whole);
	ck_assert_uint_eq(read_object(id, back, sizeof(back)), sizeof(big));
	ck_assert_mem_eq(back, big, sizeof(big));
	ck_assert_int_eq(count_entries(NULL), 1);
}
END_TEST

START_TEST(test_writer_too_large)
{
	struct store_writer w;
	char id[STORE_ID_LEN + 1];

	/* exactly max_bytes is allowed */
	ck_assert_int_eq(store_writer_begin(&st, &w, 5), STORE_OK);
	ck_assert_int_eq(store_writer_write(&w, "hel", 3), STORE_OK);
	ck_assert_int_eq(store_writer_write(&w, "lo", 2), STORE_OK);
	ck_assert_int_eq(store_writer_commit(&w, id), STORE_OK);
	ck_assert_str_eq(id, HELLO_ID);

	/* one byte more is not, and the writer cannot be committed afterwards */
	ck_assert_int_eq(store_writer_begin(&st, &w, 5), STORE_OK);
	ck_assert_int_eq(store_writer_write(&w, "hel", 3), STORE_OK);
	ck_assert_int_eq(store_writer_write(&w, "lo!", 3), STORE_TOO_LARGE);
	ck_assert_int_eq(store_writer_write(&w, "x", 1), STORE_TOO_LARGE);
	ck_assert_int_eq(count_entries(".tmp-"), 1);
	store_writer_abort(&w);
	ck_assert_int_eq(count_entries(".tmp-"), 0);

	ck_assert_int_eq(store_writer_begin(&st, &w, 2), STORE_OK);
	ck_assert_int_eq(store_writer_write(&w, "abc", 3), STORE_TOO_LARGE);
	ck_assert_int_eq(store_writer_commit(&w, id), STORE_TOO_LARGE);
	ck_assert_int_eq(count_entries(".tmp-"), 0);
	ck_assert_int_eq(count_entries(NULL), 1);
}
END_TEST

START_TEST(test_abort_leaves_nothing)
{
	struct store_writer w;
	int fd0 = fcntl(0, F_GETFD);

	ck_assert_int_eq(store_writer_begin(&st, &w, 0), STORE_OK);
	ck_assert_int_eq(store_writer_write(&w, "partial", 7), STORE_OK);
	ck_assert_int_eq(count_entries(NULL), 1);
	store_writer_abort(&w);
	ck_assert_int_eq(count_entries(NULL), 0);
	ck_assert_int_eq(w.fd, -1);
	store_writer_abort(&w); /* twice */
	ck_assert_int_eq(store_writer_write(&w, "x", 1), STORE_IO);

	memset(&w, 0, sizeof(w)); /* a zeroed writer: abort must not close fd 0 */
	store_writer_abort(&w);
	ck_assert_int_eq(fcntl(0, F_GETFD), fd0);
	ck_assert_int_eq(count_entries(NULL), 0);
}
END_TEST

START_TEST(test_bad_ids_rejected)
{
	static const char *const bad[] = {"../x", "a/b", "", "..", ".", ".tmp-0", "a b",
					  "/etc/passwd", "x\n", HELLO_ID "/"};
	char long_id[257];
	int fd = 42;
	uint64_t size = 7;

	memset(long_id, 'a', 256);
	long_id[256] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(!store_id_valid(bad[i]), "id \"%s\" accepted", bad[i]);
		ck_assert_int_eq(store_open_object(&st, bad[i], &fd, &size), STORE_BAD_ID);
		ck_assert_int_eq(fd, -1);
		ck_assert_int_eq(store_remove(&st, bad[i]), STORE_BAD_ID);
		ck_assert(!store_exists(&st, bad[i]));
	}
	ck_assert(!store_id_valid(NULL));
	ck_assert(!store_id_valid(long_id));
	ck_assert_int_eq(store_open_object(&st, long_id, &fd, &size), STORE_BAD_ID);
	ck_assert_int_eq(store_remove(&st, long_id), STORE_BAD_ID);

	long_id[255] = '\0'; /* 255 chars: valid by the API rule, but never an object */
	ck_assert(store_id_valid(long_id));
	ck_assert(store_id_valid("a"));
	ck_assert(store_id_valid("A-z_09"));
	ck_assert_int_eq(store_open_object(&st, long_id, &fd, &size), STORE_NOT_FOUND);
}
END_TEST

START_TEST(test_not_found)
{
	char id[STORE_ID_LEN + 1];
	char upper[STORE_ID_LEN + 1];
	int fd = 42;
	uint64_t size = 0;

	ck_assert_int_eq(store_open_object(&st, HELLO_ID, &fd, &size), STORE_NOT_FOUND);
	ck_assert_int_eq(fd, -1);
	ck_assert(!store_exists(&st, HELLO_ID));
	ck_assert_int_eq(store_remove(&st, HELLO_ID), STORE_NOT_FOUND);
	ck_assert_int_eq(store_open_object(&st, "abc", &fd, &size), STORE_NOT_FOUND);

	/* ids are lowercase hex: the uppercase spelling is another (absent) id */
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	for (size_t i = 0; i <= STORE_ID_LEN; i++)
		upper[i] = (id[i] >= 'a' && id[i] <= 'f') ? (char)(id[i] - 'a' + 'A') : id[i];
	ck_assert_int_eq(store_open_object(&st, upper, &fd, &size), STORE_NOT_FOUND);
	ck_assert(!store_exists(&st, upper));
}
END_TEST

START_TEST(test_symlink_not_followed)
{
	char *path = xasprintf("%s/%s", storedir, HELLO_ID);
	int fd = 42;
	uint64_t size = 0;

	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	ck_assert_int_eq(store_open_object(&st, HELLO_ID, &fd, &size), STORE_NOT_FOUND);
	ck_assert_int_eq(fd, -1);
	ck_assert(!store_exists(&st, HELLO_ID));
	free(path);
}
END_TEST

START_TEST(test_remove)
{
	char id[STORE_ID_LEN + 1];

	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	ck_assert_int_eq(store_remove(&st, id), STORE_OK);
	ck_assert(!store_exists(&st, id));
	ck_assert_int_eq(store_remove(&st, id), STORE_NOT_FOUND);
	ck_assert_int_eq(count_entries(NULL), 0);
	/* and it can be stored again */
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	ck_assert(store_exists(&st, id));
}
END_TEST

/* Sets a file's mtime an hour back, as if a crash left it long ago. */
static void age_file(const char *name)
{
	char *path = xasprintf("%s/%s", storedir, name);
	struct timespec ts[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
	free(path);
}

START_TEST(test_remove_stale_temps)
{
	char id[STORE_ID_LEN + 1];
	struct store_writer live;

	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	char *stale = xasprintf("%s/.tmp-deadbeef", storedir);
	char *fresh = xasprintf("%s/.tmp-fresh", storedir);
	plant(stale, "", 0600);
	age_file(".tmp-deadbeef");
	plant(fresh, "", 0600);
	/* a writer still at work keeps its temp file, however old */
	ck_assert_int_eq(store_writer_begin(&st, &live, 0), STORE_OK);
	ck_assert_int_eq(store_writer_write(&live, "hel", 3), STORE_OK);
	age_file(live.tmpname);
	ck_assert_int_eq(count_entries(".tmp-"), 3);

	store_remove_stale_temps(&st);
	ck_assert_int_eq(access(stale, F_OK), -1);
	ck_assert_int_eq(access(fresh, F_OK), 0);
	ck_assert_int_eq(count_entries(".tmp-"), 2);
	ck_assert(store_exists(&st, id));

	ck_assert_int_eq(store_writer_write(&live, "lo", 2), STORE_OK);
	ck_assert_int_eq(store_writer_commit(&live, id), STORE_OK);
	ck_assert_str_eq(id, HELLO_ID);
	ck_assert_int_eq(count_entries(".tmp-"), 1);
	free(stale);
	free(fresh);
}
END_TEST

/* Feeds data to a check of id in pieces of at most piece bytes; returns
 * the first status that is not STORE_OK (or STORE_OK) and how many pieces
 * were taken before it in *taken. */
static enum store_status check_bytes(const char *id, uint64_t size, const char *data, size_t len,
				     size_t piece, int *taken)
{
	struct store_check c;
	enum store_status rc = store_check_begin(&c, id, size);
	*taken = 0;
	for (size_t off = 0; rc == STORE_OK && off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		rc = store_check_update(&c, data + off, n);
		if (rc == STORE_OK)
			(*taken)++;
	}
	store_check_end(&c);
	return rc;
}

START_TEST(test_check_takes_only_the_named_bytes)
{
	int taken;
	ck_assert_int_eq(check_bytes(HELLO_WORLD_ID, 11, "hello world", 11, 4, &taken), STORE_OK);
	ck_assert_int_eq(taken, 3);
	/* one byte changed: refused at the piece that completes them, not before */
	ck_assert_int_eq(check_bytes(HELLO_WORLD_ID, 11, "hello World", 11, 4, &taken), STORE_CHANGED);
	ck_assert_int_eq(taken, 2);
	/* more bytes than the size it was opened with */
	ck_assert_int_eq(check_bytes(HELLO_ID, 5, "hello world", 11, 4, &taken), STORE_CHANGED);
	ck_assert_int_eq(taken, 1);
	/* a size that is not the content's: the last piece is refused */
	ck_assert_int_eq(check_bytes(HELLO_WORLD_ID, 5, "hello", 5, 5, &taken), STORE_CHANGED);
	ck_assert_int_eq(taken, 0);
	/* an empty object is checked at begin */
	struct store_check c;
	ck_assert_int_eq(store_check_begin(&c, EMPTY_ID, 0), STORE_OK);
	store_check_end(&c);
	ck_assert_int_eq(store_check_begin(&c, HELLO_ID, 0), STORE_CHANGED);
	ck_assert_int_eq(store_check_update(&c, "x", 1), STORE_CHANGED);
	store_check_end(&c);
}
END_TEST

START_TEST(test_share_gives_the_group_the_folder)
{
	char id[STORE_ID_LEN + 1];
	struct stat sb;
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK); /* before sharing */
	gid_t gid = 100; /* any group and owner: root may give files to them */
	uid_t owner = 65534;
	ck_assert_int_eq(chown(storedir, owner, (gid_t)-1), 0);
	ck_assert_int_eq(store_share(&st, "100", lockpath, 1), STORE_OK);
	ck_assert_int_eq(stat(storedir, &sb), 0);
	ck_assert_uint_eq(sb.st_gid, gid);
	ck_assert_uint_eq(sb.st_mode & 07777, 02770);
	object_stat(HELLO_ID, &sb);
	ck_assert_uint_eq(sb.st_uid, owner);
	ck_assert_uint_eq(sb.st_gid, gid);
	ck_assert_uint_eq(sb.st_mode & 07777, 0660);
	/* written after: the folder owner's (whom node lets copy over it), group-writable */
	ck_assert_int_eq(store_put(&st, "hello world", 11, id), STORE_OK);
	object_stat(HELLO_WORLD_ID, &sb);
	ck_assert_uint_eq(sb.st_uid, owner);
	ck_assert_uint_eq(sb.st_gid, gid);
	ck_assert_uint_eq(sb.st_mode & 07777, 0660);
	ck_assert_int_eq(store_share(&st, "no-such-group-here", lockpath, 1), STORE_BAD_ID);
}
END_TEST

START_TEST(test_shared_folder_replaces_a_wrong_object_whole)
{
	char id[STORE_ID_LEN + 1];
	char buf[16];
	struct stat before, after;
	ck_assert_int_eq(store_share(&st, "100", lockpath, 1), STORE_OK);
	/* a client's copy cut short, under the name of "hello world" */
	char *path = xasprintf("%s/%s", storedir, HELLO_WORLD_ID);
	plant(path, "hello", 0644);
	object_stat(HELLO_WORLD_ID, &before);
	ck_assert_int_eq(store_put(&st, "hello world", 11, id), STORE_OK);
	object_stat(HELLO_WORLD_ID, &after);
	ck_assert_uint_ne(before.st_ino, after.st_ino); /* renamed over, not rewritten */
	ck_assert_uint_eq(read_object(HELLO_WORLD_ID, buf, sizeof(buf)), 11);
	ck_assert_mem_eq(buf, "hello world", 11);
	/* a directory squatting the name (a member's mkdir -p ID/x): exchanged,
	 * and left aside under a temp name (not walked: it is the member's) */
	char *squat = xasprintf("%s/%s/x", storedir, HELLO_ID);
	ck_assert_int_eq(mkdir_p(squat, 0755), 0);
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	ck_assert_str_eq(id, HELLO_ID);
	ck_assert_uint_eq(read_object(HELLO_ID, buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_int_eq(count_entries(".tmp-"), 1);
	free(squat);
	/* a right one stays as it is */
	ck_assert_int_eq(store_put(&st, "hello world", 11, id), STORE_OK);
	object_stat(HELLO_WORLD_ID, &before);
	ck_assert_uint_eq(before.st_ino, after.st_ino);
	ck_assert_int_eq(count_entries(".tmp-"), 1); /* only the member's directory */
	free(path);
}
END_TEST

START_TEST(test_a_file_linked_in_is_not_an_object)
{
	/* a file of someone else's, linked into the folder under an object's
	 * name (protected_hardlinks off): never read as one, never shared */
	char *outside = xasprintf("%s/secret", tmpdir);
	char *inside = xasprintf("%s/%s", storedir, HELLO_ID);
	plant(outside, "hello", 0600);
	ck_assert_int_eq(link(outside, inside), 0);
	int ofd = -1;
	uint64_t size;
	ck_assert_int_eq(store_open_object(&st, HELLO_ID, &ofd, &size), STORE_NOT_FOUND);
	ck_assert_int_eq(ofd, -1);
	ck_assert(!store_exists(&st, HELLO_ID));
	ck_assert_int_eq(chown(storedir, 65534, (gid_t)-1), 0);
	ck_assert_int_eq(store_share(&st, "100", lockpath, 1), STORE_OK);
	struct stat sb;
	ck_assert_int_eq(stat(outside, &sb), 0);
	ck_assert_uint_eq(sb.st_uid, 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0600);
	free(outside);
	free(inside);
}
END_TEST

START_TEST(test_share_refuses_a_folder_others_could_replace)
{
	/* below a directory a member could write to: refused, nothing changed */
	char *open_dir = xasprintf("%s/open", tmpdir);
	char *inner = xasprintf("%s/open/objects", tmpdir);
	ck_assert_int_eq(mkdir(open_dir, 0777), 0);
	ck_assert_int_eq(chmod(open_dir, 0777), 0);
	struct store other;
	ck_assert_int_eq(store_open(&other, inner), STORE_OK);
	ck_assert_int_eq(store_share(&other, "100", lockpath, 1), STORE_BAD_ID);
	struct stat sb;
	ck_assert_int_eq(stat(inner, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 07777, 0700);
	ck_assert_uint_eq(sb.st_gid, 0);
	store_close(&other);
	/* reached through a symlink (the folder swapped for one): refused */
	char *link_path = xasprintf("%s/link", tmpdir);
	ck_assert_int_eq(symlink(storedir, link_path), 0);
	ck_assert_int_eq(store_open(&other, link_path), STORE_OK);
	ck_assert_int_eq(store_share(&other, "100", lockpath, 1), STORE_BAD_ID);
	ck_assert_int_eq(stat(storedir, &sb), 0);
	ck_assert_uint_eq(sb.st_gid, 0);
	store_close(&other);
	free(open_dir);
	free(inner);
	free(link_path);
}
END_TEST

START_TEST(test_shared_lock_is_outside_the_folder)
{
	/* a member's .lock in the folder, held: the service's lock is elsewhere */
	char *member_lock = xasprintf("%s/.lock", storedir);
	int held = open(member_lock, O_RDWR);
	ck_assert_int_ge(held, 0);
	ck_assert_int_eq(flock(held, LOCK_EX), 0);
	int before = st.lockfd;
	ck_assert_int_eq(store_share(&st, "100", lockpath, 1), STORE_OK);
	ck_assert_int_eq(st.lockfd, before); /* the same descriptor number */
	struct stat a, b;
	ck_assert_int_eq(fstat(st.lockfd, &a), 0);
	ck_assert_int_eq(stat(lockpath, &b), 0);
	ck_assert_uint_eq(a.st_ino, b.st_ino);
	ck_assert_int_eq(flock(st.lockfd, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(flock(st.lockfd, LOCK_UN), 0);
	close(held);
	free(member_lock);
}
END_TEST

/* What an unprivileged writer's give hook does: asks the root side, which
 * store_give_temp stands for here, as uid 0. */
static int give_as_root(const char *tmpname, void *arg)
{
	int *calls = arg;
	(*calls)++;
	return store_give_temp(&st, tmpname, 0) == STORE_OK ? 0 : -1;
}

START_TEST(test_give_temp_hands_over_only_a_writers_own_temp_file)
{
	struct stat sb;
	const char *name = ".tmp-0123456789abcdef0123456789abcdef";
	char *path = xasprintf("%s/%s", storedir, name);
	/* not shared: nothing to give */
	plant(path, "x", 0600);
	ck_assert_int_eq(store_give_temp(&st, name, 0), STORE_BAD_ID);
	ck_assert_int_eq(chown(storedir, 65534, (gid_t)-1), 0);
	ck_assert_int_eq(store_share(&st, "100", lockpath, 1), STORE_OK);
	/* another uid's file (a member's, or the service's own db) is refused */
	ck_assert_int_eq(chown(path, 4242, 4242), 0);
	ck_assert_int_eq(store_give_temp(&st, name, 999), STORE_BAD_ID);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_uid, 4242);
	/* the writer's own: the folder owner's and the group's, 0660 */
	ck_assert_int_eq(store_give_temp(&st, name, 4242), STORE_OK);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_uid, 65534);
	ck_assert_uint_eq(sb.st_gid, 100);
	ck_assert_uint_eq(sb.st_mode & 07777, 0660);
	/* names that are not a writer's temp file, a symlink, a second link */
	static const char *const bad[] = {
		"../x", ".tmp-0123", ".tmp-0123456789ABCDEF0123456789ABCDEF", ".lock", HELLO_ID,
		".tmp-0123456789abcdef0123456789abcdef/", ".tmp-0123456789abcdef0123456789abcdef0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(store_give_temp(&st, bad[i], 0), STORE_BAD_ID);
	char *other = xasprintf("%s/.tmp-11111111111111111111111111111111", storedir);
	ck_assert_int_eq(symlink("/etc/passwd", other), 0);
	ck_assert_int_eq(store_give_temp(&st, ".tmp-11111111111111111111111111111111", 0), STORE_BAD_ID);
	ck_assert_int_eq(unlink(other), 0);
	ck_assert_int_eq(link(path, other), 0);
	ck_assert_int_eq(store_give_temp(&st, ".tmp-11111111111111111111111111111111", 65534), STORE_BAD_ID);
	ck_assert_int_eq(unlink(other), 0);
	ck_assert_int_eq(unlink(path), 0);
	free(other);
	free(path);
}
END_TEST

START_TEST(test_a_writer_that_may_not_chown_asks_its_give_hook)
{
	char id[STORE_ID_LEN + 1];
	struct stat sb;
	int calls = 0;
	ck_assert_int_eq(chown(storedir, 65534, (gid_t)-1), 0);
	ck_assert_int_eq(store_share(&st, "100", lockpath, 1), STORE_OK);
	st.give = give_as_root;
	st.give_arg = &calls;
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	ck_assert_int_eq(calls, 1);
	object_stat(HELLO_ID, &sb);
	ck_assert_uint_eq(sb.st_uid, 65534);
	ck_assert_uint_eq(sb.st_mode & 07777, 0660);
	st.give = NULL;
}
END_TEST

/* sha256("alice"): alice's ownership entry (`printf %s alice | sha256sum`) */
#define ALICE_TAG "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"

static void count_object(const char *id, uint64_t size, int64_t mtime_s, void *arg)
{
	(void)id;
	(void)size;
	(void)mtime_s;
	(void)arg;
}

/* The modification time of a store entry in ms; -1 when it cannot be read. */
static int64_t entry_mtime_ms(const char *name, int64_t *atime_ms)
{
	char *path = xasprintf("%s/%s", storedir, name);
	struct stat sb;
	int r = lstat(path, &sb);
	free(path);
	if (r < 0)
		return -1;
	if (atime_ms)
		*atime_ms = (int64_t)sb.st_atim.tv_sec * 1000 + sb.st_atim.tv_nsec / 1000000;
	return (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
}

START_TEST(test_touch_marks_an_object_used_now_and_last_used_reads_it)
{
	char id[STORE_ID_LEN + 1];
	int64_t ms = 0, atime = 0, atime_after = 0;
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	age_file(id);
	int64_t old = entry_mtime_ms(id, &atime);
	ck_assert_int_eq(store_last_used(&st, id, &ms), STORE_OK);
	ck_assert_int_eq(ms, old);
	ck_assert_int_le(ms, now_ms() - 3500 * 1000);

	int64_t before = now_ms();
	ck_assert_int_eq(store_touch(&st, id), STORE_OK);
	ck_assert_int_eq(store_last_used(&st, id, &ms), STORE_OK);
	ck_assert_int_ge(ms, before - 1000); /* the file system's clock may round down */
	ck_assert_int_le(ms, now_ms() + 1000);
	ck_assert_int_eq(entry_mtime_ms(id, &atime_after), ms);
	ck_assert_int_eq(atime_after, atime); /* only the modification time */
	/* the object itself is untouched: still read-only, same bytes */
	char buf[16];
	ck_assert_int_eq(read_object(id, buf, sizeof(buf)), 5);

	ck_assert_int_eq(store_touch(&st, HELLO_WORLD_ID), STORE_NOT_FOUND);
	ck_assert_int_eq(store_last_used(&st, HELLO_WORLD_ID, &ms), STORE_NOT_FOUND);
	ck_assert_int_eq(store_touch(&st, "../x"), STORE_BAD_ID);
	ck_assert_int_eq(store_last_used(&st, "../x", &ms), STORE_BAD_ID);
	ck_assert_int_eq(store_touch(&st, "abc"), STORE_NOT_FOUND); /* valid, never an object name */
}
END_TEST

START_TEST(test_touch_never_follows_a_symlink)
{
	char *target = xasprintf("%s/target", tmpdir);
	char *link = xasprintf("%s/%s", storedir, HELLO_ID);
	plant(target, "x", 0644);
	struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
	ck_assert_int_eq(utimensat(AT_FDCWD, target, old, 0), 0);
	ck_assert_int_eq(symlink(target, link), 0);
	(void)store_touch(&st, HELLO_ID); /* the link's own time at most */
	struct stat sb;
	ck_assert_int_eq(stat(target, &sb), 0);
	ck_assert_int_eq(sb.st_mtime, old[1].tv_sec);
	int64_t ms;
	ck_assert_int_eq(store_last_used(&st, HELLO_ID, &ms), STORE_NOT_FOUND);
	free(target);
	free(link);
}
END_TEST

/* Whether the path under the store directory that fmt makes exists (lstat). */
static int exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int exists(const char *fmt, ...)
{
	char rel[512], path[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", storedir, rel);
	struct stat sb;
	return lstat(path, &sb) == 0;
}

START_TEST(test_owners_are_entries_in_the_store)
{
	char id[STORE_ID_LEN + 1], other[STORE_ID_LEN + 1];
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	ck_assert_int_eq(store_put(&st, "hello world", 11, other), STORE_OK);
	/* nobody's yet */
	ck_assert_int_eq(store_owned(&st, id, "alice", 0), STORE_NOT_FOUND);
	ck_assert_int_eq(store_owned(&st, id, "alice", 1), STORE_OK);

	ck_assert_int_eq(store_own(&st, id, "alice"), STORE_OK);
	ck_assert_int_eq(store_own(&st, id, "alice"), STORE_OK); /* again: no change */
	char *entry = xasprintf("%s/.owners/%s/" ALICE_TAG, storedir, id);
	struct stat sb;
	ck_assert_int_eq(lstat(entry, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_int_eq(sb.st_size, 0);
	free(entry);
	for (int i = 0; i < 2; i++) {
		char *dir = i ? xasprintf("%s/.owners/%s", storedir, id) : xasprintf("%s/.owners", storedir);
		ck_assert_int_eq(lstat(dir, &sb), 0);
		ck_assert(S_ISDIR(sb.st_mode));
		ck_assert_uint_eq(sb.st_mode & 0777, 0700);
		free(dir);
	}
	ck_assert_int_eq(store_owned(&st, id, "alice", 0), STORE_OK);
	ck_assert_int_eq(store_owned(&st, id, "bob", 0), STORE_NOT_FOUND);
	ck_assert_int_eq(store_owned(&st, id, "bob", 1), STORE_NOT_FOUND); /* someone's: not unowned */
	ck_assert_int_eq(store_owned(&st, other, "alice", 0), STORE_NOT_FOUND);
	ck_assert_int_eq(store_owned(&st, other, "alice", 1), STORE_OK);
	/* two owners; any name is a safe file name */
	ck_assert_int_eq(store_own(&st, id, "../../bob/.."), STORE_OK);
	ck_assert_int_eq(store_owned(&st, id, "../../bob/..", 0), STORE_OK);
	ck_assert_int_eq(store_owned(&st, id, "alice", 0), STORE_OK);
	ck_assert(!exists("bob"));
	/* what is no object id owns nothing */
	ck_assert_int_eq(store_own(&st, "../x", "alice"), STORE_BAD_ID);
	ck_assert_int_eq(store_own(&st, id, ""), STORE_BAD_ID);
	ck_assert_int_eq(store_owned(&st, "../x", "alice", 1), STORE_NOT_FOUND);
	ck_assert_int_eq(store_owned(&st, "abc", "alice", 1), STORE_NOT_FOUND);

	/* the scans of objects and temp files pass .owners by */
	ck_assert_int_eq(store_each_object(&st, count_object, NULL), 2);
	age_file(".owners");
	ck_assert_int_eq(store_remove_stale_temps(&st), 0);
	ck_assert(exists(".owners/%s", id));

	/* the entries go with the object */
	ck_assert_int_eq(store_remove(&st, id), STORE_OK);
	ck_assert(!exists(".owners/%s", id));
	ck_assert(exists(".owners"));
	ck_assert_int_eq(store_owned(&st, id, "alice", 0), STORE_NOT_FOUND);
	ck_assert_int_eq(store_owned(&st, id, "alice", 1), STORE_OK);
}
END_TEST

START_TEST(test_stale_owner_entries_go_once_old)
{
	char id[STORE_ID_LEN + 1];
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	ck_assert_int_eq(store_own(&st, id, "alice"), STORE_OK);
	ck_assert_int_eq(store_own(&st, HELLO_WORLD_ID, "alice"), STORE_OK); /* no such object */
	char *junk = xasprintf("%s/.owners/not-an-id", storedir);
	ck_assert_int_eq(mkdir(junk, 0700), 0);
	int64_t now = now_ms();
	/* fresh: kept (a writer may be between its object and its entry) */
	ck_assert_int_eq(store_remove_stale_owners(&st, now - 60000), 0);
	ck_assert(exists(".owners/%s", HELLO_WORLD_ID));
	/* older than the cutoff: the one without its object goes */
	ck_assert_int_eq(store_remove_stale_owners(&st, now + 60000), 1);
	ck_assert(!exists(".owners/%s", HELLO_WORLD_ID));
	ck_assert(exists(".owners/%s", id));
	ck_assert_int_eq(store_owned(&st, id, "alice", 0), STORE_OK);
	ck_assert_int_eq(access(junk, F_OK), 0); /* not named like an object: not ours to judge */
	free(junk);
}
END_TEST

/* In a shared folder a member may rename what is in it: an .owners that is
 * not the process's user's alone counts for nothing. 0 when it holds. */
static int shared_owners_checks(const char *id)
{
	int bad = 0;
	st.shared = 1;
	bad |= store_own(&st, id, "alice") != STORE_OK;
	bad |= store_owned(&st, id, "alice", 1) != STORE_OK;
	bad |= fchmodat(st.dirfd, ".owners", 0770, 0) != 0; /* the test dir above is root's: relative */
	bad |= store_owned(&st, id, "alice", 1) != STORE_IO;
	bad |= store_owned(&st, id, "bob", 1) != STORE_IO;
	bad |= store_own(&st, id, "bob") != STORE_IO;
	bad |= fchmodat(st.dirfd, ".owners", 0700, 0) != 0;
	bad |= store_owned(&st, id, "alice", 0) != STORE_OK;
	st.shared = 0;
	return bad;
}

START_TEST(test_a_shared_folders_owners_must_be_the_users_alone)
{
	char id[STORE_ID_LEN + 1];
	ck_assert_int_eq(store_put(&st, "hello", 5, id), STORE_OK);
	if (geteuid() != 0) {
		ck_assert_int_eq(shared_owners_checks(id), 0);
		return;
	}
	/* root passes every check: as another user */
	ck_assert_int_eq(chown(storedir, 65534, 65534), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0
			      ? shared_owners_checks(id) : 2);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_creates_private_dir);
	tcase_add_test(tc, test_close_is_idempotent);
	tcase_add_test(tc, test_put_hello_known_id);
	tcase_add_test(tc, test_put_empty);
	tcase_add_test(tc, test_same_content_same_id);
	tcase_add_test(tc, test_object_is_read_only);
	tcase_add_test(tc, test_existing_object_never_replaced);
	tcase_add_test(tc, test_streaming_writer);
	tcase_add_test(tc, test_writer_too_large);
	tcase_add_test(tc, test_abort_leaves_nothing);
	tcase_add_test(tc, test_bad_ids_rejected);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_symlink_not_followed);
	tcase_add_test(tc, test_remove);
	tcase_add_test(tc, test_remove_stale_temps);
	tcase_add_test(tc, test_check_takes_only_the_named_bytes);
	tcase_add_test(tc, test_share_gives_the_group_the_folder);
	tcase_add_test(tc, test_shared_folder_replaces_a_wrong_object_whole);
	tcase_add_test(tc, test_a_file_linked_in_is_not_an_object);
	tcase_add_test(tc, test_share_refuses_a_folder_others_could_replace);
	tcase_add_test(tc, test_shared_lock_is_outside_the_folder);
	tcase_add_test(tc, test_give_temp_hands_over_only_a_writers_own_temp_file);
	tcase_add_test(tc, test_a_writer_that_may_not_chown_asks_its_give_hook);
	tcase_add_test(tc, test_touch_marks_an_object_used_now_and_last_used_reads_it);
	tcase_add_test(tc, test_touch_never_follows_a_symlink);
	tcase_add_test(tc, test_owners_are_entries_in_the_store);
	tcase_add_test(tc, test_stale_owner_entries_go_once_old);
	tcase_add_test(tc, test_a_shared_folders_owners_must_be_the_users_alone);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
