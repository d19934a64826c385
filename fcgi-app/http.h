/* http: the response side of a FastCGI request. Owns the mapping from the
 * service's status enum to HTTP status codes (the only place that mapping
 * exists) and the JSON error bodies of DESIGN §1. Never reads the request. */
#ifndef HTTP_H
#define HTTP_H

#include <fcgiapp.h>
#include <json-c/json.h>

#include "store.h"

enum ci_status {
	CI_OK = 0,        /* 200 */
	CI_CREATED,       /* 201 */
	CI_INVALID,       /* 422: validation failed; body has "detail" */
	CI_BAD_REQUEST,   /* 400 */
	CI_NOT_FOUND,     /* 404 */
	CI_METHOD,        /* 405 */
	CI_TOO_LARGE,     /* 413 */
	CI_UNAVAILABLE,   /* 503 with Retry-After */
	CI_INTERNAL,      /* 500 */
	CI_INSUFFICIENT_STORAGE, /* 507: the store's disk is full */
	CI_UNAUTHORIZED,  /* 401 with WWW-Authenticate: Bearer */
	CI_FORBIDDEN,     /* 403 */
	CI_TOO_MANY,      /* 429 with Retry-After */
};

int http_code(enum ci_status st);

struct response {
	enum ci_status status;
	json_object *body;          /* owned; NULL sends {} */
	char execution_id[40];      /* X-Execution-Id when not empty */
	const char *allow;          /* Allow header for 405, static */
	int route;                  /* router's route number + 1 (0: none), for metrics */
	/* Instead of JSON: a raw body (text, owned) or an open file (has_fd; fd
	 * owned, fd_size bytes streamed from it), sent as content_type (static). */
	const char *content_type;
	char *text;
	size_t text_len;
	int has_fd;
	int fd;
	uint64_t fd_size;
	char fd_object[STORE_ID_LEN + 1]; /* the store object fd reads, checked
					    * against its id as it is sent */
};

/* Sends status, headers and the body on req->out (the file or text when set,
 * else the JSON body); releases r->body, r->text and r->fd. Returns the HTTP
 * status code it sent. */
int http_send(FCGX_Request *req, struct response *r);

/* Sets r to an error: {"detail": msg}, status st. */
void http_error(struct response *r, enum ci_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* FastAPI-shaped validation errors: a list built with detail_add, sent as 422. */
json_object *detail_new(void);
/* Appends {"type": type, "loc": ["body", loc...], "msg": msg}; loc is a
 * NULL-terminated list of strings; an entry "#N" becomes the integer N. */
void detail_add(json_object *detail, const char *type, const char *msg, ...)
	__attribute__((sentinel));
/* Makes r a 422 with {"detail": detail} (takes the reference). */
void http_invalid(struct response *r, json_object *detail);

#endif
