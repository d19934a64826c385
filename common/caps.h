/* caps: emptying a process's capability sets, for every process that gives
 * up root (a sandbox's runner, the service's workers). Only takes away: never
 * raises a capability or changes a uid. */
#ifndef CAPS_H
#define CAPS_H

#include <stddef.h>
#include <sys/types.h>

/* Gives up root in the calling process for good: the supplementary groups
 * become the n_groups given, the bounding and ambient sets are emptied, uid and
 * gid (real, effective, saved) become uid/gid and are checked, setuid(0) must
 * fail, and the permitted, effective and inheritable sets are emptied and
 * checked; the parent-death signal, which a credential change clears, is kept.
 * uid (uid_t)-1 keeps the ids (a process that runs unprivileged already, e.g.
 * a pod, only empties its sets; groups it may not change stay). 0, or -1 with
 * errno set and *step naming what failed. */
int caps_become(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, const char **step);

#endif
