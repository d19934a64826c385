/* sbx_seccomp: see sbx_seccomp.h. The deny list follows Docker's default profile and
 * bubblewrap/flatpak's socket rules, inverted to "default allow". */
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* System calls denied outright with EPERM. Names unknown to this architecture
 * (e.g. iopl on arm64) are skipped. */
static const char *const denied[] = {
	/* mounts and file system views */
	"mount", "umount", "umount2", "pivot_root", "chroot",
	"open_by_handle_at", "name_to_handle_at",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
	"mount_setattr", "quotactl", "quotactl_fd", "swapon", "swapoff",
	/* other processes' memory */
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
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

static const unsigned long clone_new_flags[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
	CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};

/* Socket families user code may open. Everything else (netlink, packet,
 * bluetooth, alg, vsock, ...) is denied. Kept in ascending order. */
static const int allowed_families[] = {AF_UNIX, AF_INET, AF_INET6};

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name,
		    unsigned int n, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
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

/* socket() and socketpair(): only allowed_families, no raw or packet sockets. */
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
	return 0;
}

static scmp_filter_ctx build(void)
{
	const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
	int ok = 0;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
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
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (add_rule(ctx, deny, denied[i], 0, NULL) < 0)
			goto out;

	/* clone3 passes its flags in memory the filter cannot read: ENOSYS makes
	 * glibc fall back to clone, whose flags we can check. */
	if (add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(clone_new_flags) / sizeof(clone_new_flags[0]); i++) {
		struct scmp_arg_cmp c =
			SCMP_A0_64(SCMP_CMP_MASKED_EQ, clone_new_flags[i], clone_new_flags[i]);
		if (add_rule(ctx, deny, "clone", 1, &c) < 0)
			goto out;
	}

	/* personality: only PER_LINUX (libseccomp allows one comparison per
	 * argument, so the 0xffffffff query is denied as well). */
	struct scmp_arg_cmp pers = SCMP_A0_32(SCMP_CMP_NE, 0);
	if (add_rule(ctx, deny, "personality", 1, &pers) < 0)
		goto out;

	/* ioctl: no typing into the terminal (TIOCSTI), no console tricks */
	static const uint32_t ioctls[] = {TIOCSTI, TIOCLINUX};
	for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++) {
		struct scmp_arg_cmp c = SCMP_A1_32(SCMP_CMP_EQ, ioctls[i]);
		if (add_rule(ctx, deny, "ioctl", 1, &c) < 0)
			goto out;
	}

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

/* The program sbx_seccomp_prepare compiled, or none. */
static struct sock_fprog prepared;

int sbx_seccomp_prepare(void)
{
	scmp_filter_ctx ctx = build();
	if (!ctx)
		return -1;
	int fd = memfd_create("seccomp-filter", MFD_CLOEXEC);
	int rc = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
	    size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		log_error("seccomp: compiling the filter: %s", rc < 0 ? strerror(-rc) : "bad size");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct sock_filter *prog = xmalloc((size_t)size);
	ssize_t n = pread(fd, prog, (size_t)size, 0);
	close(fd);
	if (n != (ssize_t)size) {
		log_error("seccomp: reading the compiled filter back");
		free(prog);
		return -1;
	}
	free(prepared.filter);
	prepared.filter = prog;
	prepared.len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	return 0;
}

int sbx_seccomp_load(void)
{
	if (prepared.filter) {
		/* what seccomp_load does with libseccomp's default attributes */
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prepared) < 0) {
			log_error("seccomp: loading the filter: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	scmp_filter_ctx ctx = build();
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
	scmp_filter_ctx ctx = build();
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
