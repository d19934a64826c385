/* packages: see packages.h. A request's installs share one deadline; each
 * distribution is installed under the lock of its name and within one of
 * APP_PACKAGE_INSTALL_CONCURRENCY turns (package_cache.h); "installed" means a
 * package_dists row whose directory holds the distribution's metadata. */
#include "packages.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "db.h"
#include "log.h"
#include "package_cache.h"
#include "util.h"

#define TAIL_LINES 8
#define TAIL_BYTES 1500
#define OUTPUT_KEEP 65536      /* the last bytes of pip's output kept */
#define INSTALLER_GRACE_MS 30000 /* beyond its timeout, for the installer's own setup and teardown */

extern char **environ;

/* One distribution a run needs: asked for by `!pip install` lines or by
 * imports that map to it. */
struct want {
	char *requirement;                  /* owned: what pip is given */
	char norm[PKG_NAME_MAX + 1];        /* normalized name */
	const char *kind;                   /* "latest" (a bare name), "pin" (NAME==VERSION) or "requirement" */
	char pin[128];                      /* a pin's version, else "" */
	const char *modules[PKG_MAX_PER_RUN]; /* borrowed: the imports that need it */
	size_t n_modules;
	char dir[PKG_DIR_NAME_MAX + 1];     /* the cache directory serving it, "" until found */
	char metadata[256];                 /* its *.dist-info inside dir */
};

/* The module -> distribution map: the shipped file, then APP_PACKAGE_MAP's
 * entries on top. Caller puts it; never NULL. */
static json_object *load_map(const struct config *cfg)
{
	char *path = xasprintf("%s/executor/python/package_map.json", cfg->data_dir);
	json_object *map = json_object_from_file(path);
	if (!map || !json_object_is_type(map, json_type_object)) {
		log_warn("packages: %s is not a JSON object; no module is mapped", path);
		json_object_put(map);
		map = json_object_new_object();
	}
	free(path);
	if (cfg->package_map[0]) {
		json_object *extra = json_object_from_file(cfg->package_map);
		if (extra && json_object_is_type(extra, json_type_object)) {
			struct json_object_iterator it = json_object_iter_begin(extra);
			struct json_object_iterator end = json_object_iter_end(extra);
			for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
				json_object_object_add(map, json_object_iter_peek_name(&it),
						       json_object_get(json_object_iter_peek_value(&it)));
		} else {
			log_warn("packages: APP_PACKAGE_MAP=%s is not a JSON object; ignored", cfg->package_map);
		}
		json_object_put(extra);
	}
	return map;
}

/* The last lines of pip's output, each indented, at most TAIL_BYTES. */
static char *tail_of(const char *text)
{
	size_t len = strlen(text);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	size_t start = len;
	int lines = 0;
	while (start > 0 && lines < TAIL_LINES && len - start < TAIL_BYTES) {
		start--;
		if (text[start] == '\n')
			lines++;
	}
	if (start > 0 || (len > 0 && text[0] == '\n'))
		start++;
	size_t repaired;
	return utf8_repair(text + start, len - start, &repaired);
}


/* The last line of pip's output that starts with "ERROR:", or else its last
 * line, UTF-8 repaired and at most 300 bytes. Caller frees. */
static char *last_error_line(const char *text)
{
	const char *best = NULL, *last = NULL;
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > 0) {
			last = line;
			if (strncmp(line, "ERROR:", 6) == 0)
				best = line;
		}
		line = end ? end + 1 : NULL;
	}
	const char *pick = best ? best : last;
	if (!pick)
		return xstrdup("(no output)");
	size_t len = strcspn(pick, "\n");
	if (len > 300)
		len = 300;
	size_t repaired;
	return utf8_repair(pick, len, &repaired);
}

/* Runs `executor install` for the requirement into staging, at most
 * timeout_ms; pip's output (its last OUTPUT_KEEP bytes) goes to *output.
 * The installer's exit status: 124 when its time passed, -1 when it could not
 * be started or had to be killed. */
static int run_installer(const struct config *cfg, const char *staging, const char *requirement,
			 int64_t timeout_ms, char **output)
{
	char id[24] = "pkg-", seconds[32];
	random_hex(id + 4, 8);
	snprintf(seconds, sizeof(seconds), "%.3f", (double)timeout_ms / 1000.0);
	*output = xstrdup("");
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
			_exit(127);
		char *argv[] = {cfg->executor_bin, (char *)"install", (char *)"--id", id,
				(char *)"--staging", (char *)staging, (char *)"--timeout", seconds,
				(char *)"--", (char *)requirement, NULL};
		execve(cfg->executor_bin, argv, environ);
		_exit(127);
	}
	close(p[1]);
	int64_t hard_deadline = monotonic_ms() + timeout_ms + INSTALLER_GRACE_MS;
	size_t len = 0;
	char *buf = xmalloc(OUTPUT_KEEP + 1);
	char chunk[4096];
	int killed = 0;
	for (;;) {
		int64_t left = hard_deadline - monotonic_ms();
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		int r = left > 0 ? poll(&pfd, 1, (int)(left > 60000 ? 60000 : left)) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && left <= 0) {
			log_error("packages: the installer of %s did not end; killed", requirement);
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		if (r <= 0)
			continue;
		ssize_t n = read(p[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if ((size_t)n > OUTPUT_KEEP - len) { /* keep the end */
			size_t drop = (size_t)n - (OUTPUT_KEEP - len);
			if (drop > len)
				drop = len;
			memmove(buf, buf + drop, len - drop);
			len -= drop;
		}
		size_t take = (size_t)n < OUTPUT_KEEP - len ? (size_t)n : OUTPUT_KEEP - len;
		memcpy(buf + len, chunk + ((size_t)n - take), take);
		len += take;
	}
	close(p[0]);
	buf[len] = '\0';
	free(*output);
	*output = buf;
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (killed)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Appends one line (printf-style) to *notes. */
__attribute__((format(printf, 2, 3))) static void note_add(char **notes, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *line = NULL;
	if (vasprintf(&line, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *s = xasprintf("%s%s\n", *notes ? *notes : "", line);
	free(line);
	free(*notes);
	*notes = s;
}

/* " (needed by `import MOD`)" for a want with modules, "" for a pip line. */
static char *needed_by(const struct want *w)
{
	return w->n_modules ? xasprintf(" (needed by `import %s`)", w->modules[0]) : xstrdup("");
}

static void note_failure(char **notes, const struct want *w, const char *why)
{
	char *by = needed_by(w);
	note_add(notes, "Package install failed: %s%s: %s", w->requirement, by, why);
	free(by);
}

static void note_deadline(char **notes, const struct config *cfg, const struct want *w)
{
	char why[160];
	snprintf(why, sizeof(why), "the installs of this request took longer than "
		 "APP_PACKAGE_INSTALL_TIMEOUT (%g s)", cfg->package_install_timeout);
	note_failure(notes, w, why);
}

/* Whether the cached directory dir still holds metadata (an operator may
 * have removed it): 1 or 0. */
static int dir_intact(const struct config *cfg, const char *dir, const char *metadata)
{
	char path[PATH_MAX], file[PATH_MAX];
	struct stat st;
	if (pkgcache_dir_path(cfg, dir, path, sizeof(path)) < 0)
		return 0;
	int n = snprintf(file, sizeof(file), "%s/%s", path, metadata);
	return n > 0 && (size_t)n < sizeof(file) && lstat(file, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Serves w from the cache when a directory was installed for it, recording
 * its use by the run (which keeps it from eviction). 1 when w->dir is set. */
static int from_cache(struct app *app, const char *execution_id, struct want *w)
{
	struct db_package_dist row;
	for (int tries = 0; tries < 3; tries++) {
		if (db_package_dist_find(app->db, w->norm, w->kind, w->pin[0] ? w->pin : w->requirement,
					 &row) != DB_OK)
			return 0;
		if (!dir_intact(app->cfg, row.dir, row.metadata)) {
			if (db_package_evict(app->db, row.dir, "missing", 1, now_ms()) == DB_OK)
				log_warn("packages: %s was recorded but is not in the cache", row.dir);
			continue;
		}
		enum db_status st = db_package_dist_use(app->db, execution_id, row.dir, now_ms());
		if (st == DB_NOT_FOUND)
			continue; /* evicted meanwhile: look again */
		if (st != DB_OK)
			return 0;
		snprintf(w->dir, sizeof(w->dir), "%s", row.dir);
		snprintf(w->metadata, sizeof(w->metadata), "%s", row.metadata);
		return 1;
	}
	return 0;
}

/* Serves a bare-name want from a directory already chosen for this run that
 * brought the distribution as a dependency. 1 when w->dir is set. */
static int from_chosen(const struct config *cfg, struct want *w, const struct want *all, size_t n)
{
	if (strcmp(w->kind, "latest") != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX], version[128];
		if (&all[i] == w || !all[i].dir[0] || pkgcache_dir_path(cfg, all[i].dir, path, sizeof(path)) < 0)
			continue;
		if (pkgcache_find_metadata(path, w->norm, w->metadata, sizeof(w->metadata), version,
					   sizeof(version)) == 0) {
			snprintf(w->dir, sizeof(w->dir), "%s", all[i].dir);
			return 1;
		}
	}
	return 0;
}

/* Publishes staging as a cache directory of w (version given) and records
 * it with its use by the run. The directory's name ends in 128 random bits:
 * a sandbox, which cannot list dists/, cannot guess another client's either,
 * and no two installs ever publish under one name. NULL, or why it failed
 * (staging is then left to the caller). */
static const char *publish(struct app *app, const char *execution_id, struct want *w, const char *staging,
			   const char *version)
{
	const struct config *cfg = app->cfg;
	char dir[PKG_DIR_NAME_MAX + 1], path[PATH_MAX], id[33] = "";
	random_hex(id, 16);
	int n = snprintf(dir, sizeof(dir), "%s-%s-%s", w->norm, version, id);
	if (n < 0 || (size_t)n >= sizeof(dir) || !pkg_dir_name_valid(dir))
		return "its name and version make no directory name";
	uint64_t size = 0;
	if (pkgcache_publish(cfg, staging, dir, &size) != 0)
		return "the package cache could not take it";
	if (pkgcache_dir_path(cfg, dir, path, sizeof(path)) < 0)
		return "the package cache could not take it";
	if (size > cfg->package_cache_bytes) {
		pkgcache_remove(cfg, path);
		return "it is larger than the whole package cache (APP_PACKAGE_CACHE_MB)";
	}
	struct db_package_dist row = {.size_bytes = size, .installed_ms = now_ms()};
	snprintf(row.dir, sizeof(row.dir), "%s", dir);
	snprintf(row.package, sizeof(row.package), "%s", w->norm);
	snprintf(row.version, sizeof(row.version), "%s", version);
	snprintf(row.requirement, sizeof(row.requirement), "%s", w->requirement);
	snprintf(row.kind, sizeof(row.kind), "%s", w->kind);
	snprintf(row.metadata, sizeof(row.metadata), "%s", w->metadata);
	if (db_package_dist_insert(app->db, &row, execution_id) != DB_OK) {
		pkgcache_remove(cfg, path);
		return "the package cache could not record it";
	}
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	return NULL;
}

/* Why pip failed, in one line. Caller frees. */
static char *failure_reason(const struct want *w, int rc, const char *output)
{
	if (rc == 0)
		return xasprintf("pip installed no distribution named %s", w->norm);
	if (strstr(output, "No matching distribution found") || strstr(output, "Could not find a version that satisfies"))
		return xasprintf("only wheels are installed and %s has none for this platform", w->norm);
	char *line = last_error_line(output);
	char *why = rc < 0 ? xasprintf("the installer failed: %s", line)
			   : xasprintf("pip exited with status %d: %s", rc, line);
	free(line);
	return why;
}

/* Installs w (unless another request did meanwhile) before deadline_ms;
 * sets w->dir or adds a note. Every pip run is a package_installs row. */
static void install(struct app *app, const char *execution_id, struct want *w, int64_t deadline_ms,
		    char **notes)
{
	const struct config *cfg = app->cfg;
	char staging[PATH_MAX] = "", version[128] = "";
	char *output = NULL;
	int turn = -1;
	int lock = pkgcache_lock(cfg, w->norm, deadline_ms);
	if (lock < 0) {
		if (errno == ETIMEDOUT)
			note_deadline(notes, cfg, w);
		else
			note_failure(notes, w, "the package cache is not usable");
		return;
	}
	if (from_cache(app, execution_id, w)) /* installed while we waited */
		goto out;
	if ((turn = pkgcache_turn(cfg, deadline_ms)) < 0) {
		note_deadline(notes, cfg, w);
		goto out;
	}
	int64_t left = deadline_ms - monotonic_ms();
	if (left <= 0) {
		note_deadline(notes, cfg, w);
		goto out;
	}
	if (pkgcache_staging_make(cfg, staging, sizeof(staging)) < 0) {
		staging[0] = '\0';
		note_failure(notes, w, "the package cache is not usable");
		goto out;
	}
	int64_t started = now_ms(), t0 = monotonic_ms();
	int rc = run_installer(cfg, staging, w->requirement, left, &output);
	int64_t took = monotonic_ms() - t0;
	close(turn);
	turn = -1;
	int found = rc == 0 && pkgcache_find_metadata(staging, w->norm, w->metadata, sizeof(w->metadata),
						       version, sizeof(version)) == 0;
	const char *not_taken = found ? publish(app, execution_id, w, staging, version) : NULL;
	int ok = found && !not_taken;
	if (ok)
		staging[0] = '\0'; /* it is the cache's now */
	char *tail = tail_of(output);
	struct db_package_install rec = {
		.package = w->norm,
		.requirement = w->requirement,
		.module = w->n_modules ? w->modules[0] : NULL,
		.version = ok ? version : NULL,
		.status = ok ? "ok" : rc == 124 ? "timeout" : "failed",
		.started_ms = started,
		.duration_ms = took,
		.log_tail = tail,
		.execution_id = execution_id,
		.dir = ok ? w->dir : NULL,
	};
	if (db_package_install_insert(app->db, &rec) != DB_OK)
		log_error("packages: the install of %s could not be recorded", w->requirement);
	log_info("packages: %s %s in %lld ms%s%s", ok ? "installed" : "could not install", w->requirement,
		 (long long)took, ok ? " as " : "", ok ? w->dir : "");
	free(tail);
	if (ok) {
		pkgcache_evict(cfg, app->db);
	} else if (rc == 124) {
		note_deadline(notes, cfg, w);
	} else if (found) {
		note_failure(notes, w, not_taken);
	} else {
		char *why = failure_reason(w, rc, output);
		note_failure(notes, w, why);
		free(why);
	}
out:
	if (staging[0])
		pkgcache_remove(cfg, staging);
	if (turn >= 0)
		close(turn);
	pkgcache_unlock(cfg, w->norm, lock);
	free(output);
}

/* The want for a distribution (found or added); NULL when the list is full
 * or the requirement has no name. */
static struct want *want_get(struct want *w, size_t *n, const char *requirement)
{
	char norm[PKG_NAME_MAX + 1];
	if (pkg_normalize(requirement, norm, sizeof(norm)) < 0)
		return NULL;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(w[i].norm, norm) == 0)
			return &w[i];
	if (*n >= PKG_MAX_PER_RUN)
		return NULL;
	struct want *x = &w[(*n)++];
	memset(x, 0, sizeof(*x));
	x->requirement = xstrdup(requirement);
	memcpy(x->norm, norm, sizeof(norm));
	/* after the name: nothing, "==VERSION", or anything else (extras, ranges) */
	const char *rest = requirement + pkg_name_len(requirement);
	if (strncmp(rest, "==", 2) == 0 && rest[2] && !strpbrk(rest + 2, "=<>!~,*")) {
		x->kind = "pin";
		snprintf(x->pin, sizeof(x->pin), "%s", rest + 2);
	} else {
		x->kind = *rest ? "requirement" : "latest";
	}
	return x;
}

void packages_prepare(struct app *app, struct xc *xc, const char *execution_id, const char *source,
		      struct pkg_outcome *out)
{
	const struct config *cfg = app->cfg;
	memset(out, 0, sizeof(*out));
	/* local sandboxes only (README: pods do not mount this cache); code
	 * without either word can neither import nor ask pip: no check */
	if (!cfg->package_install || strcmp(cfg->backend, "local") != 0 ||
	    (!strstr(source, "import") && !strstr(source, "pip")))
		return;
	json_object *resp = NULL, *missing, *pip, *code;
	if (xc_imports(xc, source, &resp) < 0) {
		log_warn("packages: the import check failed (%s); running the code as it is", xc->error);
		return;
	}
	if (!json_object_object_get_ex(resp, "missing", &missing) || !json_object_is_type(missing, json_type_array) ||
	    !json_object_object_get_ex(resp, "pip", &pip) || !json_object_is_type(pip, json_type_array) ||
	    !json_object_object_get_ex(resp, "source_code", &code) || !json_object_is_type(code, json_type_string)) {
		log_warn("packages: the import check answered something else; running the code as it is");
		json_object_put(resp);
		return;
	}
	if (json_object_array_length(pip) > 0)
		out->source_code = xstrdup(json_object_get_string(code));
	struct want w[PKG_MAX_PER_RUN];
	size_t n = 0;
	for (size_t i = 0; i < json_object_array_length(pip); i++) {
		const char *spec = json_object_get_string(json_object_array_get_idx(pip, i));
		if (!spec || !pkg_spec_valid(spec))
			note_add(&out->notes, "Package install refused: %.200s: only NAME[extras][==version] "
				 "requirements are installed.", spec ? spec : "");
		else if (!want_get(w, &n, spec))
			note_add(&out->notes, "Package install refused: %.200s: one run installs at most %d "
				 "distributions.", spec, PKG_MAX_PER_RUN);
	}
	json_object *map = json_object_array_length(missing) > 0 ? load_map(cfg) : NULL;
	for (size_t i = 0; i < json_object_array_length(missing); i++) {
		const char *mod = json_object_get_string(json_object_array_get_idx(missing, i));
		if (!mod || !pkg_module_valid(mod))
			continue;
		json_object *d;
		const char *dist = json_object_object_get_ex(map, mod, &d) && json_object_is_type(d, json_type_string)
				   ? json_object_get_string(d) : mod;
		struct want *x = pkg_spec_valid(dist) ? want_get(w, &n, dist) : NULL;
		if (x && x->n_modules < PKG_MAX_PER_RUN)
			x->modules[x->n_modules++] = mod;
	}
	/* what the cache has, then what came as a dependency of that, then
	 * installs (each one may bring what a later want needs) */
	int64_t deadline = monotonic_ms() + (int64_t)(cfg->package_install_timeout * 1000.0);
	for (size_t i = 0; i < n; i++)
		from_cache(app, execution_id, &w[i]);
	for (size_t i = 0; i < n; i++) {
		if (w[i].dir[0] || from_chosen(cfg, &w[i], w, n))
			continue;
		if (monotonic_ms() >= deadline)
			note_deadline(&out->notes, cfg, &w[i]);
		else
			install(app, execution_id, &w[i], deadline, &out->notes);
	}
	/* a run's sys.path gets a directory only for a module its distribution
	 * declares (or for a pip line) */
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		int wanted = w[i].dir[0] && w[i].n_modules == 0;
		for (size_t m = 0; w[i].dir[0] && m < w[i].n_modules; m++) {
			if (pkgcache_dir_path(cfg, w[i].dir, path, sizeof(path)) == 0 &&
			    pkgcache_provides(path, w[i].metadata, w[i].modules[m]))
				wanted = 1;
			else
				note_add(&out->notes, "Package not used: %s does not provide the module %s "
					 "(needed by `import %s`)", w[i].norm, w[i].modules[m], w[i].modules[m]);
		}
		int dup = 0;
		for (size_t k = 0; k < out->n_dirs; k++)
			dup |= strcmp(out->dirs[k], w[i].dir) == 0;
		if (wanted && !dup)
			out->dirs[out->n_dirs++] = xstrdup(w[i].dir);
	}
	json_object_put(map);
	json_object_put(resp);
	for (size_t i = 0; i < n; i++)
		free(w[i].requirement);
}

void pkg_outcome_release(struct pkg_outcome *o)
{
	free(o->source_code);
	free(o->notes);
	for (size_t i = 0; i < o->n_dirs; i++)
		free(o->dirs[i]);
	memset(o, 0, sizeof(*o));
}
