/* install: the package installer (`executor install --id ID --staging DIR
 * --timeout SECONDS -- REQUIREMENT`), run by the service as root. Owns what is
 * pip's: the checks of the staging directory and the requirement, whether pip
 * needs the network, and pip's command line and environment. The sandbox it
 * runs in is sandbox.c's (sbx_install): the steps of a run's sandbox with
 * another option set. Never runs user code, never writes outside the staging
 * directory, never puts a credential on a command line. */
#ifndef INSTALL_H
#define INSTALL_H

#include "config.h"

/* Inside the install sandbox: the staging directory (read-write, pip's
 * --target) and a local APP_PIP_FIND_LINKS directory (read-only). */
#define INSTALL_INSIDE_STAGING "/opt/code-interpreter/staging"
#define INSTALL_INSIDE_FIND_LINKS "/opt/code-interpreter/find-links"

/* Installs requirement (pip wheels only) into staging, an empty real directory
 * directly under $APP_PACKAGE_CACHE/staging that the caller made and publishes
 * afterwards; it is never removed here. pip runs in an install sandbox with a
 * network namespace of its own (loopback only) when APP_PIP_INDEX_URL is empty
 * and APP_PIP_FIND_LINKS a directory, else on the host's network. pip's output
 * goes to stdout and stderr. Returns the exit status for main(): pip's, 124
 * when timeout seconds passed (the sandbox is killed), 1 when a setup step
 * failed (logged), 2 for an invalid id, requirement, timeout or staging
 * directory, or a find-links path that is no directory (logged). */
int install_run(const struct config *cfg, const char *id, const char *staging, double timeout,
		const char *requirement);

#endif
