/* config: every APP_* option of the service and the executor, in one table, with
 * its default and meaning. Owns parsing and validation of the environment; it
 * never reads anything but the environment it is given. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdint.h>
#include <stddef.h>

/* The largest APP_MAX_OUTPUT_BYTES: an executor's answer holds both streams,
 * each up to 6 bytes a byte once JSON-escaped, and json-c strings are int-sized;
 * the service's executor client sizes the answer it reads from the setting
 * (executor_client.h). */
#define CONFIG_MAX_OUTPUT_BYTES ((uint64_t)64 << 20)

struct config {
	/* HTTP front (lighttpd) */
	char *http_host;        /* address lighttpd binds */
	int http_port;
	uint64_t max_request_bytes;
	/* processes */
	int workers;
	char *run_dir;          /* sockets, sandboxes' mount points */
	char *fcgi_socket;
	char *data_dir;         /* migrations/, executor/python/, lighttpd/ */
	char *executor_bin;
	int start_lighttpd;
	char *lighttpd_bin;
	char *service_user;     /* the FastCGI workers' user (least privilege) */
	/* access */
	char *api_keys_file;    /* "": no keys, every route open */
	char *health_check_key; /* read by health_check only */
	char *metrics_keys;     /* comma-separated key names that may read /metrics; "": open */
	int key_max_concurrent; /* requests in flight per key; 0: unlimited */
	/* executions */
	double execution_timeout;     /* seconds */
	double max_execution_timeout; /* seconds */
	uint64_t max_output_bytes;    /* per stream, at most CONFIG_MAX_OUTPUT_BYTES */
	int max_input_files;          /* entries of a request's files; PUTs per execution */
	char *backend;          /* "local" or "kubernetes" */
	int pool_size;
	double claim_timeout;   /* seconds to wait for a ready sandbox before 503 */
	double sandbox_start_timeout;
	/* sandbox */
	char *python;
	int zygote;             /* 1: fork local sandboxes from the zygote */
	char *preload_modules;  /* comma-separated */
	uint64_t sandbox_memory_bytes;
	int sandbox_pids;
	uint64_t sandbox_workspace_bytes;
	uint64_t sandbox_tmp_bytes;
	uint64_t sandbox_file_bytes;
	int sandbox_open_files;
	double sandbox_cpus;    /* CPUs a sandbox may use at once (its cgroup's quota) */
	int sandbox_cpu_seconds;
	long sandbox_uid_base;
	char *cgroup_parent;
	/* packages installed on the fly (DESIGN.md §6) */
	int package_install;          /* 1: install missing imports before a run */
	char *package_cache;          /* the shared cache directory */
	char *package_map;            /* JSON file of module -> distribution overrides, or "" */
	char *pip_index_url;          /* "" for pip's default */
	char *pip_find_links;         /* "" for none; a directory or URL */
	double package_install_timeout; /* seconds all installs of one request may take */
	uint64_t package_install_bytes; /* the install sandbox's memory limit and /tmp size */
	int package_install_concurrency; /* pip runs at once on this machine */
	uint64_t package_cache_bytes;   /* size limit of the package cache */
	/* storage */
	char *file_storage_path;
	char *file_storage_group; /* "" when the folder is the service's alone */
	char *db_path;
	uint64_t max_file_bytes;
	/* lifecycle */
	double cleanup_interval;
	double file_ttl;
	double audit_retention;
	char *log_level;
	char *log_format;       /* "text" or "json" */
	/* kubernetes backend (pool_size = pod_queue_target there) */
	int pod_queue_target;
	char *executor_image;
	char *executor_resources;     /* JSON object */
	char *pod_spec_extra;         /* JSON object merged into the pod spec */
	char *pod_name_prefix;
	char *runtime_class;          /* "" for none */
	int pod_deadline;             /* activeDeadlineSeconds */
	uint64_t executor_packages_bytes; /* a pod's packages emptyDir: what deliveries may fill */
	char *k8s_api_url;            /* "" in cluster */
	char *k8s_token_file;
	char *k8s_ca_file;
	char *k8s_namespace;
	char *k8s_instance;
	char *k8s_pod_name;           /* the service's own pod, for ownerReferences */
	char *k8s_pod_uid;
};

/* Fills cfg from envp (NULL-terminated "NAME=value" strings; NULL means environ).
 * Returns 0, or -1 with a one-line reason in err (naming the variable). */
int config_load(struct config *cfg, char *const *envp, char *err, size_t errlen);
/* Frees the strings; safe on a zeroed config. */
void config_release(struct config *cfg);

struct config_option {
	const char *name;
	const char *default_value;
	const char *meaning;
};
/* Option i of the table (for --help and the README), or NULL past the last. */
const struct config_option *config_option(size_t i);

#endif
