/* Unit tests for the Kubernetes parts: Status and Retry-After parsing, backoff,
 * readiness classification of pod objects, the merge patch, the executor pod
 * spec built from the configuration (and its token), the instance label and the
 * config checks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "config.h"
#include "k8s_client.h"
#include "k8s_pod.h"
#include "pod_install.h"

static json_object *J(const char *text)
{
	json_object *o = json_tokener_parse(text);
	ck_assert_msg(o != NULL, "bad test JSON: %s", text);
	return o;
}

/* The value at a dotted path ("spec.containers.0.name"), or NULL. */
static json_object *at(json_object *o, const char *path)
{
	char *copy = strdup(path), *save = NULL;
	for (char *k = strtok_r(copy, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)strtoul(k, NULL, 10));
		else if (!json_object_object_get_ex(o, k, &o))
			o = NULL;
	}
	free(copy);
	return o;
}

static const char *at_str(json_object *o, const char *path)
{
	json_object *v = at(o, path);
	return v ? json_object_get_string(v) : NULL;
}

START_TEST(status_object_is_parsed)
{
	struct k8s_status st;
	const char *body = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
			   "\"message\":\"pods \\\"x\\\" already exists\",\"reason\":\"AlreadyExists\",\"code\":409}";
	k8s_status_parse(409, body, strlen(body), &st);
	ck_assert_int_eq(st.http, 409);
	ck_assert_int_eq(st.code, 409);
	ck_assert_str_eq(st.reason, "AlreadyExists");
	ck_assert_str_eq(st.message, "pods \"x\" already exists");
	ck_assert_int_eq(k8s_rc_from_http(st.http), K8S_CONFLICT);

	/* an in-stream watch ERROR carries its code in the Status, with no HTTP status */
	const char *expired = "{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\",\"message\":\"too old\"}";
	k8s_status_parse(0, expired, strlen(expired), &st);
	ck_assert_int_eq(st.code, 410);
	ck_assert_str_eq(st.reason, "Expired");
}
END_TEST

START_TEST(plain_text_error_keeps_its_first_line)
{
	struct k8s_status st;
	const char *body = "Too many requests, please try again later.\nsecond line";
	k8s_status_parse(429, body, strlen(body), &st);
	ck_assert_int_eq(st.code, 429);
	ck_assert_str_eq(st.reason, "");
	ck_assert_str_eq(st.message, "Too many requests, please try again later.");
	k8s_status_parse(500, NULL, 0, &st);
	ck_assert_str_eq(st.message, "");
	/* a pod (not a Status) on success leaves reason and message empty */
	const char *pod = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}";
	k8s_status_parse(201, pod, strlen(pod), &st);
	ck_assert_str_eq(st.message, "");
}
END_TEST

START_TEST(http_status_maps_to_result)
{
	ck_assert_int_eq(k8s_rc_from_http(200), K8S_OK);
	ck_assert_int_eq(k8s_rc_from_http(201), K8S_OK);
	ck_assert_int_eq(k8s_rc_from_http(404), K8S_NOT_FOUND);
	ck_assert_int_eq(k8s_rc_from_http(410), K8S_GONE);
	ck_assert_int_eq(k8s_rc_from_http(429), K8S_UNAVAILABLE);
	ck_assert_int_eq(k8s_rc_from_http(500), K8S_UNAVAILABLE);
	ck_assert_int_eq(k8s_rc_from_http(503), K8S_UNAVAILABLE);
	ck_assert_int_eq(k8s_rc_from_http(0), K8S_UNAVAILABLE);
	ck_assert_int_eq(k8s_rc_from_http(401), K8S_REFUSED);
	ck_assert_int_eq(k8s_rc_from_http(403), K8S_REFUSED);
	ck_assert_int_eq(k8s_rc_from_http(422), K8S_REFUSED);
}
END_TEST

START_TEST(retry_after_seconds_and_dates)
{
	ck_assert(k8s_parse_retry_after("3") == 3);
	ck_assert(k8s_parse_retry_after(" 1.5 \r\n") == 1.5);
	ck_assert(k8s_parse_retry_after("0") == 0);
	ck_assert(k8s_parse_retry_after("") == -1);
	ck_assert(k8s_parse_retry_after(NULL) == -1);
	ck_assert(k8s_parse_retry_after("soon") == -1);
	ck_assert(k8s_parse_retry_after("-4") == -1);
	char date[64];
	time_t later = time(NULL) + 120;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&later));
	double d = k8s_parse_retry_after(date);
	ck_assert_msg(d > 100 && d <= 121, "%s -> %g", date, d);
	ck_assert(k8s_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0); /* past */
}
END_TEST

START_TEST(backoff_is_bounded)
{
	ck_assert_int_eq(k8s_backoff_ms(1, -1, 5000), 200);
	ck_assert_int_eq(k8s_backoff_ms(2, -1, 5000), 400);
	ck_assert_int_eq(k8s_backoff_ms(3, -1, 5000), 800);
	ck_assert_int_eq(k8s_backoff_ms(40, -1, 5000), 5000);
	ck_assert_int_eq(k8s_backoff_ms(1, 2, 5000), 2000);    /* Retry-After wins */
	ck_assert_int_eq(k8s_backoff_ms(1, 3600, 5000), 5000); /* but is capped */
	ck_assert_int_eq(k8s_backoff_ms(1, 0, 5000), 0);
}
END_TEST

#define READY_POD \
	"{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.2.3\"," \
	"\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\"},{\"type\":\"Ready\",\"status\":\"True\"}]," \
	"\"containerStatuses\":[{\"name\":\"executor\",\"ready\":true,\"state\":{\"running\":{}}}]}}"

START_TEST(classify_ready_needs_running_ready_and_ip)
{
	char why[64], ip[64];
	json_object *pod = J(READY_POD);
	ck_assert_int_eq(k8s_pod_classify(pod, why, sizeof(why), ip, sizeof(ip)), K8S_POD_READY);
	ck_assert_str_eq(ip, "10.1.2.3");
	json_object_put(pod);

	const char *pending[] = {
		"{\"metadata\":{\"name\":\"p\"}}",
		"{\"metadata\":{\"name\":\"p\"},\"status\":{\"phase\":\"Pending\"}}",
		/* Running but not Ready yet */
		"{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.2.3\",\"conditions\":[{\"type\":\"Ready\","
		"\"status\":\"False\"}]}}",
		/* Ready but no IP */
		"{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
		/* Ready, but the address is not an IP literal (it would become the URL's host) */
		"{\"status\":{\"phase\":\"Running\",\"podIP\":\"evil.example/x?\",\"conditions\":[{\"type\":"
		"\"Ready\",\"status\":\"True\"}]}}",
		/* waiting for an ordinary reason */
		"{\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"state\":{\"waiting\":{\"reason\":"
		"\"ContainerCreating\"}}}]}}",
	};
	for (size_t i = 0; i < sizeof(pending) / sizeof(*pending); i++) {
		pod = J(pending[i]);
		ck_assert_msg(k8s_pod_classify(pod, why, sizeof(why), ip, sizeof(ip)) == K8S_POD_PENDING, "%s",
			      pending[i]);
		ck_assert_str_eq(ip, "");
		json_object_put(pod);
	}
}
END_TEST

START_TEST(classify_doomed_pods_name_the_reason)
{
	struct {
		const char *pod, *why;
	} cases[] = {
		{"{\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"state\":{\"waiting\":{\"reason\":"
		 "\"ImagePullBackOff\"}}}]}}", "ImagePullBackOff"},
		{"{\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"state\":{\"waiting\":{\"reason\":"
		 "\"ErrImagePull\"}}}]}}", "ErrImagePull"},
		{"{\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"state\":{\"waiting\":{\"reason\":"
		 "\"CrashLoopBackOff\"}}}]}}", "CrashLoopBackOff"},
		{"{\"status\":{\"phase\":\"Failed\",\"reason\":\"Evicted\"}}", "Evicted"},
		{"{\"status\":{\"phase\":\"Failed\",\"reason\":\"DeadlineExceeded\"}}", "DeadlineExceeded"},
		{"{\"status\":{\"phase\":\"Failed\"}}", "Failed"},
		{"{\"status\":{\"phase\":\"Succeeded\"}}", "Succeeded"},
		{"{\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"False\","
		 "\"reason\":\"Unschedulable\"}]}}", "Unschedulable"},
		{"{\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"state\":{\"terminated\":{\"reason\":"
		 "\"OOMKilled\"}}}]}}", "OOMKilled"},
		{"{\"metadata\":{\"deletionTimestamp\":\"2024-01-01T00:00:00Z\"},\"status\":{\"phase\":\"Running\"}}",
		 "being deleted"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char why[64];
		json_object *pod = J(cases[i].pod);
		ck_assert_msg(k8s_pod_classify(pod, why, sizeof(why), NULL, 0) == K8S_POD_DOOMED, "%s", cases[i].pod);
		ck_assert_str_eq(why, cases[i].why);
		json_object_put(pod);
	}
	/* a ready pod that is being deleted is not handed out */
	json_object *pod = J(READY_POD);
	json_object_object_add(at(pod, "metadata"), "deletionTimestamp", json_object_new_string("x"));
	ck_assert_int_eq(k8s_pod_classify(pod, NULL, 0, NULL, 0), K8S_POD_DOOMED);
	json_object_put(pod);
}
END_TEST

START_TEST(merge_patch_follows_rfc7386)
{
	json_object *t = J("{\"a\":{\"b\":1,\"c\":2},\"d\":[1,2],\"e\":\"x\",\"keep\":true}");
	json_object *p = J("{\"a\":{\"b\":null,\"z\":3},\"d\":[9],\"e\":null,\"n\":{\"m\":null,\"o\":1}}");
	k8s_json_merge(t, p);
	json_object *want = J("{\"a\":{\"c\":2,\"z\":3},\"d\":[9],\"keep\":true,\"n\":{\"o\":1}}");
	ck_assert_msg(json_object_equal(t, want), "%s", json_object_to_json_string(t));
	json_object_put(t);
	json_object_put(p);
	json_object_put(want);
}
END_TEST

static void load(struct config *cfg, char **env)
{
	char err[256];
	ck_assert_msg(config_load(cfg, env, err, sizeof(err)) == 0, "%s", err);
}

START_TEST(pod_spec_defaults_are_restricted)
{
	struct config cfg;
	char *env[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_EXECUTOR_IMAGE=reg/exec:1", NULL};
	load(&cfg, env);
	char err[256];
	json_object *pod = k8s_pod_build(&cfg, "code-executor-ab12", "inst-1", NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(pod);
	ck_assert_str_eq(at_str(pod, "kind"), "Pod");
	ck_assert_str_eq(at_str(pod, "metadata.name"), "code-executor-ab12");
	json_object *labels = at(pod, "metadata.labels");
	json_object *v; /* label keys have dots: no at() */
	ck_assert(json_object_object_get_ex(labels, K8S_LABEL_MANAGED, &v));
	ck_assert_str_eq(json_object_get_string(v), "code-interpreter");
	ck_assert(json_object_object_get_ex(labels, K8S_LABEL_INSTANCE, &v));
	ck_assert_str_eq(json_object_get_string(v), "inst-1");
	ck_assert_ptr_null(at(pod, "metadata.ownerReferences"));
	ck_assert_str_eq(at_str(pod, "spec.restartPolicy"), "Never");
	ck_assert(!json_object_get_boolean(at(pod, "spec.automountServiceAccountToken")));
	ck_assert(!json_object_get_boolean(at(pod, "spec.enableServiceLinks")));
	ck_assert_int_eq(json_object_get_int(at(pod, "spec.activeDeadlineSeconds")), 3600);
	ck_assert_ptr_null(at(pod, "spec.runtimeClassName"));
	ck_assert(json_object_get_boolean(at(pod, "spec.securityContext.runAsNonRoot")));
	ck_assert_str_eq(at_str(pod, "spec.securityContext.seccompProfile.type"), "RuntimeDefault");
	json_object *c = at(pod, "spec.containers.0");
	ck_assert_str_eq(at_str(c, "image"), "reg/exec:1");
	ck_assert_str_eq(at_str(c, "args.0"), "serve");
	ck_assert_str_eq(at_str(c, "args.4"), "process");
	ck_assert_int_eq(json_object_get_int(at(c, "ports.0.containerPort")), 8000);
	ck_assert(json_object_get_boolean(at(c, "securityContext.readOnlyRootFilesystem")));
	ck_assert(!json_object_get_boolean(at(c, "securityContext.allowPrivilegeEscalation")));
	ck_assert_str_eq(at_str(c, "securityContext.capabilities.drop.0"), "ALL");
	ck_assert_str_eq(at_str(c, "readinessProbe.httpGet.path"), "/healthz");
	ck_assert_int_eq(json_object_get_int(at(c, "readinessProbe.httpGet.port")), 8000);
	ck_assert_str_eq(at_str(c, "resources.limits.memory"), "1Gi");
	ck_assert_str_eq(at_str(c, "volumeMounts.0.mountPath"), "/workspace");
	ck_assert_str_eq(at_str(pod, "spec.volumes.0.name"), "workspace");
	ck_assert_str_eq(at_str(pod, "spec.volumes.0.emptyDir.sizeLimit"), "512Mi");
	ck_assert_str_eq(at_str(pod, "spec.volumes.1.emptyDir.sizeLimit"), "256Mi");
	/* the executor gets the service's limits */
	int found = 0;
	json_object *envs = at(c, "env");
	for (size_t i = 0; i < json_object_array_length(envs); i++) {
		json_object *e = json_object_array_get_idx(envs, i);
		if (strcmp(at_str(e, "name"), "APP_MAX_OUTPUT_BYTES") == 0) {
			ck_assert_str_eq(at_str(e, "value"), "1048576");
			found = 1;
		}
	}
	ck_assert(found);
	json_object_put(pod);
	config_release(&cfg);
}
END_TEST

/* Installs on the fly: a packages emptyDir of APP_EXECUTOR_PACKAGES_MB where
 * the runner looks (runner.py), which `executor serve --packages` fills with
 * what the service delivers; none without installs. */
/* An installer pod: never matched by the pool's selector (no instance label),
 * the name the installers' NetworkPolicy selects, room for one run's packages,
 * no packages emptyDir, its token, its deadline. */
START_TEST(installer_pod_spec)
{
	struct config cfg;
	char *env[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_EXECUTOR_PACKAGES_MB=300",
		       (char *)"APP_PACKAGE_INSTALL_TIMEOUT=200", (char *)"APP_MAX_EXECUTION_TIMEOUT=60", NULL};
	load(&cfg, env);
	char err[256];
	json_object *pod = k8s_installer_pod_build(&cfg, "x-install-1", "svc-0", "0123abcd", err, sizeof(err));
	ck_assert_ptr_nonnull(pod);
	json_object *labels = at(pod, "metadata.labels"), *v;
	ck_assert(json_object_object_get_ex(labels, "code-interpreter/installer-of", &v));
	ck_assert_str_eq(json_object_get_string(v), "svc-0");
	ck_assert(!json_object_object_get_ex(labels, "code-interpreter/instance", NULL));
	ck_assert(json_object_object_get_ex(labels, "app.kubernetes.io/name", &v));
	ck_assert_str_eq(json_object_get_string(v), "code-interpreter-installer");
	ck_assert_int_eq(json_object_get_int(at(pod, "spec.activeDeadlineSeconds")), 200 + K8S_INSTALLER_GRACE_S);
	ck_assert(!json_object_get_boolean(at(pod, "spec.automountServiceAccountToken")));
	/* twice the packages' limit: a distribution too large still fits, for
	 * the fetch to say so */
	ck_assert_str_eq(at_str(pod, "spec.volumes.0.emptyDir.sizeLimit"), "600Mi");
	ck_assert_str_eq(at_str(pod, "spec.volumes.1.emptyDir.sizeLimit"), "600Mi");
	ck_assert_ptr_null(at(pod, "spec.volumes.2"));
	json_object *c = at(pod, "spec.containers.0");
	json_object *args = at(c, "args");
	for (size_t i = 0; i < json_object_array_length(args); i++)
		ck_assert_str_ne(json_object_get_string(json_object_array_get_idx(args, i)), "--packages");
	int token = 0, timeout = 0;
	json_object *envs = at(c, "env");
	for (size_t i = 0; i < json_object_array_length(envs); i++) {
		json_object *e = json_object_array_get_idx(envs, i);
		ck_assert_str_ne(at_str(e, "name"), "APP_EXECUTOR_PACKAGES_MB");
		if (strcmp(at_str(e, "name"), "EXECUTOR_TOKEN") == 0)
			token = strcmp(at_str(e, "value"), "0123abcd") == 0;
		if (strcmp(at_str(e, "name"), "APP_MAX_EXECUTION_TIMEOUT") == 0)
			timeout = strcmp(at_str(e, "value"), "200") == 0;
	}
	ck_assert(token && timeout);
	json_object_put(pod);
	config_release(&cfg);
}
END_TEST

/* What an installer pod lists is fetched only from under its target. */
START_TEST(installer_listing_checked)
{
	ck_assert_str_eq(pod_install_rel("/workspace/staging/six.py"), "six.py");
	ck_assert_str_eq(pod_install_rel("/workspace/staging/numpy/core/x.so"), "numpy/core/x.so");
	static const char *const bad[] = {
		"/workspace/staging", "/workspace/staging/", "/workspace/stagingx/a", "/workspace/a.py",
		"/workspace/staging/../a", "/workspace/staging/a/../../b", "/workspace/staging/./a",
		"/workspace/staging//a", "/etc/passwd", "staging/a", "", NULL,
	};
	for (size_t i = 0; bad[i]; i++)
		ck_assert_msg(pod_install_rel(bad[i]) == NULL, "%s taken", bad[i]);
	ck_assert_ptr_null(pod_install_rel(NULL));
}
END_TEST

START_TEST(pod_spec_has_the_packages_emptydir)
{
	struct config cfg;
	char *env[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_EXECUTOR_PACKAGES_MB=300", NULL};
	load(&cfg, env);
	char err[256];
	json_object *pod = k8s_pod_build(&cfg, "x-1", "svc-0", NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(pod);
	json_object *c = at(pod, "spec.containers.0");
	json_object *args = at(c, "args");
	size_t n = json_object_array_length(args);
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(args, n - 2)), "--packages");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(args, n - 1)),
			 "/opt/code-interpreter/packages");
	ck_assert_str_eq(at_str(c, "volumeMounts.2.name"), "packages");
	ck_assert_str_eq(at_str(c, "volumeMounts.2.mountPath"), "/opt/code-interpreter/packages");
	ck_assert_str_eq(at_str(pod, "spec.volumes.2.name"), "packages");
	ck_assert_str_eq(at_str(pod, "spec.volumes.2.emptyDir.sizeLimit"), "300Mi");
	int found = 0;
	json_object *envs = at(c, "env");
	for (size_t i = 0; i < json_object_array_length(envs); i++) {
		json_object *e = json_object_array_get_idx(envs, i);
		if (strcmp(at_str(e, "name"), "APP_EXECUTOR_PACKAGES_MB") == 0) {
			ck_assert_str_eq(at_str(e, "value"), "300");
			found = 1;
		}
	}
	ck_assert(found);
	json_object_put(pod);
	config_release(&cfg);

	char *off[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_PACKAGE_INSTALL=0", NULL};
	load(&cfg, off);
	pod = k8s_pod_build(&cfg, "x-1", "svc-0", NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(pod);
	ck_assert_ptr_null(at(pod, "spec.volumes.2"));
	ck_assert_ptr_null(at(pod, "spec.containers.0.volumeMounts.2"));
	args = at(pod, "spec.containers.0.args");
	for (size_t i = 0; i < json_object_array_length(args); i++)
		ck_assert_str_ne(json_object_get_string(json_object_array_get_idx(args, i)), "--packages");
	json_object_put(pod);
	config_release(&cfg);
}
END_TEST

START_TEST(pod_spec_takes_the_options)
{
	struct config cfg;
	char *env[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes",
		       (char *)"APP_EXECUTOR_RUNTIME_CLASS=gvisor",
		       (char *)"APP_EXECUTOR_CONTAINER_RESOURCES={\"limits\":{\"memory\":\"2Gi\"}}",
		       (char *)"APP_EXECUTOR_POD_SPEC_EXTRA={\"nodeSelector\":{\"pool\":\"sandbox\"},"
			       "\"enableServiceLinks\":null,\"securityContext\":{\"runAsUser\":2000}}",
		       (char *)"APP_EXECUTOR_POD_DEADLINE=900",
		       (char *)"APP_SANDBOX_WORKSPACE_MB=64",
		       (char *)"APP_KUBERNETES_POD_NAME=svc-0",
		       (char *)"APP_KUBERNETES_POD_UID=1234-abcd",
		       NULL};
	load(&cfg, env);
	char err[256];
	json_object *pod = k8s_pod_build(&cfg, "x-1", "svc-0", NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(pod);
	ck_assert_str_eq(at_str(pod, "spec.runtimeClassName"), "gvisor");
	ck_assert_str_eq(at_str(pod, "spec.containers.0.resources.limits.memory"), "2Gi");
	ck_assert_ptr_null(at(pod, "spec.containers.0.resources.requests"));
	ck_assert_str_eq(at_str(pod, "spec.nodeSelector.pool"), "sandbox");
	ck_assert_ptr_null(at(pod, "spec.enableServiceLinks"));
	ck_assert_int_eq(json_object_get_int(at(pod, "spec.securityContext.runAsUser")), 2000);
	ck_assert(json_object_get_boolean(at(pod, "spec.securityContext.runAsNonRoot"))); /* kept */
	ck_assert_int_eq(json_object_get_int(at(pod, "spec.activeDeadlineSeconds")), 900);
	ck_assert_str_eq(at_str(pod, "spec.volumes.0.emptyDir.sizeLimit"), "64Mi");
	ck_assert_str_eq(at_str(pod, "metadata.ownerReferences.0.kind"), "Pod");
	ck_assert_str_eq(at_str(pod, "metadata.ownerReferences.0.name"), "svc-0");
	ck_assert_str_eq(at_str(pod, "metadata.ownerReferences.0.uid"), "1234-abcd");
	json_object_put(pod);
	config_release(&cfg);
}
END_TEST

/* The values of every env entry named name in the executor container, joined by ",". */
static void token_env(json_object *pod, char *out, size_t cap)
{
	out[0] = '\0';
	json_object *envs = at(pod, "spec.containers.0.env");
	for (size_t i = 0; envs && i < json_object_array_length(envs); i++) {
		json_object *e = json_object_array_get_idx(envs, i);
		if (strcmp(at_str(e, "name"), EXECUTOR_TOKEN_ENV) == 0)
			snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "," : "", at_str(e, "value"));
	}
}

START_TEST(pod_spec_carries_the_token)
{
	struct config cfg;
	char err[256], got[256];
	char *env[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes", NULL};
	load(&cfg, env);
	json_object *pod = k8s_pod_build(&cfg, "x-1", "svc-0", "0123abcd", err, sizeof(err));
	ck_assert_ptr_nonnull(pod);
	token_env(pod, got, sizeof(got));
	ck_assert_str_eq(got, "0123abcd");
	/* the probe stays on the open /healthz, with no header */
	ck_assert_str_eq(at_str(pod, "spec.containers.0.readinessProbe.httpGet.path"), "/healthz");
	ck_assert_ptr_null(at(pod, "spec.containers.0.readinessProbe.httpGet.httpHeaders"));
	json_object_put(pod);
	pod = k8s_pod_build(&cfg, "x-1", "svc-0", NULL, err, sizeof(err));
	token_env(pod, got, sizeof(got));
	ck_assert_str_eq(got, "");
	json_object_put(pod);
	config_release(&cfg);

	/* an extra that replaces the containers can neither drop nor set it */
	char *extra[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes",
			 (char *)"APP_EXECUTOR_POD_SPEC_EXTRA={\"containers\":[{\"name\":\"executor\",\"image\":\"i\","
				 "\"env\":[{\"name\":\"EXECUTOR_TOKEN\",\"value\":\"mine\"},{\"name\":\"A\",\"value\":\"b\"}]}]}",
			 NULL};
	load(&cfg, extra);
	pod = k8s_pod_build(&cfg, "x-1", "svc-0", "0123abcd", err, sizeof(err));
	ck_assert_ptr_nonnull(pod);
	token_env(pod, got, sizeof(got));
	ck_assert_str_eq(got, "0123abcd");
	ck_assert_str_eq(at_str(pod, "spec.containers.0.env.0.name"), "A");
	json_object_put(pod);
	config_release(&cfg);
	char *no_env[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes",
			  (char *)"APP_EXECUTOR_POD_SPEC_EXTRA={\"containers\":[{\"name\":\"executor\",\"image\":\"i\"}]}",
			  NULL};
	load(&cfg, no_env);
	pod = k8s_pod_build(&cfg, "x-1", "svc-0", "0123abcd", err, sizeof(err));
	token_env(pod, got, sizeof(got));
	ck_assert_str_eq(got, "0123abcd");
	json_object_put(pod);
	config_release(&cfg);
	char *renamed[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes",
			   (char *)"APP_EXECUTOR_POD_SPEC_EXTRA={\"containers\":[{\"name\":\"other\",\"image\":\"i\"}]}",
			   NULL};
	load(&cfg, renamed);
	ck_assert_ptr_null(k8s_pod_build(&cfg, "x-1", "svc-0", "0123abcd", err, sizeof(err)));
	ck_assert_msg(strstr(err, "no container named executor"), "%s", err);
	config_release(&cfg);
}
END_TEST

START_TEST(config_checks_the_kubernetes_options)
{
	struct config cfg;
	char err[256];
	char *ok[] = {(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_EXECUTOR_POD_QUEUE_TARGET_LENGTH=7",
		      (char *)"APP_EXECUTOR_POOL_SIZE=2", NULL};
	load(&cfg, ok);
	ck_assert_int_eq(cfg.pool_size, 7); /* the queue target is the pool size there */
	config_release(&cfg);
	char *local[] = {(char *)"APP_EXECUTOR_POD_SPEC_EXTRA=not json", NULL};
	load(&cfg, local); /* only checked for the kubernetes backend */
	ck_assert_int_eq(cfg.pool_size, 4);
	config_release(&cfg);
	char *bad[][3] = {
		{(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_EXECUTOR_POD_SPEC_EXTRA=[1]", NULL},
		{(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_EXECUTOR_CONTAINER_RESOURCES={", NULL},
		{(char *)"APP_EXECUTOR_BACKEND=kubernetes", (char *)"APP_EXECUTOR_POD_QUEUE_TARGET_LENGTH=-1", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_int_eq(config_load(&cfg, bad[i], err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, "APP_EXECUTOR_"), "%s", err);
	}
}
END_TEST

START_TEST(instance_name_is_a_valid_label_value)
{
	struct config cfg;
	char out[64];
	char *env1[] = {(char *)"APP_KUBERNETES_INSTANCE=_My Service/ä!_", NULL};
	load(&cfg, env1);
	k8s_instance_name(&cfg, out, sizeof(out));
	ck_assert_str_eq(out, "My-Service"); /* alphanumeric at both ends */
	config_release(&cfg);
}
END_TEST

START_TEST(instance_name_rules)
{
	struct config cfg;
	char out[64];
	char *env1[] = {(char *)"APP_KUBERNETES_POD_NAME=code-interpreter-7d9f-x2", NULL};
	load(&cfg, env1);
	k8s_instance_name(&cfg, out, sizeof(out));
	ck_assert_str_eq(out, "code-interpreter-7d9f-x2");
	config_release(&cfg);
	char *env2[] = {(char *)"APP_KUBERNETES_INSTANCE=-a.b_c-", NULL};
	load(&cfg, env2);
	k8s_instance_name(&cfg, out, sizeof(out));
	ck_assert_str_eq(out, "a.b_c");
	config_release(&cfg);
	char *env3[] = {(char *)"APP_KUBERNETES_INSTANCE=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL};
	load(&cfg, env3);
	k8s_instance_name(&cfg, out, sizeof(out));
	ck_assert_uint_eq(strlen(out), 63);
	config_release(&cfg);
	char *env4[] = {NULL};
	load(&cfg, env4);
	k8s_instance_name(&cfg, out, sizeof(out));
	ck_assert(strlen(out) > 0); /* the host name */
	char *sel = k8s_pool_selector("abc");
	ck_assert_str_eq(sel, "app.kubernetes.io/managed-by=code-interpreter,code-interpreter/instance=abc");
	free(sel);
	config_release(&cfg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("k8s");
	TCase *t = tcase_create("k8s");
	tcase_add_test(t, status_object_is_parsed);
	tcase_add_test(t, plain_text_error_keeps_its_first_line);
	tcase_add_test(t, http_status_maps_to_result);
	tcase_add_test(t, retry_after_seconds_and_dates);
	tcase_add_test(t, backoff_is_bounded);
	tcase_add_test(t, classify_ready_needs_running_ready_and_ip);
	tcase_add_test(t, classify_doomed_pods_name_the_reason);
	tcase_add_test(t, merge_patch_follows_rfc7386);
	tcase_add_test(t, pod_spec_defaults_are_restricted);
	tcase_add_test(t, pod_spec_takes_the_options);
	tcase_add_test(t, pod_spec_has_the_packages_emptydir);
	tcase_add_test(t, installer_pod_spec);
	tcase_add_test(t, installer_listing_checked);
	tcase_add_test(t, pod_spec_carries_the_token);
	tcase_add_test(t, config_checks_the_kubernetes_options);
	tcase_add_test(t, instance_name_is_a_valid_label_value);
	tcase_add_test(t, instance_name_rules);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
