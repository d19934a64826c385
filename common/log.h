/* log: one-line messages to stderr with a timestamp, the process role and pid.
 * Never logs environment values or request bodies. */
#ifndef LOG_H
#define LOG_H

void log_set_role(const char *role); /* "master", "worker", "pool", "executor"... */
void log_set_level(const char *level); /* "debug", "info", "warn", "error" */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs and aborts: for allocation failure and broken invariants. */
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
