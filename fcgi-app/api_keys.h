/* api_keys: the API keys of APP_API_KEYS_FILE. One key per line, "NAME:KEY"
 * or "NAME:sha256:HEX" (the SHA-256 of the key, so the file need not hold
 * the key itself); blank lines and lines starting with '#' are ignored. Only
 * digests are ever kept in memory. The master reads the operator's file (at
 * start and on SIGHUP) and writes its digests-only form where the workers read
 * it; both go through the one parser here. A presented key is matched by
 * comparing its digest with every entry in constant time (CRYPTO_memcmp). */
#ifndef API_KEYS_H
#define API_KEYS_H

#include <stddef.h>
#include <sys/types.h>

#define API_KEY_NAME_MAX 64   /* [A-Za-z0-9_.-]{1,64} */
#define API_KEY_MIN_LEN 16    /* shorter keys are guessable: refused */
#define API_KEY_MAX_LEN 512
#define API_KEYS_FILE_MAX (1 << 20)

struct api_key {
	char name[API_KEY_NAME_MAX + 1];
	unsigned char digest[32];
};

struct api_keys {
	struct api_key *keys; /* owned */
	size_t n;
};

/* Parses text (len bytes). 0, or -1 with a message naming the line in err
 * (never the key). Names and digests must be unique. A text without a key
 * gives none (the master refuses to start with none: master.c). */
int api_keys_parse(const char *text, size_t len, struct api_keys *out, char *err, size_t errlen);

/* Reads and parses the file at path (at most API_KEYS_FILE_MAX bytes). */
int api_keys_load(const char *path, struct api_keys *out, char *err, size_t errlen);

/* Writes the digests-only form to path (a temporary file renamed over it),
 * mode 0640, group gid when gid is not (gid_t)-1. 0, or -1 with errno. */
int api_keys_write_digests(const struct api_keys *k, const char *path, gid_t gid);

/* The name of the key an Authorization header value carries ("Bearer KEY",
 * the scheme in any case), or NULL. Compares with every entry. */
const char *api_keys_match(const struct api_keys *k, const char *authorization);

/* Whether name is in the comma-separated list (APP_METRICS_KEYS). */
int api_keys_name_listed(const char *list, const char *name);

void api_keys_free(struct api_keys *k);

#endif
