/* sbx_seccomp: the system call filter for sandboxed user code (libseccomp). Owns the
 * deny list: default allow, kernel attack surface denied with EPERM (clone3 with
 * ENOSYS), any foreign ABI (i386, x32) kills the process. Never loads a filter
 * without no_new_privs already set by the caller (sbx_lockdown). */
#ifndef SBX_SECCOMP_H
#define SBX_SECCOMP_H

/* Builds the filter and loads it into the calling thread. 0, or -1 with errno set
 * (a message naming the rule that failed is logged). */
int sbx_seccomp_load(void);

/* Writes the filter as libseccomp pseudo code to fd, for debugging. 0 or -1. */
int sbx_seccomp_export(int fd);

#endif
