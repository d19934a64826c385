/* server: see server.h. The HTTP side (routes, the pod's token, request bodies,
 * JSON in and out, status codes) and the life of the process (signals,
 * readiness, shutdown); files are workspace.c's business and processes
 * runner.c's. */
#include "server.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "bearer.h"
#include "cgroup.h"
#include "log.h"
#include "package_names.h"
#include "pod_packages.h"
#include "runner.h"
#include "util.h"
#include "validate.h"
#include "workspace.h"

#define CONNECTION_LIMIT 16
#define CONNECTION_MEMORY ((size_t)64 * 1024)
#define CONNECTION_TIMEOUT 120u          /* seconds a connection may sit idle */
#define JSON_DEPTH 8
#define JSON_OUT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define IMPORTS_TIMEOUT_MS 10000         /* the runner's answer to an import check */
#define TOKEN_MAX 1024                   /* bytes */

enum exec_state { EXEC_IDLE, EXEC_RUNNING, EXEC_DONE };

struct server {
	const struct server_options *o;
	const struct config *cfg;
	struct workspace ws;
	struct runner runner;
	pthread_mutex_t lock;   /* guards ready, state, lost and puts */
	int ready;
	enum exec_state state;
	int lost;               /* the runner was killed in an import check */
	unsigned signals_ignored; /* stop signals sent from inside our pid namespace */
	int puts;               /* PUTs begun: at most cfg->max_input_files */
	pthread_mutex_t talk;   /* one exchange with the runner at a time */
	uint64_t body_cap;      /* POST /execute */
	uint64_t output_cap;    /* per stream */
	int auth;               /* 1: every route but /healthz needs the token */
	int has_packages;       /* 1: a pod's, PUT /packages/... fills packages */
	struct podpkg packages;
	unsigned char token_digest[BEARER_DIGEST_LEN]; /* SHA-256 of the token; the token itself is not kept */
};

enum req_kind { REQ_DONE, REQ_PUT, REQ_PACKAGE, REQ_EXECUTE };

struct request {
	enum req_kind kind;     /* REQ_DONE: a response is queued already */
	unsigned status;        /* error found while reading the body, 0 if none */
	const char *error;
	struct ws_file file;    /* PUT */
	uint64_t received;
	int package;            /* file is a PUT /packages/ one (pod_packages.h) */
	uint64_t charged;       /* what the packages' limit was charged for it */
	int64_t mtime;          /* its ?mtime=, -1 for none */
	char *body;             /* POST /execute */
	size_t len, cap;
};

/* ---- responses ---------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
			     size_t len, const char *allow)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Sends obj and drops the reference. */
static enum MHD_Result reply_obj(struct MHD_Connection *c, unsigned status, json_object *obj)
{
	size_t len;
	const char *s = json_object_to_json_string_length(obj, JSON_OUT, &len);
	enum MHD_Result ret = reply(c, status, s, len, NULL);
	json_object_put(obj);
	return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	return reply_obj(c, status, o);
}

/* What a request without the pod's token gets: the shape of the service's
 * own 401 (FastAPI's). */
static enum MHD_Result reply_401(struct MHD_Connection *c)
{
	static const char body[] = "{\"detail\":\"Not authenticated\"}";
	struct MHD_Response *r =
		MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_405(struct MHD_Connection *c, const char *allow)
{
	static const char body[] = "{\"error\":\"method not allowed\"}";
	return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, body, sizeof(body) - 1, allow);
}

static unsigned ws_http_status(enum ws_status st)
{
	switch (st) {
	case WS_OK:
		return MHD_HTTP_OK;
	case WS_BAD_PATH:
	case WS_NOT_FOUND:
		return MHD_HTTP_BAD_REQUEST;
	case WS_NO_SPACE:
		return MHD_HTTP_INSUFFICIENT_STORAGE;
	case WS_IO:
		break;
	}
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static const char *ws_message(enum ws_status st)
{
	switch (st) {
	case WS_BAD_PATH:
	case WS_NOT_FOUND:
		return "the path is not a regular file under the workspace";
	case WS_NO_SPACE:
		return "the workspace is full";
	default:
		return "the file could not be written";
	}
}

/* ---- the pod's token ---------------------------------------------------- */

/* Takes EXECUTOR_TOKEN_ENV out of the environment at start: s keeps the SHA-256 of its
 * value only, the variable is unset and its bytes are wiped where they were
 * (so neither a child nor /proc/PID/environ shows it). 0, also when it is not
 * set (no token: every request is served, as in a local sandbox whose socket
 * is the service's alone); -1 when it is set but empty or over TOKEN_MAX
 * bytes: the server does not start rather than serve without it. */
static int take_token(struct server *s)
{
	char *value = env_take(EXECUTOR_TOKEN_ENV);
	if (!value)
		return 0;
	size_t len = strlen(value);
	int ok = len > 0 && len <= TOKEN_MAX;
	if (ok)
		bearer_sha256(value, len, s->token_digest);
	explicit_bzero(value, len);
	free(value);
	if (!ok) {
		log_error(EXECUTOR_TOKEN_ENV " is set but empty or longer than %d bytes; not serving", TOKEN_MAX);
		return -1;
	}
	s->auth = 1;
	return 0;
}

/* Whether the request may go on: no token to check, or `Authorization:
 * Bearer <token>`. Digests compared in constant time: neither the token's
 * bytes nor its length show in the time taken. */
static int authorized(const struct server *s, struct MHD_Connection *c)
{
	if (!s->auth)
		return 1;
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char digest[BEARER_DIGEST_LEN];
	return bearer_digest(v, TOKEN_MAX, digest) == 0 && bearer_equal(digest, s->token_digest);
}

/* ---- request parsing ---------------------------------------------------- */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decodes a URL path into a new string (the caller frees it); NULL when
 * an escape is malformed or decodes to NUL. MHD is told to leave paths alone
 * (no_unescape) so that %00 can be refused instead of silently cutting. */
static char *url_decode(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		int hi = hexval(s[i + 1]); /* s[n] is the NUL: never read past it */
		int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static int content_length(struct MHD_Connection *c, uint64_t *out)
{
	const char *v =
		MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!v || !isdigit((unsigned char)*v))
		return 0;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end)
		return 0;
	*out = n;
	return 1;
}

/* True when an object key in the (valid) JSON text contains the escape \u0000:
 * json-c cuts keys at NUL, so it has to be seen in the text. */
static int json_key_has_nul(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (s[i] != '"') {
			i++;
			continue;
		}
		int nul = 0;
		for (i++; i < len && s[i] != '"'; i++) {
			if (s[i] != '\\')
				continue;
			i++;
			if (i + 4 < len && s[i] == 'u' && memcmp(s + i + 1, "0000", 4) == 0)
				nul = 1;
		}
		i++;
		size_t j = i;
		while (j < len && isspace((unsigned char)s[j]))
			j++;
		if (nul && j < len && s[j] == ':')
			return 1;
	}
	return 0;
}

static const char *check_env(json_object *env)
{
	if (!json_object_is_type(env, json_type_object))
		return "env must be an object of strings";
	json_object_object_foreach(env, name, value) {
		if (!json_object_is_type(value, json_type_string))
			return "env values must be strings";
		const char *why = valid_env_name(name, strlen(name));
		if (why)
			return why;
		if ((size_t)json_object_get_string_len(value) != strlen(json_object_get_string(value)))
			return "env values must not contain NUL";
	}
	return NULL;
}

/* The cache directories a run's sys.path is given (docs/executor-protocol.md):
 * an array of at most PKG_MAX_PER_RUN distinct names valid per
 * pkg_dir_name_valid. NULL when acceptable, else the reason. */
static const char *check_packages(json_object *pkgs)
{
	if (!json_object_is_type(pkgs, json_type_array))
		return "packages must be an array of strings";
	size_t n = json_object_array_length(pkgs);
	if (n > PKG_MAX_PER_RUN)
		return "packages: too many entries (at most " STRINGIFY(PKG_MAX_PER_RUN) ")";
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(pkgs, i);
		if (!json_object_is_type(v, json_type_string))
			return "packages must be an array of strings";
		const char *name = json_object_get_string(v);
		if ((size_t)json_object_get_string_len(v) != strlen(name) || !pkg_dir_name_valid(name))
			return "packages: not a package cache directory name";
		for (size_t j = 0; j < i; j++)
			if (strcmp(name, json_object_get_string(json_object_array_get_idx(pkgs, j))) == 0)
				return "packages: duplicate entry";
	}
	return NULL;
}

/* What POST /execute asks besides the code: the time limit, whether the
 * listing goes below the workspace's top level, whether the import check comes
 * first. */
struct execute_options {
	double timeout;
	int subdirectories;
	int check_imports;
};

/* Validates the body of POST /execute. On success returns NULL, *out gets the
 * request for the runner ({"source_code", "env", "packages"}; the caller puts
 * it) and *opt the rest; otherwise returns the reason. */
static const char *parse_execute(const struct config *cfg, const char *body, size_t len,
				 json_object **out, struct execute_options *opt)
{
	if (len > INT_MAX)
		return "the body is too large";
	json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok)
		log_fatal("out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *root = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	const char *err = NULL;
	json_object *src = NULL, *env = NULL, *pkgs = NULL;
	*opt = (struct execute_options){.timeout = cfg->execution_timeout};
	if (!root || jerr != json_tokener_success) {
		err = "the body is not valid JSON";
		goto out;
	}
	for (size_t i = end; i < len; i++) {
		if (!isspace((unsigned char)body[i])) {
			err = "the body is not valid JSON";
			goto out;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		err = "the body must be a JSON object";
		goto out;
	}
	if (json_key_has_nul(body, len)) {
		err = "names must not contain NUL";
		goto out;
	}
	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "source_code") == 0) {
			if (!json_object_is_type(val, json_type_string)) {
				err = "source_code must be a string";
				goto out;
			}
			src = val;
		} else if (strcmp(key, "env") == 0) {
			if ((err = check_env(val)) != NULL)
				goto out;
			env = val;
		} else if (strcmp(key, "timeout") == 0) {
			double t = json_object_get_double(val);
			if ((!json_object_is_type(val, json_type_double) &&
			     !json_object_is_type(val, json_type_int)) || !isfinite(t) || t <= 0) {
				err = "timeout must be a number of seconds greater than 0";
				goto out;
			}
			opt->timeout = t > cfg->max_execution_timeout ? cfg->max_execution_timeout : t;
		} else if (strcmp(key, "packages") == 0) {
			if ((err = check_packages(val)) != NULL)
				goto out;
			pkgs = val;
		} else if (strcmp(key, "include_subdirectories") == 0) {
			if (!json_object_is_type(val, json_type_boolean)) {
				err = "include_subdirectories must be a boolean";
				goto out;
			}
			opt->subdirectories = json_object_get_boolean(val);
		} else if (strcmp(key, "check_imports") == 0) {
			if (!json_object_is_type(val, json_type_boolean)) {
				err = "check_imports must be a boolean";
				goto out;
			}
			opt->check_imports = json_object_get_boolean(val);
		} else {
			err = "unknown field (expected source_code, env, timeout, packages, include_subdirectories, "
			      "check_imports)";
			goto out;
		}
	}
	if (!src) {
		err = "source_code is required";
		goto out;
	}
	*out = json_object_new_object();
	json_object_object_add(*out, "source_code", json_object_get(src));
	json_object_object_add(*out, "env", env ? json_object_get(env) : json_object_new_object());
	json_object_object_add(*out, "packages", pkgs ? json_object_get(pkgs) : json_object_new_array());
out:
	json_object_put(root);
	return err;
}

/* ---- the execution ------------------------------------------------------ */

/* One output stream as the response carries it: the kept bytes, the truncation
 * marker, an extra closing line (the timeout message), all valid UTF-8. */
static json_object *stream_json(const struct run_stream *st, const char *tail)
{
	size_t cap = st->len + 96 + (tail ? strlen(tail) + 1 : 0);
	char *buf = xmalloc(cap);
	size_t n = st->len;
	if (st->len)
		memcpy(buf, st->data, st->len);
	if (st->total > st->len) {
		int k = snprintf(buf + n, cap - n, "\n[output truncated: %" PRIu64 " bytes dropped]\n",
				 st->total - st->len);
		n += (size_t)k;
	}
	if (tail) {
		if (n && buf[n - 1] != '\n')
			buf[n++] = '\n';
		memcpy(buf + n, tail, strlen(tail));
		n += strlen(tail);
	}
	size_t rlen;
	char *fixed = utf8_repair(buf, n, &rlen);
	free(buf);
	json_object *o = json_object_new_string_len(fixed, (int)rlen);
	free(fixed);
	return o;
}

/* memory_hit: the memory limit of the executor's own group (a pod's) killed a
 * process during the run; memory_limit: that limit in bytes, 0 if unknown. */
static json_object *result_json(const struct run_result *res, double timeout, char **files,
				size_t nfiles, int memory_hit, uint64_t memory_limit)
{
	int exit_code = -1, sig = 0;
	if (res->status_known && WIFSIGNALED(res->status)) {
		sig = WTERMSIG(res->status);
		exit_code = -sig;
	} else if (res->status_known && WIFEXITED(res->status)) {
		exit_code = WEXITSTATUS(res->status);
	}
	char *tail = NULL;
	if (res->timed_out) {
		exit_code = -1;
		tail = xasprintf("Execution timed out: the time limit of %g seconds was hit.\n", timeout);
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "stdout", stream_json(&res->out, NULL));
	json_object_object_add(o, "stderr", stream_json(&res->err, tail));
	json_object_object_add(o, "exit_code", json_object_new_int(exit_code));
	json_object_object_add(o, "timed_out", json_object_new_boolean(res->timed_out));
	json_object_object_add(o, "signal", json_object_new_int(sig));
	json_object_object_add(o, "stdout_bytes", json_object_new_int64((int64_t)res->out.total));
	json_object_object_add(o, "stderr_bytes", json_object_new_int64((int64_t)res->err.total));
	json_object_object_add(o, "duration_ms", json_object_new_int64(res->duration_ms));
	if (memory_hit) {
		json_object_object_add(o, "memory_limit_hit", json_object_new_boolean(1));
		if (memory_limit)
			json_object_object_add(o, "memory_limit_bytes",
					       json_object_new_int64((int64_t)memory_limit));
	}
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < nfiles; i++)
		json_object_array_add(arr, json_object_new_string(files[i]));
	json_object_object_add(o, "files", arr);
	free(tail);
	return o;
}

static int is_string_array(json_object *o, const char *key)
{
	json_object *a;
	if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_string))
			return 0;
	return 1;
}

/* The import check of the code about to run (executor/python/imports.py,
 * answered by the warm runner; protocol in runner.h): {"missing", "pip",
 * "source_code"}, or NULL when there is no usable answer (a runner that did
 * not answer was killed: s->lost is set). Caller holds s->talk. */
static json_object *import_check(struct server *s, json_object *code)
{
	json_object *req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("imports"));
	json_object_object_add(req, "source_code", json_object_get(code));
	size_t len, code_len = (size_t)json_object_get_string_len(code);
	const char *json = json_object_to_json_string_length(req, JSON_OUT, &len);
	char *text = NULL;
	/* every byte of the code may come back as a \u escape */
	int rc = runner_imports(&s->runner, json, len, IMPORTS_TIMEOUT_MS, 6 * code_len + 65536, &text);
	json_object_put(req);
	if (rc < 0) {
		pthread_mutex_lock(&s->lock);
		s->lost = 1;
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	json_object *out = json_tokener_parse(text);
	free(text);
	if (!out || !json_object_is_type(out, json_type_object) || !is_string_array(out, "missing") ||
	    !is_string_array(out, "pip") || !json_object_object_get_ex(out, "source_code", &code) ||
	    !json_object_is_type(code, json_type_string)) {
		log_warn("imports: the runner's answer is not the expected JSON object; running the code as it is");
		json_object_put(out);
		return NULL;
	}
	return out;
}

/* Whether the import check found something for the service to do first: a
 * module the code imports that is not there, or a pip line. */
static int import_check_found(json_object *answer)
{
	return json_object_array_length(json_object_object_get(answer, "missing")) > 0 ||
	       json_object_array_length(json_object_object_get(answer, "pip")) > 0;
}

/* Why this executor cannot run (or check) code now, as an HTTP status (0:
 * it can); with start, the execution is begun when it can. A runner that
 * ended before any execution (killed from outside: nothing of a request ran)
 * is 503 as one not ready yet: the caller may take another sandbox. */
static unsigned refusal(struct server *s, int start)
{
	int gone = runner_ended(&s->runner);
	pthread_mutex_lock(&s->lock);
	unsigned refuse = !s->ready ? MHD_HTTP_SERVICE_UNAVAILABLE :
			  s->lost ? MHD_HTTP_INTERNAL_SERVER_ERROR :
			  s->state != EXEC_IDLE ? MHD_HTTP_CONFLICT :
			  gone ? MHD_HTTP_SERVICE_UNAVAILABLE : 0;
	if (start && refuse != MHD_HTTP_SERVICE_UNAVAILABLE && refuse != MHD_HTTP_CONFLICT)
		s->state = refuse ? EXEC_DONE : EXEC_RUNNING;
	pthread_mutex_unlock(&s->lock);
	return refuse;
}

/* A 503 says "not_run": nothing of the request ran, and the caller may take
 * another executor (a 503 of anything between us and it would not say so). */
static enum MHD_Result reply_refusal(struct MHD_Connection *c, unsigned status)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(
		status == MHD_HTTP_CONFLICT ? "this executor has run its execution already" :
		status == MHD_HTTP_SERVICE_UNAVAILABLE ? "the runner is not ready, or has exited" :
		"the runner was lost in the import check"));
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		json_object_object_add(o, "not_run", json_object_new_boolean(1));
	return reply_obj(c, status, o);
}

/* POST /execute. With "check_imports": true the runner's import check comes
 * first; when it finds a missing module or a pip line the code does not run:
 * the answer is {"imports": {"missing", "pip", "source_code"}} and the
 * executor stays ready for package files and a later POST /execute. */
static enum MHD_Result execute(struct server *s, struct MHD_Connection *c, struct request *rq)
{
	json_object *req = NULL;
	struct execute_options opt;
	const char *err = parse_execute(s->cfg, rq->body ? rq->body : "", rq->len, &req, &opt);
	if (err)
		return reply_error(c, MHD_HTTP_BAD_REQUEST, err);
	free(rq->body);
	rq->body = NULL;
	/* refused at once when busy (a run holds the talk lock to its end); begun
	 * here unless the import check comes first, under the talk lock */
	unsigned refuse = refusal(s, !opt.check_imports);
	if (!refuse) {
		pthread_mutex_lock(&s->talk);
		if (opt.check_imports && !(refuse = refusal(s, 0))) {
			json_object *answer = import_check(s, json_object_object_get(req, "source_code"));
			if (answer && import_check_found(answer)) {
				pthread_mutex_unlock(&s->talk);
				json_object_put(req);
				json_object *out = json_object_new_object();
				json_object_object_add(out, "imports", answer);
				return reply_obj(c, MHD_HTTP_OK, out);
			}
			json_object_put(answer);
			refuse = refusal(s, 1);
		}
		if (refuse)
			pthread_mutex_unlock(&s->talk);
	}
	if (refuse) {
		json_object_put(req);
		return reply_refusal(c, refuse);
	}

	/* no more package files come: what was delivered is read-only for the code */
	if (s->has_packages)
		podpkg_seal(&s->packages);
	json_object_object_add(req, "op", json_object_new_string("execute"));
	size_t len;
	const char *json = json_object_to_json_string_length(req, JSON_OUT, &len);
	struct run_result res;
	/* a pod's memory limit is its group's: a kill there during the run is the
	 * code's (the server itself holds little); a local sandbox's group is
	 * read by the service, not here */
	int own_group = !s->o->sandboxed;
	uint64_t oom_before = own_group ? cgroup_self_oom_kills() : 0;
	runner_execute(&s->runner, json, len, opt.timeout, s->output_cap, &res);
	int memory_hit = own_group && !res.timed_out && cgroup_self_oom_kills() > oom_before;
	pthread_mutex_unlock(&s->talk);
	json_object_put(req);

	char **files = NULL;
	size_t nfiles = 0;
	if (ws_list_changed(&s->ws, opt.subdirectories, &files, &nfiles) < 0)
		log_warn("execute: the workspace listing is incomplete");
	json_object *out = result_json(&res, opt.timeout, files, nfiles, memory_hit,
				       memory_hit ? cgroup_self_memory_limit() : 0);
	log_info("execute: exit %d%s%s in %" PRId64 " ms, %zu bytes out, %zu bytes err, %zu files",
		 json_object_get_int(json_object_object_get(out, "exit_code")),
		 res.timed_out ? " (timed out)" : "", memory_hit ? " (memory limit hit)" : "", res.duration_ms, (size_t)res.out.total,
		 (size_t)res.err.total, nfiles);
	for (size_t i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	run_result_release(&res);

	pthread_mutex_lock(&s->lock);
	s->state = EXEC_DONE;
	pthread_mutex_unlock(&s->lock);
	return reply_obj(c, MHD_HTTP_OK, out);
}

/* ---- routes ------------------------------------------------------------- */

static enum MHD_Result healthz(struct server *s, struct MHD_Connection *c)
{
	int gone = runner_ended(&s->runner);
	pthread_mutex_lock(&s->lock);
	int ready = s->ready, idle = s->state == EXEC_IDLE;
	pthread_mutex_unlock(&s->lock);
	if (ready && !(idle && gone)) {
		static const char ok[] = "{\"status\":\"ok\"}";
		return reply(c, MHD_HTTP_OK, ok, sizeof(ok) - 1, NULL);
	}
	return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
			   ready ? "the runner has exited" : "the runner is starting");
}

static enum MHD_Result get_file(struct server *s, struct MHD_Connection *c, const char *raw)
{
	char *rel = url_decode(raw);
	uint64_t size = 0;
	int fd = rel ? ws_open_read(&s->ws, rel, &size) : -1;
	free(rel);
	if (fd < 0)
		return reply_error(c, MHD_HTTP_NOT_FOUND, "no such regular file in the workspace");
	struct MHD_Response *r = MHD_create_response_from_fd64(size, fd);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	/* an installer's files keep their times where they are fetched to: pip's
	 * compiled .pyc files name their source's modification time */
	struct stat st;
	struct tm tm;
	char date[64];
	if (fstat(fd, &st) == 0 && gmtime_r(&st.st_mtime, &tm) &&
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
		MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, date);
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result begin_put(struct server *s, struct MHD_Connection *c, const char *raw,
				 struct request *rq)
{
	char *rel = url_decode(raw);
	if (!rel || valid_workspace_rel(rel, strlen(rel)) != NULL) {
		free(rel);
		return reply_error(c, MHD_HTTP_BAD_REQUEST,
				   "invalid path: components must be non-empty, not . or .., without NUL");
	}
	uint64_t cl;
	if (content_length(c, &cl) && cl > s->cfg->sandbox_file_bytes) {
		free(rel);
		return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the file is larger than APP_SANDBOX_FILE_MB");
	}
	pthread_mutex_lock(&s->lock);
	int started = s->state != EXEC_IDLE;
	int too_many = !started && s->puts >= s->cfg->max_input_files;
	if (!started && !too_many)
		s->puts++;
	pthread_mutex_unlock(&s->lock);
	if (started) {
		free(rel);
		return reply_error(c, MHD_HTTP_CONFLICT, "the execution has started");
	}
	if (too_many) {
		free(rel);
		char msg[128];
		snprintf(msg, sizeof(msg), "too many files for one execution: at most %d (APP_MAX_INPUT_FILES)",
			 s->cfg->max_input_files);
		return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
	}
	enum ws_status st = ws_file_create(&s->ws, rel, &rq->file);
	free(rel);
	if (st != WS_OK)
		return reply_error(c, ws_http_status(st), ws_message(st));
	rq->kind = REQ_PUT;
	return MHD_YES;
}

static unsigned podpkg_http_status(enum podpkg_status st)
{
	switch (st) {
	case PODPKG_OK:
		return MHD_HTTP_CREATED;
	case PODPKG_BAD_PATH:
		return MHD_HTTP_BAD_REQUEST;
	case PODPKG_FULL:
		return MHD_HTTP_CONTENT_TOO_LARGE;
	case PODPKG_NO_SPACE:
		return MHD_HTTP_INSUFFICIENT_STORAGE;
	case PODPKG_IO:
		break;
	}
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static const char *podpkg_message(enum podpkg_status st)
{
	switch (st) {
	case PODPKG_BAD_PATH:
		return "invalid path: <package directory>/<path> without empty, . or .. components, "
		       "nothing on the way but directories, and not delivered before";
	case PODPKG_FULL:
		return "the packages are larger than APP_EXECUTOR_PACKAGES_MB (or too many files)";
	case PODPKG_NO_SPACE:
		return "the packages directory is full";
	default:
		return "the file could not be written";
	}
}

struct query {
	const char *mtime; /* the value of mtime, or NULL */
	int other;         /* another argument, or mtime twice */
};

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	struct query *q = cls;
	if (strcmp(key, "mtime") == 0 && value && !q->mtime)
		q->mtime = value;
	else
		q->other = 1;
	return MHD_YES;
}

/* The ?mtime= of a package file: seconds since the epoch, 1 to 12 digits;
 * -1 when there is none. 0, or -1 when the query is anything else. */
static int package_mtime(struct MHD_Connection *c, int64_t *out)
{
	struct query q = {NULL, 0};
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_arg, &q);
	*out = -1;
	if (q.other)
		return -1;
	if (!q.mtime)
		return 0;
	size_t n = strlen(q.mtime);
	if (n == 0 || n > 12 || strspn(q.mtime, "0123456789") != n)
		return -1;
	*out = (int64_t)strtoll(q.mtime, NULL, 10);
	return 0;
}

/* PUT /packages/<dir>/<path>: a file of a package cache directory the
 * service delivers to its pod (pod_packages.h), before the execution. */
static enum MHD_Result begin_package(struct server *s, struct MHD_Connection *c, const char *raw,
				     struct request *rq)
{
	char *rel = url_decode(raw);
	if (!rel || !pkg_file_path_valid(rel, strlen(rel))) {
		free(rel);
		return reply_error(c, MHD_HTTP_BAD_REQUEST, podpkg_message(PODPKG_BAD_PATH));
	}
	if (package_mtime(c, &rq->mtime) < 0) {
		free(rel);
		return reply_error(c, MHD_HTTP_BAD_REQUEST, "the only query is ?mtime=SECONDS (1 to 12 digits)");
	}
	uint64_t cl = 0;
	if (content_length(c, &cl) && cl > s->cfg->sandbox_file_bytes) {
		free(rel);
		return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the file is larger than APP_SANDBOX_FILE_MB");
	}
	pthread_mutex_lock(&s->lock);
	int started = s->state != EXEC_IDLE;
	pthread_mutex_unlock(&s->lock);
	if (started) {
		free(rel);
		return reply_error(c, MHD_HTTP_CONFLICT, "the execution has started");
	}
	enum podpkg_status st = podpkg_begin(&s->packages, rel, cl, &rq->file, &rq->charged);
	free(rel);
	if (st != PODPKG_OK)
		return reply_error(c, podpkg_http_status(st), podpkg_message(st));
	rq->kind = REQ_PACKAGE;
	rq->package = 1;
	return MHD_YES;
}

static enum MHD_Result begin(struct server *s, struct MHD_Connection *c, const char *url,
			     const char *method, struct request *rq)
{
	int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	/* the readiness probe's: open, it tells only whether the runner is warm */
	if (strcmp(url, "/healthz") == 0)
		return is_get ? healthz(s, c) : reply_405(c, "GET, HEAD");
	if (!authorized(s, c))
		return reply_401(c); /* before any route: unknown paths too */
	if (strcmp(url, "/execute") == 0) {
		if (strcmp(method, "POST") != 0)
			return reply_405(c, "POST");
		uint64_t cl;
		if (content_length(c, &cl) && cl > s->body_cap)
			return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large");
		rq->kind = REQ_EXECUTE;
		return MHD_YES;
	}
	if (strncmp(url, "/workspace/", 11) == 0 || strcmp(url, "/workspace") == 0) {
		const char *raw = url[10] ? url + 11 : "";
		if (is_get)
			return get_file(s, c, raw);
		if (strcmp(method, "PUT") == 0)
			return begin_put(s, c, raw, rq);
		return reply_405(c, "GET, HEAD, PUT");
	}
	if (strncmp(url, "/packages/", 10) == 0 || strcmp(url, "/packages") == 0) {
		/* a pod's route only: a local sandbox sees the cache itself */
		if (!s->has_packages)
			return reply_error(c, MHD_HTTP_NOT_FOUND, "this executor takes no packages (--packages)");
		if (strcmp(method, "PUT") != 0)
			return reply_405(c, "PUT");
		return begin_package(s, c, url[9] ? url + 10 : "", rq);
	}
	return reply_error(c, MHD_HTTP_NOT_FOUND, "not found");
}

static void fail(struct server *s, struct request *rq, unsigned status, const char *msg)
{
	rq->status = status;
	rq->error = msg;
	if (rq->kind == REQ_PUT)
		ws_file_abort(&rq->file);
	else if (rq->kind == REQ_PACKAGE)
		podpkg_abort(&s->packages, &rq->file, rq->charged);
	free(rq->body);
	rq->body = NULL;
	rq->len = rq->cap = 0;
}

static void take_body(struct server *s, struct request *rq, const char *data, size_t n)
{
	if (rq->status)
		return; /* discarding the rest of a refused body */
	if (rq->kind == REQ_PUT) {
		rq->received += n;
		if (rq->received > s->cfg->sandbox_file_bytes) {
			fail(s, rq, MHD_HTTP_CONTENT_TOO_LARGE, "the file is larger than APP_SANDBOX_FILE_MB");
			return;
		}
		enum ws_status st = ws_file_write(&rq->file, data, n);
		if (st != WS_OK)
			fail(s, rq, ws_http_status(st), ws_message(st));
	} else if (rq->kind == REQ_PACKAGE) {
		rq->received += n;
		enum podpkg_status st = rq->received > s->cfg->sandbox_file_bytes ? PODPKG_FULL
					: podpkg_charge(&s->packages, &rq->charged, rq->received);
		if (st == PODPKG_OK) {
			enum ws_status wst = ws_file_write(&rq->file, data, n);
			st = wst == WS_OK ? PODPKG_OK : wst == WS_NO_SPACE ? PODPKG_NO_SPACE : PODPKG_IO;
		}
		if (st != PODPKG_OK)
			fail(s, rq, podpkg_http_status(st), rq->received > s->cfg->sandbox_file_bytes
				? "the file is larger than APP_SANDBOX_FILE_MB" : podpkg_message(st));
	} else if (rq->kind == REQ_EXECUTE) {
		if (n > s->body_cap - rq->len) {
			fail(s, rq, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large");
			return;
		}
		if (rq->len + n > rq->cap) {
			rq->cap = rq->cap ? rq->cap : 4096;
			while (rq->cap < rq->len + n)
				rq->cap *= 2;
			rq->body = xrealloc(rq->body, rq->cap);
		}
		memcpy(rq->body + rq->len, data, n);
		rq->len += n;
	}
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	(void)version;
	struct server *s = cls;
	struct request *rq = *con_cls;
	if (!rq) {
		rq = xcalloc(1, sizeof(*rq));
		rq->file.fd = rq->file.dirfd = -1;
		rq->kind = REQ_DONE;
		*con_cls = rq;
		return begin(s, c, url, method, rq);
	}
	if (*upload_data_size) {
		take_body(s, rq, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	enum req_kind kind = rq->kind;
	rq->kind = REQ_DONE;
	if (kind == REQ_DONE)
		return MHD_YES;
	if (rq->status)
		return reply_error(c, rq->status, rq->error);
	if (kind == REQ_PUT) {
		enum ws_status st = ws_file_commit(&s->ws, &rq->file);
		if (st != WS_OK)
			return reply_error(c, ws_http_status(st), ws_message(st));
		return reply(c, MHD_HTTP_CREATED, "{}", 2, NULL);
	}
	if (kind == REQ_PACKAGE) {
		pthread_mutex_lock(&s->lock);
		int started = s->state != EXEC_IDLE;
		pthread_mutex_unlock(&s->lock);
		if (started) { /* the tree was sealed for the run meanwhile */
			podpkg_abort(&s->packages, &rq->file, rq->charged);
			return reply_error(c, MHD_HTTP_CONFLICT, "the execution has started");
		}
		enum podpkg_status st = podpkg_commit(&s->packages, &rq->file, rq->mtime, rq->charged);
		if (st != PODPKG_OK)
			return reply_error(c, podpkg_http_status(st), podpkg_message(st));
		return reply(c, MHD_HTTP_CREATED, "{}", 2, NULL);
	}
	return execute(s, c, rq);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	(void)c;
	(void)toe;
	struct request *rq = *con_cls;
	if (!rq)
		return;
	/* a PUT cut short leaves nothing behind */
	if (rq->package)
		podpkg_abort(&s->packages, &rq->file, rq->charged);
	else
		ws_file_abort(&rq->file);
	free(rq->body);
	free(rq);
	*con_cls = NULL;
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_warn("http: %s", buf);
}

/* ---- the process -------------------------------------------------------- */

static int listen_unix(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof(a.sun_path)) {
		log_error("socket path too long: %s", path);
		return -1;
	}
	memcpy(a.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a previous server's */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	/* group: the directory's (a sandbox's sock/ is setgid to the service
	 * user's group, whose workers connect; sandbox.c make_dirs) */
	if (rc < 0 || chmod(path, 0660) < 0 || listen(fd, 64) < 0) {
		log_error("listening on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_tcp(const char *host, int port)
{
	struct in_addr addr = {htonl(INADDR_ANY)};
	if (host && inet_pton(AF_INET, host, &addr) != 1) {
		log_error("--host %s: not an IPv4 address", host);
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr = addr};
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		log_error("listening on port %d: %s", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether the runner ended while ready and no execution had begun, with no
 * exchange with it under way (that one's handler tells its caller): no
 * execution can ever run here, so the server ends and its sandbox or pod is
 * replaced instead of being handed to a caller. */
static int unusable(struct server *s)
{
	if (pthread_mutex_trylock(&s->talk) != 0)
		return 0;
	int gone = runner_ended(&s->runner);
	pthread_mutex_lock(&s->lock);
	int idle = s->ready && s->state == EXEC_IDLE && !s->lost;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->talk);
	return idle && gone;
}

/* Waits for readiness and signals, and with d (an HTTP server without a
 * thread of its own) serves HTTP too. Returns 0 on SIGTERM/SIGINT, 1 when the
 * runner failed to become ready or ended before any execution. */
static int main_loop(struct server *s, int sfd, struct MHD_Daemon *d)
{
	int64_t t0 = monotonic_ms();
	const union MHD_DaemonInfo *info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (d && !info) {
		log_error("the HTTP server has no epoll descriptor");
		return 1;
	}
	for (;;) {
		struct pollfd p[3] = {{.fd = sfd, .events = POLLIN},
				      {.fd = info ? info->epoll_fd : -1, .events = POLLIN},
				      {.fd = s->runner.ready_fd, .events = POLLIN}};
		nfds_t n = s->runner.ready_fd >= 0 ? 3 : 2;
		int timeout = -1;
		MHD_UNSIGNED_LONG_LONG ms;
		if (d && MHD_get_timeout(d, &ms) == MHD_YES)
			timeout = ms < INT_MAX ? (int)ms : INT_MAX;
		if (poll(p, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return 1;
		}
		if (n == 3 && p[2].revents) {
			int r = runner_read_ready(&s->runner);
			if (r < 0) {
				char *why = runner_stderr_so_far(&s->runner);
				log_error("the runner exited before it was ready%s%s", why[0] ? ": " : "", why);
				free(why);
				return 1;
			}
			if (r > 0) {
				pthread_mutex_lock(&s->lock);
				s->ready = 1;
				pthread_mutex_unlock(&s->lock);
				log_info("runner ready in %" PRId64 " ms", monotonic_ms() - t0);
				if (s->o->ready_fd >= 0) {
					if (write_all(s->o->ready_fd, "R", 1) < 0)
						log_warn("ready fd: %s", strerror(errno));
					close(s->o->ready_fd);
				}
			}
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			int stop = 0;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				/* As pid 1, a stop comes from outside our pid namespace
				 * (the spawner, a container runtime: kill(2), a sender we
				 * cannot see, pid 0); from inside, it is the code's, which
				 * shares a pod's uid and may send it. A sender may write
				 * its own pid and code (rt_sigqueueinfo), but only a
				 * negative code: SI_USER and SI_KERNEL are the kernel's. */
				int outside = si.ssi_pid == 0 &&
					      (si.ssi_code == SI_USER || si.ssi_code == SI_KERNEL);
				if (getpid() == 1 && !outside) {
					if (!s->signals_ignored++) /* once: the code may send many */
						log_warn("signal %u from pid %u inside the sandbox ignored",
							 si.ssi_signo, si.ssi_pid);
					continue;
				}
				stop = 1;
			}
			runner_reap(&s->runner);
			if (stop) {
				log_info("stopping");
				return 0;
			}
			if (unusable(s)) {
				log_error("the runner exited before any execution; this executor can run none");
				return 1;
			}
		}
		if (d)
			MHD_run(d); /* an execution runs to its end in here */
	}
}

int server_run(const struct server_options *o)
{
	struct server s;
	memset(&s, 0, sizeof(s));
	s.o = o;
	s.cfg = o->cfg;
	pthread_mutex_init(&s.lock, NULL);
	pthread_mutex_init(&s.talk, NULL);
	s.body_cap = o->cfg->max_request_bytes < INT_MAX ? o->cfg->max_request_bytes : INT_MAX;
	/* config_load bounds it already; a hand-made config is held to it too */
	s.output_cap = o->cfg->max_output_bytes < CONFIG_MAX_OUTPUT_BYTES ? o->cfg->max_output_bytes
									   : CONFIG_MAX_OUTPUT_BYTES;
	const char *workspace = o->workspace ? o->workspace : "/workspace";
	char *runner_dir = o->runner_dir ? xstrdup(o->runner_dir)
					 : xasprintf("%s/executor/python", o->cfg->data_dir);
	int rc = 1, lfd = -1, sfd = -1, ws_ok = 0, runner_ok = 0;
	struct MHD_Daemon *d = NULL;

	/* Signals arrive through a signalfd in this thread; MHD's threads inherit
	 * the mask. SIGPIPE: a closed pipe or socket is an error return, not death. */
	sigset_t set, oldset;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, &oldset);
	struct sigaction ign = {.sa_handler = SIG_IGN}, oldpipe;
	sigaction(SIGPIPE, &ign, &oldpipe);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	/* A server whose code runs under its own uid (a pod's, `--lockdown
	 * process`) is not dumpable, before any code exists: the kernel then
	 * refuses that code our /proc/PID/mem, environ, fd, maps and the rest
	 * (ptrace's access check), so it can neither read the requests' bearer
	 * token in our memory nor rewrite the answer we build. A sandboxed
	 * server's code runs as another uid, refused all of that already. */
	if (!o->sandboxed && prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) < 0) {
		log_error("PR_SET_DUMPABLE: %s; not serving", strerror(errno));
		goto out;
	}
	/* before the runner is forked (its environment is built from scratch anyway) */
	if (take_token(&s) < 0)
		goto out;
	/* Unless we are pid 1 anyway, orphans of the code come to us to be reaped
	 * (and killed with the runner's group). */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));

	if (ws_open(&s.ws, workspace, o->sandboxed ? WS_CHOWN : 0) < 0)
		goto out;
	ws_ok = 1;
	if (o->packages_dir) {
		if (podpkg_open(&s.packages, o->packages_dir, o->cfg->executor_packages_bytes) < 0)
			goto out;
		s.has_packages = 1;
	}
	if (ws_snapshot(&s.ws) < 0)
		goto out;
	/* Listening before the runner starts: clients queue up and see 503 until
	 * it is ready. */
	lfd = o->socket_path ? listen_unix(o->socket_path) : listen_tcp(o->host, o->port);
	if (lfd < 0)
		goto out;
	int started = runner_start(&s.runner, o->cfg, runner_dir, workspace, o->sandboxed,
				   o->runner_request_fd);
	if (o->runner_request_fd >= 0)
		close(o->runner_request_fd); /* one runner per server */
	if (started < 0)
		goto out;
	runner_ok = 1;
	/* A local sandbox serves one worker, one request after another, and is
	 * thrown away after its execution (SIGKILL, not SIGTERM): its only thread
	 * serves HTTP between signals (a thread of its own would cost each sandbox
	 * a thread). A pod's server keeps a thread per connection: probes and
	 * SIGTERM arrive while code runs. */
	unsigned threads = o->sandboxed ? MHD_USE_EPOLL
					: MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
						  MHD_USE_POLL;
	d = MHD_start_daemon(threads | MHD_USE_ERROR_LOG,
			     0, NULL, NULL, handle, &s,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first, or MHD complains */
			     MHD_OPTION_LISTEN_SOCKET, lfd,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY,
			     MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT,
			     MHD_OPTION_NOTIFY_COMPLETED, completed, &s,
			     MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
			     MHD_OPTION_END);
	if (!d) {
		log_error("could not start the HTTP server");
		goto out;
	}
	lfd = -1; /* MHD closes it */
	rc = main_loop(&s, sfd, o->sandboxed ? d : NULL);
out:
	if (runner_ok)
		runner_kill(&s.runner); /* a running execution ends now */
	if (d)
		MHD_stop_daemon(d);
	if (runner_ok)
		runner_release(&s.runner);
	if (lfd >= 0)
		close(lfd);
	if (o->socket_path && (d || lfd >= 0))
		unlink(o->socket_path);
	if (ws_ok)
		ws_release(&s.ws);
	podpkg_release(&s.packages);
	if (sfd >= 0)
		close(sfd);
	sigaction(SIGPIPE, &oldpipe, NULL);
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	pthread_mutex_destroy(&s.lock);
	pthread_mutex_destroy(&s.talk);
	free(runner_dir);
	return rc;
}
