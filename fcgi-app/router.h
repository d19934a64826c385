/* router: maps method and path to a handler; answers 404 and 405 itself. */
#ifndef ROUTER_H
#define ROUTER_H

#include "handlers.h"

/* Fills out for the request. Never fails. */
void router_dispatch(struct app *app, const struct request_in *in, struct response *out);
/* True when the route takes a body that the worker reads into memory first. */
int router_wants_body(const char *method, const char *path);
/* True when the route's handler streams the body itself (request_in.stream). */
int router_streams_body(const char *method, const char *path);
/* The method and path pattern of route number (out->route, from 1), or NULL. */
const char *router_route(int number, const char **method);

#endif
