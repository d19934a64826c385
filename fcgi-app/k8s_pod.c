/* k8s_pod: see k8s_pod.h. The pod spec below is the restricted Pod Security
 * profile plus what the executor needs: a writable /workspace and /tmp, with
 * installs on the fly a packages emptyDir the service fills before the run,
 * port 8000, and the limits of the service's configuration and the pod's
 * token in its environment. The readiness probe's /healthz is the one route the
 * executor answers without the token (it tells only whether it is ready). */
#include "k8s_pod.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static int label_char(int c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.';
}

void k8s_instance_name(const struct config *cfg, char *out, size_t cap)
{
	char host[256] = "";
	const char *src = cfg->k8s_instance[0] ? cfg->k8s_instance : cfg->k8s_pod_name;
	if (!src[0]) {
		if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
			snprintf(host, sizeof(host), "code-interpreter");
		src = host;
	}
	size_t o = 0, max = cap - 1 < 63 ? cap - 1 : 63;
	for (const char *p = src; *p && o < max; p++)
		out[o++] = label_char((unsigned char)*p) ? *p : '-';
	while (o > 0 && !isalnum((unsigned char)out[o - 1]))
		o--;
	out[o] = '\0';
	size_t skip = 0;
	while (out[skip] && !isalnum((unsigned char)out[skip]))
		skip++;
	memmove(out, out + skip, o - skip + 1);
	if (!out[0])
		snprintf(out, cap, "code-interpreter");
}

char *k8s_pool_selector(const char *instance)
{
	return xasprintf(K8S_LABEL_MANAGED "=code-interpreter," K8S_LABEL_INSTANCE "=%s", instance);
}

char *k8s_installer_selector(const char *instance)
{
	return xasprintf(K8S_LABEL_MANAGED "=code-interpreter," K8S_LABEL_INSTALLER_OF "=%s", instance);
}

void k8s_json_merge(json_object *target, json_object *patch)
{
	json_object_object_foreach(patch, key, val) {
		json_object *cur = NULL;
		int have = json_object_object_get_ex(target, key, &cur);
		if (!val) {
			json_object_object_del(target, key);
		} else if (json_object_is_type(val, json_type_object) && have &&
			   json_object_is_type(cur, json_type_object)) {
			k8s_json_merge(cur, val);
		} else if (json_object_is_type(val, json_type_object)) {
			/* a new object: merged into an empty one so nulls inside vanish */
			json_object *fresh = json_object_new_object();
			k8s_json_merge(fresh, val);
			json_object_object_add(target, key, fresh);
		} else {
			json_object_object_add(target, key, json_object_get(val));
		}
	}
}

static json_object *str(const char *s)
{
	return json_object_new_string(s);
}

static void add_env(json_object *env, const char *name, const char *value)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "name", str(name));
	json_object_object_add(e, "value", str(value));
	json_object_array_add(env, e);
}

static void add_env_num(json_object *env, const char *name, unsigned long long v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", v);
	add_env(env, name, buf);
}

static void add_env_double(json_object *env, const char *name, double v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%g", v);
	add_env(env, name, buf);
}

/* The service's limits, so the executor in the pod enforces the same ones; an
 * installer's run (pip) may take the installs' whole time. */
static json_object *container_env(const struct config *cfg, int install)
{
	json_object *env = json_object_new_array();
	add_env_double(env, "APP_EXECUTION_TIMEOUT", cfg->execution_timeout);
	add_env_double(env, "APP_MAX_EXECUTION_TIMEOUT",
		       install && cfg->package_install_timeout > cfg->max_execution_timeout
			       ? cfg->package_install_timeout : cfg->max_execution_timeout);
	add_env_num(env, "APP_MAX_OUTPUT_BYTES", install ? K8S_INSTALLER_OUTPUT_BYTES : cfg->max_output_bytes);
	add_env_num(env, "APP_MAX_REQUEST_BYTES", cfg->max_request_bytes);
	add_env_num(env, "APP_MAX_INPUT_FILES", (unsigned long long)cfg->max_input_files);
	add_env(env, "APP_PRELOAD_MODULES", cfg->preload_modules);
	add_env_num(env, "APP_SANDBOX_MEMORY_MB", cfg->sandbox_memory_bytes >> 20);
	add_env_num(env, "APP_SANDBOX_PIDS", (unsigned long long)cfg->sandbox_pids);
	add_env_num(env, "APP_SANDBOX_FILE_MB", cfg->sandbox_file_bytes >> 20);
	add_env_num(env, "APP_SANDBOX_OPEN_FILES", (unsigned long long)cfg->sandbox_open_files);
	add_env_num(env, "APP_SANDBOX_CPU_SECONDS", (unsigned long long)cfg->sandbox_cpu_seconds);
	add_env(env, "APP_LOG_LEVEL", cfg->log_level);
	if (cfg->package_install && !install)
		add_env_num(env, "APP_EXECUTOR_PACKAGES_MB", cfg->executor_packages_bytes >> 20);
	return env;
}

static json_object *empty_dir(const char *name, uint64_t bytes)
{
	char size[32];
	snprintf(size, sizeof(size), "%lluMi", (unsigned long long)(bytes >> 20));
	json_object *v = json_object_new_object();
	json_object *d = json_object_new_object();
	json_object_object_add(d, "sizeLimit", str(size));
	json_object_object_add(v, "name", str(name));
	json_object_object_add(v, "emptyDir", d);
	return v;
}

static json_object *mount(const char *name, const char *path)
{
	json_object *m = json_object_new_object();
	json_object_object_add(m, "name", str(name));
	json_object_object_add(m, "mountPath", str(path));
	return m;
}

static json_object *container(const struct config *cfg, json_object *resources, int install)
{
	int packages = cfg->package_install && !install;
	json_object *c = json_object_new_object();
	json_object_object_add(c, "name", str("executor"));
	json_object_object_add(c, "image", str(cfg->executor_image));
	json_object_object_add(c, "imagePullPolicy", str("IfNotPresent"));
	json_object *args = json_object_new_array();
	const char *a[] = {"serve", "--port", "8000", "--lockdown", "process", "--workspace", "/workspace",
			   "--runner-dir", K8S_RUNNER_DIR};
	for (size_t i = 0; i < sizeof(a) / sizeof(*a); i++)
		json_object_array_add(args, str(a[i]));
	if (packages) {
		json_object_array_add(args, str("--packages"));
		json_object_array_add(args, str(K8S_PACKAGES_DIR));
	}
	json_object_object_add(c, "args", args);
	json_object *ports = json_object_new_array();
	json_object *p = json_object_new_object();
	json_object_object_add(p, "name", str("http"));
	json_object_object_add(p, "containerPort", json_object_new_int(K8S_EXECUTOR_PORT));
	json_object_object_add(p, "protocol", str("TCP"));
	json_object_array_add(ports, p);
	json_object_object_add(c, "ports", ports);
	json_object_object_add(c, "env", container_env(cfg, install));
	json_object_object_add(c, "resources", resources);

	json_object *probe = json_object_new_object();
	json_object *get = json_object_new_object();
	json_object_object_add(get, "path", str("/healthz"));
	json_object_object_add(get, "port", json_object_new_int(K8S_EXECUTOR_PORT));
	json_object_object_add(probe, "httpGet", get);
	json_object_object_add(probe, "periodSeconds", json_object_new_int(1));
	json_object_object_add(probe, "timeoutSeconds", json_object_new_int(1));
	json_object_object_add(probe, "failureThreshold", json_object_new_int(3));
	json_object_object_add(c, "readinessProbe", probe);

	json_object *sc = json_object_new_object();
	json_object_object_add(sc, "allowPrivilegeEscalation", json_object_new_boolean(0));
	json_object_object_add(sc, "privileged", json_object_new_boolean(0));
	json_object_object_add(sc, "readOnlyRootFilesystem", json_object_new_boolean(1));
	json_object_object_add(sc, "runAsNonRoot", json_object_new_boolean(1));
	json_object *caps = json_object_new_object();
	json_object *drop = json_object_new_array();
	json_object_array_add(drop, str("ALL"));
	json_object_object_add(caps, "drop", drop);
	json_object_object_add(sc, "capabilities", caps);
	json_object_object_add(c, "securityContext", sc);

	json_object *mounts = json_object_new_array();
	json_object_array_add(mounts, mount("workspace", "/workspace"));
	json_object_array_add(mounts, mount("tmp", "/tmp"));
	if (packages)
		json_object_array_add(mounts, mount("packages", K8S_PACKAGES_DIR));
	json_object_object_add(c, "volumeMounts", mounts);
	return c;
}

static json_object *metadata(const struct config *cfg, const char *name, const char *instance, int install)
{
	json_object *md = json_object_new_object();
	json_object_object_add(md, "name", str(name));
	json_object *labels = json_object_new_object();
	json_object_object_add(labels, "app.kubernetes.io/name",
			       str(install ? K8S_INSTALLER_NAME : "code-interpreter-executor"));
	json_object_object_add(labels, "app.kubernetes.io/component", str(install ? "installer" : "executor"));
	json_object_object_add(labels, K8S_LABEL_MANAGED, str("code-interpreter"));
	json_object_object_add(labels, install ? K8S_LABEL_INSTALLER_OF : K8S_LABEL_INSTANCE, str(instance));
	json_object_object_add(md, "labels", labels);
	if (cfg->k8s_pod_name[0] && cfg->k8s_pod_uid[0]) {
		/* deleted with the service's pod by the garbage collector */
		json_object *refs = json_object_new_array();
		json_object *ref = json_object_new_object();
		json_object_object_add(ref, "apiVersion", str("v1"));
		json_object_object_add(ref, "kind", str("Pod"));
		json_object_object_add(ref, "name", str(cfg->k8s_pod_name));
		json_object_object_add(ref, "uid", str(cfg->k8s_pod_uid));
		json_object_array_add(refs, ref);
		json_object_object_add(md, "ownerReferences", refs);
	}
	return md;
}

/* Sets name=value in the env of the container named executor, replacing any
 * entry of that name. 0, or -1 when there is no such container. */
static int set_container_env(json_object *spec, const char *name, const char *value)
{
	json_object *cs, *env;
	if (!json_object_object_get_ex(spec, "containers", &cs) || !json_object_is_type(cs, json_type_array))
		return -1;
	for (size_t i = 0; i < json_object_array_length(cs); i++) {
		json_object *c = json_object_array_get_idx(cs, i);
		const char *cname = k8s_get_str(c, "name", NULL);
		if (!cname || strcmp(cname, "executor") != 0)
			continue;
		if (!json_object_object_get_ex(c, "env", &env) || !json_object_is_type(env, json_type_array)) {
			env = json_object_new_array();
			json_object_object_add(c, "env", env);
		}
		for (size_t j = json_object_array_length(env); j-- > 0;) {
			const char *n = k8s_get_str(json_object_array_get_idx(env, j), "name", NULL);
			if (n && strcmp(n, name) == 0)
				json_object_array_del_idx(env, j, 1);
		}
		add_env(env, name, value);
		return 0;
	}
	return -1;
}

static json_object *pod_build(const struct config *cfg, const char *name, const char *instance, const char *token,
			      int install, char *err, size_t errlen)
{
	json_object *resources = json_tokener_parse(cfg->executor_resources);
	json_object *extra = json_tokener_parse(cfg->pod_spec_extra);
	json_object *pod = NULL;
	if (!resources || !json_object_is_type(resources, json_type_object)) {
		snprintf(err, errlen, "APP_EXECUTOR_CONTAINER_RESOURCES: expected a JSON object");
		goto out;
	}
	if (!extra || !json_object_is_type(extra, json_type_object)) {
		snprintf(err, errlen, "APP_EXECUTOR_POD_SPEC_EXTRA: expected a JSON object");
		goto out;
	}
	pod = json_object_new_object();
	json_object_object_add(pod, "apiVersion", str("v1"));
	json_object_object_add(pod, "kind", str("Pod"));
	json_object_object_add(pod, "metadata", metadata(cfg, name, instance, install));

	json_object *spec = json_object_new_object();
	json_object_object_add(spec, "restartPolicy", str("Never"));
	json_object_object_add(spec, "automountServiceAccountToken", json_object_new_boolean(0));
	json_object_object_add(spec, "enableServiceLinks", json_object_new_boolean(0));
	json_object_object_add(spec, "activeDeadlineSeconds",
			       json_object_new_int(install ? (int)cfg->package_install_timeout + K8S_INSTALLER_GRACE_S
							   : cfg->pod_deadline));
	json_object_object_add(spec, "terminationGracePeriodSeconds", json_object_new_int(1));
	if (cfg->runtime_class[0])
		json_object_object_add(spec, "runtimeClassName", str(cfg->runtime_class));
	json_object *psc = json_object_new_object();
	json_object_object_add(psc, "runAsNonRoot", json_object_new_boolean(1));
	json_object_object_add(psc, "runAsUser", json_object_new_int(1000));
	json_object_object_add(psc, "runAsGroup", json_object_new_int(1000));
	json_object_object_add(psc, "fsGroup", json_object_new_int(1000));
	json_object *seccomp = json_object_new_object();
	json_object_object_add(seccomp, "type", str("RuntimeDefault"));
	json_object_object_add(psc, "seccompProfile", seccomp);
	json_object_object_add(spec, "securityContext", psc);
	json_object *containers = json_object_new_array();
	json_object_array_add(containers, container(cfg, json_object_get(resources), install));
	json_object_object_add(spec, "containers", containers);
	json_object *vols = json_object_new_array();
	/* an installer's workspace and /tmp (pip's download, its build and the
	 * target's copy before the move) take twice what a run's packages may
	 * take in all: a distribution larger than that limit still fits, so the
	 * fetch finds it too large and says so (rather than pip's ENOSPC) */
	json_object_array_add(vols, empty_dir("workspace", install ? K8S_INSTALLER_ROOM(cfg)
								   : cfg->sandbox_workspace_bytes));
	json_object_array_add(vols, empty_dir("tmp", install ? K8S_INSTALLER_ROOM(cfg) : cfg->sandbox_tmp_bytes));
	if (cfg->package_install && !install)
		json_object_array_add(vols, empty_dir("packages", cfg->executor_packages_bytes));
	json_object_object_add(spec, "volumes", vols);
	k8s_json_merge(spec, extra);
	json_object_object_add(pod, "spec", spec);
	if (token && set_container_env(spec, EXECUTOR_TOKEN_ENV, token) < 0) {
		snprintf(err, errlen, "APP_EXECUTOR_POD_SPEC_EXTRA: the pod has no container named executor");
		json_object_put(pod);
		pod = NULL;
	}
out:
	json_object_put(resources);
	json_object_put(extra);
	return pod;
}

json_object *k8s_pod_build(const struct config *cfg, const char *name, const char *instance, const char *token,
			   char *err, size_t errlen)
{
	return pod_build(cfg, name, instance, token, 0, err, errlen);
}

json_object *k8s_installer_pod_build(const struct config *cfg, const char *name, const char *instance,
				     const char *token, char *err, size_t errlen)
{
	return pod_build(cfg, name, instance, token, 1, err, errlen);
}

const char *k8s_get_str(json_object *o, const char *k1, const char *k2)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, k1, &v))
		return NULL;
	if (k2 && !json_object_object_get_ex(v, k2, &v))
		return NULL;
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static enum k8s_pod_state doomed(char *why, size_t cap, const char *reason)
{
	if (why)
		snprintf(why, cap, "%s", reason);
	return K8S_POD_DOOMED;
}

/* Waiting reasons after which a container will not start by itself. */
static int fatal_waiting(const char *r)
{
	static const char *const bad[] = {"ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff",
					  "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError",
					  "CreateContainerError", "RunContainerError", NULL};
	for (size_t i = 0; bad[i]; i++)
		if (strcmp(r, bad[i]) == 0)
			return 1;
	return 0;
}

enum k8s_pod_state k8s_pod_classify(json_object *pod, char *why, size_t why_cap, char *ip, size_t ip_cap)
{
	json_object *status = NULL, *v;
	if (why && why_cap)
		why[0] = '\0';
	if (ip && ip_cap)
		ip[0] = '\0';
	if (k8s_get_str(pod, "metadata", "deletionTimestamp"))
		return doomed(why, why_cap, "being deleted");
	if (!json_object_object_get_ex(pod, "status", &status))
		return K8S_POD_PENDING;
	const char *phase = k8s_get_str(pod, "status", "phase");
	const char *reason = k8s_get_str(pod, "status", "reason");
	if (phase && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Succeeded") == 0))
		return doomed(why, why_cap, reason ? reason : phase);
	if (reason && (strcmp(reason, "Evicted") == 0 || strcmp(reason, "DeadlineExceeded") == 0))
		return doomed(why, why_cap, reason);
	int ready = 0;
	if (json_object_object_get_ex(status, "conditions", &v) && json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *c = json_object_array_get_idx(v, i);
			const char *type = k8s_get_str(c, "type", NULL);
			const char *st = k8s_get_str(c, "status", NULL);
			const char *r = k8s_get_str(c, "reason", NULL);
			if (!type || !st)
				continue;
			if (strcmp(type, "PodScheduled") == 0 && strcmp(st, "False") == 0 && r &&
			    strcmp(r, "Unschedulable") == 0)
				return doomed(why, why_cap, "Unschedulable");
			if (strcmp(type, "Ready") == 0 && strcmp(st, "True") == 0)
				ready = 1;
		}
	}
	if (json_object_object_get_ex(status, "containerStatuses", &v) && json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *cs = json_object_array_get_idx(v, i), *state;
			if (!json_object_object_get_ex(cs, "state", &state))
				continue;
			const char *w = k8s_get_str(state, "waiting", "reason");
			if (w && fatal_waiting(w))
				return doomed(why, why_cap, w);
			json_object *term;
			if (json_object_object_get_ex(state, "terminated", &term)) {
				const char *r = k8s_get_str(term, "reason", NULL);
				return doomed(why, why_cap, r ? r : "container terminated");
			}
		}
	}
	/* the address goes into the executor's URL: an IP literal, nothing else */
	const char *pod_ip = k8s_get_str(pod, "status", "podIP");
	unsigned char addr[sizeof(struct in6_addr)];
	int ip_ok = pod_ip && (inet_pton(AF_INET, pod_ip, addr) == 1 || inet_pton(AF_INET6, pod_ip, addr) == 1);
	if (phase && strcmp(phase, "Running") == 0 && ready && ip_ok) {
		if (ip)
			snprintf(ip, ip_cap, "%s", pod_ip);
		return K8S_POD_READY;
	}
	return K8S_POD_PENDING;
}
