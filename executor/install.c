/* install: see install.h. The checks of an install's arguments and pip's
 * command line; the sandbox is sbx_install's. */
#include "install.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "package_names.h"
#include "pip_command.h"
#include "sandbox.h"
#include "util.h"

/* True when dir is empty (nothing but . and ..). */
static int dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	int empty = 1;
	while (empty && (e = readdir(d)) != NULL)
		empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* The staging directory must be an absolute path of an existing, empty, real
 * directory (no symlink) directly under $APP_PACKAGE_CACHE/staging, compared
 * resolved. 0, or -1 (logged). */
static int staging_ok(const struct config *cfg, const char *staging)
{
	char want[PATH_MAX], parent[PATH_MAX], got[PATH_MAX], cache_staging[PATH_MAX];
	const char *why = NULL;
	struct stat st;
	const char *slash = strrchr(staging, '/');
	const char *base = slash ? slash + 1 : staging;
	int n = snprintf(cache_staging, sizeof(cache_staging), "%s/staging", cfg->package_cache);
	if (staging[0] != '/')
		why = "not an absolute path";
	else if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		why = "not a directory's name";
	else if (lstat(staging, &st) < 0)
		why = strerror(errno);
	else if (!S_ISDIR(st.st_mode))
		why = S_ISLNK(st.st_mode) ? "a symlink" : "not a directory";
	else if (!dir_empty(staging))
		why = "not empty";
	else if (n < 0 || (size_t)n >= sizeof(cache_staging) || !realpath(cache_staging, want))
		why = "$APP_PACKAGE_CACHE/staging cannot be resolved";
	else if (snprintf(parent, sizeof(parent), "%.*s", (int)(slash - staging), staging) < 0 ||
		 !realpath(slash == staging ? "/" : parent, got) || strcmp(got, want) != 0)
		why = "not directly in $APP_PACKAGE_CACHE/staging";
	if (!why)
		return 0;
	log_error("install: --staging %s: %s", staging, why);
	return -1;
}

int install_run(const struct config *cfg, const char *id, const char *staging, double timeout,
		const char *requirement)
{
	/* the id is sbx_install's to check */
	if (!pkg_spec_valid(requirement) || !isfinite(timeout) || timeout <= 0 || timeout > 86400) {
		log_error("install: invalid requirement or timeout");
		return 2;
	}
	if (staging_ok(cfg, staging) < 0)
		return 2;
	/* A directory of wheels is bound into the sandbox; anything else is a
	 * URL, for pip to fetch on the host's network. */
	const char *links = cfg->pip_find_links;
	int links_dir = pip_links_dir(cfg);
	struct stat st;
	if (links_dir && (stat(links, &st) < 0 || !S_ISDIR(st.st_mode))) {
		log_error("install: APP_PIP_FIND_LINKS=%s is not a directory", links);
		return 2;
	}
	int offline = pip_offline(cfg);

	const char *argv[32];
	size_t n = 0;
	static const char *const head[] = {"-I", "-m", "pip", "install", "--target", INSTALL_INSIDE_STAGING};
	argv[n++] = cfg->python;
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		argv[n++] = head[i];
	for (size_t i = 0; pip_install_options[i]; i++)
		argv[n++] = pip_install_options[i];
	if (offline)
		argv[n++] = "--no-index";
	if (links_dir) {
		argv[n++] = "--find-links";
		argv[n++] = INSTALL_INSIDE_FIND_LINKS;
	}
	argv[n++] = "--";
	argv[n++] = requirement;
	argv[n] = NULL;

	/* credentials stay off the command line: the index URL (which may carry
	 * them) and a find-links URL through pip's environment variables */
	char *index = cfg->pip_index_url[0] ? xasprintf("PIP_INDEX_URL=%s", cfg->pip_index_url) : NULL;
	char *links_url = links[0] && !links_dir ? xasprintf("PIP_FIND_LINKS=%s", links) : NULL;
	const char *envp[] = {
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8",
		"PIP_NO_COLOR=1", "PYTHONDONTWRITEBYTECODE=1", NULL, NULL, NULL,
	};
	size_t e = 6;
	if (index)
		envp[e++] = index;
	if (links_url)
		envp[e++] = links_url;

	struct sbx_install o = {
		.id = id,
		.staging = staging,
		.find_links = links_dir ? links : NULL,
		.host_network = !offline,
		.timeout = timeout,
		.argv = argv,
		.envp = envp,
	};
	int rc = sbx_install(cfg, &o);
	free(index);
	free(links_url);
	return rc;
}
