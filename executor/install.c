/* install: see install.h. The install sandbox's launcher and, in one ordered
 * list of steps like sandbox.c's, its setup; then pip as the sandbox user. */
#include "install.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"
#include "setup.h"
#include "util.h"

#define EXIT_TIMEOUT 124

struct inst {
	const struct config *cfg;
	const char *requirement;
	char dir[PATH_MAX];       /* run_dir/installs/ID, canonical */
	char packages[PATH_MAX];  /* cache/site-packages */
	int find_links_dir;       /* APP_PIP_FIND_LINKS is a host directory */
	int sync_rd, sync_wr;
};

/* ------------------------------------------------- helpers of the child */

/* Binds host path src (a directory or a file) onto rel, remounted with flags.
 * Not recursive: a host submount below src stays out of the sandbox. A missing
 * src is skipped when optional. */
static void bind(const char *src, const char *rel, unsigned long flags, int optional)
{
	struct stat st;
	if (stat(src, &st) < 0) {
		if (optional && errno == ENOENT)
			return;
		setup_die("stat", src);
	}
	if (S_ISDIR(st.st_mode)) {
		setup_make_dir(rel, 0755);
	} else {
		int fd = open(rel, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 || close(fd) < 0)
			setup_die("create mount point", rel);
	}
	if (mount(src, rel, NULL, MS_BIND, NULL) < 0)
		setup_die("bind mount", src);
	if (mount(NULL, rel, NULL, MS_REMOUNT | MS_BIND | flags | setup_locked_flags(rel), NULL) < 0)
		setup_die("remount", rel);
}

/* ------------------------------------------------------ the child's steps */

static void step_wait_and_become_root(struct inst *s)
{
	setup_wait_for_launcher(&s->sync_rd, &s->sync_wr);
	setup_become_root(&s->sync_rd);
	if (sethostname("install", strlen("install")) < 0)
		setup_die("sethostname", NULL);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		setup_die("make mounts private", NULL);
}

/* root/ (tmpfs): /usr and the /lib* /bin /sbin links, a small /etc with the
 * host's resolver and CA certificates (pip talks to the index), /dev, /proc,
 * /tmp (size-limited: pip downloads and unpacks there), the cache read-write and
 * the find-links directory read-only. */
static void step_root(const struct inst *s)
{
	const unsigned long ro = MS_RDONLY | MS_NOSUID | MS_NODEV;
	if (mount("tmpfs", "root", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") < 0)
		setup_die("mount tmpfs on", "root");
	bind("/usr", "root/usr", ro, 0);
	static const char *const top[] = {"lib", "lib32", "lib64", "libx32", "bin", "sbin"};
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		char src[32], rel[32], target[PATH_MAX];
		snprintf(src, sizeof(src), "/%s", top[i]);
		snprintf(rel, sizeof(rel), "root/%s", top[i]);
		ssize_t n = readlink(src, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = '\0';
			if (symlink(target, rel) < 0)
				setup_die("symlink", rel);
		} else if (errno == EINVAL) {
			bind(src, rel, ro, 0);
		}
	}
	setup_make_dir("root/etc", 0755);
	setup_write_text("root/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
				      "sandbox:x:1000:1000:sandbox:/tmp:/bin/sh\n", 0644);
	setup_write_text("root/etc/group", "root:x:0:\nsandbox:x:1000:\n", 0644);
	setup_write_text("root/etc/hosts", "127.0.0.1 localhost install\n::1 localhost\n", 0644);
	setup_write_text("root/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n", 0644);
	bind("/etc/resolv.conf", "root/etc/resolv.conf", ro | MS_NOEXEC, 1);
	bind("/etc/ssl", "root/etc/ssl", ro | MS_NOEXEC, 1);
	bind("/etc/ca-certificates", "root/etc/ca-certificates", ro | MS_NOEXEC, 1);
	bind("/etc/pip.conf", "root/etc/pip.conf", ro | MS_NOEXEC, 1);
	setup_make_dir("root/dev", 0755);
	static const char *const dev[] = {"null", "zero", "random", "urandom"};
	for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) {
		char src[32], rel[32];
		snprintf(src, sizeof(src), "/dev/%s", dev[i]);
		snprintf(rel, sizeof(rel), "root/dev/%s", dev[i]);
		bind(src, rel, MS_NOSUID | MS_NOEXEC, 0);
	}
	setup_make_dir("root/proc", 0555);
	if (mount("proc", "root/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		setup_die("mount proc", NULL);
	char opts[96];
	snprintf(opts, sizeof(opts), "size=%llu,mode=1777",
		 (unsigned long long)s->cfg->package_install_bytes);
	setup_make_dir("root/tmp", 01777);
	if (mount("tmpfs", "root/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		setup_die("mount tmpfs on", "root/tmp");
	setup_make_dir("root/opt", 0755);
	setup_make_dir("root/opt/code-interpreter", 0755);
	bind(s->packages, "root" INSTALL_INSIDE_PACKAGES, MS_NOSUID | MS_NODEV, 0);
	if (s->find_links_dir)
		bind(s->cfg->pip_find_links, "root/find-links", ro | MS_NOEXEC, 0);
}

/* pip, as the locked-down sandbox user, with a known environment. */
__attribute__((noreturn)) static void exec_pip(const struct inst *s)
{
	const struct config *cfg = s->cfg;
	const char *argv[24];
	size_t n = 0;
	argv[n++] = cfg->python;
	argv[n++] = "-I";
	argv[n++] = "-m";
	argv[n++] = "pip";
	argv[n++] = "install";
	argv[n++] = "--target";
	argv[n++] = INSTALL_INSIDE_PACKAGES;
	argv[n++] = "--no-cache-dir";
	argv[n++] = "--disable-pip-version-check";
	argv[n++] = "--no-input";
	argv[n++] = "--progress-bar";
	argv[n++] = "off";
	argv[n++] = "--no-warn-script-location";
	if (cfg->pip_index_url[0]) {
		argv[n++] = "--index-url";
		argv[n++] = cfg->pip_index_url;
	}
	if (cfg->pip_find_links[0]) {
		argv[n++] = "--find-links";
		argv[n++] = s->find_links_dir ? "/find-links" : cfg->pip_find_links;
		if (s->find_links_dir && !cfg->pip_index_url[0])
			argv[n++] = "--no-index";
	}
	argv[n++] = "--";
	argv[n++] = s->requirement;
	argv[n] = NULL;
	static const char *const envp[] = {
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1", "PIP_NO_COLOR=1", NULL,
	};
	if (sbx_lockdown(cfg, 1) < 0)
		_exit(1);
	execve(argv[0], (char *const *)(void *)argv, (char *const *)(void *)envp);
	setup_die("exec", argv[0]);
}

/* pid 1 of the install sandbox: the steps, then pip as its child. */
static int child_main(struct inst *s)
{
	setup_set_name("install sandbox");
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		setup_die("PR_SET_PDEATHSIG", NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (chdir(s->dir) < 0)
		setup_die("chdir", s->dir);
	step_wait_and_become_root(s);
	step_root(s);
	setup_pivot();
	pid_t pip = fork();
	if (pip < 0)
		setup_die("fork", NULL);
	if (pip == 0)
		exec_pip(s);
	for (;;) {
		int status;
		pid_t r = wait(&status);
		if (r < 0 && errno != EINTR)
			_exit(1);
		if (r == pip)
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
}

/* ------------------------------------------------------------ the launcher */

static int fail(const char *step, const char *what)
{
	log_error("install launcher: %s%s%s: %s", step, what ? " " : "", what ? what : "",
		  strerror(errno));
	return -1;
}

/* The cache's site-packages (owned by the sandbox user, so that pip running as
 * it can write) and run_dir/installs/ID/root (owned by sandbox root). */
static int make_dirs(struct inst *s, const char *id, int *made)
{
	const struct config *cfg = s->cfg;
	uid_t user = (uid_t)(cfg->sandbox_uid_base + SANDBOX_USER);
	char path[PATH_MAX];
	int n = snprintf(s->packages, sizeof(s->packages), "%s/site-packages", cfg->package_cache);
	if (n < 0 || (size_t)n >= sizeof(s->packages) || mkdir_p(s->packages, 0755) < 0 ||
	    chown(s->packages, user, user) < 0)
		return fail("package cache", s->packages);
	snprintf(path, sizeof(path), "%s/installs", cfg->run_dir);
	if (mkdir_p(path, 0755) < 0)
		return fail("mkdir", path);
	n = snprintf(path, sizeof(path), "%s/installs/%s", cfg->run_dir, id);
	if (n < 0 || (size_t)n >= sizeof(path) - 8 || mkdir(path, 0711) < 0)
		return fail("mkdir", path);
	*made = 1;
	if (!realpath(path, s->dir))
		return fail("realpath", path);
	n = snprintf(path, sizeof(path), "%.*s/root", PATH_MAX - 8, s->dir);
	if (n < 0 || (size_t)n >= sizeof(path) || mkdir(path, 0700) < 0 || chown(path, (uid_t)cfg->sandbox_uid_base, (uid_t)cfg->sandbox_uid_base) < 0)
		return fail("mkdir", path);
	return 0;
}

/* Waits for the sandbox until the deadline; kills it then. Exit status. */
static int supervise(pid_t child, double timeout_s)
{
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)timeout_s;
	end.tv_nsec += (long)((timeout_s - (double)(time_t)timeout_s) * 1e9);
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (;;) {
		int status;
		pid_t r = waitpid(child, &status, WNOHANG);
		if (r == child)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0 && errno != EINTR)
			return 1;
		struct timespec now, left;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		int sig = left.tv_sec < 0 ? -1 : sigtimedwait(&set, NULL, &left);
		if (sig == SIGCHLD || (sig < 0 && errno == EINTR))
			continue;
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		if (sig < 0) {
			fprintf(stderr, "install: pip did not finish within %g seconds "
				"(APP_PACKAGE_INSTALL_TIMEOUT); stopped\n", timeout_s);
			return EXIT_TIMEOUT;
		}
		return 128 + sig;
	}
}

int install_run(const struct config *cfg, const char *id, const char *requirement)
{
	struct inst s = {.cfg = cfg, .requirement = requirement, .sync_rd = -1, .sync_wr = -1};
	pid_t child = -1;
	int rc = 1, made = 0;
	char dir[PATH_MAX];

	if (!sbx_id_valid(id)) {
		log_error("install launcher: invalid id");
		return 2;
	}
	if (geteuid() != 0) {
		log_error("install launcher: the install sandbox needs root (uid/gid maps)");
		return 1;
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		fail("PR_SET_PDEATHSIG", NULL);
		return 1;
	}
	struct stat st;
	s.find_links_dir = cfg->pip_find_links[0] == '/' && stat(cfg->pip_find_links, &st) == 0 &&
			   S_ISDIR(st.st_mode);
	snprintf(dir, sizeof(dir), "%s/installs/%s", cfg->run_dir, id);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || make_dirs(&s, id, &made) < 0)
		goto out;
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0) {
		fail("pipe", NULL);
		goto out;
	}
	s.sync_rd = sync[0];
	s.sync_wr = sync[1];
	fflush(NULL);
	/* no CLONE_NEWNET: pip must reach the index */
	child = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
				     CLONE_NEWUTS | SIGCHLD, NULL, NULL, NULL, NULL);
	if (child < 0) {
		fail("clone", NULL);
		goto out;
	}
	if (child == 0)
		_exit(child_main(&s));
	close(s.sync_rd);
	s.sync_rd = -1;
	if (setup_write_id_map(child, "uid_map", cfg->sandbox_uid_base) < 0 ||
	    setup_write_id_map(child, "gid_map", cfg->sandbox_uid_base) < 0) {
		fail("write", "uid/gid map");
		goto out;
	}
	char go = 'N';
	if (write_all(s.sync_wr, &go, 1) < 0) {
		fail("signal the sandbox", NULL);
		goto out;
	}
	rc = supervise(child, cfg->package_install_timeout);
	child = -1;
out:
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	if (s.sync_wr >= 0)
		close(s.sync_wr);
	if (s.sync_rd >= 0)
		close(s.sync_rd);
	if (made)
		remove_tree(dir);
	return rc;
}
