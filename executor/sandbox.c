/* sandbox: see sandbox.h. The launcher (host root) and, in one ordered list of
 * steps, the setup of one sandbox's namespaces, root file system and network,
 * after which the executor server (a run's sandbox) or the install's command
 * runs as pid 1 inside. An install sandbox is a struct sbx with `install` set:
 * each step that differs asks it, there is no second list. */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "install.h"
#include "log.h"
#include "package_layout.h"
#include "runner.h"
#include "server.h"
#include "setup.h"
#include "util.h"

#define INSIDE_SOCKET "/run/executor/executor.sock"
#define INSIDE_RUNNER "/opt/code-interpreter/python"
#define INSIDE_BIN "/opt/code-interpreter/bin"
#define INSIDE_WORKSPACE "/workspace"

/* Everything the child needs, filled in by the launcher before clone(). */
struct sbx {
	const struct config *cfg;
	const char *id;
	const struct sbx_install *install; /* an install sandbox's options; NULL: a run's */
	char dir[PATH_MAX]; /* canonical host path of the sandbox directory */
	char group[96];     /* its cgroup: the id, or CGROUP_INSTALL_PREFIX "id" */
	int ready_fd;
	int runner_fd; /* the zygote's request socket, or -1 (the server forks) */
	int sync_rd, sync_wr; /* launcher -> child: maps written, cgroups joined */
	int root_fd;          /* the child's: the prepared root (O_PATH), or -1 */
	int font_fd;          /* the child's: matplotlib's font list (font_list), or -1 */
	int shared_root;      /* building the spawner's root, shared by every sandbox */
	/* an install's: the staging directory the launcher prepared (checked again
	 * by the child), and the child's descriptors (O_PATH) of it and find-links */
	dev_t staging_dev;
	ino_t staging_ino;
	int staging_fd, find_links_fd;
	long uid_base; /* host uid of sandbox root: its uid slot's (sandbox.h) */
};

/* An install sandbox in the host's network namespace (else its own: loopback). */
static int host_network(const struct sbx *s)
{
	return s->install && s->install->host_network;
}

/* The spawner's prepared root (sbx_root_prepare), or NULL: each sandbox builds
 * its own. */
static char *prepared_root;

/* The spawner's: the directory into which its builder puts matplotlib's font
 * list when done (font_list_start), or NULL; and the list's path there once
 * sbx_spawn has seen it (fontlist-vNNN.json), or NULL. */
static char *font_list_dir;
static char *font_list;

/* ------------------------------------------------- helpers of the child */

static void mount_tmpfs(const char *path, unsigned long flags, const char *opts)
{
	if (mount("tmpfs", path, "tmpfs", flags, opts) < 0)
		setup_die("mount tmpfs on", path);
}

/* A sandbox's scratch tmpfs: size bytes, and one inode per SCRATCH_INODE_BYTES
 * of them (as many files as it could hold if each took a page; without
 * nr_inodes a tmpfs has as many as half the host's RAM pages), with the
 * further options in rest ("mode=1777", ...). */
#define SCRATCH_INODE_BYTES 4096
static void mount_scratch(const char *path, unsigned long flags, uint64_t size, const char *rest)
{
	char opts[160];
	unsigned long long inodes = (unsigned long long)(size / SCRATCH_INODE_BYTES);
	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,%s", (unsigned long long)size,
		 inodes < 64 ? 64 : inodes, rest);
	mount_tmpfs(path, flags, opts);
}

static void remount_one(const char *path, unsigned long flags)
{
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | setup_locked_flags(path), NULL) < 0)
		setup_die("remount", path);
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* Remounts rel (relative to the sandbox dir, the cwd) and every mount below it
 * with flags added: a recursive bind brings the host's submounts along, and
 * each of them must become read-only too. */
static void remount_tree(const struct sbx *s, const char *rel, unsigned long flags)
{
	/* one call where the kernel has it (5.12): flags are only added, so the
	 * locked ones stay as they are */
	static const struct { unsigned long ms; uint64_t attr; } map[] = {
		{MS_RDONLY, MOUNT_ATTR_RDONLY}, {MS_NOSUID, MOUNT_ATTR_NOSUID},
		{MS_NODEV, MOUNT_ATTR_NODEV}, {MS_NOEXEC, MOUNT_ATTR_NOEXEC},
	};
	struct mount_attr attr = {0};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (flags & map[i].ms)
			attr.attr_set |= map[i].attr;
	if (mount_setattr(AT_FDCWD, rel, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
		return;
	if (errno != ENOSYS)
		setup_die("mount_setattr", rel);
	/* older kernels: each mount below rel, as mountinfo lists them */
	remount_one(rel, flags);
	char prefix[PATH_MAX + 2];
	int n = snprintf(prefix, sizeof(prefix), "%s/%s/", s->dir, rel);
	if (n < 0 || (size_t)n >= sizeof(prefix)) {
		errno = ENAMETOOLONG;
		setup_die("remount", rel);
	}
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		setup_die("open", "/proc/self/mountinfo");
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root MOUNT-POINT options ... */
		char *field = line;
		for (int i = 0; i < 4 && field; i++) {
			field = strchr(field, ' ');
			if (field)
				field++;
		}
		if (!field)
			continue;
		field[strcspn(field, " ")] = '\0';
		unescape(field);
		if (strncmp(field, prefix, (size_t)n) == 0)
			remount_one(field + strlen(s->dir) + 1, flags);
	}
	free(line);
	fclose(f);
}

/* Binds host path src onto rel (a directory or file made to match), then
 * remounts it with flags (MS_RDONLY, MS_NOSUID, ...) plus the locked ones. */
static void bind_path(const struct sbx *s, const char *src, const char *rel, unsigned long flags)
{
	struct stat st;
	if (stat(src, &st) < 0)
		setup_die("stat", src);
	if (S_ISDIR(st.st_mode))
		setup_make_dir(rel, 0755);
	else
		setup_make_file(rel);
	if (mount(src, rel, NULL, MS_BIND | MS_REC, NULL) < 0)
		setup_die("bind mount", src);
	/* only a directory can have submounts: a file is remounted alone, without
	 * the scan of mountinfo (a good part of a sandbox's setup time) */
	if (S_ISDIR(st.st_mode))
		remount_tree(s, rel, flags);
	else
		remount_one(rel, flags);
}

/* Copies a host symlink (e.g. /lib -> usr/lib) into the new root. */
static void copy_symlink(const char *src, const char *rel)
{
	char target[PATH_MAX];
	ssize_t n = readlink(src, target, sizeof(target) - 1);
	if (n < 0)
		setup_die("readlink", src);
	target[n] = '\0';
	if (symlink(target, rel) < 0)
		setup_die("symlink", rel);
}

/* A host entry that may be a symlink, a directory, a file or missing. */
static void bind_or_link(const struct sbx *s, const char *src, const char *rel,
			 unsigned long flags)
{
	struct stat st;
	if (lstat(src, &st) < 0) {
		if (errno == ENOENT)
			return;
		setup_die("lstat", src);
	}
	if (S_ISLNK(st.st_mode))
		copy_symlink(src, rel);
	else
		bind_path(s, src, rel, flags);
}

static void path_join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		setup_die("path", b);
	}
}

/* Copies the regular file open at in (named src in messages) to rel (0644);
 * closes in. */
static void copy_fd(int in, const char *src, const char *rel)
{
	struct stat st;
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
		setup_die("open", src);
	int out = open(rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		setup_die("create", rel);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n) < 0)
			setup_die("write", rel);
	if (n < 0 || fchmod(out, 0644) < 0)
		setup_die("copy", src);
	close(in);
	close(out);
}

/* Copies a host regular file's bytes to rel (0644). */
static void copy_file(const char *src, const char *rel)
{
	int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		setup_die("open", src);
	copy_fd(in, src, rel);
}

/* Copies a host entry to rel: a symlink as the same symlink, a file's bytes, a
 * directory with what it holds. Only what anyone may read on the host (others'
 * read, and search for a directory), as a bind would show it to the sandbox's
 * user; never through a symlink. A missing entry is skipped. */
static void copy_entry(const char *src, const char *rel, int depth)
{
	struct stat st;
	if (lstat(src, &st) < 0) {
		if (errno == ENOENT)
			return;
		setup_die("lstat", src);
	}
	if (S_ISLNK(st.st_mode)) {
		copy_symlink(src, rel);
		return;
	}
	if (!(st.st_mode & S_IROTH))
		return;
	if (S_ISREG(st.st_mode)) {
		copy_file(src, rel);
		return;
	}
	if (!S_ISDIR(st.st_mode) || !(st.st_mode & S_IXOTH) || depth >= 8)
		return;
	setup_make_dir(rel, 0755);
	DIR *d = opendir(src);
	if (!d)
		setup_die("opendir", src);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char from[PATH_MAX], to[PATH_MAX];
		path_join(from, sizeof(from), src, e->d_name);
		path_join(to, sizeof(to), rel, e->d_name);
		copy_entry(from, to, depth + 1);
	}
	closedir(d);
}

/* ------------------------------------------------------ the child's steps */

/* The launcher's "go" says whether a memory cgroup limit is in force. */
static void step_wait_for_launcher(struct sbx *s)
{
	sbx_set_memory_cgroup(setup_wait_for_launcher(&s->sync_rd, &s->sync_wr) == 'M');
}

static void step_namespaces_late(void)
{
	/* after the launcher moved us into our cgroups, so that they are our root */
	if (unshare(CLONE_NEWCGROUP) < 0)
		setup_die("unshare(CLONE_NEWCGROUP)", NULL);
	if (sethostname("sandbox", strlen("sandbox")) < 0)
		setup_die("sethostname", NULL);
	if (setdomainname("", 0) < 0)
		setup_die("setdomainname", NULL);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		setup_die("make mounts private", NULL);
}

/* The new root: a small tmpfs over the sandbox's `root` directory (the
 * shared one holds copies of /etc's whitelist). */
static void step_root_tmpfs(const struct sbx *s)
{
	mount_tmpfs("root", MS_NOSUID | MS_NODEV,
		    s->shared_root ? "size=16m,nr_inodes=16384,mode=0755" : "size=1m,nr_inodes=4096,mode=0755");
}

/* /usr, and /lib*, /bin, /sbin as the host has them (usually symlinks). */
static void step_system(const struct sbx *s)
{
	static const char *const top[] = {"lib", "lib32", "lib64", "libx32", "bin", "sbin"};
	bind_path(s, "/usr", "root/usr", MS_RDONLY | MS_NOSUID | MS_NODEV);
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		char src[64], rel[64];
		snprintf(src, sizeof(src), "/%s", top[i]);
		snprintf(rel, sizeof(rel), "root/%s", top[i]);
		bind_or_link(s, src, rel, MS_RDONLY | MS_NOSUID | MS_NODEV);
	}
}

/* /etc: a whitelist from the host, read-only, plus files written here. The
 * spawner's shared root copies the whitelist, once (a mount per entry would be
 * copied into, and torn down with, every sandbox); a sandbox that builds its
 * own root binds it. */
/* A host entry at rel, read-only: copied into the spawner's shared root,
 * bound (a symlink copied) in a root of the sandbox's own. */
static void host_entry(const struct sbx *s, const char *src, const char *rel)
{
	if (s->shared_root)
		copy_entry(src, rel, 0);
	else
		bind_or_link(s, src, rel, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

static void step_etc(const struct sbx *s)
{
	static const char *const host[] = {
		"alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts",
		"matplotlibrc", "python3", "python3.11", "mime.types", "ssl", "localtime",
		"ImageMagick-6", /* convert's colors, fonts (type*.xml) and policy.xml limits */
	};
	setup_make_dir("root/etc", 0755);
	for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++) {
		char src[64], rel[64];
		snprintf(src, sizeof(src), "/etc/%s", host[i]);
		snprintf(rel, sizeof(rel), "root/etc/%s", host[i]);
		host_entry(s, src, rel);
	}
	setup_write_text("root/etc/passwd",
		   "root:x:0:0:root:/root:/bin/sh\n"
		   "sandbox:x:1000:1000:sandbox:/tmp:/bin/sh\n"
		   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0644);
	setup_write_text("root/etc/group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n", 0644);
	setup_write_text("root/etc/hosts", "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n", 0644);
	/* names resolve only where there is a network to ask: an install's on the
	 * host's network (a run, and an install with a local find-links only,
	 * have loopback) */
	struct stat st;
	if (host_network(s) && stat("/etc/resolv.conf", &st) == 0 && S_ISREG(st.st_mode))
		bind_path(s, "/etc/resolv.conf", "root/etc/resolv.conf",
			  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
	else
		setup_write_text("root/etc/resolv.conf", "", 0644);
#define NSSWITCH(hosts)                                                               \
	"passwd: files\ngroup: files\nshadow: files\nhosts: " hosts "\nnetworks: files\n" \
	"protocols: files\nservices: files\n"
	setup_write_text("root/etc/nsswitch.conf", host_network(s) ? NSSWITCH("files dns") : NSSWITCH("files"),
			 0644);
#undef NSSWITCH
}

/* fontconfig's system cache, read-only, as /etc's whitelist (copied into the
 * shared root): without it each process that looks up a font (weasyprint,
 * ImageMagick, matplotlib's fc-list) scans every font file first. */
static void step_font_cache(const struct sbx *s)
{
	setup_make_dir("root/var", 0755);
	setup_make_dir("root/var/cache", 0755);
	host_entry(s, "/var/cache/fontconfig", "root/var/cache/fontconfig");
}

/* The Python runner, read-only at /opt/code-interpreter/python, and the
 * programs that stand in for system ones (executor/bin: upstream's pandoc
 * wrapper), read-only at /opt/code-interpreter/bin, first on the runs' PATH
 * (runner.c). */
static void step_runner(const struct sbx *s)
{
	char src[PATH_MAX];
	path_join(src, sizeof(src), s->cfg->data_dir, "executor/python");
	setup_make_dir("root/opt", 0755);
	setup_make_dir("root/opt/code-interpreter", 0755);
	bind_path(s, src, "root" INSIDE_RUNNER, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
	path_join(src, sizeof(src), s->cfg->data_dir, "executor/bin");
	bind_path(s, src, "root" INSIDE_BIN, MS_RDONLY | MS_NOSUID | MS_NODEV);
}

/* The package cache's dists/ (one directory per distribution), read-only at
 * SBX_INSIDE_PACKAGES (the runner puts the directories of the
 * distributions a run imports on sys.path). Not noexec: extension modules are
 * mapped executable. */
static void step_packages(const struct sbx *s)
{
	char src[PATH_MAX];
	struct stat st;
	path_join(src, sizeof(src), s->cfg->package_cache, "dists");
	if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode))
		return; /* installs are off and never happened */
	bind_path(s, src, "root" SBX_INSIDE_PACKAGES, MS_RDONLY | MS_NOSUID | MS_NODEV);
}

/* The runner's MPLCONFIGDIR (runner.c), when it is a directory right under
 * /tmp (the only place a sandbox's setup can make it); else NULL. */
static const char *runner_mplconfigdir(void)
{
	static const char name[] = "MPLCONFIGDIR=";
	for (const char *const *e = runner_fixed_env(); *e; e++)
		if (strncmp(*e, name, sizeof(name) - 1) == 0) {
			const char *dir = *e + sizeof(name) - 1;
			return strncmp(dir, "/tmp/", 5) == 0 && dir[5] && !strchr(dir + 5, '/') ? dir : NULL;
		}
	return NULL;
}

/* A copy of matplotlib's font list (font_list, open at s->font_fd) in the
 * runner's MPLCONFIGDIR, both the sandbox user's (matplotlib rewrites the
 * list when a font went away). */
static void step_font_list_copy(struct sbx *s)
{
	const char *dir = runner_mplconfigdir();
	char rel[PATH_MAX], dst[PATH_MAX];
	if (s->font_fd < 0 || !dir)
		return;
	snprintf(rel, sizeof(rel), "root%s", dir);
	path_join(dst, sizeof(dst), rel, strrchr(font_list, '/') + 1);
	setup_make_dir(rel, 0755);
	copy_fd(s->font_fd, font_list, dst);
	s->font_fd = -1;
	if (chown(dst, SANDBOX_USER, SANDBOX_USER) < 0 || chown(rel, SANDBOX_USER, SANDBOX_USER) < 0)
		setup_die("chown", dst);
}

/* Private, size- and inode-limited /workspace (the sandbox user's) and /tmp;
 * an install has only /tmp, of APP_PACKAGE_INSTALL_MB (pip downloads and
 * unpacks there; it is charged to the memory cgroup anyway). */
static void step_scratch(struct sbx *s)
{
	char opts[64];
	if (s->install) {
		mount_scratch("root/tmp", MS_NOSUID | MS_NODEV, s->cfg->package_install_bytes, "mode=1777");
		return;
	}
	snprintf(opts, sizeof(opts), "mode=0755,uid=%d,gid=%d", SANDBOX_USER, SANDBOX_USER);
	mount_scratch("root/workspace", MS_NOSUID | MS_NODEV, s->cfg->sandbox_workspace_bytes, opts);
	mount_scratch("root/tmp", MS_NOSUID | MS_NODEV, s->cfg->sandbox_tmp_bytes, "mode=1777");
	step_font_list_copy(s);
}

/* /dev: a tmpfs with the five harmless devices bound from the host. */
static void step_dev(const struct sbx *s)
{
	static const char *const devices[] = {"null", "zero", "full", "random", "urandom"};
	static const char *const links[][2] = {
		{"/proc/self/fd", "root/dev/fd"},
		{"/proc/self/fd/0", "root/dev/stdin"},
		{"/proc/self/fd/1", "root/dev/stdout"},
		{"/proc/self/fd/2", "root/dev/stderr"},
	};
	setup_make_dir("root/dev", 0755);
	mount_tmpfs("root/dev", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755");
	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		char src[32], rel[32];
		snprintf(src, sizeof(src), "/dev/%s", devices[i]);
		snprintf(rel, sizeof(rel), "root/dev/%s", devices[i]);
		bind_path(s, src, rel, MS_NOSUID | MS_NOEXEC);
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0)
			setup_die("symlink", links[i][1]);
	setup_make_dir("root/dev/shm", 01777);
	if (mount(NULL, "root/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
		  NULL) < 0)
		setup_die("remount read-only", "/dev");
}

/* The sandbox's own /dev/shm. */
static void step_shm(void)
{
	mount_scratch("root/dev/shm", MS_NOSUID | MS_NODEV | MS_NOEXEC, 64u << 20, "mode=1777");
}

/* A proc of our own pid namespace. Mounted while the host's proc is still in
 * the mount namespace: the kernel only lets a user namespace mount proc when an
 * unobstructed one is already visible. */
static void step_proc(void)
{
	if (mount("proc", "root/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		setup_die("mount proc", NULL);
}

/* The socket directory, the only host directory the sandbox can write to. */
static void step_socket_dir(void)
{
	if (mount("sock", "root/run/executor", NULL, MS_BIND, NULL) < 0)
		setup_die("bind mount", "sock");
	remount_one("root/run/executor", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

/* An install's host directories, bound with the descriptors the child opened
 * before its uid change: the staging directory read-write (pip's --target),
 * the only host directory the install can write to, and find-links read-only. */
static void step_install_dirs(struct sbx *s)
{
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", s->staging_fd);
	bind_path(s, src, "root" INSTALL_INSIDE_STAGING, MS_NOSUID | MS_NODEV);
	close(s->staging_fd);
	s->staging_fd = -1;
	if (s->find_links_fd >= 0) {
		snprintf(src, sizeof(src), "/proc/self/fd/%d", s->find_links_fd);
		bind_path(s, src, "root" INSTALL_INSIDE_FIND_LINKS,
			  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
		close(s->find_links_fd);
		s->find_links_fd = -1;
	}
}

/* The mount points of what each sandbox mounts for itself. */
static void step_mount_points(const struct sbx *s)
{
	setup_make_dir("root/tmp", 01777);
	setup_make_dir("root/proc", 0555);
	if (s->install) {
		setup_make_dir("root/opt", 0755);
		setup_make_dir("root/opt/code-interpreter", 0755);
		return;
	}
	setup_make_dir("root/workspace", 0755);
	setup_make_dir("root/run", 0755);
	setup_make_dir("root/run/executor", 0700);
}

/* At `root` (relative to the cwd), what every sandbox's root has: the system's
 * directories, /etc, /dev and the mount points of the rest; a run's also the
 * runner and the package cache. */
static void build_root(const struct sbx *s)
{
	step_root_tmpfs(s);
	step_system(s);
	step_etc(s);
	step_font_cache(s);
	if (!s->install) {
		step_runner(s);
		step_packages(s);
	}
	step_dev(s);
	step_mount_points(s);
}

/* `root` as a copy of the spawner's prepared root (read-only, and locked so:
 * it comes from a namespace of a more privileged user namespace). */
static void step_root_copy(struct sbx *s)
{
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", s->root_fd);
	if (mount(src, "root", NULL, MS_BIND | MS_REC, NULL) < 0)
		setup_die("bind mount", "the prepared root");
	close(s->root_fd);
	s->root_fd = -1;
}

/* Loopback up; it is the only interface of a new network namespace. */
static void step_loopback(void)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		setup_die("socket", "for lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		setup_die("SIOCGIFFLAGS", "lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		setup_die("SIOCSIFFLAGS", "lo");
	close(fd);
}

/* stdin from /dev/null, no inherited descriptor but stdout, stderr, the
 * ready pipe and the zygote's request socket, and a small known environment
 * (APP_* kept for a run's server; an install's command gets only its own). */
static void step_process(const struct sbx *s)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0)
		setup_die("stdin", "/dev/null");
	if (null != STDIN_FILENO)
		close(null);
	int fds[2] = {s->ready_fd, s->runner_fd};
	if (fds[0] > fds[1]) {
		fds[0] = s->runner_fd;
		fds[1] = s->ready_fd;
	}
	unsigned lo = 3;
	for (int i = 0; i < 2; i++) {
		if (fds[i] < (int)lo)
			continue;
		if (fds[i] > (int)lo)
			syscall(SYS_close_range, lo, (unsigned)fds[i] - 1, 0U);
		lo = (unsigned)fds[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0U, 0U);

	extern char **environ;
	size_t n = 0;
	for (char **e = environ; *e; e++)
		n++;
	char **keep = xcalloc(n + 1, sizeof(char *));
	size_t k = 0;
	for (char **e = environ; *e; e++)
		if (!s->install && strncmp(*e, "APP_", 4) == 0)
			keep[k++] = xstrdup(*e);
	if (clearenv() != 0)
		setup_die("clearenv", NULL);
	for (size_t i = 0; i < k; i++)
		if (putenv(keep[i]) != 0) /* putenv keeps the string: not freed */
			setup_die("putenv", NULL);
	free(keep);
	if (setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1) < 0 || setenv("HOME", "/tmp", 1) < 0 ||
	    setenv("TMPDIR", "/tmp", 1) < 0 || setenv("LANG", "C.UTF-8", 1) < 0)
		setup_die("setenv", NULL);
	umask(022);
}

#ifdef SBX_SMOKE_HOOK
/* Manual checks only: tests/sandbox_smoke.sh builds a separate binary with
 * -DSBX_SMOKE_HOOK. The service's build never contains this. */
static char *smoke_cmd;
static int smoke_lockdown;

static void smoke_save(void)
{
	const char *c = getenv("SBX_SMOKE_CMD");
	smoke_cmd = c ? xstrdup(c) : NULL;
	smoke_lockdown = getenv("SBX_SMOKE_LOCKDOWN") != NULL;
}

/* Runs the command like the server runs user code: as a locked-down child of
 * pid 1 (which stays sandbox root and reaps), or directly as pid 1. */
static void smoke_run(const struct sbx *s)
{
	if (!smoke_cmd)
		return;
	if (s->ready_fd >= 0)
		close(s->ready_fd);
	pid_t pid = smoke_lockdown ? fork() : 0;
	if (pid < 0)
		setup_die("fork", NULL);
	if (pid == 0) {
		if (smoke_lockdown && sbx_lockdown(s->cfg, 1) < 0)
			_exit(1);
		execl("/bin/sh", "sh", "-c", smoke_cmd, (char *)NULL);
		setup_die("exec", "/bin/sh");
	}
	for (;;) {
		int status;
		pid_t r = wait(&status);
		if (r < 0 && errno != EINTR)
			_exit(1);
		if (r == pid)
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
}
#endif

/* An install's host directories, opened before the uid change (their parents
 * may be root's and closed to others); the staging directory must be the one
 * the launcher prepared, never a symlink. */
static void open_install_dirs(struct sbx *s)
{
	const struct sbx_install *o = s->install;
	struct stat st;
	s->staging_fd = open(o->staging, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->staging_fd < 0 || fstat(s->staging_fd, &st) < 0)
		setup_die("open", o->staging);
	if (st.st_dev != s->staging_dev || st.st_ino != s->staging_ino) {
		errno = ESTALE;
		setup_die("the staging directory was replaced:", o->staging);
	}
	if (o->find_links &&
	    (s->find_links_fd = open(o->find_links, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		setup_die("open", o->find_links);
}

/* pid 1 of an install sandbox: its command as a locked-down child, reaping
 * whatever else ends up here. The command's exit status, or 128+S. */
static int run_command(const struct sbx *s)
{
	const struct sbx_install *o = s->install;
	pid_t pid = fork();
	if (pid < 0)
		setup_die("fork", NULL);
	if (pid == 0) {
		if (sbx_lockdown(s->cfg, 1) < 0)
			_exit(1);
		execve(o->argv[0], (char *const *)(void *)o->argv, (char *const *)(void *)o->envp);
		setup_die("exec", o->argv[0]);
	}
	for (;;) {
		int status;
		pid_t r = wait(&status);
		if (r < 0 && errno != EINTR)
			setup_die("wait", NULL);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
}

/* pid 1 of the sandbox: the steps in order, then the executor server (a
 * run's) or the command (an install's). */
static int child_main(struct sbx *s)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		setup_die("PR_SET_PDEATHSIG", NULL);
	prctl(PR_SET_NAME, "sandbox");
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* cwd = the sandbox dir, resolved in our new mount namespace (a descriptor
	 * from the launcher would point into the host's, where we cannot mount).
	 * Done before the uid change: we still count as the owner of the host's
	 * root-owned (possibly 0700) directories above it. */
	if (chdir(s->dir) < 0)
		setup_die("chdir", s->dir);
	/* opened here, in our mount namespace (a descriptor of the spawner's would
	 * name its mount, which we may not bind), and before the uid change (the
	 * run directory may be 0700) */
	s->root_fd = s->staging_fd = s->find_links_fd = s->font_fd = -1;
	if (font_list && !s->install)
		s->font_fd = open(font_list, O_RDONLY | O_NOFOLLOW | O_CLOEXEC); /* -1: no copy */
	if (s->install)
		open_install_dirs(s);
	else if (prepared_root &&
		 (s->root_fd = open(prepared_root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		setup_die("open", prepared_root);
#ifdef SBX_SMOKE_HOOK
	smoke_save();
#endif
	step_wait_for_launcher(s);
	setup_become_root(&s->sync_rd);
	step_namespaces_late();
	if (s->root_fd >= 0)
		step_root_copy(s);
	else
		build_root(s);
	step_scratch(s);
	step_shm();
	step_proc();
	if (s->install)
		step_install_dirs(s);
	else
		step_socket_dir();
	setup_pivot();
	if (!host_network(s))
		step_loopback();
	step_process(s);
	if (s->install)
		return run_command(s);
#ifdef SBX_SMOKE_HOOK
	smoke_run(s);
#endif
	struct server_options o = {
		.cfg = s->cfg,
		.socket_path = INSIDE_SOCKET,
		.port = 0,
		.workspace = INSIDE_WORKSPACE,
		.runner_dir = INSIDE_RUNNER,
		.sandboxed = 1,
		.ready_fd = s->ready_fd,
		.runner_request_fd = s->runner_fd,
	};
	return server_run(&o);
}

/* ------------------------------------------------------------ the launcher */

static int launch_fail(const char *step, const char *what)
{
	log_error("sandbox launcher: %s%s%s: %s", step, what ? " " : "", what ? what : "",
		  strerror(errno));
	return 1;
}

/* The package cache's directories (package_layout.h), made here too (as
 * host root) so that every sandbox, started before the service made them or
 * not, mounts dists/. */
static int make_package_dir(const struct config *cfg)
{
	if (!cfg->package_install)
		return 0;
	return pkg_layout_prepare(cfg) < 0 ? 1 : 0;
}

/* run_dir/sandboxes (or run_dir/installs for an install) resolved, once per
 * process (the zygote's spawner makes every sandbox in it). NULL (logged) when
 * it cannot be made or resolved. The installs are not in sandboxes/, whose
 * leftovers the pool manager removes. */
static const char *sandboxes_dir(const struct config *cfg, int install)
{
	static char resolved[2][PATH_MAX];
	char *r = resolved[install ? 1 : 0];
	if (r[0])
		return r;
	char sub[PATH_MAX];
	int n = install ? snprintf(sub, sizeof(sub), "%s/installs", cfg->run_dir)
			: sbx_parent_dir(cfg, sub, sizeof(sub));
	if (n < 0 || (size_t)n >= sizeof(sub) || mkdir_p(sub, 0755) < 0 || !realpath(sub, r)) {
		launch_fail("sandboxes directory", sub);
		r[0] = '\0';
		return NULL;
	}
	return r;
}

/* An install's staging directory: the sandbox user's, 0700, so that pip can
 * write into it and nobody else into the sandbox's files. Remembered (device,
 * inode) for the child to check. 0, or 1 (logged). */
static int prepare_staging(struct sbx *s)
{
	uid_t user = (uid_t)(s->uid_base + SANDBOX_USER);
	struct stat st;
	int fd = open(s->install->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || fchown(fd, user, user) < 0 || fchmod(fd, 0700) < 0) {
		launch_fail("staging directory", s->install->staging);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	s->staging_dev = st.st_dev;
	s->staging_ino = st.st_ino;
	close(fd);
	return 0;
}

/* The group of APP_SERVICE_USER, whose workers connect to the executor
 * sockets, or -1 when there is no such user (then root alone reaches them). */
static gid_t service_gid(const struct config *cfg)
{
	static int known;
	static gid_t gid = (gid_t)-1;
	if (!known) {
		struct passwd *pw = getpwnam(cfg->service_user);
		gid = pw && pw->pw_gid != 0 ? pw->pw_gid : (gid_t)-1;
		known = 1;
	}
	return gid;
}

/* Creates run_dir/sandboxes/ID with root/ (owned by the host uid that
 * sandbox root maps to, 0700) and sock/ (the same owner, group the service
 * user's, 02710: the server's socket inherits that group and is 0660, so the
 * workers, which run as that user, may connect and no one else may), or for
 * an install run_dir/installs/ID with root/. Fails when the directory exists. */
static int make_dirs(struct sbx *s, int *made)
{
	char sub[PATH_MAX];
	uid_t owner = (uid_t)s->uid_base;
	const char *parent = sandboxes_dir(s->cfg, s->install != NULL);
	if (!parent)
		return 1;
	path_join(s->dir, sizeof(s->dir), parent, s->id);
	if (mkdir(s->dir, 0711) < 0)
		return launch_fail("mkdir", s->dir);
	*made = 1;
	static const char *const subs[] = {"root", "sock"};
	for (int i = 0; i < (s->install ? 1 : 2); i++) {
		path_join(sub, sizeof(sub), s->dir, subs[i]);
		int sock = i == 1 && service_gid(s->cfg) != (gid_t)-1;
		if (mkdir(sub, 0700) < 0 || chown(sub, owner, sock ? service_gid(s->cfg) : owner) < 0 ||
		    chmod(sub, sock ? 02710 : 0700) < 0)
			return launch_fail("mkdir", sub);
	}
	if (s->install)
		return prepare_staging(s);
	return prepared_root ? 0 : make_package_dir(s->cfg);
}

/* Waits for the sandbox's pid 1 and returns its exit status (128+S when
 * signal S ended it). Kills it on SIGTERM, SIGINT or SIGHUP (*stopped is then
 * that signal) and, given a deadline (monotonic_ms; 0: none), once that
 * passes (*stopped is then -1); else *stopped is 0. -1 when waiting failed (logged;
 * the sandbox killed). */
static int supervise(pid_t child, const sigset_t *set, int64_t deadline_ms, int *stopped)
{
	*stopped = 0;
	for (;;) {
		siginfo_t si;
		int sig;
		if (deadline_ms > 0 && *stopped == 0) {
			int64_t left = deadline_ms - monotonic_ms();
			struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
			errno = EAGAIN;
			sig = left <= 0 ? -1 : sigtimedwait(set, &si, &ts);
		} else {
			sig = sigwaitinfo(set, &si);
		}
		if (sig < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			kill(child, SIGKILL);
			if (err == EAGAIN) { /* the deadline */
				*stopped = -1;
				continue;
			}
			errno = err;
			launch_fail("sigwaitinfo", NULL);
			return -1;
		}
		if (sig != SIGCHLD) {
			log_info("sandbox launcher: signal %d, killing the sandbox", sig);
			if (*stopped == 0)
				*stopped = sig;
			kill(child, SIGKILL);
			continue;
		}
		int status;
		pid_t r = waitpid(child, &status, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR))
			continue;
		if (r < 0) {
			launch_fail("waitpid", NULL);
			return -1;
		}
		if (WIFEXITED(status))
			return WEXITSTATUS(status);
		if (WIFSIGNALED(status)) {
			if (*stopped == 0)
				log_warn("sandbox launcher: sandbox killed by signal %d", WTERMSIG(status));
			return 128 + WTERMSIG(status);
		}
	}
}

/* Takes a uid slot (sandbox.h) no live sandbox holds, trying from the one
 * after the last taken (sandboxes are used once, so the oldest slots free up
 * first: usually the first try). *uid_base gets the host uid its sandbox root
 * maps to. The lock's descriptor, or -1 (logged). */
static int take_uid_slot(const struct config *cfg, long *uid_base)
{
	static int next;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	path_join(dir, sizeof(dir), cfg->run_dir, "uid-slots");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		launch_fail("mkdir", dir);
		return -1;
	}
	for (int tries = 0; tries < SBX_UID_SLOTS; tries++) {
		int slot = (next + tries) % SBX_UID_SLOTS;
		snprintf(path, sizeof(path), "%s/%d", dir, slot);
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			launch_fail("open", path);
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			next = (slot + 1) % SBX_UID_SLOTS;
			*uid_base = cfg->sandbox_uid_base + (long)slot * SBX_UID_STRIDE;
			return fd;
		}
		close(fd);
	}
	log_error("sandbox launcher: all %d uid slots are held by live sandboxes", SBX_UID_SLOTS);
	return -1;
}

/* Steps 3 and 5-8 of a sandbox's start, shared by the launcher, the zygote and
 * the install launcher: host directories, the namespaces, cgroups, uid/gid
 * maps, "go". On success *child is the sandbox's pid 1 and *sync_wr the
 * descriptor the caller keeps open while it lives (its hang-up tells the child
 * the parent died before the death signal was re-armed). A run's directory is
 * then the pool manager's to remove, an install's the caller's. 0, or -1
 * (logged; nothing is left running, the directory is removed). */
static int spawn(struct sbx *s, pid_t *child_out, int *sync_wr_out, int *slot_fd_out)
{
	const struct config *cfg = s->cfg;
	pid_t child = -1;
	int rc = -1, made_dir = 0;
	int slot_fd = take_uid_slot(cfg, &s->uid_base);
	/* a run's limits, or an install's: its own memory limit, one CPU */
	struct cgroup_limits limits = {cfg->sandbox_memory_bytes, cfg->sandbox_pids,
				       (long)(cfg->sandbox_cpus * CGROUP_CPU_PERIOD_US + 0.5)};
	if (s->install)
		limits = (struct cgroup_limits){cfg->package_install_bytes, cfg->sandbox_pids,
						CGROUP_CPU_PERIOD_US};

	if (slot_fd < 0 || make_dirs(s, &made_dir) != 0)
		goto out;
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0) {
		launch_fail("pipe", NULL);
		goto out;
	}
	s->sync_rd = sync[0];
	s->sync_wr = sync[1];
	/* the namespaces (cgroup namespace later, from inside, once the child
	 * sits in its cgroups). Raw clone: like fork, on the same stack. */
	fflush(NULL);
	child = (pid_t)syscall(SYS_clone,
			       CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
				       (host_network(s) ? 0 : CLONE_NEWNET) | SIGCHLD,
			       NULL, NULL, NULL, NULL);
	if (child < 0) {
		launch_fail("clone", NULL);
		goto out;
	}
	if (child == 0)
		_exit(child_main(s));
	close(s->sync_rd);
	s->sync_rd = -1;
	/* cgroups, before the child runs anything */
	int cg = cgroup_setup(cfg, s->group, &limits, child);
	if (cg < 0) {
		errno = EIO;
		launch_fail("cgroup_setup", s->group);
		goto out;
	}
	/* uid/gid maps: sandbox root and the sandbox user */
	if (setup_write_id_map(child, "uid_map", s->uid_base) < 0) {
		launch_fail("write", "uid_map");
		goto out;
	}
	if (setup_write_id_map(child, "gid_map", s->uid_base) < 0) {
		launch_fail("write", "gid_map");
		goto out;
	}
	/* go; the write end stays open so the child can tell we are alive */
	char go = cg == 1 ? 'M' : 'N';
	if (write_all(s->sync_wr, &go, 1) < 0) {
		launch_fail("signal the sandbox", NULL);
		goto out;
	}
	*child_out = child;
	*sync_wr_out = s->sync_wr;
	*slot_fd_out = slot_fd;
	s->sync_wr = -1;
	slot_fd = -1;
	child = -1;
	made_dir = 0;
	rc = 0;
out:
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	if (s->sync_wr >= 0)
		close(s->sync_wr);
	if (s->sync_rd >= 0)
		close(s->sync_rd);
	s->sync_rd = s->sync_wr = -1;
	if (slot_fd >= 0)
		close(slot_fd);
	if (made_dir)
		remove_tree(s->dir);
	return rc;
}

/* Step 2: die with the parent (the pool manager, or the worker that runs an
 * install). 0, or 1 (logged). */
static int die_with_parent(void)
{
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return launch_fail("PR_SET_PDEATHSIG", NULL);
	if (getppid() != parent) {
		log_error("sandbox launcher: parent already gone");
		return 1;
	}
	return 0;
}

/* Step 4: signals are taken with sigwaitinfo; the child unblocks them. */
static int block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	return sigprocmask(SIG_BLOCK, set, NULL) < 0 ? launch_fail("sigprocmask", NULL) : 0;
}

/* The checks of step 1: 0, or the exit status for a bad id or path. */
static int check_id(const struct config *cfg, const char *id)
{
	char dir[PATH_MAX], sock[PATH_MAX];
	if (!sbx_id_valid(id)) {
		log_error("sandbox launcher: invalid id");
		return 2;
	}
	if (sbx_dir(cfg, id, dir, sizeof(dir)) < 0 || sbx_socket_path(cfg, id, sock, sizeof(sock)) < 0 ||
	    strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		log_error("sandbox launcher: socket path under APP_RUN_DIR=%s is too long", cfg->run_dir);
		return 2;
	}
	if (geteuid() != 0) {
		log_error("sandbox launcher: the local sandbox needs root (uid/gid maps, cgroups)");
		return 1;
	}
	return 0;
}

/* Starts building matplotlib's font list for the spawner's sandboxes, in the
 * background (about a second of CPU that the pool does not wait for): without
 * it every run that plots scans all the fonts again (some 200 ms) into its
 * empty MPLCONFIGDIR. The host's Python, in a known environment and writing no
 * bytecode, imports matplotlib.font_manager with MPLCONFIGDIR in a tmpfs of
 * the spawner's mount namespace (cwd: the zygote directory), then renames the
 * list into font_list_dir, where sbx_spawn finds it; sandboxes spawned from
 * then on start with a copy (step_font_list_copy). The spawner's reaper
 * reaps the builder. Never fatal: without matplotlib, or until it is done,
 * runs build their own list as before. */
static void font_list_start(const struct config *cfg, const char *zygote_dir)
{
	static const char code[] =
		"import glob, os, sys, matplotlib.font_manager\n"
		"for p in glob.glob(os.path.join(os.environ['MPLCONFIGDIR'], 'fontlist-*.json')):\n"
		"    os.chmod(p, 0o444)\n"
		"    os.rename(p, os.path.join(sys.argv[1], os.path.basename(p)))\n";
	if (!runner_mplconfigdir())
		return;
	if ((mkdir("fonts", 0700) < 0 && errno != EEXIST) ||
	    mount("tmpfs", "fonts", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4m,nr_inodes=64,mode=0700") < 0 ||
	    mkdir("fonts/build", 0700) < 0 || mkdir("fonts/ready", 0700) < 0) {
		log_warn("zygote: no place to build matplotlib's font list: %s", strerror(errno));
		return;
	}
	char *env_dir = xasprintf("MPLCONFIGDIR=%s/fonts/build", zygote_dir);
	char *ready = xasprintf("%s/fonts/ready", zygote_dir);
	const char *argv[] = {cfg->python, "-I", "-B", "-c", code, ready, NULL};
	const char *envp[] = {"PATH=/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8", "MPLBACKEND=Agg",
			      env_dir, NULL};
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(null, STDOUT_FILENO) < 0)
			_exit(127);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		execve(argv[0], (char *const *)(void *)argv, (char *const *)(void *)envp);
		_exit(127);
	}
	free(env_dir);
	if (pid < 0) {
		log_warn("zygote: fork for matplotlib's font list: %s", strerror(errno));
		free(ready);
		return;
	}
	font_list_dir = ready;
}

/* font_list, once the builder has put it into font_list_dir. */
static void font_list_find(void)
{
	if (font_list || !font_list_dir)
		return;
	DIR *d = opendir(font_list_dir);
	struct dirent *e;
	while (d && !font_list && (e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "fontlist-", 9) == 0)
			font_list = xasprintf("%s/%s", font_list_dir, e->d_name);
	if (d)
		closedir(d);
}

int sbx_root_prepare(const struct config *cfg)
{
	char dir[PATH_MAX];
	struct sbx s = {.cfg = cfg, .root_fd = -1, .sync_rd = -1, .sync_wr = -1, .shared_root = 1};
	int n = snprintf(dir, sizeof(dir), "%s/zygote", cfg->run_dir);
	if (n < 0 || (size_t)n >= sizeof(dir) - 8) {
		log_error("zygote: APP_RUN_DIR=%s is too long", cfg->run_dir);
		return -1;
	}
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return launch_fail("a mount namespace of its own for", "the spawner");
	/* (mounts an earlier spawner made there were in its own namespace, gone with it) */
	if ((mkdir_p(dir, 0700) < 0 && errno != EEXIST) || !realpath(dir, s.dir))
		return launch_fail("mkdir", dir);
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || chdir(s.dir) < 0 || (mkdir("root", 0700) < 0 && errno != EEXIST) ||
	    make_package_dir(cfg) != 0) {
		if (cwd >= 0)
			close(cwd);
		return launch_fail("prepare", s.dir);
	}
	setup_set_name("zygote: the sandboxes' root");
	build_root(&s); /* a failed step ends the spawner */
	remount_one("root", MS_RDONLY | MS_NOSUID | MS_NODEV);
	font_list_start(cfg, s.dir);
	setup_set_name("sandbox setup");
	if (fchdir(cwd) < 0)
		log_warn("zygote: back to the working directory: %s", strerror(errno));
	close(cwd);
	prepared_root = xasprintf("%s/root", s.dir);
	log_debug("zygote: the sandboxes' root prepared in %s", prepared_root);
	return 0;
}

int sbx_spawn(const struct config *cfg, const char *id, int ready_fd, int runner_fd, pid_t *pid,
	      int *keep_fd, int *slot_fd)
{
	struct sbx s = {.cfg = cfg, .id = id, .ready_fd = ready_fd, .runner_fd = runner_fd,
			.sync_rd = -1, .sync_wr = -1};
	if (check_id(cfg, id) != 0)
		return -1;
	snprintf(s.group, sizeof(s.group), "%s", id);
	font_list_find();
	return spawn(&s, pid, keep_fd, slot_fd);
}

int sbx_launch(const struct config *cfg, const char *id, int ready_fd)
{
	struct sbx s = {.cfg = cfg, .id = id, .ready_fd = ready_fd, .runner_fd = -1, .sync_rd = -1,
			.sync_wr = -1};
	pid_t child = -1;
	int keep = -1, slot = -1, stopped;
	sigset_t set;

	/* 1. checks */
	int bad = check_id(cfg, id);
	if (bad)
		return bad;
	snprintf(s.group, sizeof(s.group), "%s", id);
	/* 2. die with the pool manager; 4. signals */
	if (die_with_parent() != 0 || block_signals(&set) != 0)
		return 1;
	/* 3, 5-8. directories, namespaces, cgroups, maps, go */
	if (spawn(&s, &child, &keep, &slot) < 0)
		return 1;
	if (ready_fd >= 0)
		close(ready_fd); /* the sandbox holds it: EOF there means it died */
	/* 9. wait */
	int rc = supervise(child, &set, 0, &stopped);
	close(keep);
	close(slot);
	if (rc < 0)
		return 1;
	return stopped ? 0 : rc; /* stopped on request */
}

int sbx_install(const struct config *cfg, const struct sbx_install *o)
{
	struct sbx s = {.cfg = cfg, .id = o->id, .install = o, .ready_fd = -1, .runner_fd = -1,
			.sync_rd = -1, .sync_wr = -1};
	pid_t child = -1;
	int keep = -1, slot = -1, stopped = 0, rc = 1;
	sigset_t set;

	/* 1. checks */
	if (!sbx_id_valid(o->id)) {
		log_error("install launcher: invalid id");
		return 2;
	}
	if (geteuid() != 0) {
		log_error("install launcher: the install sandbox needs root (uid/gid maps, cgroups)");
		return 1;
	}
	snprintf(s.group, sizeof(s.group), CGROUP_INSTALL_PREFIX "%s", o->id);
	setup_set_name("install sandbox");
	/* 2. die with the worker; 4. signals */
	if (die_with_parent() != 0 || block_signals(&set) != 0)
		return 1;
	int64_t deadline = monotonic_ms() + (int64_t)(o->timeout * 1000.0);
	/* 3, 5-8. directories, namespaces, cgroups, maps, go */
	if (spawn(&s, &child, &keep, &slot) == 0) {
		/* 9. wait, until the deadline */
		rc = supervise(child, &set, deadline, &stopped);
		close(keep);
		close(slot);
		if (rc < 0) {
			rc = 1;
		} else if (stopped < 0) {
			fprintf(stderr, "install: pip did not finish within %g seconds; stopped\n", o->timeout);
			rc = 124;
		} else if (stopped > 0) {
			rc = 128 + stopped;
		}
		remove_tree(s.dir);
	}
	/* pid 1 is gone, and with it the pid namespace: what the group still
	 * holds are processes on their way out */
	cgroup_remove(cfg, s.group);
	return rc;
}
