/* zygote_client: see zygote_client.h. Transport only: what a sandbox is and when
 * to ask for one is pool_local.c's business. */
#include "zygote_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define REPLY_TIMEOUT_MS 30000
#define MSG_MAX 128

extern char **environ;

void zc_init(struct zygote_client *z)
{
	memset(z, 0, sizeof(*z));
	z->pid = -1;
	z->fd = -1;
}

int zc_start(struct zygote_client *z, const struct config *cfg)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("zygote: socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("zygote: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(sv[1], 3) < 0)
			_exit(126);
		closefrom(4);
		char *argv[] = {(char *)"executor", (char *)"zygote", (char *)"--control-fd",
				(char *)"3", NULL};
		execve(cfg->executor_bin, argv, environ);
		_exit(127);
	}
	close(sv[1]);
	z->pid = pid;
	z->fd = sv[0];
	z->ready = 0;
	z->started_ms = monotonic_ms();
	log_debug("zygote: starting (pid %d)", (int)pid);
	return 0;
}

int zc_on_readable(struct zygote_client *z)
{
	char b = 0;
	ssize_t n = recv(z->fd, &b, 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == 1 && b == 'R') {
		z->ready = 1;
		log_info("zygote: warm after %lld ms", (long long)(monotonic_ms() - z->started_ms));
		return 1;
	}
	log_error("zygote: failed to start (see its log above)");
	zc_kill(z);
	return -1;
}

static int send_request(int fd, const char *id, int ready_wr)
{
	return send_with_fds(fd, id, strlen(id), &ready_wr, 1);
}

/* The reply: "OK <pid>" with a pidfd, or "ERR". 1 ok, 0 refused, -1 broken. */
static int recv_reply(int fd, pid_t *pid, int *pidfd)
{
	struct pollfd p = {fd, POLLIN, 0};
	int r;
	while ((r = poll(&p, 1, REPLY_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (r <= 0)
		return -1;
	char msg[MSG_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {msg, sizeof(msg) - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return -1;
	msg[n] = '\0';
	int got = -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&got, CMSG_DATA(c), sizeof(int));
	if (strcmp(msg, "ERR") == 0 && got < 0)
		return 0;
	char *end;
	long v = strncmp(msg, "OK ", 3) == 0 ? strtol(msg + 3, &end, 10) : -1;
	if (got < 0 || v <= 0 || *end) {
		if (got >= 0)
			close(got);
		return -1;
	}
	*pid = (pid_t)v;
	*pidfd = got;
	return 1;
}

int zc_spawn(struct zygote_client *z, const char *id, int ready_wr, pid_t *pid, int *pidfd)
{
	if (z->fd < 0 || !z->ready)
		return -1;
	if (send_request(z->fd, id, ready_wr) < 0) {
		log_error("zygote: sending a request: %s; restarting it", strerror(errno));
		zc_kill(z);
		return -1;
	}
	int r = recv_reply(z->fd, pid, pidfd);
	if (r < 0) {
		log_error("zygote: no valid answer for sandbox %s; restarting it", id);
		zc_kill(z);
		return -1;
	}
	if (r == 0) {
		log_error("sandbox %s: the zygote could not set it up (see its log)", id);
		return -1;
	}
	return 0;
}

void zc_kill(struct zygote_client *z)
{
	if (z->pid > 0)
		kill(z->pid, SIGKILL); /* our child, not yet reaped: the pid is ours */
	if (z->fd >= 0)
		close(z->fd); /* nothing more to hear from it; zc_reaped ends the rest */
	z->fd = -1;
	z->ready = 0;
}

int zc_reaped(struct zygote_client *z, pid_t pid)
{
	if (z->pid <= 0 || pid != z->pid)
		return 0;
	if (z->fd >= 0)
		close(z->fd);
	zc_init(z);
	return 1;
}
