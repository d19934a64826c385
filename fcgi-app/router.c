/* router: see router.h. */
#include "router.h"

#include <string.h>

#include "custom_tool.h"
#include "openapi.h"

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
	{"POST", "/v1/files", handle_file_upload},
	{"GET", "/v1/files/*", handle_file_download},
	{"GET", "/metrics", handle_metrics},
	{"GET", "/openapi.json", handle_openapi},
	{NULL, NULL, NULL},
};

/* Routes whose handler reads the body itself from request_in.stream. */
static const char *const streaming[] = {"POST /v1/files", NULL};

/* A pattern that ends in a slash and a star matches one more non-empty path segment. */
static int path_match(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);
	if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '/')
		return strncmp(pattern, path, n - 1) == 0 && path[n - 1] && !strchr(path + n - 1, '/');
	return strcmp(pattern, path) == 0;
}

static const struct route *find(const char *method, const char *path)
{
	for (const struct route *r = routes; r->path; r++)
		if (path_match(r->path, path) && strcmp(r->method, method) == 0)
			return r;
	return NULL;
}

int router_streams_body(const char *method, const char *path)
{
	const struct route *r = find(method, path);
	for (size_t i = 0; r && streaming[i]; i++) {
		size_t m = strlen(r->method);
		if (strncmp(streaming[i], r->method, m) == 0 && streaming[i][m] == ' ' &&
		    strcmp(streaming[i] + m + 1, r->path) == 0)
			return 1;
	}
	return 0;
}

int router_wants_body(const char *method, const char *path)
{
	if (!find(method, path) || router_streams_body(method, path))
		return 0;
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
}

const char *router_route(int number, const char **method)
{
	int n = 0;
	while (routes[n].path)
		n++;
	if (number < 1 || number > n)
		return NULL;
	*method = routes[number - 1].method;
	return routes[number - 1].path;
}

void router_dispatch(struct app *app, const struct request_in *in, struct response *out)
{
	const struct route *same_path = NULL;
	for (const struct route *r = routes; r->path; r++) {
		if (!path_match(r->path, in->path))
			continue;
		if (strcmp(r->method, in->method) == 0 ||
		    (strcmp(in->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
			out->route = (int)(r - routes) + 1;
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
