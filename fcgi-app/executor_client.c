/* executor_client: see executor_client.h. */
#include "executor_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* An answer's room besides its two output streams (the files list, numbers),
 * and each stream's besides its kept bytes (the truncation marker, the timeout
 * line). */
#define EXECUTOR_RESPONSE_BASE ((uint64_t)64 << 20)
#define EXECUTOR_STREAM_EXTRA 4096u
/* The most one byte of output takes in the answer: a control byte is \u00XX. */
#define EXECUTOR_ESCAPE_FACTOR 6u

void executor_init(struct executor_client *c, const char *endpoint, const char *token)
{
	memset(c, 0, sizeof(*c));
	c->curl = curl_easy_init();
	if (!c->curl)
		log_fatal("curl_easy_init failed");
	if (endpoint[0] == '/') {
		c->socket_path = xstrdup(endpoint);
		c->base = xstrdup("http://sandbox");
	} else {
		size_t n = strlen(endpoint);
		while (n > 0 && endpoint[n - 1] == '/')
			n--;
		c->base = xasprintf("%.*s", (int)n, endpoint);
	}
	if (token && token[0])
		c->auth = xasprintf("Authorization: Bearer %s", token);
}

void executor_release(struct executor_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	if (c->auth)
		explicit_bzero(c->auth, strlen(c->auth));
	free(c->auth);
	free(c->socket_path);
	free(c->base);
	memset(c, 0, sizeof(*c));
}

int executor_unused(const struct executor_client *c)
{
	return c->untouched && !c->answered;
}

/* base + "/" + route + "/" + each component of p (a validated relative
 * path) percent-encoded. */
static char *route_url(struct executor_client *c, const char *route, const char *p)
{
	CURL *curl = c->curl;
	size_t cap = strlen(c->base) + strlen(route) + 32 + strlen(p) * 3 + 1;
	char *url = xmalloc(cap);
	size_t o = (size_t)snprintf(url, cap, "%s/%s", c->base, route);
	while (*p) {
		size_t n = strcspn(p, "/");
		char *enc = curl_easy_escape(curl, p, (int)n);
		if (enc) {
			o += (size_t)snprintf(url + o, cap - o, "/%s", enc);
			curl_free(enc);
		} else {
			log_fatal("curl_easy_escape failed");
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return url;
}

/* The URL of path, which starts with /workspace/ and was validated. */
static char *workspace_url(struct executor_client *c, const char *path)
{
	return route_url(c, "workspace", path + strlen("/workspace/"));
}

/* Readies the handle for a request to url. Returns the request's header list,
 * the token's line in it when there is one (the caller appends its own, sets
 * CURLOPT_HTTPHEADER and frees it with curl_slist_free_all). */
static struct curl_slist *reset(struct executor_client *c, const char *url)
{
	CURL *curl = c->curl;
	curl_easy_reset(curl);
	if (c->socket_path)
		curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
	/* straight to the executor, never through the environment's http_proxy:
	 * the pod's token, the code and its outputs go to it alone */
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	c->error[0] = '\0';
	c->status = 0;
	return c->auth ? curl_slist_append(NULL, c->auth) : NULL;
}

struct fd_reader {
	int fd;
	uint64_t left;             /* bytes still to send */
	struct store_check *check; /* NULL: the bytes are sent as read */
	int changed;               /* the file ended early, or check refused it */
};

static size_t read_fd(char *buf, size_t size, size_t n, void *arg)
{
	struct fd_reader *r = arg;
	size_t want = size * n;
	if (want > r->left)
		want = (size_t)r->left;
	if (want == 0)
		return 0;
	ssize_t got;
	do
		got = read(r->fd, buf, want);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return CURL_READFUNC_ABORT;
	/* shorter than it was when opened: ended at once, not left to a timeout */
	if (got == 0 || (r->check && store_check_update(r->check, buf, (size_t)got) != STORE_OK)) {
		r->changed = 1;
		return CURL_READFUNC_ABORT;
	}
	r->left -= (uint64_t)got;
	return (size_t)got;
}

static int finish(struct executor_client *c, CURLcode rc, const char *what, long want)
{
	if (rc != CURLE_OK) {
		if (!c->error[0])
			snprintf(c->error, sizeof(c->error), "%s: %s", what, curl_easy_strerror(rc));
		c->untouched = rc == CURLE_COULDNT_CONNECT; /* nothing was sent */
		return -1;
	}
	long code = 0;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
	c->status = code;
	c->untouched = 0;
	c->answered |= code >= 200 && code < 300;
	if (code != want) {
		snprintf(c->error, sizeof(c->error), "%s: executor answered %ld", what, code);
		return -1;
	}
	return 0;
}

/* A PUT's answer is `{}` or an error the status tells: not kept (libcurl
 * would write it to stdout, the service's log). */
static size_t discard(char *ptr, size_t size, size_t n, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * n;
}

/* PUT url with size bytes of fd (checked by check when not NULL), within
 * timeout_ms. 0, EXECUTOR_CHANGED or -1 (c->error says what, naming it). */
static int put_fd(struct executor_client *c, const char *url, const char *what, int fd, uint64_t size,
		  struct store_check *check, long timeout_ms)
{
	struct curl_slist *h = reset(c, url);
	struct fd_reader r = {.fd = fd, .left = size, .check = check};
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, read_fd);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, &r);
	curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, discard);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	int rc = finish(c, curl_easy_perform(c->curl), what, 201);
	curl_slist_free_all(h);
	return r.changed ? EXECUTOR_CHANGED : rc;
}

int executor_put_file(struct executor_client *c, const char *path, int fd, uint64_t size, struct store_check *check)
{
	char *url = workspace_url(c, path);
	int rc = put_fd(c, url, "upload", fd, size, check, 120000L);
	free(url);
	return rc;
}

int executor_put_package_file(struct executor_client *c, const char *rel, int fd, uint64_t size, int64_t mtime,
			      long timeout_ms)
{
	char *path = route_url(c, "packages", rel);
	char *url = mtime >= 0 ? xasprintf("%s?mtime=%lld", path, (long long)mtime) : xstrdup(path);
	free(path);
	int rc = put_fd(c, url, "package upload", fd, size, NULL, timeout_ms > 0 ? timeout_ms : 1L);
	free(url);
	if (rc == EXECUTOR_CHANGED) {
		snprintf(c->error, sizeof(c->error), "package upload: %.200s ended before its size", rel);
		rc = -1;
	}
	return rc;
}


uint64_t executor_response_limit(uint64_t max_output_bytes)
{
	return EXECUTOR_RESPONSE_BASE + 2 * EXECUTOR_ESCAPE_FACTOR * (max_output_bytes + EXECUTOR_STREAM_EXTRA);
}

/* POST /what with a JSON body; *out gets the parsed JSON object, of at most
 * limit bytes. 0 or -1. */
static int post_json(struct executor_client *c, const char *what, json_object *body, long timeout_ms, uint64_t limit,
		     json_object **out)
{
	*out = NULL;
	char *url = xasprintf("%s/%s", c->base, what);
	struct curl_slist *h = reset(c, url);
	free(url);
	size_t len;
	const char *text = json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN, &len);
	struct membuf b = {NULL, 0, (size_t)limit};
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, membuf_append);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	int rc = finish(c, curl_easy_perform(c->curl), what, 200);
	curl_slist_free_all(h);
	if (rc < 0 && c->status == 503) { /* the executor's own refusal says so */
		json_object *o = b.data ? json_tokener_parse(b.data) : NULL;
		json_object *v;
		c->untouched = o && json_object_object_get_ex(o, "not_run", &v) && json_object_get_boolean(v);
		json_object_put(o);
	}
	if (rc == 0) {
		*out = b.data ? json_tokener_parse(b.data) : NULL;
		if (!*out || !json_object_is_type(*out, json_type_object)) {
			json_object_put(*out);
			*out = NULL;
			snprintf(c->error, sizeof(c->error), "%s: the executor's answer is not a JSON object", what);
			rc = -1;
		}
	}
	free(b.data);
	return rc;
}

int executor_execute(struct executor_client *c, json_object *body, double timeout_s, uint64_t max_output_bytes,
		     json_object **out)
{
	/* the executor enforces the limit itself; this is the guard if it cannot */
	return executor_execute_within(c, body, timeout_s, executor_response_limit(max_output_bytes), out);
}

int executor_execute_within(struct executor_client *c, json_object *body, double timeout_s, uint64_t limit,
			    json_object **out)
{
	return post_json(c, "execute", body, (long)(timeout_s * 1000) + 30000L, limit, out);
}

/* Where a download goes: the store (w) or a file (fd, at most max bytes). */
struct sink {
	struct store_writer *w;
	int fd;
	uint64_t max, written;
	int too_large;
};

static size_t write_sink(char *ptr, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	if (s->w) {
		enum store_status st = store_writer_write(s->w, ptr, size * n);
		if (st == STORE_TOO_LARGE)
			s->too_large = 1;
		return st == STORE_OK ? size * n : 0;
	}
	if (size * n > s->max - s->written) {
		s->too_large = 1;
		return 0;
	}
	if (write_all(s->fd, ptr, size * n) < 0)
		return 0;
	s->written += size * n;
	return size * n;
}

/* GET /workspace/{path} into s; *mtime (when not NULL) gets Last-Modified,
 * or -1. 0, 1 when too large, or -1 (c->error). */
static int get_into(struct executor_client *c, const char *path, struct sink *s, long timeout_ms, int64_t *mtime)
{
	char *url = workspace_url(c, path);
	struct curl_slist *h = reset(c, url);
	if (h)
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_sink);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (mtime)
		curl_easy_setopt(c->curl, CURLOPT_FILETIME, 1L);
	int rc = finish(c, curl_easy_perform(c->curl), "download", 200);
	if (mtime) {
		curl_off_t t = -1;
		*mtime = rc == 0 && curl_easy_getinfo(c->curl, CURLINFO_FILETIME_T, &t) == CURLE_OK ? (int64_t)t : -1;
	}
	curl_slist_free_all(h);
	free(url);
	return s->too_large ? 1 : rc;
}

int executor_get_file(struct executor_client *c, const char *path, struct store_writer *w)
{
	struct sink s = {.w = w, .fd = -1};
	return get_into(c, path, &s, 120000L, NULL);
}

int executor_get_file_fd(struct executor_client *c, const char *path, int fd, uint64_t max, long timeout_ms,
			 uint64_t *written, int64_t *mtime)
{
	struct sink s = {.fd = fd, .max = max};
	int rc = get_into(c, path, &s, timeout_ms, mtime);
	*written = s.written;
	return rc;
}
