/* executor_client: the worker's side of docs/executor-protocol.md, over libcurl
 * (a unix socket for local sandboxes, http://POD_IP:8000 for pods). Owns URL
 * building, transfer limits and the pod's `Authorization: Bearer` header;
 * never interprets what the code printed, never logs the token. */
#ifndef EXECUTOR_CLIENT_H
#define EXECUTOR_CLIENT_H

#include <stdint.h>
#include <json-c/json.h>

#include "store.h"

struct executor_client {
	void *curl;             /* owned CURL *, reused for keep-alive */
	char *socket_path;      /* owned; NULL for a TCP endpoint */
	char *base;             /* owned: "http://sandbox" or the endpoint URL */
	char *auth;             /* owned "Authorization: Bearer ..." line, or NULL */
	char error[256];        /* last failure, one line */
	long status;            /* the last request's HTTP status, 0 when none came */
	int answered;           /* a request has had a 2xx answer */
	int untouched;          /* the last request never reached the executor, or
				 * it refused it before anything ran (its 503 that
				 * says "not_run") */
};

/* Prepares a client for the executor at endpoint: an absolute unix socket path,
 * or a base URL such as "http://10.0.0.7:8000". token (NULL or "": none; a
 * pod's, pool_token) goes with every request as `Authorization: Bearer`;
 * copied. */
void executor_init(struct executor_client *c, const char *endpoint, const char *token);
/* Frees what c owns, the header line wiped first. */
void executor_release(struct executor_client *c);
/* 1 when the executor has taken nothing from this client: no request reached
 * it (its socket or address refused the connection) or it refused the last
 * with its own 503, `"not_run": true` (its runner not ready, or dead before
 * any execution), and none was answered before. Such an executor ran
 * nothing: another may be tried. */
int executor_unused(const struct executor_client *c);

/* PUT /workspace/{path} with size bytes read from fd. With check (begun by
 * store_check_begin for the object fd reads), the bytes are checked as they
 * go: the piece that would complete them is never sent unless all of them
 * hash to the object's id, and a file that ends early stops the upload at
 * once. 0, EXECUTOR_CHANGED when the object's bytes were not its own, or -1
 * (c->error). */
#define EXECUTOR_CHANGED (-2)
int executor_put_file(struct executor_client *c, const char *path, int fd, uint64_t size, struct store_check *check);
/* PUT /packages/{rel}[?mtime=MTIME] (a pod's route: a file of a package
 * cache directory, rel "<dir>/<path>" valid per pkg_file_path_valid) with
 * size bytes read from fd, within timeout_ms; mtime < 0: none sent. 0, or -1
 * (c->error; c->status the executor's answer, e.g. 413 when the pod's
 * packages are full). */
int executor_put_package_file(struct executor_client *c, const char *rel, int fd, uint64_t size, int64_t mtime,
			      long timeout_ms);
/* The largest answer to POST /execute read from an executor whose streams are
 * capped at max_output_bytes each (APP_MAX_OUTPUT_BYTES): both streams
 * JSON-escaped at 6 bytes a byte, with their markers, plus 64 MiB for the rest. */
uint64_t executor_response_limit(uint64_t max_output_bytes);
/* POST /execute with the JSON body; waits at most timeout_s. *out gets the parsed
 * response object (caller puts it), of at most executor_response_limit(max_output_bytes)
 * bytes. 0, or -1 (c->error). */
int executor_execute(struct executor_client *c, json_object *body, double timeout_s, uint64_t max_output_bytes,
		     json_object **out);
/* The same with an answer of at most limit bytes. */
int executor_execute_within(struct executor_client *c, json_object *body, double timeout_s, uint64_t limit,
			    json_object **out);
/* GET /workspace/{path} into the store through w (already begun). 0, or -1
 * (c->error); 1 when the object is larger than the writer's limit. */
int executor_get_file(struct executor_client *c, const char *path, struct store_writer *w);
/* GET /workspace/{path} into the file fd, at most max bytes (*written gets
 * how many were written) within timeout_ms; *mtime gets the answer's
 * Last-Modified (seconds since the epoch), -1 without one. 0, 1 when the file
 * is larger than max, or -1 (c->error). */
int executor_get_file_fd(struct executor_client *c, const char *path, int fd, uint64_t max, long timeout_ms,
			 uint64_t *written, int64_t *mtime);

#endif
