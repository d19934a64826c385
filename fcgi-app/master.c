/* master: see master.h. */
#include "master.h"

#include <dirent.h>
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access.h"
#include "api_keys.h"
#include "caps.h"
#include "cleanup.h"
#include "db.h"
#include "files.h"
#include "log.h"
#include "package_cache.h"
#include "pod_token.h"
#include "pool.h"
#include "root_helper.h"
#include "scoreboard.h"
#include "service_user.h"
#include "store.h"
#include "util.h"
#include "worker.h"

enum role { ROLE_WORKER, ROLE_POOL, ROLE_LIGHTTPD, ROLE_CLEANUP, ROLE_HELPER };

struct child {
	pid_t pid;
	enum role role;
	int slot;           /* workers: scoreboard slot, kept by the replacement */
	int64_t started_ms;
};

struct master {
	const struct config *cfg;
	int listen_fd;
	int notify[2];
	int ready_fd;       /* eventfd: the pool manager's announcements to workers */
	int helper_fd;      /* the root helper's listening socket: its alone */
	struct service_user user; /* what workers and cleanup become */
	struct child *kids;
	size_t n_kids;
	char lighttpd_conf[512];
	char upload_dir[512]; /* lighttpd's request bodies in files; emptied at each of its starts */
	int stopping;
};

static const char *role_name(enum role r)
{
	return r == ROLE_WORKER ? "worker" : r == ROLE_POOL ? "pool manager"
		: r == ROLE_CLEANUP ? "cleanup" : r == ROLE_HELPER ? "root helper" : "lighttpd";
}

/* The database's folder (the caller frees it). */
static char *db_dir_of(const struct config *cfg)
{
	char *dir = xstrdup(cfg->db_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	return dir;
}

static int prepare_dirs(const struct config *cfg)
{
	char *db_dir = db_dir_of(cfg);
	int rc = 0;
	const char *dirs[] = {cfg->run_dir, cfg->file_storage_path, db_dir};
	for (size_t i = 0; i < 3; i++) {
		if (mkdir_p(dirs[i], 0711) < 0) {
			log_error("mkdir %s: %s", dirs[i], strerror(errno));
			rc = -1;
		}
	}
	free(db_dir);
	return rc;
}

/* Reads APP_API_KEYS_FILE and writes its digests where the workers read them
 * (readable by the service user's group), then tells the workers. On a
 * bad file the keys in use stay. 0, or -1 (logged). */
/* Publishes the keys of APP_API_KEYS_FILE to the workers (their digests-only
 * copy, access.h). At start a file that cannot be used, or has no key, stops
 * the service (-1). On a reload it revokes every key instead: a file being
 * fixed leaves the service closed, never the keys of before still working. */
static int publish_keys(const struct config *cfg, int at_start)
{
	char err[256], path[512];
	struct api_keys keys;
	int usable = api_keys_load(cfg->api_keys_file, &keys, err, sizeof(err)) == 0;
	if (usable && keys.n == 0) {
		snprintf(err, sizeof(err), "no key in it");
		usable = 0;
	}
	if (!usable) {
		log_error("APP_API_KEYS_FILE %s: %s%s", cfg->api_keys_file, err,
			  at_start ? "" : "; every key is refused until it is fixed and SIGHUP sent again");
		if (at_start)
			return -1;
		memset(&keys, 0, sizeof(keys));
	}
	access_digests_path(cfg, path, sizeof(path));
	struct passwd *pw = getpwnam(cfg->service_user);
	int rc = api_keys_write_digests(&keys, path, pw ? pw->pw_gid : (gid_t)-1);
	if (rc < 0) {
		log_error("writing %s: %s", path, strerror(errno));
		unlink(path); /* the workers then refuse every request (access.c) */
	} else if (usable) {
		log_info("API keys: %zu from %s", keys.n, cfg->api_keys_file);
	}
	api_keys_free(&keys);
	scoreboard_keys_changed();
	return rc;
}

static int migrate(const struct config *cfg)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/migrations", cfg->data_dir);
	struct db *db = db_open(cfg->db_path);
	if (!db)
		return -1;
	enum db_status st = db_migrate(db, dir);
	/* nothing runs before the workers start: a 'running' row is from a crash */
	int interrupted = 0;
	if (st == DB_OK && db_executions_interrupt_all(db, now_ms(), &interrupted) == DB_OK && interrupted)
		log_warn("%d executions were left running by an earlier run; marked interrupted", interrupted);
	/* no install runs yet: what staging holds is from a crash */
	if (st == DB_OK && cfg->package_install)
		pkgcache_startup(cfg, db);
	db_close(&db);
	return st == DB_OK ? 0 : -1;
}

static const char *lighttpd_user(const char *socket_path);

/* The socket is lighttpd's alone: the user lighttpd runs as owns it (www-data
 * when it drops to that user, see lighttpd_user; root when it stays root;
 * www-data, when it exists, for a lighttpd started elsewhere), mode 0600.
 * The workers accept on the listening descriptor, never open the file. */
static int open_socket(struct master *m)
{
	const char *path = m->cfg->fcgi_socket;
	unlink(path);
	m->listen_fd = FCGX_OpenSocket(path, 128);
	/* the workers inherit it by fork; lighttpd, exec'd, must not: holding it,
	 * a lighttpd left by a master that died queued every request there, to
	 * wait for an accept that never came, instead of answering 503 */
	if (m->listen_fd < 0 || fcntl(m->listen_fd, F_SETFD, FD_CLOEXEC) < 0) {
		log_error("cannot listen on %s", path);
		return -1;
	}
	const char *user = m->cfg->start_lighttpd ? lighttpd_user(path) : "www-data";
	struct passwd *pw = user[0] ? getpwnam(user) : NULL;
	/* APP_RUN_DIR is root's: no one else can have put a symlink there */
	if (geteuid() == 0 && lchown(path, pw ? pw->pw_uid : 0, pw ? pw->pw_gid : 0) < 0)
		log_warn("chown %s: %s", path, strerror(errno));
	if (chmod(path, 0600) < 0)
		log_warn("chmod %s: %s", path, strerror(errno));
	return 0;
}

/* lighttpd drops to www-data only when that user can reach the socket (every
 * directory above it searchable by others); otherwise it stays root. */
static const char *lighttpd_user(const char *socket_path)
{
	static const char *decided; /* asked twice (socket, config): warned once */
	if (decided)
		return decided;
	if (!getpwnam("www-data"))
		return decided = "";
	char *dir = xstrdup(socket_path);
	const char *user = "www-data";
	for (char *slash = strrchr(dir, '/'); slash && slash != dir; slash = strrchr(dir, '/')) {
		*slash = '\0';
		struct stat st;
		if (stat(dir, &st) < 0 || !(st.st_mode & S_IXOTH)) {
			log_warn("lighttpd stays root: www-data cannot reach %s (%s is not searchable by others)",
				 socket_path, dir);
			user = "";
			break;
		}
	}
	free(dir);
	return decided = user;
}

static int write_lighttpd_conf(struct master *m)
{
	const struct config *cfg = m->cfg;
	char www[512];
	snprintf(m->lighttpd_conf, sizeof(m->lighttpd_conf), "%s/lighttpd.conf", cfg->run_dir);
	/* beside the database, on disk: request bodies of up to
	 * APP_MAX_REQUEST_BYTES, many at once, would fill a tmpfs such as /run */
	char *db_dir = db_dir_of(cfg);
	snprintf(m->upload_dir, sizeof(m->upload_dir), "%s/lighttpd-uploads", db_dir);
	free(db_dir);
	snprintf(www, sizeof(www), "%s/www", cfg->run_dir);
	if (mkdir_p(www, 0755) < 0)
		return -1;
	int v6 = strchr(cfg->http_host, ':') != NULL; /* lighttpd takes IPv6 as [ADDR] */
	char *text = xasprintf(
		"# written by code-interpreter at start; edit lighttpd/lighttpd.conf instead\n"
		"var.ci_host = \"%s%s%s\"\n"
		"var.ci_port = %d\n"
		"var.ci_fcgi_socket = \"%s\"\n"
		"var.ci_document_root = \"%s\"\n"
		"var.ci_max_request_kbytes = %llu\n"
		"var.ci_timeout = %d\n"
		"var.ci_errors = \"%s/lighttpd/errors/status-\"\n"
		"var.ci_user = \"%s\"\n"
		"var.ci_data_dir = \"%s\"\n"
		"var.ci_upload_dir = \"%s\"\n"
		"include \"%s/lighttpd/lighttpd.conf\"\n",
		v6 ? "[" : "", cfg->http_host, v6 ? "]" : "", cfg->http_port, cfg->fcgi_socket, www,
		(unsigned long long)(cfg->max_request_bytes / 1024 + 1),
		(int)cfg->max_execution_timeout + (int)cfg->claim_timeout + 60, cfg->data_dir,
		lighttpd_user(cfg->fcgi_socket), cfg->data_dir, m->upload_dir, cfg->data_dir);
	int fd = open(m->lighttpd_conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	int rc = fd < 0 || write_all(fd, text, strlen(text)) < 0 ? -1 : 0;
	if (fd >= 0)
		close(fd);
	free(text);
	if (rc < 0)
		log_error("writing %s: %s", m->lighttpd_conf, strerror(errno));
	return rc;
}

/* lighttpd's folder for request bodies, its user's alone (0700), emptied of
 * what a lighttpd killed before left there; with remove, removed. lighttpd's
 * user fills it, so a child as that user empties it: root walks nothing of
 * it (a tree deep enough would exhaust a walker's stack). */
static void clear_upload_dir(struct master *m, int remove)
{
	/* lighttpd's user: the one it drops to, when it starts as root (a master
	 * that is not root, as the service image's, starts it as itself) */
	const char *user = lighttpd_user(m->cfg->fcgi_socket);
	struct passwd *pw = user[0] && geteuid() == 0 ? getpwnam(user) : NULL;
	if (mkdir(m->upload_dir, 0700) < 0 && errno != EEXIST)
		log_warn("mkdir %s: %s", m->upload_dir, strerror(errno));
	int fd = open(m->upload_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (pw && fchown(fd, pw->pw_uid, pw->pw_gid) < 0)) {
		log_warn("%s: %s; lighttpd cannot take large request bodies", m->upload_dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		const char *step = NULL;
		if (pw && caps_become(pw->pw_uid, pw->pw_gid, NULL, 0, &step) < 0)
			_exit(1);
		DIR *d = fchdir(fd) == 0 ? fdopendir(fd) : NULL;
		int rc = d ? 0 : 1;
		for (struct dirent *e; d && (e = readdir(d)) != NULL;)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && remove_tree(e->d_name) < 0)
				rc = 1;
		_exit(rc);
	}
	close(fd);
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		log_warn("%s: what a lighttpd left there could not all be removed", m->upload_dir);
	else if (remove && rmdir(m->upload_dir) < 0)
		log_warn("rmdir %s: %s", m->upload_dir, strerror(errno));
}

static void spawn(struct master *m, enum role role, int slot)
{
	if (role == ROLE_LIGHTTPD)
		clear_upload_dir(m, 0);
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* what ps and /proc/PID/comm show (lighttpd names itself) */
		static const char *const comm[] = {[ROLE_WORKER] = "ci-worker", [ROLE_POOL] = "ci-pool",
						   [ROLE_CLEANUP] = "ci-cleanup", [ROLE_HELPER] = "ci-root-helper"};
		if (role != ROLE_LIGHTTPD)
			prctl(PR_SET_NAME, comm[role]);
		int rc = 1;
		if (role != ROLE_HELPER)
			close(m->helper_fd); /* a worker holding it could answer for the helper */
		if (role != ROLE_WORKER && role != ROLE_POOL && role != ROLE_HELPER)
			pod_token_forget(); /* only those create pods and talk to them (the helper installer pods) */
		if (role == ROLE_WORKER) {
			close(m->notify[0]);
			/* unprivileged before anything hostile is read */
			if (service_user_become(&m->user) < 0)
				_exit(1);
			scoreboard_set_slot(slot);
			rc = worker_run(m->cfg, m->listen_fd, m->notify[1], m->ready_fd);
		} else if (role == ROLE_CLEANUP) {
			log_set_role("cleanup");
			close(m->listen_fd);
			close(m->notify[0]);
			close(m->notify[1]);
			close(m->ready_fd);
			if (service_user_become(&m->user) < 0)
				_exit(1);
			rc = cleanup_run(m->cfg);
		} else if (role == ROLE_HELPER) {
			close(m->listen_fd);
			close(m->notify[0]);
			close(m->notify[1]);
			close(m->ready_fd);
			rc = root_helper_run(m->cfg, m->helper_fd, m->user.uid);
		} else if (role == ROLE_POOL) {
			log_set_role("pool");
			close(m->listen_fd);
			close(m->notify[1]);
			rc = pool_manager_run(m->cfg, m->notify[0], m->ready_fd);
		} else {
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			char *argv[] = {(char *)"lighttpd", (char *)"-D", (char *)"-f", m->lighttpd_conf, NULL};
			execv(m->cfg->lighttpd_bin, argv);
			log_error("exec %s: %s", m->cfg->lighttpd_bin, strerror(errno));
			_exit(127);
		}
		_exit(rc);
	}
	m->kids = xrealloc(m->kids, (m->n_kids + 1) * sizeof(*m->kids));
	m->kids[m->n_kids++] = (struct child){pid, role, slot, monotonic_ms()};
}

static size_t count_role(struct master *m, enum role role)
{
	size_t k = 0;
	for (size_t i = 0; i < m->n_kids; i++)
		k += m->kids[i].role == role;
	return k;
}

static void signal_role(struct master *m, enum role role, int sig)
{
	for (size_t i = 0; i < m->n_kids; i++)
		if (m->kids[i].role == role)
			kill(m->kids[i].pid, sig);
}

/* Reaps children; while running, respawns them (slowly when they crash at once). */
static void reap(struct master *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < m->n_kids; i++) {
			if (m->kids[i].pid != pid)
				continue;
			struct child c = m->kids[i];
			m->kids[i] = m->kids[--m->n_kids];
			if (m->stopping)
				break;
			if (WIFSIGNALED(status))
				log_warn("%s %d killed by signal %d; respawning", role_name(c.role), (int)pid,
					 WTERMSIG(status));
			else
				log_warn("%s %d exited with %d; respawning", role_name(c.role), (int)pid,
					 WEXITSTATUS(status));
			if (monotonic_ms() - c.started_ms < 1000)
				usleep(500000); /* crash loop: do not spin */
			spawn(m, c.role, c.slot);
			break;
		}
	}
}

static void wait_for(struct master *m, enum role role, int sfd)
{
	while (count_role(m, role) > 0) {
		struct pollfd p = {.fd = sfd, .events = POLLIN};
		poll(&p, 1, 1000);
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == sizeof(si))
			;
		reap(m);
	}
}

int master_run(const struct config *cfg)
{
	struct master m = {.cfg = cfg, .listen_fd = -1, .notify = {-1, -1}, .ready_fd = -1, .helper_fd = -1};
	log_set_role("master");
	/* a reload asked for while starting waits until the loop reads it */
	sigset_t hup;
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigprocmask(SIG_BLOCK, &hup, NULL);
	/* only health_check, a process of its own, uses that key: no process of
	 * the service keeps one (a worker taken over would have a key to use) */
	char *health_key = env_take("APP_HEALTH_CHECK_KEY");
	if (health_key) {
		explicit_bzero(health_key, strlen(health_key));
		free(health_key);
	}
	explicit_bzero(cfg->health_check_key, strlen(cfg->health_check_key));
	/* the workers' user owns the database before SQLite makes its WAL files */
	if (service_user_lookup(cfg, &m.user) < 0 || prepare_dirs(cfg) < 0 ||
	    service_user_own_state(cfg, &m.user) < 0 || migrate(cfg) < 0)
		return 1;
	struct store st;
	if (files_store_open(&st, cfg, 1) != STORE_OK) {
		log_error("cannot open the store at %s", cfg->file_storage_path);
		return 1;
	}
	store_remove_stale_temps(&st);
	store_close(&st);
	/* counters and worker slots, shared with every child forked below */
	if (scoreboard_create() < 0)
		return 1;
	if (cfg->api_keys_file[0] && publish_keys(cfg, 1) < 0)
		return 1;
	if (pipe2(m.notify, O_NONBLOCK | O_CLOEXEC) < 0 || open_socket(&m) < 0)
		return 1;
	if ((m.helper_fd = root_helper_listen(cfg, m.user.uid, m.user.gid)) < 0)
		return 1;
	m.ready_fd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	if (m.ready_fd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return 1;
	}
	if (cfg->start_lighttpd && write_lighttpd_conf(&m) < 0)
		return 1;
	/* each pod's token derives from it (pod_token.h); a restart makes a new
	 * one and deletes the pods of the old */
	if (strcmp(cfg->backend, "kubernetes") == 0)
		pod_token_init();

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);

	spawn(&m, ROLE_POOL, -1);
	spawn(&m, ROLE_HELPER, -1);
	spawn(&m, ROLE_CLEANUP, -1);
	for (int i = 0; i < cfg->workers; i++)
		spawn(&m, ROLE_WORKER, i);
	if (cfg->start_lighttpd)
		spawn(&m, ROLE_LIGHTTPD, -1);
	log_info("serving on :%d (FastCGI %s, %d workers, pool of %d)", cfg->http_port, cfg->fcgi_socket,
		 cfg->workers, cfg->pool_size);

	while (!m.stopping) {
		struct pollfd p = {.fd = sfd, .events = POLLIN};
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
				m.stopping = 1;
			else if (si.ssi_signo == SIGHUP && cfg->api_keys_file[0])
				publish_keys(cfg, 0);
		}
		reap(&m);
	}
	log_info("shutting down: finishing requests in flight");
	signal_role(&m, ROLE_LIGHTTPD, SIGINT); /* lighttpd: graceful stop */
	signal_role(&m, ROLE_WORKER, SIGTERM);
	signal_role(&m, ROLE_CLEANUP, SIGTERM);
	wait_for(&m, ROLE_WORKER, sfd);
	wait_for(&m, ROLE_CLEANUP, sfd);
	signal_role(&m, ROLE_HELPER, SIGTERM); /* no worker asks it any more */
	wait_for(&m, ROLE_HELPER, sfd);
	signal_role(&m, ROLE_POOL, SIGTERM);
	wait_for(&m, ROLE_POOL, sfd);
	signal_role(&m, ROLE_LIGHTTPD, SIGTERM);
	wait_for(&m, ROLE_LIGHTTPD, sfd);
	if (cfg->start_lighttpd)
		clear_upload_dir(&m, 1);
	close(m.listen_fd);
	unlink(cfg->fcgi_socket);
	root_helper_unlisten(cfg, m.helper_fd);
	free(m.kids);
	log_info("stopped");
	return 0;
}
