/* server: the executor server (`executor serve`), libmicrohttpd on a unix socket
 * (local sandboxes) or a TCP port (pods). Owns /workspace on behalf of the
 * service: PUT/GET /workspace/{path}, POST /execute, GET /healthz, and in a
 * pod PUT /packages/{dir}/{path}; starts the Python runner ahead of time and
 * runs exactly one execution. Never follows a symlink, never serves anything
 * but a regular file under the workspace. */
#ifndef SERVER_H
#define SERVER_H

#include "config.h"

struct server_options {
	const struct config *cfg;
	const char *socket_path; /* unix socket to listen on, or NULL */
	int port;                /* TCP port when socket_path is NULL */
	const char *host;        /* IPv4 address to bind the port to; NULL: all */
	const char *workspace;   /* "/workspace" in a sandbox; any directory in tests */
	const char *packages_dir; /* a pod's (SBX_INSIDE_PACKAGES): PUT /packages/... fills
				   * it (pod_packages.h); NULL: that route is a 404 */
	const char *runner_dir;  /* directory holding runner.py */
	int sandboxed;           /* 1: lock the runner down with sbx_lockdown(cfg, 1) */
	int ready_fd;            /* gets "R" once the runner is warm; -1 for none */
	int runner_request_fd;   /* the zygote makes the runner (runner_start); -1: fork */
};

/* Serves until SIGTERM/SIGINT. Returns the exit status for main(). */
int server_run(const struct server_options *o);

#endif
