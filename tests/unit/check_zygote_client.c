/* check_zygote_client: unit tests of the pool manager's side of the zygote
 * protocol (zygote_client.c) against a fake zygote on the other end of a
 * SOCK_SEQPACKET pair: readiness, a granted sandbox (pid and pidfd), a refused
 * one, several requests answered in order, no answer yet, an overdue answer and
 * malformed answers (the last two must make the client give the zygote up). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"
#include "zygote_client.h"

struct fake {
	int fd;
	const char *reply;  /* "OK" (pid and pidfd of this process), or sent verbatim */
	char got_id[128];
	int got_fd;         /* 1 when a descriptor came with the request */
};

/* Answers one request; run on a thread, or inline once the request is sent. */
static void *fake_zygote(void *arg)
{
	struct fake *f = arg;
	char buf[128];
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {buf, sizeof(buf) - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof(u.b)};
	ssize_t n = recvmsg(f->fd, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	snprintf(f->got_id, sizeof(f->got_id), "%s", buf);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		int fd;
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
		f->got_fd = 1;
		close(fd);
	}
	char msg[64];
	int pidfd = -1;
	if (strcmp(f->reply, "OK") == 0) {
		snprintf(msg, sizeof(msg), "OK %d", (int)getpid());
		pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	} else {
		snprintf(msg, sizeof(msg), "%s", f->reply);
	}
	send_with_fds(f->fd, msg, strlen(msg), &pidfd, pidfd >= 0 ? 1 : 0);
	if (pidfd >= 0)
		close(pidfd);
	return NULL;
}

/* A ready client connected to a fake zygote (f->fd, the caller closes it). */
static void connect_fake(struct fake *f, struct zygote_client *z, const char *reply)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	memset(f, 0, sizeof(*f));
	f->fd = sv[1];
	f->reply = reply;
	zc_init(z);
	z->fd = sv[0];
	z->ready = 1; /* pid stays -1: zc_kill must not signal anything */
}

static void request(struct zygote_client *z, const char *id)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(zc_request(z, id, p[1]), 0);
	close(p[0]);
	close(p[1]);
}

/* One request answered by a fake zygote with reply: what zc_reply made of it. */
static int spawn_against(const char *reply, struct fake *f, struct zygote_client *z, pid_t *pid,
			 int *pidfd)
{
	connect_fake(f, z, reply);
	request(z, "sbx-0123456789abcdef");
	ck_assert_int_eq(z->pending, 1);
	fake_zygote(f);
	int rc = zc_reply(z, pid, pidfd);
	close(f->fd);
	return rc;
}

START_TEST(ready_byte)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	struct zygote_client z;
	zc_init(&z);
	z.fd = sv[0];
	ck_assert_int_eq(zc_on_readable(&z), 0); /* nothing yet */
	ck_assert_int_eq(write(sv[1], "R", 1), 1);
	ck_assert_int_eq(zc_on_readable(&z), 1);
	ck_assert_int_eq(z.ready, 1);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(failed_start)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	struct zygote_client z;
	zc_init(&z);
	z.fd = sv[0];
	close(sv[1]); /* died before "R" */
	ck_assert_int_eq(zc_on_readable(&z), -1);
	ck_assert_int_eq(z.ready, 0);
	ck_assert_int_eq(z.fd, -1); /* given up: the socket is closed */
}
END_TEST

START_TEST(granted)
{
	struct fake f;
	struct zygote_client z;
	pid_t pid = -1;
	int pidfd = -1;
	ck_assert_int_eq(spawn_against("OK", &f, &z, &pid, &pidfd), ZC_OK);
	ck_assert_int_eq(z.pending, 0);
	ck_assert_str_eq(f.got_id, "sbx-0123456789abcdef");
	ck_assert_int_eq(f.got_fd, 1);
	ck_assert_int_eq(pid, getpid());
	ck_assert_int_ge(pidfd, 0);
	ck_assert_int_eq(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0), 0);
	ck_assert_int_eq(z.ready, 1);
	close(pidfd);
	close(z.fd);
}
END_TEST

START_TEST(refused)
{
	struct fake f;
	struct zygote_client z;
	pid_t pid = -1;
	int pidfd = -1;
	ck_assert_int_eq(spawn_against("ERR", &f, &z, &pid, &pidfd), ZC_REFUSED);
	ck_assert_int_eq(pidfd, -1);
	ck_assert_int_eq(z.pending, 0);
	ck_assert_int_eq(z.ready, 1); /* a failed setup is not the zygote's fault */
	close(z.fd);
}
END_TEST

START_TEST(malformed)
{
	/* a pid without a pidfd, no pid, garbage, an empty message */
	static const char *const bad[] = {"OK 12", "OK x", "hello", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fake f;
		struct zygote_client z;
		pid_t pid = -1;
		int pidfd = -1;
		ck_assert_int_eq(spawn_against(bad[i], &f, &z, &pid, &pidfd), ZC_BROKEN);
		ck_assert_int_eq(pidfd, -1);
		ck_assert_int_eq(z.ready, 0); /* given up: the manager restarts it */
		ck_assert_int_eq(z.fd, -1);
		ck_assert_int_eq(z.pending, 0); /* the manager fails what it waited for */
	}
}
END_TEST

START_TEST(answers_in_order)
{
	/* three requests sent before any answer; the answers come one by one,
	 * and none is waited for */
	struct fake f;
	struct zygote_client z;
	connect_fake(&f, &z, "OK");
	pid_t pid = -1;
	int pidfd = -1;
	ck_assert_int_eq(zc_reply(&z, &pid, &pidfd), ZC_NONE); /* nothing asked */
	request(&z, "sbx-1");
	request(&z, "sbx-2");
	request(&z, "sbx-3");
	ck_assert_int_eq(z.pending, 3);
	ck_assert_int_eq(zc_reply(&z, &pid, &pidfd), ZC_NONE); /* not answered yet */
	ck_assert_int_eq(z.pending, 3);
	static const char *const ids[] = {"sbx-1", "sbx-2", "sbx-3"};
	static const char *const replies[] = {"OK", "ERR", "OK"};
	static const int want[] = {ZC_OK, ZC_REFUSED, ZC_OK};
	for (int i = 0; i < 3; i++) {
		f.reply = replies[i];
		fake_zygote(&f);
		ck_assert_str_eq(f.got_id, ids[i]);
		pidfd = -1;
		ck_assert_int_eq(zc_reply(&z, &pid, &pidfd), want[i]);
		ck_assert_int_eq(z.pending, 2 - i);
		if (pidfd >= 0)
			close(pidfd);
	}
	ck_assert_int_eq(zc_overdue(&z), 0);
	close(f.fd);
	close(z.fd);
}
END_TEST

START_TEST(overdue)
{
	struct fake f;
	struct zygote_client z;
	connect_fake(&f, &z, "OK");
	request(&z, "sbx-1");
	ck_assert_int_eq(zc_overdue(&z), 0); /* just asked */
	z.waiting_since_ms -= ZC_ANSWER_TIMEOUT_MS + 1;
	ck_assert_int_eq(zc_overdue(&z), 1);
	ck_assert_int_eq(z.fd, -1);
	ck_assert_int_eq(z.pending, 0);
	close(f.fd);
}
END_TEST

START_TEST(not_ready)
{
	struct zygote_client z;
	zc_init(&z);
	ck_assert_int_eq(zc_request(&z, "sbx-1", 0), -1);
	ck_assert_int_eq(z.pending, 0);
	ck_assert_int_eq(zc_reaped(&z, 12345), 0);
}
END_TEST

static Suite *zygote_client_suite(void)
{
	Suite *s = suite_create("zygote_client");
	TCase *tc = tcase_create("protocol");
	tcase_add_test(tc, ready_byte);
	tcase_add_test(tc, failed_start);
	tcase_add_test(tc, granted);
	tcase_add_test(tc, refused);
	tcase_add_test(tc, malformed);
	tcase_add_test(tc, answers_in_order);
	tcase_add_test(tc, overdue);
	tcase_add_test(tc, not_ready);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	SRunner *sr = srunner_create(zygote_client_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
