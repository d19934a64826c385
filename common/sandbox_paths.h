/* sandbox_paths: where a local sandbox lives on the host, shared by the service
 * (pool manager, workers) and the executor's launcher. Pure string functions:
 * never touches the file system. Declared here, not in executor/sandbox.h, so
 * that the service links them from libcommon without the executor's libraries. */
#ifndef SANDBOX_PATHS_H
#define SANDBOX_PATHS_H

#include <stddef.h>

#include "config.h"

/* Host uids of its own for each live sandbox, so that no per-user kernel
 * account (pipe buffers, file descriptors in flight, inotify, process counts)
 * is shared between sandboxes: sandbox root maps to cfg->sandbox_uid_base +
 * slot * SBX_UID_STRIDE and the sandbox user to that + 1000, for a slot in
 * [0, SBX_UID_SLOTS) that no other live sandbox or install holds. */
#define SBX_UID_STRIDE 2000
#define SBX_UID_SLOTS 1024
/* Whether uid is the host uid that some slot's sandbox root maps to. */
int sbx_root_uid_valid(const struct config *cfg, long uid);

/* True when id is a valid sandbox id: [0-9a-zA-Z_-]{1,64}. */
int sbx_id_valid(const char *id);

/* Writes cfg->run_dir "/sandboxes" (where every sandbox's directory is) into
 * out. 0, or -1 when it does not fit. */
int sbx_parent_dir(const struct config *cfg, char *out, size_t cap);

/* Host paths of one sandbox, all under cfg->run_dir/sandboxes/ID. */
/* Writes cfg->run_dir "/sandboxes/" id into out. 0, or -1 when it does not fit
 * or id is not valid. */
int sbx_dir(const struct config *cfg, const char *id, char *out, size_t cap);
/* Writes the host path of the sandbox's executor socket
 * (cfg->run_dir "/sandboxes/" id "/sock/executor.sock") into out. 0, or -1 when
 * it does not fit or id is not valid. Note that a unix socket path must also
 * fit sockaddr_un.sun_path (108 bytes): the launcher refuses longer ones. */
int sbx_socket_path(const struct config *cfg, const char *id, char *out, size_t cap);

#endif
