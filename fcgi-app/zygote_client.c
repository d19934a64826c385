/* zygote_client: see zygote_client.h. Transport only: what a sandbox is and when
 * to ask for one is pool_local.c's business. */
#include "zygote_client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

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

int zc_request(struct zygote_client *z, const char *id, int ready_wr)
{
	if (z->fd < 0 || !z->ready)
		return -1;
	if (send_request(z->fd, id, ready_wr) < 0) {
		log_error("zygote: sending a request: %s; restarting it", strerror(errno));
		zc_kill(z);
		return -1;
	}
	if (z->pending++ == 0)
		z->waiting_since_ms = monotonic_ms();
	return 0;
}

/* One reply: "OK <pid>" with a pidfd, or "ERR". */
int zc_reply(struct zygote_client *z, pid_t *pid, int *pidfd)
{
	if (z->fd < 0 || z->pending == 0)
		return ZC_NONE;
	char msg[MSG_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {msg, sizeof(msg) - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(z->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return ZC_NONE;
	int got = -1;
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&got, CMSG_DATA(c), sizeof(int));
	msg[n > 0 ? n : 0] = '\0';
	char *end = NULL;
	long v = strncmp(msg, "OK ", 3) == 0 ? strtol(msg + 3, &end, 10) : -1;
	int refused = strcmp(msg, "ERR") == 0 && got < 0;
	if (!refused && (got < 0 || v <= 0 || *end)) {
		if (got >= 0)
			close(got);
		log_error("zygote: no valid answer to a request; restarting it");
		zc_kill(z);
		return ZC_BROKEN;
	}
	if (--z->pending > 0)
		z->waiting_since_ms = monotonic_ms();
	if (refused)
		return ZC_REFUSED;
	*pid = (pid_t)v;
	*pidfd = got;
	return ZC_OK;
}

int zc_overdue(struct zygote_client *z)
{
	if (z->pending == 0 || monotonic_ms() - z->waiting_since_ms < ZC_ANSWER_TIMEOUT_MS)
		return 0;
	log_error("zygote: no answer in %d s; restarting it", ZC_ANSWER_TIMEOUT_MS / 1000);
	zc_kill(z);
	return 1;
}

void zc_kill(struct zygote_client *z)
{
	if (z->pid > 0)
		kill(z->pid, SIGKILL); /* our child, not yet reaped: the pid is ours */
	if (z->fd >= 0)
		close(z->fd); /* nothing more to hear from it; zc_reaped ends the rest */
	z->fd = -1;
	z->ready = 0;
	z->pending = 0; /* the caller fails what it still waited for */
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
