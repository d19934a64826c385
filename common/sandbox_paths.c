/* sandbox_paths: see sandbox_paths.h. Sandbox ids and the host paths derived
 * from them, for both the service and the executor. */
#include "sandbox_paths.h"

#include <stdio.h>
#include <string.h>

int sbx_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n < 1 || n > 64)
		return 0;
	for (const char *c = id; *c; c++)
		if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') ||
		      ('0' <= *c && *c <= '9') || *c == '_' || *c == '-'))
			return 0;
	return 1;
}

int sbx_parent_dir(const struct config *cfg, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/sandboxes", cfg->run_dir);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int sbx_dir(const struct config *cfg, const char *id, char *out, size_t cap)
{
	if (!sbx_id_valid(id))
		return -1;
	int n = snprintf(out, cap, "%s/sandboxes/%s", cfg->run_dir, id);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int sbx_socket_path(const struct config *cfg, const char *id, char *out, size_t cap)
{
	if (!sbx_id_valid(id))
		return -1;
	int n = snprintf(out, cap, "%s/sandboxes/%s/sock/executor.sock", cfg->run_dir, id);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int sbx_root_uid_valid(const struct config *cfg, long uid)
{
	long off = uid - cfg->sandbox_uid_base;
	return off >= 0 && off % SBX_UID_STRIDE == 0 && off / SBX_UID_STRIDE < SBX_UID_SLOTS;
}
