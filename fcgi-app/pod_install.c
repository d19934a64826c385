/* pod_install: see pod_install.h. The installer pod's life (create, wait until
 * ready, one run of pip, delete) and the fetch of what pip wrote. */
#include "pod_install.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "executor_client.h"
#include "k8s_client.h"
#include "k8s_pod.h"
#include "log.h"
#include "pip_command.h"
#include "pod_token.h"
#include "util.h"
#include "validate.h"

#define READY_POLL_MS 250
/* What is fetched: fewer entries (files and directories) than an executor
 * lists at most (a listing that long may be cut short), no deeper than this,
 * each charged a block on top of its bytes, as a pod's packages are. */
#define MAX_ENTRIES 10000
#define MAX_DEPTH 32
#define BLOCK 4096u
/* The most an installer's answer takes: the listing of MAX_ENTRIES short
 * paths, and pip's output (both streams, escaped) */
#define ANSWER_BYTES (((uint64_t)4 << 20) + 12 * K8S_INSTALLER_OUTPUT_BYTES)
#define GET_TIMEOUT_MS 120000L

/* The run's code: pip with the arguments of INSTALL_ARGV (a JSON array), so
 * that no argument is ever spliced into source code. */
static const char pip_code[] =
	"import json, os, runpy, sys\n"
	"sys.argv = ['pip'] + json.loads(os.environ.pop('INSTALL_ARGV'))\n"
	"runpy.run_module('pip', run_name='__main__', alter_sys=True)\n";

static json_object *execute_body(const struct config *cfg, const char *requirement, double timeout_s)
{
	json_object *argv = json_object_new_array();
	static const char *const head[] = {"install", "--target", POD_INSTALL_TARGET};
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		json_object_array_add(argv, json_object_new_string(head[i]));
	for (size_t i = 0; pip_install_options[i]; i++)
		json_object_array_add(argv, json_object_new_string(pip_install_options[i]));
	if (pip_offline(cfg))
		json_object_array_add(argv, json_object_new_string("--no-index"));
	json_object_array_add(argv, json_object_new_string("--"));
	json_object_array_add(argv, json_object_new_string(requirement));

	json_object *env = json_object_new_object();
	json_object_object_add(env, "INSTALL_ARGV",
			       json_object_new_string(json_object_to_json_string_ext(argv, JSON_C_TO_STRING_PLAIN)));
	json_object_put(argv);
	/* credentials stay off the command line, as in the install sandbox */
	if (cfg->pip_index_url[0])
		json_object_object_add(env, "PIP_INDEX_URL", json_object_new_string(cfg->pip_index_url));
	if (cfg->pip_find_links[0])
		json_object_object_add(env, "PIP_FIND_LINKS", json_object_new_string(cfg->pip_find_links));

	json_object *body = json_object_new_object();
	json_object_object_add(body, "source_code", json_object_new_string(pip_code));
	json_object_object_add(body, "env", env);
	json_object_object_add(body, "timeout", json_object_new_double(timeout_s));
	json_object_object_add(body, "include_subdirectories", json_object_new_boolean(1));
	return body;
}

const char *pod_install_rel(const char *listed)
{
	static const char prefix[] = POD_INSTALL_TARGET "/";
	if (!listed || valid_workspace_path(listed, strlen(listed)) != NULL ||
	    strncmp(listed, prefix, sizeof(prefix) - 1) != 0)
		return NULL;
	return listed + sizeof(prefix) - 1;
}

/* Opens rel's directory under the directory fd dir, making what is missing
 * (0755; *made counts them), never following a symlink; *last gets rel's last
 * component. A new descriptor, or -1. */
static int open_parent(int dir, const char *rel, const char **last, size_t *made)
{
	int fd = dup(dir);
	const char *p = rel;
	for (const char *slash; fd >= 0 && (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		char part[VALID_COMPONENT_MAX + 1];
		snprintf(part, sizeof(part), "%.*s", (int)(slash - p), p);
		if (mkdirat(fd, part, 0755) == 0) {
			(*made)++;
		} else if (errno != EEXIST) {
			close(fd);
			return -1;
		}
		int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	*last = p;
	return fd;
}

static size_t depth(const char *rel)
{
	size_t n = 1;
	for (const char *p = rel; (p = strchr(p, '/')) != NULL; p++)
		n++;
	return n;
}

/* Fetches every file the pod listed under POD_INSTALL_TARGET into staging
 * before deadline (monotonic_ms). 0, 1 when the deadline passed, or -1 with
 * why in err. */
static int fetch_files(const struct config *cfg, struct executor_client *executor, json_object *files,
		       const char *staging, int64_t deadline, char *err, size_t errlen)
{
	int dir = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0) {
		snprintf(err, errlen, "the staging directory: %s", strerror(errno));
		return -1;
	}
	size_t n = json_object_array_length(files), entries = 0;
	uint64_t left = cfg->executor_packages_bytes;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *listed = json_object_get_string(json_object_array_get_idx(files, i));
		const char *rel = pod_install_rel(listed);
		long timeout_ms = (long)(deadline - monotonic_ms());
		rc = -1;
		if (!rel)
			snprintf(err, errlen, "the installer listed a file outside %s", POD_INSTALL_TARGET);
		else if (depth(rel) > MAX_DEPTH)
			snprintf(err, errlen, "the installer listed a file %zu levels deep, more than %d", depth(rel),
				 MAX_DEPTH);
		else if (timeout_ms <= 0)
			rc = 1;
		else
			rc = 0;
		if (rc != 0)
			break;
		const char *last;
		size_t made = 0;
		int parent = open_parent(dir, rel, &last, &made);
		entries += made + 1;
		uint64_t charge = (made + 1) * (uint64_t)BLOCK;
		if (entries >= MAX_ENTRIES || charge > left) {
			if (parent >= 0)
				close(parent);
			if (entries >= MAX_ENTRIES)
				snprintf(err, errlen, "the distribution has %d files and directories or more", MAX_ENTRIES);
			else
				snprintf(err, errlen, "the distribution is larger than APP_EXECUTOR_PACKAGES_MB (%llu MiB)",
					 (unsigned long long)(cfg->executor_packages_bytes >> 20));
			rc = -1;
			break;
		}
		left -= charge;
		int fd = parent < 0 ? -1 : openat(parent, last, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (parent >= 0)
			close(parent);
		if (fd < 0) {
			snprintf(err, errlen, "%.200s: %s", rel, strerror(errno));
			rc = -1;
			break;
		}
		uint64_t written = 0;
		int64_t mtime = -1;
		int got = executor_get_file_fd(executor, listed, fd, left,
					       timeout_ms < GET_TIMEOUT_MS ? timeout_ms : GET_TIMEOUT_MS,
					       &written, &mtime);
		left -= written;
		if (got == 0 && mtime >= 0) {
			struct timespec times[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
			if (futimens(fd, times) < 0)
				log_warn("packages: %s keeps the time of its fetch: %s", rel, strerror(errno));
		}
		close(fd);
		if (got == 1)
			snprintf(err, errlen, "the distribution is larger than APP_EXECUTOR_PACKAGES_MB (%llu MiB)",
				 (unsigned long long)(cfg->executor_packages_bytes >> 20));
		else if (got < 0 && monotonic_ms() >= deadline)
			rc = 1;
		else if (got < 0)
			snprintf(err, errlen, "%.200s: %s", rel, executor->error);
		if (got != 0 && rc == 0)
			rc = -1;
	}
	close(dir);
	return rc;
}

/* Waits until the pod is ready (its IP into ip) or will never be, or the
 * deadline passes. 0, 1 when the deadline passed, or -1 with why in err. */
static int wait_ready(struct k8s_client *k, const char *name, int64_t deadline, char *ip, size_t ip_cap,
		      char *err, size_t errlen)
{
	for (;;) {
		json_object *pod = NULL;
		struct k8s_status st;
		enum k8s_rc rc = k8s_pod_get(k, name, &pod, &st);
		char why[128] = "";
		enum k8s_pod_state state = rc == K8S_OK ? k8s_pod_classify(pod, why, sizeof(why), ip, ip_cap)
							: K8S_POD_DOOMED;
		json_object_put(pod);
		if (rc != K8S_OK) {
			snprintf(err, errlen, "the installer pod: %ld %s", st.http, st.message);
			return -1;
		}
		if (state == K8S_POD_READY)
			return 0;
		if (state == K8S_POD_DOOMED) {
			snprintf(err, errlen, "the installer pod will not start: %s", why);
			return -1;
		}
		if (monotonic_ms() + READY_POLL_MS >= deadline)
			return 1;
		struct timespec pause = {0, READY_POLL_MS * 1000000L};
		nanosleep(&pause, NULL);
	}
}

/* pip's output: the run's stdout, then its stderr. */
static char *run_output(json_object *resp)
{
	json_object *out = NULL, *errs = NULL;
	json_object_object_get_ex(resp, "stdout", &out);
	json_object_object_get_ex(resp, "stderr", &errs);
	return xasprintf("%s%s", out ? json_object_get_string(out) : "", errs ? json_object_get_string(errs) : "");
}

int pod_install_run(const struct config *cfg, const char *staging, const char *requirement, int64_t timeout_ms,
		    char **output)
{
	int64_t deadline = monotonic_ms() + timeout_ms;
	char err[512] = "", instance[64], name[128], hex[11], token[POD_TOKEN_LEN + 1], ip[64];
	struct k8s_client k;
	memset(&k, 0, sizeof(k));
	*output = NULL;
	if (k8s_client_init(&k, cfg, err, sizeof(err)) < 0) {
		k8s_client_release(&k);
		log_error("packages: the installer pod of %s: %s", requirement, err);
		*output = xstrdup(err);
		return -1;
	}
	k8s_instance_name(cfg, instance, sizeof(instance));
	random_hex(hex, 5);
	hex[10] = '\0';
	snprintf(name, sizeof(name), "%sinstall-%s", cfg->pod_name_prefix, hex);
	json_object *pod = NULL;
	if (pod_token_for(name, token) < 0)
		snprintf(err, sizeof(err), "no pod secret in this process");
	else
		pod = k8s_installer_pod_build(cfg, name, instance, token, err, sizeof(err));
	struct k8s_status st;
	int rc = -1, created = 0;
	if (pod) {
		enum k8s_rc made = k8s_pod_create(&k, pod, NULL, &st);
		created = made == K8S_OK || (made == K8S_CONFLICT && st.ambiguous);
		if (!created)
			snprintf(err, sizeof(err), "creating the installer pod: %ld %s", st.http, st.message);
		json_object_put(pod);
	}
	int ready = created ? wait_ready(&k, name, deadline, ip, sizeof(ip), err, sizeof(err)) : -1;
	if (ready == 1)
		rc = 124;
	if (ready == 0) {
		char endpoint[128];
		snprintf(endpoint, sizeof(endpoint), "http://%s%s%s:%d", strchr(ip, ':') ? "[" : "", ip,
			 strchr(ip, ':') ? "]" : "", K8S_EXECUTOR_PORT);
		struct executor_client executor;
		executor_init(&executor, endpoint, token);
		double left_s = (double)(deadline - monotonic_ms()) / 1000.0;
		json_object *body = execute_body(cfg, requirement, left_s);
		json_object *resp = NULL, *v, *files;
		if (left_s < 0.001) {
			rc = 124;
		} else if (executor_execute_within(&executor, body, left_s, ANSWER_BYTES, &resp) < 0) {
			snprintf(err, sizeof(err), "the installer pod: %s", executor.error);
		} else if (json_object_object_get_ex(resp, "timed_out", &v) && json_object_get_boolean(v)) {
			*output = run_output(resp);
			rc = 124;
		} else if (!json_object_object_get_ex(resp, "exit_code", &v) || !json_object_is_type(v, json_type_int)) {
			snprintf(err, sizeof(err), "the installer pod's answer has no exit_code");
		} else {
			*output = run_output(resp);
			rc = json_object_get_int(v);
			int fetched = -1;
			if (rc == 0 && json_object_object_get_ex(resp, "files", &files) &&
			    json_object_is_type(files, json_type_array))
				fetched = fetch_files(cfg, &executor, files, staging, deadline, err, sizeof(err));
			if (rc == 0 && fetched != 0)
				rc = fetched == 1 ? 124 : -1;
		}
		json_object_put(body);
		json_object_put(resp);
		executor_release(&executor);
	}
	explicit_bzero(token, sizeof(token));
	if (created && k8s_pod_delete(&k, name, 0, &st) != K8S_OK)
		log_error("packages: deleting installer pod %s: %ld %s", name, st.http, st.message);
	k8s_client_release(&k);
	if (rc == 124)
		log_error("packages: the installer pod of %s: APP_PACKAGE_INSTALL_TIMEOUT passed", requirement);
	if (rc < 0 || err[0]) {
		log_error("packages: the installer pod of %s: %s", requirement, err[0] ? err : "failed");
		char *with = xasprintf("%s%s%s", *output ? *output : "", *output ? "\n" : "", err);
		free(*output);
		*output = with;
	}
	if (!*output)
		*output = xstrdup("");
	return rc;
}
