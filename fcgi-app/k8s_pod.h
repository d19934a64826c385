/* k8s_pod: what an executor pod is: the pod object built from the configuration
 * (restricted-profile defaults, labels carrying the instance identity) and what
 * a pod's status means for the pool (ready, still coming, or never). Pure
 * functions over json-c objects; never talks to the API server. */
#ifndef K8S_POD_H
#define K8S_POD_H

#include <stddef.h>
#include <json-c/json.h>

#include "bearer.h"
#include "config.h"

#define K8S_EXECUTOR_PORT 8000
/* executor/python in the executor image; the same path as in a local sandbox,
 * which custom tools rely on */
#define K8S_RUNNER_DIR "/opt/code-interpreter/python"
/* the packages emptyDir, where the runner looks for a run's package
 * directories (SBX_INSIDE_PACKAGES, runner.py): `executor serve --packages` */
#define K8S_PACKAGES_DIR "/opt/code-interpreter/packages"
#define K8S_LABEL_MANAGED "app.kubernetes.io/managed-by"
#define K8S_LABEL_INSTANCE "code-interpreter/instance"
/* An installer pod's: the instance that made it (never K8S_LABEL_INSTANCE, so
 * the pool's selector never takes an installer for a run's pod). */
#define K8S_LABEL_INSTALLER_OF "code-interpreter/installer-of"
/* app.kubernetes.io/name of an installer pod, which k8s/networkpolicy.yaml
 * lets reach the package index */
#define K8S_INSTALLER_NAME "code-interpreter-installer"
/* an installer pod lives at most APP_PACKAGE_INSTALL_TIMEOUT and this */
#define K8S_INSTALLER_GRACE_S 60
/* an installer's workspace and /tmp: twice APP_EXECUTOR_PACKAGES_MB each */
#define K8S_INSTALLER_ROOM(cfg) (2 * (cfg)->executor_packages_bytes)
/* an installer's APP_MAX_OUTPUT_BYTES: pip's output, kept per stream */
#define K8S_INSTALLER_OUTPUT_BYTES ((uint64_t)256 << 10)

/* The instance identity label value: cfg->k8s_instance, else the service's pod
 * name, else the host name; cut down to a valid label value (<= 63 bytes of
 * [A-Za-z0-9._-], alphanumeric at both ends). Writes into out. */
void k8s_instance_name(const struct config *cfg, char *out, size_t cap);
/* "managed-by=code-interpreter,instance=<instance>": the pool's pods. Caller frees. */
char *k8s_pool_selector(const char *instance);
/* "managed-by=code-interpreter,installer-of=<instance>": its installer pods. */
char *k8s_installer_selector(const char *instance);

/* Builds the pod named name for this instance. token (NULL: none) becomes
 * EXECUTOR_TOKEN_ENV (bearer.h) in the executor container's env, set after
 * APP_EXECUTOR_POD_SPEC_EXTRA is merged so that the extra cannot drop or
 * replace it. NULL with a reason in err when the configured JSON (resources,
 * spec extra) is not an object, or when the extra left no container named
 * executor. Caller puts it. */
json_object *k8s_pod_build(const struct config *cfg, const char *name, const char *instance, const char *token,
			   char *err, size_t errlen);
/* The same for an installer pod (pod_install.h): labelled K8S_LABEL_INSTALLER_OF
 * instance and K8S_INSTALLER_NAME, no packages emptyDir, a workspace and /tmp
 * of K8S_INSTALLER_ROOM each, runs of up to APP_PACKAGE_INSTALL_TIMEOUT,
 * activeDeadlineSeconds that plus K8S_INSTALLER_GRACE_S. */
json_object *k8s_installer_pod_build(const struct config *cfg, const char *name, const char *instance,
				     const char *token, char *err, size_t errlen);
/* JSON merge patch (RFC 7386) of patch into target: objects merge key by key,
 * null removes a key, anything else replaces. patch is borrowed. */
void k8s_json_merge(json_object *target, json_object *patch);

enum k8s_pod_state {
	K8S_POD_PENDING, /* not ready yet, may still become ready */
	K8S_POD_READY,   /* Running, Ready condition True, podIP an IP literal */
	K8S_POD_DOOMED,  /* will never be ready: delete and replace it */
};
/* Classifies a pod object. why (may be NULL) gets the reason for DOOMED (e.g.
 * "ImagePullBackOff"); ip (may be NULL) the podIP for READY. */
enum k8s_pod_state k8s_pod_classify(json_object *pod, char *why, size_t why_cap, char *ip, size_t ip_cap);

/* Convenience getters: the string at a path of keys, or NULL. Borrowed. */
const char *k8s_get_str(json_object *o, const char *k1, const char *k2);

#endif
