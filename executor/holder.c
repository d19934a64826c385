/* holder: see holder.h. */
#include "holder.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sbx_seccomp.h"
#include "util.h"

#define SETUP_WAIT_MS 1000 /* how long the runner waits for the holder's set-up */

/* Its stack: the runner's copy of it (each runner has its own), the holder's
 * alone. */
static char stack[16384] __attribute__((aligned(64)));

/* The holder's word to the runner, in the memory they share: 1 once it is set
 * up, -1 when its filter could not be put on (it then exits). */
static int set_up;

struct setup {
	const struct sock_fprog *filter;
	int close_range_works;
};

/* Only system calls through syscall(2), and none that can fail once the filter
 * is on: the holder shares the runner's thread pointer, so errno and the rest
 * of libc's per-thread state are the runner's. */
static int hold(void *arg)
{
	const struct setup *s = arg; /* on the runner's stack: it waits for set_up */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, s->filter) != 0) {
		__atomic_store_n(&set_up, -1, __ATOMIC_RELEASE);
		syscall(SYS_exit, 0);
	}
	uint64_t all = ~(uint64_t)0; /* the kernel's mask: libc's sigfillset leaves out its own two */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all));
	if (s->close_range_works)
		syscall(SYS_close_range, 0U, ~0U, 0U);
	else
		for (int fd = 0; fd < 5; fd++) /* the runner's 0-4, all it has open here */
			syscall(SYS_close, fd);
	/* long arguments: the filter compares whole registers */
	syscall(SYS_prctl, (long)PR_SET_NAME, "runner-memory", 0L, 0L, 0L);
	__atomic_store_n(&set_up, 1, __ATOMIC_RELEASE);
	/* its exit, the teardown, never takes a CPU from the server's answer */
	syscall(SYS_setpriority, (long)PRIO_PROCESS, 0L, 19L);
	for (;;)
		syscall(SYS_rt_sigsuspend, &all, sizeof(all));
	return 0;
}

pid_t holder_start(int close_range_works)
{
	struct setup s = {sbx_seccomp_holder(), close_range_works};
	if (!s.filter)
		return 0;
	__atomic_store_n(&set_up, 0, __ATOMIC_RELEASE);
	pid_t p = clone(hold, stack + sizeof(stack), CLONE_VM | CLONE_PARENT, &s);
	if (p <= 0)
		return 0;
	int64_t deadline = monotonic_ms() + SETUP_WAIT_MS;
	while (__atomic_load_n(&set_up, __ATOMIC_ACQUIRE) == 0 && monotonic_ms() < deadline) {
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
	}
	if (__atomic_load_n(&set_up, __ATOMIC_ACQUIRE) != 1) {
		/* not filtered: it must not outlive this moment, nor we if it might */
		if (kill(p, SIGKILL) < 0 && errno != ESRCH)
			_exit(127);
		return 0;
	}
	return p;
}
