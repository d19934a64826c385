/* sbx_seccomp: the system call filter for sandboxed user code (libseccomp), the
 * zygote's that runners inherit (sbx_seccomp_load_for_runners), and the
 * runner's memory holder's (sbx_seccomp_holder). Owns the allow list: what is not allowed gets ENOSYS (clone3 among them), kernel attack
 * surface is denied with EPERM, any foreign ABI (i386, x32) kills the process. A
 * name libseccomp does not know fails the build. Never loads a filter without
 * no_new_privs already set by the caller (sbx_lockdown). */
#ifndef SBX_SECCOMP_H
#define SBX_SECCOMP_H

#include <linux/filter.h>
#include <stddef.h>

/* Builds the filter and loads it into the calling thread, or loads the program
 * sbx_seccomp_prepare compiled; in a process under the zygote's filter
 * (sbx_seccomp_load_for_runners), loads only the rest of it: setns refused.
 * 0, or -1 with errno set (a message naming the rule or step that failed is
 * logged). */
int sbx_seccomp_load(void);

/* Compiles the filter once, in a process that forks many sandboxed children
 * (the zygote): their sbx_seccomp_load then only hands the kernel the program,
 * instead of building it with libseccomp (hundreds of allocations, each page
 * a copy in a forked child). 0, or -1 (logged; loads then build as before). */
int sbx_seccomp_prepare(void);

/* In the zygote, once prepared: sets no_new_privs and puts on the calling
 * process the run's filter but for setns, which the zygote (entering a
 * sandbox's pid namespace) and each runner (entering the rest, before its
 * lock-down) need. Every runner forked from the zygote inherits it, compiled
 * once by the kernel, and its sbx_seccomp_load adds only a filter of a few
 * instructions refusing setns: the two together refuse and allow what the
 * run's filter does. 0, or -1 (logged; errno ENOENT when nothing was
 * prepared): runners then load the whole filter each. */
int sbx_seccomp_load_for_runners(void);

/* The memory holder's filter (holder.h), compiled by sbx_seccomp_prepare, or
 * NULL: rt_sigprocmask, close, close_range, prctl(PR_SET_NAME),
 * setpriority(PRIO_PROCESS, 0, 19) and rt_sigsuspend; any other system call,
 * or another ABI, kills the process. On top of the runner's. */
const struct sock_fprog *sbx_seccomp_holder(void);

/* Writes the filter as libseccomp pseudo code to fd, for debugging. 0 or -1. */
int sbx_seccomp_export(int fd);

/* Builds the filter with n more names allowed, and releases it: 0, or -1
 * (logged, errno EINVAL for a name libseccomp does not know). For the tests. */
int sbx_seccomp_try_build(const char *const *extra_allowed, size_t n);

#endif
