/* master: the service's first process. Prepares directories, applies the
 * migrations, opens the FastCGI socket, writes lighttpd's config and starts
 * lighttpd, forks the workers and the pool manager and respawns any that die;
 * on SIGTERM/SIGINT shuts everything down in order and leaves nothing behind. */
#ifndef MASTER_H
#define MASTER_H

#include "config.h"

int master_run(const struct config *cfg);

#endif
