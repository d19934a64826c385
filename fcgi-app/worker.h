/* worker: one preforked FastCGI worker: accepts one request at a time on the
 * shared listening socket, reads it within limits, routes it and answers.
 * SIGTERM lets the request in flight finish, then the worker exits. */
#ifndef WORKER_H
#define WORKER_H

#include "config.h"

/* Serves until SIGTERM; returns the exit status. */
int worker_run(const struct config *cfg, int listen_fd, int notify_fd, int ready_fd);

#endif
