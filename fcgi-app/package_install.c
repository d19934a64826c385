/* package_install: see package_install.h. Each distribution is installed
 * under the lock of its name and within one of APP_PACKAGE_INSTALL_CONCURRENCY
 * turns (package_cache.h); "installed" means a package_dists row whose
 * directory holds the distribution's metadata. */
#include "package_install.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "package_cache.h"
#include "pod_install.h"
#include "util.h"

#define TAIL_LINES 8
#define TAIL_BYTES 1500
#define OUTPUT_KEEP 65536      /* the last bytes of pip's output kept */
#define INSTALLER_GRACE_MS 30000 /* beyond its timeout, for the installer's own setup and teardown */

extern char **environ;

int pkg_wanted_init(struct pkg_wanted *w, const char *requirement, const char *module)
{
	memset(w, 0, sizeof(*w));
	if (!requirement || strlen(requirement) > PKG_REQUIREMENT_MAX || !pkg_spec_valid(requirement) ||
	    pkg_normalize(requirement, w->norm, sizeof(w->norm)) < 0)
		return -1;
	if (module && module[0] && !pkg_module_valid(module))
		return -1;
	memcpy(w->requirement, requirement, strlen(requirement) + 1);
	w->kind = pkg_spec_kind(requirement, w->pin, sizeof(w->pin));
	snprintf(w->module, sizeof(w->module), "%s", module ? module : "");
	return 0;
}

/* The last lines of pip's output, each indented, at most TAIL_BYTES. */
static char *tail_of(const char *text)
{
	size_t len = strlen(text);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	size_t start = len;
	int lines = 0;
	while (start > 0 && lines < TAIL_LINES && len - start < TAIL_BYTES) {
		start--;
		if (text[start] == '\n')
			lines++;
	}
	if (start > 0 || (len > 0 && text[0] == '\n'))
		start++;
	size_t repaired;
	return utf8_repair(text + start, len - start, &repaired);
}


/* The last line of pip's output that starts with "ERROR:", or else its last
 * line, UTF-8 repaired and at most 300 bytes. Caller frees. */
static char *last_error_line(const char *text)
{
	const char *best = NULL, *last = NULL;
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > 0) {
			last = line;
			if (strncmp(line, "ERROR:", 6) == 0)
				best = line;
		}
		line = end ? end + 1 : NULL;
	}
	const char *pick = best ? best : last;
	if (!pick)
		return xstrdup("(no output)");
	size_t len = strcspn(pick, "\n");
	if (len > 300)
		len = 300;
	size_t repaired;
	return utf8_repair(pick, len, &repaired);
}

/* Runs `executor install` for the requirement into staging, at most
 * timeout_ms; pip's output (its last OUTPUT_KEEP bytes) goes to *output.
 * The installer's exit status: 124 when its time passed, -1 when it could not
 * be started or had to be killed. */
static int run_installer(const struct config *cfg, const char *staging, const char *requirement,
			 int64_t timeout_ms, char **output)
{
	char id[24] = "pkg-", seconds[32];
	random_hex(id + 4, 8);
	snprintf(seconds, sizeof(seconds), "%.3f", (double)timeout_ms / 1000.0);
	*output = xstrdup("");
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
			_exit(127);
		char *argv[] = {cfg->executor_bin, (char *)"install", (char *)"--id", id,
				(char *)"--staging", (char *)staging, (char *)"--timeout", seconds,
				(char *)"--", (char *)requirement, NULL};
		execve(cfg->executor_bin, argv, environ);
		_exit(127);
	}
	close(p[1]);
	int64_t hard_deadline = monotonic_ms() + timeout_ms + INSTALLER_GRACE_MS;
	size_t len = 0;
	char *buf = xmalloc(OUTPUT_KEEP + 1);
	char chunk[4096];
	int killed = 0;
	for (;;) {
		int64_t left = hard_deadline - monotonic_ms();
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		int r = left > 0 ? poll(&pfd, 1, (int)(left > 60000 ? 60000 : left)) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && left <= 0) {
			log_error("packages: the installer of %s did not end; killed", requirement);
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		if (r <= 0)
			continue;
		ssize_t n = read(p[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if ((size_t)n > OUTPUT_KEEP - len) { /* keep the end */
			size_t drop = (size_t)n - (OUTPUT_KEEP - len);
			if (drop > len)
				drop = len;
			memmove(buf, buf + drop, len - drop);
			len -= drop;
		}
		size_t take = (size_t)n < OUTPUT_KEEP - len ? (size_t)n : OUTPUT_KEEP - len;
		memcpy(buf + len, chunk + ((size_t)n - take), take);
		len += take;
	}
	close(p[0]);
	buf[len] = '\0';
	free(*output);
	*output = buf;
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (killed)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void pkg_note_add(char **notes, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *line = NULL;
	if (vasprintf(&line, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *s = xasprintf("%s%s\n", *notes ? *notes : "", line);
	free(line);
	free(*notes);
	*notes = s;
}

void pkg_note_failure(char **notes, const struct pkg_wanted *w, const char *why)
{
	if (w->module[0])
		pkg_note_add(notes, "Package install failed: %s (needed by `import %s`): %s", w->requirement,
			     w->module, why);
	else
		pkg_note_add(notes, "Package install failed: %s: %s", w->requirement, why);
}

void pkg_note_deadline(char **notes, const struct config *cfg, const struct pkg_wanted *w)
{
	char why[160];
	snprintf(why, sizeof(why), "the installs of this request took longer than "
		 "APP_PACKAGE_INSTALL_TIMEOUT (%g s)", cfg->package_install_timeout);
	pkg_note_failure(notes, w, why);
}

/* Publishes staging as a cache directory of w (version given, its metadata
 * directory metadata) and records it with its use by the run; its name goes
 * to dir. The directory's name ends in 128 random bits: a sandbox, which
 * cannot list dists/, cannot guess another client's either, and no two
 * installs ever publish under one name. NULL, or why it failed (staging is
 * then left to the caller). */
static const char *publish(const struct config *cfg, struct db *db, const char *execution_id,
			   const struct pkg_wanted *w, const char *staging, const char *version, const char *metadata,
			   char dir[PKG_DIR_NAME_MAX + 1])
{
	char path[PATH_MAX], id[33] = "";
	random_hex(id, 16);
	int n = snprintf(dir, PKG_DIR_NAME_MAX + 1, "%s-%s-%s", w->norm, version, id);
	if (n < 0 || n > PKG_DIR_NAME_MAX || !pkg_dir_name_valid(dir))
		return "its name and version make no directory name";
	uint64_t size = 0;
	if (pkgcache_publish(cfg, staging, dir, &size) != 0)
		return "the package cache could not take it";
	if (pkgcache_dir_path(cfg, dir, path, sizeof(path)) < 0)
		return "the package cache could not take it";
	if (size > cfg->package_cache_bytes) {
		pkgcache_remove(cfg, path);
		return "it is larger than the whole package cache (APP_PACKAGE_CACHE_MB)";
	}
	struct db_package_dist row = {.size_bytes = size, .installed_ms = now_ms()};
	snprintf(row.dir, sizeof(row.dir), "%s", dir);
	snprintf(row.package, sizeof(row.package), "%s", w->norm);
	snprintf(row.version, sizeof(row.version), "%s", version);
	snprintf(row.requirement, sizeof(row.requirement), "%s", w->requirement);
	snprintf(row.kind, sizeof(row.kind), "%s", w->kind);
	snprintf(row.metadata, sizeof(row.metadata), "%s", metadata);
	if (db_package_dist_insert(db, &row, execution_id) != DB_OK) {
		pkgcache_remove(cfg, path);
		return "the package cache could not record it";
	}
	return NULL;
}

/* Why pip failed, in one line. Caller frees. */
static char *failure_reason(const struct pkg_wanted *w, int rc, const char *output)
{
	if (rc == 0)
		return xasprintf("pip installed no distribution named %s", w->norm);
	if (strstr(output, "No matching distribution found") || strstr(output, "Could not find a version that satisfies"))
		return xasprintf("only wheels are installed and %s has none for this platform", w->norm);
	char *line = last_error_line(output);
	char *why = rc < 0 ? xasprintf("the installer failed: %s", line)
			   : xasprintf("pip exited with status %d: %s", rc, line);
	free(line);
	return why;
}

int pkg_install(const struct config *cfg, struct db *db, const char *execution_id, const struct pkg_wanted *w,
		int64_t deadline_ms, char dir[PKG_DIR_NAME_MAX + 1], char metadata[PKG_METADATA_MAX + 1],
		char **notes)
{
	char staging[PATH_MAX] = "", version[128] = "";
	char *output = NULL;
	int turn = -1, ok = 0;
	dir[0] = metadata[0] = '\0';
	int lock = pkgcache_lock(cfg, w->norm, deadline_ms);
	if (lock < 0) {
		if (errno == ETIMEDOUT)
			pkg_note_deadline(notes, cfg, w);
		else
			pkg_note_failure(notes, w, "the package cache is not usable");
		return -1;
	}
	/* installed while we waited */
	if (pkgcache_lookup(cfg, db, execution_id, w->norm, w->kind, w->pin[0] ? w->pin : w->requirement, dir,
			    metadata)) {
		ok = 1;
		goto out;
	}
	if ((turn = pkgcache_turn(cfg, deadline_ms)) < 0) {
		pkg_note_deadline(notes, cfg, w);
		goto out;
	}
	int64_t left = deadline_ms - monotonic_ms();
	if (left <= 0) {
		pkg_note_deadline(notes, cfg, w);
		goto out;
	}
	if (pkgcache_staging_make(cfg, staging, sizeof(staging)) < 0) {
		staging[0] = '\0';
		pkg_note_failure(notes, w, "the package cache is not usable");
		goto out;
	}
	int64_t started = now_ms(), t0 = monotonic_ms();
	/* in a pod of its own on the kubernetes backend (pod_install.h) */
	int rc = strcmp(cfg->backend, "kubernetes") == 0 ? pod_install_run(cfg, staging, w->requirement, left, &output)
							 : run_installer(cfg, staging, w->requirement, left, &output);
	int64_t took = monotonic_ms() - t0;
	close(turn);
	turn = -1;
	int found = rc == 0 && pkgcache_find_metadata(staging, w->norm, metadata, PKG_METADATA_MAX + 1,
						       version, sizeof(version)) == 0;
	const char *not_taken = found ? publish(cfg, db, execution_id, w, staging, version, metadata, dir) : NULL;
	ok = found && !not_taken;
	if (ok)
		staging[0] = '\0'; /* it is the cache's now */
	char *tail = tail_of(output);
	struct db_package_install rec = {
		.package = w->norm,
		.requirement = w->requirement,
		.module = w->module[0] ? w->module : NULL,
		.version = ok ? version : NULL,
		.status = ok ? "ok" : rc == 124 ? "timeout" : "failed",
		.started_ms = started,
		.duration_ms = took,
		.log_tail = tail,
		.execution_id = execution_id,
		.dir = ok ? dir : NULL,
	};
	if (db_package_install_insert(db, &rec) != DB_OK)
		log_error("packages: the install of %s could not be recorded", w->requirement);
	log_info("packages: %s %s in %lld ms%s%s", ok ? "installed" : "could not install", w->requirement,
		 (long long)took, ok ? " as " : "", ok ? dir : "");
	free(tail);
	if (ok) {
		pkgcache_evict(cfg, db);
	} else if (rc == 124) {
		pkg_note_deadline(notes, cfg, w);
	} else if (found) {
		pkg_note_failure(notes, w, not_taken);
	} else {
		char *why = failure_reason(w, rc, output);
		pkg_note_failure(notes, w, why);
		free(why);
	}
out:
	if (staging[0])
		pkgcache_remove(cfg, staging);
	if (turn >= 0)
		close(turn);
	pkgcache_unlock(cfg, w->norm, lock);
	free(output);
	if (!ok)
		dir[0] = metadata[0] = '\0';
	return ok ? 0 : -1;
}
