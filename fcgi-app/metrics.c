/* metrics: the Prometheus exposition of the service (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "scoreboard.h"
#include "util.h"

#define TEXT_MAX (1u << 20)

struct text { char *p; size_t len, cap; };

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		if (t->cap >= TEXT_MAX)
			return; /* bounded: drop what does not fit */
		t->cap *= 2;
		t->p = xrealloc(t->p, t->cap);
	}
}

static void help(struct text *t, const char *name, const char *type, const char *text)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void requests(struct text *t, const struct scoreboard_view *v)
{
	help(t, "ci_http_requests_total", "counter", "HTTP requests answered, by route and status.");
	for (int r = 0; r < SCOREBOARD_ROUTES; r++) {
		const char *method = "", *path = r == 0 ? "none" : router_route(r, &method);
		if (!path)
			continue;
		for (int c = 0; c < SCOREBOARD_CODES; c++) {
			if (!v->requests[r][c])
				continue;
			char code[8];
			if (scoreboard_codes[c])
				snprintf(code, sizeof(code), "%d", scoreboard_codes[c]);
			else
				snprintf(code, sizeof(code), "other");
			put(t, "ci_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
			    r == 0 ? "any" : method, path, code, (unsigned long long)v->requests[r][c]);
		}
	}
}

static void executions(struct text *t, const struct scoreboard_view *v)
{
	help(t, "ci_execution_duration_seconds", "histogram",
	     "Wall time of executions from request accepted to result recorded.");
	uint64_t cum = 0;
	for (int b = 0; b < SCOREBOARD_BUCKETS; b++) {
		cum += v->buckets[b];
		put(t, "ci_execution_duration_seconds_bucket{le=\"%g\"} %llu\n", scoreboard_buckets[b],
		    (unsigned long long)cum);
	}
	put(t, "ci_execution_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)v->exec_count);
	put(t, "ci_execution_duration_seconds_sum %.3f\n", (double)v->exec_sum_ms / 1000.0);
	put(t, "ci_execution_duration_seconds_count %llu\n", (unsigned long long)v->exec_count);
	help(t, "ci_executions_total", "counter",
	     "Executions by outcome (killed: ended by a signal; interrupted: the service died under it).");
	for (int o = 0; o < OUTCOME_COUNT; o++)
		put(t, "ci_executions_total{outcome=\"%s\"} %llu\n", scoreboard_outcomes[o],
		    (unsigned long long)v->outcomes[o]);
}

static void gauges(struct text *t, struct app *app)
{
	static const char *const states[] = {"starting", "ready", "claimed", "used"};
	int n[4];
	int ok = 1;
	for (int i = 0; i < 4 && ok; i++)
		ok = db_sandbox_count(app->db, states[i], &n[i]) == DB_OK;
	if (ok) {
		help(t, "ci_pool_sandboxes", "gauge", "Sandboxes by state (claimed = in use).");
		for (int i = 0; i < 4; i++)
			put(t, "ci_pool_sandboxes{state=\"%s\"} %d\n", states[i], n[i]);
		help(t, "ci_pool_ready", "gauge", "Warm sandboxes ready to be claimed.");
		put(t, "ci_pool_ready %d\n", n[1]);
		help(t, "ci_pool_in_use", "gauge", "Sandboxes claimed by a request in flight.");
		put(t, "ci_pool_in_use %d\n", n[2]);
	}
	uint64_t objects, bytes;
	if (db_object_stats(app->db, &objects, &bytes) == DB_OK) {
		help(t, "ci_store_objects", "gauge", "Objects in the file store.");
		put(t, "ci_store_objects %llu\n", (unsigned long long)objects);
		help(t, "ci_store_bytes", "gauge", "Bytes of the objects in the file store.");
		put(t, "ci_store_bytes %llu\n", (unsigned long long)bytes);
	}
}

static void cleanup(struct text *t, const struct scoreboard_view *v)
{
	help(t, "ci_cleanup_removed_total", "counter",
	     "What periodic cleanup removed (object_bytes in bytes, the rest in items).");
	for (int k = 0; k < CLEANUP_COUNTERS; k++) {
		if (k == CLEANUP_PASSES)
			continue;
		put(t, "ci_cleanup_removed_total{kind=\"%s\"} %llu\n", scoreboard_cleanup_names[k],
		    (unsigned long long)v->cleanup[k]);
	}
	help(t, "ci_cleanup_passes_total", "counter", "Cleanup passes completed.");
	put(t, "ci_cleanup_passes_total %llu\n", (unsigned long long)v->cleanup[CLEANUP_PASSES]);
}

static void stages(struct text *t, const struct scoreboard_view *v)
{
	help(t, "ci_worker_cpu_seconds_total", "counter",
	     "Workers' CPU time by stage of a request (request: FastCGI, checks, response).");
	for (int k = 0; k < STAGE_COUNT; k++)
		put(t, "ci_worker_cpu_seconds_total{stage=\"%s\"} %.6f\n", scoreboard_stage_names[k],
		    (double)v->stage_ns[k] / 1e9);
}

char *metrics_render(struct app *app, size_t *len)
{
	struct text t = {.p = xmalloc(8192), .len = 0, .cap = 8192};
	struct scoreboard_view v;
	scoreboard_read(&v);
	t.p[0] = '\0';
	requests(&t, &v);
	executions(&t, &v);
	gauges(&t, app);
	cleanup(&t, &v);
	stages(&t, &v);
	*len = t.len;
	return t.p;
}
