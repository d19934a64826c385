/* api_keys: see api_keys.h. */
#include "api_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "bearer.h"
#include "util.h"

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* A key is printable ASCII without spaces: what fits in a header unquoted. */
static int key_char(char c)
{
	return c > ' ' && c < 0x7f;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One non-comment line into *key. NULL, or why it is refused. */
static const char *parse_line(const char *line, size_t len, struct api_key *key)
{
	const char *colon = memchr(line, ':', len);
	if (!colon)
		return "expected NAME:KEY or NAME:sha256:HEX";
	size_t nlen = (size_t)(colon - line);
	if (nlen == 0 || nlen > API_KEY_NAME_MAX)
		return "the name must be 1 to 64 characters";
	for (size_t i = 0; i < nlen; i++)
		if (!name_char(line[i]))
			return "the name may hold only letters, digits, '_', '.' and '-'";
	memcpy(key->name, line, nlen);
	key->name[nlen] = '\0';
	const char *rest = colon + 1;
	size_t rlen = len - nlen - 1;
	if (rlen == 7 + 64 && strncmp(rest, "sha256:", 7) == 0) {
		for (size_t i = 0; i < 32; i++) {
			int hi = hex_value(rest[7 + 2 * i]), lo = hex_value(rest[8 + 2 * i]);
			if (hi < 0 || lo < 0)
				return "sha256: must be followed by 64 hexadecimal digits";
			key->digest[i] = (unsigned char)(hi << 4 | lo);
		}
		return NULL;
	}
	if (rlen >= 7 && strncmp(rest, "sha256:", 7) == 0)
		return "sha256: must be followed by 64 hexadecimal digits";
	if (rlen < API_KEY_MIN_LEN)
		return "the key is shorter than 16 characters";
	if (rlen > API_KEY_MAX_LEN)
		return "the key is longer than 512 characters";
	for (size_t i = 0; i < rlen; i++)
		if (!key_char(rest[i]))
			return "the key may hold only printable ASCII without spaces";
	bearer_sha256(rest, rlen, key->digest);
	return NULL;
}

int api_keys_parse(const char *text, size_t len, struct api_keys *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	size_t cap = 0, lineno = 0;
	const char *why = NULL;
	for (size_t pos = 0; pos < len && !why;) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;
		pos += llen + (nl ? 1 : 0);
		lineno++;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		while (llen > 0 && (line[llen - 1] == ' ' || line[llen - 1] == '\t'))
			llen--;
		while (llen > 0 && (*line == ' ' || *line == '\t')) {
			line++;
			llen--;
		}
		if (llen == 0 || *line == '#')
			continue;
		if (memchr(line, '\0', llen)) {
			why = "a NUL byte";
			break;
		}
		struct api_key key;
		if ((why = parse_line(line, llen, &key)))
			break;
		for (size_t i = 0; i < out->n && !why; i++) {
			if (strcmp(out->keys[i].name, key.name) == 0)
				why = "the name is used twice";
			else if (bearer_equal(out->keys[i].digest, key.digest))
				why = "the same key is given twice";
		}
		if (why)
			break;
		if (out->n == cap) {
			cap = cap ? cap * 2 : 8;
			out->keys = xrealloc(out->keys, cap * sizeof(*out->keys));
		}
		out->keys[out->n++] = key;
	}
	if (why) {
		snprintf(err, errlen, "line %zu: %s", lineno, why);
		api_keys_free(out);
		return -1;
	}
	return 0;
}

int api_keys_load(const char *path, struct api_keys *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > API_KEYS_FILE_MAX) {
		snprintf(err, errlen, "not a regular file of at most %d bytes", API_KEYS_FILE_MAX);
		close(fd);
		return -1;
	}
	char *text = xmalloc((size_t)st.st_size + 1);
	ssize_t n = read_all(fd, text, (size_t)st.st_size);
	close(fd);
	int rc = -1;
	if (n < 0)
		snprintf(err, errlen, "%s", strerror(errno));
	else
		rc = api_keys_parse(text, (size_t)n, out, err, errlen);
	OPENSSL_cleanse(text, (size_t)st.st_size);
	free(text);
	return rc;
}

int api_keys_write_digests(const struct api_keys *k, const char *path, gid_t gid)
{
	char *tmp = xasprintf("%s.tmp-%d", path, (int)getpid());
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	int rc = fd < 0 ? -1 : 0;
	for (size_t i = 0; rc == 0 && i < k->n; i++) {
		char line[API_KEY_NAME_MAX + 8 + 64 + 2];
		int len = snprintf(line, sizeof(line), "%s:sha256:", k->keys[i].name);
		for (size_t b = 0; b < 32; b++)
			len += snprintf(line + len, sizeof(line) - (size_t)len, "%02x", k->keys[i].digest[b]);
		line[len++] = '\n';
		rc = write_all(fd, line, (size_t)len);
	}
	if (rc == 0 && gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0)
		rc = -1;
	if (rc == 0 && (fchmod(fd, 0640) < 0 || fsync(fd) < 0))
		rc = -1;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, path) < 0) {
		saved = errno;
		rc = -1;
	}
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	errno = saved;
	return rc;
}

const char *api_keys_match(const struct api_keys *k, const char *authorization)
{
	unsigned char digest[BEARER_DIGEST_LEN];
	if (bearer_digest(authorization, API_KEY_MAX_LEN, digest) < 0)
		return NULL;
	const char *found = NULL;
	for (size_t i = 0; i < k->n; i++) /* every entry: no early exit */
		if (bearer_equal(k->keys[i].digest, digest))
			found = k->keys[i].name;
	return found;
}

int api_keys_name_listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

void api_keys_free(struct api_keys *k)
{
	if (k->keys)
		OPENSSL_cleanse(k->keys, k->n * sizeof(*k->keys));
	free(k->keys);
	memset(k, 0, sizeof(*k));
}
