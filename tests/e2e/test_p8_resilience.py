"""Point 8: concurrent executions, and the service recovering from killed
processes. (That nothing is left after SIGTERM is checked by run.py at the end.)"""
import os
import signal
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import client
from support import BUILD, CGROUP_PARENT, DB_PATH, E2E, MASTER_PID, RUN_DIR, comm, is_spawner, sha256


def stat(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[1])


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st and st[1] == pid and st[0] != "Z":
                out.append(int(d))
    return sorted(out)


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def exe(pid):
    try:
        path = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None
    suffix = " (deleted)"  # the binary was rebuilt while the service runs
    return path[:-len(suffix)] if path.endswith(suffix) else path


def service_children():
    """(workers, pool managers) among the master's children: both run the service
    binary; the pool manager is the one with children (the sandbox launchers)."""
    binary = os.path.realpath(os.path.join(BUILD, "code-interpreter"))
    same = [p for p in children(MASTER_PID) if exe(p) == binary]
    pools = [p for p in same if children(p)]
    workers = [p for p in same if p not in pools]
    return workers, pools


def alive(pid):
    st = stat(pid)
    return st is not None and st[0] != "Z"


def wait_until(cond, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def claimed_sandboxes():
    try:
        with sqlite3.connect("file:%s?mode=ro" % DB_PATH, uri=True, timeout=5) as c:
            return c.execute("SELECT id, claimer FROM sandboxes WHERE state = 'claimed'").fetchall()
    except sqlite3.Error:
        return []


def sandbox_exists(sid):
    with sqlite3.connect("file:%s?mode=ro" % DB_PATH, uri=True, timeout=5) as c:
        return c.execute("SELECT count(*) FROM sandboxes WHERE id = ?", (sid,)).fetchone()[0] > 0


class P8Concurrency(E2E):
    def test_16_concurrent_executions_all_succeed_with_their_own_output(self):
        def one(i):
            return i, client.execute(
                "import time\nopen('f%d.txt', 'w').write('%d')\ntime.sleep(0.2)\nprint(%d)\n" % (i, i, i),
                timeout=60, http_timeout=300)

        with ThreadPoolExecutor(16) as ex:
            results = list(ex.map(one, range(16)))
        for i, r in results:
            with self.subTest(i=i):
                self.assertEqual(r.status, 200, r.body[:500])
                self.assertEqual(r.json, {"stdout": "%d\n" % i, "stderr": "", "exit_code": 0,
                                          "files": {"/workspace/f%d.txt" % i: sha256(str(i))}})
        ids = {r.headers.get("x-execution-id") for _, r in results}
        self.assertEqual(len(ids), 16)


class P8Resilience(E2E):
    def test_killed_idle_worker_is_replaced_and_service_answers(self):
        workers, pools = service_children()
        self.assertTrue(workers, "no worker found among the master's children")
        before = len(workers)
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        ok = wait_until(lambda: not alive(victim) and len(service_children()[0]) >= before, 15)
        self.assertTrue(ok, "worker %d not replaced: workers now %s" % (victim, service_children()[0]))
        for _ in range(6):  # more requests than workers: every worker serves
            self.assertHello()

    def test_worker_killed_mid_request_gives_json_error_and_its_sandbox_is_destroyed(self):
        box = {}

        def slow():
            try:
                box["r"] = client.execute("import time; time.sleep(30)", timeout=40)
            except Exception as e:  # a closed connection is an acceptable outcome
                box["e"] = e

        t = threading.Thread(target=slow)
        t.start()
        claimed = wait_until(claimed_sandboxes, 40)
        self.assertTrue(claimed, "no sandbox was claimed for the slow request")
        sid, worker = claimed[0]
        self.assertTrue(worker and alive(worker), "claimer %r is not a live process" % worker)
        os.kill(worker, signal.SIGKILL)
        t.join(60)
        self.assertFalse(t.is_alive(), "the client is still waiting 60 s after its worker died")
        if "r" in box:
            r = box["r"]
            self.assertGreaterEqual(r.status, 500, r.body[:500])
            self.assertTrue(r.json_ok, "error body is not JSON: %r" % r.body[:500])
        # the pool manager notices the dead claimer and destroys the sandbox
        self.assertTrue(wait_until(lambda: not sandbox_exists(sid), 30),
                        "sandbox %s of the killed worker still exists" % sid)
        self.assertTrue(wait_until(lambda: not os.path.exists(
            os.path.join(os.environ.get("E2E_RUN_DIR", ""), "sandboxes", sid)), 10))
        self.assertHello()

    def test_killed_pool_manager_is_replaced_and_its_sandboxes_are_gone(self):
        workers, pools = service_children()
        self.assertEqual(len(pools), 1, "expected one pool manager (a child with children): %s" % pools)
        pool = pools[0]
        old = descendants(pool)
        os.kill(pool, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not alive(pool) and service_children()[1], 20),
                        "the pool manager was not replaced")
        self.assertHello()
        wait_until(lambda: not [p for p in old if alive(p)], 10)
        left = [p for p in old if alive(p)]
        self.assertEqual(left, [], "sandbox processes of the killed pool manager survive")


    def test_killed_spawner_mid_burst_is_restarted_and_leaves_nothing(self):
        """The zygote's spawner dies while the manager waits for its answers
        (requests sent, not answered): those sandboxes are forgotten, the rest
        die with it, the pool is refilled by a new zygote, and no directory,
        cgroup or row outlives its sandbox."""
        spawners = [p for p in descendants(MASTER_PID) if is_spawner(p)]
        self.assertEqual(len(spawners), 1, "expected one spawner: %s" % spawners)
        old = descendants(spawners[0])
        with ThreadPoolExecutor(8) as ex:
            futs = [ex.submit(client.execute, 'print("hello world")', timeout=60) for _ in range(24)]
            wait_until(lambda: any(f.done() for f in futs), 30, step=0.01)
            os.kill(spawners[0], signal.SIGKILL)
            answers = [f.result() for f in futs]
        for r in answers:  # each got an answer: a run, or a JSON error
            self.assertTrue(r.status == 200 or (r.status >= 500 and r.json_ok), (r.status, r.body[:300]))
        self.assertHello()
        self.assertTrue(wait_until(lambda: not [p for p in old if alive(p)], 20),
                        "processes of the killed spawner survive")

        def consistent():
            with sqlite3.connect("file:%s?mode=ro" % DB_PATH, uri=True, timeout=5) as c:
                rows = {r[0] for r in c.execute("SELECT id FROM sandboxes")}
                ready = c.execute("SELECT count(*) FROM sandboxes WHERE state = 'ready'").fetchone()[0]
            dirs = set(os.listdir(os.path.join(RUN_DIR, "sandboxes")))
            groups = set()
            for ctl in ("memory", "pids", "unified"):
                d = os.path.join("/sys/fs/cgroup", ctl, CGROUP_PARENT)
                if os.path.isdir(d):
                    groups |= {e for e in os.listdir(d) if e.startswith("sbx-")}
            return ready == 2 and rows == dirs and groups <= rows and (rows, dirs, groups)
        self.assertTrue(wait_until(consistent, 30), "pool not refilled, or traces of dead sandboxes left")


def ready_sandboxes():
    """{id: pid} of the sandboxes ready to be claimed."""
    with sqlite3.connect("file:%s?mode=ro" % DB_PATH, uri=True, timeout=5) as c:
        return dict(c.execute("SELECT id, pid FROM sandboxes WHERE state = 'ready'").fetchall())


def wait_pool_full(size=2):
    return wait_until(lambda: len(ready_sandboxes()) >= size and ready_sandboxes(), 30)


class P8UnusableSandboxes(E2E):
    """A ready sandbox that cannot run anything never answers for a run: the
    service takes another."""

    def assertRunsHello(self, n):
        for _ in range(n):
            r = client.execute('print("hello world")', timeout=30)
            self.assertEqual((r.status, r.json.get("exit_code"), r.json.get("stdout")),
                             (200, 0, "hello world\n"), r.body[:500])

    def test_a_runner_killed_while_its_sandbox_waits_never_answers_for_a_run(self):
        # the runner dies (killed from outside: the OOM killer, an operator)
        # before its sandbox is claimed: the sandbox ends and is replaced,
        # where it was handed out and answered exit code -9 for code it never ran
        ready = wait_pool_full()
        self.assertTrue(ready, "the pool did not fill")
        for sid, pid in ready.items():
            runners = [c for c in children(pid) if comm(c) == "runner"]
            self.assertEqual(len(runners), 1, (sid, runners))
            os.kill(runners[0], signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not any(alive(p) for p in ready.values()), 10),
                        "a sandbox whose runner was killed lives on")
        self.assertRunsHello(4)

    def test_a_sandbox_that_cannot_be_reached_is_passed_over(self):
        # the rows of sandboxes that died with their spawner stay 'ready' a
        # moment: a run that claims one, whose socket is gone, takes another
        # (the pool here is 2, fewer than the 3 sandboxes a run may try: the
        # third is a fresh one)
        ready = wait_pool_full()
        self.assertTrue(ready, "the pool did not fill")
        for sid in ready:
            os.unlink(os.path.join(RUN_DIR, "sandboxes", sid, "sock", "executor.sock"))
        self.assertRunsHello(2)
        self.assertTrue(wait_until(lambda: not any(alive(p) for p in ready.values()), 10),
                        "a sandbox passed over lives on")


class P8Lighttpd(E2E):
    def test_a_killed_lighttpd_leaves_no_request_body_behind(self):
        # lighttpd holds a large request body in files until it is whole; a
        # lighttpd killed meanwhile left them in /var/tmp, for good
        uploads = os.path.join(os.path.dirname(DB_PATH), "lighttpd-uploads")
        old = [p for p in children(MASTER_PID) if comm(p) == "lighttpd"]
        self.assertEqual(len(old), 1, old)
        s = socket.create_connection(("127.0.0.1", client.port()), timeout=30)
        try:
            s.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 8000000\r\n\r\n" + b" " * 4000000)
            self.assertTrue(wait_until(lambda: os.listdir(uploads), 10), "no request body in %s" % uploads)
            os.kill(old[0], signal.SIGKILL)
        finally:
            s.close()

        def respawned():
            now = [p for p in children(MASTER_PID) if comm(p) == "lighttpd" and p not in old]
            return now and os.path.isdir(uploads) and not os.listdir(uploads)
        self.assertTrue(wait_until(respawned, 10), "no new lighttpd, or the old one's files are left")
        self.assertHello()


class P8NoCapacity(E2E):
    """A second, separate instance with no warm sandboxes at all: a request must get
    503 with Retry-After (after APP_CLAIM_TIMEOUT), as JSON, and that instance
    must stop cleanly too."""

    def test_no_sandbox_available_gives_503_with_retry_after(self):
        import secrets
        import shutil
        import subprocess
        import tempfile

        import run
        tmp = tempfile.mkdtemp(prefix="ci-e2e-nocap-")
        os.chmod(tmp, 0o755)
        port = run.free_port()
        parent = "ci-test-" + secrets.token_hex(4)
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env.update({"APP_HTTP_PORT": str(port), "APP_RUN_DIR": tmp + "/run", "APP_DB_PATH": tmp + "/db/ci.db",
                    "APP_FILE_STORAGE_PATH": tmp + "/objects", "APP_WORKERS": "1",
                    "APP_EXECUTOR_POOL_SIZE": "0", "APP_CLAIM_TIMEOUT": "1", "APP_CGROUP_PARENT": parent,
                    "APP_PRELOAD_MODULES": "", "APP_DATA_DIR": run.REPO})
        with open(tmp + "/service.log", "wb") as log:
            proc = subprocess.Popen([os.path.join(BUILD, "code-interpreter")], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        lines = []
        try:
            def up():
                try:
                    return run.get(port, "/healthz")[0] == 200
                except OSError:
                    return False
            self.assertTrue(wait_until(up, 30), "the second instance did not come up")
            saved = os.environ["E2E_PORT"]
            os.environ["E2E_PORT"] = str(port)
            try:
                t0 = time.monotonic()
                r = client.execute("print(1)", timeout=5)
            finally:
                os.environ["E2E_PORT"] = saved
            self.assertJsonError(r, 503)
            self.assertTrue(r.headers.get("retry-after"), "503 without Retry-After: %r" % r.headers)
            self.assertLess(time.monotonic() - t0, 15)
        finally:
            ok, dangerous = run.check_shutdown(proc, tmp, parent, lines) if proc.poll() is None else (False, True)
            run.remove_cgroup_parent(parent)
            if not dangerous:
                shutil.rmtree(tmp, ignore_errors=True)
        self.assertTrue(ok, "\n".join(lines))
