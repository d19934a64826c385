/* check_sandbox: unit tests of the sandbox lock-down (sbx_lockdown, the seccomp
 * filter, rlimits), the sandbox paths, the cgroups (cgroup_setup/remove) and
 * the install sandbox (`executor install`, run as the built binary) with the
 * run sandbox's package mount. Every lock-down happens in a forked child;
 * escape attempts must fail. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "install.h"
#include "sandbox.h"
#include "sbx_seccomp.h"
#include "util.h"

#define CG_PARENT "code-interpreter-unittest"

static struct config cfg;
static struct cgroup_limits run_limits; /* a run sandbox's, from cfg */
static int started_as_root;

static void load(char *const *extra)
{
	char *env[16];
	int n = 0;
	/* config_load takes the first definition: the extras come first */
	for (; extra && *extra && n < 8; extra++)
		env[n++] = *extra;
	env[n++] = (char *)"APP_CGROUP_PARENT=" CG_PARENT;
	env[n++] = (char *)"APP_SANDBOX_MEMORY_MB=64";
	env[n++] = (char *)"APP_SANDBOX_PIDS=4096"; /* RLIMIT_NPROC counts all of root's processes here */
	env[n++] = (char *)"APP_SANDBOX_OPEN_FILES=100";
	env[n++] = (char *)"APP_SANDBOX_FILE_MB=2";
	env[n++] = (char *)"APP_SANDBOX_CPU_SECONDS=50";
	env[n++] = (char *)"APP_RUN_DIR=/run/code-interpreter-unittest";
	env[n] = NULL;
	char err[256];
	ck_assert_msg(config_load(&cfg, env, err, sizeof(err)) == 0, "config: %s", err);
	run_limits = (struct cgroup_limits){cfg.sandbox_memory_bytes, cfg.sandbox_pids, 0};
}

/* AddressSanitizer reserves terabytes of address space: under it, RLIMIT_AS
 * would make every later mmap fail, so the tests pretend a memory cgroup. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static void setup(void)
{
	load(NULL);
#ifdef UNDER_ASAN
	sbx_set_memory_cgroup(1);
#endif
}

/* lockdown-inherited: the child first puts on the zygote's filter
 * (sbx_seccomp_load_for_runners), as a runner inherits it, and sbx_lockdown
 * then adds only the rest */
static int zygote_filter_first;
/* What in_child's child runs before its lock-down, when set: a non-zero
 * return ends it with that status. */
static int (*before_lockdown)(void);

static void teardown(void)
{
	zygote_filter_first = 0;
	before_lockdown = NULL;
	config_release(&cfg);
}

static void setup_prepared(void)
{
	setup();
	ck_assert_int_eq(sbx_seccomp_prepare(), 0);
}

static void setup_inherited(void)
{
	setup_prepared();
	zygote_filter_first = 1;
}

/* The cgroup tests leave nothing behind, not even the (empty) parent groups. */
static void cgroup_teardown(void)
{
	static const char *const roots[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
					    "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct",
					    "/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/" CG_PARENT, roots[i]);
		rmdir(path);
	}
	teardown();
}

/* ---------------------------------------------------- child harness */

static int report_fd = -1;

/* In the child: records why the check failed, for the parent's message. */
__attribute__((format(printf, 1, 2))) static int why(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && report_fd >= 0) {
		ssize_t w = write(report_fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
		(void)w;
	}
	return 1;
}

/* Forks; the child locks itself down (sbx_lockdown(&cfg, change_uid)) and runs
 * fn, whose return value becomes its exit status (via _exit: LeakSanitizer
 * cannot ptrace under the filter). Returns the raw wait status; msg gets what
 * the child reported. */
static int in_child(int (*fn)(void), int change_uid, char *msg, size_t cap)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		report_fd = p[1];
		if (zygote_filter_first && sbx_seccomp_load_for_runners() < 0)
			_exit(why("sbx_seccomp_load_for_runners failed: %s", strerror(errno)) + 100);
		int rc = before_lockdown ? before_lockdown() : 0;
		if (rc)
			_exit(rc);
		if (sbx_lockdown(&cfg, change_uid) < 0)
			_exit(why("sbx_lockdown failed: %s", strerror(errno)) + 100);
		_exit(fn());
	}
	close(p[1]);
	ssize_t n = read(p[0], msg, cap - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Runs fn locked down and asserts that it exited 0. */
#define EXPECT_PASS(fn, change_uid)                                                       \
	do {                                                                              \
		char msg_[512];                                                           \
		int st_ = in_child(fn, change_uid, msg_, sizeof(msg_));                   \
		ck_assert_msg(WIFEXITED(st_) && WEXITSTATUS(st_) == 0,                     \
			      "child: status 0x%x: %s", (unsigned)st_, msg_);              \
	} while (0)

/* A call that must fail with the given errno. */
#define DENIED(call, err)                                                                  \
	do {                                                                               \
		errno = 0;                                                                 \
		long r_ = (long)(call);                                                    \
		if (r_ != -1 || errno != (err))                                            \
			return why("%s returned %ld errno %d (%s), expected %s", #call, r_, errno, \
				   strerror(errno), #err);                                 \
	} while (0)

/* ----------------------------------------------------- status fields */

static int status_field(const char *name, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	char line[256];
	size_t n = strlen(name);
	int found = -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, n) == 0 && line[n] == ':') {
			char *v = line + n + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, cap, "%s", v);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static int check_status(void)
{
	static const char *const want[][2] = {
		{"Seccomp", "2"},
		{"NoNewPrivs", "1"},
		{"CapEff", "0000000000000000"},
		{"CapPrm", "0000000000000000"},
		{"CapInh", "0000000000000000"},
		{"CapBnd", "0000000000000000"},
		{"CapAmb", "0000000000000000"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char v[128];
		/* without CAP_SETPCAP the bounding set stays (no_new_privs covers it) */
		if (strcmp(want[i][0], "CapBnd") == 0 && !started_as_root)
			continue;
		if (status_field(want[i][0], v, sizeof(v)) < 0)
			return why("no %s in /proc/self/status", want[i][0]);
		if (strcmp(v, want[i][1]) != 0)
			return why("%s is %s, expected %s", want[i][0], v, want[i][1]);
	}
	return 0;
}

START_TEST(test_lockdown_status)
{
	EXPECT_PASS(check_status, 0);
}
END_TEST

/* --------------------------------------------------- escape attempts */

static int try_mount(void)
{
	DENIED(mount("none", "/tmp", "tmpfs", 0, NULL), EPERM);
	DENIED(umount2("/tmp", MNT_DETACH), EPERM);
	DENIED(syscall(SYS_pivot_root, "/", "/"), EPERM);
	DENIED(chroot("/"), EPERM);
	DENIED(syscall(SYS_fsopen, "tmpfs", 0), EPERM);
	DENIED(syscall(SYS_open_tree, AT_FDCWD, "/", 0), EPERM);
	return 0;
}

START_TEST(test_mount_denied)
{
	EXPECT_PASS(try_mount, 0);
}
END_TEST

static int try_unshare(void)
{
	DENIED(unshare(CLONE_NEWUSER), EPERM);
	DENIED(unshare(CLONE_NEWNS), EPERM);
	DENIED(unshare(CLONE_NEWNET), EPERM);
	DENIED(setns(0, 0), EPERM);
	return 0;
}

START_TEST(test_unshare_denied)
{
	EXPECT_PASS(try_unshare, 0);
}
END_TEST

static int try_clone_new(void)
{
	static const unsigned long flags[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
					      CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		errno = 0;
		long r = syscall(SYS_clone, flags[i] | SIGCHLD, NULL, NULL, NULL, NULL);
		if (r == 0)
			_exit(0); /* an escaped child: make the parent see success, then fail */
		if (r != -1 || errno != EPERM)
			return why("clone(0x%lx) returned %ld errno %d", flags[i], r, errno);
	}
	/* clone3 carries its flags in memory: ENOSYS, and glibc falls back */
	DENIED(syscall(SYS_clone3, NULL, 0), ENOSYS);
	return 0;
}

START_TEST(test_clone_new_namespaces_denied)
{
	EXPECT_PASS(try_clone_new, 0);
}
END_TEST

static int try_ptrace(void)
{
	DENIED(ptrace(PTRACE_TRACEME, 0, NULL, NULL), EPERM);
	DENIED(ptrace(PTRACE_ATTACH, getppid(), NULL, NULL), EPERM);
	DENIED(syscall(SYS_process_vm_readv, getppid(), NULL, 0, NULL, 0, 0), EPERM);
	DENIED(syscall(SYS_kcmp, getpid(), getppid(), 0, 0, 0), EPERM);
	return 0;
}

START_TEST(test_ptrace_denied)
{
	EXPECT_PASS(try_ptrace, 0);
}
END_TEST

static int try_bpf(void)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	DENIED(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)), EPERM);
	DENIED(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
	DENIED(syscall(SYS_userfaultfd, 0), EPERM);
	return 0;
}

START_TEST(test_bpf_denied)
{
	EXPECT_PASS(try_bpf, 0);
}
END_TEST

static int try_keyctl(void)
{
	DENIED(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), EPERM);
	DENIED(syscall(SYS_add_key, "user", "x", "y", 1, -3), EPERM);
	DENIED(syscall(SYS_request_key, "user", "x", NULL, 0), EPERM);
	return 0;
}

START_TEST(test_keyctl_denied)
{
	EXPECT_PASS(try_keyctl, 0);
}
END_TEST

static int try_io_uring(void)
{
	char params[120];
	memset(params, 0, sizeof(params));
	DENIED(syscall(SYS_io_uring_setup, 8, params), EPERM);
	DENIED(syscall(SYS_io_uring_enter, 0, 0, 0, 0, NULL, 0), EPERM);
	DENIED(syscall(SYS_io_uring_register, 0, 0, NULL, 0), EPERM);
	return 0;
}

START_TEST(test_io_uring_denied)
{
	EXPECT_PASS(try_io_uring, 0);
}
END_TEST

/* No watching of files: the root and the package cache are shared between
 * runs. Unfiltered, inotify_init1 succeeds for anyone, and so does an
 * unprivileged fanotify_init with FAN_REPORT_FID (Linux 5.13 on). */
static int try_watch(void)
{
	DENIED(inotify_init1(IN_CLOEXEC), EPERM);
	DENIED(inotify_init1(0), EPERM);
#ifdef SYS_inotify_init
	DENIED(syscall(SYS_inotify_init), EPERM);
#endif
	DENIED(inotify_add_watch(-1, "/usr", IN_ACCESS | IN_OPEN), EPERM);
	DENIED(inotify_rm_watch(-1, 1), EPERM);
	DENIED(syscall(SYS_fanotify_init, FAN_CLASS_NOTIF | FAN_REPORT_FID, O_RDONLY), EPERM);
	DENIED(syscall(SYS_fanotify_mark, -1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "/usr"), EPERM);
	return 0;
}

START_TEST(test_inotify_fanotify_denied)
{
	EXPECT_PASS(try_watch, 0);
}
END_TEST

static int try_packet(void)
{
	DENIED(socket(AF_PACKET, SOCK_RAW, 0), EPERM);
	DENIED(socket(AF_PACKET, SOCK_DGRAM, 0), EPERM);
	return 0;
}

START_TEST(test_socket_packet_denied)
{
	EXPECT_PASS(try_packet, 0);
}
END_TEST

static int try_netlink(void)
{
	DENIED(socket(AF_NETLINK, SOCK_RAW, 0), EPERM);
	DENIED(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, 0), EPERM);
	int sv[2];
	DENIED(socketpair(AF_NETLINK, SOCK_DGRAM, 0, sv), EPERM);
	/* other families, and a family with garbage in the upper 32 bits */
	DENIED(socket(AF_BLUETOOTH, SOCK_STREAM, 0), EPERM);
	DENIED(socket(AF_VSOCK, SOCK_STREAM, 0), EPERM);
	DENIED(socket(AF_ALG, SOCK_SEQPACKET, 0), EPERM);
	DENIED(syscall(SYS_socket, 0x100000000UL | AF_NETLINK, SOCK_RAW, 0), EPERM);
	return 0;
}

START_TEST(test_socket_netlink_denied)
{
	EXPECT_PASS(try_netlink, 0);
}
END_TEST

static int try_raw(void)
{
	DENIED(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), EPERM);
	DENIED(socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMPV6), EPERM);
	DENIED(socket(AF_INET, SOCK_PACKET, 0), EPERM);
	return 0;
}

START_TEST(test_socket_raw_denied)
{
	EXPECT_PASS(try_raw, 0);
}
END_TEST

static int try_misc(void)
{
	char c = 'x';
	DENIED(ioctl(STDIN_FILENO, TIOCSTI, &c), EPERM);
	DENIED(ioctl(STDIN_FILENO, TIOCLINUX, &c), EPERM);
	/* the kernel reads the request as an unsigned int: the upper half is noise */
	DENIED(syscall(SYS_ioctl, STDIN_FILENO, 0x100000000UL | TIOCSTI, &c), EPERM);
	DENIED(syscall(SYS_ioctl, STDIN_FILENO, 0xffffffff00000000UL | TIOCLINUX, &c), EPERM);
	DENIED(personality(ADDR_NO_RANDOMIZE), EPERM);
	/* kernel samepage merging (a timing channel between runs where the host
	 * runs KSM); the kernel reads both arguments as ints */
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return why("mmap: %s", strerror(errno));
	DENIED(madvise(page, 4096, MADV_MERGEABLE), EPERM);
	DENIED(syscall(SYS_madvise, page, 4096UL, 0x100000000UL | MADV_MERGEABLE), EPERM);
	DENIED(syscall(SYS_prctl, 67 /* PR_SET_MEMORY_MERGE */, 1UL, 0UL, 0UL, 0UL), EPERM);
	DENIED(syscall(SYS_prctl, 0x100000000UL | 67, 1UL, 0UL, 0UL, 0UL), EPERM);
	munmap(page, 4096);
	/* core scheduling: a cookie of its own keeps others off the SMT sibling */
	DENIED(prctl(PR_SCHED_CORE, PR_SCHED_CORE_CREATE, 0, PR_SCHED_CORE_SCOPE_THREAD_GROUP, 0), EPERM);
	DENIED(syscall(SYS_prctl, 0x100000000UL | PR_SCHED_CORE, 0UL, 0UL, 0UL, 0UL), EPERM);
	DENIED(syscall(SYS_reboot, 0, 0, 0, NULL), EPERM);
	DENIED(syscall(SYS_init_module, NULL, 0, ""), EPERM);
	DENIED(syscall(SYS_finit_module, -1, "", 0), EPERM);
	DENIED(syscall(SYS_kexec_load, 0, 0, NULL, 0), EPERM);
	DENIED(sethostname("x", 1), EPERM);
	DENIED(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0), EPERM);
	DENIED(syscall(SYS_iopl, 3), EPERM);
	DENIED(syscall(SYS_modify_ldt, 0, NULL, 0), EPERM);
	DENIED(syscall(SYS_syslog, 3, NULL, 0), EPERM);
	return 0;
}

START_TEST(test_misc_syscalls_denied)
{
	EXPECT_PASS(try_misc, 0);
}
END_TEST

/* An allow list: a system call on neither list gets ENOSYS (what the kernel
 * answers for one it lacks), be it one Docker's list has (pidfd_send_signal;
 * memfd_secret is denied outright), one newer than the list, or a number
 * no kernel has. Unfiltered, pidfd_send_signal(-1) fails with EBADF. */
static int try_outside_allow_list(void)
{
	DENIED(syscall(424 /* pidfd_send_signal */, -1, 0, NULL, 0), ENOSYS);
	DENIED(syscall(444 /* landlock_create_ruleset */, NULL, 0, 1), ENOSYS);
	DENIED(syscall(462 /* mseal */, NULL, 0, 0), ENOSYS);
	DENIED(syscall(1000), ENOSYS);
	/* prctl options Linux 6.16 does not have: closed until looked at */
	DENIED(syscall(SYS_prctl, 79UL, 0UL, 0UL, 0UL, 0UL), ENOSYS);
	DENIED(syscall(SYS_prctl, 127UL, 0UL, 0UL, 0UL, 0UL), ENOSYS);
	DENIED(syscall(SYS_memfd_secret, 0), EPERM);
	DENIED(syscall(SYS_pidfd_getfd, -1, 0, 0), EPERM);
	DENIED(syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0), EPERM);
	/* socket types beyond stream, datagram and seqpacket */
	DENIED(socket(AF_INET, SOCK_RDM, 0), ENOSYS);
	return 0;
}

START_TEST(test_outside_allow_list_enosys)
{
	EXPECT_PASS(try_outside_allow_list, 0);
}
END_TEST

/* A name libseccomp does not know fails the build (the lock-down, so the
 * sandbox does not start), instead of being skipped. */
START_TEST(test_unknown_syscall_name_fails_the_build)
{
	static const char *const none[] = {"getpid"};
	ck_assert_int_eq(sbx_seccomp_try_build(none, 0), 0);
	static const char *const typo[] = {"getpid", "no_such_syscall"};
	errno = 0;
	ck_assert_int_eq(sbx_seccomp_try_build(typo, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* a name of another architecture's table is skipped, not an error */
	static const char *const other_arch[] = {"chown32"};
	ck_assert_int_eq(sbx_seccomp_try_build(other_arch, 1), 0);
}
END_TEST

/* What ordinary Python code needs keeps working under the filter. */
static int try_allowed(void)
{
	pid_t pid = fork(); /* glibc tries clone3 first, gets ENOSYS, uses clone */
	if (pid < 0)
		return why("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(7);
	/* the executor server watches its runner through a pidfd, also when it
	 * is locked down itself (`executor serve --lockdown process`, a pod) */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return why("pidfd_open: %s", strerror(errno));
	close(pidfd);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		return why("fork/wait: status 0x%x", (unsigned)st);
	static const int fams[][2] = {{AF_UNIX, SOCK_STREAM}, {AF_INET, SOCK_STREAM},
				      {AF_INET6, SOCK_DGRAM}, {AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC}};
	for (size_t i = 0; i < 4; i++) {
		int fd = socket(fams[i][0], fams[i][1], 0);
		if (fd < 0 && errno != EAFNOSUPPORT)
			return why("socket(%d, %d): %s", fams[i][0], fams[i][1], strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return why("socketpair(AF_UNIX): %s", strerror(errno));
	if (personality(PER_LINUX) < 0)
		return why("personality(PER_LINUX): %s", strerror(errno));
	/* every other advice and prctl option, as the preloads and the code use them */
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED || madvise(page, 4096, MADV_DONTNEED) < 0 || madvise(page, 4096, MADV_HUGEPAGE) < 0 ||
	    madvise(page, 4096, MADV_UNMERGEABLE) < 0)
		return why("mmap/madvise: %s", strerror(errno));
	munmap(page, 4096);
	char name[16];
	if (prctl(PR_GET_NAME, name, 0, 0, 0) < 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) < 0)
		return why("prctl: %s", strerror(errno));
	/* the last option allowed (PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS) reaches
	 * the kernel, which may not know it (EINVAL) */
	errno = 0;
	if (syscall(SYS_prctl, 78UL, 2UL, 0UL, 0UL, 0UL) < 0 && (errno == EPERM || errno == ENOSYS))
		return why("prctl(78): %s", strerror(errno));
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0 || write(pfd[1], "x", 1) != 1)
		return why("pipe2/write: %s", strerror(errno));
	int avail = 0;
	if (ioctl(pfd[0], FIONREAD, &avail) < 0 || avail != 1)
		return why("ioctl(FIONREAD): %s", strerror(errno));
	/* the requests around TIOCSTI and TIOCLINUX, and one above 0xffff */
	static const unsigned long near[] = {TIOCSTI - 1, TIOCSTI + 1, TIOCLINUX - 1, TIOCLINUX + 1,
					     0x80045430UL /* TIOCGPTN */};
	for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
		errno = 0;
		if (ioctl(pfd[0], near[i], &avail) < 0 && (errno == EPERM || errno == ENOSYS))
			return why("ioctl(0x%lx): %s", near[i], strerror(errno));
	}
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || getrandom(&avail, sizeof(avail), 0) < 0)
		return why("clock_gettime/getrandom: %s", strerror(errno));
	return 0;
}

START_TEST(test_ordinary_calls_allowed)
{
	EXPECT_PASS(try_allowed, 0);
}
END_TEST

#ifdef __x86_64__
static int try_i386(void)
{
	long ret;
	/* getpid through the i386 entry point: the filter must kill us */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	return why("i386 getpid returned %ld", ret);
}

/* Whether this kernel has the i386 entry point at all: without it
 * (CONFIG_IA32_EMULATION off, or ia32_emulation=0 on the command line) int
 * 0x80 faults with SIGSEGV before any filter sees it. An unfiltered child
 * tries getpid there. */
static int i386_abi_present(void)
{
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDERR_FILENO); /* ASan reports the fault there */
		long ret;
		__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
		_exit(ret > 0 ? 0 : 1);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0; /* (ASan turns the SIGSEGV into exit 1) */
}

START_TEST(test_i386_abi_killed)
{
	if (!i386_abi_present()) {
		fprintf(stderr, "check_sandbox: test_i386_abi_killed skipped: this kernel has no i386 "
				"entry point (int 0x80 faults unfiltered)\n");
		return;
	}
	char msg[512];
	int st = in_child(try_i386, 0, msg, sizeof(msg));
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status 0x%x: %s", (unsigned)st, msg);
}
END_TEST

static int try_x32(void)
{
	long r = syscall(0x40000000L | SYS_getpid);
	return why("x32 getpid returned %ld errno %d", r, errno);
}

START_TEST(test_x32_abi_killed)
{
	char msg[512];
	int st = in_child(try_x32, 0, msg, sizeof(msg));
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status 0x%x: %s", (unsigned)st, msg);
}
END_TEST
#endif

/* ------------------------------------------------------------ rlimits */

static int expect_limit(int res, const char *name, rlim_t soft, rlim_t hard)
{
	struct rlimit rl;
	if (getrlimit(res, &rl) < 0)
		return why("getrlimit(%s): %s", name, strerror(errno));
	if (rl.rlim_cur != soft || rl.rlim_max != hard)
		return why("%s is %llu/%llu, expected %llu/%llu", name, (unsigned long long)rl.rlim_cur,
			   (unsigned long long)rl.rlim_max, (unsigned long long)soft,
			   (unsigned long long)hard);
	return 0;
}

static int check_rlimits(void)
{
	if (expect_limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", 2 << 20, 2 << 20) ||
	    expect_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", 100, 100) ||
	    expect_limit(RLIMIT_CPU, "RLIMIT_CPU", 50, 51) ||
	    expect_limit(RLIMIT_CORE, "RLIMIT_CORE", 0, 0) ||
	    expect_limit(RLIMIT_NPROC, "RLIMIT_NPROC", 4096, 4096))
		return 1;
	struct rlimit as;
	getrlimit(RLIMIT_AS, &as);
	if (sbx_memory_cgroup() && as.rlim_cur != RLIM_INFINITY)
		return why("RLIMIT_AS set although a memory cgroup applies");
	if (!sbx_memory_cgroup() && as.rlim_cur == RLIM_INFINITY)
		return why("RLIMIT_AS not set and no memory cgroup applies");
	/* the limits bite: a file past RLIMIT_FSIZE, descriptors past NOFILE */
	signal(SIGXFSZ, SIG_IGN);
	char path[] = "/tmp/check_sandbox.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return why("mkstemp: %s", strerror(errno));
	unlink(path);
	static char block[1 << 20];
	for (int i = 0; i < 2; i++)
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
			return why("write %d: %s", i, strerror(errno));
	DENIED(write(fd, block, 1), EFBIG);
	close(fd);
	int last = -1;
	for (int i = 0; i < 200; i++) {
		int d = dup(0);
		if (d < 0)
			break;
		last = d;
	}
	if (last >= 100)
		return why("opened descriptor %d with RLIMIT_NOFILE 100", last);
	return 0;
}

START_TEST(test_rlimits_in_force)
{
	EXPECT_PASS(check_rlimits, 0);
}
END_TEST

START_TEST(test_rlimit_as_without_memory_cgroup)
{
#ifdef UNDER_ASAN
	fprintf(stderr, "check_sandbox: test_rlimit_as_without_memory_cgroup skipped under ASan\n");
	return;
#endif
	/* a forked child that records "no memory cgroup" gets RLIMIT_AS */
	sbx_set_memory_cgroup(0);
	EXPECT_PASS(check_rlimits, 0);
}
END_TEST

static int check_sandbox_user(void)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	if (r != 1000 || e != 1000 || s != 1000 || gr != 1000 || ge != 1000 || gs != 1000)
		return why("uids %d/%d/%d gids %d/%d/%d", (int)r, (int)e, (int)s, (int)gr, (int)ge,
			   (int)gs);
	if (getgroups(0, NULL) != 0)
		return why("%d supplementary groups left", getgroups(0, NULL));
	if (setresuid(0, 0, 0) == 0)
		return why("setresuid(0) worked after lock-down");
	return check_status();
}

START_TEST(test_lockdown_changes_uid)
{
	if (geteuid() != 0) {
		fprintf(stderr, "check_sandbox: test_lockdown_changes_uid skipped: needs root\n");
		return;
	}
	EXPECT_PASS(check_sandbox_user, 1);
}
END_TEST

START_TEST(test_seccomp_export)
{
	char path[] = "/tmp/check_seccomp.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(sbx_seccomp_export(fd), 0);
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "\"ptrace\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"io_uring_setup\""));
	ck_assert_ptr_nonnull(strstr(buf, "invalid architecture action"));
}
END_TEST

/* The zygote's filter is a run's but for setns, which reaches the kernel (a bad
 * descriptor: EBADF); sbx_lockdown then adds the rest, which refuses it. */
static int expect_filters(const char *want)
{
	char filters[32];
	if (status_field("Seccomp_filters", filters, sizeof(filters)) < 0)
		return why("no Seccomp_filters in /proc/self/status");
	if (strcmp(filters, want) != 0)
		return why("Seccomp_filters is %s, expected %s", filters, want);
	return 0;
}

/* Under the zygote's filter alone: setns reaches the kernel; a refusal of
 * each kind of rule (by name, by clone flag, by socket family, by argument
 * value) and the default stay as in a run's filter. */
static int try_zygote_filter(void)
{
	DENIED(setns(-1, 0), EBADF);
	DENIED(mount("none", "/tmp", "tmpfs", 0, NULL), EPERM);
	DENIED(unshare(CLONE_NEWNET), EPERM);
	DENIED(syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0), EPERM);
	DENIED(syscall(SYS_bpf, 0, NULL, 0), EPERM);
	DENIED(syscall(SYS_inotify_init1, 0), EPERM);
	DENIED(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0), EPERM);
	DENIED(socket(AF_NETLINK, SOCK_RAW, 0), EPERM);
	DENIED(syscall(SYS_madvise, NULL, 0UL, MADV_MERGEABLE), EPERM);
	DENIED(syscall(SYS_prctl, 67 /* PR_SET_MEMORY_MERGE */, 1UL, 0UL, 0UL, 0UL), EPERM);
	DENIED(syscall(SYS_clone3, NULL, 0), ENOSYS);
	DENIED(syscall(1000), ENOSYS);
	return expect_filters("1");
}

/* After the lock-down (the lock-down tests cover the rest of the filter) */
static int try_zygote_filter_and_rest(void)
{
	DENIED(setns(-1, 0), EPERM);
	return expect_filters("2");
}

START_TEST(test_zygote_filter_lets_only_setns_through)
{
	before_lockdown = try_zygote_filter;
	EXPECT_PASS(try_zygote_filter_and_rest, 0);
}
END_TEST

/* What a runner's lock-down adds on top of the zygote's filter is the few
 * instructions refusing setns, not the run's whole filter again (the kernel
 * compiles each filter loaded): read from outside, as root, with
 * PTRACE_SECCOMP_GET_FILTER (the kernel counts from the oldest: 0 is the
 * zygote's, 1 the lock-down's). */
START_TEST(test_lockdown_adds_only_the_rest_of_the_filter)
{
	int ready[2];
	ck_assert_int_eq(pipe(ready), 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		if (sbx_seccomp_load_for_runners() < 0 || sbx_lockdown(&cfg, 0) < 0)
			_exit(1);
		if (write(ready[1], "R", 1) == 1)
			pause();
		_exit(1);
	}
	close(ready[1]);
	char c;
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	/* read, then kill the child, then assert: a failed assertion leaves no
	 * paused child behind */
	int st;
	long inherited = -1, newest = -1;
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0 && ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) == 0 &&
	    waitpid(pid, &st, 0) == pid) {
		inherited = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)0, NULL);
		newest = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)1, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ck_assert_msg(newest > 0 && newest < 16 && inherited > 400,
		      "filters of %ld and %ld instructions, expected a few and the run's whole one", newest,
		      inherited);
}
END_TEST

/* The memory holder's filter (executor/holder.h) lets through its set-up
 * calls, by argument, and kills the process at any other: the attack is code
 * that took the holder over (test_p11_warm tries it for real). Raw system
 * calls only in the child: nothing else is allowed, exit included. */
START_TEST(test_holder_filter_allows_only_its_calls)
{
	ck_assert_int_eq(sbx_seccomp_prepare(), 0);
	const struct sock_fprog *filter = sbx_seccomp_holder();
	ck_assert_ptr_nonnull(filter);
	volatile int *step = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne((void *)step, MAP_FAILED);
	static const char *const forbidden[] = {"getpid", "prctl(PR_SET_DUMPABLE)", "setpriority 18",
						"write", "openat", "exit_group"};
	for (int f = 0; f < (int)(sizeof(forbidden) / sizeof(forbidden[0])); f++) {
		*step = 0;
		fflush(NULL);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
			    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter) != 0)
				_exit(100);
			uint64_t all = ~(uint64_t)0;
			if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all)) == 0)
				*step = 1;
			if (syscall(SYS_close, 1000) != 0) /* EBADF: let through, not killed */
				*step = 2;
			if (syscall(SYS_close_range, 1000U, 2000U, 0U) == 0)
				*step = 3;
			if (syscall(SYS_prctl, PR_SET_NAME, "holder-test", 0UL, 0UL, 0UL) == 0)
				*step = 4;
			if (syscall(SYS_setpriority, PRIO_PROCESS, 0, 19) == 0)
				*step = 5;
			switch (f) {
			case 0: syscall(SYS_getpid); break;
			case 1: syscall(SYS_prctl, PR_SET_DUMPABLE, 0UL, 0UL, 0UL, 0UL); break;
			case 2: syscall(SYS_setpriority, PRIO_PROCESS, 0, 18); break;
			case 3: syscall(SYS_write, 2, "x", 1); break;
			case 4: syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY); break;
			default: break;
			}
			*step = 6;
			syscall(SYS_exit_group, 0);
		}
		int st;
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "%s: status 0x%x", forbidden[f],
			      (unsigned)st);
		ck_assert_msg(*step == (f == 5 ? 6 : 5), "%s: the child got to step %d", forbidden[f], *step);
	}
	munmap((void *)step, 4096);
}
END_TEST

/* -------------------------------------------------------------- paths */

START_TEST(test_sandbox_paths)
{
	char buf[256];
	ck_assert_int_eq(sbx_dir(&cfg, "abc-1_Z", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/run/code-interpreter-unittest/sandboxes/abc-1_Z");
	ck_assert_int_eq(sbx_parent_dir(&cfg, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/run/code-interpreter-unittest/sandboxes");
	ck_assert_int_eq(sbx_parent_dir(&cfg, buf, 10), -1);
	ck_assert_int_eq(sbx_socket_path(&cfg, "abc", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "/run/code-interpreter-unittest/sandboxes/abc/sock/executor.sock");
	ck_assert_int_eq(sbx_dir(&cfg, "abc", buf, 10), -1);
	ck_assert_int_eq(sbx_socket_path(&cfg, "abc", buf, 40), -1);
	static const char *const bad[] = {"", "../x", "a/b", "a b", ".", "x\n",
		"0123456789012345678901234567890123456789012345678901234567890123456789"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(sbx_id_valid(bad[i]), 0);
		ck_assert_int_eq(sbx_dir(&cfg, bad[i], buf, sizeof(buf)), -1);
	}
	ck_assert_int_eq(sbx_id_valid("0123456789012345678901234567890123456789012345678901234567890123"), 1);
}
END_TEST

/* ------------------------------------------------------------- cgroups */

static int is_root(const char *test)
{
	if (geteuid() == 0)
		return 1;
	fprintf(stderr, "check_sandbox: %s skipped: cgroups need root\n", test);
	return 0;
}

/* The group directory of this sandbox holding the memory limit, and its file. */
static int memory_group(const char *id, char *dir, size_t cap, const char **limit_file)
{
	static const char *const v2[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (int i = 0; i < 2; i++) {
		snprintf(dir, cap, "%s/" CG_PARENT "/%s/memory.max", v2[i], id);
		if (access(dir, F_OK) == 0) {
			snprintf(dir, cap, "%s/" CG_PARENT "/%s", v2[i], id);
			*limit_file = "memory.max";
			return 0;
		}
	}
	snprintf(dir, cap, "/sys/fs/cgroup/memory/" CG_PARENT "/%s", id);
	*limit_file = "memory.limit_in_bytes";
	return access(dir, F_OK);
}

static uint64_t read_u64(const char *dir, const char *file)
{
	char path[PATH_MAX + 64], buf[64] = "";
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "re");
	if (!f)
		return UINT64_MAX;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoull(buf, NULL, 10);
}

/* A child blocked on a pipe until released (or killed). */
static pid_t sleeper(int *release_fd)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[1]);
		char c;
		ssize_t r = read(p[0], &c, 1);
		_exit(r == 1 ? 0 : 3);
	}
	close(p[0]);
	*release_fd = p[1];
	return pid;
}

/* Asserts that /proc/PID/cgroup names the group of sandbox id (what for: the
 * message). */
static void assert_in_group(pid_t pid, const char *id, const char *what)
{
	char path[64], needle[128], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	snprintf(needle, sizeof(needle), ":/" CG_PARENT "/%s\n", id);
	ck_assert_msg(strstr(buf, needle), "%s: %s", what, buf);
}

START_TEST(test_cgroup_setup_and_remove)
{
	if (!is_root("test_cgroup_setup_and_remove"))
		return;
	char id[64], dir[PATH_MAX];
	const char *limit_file;
	snprintf(id, sizeof(id), "unit-%d", (int)getpid());
	int release;
	pid_t pid = sleeper(&release);

	ck_assert_int_eq(cgroup_setup(&cfg, id, &run_limits, pid), 1);
	ck_assert_int_eq(memory_group(id, dir, sizeof(dir), &limit_file), 0);
	ck_assert_uint_eq(read_u64(dir, limit_file), 64u << 20);
	ck_assert_uint_eq(cgroup_oom_kills(&cfg, id), 0);

	/* the pid is in the group, for each controller */
	assert_in_group(pid, id, "pid not in its group");
	char pids_dir[PATH_MAX];
	snprintf(pids_dir, sizeof(pids_dir), "/sys/fs/cgroup/pids/" CG_PARENT "/%s", id);
	if (access(pids_dir, F_OK) == 0)
		ck_assert_uint_eq(read_u64(pids_dir, "pids.max"), 4096);
	else
		ck_assert_uint_eq(read_u64(dir, "pids.max"), 4096);

	/* remove kills the member and deletes the groups */
	ck_assert_int_eq(cgroup_remove(&cfg, id), 0);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", (unsigned)st);
	ck_assert_int_ne(access(dir, F_OK), 0);
	ck_assert_int_ne(access(pids_dir, F_OK), 0);
	close(release);
	/* removing again is fine */
	ck_assert_int_eq(cgroup_remove(&cfg, id), 0);
}
END_TEST

/* The parent group is made once per process; when it has gone since (an
 * operator or a restarted manager removed it), the next setup makes it again. */
START_TEST(test_cgroup_parent_made_again_when_gone)
{
	if (!is_root("test_cgroup_parent_made_again_when_gone"))
		return;
	char id[64], dir[PATH_MAX];
	const char *limit_file;
	for (int round = 0; round < 2; round++) {
		snprintf(id, sizeof(id), "unit-parent-%d-%d", (int)getpid(), round);
		int release;
		pid_t pid = sleeper(&release);
		ck_assert_int_eq(cgroup_setup(&cfg, id, &run_limits, pid), 1);
		ck_assert_int_eq(memory_group(id, dir, sizeof(dir), &limit_file), 0);
		assert_in_group(pid, id, "pid not in its group");
		ck_assert_int_eq(cgroup_remove(&cfg, id), 0);
		ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
		close(release);
		/* the parent groups go too: the second round must make them again */
		static const char *const roots[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
						    "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct",
						    "/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
		for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
			char parent[PATH_MAX];
			snprintf(parent, sizeof(parent), "%s/" CG_PARENT, roots[i]);
			ck_assert_msg(rmdir(parent) == 0 || errno == ENOENT, "rmdir %s: %s", parent,
				      strerror(errno));
		}
	}
}
END_TEST

/* The limits come from the struct, not from cfg (64 MB there): the group gets
 * 32 MB, and a child touching 256 MB is killed. */
START_TEST(test_cgroup_memory_limit_kills)
{
	if (!is_root("test_cgroup_memory_limit_kills"))
		return;
	struct cgroup_limits small = {32u << 20, 77, 0};
	char id[64], dir[PATH_MAX];
	const char *limit_file;
	snprintf(id, sizeof(id), "unit-oom-%d", (int)getpid());
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[1]);
		char c;
		if (read(p[0], &c, 1) != 1)
			_exit(3);
		size_t size = 256u << 20;
		volatile char *m = malloc(size);
		if (!m)
			_exit(4);
		for (size_t i = 0; i < size; i += 4096)
			m[i] = 1;
		_exit(0);
	}
	close(p[0]);
	int rc = cgroup_setup(&cfg, id, &small, pid);
	ck_assert_int_eq(memory_group(id, dir, sizeof(dir), &limit_file), 0);
	uint64_t limit = read_u64(dir, limit_file);
	char pids_dir[PATH_MAX];
	snprintf(pids_dir, sizeof(pids_dir), "/sys/fs/cgroup/pids/" CG_PARENT "/%s", id);
	uint64_t pids = read_u64(access(pids_dir, F_OK) == 0 ? pids_dir : dir, "pids.max");
	ck_assert_int_eq(write(p[1], "g", 1), 1);
	close(p[1]);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	uint64_t kills = cgroup_oom_kills(&cfg, id);
	cgroup_remove(&cfg, id);
	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(limit, 32u << 20);
	ck_assert_uint_eq(pids, 77);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", (unsigned)st);
	ck_assert_uint_ge(kills, 1);
}
END_TEST

/* An install sandbox's group is named install.ID (a name no sandbox id can
 * be); the start-up cleanup removes it only when empty: an install in
 * progress is a worker's, not the pool's. */
START_TEST(test_cgroup_install_groups)
{
	if (!is_root("test_cgroup_install_groups"))
		return;
	char id[64], busy[64], dir[PATH_MAX];
	const char *limit_file;
	snprintf(id, sizeof(id), CGROUP_INSTALL_PREFIX "unit-%d", (int)getpid());
	snprintf(busy, sizeof(busy), CGROUP_INSTALL_PREFIX "unit-busy-%d", (int)getpid());
	ck_assert_int_eq(cgroup_setup(&cfg, "install.", &run_limits, getpid()), -1);
	ck_assert_int_eq(cgroup_setup(&cfg, "install.a/b", &run_limits, getpid()), -1);
	ck_assert_int_eq(cgroup_setup(&cfg, "other.abc", &run_limits, getpid()), -1);

	int release[2];
	pid_t pid = sleeper(&release[0]);
	ck_assert_int_eq(cgroup_setup(&cfg, id, &run_limits, pid), 1);
	assert_in_group(pid, id, "pid not in the install group");
	/* the member leaves: the group is empty, as after a killed launcher */
	ck_assert_int_eq(close(release[0]), 0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	pid_t member = sleeper(&release[1]);
	ck_assert_int_eq(cgroup_setup(&cfg, busy, &run_limits, member), 1);

	cgroup_remove_all(&cfg);
	ck_assert_int_ne(memory_group(id, dir, sizeof(dir), &limit_file), 0);
	ck_assert_int_eq(memory_group(busy, dir, sizeof(dir), &limit_file), 0);
	assert_in_group(member, busy, "the cleanup touched a running install");
	ck_assert_int_eq(cgroup_remove(&cfg, busy), 0);
	int st;
	ck_assert_int_eq(waitpid(member, &st, 0), member);
	ck_assert(WIFSIGNALED(st));
	close(release[1]);
}
END_TEST

START_TEST(test_cgroup_remove_all)
{
	if (!is_root("test_cgroup_remove_all"))
		return;
	char ids[2][64], dir[PATH_MAX];
	const char *limit_file;
	int release[2];
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		snprintf(ids[i], sizeof(ids[i]), "unit-all-%d-%d", (int)getpid(), i);
		pids[i] = sleeper(&release[i]);
		ck_assert_int_eq(cgroup_setup(&cfg, ids[i], &run_limits, pids[i]), 1);
	}
	cgroup_remove_all(&cfg);
	for (int i = 0; i < 2; i++) {
		int st;
		ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
		ck_assert(WIFSIGNALED(st));
		ck_assert_int_ne(memory_group(ids[i], dir, sizeof(dir), &limit_file), 0);
		close(release[i]);
	}
}
END_TEST

/* A process joins the groups of a model process (what the zygote's runner does
 * with its sandbox's pid 1); a model in none of our groups gives 0. */
START_TEST(test_cgroup_join_follows_the_model)
{
	if (!is_root("test_cgroup_join_follows_the_model"))
		return;
	char id[64];
	snprintf(id, sizeof(id), "unit-join-%d", (int)getpid());
	int release_model;
	pid_t model = sleeper(&release_model);
	ck_assert_int_eq(cgroup_setup(&cfg, id, &run_limits, model), 1);

	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t joiner = fork();
	ck_assert_int_ge(joiner, 0);
	if (joiner == 0) {
		close(p[0]);
		char rc = (char)cgroup_join(&cfg, model);
		char outside = (char)cgroup_join(&cfg, getppid()); /* the test runner: no group */
		char msg[2] = {rc, outside};
		if (write(p[1], msg, 2) != 2)
			_exit(2);
		pause();
		_exit(0);
	}
	close(p[1]);
	char got[2];
	ck_assert_int_eq(read(p[0], got, 2), 2);
	close(p[0]);
	ck_assert_int_eq(got[0], 1);
	ck_assert_int_eq(got[1], 0);
	assert_in_group(joiner, id, "joiner not in the model's group");

	/* removing the groups kills both: the joiner really is a member */
	ck_assert_int_eq(cgroup_remove(&cfg, id), 0);
	int st;
	ck_assert_int_eq(waitpid(joiner, &st, 0), joiner);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", (unsigned)st);
	ck_assert_int_eq(waitpid(model, &st, 0), model);
	close(release_model);
}
END_TEST

/* Reads a small file into buf (NUL-terminated, "" when it cannot be read). */
static void read_text(const char *path, char *buf, size_t cap)
{
	buf[0] = '\0';
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* Where this machine has a cpu controller: the v2 root that offers it (*v2 =
 * 1) or a v1 mount (*v2 = 0). When the kernel has a cpu controller in no
 * hierarchy (/proc/cgroups: hierarchy 0) and /sys/fs/cgroup is no v2 mount,
 * mounts a v1 one at /sys/fs/cgroup/cpu,cpuacct (or cpu alone, when cpuacct
 * is mounted elsewhere) and leaves it mounted. 0, or -1 with why set. */
static int cpu_controller(char *root, size_t cap, int *v2, char *why_not, size_t why_cap)
{
	static const char *const v2_roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	static const char *const v1_roots[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"};
	char buf[4096], path[PATH_MAX];
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.controllers", v2_roots[i]);
		read_text(path, buf, sizeof(buf));
		/* the layout cgroup.c uses: a v2 root with memory and pids */
		if (strstr(buf, "memory") && strstr(buf, "pids")) {
			*v2 = 1;
			snprintf(root, cap, "%s", v2_roots[i]);
			if (strstr(buf, "cpu ") || strstr(buf, "cpu\n"))
				return 0;
			snprintf(why_not, why_cap, "%s/cgroup.controllers has no cpu", v2_roots[i]);
			return -1;
		}
	}
	*v2 = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		for (int i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", v1_roots[i]);
			if (access(path, F_OK) == 0) {
				snprintf(root, cap, "%s", v1_roots[i]);
				return 0;
			}
		}
		if (attempt > 0)
			break;
		/* "cpu <hierarchy> <groups> <enabled>" */
		read_text("/proc/cgroups", buf, sizeof(buf));
		char *line = strstr(buf, "\ncpu\t");
		int hierarchy = -1, groups, enabled = 0;
		if (!line || sscanf(line + 5, "%d %d %d", &hierarchy, &groups, &enabled) != 3 ||
		    hierarchy != 0 || !enabled) {
			snprintf(why_not, why_cap, "no v1 cpu mount, and /proc/cgroups lists no free cpu controller");
			return -1;
		}
		snprintf(path, sizeof(path), "/sys/fs/cgroup/cgroup.controllers");
		if (access(path, F_OK) == 0) {
			snprintf(why_not, why_cap, "/sys/fs/cgroup is a v2 mount without cpu");
			return -1;
		}
		if ((mkdir(v1_roots[1], 0555) < 0 && errno != EEXIST) ||
		    (mount("none", v1_roots[1], "cgroup", 0, "cpu,cpuacct") < 0 &&
		     mount("none", v1_roots[1], "cgroup", 0, "cpu") < 0)) {
			snprintf(why_not, why_cap, "mounting a v1 cpu hierarchy at %s: %s", v1_roots[1],
				 strerror(errno));
			rmdir(v1_roots[1]);
			return -1;
		}
		fprintf(stderr, "check_sandbox: mounted a v1 cpu hierarchy at %s (left mounted)\n",
			v1_roots[1]);
	}
	snprintf(why_not, why_cap, "the cpu mount shows no cpu.cfs_quota_us");
	return -1;
}

/* True when pid is listed in dir/cgroup.procs. */
static int group_has(const char *dir, pid_t pid)
{
	char path[PATH_MAX + 256], buf[8192], want[32];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	read_text(path, buf, sizeof(buf));
	snprintf(want, sizeof(want), "%d\n", (int)pid);
	size_t n = strlen(want);
	for (char *p = buf; (p = strstr(p, want)) != NULL; p += n)
		if (p == buf || p[-1] == '\n')
			return 1;
	return 0;
}

/* A group's CPU quota is in force: cpu.max (v2) or cpu.cfs_quota_us and
 * cpu.cfs_period_us (v1) hold it, the sandbox's pid is in the group, and the
 * pool manager's cleanup (cgroup_remove_all, cgroup_remove) takes the cpu
 * groups too. */
START_TEST(test_cgroup_cpu_limit)
{
	if (!is_root("test_cgroup_cpu_limit"))
		return;
	char root[200], why_not[256], dir[PATH_MAX], buf[256];
	int v2;
	if (cpu_controller(root, sizeof(root), &v2, why_not, sizeof(why_not)) < 0) {
		fprintf(stderr, "check_sandbox: test_cgroup_cpu_limit skipped: %s\n", why_not);
		return;
	}
	struct cgroup_limits half = {cfg.sandbox_memory_bytes, cfg.sandbox_pids, 50000};
	for (int round = 0; round < 2; round++) {
		char id[64];
		snprintf(id, sizeof(id), "unit-cpu-%d-%d", (int)getpid(), round);
		snprintf(dir, sizeof(dir), "%s/" CG_PARENT "/%s", root, id);
		int release;
		pid_t pid = sleeper(&release);
		ck_assert_int_ge(cgroup_setup(&cfg, id, &half, pid), 0);
		if (v2) {
			char path[PATH_MAX + 232];
			snprintf(path, sizeof(path), "%s/cpu.max", dir);
			read_text(path, buf, sizeof(buf));
			ck_assert_str_eq(buf, "50000 100000\n");
		} else {
			ck_assert_uint_eq(read_u64(dir, "cpu.cfs_quota_us"), 50000);
			ck_assert_uint_eq(read_u64(dir, "cpu.cfs_period_us"), 100000);
		}
		ck_assert_msg(group_has(dir, pid), "pid %d not in %s", (int)pid, dir);
		/* round 0: the start-up cleanup, round 1: the sandbox's own removal */
		if (round == 0)
			cgroup_remove_all(&cfg);
		else
			ck_assert_int_eq(cgroup_remove(&cfg, id), 0);
		int st;
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", (unsigned)st);
		ck_assert_msg(access(dir, F_OK) != 0, "%s left", dir);
		close(release);
	}
}
END_TEST

/* Socket buffers count against the memory limit: v1 charges them only where
 * memory.kmem.tcp.limit_in_bytes is set (to the memory limit, before the
 * sandbox runs); v2 charges them to memory.max without being asked. */
START_TEST(test_cgroup_socket_memory_limit)
{
	if (!is_root("test_cgroup_socket_memory_limit"))
		return;
	char id[64], dir[PATH_MAX];
	const char *limit_file;
	snprintf(id, sizeof(id), "unit-tcp-%d", (int)getpid());
	int release;
	pid_t pid = sleeper(&release);
	int rc = cgroup_setup(&cfg, id, &run_limits, pid);
	int found = memory_group(id, dir, sizeof(dir), &limit_file) == 0;
	uint64_t tcp = found ? read_u64(dir, "memory.kmem.tcp.limit_in_bytes") : UINT64_MAX;
	char tcp_file[PATH_MAX + 48];
	snprintf(tcp_file, sizeof(tcp_file), "%s/memory.kmem.tcp.limit_in_bytes", dir);
	int v1_tcp = found && strcmp(limit_file, "memory.limit_in_bytes") == 0 && access(tcp_file, F_OK) == 0;
	cgroup_remove(&cfg, id);
	waitpid(pid, NULL, 0);
	close(release);
	if (rc != 1 || !found) {
		fprintf(stderr, "check_sandbox: test_cgroup_socket_memory_limit skipped: no memory cgroup\n");
		return;
	}
	if (!v1_tcp) {
		fprintf(stderr, "check_sandbox: test_cgroup_socket_memory_limit: %s\n",
			strcmp(limit_file, "memory.max") == 0
				? "v2 charges socket buffers to memory.max itself"
				: "skipped: this v1 kernel has no memory.kmem.tcp.limit_in_bytes");
		return;
	}
	ck_assert_uint_eq(tcp, 64u << 20);
}
END_TEST

START_TEST(test_cgroup_rejects_bad_names)
{
	ck_assert_int_eq(cgroup_setup(&cfg, "../escape", &run_limits, getpid()), -1);
	config_release(&cfg);
	char *extra[] = {(char *)"APP_CGROUP_PARENT=../x", NULL};
	load(extra);
	ck_assert_int_eq(cgroup_setup(&cfg, "ok", &run_limits, getpid()), -1);
	ck_assert_int_eq(cgroup_remove(&cfg, "ok"), 0);
}
END_TEST

/* ----------------------------------------------------- executor install */

/* Each test gets a directory of its own under /tmp (others may search it: the
 * sandbox user reads find-links through it) with a package cache (dists/,
 * staging/), a find-links directory of wheels built here, and a run dir; and
 * runs the built executor (next to this test binary's directory) on it. */
static char base_dir[64];
static char cache_dir[96], links_dir[96], run_dir[96];
static char executor_bin[PATH_MAX + 16];
static char install_skip[128]; /* why the install tests cannot run here, or "" */

/* tinypkg 1.0 as a wheel (a zip: the module, METADATA, WHEEL, RECORD; see
 * tests/e2e/wheels.py) and sdonly 1.0 as an sdist only. */
static const char fixture_py[] =
	"import base64, hashlib, io, sys, tarfile, zipfile\n"
	"d = sys.argv[1]\n"
	"def rec(n, b):\n"
	"    h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()\n"
	"    return '%s,sha256=%s,%d' % (n, h, len(b))\n"
	"info = 'tinypkg-1.0.dist-info'\n"
	"e = {'tinypkg/__init__.py': b'VALUE = 1\\n',\n"
	"     info + '/METADATA': b'Metadata-Version: 2.1\\nName: tinypkg\\nVersion: 1.0\\n',\n"
	"     info + '/WHEEL': b'Wheel-Version: 1.0\\nGenerator: check_sandbox\\n'\n"
	"                      b'Root-Is-Purelib: true\\nTag: py3-none-any\\n'}\n"
	"e[info + '/RECORD'] = ('\\n'.join([rec(k, v) for k, v in e.items()] + [info + '/RECORD,,'])\n"
	"                       + '\\n').encode()\n"
	"with zipfile.ZipFile(d + '/tinypkg-1.0-py3-none-any.whl', 'w') as z:\n"
	"    for k, v in e.items():\n"
	"        z.writestr(k, v)\n"
	"with tarfile.open(d + '/sdonly-1.0.tar.gz', 'w:gz') as t:\n"
	"    b = b'from setuptools import setup\\nsetup(name=\"sdonly\", version=\"1.0\")\\n'\n"
	"    i = tarfile.TarInfo('sdonly-1.0/setup.py')\n"
	"    i.size = len(b)\n"
	"    t.addfile(i, io.BytesIO(b))\n";

/* Runs /usr/bin/python3 with args, its output to /dev/null. Its exit status. */
static int python(const char *const *args)
{
	const char *argv[8] = {"/usr/bin/python3"};
	for (int i = 0; args[i] && i < 6; i++)
		argv[i + 1] = args[i];
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], (char *const *)(void *)argv);
		_exit(127);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void install_setup(void)
{
	setup();
	install_skip[0] = '\0';
	base_dir[0] = '\0';
	if (geteuid() != 0) {
		snprintf(install_skip, sizeof(install_skip), "needs root (uid/gid maps, cgroups)");
		return;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	ck_assert_int_gt(n, 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0'; /* BUILD/tests */
	*strrchr(self, '/') = '\0'; /* BUILD */
	snprintf(executor_bin, sizeof(executor_bin), "%s/executor", self);
	if (access(executor_bin, X_OK) != 0) {
		snprintf(install_skip, sizeof(install_skip), "no %.90s (make all)", executor_bin);
		return;
	}
	const char *probe[] = {"-I", "-m", "pip", "--version", NULL};
	if (python(probe) != 0) {
		snprintf(install_skip, sizeof(install_skip), "/usr/bin/python3 has no pip");
		return;
	}
	snprintf(base_dir, sizeof(base_dir), "/tmp/check_install.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base_dir));
	ck_assert_int_eq(chmod(base_dir, 0755), 0);
	snprintf(cache_dir, sizeof(cache_dir), "%s/cache", base_dir);
	snprintf(links_dir, sizeof(links_dir), "%s/links", base_dir);
	snprintf(run_dir, sizeof(run_dir), "%s/run", base_dir);
	char path[PATH_MAX + 32];
	static const char *const dirs[] = {"cache", "cache/dists", "cache/staging", "links", "run"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", base_dir, dirs[i]);
		ck_assert_int_eq(mkdir(path, i < 3 ? 0711 : 0755), 0);
		ck_assert_int_eq(chmod(path, i < 3 ? 0711 : 0755), 0);
	}
	const char *fixture[] = {"-c", fixture_py, links_dir, NULL};
	ck_assert_int_eq(python(fixture), 0);
	/* a "wheel" pip blocks on when it opens it: the tests' readiness check */
	snprintf(path, sizeof(path), "%s/hold-1.0-py3-none-any.whl", links_dir);
	ck_assert_int_eq(mkfifo(path, 0666), 0);
	ck_assert_int_eq(chmod(path, 0666), 0);
}

static void install_teardown(void)
{
	if (base_dir[0])
		remove_tree(base_dir);
	cgroup_teardown();
}

static int install_skipped(const char *test)
{
	if (!install_skip[0])
		return 0;
	fprintf(stderr, "check_sandbox: %s skipped: %s\n", test, install_skip);
	return 1;
}

/* A fresh, empty staging directory (as the service makes it: root's). */
static void make_staging(const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/staging/%s", cache_dir, name);
	ck_assert_int_eq(mkdir(out, 0755), 0);
}

struct install {
	pid_t pid; /* the launcher */
	int out;   /* its stdout and stderr */
	char id[64];
};

/* Starts `executor install --id ID --staging DIR --timeout T -- REQ` with the
 * test's APP_* settings (extra ones first: they win) and, to show that none of
 * it reaches pip, a PIP_FIND_LINKS and a secret of the launcher's own. */
static struct install install_start(const char *id, const char *staging, const char *timeout,
				    const char *req, const char *const *extra)
{
	struct install in = {.out = -1};
	snprintf(in.id, sizeof(in.id), "%s", id);
	char *env[24];
	int n = 0;
	for (; extra && *extra && n < 8; extra++)
		env[n++] = xasprintf("%s", *extra);
	env[n++] = xasprintf("APP_RUN_DIR=%s", run_dir);
	env[n++] = xasprintf("APP_PACKAGE_CACHE=%s", cache_dir);
	env[n++] = xasprintf("APP_PIP_FIND_LINKS=%s", links_dir);
	env[n++] = xasprintf("APP_CGROUP_PARENT=%s", CG_PARENT);
	env[n++] = xasprintf("APP_PACKAGE_INSTALL_MB=256");
	env[n++] = xasprintf("APP_SANDBOX_PIDS=4096");
	env[n++] = xasprintf("APP_LOG_LEVEL=info");
	env[n++] = xasprintf("APP_TEST_SECRET=launcher-only");
	env[n++] = xasprintf("PIP_FIND_LINKS=/launcher/only");
	env[n] = NULL;
	const char *argv[] = {executor_bin, "install", "--id", id, "--staging", staging,
			      "--timeout", timeout, "--", req, NULL};
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	fflush(NULL);
	in.pid = fork();
	ck_assert_int_ge(in.pid, 0);
	if (in.pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execve(argv[0], (char *const *)(void *)argv, env);
		_exit(127);
	}
	close(p[1]);
	in.out = p[0];
	for (int i = 0; i < n; i++)
		free(env[i]);
	return in;
}

/* Reads the launcher's output to the end and reaps it: its exit status, or
 * 256 + the signal that ended it. */
static int install_finish(struct install *in, char *out, size_t cap)
{
	size_t len = 0;
	ssize_t r;
	char sink[4096];
	while ((r = read(in->out, len + 1 < cap ? out + len : sink,
			 len + 1 < cap ? cap - 1 - len : sizeof(sink))) > 0 || (r < 0 && errno == EINTR))
		if (r > 0 && len + 1 < cap)
			len += (size_t)r;
	out[len] = '\0';
	close(in->out);
	int st;
	ck_assert_int_eq(waitpid(in->pid, &st, 0), in->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);
}

static int install_run_to_end(const char *id, const char *staging, const char *timeout,
			      const char *req, const char *const *extra, char *out, size_t cap)
{
	struct install in = install_start(id, staging, timeout, req, extra);
	return install_finish(&in, out, cap);
}

/* Waits until pip has opened the held wheel; returns the FIFO's write end (pip
 * opens the file again after reading it: it stays blocked until the install is
 * stopped or times out). -1 when the launcher ended first
 * or 20 s passed. A readiness check, not a guess: open(O_WRONLY|O_NONBLOCK)
 * fails with ENXIO until a reader has it open. */
static int wait_for_hold(const struct install *in)
{
	char fifo[PATH_MAX + 32];
	snprintf(fifo, sizeof(fifo), "%s/hold-1.0-py3-none-any.whl", links_dir);
	for (int i = 0; i < 4000; i++) {
		int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		ck_assert_int_eq(errno, ENXIO);
		/* ended (not reaped: install_finish does that) */
		siginfo_t info = {0};
		if (waitid(P_PID, (id_t)in->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != 0)
			return -1;
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* Reads /proc/PID/FILE (NULs as newlines). Bytes read, or -1. */
static ssize_t read_proc(pid_t pid, const char *file, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t r;
	while (len + 1 < cap && (r = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			buf[i] = '\n';
	buf[len] = '\0';
	return (ssize_t)len;
}

static pid_t parent_of(pid_t pid)
{
	char buf[4096];
	if (read_proc(pid, "status", buf, sizeof(buf)) < 0)
		return -1;
	const char *p = strstr(buf, "\nPPid:");
	return p ? (pid_t)strtol(p + 6, NULL, 10) : -1;
}

/* A child of parent whose comm is comm (any child when NULL), or -1. */
static pid_t child_of(pid_t parent, const char *comm)
{
	DIR *d = opendir("/proc");
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	pid_t found = -1;
	while (found < 0 && (e = readdir(d)) != NULL) {
		char *end, name[64];
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || parent_of((pid_t)pid) != parent)
			continue;
		if (comm && (read_proc((pid_t)pid, "comm", name, sizeof(name)) < 0 ||
			     strncmp(name, comm, strlen(comm)) != 0 || name[strlen(comm)] != '\n'))
			continue;
		found = (pid_t)pid;
	}
	closedir(d);
	return found;
}

/* The pip process of the install launched as `launcher`: the python3 child of
 * the sandbox's pid 1, the launcher's child. */
static pid_t find_pip(pid_t launcher)
{
	pid_t pid1 = child_of(launcher, NULL);
	return pid1 > 0 ? child_of(pid1, "python3") : -1;
}

static int not_dots(const struct dirent *e)
{
	return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

/* The names in dir but . and .., sorted, one a line, with size and mode. */
static void listing(const char *dir, char *out, size_t cap)
{
	struct dirent **names;
	int n = scandir(dir, &names, not_dots, alphasort);
	ck_assert_int_ge(n, 0);
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX + 300];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		ck_assert_int_eq(lstat(path, &st), 0);
		int w = snprintf(out + len, cap - len, "%s %lld %o\n", names[i]->d_name,
				 (long long)st.st_size, (unsigned)st.st_mode);
		if (w > 0 && (size_t)w < cap - len)
			len += (size_t)w;
		free(names[i]);
	}
	free(names);
}

/* Nothing of the install is left: neither its directory nor its cgroup. */
static void assert_install_gone(const char *id)
{
	char path[PATH_MAX + 80], group[96];
	const char *limit_file;
	snprintf(path, sizeof(path), "%s/installs/%s", run_dir, id);
	ck_assert_msg(access(path, F_OK) != 0, "%s left behind", path);
	snprintf(group, sizeof(group), CGROUP_INSTALL_PREFIX "%s", id);
	ck_assert_msg(memory_group(group, path, sizeof(path), &limit_file) != 0, "cgroup %s left", group);
}

START_TEST(test_install_wheel_into_staging)
{
	if (install_skipped("test_install_wheel_into_staging"))
		return;
	char staging[PATH_MAX], out[8192], before_links[4096], after[4096], dists[PATH_MAX + 8];
	make_staging("s1", staging, sizeof(staging));
	snprintf(dists, sizeof(dists), "%s/dists", cache_dir);
	listing(links_dir, before_links, sizeof(before_links));

	int rc = install_run_to_end("unit-wheel", staging, "60", "tinypkg==1.0", NULL, out, sizeof(out));
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "Successfully installed tinypkg-1.0"), "%s", out);

	/* the wheel is in staging, which the sandbox user owns (0700) */
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/tinypkg/__init__.py", staging);
	ck_assert_int_eq(access(path, R_OK), 0);
	snprintf(path, sizeof(path), "%s/tinypkg-1.0.dist-info/METADATA", staging);
	ck_assert_int_eq(access(path, R_OK), 0);
	struct stat st;
	ck_assert_int_eq(lstat(staging, &st), 0);
	ck_assert_uint_eq(st.st_uid, (uid_t)(cfg.sandbox_uid_base + 1000));
	ck_assert_uint_eq(st.st_gid, (gid_t)(cfg.sandbox_uid_base + 1000));
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	/* nothing else was written: not the cache's dists/, not find-links */
	listing(dists, after, sizeof(after));
	ck_assert_str_eq(after, "");
	listing(links_dir, after, sizeof(after));
	ck_assert_str_eq(after, before_links);
	assert_install_gone("unit-wheel");
}
END_TEST

/* Whether every writable mount pip sees (from /proc/PID/mountinfo: "id
 * parent dev root mount-point options ...") is one of the sandbox's own
 * (tmpfs, proc, the harmless devices) or the staging directory. */
static int writable_mounts_ok(pid_t pip, char *why, size_t cap)
{
	static const char *const allowed[] = {
		"/tmp", "/dev/shm", "/proc", INSTALL_INSIDE_STAGING,
		"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	};
	char buf[16384];
	ck_assert_int_gt(read_proc(pip, "mountinfo", buf, sizeof(buf)), 0);
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char root[512], point[512], opts[256];
		if (sscanf(line, "%*s %*s %*s %511s %511s %255s", root, point, opts) != 3)
			continue;
		if (strncmp(opts, "rw", 2) != 0 || (opts[2] != ',' && opts[2] != '\0'))
			continue;
		int ok = 0;
		for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
			ok |= strcmp(point, allowed[i]) == 0;
		if (!ok) {
			snprintf(why, cap, "%s (%s) is writable", point, root);
			return 0;
		}
	}
	return 1;
}

/* A line of /proc/PID/status, e.g. "Seccomp:\t2", is in buf. */
static void assert_status_line(const char *status, const char *line)
{
	char want[128];
	snprintf(want, sizeof(want), "\n%s\n", line);
	ck_assert_msg(strstr(status, want), "no \"%s\" in pip's status:\n%s", line, status);
}

/* pip of an install started on the "hold" requirement, once it holds the
 * wheel open (the readiness check: pip blocks on the FIFO); *hold is the
 * FIFO's other end, to close when done. */
static pid_t held_pip(struct install *in, int *hold, char *out, size_t cap)
{
	*hold = wait_for_hold(in);
	if (*hold < 0)
		install_finish(in, out, cap);
	ck_assert_msg(*hold >= 0, "pip never opened the held wheel: %s", out);
	pid_t pip = find_pip(in->pid);
	ck_assert_int_gt(pip, 0);
	return pip;
}

/* The /etc/nsswitch.conf pid sees, into buf. */
static void read_nsswitch(pid_t pid, char *buf, size_t cap)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/%d/root/etc/nsswitch.conf", (int)pid);
	FILE *f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
}

/* With a local find-links and no index: pip, held on a wheel, is locked down
 * as user code, in a network namespace with only lo, with exactly its own
 * environment and command line, in a cgroup of APP_PACKAGE_INSTALL_MB, and
 * can write to no host directory but staging. */
START_TEST(test_install_sandbox_offline_and_confined)
{
	if (install_skipped("test_install_sandbox_offline_and_confined"))
		return;
	char staging[PATH_MAX], out[8192], buf[16384], why[1200] = "";
	make_staging("s2", staging, sizeof(staging));
	struct install in = install_start("unit-held", staging, "60", "hold", NULL);
	int hold;
	pid_t pip = held_pip(&in, &hold, out, sizeof(out));

	/* no network interface but lo */
	ck_assert_int_gt(read_proc(pip, "net/dev", buf, sizeof(buf)), 0);
	char *iface = strchr(strchr(buf, '\n') + 1, '\n') + 1; /* past the two header lines */
	ck_assert_msg(strncmp(iface + strspn(iface, " "), "lo:", 3) == 0 && !strchr(strchr(iface, '\n') + 1, ':'),
		      "interfaces:\n%s", buf);
	/* its environment, exactly: nothing of the launcher's */
	ck_assert_int_gt(read_proc(pip, "environ", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "PATH=/usr/local/bin:/usr/bin:/bin\nHOME=/tmp\nTMPDIR=/tmp\nLANG=C.UTF-8\n"
			      "PIP_NO_COLOR=1\nPYTHONDONTWRITEBYTECODE=1\n");
	ck_assert_int_gt(read_proc(pip, "cmdline", buf, sizeof(buf)), 0);
	ck_assert_msg(strstr(buf, "\n--target\n" INSTALL_INSIDE_STAGING "\n--only-binary\n:all:\n") &&
			      strstr(buf, "\n--no-index\n--find-links\n" INSTALL_INSIDE_FIND_LINKS "\n--\nhold\n"),
		      "cmdline:\n%s", buf);
	/* locked down: the sandbox user (host base+1000), no capabilities,
	 * no_new_privs, the seccomp filter */
	ck_assert_int_gt(read_proc(pip, "status", buf, sizeof(buf)), 0);
	char uid[96];
	long u = cfg.sandbox_uid_base + 1000;
	snprintf(uid, sizeof(uid), "Uid:\t%ld\t%ld\t%ld\t%ld", u, u, u, u);
	assert_status_line(buf, uid);
	assert_status_line(buf, "NoNewPrivs:\t1");
	assert_status_line(buf, "Seccomp:\t2");
	assert_status_line(buf, "CapEff:\t0000000000000000");
	assert_status_line(buf, "CapBnd:\t0000000000000000");
	/* names resolve from files only; no host /etc beyond the whitelist */
	char path[128];
	read_nsswitch(pip, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "\nhosts: files\n"), "%s", buf);
	snprintf(path, sizeof(path), "/proc/%d/root/etc/pip.conf", (int)pip);
	ck_assert_int_ne(access(path, F_OK), 0);
	ck_assert_msg(writable_mounts_ok(pip, why, sizeof(why)), "%s", why);
	/* its cgroup: APP_PACKAGE_INSTALL_MB and APP_SANDBOX_PIDS */
	char dir[PATH_MAX];
	const char *limit_file;
	if (memory_group(CGROUP_INSTALL_PREFIX "unit-held", dir, sizeof(dir), &limit_file) == 0) {
		ck_assert_uint_eq(read_u64(dir, limit_file), 256u << 20);
		assert_in_group(pip, CGROUP_INSTALL_PREFIX "unit-held", "pip not in the install's group");
	} else {
		fprintf(stderr, "check_sandbox: test_install_sandbox_offline_and_confined: no memory "
				"cgroup here, its limit not checked\n");
	}

	/* stopped on request: the sandbox is killed, the status says why */
	ck_assert_int_eq(kill(in.pid, SIGTERM), 0);
	int rc = install_finish(&in, out, sizeof(out));
	close(hold);
	ck_assert_msg(rc == 128 + SIGTERM, "exit %d: %s", rc, out);
	ck_assert_msg(kill(pip, 0) < 0 && errno == ESRCH, "pip %d still there", (int)pip);
	assert_install_gone("unit-held");
}
END_TEST

/* A tiny index on the host's loopback that answers 404 to everything (pip
 * then takes the find-links wheels): a forked child on a listening socket. */
static pid_t index_server(int *port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s, 16), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		static const char reply[] = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
		for (;;) {
			int c = accept(s, NULL, NULL);
			if (c < 0)
				continue;
			char req[4096];
			if (read(c, req, sizeof(req)) > 0 && write(c, reply, sizeof(reply) - 1) < 0)
				_exit(1);
			close(c);
		}
	}
	close(s);
	return pid;
}

/* With an index URL: the host's network and its resolver, and the URL (with
 * its credentials) only in pip's environment, never on a command line. */
START_TEST(test_install_index_url_only_in_environment)
{
	if (install_skipped("test_install_index_url_only_in_environment"))
		return;
	char staging[PATH_MAX], out[8192], buf[16384], env_index[128], want[160];
	int port;
	pid_t server = index_server(&port);
	snprintf(env_index, sizeof(env_index), "APP_PIP_INDEX_URL=http://user:s3cret@127.0.0.1:%d/simple", port);
	const char *extra[] = {env_index, NULL};
	make_staging("s3", staging, sizeof(staging));
	struct install in = install_start("unit-index", staging, "60", "hold", extra);
	int hold;
	pid_t pip = held_pip(&in, &hold, out, sizeof(out));

	ck_assert_int_gt(read_proc(pip, "environ", buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "\nPIP_INDEX_URL=%s\n", env_index + strlen("APP_PIP_INDEX_URL="));
	ck_assert_msg(strstr(buf, want), "environ:\n%s", buf);
	ck_assert_msg(!strstr(buf, "APP_") && !strstr(buf, "/launcher/only"), "environ:\n%s", buf);
	ck_assert_int_gt(read_proc(pip, "cmdline", buf, sizeof(buf)), 0);
	ck_assert_msg(!strstr(buf, "s3cret") && !strstr(buf, "--no-index") && !strstr(buf, "--index-url"),
		      "cmdline:\n%s", buf);
	/* the host's network namespace, with DNS */
	char mine[64], its[64], path[128];
	ssize_t a = readlink("/proc/self/ns/net", mine, sizeof(mine) - 1);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pip);
	ssize_t b = readlink(path, its, sizeof(its) - 1);
	ck_assert(a > 0 && b > 0);
	mine[a] = its[b] = '\0';
	ck_assert_str_eq(its, mine);
	read_nsswitch(pip, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "\nhosts: files dns\n"), "%s", buf);

	ck_assert_int_eq(kill(in.pid, SIGTERM), 0);
	int rc = install_finish(&in, out, sizeof(out));
	close(hold);
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	ck_assert_msg(rc == 128 + SIGTERM, "exit %d: %s", rc, out);
	assert_install_gone("unit-index");
}
END_TEST

/* pip past APP_PACKAGE_INSTALL_MB (16 MB: pip itself needs some 50) is
 * killed by the install's memory cgroup. */
START_TEST(test_install_memory_limit_kills_pip)
{
	if (install_skipped("test_install_memory_limit_kills_pip"))
		return;
	char staging[PATH_MAX], out[8192];
	/* is there a memory controller at all? (a probe group of our own) */
	int release;
	pid_t probe = sleeper(&release);
	int cg = cgroup_setup(&cfg, "unit-probe", &run_limits, probe);
	cgroup_remove(&cfg, "unit-probe");
	waitpid(probe, NULL, 0);
	close(release);
	if (cg != 1) {
		fprintf(stderr, "check_sandbox: test_install_memory_limit_kills_pip skipped: no memory cgroup\n");
		return;
	}
	const char *extra[] = {"APP_PACKAGE_INSTALL_MB=16", NULL};
	make_staging("s4", staging, sizeof(staging));
	int rc = install_run_to_end("unit-oom", staging, "60", "tinypkg", extra, out, sizeof(out));
	ck_assert_msg(rc == 128 + SIGKILL, "exit %d: %s", rc, out);
	assert_install_gone("unit-oom");
}
END_TEST

/* Staging directories, requirements, ids and timeouts the launcher refuses
 * (exit 2), touching nothing: a refused directory stays root's. */
START_TEST(test_install_refuses_bad_arguments)
{
	if (install_skipped("test_install_refuses_bad_arguments"))
		return;
	char out[8192], good[PATH_MAX], outside[PATH_MAX + 32], link[PATH_MAX + 32], full[PATH_MAX],
		nested[PATH_MAX + 32], file[PATH_MAX + 32], top[PATH_MAX + 32], dots[PATH_MAX + 32],
		missing[PATH_MAX + 32];
	make_staging("good", good, sizeof(good));
	snprintf(outside, sizeof(outside), "%s/outside", base_dir);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	/* a symlink in staging/ to a real (empty) directory, and one to outside */
	snprintf(link, sizeof(link), "%s/staging/link", cache_dir);
	ck_assert_int_eq(symlink(good, link), 0);
	make_staging("full", full, sizeof(full));
	snprintf(file, sizeof(file), "%s/x", full);
	int fd = open(file, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(nested, sizeof(nested), "%s/deeper", full);
	ck_assert_int_eq(mkdir(nested, 0755), 0);
	snprintf(top, sizeof(top), "%s/staging", cache_dir);
	snprintf(dots, sizeof(dots), "%s/staging/good/..", cache_dir);
	snprintf(missing, sizeof(missing), "%s/staging/missing", cache_dir);
	const char *const bad_dirs[] = {outside, link, full, nested, top, dots, missing,
					"relative/dir", file, "/"};
	for (size_t i = 0; i < sizeof(bad_dirs) / sizeof(bad_dirs[0]); i++) {
		int rc = install_run_to_end("unit-bad", bad_dirs[i], "60", "tinypkg", NULL, out, sizeof(out));
		ck_assert_msg(rc == 2, "--staging %s: exit %d: %s", bad_dirs[i], rc, out);
	}
	static const char *const bad_reqs[] = {"./tinypkg", "tinypkg; os_name == 'posix'",
		"--index-url=http://x/", "http://x/tinypkg.whl", "tinypkg @ file:///x", ""};
	for (size_t i = 0; i < sizeof(bad_reqs) / sizeof(bad_reqs[0]); i++) {
		int rc = install_run_to_end("unit-bad", good, "60", bad_reqs[i], NULL, out, sizeof(out));
		ck_assert_msg(rc == 2, "requirement %s: exit %d: %s", bad_reqs[i], rc, out);
	}
	static const char *const bad_timeouts[] = {"0", "-1", "86401", "abc", "nan", "inf", ""};
	for (size_t i = 0; i < sizeof(bad_timeouts) / sizeof(bad_timeouts[0]); i++) {
		int rc = install_run_to_end("unit-bad", good, bad_timeouts[i], "tinypkg", NULL, out, sizeof(out));
		ck_assert_msg(rc == 2, "--timeout %s: exit %d: %s", bad_timeouts[i], rc, out);
	}
	int rc = install_run_to_end("../bad", good, "60", "tinypkg", NULL, out, sizeof(out));
	ck_assert_msg(rc == 2, "--id ../bad: exit %d: %s", rc, out);
	/* a find-links path that is no directory */
	const char *extra[] = {"APP_PIP_FIND_LINKS=/nonexistent/wheels", NULL};
	rc = install_run_to_end("unit-bad", good, "60", "tinypkg", extra, out, sizeof(out));
	ck_assert_msg(rc == 2, "find-links missing: exit %d: %s", rc, out);

	struct stat st;
	const char *const untouched[] = {good, outside, full};
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(lstat(untouched[i], &st), 0);
		ck_assert_msg(st.st_uid == 0 && (st.st_mode & 07777) == 0755, "%s was changed", untouched[i]);
	}
	char run_installs[PATH_MAX + 16];
	snprintf(run_installs, sizeof(run_installs), "%s/installs/unit-bad", run_dir);
	ck_assert_int_ne(access(run_installs, F_OK), 0);
}
END_TEST

/* With wheels only, a requirement that exists only as an sdist is not
 * found (no package code is ever built or run), and staging stays empty. */
START_TEST(test_install_sdist_only_not_found)
{
	if (install_skipped("test_install_sdist_only_not_found"))
		return;
	char staging[PATH_MAX], out[8192], after[4096];
	make_staging("s5", staging, sizeof(staging));
	int rc = install_run_to_end("unit-sdist", staging, "60", "sdonly", NULL, out, sizeof(out));
	ck_assert_msg(rc != 0 && rc < 124, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "No matching distribution found for sdonly"), "%s", out);
	listing(staging, after, sizeof(after));
	ck_assert_str_eq(after, "");
	assert_install_gone("unit-sdist");
}
END_TEST

/* Past --timeout the whole sandbox is killed: exit 124 and a line saying so;
 * neither its directory nor its cgroup (nor pip) is left. */
START_TEST(test_install_timeout_kills_the_sandbox)
{
	if (install_skipped("test_install_timeout_kills_the_sandbox"))
		return;
	char staging[PATH_MAX], out[8192];
	make_staging("s6", staging, sizeof(staging));
	/* long enough for pip to reach the wheel on a loaded machine */
	struct install in = install_start("unit-slow", staging, "3", "hold", NULL);
	int hold = wait_for_hold(&in);
	pid_t pip = hold >= 0 ? find_pip(in.pid) : -1;
	int rc = install_finish(&in, out, sizeof(out)); /* we keep holding: pip never finishes */
	ck_assert_msg(rc == 124, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "install: pip did not finish within 3 seconds; stopped\n"), "%s", out);
	ck_assert_msg(pip > 0, "pip never reached the wheel: %s", out);
	ck_assert_msg(kill(pip, 0) < 0 && errno == ESRCH, "pip %d still there", (int)pip);
	close(hold);
	assert_install_gone("unit-slow");
}
END_TEST

/* A run's sandbox binds the cache's dists/ (not site-packages) read-only at
 * SBX_INSIDE_PACKAGES, and its launcher makes dists/ and staging/ host
 * root's, 0711, even where an earlier layout left them the sandbox user's. */
START_TEST(test_run_sandbox_binds_dists)
{
	if (install_skipped("test_run_sandbox_binds_dists"))
		return;
	char path[PATH_MAX + 64], buf[16384];
	uid_t user = (uid_t)(cfg.sandbox_uid_base + 1000);
	snprintf(path, sizeof(path), "%s/dists", cache_dir);
	ck_assert_int_eq(chown(path, user, user), 0);
	ck_assert_int_eq(chmod(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/site-packages", cache_dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);

	int ready[2];
	ck_assert_int_eq(pipe(ready), 0);
	char fd_arg[16], *env[8];
	snprintf(fd_arg, sizeof(fd_arg), "%d", ready[1]);
	env[0] = xasprintf("APP_RUN_DIR=%s", run_dir);
	env[1] = xasprintf("APP_PACKAGE_CACHE=%s", cache_dir);
	env[2] = xasprintf("APP_CGROUP_PARENT=%s", CG_PARENT);
	env[3] = xasprintf("APP_PRELOAD_MODULES=");
	env[4] = xasprintf("APP_SANDBOX_PIDS=4096");
	env[5] = NULL;
	const char *argv[] = {executor_bin, "sandbox", "--id", "unit-run", "--ready-fd", fd_arg, NULL};
	fflush(NULL);
	pid_t launcher = fork();
	ck_assert_int_ge(launcher, 0);
	if (launcher == 0) {
		close(ready[0]);
		execve(argv[0], (char *const *)(void *)argv, env);
		_exit(127);
	}
	close(ready[1]);
	for (int i = 0; env[i]; i++)
		free(env[i]);
	char r = 0;
	ssize_t got = read(ready[0], &r, 1);
	close(ready[0]);
	pid_t pid1 = got == 1 ? child_of(launcher, NULL) : -1; /* the sandbox's pid 1 */
	ssize_t n = pid1 > 0 ? read_proc(pid1, "mountinfo", buf, sizeof(buf)) : -1;
	kill(launcher, SIGTERM);
	int st;
	ck_assert_int_eq(waitpid(launcher, &st, 0), launcher);
	snprintf(path, sizeof(path), "%s/sandboxes/unit-run", run_dir);
	remove_tree(path);
	cgroup_remove(&cfg, "unit-run");
	ck_assert_msg(got == 1 && r == 'R', "the sandbox never became ready");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "launcher status 0x%x", (unsigned)st);
	ck_assert_int_gt(n, 0);

	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "/cache/dists " SBX_INSIDE_PACKAGES " ro,");
	ck_assert_msg(strstr(buf, want), "no %s in\n%s", want, buf);
	ck_assert_msg(!strstr(buf, "site-packages"), "%s", buf);
	static const char *const subs[] = {"dists", "staging"};
	for (int i = 0; i < 2; i++) {
		struct stat sst;
		snprintf(path, sizeof(path), "%s/%s", cache_dir, subs[i]);
		ck_assert_int_eq(lstat(path, &sst), 0);
		ck_assert_msg(sst.st_uid == 0 && sst.st_gid == 0 && (sst.st_mode & 07777) == 0711,
			      "%s: uid %d mode %o", path, (int)sst.st_uid, (unsigned)(sst.st_mode & 07777));
	}
}
END_TEST

/* The lock-down tests, run with the filter built at load time and with the
 * one compiled ahead (sbx_seccomp_prepare, what the zygote does). */
static void add_lockdown_tests(TCase *tc)
{
	tcase_add_test(tc, test_lockdown_status);
	tcase_add_test(tc, test_mount_denied);
	tcase_add_test(tc, test_unshare_denied);
	tcase_add_test(tc, test_clone_new_namespaces_denied);
	tcase_add_test(tc, test_ptrace_denied);
	tcase_add_test(tc, test_bpf_denied);
	tcase_add_test(tc, test_keyctl_denied);
	tcase_add_test(tc, test_io_uring_denied);
	tcase_add_test(tc, test_inotify_fanotify_denied);
	tcase_add_test(tc, test_socket_packet_denied);
	tcase_add_test(tc, test_socket_netlink_denied);
	tcase_add_test(tc, test_socket_raw_denied);
	tcase_add_test(tc, test_misc_syscalls_denied);
	tcase_add_test(tc, test_ordinary_calls_allowed);
	tcase_add_test(tc, test_outside_allow_list_enosys);
#ifdef __x86_64__
	tcase_add_test(tc, test_i386_abi_killed);
	tcase_add_test(tc, test_x32_abi_killed);
#endif
	tcase_add_test(tc, test_rlimits_in_force);
	tcase_add_test(tc, test_rlimit_as_without_memory_cgroup);
	tcase_add_test(tc, test_lockdown_changes_uid);
	tcase_add_test(tc, test_seccomp_export);
	tcase_add_test(tc, test_holder_filter_allows_only_its_calls);
}

static Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *lock = tcase_create("lockdown");
	tcase_add_checked_fixture(lock, setup, teardown);
	add_lockdown_tests(lock);
	suite_add_tcase(s, lock);
	TCase *prepared = tcase_create("lockdown-prepared");
	tcase_add_checked_fixture(prepared, setup_prepared, teardown);
	add_lockdown_tests(prepared);
	suite_add_tcase(s, prepared);
	TCase *inherited = tcase_create("lockdown-inherited");
	tcase_add_checked_fixture(inherited, setup_inherited, teardown);
	add_lockdown_tests(inherited);
	tcase_add_test(inherited, test_zygote_filter_lets_only_setns_through);
	tcase_add_test(inherited, test_lockdown_adds_only_the_rest_of_the_filter);
	suite_add_tcase(s, inherited);

	TCase *paths = tcase_create("paths");
	tcase_add_checked_fixture(paths, setup, teardown);
	tcase_add_test(paths, test_sandbox_paths);
	suite_add_tcase(s, paths);

	TCase *filter = tcase_create("seccomp-build");
	tcase_add_checked_fixture(filter, setup, teardown);
	tcase_add_test(filter, test_unknown_syscall_name_fails_the_build);
	suite_add_tcase(s, filter);

	TCase *cg = tcase_create("cgroup");
	tcase_add_checked_fixture(cg, setup, cgroup_teardown);
	tcase_set_timeout(cg, 30);
	tcase_add_test(cg, test_cgroup_setup_and_remove);
	tcase_add_test(cg, test_cgroup_parent_made_again_when_gone);
	tcase_add_test(cg, test_cgroup_join_follows_the_model);
	tcase_add_test(cg, test_cgroup_memory_limit_kills);
	tcase_add_test(cg, test_cgroup_remove_all);
	tcase_add_test(cg, test_cgroup_install_groups);
	tcase_add_test(cg, test_cgroup_rejects_bad_names);
	tcase_add_test(cg, test_cgroup_cpu_limit);
	tcase_add_test(cg, test_cgroup_socket_memory_limit);
	suite_add_tcase(s, cg);

	/* `executor install` and the run sandbox's package mount, with the built
	 * binaries (each pip start takes about a second) */
	TCase *inst = tcase_create("install");
	tcase_add_checked_fixture(inst, install_setup, install_teardown);
	tcase_set_timeout(inst, 60);
	tcase_add_test(inst, test_install_wheel_into_staging);
	tcase_add_test(inst, test_install_sandbox_offline_and_confined);
	tcase_add_test(inst, test_install_index_url_only_in_environment);
	tcase_add_test(inst, test_install_memory_limit_kills_pip);
	tcase_add_test(inst, test_install_refuses_bad_arguments);
	tcase_add_test(inst, test_install_sdist_only_not_found);
	tcase_add_test(inst, test_install_timeout_kills_the_sandbox);
	tcase_add_test(inst, test_run_sandbox_binds_dists);
	suite_add_tcase(s, inst);
	return s;
}

int main(void)
{
	started_as_root = geteuid() == 0;
	SRunner *sr = srunner_create(sandbox_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
