/* router: see router.h. */
#include "router.h"

#include <string.h>

#include "custom_tool.h"

struct route {
	const char *method;
	const char *path;
	void (*fn)(struct app *, const struct request_in *, struct response *);
};

static const struct route routes[] = {
	{"POST", "/v1/execute", handle_execute},
	{"POST", "/v1/parse-custom-tool", handle_parse_custom_tool},
	{"POST", "/v1/execute-custom-tool", handle_execute_custom_tool},
	{"GET", "/healthz", handle_healthz},
	{"GET", "/readyz", handle_readyz},
	{NULL, NULL, NULL},
};

int router_wants_body(const char *method, const char *path)
{
	for (const struct route *r = routes; r->path; r++)
		if (strcmp(r->path, path) == 0 && strcmp(r->method, method) == 0)
			return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
	return 0;
}

void router_dispatch(struct app *app, const struct request_in *in, struct response *out)
{
	const struct route *same_path = NULL;
	for (const struct route *r = routes; r->path; r++) {
		if (strcmp(r->path, in->path) != 0)
			continue;
		if (strcmp(r->method, in->method) == 0 ||
		    (strcmp(in->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
			r->fn(app, in, out);
			return;
		}
		same_path = r;
	}
	if (same_path) {
		out->allow = same_path->method;
		http_error(out, CI_METHOD, "Method Not Allowed");
		return;
	}
	http_error(out, CI_NOT_FOUND, "Not Found");
}
