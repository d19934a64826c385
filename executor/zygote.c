/* zygote: see zygote.h. The spawner: `executor zygote`, which starts the warm
 * interpreter (executor/warm.c, a program of its own) and forks the sandboxes. */
#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"
#include "util.h"

struct child {
	pid_t pid;
	int keep_fd; /* from sbx_spawn, closed once reaped */
	int slot_fd; /* its uid slot's lock, from sbx_spawn, closed once reaped */
	int net_fd;  /* its network namespace, or -1 */
};

/* The network namespaces of sandboxes that ended, let go of together: the
 * kernel tears down the namespaces that die together in one pass, whose
 * fixed costs (a walk of the TCP tables, network device teardown) are paid per
 * pass, not per namespace. An empty namespace is held at most NETNS_HOLD_MS. */
#define NETNS_BATCH 32
#define NETNS_HOLD_MS 1000

struct dying {
	int fd[NETNS_BATCH];
	int n;
	int64_t since_ms; /* monotonic: when the first one was held */
};

static void let_go(struct dying *d)
{
	for (int i = 0; i < d->n; i++)
		close(d->fd[i]);
	d->n = 0;
}

static void hold(struct dying *d, int fd)
{
	if (fd < 0)
		return;
	if (d->n == 0)
		d->since_ms = monotonic_ms();
	d->fd[d->n++] = fd;
	if (d->n == NETNS_BATCH)
		let_go(d);
}

/* ---- control socket ----------------------------------------------------- */

/* One request: the id as the message, the ready pipe's write end attached.
 * 1 with both, 0 at EOF, -1 on a malformed message (skipped). */
static int recv_request(int fd, char *id, size_t cap, int *ready_fd)
{
	char buf[ZYGOTE_MSG_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {buf, sizeof(buf) - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	*ready_fd = -1;
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? -1 : 0;
	if (n == 0)
		return 0;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(ready_fd, CMSG_DATA(c), sizeof(int));
	buf[n] = '\0';
	if (*ready_fd < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n >= cap ||
	    !sbx_id_valid(buf)) {
		if (*ready_fd >= 0)
			close(*ready_fd);
		*ready_fd = -1;
		log_error("zygote: malformed request ignored");
		return -1;
	}
	memcpy(id, buf, (size_t)n + 1);
	return 1;
}

/* Answers "OK <pid>" with a pidfd attached, or "ERR". */
static void send_reply(int fd, pid_t pid, int pidfd)
{
	char msg[64];
	int len = pidfd >= 0 ? snprintf(msg, sizeof(msg), "OK %d", (int)pid)
			     : snprintf(msg, sizeof(msg), "ERR");
	send_with_fds(fd, msg, (size_t)len, &pidfd, pidfd >= 0 ? 1 : 0);
}

/* ---- the spawner: sandboxes on request ------------------------------------ */

/* Reaps exited children; 1 when the warm interpreter was one of them. */
static int reap(struct child *kids, size_t *n, pid_t warm, struct dying *d)
{
	int warm_gone = 0;
	for (;;) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p <= 0)
			return warm_gone;
		warm_gone |= p == warm;
		for (size_t i = 0; i < *n; i++) {
			if (kids[i].pid == p) {
				close(kids[i].keep_fd);
				close(kids[i].slot_fd);
				hold(d, kids[i].net_fd);
				kids[i] = kids[--*n];
				break;
			}
		}
	}
}

static void spawn_one(const struct config *cfg, int ctl, int rq, struct child **kids, size_t *n,
		      size_t *cap)
{
	char id[ZYGOTE_MSG_MAX];
	int ready_fd;
	int r = recv_request(ctl, id, sizeof(id), &ready_fd);
	if (r <= 0)
		return;
	pid_t pid = -1;
	int keep = -1, slot = -1, pidfd = -1;
	if (sbx_spawn(cfg, id, ready_fd, rq, &pid, &keep, &slot) == 0) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			log_error("zygote: pidfd_open: %s", strerror(errno));
			kill(pid, SIGKILL);
		}
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*kids = xrealloc(*kids, *cap * sizeof(**kids));
		}
		char ns[64];
		snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)pid);
		(*kids)[(*n)++] = (struct child){pid, keep, slot, open(ns, O_RDONLY | O_CLOEXEC)};
	}
	close(ready_fd);
	send_reply(ctl, pid, pidfd);
	if (pidfd >= 0)
		close(pidfd);
}

/* The warm interpreter's program: executor-warm beside our own binary. */
static char *warm_path(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return xasprintf("%s/executor-warm", self);
}

/* The options the warm interpreter reads (warm.c, and what a runner runs
 * before the code: the cgroup join and the lockdown's rlimits), the only ones
 * it is given. Never a secret: not APP_PIP_INDEX_URL, nothing of
 * APP_KUBERNETES_*. An option read there and missing here takes its default. */
static const char *const warm_options[] = {
	"APP_PYTHON", "APP_DATA_DIR", "APP_PRELOAD_MODULES", "APP_LOG_LEVEL", "APP_LOG_FORMAT",
	"APP_SANDBOX_UID_BASE", "APP_CGROUP_PARENT", "APP_SANDBOX_MEMORY_MB", "APP_SANDBOX_PIDS",
	"APP_SANDBOX_FILE_MB", "APP_SANDBOX_OPEN_FILES", "APP_SANDBOX_CPU_SECONDS",
};

/* A memfd (offset 0) holding "NAME=value\0" for each of warm_options that is
 * set in our environment, at most ZYGOTE_WARM_CONFIG_MAX bytes. -1 (logged). */
static int warm_config(void)
{
	int fd = memfd_create("warm-config", MFD_CLOEXEC);
	if (fd < 0) {
		log_error("zygote: memfd_create: %s", strerror(errno));
		return -1;
	}
	size_t total = 0;
	for (size_t i = 0; i < sizeof(warm_options) / sizeof(warm_options[0]); i++) {
		const char *v = getenv(warm_options[i]);
		if (!v)
			continue;
		char *line = xasprintf("%s=%s", warm_options[i], v);
		size_t len = strlen(line) + 1;
		total += len;
		int bad = total > ZYGOTE_WARM_CONFIG_MAX || write_all(fd, line, len) < 0;
		free(line);
		if (bad) {
			log_error("zygote: the warm interpreter's configuration: %s",
				  total > ZYGOTE_WARM_CONFIG_MAX ? "too large" : strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		log_error("zygote: lseek: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Starts the warm interpreter and waits for its "R". It is exec'd from a
 * descriptor (no host path in its memory), with the argv below, an empty
 * environment, the request socket as its fd 3 and warm_config() as its fd 4:
 * nothing of our environment reaches the image every runner is forked from.
 * Its pid, or -1 (logged). */
static pid_t start_warm(int *rq_out)
{
	int rq[2] = {-1, -1};
	int exe = -1, conf = -1;
	pid_t warm = -1;
	char *path = warm_path();
	if (!path || (exe = open(path, O_PATH | O_CLOEXEC)) < 0) {
		log_error("zygote: %s: %s", path ? path : "own path", strerror(errno));
		goto out;
	}
	if ((conf = warm_config()) < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rq) < 0) {
		log_error("zygote: socketpair: %s", strerror(errno));
		goto out;
	}
	pid_t self = getpid();
	warm = fork();
	if (warm == 0) {
		/* dies with us from its first instruction on */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != self)
			_exit(1);
		/* rq[1] -> 3, conf -> 4, exe -> 5 (close-on-exec), nothing else */
		int from[3] = {rq[1], conf, exe}, tmp[3];
		for (int i = 0; i < 3; i++)
			if ((tmp[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 10)) < 0)
				_exit(1);
		for (int i = 0; i < 3; i++)
			if (dup2(tmp[i], 3 + i) < 0)
				_exit(1);
		if (fcntl(5, F_SETFD, FD_CLOEXEC) < 0)
			_exit(1);
		closefrom(6);
		char *argv[] = {(char *)"executor-warm", (char *)"--request-fd", (char *)"3",
				(char *)"--config-fd", (char *)"4", NULL};
		char *envp[] = {NULL};
		fexecve(5, argv, envp);
		log_error("zygote: exec %s: %s", path, strerror(errno));
		_exit(1);
	}
	close(rq[1]);
	rq[1] = -1;
	char c = 0;
	if (warm < 0 || read(rq[0], &c, 1) != 1 || c != 'R') {
		log_error("zygote: the warm interpreter did not start");
		if (warm > 0) {
			kill(warm, SIGKILL);
			waitpid(warm, NULL, 0);
		}
		warm = -1;
		goto out;
	}
	*rq_out = rq[0];
	rq[0] = -1;
out:
	for (int i = 0; i < 2; i++)
		if (rq[i] >= 0)
			close(rq[i]);
	if (exe >= 0)
		close(exe);
	if (conf >= 0)
		close(conf);
	free(path);
	return warm;
}

int zygote_run(const struct config *cfg, int ctl)
{
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent) {
		log_error("zygote: parent gone or PR_SET_PDEATHSIG failed");
		return 1;
	}
	if (geteuid() != 0) {
		log_error("zygote: the local sandbox needs root (uid/gid maps, cgroups)");
		return 1;
	}
	prctl(PR_SET_NAME, "spawner");
	/* the time zone, read here once: each sandbox's server (a fork of this
	 * process) would read /etc/localtime at its first answer's Date header */
	tzset();
	int rq = -1;
	pid_t warm = start_warm(&rq);
	if (warm < 0)
		return 1;
	if (sbx_root_prepare(cfg) < 0)
		log_warn("zygote: each sandbox builds its own root");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || write_all(ctl, "R", 1) < 0) {
		log_error("zygote: signalfd or control socket: %s", strerror(errno));
		kill(warm, SIGKILL);
		waitpid(warm, NULL, 0);
		return 1;
	}
	struct child *kids = NULL;
	struct dying dying = {.n = 0};
	size_t n = 0, cap = 0;
	int rc = 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = ctl, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		int64_t left = dying.since_ms + NETNS_HOLD_MS - monotonic_ms();
		int ready = poll(p, 2, dying.n == 0 ? -1 : left > 0 ? (int)left : 0);
		if (dying.n && monotonic_ms() >= dying.since_ms + NETNS_HOLD_MS)
			let_go(&dying);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			log_error("zygote: poll: %s", strerror(errno));
			rc = 1;
			break;
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;
			int stop = 0;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				if (si.ssi_signo != SIGCHLD)
					stop = 1;
			if (reap(kids, &n, warm, &dying)) {
				log_error("zygote: the warm interpreter died");
				warm = -1;
				rc = 1;
				break;
			}
			if (stop)
				break;
		}
		if (p[0].revents & POLLIN)
			spawn_one(cfg, ctl, rq, &kids, &n, &cap);
		else if (p[0].revents & (POLLHUP | POLLERR))
			break; /* the pool manager closed its end */
	}
	/* the sandboxes and the warm interpreter die with us (their
	 * PR_SET_PDEATHSIG); reap what is ours */
	if (warm > 0)
		kill(warm, SIGKILL);
	for (size_t i = 0; i < n; i++)
		kill(kids[i].pid, SIGKILL);
	for (size_t i = 0; i < n; i++) {
		waitpid(kids[i].pid, NULL, 0);
		close(kids[i].keep_fd);
		close(kids[i].slot_fd);
		if (kids[i].net_fd >= 0)
			close(kids[i].net_fd);
	}
	let_go(&dying);
	if (warm > 0)
		waitpid(warm, NULL, 0);
	free(kids);
	close(sfd);
	close(rq);
	return rc;
}
