/* router: maps method and path to a handler; answers 404 and 405 itself. */
#ifndef ROUTER_H
#define ROUTER_H

#include "handlers.h"

/* Fills out for the request. Never fails. */
void router_dispatch(struct app *app, const struct request_in *in, struct response *out);
/* True when the route takes a body (the worker reads it only then). */
int router_wants_body(const char *method, const char *path);

#endif
