/* http: see http.h. */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int http_code(enum ci_status st)
{
	switch (st) {
	case CI_OK: return 200;
	case CI_CREATED: return 201;
	case CI_INVALID: return 422;
	case CI_BAD_REQUEST: return 400;
	case CI_NOT_FOUND: return 404;
	case CI_METHOD: return 405;
	case CI_TOO_LARGE: return 413;
	case CI_UNAVAILABLE: return 503;
	case CI_INTERNAL: return 500;
	case CI_INSUFFICIENT_STORAGE: return 507;
	case CI_UNAUTHORIZED: return 401;
	case CI_FORBIDDEN: return 403;
	case CI_TOO_MANY: return 429;
	}
	return 500;
}

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	case 507: return "Insufficient Storage";
	default: return "Internal Server Error";
	}
}

/* Appends a formatted header line to head; libfcgi's own printf knows no %zu,
 * so every header is formatted here and written in one piece. */
static void header(char *head, size_t cap, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void header(char *head, size_t cap, size_t *used, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(head + *used, cap - *used, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < cap - *used)
		*used += (size_t)n;
}

/* Streams size bytes of fd to out; a short file is logged (the length was sent). */
/* Streams the object's bytes, checked against its id: on a mismatch the
 * piece that completes them is not sent, so the client gets a body shorter
 * than its Content-Length (an error), never other bytes under the id. */
static void send_fd(FCGX_Stream *out, int fd, uint64_t size, const char *object_id)
{
	char buf[64 * 1024];
	struct store_check check;
	if (store_check_begin(&check, object_id, size) != STORE_OK)
		size = 0;
	while (size > 0) {
		size_t want = size > sizeof(buf) ? sizeof(buf) : (size_t)size;
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("http: object %s ended %llu bytes early", object_id, (unsigned long long)size);
			break;
		}
		if (store_check_update(&check, buf, (size_t)n) != STORE_OK ||
		    FCGX_PutStr(buf, (int)n, out) != (int)n)
			break; /* not the object's bytes, or the client went away */
		size -= (uint64_t)n;
	}
	store_check_end(&check);
}

int http_send(FCGX_Request *req, struct response *r)
{
	int code = http_code(r->status);
	size_t len = 2;
	const char *text = "{}";
	if (r->has_fd) {
		len = (size_t)r->fd_size;
	} else if (r->text) {
		text = r->text;
		len = r->text_len;
	} else if (r->body) {
		text = json_object_to_json_string_length(
			r->body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	}
	const char *ctype = (r->has_fd || r->text) && r->content_type ? r->content_type : "application/json";
	char head[512];
	size_t used = 0;
	header(head, sizeof(head), &used, "Status: %d %s\r\nContent-Type: %s\r\n"
	       "Content-Length: %zu\r\n", code, reason(code), ctype, len);
	if (r->execution_id[0])
		header(head, sizeof(head), &used, "X-Execution-Id: %s\r\n", r->execution_id);
	if (r->status == CI_UNAVAILABLE || r->status == CI_TOO_MANY)
		header(head, sizeof(head), &used, "Retry-After: 1\r\n");
	if (r->status == CI_UNAUTHORIZED)
		header(head, sizeof(head), &used, "WWW-Authenticate: Bearer\r\n");
	if (r->status == CI_METHOD && r->allow)
		header(head, sizeof(head), &used, "Allow: %s\r\n", r->allow);
	header(head, sizeof(head), &used, "\r\n");
	FCGX_PutStr(head, (int)used, req->out);
	if (r->has_fd) {
		send_fd(req->out, r->fd, r->fd_size, r->fd_object);
		close(r->fd);
		r->has_fd = 0;
		r->fd = -1;
	} else {
		FCGX_PutStr(text, (int)len, req->out);
	}
	json_object_put(r->body);
	r->body = NULL;
	free(r->text);
	r->text = NULL;
	return code;
}

void http_error(struct response *r, enum ci_status st, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_put(r->body);
	r->body = json_object_new_object();
	json_object_object_add(r->body, "detail", json_object_new_string(msg));
	r->status = st;
}

json_object *detail_new(void)
{
	return json_object_new_array();
}

void detail_add(json_object *detail, const char *type, const char *msg, ...)
{
	json_object *e = json_object_new_object();
	json_object *loc = json_object_new_array();
	json_object_array_add(loc, json_object_new_string("body"));
	va_list ap;
	va_start(ap, msg);
	const char *part;
	while ((part = va_arg(ap, const char *)) != NULL) {
		char *end;
		if (part[0] == '#' && part[1]) {
			long n = strtol(part + 1, &end, 10);
			if (*end == '\0') {
				json_object_array_add(loc, json_object_new_int64(n));
				continue;
			}
		}
		json_object_array_add(loc, json_object_new_string(part));
	}
	va_end(ap);
	json_object_object_add(e, "type", json_object_new_string(type));
	json_object_object_add(e, "loc", loc);
	json_object_object_add(e, "msg", json_object_new_string(msg));
	json_object_array_add(detail, e);
}

void http_invalid(struct response *r, json_object *detail)
{
	json_object_put(r->body);
	r->body = json_object_new_object();
	json_object_object_add(r->body, "detail", detail);
	r->status = CI_INVALID;
}
