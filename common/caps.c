/* caps: see caps.h. The capability system calls directly (two of them), not
 * libcap. */
#include "caps.h"

#include <errno.h>
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

int caps_drop_bounding_set(void)
{
	uint32_t eff[2] = {0, 0};
	if (capget_effective(eff) < 0)
		return -1;
	int privileged = (eff[CAP_SETPCAP / 32] >> (CAP_SETPCAP % 32)) & 1;
	for (int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (r < 0 && errno == EINVAL)
			break; /* past the kernel's last capability */
		if (r <= 0)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EPERM && !privileged)
				return 0;
			return -1;
		}
	}
	return 0;
}

int caps_clear(void)
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
