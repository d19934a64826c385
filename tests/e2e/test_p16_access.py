"""Point 16: access control. With APP_API_KEYS_FILE every /v1 route needs a
bearer key, each key sees only its own file objects, one key's requests in
flight are limited without touching other keys, the keys are re-read on
SIGHUP without dropping requests, and the service listens on loopback unless
told otherwise."""
import concurrent.futures
import glob
import hashlib
import json
import os
import signal
import socket
import sqlite3
import threading
import time

import client
from instance import Instance
from support import E2E, sha256

ALICE = "alice-key-" + "a1" * 12
BOB = "bob-key-" + "b2" * 12
OPS = "ops-key-" + "c3" * 12
CAROL = "carol-key-" + "d4" * 12


def bearer(key):
    return {"Authorization": "Bearer " + key}


def execute(key, source, files=None, timeout=None):
    body = {"source_code": source}
    if files is not None:
        body["files"] = files
    if timeout is not None:
        body["timeout"] = timeout
    return client.raw("POST", "/v1/execute", json.dumps(body), headers=bearer(key) if key else None)


def upload(key, data):
    return client.raw("POST", "/v1/files", data, headers=dict(bearer(key), **{"Content-Type": "application/octet-stream"}))


def download(key, object_id):
    return client.raw("GET", "/v1/files/" + object_id, headers=bearer(key) if key else None)


def assert_answers_as_unknown(test, key, oid):
    """key gets for oid exactly what an unknown id gets: 404 on download, the
    same 422 as an execute input (against the instance client.py points at)."""
    unknown = sha256(os.urandom(8))
    mine, other = download(key, oid), download(key, unknown)
    test.assertEqual((mine.status, mine.json), (404, other.json))
    r = execute(key, "print(open('in.txt').read())", files={"/workspace/in.txt": oid})
    r_unknown = execute(key, "print(1)", files={"/workspace/in.txt": unknown})
    test.assertEqual(r.status, 422, r)
    test.assertEqual(r.json, json.loads(json.dumps(r_unknown.json).replace(unknown, oid)))


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class KeysTest(E2E):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(workers=4, pool=2)
        cls.keys_file = cls.inst.tmp + "/api-keys"
        # bob is known by the digest of his key only
        cls.write_keys("alice:%s\nbob:sha256:%s\nops:%s\n" % (ALICE, hashlib.sha256(BOB.encode()).hexdigest(), OPS))
        cls.inst.env.update({"APP_API_KEYS_FILE": cls.keys_file, "APP_METRICS_KEYS": "ops",
                             "APP_KEY_MAX_CONCURRENT": "1", "APP_HEALTH_CHECK_KEY": OPS})
        cls.inst.start()

    @classmethod
    def write_keys(cls, text):
        with open(cls.keys_file + ".new", "w") as f:
            f.write(text)
        os.chmod(cls.keys_file + ".new", 0o600)
        os.rename(cls.keys_file + ".new", cls.keys_file)

    @classmethod
    def tearDownClass(cls):
        ok, lines = cls.inst.stop()
        if not ok:
            raise AssertionError("\n".join(lines))

    def assertNotAuthenticated(self, r):
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.json, {"detail": "Not authenticated"})
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")

    def test_no_key_or_a_wrong_key_is_401_on_every_v1_route(self):
        with self.inst.current():
            self.assertNotAuthenticated(execute(None, "print(1)"))
            self.assertNotAuthenticated(execute("not-a-key-0123456789abcdef", "print(1)"))
            self.assertNotAuthenticated(execute(ALICE + "x", "print(1)"))
            self.assertNotAuthenticated(client.raw("POST", "/v1/execute", '{"source_code": "print(1)"}',
                                                   headers={"Authorization": "Basic " + ALICE}))
            # the digest stands for bob's key, it is no key itself
            self.assertNotAuthenticated(execute("sha256:" + hashlib.sha256(BOB.encode()).hexdigest(), "print(1)"))
            self.assertNotAuthenticated(client.raw("POST", "/v1/files", b"x"))
            self.assertNotAuthenticated(download(None, sha256("x")))
            self.assertNotAuthenticated(client.raw("POST", "/v1/parse-custom-tool",
                                                   json.dumps({"tool_source_code": "def f(a: int) -> int:\n  return a"})))
            self.assertNotAuthenticated(client.raw("POST", "/v1/execute-custom-tool", "{}"))
            self.assertNotAuthenticated(client.raw("GET", "/v1/nothing-here"))

    def test_a_right_key_runs_code_and_its_name_is_recorded(self):
        with self.inst.current():
            r = execute(ALICE, "print('hello world')")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["stdout"], "hello world\n")
            rb = execute(BOB, "print(6 * 7)")
            self.assertEqual(rb.status, 200, rb)
            self.assertEqual(rb.json["stdout"], "42\n")
            tool = client.raw("POST", "/v1/parse-custom-tool",
                              json.dumps({"tool_source_code": "def f(a: int) -> int:\n  return a"}), headers=bearer(BOB))
            self.assertEqual(tool.status, 200, tool)
        db = sqlite3.connect(self.inst.db)
        try:
            rows = dict(db.execute("SELECT id, api_key FROM executions WHERE id IN (?, ?)",
                                   (r.headers["x-execution-id"], rb.headers["x-execution-id"])).fetchall())
            per_key = dict(db.execute("SELECT api_key, count(*) FROM executions GROUP BY api_key").fetchall())
        finally:
            db.close()
        self.assertEqual(rows, {r.headers["x-execution-id"]: "alice", rb.headers["x-execution-id"]: "bob"})
        self.assertGreaterEqual(per_key.get("bob", 0), 2)
        # names only: no key, no digest of one, in the record or the log
        with open(self.inst.db, "rb") as f:
            data = f.read()
        for wal in (self.inst.db + "-wal",):
            if os.path.exists(wal):
                with open(wal, "rb") as f:
                    data += f.read()
        with open(self.inst.log, "rb") as f:
            data += f.read()
        for secret in (ALICE, BOB, hashlib.sha256(ALICE.encode()).hexdigest()):
            self.assertNotIn(secret.encode(), data)

    def test_no_process_of_the_service_keeps_the_health_check_key(self):
        """Only health_check, a process of its own, uses APP_HEALTH_CHECK_KEY:
        the master takes it out of its environment before anything starts, so
        a worker taken over finds no key in its own or its parent's."""
        session = []
        for stat_path in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat_path) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.inst.proc.pid:  # the session the master leads
                session.append(int(stat_path.split("/")[2]))
        self.assertGreaterEqual(len(session), 4, session)  # master, workers, manager, lighttpd...
        read = 0
        for pid in session:
            try:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    environ = f.read()
            except OSError:
                continue  # gone meanwhile
            read += 1
            self.assertNotIn(OPS.encode(), environ, "pid %d" % pid)
        self.assertGreaterEqual(read, 4, "environments read: %d of %s" % (read, session))

    def test_health_readiness_and_the_document_stay_open(self):
        with self.inst.current():
            for path in ("/healthz", "/readyz", "/openapi.json"):
                r = client.raw("GET", path)
                # not ready for a moment after the runs of the tests before
                # (their sandboxes replaced): open all the same, and ready soon
                deadline = time.monotonic() + 30
                while path == "/readyz" and r.status == 503 and time.monotonic() < deadline:
                    time.sleep(0.1)
                    r = client.raw("GET", path)
                self.assertEqual(r.status, 200, (path, r))

    def test_metrics_need_a_metrics_key(self):
        with self.inst.current():
            self.assertNotAuthenticated(client.raw("GET", "/metrics"))
            r = client.raw("GET", "/metrics", headers=bearer(ALICE))
            self.assertEqual(r.status, 403, r)
            self.assertIn("detail", r.json)
            r = client.raw("GET", "/metrics", headers=bearer(OPS))
            self.assertEqual(r.status, 200, r)
            self.assertIn(b"ci_http_requests_total", r.body)

    def test_each_key_sees_only_its_own_objects(self):
        data = b"alice's private notes " + os.urandom(16).hex().encode()
        with self.inst.current():
            up = upload(ALICE, data)
            self.assertEqual(up.status, 201, up)
            oid = up.json["object_id"]
            self.assertEqual(download(ALICE, oid).body, data)
            # bob: exactly what an unknown id gets
            assert_answers_as_unknown(self, BOB, oid)
            # alice may use it
            r = execute(ALICE, "print(open('notes.txt').read(), end='')", files={"/workspace/notes.txt": oid})
            self.assertEqual((r.status, r.json["stdout"]), (200, data.decode()))
            # what alice's run produced is hers alone too
            r = execute(ALICE, "open('out.txt', 'w').write('made by alice')")
            out = r.json["files"]["/workspace/out.txt"]
            self.assertEqual(download(ALICE, out).body, b"made by alice")
            self.assertEqual(download(BOB, out).status, 404)
            # the same bytes from bob: one object, now his too
            up_b = upload(BOB, data)
            self.assertEqual((up_b.status, up_b.json["object_id"]), (201, oid))
            self.assertEqual(download(BOB, oid).body, data)
        self.assertEqual(sorted(n for n in os.listdir(self.inst.store) if n == oid), [oid])
        # whose it is lives in the store, where replicas sharing it see it:
        # an entry named by the SHA-256 of each key's name (docs/schema.md)
        owners = sorted(os.listdir(os.path.join(self.inst.store, ".owners", oid)))
        self.assertEqual(owners, sorted([sha256("alice"), sha256("bob")]))
        self.assertEqual(sorted(os.listdir(os.path.join(self.inst.store, ".owners", out))), [sha256("alice")])

    def test_one_key_over_its_limit_gets_429_while_another_runs(self):
        with self.inst.current():
            slow = {}
            t = threading.Thread(target=lambda: slow.setdefault("r", execute(ALICE, "import time; time.sleep(4)")))
            t.start()
            try:
                # alice's long run is admitted once her next request is refused
                refused = []

                def alice_refused():
                    r = download(ALICE, sha256("probe"))
                    if r.status == 429:
                        refused.append(r)
                    return bool(refused)
                wait_for(alice_refused, "alice's second request to be refused")
                r = refused[0]
                self.assertEqual(r.headers.get("retry-after"), "1")
                self.assertIn("APP_KEY_MAX_CONCURRENT", r.json["detail"])
                self.assertTrue(t.is_alive())
                rb = execute(BOB, "print('bob runs')")
                self.assertEqual((rb.status, rb.json["stdout"]), (200, "bob runs\n"))
                self.assertTrue(t.is_alive(), "bob's run was to overlap alice's")
            finally:
                t.join()
            self.assertEqual(slow["r"].status, 200, slow["r"])
            # her run ended: she may again
            self.assertEqual(execute(ALICE, "print(1)").status, 200)


class ReloadTest(E2E):
    """SIGHUP re-reads the keys file; requests in flight and arriving go on."""

    def test_sighup_swaps_keys_without_dropping_requests(self):
        inst = Instance(workers=3, pool=2)
        keys_file = inst.tmp + "/keys"
        with open(keys_file, "w") as f:
            f.write("alice:%s\nbob:%s\n" % (ALICE, BOB))
        inst.env["APP_API_KEYS_FILE"] = keys_file
        inst.start()
        try:
            with inst.current():
                self.assertEqual(execute(CAROL, "print(1)").status, 401)
                stop = threading.Event()
                statuses = []

                def alice_keeps_calling():
                    while not stop.is_set():
                        statuses.append(execute(ALICE, "print(2)").status)
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    busy = [pool.submit(alice_keeps_calling) for _ in range(2)]
                    wait_for(lambda: len(statuses) >= 4, "alice's first requests")
                    with open(keys_file + ".new", "w") as f:
                        f.write("alice:%s\ncarol:%s\n" % (ALICE, CAROL))
                    os.rename(keys_file + ".new", keys_file)
                    os.kill(inst.proc.pid, signal.SIGHUP)
                    wait_for(lambda: execute(CAROL, "print(3)").status == 200, "carol's key to work")
                    self.assertEqual(execute(BOB, "print(4)").status, 401)
                    n = len(statuses)
                    wait_for(lambda: len(statuses) >= n + 4, "alice's later requests")
                    stop.set()
                    for b in busy:
                        b.result()
                self.assertEqual(set(statuses), {200}, statuses)
                # a broken file revokes every key (closed, not the keys of before)
                # until a good one is reloaded; the bob line being removed was
                # the edit, so bob stays out too
                with open(keys_file, "w") as f:
                    f.write("alice:%s\ncarol:short\n" % ALICE)
                os.kill(inst.proc.pid, signal.SIGHUP)
                wait_for(lambda: "every key is refused until it is fixed" in open(inst.log).read(),
                         "the bad file to be reported")
                wait_for(lambda: execute(CAROL, "print(5)").status == 401, "carol's key to be revoked")
                self.assertEqual(execute(ALICE, "print(5)").status, 401)
                # an empty file too
                with open(keys_file, "w") as f:
                    f.write("# nobody\n")
                os.kill(inst.proc.pid, signal.SIGHUP)
                wait_for(lambda: "no key in it; every key is refused" in open(inst.log).read(),
                         "the empty file to be reported")
                self.assertEqual(execute(ALICE, "print(6)").status, 401)
                with open(keys_file, "w") as f:
                    f.write("carol:%s\n" % CAROL)
                os.kill(inst.proc.pid, signal.SIGHUP)
                wait_for(lambda: execute(CAROL, "print(7)").status == 200, "carol's key to work again")
                self.assertEqual(execute(ALICE, "print(8)").status, 401)
        finally:
            ok, lines = inst.stop()
            self.assertTrue(ok, "\n".join(lines))


class ListenTest(E2E):
    def test_loopback_is_the_default_and_other_addresses_are_a_setting(self):
        def listening(port):
            found = []
            for table in ("/proc/net/tcp", "/proc/net/tcp6"):
                with open(table) as f:
                    for line in f.readlines()[1:]:
                        local, state = line.split()[1], line.split()[3]
                        if state == "0A" and int(local.split(":")[1], 16) == port:
                            found.append(local.split(":")[0])
            return found
        inst = Instance(workers=1, pool=0)
        inst.start(path="/healthz")
        try:
            self.assertEqual(listening(inst.port), ["0100007F"])  # 127.0.0.1
        finally:
            ok, lines = inst.stop()
            self.assertTrue(ok, "\n".join(lines))
        inst = Instance(env={"APP_HTTP_HOST": "0.0.0.0"}, workers=1, pool=0)
        inst.start(path="/healthz")
        try:
            self.assertEqual(listening(inst.port), ["00000000"])
        finally:
            ok, lines = inst.stop()
            self.assertTrue(ok, "\n".join(lines))

    def test_bad_settings_refuse_to_start(self):
        for env, message in (
                ({"APP_HTTP_HOST": "localhost"}, "APP_HTTP_HOST=localhost: expected an IPv4 or IPv6 address"),
                ({"APP_METRICS_KEYS": "ops"}, "set APP_API_KEYS_FILE"),
                ({"APP_API_KEYS_FILE": "/nonexistent/keys"}, "APP_API_KEYS_FILE /nonexistent/keys: No such file")):
            inst = Instance(env=env, workers=1, pool=0)
            try:
                with self.assertRaises(AssertionError) as ctx:
                    inst.start(timeout=20)
                self.assertIn(message, str(ctx.exception))
            finally:
                inst.stop()


class P16ExecutorChannel(E2E):
    """The worker reaches its executor directly, whatever proxy the service's
    environment names: a pod's bearer token, the code and its outputs went to
    `http_proxy` (libcurl's default), and with none listening every run failed."""

    def test_an_http_proxy_in_the_environment_is_not_used_for_executors(self):
        proxy = socket.socket()
        proxy.bind(("127.0.0.1", 0))
        proxy.listen(8)  # a proxy that takes connections and never answers
        url = "http://127.0.0.1:%d" % proxy.getsockname()[1]
        # the API server double, at 127.0.0.1, is left to its own choice (pods
        # of the double are at other 127.x addresses)
        inst = Instance(env={"http_proxy": url, "HTTP_PROXY": url, "all_proxy": url, "no_proxy": "127.0.0.1"},
                        backend=os.environ.get("E2E_BACKEND", "local"))
        try:
            inst.start()
            with inst.current():
                r = client.execute("print(6 * 7)", timeout=30, http_timeout=60)
            self.assertEqual((r.status, r.json.get("stdout")), (200, "42\n"), r.body[:500])
            proxy.settimeout(0)
            with self.assertRaises(BlockingIOError, msg="the service connected to the proxy"):
                proxy.accept()
        finally:
            proxy.close()
            ok, lines = inst.stop()
            inst.remove()
            self.assertTrue(ok, "\n".join(lines))
