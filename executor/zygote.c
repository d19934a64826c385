/* zygote: see zygote.h. The only file that embeds CPython; it is linked into the
 * executor binary only (not libexecutor.a), so unit tests never load Python.
 * Protocol with the pool manager (fcgi-app/zygote_client.c) in zygote.h. */
#include "zygote.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include <unistd.h>

#include "log.h"
#include "runner.h"
#include "sandbox.h"
#include "util.h"

#define INSIDE_WORKSPACE "/workspace"
#define MODULE_NAME "_code_interpreter_runner"

/* Set before numpy & co. are imported: their thread pools would not survive
 * fork(), and the zygote must be single-threaded when it forks. */
static const char *const single_thread_env[] = {
	"OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
	"NUMEXPR_NUM_THREADS=1", "VECLIB_MAXIMUM_THREADS=1", "GOTO_NUM_THREADS=1",
};

struct child {
	pid_t pid;
	int keep_fd; /* from sbx_spawn, closed once reaped */
};

static PyObject *runner_module; /* owned for the life of the process */
static PyObject *runner_environ; /* list of str, argument of runner.serve */

/* ---- Python ------------------------------------------------------------- */

/* Entry of each sandbox's runner (runner.c calls it in the forked child, after
 * descriptors and lockdown): re-arm what exec would have given python, then
 * runner.serve(environ), which ends the process itself. */
static void run_python(void *arg)
{
	(void)arg;
	signal(SIGPIPE, SIG_IGN); /* as python's own start-up does */
	signal(SIGXFSZ, SIG_IGN);
	PyOS_AfterFork_Child(); /* locks, threading, os.register_at_fork hooks */
	PyObject *r = PyObject_CallMethod(runner_module, "serve", "(O)", runner_environ);
	if (!r)
		PyErr_Print();
	Py_XDECREF(r);
	_exit(1);
}

static int threads_of_self(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The process environment the interpreter starts with: the runner's fixed one
 * plus the single-thread settings (serve() puts the fixed one back). */
static int set_environment(void)
{
	if (clearenv() != 0)
		return -1;
	for (const char *const *e = runner_fixed_env(); *e; e++)
		if (putenv((char *)*e) != 0)
			return -1;
	for (size_t i = 0; i < sizeof(single_thread_env) / sizeof(single_thread_env[0]); i++)
		if (putenv((char *)single_thread_env[i]) != 0)
			return -1;
	return 0;
}

static int py_status(PyStatus st, const char *what)
{
	if (!PyStatus_Exception(st))
		return 0;
	log_error("zygote: %s: %s%s%s", what, st.func ? st.func : "", st.func ? ": " : "",
		  st.err_msg ? st.err_msg : "failed");
	return -1;
}

/* Initialises the interpreter the way `python3 -s -B -u` starts (the runner's
 * command line when exec'd), with the hash seed of PYTHONHASHSEED=0. */
static int py_start(const struct config *cfg)
{
	PyConfig pc;
	PyConfig_InitPythonConfig(&pc);
	pc.user_site_directory = 0; /* -s */
	pc.write_bytecode = 0;      /* -B */
	pc.buffered_stdio = 0;      /* -u */
	pc.use_hash_seed = 1;
	pc.hash_seed = 0;
	pc.parse_argv = 0;
	pc.install_signal_handlers = 1;
	int rc = -1;
	char *argv[] = {(char *)"<string>"};
	if (py_status(PyConfig_SetBytesString(&pc, &pc.program_name, cfg->python), "program name") < 0 ||
	    py_status(PyConfig_SetBytesString(&pc, &pc.executable, cfg->python), "executable") < 0 ||
	    py_status(PyConfig_SetBytesArgv(&pc, 1, argv), "argv") < 0 ||
	    py_status(Py_InitializeFromConfig(&pc), "initialisation") < 0)
		goto out;
	rc = 0;
out:
	PyConfig_Clear(&pc);
	return rc;
}

/* Loads runner.py as a module, warms it (preloads, shims), freezes the heap for
 * the garbage collector so children do not write to every object. */
static int py_warm(const struct config *cfg)
{
	char *path = xasprintf("%s/executor/python/runner.py", cfg->data_dir);
	char *code = NULL;
	int rc = -1;
	PyObject *main_mod = PyImport_AddModule("__main__"); /* borrowed */
	PyObject *globals = main_mod ? PyModule_GetDict(main_mod) : NULL; /* borrowed */
	PyObject *p = PyUnicode_DecodeFSDefault(path);
	PyObject *ws = PyUnicode_FromString(INSIDE_WORKSPACE);
	PyObject *pre = PyUnicode_FromString(cfg->preload_modules);
	if (!globals || !p || !ws || !pre || PyDict_SetItemString(globals, "_runner_path", p) < 0 ||
	    PyDict_SetItemString(globals, "_workspace", ws) < 0 ||
	    PyDict_SetItemString(globals, "_preload", pre) < 0)
		goto out;
	code = xasprintf(
		"import importlib.util, sys, gc\n"
		"_spec = importlib.util.spec_from_file_location('%s', _runner_path)\n"
		"_m = importlib.util.module_from_spec(_spec)\n"
		"sys.modules[_spec.name] = _m\n"
		"_spec.loader.exec_module(_m)\n"
		"_m.warm(_workspace, _preload)\n"
		"del _spec, _m, _runner_path, _workspace, _preload\n"
		"gc.collect()\n"
		"gc.freeze()\n",
		MODULE_NAME);
	if (PyRun_SimpleString(code) != 0)
		goto out;
	runner_module = PyImport_ImportModule(MODULE_NAME);
	if (!runner_module)
		goto out;
	runner_environ = PyList_New(0);
	for (const char *const *e = runner_fixed_env(); runner_environ && *e; e++) {
		PyObject *s = PyUnicode_FromString(*e);
		if (!s || PyList_Append(runner_environ, s) < 0) {
			Py_XDECREF(s);
			goto out;
		}
		Py_DECREF(s);
	}
	if (runner_environ)
		rc = 0;
out:
	if (rc < 0) {
		if (PyErr_Occurred())
			PyErr_Print();
		log_error("zygote: warming the runner (%s) failed", path);
	}
	Py_XDECREF(p);
	Py_XDECREF(ws);
	Py_XDECREF(pre);
	free(code);
	free(path);
	return rc;
}

/* ---- the image the sandboxes are forked from ---------------------------- */

/* Makes the warm image cheap to fork: the heap's free chunks are merged back
 * (a child's malloc would otherwise walk, and copy, the zygote's free lists),
 * and every writable anonymous region is folded into 2 MiB pages where it
 * spans them, so fork and exit copy and drop one entry per 2 MiB instead of
 * 512. A child's first write still copies only 4 KiB. Best effort: a kernel
 * without MADV_COLLAPSE keeps small pages. */
static void compact_image(void)
{
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
	malloc_trim(0);
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	const uintptr_t huge = (uintptr_t)2 << 20;
	size_t folded = 0;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		char perms[8], path[256] = "";
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s %255s", &lo, &hi, perms,
			   path) < 3)
			continue;
		if (perms[1] != 'w' || (path[0] && strcmp(path, "[heap]") != 0))
			continue;
		uintptr_t a = (lo + huge - 1) & ~(huge - 1), b = hi & ~(huge - 1);
		if (b <= a)
			continue;
		if (madvise((void *)a, b - a, MADV_HUGEPAGE) == 0 &&
		    madvise((void *)a, b - a, MADV_COLLAPSE) == 0)
			folded += b - a;
	}
	fclose(f);
	log_debug("zygote: %zu MiB of the warm image in huge pages", folded >> 20);
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
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {msg, (size_t)len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (pidfd >= 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pidfd, sizeof(int));
	}
	while (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* ---- the process -------------------------------------------------------- */

static void reap(struct child *kids, size_t *n)
{
	for (;;) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p <= 0)
			return;
		for (size_t i = 0; i < *n; i++) {
			if (kids[i].pid == p) {
				close(kids[i].keep_fd);
				kids[i] = kids[--*n];
				break;
			}
		}
	}
}

static void spawn_one(const struct config *cfg, int ctl, struct child **kids, size_t *n,
		      size_t *cap)
{
	char id[ZYGOTE_MSG_MAX];
	int ready_fd;
	int r = recv_request(ctl, id, sizeof(id), &ready_fd);
	if (r <= 0)
		return;
	pid_t pid = -1;
	int keep = -1, pidfd = -1;
	if (sbx_spawn(cfg, id, ready_fd, &pid, &keep) == 0) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			log_error("zygote: pidfd_open: %s", strerror(errno));
			kill(pid, SIGKILL);
		}
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*kids = xrealloc(*kids, *cap * sizeof(**kids));
		}
		(*kids)[(*n)++] = (struct child){pid, keep};
	}
	close(ready_fd);
	send_reply(ctl, pid, pidfd);
	if (pidfd >= 0)
		close(pidfd);
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
	prctl(PR_SET_NAME, "zygote");
	int64_t t0 = monotonic_ms();
	if (set_environment() < 0 || py_start(cfg) < 0 || py_warm(cfg) < 0)
		return 1;
	int threads = threads_of_self();
	if (threads != 1) {
		log_error("zygote: %d threads after the preloads (%s); forking would be unsafe",
			  threads, cfg->preload_modules);
		return 1;
	}
	compact_image();
	runner_set_entry(run_python, NULL);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("zygote: signalfd: %s", strerror(errno));
		return 1;
	}
	log_info("zygote: warm in %lld ms (preloaded: %s)", (long long)(monotonic_ms() - t0),
		 cfg->preload_modules[0] ? cfg->preload_modules : "nothing");
	if (write_all(ctl, "R", 1) < 0) {
		log_error("zygote: control socket: %s", strerror(errno));
		return 1;
	}
	struct child *kids = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = ctl, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
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
			reap(kids, &n);
			if (stop)
				break;
		}
		if (p[0].revents & POLLIN)
			spawn_one(cfg, ctl, &kids, &n, &cap);
		else if (p[0].revents & (POLLHUP | POLLERR))
			break; /* the pool manager closed its end */
	}
	/* the sandboxes die with us (their PR_SET_PDEATHSIG); reap what is ours */
	for (size_t i = 0; i < n; i++)
		kill(kids[i].pid, SIGKILL);
	for (size_t i = 0; i < n; i++) {
		waitpid(kids[i].pid, NULL, 0);
		close(kids[i].keep_fd);
	}
	free(kids);
	close(sfd);
	return rc;
}
