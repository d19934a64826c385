/* packages: see packages.h. A request's installs (and, for a pod, the copies
 * of its directories) share one deadline; the installs themselves happen on
 * the root side (package_install.h, asked through root_helper.h): a worker
 * only looks in the cache and reads it to copy it to a pod. */
#include "packages.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "log.h"
#include "package_cache.h"
#include "package_delivery.h"
#include "package_install.h"
#include "root_helper.h"
#include "util.h"

/* One distribution a run needs: asked for by `!pip install` lines or by
 * imports that map to it. */
struct want {
	struct pkg_wanted spec;             /* what pip is given; spec.module: the first of modules */
	const char *modules[PKG_MAX_PER_RUN]; /* borrowed: the imports that need it */
	size_t n_modules;
	char dir[PKG_DIR_NAME_MAX + 1];     /* the cache directory serving it, "" until found */
	char metadata[PKG_METADATA_MAX + 1]; /* its *.dist-info inside dir */
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

/* Serves w from the cache when a directory was installed for it, recording
 * its use by the run (which keeps it from eviction). 1 when w->dir is set. */
static int from_cache(struct app *app, const char *execution_id, struct want *w)
{
	return pkgcache_lookup(app->cfg, app->db, execution_id, w->spec.norm, w->spec.kind,
			       w->spec.pin[0] ? w->spec.pin : w->spec.requirement, w->dir, w->metadata);
}

/* Serves a bare-name want from a directory already chosen for this run that
 * brought the distribution as a dependency. 1 when w->dir is set. */
static int from_chosen(const struct config *cfg, struct want *w, const struct want *all, size_t n)
{
	if (strcmp(w->spec.kind, "latest") != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX], version[128];
		if (&all[i] == w || !all[i].dir[0] || pkgcache_dir_path(cfg, all[i].dir, path, sizeof(path)) < 0)
			continue;
		if (pkgcache_find_metadata(path, w->spec.norm, w->metadata, sizeof(w->metadata), version,
					   sizeof(version)) == 0) {
			snprintf(w->dir, sizeof(w->dir), "%s", all[i].dir);
			return 1;
		}
	}
	return 0;
}

/* The want for a distribution (found or added); NULL when the list is full
 * or the requirement is not one pip is given (pkg_wanted_init). */
static struct want *want_get(struct want *w, size_t *n, const char *requirement)
{
	struct pkg_wanted spec;
	if (pkg_wanted_init(&spec, requirement, NULL) < 0)
		return NULL;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(w[i].spec.norm, spec.norm) == 0)
			return &w[i];
	if (*n >= PKG_MAX_PER_RUN)
		return NULL;
	struct want *added = &w[(*n)++];
	memset(added, 0, sizeof(*added));
	added->spec = spec;
	return added;
}

int packages_check_wanted(const struct config *cfg, const char *source)
{
	/* code without either word can neither import nor ask pip */
	return cfg->package_install && (strstr(source, "import") || strstr(source, "pip"));
}

void packages_prepare(struct app *app, struct executor_client *executor, const char *execution_id, json_object *found,
		      struct pkg_outcome *out)
{
	const struct config *cfg = app->cfg;
	memset(out, 0, sizeof(*out));
	/* a pod sees nothing of this machine's cache: what it gets is sent */
	int to_pod = strcmp(cfg->backend, "kubernetes") == 0;
	json_object *missing, *pip, *code;
	if (!json_object_object_get_ex(found, "missing", &missing) || !json_object_is_type(missing, json_type_array) ||
	    !json_object_object_get_ex(found, "pip", &pip) || !json_object_is_type(pip, json_type_array) ||
	    !json_object_object_get_ex(found, "source_code", &code) || !json_object_is_type(code, json_type_string)) {
		log_warn("packages: the import check answered something else; running the code as it is");
		return;
	}
	if (json_object_array_length(pip) > 0)
		out->source_code = xstrdup(json_object_get_string(code));
	struct want w[PKG_MAX_PER_RUN];
	size_t n = 0;
	for (size_t i = 0; i < json_object_array_length(pip); i++) {
		const char *spec = json_object_get_string(json_object_array_get_idx(pip, i));
		if (!spec || !pkg_spec_valid(spec) || strlen(spec) > PKG_REQUIREMENT_MAX)
			pkg_note_add(&out->notes, "Package install refused: %.200s: only NAME[extras][==version] "
				 "requirements are installed.", spec ? spec : "");
		else if (!want_get(w, &n, spec))
			pkg_note_add(&out->notes, "Package install refused: %.200s: one run installs at most %d "
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
		struct want *want = pkg_spec_valid(dist) ? want_get(w, &n, dist) : NULL;
		if (want && want->n_modules < PKG_MAX_PER_RUN)
			want->modules[want->n_modules++] = mod;
	}
	/* what the cache has, then what came as a dependency of that, then
	 * installs (each one may bring what a later want needs) */
	int64_t deadline = monotonic_ms() + (int64_t)(cfg->package_install_timeout * 1000.0);
	for (size_t i = 0; i < n; i++)
		from_cache(app, execution_id, &w[i]);
	for (size_t i = 0; i < n; i++) {
		if (w[i].dir[0] || from_chosen(cfg, &w[i], w, n))
			continue;
		if (w[i].n_modules)
			snprintf(w[i].spec.module, sizeof(w[i].spec.module), "%s", w[i].modules[0]);
		if (monotonic_ms() >= deadline)
			pkg_note_deadline(&out->notes, cfg, &w[i].spec);
		else
			root_helper_install(cfg, execution_id, &w[i].spec, deadline, w[i].dir, w[i].metadata,
					    &out->notes);
	}
	/* a run's sys.path gets a directory only for a module its distribution
	 * declares (or for a pip line) */
	const char *lost[PKG_MAX_PER_RUN]; /* directories a pod did not take */
	size_t n_lost = 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		int wanted = w[i].dir[0] && w[i].n_modules == 0;
		for (size_t m = 0; w[i].dir[0] && m < w[i].n_modules; m++) {
			if (pkgcache_dir_path(cfg, w[i].dir, path, sizeof(path)) == 0 &&
			    pkgcache_provides(path, w[i].metadata, w[i].modules[m]))
				wanted = 1;
			else
				pkg_note_add(&out->notes, "Package not used: %s does not provide the module %s "
					 "(needed by `import %s`)", w[i].spec.norm, w[i].modules[m], w[i].modules[m]);
		}
		int dup = 0;
		for (size_t k = 0; k < out->n_dirs; k++)
			dup |= strcmp(out->dirs[k], w[i].dir) == 0;
		for (size_t k = 0; k < n_lost; k++)
			wanted &= strcmp(lost[k], w[i].dir) != 0;
		char why[400];
		if (wanted && !dup && to_pod &&
		    pkgdeliver_dir(cfg, executor, w[i].dir, deadline, why, sizeof(why)) < 0) {
			pkg_note_add(&out->notes, "Package not available: %s could not be copied to the executor "
				 "pod: %s", w[i].spec.norm, why);
			lost[n_lost++] = w[i].dir;
			wanted = 0;
		}
		if (wanted && !dup)
			out->dirs[out->n_dirs++] = xstrdup(w[i].dir);
	}
	json_object_put(map);
}

void pkg_outcome_release(struct pkg_outcome *o)
{
	free(o->source_code);
	free(o->notes);
	for (size_t i = 0; i < o->n_dirs; i++)
		free(o->dirs[i]);
	memset(o, 0, sizeof(*o));
}
