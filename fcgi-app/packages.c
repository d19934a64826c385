/* packages: see packages.h. One lock file per distribution under
 * APP_PACKAGE_CACHE/.locks; "installed" means a matching *.dist-info directory
 * in APP_PACKAGE_CACHE/site-packages. */
#include "packages.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "db.h"
#include "log.h"
#include "package_names.h"
#include "util.h"

#define MAX_PACKAGES 16     /* distributions installed for one run at most */
#define TAIL_LINES 8
#define TAIL_BYTES 1500

extern char **environ;

struct want {
	char *requirement; /* owned */
	char *module;      /* owned, NULL for a pip line */
	char norm[PKG_NAME_MAX + 1];
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

/* Adds a wanted distribution unless it is there already or the list is full. */
static void want_add(struct want *w, size_t *n, const char *requirement, const char *module)
{
	char norm[PKG_NAME_MAX + 1];
	if (*n >= MAX_PACKAGES || pkg_normalize(requirement, norm, sizeof(norm)) < 0)
		return;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(w[i].norm, norm) == 0)
			return;
	w[*n].requirement = xstrdup(requirement);
	w[*n].module = module ? xstrdup(module) : NULL;
	memcpy(w[*n].norm, norm, sizeof(norm));
	(*n)++;
}

/* Whether site-packages holds a dist-info of the distribution; its version
 * goes to version. */
static int installed(const char *site, const char *norm, char *version, size_t cap)
{
	DIR *d = opendir(site);
	if (!d)
		return 0;
	int found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		static const char suffix[] = ".dist-info";
		if (len <= sizeof(suffix) - 1 || strcmp(e->d_name + len - (sizeof(suffix) - 1), suffix) != 0)
			continue;
		char name[NAME_MAX + 1], have[PKG_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%.*s", (int)(len - (sizeof(suffix) - 1)), e->d_name);
		char *dash = strrchr(name, '-');
		if (!dash)
			continue;
		*dash = '\0';
		if (pkg_normalize(name, have, sizeof(have)) == 0 && strcmp(have, norm) == 0) {
			snprintf(version, cap, "%s", dash + 1);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

/* Whether site-packages has a top-level module or package of that name (a
 * pip line, or another distribution, may have brought it). */
static int module_in_cache(const char *site, const char *mod)
{
	DIR *d = opendir(site);
	if (!d)
		return 0;
	size_t n = strlen(mod);
	int found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		const char *rest = e->d_name + n;
		if (strncmp(e->d_name, mod, n) != 0)
			continue;
		size_t rl = strlen(rest);
		found = rl == 0 || strcmp(rest, ".py") == 0 ||
			(rest[0] == '.' && rl > 3 && strcmp(rest + rl - 3, ".so") == 0);
	}
	closedir(d);
	return found;
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

/* Runs `executor install --id ID -- requirement`; its output (the last
 * 64 KiB) goes to *output. Exit status, 124 on timeout, -1 when it could not
 * be started. */
static int run_installer(const struct config *cfg, const char *requirement, char **output)
{
	char id[24] = "pkg-";
	random_hex(id + 4, 8);
	int p[2];
	*output = xstrdup("");
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
		char *argv[] = {cfg->executor_bin, (char *)"install", (char *)"--id", id, (char *)"--",
				(char *)requirement, NULL};
		execve(cfg->executor_bin, argv, environ);
		_exit(127);
	}
	close(p[1]);
	size_t cap = 65536, len = 0;
	char *buf = xmalloc(cap + 1);
	char chunk[4096];
	for (;;) {
		ssize_t r = read(p[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if ((size_t)r > cap - len) { /* keep the end */
			size_t drop = (size_t)r - (cap - len);
			if (drop > len)
				drop = len;
			memmove(buf, buf + drop, len - drop);
			len -= drop;
		}
		size_t take = (size_t)r < cap - len ? (size_t)r : cap - len;
		memcpy(buf + len, chunk + ((size_t)r - take), take);
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
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Installs one wanted distribution unless it is (or meanwhile became)
 * installed; returns a note for stderr when it failed, else NULL. */
static char *ensure(struct app *app, const char *execution_id, const struct want *w)
{
	const struct config *cfg = app->cfg;
	char *site = xasprintf("%s/site-packages", cfg->package_cache);
	char *locks = xasprintf("%s/.locks", cfg->package_cache);
	char *lock_path = xasprintf("%s/%s.lock", locks, w->norm);
	char version[128] = "";
	char *note = NULL, *output = NULL;
	int fd = -1;

	if (installed(site, w->norm, version, sizeof(version)))
		goto out;
	if (mkdir_p(locks, 0700) < 0 ||
	    (fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		note = xasprintf("Package install failed: %s: the package cache %s is not usable (%s).",
				 w->requirement, cfg->package_cache, strerror(errno));
		goto out;
	}
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR)
			break;
	/* another run may have installed it while we waited */
	if (installed(site, w->norm, version, sizeof(version)))
		goto out;
	int64_t started = now_ms(), t0 = monotonic_ms();
	int rc = run_installer(cfg, w->requirement, &output);
	int64_t took = monotonic_ms() - t0;
	int ok = rc == 0 && installed(site, w->norm, version, sizeof(version));
	char *tail = tail_of(output);
	struct db_package_install rec = {
		.package = w->norm,
		.requirement = w->requirement,
		.module = w->module,
		.version = ok ? version : NULL,
		.status = ok ? "ok" : rc == 124 ? "timeout" : "failed",
		.started_ms = started,
		.duration_ms = took,
		.log_tail = tail,
		.execution_id = execution_id,
	};
	if (db_package_install_insert(app->db, &rec) != DB_OK)
		log_error("packages: the install of %s could not be recorded", w->requirement);
	log_info("packages: %s %s in %lld ms%s%s", ok ? "installed" : "could not install", w->requirement,
		 (long long)took, ok ? ", version " : "", ok ? version : "");
	if (!ok) {
		char why[64];
		if (rc == 0)
			snprintf(why, sizeof(why), "pip installed no distribution of that name");
		else if (rc == 124)
			snprintf(why, sizeof(why), "pip took longer than %g s", cfg->package_install_timeout);
		else
			snprintf(why, sizeof(why), "pip exited with status %d", rc);
		char *mod = w->module ? xasprintf(" (needed by `import %s`)", w->module) : xstrdup("");
		note = xasprintf("Package install failed: %s%s: %s. pip's last lines:\n%s", w->requirement, mod,
				 why, tail);
		free(mod);
	}
	free(tail);
out:
	if (fd >= 0)
		close(fd); /* releases the lock */
	free(output);
	free(site);
	free(locks);
	free(lock_path);
	return note;
}

static void note_add(char **notes, const char *line)
{
	char *s = xasprintf("%s%s\n", *notes ? *notes : "", line);
	free(*notes);
	*notes = s;
}

static void install_one(struct app *app, const char *execution_id, const struct want *w, char **notes)
{
	char *note = ensure(app, execution_id, w);
	if (note) {
		note_add(notes, note);
		free(note);
	}
}

void packages_prepare(struct app *app, struct xc *xc, const char *execution_id, const char *source,
		      struct pkg_outcome *out)
{
	memset(out, 0, sizeof(*out));
	/* local sandboxes only (README: pods do not mount this cache); code
	 * without either word can neither import nor ask pip: no check */
	if (!app->cfg->package_install || strcmp(app->cfg->backend, "local") != 0 ||
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
	struct want w[MAX_PACKAGES];
	size_t n = 0;
	for (size_t i = 0; i < json_object_array_length(pip); i++) {
		const char *spec = json_object_get_string(json_object_array_get_idx(pip, i));
		if (spec && pkg_spec_valid(spec)) {
			want_add(w, &n, spec, NULL);
		} else {
			char *line = xasprintf("Package install refused: %.200s: only NAME[extras][==version] "
					       "requirements are installed.", spec ? spec : "");
			note_add(&out->notes, line);
			free(line);
		}
	}
	/* the pip lines first: what they bring is not installed again below */
	for (size_t i = 0; i < n; i++)
		install_one(app, execution_id, &w[i], &out->notes);
	size_t first_module = n;
	char *site = xasprintf("%s/site-packages", app->cfg->package_cache);
	json_object *map = json_object_array_length(missing) > 0 ? load_map(app->cfg) : NULL;
	for (size_t i = 0; i < json_object_array_length(missing); i++) {
		const char *mod = json_object_get_string(json_object_array_get_idx(missing, i));
		if (!mod || !pkg_module_valid(mod) || module_in_cache(site, mod))
			continue;
		json_object *d;
		const char *dist = json_object_object_get_ex(map, mod, &d) && json_object_is_type(d, json_type_string)
				   ? json_object_get_string(d) : mod;
		if (pkg_spec_valid(dist))
			want_add(w, &n, dist, mod);
	}
	json_object_put(map);
	json_object_put(resp);
	free(site);
	for (size_t i = first_module; i < n; i++)
		install_one(app, execution_id, &w[i], &out->notes);
	for (size_t i = 0; i < n; i++) {
		free(w[i].requirement);
		free(w[i].module);
	}
}

void pkg_outcome_release(struct pkg_outcome *o)
{
	free(o->source_code);
	free(o->notes);
	o->source_code = o->notes = NULL;
}
