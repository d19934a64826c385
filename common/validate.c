/* validate: see validate.h. */
#include "validate.h"

#include <string.h>

#include "util.h"

#define PREFIX_LEN (sizeof(VALID_WORKSPACE_PREFIX) - 1)

const char *valid_workspace_path(const char *path, size_t len)
{
	if (len <= 1 || path[0] != '/' || path[1] == '/')
		return "String should match pattern '^/[^/].*$'";
	if (memchr(path, '\0', len))
		return "Path must not contain NUL";
	if (len > VALID_PATH_MAX)
		return "Path is longer than " STRINGIFY(VALID_PATH_MAX) " bytes";
	if (len <= PREFIX_LEN || memcmp(path, VALID_WORKSPACE_PREFIX, PREFIX_LEN) != 0)
		return "Path must be a file inside /workspace";
	return valid_workspace_rel(path + PREFIX_LEN, len - PREFIX_LEN);
}

const char *valid_workspace_rel(const char *rel, size_t len)
{
	if (len == 0)
		return "Path must not have an empty component";
	if (memchr(rel, '\0', len))
		return "Path must not contain NUL";
	if (len > VALID_REL_MAX)
		return "Path is longer than " STRINGIFY(VALID_PATH_MAX) " bytes";
	const char *p = rel, *end = rel + len;
	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *cend = slash ? slash : end;
		size_t clen = (size_t)(cend - p);
		if (clen == 0)
			return "Path must not have an empty component";
		if ((clen == 1 && p[0] == '.') || (clen == 2 && p[0] == '.' && p[1] == '.'))
			return "Path must not have '.' or '..' components";
		if (clen > VALID_COMPONENT_MAX)
			return "Path component is longer than " STRINGIFY(VALID_COMPONENT_MAX) " bytes";
		if (!slash)
			return NULL;
		p = slash + 1;
	}
}

static int is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int valid_object_id(const char *id, size_t len)
{
	if (!id || len < 1 || len > VALID_OBJECT_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!is_alpha_(id[i]) && !is_digit(id[i]) && id[i] != '-')
			return 0;
	return 1;
}

const char *valid_env_name(const char *name, size_t len)
{
	if (len == 0)
		return "an environment variable name must not be empty";
	if (len > VALID_ENV_NAME_MAX)
		return "an environment variable name must be at most " STRINGIFY(VALID_ENV_NAME_MAX) " bytes";
	if (!is_alpha_(name[0]))
		return "an environment variable name must match [A-Za-z_][A-Za-z0-9_]*";
	for (size_t i = 1; i < len; i++)
		if (!is_alpha_(name[i]) && !is_digit(name[i]))
			return "an environment variable name must match [A-Za-z_][A-Za-z0-9_]*";
	if (len >= 3 && memcmp(name, "LD_", 3) == 0)
		return "LD_* variables are not allowed: they change how the loader starts the interpreter";
	if (len >= 6 && memcmp(name, "PYTHON", 6) == 0)
		return "PYTHON* variables are not allowed: they change how the interpreter starts";
	return NULL;
}
