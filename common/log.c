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

static void log_v(int level, const char *tag, const char *fmt, va_list ap)
{
	if (level < log_min)
		return;
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
	log_v(3, "FATAL", fmt, ap);
	va_end(ap);
	abort();
}
