/* packages: the worker's side of packages installed on the fly (DESIGN.md §6).
 * Asks the claimed sandbox which imports it cannot find (POST /imports), maps
 * modules to distributions (executor/python/package_map.json, APP_PACKAGE_MAP),
 * installs each distribution once per machine (a lock per distribution in the
 * cache, then `executor install`, whose sandbox runs pip) and records every pip
 * run. Never runs pip itself and never trusts the sandbox's answer unchecked. */
#ifndef PACKAGES_H
#define PACKAGES_H

#include <stddef.h>

#include "app.h"
#include "executor_client.h"
#include "package_names.h"

struct pkg_outcome {
	char *source_code; /* owned: the code to run (pip lines removed), NULL: unchanged */
	char *notes;       /* owned: lines for the run's stderr (failed installs), or NULL */
};

/* Checks source in the sandbox behind xc and installs what it lacks. Never
 * fails the run: a failed check is logged and leaves everything unchanged, a
 * failed install becomes a note. Does nothing when APP_PACKAGE_INSTALL=0, for
 * the kubernetes backend, or when source contains neither "import" nor "pip". */
void packages_prepare(struct app *app, struct xc *xc, const char *execution_id, const char *source,
		      struct pkg_outcome *out);
void pkg_outcome_release(struct pkg_outcome *o);

#endif
