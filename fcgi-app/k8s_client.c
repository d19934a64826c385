/* k8s_client: see k8s_client.h. One blocking CURL handle for the calls, a
 * separate multi handle per watch; the token is read from its file when older
 * than a minute and after a 401, never cached longer. */
#include "k8s_client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define TOKEN_MAX_AGE_MS 60000
#define MAX_BODY (32u << 20)
#define MAX_LINE (8u << 20)
#define CALL_TIMEOUT_MS 15000L

/* Reads a small file, trimmed of surrounding white space. NULL on failure. */
static char *read_small_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = xmalloc(65537);
	ssize_t n = read_all(fd, buf, 65536);
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	size_t skip = strspn(buf, " \t\r\n");
	memmove(buf, buf + skip, (size_t)n - skip + 1);
	return buf;
}

static void read_token(struct k8s_client *k)
{
	if (!k->token_file)
		return;
	char *t = read_small_file(k->token_file);
	if (!t) {
		log_warn("kubernetes: cannot read the token file %s: %s", k->token_file, strerror(errno));
		return; /* keep the old one: a rotation may be half done */
	}
	free(k->token);
	k->token = t;
	k->token_read_ms = monotonic_ms();
}

void k8s_client_token_stale(struct k8s_client *k)
{
	k->token_read_ms = 0;
}

int k8s_client_init(struct k8s_client *k, const struct config *cfg, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->max_attempts = 5;
	k->max_backoff_ms = 5000;
	if (cfg->k8s_api_url[0]) {
		size_t n = strlen(cfg->k8s_api_url);
		while (n > 0 && cfg->k8s_api_url[n - 1] == '/')
			n--;
		k->base = xasprintf("%.*s", (int)n, cfg->k8s_api_url);
		if (cfg->k8s_token_file[0])
			k->token_file = xstrdup(cfg->k8s_token_file);
		if (cfg->k8s_ca_file[0])
			k->ca_file = xstrdup(cfg->k8s_ca_file);
	} else {
		const char *host = getenv("KUBERNETES_SERVICE_HOST");
		const char *port = getenv("KUBERNETES_SERVICE_PORT");
		if (!host || !*host) {
			snprintf(err, errlen, "not in a cluster (KUBERNETES_SERVICE_HOST is unset) and "
					      "APP_KUBERNETES_API_URL is empty");
			return -1;
		}
		k->base = xasprintf(strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
				    port && *port ? port : "443");
		k->token_file = xstrdup(cfg->k8s_token_file[0] ? cfg->k8s_token_file : SA_DIR "/token");
		k->ca_file = xstrdup(cfg->k8s_ca_file[0] ? cfg->k8s_ca_file : SA_DIR "/ca.crt");
	}
	if (cfg->k8s_namespace[0])
		k->ns = xstrdup(cfg->k8s_namespace);
	else if (!(k->ns = read_small_file(SA_DIR "/namespace")) || !k->ns[0]) {
		free(k->ns);
		k->ns = xstrdup("default");
	}
	if (k->token_file) {
		read_token(k);
		if (!k->token) {
			snprintf(err, errlen, "cannot read the token file %s", k->token_file);
			k8s_client_release(k);
			return -1;
		}
	}
	k->curl = curl_easy_init();
	if (!k->curl)
		log_fatal("curl_easy_init failed");
	return 0;
}

void k8s_client_release(struct k8s_client *k)
{
	if (k->curl)
		curl_easy_cleanup(k->curl);
	free(k->base);
	free(k->ns);
	free(k->token_file);
	free(k->token);
	free(k->ca_file);
	memset(k, 0, sizeof(*k));
}

/* --- parsing ------------------------------------------------------------- */

enum k8s_rc k8s_rc_from_http(long http)
{
	if (http >= 200 && http < 300)
		return K8S_OK;
	switch (http) {
	case 404:
		return K8S_NOT_FOUND;
	case 409:
		return K8S_CONFLICT;
	case 410:
		return K8S_GONE;
	case 429:
		return K8S_UNAVAILABLE;
	default:
		return http >= 500 || http == 0 ? K8S_UNAVAILABLE : K8S_REFUSED;
	}
}

void k8s_status_parse(long http, const char *body, size_t len, struct k8s_status *st)
{
	st->http = http;
	st->code = http;
	st->reason[0] = '\0';
	st->message[0] = '\0';
	if (!body || !len)
		return;
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, body, (int)(len > INT32_MAX ? INT32_MAX : len));
	json_tokener_free(tok);
	json_object *v;
	if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "kind", &v) &&
	    strcmp(json_object_get_string(v), "Status") == 0) {
		if (json_object_object_get_ex(o, "code", &v) && json_object_is_type(v, json_type_int))
			st->code = (long)json_object_get_int64(v);
		if (json_object_object_get_ex(o, "reason", &v))
			snprintf(st->reason, sizeof(st->reason), "%s", json_object_get_string(v));
		if (json_object_object_get_ex(o, "message", &v))
			snprintf(st->message, sizeof(st->message), "%s", json_object_get_string(v));
	} else if (http < 200 || http >= 300) {
		/* plain text (a 429 from a proxy, say): its first line */
		size_t n = strcspn(body, "\r\n");
		if (n > len)
			n = len;
		if (n >= sizeof(st->message))
			n = sizeof(st->message) - 1;
		memcpy(st->message, body, n);
		st->message[n] = '\0';
	}
	json_object_put(o);
}

double k8s_parse_retry_after(const char *value)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (!*value)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(value, &end);
	if (end != value && !errno && isfinite(v) && v >= 0) {
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (!*end)
			return v;
	}
	time_t t = curl_getdate(value, NULL);
	if (t == (time_t)-1)
		return -1;
	double d = difftime(t, time(NULL));
	return d > 0 ? d : 0;
}

int64_t k8s_backoff_ms(int attempt, double retry_after, int64_t max_ms)
{
	int64_t ms;
	if (retry_after >= 0)
		ms = (int64_t)(retry_after * 1000);
	else
		ms = 200LL << (attempt > 1 ? (attempt - 1 < 10 ? attempt - 1 : 10) : 0);
	return ms < max_ms ? ms : max_ms;
}

/* --- requests ------------------------------------------------------------ */


static size_t header_cb(char *ptr, size_t size, size_t n, void *arg)
{
	double *retry_after = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		char v[128];
		size_t vl = len - (sizeof(name) - 1);
		if (vl >= sizeof(v))
			vl = sizeof(v) - 1;
		memcpy(v, ptr + sizeof(name) - 1, vl);
		v[vl] = '\0';
		*retry_after = k8s_parse_retry_after(v);
	}
	return len;
}

/* Auth and TLS options shared by the calls and the watch. */
static struct curl_slist *setup(struct k8s_client *k, CURL *c, const char *url, int json_body)
{
	if (k->token_file && monotonic_ms() - k->token_read_ms > TOKEN_MAX_AGE_MS)
		read_token(k);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (k->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	if (json_body)
		h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	if (k->token) {
		char *auth = xasprintf("Authorization: Bearer %s", k->token);
		h = curl_slist_append(h, auth);
		free(auth);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	return h;
}

/* One call with its retries. path is below the namespace's pods URL. */
static enum k8s_rc call(struct k8s_client *k, const char *method, const char *path, const char *body,
			json_object **out, struct k8s_status *st)
{
	struct k8s_status dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	st->retry_after = -1;
	if (out)
		*out = NULL;
	char *url = xasprintf("%s/api/v1/namespaces/%s/pods%s", k->base, k->ns, path);
	enum k8s_rc rc = K8S_UNAVAILABLE;
	int reauth = 0;
	for (int attempt = 0; attempt < k->max_attempts; attempt++) {
		CURL *c = k->curl;
		curl_easy_reset(c);
		struct curl_slist *h = setup(k, c, url, body != NULL);
		struct membuf b = {NULL, 0, MAX_BODY};
		double retry_after = -1;
		char errbuf[CURL_ERROR_SIZE] = "";
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		if (body) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		}
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, membuf_append);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &retry_after);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, CALL_TIMEOUT_MS);
		CURLcode cc = curl_easy_perform(c);
		curl_slist_free_all(h);
		st->attempts++;
		long http = 0;
		if (cc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
		k8s_status_parse(http, b.data, b.len, st);
		st->retry_after = retry_after;
		if (cc != CURLE_OK)
			snprintf(st->message, sizeof(st->message), "%s %s: %s", method, url,
				 errbuf[0] ? errbuf : curl_easy_strerror(cc));
		rc = k8s_rc_from_http(http);
		if (rc == K8S_OK && out) {
			*out = b.data ? json_tokener_parse(b.data) : NULL;
			if (!*out || !json_object_is_type(*out, json_type_object)) {
				json_object_put(*out);
				*out = NULL;
				snprintf(st->message, sizeof(st->message), "%s %s: the answer is not a JSON object",
					 method, url);
				rc = K8S_UNAVAILABLE;
			}
		}
		free(b.data);
		if (rc == K8S_OK)
			break;
		if (http == 401 && !reauth && k->token_file) {
			/* the token may have rotated: read it again, once */
			reauth = 1;
			read_token(k);
			continue;
		}
		if (rc != K8S_UNAVAILABLE)
			break;
		/* a lost connection or 5xx may hide a change the server made */
		if (http == 0 || http >= 500)
			st->ambiguous = 1;
		if (attempt + 1 < k->max_attempts) {
			int64_t wait = k8s_backoff_ms(attempt + 1, retry_after, k->max_backoff_ms);
			log_warn("kubernetes: %s %s: %ld %s; retrying in %lld ms", method, path[0] ? path : "pods",
				 http, st->message, (long long)wait);
			struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	free(url);
	return rc;
}

enum k8s_rc k8s_pod_create(struct k8s_client *k, json_object *pod, json_object **out, struct k8s_status *st)
{
	const char *text = json_object_to_json_string_ext(pod, JSON_C_TO_STRING_PLAIN);
	return call(k, "POST", "", text, out, st);
}

static char *escape(struct k8s_client *k, const char *s)
{
	char *e = curl_easy_escape(k->curl, s, 0);
	if (!e)
		log_fatal("curl_easy_escape failed");
	char *r = xstrdup(e);
	curl_free(e);
	return r;
}

enum k8s_rc k8s_pod_get(struct k8s_client *k, const char *name, json_object **out, struct k8s_status *st)
{
	char *n = escape(k, name);
	char *path = xasprintf("/%s", n);
	enum k8s_rc rc = call(k, "GET", path, NULL, out, st);
	free(path);
	free(n);
	return rc;
}

enum k8s_rc k8s_pod_list(struct k8s_client *k, const char *selector, json_object **out, struct k8s_status *st)
{
	char *sel = escape(k, selector);
	char *path = xasprintf("?labelSelector=%s", sel);
	enum k8s_rc rc = call(k, "GET", path, NULL, out, st);
	free(path);
	free(sel);
	return rc;
}

enum k8s_rc k8s_pod_delete(struct k8s_client *k, const char *name, int grace_s, struct k8s_status *st)
{
	char *n = escape(k, name);
	char *path = xasprintf("/%s", n);
	char *body = xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"DeleteOptions\",\"gracePeriodSeconds\":%d,"
			       "\"propagationPolicy\":\"Background\"}", grace_s);
	enum k8s_rc rc = call(k, "DELETE", path, body, NULL, st);
	free(body);
	free(path);
	free(n);
	return rc == K8S_NOT_FOUND ? K8S_OK : rc;
}

/* --- watch --------------------------------------------------------------- */

void k8s_watch_init(struct k8s_watch *w, void (*on_event)(const char *, json_object *, void *), void *arg)
{
	memset(w, 0, sizeof(*w));
	w->on_event = on_event;
	w->arg = arg;
	w->multi = curl_multi_init();
	if (!w->multi)
		log_fatal("curl_multi_init failed");
}

static void watch_stop(struct k8s_watch *w)
{
	if (w->easy) {
		curl_multi_remove_handle(w->multi, w->easy);
		curl_easy_cleanup(w->easy);
		w->easy = NULL;
	}
	curl_slist_free_all(w->headers);
	w->headers = NULL;
	free(w->url);
	w->url = NULL;
	w->len = 0;
	w->running = 0;
}

void k8s_watch_release(struct k8s_watch *w)
{
	watch_stop(w);
	if (w->multi)
		curl_multi_cleanup(w->multi);
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static void watch_line(struct k8s_watch *w, const char *line, size_t len)
{
	if (len == 0)
		return;
	json_tokener *tok = json_tokener_new();
	json_object *ev = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	json_object *type, *obj;
	if (!ev || !json_object_object_get_ex(ev, "type", &type) || !json_object_object_get_ex(ev, "object", &obj)) {
		log_warn("kubernetes: watch: not an event: %.120s", line);
		json_object_put(ev);
		return;
	}
	const char *t = json_object_get_string(type);
	if (strcmp(t, "ERROR") == 0) {
		struct k8s_status st;
		const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
		k8s_status_parse(0, s, strlen(s), &st);
		if (st.code == 410)
			w->gone = 1;
		else
			log_warn("kubernetes: watch error %ld %s: %s", st.code, st.reason, st.message);
	} else {
		w->events++;
		w->on_event(t, obj, w->arg);
	}
	json_object_put(ev);
}

static size_t watch_write(char *ptr, size_t size, size_t n, void *arg)
{
	struct k8s_watch *w = arg;
	size_t len = size * n;
	long http = 0;
	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &http);
	if (http != 200) {
		/* an error status: keep its body for the 410 check, bounded */
		if (w->len + len > 65536)
			return len;
	} else if (w->len + len > MAX_LINE) {
		log_error("kubernetes: watch: an event is larger than %u bytes", MAX_LINE);
		return 0;
	}
	if (w->len + len + 1 > w->cap) {
		w->cap = (w->len + len + 1) * 2;
		w->buf = xrealloc(w->buf, w->cap);
	}
	memcpy(w->buf + w->len, ptr, len);
	w->len += len;
	w->buf[w->len] = '\0';
	if (http != 200)
		return len;
	size_t start = 0;
	for (;;) {
		char *nl = memchr(w->buf + start, '\n', w->len - start);
		if (!nl)
			break;
		size_t end = (size_t)(nl - w->buf);
		watch_line(w, w->buf + start, end - start);
		start = end + 1;
	}
	memmove(w->buf, w->buf + start, w->len - start);
	w->len -= start;
	return len;
}

int k8s_watch_start(struct k8s_client *k, struct k8s_watch *w, const char *selector,
		    const char *resource_version, int timeout_s)
{
	watch_stop(w);
	w->gone = 0;
	w->http = 0;
	char *sel = escape(k, selector);
	char *rv = escape(k, resource_version ? resource_version : "");
	w->url = xasprintf("%s/api/v1/namespaces/%s/pods?watch=1&allowWatchBookmarks=true&labelSelector=%s"
			   "&timeoutSeconds=%d%s%s", k->base, k->ns, sel, timeout_s, rv[0] ? "&resourceVersion=" : "",
			   rv);
	free(sel);
	free(rv);
	w->easy = curl_easy_init();
	if (!w->easy)
		log_fatal("curl_easy_init failed");
	w->headers = setup(k, w->easy, w->url, 0);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	/* the server closes at timeoutSeconds; this guards against one that does not */
	curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, (long)(timeout_s + 30) * 1000L);
	/* a silent connection for this long is dead (bookmarks come far more often) */
	curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_TIME, 120L);
	if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK) {
		watch_stop(w);
		return -1;
	}
	w->running = 1;
	return 0;
}

int k8s_watch_poll(struct k8s_watch *w, const int *fds, int n_fds, int timeout_ms)
{
	struct curl_waitfd extra[8];
	if (n_fds > 8)
		n_fds = 8;
	for (int i = 0; i < n_fds; i++)
		extra[i] = (struct curl_waitfd){.fd = fds[i], .events = CURL_WAIT_POLLIN};
	curl_multi_poll(w->multi, extra, (unsigned)n_fds, timeout_ms, NULL);
	if (!w->running)
		return 0;
	int still = 0;
	curl_multi_perform(w->multi, &still);
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE || msg->easy_handle != w->easy)
			continue;
		long http = 0;
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &http);
		else
			log_warn("kubernetes: watch ended: %s", curl_easy_strerror(msg->data.result));
		if (http != 200 && http != 0) {
			struct k8s_status st;
			k8s_status_parse(http, w->buf, w->len, &st);
			if (http == 410 || st.code == 410)
				w->gone = 1;
			else
				log_warn("kubernetes: watch refused: %ld %s %s", http, st.reason, st.message);
		}
		w->http = http;
		watch_stop(w);
		return 0;
	}
	return 1;
}
