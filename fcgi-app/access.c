/* access: see access.h. */
#include "access.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "scoreboard.h"

void access_digests_path(const struct config *cfg, char *out, size_t cap)
{
	snprintf(out, cap, "%s/api-keys", cfg->run_dir);
}

/* Reads the digests again when the master has written new ones. 0, or -1
 * when they cannot be read: then no key is kept (every request refused until
 * they can), never the keys of before. */
static int refresh(struct access *a, const struct config *cfg)
{
	uint64_t gen = scoreboard_keys_generation();
	if (a->loaded && gen == a->generation)
		return 0;
	char path[512], err[256];
	access_digests_path(cfg, path, sizeof(path));
	struct api_keys fresh;
	api_keys_free(&a->keys);
	a->loaded = 0;
	if (api_keys_load(path, &fresh, err, sizeof(err)) < 0) {
		log_error("access: cannot read the API keys from %s: %s", path, err);
		return -1;
	}
	a->keys = fresh;
	a->generation = gen;
	a->loaded = 1;
	return 0;
}

/* A non-zero tag for the key's in-flight count: its digest's first bytes. */
static uint64_t tag_of(const struct access *a, const char *name)
{
	for (size_t i = 0; i < a->keys.n; i++) {
		if (a->keys.keys[i].name != name)
			continue;
		uint64_t tag = 0;
		memcpy(&tag, a->keys.keys[i].digest, sizeof(tag));
		return tag ? tag : 1;
	}
	return 0;
}

int access_check(struct access *a, const struct config *cfg, const char *path, const char *authorization,
		 const char **key_name, struct response *out)
{
	*key_name = NULL;
	if (!cfg->api_keys_file[0])
		return 0;
	int metrics = strcmp(path, "/metrics") == 0;
	if (strncmp(path, "/v1/", 4) != 0 && !(metrics && cfg->metrics_keys[0]))
		return 0;
	if (refresh(a, cfg) < 0) {
		http_error(out, CI_INTERNAL, "the API keys cannot be read");
		return -1;
	}
	const char *name = api_keys_match(&a->keys, authorization);
	if (!name) {
		http_error(out, CI_UNAUTHORIZED, "Not authenticated");
		return -1;
	}
	if (metrics) {
		if (!api_keys_name_listed(cfg->metrics_keys, name)) {
			http_error(out, CI_FORBIDDEN, "Not authorized: this key may not read /metrics");
			return -1;
		}
	} else if (!scoreboard_key_enter(tag_of(a, name), cfg->key_max_concurrent)) {
		http_error(out, CI_TOO_MANY, "Too many requests: this key already has %d in flight "
			   "(APP_KEY_MAX_CONCURRENT)", cfg->key_max_concurrent);
		return -1;
	}
	*key_name = name;
	return 0;
}

void access_done(void)
{
	scoreboard_key_leave();
}

void access_release(struct access *a)
{
	api_keys_free(&a->keys);
	a->loaded = 0;
}
