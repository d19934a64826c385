/* pip_command: pip's command line for an install on the fly, one definition
 * for the install sandbox (executor/install.c) and an installer pod
 * (fcgi-app/pod_install.c). Credentials never go on it: an index URL (which
 * may carry them) and a find-links URL go to pip in its environment. */
#ifndef PIP_COMMAND_H
#define PIP_COMMAND_H

#include "config.h"

/* What follows `pip install --target DIR`: wheels only (no sdist is built, so
 * no package code runs), no cache, no questions, no progress bar.
 * NULL-terminated. */
extern const char *const pip_install_options[];

/* 1 when APP_PIP_FIND_LINKS is a directory (an absolute path), which pip is
 * given with --find-links. */
int pip_links_dir(const struct config *cfg);
/* 1 when pip needs no network: the find-links directory and no index
 * (APP_PIP_INDEX_URL empty); pip then gets --no-index. */
int pip_offline(const struct config *cfg);

#endif
