/* package_layout: see package_layout.h. */
#include "package_layout.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* A directory owned by root with exactly mode. 0, or -1 (logged). */
static int make_owned_dir(const char *path, mode_t mode)
{
	if (mkdir_p(path, mode) < 0 || chown(path, 0, 0) < 0 || chmod(path, mode) < 0) {
		log_error("package cache: %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int pkg_layout_prepare(const struct config *cfg)
{
	static const struct { const char *name; mode_t mode; } dirs[] = {
		{"dists", 0711}, {"staging", 0711}, {"locks", 0700},
	};
	if (make_owned_dir(cfg->package_cache, 0711) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char path[PATH_MAX];
		int n = snprintf(path, sizeof(path), "%s/%s", cfg->package_cache, dirs[i].name);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			errno = ENAMETOOLONG;
			log_error("package cache: %s/%s: %s", cfg->package_cache, dirs[i].name, strerror(errno));
			return -1;
		}
		if (make_owned_dir(path, dirs[i].mode) < 0)
			return -1;
	}
	return 0;
}
