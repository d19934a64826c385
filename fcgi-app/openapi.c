/* openapi: see openapi.h. The assembler's .incbin copies docs/openapi.json
 * (OPENAPI_JSON, its absolute path, from the Makefile, which also rebuilds
 * this file when the document changes) into .rodata, followed by a NUL. */
#include "openapi.h"

#include <string.h>

#include "util.h"

#ifndef OPENAPI_JSON
#error "OPENAPI_JSON must name docs/openapi.json (see the Makefile)"
#endif

__asm__(".pushsection .rodata\n"
	".globl openapi_json_start\n"
	".hidden openapi_json_start\n"
	".type openapi_json_start, @object\n"
	"openapi_json_start:\n"
	".incbin \"" OPENAPI_JSON "\"\n"
	".globl openapi_json_end\n"
	".hidden openapi_json_end\n"
	"openapi_json_end:\n"
	".byte 0\n"
	".size openapi_json_start, . - openapi_json_start\n"
	".popsection\n");

extern const char openapi_json_start[] __attribute__((visibility("hidden")));
extern const char openapi_json_end[] __attribute__((visibility("hidden")));

const char *openapi_document(size_t *len)
{
	*len = (size_t)(openapi_json_end - openapi_json_start);
	return openapi_json_start;
}

void handle_openapi(struct app *app, const struct request_in *in, struct response *out)
{
	(void)app;
	(void)in;
	size_t len;
	const char *doc = openapi_document(&len);
	out->status = CI_OK;
	out->text = xmalloc(len);
	memcpy(out->text, doc, len);
	out->text_len = len;
	out->content_type = "application/json";
}
