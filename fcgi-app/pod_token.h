/* pod_token: the bearer token each executor pod answers to (kubernetes
 * backend): lowercase hex HMAC-SHA256(secret, pod name), given to the pod as
 * EXECUTOR_TOKEN in the spec the service creates and sent by the workers as
 * `Authorization: Bearer`. Owns the service's pod secret: 32 random bytes the
 * master makes once at start, inherited by the processes it forks. The
 * secret and the tokens are never written anywhere: not to disk, not to the
 * database, not to a log. */
#ifndef POD_TOKEN_H
#define POD_TOKEN_H

#include <stddef.h>

#define POD_TOKEN_SECRET_LEN 32
#define POD_TOKEN_LEN 64 /* hex digits of an HMAC-SHA256 */

/* Makes the secret (random_bytes). */
void pod_token_init(void);
/* Tests only: the secret is these len bytes (1..64). */
void pod_token_set_secret(const void *key, size_t len);
/* Wipes the secret (a process that needs no token). */
void pod_token_forget(void);

/* The token of the pod named name into out (POD_TOKEN_LEN digits and a NUL).
 * 0, or -1 without a secret (out is then ""). */
int pod_token_for(const char *name, char out[POD_TOKEN_LEN + 1]);

#endif
