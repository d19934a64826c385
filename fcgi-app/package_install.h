/* package_install: installs one distribution into the package cache: its
 * name's lock, a look in the cache (another request may have installed it
 * meanwhile), one of APP_PACKAGE_INSTALL_CONCURRENCY turns, `executor install`
 * (pip, wheels only, in the install sandbox; on the kubernetes backend pip in
 * an installer pod, pod_install.h) into staging, publishing
 * (root-owned, package_cache.h) and the records. Needs root: it runs in the
 * root helper's child (root_helper.h), never in a worker. Also the notes that
 * a failed install leaves in a run's stderr, which the worker writes too. */
#ifndef PACKAGE_INSTALL_H
#define PACKAGE_INSTALL_H

#include <stdint.h>

#include "config.h"
#include "db.h"
#include "package_names.h"

#define PKG_REQUIREMENT_MAX 255 /* longest requirement handed to pip (db_package_dist) */

/* One distribution a run needs, as pip is asked for it. */
struct pkg_wanted {
	char requirement[PKG_REQUIREMENT_MAX + 1]; /* what pip is given */
	char norm[PKG_NAME_MAX + 1];               /* normalized name */
	const char *kind;                          /* pkg_spec_kind: "latest", "pin", "requirement" */
	char pin[128];                             /* a pin's version, else "" */
	char module[PKG_NAME_MAX + 1];             /* the first import that needs it; "" for a pip line */
};

/* Fills w from requirement (pkg_spec_valid, at most PKG_REQUIREMENT_MAX
 * bytes) and module (NULL or "" for none, else pkg_module_valid): every
 * derived field is computed here, never taken from a caller. 0, or -1 when
 * either is not valid. */
int pkg_wanted_init(struct pkg_wanted *w, const char *requirement, const char *module);

/* Installs w for the execution (unless another request did meanwhile)
 * before deadline_ms (monotonic_ms), with db, this process's connection.
 * 0 with the cache directory serving it in dir and its *.dist-info in
 * metadata; -1 with a line added to *notes saying why not. Every pip run is
 * a package_installs row; a success may evict others (APP_PACKAGE_CACHE_MB). */
int pkg_install(const struct config *cfg, struct db *db, const char *execution_id, const struct pkg_wanted *w,
		int64_t deadline_ms, char dir[PKG_DIR_NAME_MAX + 1], char metadata[PKG_METADATA_MAX + 1],
		char **notes);

/* Appends one line (printf-style) to *notes (a string the caller frees, or NULL). */
void pkg_note_add(char **notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "Package install failed: REQUIREMENT (needed by `import MODULE`): why". */
void pkg_note_failure(char **notes, const struct pkg_wanted *w, const char *why);
/* The failure of a request whose installs passed APP_PACKAGE_INSTALL_TIMEOUT. */
void pkg_note_deadline(char **notes, const struct config *cfg, const struct pkg_wanted *w);

#endif
