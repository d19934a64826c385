"""A second, separate service instance for tests that must crash, starve or
reconfigure a service (the main one run.py started stays untouched). Its state
lives in its own temp dir; stop() checks, like run.py, that nothing is left."""
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

import run
from support import BUILD


class Instance:
    def __init__(self, env=None, tmp=None, workers=2, pool=1, backend="local"):
        """backend "kubernetes": against the API server double run.py started
        (--backend kubernetes), under an instance label of its own."""
        self.tmp = tmp or tempfile.mkdtemp(prefix="ci-e2e-inst-")
        os.chmod(self.tmp, 0o755)
        self.port = run.free_port()
        self.parent = "ci-test-" + secrets.token_hex(4)
        self.db = self.tmp + "/db/ci.db"
        self.store = self.tmp + "/objects"
        self.run_dir = self.tmp + "/run"
        self.log = self.tmp + "/service.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        self.env.update({"APP_HTTP_PORT": str(self.port), "APP_RUN_DIR": self.run_dir, "APP_DB_PATH": self.db,
                         "APP_FILE_STORAGE_PATH": self.store, "APP_WORKERS": str(workers),
                         "APP_EXECUTOR_POOL_SIZE": str(pool), "APP_CGROUP_PARENT": self.parent,
                         "APP_PRELOAD_MODULES": "", "APP_DATA_DIR": run.REPO,
                         "APP_PACKAGE_CACHE": self.tmp + "/packages", "APP_PIP_FIND_LINKS": self.tmp + "/wheels"})
        if backend == "kubernetes":
            self.env.update(run.kubernetes_env(os.environ["E2E_K8S_API"], os.environ["E2E_K8S_TOKEN_FILE"], pool))
        os.makedirs(self.tmp + "/wheels", exist_ok=True)
        self.env.update(env or {})
        self.proc = None
        self.dangerous = False  # a stop() found processes or mounts left: keep tmp

    def start(self, path="/readyz", timeout=60):
        """Starts the service and waits until path answers 200. When it
        exits or is not ready in time, stops it (stop(): nothing of it is
        left running, its report goes with the error) before raising: a
        caller whose setUpClass fails never gets to stop it."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([os.path.join(BUILD, "code-interpreter")], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail("instance exited with %s" % self.proc.returncode)
            try:
                if run.get(self.port, path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self._fail("instance not ready in %d s" % timeout)

    def _fail(self, why):
        log = run.tail(self.log)
        _, lines = self.stop()
        raise AssertionError("%s:\n%s\n%s" % (why, log, "\n".join(lines)))

    @contextlib.contextmanager
    def current(self):
        """Points client.py at this instance for the duration of the block."""
        saved = os.environ["E2E_PORT"]
        os.environ["E2E_PORT"] = str(self.port)
        try:
            yield self
        finally:
            os.environ["E2E_PORT"] = saved

    def kill9(self):
        """SIGKILL to every process of the instance's session, as a crash would."""
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self):
        """SIGTERM and the leftovers check. Returns (ok, report lines); a
        second call (the caller's, after start() gave up) finds nothing to
        stop and keeps what the first found."""
        lines = []
        if self.proc and self.proc.poll() is None:
            ok, dangerous = run.check_shutdown(self.proc, self.tmp, self.parent, lines)
        else:
            ok, dangerous = True, False
        run.remove_cgroup_parent(self.parent)
        self.dangerous = self.dangerous or dangerous
        return ok, lines

    def remove(self):
        if not self.dangerous and not run.leftover_mounts(self.tmp):
            shutil.rmtree(self.tmp, ignore_errors=True)
