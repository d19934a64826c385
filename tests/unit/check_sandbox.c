/* check_sandbox: unit tests of the sandbox lock-down (sbx_lockdown, the seccomp
 * filter, rlimits), the sandbox paths and the cgroups (cgroup_setup/remove).
 * Every lock-down happens in a forked child; escape attempts must fail. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "sandbox.h"
#include "sbx_seccomp.h"

#define CG_PARENT "code-interpreter-unittest"

static struct config cfg;
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

static void teardown(void)
{
	config_release(&cfg);
}

static void setup_prepared(void)
{
	setup();
	ck_assert_int_eq(sbx_seccomp_prepare(), 0);
}

/* The cgroup tests leave nothing behind, not even the (empty) parent groups. */
static void cgroup_teardown(void)
{
	static const char *const roots[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
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
	DENIED(personality(ADDR_NO_RANDOMIZE), EPERM);
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

/* What ordinary Python code needs keeps working under the filter. */
static int try_allowed(void)
{
	pid_t pid = fork(); /* glibc tries clone3 first, gets ENOSYS, uses clone */
	if (pid < 0)
		return why("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(7);
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

START_TEST(test_i386_abi_killed)
{
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

	ck_assert_int_eq(cgroup_setup(&cfg, id, pid), 1);
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
		ck_assert_int_eq(cgroup_setup(&cfg, id, pid), 1);
		ck_assert_int_eq(memory_group(id, dir, sizeof(dir), &limit_file), 0);
		assert_in_group(pid, id, "pid not in its group");
		ck_assert_int_eq(cgroup_remove(&cfg, id), 0);
		ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
		close(release);
		/* the parent groups go too: the second round must make them again */
		static const char *const roots[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
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

START_TEST(test_cgroup_memory_limit_kills)
{
	if (!is_root("test_cgroup_memory_limit_kills"))
		return;
	config_release(&cfg);
	char *extra[] = {(char *)"APP_SANDBOX_MEMORY_MB=32", NULL};
	load(extra);
	char id[64];
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
	int rc = cgroup_setup(&cfg, id, pid);
	ck_assert_int_eq(write(p[1], "g", 1), 1);
	close(p[1]);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	uint64_t kills = cgroup_oom_kills(&cfg, id);
	cgroup_remove(&cfg, id);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", (unsigned)st);
	ck_assert_uint_ge(kills, 1);
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
		ck_assert_int_eq(cgroup_setup(&cfg, ids[i], pids[i]), 1);
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
	ck_assert_int_eq(cgroup_setup(&cfg, id, model), 1);

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

START_TEST(test_cgroup_rejects_bad_names)
{
	ck_assert_int_eq(cgroup_setup(&cfg, "../escape", getpid()), -1);
	config_release(&cfg);
	char *extra[] = {(char *)"APP_CGROUP_PARENT=../x", NULL};
	load(extra);
	ck_assert_int_eq(cgroup_setup(&cfg, "ok", getpid()), -1);
	ck_assert_int_eq(cgroup_remove(&cfg, "ok"), 0);
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
	tcase_add_test(tc, test_socket_packet_denied);
	tcase_add_test(tc, test_socket_netlink_denied);
	tcase_add_test(tc, test_socket_raw_denied);
	tcase_add_test(tc, test_misc_syscalls_denied);
	tcase_add_test(tc, test_ordinary_calls_allowed);
#ifdef __x86_64__
	tcase_add_test(tc, test_i386_abi_killed);
	tcase_add_test(tc, test_x32_abi_killed);
#endif
	tcase_add_test(tc, test_rlimits_in_force);
	tcase_add_test(tc, test_rlimit_as_without_memory_cgroup);
	tcase_add_test(tc, test_lockdown_changes_uid);
	tcase_add_test(tc, test_seccomp_export);
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

	TCase *paths = tcase_create("paths");
	tcase_add_checked_fixture(paths, setup, teardown);
	tcase_add_test(paths, test_sandbox_paths);
	suite_add_tcase(s, paths);

	TCase *cg = tcase_create("cgroup");
	tcase_add_checked_fixture(cg, setup, cgroup_teardown);
	tcase_set_timeout(cg, 30);
	tcase_add_test(cg, test_cgroup_setup_and_remove);
	tcase_add_test(cg, test_cgroup_parent_made_again_when_gone);
	tcase_add_test(cg, test_cgroup_join_follows_the_model);
	tcase_add_test(cg, test_cgroup_memory_limit_kills);
	tcase_add_test(cg, test_cgroup_remove_all);
	tcase_add_test(cg, test_cgroup_rejects_bad_names);
	suite_add_tcase(s, cg);
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
