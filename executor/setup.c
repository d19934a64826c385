/* setup: see setup.h. */
#include "setup.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char *setup_name = "sandbox setup";

void setup_set_name(const char *name)
{
	setup_name = name;
}

void setup_die(const char *step, const char *what)
{
	log_error("%s: %s%s%s: %s", setup_name, step, what ? " " : "", what ? what : "",
		  strerror(errno));
	_exit(1);
}

void setup_make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		setup_die("mkdir", path);
}

void setup_write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || close(fd) < 0)
		setup_die("write", path);
}

void setup_make_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || close(fd) < 0)
		setup_die("create mount point", path);
}

unsigned long setup_locked_flags(const char *path)
{
	static const struct { unsigned long st, ms; } map[] = {
		{ST_NOSUID, MS_NOSUID}, {ST_NODEV, MS_NODEV}, {ST_NOEXEC, MS_NOEXEC},
		{ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME},
		{ST_RELATIME, MS_RELATIME}, {ST_RDONLY, MS_RDONLY},
	};
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		setup_die("statvfs", path);
	unsigned long f = 0;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (sv.f_flag & map[i].st)
			f |= map[i].ms;
	return f;
}

void setup_pivot(void)
{
	if (chdir("root") < 0)
		setup_die("chdir", "root");
	/* pivot_root(".", "."): the old root ends up stacked on top of the new
	 * one, and unmounting "." takes it away (as runc does). */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		setup_die("pivot_root", NULL);
	if (umount2(".", MNT_DETACH) < 0)
		setup_die("detach old root", NULL);
	if (chdir("/") < 0)
		setup_die("chdir", "/");
	/* with the flags a root copied from a more privileged namespace has locked */
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | setup_locked_flags("/"),
		  NULL) < 0)
		setup_die("remount / read-only", NULL);
}

char setup_wait_for_launcher(int *sync_rd, int *sync_wr)
{
	char go;
	close(*sync_wr);
	*sync_wr = -1;
	if (read_all(*sync_rd, &go, 1) != 1) {
		errno = EPIPE;
		setup_die("wait for launcher", NULL);
	}
	return go;
}

void setup_become_root(int *sync_rd)
{
	if (setresgid(0, 0, 0) < 0)
		setup_die("setresgid(0)", NULL);
	if (setresuid(0, 0, 0) < 0)
		setup_die("setresuid(0)", NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		setup_die("PR_SET_PDEATHSIG", NULL);
	/* the launcher keeps its end open while alive: a hang-up means it died
	 * before the death signal was re-armed */
	struct pollfd p = {*sync_rd, POLLIN, 0};
	if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR))) {
		errno = EPIPE;
		setup_die("launcher gone", NULL);
	}
	close(*sync_rd);
	*sync_rd = -1;
}

int setup_write_id_map(pid_t pid, const char *file, long base)
{
	char path[64], map[128];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	snprintf(map, sizeof(map), "0 %ld 1\n%d %ld 1\n", base, SANDBOX_USER, base + SANDBOX_USER);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* one write(): the kernel takes the map in a single call only */
	ssize_t w = write(fd, map, strlen(map));
	int saved = errno;
	close(fd);
	errno = saved;
	return w == (ssize_t)strlen(map) ? 0 : -1;
}
