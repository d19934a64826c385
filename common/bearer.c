/* bearer: see bearer.h. */
#include "bearer.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"

void bearer_sha256(const void *data, size_t len, unsigned char out[BEARER_DIGEST_LEN])
{
	unsigned int n = 0;
	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != BEARER_DIGEST_LEN)
		log_fatal("SHA-256 failed");
}

int bearer_digest(const char *header, size_t max, unsigned char out[BEARER_DIGEST_LEN])
{
	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return -1;
	const char *credential = header + 7;
	while (*credential == ' ')
		credential++;
	size_t len = strlen(credential);
	while (len > 0 && credential[len - 1] == ' ')
		len--;
	if (len == 0 || len > max)
		return -1;
	bearer_sha256(credential, len, out);
	return 0;
}

int bearer_equal(const unsigned char a[BEARER_DIGEST_LEN], const unsigned char b[BEARER_DIGEST_LEN])
{
	return CRYPTO_memcmp(a, b, BEARER_DIGEST_LEN) == 0;
}
