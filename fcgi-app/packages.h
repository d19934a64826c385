/* packages: the worker's side of packages installed on the fly (DESIGN.md §6).
 * Takes what the claimed sandbox or pod found in its import check (POST
 * /execute with check_imports): maps modules to distributions
 * (executor/python/package_map.json, APP_PACKAGE_MAP), finds each in the
 * cache or has the root side install it (root_helper.h, package_install.h:
 * `executor install`, whose sandbox runs pip, wheels only) within the
 * request's deadline, and names the cache directories the run's sys.path
 * gets: only those of distributions that declare the modules the code
 * imports; a pod is sent those directories first (package_delivery.h). Never
 * runs pip itself and never trusts the sandbox's answer unchecked. */
#ifndef PACKAGES_H
#define PACKAGES_H

#include <stddef.h>

#include "app.h"
#include "executor_client.h"
#include "package_names.h"

struct pkg_outcome {
	char *source_code; /* owned: the code to run (pip lines removed), NULL: unchanged */
	char *notes;       /* owned: lines for the run's stderr (failed installs), or NULL */
	char *dirs[PKG_MAX_PER_RUN]; /* owned: the cache directories for the run's sys.path */
	size_t n_dirs;
};

/* Whether a plain run of source asks the sandbox's import check first
 * (POST /execute's check_imports): APP_PACKAGE_INSTALL is on and source
 * contains "import" or "pip". */
int packages_check_wanted(const struct config *cfg, const char *source);
/* From what the import check found ({"missing", "pip", "source_code"}; not
 * taken), finds or installs what the code lacks and, for a pod, sends the
 * sandbox behind executor the directories (all installs and copies together within
 * APP_PACKAGE_INSTALL_TIMEOUT), and records which cache directories the run
 * uses. Never fails the run: an answer of another shape is logged and leaves
 * everything unchanged, a failed install or copy becomes a note. */
void packages_prepare(struct app *app, struct executor_client *executor, const char *execution_id, json_object *found,
		      struct pkg_outcome *out);
void pkg_outcome_release(struct pkg_outcome *o);

#endif
