/* openapi: GET /openapi.json. The OpenAPI 3.1 document of the API is
 * docs/openapi.json, built into the binary (so it always describes the binary
 * that serves it and is never read from disk). Never alters the document. */
#ifndef OPENAPI_H
#define OPENAPI_H

#include <stddef.h>

#include "handlers.h"

/* The document's bytes (NUL-terminated; static, never freed); *len is set to
 * its length without the NUL. */
const char *openapi_document(size_t *len);

/* 200 with the document as application/json. */
void handle_openapi(struct app *app, const struct request_in *in, struct response *out);

#endif
