/* pip_command: see pip_command.h. */
#include "pip_command.h"

const char *const pip_install_options[] = {
	"--only-binary", ":all:", "--no-cache-dir", "--disable-pip-version-check",
	"--no-input", "--progress-bar", "off", "--no-warn-script-location", NULL,
};

int pip_links_dir(const struct config *cfg)
{
	return cfg->pip_find_links[0] == '/';
}

int pip_offline(const struct config *cfg)
{
	return pip_links_dir(cfg) && !cfg->pip_index_url[0];
}
