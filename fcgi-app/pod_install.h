/* pod_install: an install on the fly on the kubernetes backend, in a pod of its
 * own. The service's pod has neither pip nor what an install sandbox needs,
 * and must never run pip with its own network and credentials; so each
 * install gets an installer pod (k8s_installer_pod_build): the executor image
 * under the restricted spec of a run's pod, no service account token, its own
 * pod token, and a NetworkPolicy that lets it reach the package index and
 * nothing else (k8s/networkpolicy.yaml). pip runs there as a run's code would
 * (pip_command.h: wheels only, --target the pod's workspace); the files it
 * wrote are then fetched into the staging directory here, each path checked,
 * each created new (no symlink is ever made or followed), their modification
 * times kept, their sizes together at most APP_EXECUTOR_PACKAGES_MB. The pod
 * is deleted whatever happened. Runs where `executor install` would: in the
 * root helper's child (package_install.c). */
#ifndef POD_INSTALL_H
#define POD_INSTALL_H

#include <stdint.h>

#include "config.h"

/* Where pip installs inside an installer pod. */
#define POD_INSTALL_TARGET "/workspace/staging"

/* Installs requirement (valid per pkg_spec_valid) into staging, an empty
 * directory the caller made, within timeout_ms; *output gets pip's output
 * (stdout then stderr) or why the pod could not do it (caller frees). pip's
 * exit status, 124 when its time passed, or -1 when the pod could not be made
 * or the files not fetched (logged). */
int pod_install_run(const struct config *cfg, const char *staging, const char *requirement, int64_t timeout_ms,
		    char **output);

/* Tests: the path inside staging of a file the installer pod listed
 * ("/workspace/staging/<rel>", valid per valid_workspace_path), or NULL. */
const char *pod_install_rel(const char *listed);

#endif
