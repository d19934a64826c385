/* runner: see runner.h. Process and transport code only; what the request and
 * the response look like is server.c's business. */
#include "runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "holder.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"

#define READ_CHUNK 65536
#define DRAIN_MS 2000      /* after the runner is gone: how long leftover pipes may take */
#define DEATH_MS 5000      /* after SIGKILL: how long the runner may take to die */
#define REQUEST_MS 10000   /* how long the zygote may take to make a runner */

static const char *const runner_env_fixed[] = {
	"PATH=/opt/code-interpreter/bin:/usr/local/bin:/usr/bin:/bin", /* executor/bin first (INSIDE_BIN) */
	"HOME=/tmp",
	"LANG=C.UTF-8",
	"LC_ALL=C.UTF-8",
	"TZ=UTC",
	"PYTHONHASHSEED=0",
	"PYTHONDONTWRITEBYTECODE=1",
	"MPLBACKEND=Agg",
	"MPLCONFIGDIR=/tmp/.matplotlib",
	NULL,
};
#define N_FIXED (sizeof(runner_env_fixed) / sizeof(runner_env_fixed[0]) - 1)

static void (*entry_fn)(void *);
static void *entry_arg;

void runner_set_entry(void (*entry)(void *arg), void *arg)
{
	entry_fn = entry;
	entry_arg = arg;
}

const char *const *runner_fixed_env(void)
{
	return runner_env_fixed;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* In the child: never returns. from[i] becomes fd i (0..4). parent: the pid
 * that forked us, or -1 for a runner made by the zygote (see runner_become). */
static _Noreturn void exec_child(const struct config *cfg, int sandboxed, pid_t parent,
				 const int from[5], char **argv, char **envp)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	if (setsid() < 0)
		_exit(127);
	int tmp[5];
	for (int i = 0; i < 5; i++) {
		tmp[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 10);
		if (tmp[i] < 0)
			_exit(127);
	}
	for (int i = 0; i < 5; i++)
		if (dup2(tmp[i], i) < 0)
			_exit(127);
	int close_range_works = close_range(5, ~0U, 0) == 0;
	if (!close_range_works) {
		for (int fd = 5; fd < 1024; fd++)
			close(fd);
	}
	/* Never run the code unlocked: a failed lockdown ends the runner here. */
	if (sandboxed && sbx_lockdown(cfg, 1) != 0)
		_exit(127);
	if (parent > 0) {
		/* After the lockdown: a change of credentials clears the death signal. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
	} else {
		/* made by the zygote for a server (whose child it becomes, so no
		 * death signal: it would fire when the zygote's helper exits); the
		 * server learns our pid and our memory holder's first */
		int32_t ids[2] = {(int32_t)getpid(), (int32_t)holder_start(close_range_works)};
		if (write_all(4, ids, sizeof(ids)) < 0)
			_exit(127);
	}
	if (entry_fn) {
		prctl(PR_SET_NAME, "runner");
		entry_fn(entry_arg);
		_exit(127);
	}
	if (argv) /* none for runner_become: the entry is the zygote's */
		execve(argv[0], argv, envp);
	_exit(127);
}

/* Waits until fd is ready for events or the deadline passes: 1, or 0. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - monotonic_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return 0;
	}
}

/* Reads exactly n bytes from the nonblocking fd before the deadline. 0, or -1. */
static int read_full(int fd, char *buf, size_t n, int64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, buf + got, n - got);
		if (k > 0) {
			got += (size_t)k;
			continue;
		}
		if (k == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
		if (errno == EAGAIN && !wait_fd(fd, POLLIN, deadline))
			return -1;
	}
	return 0;
}

_Noreturn void runner_become(const struct config *cfg, int sandboxed, const int from[5])
{
	exec_child(cfg, sandboxed, -1, from, NULL, NULL);
}

/* Asks the zygote, through request_fd, for a runner made in our namespaces with
 * the descriptors from[] (see zygote.h), closes our copy of the ready pipe's
 * write end (so that a failure is EOF) and reads the runner's pid and its
 * memory holder's (*holder, 0 for none) from its read end. The pid, or -1
 * (logged). */
static pid_t request_runner(int request_fd, const int from[5], int rdy[2], pid_t *holder)
{
	if (send_with_fds(request_fd, RUNNER_REQUEST, strlen(RUNNER_REQUEST), from, 5) < 0) {
		log_error("runner: asking the zygote: %s", strerror(errno));
		return -1;
	}
	close_fd(&rdy[1]);
	int32_t ids[2];
	if (set_nonblock(rdy[0]) < 0 ||
	    read_full(rdy[0], (char *)ids, sizeof(ids), monotonic_ms() + REQUEST_MS) < 0 || ids[0] < 2) {
		log_error("runner: the zygote made no runner");
		return -1;
	}
	*holder = ids[1] > 1 && ids[1] != ids[0] ? (pid_t)ids[1] : 0;
	return (pid_t)ids[0];
}

int runner_start(struct runner *r, const struct config *cfg, const char *runner_dir,
		 const char *workspace, int sandboxed, int request_fd)
{
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	r->pidfd = r->out_fd = r->err_fd = r->ctl_fd = r->ready_fd = r->reply_fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	/* pid 1 of a pid namespace (a sandbox, a pod): kill(-1) reaches exactly
	 * the other processes of that namespace. */
	r->kill_all = getpid() == 1;

	int out[2] = {-1, -1}, err[2] = {-1, -1}, ctl[2] = {-1, -1}, rdy[2] = {-1, -1};
	int devnull = -1, rc = -1;
	char *script = xasprintf("%s/runner.py", runner_dir);
	char *preload = xasprintf("APP_PRELOAD_MODULES=%s", cfg->preload_modules);
	char *argv[] = {cfg->python, (char *)"-s", (char *)"-B", (char *)"-u", script,
			(char *)workspace, NULL};
	char *envp[N_FIXED + 2];
	for (size_t i = 0; i < N_FIXED; i++)
		envp[i] = (char *)runner_env_fixed[i];
	envp[N_FIXED] = preload;
	envp[N_FIXED + 1] = NULL;

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0 ||
	    pipe2(rdy, O_CLOEXEC) < 0) {
		log_error("runner: pipe: %s", strerror(errno));
		goto out;
	}
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		log_error("runner: /dev/null: %s", strerror(errno));
		goto out;
	}
	int from[5] = {devnull, out[1], err[1], ctl[0], rdy[1]};
	pid_t pid;
	if (request_fd >= 0) {
		pid = request_runner(request_fd, from, rdy, &r->holder);
		if (pid < 0)
			goto out;
	} else {
		pid_t parent = getpid();
		pid = fork();
		if (pid < 0) {
			log_error("runner: fork: %s", strerror(errno));
			goto out;
		}
		if (pid == 0)
			exec_child(cfg, sandboxed, parent, from, argv, envp);
	}
	r->pid = pid;
	r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (r->pidfd < 0) {
		log_error("runner: pidfd_open: %s", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		r->pid = -1;
		goto out;
	}
	r->out_fd = out[0];
	r->err_fd = err[0];
	r->ctl_fd = ctl[1];
	r->ready_fd = rdy[0];
	out[0] = err[0] = ctl[1] = rdy[0] = -1;
	if (set_nonblock(r->out_fd) < 0 || set_nonblock(r->err_fd) < 0 ||
	    set_nonblock(r->ctl_fd) < 0) {
		log_error("runner: fcntl: %s", strerror(errno));
		runner_release(r); /* kills and reaps it */
		goto out;
	}
	log_debug("runner: started pid %d (%s)", (int)pid, sandboxed ? "locked down" : "not sandboxed");
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&out[i]);
		close_fd(&err[i]);
		close_fd(&ctl[i]);
		close_fd(&rdy[i]);
	}
	close_fd(&devnull);
	free(script);
	free(preload);
	return rc;
}

int runner_read_ready(struct runner *r)
{
	char c;
	ssize_t n = read(r->ready_fd, &c, 1);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n == 1 && c == 'R' && set_nonblock(r->ready_fd) == 0) {
		r->reply_fd = r->ready_fd; /* kept for the answers to "imports" */
		r->ready_fd = -1;
		return 1;
	}
	close_fd(&r->ready_fd);
	return -1;
}

static char *frame(const char *msg, size_t len)
{
	char *f = xmalloc(len + 4);
	f[0] = (char)(len >> 24 & 0xff);
	f[1] = (char)(len >> 16 & 0xff);
	f[2] = (char)(len >> 8 & 0xff);
	f[3] = (char)(len & 0xff);
	memcpy(f + 4, msg, len);
	return f;
}

int runner_imports(struct runner *r, const char *request, size_t len, int timeout_ms, size_t cap,
		   char **reply)
{
	*reply = NULL;
	int64_t deadline = monotonic_ms() + timeout_ms;
	const char *why = "the runner is not listening";
	if (r->ctl_fd < 0 || r->reply_fd < 0 || len > UINT32_MAX)
		goto fail;
	char *f = frame(request, len);
	size_t sent = 0;
	why = "the runner did not take the request in time";
	while (sent < len + 4) {
		ssize_t w = write(r->ctl_fd, f + sent, len + 4 - sent);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
		    (w < 0 && errno == EAGAIN && !wait_fd(r->ctl_fd, POLLOUT, deadline)))
			break;
	}
	free(f);
	if (sent < len + 4)
		goto fail;
	why = "the runner did not answer in time";
	unsigned char head[4];
	if (read_full(r->reply_fd, (char *)head, 4, deadline) < 0)
		goto fail;
	size_t n = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
	why = "the runner's answer is too large";
	if (n > cap)
		goto fail;
	*reply = xmalloc(n + 1);
	why = "the runner did not answer in time";
	if (read_full(r->reply_fd, *reply, n, deadline) < 0)
		goto fail;
	(*reply)[n] = '\0';
	return 0;
fail:
	log_warn("runner: import check: %s (%d ms); killing the runner", why, timeout_ms);
	free(*reply);
	*reply = NULL;
	runner_kill(r);
	close_fd(&r->ctl_fd);
	close_fd(&r->reply_fd);
	return -1;
}

/* Caller holds r->lock. */
static void record(struct runner *r, pid_t p, int status)
{
	if (p == r->pid && !r->reaped) {
		r->reaped = 1;
		r->status = status;
	}
	if (p == r->holder)
		r->holder = 0; /* reaped: its pid may be reused from now on */
}

int runner_reap(struct runner *r)
{
	pthread_mutex_lock(&r->lock);
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			break;
		record(r, p, st);
	}
	int done = r->reaped;
	pthread_mutex_unlock(&r->lock);
	return done;
}

int runner_ended(struct runner *r)
{
	pthread_mutex_lock(&r->lock);
	int ended = r->reaped;
	pthread_mutex_unlock(&r->lock);
	struct pollfd p = {.fd = r->pidfd, .events = POLLIN};
	return ended || (r->pidfd >= 0 && poll(&p, 1, 0) == 1);
}

/* Kills the runner's group (and, as pid 1 of a sandbox, every other process).
 * During an execution the group is killed even after the runner was reaped: the
 * code's leftovers keep the group (and so its id) alive. */
static void kill_group(struct runner *r)
{
	if (r->pid > 0)
		kill(-r->pid, SIGKILL);
	if (r->kill_all)
		kill(-1, SIGKILL);
}

void runner_kill(struct runner *r)
{
	pthread_mutex_lock(&r->lock);
	int reaped = r->reaped;
	pthread_mutex_unlock(&r->lock);
	if (r->pid > 0 && !reaped)
		kill(-r->pid, SIGKILL);
	if (r->kill_all)
		kill(-1, SIGKILL);
}

/* Whether the runner's memory holder (pid holder) is the only process of our
 * pid namespace besides us (its pid 1): /proc lists no other. Its pid cannot
 * belong to another process yet: it is not reaped (record clears r->holder). */
static int holder_alone(pid_t holder)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int alone = 1;
	const struct dirent *e;
	while (alone && (e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (end != e->d_name && *end == '\0' && pid != 1 && pid != holder)
			alone = 0;
	}
	closedir(d);
	return alone;
}

/* Blocks until the runner and every process of its group (every process at all
 * when kill_all) that is our child has been reaped. Call after runner_kill.
 * With spare_holder, the runner's memory holder (holder.h; killed too) may
 * still be dying when this returns: it holds no descriptor and may make no
 * system call but its sleep, and its exit is the runner's memory coming down,
 * which no answer needs to wait for. */
static void wait_children(struct runner *r, int spare_holder)
{
	pid_t target = r->kill_all ? -1 : -r->pid;
	for (;;) {
		int st;
		pthread_mutex_lock(&r->lock);
		pid_t holder = spare_holder && r->kill_all ? r->holder : 0;
		pthread_mutex_unlock(&r->lock);
		pid_t p = waitpid(target, &st, holder > 0 ? WNOHANG : 0);
		if (p == 0) {
			if (holder_alone(holder))
				break;
			p = waitpid(target, &st, 0); /* someone else is still dying */
		}
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: none left */
		}
		pthread_mutex_lock(&r->lock);
		record(r, p, st);
		pthread_mutex_unlock(&r->lock);
	}
}

static void stream_take(struct run_stream *s, const char *buf, size_t n, uint64_t cap)
{
	s->total += n;
	if (s->len >= cap)
		return;
	size_t k = n;
	if (k > cap - s->len)
		k = (size_t)(cap - s->len);
	s->data = xrealloc(s->data, s->len + k);
	memcpy(s->data + s->len, buf, k);
	s->len += k;
}

/* Reads what is there; closes *fd at EOF or on error. */
static void drain(int *fd, struct run_stream *s, uint64_t cap, char *buf)
{
	for (int i = 0; i < 16 && *fd >= 0; i++) {
		ssize_t n = read(*fd, buf, READ_CHUNK);
		if (n > 0) {
			stream_take(s, buf, (size_t)n, cap);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close_fd(fd);
	}
}

void runner_execute(struct runner *r, const char *request, size_t len, double timeout,
		    uint64_t cap, struct run_result *res)
{
	memset(res, 0, sizeof(*res));
	char *buf = xmalloc(READ_CHUNK);
	double tmo = ceil(timeout * 1000.0);
	int64_t start = monotonic_ms();
	int64_t deadline = start + (tmo > 1e10 ? (int64_t)1e10 : (int64_t)tmo);
	int64_t until = 0;     /* drain or death deadline once exited / timed out */
	int exited = 0;
	size_t sent = 0;
	char *framed = frame(request, len);
	len += 4;
	close_fd(&r->reply_fd); /* the runner closes its end before the code runs */

	for (;;) {
		int64_t now = monotonic_ms();
		if (!exited && !res->timed_out && now >= deadline) {
			res->timed_out = 1;
			res->duration_ms = now - start;
			kill_group(r);
			until = now + DEATH_MS;
		}
		if (exited && r->out_fd < 0 && r->err_fd < 0)
			break;
		if ((exited || res->timed_out) && now >= until) {
			if (!exited)
				log_warn("runner: pid %d did not die after SIGKILL", (int)r->pid);
			break;
		}
		struct pollfd p[5];
		int n = 0, i_out = -1, i_err = -1, i_pid = -1, i_ctl = -1;
		if (r->out_fd >= 0) {
			i_out = n;
			p[n++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
		}
		if (r->err_fd >= 0) {
			i_err = n;
			p[n++] = (struct pollfd){.fd = r->err_fd, .events = POLLIN};
		}
		if (!exited) {
			i_pid = n;
			p[n++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
		}
		if (r->ctl_fd >= 0) {
			i_ctl = n;
			p[n++] = (struct pollfd){.fd = r->ctl_fd, .events = POLLOUT};
		}
		int64_t wait = (exited || res->timed_out ? until : deadline) - now;
		int pr = poll(p, (nfds_t)n, (int)(wait > 60000 ? 60000 : wait));
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			log_error("runner: poll: %s", strerror(errno));
			kill_group(r);
			break;
		}
		if (i_ctl >= 0 && p[i_ctl].revents) {
			ssize_t w = write(r->ctl_fd, framed + sent, len - sent);
			if (w > 0)
				sent += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == len)
				close_fd(&r->ctl_fd); /* no other request follows */
		}
		if (i_out >= 0 && p[i_out].revents)
			drain(&r->out_fd, &res->out, cap, buf);
		if (i_err >= 0 && p[i_err].revents)
			drain(&r->err_fd, &res->err, cap, buf);
		/* the pidfd is readable once the kernel made the runner a zombie:
		 * its status is the kernel's, whatever the code wrote anywhere */
		if (i_pid >= 0 && p[i_pid].revents) {
			exited = 1;
			now = monotonic_ms();
			if (!res->timed_out)
				res->duration_ms = now - start;
			/* Whatever the code left running goes now; its output still in
			 * the pipes is read until EOF or DRAIN_MS. */
			kill_group(r);
			until = now + DRAIN_MS;
		}
	}
	close_fd(&r->ctl_fd);
	close_fd(&r->out_fd);
	close_fd(&r->err_fd);
	if (exited)
		wait_children(r, 1);
	pthread_mutex_lock(&r->lock);
	res->status_known = r->reaped;
	res->status = r->status;
	pthread_mutex_unlock(&r->lock);
	free(framed);
	free(buf);
}

char *runner_stderr_so_far(struct runner *r)
{
	char *s = xcalloc(1, 4097);
	if (r->err_fd < 0)
		return s;
	size_t len = 0;
	while (len < 4096) {
		ssize_t n = read(r->err_fd, s + len, 4096 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	s[len] = '\0';
	return s;
}

void runner_release(struct runner *r)
{
	if (r->pid > 0) {
		int reaped;
		pthread_mutex_lock(&r->lock);
		reaped = r->reaped;
		pthread_mutex_unlock(&r->lock);
		if (!reaped || r->kill_all) {
			runner_kill(r);
			wait_children(r, 0);
		}
		r->pid = -1;
	}
	close_fd(&r->pidfd);
	close_fd(&r->out_fd);
	close_fd(&r->err_fd);
	close_fd(&r->ctl_fd);
	close_fd(&r->ready_fd);
	close_fd(&r->reply_fd);
}

void run_result_release(struct run_result *res)
{
	free(res->out.data);
	free(res->err.data);
	res->out.data = res->err.data = NULL;
}
