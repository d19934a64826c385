/* imports: see imports.h. One helper process per call: source on its stdin,
 * one JSON object on its stdout, nothing else shared with it. */
#include "imports.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "install.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"

#define HELPER_TIMEOUT_MS 10000

__attribute__((noreturn)) static void helper(const struct config *cfg, const char *script,
					     const char *workspace, int sandboxed, int in, int out)
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || null < 0 || dup2(null, 2) < 0)
		_exit(127);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	setpgid(0, 0);
	if (sandboxed && sbx_lockdown(cfg, 1) < 0)
		_exit(127);
	const char *argv[] = {cfg->python, "-I", "-B", script, workspace, INSTALL_INSIDE_PACKAGES, NULL};
	static const char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
					   "LANG=C.UTF-8", NULL};
	execve(argv[0], (char *const *)(void *)argv, (char *const *)(void *)envp);
	_exit(127);
}

static int is_string_array(json_object *o, const char *key)
{
	json_object *a;
	if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_string))
			return 0;
	return 1;
}

/* Feeds source to the helper and collects at most cap bytes of its answer
 * until EOF or the deadline. 0, or -1. */
static int exchange(int to, int from, const char *source, size_t len, char **buf, size_t cap)
{
	size_t sent = 0, got = 0;
	int64_t deadline = now_ms() + HELPER_TIMEOUT_MS;
	*buf = xmalloc(cap + 1);
	if (len == 0) {
		close(to);
		to = -1;
	}
	for (;;) {
		struct pollfd p[2] = {{from, POLLIN, 0}, {to, POLLOUT, 0}};
		int64_t left = deadline - now_ms();
		if (left <= 0)
			goto fail;
		int n = poll(p, to >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno != EINTR)
			goto fail;
		if (n <= 0)
			continue;
		if (to >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(to, source + sent, len - sent > 65536 ? 65536 : len - sent);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				goto fail;
			sent += w > 0 ? (size_t)w : 0;
			if (sent == len) {
				close(to);
				to = -1;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(from, *buf + got, cap - got);
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				goto fail;
			if (r == 0)
				break;
			got += r > 0 ? (size_t)r : 0;
			if (got == cap)
				goto fail;
		}
	}
	if (to >= 0)
		close(to);
	(*buf)[got] = '\0';
	return 0;
fail:
	if (to >= 0)
		close(to);
	free(*buf);
	*buf = NULL;
	return -1;
}

int imports_check(const struct config *cfg, const char *runner_dir, const char *workspace,
		  int sandboxed, const char *source, size_t len, json_object **out)
{
	*out = NULL;
	char script[PATH_MAX];
	int n = snprintf(script, sizeof(script), "%s/imports.py", runner_dir);
	if (n < 0 || (size_t)n >= sizeof(script))
		return -1;
	int in[2], res[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(res, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		helper(cfg, script, workspace, sandboxed, in[0], res[1]);
	close(in[0]);
	close(res[1]);
	if (pid < 0) {
		log_error("imports: fork: %s", strerror(errno));
		close(in[1]);
		close(res[0]);
		return -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	char *text = NULL;
	int rc = exchange(in[1], res[0], source, len, &text, len + len / 2 + 65536);
	close(res[0]);
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	/* the runner's reaper may have collected it first: ECHILD is fine */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (rc < 0) {
		log_warn("imports: the helper failed or took longer than %d ms", HELPER_TIMEOUT_MS);
		return -1;
	}
	json_object *o = json_tokener_parse(text);
	free(text);
	json_object *code;
	if (!o || !json_object_is_type(o, json_type_object) || !is_string_array(o, "missing") ||
	    !is_string_array(o, "pip") || !json_object_object_get_ex(o, "source_code", &code) ||
	    !json_object_is_type(code, json_type_string)) {
		json_object_put(o);
		log_warn("imports: the helper's answer is not the expected JSON object");
		return -1;
	}
	*out = o;
	return 0;
}
