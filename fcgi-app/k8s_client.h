/* k8s_client: a small Kubernetes REST client for pods, over libcurl and json-c:
 * create, get, list by label selector, delete, and a watch stream. Owns auth
 * (bearer token re-read every minute and after a 401; CA bundle), Status parsing
 * and bounded retries (429 with Retry-After, 5xx, dropped connections). It never
 * decides what a pod means; that is k8s_pod and the pool's business. */
#ifndef K8S_CLIENT_H
#define K8S_CLIENT_H

#include <stdint.h>
#include <json-c/json.h>

#include "config.h"

enum k8s_rc {
	K8S_OK = 0,
	K8S_NOT_FOUND,   /* 404 */
	K8S_CONFLICT,    /* 409, e.g. AlreadyExists */
	K8S_GONE,        /* 410 Expired: the resourceVersion is too old */
	K8S_REFUSED,     /* another 4xx (400, 401 after a token re-read, 403, 422) */
	K8S_UNAVAILABLE, /* 429, 5xx or no connection, still so after the retries */
};

/* What the API server said, from a Kubernetes Status object when it sent one. */
struct k8s_status {
	long http;           /* HTTP status; 0 when no answer came */
	long code;           /* Status.code (http when there was no Status) */
	char reason[64];     /* Status.reason, e.g. "AlreadyExists", "Expired" */
	char message[256];   /* Status.message, the body's first line, or the curl error */
	double retry_after;  /* seconds from Retry-After; -1 when absent */
	int ambiguous;       /* an earlier attempt of this call may have taken effect */
	int attempts;        /* requests made for this call */
};

struct k8s_client {
	char *base;          /* "https://host:port", no trailing slash; owned */
	char *ns;            /* namespace; owned */
	char *token_file;    /* owned; NULL: no token */
	char *token;         /* owned; NULL: none read */
	int64_t token_read_ms; /* monotonic */
	char *ca_file;       /* owned; NULL: the system's CAs */
	void *curl;          /* owned CURL * for the blocking calls */
	int max_attempts;    /* per call, default 5 */
	int64_t max_backoff_ms; /* cap of one wait, default 5000 */
};

/* Sets the client up from cfg: APP_KUBERNETES_API_URL (with optional token and
 * CA files), else in cluster from KUBERNETES_SERVICE_HOST/PORT and the service
 * account's token, ca.crt and namespace. 0, or -1 with a reason in err. */
int k8s_client_init(struct k8s_client *k, const struct config *cfg, char *err, size_t errlen);
/* Frees everything; safe on a zeroed or released client. */
void k8s_client_release(struct k8s_client *k);
/* Forgets the token so that the next request reads the file again. */
void k8s_client_token_stale(struct k8s_client *k);

/* POST the pod. *out (may be NULL) gets the created pod; the caller puts it.
 * K8S_CONFLICT with st->ambiguous set means an earlier attempt (lost
 * connection, 5xx) may have created it: GET it before picking a new name. */
enum k8s_rc k8s_pod_create(struct k8s_client *k, json_object *pod, json_object **out, struct k8s_status *st);
enum k8s_rc k8s_pod_get(struct k8s_client *k, const char *name, json_object **out, struct k8s_status *st);
/* GET the PodList matching selector (label selector syntax). *out: the list. */
enum k8s_rc k8s_pod_list(struct k8s_client *k, const char *selector, json_object **out, struct k8s_status *st);
/* DELETE with gracePeriodSeconds and propagationPolicy=Background; a pod that is
 * already gone (404) counts as deleted: K8S_OK. */
enum k8s_rc k8s_pod_delete(struct k8s_client *k, const char *name, int grace_s, struct k8s_status *st);

/* A watch of pods: newline-delimited JSON events over one long response, driven
 * by k8s_watch_poll. Events go to on_event (type "ADDED", "MODIFIED", "DELETED",
 * "BOOKMARK"; obj borrowed). An ERROR event with code 410 sets gone. */
struct k8s_watch {
	void *multi;         /* owned CURLM * */
	void *easy;          /* owned CURL * while a watch runs */
	void *headers;       /* owned struct curl_slist * */
	char *url;           /* owned */
	char *buf;           /* partial line */
	size_t len, cap;
	int running;
	int gone;            /* 410 Expired seen in the stream or as the status */
	long http;           /* status of the finished watch; 0 on a transport error */
	int64_t events;      /* events delivered since start */
	void (*on_event)(const char *type, json_object *obj, void *arg);
	void *arg;
};

void k8s_watch_init(struct k8s_watch *w, void (*on_event)(const char *, json_object *, void *), void *arg);
void k8s_watch_release(struct k8s_watch *w);
/* Starts watching from resource_version (NULL or "": from now), closed by the
 * server after timeout_s. 0, or -1. */
int k8s_watch_start(struct k8s_client *k, struct k8s_watch *w, const char *selector,
		    const char *resource_version, int timeout_s);
/* Waits up to timeout_ms for the watch or any of the extra fds (POLLIN), and
 * delivers what arrived. Returns 1 while the watch runs, 0 once it has ended
 * (w->http, w->gone tell how) or when none was started. */
int k8s_watch_poll(struct k8s_watch *w, const int *fds, int n_fds, int timeout_ms);

/* --- parsing, exposed for the unit tests --------------------------------- */
/* Fills st from an HTTP status and body (a Status object, or any text). */
void k8s_status_parse(long http, const char *body, size_t len, struct k8s_status *st);
/* Seconds from a Retry-After value (delta seconds or an HTTP date); -1 if neither. */
double k8s_parse_retry_after(const char *value);
/* Wait before attempt number `attempt` (1 = the first retry): Retry-After when
 * given, else 200 ms doubling; never above max_ms. */
int64_t k8s_backoff_ms(int attempt, double retry_after, int64_t max_ms);
/* Maps an HTTP status to a result (2xx K8S_OK). */
enum k8s_rc k8s_rc_from_http(long http);

#endif
