/* executor: command line of the executor binary. `executor sandbox` launches a
 * local sandbox, `executor serve` runs the executor server directly (pods). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#include "config.h"
#include "install.h"
#include "log.h"
#include "sandbox.h"
#include "server.h"
#include "util.h"
#include "zygote.h"

#define EXIT_USAGE 2

static const char usage_text[] =
	"usage:\n"
	"  executor sandbox --id ID --ready-fd N\n"
	"      Launch one local sandbox (as root; the service's pool manager does this):\n"
	"      new user, pid, mount, network, ipc, uts and cgroup namespaces, a minimal\n"
	"      read-only root, cgroup limits. The executor server runs inside as pid 1\n"
	"      on $APP_RUN_DIR/sandboxes/ID/sock/executor.sock and writes \"R\" to fd N\n"
	"      once its Python runner is warm. ID is [0-9a-zA-Z_-]{1,64}; N >= 3.\n"
	"      Stops (killing the sandbox) on SIGTERM, SIGINT, SIGHUP or when its parent\n"
	"      dies.\n"
	"\n"
	"  executor serve [--socket PATH | [--host IPV4] --port N] [--workspace DIR]\n"
	"                 [--runner-dir DIR] [--packages DIR]\n"
	"                 [--lockdown MODE | --no-sandbox] [--ready-fd N]\n"
	"      Run the executor server directly (Kubernetes pods, tests). Defaults: TCP\n"
	"      port 8000 on every address (--host binds one), workspace /workspace,\n"
	"      runner dir $APP_DATA_DIR/executor/python.\n"
	"      --lockdown MODE decides how user code is confined:\n"
	"        process  (default) lock the whole server down before it starts: no\n"
	"                 capabilities, no_new_privs, rlimits, seccomp filter; the uid is\n"
	"                 left alone (a pod's securityContext picks the non-root user).\n"
	"                 The Python runner inherits all of it.\n"
	"        runner   lock down only the Python runner, switching it to uid/gid 1000\n"
	"                 (needs root; this is what a local sandbox does inside).\n"
	"        none     no lock-down at all: development only. --no-sandbox is the same.\n"
	"      --packages DIR (a pod's emptyDir at /opt/code-interpreter/packages):\n"
	"      PUT /packages/<dir>/<path> writes the package cache directories the\n"
	"      service delivers there, read-only, at most APP_EXECUTOR_PACKAGES_MB;\n"
	"      without it that route is a 404 (local sandboxes see the cache itself).\n"
	"      With EXECUTOR_TOKEN set (in a pod the service sets it), every request\n"
	"      but GET /healthz needs `Authorization: Bearer <that token>` (else 401);\n"
	"      the variable is unset and its bytes wiped at start.\n"
	"\n"
	"  executor zygote --control-fd N\n"
	"      The local pool's zygote (as root; the pool manager starts it unless\n"
	"      APP_ZYGOTE=0): starts executor-warm (beside this binary), which imports\n"
	"      APP_PRELOAD_MODULES once, then forks each sandbox it is asked for on the\n"
	"      control socket N (same setup as `executor sandbox`; each runner is\n"
	"      forked from the warm interpreter into its sandbox).\n"
	"\n"
	"  executor install --id ID --staging DIR --timeout SECONDS -- REQUIREMENT\n"
	"      Install one pip requirement (NAME[extras][specifiers], wheels only) into\n"
	"      DIR (as root; the service does this when code imports a missing package).\n"
	"      DIR: an absolute path of an existing, empty, real directory directly in\n"
	"      $APP_PACKAGE_CACHE/staging; it is made the sandbox user's (mode 0700),\n"
	"      never removed here: the caller publishes it. pip runs in an install\n"
	"      sandbox, built like `executor sandbox` with other options: user, pid,\n"
	"      mount, ipc, uts and cgroup namespaces; a network namespace with loopback\n"
	"      only when pip needs no network (APP_PIP_INDEX_URL empty and\n"
	"      APP_PIP_FIND_LINKS a directory: --no-index), else the host's network (the\n"
	"      index URL reaches pip only as PIP_INDEX_URL in its environment); its own\n"
	"      cgroup (APP_PACKAGE_INSTALL_MB, APP_SANDBOX_PIDS, one CPU on cgroup v2);\n"
	"      the read-only system root; /tmp of APP_PACKAGE_INSTALL_MB; DIR the only\n"
	"      writable host directory; pip locked down as the sandbox user. ID is\n"
	"      [0-9a-zA-Z_-]{1,64} (the sandbox lives in $APP_RUN_DIR/installs/ID);\n"
	"      SECONDS > 0, at most 86400, after which the sandbox is killed. pip's\n"
	"      output goes to stdout/stderr.\n"
	"\n"
	"  executor --help\n"
	"\n"
	"Configuration comes from the APP_* environment (see `code-interpreter --help`).\n"
	"\n"
	"exit status:\n"
	"  0    clean shutdown (SIGTERM/SIGINT), or the sandbox was stopped on request\n"
	"  1    a setup step or the server failed (the log names the step and errno)\n"
	"  2    usage or configuration error\n"
	"  sandbox only: otherwise the server's own exit status, or 128+S when the\n"
	"  sandbox's pid 1 was killed by signal S\n"
	"  install: pip's exit status (128+S when signal S ended it, or stopped the\n"
	"  install: SIGTERM, SIGINT, SIGHUP); 124 when SECONDS passed (the sandbox\n"
	"  was killed); 1 a setup step failed; 2 usage (also a bad DIR or\n"
	"  REQUIREMENT)\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "executor: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n(see executor --help)\n");
	va_end(ap);
	return EXIT_USAGE;
}

/* Parses a whole decimal number in [min, max]. 0 or -1. */
static int parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int load_config(struct config *cfg)
{
	char err[512];
	if (config_load(cfg, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "executor: configuration: %s\n", err);
		return -1;
	}
	log_set_level(cfg->log_level);
	log_set_format(cfg->log_format);
	return 0;
}

static int cmd_sandbox(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"id", required_argument, NULL, 'i'},
		{"ready-fd", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *id = NULL;
	int ready_fd = -1, c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			id = optarg;
			break;
		case 'r':
			if (parse_int(optarg, 3, INT_MAX, &ready_fd) < 0)
				return usage_error("--ready-fd %s: expected a descriptor >= 3", optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage_error("%s: bad option for sandbox", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return usage_error("%s: unexpected argument", argv[optind]);
	if (!id || !sbx_id_valid(id))
		return usage_error("--id %s: expected [0-9a-zA-Z_-]{1,64}", id ? id : "(missing)");
	if (ready_fd < 0)
		return usage_error("%s", "--ready-fd is required");
	if (fcntl(ready_fd, F_GETFD) < 0)
		return usage_error("--ready-fd %d: not an open descriptor", ready_fd);

	log_set_role("sandbox");
	struct config cfg;
	if (load_config(&cfg) < 0)
		return EXIT_USAGE;
	int rc = sbx_launch(&cfg, id, ready_fd);
	config_release(&cfg);
	return rc;
}

static int cmd_zygote(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"control-fd", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ctl = -1, c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_int(optarg, 3, INT_MAX, &ctl) < 0)
				return usage_error("--control-fd %s: expected a descriptor >= 3", optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage_error("%s: bad option for zygote", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return usage_error("%s: unexpected argument", argv[optind]);
	if (ctl < 0 || fcntl(ctl, F_GETFD) < 0)
		return usage_error("%s", "--control-fd: an open descriptor is required");
	log_set_role("zygote");
	struct config cfg;
	if (load_config(&cfg) < 0)
		return EXIT_USAGE;
	int rc = zygote_run(&cfg, ctl);
	config_release(&cfg);
	return rc;
}

/* Parses a whole decimal number of seconds in (0, max]. 0 or -1. */
static int parse_seconds(const char *s, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int cmd_install(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"id", required_argument, NULL, 'i'},
		{"staging", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *id = NULL, *staging = NULL;
	double timeout = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			id = optarg;
			break;
		case 's':
			staging = optarg;
			break;
		case 't':
			if (parse_seconds(optarg, 86400, &timeout) < 0)
				return usage_error("--timeout %s: expected seconds, > 0 and at most 86400", optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage_error("%s: bad option for install", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_error("%s", "install: exactly one requirement is expected (after --)");
	if (!id || !staging || timeout <= 0)
		return usage_error("%s", "install: --id, --staging and --timeout are required");
	/* the id, DIR and REQUIREMENT are checked by install_run */
	log_set_role("install");
	struct config cfg;
	if (load_config(&cfg) < 0)
		return EXIT_USAGE;
	int rc = install_run(&cfg, id, staging, timeout, argv[optind]);
	config_release(&cfg);
	return rc;
}

enum lockdown_mode { LOCK_PROCESS, LOCK_RUNNER, LOCK_NONE };

static int cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"port", required_argument, NULL, 'p'},
		{"host", required_argument, NULL, 'H'},
		{"workspace", required_argument, NULL, 'w'},
		{"runner-dir", required_argument, NULL, 'd'},
		{"packages", required_argument, NULL, 'P'},
		{"lockdown", required_argument, NULL, 'l'},
		{"no-sandbox", no_argument, NULL, 'n'},
		{"ready-fd", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_path = NULL, *workspace = "/workspace", *runner_dir = NULL, *host = NULL;
	const char *packages_dir = NULL;
	int port = 8000, port_given = 0, ready_fd = -1, c;
	enum lockdown_mode mode = LOCK_PROCESS;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'p':
			if (parse_int(optarg, 1, 65535, &port) < 0)
				return usage_error("--port %s: expected 1..65535", optarg);
			port_given = 1;
			break;
		case 'H':
			host = optarg;
			break;
		case 'w':
			workspace = optarg;
			break;
		case 'd':
			runner_dir = optarg;
			break;
		case 'P':
			packages_dir = optarg;
			break;
		case 'l':
			if (strcmp(optarg, "process") == 0)
				mode = LOCK_PROCESS;
			else if (strcmp(optarg, "runner") == 0)
				mode = LOCK_RUNNER;
			else if (strcmp(optarg, "none") == 0)
				mode = LOCK_NONE;
			else
				return usage_error("--lockdown %s: expected process, runner or none", optarg);
			break;
		case 'n':
			mode = LOCK_NONE;
			break;
		case 'r':
			if (parse_int(optarg, 0, INT_MAX, &ready_fd) < 0)
				return usage_error("--ready-fd %s: expected a descriptor", optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage_error("%s: bad option for serve", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return usage_error("%s: unexpected argument", argv[optind]);
	if (socket_path && port_given)
		return usage_error("%s", "--socket and --port exclude each other");

	log_set_role("executor");
	struct config cfg;
	if (load_config(&cfg) < 0)
		return EXIT_USAGE;
	char *default_runner = xasprintf("%s/executor/python", cfg.data_dir);
	struct server_options o = {
		.cfg = &cfg,
		.socket_path = socket_path,
		.port = port,
		.host = host,
		.workspace = workspace,
		.packages_dir = packages_dir,
		.runner_dir = runner_dir ? runner_dir : default_runner,
		.sandboxed = mode == LOCK_RUNNER,
		.ready_fd = ready_fd,
		.runner_request_fd = -1,
	};
	int rc = 1;
	if (mode == LOCK_PROCESS && sbx_lockdown(&cfg, 0) < 0) {
		log_error("executor: lock-down failed; not serving");
		goto out;
	}
	rc = server_run(&o);
out:
	free(default_runner);
	config_release(&cfg);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("%s", "missing command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	/* getopt_long on the command's own arguments (argv[1] plays argv[0]) */
	if (strcmp(argv[1], "sandbox") == 0)
		return cmd_sandbox(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "zygote") == 0)
		return cmd_zygote(argc - 1, argv + 1);
	if (strcmp(argv[1], "install") == 0)
		return cmd_install(argc - 1, argv + 1);
	return usage_error("%s: unknown command", argv[1]);
}
