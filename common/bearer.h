/* bearer: the one reading of an `Authorization: Bearer <credential>` header,
 * for the service's API keys (fcgi-app/api_keys.c) and an executor pod's
 * token (executor/server.c). Credentials are compared as SHA-256 digests with
 * CRYPTO_memcmp, so neither their bytes nor their length show in the time a
 * comparison takes. */
#ifndef BEARER_H
#define BEARER_H

#include <stddef.h>

#define BEARER_DIGEST_LEN 32

/* The environment variable that carries an executor pod's token, set in its
 * spec by the service (fcgi-app/k8s_pod.c), taken by `executor serve`. */
#define EXECUTOR_TOKEN_ENV "EXECUTOR_TOKEN"

/* SHA-256 of len bytes of data into out. */
void bearer_sha256(const void *data, size_t len, unsigned char out[BEARER_DIGEST_LEN]);

/* The digest of the credential of header (the scheme's case ignored, spaces
 * around the credential trimmed) into out. 0, or -1 when header is NULL, not
 * Bearer, or its credential is empty or over max bytes. */
int bearer_digest(const char *header, size_t max, unsigned char out[BEARER_DIGEST_LEN]);

/* True when the two digests are equal, in constant time. */
int bearer_equal(const unsigned char a[BEARER_DIGEST_LEN], const unsigned char b[BEARER_DIGEST_LEN]);

#endif
