/* runner: starts the warm Python runner (executor/python/runner.py) and drives
 * its one execution: sends the request, collects stdout/stderr with a cap, enforces
 * the deadline, kills what the code left behind and reaps every child. It never
 * runs the runner unlocked when sandboxed, and never kill(-1)s unless pid 1 (of
 * a sandbox's or pod's pid namespace).
 *
 * Runner protocol (fds of the Python process):
 *   0  /dev/null
 *   1  stdout pipe, 2  stderr pipe (read by the server during the execution)
 *   3  request pipe: framed messages, each a 4-byte big-endian length and that
 *      many bytes of one JSON object:
 *        {"op": "imports", "source_code": str}  the import check
 *          (executor/python/imports.py, run in the runner; never the code):
 *          answered on fd 4, any number of times before the execution;
 *        {"op": "execute", "source_code": str, "env": {str: str},
 *         "packages": [str]}  runs the code with each package cache directory
 *          named (SBX_INSIDE_PACKAGES/<name>, names checked by the server)
 *          appended to sys.path in order; the runner closes fds 3 and 4 first
 *          and reads nothing more.
 *      EOF at a message boundary (EOF alone): exit 0 without running anything;
 *      anything else (a cut message, an unknown op): exit 2.
 *   4  ready pipe: the byte "R" once the preloads and shims are in place and
 *      the steps of a run rehearsed on nothing (runner.py _rehearse); then
 *      the reply pipe: each answer to "imports" framed like a request,
 *      {"missing": [str], "pip": [str], "source_code": str}
  * argv: python -s -B -u RUNNER_DIR/runner.py WORKSPACE
 *
 * Made by the zygote: a server inside a sandbox started by the zygote gets no
 * fork of its own; it sends RUNNER_REQUEST with the five descriptors above
 * (SCM_RIGHTS) on the zygote's request socket, and the zygote forks the runner
 * from its warm interpreter straight into the server's namespaces and cgroups,
 * as a child of the server (see zygote.h). The runner first writes its pid (in
 * the sandbox) and its memory holder's (0 for none) to fd 4, two int32 in
 * native order, then goes on as above. The memory holder (holder.h) shares
 * the runner's address space and nothing else, so that the runner's exit does
 * not wait for its memory to come down; the server kills it with the rest
 * and does not wait for it to end.
 *
 * Exit status: the kernel's only. The server polls the runner's pidfd, which
 * is readable once the runner is a zombie, and reaps it (waitpid); nothing the
 * runner or the code writes anywhere counts. Before _exit the runner closes
 * fds 1 and 2, so that the server's reading of the output ends with it. */
#define RUNNER_REQUEST "runner"
#ifndef RUNNER_H
#define RUNNER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct runner {
	pid_t pid;
	int pidfd;           /* readable once the runner has exited */
	int out_fd, err_fd;  /* read ends of its stdout and stderr */
	int ctl_fd;          /* write end of the request pipe */
	int ready_fd;        /* read end of the ready pipe, until "R" */
	int reply_fd;        /* the same pipe after "R": answers to "imports" */
	int kill_all;        /* we are pid 1 (sandbox, pod): kill(-1) clears it */
	pid_t holder;        /* its memory holder until reaped, or 0 */
	pthread_mutex_t lock;
	int reaped;          /* status below is valid */
	int status;          /* wait status of the runner */
};

struct run_stream {
	char *data;          /* at most cap bytes kept, not NUL-terminated */
	size_t len;
	uint64_t total;      /* bytes written by the code */
};

struct run_result {
	struct run_stream out, err;
	int timed_out;
	int status_known;
	int status;          /* wait status when status_known */
	int64_t duration_ms;
};

/* In-process runner (the zygote): instead of exec'ing python, the forked child
 * calls entry(arg) after the descriptors are in place and the lockdown is done;
 * entry must not return (an return ends the child with 127). NULL: exec. Set
 * once, before any runner_start, in a process that has no threads yet. */
void runner_set_entry(void (*entry)(void *arg), void *arg);

/* The fixed environment of the runner (NULL-terminated "NAME=value"). */
const char *const *runner_fixed_env(void);

/* Starts the runner: forks and execs it (or calls the entry), or, with
 * request_fd >= 0, asks the zygote to make it (see RUNNER_REQUEST). The child
 * starts a new session, gets the fds above, and when sandboxed calls
 * sbx_lockdown(cfg, 1) first (exit 127 if it fails). 0, or -1 (logged). */
int runner_start(struct runner *r, const struct config *cfg, const char *runner_dir,
		 const char *workspace, int sandboxed, int request_fd);

/* The child's side of runner_start for a runner the zygote made on request (in
 * the asking server's namespaces and cgroups): from[i] becomes fd i, a new
 * session, the lockdown when sandboxed, its memory holder, its pid and the
 * holder's (int32 each, native order) written to fd 4, then the entry set with
 * runner_set_entry. Never returns. */
_Noreturn void runner_become(const struct config *cfg, int sandboxed, const int from[5]);

/* Reads the ready pipe once it is readable: 1 when the runner said "R" (the pipe
 * then becomes reply_fd), -1 when it closed the pipe without it (closed). */
int runner_read_ready(struct runner *r);

/* One "imports" exchange (see the protocol above): request (len bytes of JSON)
 * framed to fd 3, the framed answer (at most cap bytes) read from fd 4 into
 * *reply (NUL-terminated, the caller frees it). 0, or -1 (logged) when the
 * runner did not take the request or answer within timeout_ms, or answered
 * out of protocol: it is then killed (runner_kill), fds 3 and 4 closed, and
 * runner_execute reports it dead. Not concurrently with runner_execute. */
int runner_imports(struct runner *r, const char *request, size_t len, int timeout_ms, size_t cap,
		   char **reply);

/* Reaps every exited child without blocking and records the runner's status.
 * Thread-safe; called on SIGCHLD. Returns 1 once the runner has been reaped. */
int runner_reap(struct runner *r);
/* 1 once the runner has exited, reaped or not (its SIGCHLD may not have been
 * read yet): its pidfd is readable. Thread-safe. */
int runner_ended(struct runner *r);

/* Runs the one execution: request (len bytes of JSON, the "execute" op) framed to fd 3, output collected
 * (each stream capped at cap bytes), the runner waited for until timeout seconds
 * pass; then every process the code left is killed and reaped. res is filled in
 * (release with run_result_release). */
void runner_execute(struct runner *r, const char *request, size_t len, double timeout,
		    uint64_t cap, struct run_result *res);

/* Kills the runner's process group unless the runner was already reaped, and
 * every other process of the sandbox when kill_all. For shutdown. */
void runner_kill(struct runner *r);

/* Reads what the runner wrote to stderr so far (for logging a failed start);
 * returns a NUL-terminated string the caller frees. */
char *runner_stderr_so_far(struct runner *r);

/* Kills, reaps and closes everything. Safe to call twice. */
void runner_release(struct runner *r);

void run_result_release(struct run_result *res);

#endif
