/* sbx_seccomp: see sbx_seccomp.h. The allow list is Docker's default profile
 * (moby profiles/seccomp/default.json, its unconditional x86_64/aarch64 names)
 * minus what DESIGN §3 denies; the socket rules follow bubblewrap/flatpak's. */
#include "sbx_seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_SCHED_CORE
#define PR_SCHED_CORE 62 /* Linux 5.14 */
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41 /* Linux 5.17 */
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67 /* Linux 6.4; the build host's headers may be older */
#endif

#include "log.h"
#include "util.h"

/* System calls allowed without condition: Docker's default allow list (only
 * the names of 64-bit ABIs) without adjtimex, clock_adjtime (the machine's
 * clock), name_to_handle_at (file handles), io_uring_* (DESIGN §3),
 * inotify_*, fanotify_mark (watching the shared root), memfd_secret,
 * pidfd_send_signal, process_mrelease (pidfds: nothing a run needs; only
 * pidfd_open is allowed, because `executor serve --lockdown process`, a pod,
 * watches its runner through one after the whole server is locked down),
 * landlock_* (no user in the image), remap_file_pages (deprecated
 * emulation), epoll_ctl_old, epoll_wait_old (never implemented), and without
 * ptrace, process_vm_readv/writev, modify_ldt, which Docker allows. clone,
 * personality, madvise, prctl, ioctl, socket and socketpair are allowed by
 * argument below;
 * everything else gets ENOSYS (DEFAULT_ERRNO). Names of another
 * architecture's table (open on arm64, arch_prctl off x86_64) are skipped. */
static const char *const allowed[] = {
	"accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "capget",
	"capset", "chdir", "chmod", "chown", "clock_getres", "clock_gettime",
	"clock_nanosleep", "close", "close_range", "connect", "copy_file_range", "creat",
	"dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait",
	"epoll_pwait2", "epoll_wait", "eventfd", "eventfd2", "execve", "execveat", "exit",
	"exit_group", "faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir",
	"fchmod", "fchmodat", "fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr",
	"flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs",
	"fsync", "ftruncate", "futex", "futex_waitv", "futimesat", "get_robust_list",
	"get_thread_area", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
	"geteuid", "getgid", "getgroups", "getitimer", "getpeername", "getpgid", "getpgrp",
	"getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid",
	"getrlimit", "getrusage", "getsid", "getsockname", "getsockopt", "gettid",
	"gettimeofday", "getuid", "getxattr", "io_cancel", "io_destroy", "io_getevents",
	"io_pgetevents", "io_setup", "io_submit", "ioprio_get", "ioprio_set", "kill",
	"lchown", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
	"lremovexattr", "lseek", "lsetxattr", "lstat", "membarrier",
	"memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
	"mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
	"mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget",
	"msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep",
	"newfstatat", "open", "openat", "openat2", "pause", "pidfd_open", "pipe", "pipe2",
	"pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "pread64", "preadv",
	"preadv2", "prlimit64", "pselect6", "pwrite64", "pwritev", "pwritev2", "read",
	"readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
	"removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir",
	"rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
	"rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo",
	"sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity",
	"sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
	"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
	"sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
	"sendfile", "sendmmsg", "sendmsg", "sendto", "set_robust_list", "set_thread_area",
	"set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer",
	"setpgid", "setpriority", "setregid", "setresgid", "setresuid", "setreuid",
	"setrlimit", "setsid", "setsockopt", "setuid", "setxattr", "shmat", "shmctl",
	"shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "splice",
	"stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
	"syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
	"timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create",
	"timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask",
	"uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork", "vmsplice",
	"wait4", "waitid", "write", "writev",
};

/* What a system call on neither list gets: ENOSYS, what the kernel answers
 * for one it does not have, so that glibc and CPython use their fallbacks
 * (as they do for clone3) and a newer system call is closed until added. */
#define DEFAULT_ERRNO ENOSYS

/* System calls denied outright with EPERM (they would get DEFAULT_ERRNO
 * anyway; EPERM says "refused", and the tests hold these names). Names of
 * another architecture's table (e.g. iopl on arm64) are skipped. */
static const char *const denied[] = {
	/* mounts and file system views */
	"mount", "umount", "umount2", "pivot_root", "chroot",
	"open_by_handle_at", "name_to_handle_at",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
	"mount_setattr", "quotactl", "quotactl_fd", "swapon", "swapoff",
	/* other processes' memory */
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"process_madvise", "move_pages", "memfd_secret",
	/* kernel subsystems with a long record of bugs */
	"bpf", "perf_event_open", "userfaultfd",
	"keyctl", "add_key", "request_key",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"lookup_dcookie",
	/* watching files: the read-only root and the package cache are shared, so
	 * a watch would show another run's imports live and carry a covert channel
	 * between concurrent runs (CPython's stdlib never uses inotify) */
	"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	"fanotify_init", "fanotify_mark",
	/* new namespaces */
	"unshare", "setns",
	/* the machine itself */
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"reboot", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"acct", "syslog", "sethostname", "setdomainname", "vhangup",
	"iopl", "ioperm", "modify_ldt", "uselib", "nfsservctl",
};

/* What the zygote's filter (sbx_seccomp_load_for_runners) allows beyond a
 * run's: entering a sandbox's namespaces, which the zygote does for each
 * runner (its pid namespace) and the runner for the rest, before its lock-down.
 * The runner refuses them again (the rest of the run's filter, build_rest)
 * before any code of a run exists in it. Anything else the warm interpreter
 * or a runner before its lock-down needs must be allowed to runs too, or go
 * here. */
static const char *const zygote_only[] = {"setns"};

static int zygote_only_name(const char *name)
{
	for (size_t i = 0; i < sizeof(zygote_only) / sizeof(zygote_only[0]); i++)
		if (strcmp(name, zygote_only[i]) == 0)
			return 1;
	return 0;
}

static const unsigned long clone_new_flags[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
	CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};

/* Arguments the kernel reads as a 32-bit int, allowed by range and refused
 * (EPERM) by value (add_int_rules); anything else gets DEFAULT_ERRNO.
 *
 * ioctl: every request but TIOCSTI (typing into the terminal) and TIOCLINUX
 * (console tricks). madvise: every advice up to 31 but MADV_MERGEABLE;
 * MADV_HWPOISON and MADV_SOFT_OFFLINE need CAP_SYS_ADMIN anyway. prctl: the
 * options Linux has up to PR_FUTEX_HASH (78, Linux 6.16), PR_SET_PTRACER and
 * PR_SET_VMA, but PR_SET_MEMORY_MERGE and PR_SCHED_CORE; an option added
 * later stays closed until it is looked at and added here (prctl allowed
 * whole, as in Docker's profile, let PR_SET_MEMORY_MERGE in when Linux 6.4
 * added it).
 * - Kernel samepage merging (MADV_MERGEABLE, PR_SET_MEMORY_MERGE): where the
 *   host runs KSM, a page merged with another sandbox's identical copy takes
 *   longer to write (it is copied first), so a run could tell what memory
 *   another run holds (a timing channel between runs).
 * - Core scheduling (PR_SCHED_CORE): a cookie of its own keeps every other
 *   task off the SMT sibling of the core the run is on, time neither another
 *   run nor the host gets back and the run's CPU limit does not count. */
struct int_range {
	uint32_t lo, hi;
};
struct int_rules {
	const char *name;
	unsigned int arg;
	size_t n_allowed, n_refused;
	struct int_range allowed[3];
	uint32_t refused[2];
};
static const struct int_rules int_rules[] = {
	{"ioctl", 1, 1, 2, {{0, 0xffffffffu}}, {TIOCSTI, TIOCLINUX}},
	{"madvise", 2, 1, 1, {{0, 31}}, {MADV_MERGEABLE}},
	{"prctl", 0, 3, 2, {{0, 78 /* PR_FUTEX_HASH */}, {PR_SET_PTRACER, PR_SET_PTRACER}, {PR_SET_VMA, PR_SET_VMA}},
	 {PR_SET_MEMORY_MERGE, PR_SCHED_CORE}},
};

/* Socket families user code may open. Everything else (netlink, packet,
 * bluetooth, alg, vsock, ...) is denied. Kept in ascending order. */
static const int allowed_families[] = {AF_UNIX, AF_INET, AF_INET6};

/* Adds a rule for name. A name libseccomp does not know at all (a typo, or
 * a system call newer than this libseccomp) fails the build: a rule that is
 * silently left out is a hole in an allow list's edges or a missing deny. */
static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name,
		    unsigned int n, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		const struct scmp_version *v = seccomp_version();
		log_error("seccomp: unknown system call \"%s\" (libseccomp %u.%u.%u does not know it)",
			  name, v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0);
		errno = EINVAL;
		return -1;
	}
	if (nr < 0) {
		/* libseccomp's pseudo number: a system call of another architecture */
		log_debug("seccomp: %s does not exist on this architecture, skipped", name);
		return 0;
	}
	int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	if (rc < 0) {
		log_error("seccomp: rule for %s: %s", name, strerror(-rc));
		errno = -rc;
		return -1;
	}
	return 0;
}

/* Allows r->name when argument r->arg is in block (mask, value) (the values
 * whose bits under mask, a run of high bits, equal value; mask 0: every
 * value) and not refused: the block whole when it holds no refused value,
 * else its two halves in turn. The compares are disjoint, as libseccomp gives
 * no order among overlapping rules of one system call (an unconditional rule,
 * for one, would win over the refusals). 0, or -1 (logged). */
static int allow_block(scmp_filter_ctx ctx, const struct int_rules *r, uint32_t mask, uint32_t value)
{
	int holds = 0;
	for (size_t i = 0; i < r->n_refused; i++)
		holds |= (r->refused[i] & mask) == value;
	if (!holds) {
		struct scmp_arg_cmp c = {r->arg, SCMP_CMP_MASKED_EQ, mask, value};
		return add_rule(ctx, SCMP_ACT_ALLOW, r->name, 1, &c);
	}
	if (mask == 0xffffffffu)
		return 0; /* the refused value itself */
	uint32_t half = mask ? (mask & -mask) >> 1 : 0x80000000u;
	return allow_block(ctx, r, mask | half, value) < 0 ? -1 : allow_block(ctx, r, mask | half, value | half);
}

/* The int_rules of one system call: each allowed range as the fewest aligned
 * blocks that cover it. Only the low 32 bits are compared, as the kernel reads
 * them: garbage in the upper half changes nothing. */
static int add_int_rules(scmp_filter_ctx ctx, const struct int_rules *r)
{
	for (size_t i = 0; i < r->n_refused; i++) {
		struct scmp_arg_cmp c = {r->arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, r->refused[i]};
		if (add_rule(ctx, SCMP_ACT_ERRNO(EPERM), r->name, 1, &c) < 0)
			return -1;
	}
	for (size_t i = 0; i < r->n_allowed; i++) {
		for (uint64_t v = r->allowed[i].lo; v <= r->allowed[i].hi;) {
			/* the largest block aligned at v that ends by hi */
			uint64_t size = v ? v & -v : (uint64_t)1 << 32;
			while (v + size - 1 > r->allowed[i].hi)
				size >>= 1;
			if (allow_block(ctx, r, (uint32_t)~(size - 1), (uint32_t)v) < 0)
				return -1;
			v += size;
		}
	}
	return 0;
}

/* socket() and socketpair(): only allowed_families, no raw or packet sockets.
 * The EPERM rules and the allow rules match disjoint arguments (libseccomp
 * gives no order among overlapping rules of one system call). */
static int add_socket_rules(scmp_filter_ctx ctx, const char *name)
{
	const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
	int next = 0; /* lowest family not yet handled */
	size_t nallowed = sizeof(allowed_families) / sizeof(allowed_families[0]);
	for (size_t i = 0; i < nallowed; i++) {
		for (int fam = next; fam < allowed_families[i]; fam++) {
			struct scmp_arg_cmp c = SCMP_A0_64(SCMP_CMP_EQ, (uint64_t)fam);
			if (add_rule(ctx, deny, name, 1, &c) < 0)
				return -1;
		}
		next = allowed_families[i] + 1;
	}
	/* 64-bit compare: a family with garbage in the upper half is caught too */
	struct scmp_arg_cmp ge = SCMP_A0_64(SCMP_CMP_GE, (uint64_t)next);
	if (add_rule(ctx, deny, name, 1, &ge) < 0)
		return -1;
	static const int types[] = {SOCK_RAW, SOCK_PACKET};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		/* the low 4 bits are the type; SOCK_NONBLOCK/SOCK_CLOEXEC live above */
		struct scmp_arg_cmp t = SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, (uint32_t)types[i]);
		if (add_rule(ctx, deny, name, 1, &t) < 0)
			return -1;
	}
	/* allowed: an allowed family with a stream, datagram or seqpacket type;
	 * anything else (SOCK_RDM, SOCK_DCCP) gets DEFAULT_ERRNO */
	static const int ok_types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
	for (size_t i = 0; i < nallowed; i++) {
		for (size_t j = 0; j < sizeof(ok_types) / sizeof(ok_types[0]); j++) {
			struct scmp_arg_cmp c[2] = {
				SCMP_A0_64(SCMP_CMP_EQ, (uint64_t)allowed_families[i]),
				SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, (uint32_t)ok_types[j]),
			};
			if (add_rule(ctx, SCMP_ACT_ALLOW, name, 2, c) < 0)
				return -1;
		}
	}
	return 0;
}

/* The filter: allowed, extra (more names to allow, for the tests) and the
 * argument rules; for the zygote, zygote_only allowed instead of denied. NULL
 * (logged, errno set) if any rule cannot be added. */
static scmp_filter_ctx build(const char *const *extra, size_t nextra, int zygote)
{
	const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
	int ok = 0;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(DEFAULT_ERRNO));
	if (!ctx) {
		log_error("seccomp: seccomp_init failed");
		errno = ENOMEM;
		return NULL;
	}
	/* Only the native ABI: an i386 (int 0x80) or x32 system call kills the
	 * process instead of slipping past rules written for x86_64 numbers. */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		log_error("seccomp: bad-arch action: %s", strerror(-rc));
		errno = -rc;
		goto out;
	}
	/* a binary search over the system call numbers instead of a chain of
	 * ~270 compares: every allowed call of the run passes through it */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc < 0) {
		log_error("seccomp: binary tree optimization: %s", strerror(-rc));
		errno = -rc;
		goto out;
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (add_rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL) < 0)
			goto out;
	for (size_t i = 0; i < nextra; i++)
		if (add_rule(ctx, SCMP_ACT_ALLOW, extra[i], 0, NULL) < 0)
			goto out;
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (add_rule(ctx, zygote && zygote_only_name(denied[i]) ? SCMP_ACT_ALLOW : deny, denied[i], 0,
			     NULL) < 0)
			goto out;

	/* clone3 passes its flags in memory the filter cannot read: it is on
	 * neither list, so it gets ENOSYS and glibc falls back to clone, whose
	 * flags we can check: none of a new namespace (EPERM). */
	_Static_assert(DEFAULT_ERRNO == ENOSYS, "clone3 must get ENOSYS");
	unsigned long all_new = 0;
	for (size_t i = 0; i < sizeof(clone_new_flags) / sizeof(clone_new_flags[0]); i++) {
		struct scmp_arg_cmp c =
			SCMP_A0_64(SCMP_CMP_MASKED_EQ, clone_new_flags[i], clone_new_flags[i]);
		if (add_rule(ctx, deny, "clone", 1, &c) < 0)
			goto out;
		all_new |= clone_new_flags[i];
	}
	struct scmp_arg_cmp plain = SCMP_A0_64(SCMP_CMP_MASKED_EQ, all_new, 0);
	if (add_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &plain) < 0)
		goto out;

	/* personality: only PER_LINUX (libseccomp allows one comparison per
	 * argument, so the 0xffffffff query is denied as well). */
	struct scmp_arg_cmp pers = SCMP_A0_32(SCMP_CMP_NE, 0);
	if (add_rule(ctx, deny, "personality", 1, &pers) < 0)
		goto out;
	pers = SCMP_A0_32(SCMP_CMP_EQ, 0);
	if (add_rule(ctx, SCMP_ACT_ALLOW, "personality", 1, &pers) < 0)
		goto out;

	for (size_t i = 0; i < sizeof(int_rules) / sizeof(int_rules[0]); i++)
		if (add_int_rules(ctx, &int_rules[i]) < 0)
			goto out;
	if (add_socket_rules(ctx, "socket") < 0 || add_socket_rules(ctx, "socketpair") < 0)
		goto out;
	ok = 1;
out:
	if (!ok) {
		int saved = errno;
		seccomp_release(ctx);
		errno = saved;
		return NULL;
	}
	return ctx;
}

/* The memory holder's filter (see sbx_seccomp.h), or NULL (logged). */
static scmp_filter_ctx build_holder(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		log_error("seccomp: seccomp_init failed");
		return NULL;
	}
	struct scmp_arg_cmp name = SCMP_A0_32(SCMP_CMP_EQ, PR_SET_NAME);
	struct scmp_arg_cmp lowest[] = {SCMP_A0_32(SCMP_CMP_EQ, PRIO_PROCESS), SCMP_A1_32(SCMP_CMP_EQ, 0),
					SCMP_A2_32(SCMP_CMP_EQ, 19)};
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0 || add_rule(ctx, SCMP_ACT_ALLOW, "rt_sigprocmask", 0, NULL) < 0 ||
	    add_rule(ctx, SCMP_ACT_ALLOW, "close", 0, NULL) < 0 ||
	    add_rule(ctx, SCMP_ACT_ALLOW, "close_range", 0, NULL) < 0 ||
	    add_rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, &name) < 0 ||
	    add_rule(ctx, SCMP_ACT_ALLOW, "setpriority", 3, lowest) < 0 ||
	    add_rule(ctx, SCMP_ACT_ALLOW, "rt_sigsuspend", 0, NULL) < 0) {
		log_error("seccomp: the memory holder's filter%s%s", rc < 0 ? ": " : "",
			  rc < 0 ? strerror(-rc) : "");
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/* The rest of a run's filter on top of the zygote's: zygote_only refused
 * (EPERM, as in the run's), everything else left to the zygote's. NULL
 * (logged). */
static scmp_filter_ctx build_rest(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx) {
		log_error("seccomp: seccomp_init failed");
		return NULL;
	}
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	for (size_t i = 0; rc == 0 && i < sizeof(zygote_only) / sizeof(zygote_only[0]); i++)
		rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), zygote_only[i], 0, NULL) < 0 ? -1 : 0;
	if (rc < 0) {
		log_error("seccomp: the rest of the run's filter");
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/* Compiles ctx (released) into out. 0, or -1 (logged). */
static int compile(scmp_filter_ctx ctx, const char *what, struct sock_fprog *out)
{
	int fd = memfd_create("seccomp-filter", MFD_CLOEXEC);
	int rc = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
	    size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		log_error("seccomp: compiling %s: %s", what, rc < 0 ? strerror(-rc) : "bad size");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct sock_filter *prog = xmalloc((size_t)size);
	ssize_t n = pread(fd, prog, (size_t)size, 0);
	close(fd);
	if (n != (ssize_t)size) {
		log_error("seccomp: reading %s back", what);
		free(prog);
		return -1;
	}
	free(out->filter);
	out->filter = prog;
	out->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	return 0;
}

/* The programs sbx_seccomp_prepare compiled, or none: the run's filter, the
 * zygote's and the rest of the run's on top of it, the memory holder's. */
static struct sock_fprog prepared, zygote_filter, rest, holder;
/* Whether this process, or the zygote it was forked from, is under
 * zygote_filter (sbx_seccomp_load_for_runners). */
static int under_zygote_filter;

int sbx_seccomp_prepare(void)
{
	scmp_filter_ctx ctx = build(NULL, 0, 0);
	if (!ctx || compile(ctx, "the filter", &prepared) < 0)
		return -1;
	ctx = build(NULL, 0, 1);
	int zygote_ok = ctx && compile(ctx, "the zygote's filter", &zygote_filter) == 0;
	ctx = zygote_ok ? build_rest() : NULL;
	if (!ctx || compile(ctx, "the rest of the run's filter", &rest) < 0) {
		free(zygote_filter.filter);
		zygote_filter = (struct sock_fprog){0};
		log_warn("seccomp: each runner loads the whole filter");
	}
	ctx = build_holder();
	if (!ctx || compile(ctx, "the memory holder's filter", &holder) < 0)
		log_warn("seccomp: runners get no memory holder");
	return 0;
}

int sbx_seccomp_load_for_runners(void)
{
	if (!zygote_filter.filter || !rest.filter) {
		errno = ENOENT;
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &zygote_filter) < 0) {
		log_error("seccomp: loading the zygote's filter: %s", strerror(errno));
		return -1;
	}
	under_zygote_filter = 1;
	return 0;
}

const struct sock_fprog *sbx_seccomp_holder(void)
{
	return holder.filter ? &holder : NULL;
}

int sbx_seccomp_load(void)
{
	if (under_zygote_filter) {
		/* the zygote's filter is in force already: only what it allows
		 * beyond a run's is left to refuse */
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &rest) < 0) {
			log_error("seccomp: loading the rest of the filter: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	if (prepared.filter) {
		/* what seccomp_load does with libseccomp's default attributes */
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prepared) < 0) {
			log_error("seccomp: loading the filter: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	scmp_filter_ctx ctx = build(NULL, 0, 0);
	if (!ctx)
		return -1;
	int rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		log_error("seccomp: loading the filter: %s", strerror(-rc));
		errno = -rc;
		return -1;
	}
	return 0;
}

int sbx_seccomp_export(int fd)
{
	scmp_filter_ctx ctx = build(NULL, 0, 0);
	if (!ctx)
		return -1;
	int rc = seccomp_export_pfc(ctx, fd);
	seccomp_release(ctx);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}

int sbx_seccomp_try_build(const char *const *extra_allowed, size_t n)
{
	scmp_filter_ctx ctx = build(extra_allowed, n, 0);
	if (!ctx)
		return -1;
	seccomp_release(ctx);
	return 0;
}
