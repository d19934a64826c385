/* caps: see caps.h. The capability system calls directly (two of them), not
 * libcap. */
#include "caps.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int capget_effective(uint32_t eff[2])
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	eff[0] = d[0].effective;
	eff[1] = d[1].effective;
	return 0;
}

/* Empties the bounding set. A process without CAP_SETPCAP (a pod that already
 * runs unprivileged) cannot, and need not: no_new_privs keeps exec from
 * gaining anything the bounding set would have stopped. 0, or -1. */
static int drop_bounding_set(void)
{
	uint32_t eff[2] = {0, 0};
	if (capget_effective(eff) < 0)
		return -1;
	int privileged = (eff[CAP_SETPCAP / 32] >> (CAP_SETPCAP % 32)) & 1;
	/* dropping a capability the set lacks is no error: no read first */
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EPERM && !privileged)
			return 0;
		if (errno != EINVAL)
			return -1;
		/* past the kernel's last capability, as reading it says too */
		return prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0 && errno == EINVAL ? 0 : -1;
	}
	return 0;
}

/* Empties the permitted, effective and inheritable sets and checks it. */
static int clear_sets(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return -1;
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		if (d[i].effective || d[i].permitted || d[i].inheritable) {
			errno = EPERM;
			return -1;
		}
	}
	return 0;
}

int caps_become(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, const char **step)
{
	int change = uid != (uid_t)-1, pdeath = 0;
	if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) < 0)
		return *step = "PR_GET_PDEATHSIG", -1;
	/* groups and the bounding set need CAP_SETGID and CAP_SETPCAP: first */
	if (setgroups(n_groups, groups) < 0 && (change || errno != EPERM))
		return *step = "setgroups", -1;
	if (drop_bounding_set() < 0)
		return *step = "PR_CAPBSET_DROP", -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return *step = "PR_CAP_AMBIENT_CLEAR_ALL", -1;
	if (change) {
		if (setresgid(gid, gid, gid) < 0)
			return *step = "setresgid", -1;
		if (setresuid(uid, uid, uid) < 0)
			return *step = "setresuid", -1;
		uid_t r, e, s;
		gid_t gr, ge, gs;
		if (getresuid(&r, &e, &s) < 0 || getresgid(&gr, &ge, &gs) < 0 || r != uid || e != uid || s != uid ||
		    gr != gid || ge != gid || gs != gid) {
			errno = EPERM;
			return *step = "uid check", -1;
		}
	}
	if (clear_sets() < 0)
		return *step = "capset(empty)", -1;
	if (change && setuid(0) == 0) { /* no way back (checked once no capability is left) */
		errno = EPERM;
		return *step = "root could be regained", -1;
	}
	if (pdeath && prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0) < 0)
		return *step = "PR_SET_PDEATHSIG", -1;
	return 0;
}
