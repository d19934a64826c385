/* root_helper: the root side of the workers' privilege separation. A process
 * the master forks as root does for the unprivileged workers the two things
 * they may not do themselves: install a package (package_install.h: the
 * install sandbox, publishing root-owned) and give an object they wrote to a
 * shared folder's owner (store_give_temp). It listens on
 * $APP_RUN_DIR/root-helper.sock (the service user's, 0600; the peer's uid is
 * checked as well), takes one JSON request per connection and serves each in
 * a child of its own, so installs run side by side (pkgcache_turn bounds
 * them). A worker may be compromised: every field is checked here, derived
 * values are recomputed, and nothing else is offered. Both ends of the
 * channel live in this file. */
#ifndef ROOT_HELPER_H
#define ROOT_HELPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "package_install.h"

#define ROOT_HELPER_REQUEST_MAX 4096 /* bytes of one request */

/* Master: the listening socket, made before any child is forked, owned by
 * uid/gid, mode 0600. The descriptor, or -1 (logged). */
int root_helper_listen(const struct config *cfg, uid_t uid, gid_t gid);

/* Master, at the end: closes the listening socket and removes its file. */
void root_helper_unlisten(const struct config *cfg, int fd);

/* The helper's loop, in the child forked for it: serves connections from
 * peer_uid only; returns 0 after SIGTERM or SIGINT once its children are gone. */
int root_helper_run(const struct config *cfg, int listen_fd, uid_t peer_uid);

/* Worker: asks for w to be installed for the execution before deadline_ms
 * (monotonic_ms). As pkg_install: 0 with dir and metadata, or -1 with a line
 * added to *notes. */
int root_helper_install(const struct config *cfg, const char *execution_id, const struct pkg_wanted *w,
			int64_t deadline_ms, char dir[PKG_DIR_NAME_MAX + 1], char metadata[PKG_METADATA_MAX + 1],
			char **notes);

/* Worker: a store's give (store.h), arg the config: asks for the temp file
 * tmpname of the shared folder to become its owner's. 0, or -1 (errno EPERM). */
int root_helper_give(const char *tmpname, void *arg);

/* A request as the root side accepts it. */
enum root_helper_op { RH_INSTALL, RH_GIVE };
struct root_helper_request {
	enum root_helper_op op;
	char execution_id[37];     /* install: a UUID, lowercase */
	struct pkg_wanted want;    /* install: from "requirement" and "module" (pkg_wanted_init) */
	int64_t timeout_ms;        /* install: 1 to max_timeout_ms */
	char name[64];             /* give: the temp file's name (store_give_temp checks it) */
};

/* Parses one request's text (len bytes, at most ROOT_HELPER_REQUEST_MAX):
 * one JSON object with "op" and exactly the fields of that op, each of its
 * type and valid. Pure. 0, or -1 with *why saying what is wrong. */
int root_helper_parse(const char *text, size_t len, int64_t max_timeout_ms, struct root_helper_request *out,
		      const char **why);

#endif
