/* package_names: see package_names.h. */
#include "package_names.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "validate.h"

static int name_char(int c)
{
	return isalnum(c) || c == '.' || c == '_' || c == '-';
}

size_t pkg_name_len(const char *spec)
{
	size_t n = 0;
	while (name_char((unsigned char)spec[n]))
		n++;
	return n;
}

int pkg_spec_valid(const char *spec)
{
	if (!isalnum((unsigned char)spec[0]))
		return 0;
	size_t n = pkg_name_len(spec);
	if (n > PKG_NAME_MAX)
		return 0;
	const char *p = spec + n;
	if (*p == '[') {
		const char *end = strchr(p, ']');
		if (!end)
			return 0;
		for (const char *q = p + 1; q < end; q++)
			if (!name_char((unsigned char)*q) && *q != ',')
				return 0;
		p = end + 1;
	}
	if (*p == '\0')
		return 1;
	if (!strchr("<>=!~", *p) || strlen(p) > 100)
		return 0;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("<>=!~.,*+_-", *p))
			return 0;
	return 1;
}

const char *pkg_spec_kind(const char *spec, char *pin, size_t cap)
{
	/* after the name: nothing, "==VERSION", or anything else */
	const char *rest = spec + pkg_name_len(spec);
	if (cap)
		pin[0] = '\0';
	if (strncmp(rest, "==", 2) == 0 && rest[2] && !strpbrk(rest + 2, "=<>!~,*")) {
		int n = snprintf(pin, cap, "%s", rest + 2);
		return n >= 0 && (size_t)n < cap ? "pin" : "requirement";
	}
	return *rest ? "requirement" : "latest";
}

int pkg_normalize(const char *spec, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *p = spec; name_char((unsigned char)*p); p++) {
		int sep = *p == '-' || *p == '_' || *p == '.';
		if (sep && o > 0 && out[o - 1] == '-')
			continue;
		if (o + 1 >= cap)
			return -1;
		out[o++] = sep ? '-' : (char)tolower((unsigned char)*p);
	}
	if (o == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

int pkg_module_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > PKG_NAME_MAX || isdigit((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_')
			return 0;
	return 1;
}

static int name_valid(const char *name, size_t max)
{
	size_t n = strlen(name);
	if (n == 0 || n > max || !isalnum((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._+!-", name[i]))
			return 0;
	return 1;
}

int pkg_dir_name_valid(const char *name)
{
	return name_valid(name, PKG_DIR_NAME_MAX);
}

int pkg_file_path_valid(const char *rel, size_t len)
{
	const char *slash = memchr(rel, '/', len);
	char dir[PKG_DIR_NAME_MAX + 1];
	if (!slash || (size_t)(slash - rel) > PKG_DIR_NAME_MAX || valid_workspace_rel(rel, len) != NULL)
		return 0;
	memcpy(dir, rel, (size_t)(slash - rel));
	dir[slash - rel] = '\0';
	return pkg_dir_name_valid(dir);
}

int pkg_metadata_name_valid(const char *name)
{
	size_t n = strlen(name), suffix = strlen(".dist-info");
	return name_valid(name, PKG_METADATA_MAX) && n > suffix && strcmp(name + n - suffix, ".dist-info") == 0;
}
