/* access: who may call what (DESIGN §7). With APP_API_KEYS_FILE every /v1
 * route needs `Authorization: Bearer KEY` (401 without a known key), and
 * /metrics a key named in APP_METRICS_KEYS when that is set (403 for other
 * keys); /healthz, /readyz and /openapi.json stay open. The worker reads the
 * master's digests-only copy of the keys (api_keys.h) at its first request
 * and again whenever the scoreboard's generation says the master wrote new
 * ones (SIGHUP). Admits at most APP_KEY_MAX_CONCURRENT requests of one key at
 * once (429 with Retry-After above it). Never parses a body. */
#ifndef ACCESS_H
#define ACCESS_H

#include <stdint.h>

#include "api_keys.h"
#include "config.h"
#include "http.h"

struct access {
	struct api_keys keys;
	uint64_t generation;
	int loaded;
};

/* Where the master writes the digests (APP_RUN_DIR/api-keys) into out. */
void access_digests_path(const struct config *cfg, char *out, size_t cap);

/* Decides the request for path with the Authorization header value
 * authorization (may be NULL). 0 when it may go on: *key_name is the caller's
 * key name (valid until the next access_check), NULL without keys. -1 when
 * refused: out holds the answer (401, 403, 429, or 500 when the keys cannot
 * be read: closed, never open). Call access_done when the request ends. */
int access_check(struct access *a, const struct config *cfg, const char *path, const char *authorization,
		 const char **key_name, struct response *out);
void access_done(void);

void access_release(struct access *a);

#endif
