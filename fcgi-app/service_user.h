/* service_user: the unprivileged user (APP_SERVICE_USER) that the processes
 * parsing requests (the FastCGI workers) and the cleanup process run as.
 * Owns looking it up, giving it at start the state it works on (the database
 * and its WAL files, the store's directory and lock) and turning a freshly
 * forked child into it for good: no capability, no way back, no_new_privs.
 * It never gives that user a path that a root process then trusts. */
#ifndef SERVICE_USER_H
#define SERVICE_USER_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct service_user {
	int drop;            /* 1: the master is root and children become uid/gid */
	uid_t uid;           /* the workers' uid (the master's own when drop is 0) */
	gid_t gid;
	gid_t groups[2];     /* supplementary: its own group, APP_FILE_STORAGE_GROUP's */
	size_t n_groups;
};

/* Finds the user. As root: APP_SERVICE_USER must exist and not be root (else
 * -1, logged, naming `make deps`); APP_FILE_STORAGE_GROUP becomes one of its
 * groups. Not as root (a pod that is unprivileged already): drop is 0, the
 * workers keep the master's uid, and that is logged. 0, or -1. */
int service_user_lookup(const struct config *cfg, struct service_user *u);

/* At start, in the master, before the database is opened: makes the database
 * file (created if missing) and its -wal and -shm (where they exist) the
 * user's, mode 0600, SQLite then gives the WAL files it makes as root to the
 * file's owner; makes the store's directory and its lock the user's (a
 * folder shared with APP_FILE_STORAGE_GROUP stays its owner's: the user is
 * in the group); makes $APP_RUN_DIR/store.lock the user's. Each is changed
 * through a descriptor opened without following symlinks, and only when it
 * is a regular file with one link (or the directory). Nothing when drop is
 * 0. 0, or -1 (logged). */
int service_user_own_state(const struct config *cfg, const struct service_user *u);

/* In a freshly forked child, before it opens anything: its groups, gid and
 * uid become the user's (real, effective and saved), every capability set is
 * emptied (bounding and ambient included) and no_new_privs is set; checked
 * after. With drop 0 only no_new_privs. 0, or -1 (logged: the child must
 * exit). */
int service_user_become(const struct service_user *u);

#endif
