/* validate: the field rules that the service (fcgi-app/request.c) and the
 * executor server (executor/server.c, workspace.c) both apply, defined once:
 * workspace paths, object ids, environment variable names. Pure functions on
 * bytes: never allocates, never touches the file system. */
#ifndef VALIDATE_H
#define VALIDATE_H

#include <stddef.h>

#define VALID_WORKSPACE_PREFIX "/workspace/"
/* The longest absolute workspace path, "/workspace/" included, and so the
 * longest relative one (the executor's form, without the prefix). */
#define VALID_PATH_MAX 4096
#define VALID_REL_MAX (VALID_PATH_MAX - (sizeof(VALID_WORKSPACE_PREFIX) - 1))
#define VALID_COMPONENT_MAX 255
#define VALID_OBJECT_ID_MAX 255
#define VALID_ENV_NAME_MAX 255

/* The absolute path rule of DESIGN §1: ^/[^/].*$, inside /workspace/, at most
 * VALID_PATH_MAX bytes. The part after the prefix must pass valid_workspace_rel.
 * Returns NULL when valid, else a static message. */
const char *valid_workspace_path(const char *path, size_t len);

/* The same path without its "/workspace/" prefix (as the executor's URLs carry
 * it): non-empty components separated by single '/', none "." or "..", no NUL,
 * components of at most VALID_COMPONENT_MAX bytes, at most VALID_REL_MAX bytes
 * in all. Returns NULL
 * when valid, else a static message. */
const char *valid_workspace_rel(const char *rel, size_t len);

/* The object id rule ^[0-9a-zA-Z_-]{1,255}$. True when id (len bytes) matches. */
int valid_object_id(const char *id, size_t len);

/* The env name rule: [A-Za-z_][A-Za-z0-9_]*, at most VALID_ENV_NAME_MAX bytes,
 * and not LD_* (the loader) or PYTHON* (the interpreter's start-up). Returns
 * NULL when valid, else a static message (a sentence, no prefix). */
const char *valid_env_name(const char *name, size_t len);

#endif
