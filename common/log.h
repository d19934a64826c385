/* log: one-line messages to stderr with a timestamp, the process role and pid.
 * Never logs environment values or request bodies. */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

void log_set_role(const char *role); /* "master", "worker", "pool", "executor"... */
void log_set_level(const char *level); /* "debug", "info", "warn", "error" */
void log_set_format(const char *format); /* "text" (default) or "json": one JSON object a line */
/* One info line with structured fields: text "msg k=v k=v", or JSON keys.
 * A field with str NULL is the integer num. Used for the per-request line. */
struct log_field { const char *key; const char *str; long long num; };
void log_fields(const char *msg, const struct log_field *fields, size_t n);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs and aborts: for allocation failure and broken invariants. */
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
