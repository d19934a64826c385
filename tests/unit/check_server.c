/* Unit tests for the executor server (executor/server.c, runner.c, workspace.c
 * and executor/python/): a real server_run in a child, not sandboxed, on a
 * temporary unix socket and workspace, spoken to over HTTP with libcurl. */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "executor_client.h"
#include "log.h"
#include "package_delivery.h"
#include "package_names.h"
#include "server.h"
#include "util.h"

#define RUNNER_DIR DATADIR "/executor/python"

struct srv {
	char dir[64];      /* everything of one test lives here */
	char ws[128];
	char sock[128];
	char pkgs[128];    /* the packages directory of a pod's server */
	int with_packages; /* the next server gets --packages pkgs */
	pid_t pid;
	int ready_rd;
	const char *token; /* EXECUTOR_TOKEN of the next server, or NULL */
};

static struct srv S;

static void setup(void)
{
	memset(&S, 0, sizeof(S));
	S.pid = -1;
	S.ready_rd = -1;
	snprintf(S.dir, sizeof(S.dir), "/tmp/check_server.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(S.dir));
	snprintf(S.ws, sizeof(S.ws), "%s/ws", S.dir);
	snprintf(S.sock, sizeof(S.sock), "%s/executor.sock", S.dir);
	snprintf(S.pkgs, sizeof(S.pkgs), "%s/packages", S.dir);
	ck_assert_int_eq(mkdir(S.ws, 0755), 0);
	ck_assert_int_eq(mkdir(S.pkgs, 0777), 0);
	ck_assert_int_eq(chmod(S.pkgs, 0777), 0); /* an emptyDir's mode */
}

/* Starts server_run in a child. extra_env: APP_* settings; runner_dir NULL for
 * the project's runner. Does not wait for readiness. */
static const char *preload = ""; /* APP_PRELOAD_MODULES of the next server */
static int sandboxed = 0;
/* The next server starts in a memory group of its own with these limits, as
 * a pod's server does (NULL: in the test's group). */
#define SERVER_GROUP_PARENT "code-interpreter-unittest"
static const struct cgroup_limits *server_group;
static char server_group_id[64];
/* The next server runs as a pod's: as uid 1000, its code too, and dumpable
 * as a process is after its exec (set-up as root would have made it not). */
static int pod_user;
/* The next server is pid 1 of a pid namespace of its own, as in a pod or a
 * sandbox (needs root). */
static int as_pid1;

static void srv_spawn(const char *runner_dir, char *const *extra_env)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t parent = getpid();
	/* raw clone: like fork, into a new pid namespace */
	pid_t pid = as_pid1 ? (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL) : fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed test leaves no server */
		if (getppid() != (as_pid1 ? 0 : parent)) /* a parent outside the namespace is pid 0 */
			_exit(99);
		close(p[0]);
		log_set_level("warn");
		char *none[] = {NULL};
		struct config cfg;
		char err[256];
		if (config_load(&cfg, extra_env ? extra_env : none, err, sizeof(err)) < 0) {
			fprintf(stderr, "config: %s\n", err);
			_exit(98);
		}
		free(cfg.preload_modules);
		cfg.preload_modules = xstrdup(preload); /* "" by default: fast start */
		if (server_group) {
			free(cfg.cgroup_parent);
			cfg.cgroup_parent = xstrdup(SERVER_GROUP_PARENT);
			if (cgroup_setup(&cfg, server_group_id, server_group, getpid()) != 1)
				_exit(96);
		}
		if (S.token && setenv("EXECUTOR_TOKEN", S.token, 1) < 0)
			_exit(97);
		if (pod_user && (setgroups(0, NULL) < 0 || setresgid(1000, 1000, 1000) < 0 ||
				 setresuid(1000, 1000, 1000) < 0 || prctl(PR_SET_DUMPABLE, 1L, 0L, 0L, 0L) < 0))
			_exit(95);
		struct server_options o = {
			.cfg = &cfg,
			.socket_path = S.sock,
			.workspace = S.ws,
			.packages_dir = S.with_packages ? S.pkgs : NULL,
			.runner_dir = runner_dir ? runner_dir : RUNNER_DIR,
			.sandboxed = sandboxed,
			.ready_fd = p[1],
			.runner_request_fd = -1,
		};
		int rc = server_run(&o);
		config_release(&cfg);
		exit(rc); /* not _exit: LeakSanitizer checks the server too */
	}
	close(p[1]);
	S.pid = pid;
	S.ready_rd = p[0];
}

static void srv_start_env(char *const *extra_env)
{
	srv_spawn(NULL, extra_env);
	char c = 0;
	ck_assert_int_eq(read(S.ready_rd, &c, 1), 1);
	ck_assert_int_eq(c, 'R');
}

static void srv_start(void)
{
	srv_start_env(NULL);
}

/* Stops the server; returns its exit status (wait status). */
static int srv_stop(void)
{
	int st = -1;
	if (S.pid > 0) {
		kill(S.pid, SIGTERM);
		ck_assert_int_eq(waitpid(S.pid, &st, 0), S.pid);
		S.pid = -1;
	}
	return st;
}

static void teardown(void)
{
	int st = srv_stop();
	if (st != -1)
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server ended with status %d", st);
	if (S.ready_rd >= 0)
		close(S.ready_rd);
	remove_tree(S.dir);
}

/* ---- HTTP -------------------------------------------------------------- */

struct resp {
	long status;
	char *body;
	size_t len;
	char www_authenticate[64]; /* the header's value, "" without one */
};

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	static const char name[] = "WWW-Authenticate:";
	size_t len = size * n;
	if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
		const char *v = p + sizeof(name) - 1;
		size_t vlen = len - (sizeof(name) - 1);
		while (vlen && (*v == ' ' || v[vlen - 1] == '\r' || v[vlen - 1] == '\n')) {
			if (*v == ' ') {
				v++;
				vlen--;
			} else {
				vlen--;
			}
		}
		snprintf(r->www_authenticate, sizeof(r->www_authenticate), "%.*s", (int)vlen, v);
	}
	return len;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct resp *r = ud;
	r->body = xrealloc(r->body, r->len + size * n + 1);
	memcpy(r->body + r->len, p, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static struct resp http_h(const char *method, const char *path, const char *body, size_t blen,
			  const char *header)
{
	struct resp r = {0};
	r.body = xstrdup("");
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	char *url = xasprintf("http://localhost%s", path);
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	if (header)
		h = curl_slist_append(h, header);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, S.sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	/* a server that refuses a body from its headers answers and closes while
	 * the client may still be sending it: the answer counts */
	ck_assert_msg(rc == CURLE_OK || (rc == CURLE_SEND_ERROR && r.status >= 400), "%s %s: %s", method, path,
		      curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(url);
	return r;
}

static struct resp http(const char *method, const char *path, const char *body, size_t blen)
{
	return http_h(method, path, body, blen, NULL);
}

static long put(const char *path, const char *data)
{
	struct resp r = http("PUT", path, data, strlen(data));
	free(r.body);
	return r.status;
}

static long get_status(const char *path)
{
	struct resp r = http("GET", path, NULL, 0);
	free(r.body);
	return r.status;
}

/* POSTs a raw body to /execute; returns the status, *out the parsed body. */
static long execute_raw(const char *body, json_object **out)
{
	struct resp r = http("POST", "/execute", body, strlen(body));
	*out = json_tokener_parse(r.body);
	ck_assert_msg(*out != NULL, "response is not JSON: %s", r.body);
	free(r.body);
	return r.status;
}

/* Runs code (env: JSON object text or NULL; timeout <= 0: none given) and
 * asserts 200. The caller puts the result. */
/* POST /execute; subdirectories: the listing also goes below the top level. */
static json_object *run_listing(const char *code, const char *env, double timeout, int subdirectories)
{
	json_object *req = json_object_new_object();
	json_object_object_add(req, "source_code", json_object_new_string(code));
	if (subdirectories)
		json_object_object_add(req, "include_subdirectories", json_object_new_boolean(1));
	if (env)
		json_object_object_add(req, "env", json_tokener_parse(env));
	if (timeout > 0)
		json_object_object_add(req, "timeout", json_object_new_double(timeout));
	json_object *res;
	long st = execute_raw(json_object_to_json_string(req), &res);
	json_object_put(req);
	ck_assert_msg(st == 200, "execute: %ld %s", st, json_object_to_json_string(res));
	return res;
}

static json_object *run(const char *code, const char *env, double timeout)
{
	return run_listing(code, env, timeout, 0);
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
	return json_object_get_string(v);
}

static int64_t num(json_object *o, const char *key)
{
	json_object *v;
	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
	return json_object_get_int64(v);
}

/* The files list joined by ",". */
static char *files(json_object *o)
{
	json_object *a;
	ck_assert(json_object_object_get_ex(o, "files", &a));
	ck_assert(json_object_is_type(a, json_type_array));
	char *s = xstrdup("");
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		char *t = xasprintf("%s%s%s", s, i ? "," : "", json_object_get_string(json_object_array_get_idx(a, i)));
		free(s);
		s = t;
	}
	return s;
}

static int ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);
	return a >= b && memcmp(s + a - b, tail, b) == 0;
}

/* Whether the test runs as root; if not, says that it is skipped and why. */
static int have_root(const char *test, const char *why)
{
	if (geteuid() == 0)
		return 1;
	fprintf(stderr, "check_server: %s skipped: needs root (%s)\n", test, why);
	return 0;
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(hello_world)
{
	srv_start();
	struct resp h = http("GET", "/healthz", NULL, 0);
	ck_assert_int_eq(h.status, 200);
	ck_assert_str_eq(h.body, "{\"status\":\"ok\"}");
	free(h.body);
	json_object *r = run("print('hello')", NULL, 0);
	ck_assert_str_eq(str(r, "stdout"), "hello\n");
	ck_assert_str_eq(str(r, "stderr"), "");
	ck_assert_int_eq(num(r, "exit_code"), 0);
	ck_assert_int_eq(num(r, "signal"), 0);
	ck_assert_int_eq(num(r, "stdout_bytes"), 6);
	ck_assert(!json_object_get_boolean(json_object_object_get(r, "timed_out")));
	ck_assert(!json_object_object_get_ex(r, "memory_limit_hit", NULL));
	char *f = files(r);
	ck_assert_str_eq(f, "");
	free(f);
	json_object_put(r);
}
END_TEST

/* A pod's memory limit is its own group's: the server says when it killed the
 * code, and what the limit is, so the service can say so too. */
START_TEST(memory_limit_of_its_group_reported)
{
	if (!have_root("memory_limit_of_its_group_reported", "a memory group"))
		return;
	struct cgroup_limits limits = {256u << 20, 200, 0};
	snprintf(server_group_id, sizeof(server_group_id), "unit-server-%d", (int)getpid());
	server_group = &limits;
	srv_start();
	server_group = NULL;
	json_object *r = run("a = []\nfor _ in range(40):\n    a.append(bytearray(b'\\x01') * (50 << 20))\n"
			     "print('no limit')", NULL, 30);
	srv_stop();
	struct config cfg;
	char err[256], *env[] = {(char *)"APP_CGROUP_PARENT=" SERVER_GROUP_PARENT, NULL};
	ck_assert_int_eq(config_load(&cfg, env, err, sizeof(err)), 0);
	cgroup_remove(&cfg, server_group_id);
	config_release(&cfg);
	ck_assert_str_eq(str(r, "stdout"), "");
	ck_assert_int_eq(num(r, "exit_code"), -9);
	ck_assert(json_object_get_boolean(json_object_object_get(r, "memory_limit_hit")));
	ck_assert_int_eq(num(r, "memory_limit_bytes"), 256 << 20);
	json_object_put(r);
}
END_TEST

START_TEST(script_semantics)
{
	srv_start();
	const char *code =
		"import sys, os\n"
		"print(__name__, sys.argv, os.getcwd() == os.path.realpath(sys.path[0]))\n"
		"def f():\n    return 1\n"
		"import inspect\nprint(inspect.getsource(f).strip().splitlines()[0])\n"
		"print(sorted(int(x) for x in os.listdir('/proc/self/fd')))\n";
	json_object *r = run(code, NULL, 0);
	ck_assert_str_eq(str(r, "stdout"), "__main__ ['<string>'] True\ndef f():\n[0, 1, 2, 3]\n");
	ck_assert_str_eq(str(r, "stderr"), "");
	json_object_put(r);
}
END_TEST

START_TEST(put_then_code_reads_it)
{
	srv_start();
	ck_assert_int_eq(put("/workspace/data/in.txt", "abc"), 201);
	struct stat st;
	char *p = xasprintf("%s/data/in.txt", S.ws);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0644);
	free(p);
	json_object *r = run("print(open('data/in.txt').read())", NULL, 0);
	ck_assert_str_eq(str(r, "stdout"), "abc\n");
	char *f = files(r);
	ck_assert_str_eq(f, ""); /* unchanged input is not listed */
	free(f);
	json_object_put(r);
}
END_TEST

START_TEST(new_files_listed_top_level_only)
{
	srv_start();
	json_object *r = run("import os\nos.makedirs('out/deep')\n"
			     "open('out/deep/a.csv', 'w').write('x,y\\n1,2\\n')\n"
			     "open('b.txt', 'w').write('b')\n", NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 0);
	char *f = files(r);
	ck_assert_str_eq(f, "/workspace/b.txt");
	free(f);
	json_object_put(r);
}
END_TEST

START_TEST(new_files_listed_nested)
{
	srv_start();
	json_object *r = run_listing("import os\nos.makedirs('out/deep')\n"
				     "open('out/deep/a.csv', 'w').write('x,y\\n1,2\\n')\n"
				     "open('b.txt', 'w').write('b')\n", NULL, 0, 1);
	ck_assert_int_eq(num(r, "exit_code"), 0);
	char *f = files(r);
	ck_assert_str_eq(f, "/workspace/b.txt,/workspace/out/deep/a.csv");
	free(f);
	json_object_put(r);
	struct resp g = http("GET", "/workspace/out/deep/a.csv", NULL, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.body, "x,y\n1,2\n");
	free(g.body);
}
END_TEST

START_TEST(changed_input_listed)
{
	srv_start();
	ck_assert_int_eq(put("/workspace/a.txt", "a"), 201);
	ck_assert_int_eq(put("/workspace/b.txt", "b"), 201);
	ck_assert_int_eq(put("/workspace/c.txt", "c"), 201);
	json_object *r = run("open('a.txt', 'a').write('more')\n"
			     "import os\nos.remove('c.txt')\nopen('c.txt', 'w').write('c')\n", NULL, 0);
	char *f = files(r);
	/* c.txt has the same content but is a new file */
	ck_assert_str_eq(f, "/workspace/a.txt,/workspace/c.txt");
	free(f);
	json_object_put(r);
}
END_TEST

START_TEST(special_files_skipped)
{
	srv_start();
	json_object *r = run("import os\nos.symlink('/etc/passwd', 'link')\nos.mkfifo('fifo')\n"
			     "os.symlink('/etc', 'dirlink')\nos.mkdir('d')\nos.symlink('/etc/hostname', 'd/l')\n"
			     "open('real.txt', 'w').write('r')\n", NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 0);
	char *f = files(r);
	ck_assert_str_eq(f, "/workspace/real.txt");
	free(f);
	json_object_put(r);
	ck_assert_int_eq(get_status("/workspace/link"), 404);
	ck_assert_int_eq(get_status("/workspace/fifo"), 404);
	ck_assert_int_eq(get_status("/workspace/dirlink/passwd"), 404);
	ck_assert_int_eq(get_status("/workspace/d/l"), 404);
	ck_assert_int_eq(get_status("/workspace/d"), 404);
	ck_assert_int_eq(get_status("/workspace/real.txt"), 200);
}
END_TEST

START_TEST(path_traversal_refused)
{
	/* a symlink to outside the workspace, there before the server starts */
	char *link = xasprintf("%s/out", S.ws);
	ck_assert_int_eq(symlink(S.dir, link), 0);
	free(link);
	srv_start();
	const char *bad[] = {"/workspace/../x", "/workspace/a/../../x", "/workspace/..%2Fx",
			     "/workspace/%2e%2e/x", "/workspace/", "/workspace", "/workspace//x",
			     "/workspace/a%00b", "/workspace/./x", "/workspace/a/", "/workspace/%zz",
			     "/workspace/%2", "/workspace/out/evil", "/workspace/out"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_msg(put(bad[i], "evil") == 400, "PUT %s", bad[i]);
		ck_assert_msg(get_status(bad[i]) == 404, "GET %s", bad[i]);
	}
	char *p = xasprintf("%s/evil", S.dir);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	p = xasprintf("%s/x", S.dir);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	ck_assert_int_eq(get_status("/workspace/../executor.sock"), 404);
	/* an escaped slash is just a separator */
	ck_assert_int_eq(put("/workspace/a%2Fb", "ok"), 201);
	struct resp g = http("GET", "/workspace/a/b", NULL, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.body, "ok");
	free(g.body);
}
END_TEST

START_TEST(traceback_like_python)
{
	srv_start();
	json_object *r = run("0/0", NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 1);
	const char *e = str(r, "stderr");
	ck_assert_msg(strncmp(e, "Traceback (most recent call last):\n"
				 "  File \"<string>\", line 1, in <module>\n    0/0\n", 74) == 0, "%s", e);
	ck_assert_msg(ends_with(e, "\nZeroDivisionError: division by zero\n"), "%s", e);
	ck_assert_ptr_null(strstr(e, "runner"));
	json_object_put(r);
}
END_TEST

START_TEST(syntax_error_like_python)
{
	srv_start();
	json_object *r = run("print('ok')\nx = (\n", NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 1);
	const char *e = str(r, "stderr");
	ck_assert_msg(strncmp(e, "  File \"<string>\", line 2\n", 26) == 0, "%s", e);
	ck_assert_msg(strstr(e, "SyntaxError: ") != NULL, "%s", e);
	ck_assert_ptr_null(strstr(e, "runner"));
	ck_assert_str_eq(str(r, "stdout"), "");
	json_object_put(r);
}
END_TEST

START_TEST(sys_exit_status)
{
	srv_start();
	json_object *r = run("import sys\nprint('x')\nsys.exit(7)", NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 7);
	ck_assert_str_eq(str(r, "stdout"), "x\n");
	ck_assert_str_eq(str(r, "stderr"), "");
	json_object_put(r);
}
END_TEST

START_TEST(sys_exit_message)
{
	srv_start();
	json_object *r = run("import sys, atexit\natexit.register(print, 'bye')\nsys.exit('no good')",
			     NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 1);
	ck_assert_str_eq(str(r, "stderr"), "no good\n");
	ck_assert_str_eq(str(r, "stdout"), "bye\n");
	json_object_put(r);
}
END_TEST

START_TEST(memory_error_message)
{
	srv_start();
	json_object *r = run("raise MemoryError()", NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 1);
	ck_assert_str_eq(str(r, "stderr"), "MemoryError: the sandbox's memory limit was reached\n");
	json_object_put(r);
}
END_TEST

START_TEST(killed_by_signal)
{
	srv_start();
	json_object *r = run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), -15);
	ck_assert_int_eq(num(r, "signal"), 15);
	json_object_put(r);
}
END_TEST

START_TEST(timeout_kills)
{
	srv_start();
	json_object *r = run("print('before', flush=True)\nwhile True:\n    pass\n", NULL, 0.5);
	ck_assert_int_eq(num(r, "exit_code"), -1);
	ck_assert(json_object_get_boolean(json_object_object_get(r, "timed_out")));
	ck_assert_str_eq(str(r, "stdout"), "before\n");
	ck_assert_int_eq(num(r, "signal"), 9);
	ck_assert_str_eq(str(r, "stderr"), "Execution timed out: the time limit of 0.5 seconds was hit.\n");
	ck_assert_int_ge(num(r, "duration_ms"), 500);
	ck_assert_int_lt(num(r, "duration_ms"), 5000);
	json_object_put(r);
}
END_TEST

START_TEST(output_cap_marker)
{
	char *env[] = {(char *)"APP_MAX_OUTPUT_BYTES=1000", NULL};
	srv_start_env(env);
	json_object *r = run("import sys\nprint('x' * 5000)\nsys.stderr.write('e' * 999)", NULL, 0);
	char *want = xmalloc(1100);
	memset(want, 'x', 1000);
	const char marker[] = "\n[output truncated: 4001 bytes dropped]\n";
	memcpy(want + 1000, marker, sizeof(marker));
	ck_assert_str_eq(str(r, "stdout"), want);
	ck_assert_int_eq(num(r, "stdout_bytes"), 5001);
	ck_assert_int_eq(strlen(str(r, "stderr")), 999); /* under the cap: no marker */
	ck_assert_int_eq(num(r, "stderr_bytes"), 999);
	free(want);
	json_object_put(r);
}
END_TEST

START_TEST(invalid_utf8_repaired)
{
	srv_start();
	json_object *r = run("import sys\nsys.stdout.buffer.write(b'a\\xffb\\x00c\\n')\n"
			     "sys.stderr.buffer.write(b'\\xc3')", NULL, 0);
	ck_assert_str_eq(str(r, "stdout"), "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\n");
	ck_assert_str_eq(str(r, "stderr"), "\xef\xbf\xbd");
	ck_assert_int_eq(num(r, "stdout_bytes"), 6);
	json_object_put(r);
}
END_TEST

START_TEST(env_reaches_code_only)
{
	setenv("SECRET_FROM_TEST", "leak", 1);
	srv_start();
	json_object *r = run("import os\nprint(os.environ['FOO'])\nprint(os.environ.get('SECRET_FROM_TEST'))\n"
			     "print(os.environ['HOME'], os.environ['LANG'], os.environ.get('APP_PRELOAD_MODULES'))\n"
			     "print(hash('abc') == hash('abc'), os.environ['PYTHONHASHSEED'])",
			     "{\"FOO\": \"bar baz\", \"EMPTY\": \"\"}", 0);
	ck_assert_str_eq(str(r, "stdout"), "bar baz\nNone\n/tmp C.UTF-8 None\nTrue 0\n");
	json_object_put(r);
}
END_TEST

START_TEST(bad_bodies_refused)
{
	srv_start();
	const char *bad[] = {
		"{\"source_code\": \"1\", \"env\": {\"LD_PRELOAD\": \"/x.so\"}}",
		"{\"source_code\": \"1\", \"env\": {\"PYTHONPATH\": \"/x\"}}",
		"{\"source_code\": \"1\", \"env\": {\"A=B\": \"x\"}}",
		"{\"source_code\": \"1\", \"env\": {\"\": \"x\"}}",
		"{\"source_code\": \"1\", \"env\": {\"A\\u0000B\": \"x\"}}",
		"{\"source_code\": \"1\", \"env\": {\"A\": \"x\\u0000y\"}}",
		"{\"source_code\": \"1\", \"env\": {\"A\": 1}}",
		"{\"source_code\": \"1\", \"env\": []}",
		"{\"source_code\": \"1\", \"timeout\": 0}",
		"{\"source_code\": \"1\", \"timeout\": -1}",
		"{\"source_code\": \"1\", \"timeout\": \"5\"}",
		"{\"source_code\": \"1\", \"other\": 1}",
		"{\"source_code\": 1}",
		"{\"env\": {}}",
		"[\"source_code\"]",
		"{\"source_code\": \"1\"} x",
		"{\"source_code\": \"1\",}",
		"{\"source_code\": \"\xff\"}",
		"not json",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		json_object *r;
		long st = execute_raw(bad[i], &r);
		ck_assert_msg(st == 400, "%s: %ld", bad[i], st);
		ck_assert_ptr_nonnull(str(r, "error"));
		json_object_put(r);
	}
	/* none of them used up the execution */
	json_object *r = run("print(1)", NULL, 0);
	ck_assert_str_eq(str(r, "stdout"), "1\n");
	json_object_put(r);
}
END_TEST

#define CACHE_INSIDE "/opt/code-interpreter/packages"

/* "packages" must be an array of at most PKG_MAX_PER_RUN distinct cache
 * directory names (pkg_dir_name_valid); every other shape is a 400 that does
 * not use up the execution. */
START_TEST(packages_bad_shapes_refused)
{
	srv_start();
	char *many = xstrdup("[");
	for (int i = 0; i < 17; i++) {
		char *t = xasprintf("%s%s\"ci-p%d-1.0\"", many, i ? ", " : "", i);
		free(many);
		many = t;
	}
	char *closed = xasprintf("%s]", many);
	free(many);
	many = closed;
	char name201[202];
	memset(name201, 'a', 201);
	name201[201] = '\0';
	char *bad[] = {
		xstrdup("\"ci-a-1.0\""),
		xstrdup("{\"ci-a-1.0\": 1}"),
		xstrdup("null"),
		xstrdup("1"),
		xstrdup("[1]"),
		xstrdup("[null]"),
		xstrdup("[[\"ci-a-1.0\"]]"),
		xstrdup("[\"ci-a-1.0\", {}]"),
		xstrdup("[\"\"]"),
		xstrdup("[\".\"]"),
		xstrdup("[\"..\"]"),
		xstrdup("[\"../etc\"]"),
		xstrdup("[\"ci-a-1.0/../..\"]"),
		xstrdup("[\"a/b\"]"),
		xstrdup("[\"/abs\"]"),
		xstrdup("[\"-a\"]"),
		xstrdup("[\".hidden\"]"),
		xstrdup("[\"a b\"]"),
		xstrdup("[\"a\\u0000b\"]"),
		xstrdup("[\"caf\\u00e9\"]"),
		xstrdup("[\"ci-a-1.0\", \"ci-b-1.0\", \"ci-a-1.0\"]"),
		xasprintf("[\"%s\"]", name201),
		xstrdup(many),
	};
	free(many);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char *body = xasprintf("{\"source_code\": \"print(1)\", \"packages\": %s}", bad[i]);
		json_object *r;
		long st = execute_raw(body, &r);
		ck_assert_msg(st == 400, "%s: %ld", body, st);
		const char *e = str(r, "error");
		ck_assert_msg(strstr(e, "packages") != NULL, "%s: %s", body, e);
		json_object_put(r);
		free(body);
		free(bad[i]);
	}
	/* none of them used up the execution; 16 names, one of 200 bytes, pass */
	json_object *req = json_object_new_object();
	json_object_object_add(req, "source_code", json_object_new_string(
		"import sys\nprint(len([p for p in sys.path if p.startswith('" CACHE_INSIDE "')]),\n"
		"      max(len(p) for p in sys.path) - len('" CACHE_INSIDE "/'))"));
	json_object *pkgs = json_object_new_array();
	name201[200] = '\0';
	json_object_array_add(pkgs, json_object_new_string(name201));
	for (int i = 1; i < 16; i++) {
		char n[32];
		snprintf(n, sizeof(n), "ci-p%d-1.0", i);
		json_object_array_add(pkgs, json_object_new_string(n));
	}
	json_object_object_add(req, "packages", pkgs);
	json_object *r;
	long st = execute_raw(json_object_to_json_string(req), &r);
	json_object_put(req);
	ck_assert_msg(st == 200, "%ld %s", st, json_object_to_json_string(r));
	ck_assert_str_eq(str(r, "stdout"), "16 200\n");
	json_object_put(r);
}
END_TEST

/* What a run's code prints about sys.path: [sys.path, the cached finders'
 * keys under the cache], after an import that visits every entry. */
static const char sys_path_probe[] =
	"import sys, json\n"
	"try:\n    import ci_absent_zz_mod\nexcept ImportError:\n    pass\n"
	"print(json.dumps([sys.path, sorted(k for k in sys.path_importer_cache\n"
	"                                   if k.startswith('" CACHE_INSIDE "'))]))\n";

static json_object *sys_path_of_run(const char *packages)
{
	json_object *code = json_object_new_string(sys_path_probe);
	char *body = xasprintf("{\"source_code\": %s%s%s}", json_object_to_json_string(code),
			       packages ? ", \"packages\": " : "", packages ? packages : "");
	json_object_put(code);
	json_object *r;
	long st = execute_raw(body, &r);
	ck_assert_msg(st == 200, "%ld %s", st, json_object_to_json_string(r));
	ck_assert_msg(num(r, "exit_code") == 0, "%s", str(r, "stderr"));
	json_object *out = json_tokener_parse(str(r, "stdout"));
	ck_assert_msg(out != NULL, "%s", str(r, "stdout"));
	json_object_put(r);
	free(body);
	return out;
}

static const char *nth(json_object *arr, size_t i)
{
	return json_object_get_string(json_object_array_get_idx(arr, i));
}

/* A run given two cache directories has them at the end of sys.path, in the
 * order given, after every entry a run without them has; nothing of the
 * bare cache directory is on sys.path or has a finder. */
START_TEST(packages_on_sys_path_in_order)
{
	srv_start();
	json_object *plain = sys_path_of_run(NULL);
	int st = srv_stop();
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(S.ready_rd);
	S.ready_rd = -1;
	srv_start();
	json_object *with = sys_path_of_run("[\"ci-b-2.0\", \"ci-a-1.0\"]");

	json_object *p0 = json_object_array_get_idx(plain, 0), *p1 = json_object_array_get_idx(with, 0);
	size_t n0 = json_object_array_length(p0), n1 = json_object_array_length(p1);
	ck_assert_uint_eq(n1, n0 + 2);
	ck_assert_str_eq(nth(p1, 0), S.ws);
	for (size_t i = 0; i < n0; i++) {
		ck_assert_str_eq(nth(p1, i), nth(p0, i));
		ck_assert_msg(strncmp(nth(p0, i), CACHE_INSIDE, strlen(CACHE_INSIDE)) != 0, "%s", nth(p0, i));
	}
	ck_assert_str_eq(nth(p1, n0), CACHE_INSIDE "/ci-b-2.0");
	ck_assert_str_eq(nth(p1, n0 + 1), CACHE_INSIDE "/ci-a-1.0");
	/* finders: none under the cache without packages, only the two with */
	ck_assert_uint_eq(json_object_array_length(json_object_array_get_idx(plain, 1)), 0);
	json_object *f = json_object_array_get_idx(with, 1);
	ck_assert_uint_eq(json_object_array_length(f), 2);
	ck_assert_str_eq(nth(f, 0), CACHE_INSIDE "/ci-a-1.0");
	ck_assert_str_eq(nth(f, 1), CACHE_INSIDE "/ci-b-2.0");
	json_object_put(plain);
	json_object_put(with);
}
END_TEST

START_TEST(second_execute_conflict)
{
	srv_start();
	json_object *r = run("print(1)", NULL, 0);
	json_object_put(r);
	long st = execute_raw("{\"source_code\": \"print(2)\"}", &r);
	ck_assert_int_eq(st, 409);
	json_object_put(r);
	ck_assert_int_eq(put("/workspace/late.txt", "x"), 409);
	struct resp h = http("GET", "/healthz", NULL, 0);
	ck_assert_int_eq(h.status, 200);
	free(h.body);
}
END_TEST

/* POST /execute with check_imports: what the check finds comes back instead
 * of a run, as often as asked; with nothing found the code runs at once. */
START_TEST(import_check_before_the_run_only)
{
	srv_start();
	/* the workspace is searched: an uploaded module is not missing */
	ck_assert_int_eq(put("/workspace/mine.py", "X = 1\n"), 201);
	static const char body[] =
		"{\"source_code\": \"!pip install a==1\\nimport os, mine, ci_absent_zz\\n"
		"from . import rel\\nprint(1)\\n\", \"check_imports\": true}";
	static const char found[] = "{\"imports\":{\"missing\":[\"ci_absent_zz\"],\"pip\":[\"a==1\"],"
		"\"source_code\":\"\\nimport os, mine, ci_absent_zz\\nfrom . import rel\\nprint(1)\\n\"}}";
	struct resp h = http("POST", "/execute", body, sizeof(body) - 1);
	ck_assert_int_eq(h.status, 200);
	ck_assert_str_eq(h.body, found);
	free(h.body);
	static const char wrong[] = "{\"source_code\": \"import os\", \"check_imports\": 1}";
	h = http("POST", "/execute", wrong, sizeof(wrong) - 1);
	ck_assert_int_eq(h.status, 400);
	ck_assert_ptr_nonnull(strstr(h.body, "check_imports must be a boolean"));
	free(h.body);
	/* the runner answers as often as asked */
	h = http("POST", "/execute", body, sizeof(body) - 1);
	ck_assert_int_eq(h.status, 200);
	ck_assert_str_eq(h.body, found);
	free(h.body);
	/* the checks used nothing up and left nothing the code could see (no
	 * module, no more fds than 0-2 and listdir's own); with nothing missing
	 * the same request runs the code */
	static const char runs[] =
		"{\"check_imports\": true, \"source_code\": \"import os, sys\\n"
		"print(sorted(int(x) for x in os.listdir('/proc/self/fd')),\\n"
		"      'mine' in sys.modules, '_code_interpreter_imports' in sys.modules)\\n"
		"import mine\\nprint(mine.X)\"}";
	json_object *r = NULL;
	ck_assert_int_eq(execute_raw(runs, &r), 200);
	ck_assert_str_eq(str(r, "stdout"), "[0, 1, 2, 3] False False\n1\n");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(r, "exit_code")), 0);
	json_object_put(r);
	/* after the run, no check */
	h = http("POST", "/execute", body, sizeof(body) - 1);
	ck_assert_int_eq(h.status, 409);
	free(h.body);
}
END_TEST

/* A stand-in runner.py with the given source in a fresh directory (S.dir/fake);
 * returns the directory, for srv_spawn (the caller frees it). */
static char *fake_runner(const char *source)
{
	char *dir = xasprintf("%s/fake", S.dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	char *py = xasprintf("%s/runner.py", dir);
	FILE *fp = fopen(py, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(source, fp);
	ck_assert_int_eq(fclose(fp), 0);
	free(py);
	return dir;
}

/* The answer comes from the runner (fds 3 and 4, framed); a runner that breaks
 * the protocol is killed and the execution fails instead of running. */
START_TEST(imports_answered_by_the_runner)
{
	char *dir = fake_runner("import json, os\n"
	      "def rd(n):\n"
	      "    b = b''\n"
	      "    while len(b) < n:\n"
	      "        c = os.read(3, n - len(b))\n"
	      "        if not c:\n"
	      "            os._exit(0)\n"
	      "        b += c\n"
	      "    return b\n"
	      "def msg():\n"
	      "    return json.loads(rd(int.from_bytes(rd(4), 'big')))\n"
	      "os.write(4, b'R')\n"
	      "req = msg()\n"
	      "out = json.dumps({'missing': [req['op']], 'pip': [str(os.getpid())],\n"
	      "                  'source_code': req['source_code'].upper()}).encode()\n"
	      "os.write(4, len(out).to_bytes(4, 'big') + out)\n"
	      "msg()\n"
	      "os.close(4)\n"
	      "os.read(3, 1)\n");
	srv_spawn(dir, NULL);
	char c = 0;
	ck_assert_int_eq(read(S.ready_rd, &c, 1), 1);
	static const char body[] = "{\"source_code\": \"import x\", \"check_imports\": true}";
	struct resp h = http("POST", "/execute", body, sizeof(body) - 1);
	ck_assert_int_eq(h.status, 200);
	json_object *answer = json_tokener_parse(h.body);
	free(h.body);
	json_object *o = json_object_object_get(answer, "imports");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
		json_object_object_get(o, "missing"), 0)), "imports");
	ck_assert_str_eq(str(o, "source_code"), "IMPORT X");
	pid_t runner = (pid_t)strtol(json_object_get_string(json_object_array_get_idx(
		json_object_object_get(o, "pip"), 0)), NULL, 10);
	json_object_put(answer);
	ck_assert_int_gt(runner, 1);
	/* no answer: the runner is killed, the check and the run fail */
	h = http("POST", "/execute", body, sizeof(body) - 1);
	ck_assert_int_eq(h.status, 500);
	free(h.body);
	h = http("POST", "/execute", body, sizeof(body) - 1);
	ck_assert_int_eq(h.status, 500);
	free(h.body);
	long st = execute_raw("{\"source_code\": \"print(1)\"}", &o);
	ck_assert_int_eq(st, 500);
	json_object_put(o);
	/* killed (SIGKILL to its group): it exits (a readiness check, no sleep) */
	int pfd = (int)syscall(SYS_pidfd_open, runner, 0);
	if (pfd >= 0) {
		struct pollfd p = {.fd = pfd, .events = POLLIN};
		ck_assert_int_eq(poll(&p, 1, 5000), 1);
		close(pfd);
	} else {
		ck_assert_int_eq(errno, ESRCH);
	}
	free(dir);
}
END_TEST

/* The one child of pid (from /proc/PID/task/PID/children), or -1. */
static pid_t only_child(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	int child, another;
	return sscanf(buf, "%d %d", &child, &another) == 1 ? (pid_t)child : -1;
}

/* A runner killed from outside while no execution had begun (the OOM killer,
 * an operator): the server ends (status 1), so that its sandbox or pod is
 * replaced; it used to stay ready and answer exit code -9 for the next code,
 * which never ran. The worker's client sees an executor that took nothing. */
START_TEST(a_runner_lost_before_any_execution_ends_the_server)
{
	srv_start();
	pid_t runner = only_child(S.pid);
	ck_assert_int_gt(runner, 1);
	int pfd = (int)syscall(SYS_pidfd_open, S.pid, 0);
	ck_assert_int_ge(pfd, 0);
	ck_assert_int_eq(kill(runner, SIGKILL), 0);
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	ck_assert_msg(poll(&p, 1, 10000) == 1, "the server lives on without its runner");
	close(pfd);
	int st;
	ck_assert_int_eq(waitpid(S.pid, &st, 0), S.pid);
	S.pid = -1;
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "server ended with status %d", st);
	struct executor_client c;
	executor_init(&c, S.sock, NULL);
	json_object *req = json_tokener_parse("{\"source_code\": \"print(1)\"}");
	json_object *out = NULL;
	ck_assert_int_eq(executor_execute(&c, req, 10, 1 << 20, &out), -1);
	ck_assert_msg(executor_unused(&c), "%s", c.error);
	executor_release(&c);
	json_object_put(req);
}
END_TEST

static void assert_gone(json_object *r)
{
	char *end;
	long pid = strtol(str(r, "stdout"), &end, 10);
	ck_assert_int_gt(pid, 1);
	ck_assert_int_eq(*end, '\n');
	errno = 0;
	ck_assert_int_eq(kill((pid_t)pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
}

START_TEST(no_process_survives)
{
	srv_start();
	json_object *r = run("import subprocess\np = subprocess.Popen(['sleep', '60'])\nprint(p.pid)",
			     NULL, 0);
	ck_assert_int_eq(num(r, "exit_code"), 0);
	assert_gone(r);
	json_object_put(r);
}
END_TEST

START_TEST(no_process_survives_timeout)
{
	srv_start();
	json_object *r = run("import subprocess, os\n"
			     "p = subprocess.Popen(['sh', '-c', 'sleep 60 & wait'])\n"
			     "print(p.pid, flush=True)\nwhile True:\n    pass\n", NULL, 0.3);
	ck_assert_int_eq(num(r, "exit_code"), -1);
	assert_gone(r);
	json_object_put(r);
}
END_TEST

START_TEST(plot_and_image_shims)
{
	srv_start();
	json_object *r = run(
		"try:\n    import matplotlib.pyplot as plt\nexcept ImportError:\n    print('no matplotlib')\n"
		"else:\n    plt.plot([1, 2])\n    plt.show()\n    plt.figure()\n    plt.plot([3, 1])\n"
		"    plt.figure()\n    plt.show()\n    print(plt.get_fignums())\n"
		"from PIL import Image\nImage.new('CMYK', (4, 4)).show()\nImage.new('RGB', (2, 2)).show()\n",
		NULL, 0);
	ck_assert_msg(num(r, "exit_code") == 0, "%s", str(r, "stderr"));
	ck_assert_str_eq(str(r, "stdout"), "[]\n");
	char *f = files(r);
	/* nothing else: no __pycache__, no matplotlib cache */
	ck_assert_str_eq(f, "/workspace/image-2.png,/workspace/image.png,/workspace/plot-2.png,"
			    "/workspace/plot-3.png,/workspace/plot.png");
	free(f);
	json_object_put(r);
	struct resp g = http("GET", "/workspace/plot.png", NULL, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_uint_gt(g.len, 8);
	ck_assert_int_eq(memcmp(g.body, "\x89PNG\r\n\x1a\n", 8), 0);
	free(g.body);
}
END_TEST

START_TEST(runner_not_ready_is_503)
{
	/* A stand-in runner that opens a FIFO (telling us it runs) and never
	 * reports ready. */
	char *fifo = xasprintf("%s/started", S.dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	char *src = xasprintf("import os\nfd = os.open('%s', os.O_WRONLY)\nos.read(3, 1)\n", fifo);
	char *dir = fake_runner(src);
	free(src);
	srv_spawn(dir, NULL);
	int fd = open(fifo, O_RDONLY); /* returns once the runner runs; the socket listens by then */
	ck_assert_int_ge(fd, 0);
	struct resp h = http("GET", "/healthz", NULL, 0);
	ck_assert_int_eq(h.status, 503);
	free(h.body);
	json_object *r;
	ck_assert_int_eq(execute_raw("{\"source_code\": \"print(1)\"}", &r), 503);
	json_object_put(r);
	close(fd);
	free(dir);
	free(fifo);
}
END_TEST

START_TEST(runner_failure_is_fatal)
{
	char *dir = fake_runner("import sys\nsys.stderr.write('boom')\nsys.exit(3)\n");
	srv_spawn(dir, NULL);
	char c;
	ck_assert_int_eq(read(S.ready_rd, &c, 1), 0); /* never "R" */
	int st;
	ck_assert_int_eq(waitpid(S.pid, &st, 0), S.pid);
	S.pid = -1;
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	free(dir);
}
END_TEST

START_TEST(routes_and_methods)
{
	srv_start();
	ck_assert_int_eq(get_status("/nope"), 404);
	ck_assert_int_eq(get_status("/execute"), 405);
	struct resp d = http("DELETE", "/workspace/x", NULL, 0);
	ck_assert_int_eq(d.status, 405);
	free(d.body);
	ck_assert_int_eq(get_status("/workspace/missing.txt"), 404);
}
END_TEST

START_TEST(put_too_large)
{
	char *env[] = {(char *)"APP_SANDBOX_FILE_MB=1", NULL};
	srv_start_env(env);
	size_t n = (1 << 20) + 1;
	char *big = xmalloc(n + 1);
	memset(big, 'a', n);
	big[n] = '\0';
	ck_assert_int_eq(put("/workspace/big.bin", big), 413);
	free(big);
	char *p = xasprintf("%s/big.bin", S.ws);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	ck_assert_int_eq(put("/workspace/small.bin", "ok"), 201);
}
END_TEST

START_TEST(threads_and_atexit_at_exit)
{
	srv_start();
	json_object *r = run("import threading, time, atexit\n"
			     "atexit.register(lambda: print('atexit'))\n"
			     "def work():\n    time.sleep(0.2)\n    print('thread')\n"
			     "threading.Thread(target=work).start()\nprint('main')", NULL, 0);
	ck_assert_str_eq(str(r, "stdout"), "main\nthread\natexit\n");
	ck_assert_int_eq(num(r, "exit_code"), 0);
	json_object_put(r);
}
END_TEST

START_TEST(preload_then_shims)
{
	preload = "json, no_such_module_xyz ,matplotlib.pyplot";
	srv_start();
	json_object *r = run("import sys\nprint('matplotlib.pyplot' in sys.modules, 'no_such_module_xyz' in sys.modules)\n"
			     "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()\n", NULL, 0);
	ck_assert_msg(num(r, "exit_code") == 0, "%s", str(r, "stderr"));
	ck_assert_str_eq(str(r, "stdout"), "True False\n");
	ck_assert_str_eq(str(r, "stderr"), "");
	char *f = files(r);
	ck_assert_str_eq(f, "/workspace/plot.png");
	free(f);
	json_object_put(r);
}
END_TEST

START_TEST(chunked_bodies_capped)
{
	char *env[] = {(char *)"APP_SANDBOX_FILE_MB=1", (char *)"APP_MAX_REQUEST_BYTES=2048", NULL};
	srv_start_env(env);
	size_t n = (1 << 20) + 10;
	char *big = xmalloc(n + 1);
	memset(big, 'a', n);
	big[n] = '\0';
	struct resp r = http_h("PUT", "/workspace/big.bin", big, n, "Transfer-Encoding: chunked");
	ck_assert_int_eq(r.status, 413);
	free(r.body);
	char *p = xasprintf("%s/big.bin", S.ws);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	/* a chunked file under the cap is fine */
	r = http_h("PUT", "/workspace/ok.bin", big, 1000, "Transfer-Encoding: chunked");
	ck_assert_int_eq(r.status, 201);
	free(r.body);
	/* an execute body over APP_MAX_REQUEST_BYTES, with and without a length */
	char *body = xasprintf("{\"source_code\": \"%.*s\"}", 3000, big);
	r = http("POST", "/execute", body, strlen(body));
	ck_assert_int_eq(r.status, 413);
	free(r.body);
	r = http_h("POST", "/execute", body, strlen(body), "Transfer-Encoding: chunked");
	ck_assert_int_eq(r.status, 413);
	free(r.body);
	free(body);
	free(big);
	json_object *res = run("print(len(open('ok.bin').read()))", NULL, 0);
	ck_assert_str_eq(str(res, "stdout"), "1000\n");
	json_object_put(res);
}
END_TEST

START_TEST(sandboxed_runner_locked_down)
{
	if (!have_root("sandboxed_runner_locked_down", "the lockdown switches to uid 1000"))
		return;
#ifdef __SANITIZE_ADDRESS__
	/* The lockdown's RLIMIT_AS leaves no room for ASan's shadow memory in the
	 * instrumented child between fork and exec. */
	fprintf(stderr, "sandboxed_runner_locked_down: not under AddressSanitizer\n");
	return;
#endif
	ck_assert_int_eq(chmod(S.dir, 0711), 0);
	ck_assert_int_eq(chown(S.ws, 1000, 1000), 0);
	sandboxed = 1;
	srv_start();
	ck_assert_int_eq(put("/workspace/in/data.txt", "d"), 201);
	struct stat st;
	char *p = xasprintf("%s/in/data.txt", S.ws);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_uid, 1000);
	ck_assert_int_eq(st.st_gid, 1000);
	free(p);
	p = xasprintf("%s/in", S.ws);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_uid, 1000);
	free(p);
	json_object *r = run_listing("import os\nprint(os.getuid(), os.getgid())\n"
				     "s = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
				     "print(s['CapEff'], s['NoNewPrivs'], s['Seccomp'])\n"
				     "open('in/data.txt', 'a').write('more')\n", NULL, 0, 1);
	ck_assert_msg(num(r, "exit_code") == 0, "%s", str(r, "stderr"));
	ck_assert_str_eq(str(r, "stdout"), "1000 1000\n0000000000000000 1 2\n");
	char *f = files(r);
	ck_assert_str_eq(f, "/workspace/in/data.txt");
	free(f);
	json_object_put(r);
}
END_TEST

START_TEST(shutdown_during_execution)
{
	char *fifo = xasprintf("%s/running", S.dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	srv_start();
	pid_t client = fork();
	ck_assert_int_ge(client, 0);
	if (client == 0) {
		char *code = xasprintf("import os\nos.open('%s', os.O_WRONLY)\nwhile True:\n    pass\n", fifo);
		json_object *req = json_object_new_object();
		json_object_object_add(req, "source_code", json_object_new_string(code));
		const char *body = json_object_to_json_string(req);
		CURL *c = curl_easy_init();
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, S.sock);
		curl_easy_setopt(c, CURLOPT_URL, "http://localhost/execute");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
		struct resp r = {0};
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		curl_easy_perform(c);
		_exit(0);
	}
	int fd = open(fifo, O_RDONLY); /* the code is running */
	ck_assert_int_ge(fd, 0);
	int64_t t0 = monotonic_ms();
	int st = srv_stop();
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_lt(monotonic_ms() - t0, 10000); /* not the 60 s default timeout */
	ck_assert_int_eq(waitpid(client, &st, 0), client);
	close(fd);
	free(fifo);
}
END_TEST

/* The env name rule is the service's (common/validate.h): names the service
 * refuses, the executor refuses too. */
START_TEST(env_names_by_the_common_rule)
{
	srv_start();
	const char *bad[] = {" X", "A-B", "1A", "A B", "\\u00e9", "LD_AUDIT", "PYTHONHOME"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char *body = xasprintf("{\"source_code\": \"1\", \"env\": {\"%s\": \"x\"}}", bad[i]);
		json_object *r;
		long st = execute_raw(body, &r);
		ck_assert_msg(st == 400, "%s: %ld", bad[i], st);
		ck_assert_ptr_nonnull(str(r, "error"));
		json_object_put(r);
		free(body);
	}
	json_object *r = run("import os\nprint(os.environ['_a1'])", "{\"_a1\": \"ok\"}", 0);
	ck_assert_str_eq(str(r, "stdout"), "ok\n");
	json_object_put(r);
}
END_TEST

/* At most APP_MAX_INPUT_FILES uploads per execution: the server serves one. */
START_TEST(puts_capped_per_execution)
{
	char *env[] = {(char *)"APP_MAX_INPUT_FILES=3", NULL};
	srv_start_env(env);
	ck_assert_int_eq(put("/workspace/a", "1"), 201);
	ck_assert_int_eq(put("/workspace/d/b", "2"), 201);
	ck_assert_int_eq(put("/workspace/a", "3"), 201); /* each PUT counts, the same path too */
	struct resp r = http("PUT", "/workspace/c", "4", 1);
	ck_assert_int_eq(r.status, 413);
	ck_assert_msg(strstr(r.body, "APP_MAX_INPUT_FILES") != NULL, "%s", r.body);
	free(r.body);
	char *p = xasprintf("%s/c", S.ws);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	json_object *res = run("import os\nprint(sorted(os.listdir('.')), open('a').read())", NULL, 0);
	ck_assert_str_eq(str(res, "stdout"), "['a', 'd'] 3\n");
	json_object_put(res);
}
END_TEST

START_TEST(no_puts_when_input_files_is_zero)
{
	char *env[] = {(char *)"APP_MAX_INPUT_FILES=0", NULL};
	srv_start_env(env);
	ck_assert_int_eq(put("/workspace/a", "1"), 413);
	json_object *res = run("import os\nprint(os.listdir('.'))", NULL, 0);
	ck_assert_str_eq(str(res, "stdout"), "[]\n");
	json_object_put(res);
}
END_TEST

/* ---- the pod's token (EXECUTOR_TOKEN) ------------------------------------ */

#define TOKEN "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc"

/* The request refused as a caller without the token is: 401, the service's
 * body, WWW-Authenticate: Bearer. */
static void assert_401(const char *method, const char *path, const char *body, const char *header)
{
	struct resp r = http_h(method, path, body, body ? strlen(body) : 0, header);
	ck_assert_msg(r.status == 401, "%s %s (%s): %ld %s", method, path, header ? header : "no header",
		      r.status, r.body);
	ck_assert_str_eq(r.body, "{\"detail\":\"Not authenticated\"}");
	ck_assert_str_eq(r.www_authenticate, "Bearer");
	free(r.body);
}

START_TEST(token_guards_every_route_but_healthz)
{
	S.token = TOKEN;
	srv_start();
	/* the readiness probe's route stays open */
	struct resp h = http("GET", "/healthz", NULL, 0);
	ck_assert_int_eq(h.status, 200);
	free(h.body);
	const char *wrong[] = {NULL, "Authorization: Bearer", "Authorization: Bearer ",
			       "Authorization: Bearer " TOKEN "0", "Authorization: Bearer " TOKEN " 0",
			       "Authorization: Bearer c0ffee", "Authorization: Basic " TOKEN,
			       "Authorization: " TOKEN,
			       "Authorization: Bearer C0FFEE00112233445566778899AABBCCDDEEFF00112233445566778899AABBCC",
			       "X-Token: " TOKEN};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(*wrong); i++) {
		assert_401("PUT", "/workspace/in.txt", "abc", wrong[i]);
		assert_401("GET", "/workspace/in.txt", NULL, wrong[i]);
		assert_401("POST", "/execute", "{\"source_code\": \"open('pwned', 'w')\"}", wrong[i]);
		assert_401("POST", "/execute", "{\"source_code\": \"import os\", \"check_imports\": true}",
			   wrong[i]);
		assert_401("GET", "/nope", NULL, wrong[i]); /* deny by default: no route map either */
		assert_401("DELETE", "/execute", NULL, wrong[i]);
	}
	/* nothing of the refused requests happened */
	char *p = xasprintf("%s/in.txt", S.ws);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	/* with the token: as without one before; the scheme's case and spaces
	 * around the token do not matter (common/bearer.h) */
	struct resp r = http_h("PUT", "/workspace/in.txt", "abc", 3, "Authorization: Bearer " TOKEN);
	ck_assert_int_eq(r.status, 201);
	free(r.body);
	r = http_h("GET", "/workspace/in.txt", NULL, 0, "Authorization: bearer  " TOKEN " ");
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "abc");
	free(r.body);
	r = http_h("GET", "/nope", NULL, 0, "Authorization: Bearer " TOKEN);
	ck_assert_int_eq(r.status, 404);
	free(r.body);
}
END_TEST

/* The service's client (executor_client.c) sends the token it is given; the
 * code never sees it: not in its environment, not in its parent's (the
 * server's) /proc/PID/environ. */
START_TEST(token_sent_by_the_client_and_hidden_from_the_code)
{
	S.token = TOKEN;
	srv_start();
	struct executor_client bad;
	json_object *req = json_tokener_parse(
		"{\"source_code\": \"import os\\ntry:\\n"
		"    env = open('/proc/%d/environ' % os.getppid(), 'rb').read()\\n"
		"    seen = b'" TOKEN "' in env, b'EXECUTOR_TOKEN' in env\\n"
		"except PermissionError:\\n"
		"    seen = 'unreadable'\\n"
		"print(os.environ.get('EXECUTOR_TOKEN'), seen)\"}");
	ck_assert_ptr_nonnull(req);
	json_object *out = NULL;
	executor_init(&bad, S.sock, "c0ffee");
	ck_assert_int_eq(executor_execute(&bad, req, 10, 1 << 20, &out), -1);
	ck_assert_msg(strstr(bad.error, "401"), "%s", bad.error);
	executor_release(&bad);
	executor_init(&bad, S.sock, NULL);
	ck_assert_int_eq(executor_execute(&bad, req, 10, 1 << 20, &out), -1);
	ck_assert_msg(strstr(bad.error, "401"), "%s", bad.error);
	executor_release(&bad);
	struct executor_client good;
	executor_init(&good, S.sock, TOKEN);
	ck_assert_msg(executor_execute(&good, req, 10, 1 << 20, &out) == 0, "%s", good.error);
	/* the server is not dumpable: only root reads its environment */
	ck_assert_str_eq(str(out, "stdout"), geteuid() == 0 ? "None (False, False)\n" : "None unreadable\n");
	ck_assert_int_eq(num(out, "exit_code"), 0);
	executor_release(&good);
	json_object_put(out);
	json_object_put(req);
}
END_TEST

/* A pod's code runs under its server's uid. The server is not dumpable, so
 * the kernel refuses that code the server's memory (where the requests'
 * bearer token passes and the answer is built), environment, descriptors and
 * mappings. Before, code read them all, and wrote through /proc/PID/mem. */
START_TEST(pod_server_out_of_its_codes_reach)
{
	if (!have_root("pod_server_out_of_its_codes_reach", "the server becomes uid 1000, as in a pod"))
		return;
	ck_assert_int_eq(chown(S.dir, 1000, 1000), 0);
	ck_assert_int_eq(chown(S.ws, 1000, 1000), 0);
	pod_user = 1;
	srv_start();
	json_object *r = run("import os\n"
			     "server = os.getppid()\n"
			     "def probe(what):\n"
			     "    try:\n"
			     "        if what == 'fd':\n"
			     "            os.listdir('/proc/%d/fd' % server)\n"
			     "        else:\n"
			     "            open('/proc/%d/%s' % (server, what), 'rb').close()\n"
			     "        return 'open'\n"
			     "    except PermissionError:\n"
			     "        return 'refused'\n"
			     "print(os.getuid(), *(probe(w) for w in ('mem', 'environ', 'fd', 'maps')))\n",
			     NULL, 0);
	ck_assert_msg(num(r, "exit_code") == 0, "%s", str(r, "stderr"));
	ck_assert_str_eq(str(r, "stdout"), "1000 refused refused refused refused\n");
	json_object_put(r);
}
END_TEST

/* As pid 1 (a pod's server, a sandbox's), the server stops for a signal from
 * outside its pid namespace only: a pod's code shares its uid and could send
 * it SIGTERM, which ended the server and lost the answer; also one queued
 * with a forged sender pid of 0. The code waits until the server has taken
 * the signals from its pending set. */
START_TEST(pid1_server_ignores_stop_signals_from_its_code)
{
	if (!have_root("pid1_server_ignores_stop_signals_from_its_code", "a pid namespace"))
		return;
	as_pid1 = 1;
	srv_start();
	json_object *r = run("import os, signal, time\n"
			     "assert os.getppid() == 1\n"
			     "os.kill(1, signal.SIGTERM)\n"
			     "os.kill(1, signal.SIGINT)\n"
			     "# a sender may write the pid it claims to be (0: outside) with a code < 0\n"
			     "import ctypes, platform\n"
			     "info = (ctypes.c_int * 32)(signal.SIGTERM, 0, -1)  # SI_QUEUE, si_pid 0\n"
			     "nr = {'x86_64': 129, 'aarch64': 138}[platform.machine()]  # rt_sigqueueinfo\n"
			     "assert ctypes.CDLL(None).syscall(nr, 1, int(signal.SIGTERM), info) == 0\n"
			     "# the server's pid in the host's /proc, which this one is\n"
			     "server = open('/proc/self/stat').read().rsplit(')', 1)[1].split()[1]\n"
			     "def pending():\n"
			     "    for line in open('/proc/%s/status' % server):\n"
			     "        if line.startswith('ShdPnd:'):\n"
			     "            return int(line.split()[1], 16) & ((1 << 14) | (1 << 1))\n"
			     "deadline = time.monotonic() + 10\n"
			     "while pending() and time.monotonic() < deadline:\n"
			     "    time.sleep(0.01)\n"
			     "time.sleep(0.3)  # what a server that stops does next: kill this run\n"
			     "print('answered', pending())\n",
			     NULL, 0);
	ck_assert_msg(num(r, "exit_code") == 0, "%s", str(r, "stderr"));
	ck_assert_str_eq(str(r, "stdout"), "answered 0\n");
	json_object_put(r);
	ck_assert_int_eq(get_status("/healthz"), 200);
	int st = srv_stop(); /* from outside the namespace: it stops */
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server ended with status %d", st);
}
END_TEST

/* Set but empty: the server does not start rather than serve without it. */
START_TEST(empty_token_is_fatal)
{
	S.token = "";
	srv_spawn(NULL, NULL);
	char c;
	ck_assert_int_eq(read(S.ready_rd, &c, 1), 0); /* never "R" */
	int st;
	ck_assert_int_eq(waitpid(S.pid, &st, 0), S.pid);
	S.pid = -1;
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}
END_TEST

/* ---- a pod's packages (PUT /packages/..., pod_packages.h) ---------------- */

#define PKG_DIR "ci-x-1.0-0123456789abcdef0123456789abcdef"

/* The mode bits of path (no symlink followed), or -1 when it is missing. */
static int mode_of(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

START_TEST(packages_delivered_read_only_before_the_run)
{
	S.with_packages = 1;
	srv_start();
	ck_assert_int_eq(put("/packages/" PKG_DIR "/ci_x/__init__.py?mtime=1700000000", "X = 1\n"), 201);
	ck_assert_int_eq(put("/packages/" PKG_DIR "/ci_x/sub%2Fdeep.py", "Y = 2\n"), 201);
	char *f = xasprintf("%s/" PKG_DIR "/ci_x/__init__.py", S.pkgs);
	struct stat st;
	ck_assert_int_eq(lstat(f, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0444);
	ck_assert_int_eq((long long)st.st_mtim.tv_sec, 1700000000LL);
	ck_assert_int_eq(st.st_size, 6);
	char *deep = xasprintf("%s/" PKG_DIR "/ci_x/sub/deep.py", S.pkgs);
	ck_assert_int_eq(mode_of(deep), 0444);
	/* a file once delivered is never replaced */
	ck_assert_int_eq(put("/packages/" PKG_DIR "/ci_x/__init__.py", "X = 'evil'\n"), 400);
	/* the run makes the directories read-only too (the files are already) */
	char *dir = xasprintf("%s/" PKG_DIR "/ci_x", S.pkgs);
	ck_assert_int_eq(mode_of(dir), 0755);
	json_object *r = run("print(1)", NULL, 0);
	json_object_put(r);
	ck_assert_int_eq(mode_of(dir), 0555);
	char *sub = xasprintf("%s/" PKG_DIR "/ci_x/sub", S.pkgs);
	ck_assert_int_eq(mode_of(sub), 0555);
	char *top = xasprintf("%s/" PKG_DIR, S.pkgs);
	ck_assert_int_eq(mode_of(top), 0555);
	ck_assert_int_eq(mode_of(S.pkgs), 0777); /* the emptyDir's own mount point is left alone */
	/* and nothing comes after the run started */
	ck_assert_int_eq(put("/packages/" PKG_DIR "/ci_x/late.py", "Z = 3\n"), 409);
	char *late = xasprintf("%s/" PKG_DIR "/ci_x/late.py", S.pkgs);
	ck_assert_int_eq(mode_of(late), -1);
	ck_assert_int_eq(lstat(f, &st), 0);
	ck_assert_int_eq(st.st_size, 6);
	free(f);
	free(deep);
	free(dir);
	free(sub);
	free(top);
	free(late);
}
END_TEST

START_TEST(packages_bad_names_and_traversal_refused)
{
	/* a symlink out of the packages directory, there before the server starts */
	char *link = xasprintf("%s/ci-evil-1.0", S.pkgs);
	ck_assert_int_eq(symlink(S.dir, link), 0);
	free(link);
	S.with_packages = 1;
	srv_start();
	char longname[PKG_DIR_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	char *too_long = xasprintf("/packages/%s/x.py", longname);
	const char *bad[] = {"/packages/../x.py", "/packages/ci-a-1.0/../../x.py", "/packages/..%2Fx.py",
			     "/packages/ci-a-1.0%2F..%2F..%2Fx.py", "/packages/%2e%2e/x.py",
			     "/packages/ci-a-1.0/%2e%2e/%2e%2e/x.py", "/packages/ci-a-1.0", "/packages/",
			     "/packages", "/packages/ci-a-1.0/", "/packages//x.py", "/packages/ci-a-1.0//x.py",
			     "/packages/.hidden/x.py", "/packages/-x/x.py", "/packages/ci%20a/x.py",
			     "/packages/ci-a%00/x.py", "/packages/ci-a-1.0/a%00b", "/packages/ci-a-1.0/%zz",
			     too_long, "/packages/ci-evil-1.0/x.py", "/packages/ci-evil-1.0/sub/x.py",
			     "/packages/ci-a-1.0/x.py?mtime=abc", "/packages/ci-a-1.0/x.py?mtime=-1",
			     "/packages/ci-a-1.0/x.py?mtime=1234567890123",
			     "/packages/ci-a-1.0/x.py?mtime=1&mtime=2", "/packages/ci-a-1.0/x.py?other=1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(put(bad[i], "evil") == 400, "PUT %s", bad[i]);
	free(too_long);
	/* nothing landed outside the packages directory, nor in it */
	const char *nowhere[] = {"x.py", "sub", "../x.py"};
	for (size_t i = 0; i < sizeof(nowhere) / sizeof(*nowhere); i++) {
		char *p = xasprintf("%s/%s", S.dir, nowhere[i]);
		ck_assert_msg(access(p, F_OK) == -1, "%s exists", p);
		free(p);
	}
	char *p = xasprintf("%s/ci-a-1.0", S.pkgs);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	/* other methods are not taken */
	struct resp g = http("GET", "/packages/ci-a-1.0/x.py", NULL, 0);
	ck_assert_int_eq(g.status, 405);
	free(g.body);
	ck_assert_int_eq(put("/packages/ci-a-1.0/x.py", "ok"), 201);
}
END_TEST

START_TEST(packages_route_only_in_a_pod)
{
	srv_start(); /* a local sandbox's server: no --packages */
	ck_assert_int_eq(put("/packages/" PKG_DIR "/x.py", "X = 1\n"), 404);
	char *p = xasprintf("%s/" PKG_DIR, S.pkgs);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	p = xasprintf("%s/" PKG_DIR, S.ws);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
}
END_TEST

START_TEST(packages_capped_in_size)
{
	char *env[] = {(char *)"APP_EXECUTOR_PACKAGES_MB=1", (char *)"APP_SANDBOX_FILE_MB=1", NULL};
	S.with_packages = 1;
	srv_start_env(env);
	size_t n = 600 * 1024;
	char *blob = xmalloc(n + 1);
	memset(blob, 'a', n);
	blob[n] = '\0';
	ck_assert_int_eq(put("/packages/ci-a-1.0/one.bin", blob), 201);
	ck_assert_int_eq(put("/packages/ci-a-1.0/two.bin", blob), 413); /* 1.2 MB in all */
	free(blob);
	char *p = xasprintf("%s/ci-a-1.0/two.bin", S.pkgs);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
	/* a refused file is not counted */
	ck_assert_int_eq(put("/packages/ci-a-1.0/small.py", "ok"), 201);
	/* nor is any file larger than the pod's RLIMIT_FSIZE taken, chunked or not */
	n = (1 << 20) + 1;
	blob = xmalloc(n + 1);
	memset(blob, 'b', n);
	blob[n] = '\0';
	ck_assert_int_eq(put("/packages/ci-b-1.0/big.bin", blob), 413);
	struct resp r = http_h("PUT", "/packages/ci-b-1.0/big.bin", blob, n, "Transfer-Encoding: chunked");
	ck_assert_int_eq(r.status, 413);
	free(r.body);
	free(blob);
	p = xasprintf("%s/ci-b-1.0/big.bin", S.pkgs);
	ck_assert_int_eq(access(p, F_OK), -1);
	free(p);
}
END_TEST

/* Writes text into dir/name (mode 0644, mtime) for the cache double below. */
static void plant(const char *dir, const char *name, const char *text, time_t mtime)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, text, strlen(text)), 0);
	struct timespec t[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
	ck_assert_int_eq(futimens(fd, t), 0);
	close(fd);
	free(p);
}

/* The service's side (package_delivery.h): a cache directory arrives whole,
 * with its files' times, and nothing but its regular files and directories. */
START_TEST(package_dir_delivered_by_the_service)
{
	S.token = TOKEN;
	S.with_packages = 1;
	char *limit[] = {(char *)"APP_EXECUTOR_PACKAGES_MB=1", NULL};
	srv_start_env(limit);
	char *cache = xasprintf("%s/cache", S.dir);
	char *env_cache = xasprintf("APP_PACKAGE_CACHE=%s", cache);
	char *env[] = {env_cache, (char *)"APP_EXECUTOR_PACKAGES_MB=1", NULL};
	struct config cfg;
	char err[256];
	ck_assert_msg(config_load(&cfg, env, err, sizeof(err)) == 0, "%s", err);
	char *d = xasprintf("%s/dists/" PKG_DIR, cache);
	char *m = xasprintf("%s/ci_x", d), *c = xasprintf("%s/ci_x/__pycache__", d);
	char *i = xasprintf("%s/ci_x-1.0.dist-info", d);
	ck_assert_int_eq(mkdir(cache, 0711), 0);
	char *dists = xasprintf("%s/dists", cache);
	ck_assert_int_eq(mkdir(dists, 0711), 0);
	ck_assert_int_eq(mkdir(d, 0755), 0);
	ck_assert_int_eq(mkdir(m, 0755), 0);
	ck_assert_int_eq(mkdir(c, 0755), 0);
	ck_assert_int_eq(mkdir(i, 0755), 0);
	plant(m, "__init__.py", "X = 1\n", 1600000000);
	plant(c, "__init__.cpython-311.pyc", "not really bytecode", 1600000001);
	plant(i, "RECORD", "ci_x/__init__.py,,\n", 1600000002);
	plant(d, "ci_y.py", "", 1600000003); /* empty files too */
	char *l = xasprintf("%s/link.py", d);
	ck_assert_int_eq(symlink("/etc/passwd", l), 0);
	char *fifo = xasprintf("%s/fifo", d);
	ck_assert_int_eq(mkfifo(fifo, 0644), 0);

	struct executor_client executor;
	executor_init(&executor, S.sock, TOKEN);
	char why[400];
	ck_assert_msg(pkgdeliver_dir(&cfg, &executor, PKG_DIR, monotonic_ms() + 20000, why, sizeof(why)) == 0, "%s",
		      why);
	const char *want[][2] = {{"ci_x/__init__.py", "X = 1\n"},
				 {"ci_x/__pycache__/__init__.cpython-311.pyc", "not really bytecode"},
				 {"ci_x-1.0.dist-info/RECORD", "ci_x/__init__.py,,\n"},
				 {"ci_y.py", ""}};
	for (size_t k = 0; k < sizeof(want) / sizeof(*want); k++) {
		char *src = xasprintf("%s/%s", d, want[k][0]), *dst = xasprintf("%s/" PKG_DIR "/%s", S.pkgs, want[k][0]);
		struct stat a, b;
		ck_assert_msg(stat(src, &a) == 0 && lstat(dst, &b) == 0, "%s", dst);
		ck_assert_msg(S_ISREG(b.st_mode) && (b.st_mode & 07777) == 0444, "%s", dst);
		ck_assert_int_eq((long long)b.st_mtim.tv_sec, (long long)a.st_mtim.tv_sec);
		char got[64] = "";
		int fd = open(dst, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		ssize_t got_n = read(fd, got, sizeof(got) - 1);
		close(fd);
		ck_assert_int_eq(got_n, (ssize_t)strlen(want[k][1]));
		ck_assert_str_eq(got, want[k][1]);
		free(src);
		free(dst);
	}
	char *out = xasprintf("%s/" PKG_DIR "/link.py", S.pkgs);
	ck_assert_int_eq(mode_of(out), -1);
	free(out);
	out = xasprintf("%s/" PKG_DIR "/fifo", S.pkgs);
	ck_assert_int_eq(mode_of(out), -1);
	free(out);

	/* sent again, the pod refuses: a directory is sent once */
	ck_assert_int_eq(pkgdeliver_dir(&cfg, &executor, PKG_DIR, monotonic_ms() + 20000, why, sizeof(why)), -1);
	/* a name that is no cache directory's is not even read */
	ck_assert_int_eq(pkgdeliver_dir(&cfg, &executor, "../dists", monotonic_ms() + 20000, why, sizeof(why)), -1);
	/* more than the pod takes: the note says which limit */
	char *big = xasprintf("%s/dists/ci-big-1.0-00", cache);
	ck_assert_int_eq(mkdir(big, 0755), 0);
	char *blob = xmalloc((1 << 20) + 2);
	memset(blob, 'z', (1 << 20) + 1);
	blob[(1 << 20) + 1] = '\0';
	plant(big, "big.bin", blob, 1600000000);
	free(blob);
	ck_assert_int_eq(pkgdeliver_dir(&cfg, &executor, "ci-big-1.0-00", monotonic_ms() + 20000, why, sizeof(why)),
			 -1);
	ck_assert_msg(strstr(why, "APP_EXECUTOR_PACKAGES_MB"), "%s", why);
	/* past the deadline nothing is sent */
	ck_assert_int_eq(pkgdeliver_dir(&cfg, &executor, PKG_DIR, monotonic_ms() - 1, why, sizeof(why)), -1);
	ck_assert_msg(strstr(why, "APP_PACKAGE_INSTALL_TIMEOUT"), "%s", why);
	executor_release(&executor);
	config_release(&cfg);
	free(big);
	free(l);
	free(fifo);
	free(d);
	free(m);
	free(c);
	free(i);
	free(dists);
	free(cache);
	free(env_cache);
}
END_TEST

static Suite *server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("executor");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, hello_world);
	tcase_add_test(tc, memory_limit_of_its_group_reported);
	tcase_add_test(tc, script_semantics);
	tcase_add_test(tc, put_then_code_reads_it);
	tcase_add_test(tc, new_files_listed_top_level_only);
	tcase_add_test(tc, new_files_listed_nested);
	tcase_add_test(tc, changed_input_listed);
	tcase_add_test(tc, special_files_skipped);
	tcase_add_test(tc, path_traversal_refused);
	tcase_add_test(tc, traceback_like_python);
	tcase_add_test(tc, syntax_error_like_python);
	tcase_add_test(tc, sys_exit_status);
	tcase_add_test(tc, sys_exit_message);
	tcase_add_test(tc, memory_error_message);
	tcase_add_test(tc, killed_by_signal);
	tcase_add_test(tc, timeout_kills);
	tcase_add_test(tc, output_cap_marker);
	tcase_add_test(tc, invalid_utf8_repaired);
	tcase_add_test(tc, env_reaches_code_only);
	tcase_add_test(tc, bad_bodies_refused);
	tcase_add_test(tc, packages_bad_shapes_refused);
	tcase_add_test(tc, packages_on_sys_path_in_order);
	tcase_add_test(tc, second_execute_conflict);
	tcase_add_test(tc, import_check_before_the_run_only);
	tcase_add_test(tc, imports_answered_by_the_runner);
	tcase_add_test(tc, no_process_survives);
	tcase_add_test(tc, a_runner_lost_before_any_execution_ends_the_server);
	tcase_add_test(tc, no_process_survives_timeout);
	tcase_add_test(tc, plot_and_image_shims);
	tcase_add_test(tc, runner_not_ready_is_503);
	tcase_add_test(tc, runner_failure_is_fatal);
	tcase_add_test(tc, routes_and_methods);
	tcase_add_test(tc, put_too_large);
	tcase_add_test(tc, threads_and_atexit_at_exit);
	tcase_add_test(tc, preload_then_shims);
	tcase_add_test(tc, chunked_bodies_capped);
	tcase_add_test(tc, sandboxed_runner_locked_down);
	tcase_add_test(tc, shutdown_during_execution);
	tcase_add_test(tc, env_names_by_the_common_rule);
	tcase_add_test(tc, puts_capped_per_execution);
	tcase_add_test(tc, no_puts_when_input_files_is_zero);
	tcase_add_test(tc, token_guards_every_route_but_healthz);
	tcase_add_test(tc, token_sent_by_the_client_and_hidden_from_the_code);
	tcase_add_test(tc, empty_token_is_fatal);
	tcase_add_test(tc, pod_server_out_of_its_codes_reach);
	tcase_add_test(tc, pid1_server_ignores_stop_signals_from_its_code);
	tcase_add_test(tc, packages_delivered_read_only_before_the_run);
	tcase_add_test(tc, packages_bad_names_and_traversal_refused);
	tcase_add_test(tc, packages_route_only_in_a_pod);
	tcase_add_test(tc, packages_capped_in_size);
	tcase_add_test(tc, package_dir_delivered_by_the_service);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	SRunner *sr = srunner_create(server_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
