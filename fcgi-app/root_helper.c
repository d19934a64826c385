/* root_helper: see root_helper.h. The wire: the worker connects, writes one
 * JSON object and shuts its side down; the helper's child answers one JSON
 * object and closes.
 *   {"op":"install","execution_id":UUID,"requirement":STR,"module":STR,"timeout_ms":INT}
 *     -> {"dir":STR,"metadata":STR} or {"note":STR}
 *   {"op":"give","name":".tmp-HEX"} -> {"ok":true} or {"error":STR} */
#include "root_helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "db.h"
#include "files.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define SOCKET_NAME "root-helper.sock"
#define READ_REQUEST_MS 5000      /* a request is written at once: a slow one is refused */
#define ANSWER_MAX (64u * 1024)
#define INSTALL_GRACE_MS 60000    /* past the deadline: the installer's own teardown, the answer */
#define GIVE_WAIT_MS 10000

/* ------------------------------------------------------------ the checks */

static int uuid_valid(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

/* The string field key of j, at most max bytes, into out (max + 1 bytes). */
static int string_field(json_object *j, const char *key, char *out, size_t max, const char **why)
{
	json_object *v;
	if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_string)) {
		*why = "a field is missing or not a string";
		return -1;
	}
	size_t len = (size_t)json_object_get_string_len(v);
	const char *s = json_object_get_string(v);
	if (len > max || memchr(s, '\0', len)) {
		*why = "a field is too long or holds NUL";
		return -1;
	}
	memcpy(out, s, len + 1);
	return 0;
}

/* True when every key of j is one of the n named. */
static int only_fields(json_object *j, const char *const *names, size_t n)
{
	json_object_object_foreach(j, key, val) {
		(void)val;
		size_t i = 0;
		while (i < n && strcmp(key, names[i]) != 0)
			i++;
		if (i == n)
			return 0;
	}
	return 1;
}

static int parse_install(json_object *j, int64_t max_timeout_ms, struct root_helper_request *out,
			 const char **why)
{
	static const char *const fields[] = {"op", "execution_id", "requirement", "module", "timeout_ms"};
	char requirement[PKG_REQUIREMENT_MAX + 1], module[PKG_NAME_MAX + 1] = "";
	json_object *v;
	out->op = RH_INSTALL;
	if (!only_fields(j, fields, 5)) {
		*why = "unknown field";
		return -1;
	}
	if (string_field(j, "execution_id", out->execution_id, sizeof(out->execution_id) - 1, why) < 0 ||
	    string_field(j, "requirement", requirement, PKG_REQUIREMENT_MAX, why) < 0)
		return -1;
	if (json_object_object_get_ex(j, "module", NULL) && string_field(j, "module", module, PKG_NAME_MAX, why) < 0)
		return -1;
	if (!uuid_valid(out->execution_id)) {
		*why = "execution_id is not a UUID";
		return -1;
	}
	if (pkg_wanted_init(&out->want, requirement, module) < 0) {
		*why = "requirement or module is not valid";
		return -1;
	}
	if (!json_object_object_get_ex(j, "timeout_ms", &v) || !json_object_is_type(v, json_type_int)) {
		*why = "timeout_ms is missing or not an integer";
		return -1;
	}
	out->timeout_ms = json_object_get_int64(v);
	if (out->timeout_ms < 1 || out->timeout_ms > max_timeout_ms) {
		*why = "timeout_ms is out of range";
		return -1;
	}
	return 0;
}

int root_helper_parse(const char *text, size_t len, int64_t max_timeout_ms, struct root_helper_request *out,
		      const char **why)
{
	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (len == 0 || len > ROOT_HELPER_REQUEST_MAX || memchr(text, '\0', len)) {
		*why = "empty, too long or holding NUL";
		return -1;
	}
	json_tokener *tok = json_tokener_new_ex(4);
	if (!tok)
		log_fatal("root helper: out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *j = json_tokener_parse_ex(tok, text, (int)len);
	int whole = j && json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	int rc = -1;
	char op[16];
	if (!whole || !json_object_is_type(j, json_type_object)) {
		*why = "not one JSON object";
	} else if (string_field(j, "op", op, sizeof(op) - 1, why) < 0) {
		/* why is set */
	} else if (strcmp(op, "install") == 0) {
		rc = parse_install(j, max_timeout_ms, out, why);
	} else if (strcmp(op, "give") == 0) {
		static const char *const fields[] = {"op", "name"};
		out->op = RH_GIVE;
		if (!only_fields(j, fields, 2))
			*why = "unknown field";
		else if (string_field(j, "name", out->name, sizeof(out->name) - 1, why) == 0)
			rc = 0;
	} else {
		*why = "unknown op";
	}
	json_object_put(j);
	return rc;
}

/* ------------------------------------------------------------ transport */

static int socket_path(const struct config *cfg, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path, sizeof(a->sun_path), "%s/" SOCKET_NAME, cfg->run_dir);
	if (n < 0 || (size_t)n >= sizeof(a->sun_path)) {
		log_error("root helper: %s/" SOCKET_NAME " is too long for a socket path (APP_RUN_DIR)", cfg->run_dir);
		return -1;
	}
	return 0;
}

/* Reads from fd until end of file, at most max bytes, until deadline_ms. A
 * new NUL-terminated string with its length in *len, or NULL. */
static char *read_until_eof(int fd, size_t max, int64_t deadline_ms, size_t *len)
{
	char *buf = xmalloc(max + 1);
	size_t got = 0;
	for (;;) {
		int64_t left = deadline_ms - monotonic_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = left > 0 ? poll(&p, 1, (int)(left > 60000 ? 60000 : left)) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && left > 60000)
			continue;
		if (r <= 0)
			break;
		ssize_t n = read(fd, buf + got, max + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			buf[got] = '\0';
			*len = got;
			return buf;
		}
		if (n < 0 || (got += (size_t)n) > max)
			break;
	}
	free(buf);
	return NULL;
}

static void answer(int fd, json_object *a)
{
	const char *text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
	if (write_all(fd, text, strlen(text)) < 0)
		log_warn("root helper: the worker left before its answer: %s", strerror(errno));
	json_object_put(a);
}

static json_object *error_answer(const char *why)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "error", json_object_new_string(why));
	return a;
}

/* ------------------------------------------------------------ the root side */

int root_helper_listen(const struct config *cfg, uid_t uid, gid_t gid)
{
	struct sockaddr_un a;
	if (socket_path(cfg, &a) < 0)
		return -1;
	struct stat st;
	if (lstat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(a.sun_path); /* an earlier run's */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("root helper: socket: %s", strerror(errno));
		return -1;
	}
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	/* APP_RUN_DIR is root's: nothing else can have put a symlink there */
	if (rc < 0 || lchown(a.sun_path, uid, gid) < 0 || chmod(a.sun_path, 0600) < 0 || listen(fd, 128) < 0) {
		log_error("root helper: listening on %s: %s", a.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void root_helper_unlisten(const struct config *cfg, int fd)
{
	struct sockaddr_un a;
	if (fd >= 0)
		close(fd);
	if (socket_path(cfg, &a) == 0)
		unlink(a.sun_path);
}

/* One install, in the connection's child: its own database connection. */
static json_object *serve_install(const struct config *cfg, const struct root_helper_request *rq)
{
	char dir[PKG_DIR_NAME_MAX + 1] = "", metadata[PKG_METADATA_MAX + 1] = "";
	char *notes = NULL;
	struct db *db = db_open(cfg->db_path);
	if (!db)
		pkg_note_failure(&notes, &rq->want, "the package cache is not usable");
	else
		pkg_install(cfg, db, rq->execution_id, &rq->want, monotonic_ms() + rq->timeout_ms, dir, metadata, &notes);
	db_close(&db);
	json_object *a = json_object_new_object();
	if (dir[0]) {
		json_object_object_add(a, "dir", json_object_new_string(dir));
		json_object_object_add(a, "metadata", json_object_new_string(metadata));
	} else {
		json_object_object_add(a, "note", json_object_new_string(notes ? notes : "Package install failed\n"));
	}
	free(notes);
	return a;
}

static void serve(const struct config *cfg, struct store *store, int fd, uid_t peer_uid)
{
	size_t len = 0;
	char *text = read_until_eof(fd, ROOT_HELPER_REQUEST_MAX, monotonic_ms() + READ_REQUEST_MS, &len);
	struct root_helper_request rq;
	const char *why = "the request did not arrive whole";
	int64_t max_ms = (int64_t)(cfg->package_install_timeout * 1000.0);
	if (!text || root_helper_parse(text, len, max_ms, &rq, &why) < 0) {
		log_warn("root helper: refused a request from uid %d: %s", (int)peer_uid, why);
		answer(fd, error_answer("refused"));
	} else if (rq.op == RH_INSTALL) {
		if (!cfg->package_install)
			answer(fd, error_answer("package installs are off"));
		else
			answer(fd, serve_install(cfg, &rq));
	} else {
		enum store_status st = store->dir ? store_give_temp(store, rq.name, peer_uid) : STORE_BAD_ID;
		if (st == STORE_OK) {
			json_object *a = json_object_new_object();
			json_object_object_add(a, "ok", json_object_new_boolean(1));
			answer(fd, a);
		} else {
			if (st == STORE_BAD_ID)
				log_warn("root helper: refused to give %.64s: no temp file of uid %d in a shared store",
					 rq.name, (int)peer_uid);
			answer(fd, error_answer("refused"));
		}
	}
	free(text);
}

/* The uid of the process at the other end of fd, or (uid_t)-1. */
static uid_t peer_of(int fd)
{
	struct ucred cr;
	socklen_t n = sizeof(cr);
	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &n) == 0 ? cr.uid : (uid_t)-1;
}

int root_helper_run(const struct config *cfg, int listen_fd, uid_t peer_uid)
{
	log_set_role("root-helper");
	sigset_t mask, none;
	sigemptyset(&mask);
	sigemptyset(&none);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	struct store store = {.dirfd = -1, .lockfd = -1};
	if (sfd < 0 || (cfg->file_storage_group[0] && files_store_open(&store, cfg, 0) != STORE_OK)) {
		log_error("root helper: cannot start");
		return 1;
	}
	/* one request in flight per worker, and a few of workers that died */
	size_t max_kids = (size_t)cfg->workers + 4, n_kids = 0;
	pid_t *kids = xcalloc(max_kids, sizeof(*kids));
	int stopping = 0;
	while (!stopping || n_kids > 0) {
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = listen_fd, .events = POLLIN}};
		int np = !stopping && n_kids < max_kids ? 2 : 1;
		if (poll(p, (nfds_t)np, -1) < 0 && errno != EINTR)
			break;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !stopping) {
				stopping = 1;
				for (size_t i = 0; i < n_kids; i++)
					kill(kids[i], SIGTERM);
			}
		}
		pid_t pid;
		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
			for (size_t i = 0; i < n_kids; i++)
				if (kids[i] == pid) {
					kids[i] = kids[--n_kids];
					break;
				}
		if (np < 2 || !(p[1].revents & POLLIN))
			continue;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		uid_t uid = peer_of(fd);
		if (uid != peer_uid) {
			log_warn("root helper: refused a connection from uid %d", (int)uid);
			close(fd);
			continue;
		}
		pid = fork();
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			sigprocmask(SIG_SETMASK, &none, NULL);
			close(listen_fd);
			close(sfd);
			serve(cfg, &store, fd, uid);
			_exit(0);
		}
		if (pid < 0)
			log_error("root helper: fork: %s", strerror(errno));
		else
			kids[n_kids++] = pid;
		close(fd);
	}
	free(kids);
	store_close(&store);
	close(sfd);
	return 0;
}

/* ------------------------------------------------------------ the worker side */

/* Sends request, waits until deadline_ms for the answer: a JSON object (the
 * caller puts it), or NULL (logged). */
static json_object *ask(const struct config *cfg, json_object *request, int64_t deadline_ms)
{
	struct sockaddr_un a;
	json_object *reply = NULL;
	if (socket_path(cfg, &a) < 0)
		return NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	const char *text = json_object_to_json_string_ext(request, JSON_C_TO_STRING_PLAIN);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || write_all(fd, text, strlen(text)) < 0 ||
	    shutdown(fd, SHUT_WR) < 0) {
		log_error("root helper: cannot reach %s: %s", a.sun_path, strerror(errno));
		goto out;
	}
	size_t len = 0;
	char *buf = read_until_eof(fd, ANSWER_MAX, deadline_ms, &len);
	if (buf)
		reply = json_tokener_parse(buf);
	free(buf);
	if (!reply || !json_object_is_type(reply, json_type_object)) {
		log_error("root helper: no answer in time, or not one JSON object");
		json_object_put(reply);
		reply = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	return reply;
}

/* The string field key of an answer, or NULL. */
static const char *answer_string(json_object *a, const char *key)
{
	json_object *v;
	return a && json_object_object_get_ex(a, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : NULL;
}

int root_helper_install(const struct config *cfg, const char *execution_id, const struct pkg_wanted *w,
			int64_t deadline_ms, char dir[PKG_DIR_NAME_MAX + 1], char metadata[PKG_METADATA_MAX + 1],
			char **notes)
{
	int64_t left = deadline_ms - monotonic_ms();
	dir[0] = metadata[0] = '\0';
	if (left <= 0) {
		pkg_note_deadline(notes, cfg, w);
		return -1;
	}
	json_object *rq = json_object_new_object();
	json_object_object_add(rq, "op", json_object_new_string("install"));
	json_object_object_add(rq, "execution_id", json_object_new_string(execution_id));
	json_object_object_add(rq, "requirement", json_object_new_string(w->requirement));
	if (w->module[0])
		json_object_object_add(rq, "module", json_object_new_string(w->module));
	json_object_object_add(rq, "timeout_ms", json_object_new_int64(left));
	json_object *a = ask(cfg, rq, deadline_ms + INSTALL_GRACE_MS);
	json_object_put(rq);
	const char *d = answer_string(a, "dir"), *m = answer_string(a, "metadata"), *note = answer_string(a, "note");
	int rc = -1;
	if (d && m && pkg_dir_name_valid(d) && pkg_metadata_name_valid(m)) {
		snprintf(dir, PKG_DIR_NAME_MAX + 1, "%s", d);
		snprintf(metadata, PKG_METADATA_MAX + 1, "%s", m);
		rc = 0;
	} else if (note && utf8_valid(note, strlen(note))) {
		char *s = xasprintf("%s%s", *notes ? *notes : "", note);
		free(*notes);
		*notes = s;
	} else {
		pkg_note_failure(notes, w, "the installer could not be asked");
	}
	json_object_put(a);
	return rc;
}

int root_helper_give(const char *tmpname, void *arg)
{
	const struct config *cfg = arg;
	json_object *rq = json_object_new_object();
	json_object_object_add(rq, "op", json_object_new_string("give"));
	json_object_object_add(rq, "name", json_object_new_string(tmpname));
	json_object *a = ask(cfg, rq, monotonic_ms() + GIVE_WAIT_MS);
	json_object_put(rq);
	json_object *ok;
	int rc = a && json_object_object_get_ex(a, "ok", &ok) && json_object_get_boolean(ok) ? 0 : -1;
	json_object_put(a);
	if (rc < 0)
		errno = EPERM;
	return rc;
}
