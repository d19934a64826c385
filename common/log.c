/* log: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_role = "main";
static int log_min = 1; /* 0 debug, 1 info, 2 warn, 3 error */
static int log_json;    /* APP_LOG_FORMAT=json: one JSON object per line */

void log_set_role(const char *role)
{
	log_role = role;
}

void log_set_level(const char *level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++)
		if (level && strcmp(level, names[i]) == 0)
			log_min = i;
}

void log_set_format(const char *format)
{
	log_json = format && strcmp(format, "json") == 0;
}

/* Appends s to buf as the inside of a JSON string; never overflows cap. */
static size_t json_escape(char *buf, size_t used, size_t cap, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p && used + 7 < cap; p++) {
		if (*p == '"' || *p == '\\') {
			buf[used++] = '\\';
			buf[used++] = (char)*p;
		} else if (*p < 0x20) {
			used += (size_t)snprintf(buf + used, cap - used, "\\u%04x", *p);
		} else {
			buf[used++] = (char)*p;
		}
	}
	return used;
}

/* Appends a formatted piece; stops at cap. */
static size_t append(char *buf, size_t used, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static size_t append(char *buf, size_t used, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = used < cap ? vsnprintf(buf + used, cap - used, fmt, ap) : 0;
	va_end(ap);
	if (n < 0)
		return used;
	return used + (size_t)n < cap ? used + (size_t)n : cap - 1;
}

/* Writes one line: text "TS TAG role[pid] msg k=v..." or a JSON object. */
static void emit(int level, const char *tag, const char *msg, const struct log_field *f, size_t n)
{
	static const char *const levels[] = {"debug", "info", "warn", "error", "fatal"};
	char line[4096];
	char ts[96];
	struct timespec now;
	struct tm tm;
	size_t used = 0, cap = sizeof(line) - 1;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
	if (log_json) {
		used = append(line, used, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"", ts,
			      levels[level < 0 ? 0 : level > 4 ? 4 : level]);
		used = json_escape(line, used, cap, log_role);
		used = append(line, used, cap, "\",\"pid\":%d,\"msg\":\"", (int)getpid());
		used = json_escape(line, used, cap - 2, msg);
		used = append(line, used, cap, "\"");
		for (size_t i = 0; i < n; i++) {
			used = append(line, used, cap, ",\"%s\":", f[i].key);
			if (f[i].str) {
				used = append(line, used, cap, "\"");
				used = json_escape(line, used, cap - 2, f[i].str);
				used = append(line, used, cap, "\"");
			} else {
				used = append(line, used, cap, "%lld", (long long)f[i].num);
			}
		}
		used = append(line, used, cap, "}");
	} else {
		used = append(line, used, cap, "%s %s %s[%d] %s", ts, tag, log_role, (int)getpid(), msg);
		for (size_t i = 0; i < n; i++) {
			if (f[i].str)
				used = append(line, used, cap, " %s=%s", f[i].key, f[i].str[0] ? f[i].str : "-");
			else
				used = append(line, used, cap, " %s=%lld", f[i].key, (long long)f[i].num);
		}
	}
	line[used++] = '\n';
	/* one write per line so lines of different processes do not interleave */
	ssize_t w = write(STDERR_FILENO, line, used);
	(void)w;
}

void log_fields(const char *msg, const struct log_field *fields, size_t n)
{
	if (1 >= log_min)
		emit(1, "INFO", msg, fields, n);
}

static void log_v(int level, const char *tag, const char *fmt, va_list ap)
{
	if (level < log_min)
		return;
	if (log_json) {
		char msg[2048];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		emit(level, tag, msg, NULL, 0);
		return;
	}
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%d] ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, tag, log_role, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* one write per line so lines of different processes do not interleave */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

#define LOG_FN(name, level, tag)                \
	void name(const char *fmt, ...)         \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		log_v(level, tag, fmt, ap);     \
		va_end(ap);                     \
	}
LOG_FN(log_debug, 0, "DEBUG")
LOG_FN(log_info, 1, "INFO")
LOG_FN(log_warn, 2, "WARN")
LOG_FN(log_error, 3, "ERROR")

_Noreturn void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v(4, "FATAL", fmt, ap);
	va_end(ap);
	abort();
}
