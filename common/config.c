/* config: see config.h. The table below is the single list of options; the
 * README's configuration table is generated from it (`code-interpreter --config-markdown`). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util.h"

#ifndef DATADIR
#define DATADIR "/usr/share/code-interpreter"
#endif

extern char **environ;

enum opt_type { T_INT, T_U64_MB, T_U64, T_DOUBLE, T_STR, T_BOOL };

struct opt {
	struct config_option doc;
	enum opt_type type;
	size_t offset;
	const char *def;
	double min, max;
};

#define DEFAULT_RESOURCES \
	"{\"requests\":{\"cpu\":\"100m\",\"memory\":\"256Mi\"},\"limits\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}"

/* One entry per option: name, type, field, default, range (numbers), and for
 * --help and the README the default as shown (when it is not the literal value)
 * and the meaning. */
#define OPT(name, type, field, def, min, max, meaning) \
	{{name, def, meaning}, type, offsetof(struct config, field), def, min, max}
#define OPT_SHOWN(name, type, field, def, min, max, shown, meaning) \
	{{name, shown, meaning}, type, offsetof(struct config, field), def, min, max}
static const struct opt opts[] = {
	OPT("APP_HTTP_HOST", T_STR, http_host, "127.0.0.1", 0, 0,
	    "address lighttpd listens on (0.0.0.0 or :: to listen on every interface: a deliberate setting)"),
	OPT("APP_HTTP_PORT", T_INT, http_port, "50081", 1, 65535,
	    "TCP port lighttpd listens on"),
	OPT("APP_MAX_REQUEST_BYTES", T_U64, max_request_bytes, "16777216", 1024, 1e12,
	    "largest request body accepted (413 above)"),
	OPT("APP_WORKERS", T_INT, workers, "8", 1, 256,
	    "FastCGI worker processes (one request each at a time)"),
	OPT("APP_RUN_DIR", T_STR, run_dir, "/run/code-interpreter", 0, 0,
	    "sockets, lighttpd config and sandbox mount points"),
	OPT_SHOWN("APP_FCGI_SOCKET", T_STR, fcgi_socket, "", 0, 0, "$APP_RUN_DIR/fcgi.sock",
	    "FastCGI socket between lighttpd and the service"),
	OPT_SHOWN("APP_DATA_DIR", T_STR, data_dir, DATADIR, 0, 0, "the source tree",
	    "where migrations/, executor/python/ and lighttpd/ are read from"),
	OPT_SHOWN("APP_EXECUTOR_BIN", T_STR, executor_bin, "", 0, 0, "executor beside the service binary",
	    "the executor binary"),
	OPT("APP_START_LIGHTTPD", T_BOOL, start_lighttpd, "1", 0, 1,
	    "1: the master starts and supervises lighttpd; 0: lighttpd runs elsewhere"),
	OPT("APP_LIGHTTPD_BIN", T_STR, lighttpd_bin, "/usr/sbin/lighttpd", 0, 0,
	    "the lighttpd binary"),
	OPT("APP_SERVICE_USER", T_STR, service_user, "code-interpreter", 0, 0,
	    "unprivileged user the FastCGI workers run as (created by `make deps` and the unit file)"),
	OPT_SHOWN("APP_API_KEYS_FILE", T_STR, api_keys_file, "", 0, 0, "(none: no keys)",
	    "file of API keys, one NAME:KEY or NAME:sha256:HEX per line; when set every /v1 route needs `Authorization: Bearer KEY` and each key sees only its own files (re-read on SIGHUP)"),
	OPT_SHOWN("APP_HEALTH_CHECK_KEY", T_STR, health_check_key, "", 0, 0, "(none)",
	    "the key the health_check command sends (read by health_check only; the service ignores it)"),
	OPT_SHOWN("APP_METRICS_KEYS", T_STR, metrics_keys, "", 0, 0, "(none: /metrics open)",
	    "comma-separated key names that may read /metrics"),
	OPT_SHOWN("APP_KEY_MAX_CONCURRENT", T_INT, key_max_concurrent, "0", 0, 100000, "0 (unlimited)",
	    "requests one key may have in flight; above it 429 with Retry-After"),
	OPT("APP_EXECUTION_TIMEOUT", T_DOUBLE, execution_timeout, "60", 0.001, 86400,
	    "seconds a run may take when the request gives no timeout"),
	OPT("APP_MAX_EXECUTION_TIMEOUT", T_DOUBLE, max_execution_timeout, "600", 0.001, 86400,
	    "largest timeout a request may ask for"),
	OPT("APP_MAX_OUTPUT_BYTES", T_U64, max_output_bytes, "1048576", 64, (double)CONFIG_MAX_OUTPUT_BYTES,
	    "cap on stdout and on stderr of one run (at most 64 MiB: the executor's answer carries both streams JSON-escaped, up to 6 bytes per byte)"),
	OPT("APP_MAX_INPUT_FILES", T_INT, max_input_files, "1000", 0, 100000,
	    "most entries in a request's `files` (422 above); the executor takes at most this many uploads per execution"),
	OPT("APP_EXECUTOR_BACKEND", T_STR, backend, "local", 0, 0,
	    "local (namespaces on this machine) or kubernetes (executor pods)"),
	OPT("APP_EXECUTOR_POOL_SIZE", T_INT, pool_size, "4", 0, 1024,
	    "warm sandboxes kept ready"),
	OPT("APP_CLAIM_TIMEOUT", T_DOUBLE, claim_timeout, "30", 0, 3600,
	    "seconds a request waits for a warm sandbox before 503"),
	OPT("APP_SANDBOX_START_TIMEOUT", T_DOUBLE, sandbox_start_timeout, "60", 1, 3600,
	    "seconds a sandbox may take to become ready"),
	OPT("APP_PYTHON", T_STR, python, "/usr/bin/python3", 0, 0,
	    "the interpreter inside sandboxes"),
	OPT("APP_ZYGOTE", T_INT, zygote, "1", 0, 1,
	    "1: local sandboxes' runners are forked from one warm interpreter (`executor zygote`); 0: each sandbox starts python itself"),
	OPT("APP_PRELOAD_MODULES", T_STR, preload_modules, "numpy,pandas", 0, 0,
	    "modules the warm runner imports before a run"),
	OPT("APP_SANDBOX_MEMORY_MB", T_U64_MB, sandbox_memory_bytes, "1024", 32, 1e7,
	    "memory limit of one sandbox (cgroup; RLIMIT_AS fallback)"),
	OPT("APP_SANDBOX_PIDS", T_INT, sandbox_pids, "256", 8, 1000000,
	    "process/thread limit of one sandbox (cgroup pids and RLIMIT_NPROC)"),
	OPT("APP_SANDBOX_WORKSPACE_MB", T_U64_MB, sandbox_workspace_bytes, "512", 1, 1e7,
	    "size of the /workspace tmpfs, which has one inode (file, directory) per 4 KiB of it"),
	OPT("APP_SANDBOX_TMP_MB", T_U64_MB, sandbox_tmp_bytes, "256", 1, 1e7,
	    "size of the /tmp tmpfs, which has one inode (file, directory) per 4 KiB of it"),
	OPT("APP_SANDBOX_FILE_MB", T_U64_MB, sandbox_file_bytes, "256", 1, 1e7,
	    "largest file the code may write (RLIMIT_FSIZE)"),
	OPT("APP_SANDBOX_OPEN_FILES", T_INT, sandbox_open_files, "256", 16, 1048576,
	    "open files per process (RLIMIT_NOFILE)"),
	OPT("APP_SANDBOX_CPUS", T_DOUBLE, sandbox_cpus, "1", 0.01, 4096,
	    "CPUs one sandbox may keep busy at once, e.g. 0.5 or 2 (cgroup cpu controller: v2 cpu.max, v1 cpu.cfs_quota_us; where there is none only RLIMIT_CPU applies)"),
	OPT("APP_SANDBOX_CPU_SECONDS", T_INT, sandbox_cpu_seconds, "600", 1, 86400,
	    "CPU seconds per process (RLIMIT_CPU)"),
	OPT("APP_SANDBOX_UID_BASE", T_INT, sandbox_uid_base, "1000000", 1000, 2000000000,
	    "first of the host uids/gids sandboxes map to: sandbox root of uid slot N is base+N*2000, its user base+N*2000+1000 (slots 0-1023, one per live sandbox)"),
	OPT("APP_CGROUP_PARENT", T_STR, cgroup_parent, "code-interpreter", 0, 0,
	    "cgroup under which per-sandbox groups are made"),
	OPT("APP_PACKAGE_INSTALL", T_BOOL, package_install, "1", 0, 1,
	    "1: imports the sandbox cannot find (and `!pip install` lines) are installed with pip into the package cache before the run; 0: off"),
	OPT("APP_PACKAGE_CACHE", T_STR, package_cache, "/var/lib/code-interpreter/packages", 0, 0,
	    "the package cache: dists/ holds one directory per installed distribution (read-only in every sandbox; a run's sys.path gets only those its code imports), staging/ the installs in progress"),
	OPT_SHOWN("APP_PACKAGE_MAP", T_STR, package_map, "", 0, 0, "(none)",
	    "JSON file {\"module\": \"distribution\"} whose entries override executor/python/package_map.json"),
	OPT_SHOWN("APP_PIP_INDEX_URL", T_STR, pip_index_url, "", 0, 0, "(pip's default)",
	    "package index pip installs from (given to pip as PIP_INDEX_URL in its environment, never on a command line)"),
	OPT_SHOWN("APP_PIP_FIND_LINKS", T_STR, pip_find_links, "", 0, 0, "(none)",
	    "a directory of wheels or a URL for pip's --find-links; with a directory and no APP_PIP_INDEX_URL pip uses only it (--no-index)"),
	OPT("APP_PACKAGE_INSTALL_TIMEOUT", T_DOUBLE, package_install_timeout, "120", 1, 86400,
	    "seconds all the installs of one request may take together, waits included (the run's own timeout starts after them)"),
	OPT("APP_PACKAGE_INSTALL_MB", T_U64_MB, package_install_bytes, "1024", 16, 1e7,
	    "memory limit of the install sandbox (its cgroup; RLIMIT_AS without one), which also bounds its /tmp, where pip downloads and unpacks"),
	OPT("APP_PACKAGE_INSTALL_CONCURRENCY", T_INT, package_install_concurrency, "2", 1, 64,
	    "pip runs at once on this machine; more installs wait for a turn within their request's deadline"),
	OPT("APP_PACKAGE_CACHE_MB", T_U64_MB, package_cache_bytes, "4096", 1, 1e9,
	    "size limit of the package cache: above it, the least recently used distributions that no running execution uses are removed"),
	OPT("APP_FILE_STORAGE_PATH", T_STR, file_storage_path, "/var/lib/code-interpreter/objects", 0, 0,
	    "the object store directory"),
	OPT_SHOWN("APP_FILE_STORAGE_GROUP", T_STR, file_storage_group, "", 0, 0, "(none)",
	    "a group (name or gid) the store directory is shared with, for clients that copy files in and out themselves (LocalPythonStorage): the directory setgid 02770, objects the directory owner's and the group's, mode 0660; every object is checked against its id when read"),
	OPT("APP_DB_PATH", T_STR, db_path, "/var/lib/code-interpreter/code-interpreter.db", 0, 0,
	    "the SQLite database"),
	OPT("APP_MAX_FILE_BYTES", T_U64, max_file_bytes, "268435456", 1, 1e12,
	    "largest file taken into the store"),
	OPT("APP_CLEANUP_INTERVAL", T_DOUBLE, cleanup_interval, "3600", 1, 1e9,
	    "seconds between cleanups (a child of the master runs them)"),
	OPT("APP_FILE_TTL", T_DOUBLE, file_ttl, "604800", 0, 1e10,
	    "seconds an unused object is kept (0: removed by the next cleanup)"),
	OPT("APP_AUDIT_RETENTION", T_DOUBLE, audit_retention, "2592000", 0, 1e10,
	    "seconds execution records are kept (0: removed by the next cleanup)"),
	OPT("APP_LOG_LEVEL", T_STR, log_level, "info", 0, 0,
	    "debug, info, warn or error"),
	OPT("APP_LOG_FORMAT", T_STR, log_format, "text", 0, 0,
	    "text, or json for one JSON object per line"),
	OPT("APP_EXECUTOR_POD_QUEUE_TARGET_LENGTH", T_INT, pod_queue_target, "5", 0, 1024,
	    "kubernetes: ready executor pods kept waiting (replaces APP_EXECUTOR_POOL_SIZE)"),
	OPT("APP_EXECUTOR_IMAGE", T_STR, executor_image, "code-interpreter-executor:latest", 0, 0,
	    "kubernetes: the executor image (executor/Dockerfile)"),
	OPT_SHOWN("APP_EXECUTOR_CONTAINER_RESOURCES", T_STR, executor_resources, DEFAULT_RESOURCES, 0, 0, "requests 100m/256Mi, limits 1/1Gi",
	    "kubernetes: the executor container's resources, as JSON"),
	OPT("APP_EXECUTOR_POD_SPEC_EXTRA", T_STR, pod_spec_extra, "{}", 0, 0,
	    "kubernetes: JSON merged into each executor pod's spec (merge-patch rules)"),
	OPT("APP_EXECUTOR_POD_NAME_PREFIX", T_STR, pod_name_prefix, "code-executor-", 0, 0,
	    "kubernetes: prefix of executor pod names"),
	OPT_SHOWN("APP_EXECUTOR_RUNTIME_CLASS", T_STR, runtime_class, "", 0, 0, "(none)",
	    "kubernetes: runtimeClassName of executor pods, e.g. gvisor"),
	OPT("APP_EXECUTOR_POD_DEADLINE", T_INT, pod_deadline, "3600", 60, 604800,
	    "kubernetes: activeDeadlineSeconds of an executor pod (warm time included)"),
	OPT("APP_EXECUTOR_PACKAGES_MB", T_U64_MB, executor_packages_bytes, "1024", 1, 1e7,
	    "kubernetes: size of an executor pod's packages emptyDir, where the service delivers the cached distributions a run imports (the executor refuses more)"),
	OPT_SHOWN("APP_KUBERNETES_API_URL", T_STR, k8s_api_url, "", 0, 0, "(in cluster)",
	    "kubernetes: API server URL, e.g. http://127.0.0.1:8001 for kubectl proxy"),
	OPT_SHOWN("APP_KUBERNETES_TOKEN_FILE", T_STR, k8s_token_file, "", 0, 0, "the service-account token",
	    "kubernetes: bearer token file, re-read every minute and after a 401"),
	OPT_SHOWN("APP_KUBERNETES_CA_FILE", T_STR, k8s_ca_file, "", 0, 0, "the service-account ca.crt",
	    "kubernetes: CA bundle for the API server's certificate"),
	OPT_SHOWN("APP_KUBERNETES_NAMESPACE", T_STR, k8s_namespace, "", 0, 0, "the service account's",
	    "kubernetes: namespace of the executor pods"),
	OPT_SHOWN("APP_KUBERNETES_INSTANCE", T_STR, k8s_instance, "", 0, 0, "APP_KUBERNETES_POD_NAME or the host name",
	    "kubernetes: label value naming this service instance; its leftover pods are deleted at start"),
	OPT_SHOWN("APP_KUBERNETES_POD_NAME", T_STR, k8s_pod_name, "", 0, 0, "(none)",
	    "kubernetes: the service's own pod name (downward API), for ownerReferences"),
	OPT_SHOWN("APP_KUBERNETES_POD_UID", T_STR, k8s_pod_uid, "", 0, 0, "(none)",
	    "kubernetes: the service's own pod uid (downward API), for ownerReferences"),
	{{NULL, NULL, NULL}, T_INT, 0, NULL, 0, 0},
};
#undef OPT
#undef OPT_SHOWN

const struct config_option *config_option(size_t i)
{
	return i < sizeof(opts) / sizeof(opts[0]) - 1 ? &opts[i].doc : NULL;
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static int parse_number(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* The directory of the running binary, for the executor's default path. */
static char *self_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return xstrdup(".");
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	return xstrdup(buf);
}

int config_load(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	if (!envp)
		envp = environ;
	for (const struct opt *o = opts; o->doc.name; o++) {
		const char *v = env_get(envp, o->doc.name);
		if (!v || !*v)
			v = o->def;
		char *field = (char *)cfg + o->offset;
		if (o->type == T_STR) {
			*(char **)(void *)field = xstrdup(v);
			continue;
		}
		double d;
		if (parse_number(v, &d) < 0 || d < o->min || d > o->max ||
		    (o->type != T_DOUBLE && d != floor(d))) {
			snprintf(err, errlen, "%s=%s: expected a %s between %g and %g", o->doc.name, v,
				 o->type == T_DOUBLE ? "number" : "whole number", o->min, o->max);
			config_release(cfg);
			return -1;
		}
		switch (o->type) {
		case T_INT:
		case T_BOOL:
			*(int *)(void *)field = (int)d;
			break;
		case T_U64:
			*(uint64_t *)(void *)field = (uint64_t)d;
			break;
		case T_U64_MB:
			*(uint64_t *)(void *)field = (uint64_t)d * 1024 * 1024;
			break;
		case T_DOUBLE:
			*(double *)(void *)field = d;
			break;
		case T_STR:
			break;
		}
	}
	if (cfg->max_execution_timeout < cfg->execution_timeout) {
		snprintf(err, errlen, "APP_EXECUTION_TIMEOUT (%g) exceeds APP_MAX_EXECUTION_TIMEOUT (%g)",
			 cfg->execution_timeout, cfg->max_execution_timeout);
		config_release(cfg);
		return -1;
	}
	if (strcmp(cfg->backend, "kubernetes") == 0) {
		cfg->pool_size = cfg->pod_queue_target;
		const char *name[] = {"APP_EXECUTOR_CONTAINER_RESOURCES", "APP_EXECUTOR_POD_SPEC_EXTRA"};
		const char *text[] = {cfg->executor_resources, cfg->pod_spec_extra};
		for (size_t i = 0; i < 2; i++) {
			json_object *j = json_tokener_parse(text[i]);
			int ok = j && json_object_is_type(j, json_type_object);
			json_object_put(j);
			if (!ok) {
				snprintf(err, errlen, "%s: expected a JSON object", name[i]);
				config_release(cfg);
				return -1;
			}
		}
	} else if (strcmp(cfg->backend, "local") != 0) {
		snprintf(err, errlen, "APP_EXECUTOR_BACKEND=%s: expected \"local\" or \"kubernetes\"", cfg->backend);
		config_release(cfg);
		return -1;
	}
	unsigned char addr[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, cfg->http_host, addr) != 1 && inet_pton(AF_INET6, cfg->http_host, addr) != 1) {
		snprintf(err, errlen, "APP_HTTP_HOST=%s: expected an IPv4 or IPv6 address", cfg->http_host);
		config_release(cfg);
		return -1;
	}
	if (!cfg->api_keys_file[0] && (cfg->metrics_keys[0] || cfg->key_max_concurrent)) {
		snprintf(err, errlen, "APP_METRICS_KEYS and APP_KEY_MAX_CONCURRENT name keys: set APP_API_KEYS_FILE");
		config_release(cfg);
		return -1;
	}
	if (cfg->api_keys_file[0] && cfg->api_keys_file[0] != '/') {
		snprintf(err, errlen, "APP_API_KEYS_FILE=%s: expected an absolute path", cfg->api_keys_file);
		config_release(cfg);
		return -1;
	}
	if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0) {
		snprintf(err, errlen, "APP_LOG_FORMAT=%s: expected \"text\" or \"json\"", cfg->log_format);
		config_release(cfg);
		return -1;
	}
	const char *paths[] = {cfg->run_dir, cfg->data_dir, cfg->file_storage_path, cfg->db_path,
			       cfg->package_cache};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (paths[i][0] != '/' || strlen(paths[i]) > 200) {
			snprintf(err, errlen, "%s: paths must be absolute and at most 200 bytes", paths[i]);
			config_release(cfg);
			return -1;
		}
	}
	if (!cfg->fcgi_socket[0]) {
		free(cfg->fcgi_socket);
		cfg->fcgi_socket = xasprintf("%s/fcgi.sock", cfg->run_dir);
	}
	if (!cfg->executor_bin[0]) {
		free(cfg->executor_bin);
		char *dir = self_dir();
		cfg->executor_bin = xasprintf("%s/executor", dir);
		free(dir);
	}
	return 0;
}

void config_release(struct config *cfg)
{
	for (const struct opt *o = opts; o->doc.name; o++) {
		if (o->type != T_STR)
			continue;
		char **p = (char **)(void *)((char *)cfg + o->offset);
		free(*p);
		*p = NULL;
	}
}
