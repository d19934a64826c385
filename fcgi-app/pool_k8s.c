/* pool_k8s: the pool manager of the kubernetes backend. Keeps cfg->pool_size
 * executor pods starting or ready, learns their state from one pod watch (list
 * again after 410), deletes each pod after its single use, and at start deletes
 * the pods that a previous run of this instance left (found by label). Each pod
 * is created with its own token (pod_token.h), which workers send it. */
#include "pool_backend.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "k8s_client.h"
#include "k8s_pod.h"
#include "log.h"
#include "pod_token.h"
#include "util.h"

#define WATCH_TIMEOUT_S 300
#define NAME_TRIES 3
#define PREFIX_MAX (POOL_ID_MAX - 1 - 10)

struct pod {
	char name[POOL_ID_MAX];
	int64_t created_ms; /* monotonic */
	int ready;
};

struct manager {
	const struct config *cfg;
	struct db *db;
	struct k8s_client k;
	struct k8s_watch w;
	char instance[64];
	char *selector;
	char rv[64];          /* resourceVersion to watch from */
	struct pod *pods;
	size_t n, cap;
	int stopping;
	int failures;         /* consecutive pods that never became ready */
	int64_t next_launch;  /* monotonic ms: back-off after failures */
	int64_t next_watch;   /* monotonic ms: when to (re)start the watch */
	int need_relist;
	int ready_fd;         /* announces each pod marked ready (pool.h) */
};

static struct pod *find(struct manager *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->pods[i].name, name) == 0)
			return &m->pods[i];
	return NULL;
}

static void forget(struct manager *m, struct pod *p)
{
	db_sandbox_delete(m->db, p->name);
	*p = m->pods[--m->n];
}

static void back_off(struct manager *m)
{
	m->failures++;
	int64_t backoff = 100LL << (m->failures < 6 ? m->failures : 6);
	m->next_launch = monotonic_ms() + backoff;
}

/* Deletes the pod; forgets it once the API server has (or never had) it. */
static void destroy(struct manager *m, struct pod *p, const char *why)
{
	struct k8s_status st;
	log_debug("pod %s: deleting (%s)", p->name, why);
	/* no worker may claim it while it goes */
	db_sandbox_set_state(m->db, p->name, "used", now_ms());
	if (k8s_pod_delete(&m->k, p->name, 0, &st) == K8S_OK) {
		forget(m, p);
		return;
	}
	log_warn("pod %s: delete failed (%ld %s); will retry", p->name, st.http, st.message);
}

/* Deletes a pod that carries our labels but that we do not track. */
static void delete_stray(struct manager *m, const char *name, const char *why)
{
	struct k8s_status st;
	log_info("pod %s: deleting (%s)", name, why);
	if (k8s_pod_delete(&m->k, name, 0, &st) != K8S_OK)
		log_warn("pod %s: delete failed (%ld %s)", name, st.http, st.message);
}

/* Deletes the installer pods of this instance that have ended: an install
 * deletes its pod itself, but not when the service was stopped or killed
 * during it (the pod then ends at its activeDeadlineSeconds). One that still
 * runs may be an install in progress. */
static void sweep_installers(struct manager *m)
{
	char *selector = k8s_installer_selector(m->instance);
	json_object *list = NULL, *items;
	struct k8s_status st;
	if (k8s_pod_list(&m->k, selector, &list, &st) == K8S_OK &&
	    json_object_object_get_ex(list, "items", &items) && json_object_is_type(items, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(items); i++) {
			json_object *pod = json_object_array_get_idx(items, i);
			const char *name = k8s_get_str(pod, "metadata", "name");
			const char *phase = k8s_get_str(pod, "status", "phase");
			if (name && phase && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Succeeded") == 0))
				delete_stray(m, name, "an installer pod that ended");
		}
	}
	json_object_put(list);
	free(selector);
}

static int ours(struct manager *m, json_object *pod)
{
	json_object *md, *labels, *v;
	return json_object_object_get_ex(pod, "metadata", &md) && json_object_object_get_ex(md, "labels", &labels) &&
	       json_object_object_get_ex(labels, K8S_LABEL_INSTANCE, &v) &&
	       strcmp(json_object_get_string(v), m->instance) == 0;
}

static void launch(struct manager *m)
{
	char name[POOL_ID_MAX], err[256];
	for (int attempt = 0; attempt < NAME_TRIES; attempt++) {
		char hex[11];
		random_hex(hex, 5);
		hex[10] = '\0';
		snprintf(name, sizeof(name), "%s%s", m->cfg->pod_name_prefix, hex);
		char token[POD_TOKEN_LEN + 1];
		if (pod_token_for(name, token) < 0) {
			log_error("executor pod: no pod secret in this process");
			back_off(m);
			return;
		}
		json_object *spec = k8s_pod_build(m->cfg, name, m->instance, token, err, sizeof(err));
		explicit_bzero(token, sizeof(token));
		if (!spec) {
			log_error("executor pod: %s", err);
			back_off(m);
			return;
		}
		if (m->n == m->cap) {
			m->cap = m->cap ? m->cap * 2 : 16;
			m->pods = xrealloc(m->pods, m->cap * sizeof(*m->pods));
		}
		struct pod *p = &m->pods[m->n++];
		memset(p, 0, sizeof(*p));
		memcpy(p->name, name, sizeof(p->name));
		p->created_ms = monotonic_ms();
		if (db_sandbox_insert(m->db, name, 0, now_ms()) != DB_OK) {
			m->n--;
			json_object_put(spec);
			back_off(m);
			return;
		}
		struct k8s_status st;
		enum k8s_rc rc = k8s_pod_create(&m->k, spec, NULL, &st);
		json_object_put(spec);
		if (rc == K8S_CONFLICT && st.ambiguous) {
			/* an earlier attempt may have created it: ours if it has our labels */
			json_object *got = NULL;
			struct k8s_status gst;
			enum k8s_rc grc = k8s_pod_get(&m->k, name, &got, &gst);
			if (grc == K8S_OK && ours(m, got))
				rc = K8S_OK;
			else
				log_warn("pod %s: exists but is not ours (%d, %ld %s)", name, (int)grc, gst.http, gst.message);
			json_object_put(got);
		}
		if (rc == K8S_OK) {
			log_debug("pod %s: created", name);
			return;
		}
		forget(m, find(m, name));
		if (rc == K8S_CONFLICT) {
			log_warn("pod %s: the name is taken; trying another", name);
			continue;
		}
		if (st.ambiguous) {
			/* it may exist: the watch or the next list deletes it as a stray */
			m->need_relist = 1;
		}
		log_error("pod %s: create failed: %ld %s %s", name, st.http, st.reason, st.message);
		back_off(m);
		return;
	}
	back_off(m);
}

static void fill(struct manager *m)
{
	if (m->stopping || monotonic_ms() < m->next_launch)
		return;
	int starting = 0, ready = 0;
	if (db_sandbox_count(m->db, "starting", &starting) != DB_OK ||
	    db_sandbox_count(m->db, "ready", &ready) != DB_OK)
		return;
	for (int have = starting + ready; have < m->cfg->pool_size && monotonic_ms() >= m->next_launch; have++)
		launch(m);
}

/* What a pod's new state means for the pool. */
static void update(struct manager *m, json_object *pod)
{
	const char *name = k8s_get_str(pod, "metadata", "name");
	if (!name)
		return;
	struct pod *p = find(m, name);
	char why[128], ip[64];
	enum k8s_pod_state s = k8s_pod_classify(pod, why, sizeof(why), ip, sizeof(ip));
	if (!p) {
		if (s != K8S_POD_DOOMED || strcmp(why, "being deleted") != 0)
			delete_stray(m, name, "not tracked by this pool");
		return;
	}
	if (s == K8S_POD_READY && !p->ready) {
		char ep[128];
		snprintf(ep, sizeof(ep), strchr(ip, ':') ? "http://[%s]:%d" : "http://%s:%d", ip, K8S_EXECUTOR_PORT);
		if (db_sandbox_set_ready(m->db, p->name, ep, now_ms()) == DB_OK) {
			pool_announce(m->ready_fd);
			p->ready = 1;
			m->failures = 0;
			log_debug("pod %s: ready at %s in %lld ms", p->name, ep,
				  (long long)(monotonic_ms() - p->created_ms));
		}
	} else if (s == K8S_POD_DOOMED) {
		if (strcmp(why, "being deleted") == 0)
			return;
		log_error("pod %s: will never be ready (%s); replacing it", p->name, why);
		if (!p->ready)
			back_off(m);
		destroy(m, p, why);
	}
}

static void on_event(const char *type, json_object *obj, void *arg)
{
	struct manager *m = arg;
	const char *rv = k8s_get_str(obj, "metadata", "resourceVersion");
	if (rv)
		snprintf(m->rv, sizeof(m->rv), "%s", rv);
	if (strcmp(type, "BOOKMARK") == 0)
		return;
	if (strcmp(type, "DELETED") == 0) {
		const char *name = k8s_get_str(obj, "metadata", "name");
		struct pod *p = name ? find(m, name) : NULL;
		if (p) {
			log_info("pod %s: deleted by someone else", p->name);
			forget(m, p);
		}
		return;
	}
	update(m, obj);
}

/* Lists our pods: tracked ones are updated (or forgotten when gone), strays
 * deleted; the list's resourceVersion is where the next watch starts. */
static int relist(struct manager *m, int delete_all)
{
	json_object *list = NULL, *items;
	struct k8s_status st;
	if (k8s_pod_list(&m->k, m->selector, &list, &st) != K8S_OK) {
		log_error("kubernetes: listing pods failed: %ld %s %s", st.http, st.reason, st.message);
		return -1;
	}
	const char *rv = k8s_get_str(list, "metadata", "resourceVersion");
	snprintf(m->rv, sizeof(m->rv), "%s", rv ? rv : "");
	size_t n = json_object_object_get_ex(list, "items", &items) && json_object_is_type(items, json_type_array)
			   ? json_object_array_length(items) : 0;
	/* tracked pods missing from the list are gone */
	for (size_t i = 0; i < m->n;) {
		int seen = 0;
		for (size_t j = 0; j < n && !seen; j++) {
			const char *name = k8s_get_str(json_object_array_get_idx(items, j), "metadata", "name");
			seen = name && strcmp(name, m->pods[i].name) == 0;
		}
		if (!seen && monotonic_ms() - m->pods[i].created_ms > 2000) {
			log_info("pod %s: gone", m->pods[i].name);
			forget(m, &m->pods[i]);
		} else {
			i++;
		}
	}
	for (size_t j = 0; j < n; j++) {
		json_object *pod = json_object_array_get_idx(items, j);
		const char *name = k8s_get_str(pod, "metadata", "name");
		if (delete_all && name)
			delete_stray(m, name, "left by an earlier run of this instance");
		else
			update(m, pod);
	}
	json_object_put(list);
	m->need_relist = 0;
	return 0;
}

struct sweep {
	struct manager *m;
};

static void sweep_row(const struct db_sandbox *row, void *arg)
{
	struct manager *m = ((struct sweep *)arg)->m;
	struct pod *p = find(m, row->id);
	if (!p) {
		db_sandbox_delete(m->db, row->id);
		return;
	}
	if (strcmp(row->state, "used") == 0) {
		destroy(m, p, "used");
	} else if (strcmp(row->state, "claimed") == 0) {
		int64_t age = now_ms() - row->updated_ms;
		int64_t limit = (int64_t)(m->cfg->max_execution_timeout * 1000) + 120000;
		if ((row->claimer > 0 && kill(row->claimer, 0) < 0 && errno == ESRCH) || age > limit)
			destroy(m, p, "its worker is gone");
	} else if (strcmp(row->state, "starting") == 0 &&
		   monotonic_ms() - p->created_ms > (int64_t)(m->cfg->sandbox_start_timeout * 1000)) {
		log_error("pod %s: not ready after %g s; replacing it", p->name, m->cfg->sandbox_start_timeout);
		back_off(m);
		destroy(m, p, "start timeout");
	}
}

static void sweep(struct manager *m)
{
	struct sweep sw = {m};
	db_sandbox_each(m->db, NULL, sweep_row, &sw);
}

static void watch(struct manager *m)
{
	if (m->w.running || monotonic_ms() < m->next_watch)
		return;
	if (m->need_relist && relist(m, 0) < 0) {
		m->next_watch = monotonic_ms() + 1000;
		return;
	}
	if (k8s_watch_start(&m->k, &m->w, m->selector, m->rv, WATCH_TIMEOUT_S) < 0)
		m->next_watch = monotonic_ms() + 1000;
}

/* The watch ended: why decides what comes next. */
static void watch_ended(struct manager *m)
{
	if (m->w.gone) {
		log_info("kubernetes: watch expired (410); listing again");
		m->need_relist = 1;
		m->next_watch = 0;
	} else if (m->w.http == 200) {
		m->next_watch = 0; /* timeoutSeconds reached: resume at once */
	} else {
		if (m->w.http == 401)
			k8s_client_token_stale(&m->k);
		/* events may have been lost with the connection */
		m->need_relist = 1;
		m->next_watch = monotonic_ms() + 500;
	}
}

static void shutdown_pods(struct manager *m)
{
	log_info("stopping: deleting %zu pods", m->n);
	while (m->n > 0) {
		struct pod *p = &m->pods[m->n - 1];
		struct k8s_status st;
		if (k8s_pod_delete(&m->k, p->name, 0, &st) != K8S_OK)
			log_error("pod %s: delete failed at shutdown: %ld %s", p->name, st.http, st.message);
		forget(m, p);
	}
}

static int k8s_run(const struct config *cfg, int notify_fd, int ready_fd)
{
	struct manager m = {.cfg = cfg, .ready_fd = ready_fd};
	int rc = 1;
	char err[256];
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	k8s_watch_init(&m.w, on_event, &m);
	m.db = db_open(cfg->db_path);
	if (sfd < 0 || !m.db)
		goto out;
	size_t plen = strlen(cfg->pod_name_prefix);
	for (size_t i = 0; i < plen; i++) {
		char c = cfg->pod_name_prefix[i];
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-')) {
			plen = PREFIX_MAX + 1;
			break;
		}
	}
	if (plen == 0 || plen > PREFIX_MAX || !isalnum((unsigned char)cfg->pod_name_prefix[0])) {
		log_error("APP_EXECUTOR_POD_NAME_PREFIX=%s: expected 1..%d of [a-z0-9-], starting alphanumeric",
			  cfg->pod_name_prefix, PREFIX_MAX);
		goto out;
	}
	if (k8s_client_init(&m.k, cfg, err, sizeof(err)) < 0) {
		log_error("kubernetes: %s", err);
		sleep(5); /* the master respawns us: not in a tight loop */
		goto out;
	}
	k8s_instance_name(cfg, m.instance, sizeof(m.instance));
	m.selector = k8s_pool_selector(m.instance);
	log_info("kubernetes: %s, namespace %s, instance %s, %d warm pods", m.k.base, m.k.ns, m.instance,
		 cfg->pool_size);
	db_sandbox_delete_all(m.db);
	while (relist(&m, 1) < 0) {
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) == sizeof(si))
			goto out;
		sleep(1);
	}
	sweep_installers(&m);
	fill(&m);
	while (!m.stopping) {
		watch(&m);
		int fds[2] = {sfd, notify_fd};
		int was_running = m.w.running;
		k8s_watch_poll(&m.w, fds, 2, 1000);
		if (was_running && !m.w.running)
			watch_ended(&m);
		char buf[256];
		while (read(notify_fd, buf, sizeof(buf)) > 0)
			;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == sizeof(si))
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
				m.stopping = 1;
		if (m.stopping)
			break;
		sweep(&m);
		fill(&m);
	}
	shutdown_pods(&m);
	rc = 0;
out:
	if (m.db)
		db_sandbox_delete_all(m.db);
	db_close(&m.db);
	k8s_watch_release(&m.w);
	k8s_client_release(&m.k);
	free(m.selector);
	free(m.pods);
	if (sfd >= 0)
		close(sfd);
	return rc;
}

static int k8s_endpoint(struct db *db, const struct config *cfg, const char *id, char *out, size_t cap)
{
	(void)cfg;
	if (db_sandbox_endpoint(db, id, out, cap) != DB_OK || strncmp(out, "http://", 7) != 0) {
		log_error("pod %s: no endpoint recorded", id);
		return -1;
	}
	return 0;
}

_Static_assert(POOL_TOKEN_MAX >= POD_TOKEN_LEN + 1, "pool.h's room for a token");

static int k8s_token(const char *id, char *out, size_t cap)
{
	if (cap < POD_TOKEN_LEN + 1 || pod_token_for(id, out) < 0) {
		log_error("pod %s: no token for it (no pod secret in this process)", id);
		return -1;
	}
	return 0;
}

const struct pool_backend pool_k8s_backend = {
	.name = "kubernetes",
	.run = k8s_run,
	.endpoint = k8s_endpoint,
	.token = k8s_token,
};
