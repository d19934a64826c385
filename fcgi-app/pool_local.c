/* pool_local: the pool manager of the local backend. It launches `executor
 * sandbox` processes and is the parent of every launcher, so a launcher's pid
 * cannot be reused before the manager reaps it: kill() by pid is safe here.
 * Launchers die with the manager (PR_SET_PDEATHSIG), sandboxes with launchers.
 * With APP_ZYGOTE=1 (the default) the zygote (executor/zygote.h) forks the
 * sandboxes instead; they are not our children, so they are watched and killed
 * through pidfds, and they die with the zygote, which dies with the manager. */
#include "pool_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"
#include "zygote_client.h"

extern char **environ;

struct sandbox {
	char id[POOL_ID_MAX];
	pid_t pid;
	int ready_fd;      /* -1 once ready or failed */
	int ready;
	int killed;
	int64_t started_ms; /* monotonic */
	int pidfd;          /* zygote's sandboxes: kill and watch through it; else -1 */
	int exited;         /* the pidfd said so: forget it */
	int pending;        /* asked of the zygote, not answered yet: no process known */
	uint64_t seq;       /* the order it was asked in: the zygote answers in it */
};

struct manager {
	const struct config *cfg;
	struct db *db;
	struct sandbox *sandboxes;
	size_t n, cap;
	int stopping;
	int failures;         /* consecutive sandboxes that never became ready */
	int64_t next_launch;  /* monotonic ms; back-off after failures */
	struct zygote_client zyg; /* APP_ZYGOTE=1 */
	uint64_t asked;           /* requests sent to the zygote so far */
	int ready_fd;             /* announces each sandbox marked ready (pool.h) */
};

static struct sandbox *find_pid(struct manager *m, pid_t pid)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->sandboxes[i].pid == pid)
			return &m->sandboxes[i];
	return NULL;
}

static struct sandbox *find_id(struct manager *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->sandboxes[i].id, id) == 0)
			return &m->sandboxes[i];
	return NULL;
}

static void kill_sandbox(struct sandbox *s, const char *why)
{
	if (s->killed)
		return;
	log_debug("sandbox %s: destroying (%s)", s->id, why);
	s->killed = 1;
	if (s->pending)
		return; /* no process yet: killed when the zygote answers */
	if (s->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
	else
		kill(s->pid, SIGKILL);
}

/* Removes every trace of a sandbox whose launcher has been reaped. */
static void forget(struct manager *m, struct sandbox *s)
{
	char dir[512];
	if (cgroup_remove(m->cfg, s->id) < 0)
		log_warn("sandbox %s: cgroup removal failed", s->id);
	if (sbx_dir(m->cfg, s->id, dir, sizeof(dir)) == 0 && remove_tree(dir) < 0)
		log_warn("sandbox %s: could not remove %s: %s", s->id, dir, strerror(errno));
	db_sandbox_delete(m->db, s->id);
	if (s->ready_fd >= 0)
		close(s->ready_fd);
	if (s->pidfd >= 0)
		close(s->pidfd);
	*s = m->sandboxes[--m->n];
}

/* Tracks a new sandbox; its row is recorded once its pid is known. */
static struct sandbox *add_sandbox(struct manager *m, const char *id, pid_t pid, int ready_fd,
				   int pidfd)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->sandboxes = xrealloc(m->sandboxes, m->cap * sizeof(*m->sandboxes));
	}
	struct sandbox *s = &m->sandboxes[m->n++];
	memset(s, 0, sizeof(*s));
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->pid = pid;
	s->ready_fd = ready_fd;
	s->pidfd = pidfd;
	s->started_ms = monotonic_ms();
	return s;
}

/* Its row, 'starting', once its pid is known. */
static void record(struct manager *m, struct sandbox *s)
{
	log_debug("sandbox %s: launching (pid %d)", s->id, (int)s->pid);
	if (db_sandbox_insert(m->db, s->id, s->pid, now_ms()) != DB_OK)
		kill_sandbox(s, "not recorded");
}

static void launch_failed(struct manager *m)
{
	m->failures++;
	m->next_launch = monotonic_ms() + (100LL << (m->failures < 6 ? m->failures : 6));
}

/* APP_ZYGOTE=1: asks the zygote to fork the sandbox; its answer comes to
 * on_zygote_answer. Takes p[1]. */
static void spawn_by_zygote(struct manager *m, const char *id, int p[2])
{
	int rc = zc_request(&m->zyg, id, p[1]);
	close(p[1]);
	if (rc < 0) {
		close(p[0]);
		launch_failed(m);
		return;
	}
	struct sandbox *s = add_sandbox(m, id, -1, p[0], -1);
	s->pending = 1;
	s->seq = m->asked++;
}

/* The sandbox the zygote's next answer is about: the oldest pending one. */
static struct sandbox *oldest_pending(struct manager *m)
{
	struct sandbox *oldest = NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->sandboxes[i].pending && (!oldest || m->sandboxes[i].seq < oldest->seq))
			oldest = &m->sandboxes[i];
	return oldest;
}

/* Reads the zygote's answers: each gives the oldest pending sandbox its
 * process, or fails it (reap() then removes what was made for it). */
static void on_zygote_answer(struct manager *m)
{
	for (;;) {
		pid_t pid = -1;
		int pidfd = -1;
		int r = zc_reply(&m->zyg, &pid, &pidfd);
		if (r == ZC_NONE || r == ZC_BROKEN)
			return; /* broken: lose_pending() fails the rest */
		struct sandbox *s = oldest_pending(m);
		if (!s) { /* cannot happen: one request per pending sandbox */
			if (r == ZC_OK) {
				syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
				close(pidfd);
			}
			continue;
		}
		s->pending = 0;
		if (r == ZC_REFUSED) {
			log_error("sandbox %s: the zygote could not set it up (see its log)", s->id);
			s->exited = 1;
			launch_failed(m);
			continue;
		}
		s->pid = pid;
		s->pidfd = pidfd;
		if (s->killed) {
			s->killed = 0;
			kill_sandbox(s, "destroyed while it started");
		} else {
			record(m, s);
		}
	}
}

/* Once the zygote is reaped, the sandboxes it had not answered for never come
 * (the ones it made die with it): they are forgotten. Not before: killed but
 * not yet dead, it may still be making a directory or a cgroup for one. */
static void lose_pending(struct manager *m)
{
	if (m->zyg.pid > 0)
		return;
	int lost = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->sandboxes[i].pending) {
			m->sandboxes[i].pending = 0;
			m->sandboxes[i].exited = 1;
			lost++;
		}
	}
	if (lost)
		log_info("zygote: gone before it answered for %d sandboxes; they are forgotten", lost);
}

/* APP_ZYGOTE=0: an `executor sandbox` launcher of our own. Takes p[1]. */
static void spawn_launcher(struct manager *m, char *id, int p[2])
{
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(p[1], 3) < 0)
			_exit(126);
		closefrom(4);
		char *argv[] = {(char *)"executor", (char *)"sandbox", (char *)"--id", id,
				(char *)"--ready-fd", (char *)"3", NULL};
		execve(m->cfg->executor_bin, argv, environ);
		_exit(127);
	}
	close(p[1]);
	record(m, add_sandbox(m, id, pid, p[0], -1));
}

/* One new sandbox, with a fresh id and its ready pipe; with the zygote,
 * nothing until it is warm. */
static void launch(struct manager *m)
{
	if (m->cfg->zygote && m->zyg.pid <= 0) {
		if (zc_start(&m->zyg, m->cfg) < 0)
			launch_failed(m);
		return;
	}
	if (m->cfg->zygote && !m->zyg.ready)
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_error("pipe: %s", strerror(errno));
		return;
	}
	char id[POOL_ID_MAX] = "sbx-";
	random_hex(id + 4, 8);
	if (m->cfg->zygote)
		spawn_by_zygote(m, id, p);
	else
		spawn_launcher(m, id, p);
}

/* Launches sandboxes until the pool has its size; have: the rows starting or
 * ready (sweep's count), -1 when the table could not be read. The sandboxes
 * the zygote has not answered for yet have no row: they count too. The
 * sandbox of the one run under way (claimed: the runs' count), when the rest
 * of the pool is there, is replaced once the run has ended, so that making
 * its successor (a fork, namespaces, mounts, a runner) takes no CPU from the
 * run and its answer: an agent's calls, one at a time; with more runs at
 * once, as under load, at once. */
static void fill(struct manager *m, int have, int claimed)
{
	if (m->stopping || have < 0 || monotonic_ms() < m->next_launch)
		return;
	have += m->zyg.pending;
	if (claimed == 1 && have >= 1 && have + 1 >= m->cfg->pool_size)
		have++;
	for (; have < m->cfg->pool_size; have++)
		launch(m);
}

static void on_ready(struct manager *m, struct sandbox *s)
{
	char b = 0;
	ssize_t r = read(s->ready_fd, &b, 1);
	close(s->ready_fd);
	s->ready_fd = -1;
	if (r == 1 && b == 'R') {
		s->ready = 1;
		m->failures = 0;
		/* if the database is busy, sweep_row records it on a later pass */
		if (db_sandbox_set_state(m->db, s->id, "ready", now_ms()) == DB_OK)
			pool_announce(m->ready_fd);
		log_debug("sandbox %s: ready in %lld ms", s->id, (long long)(monotonic_ms() - s->started_ms));
		return;
	}
	if (s->killed || m->stopping) {
		s->killed = 1;
		return; /* destroyed before it was ready: not a failure */
	}
	launch_failed(m);
	int64_t backoff = m->next_launch - monotonic_ms();
	log_error("sandbox %s: failed to start (see the executor's log); next try in %lld ms", s->id,
		  (long long)backoff);
	kill_sandbox(s, "failed to start");
}

struct sweep {
	struct manager *m;
	int pool;    /* rows that count for the pool: starting or ready */
	int claimed; /* rows of runs under way (for at most the longest run) */
};

static void sweep_row(const struct db_sandbox *row, void *arg)
{
	struct manager *m = ((struct sweep *)arg)->m;
	struct sandbox *s = find_id(m, row->id);
	if (!s) {
		/* a row without a launcher of ours: left by an earlier manager */
		db_sandbox_delete(m->db, row->id);
		return;
	}
	if (strcmp(row->state, "used") == 0) {
		kill_sandbox(s, "used");
	} else if (strcmp(row->state, "claimed") == 0) {
		int64_t age = now_ms() - row->updated_ms;
		int64_t limit = (int64_t)(m->cfg->max_execution_timeout * 1000) + 120000;
		if ((row->claimer > 0 && kill(row->claimer, 0) < 0 && errno == ESRCH) || age > limit)
			kill_sandbox(s, "its worker is gone");
	} else if (strcmp(row->state, "starting") == 0 && s->ready && !s->killed) {
		/* ready, but the database was busy when on_ready recorded it */
		if (db_sandbox_set_state(m->db, s->id, "ready", now_ms()) == DB_OK) {
			pool_announce(m->ready_fd);
			log_info("sandbox %s: readiness recorded late (the database was busy)", s->id);
		}
	}
	if (strcmp(row->state, "starting") == 0 || strcmp(row->state, "ready") == 0)
		((struct sweep *)arg)->pool++;
	else if (strcmp(row->state, "claimed") == 0 && !s->killed &&
		 now_ms() - row->updated_ms <= (int64_t)(m->cfg->max_execution_timeout * 1000))
		((struct sweep *)arg)->claimed++; /* longer: its end was not recorded */
}

/* One read of the sandboxes table per pass: what workers marked used or left
 * claimed, and the pool's size for fill. The pool's count, or -1, and the
 * runs under way in *claimed. */
static int sweep(struct manager *m, int *claimed)
{
	struct sweep sw = {m, 0, 0};
	if (db_sandbox_each(m->db, NULL, sweep_row, &sw) != DB_OK)
		sw.pool = -1;
	int64_t limit = (int64_t)(m->cfg->sandbox_start_timeout * 1000);
	for (size_t i = 0; i < m->n; i++) {
		struct sandbox *s = &m->sandboxes[i];
		if (!s->ready && !s->killed && monotonic_ms() - s->started_ms > limit) {
			log_error("sandbox %s: not ready after %g s", s->id, m->cfg->sandbox_start_timeout);
			kill_sandbox(s, "start timeout");
		}
	}
	zc_overdue(&m->zyg);
	*claimed = sw.claimed;
	return sw.pool;
}

static void reap(struct manager *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (zc_reaped(&m->zyg, pid)) {
			if (!m->stopping)
				log_warn("zygote: exited (status %d); its sandboxes are gone", status);
			continue;
		}
		struct sandbox *s = find_pid(m, pid);
		if (s)
			forget(m, s);
	}
	lose_pending(m);
	for (size_t i = 0; i < m->n;) {
		if (m->sandboxes[i].exited)
			forget(m, &m->sandboxes[i]); /* moves the last one here */
		else
			i++;
	}
}

/* $APP_RUN_DIR/sandboxes, or NULL (logged) when the path does not fit. */
static const char *sandboxes_dir(const struct config *cfg)
{
	static char dir[512];
	if (sbx_parent_dir(cfg, dir, sizeof(dir)) < 0) {
		log_error("APP_RUN_DIR is too long");
		return NULL;
	}
	return dir;
}

/* Removes what an earlier run left: cgroups (killing what runs in them),
 * sandbox directories (and the tmpfs they were on) and rows. Then mounts a
 * fresh tmpfs for the sandboxes' directories: each sandbox makes and removes
 * a few of them and binds a socket there, which on a disk file system would
 * go through its journal every time (/run is usually a tmpfs already; this
 * makes it so wherever APP_RUN_DIR is). A failed mount is only a warning. */
static void cleanup_leftovers(struct manager *m)
{
	cgroup_remove_all(m->cfg);
	const char *dir = sandboxes_dir(m->cfg);
	if (dir) {
		umount2(dir, MNT_DETACH); /* a crashed run's tmpfs; EINVAL when none */
		if (remove_tree(dir) < 0)
			log_warn("could not remove %s: %s", dir, strerror(errno));
		if (mkdir_p(dir, 0711) < 0)
			log_error("mkdir %s: %s", dir, strerror(errno));
		else if (mount("code-interpreter-sandboxes", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			       "mode=0711,size=16m,nr_inodes=65536") < 0)
			log_warn("no tmpfs on %s (%s): sandbox directories stay on its file system", dir,
				 strerror(errno));
	}
	db_sandbox_delete_all(m->db);
}

static int local_run(const struct config *cfg, int notify_fd, int ready_fd)
{
	struct manager m = {.cfg = cfg, .ready_fd = ready_fd};
	int rc = 1;
	zc_init(&m.zyg);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	m.db = db_open(cfg->db_path);
	if (sfd < 0 || !m.db)
		goto out;
	cleanup_leftovers(&m);
	int claimed;
	int have = sweep(&m, &claimed);
	fill(&m, have, claimed);
	while (!m.stopping || m.n > 0 || m.zyg.pid > 0) {
		struct pollfd *pfd = xcalloc(2 * m.n + 3, sizeof(*pfd));
		size_t *idx = xcalloc(2 * m.n + 3, sizeof(*idx));
		nfds_t np = 0;
		pfd[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pfd[np++] = (struct pollfd){.fd = notify_fd, .events = POLLIN};
		for (size_t i = 0; i < m.n; i++) {
			if (m.sandboxes[i].ready_fd >= 0 && !m.sandboxes[i].pending) {
				idx[np] = i;
				pfd[np++] = (struct pollfd){.fd = m.sandboxes[i].ready_fd, .events = POLLIN};
			}
		}
		nfds_t first_pidfd = np;
		for (size_t i = 0; i < m.n; i++) {
			if (m.sandboxes[i].pidfd >= 0 && !m.sandboxes[i].exited) {
				idx[np] = i;
				pfd[np++] = (struct pollfd){.fd = m.sandboxes[i].pidfd, .events = POLLIN};
			}
		}
		nfds_t zyg_at = np;
		if (m.zyg.fd >= 0 && (!m.zyg.ready || m.zyg.pending > 0))
			pfd[np++] = (struct pollfd){.fd = m.zyg.fd, .events = POLLIN};
		int n = poll(pfd, np, 1000);
		if (n < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			free(pfd);
			free(idx);
			break;
		}
		/* ready pipes first: indexes are stable until reap() */
		for (nfds_t k = 2; n > 0 && k < first_pidfd; k++)
			if (pfd[k].revents)
				on_ready(&m, &m.sandboxes[idx[k]]);
		for (nfds_t k = first_pidfd; n > 0 && k < zyg_at; k++)
			if (pfd[k].revents)
				m.sandboxes[idx[k]].exited = 1;
		if (n > 0 && zyg_at < np && pfd[zyg_at].revents) {
			if (m.zyg.ready)
				on_zygote_answer(&m);
			else if (zc_on_readable(&m.zyg) < 0)
				launch_failed(&m);
		}
		if (n > 0 && pfd[1].revents) {
			char buf[256];
			while (read(notify_fd, buf, sizeof(buf)) > 0)
				;
		}
		if (n > 0 && pfd[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !m.stopping) {
					log_info("stopping: destroying %zu sandboxes", m.n);
					m.stopping = 1;
					for (size_t i = 0; i < m.n; i++)
						kill_sandbox(&m.sandboxes[i], "shutdown");
					zc_kill(&m.zyg);
				}
			}
		}
		free(pfd);
		free(idx);
		reap(&m);
		if (!m.stopping) {
			have = sweep(&m, &claimed);
			fill(&m, have, claimed);
		}
	}
	rc = 0;
out:
	if (m.db)
		db_sandbox_delete_all(m.db);
	if (m.n == 0 && sandboxes_dir(cfg))
		umount2(sandboxes_dir(cfg), MNT_DETACH); /* every sandbox is gone */
	db_close(&m.db);
	free(m.sandboxes);
	if (sfd >= 0)
		close(sfd);
	return rc;
}

static int local_endpoint(struct db *db, const struct config *cfg, const char *id, char *out, size_t cap)
{
	(void)db;
	return sbx_socket_path(cfg, id, out, cap);
}

const struct pool_backend pool_local_backend = {
	.name = "local",
	.run = local_run,
	.endpoint = local_endpoint,
};
