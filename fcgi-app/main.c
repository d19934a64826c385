/* main: the code-interpreter service binary. Reads the APP_* configuration and
 * hands over to the master; `--help` prints every option. */
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "master.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: code-interpreter [--help | --config-markdown | cleanup]\n\n"
		   "Serves the code-interpreter HTTP API (lighttpd + FastCGI workers + sandbox pool).\n"
		   "`cleanup` runs one retention pass (APP_FILE_TTL, APP_AUDIT_RETENTION) and prints\n"
		   "what it removed.\n"
		   "Configuration comes from the environment:\n\n");
	size_t i = 0;
	for (const struct config_option *o; (o = config_option(i)) != NULL; i++)
		fprintf(f, "  %-28s %-40s %s\n", o->name, o->default_value, o->meaning);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--config-markdown") == 0) {
		size_t i = 0;
		for (const struct config_option *o; (o = config_option(i)) != NULL; i++)
			printf("| `%s` | %s | %s |\n", o->name, o->default_value, o->meaning);
		return 0;
	}
	int cleanup = argc == 2 && strcmp(argv[1], "cleanup") == 0;
	if (argc > 1 && !cleanup) {
		int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
		usage(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	struct config cfg;
	char err[256];
	if (config_load(&cfg, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "code-interpreter: %s\n", err);
		return 2;
	}
	log_set_level(cfg.log_level);
	log_set_format(cfg.log_format);
	int rc = cleanup ? cleanup_once(&cfg, stdout) : master_run(&cfg);
	config_release(&cfg);
	return rc;
}
