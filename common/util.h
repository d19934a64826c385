/* util: small helpers shared by every binary: allocation that aborts on failure,
 * clocks, random ids, UTF-8 repair, full reads and writes. */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The text of a macro's value, for messages: STRINGIFY(PKG_MAX_PER_RUN) is "16". */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* Allocation that aborts the process on failure (the master respawns workers). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Formats into a fresh string; aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int64_t now_ms(void);        /* CLOCK_REALTIME, epoch milliseconds */
int64_t monotonic_ms(void);  /* CLOCK_MONOTONIC milliseconds */

/* Fills out with n bytes from getrandom(); fatal when the kernel has none. */
void random_bytes(void *out, size_t n);
/* Writes a random UUID v4 (36 chars + NUL) from getrandom(). */
void uuid4(char out[37]);
/* Writes n random bytes as 2n lowercase hex chars + NUL. */
void random_hex(char *out, size_t n);

/* Returns a new NUL-terminated copy of len bytes of s in which every invalid
 * UTF-8 sequence (and NUL) is replaced by U+FFFD; *out_len gets its length. */
char *utf8_repair(const char *s, size_t len, size_t *out_len);
/* True when s[0..len) is valid UTF-8 with no NUL. */
int utf8_valid(const char *s, size_t len);

/* write()/read() until done; return 0 / bytes read, -1 on error (errno set). */
int write_all(int fd, const void *buf, size_t len);

/* Sends len bytes of msg as one message on the unix socket fd with nfds (at
 * most 8) descriptors attached (SCM_RIGHTS; none when nfds is 0), retrying on
 * EINTR. 0 when the whole message went, or -1 (errno set). */
int send_with_fds(int fd, const void *msg, size_t len, const int *fds, size_t nfds);

/* A growing, NUL-terminated buffer that refuses to exceed max bytes. */
struct membuf {
	char *data; /* owned, NULL until the first append */
	size_t len;
	size_t max;
};
/* Appends size*n bytes (the signature of a libcurl write callback, arg = the
 * membuf); returns the bytes taken: 0 when max would be exceeded. */
size_t membuf_append(char *ptr, size_t size, size_t n, void *arg);
ssize_t read_all(int fd, void *buf, size_t len);

/* Takes the secret environment variable name out of the process: a copy of
 * its value (the first, what getenv answers; the caller wipes and frees it)
 * or NULL when it is not set. Every NAME= entry is unset and its bytes wiped
 * where they were, so neither a child nor /proc/PID/environ shows it. */
char *env_take(const char *name);

/* rm -rf without following symlinks, staying on one file system. 0 or -1. */
int remove_tree(const char *path);
/* mkdir -p with mode for created components. 0 or -1. */
int mkdir_p(const char *path, mode_t mode);

#endif
