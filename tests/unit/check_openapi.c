/* Unit tests for fcgi-app/openapi.c: the document built into the binary is
 * docs/openapi.json as it is now, parses as OpenAPI 3.1, and names exactly the
 * routes of the router (operations marked x-served-by are lighttpd's), so a
 * route added to one and not the other fails here. GET /openapi.json answers it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "openapi.h"
#include "router.h"

static json_object *document(void)
{
	size_t len;
	const char *text = openapi_document(&len);
	json_tokener *tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
	ck_assert_msg(doc && json_tokener_get_error(tok) == json_tokener_success,
		      "docs/openapi.json does not parse: %s", json_tokener_error_desc(json_tokener_get_error(tok)));
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
		ck_assert_msg(strchr(" \t\r\n", text[i]), "docs/openapi.json: more after the document");
	json_tokener_free(tok);
	return doc;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* The document's path for a router pattern: a pattern ending in a slash and
 * a star ("/v1/files/ *") is the path with a {parameter} there. */
static json_object *doc_path(json_object *paths, const char *pattern)
{
	size_t n = strlen(pattern);
	if (n < 2 || strcmp(pattern + n - 2, "/*") != 0)
		return get(paths, pattern);
	json_object_object_foreach(paths, key, val) {
		size_t k = strlen(key);
		if (k > n && strncmp(key, pattern, n - 1) == 0 && key[n - 1] == '{' && key[k - 1] == '}' &&
		    !strchr(key + n - 1, '/'))
			return val;
	}
	return NULL;
}

/* True when the router answers method on the document's path (a {param} is one segment). */
static int routed(const char *method, const char *path)
{
	const char *rmethod, *pattern;
	for (int i = 1; (pattern = router_route(i, &rmethod)) != NULL; i++) {
		size_t n = strlen(pattern);
		int same = strcmp(pattern, path) == 0;
		if (!same && n >= 2 && strcmp(pattern + n - 2, "/*") == 0)
			same = strncmp(pattern, path, n - 1) == 0 && path[n - 1] == '{' && !strchr(path + n - 1, '/');
		if (same && strcasecmp(rmethod, method) == 0)
			return 1;
	}
	return 0;
}

START_TEST(embedded_document_is_docs_openapi_json)
{
	FILE *f = fopen(DATADIR "/docs/openapi.json", "rb");
	ck_assert_ptr_nonnull(f);
	static char file[1 << 20];
	size_t n = fread(file, 1, sizeof(file), f);
	fclose(f);
	size_t len;
	const char *doc = openapi_document(&len);
	ck_assert_msg(n == len && memcmp(doc, file, n) == 0,
		      "the binary's document differs from docs/openapi.json: rebuild");
	ck_assert_int_eq(doc[len], '\0');
}
END_TEST

START_TEST(document_is_openapi_3_1)
{
	json_object *doc = document();
	ck_assert_str_eq(json_object_get_string(get(doc, "openapi")), "3.1.0");
	ck_assert_ptr_nonnull(get(get(doc, "info"), "title"));
	ck_assert(json_object_is_type(get(doc, "paths"), json_type_object));
	json_object_put(doc);
}
END_TEST

START_TEST(every_route_is_documented)
{
	json_object *doc = document();
	json_object *paths = get(doc, "paths");
	const char *method, *pattern;
	int n = 0;
	for (int i = 1; (pattern = router_route(i, &method)) != NULL; i++, n++) {
		char lower[8] = {0};
		for (size_t j = 0; j < sizeof(lower) - 1 && method[j]; j++)
			lower[j] = (char)(method[j] | 0x20);
		json_object *op = get(doc_path(paths, pattern), lower);
		ck_assert_msg(op != NULL, "route %s %s is not in docs/openapi.json", method, pattern);
		ck_assert_msg(get(op, "responses") != NULL, "%s %s has no responses", method, pattern);
	}
	ck_assert_int_ge(n, 9);
	json_object_put(doc);
}
END_TEST

START_TEST(every_documented_operation_is_routed)
{
	json_object *doc = document();
	static const char *const methods[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};
	json_object_object_foreach(get(doc, "paths"), path, item) {
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
			json_object *op = get(item, methods[i]);
			if (!op || get(op, "x-served-by"))
				continue;
			ck_assert_msg(routed(methods[i], path), "docs/openapi.json has %s %s, the router does not",
				      methods[i], path);
		}
	}
	json_object_put(doc);
}
END_TEST

START_TEST(handler_answers_the_document_as_json)
{
	struct request_in in = {.method = "GET", .path = "/openapi.json"};
	struct response out = {.fd = -1};
	router_dispatch(NULL, &in, &out);
	size_t len;
	const char *doc = openapi_document(&len);
	ck_assert_int_eq(out.status, CI_OK);
	ck_assert_str_eq(out.content_type, "application/json");
	ck_assert_uint_eq(out.text_len, len);
	ck_assert(memcmp(out.text, doc, len) == 0);
	free(out.text);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("openapi");
	TCase *tc = tcase_create("document");
	tcase_add_test(tc, embedded_document_is_docs_openapi_json);
	tcase_add_test(tc, document_is_openapi_3_1);
	tcase_add_test(tc, every_route_is_documented);
	tcase_add_test(tc, every_documented_operation_is_routed);
	tcase_add_test(tc, handler_answers_the_document_as_json);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
