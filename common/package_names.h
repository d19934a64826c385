/* package_names: the rules for the names of packages installed on the fly,
 * shared by the service (fcgi-app/packages.c), the installer (executor install)
 * and the executor server (the directories a run may put on sys.path). Pure
 * string functions: never touches the file system. */
#ifndef PACKAGE_NAMES_H
#define PACKAGE_NAMES_H

#include <stddef.h>

/* Longest distribution or module name accepted. */
#define PKG_NAME_MAX 100
/* Longest name of a directory under the cache's dists/. */
#define PKG_DIR_NAME_MAX 200
#define PKG_METADATA_MAX 255 /* longest name of a *.dist-info directory */
/* Most cached distributions one run may have on sys.path. */
#define PKG_MAX_PER_RUN 16

/* The length of the distribution name that starts spec (what precedes its
 * extras or version specifiers). */
size_t pkg_name_len(const char *spec);
/* True when spec is a requirement handed to pip: NAME[extras][specifiers],
 * no URL, path, option or marker. */
int pkg_spec_valid(const char *spec);
/* Writes the normalized distribution name of spec (lowercase, runs of -_. as
 * one '-') into out. 0, or -1 when it does not fit or there is no name. */
int pkg_normalize(const char *spec, char *out, size_t cap);
/* What kind of requirement a valid spec is: "latest" (a bare name), "pin"
 * (NAME==VERSION, the version then into pin; "" otherwise) or "requirement"
 * (extras, ranges). The cache serves each kind by its own rule. */
const char *pkg_spec_kind(const char *spec, char *pin, size_t cap);
/* True when name is a valid top-level module name: [A-Za-z_][A-Za-z0-9_]*, at
 * most PKG_NAME_MAX bytes. */
int pkg_module_valid(const char *name);
/* True when name may be a directory of the cache's dists/ (what a run's
 * sys.path may get): [A-Za-z0-9][A-Za-z0-9._+!-]*, at most PKG_DIR_NAME_MAX
 * bytes, so never ".", "..", empty or containing '/'. */
int pkg_dir_name_valid(const char *name);

/* True when rel (len bytes) may name a file of a cache directory delivered
 * to an executor pod (PUT /packages/<rel>, docs/executor-protocol.md):
 * "<dir>/<path>", dir valid per pkg_dir_name_valid and the whole valid per
 * valid_workspace_rel (common/validate.h: no empty, "." or ".." component, no
 * NUL, at most VALID_REL_MAX bytes). The service checks it before sending,
 * the executor again. */
int pkg_file_path_valid(const char *rel, size_t len);

/* True when name may be a distribution's metadata directory inside one of
 * those: the same characters, ending in ".dist-info", at most
 * PKG_METADATA_MAX bytes. */
int pkg_metadata_name_valid(const char *name);

#endif
