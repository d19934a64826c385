/* pod_token: see pod_token.h. */
#include "pod_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define SECRET_MAX 64

static unsigned char secret[SECRET_MAX];
static size_t secret_len; /* 0: none */

void pod_token_init(void)
{
	unsigned char key[POD_TOKEN_SECRET_LEN];
	random_bytes(key, sizeof(key));
	pod_token_set_secret(key, sizeof(key));
	OPENSSL_cleanse(key, sizeof(key));
}

void pod_token_set_secret(const void *key, size_t len)
{
	pod_token_forget();
	if (len == 0 || len > SECRET_MAX)
		return;
	memcpy(secret, key, len);
	secret_len = len;
}

void pod_token_forget(void)
{
	OPENSSL_cleanse(secret, sizeof(secret));
	secret_len = 0;
}

int pod_token_for(const char *name, char out[POD_TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	out[0] = '\0';
	if (secret_len == 0)
		return -1;
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)name, strlen(name), mac, &len) ||
	    len * 2 != POD_TOKEN_LEN)
		log_fatal("HMAC-SHA256 failed");
	for (unsigned int i = 0; i < len; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[POD_TOKEN_LEN] = '\0';
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}
