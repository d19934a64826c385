/* worker: see worker.h. */
#include "worker.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "app.h"
#include "files.h"
#include "log.h"
#include "pool.h"
#include "router.h"
#include "scoreboard.h"
#include "util.h"

/* What a worker's heap keeps of what it freed (malloc's trim threshold), and
 * the room it adds each time it grows. */
#define WORKER_HEAP_KEPT (8 << 20)
#define WORKER_HEAP_PAD (1 << 20)

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t idle;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
	if (idle)
		_exit(0); /* waiting in accept: nothing in flight */
}

/* The per-request log line: execution id (when the request ran code), method,
 * route pattern, status and duration. */
static void log_request(const struct request_in *in, const struct response *out, int code, int64_t t0)
{
	const char *method = in->method ? in->method : "-";
	const char *rmethod = NULL;
	const char *route = out->route ? router_route(out->route, &rmethod) : "none";
	struct log_field f[] = {
		{"execution_id", out->execution_id, 0},
		{"key", in->key ? in->key : "", 0},
		{"method", method, 0},
		{"route", route ? route : "none", 0},
		{"status", NULL, code},
		{"duration_ms", NULL, monotonic_ms() - t0},
	};
	log_fields("request", f, sizeof(f) / sizeof(f[0]));
}

static void serve_one(struct app *app, FCGX_Request *req)
{
	struct response out = {.status = CI_INTERNAL, .fd = -1};
	struct request_in in = {0};
	char *body = NULL;
	int64_t t0 = monotonic_ms();
	in.method = FCGX_GetParam("REQUEST_METHOD", req->envp);
	const char *uri = FCGX_GetParam("REQUEST_URI", req->envp);
	if (!in.method || !uri) {
		http_error(&out, CI_BAD_REQUEST, "missing request line");
		goto send;
	}
	char *path = xstrdup(uri);
	path[strcspn(path, "?#")] = '\0';
	in.path = path;
	/* before the body is read: a caller without a key costs no worker time */
	if (access_check(&app->access, app->cfg, path, FCGX_GetParam("HTTP_AUTHORIZATION", req->envp),
			 &in.key, &out) < 0)
		goto send_path;

	int streams = router_streams_body(in.method, in.path);
	if (streams || router_wants_body(in.method, in.path)) {
		const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
		char *end = NULL;
		errno = 0;
		unsigned long long len = cl && *cl ? strtoull(cl, &end, 10) : 0;
		if (cl && *cl && (errno || *end)) {
			http_error(&out, CI_BAD_REQUEST, "invalid Content-Length");
			goto send_path;
		}
		if (len > app->cfg->max_request_bytes) {
			http_error(&out, CI_TOO_LARGE, "Request body is larger than %llu bytes",
				   (unsigned long long)app->cfg->max_request_bytes);
			goto send_path;
		}
		if (streams) {
			/* the handler reads the body from the stream, piece by piece */
			in.stream = req->in;
			in.content_length = len;
			goto dispatch;
		}
		body = xmalloc(len + 1);
		size_t got = 0;
		while (got < len) {
			size_t chunk = len - got > (1u << 30) ? (1u << 30) : len - got;
			int n = FCGX_GetStr(body + got, (int)chunk, req->in);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got != len) {
			http_error(&out, CI_BAD_REQUEST, "request body ended early");
			goto send_path;
		}
		body[len] = '\0';
		in.body = body;
		in.body_len = len;
	}
dispatch:
	router_dispatch(app, &in, &out);
send_path:
	free(path);
	in.path = NULL;
send:;
	int code = http_send(req, &out);
	access_done();
	scoreboard_request(out.route, code);
	log_request(&in, &out, code, t0);
	free(body);
	scoreboard_stage_mark(STAGE_REQUEST);
}

/* A predecessor in this worker's slot died while running an execution: its
 * row still says 'running'; record that it was interrupted. */
static void finish_orphaned_execution(struct app *app)
{
	char id[SCOREBOARD_EXEC_ID];
	if (!scoreboard_take_unfinished(id))
		return;
	enum db_status st = db_execution_interrupt(app->db, id, "the worker running it died", now_ms());
	if (st == DB_OK) {
		scoreboard_execution(OUTCOME_INTERRUPTED, -1);
		log_warn("execution %s: interrupted (its worker died)", id);
	}
}

/* Which idle worker takes the next connection: the one that registered first
 * (an EPOLLEXCLUSIVE entry, in the socket's wait queue in the order the
 * workers started), not the one that has waited longest (accept(2)'s order,
 * which hands calls that come one at a time, as an agent's do, to each worker
 * in turn, its caches and page tables gone cold meanwhile). An epoll
 * descriptor watching listen_fd, or -1: then accept's order. */
static int wait_first_setup(int listen_fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event want = {.events = EPOLLIN | EPOLLEXCLUSIVE};
	if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &want) == 0)
		return ep;
	log_warn("worker: epoll on the FastCGI socket: %s; taking requests in accept's order", strerror(errno));
	if (ep >= 0)
		close(ep);
	return -1;
}

/* Sleeps until the FastCGI socket has a connection for this worker: 0 when a
 * signal came first (the loop looks at stopping), 1 otherwise (on an error
 * too: accept then waits in its own order). */
static int wait_first(int ep)
{
	struct epoll_event ev;
	return epoll_wait(ep, &ev, 1, -1) >= 0 || errno != EINTR;
}

int worker_run(const struct config *cfg, int listen_fd, int notify_fd, int ready_fd)
{
	log_set_role("worker");
	struct sigaction sa = {.sa_handler = on_term};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Each request allocates and frees the same few hundred kilobytes
	 * (bodies, JSON, SQLite's pages): kept, not handed back to the kernel
	 * and faulted in again (~2.6 brk calls and 15 page faults per execution) */
	mallopt(M_TRIM_THRESHOLD, WORKER_HEAP_KEPT);
	mallopt(M_TOP_PAD, WORKER_HEAP_PAD);
	struct app app = {.cfg = cfg, .notify_fd = notify_fd, .ready_fd = ready_fd};
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_fatal("curl_global_init failed");
	app.db = db_open(cfg->db_path);
	if (!app.db || files_store_open(&app.store, cfg, 0) != STORE_OK) {
		log_error("cannot open the database or the store");
		return 1;
	}
	finish_orphaned_execution(&app);
	if (FCGX_Init() != 0)
		log_fatal("FCGX_Init failed");
	FCGX_Request req;
	FCGX_InitRequest(&req, listen_fd, 0);
	int ep = wait_first_setup(listen_fd);
	for (;;) {
		idle = 1; /* from here a SIGTERM exits at once */
		if (stopping)
			break;
		/* a connection the web server kept (FCGI_KEEP_CONN) brings its next
		 * request itself: only a new one is waited for */
		if (ep >= 0 && req.ipcFd < 0 && !wait_first(ep))
			continue;
		int rc = FCGX_Accept_r(&req);
		idle = 0;
		if (rc < 0) {
			if (!stopping)
				log_error("FCGX_Accept_r failed: %d", rc);
			break;
		}
		serve_one(&app, &req);
		FCGX_Finish_r(&req);
		if (app.wake_pool) { /* a sandbox released (execution.c, record) */
			app.wake_pool = 0;
			pool_wake(app.notify_fd);
		}
	}
	if (ep >= 0)
		close(ep);
	FCGX_Free(&req, 1);
	access_release(&app.access);
	store_close(&app.store);
	db_close(&app.db);
	curl_global_cleanup();
	return 0;
}
