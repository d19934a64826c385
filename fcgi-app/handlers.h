/* handlers: one function per route. Each parses and validates, makes one call
 * into execution/pool/storage, and fills the response; no SQL, curl or fork. */
#ifndef HANDLERS_H
#define HANDLERS_H

#include "app.h"
#include "http.h"

struct request_in {
	const char *method;
	const char *path;     /* without the query string */
	const char *key;      /* the caller's API key name; NULL without keys */
	const char *body;     /* NUL-terminated copy of the body; may contain NULs */
	size_t body_len;
	/* streaming routes (router_streams_body): the body is read from here */
	FCGX_Stream *stream;
	uint64_t content_length;
};

void handle_execute(struct app *app, const struct request_in *in, struct response *out);
void handle_healthz(struct app *app, const struct request_in *in, struct response *out);
void handle_readyz(struct app *app, const struct request_in *in, struct response *out);
void handle_file_upload(struct app *app, const struct request_in *in, struct response *out);
void handle_file_download(struct app *app, const struct request_in *in, struct response *out);
void handle_metrics(struct app *app, const struct request_in *in, struct response *out);

#endif
