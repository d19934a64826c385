/* install: the package installer (`executor install --id ID REQ`), run by a
 * worker as root. Owns the install sandbox: pip runs in namespaces of its own
 * (user, pid, mount, ipc, uts; the host's network, so it reaches the index) with
 * a minimal read-only root, write access only to the package cache's
 * site-packages, a size-limited /tmp and a time limit, as the locked-down
 * sandbox user. It never runs user code and never writes outside the cache. */
#ifndef INSTALL_H
#define INSTALL_H

#include "config.h"

/* Where the cache's site-packages appear inside the sandboxes (read-only) and
 * inside the install sandbox (read-write). */
#define INSTALL_INSIDE_PACKAGES "/opt/code-interpreter/packages"

/* Installs the requirement (one pip requirement spec, already validated by the
 * caller) into cfg->package_cache/site-packages. pip's output goes to stdout
 * and stderr. Returns the exit status for main(): pip's, 124 when
 * APP_PACKAGE_INSTALL_TIMEOUT passed (the sandbox is killed), 1 when a setup
 * step failed (logged). */
int install_run(const struct config *cfg, const char *id, const char *requirement);

#endif
