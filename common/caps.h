/* caps: emptying a process's capability sets, for every process that gives
 * up root (a sandbox's runner, the service's workers). Only takes away: never
 * raises a capability or changes a uid. */
#ifndef CAPS_H
#define CAPS_H

/* Empties the bounding set. A process without CAP_SETPCAP (a pod that already
 * runs unprivileged) cannot, and need not: no_new_privs keeps exec from
 * gaining anything the bounding set would have stopped; then 0 as well. 0, or
 * -1 (errno set). */
int caps_drop_bounding_set(void);

/* Empties the permitted, effective and inheritable sets and checks that they
 * are empty. 0, or -1 (errno set). */
int caps_clear(void);

#endif
