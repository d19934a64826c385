/* warm: `executor-warm --request-fd N --config-fd M`, the zygote's warm interpreter (see
 * zygote.h), started by the spawner (`executor zygote`), never by hand. The
 * only program that embeds CPython: a binary of its own, so that neither the
 * executor (every sandbox's pid 1 is a fork of it) nor the unit tests map
 * libpython, and the warm image (every runner is a fork of it) maps nothing
 * of the executor server's (libmicrohttpd and what it needs). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* the interpreter's os.register_at_fork lists (after_forkers_child) */
#define Py_BUILD_CORE 1
#include <internal/pycore_interp.h>
#undef Py_BUILD_CORE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "log.h"
#include "runner.h"
#include "sandbox.h"
#include "sbx_seccomp.h"
#include "util.h"
#include "warm_image.h"
#include "zygote.h"

#define INSIDE_WORKSPACE "/workspace"
#define MODULE_NAME "_code_interpreter_runner"

/* Set before numpy & co. are imported: their thread pools would not survive
 * fork(), and the zygote must be single-threaded when it forks. */
static const char *const single_thread_env[] = {
	"OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
	"NUMEXPR_NUM_THREADS=1", "VECLIB_MAXIMUM_THREADS=1", "GOTO_NUM_THREADS=1",
};

static PyObject *runner_module; /* owned for the life of the process */

/* ---- NumPy's global generator ------------------------------------------- */

/* The state behind the capsule of an MT19937 BitGenerator: NumPy's C
 * interface for extensions (numpy/random/bitgen.h, whose first member is the
 * state) and its MT19937 state (numpy/random/src/mt19937/mt19937.h). Relied
 * on only once np_generator_find has seen set_state write there. */
#define MT19937_WORDS 624
struct np_mt19937 {
	uint32_t key[MT19937_WORDS];
	int pos;
};

static struct np_mt19937 *np_global; /* in the warm image; NULL: reseed in Python */

/* random.Random's state (CPython's Modules/_randommodule.c), relied on only
 * once random_generator_find has seen setstate write there. */
struct py_mt19937 {
	PyObject_HEAD
	int index;
	uint32_t state[MT19937_WORDS];
};

static struct py_mt19937 *py_global; /* random._inst; NULL: its after-fork hook reseeds it */
static PyObject *py_global_seed;     /* that hook (random._inst.seed), left to C */

/* Whether key[i] == i + 1 for all i. */
static int key_is_count(const uint32_t *key)
{
	for (uint32_t i = 0; i < MT19937_WORDS; i++)
		if (key[i] != i + 1)
			return 0;
	return 1;
}

/* Once warm: where random's global generator keeps its state, so that a
 * runner refills it in C rather than running random's after-fork hook. */
static void random_generator_find(void)
{
	PyObject *inst = PyObject_CallMethod(runner_module, "random_generator", NULL);
	if (inst && inst != Py_None) {
		struct py_mt19937 *mt = (struct py_mt19937 *)inst;
		if (mt->index == MT19937_WORDS && key_is_count(mt->state) &&
		    (py_global_seed = PyObject_GetAttrString(inst, "seed")) != NULL)
			py_global = mt; /* random keeps its _inst alive */
		else
			log_warn("zygote: random's MT19937 state is not where expected; runners reseed it in Python");
	}
	if (PyErr_Occurred())
		PyErr_Clear();
	Py_XDECREF(inst);
}

/* Once warm: where NumPy's global generator keeps its state. Reseeding it in
 * C in each runner costs a page or two; NumPy's set_state, run in a forked
 * runner, copies ~100 pages of the warm image. */
static void np_generator_find(void)
{
	PyObject *cap = PyObject_CallMethod(runner_module, "numpy_generator", NULL);
	if (cap && PyCapsule_IsValid(cap, "BitGenerator")) {
		void **bitgen = PyCapsule_GetPointer(cap, "BitGenerator");
		struct np_mt19937 *mt = bitgen ? *bitgen : NULL;
		int same = mt && mt->pos == MT19937_WORDS && key_is_count(mt->key);
		np_global = same ? mt : NULL; /* the capsule's generator lives in numpy.random.mtrand */
		if (!same)
			log_warn("zygote: NumPy's MT19937 state is not where expected; runners reseed it in Python");
	}
	if (PyErr_Occurred())
		PyErr_Clear();
	Py_XDECREF(cap);
}

/* ---- the after-fork hooks ------------------------------------------------ */

/* The interpreter's after_in_child hooks, all of them (what a fork by the code
 * runs) and those a runner runs (runner.redundant_fork_hooks left out). */
static PyObject *hooks_all, *hooks_runner;

static int fork_hooks_prepare(void)
{
	PyInterpreterState *interp = PyInterpreterState_Get();
	PyObject *skip = PyObject_CallMethod(runner_module, "redundant_fork_hooks", NULL);
	if (!skip || (py_global_seed && PyList_Append(skip, py_global_seed) < 0)) {
		Py_XDECREF(skip);
		return -1;
	}
	int rc = 0;
	PyObject *all = interp->after_forkers_child; /* a list, or NULL: none registered */
	if (all && PyList_CheckExact(all)) {
		PyObject *keep = PyList_New(0);
		for (Py_ssize_t i = 0; keep && i < PyList_GET_SIZE(all); i++) {
			PyObject *hook = PyList_GET_ITEM(all, i);
			int redundant = PySequence_Contains(skip, hook);
			if (redundant < 0 || (!redundant && PyList_Append(keep, hook) < 0))
				Py_CLEAR(keep);
		}
		if (keep) {
			Py_INCREF(all);
			hooks_all = all;
			hooks_runner = keep;
			log_debug("zygote: a runner runs %zd of %zd after-fork hooks",
				  PyList_GET_SIZE(keep), PyList_GET_SIZE(all));
		} else {
			rc = -1;
		}
	}
	Py_DECREF(skip);
	return rc;
}

/* In a runner: what os.fork() does in the child, with the runner's hooks. The
 * list is put back for forks the code makes (a hook that registers another
 * while running here registers it in the runner's list only). */
static void after_fork(void)
{
	PyInterpreterState *interp = PyInterpreterState_Get();
	if (hooks_runner)
		interp->after_forkers_child = hooks_runner;
	PyOS_AfterFork_Child(); /* locks, threading state, the hooks */
	if (hooks_runner)
		interp->after_forkers_child = hooks_all;
}

/* ---- Python ------------------------------------------------------------- */

/* Entry of each sandbox's runner (runner.c calls it in the forked child, after
 * descriptors and lockdown): re-arm what exec would have given python, then
 * runner.serve(True), which ends the process itself. */
static void run_python(void *arg)
{
	(void)arg;
	signal(SIGPIPE, SIG_IGN); /* as python's own start-up does */
	signal(SIGXFSZ, SIG_IGN);
	after_fork();
	if (py_global) {
		random_bytes(py_global->state, sizeof(py_global->state));
		py_global->index = MT19937_WORDS; /* the next draw regenerates the state */
	}
	if (np_global) {
		random_bytes(np_global->key, sizeof(np_global->key));
		np_global->pos = MT19937_WORDS;
	}
	PyObject *r = PyObject_CallMethod(runner_module, "serve", "(OO)", Py_True,
					  np_global ? Py_True : Py_False);
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

/* The process environment the interpreter starts with (we were exec'd with
 * none, see zygote.h): the runner's fixed one
 * plus the single-thread settings (runner.settle puts the fixed one back). */
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

/* Loads runner.py as a module, warms it (preloads, shims), sets the runners'
 * environment (runner.settle), freezes the heap for the garbage collector so
 * children do not write to every object. */
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
	PyObject *env = PyList_New(0);
	for (const char *const *e = runner_fixed_env(); env && *e; e++) {
		PyObject *s = PyUnicode_FromString(*e);
		if (!s || PyList_Append(env, s) < 0) {
			Py_XDECREF(s);
			goto out;
		}
		Py_DECREF(s);
	}
	if (!globals || !p || !ws || !pre || !env ||
	    PyDict_SetItemString(globals, "_runner_path", p) < 0 ||
	    PyDict_SetItemString(globals, "_workspace", ws) < 0 ||
	    PyDict_SetItemString(globals, "_preload", pre) < 0 ||
	    PyDict_SetItemString(globals, "_environ", env) < 0)
		goto out;
	code = xasprintf(
		"import importlib.util, sys, gc\n"
		"_spec = importlib.util.spec_from_file_location('%s', _runner_path)\n"
		"_m = importlib.util.module_from_spec(_spec)\n"
		"sys.modules[_spec.name] = _m\n"
		"_spec.loader.exec_module(_m)\n"
		"_m.warm(_workspace, _preload)\n"
		"_m.settle(_environ)\n"
		"del _spec, _m, _runner_path, _workspace, _preload, _environ\n"
		"gc.collect()\n"
		"gc.freeze()\n",
		MODULE_NAME);
	if (PyRun_SimpleString(code) != 0)
		goto out;
	runner_module = PyImport_ImportModule(MODULE_NAME);
	if (runner_module)
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
	Py_XDECREF(env);
	free(code);
	free(path);
	return rc;
}

/* ---- the warm interpreter: runners on request ----------------------------- */

/* One request on the request socket: 1 with the five descriptors in from[] and
 * the sender's pid, 0 at EOF, -1 for a malformed message (dropped). */
static int recv_runner_request(int fd, int from[5], pid_t *sender)
{
	char buf[32];
	union {
		char buf[CMSG_SPACE(5 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EINTR ? -1 : 0;
	if (n == 0)
		return 0;
	int nfds = 0, fds[5 + 1];
	struct ucred cred = {0, 0, 0};
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t j = 0; j < k; j++) {
				int f;
				memcpy(&f, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
				if (nfds < 6)
					fds[nfds++] = f;
				else
					close(f);
			}
		} else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(cred))) {
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		}
	}
	if (nfds == 5 && cred.pid > 0 && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
	    (size_t)n == strlen(RUNNER_REQUEST) && memcmp(buf, RUNNER_REQUEST, (size_t)n) == 0) {
		memcpy(from, fds, sizeof(int) * 5);
		*sender = cred.pid;
		return 1;
	}
	for (int j = 0; j < nfds; j++)
		close(fds[j]);
	log_error("zygote: malformed runner request dropped");
	return -1;
}

/* Whether pid is pid 1 of a sandbox the spawner made: its child, pid 1 of a pid
 * namespace one level down (NSpid "<pid> 1"), running as the sandbox's root. */
static int requester_ok(const struct config *cfg, pid_t pid, pid_t spawner)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	int ppid_ok = 0, ns_ok = 0, uid_ok = 0;
	while (fgets(line, sizeof(line), f)) {
		int a, b, c;
		char extra;
		if (sscanf(line, "PPid: %d", &a) == 1)
			ppid_ok = a == (int)spawner;
		else if (strncmp(line, "NSpid:", 6) == 0)
			ns_ok = sscanf(line + 6, "%d %d %c", &a, &b, &extra) == 2 && a == (int)pid && b == 1;
		else if (sscanf(line, "Uid: %d %d %d", &a, &b, &c) == 3)
			uid_ok = sbx_root_uid_valid(cfg, a) && b == a && c == a;
	}
	fclose(f);
	if (!(ppid_ok && ns_ok && uid_ok))
		log_error("zygote: runner request from pid %d, not a sandbox's pid 1: refused", (int)pid);
	return ppid_ok && ns_ok && uid_ok;
}

/* In the runner (a fork of the warm interpreter that already sits in the
 * sandbox's pid namespace): the sandbox's cgroups, its other namespaces, then
 * runner_become. Never returns. */
static _Noreturn void enter_sandbox(const struct config *cfg, pid_t sandbox, int pidfd,
				    const int from[5])
{
	int memory = cgroup_join(cfg, sandbox);
	if (memory < 0)
		_exit(127);
	sbx_set_memory_cgroup(memory == 1);
	if (setns(pidfd, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
				 CLONE_NEWCGROUP) < 0 ||
	    chdir("/") < 0)
		_exit(127);
	runner_become(cfg, 1, from);
}

/* Forks a runner into the namespaces of the sandbox whose pid 1 is sandbox.
 * The pid namespace only applies to children, and the runner must be the
 * server's child (so that the server reaps it): a vfork'd helper, born in the
 * sandbox's pid namespace and sharing our memory (nothing is copied), forks
 * the runner and exits at once; its orphan goes to the sandbox's pid 1.
 * 0, or -1 when our own pid namespace could not be restored (fatal). */
static int make_runner(const struct config *cfg, int self_pidns, pid_t sandbox, const int from[5])
{
	int pidfd = (int)syscall(SYS_pidfd_open, sandbox, 0);
	if (pidfd < 0) {
		log_error("zygote: pidfd_open(%d): %s", (int)sandbox, strerror(errno));
		return 0;
	}
	if (setns(pidfd, CLONE_NEWPID) < 0) {
		log_error("zygote: entering the pid namespace of %d: %s", (int)sandbox, strerror(errno));
		close(pidfd);
		return 0;
	}
	pid_t helper = vfork();
	if (helper == 0) {
		pid_t runner = _Fork();
		if (runner == 0)
			enter_sandbox(cfg, sandbox, pidfd, from);
		_exit(runner < 0 ? 1 : 0);
	}
	int saved = errno, status = 0;
	if (setns(self_pidns, CLONE_NEWPID) < 0) {
		log_error("zygote: restoring the pid namespace: %s", strerror(errno));
		close(pidfd);
		return -1;
	}
	if (helper < 0)
		log_error("zygote: vfork: %s", strerror(saved));
	else if (waitpid(helper, &status, 0) == helper && status != 0)
		log_error("zygote: fork of a runner failed");
	close(pidfd);
	return 0;
}

/* The warm interpreter's life: Python, then runner requests until EOF. */
static int warm_run(const struct config *cfg, int rq, pid_t spawner)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != spawner) {
		log_error("zygote: spawner gone or PR_SET_PDEATHSIG failed");
		return 1;
	}
	prctl(PR_SET_NAME, "zygote");
	int64_t t0 = monotonic_ms();
	image_note_own_files();
	image_arenas_open();
	if (set_environment() < 0 || py_start(cfg) < 0 || py_warm(cfg) < 0)
		return 1;
	np_generator_find();
	random_generator_find();
	if (fork_hooks_prepare() < 0) {
		PyErr_Clear();
		log_warn("zygote: the after-fork hooks could not be sorted; runners run them all");
	}
	image_arenas_close();
	int threads = threads_of_self();
	if (threads != 1) {
		log_error("zygote: %d threads after the preloads (%s); forking would be unsafe",
			  threads, cfg->preload_modules);
		return 1;
	}
	if (sbx_seccomp_prepare() < 0)
		return 1;
	cgroup_probe(); /* each runner joins its sandbox's groups */
	image_merge_mappings();
	image_compact();
	image_take_free_blocks();
	runner_set_entry(run_python, NULL);
	int one = 1;
	int self_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (self_pidns < 0 || setsockopt(rq, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		log_error("zygote: request socket: %s", strerror(errno));
		return 1;
	}
	/* last: from here on this process, its vfork helpers and each runner up
	 * to its lock-down make only calls a run's filter allows, and setns; a
	 * step there that needs more (a mount, a new namespace) is refused and
	 * no sandbox gets a runner */
	if (sbx_seccomp_load_for_runners() < 0)
		log_warn("zygote: not under the runs' filter; each runner loads it whole");
	log_info("zygote: warm in %lld ms (preloaded: %s)", (long long)(monotonic_ms() - t0),
		 cfg->preload_modules[0] ? cfg->preload_modules : "nothing");
	if (write_all(rq, "R", 1) < 0)
		return 1;
	for (;;) {
		int from[5];
		pid_t sender;
		int r = recv_runner_request(rq, from, &sender);
		if (r == 0)
			return 0;
		if (r < 0)
			continue;
		int rc = requester_ok(cfg, sender, spawner) ? make_runner(cfg, self_pidns, sender, from) : 0;
		for (int i = 0; i < 5; i++)
			close(from[i]);
		if (rc < 0)
			return 1;
	}
}


/* A descriptor number from argv, or -1. */
static int fd_arg(const char *s)
{
	char *end = NULL;
	long fd = strtol(s, &end, 10);
	if (fd < 3 || fd > INT_MAX || !end || end == s || *end || fcntl((int)fd, F_GETFD) < 0)
		return -1;
	return (int)fd;
}

/* Loads cfg from the "NAME=value\0" strings the spawner wrote to fd (see
 * warm_options in zygote.c) and closes fd: the only configuration we get, our
 * environment being empty. The buffer is wiped before it is freed. 0, or -1
 * with a reason in err. */
static int config_from_fd(struct config *cfg, int fd, char *err, size_t errlen)
{
	char *buf = xmalloc(ZYGOTE_WARM_CONFIG_MAX + 1);
	size_t len = 0;
	int rc = -1;
	for (;;) {
		ssize_t n = read(fd, buf + len, ZYGOTE_WARM_CONFIG_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "reading fd %d: %s", fd, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > ZYGOTE_WARM_CONFIG_MAX) {
			snprintf(err, errlen, "more than %d bytes", ZYGOTE_WARM_CONFIG_MAX);
			goto out;
		}
	}
	buf[len] = '\0';
	size_t count = 0;
	for (size_t i = 0; i < len; i++)
		count += buf[i] == '\0';
	char **envp = xcalloc(count + 2, sizeof(*envp));
	size_t k = 0;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		envp[k++] = buf + i;
	rc = config_load(cfg, envp, err, errlen);
	free(envp);
out:
	explicit_bzero(buf, ZYGOTE_WARM_CONFIG_MAX + 1);
	free(buf);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	int rq = -1, conf = -1;
	if (argc == 5 && strcmp(argv[1], "--request-fd") == 0 && strcmp(argv[3], "--config-fd") == 0) {
		rq = fd_arg(argv[2]);
		conf = fd_arg(argv[4]);
	}
	if (rq < 0 || conf < 0 || rq == conf) {
		fprintf(stderr, "executor-warm: started by `executor zygote` only "
				"(usage: executor-warm --request-fd N --config-fd M)\n");
		return 2;
	}
	log_set_role("zygote");
	struct config cfg;
	char err[512];
	if (config_from_fd(&cfg, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "executor-warm: configuration: %s\n", err);
		return 2;
	}
	log_set_level(cfg.log_level);
	log_set_format(cfg.log_format);
	/* the spawner set our death signal before the exec: it is our parent */
	int rc = warm_run(&cfg, rq, getppid());
	config_release(&cfg);
	return rc;
}
