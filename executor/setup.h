/* setup: the fatal-on-failure steps that both sandboxes share, the run sandbox
 * (sandbox.c) and the install sandbox (install.c): directories, files, the flags
 * a user namespace may not drop, pivot_root, the uid/gid maps. A failed step
 * logs which step and errno, then ends the process with status 1. */
#ifndef SETUP_H
#define SETUP_H

#include <sys/types.h>

/* The uid and gid user code runs as inside every sandbox. */
#define SANDBOX_USER 1000

/* Names the sandbox in failure messages ("sandbox setup", "install sandbox"). */
void setup_set_name(const char *name);
__attribute__((noreturn)) void setup_die(const char *step, const char *what);

void setup_make_dir(const char *path, mode_t mode);
/* Creates path (which must not exist) with text, without following symlinks. */
void setup_write_text(const char *path, const char *text, mode_t mode);
/* An empty regular file to bind a host file onto. */
void setup_make_file(const char *path);
/* The flags a bind mount carries from the mount it copies. In a user namespace
 * those of mounts inherited from the host are locked: a remount that leaves one
 * out fails with EPERM (bubblewrap does the same). */
unsigned long setup_locked_flags(const char *path);
/* pivot_root into ./root, detach the host's tree, make / read-only. */
void setup_pivot(void);

/* The child's side of the launcher handshake. setup_wait_for_launcher closes
 * *sync_wr, waits for the launcher's byte (uid/gid maps written, cgroups joined)
 * and returns it; EOF means the launcher died. setup_become_root then takes
 * uid/gid 0 inside (full capabilities over the new namespaces, none over the
 * host), re-arms the parent-death signal the credential change cleared, checks
 * the launcher did not die in between (hang-up on *sync_rd) and closes *sync_rd.
 * Closed descriptors are set to -1. */
char setup_wait_for_launcher(int *sync_rd, int *sync_wr);
void setup_become_root(int *sync_rd);

/* Writes /proc/PID/FILE ("uid_map" or "gid_map"): sandbox root -> base, the
 * sandbox user -> base + SANDBOX_USER. Called by the launcher, not the child.
 * 0, or -1 with errno. */
int setup_write_id_map(pid_t pid, const char *file, long base);

#endif
