/* health_check: runs print(21 * 2) through the service and exits 0 only when
 * stdout is "42\n"; otherwise prints one line saying why and exits 1.
 * usage: health_check [URL]   (default http://$APP_HTTP_HOST:$APP_HTTP_PORT,
 * loopback when the host is every interface). With APP_HEALTH_CHECK_KEY set
 * it sends that key as a bearer token. */
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf { char data[65536]; size_t len; };

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;
	if (b->len + len >= sizeof(b->data))
		return 0;
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

int main(int argc, char **argv)
{
	char url[512];
	const char *port = getenv("APP_HTTP_PORT");
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: health_check [BASE_URL]\n");
		return 2;
	}
	snprintf(url, sizeof(url), "%s/v1/execute",
		 argc == 2 ? argv[1] : "http://127.0.0.1");
	if (argc == 1) {
		const char *host = getenv("APP_HTTP_HOST");
		if (!host || !*host || strcmp(host, "0.0.0.0") == 0)
			host = "127.0.0.1";
		else if (strcmp(host, "::") == 0)
			host = "::1";
		int v6 = strchr(host, ':') != NULL;
		snprintf(url, sizeof(url), "http://%s%s%s:%s/v1/execute", v6 ? "[" : "", host, v6 ? "]" : "",
			 port && *port ? port : "50081");
	}
	static struct buf b;
	CURL *curl = curl_easy_init();
	if (!curl) {
		puts("unhealthy: cannot initialise libcurl");
		return 1;
	}
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	const char *key = getenv("APP_HEALTH_CHECK_KEY");
	char auth[600];
	if (key && *key && strlen(key) < 512) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{\"source_code\":\"print(21 * 2)\"}");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
	CURLcode rc = curl_easy_perform(curl);
	long code = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	if (rc != CURLE_OK) {
		printf("unhealthy: %s: %s\n", url, curl_easy_strerror(rc));
		return 1;
	}
	if (code != 200) {
		printf("unhealthy: %s answered %ld: %.200s\n", url, code, b.data);
		return 1;
	}
	json_object *root = json_tokener_parse(b.data), *out = NULL;
	int ok = root && json_object_object_get_ex(root, "stdout", &out) &&
		 json_object_is_type(out, json_type_string) && strcmp(json_object_get_string(out), "42\n") == 0;
	if (!ok)
		printf("unhealthy: expected stdout \"42\\n\", got %.200s\n", b.data);
	json_object_put(root);
	return ok ? 0 : 1;
}
