#!/usr/bin/python3
"""Pool behaviour of the kubernetes backend, against the API server double.

    /usr/bin/python3 tests/k8s/test_pool.py --build build [-k PATTERN]

Each test class starts the double (tests/k8s/apiserver.py) and the service with
APP_EXECUTOR_BACKEND=kubernetes, then checks what the pool did through the
double's record of every pod: N executions create exactly N pods beyond the warm
target and every used one is deleted; a pod stuck in ImagePullBackOff is replaced;
injected 429/500/410/dropped connections are survived with no duplicate pod and
no lost execution; a rotated token is picked up; a killed service leaves pods that
its restart deletes; each pod answers only its own EXECUTOR_TOKEN (401 without it),
which is nowhere in the service's log or database and never seen by the code. Also validates the generated pod spec and the rendered k8s/
manifests against the Kubernetes schemas (node + npm kubernetes-models in
tests/k8s/node_modules; `make k8s-test` installs them). Last line:
`k8s-pool: N passed, M failed[, K skipped]`.

With --pods container --image IMAGE (make image-test) the double runs each pod
as a podman container of IMAGE; PodNetwork then checks that a pod reaches
nothing but its own network's answers to the service (no route out, no service
of the host, no other pod), and Manifests, which checks no pod, is left to
`make k8s-test`.
"""
import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import run as e2e_run  # noqa: E402  (start_double, free_port, get)

BUILD = os.path.join(REPO, "build")
TARGET = 2


def request(url, method, path, body=None, timeout=60, token=None):
    host, port = url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None), dict(r.getheaders())
    finally:
        conn.close()


def wait_for(what, fn, timeout=60):
    """Polls fn until it returns a true value; fails the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


class Instance:
    """The double plus one service, each in its own temp dir."""

    def __init__(self, extra_env=None):
        self.tmp = tempfile.mkdtemp(prefix="ci-k8s-pool-")
        os.chmod(self.tmp, 0o755)  # the workers' user passes through to the database (as tests/e2e/run.py)
        self.double, self.api, self.token_file = e2e_run.start_double(BUILD, os.path.join(self.tmp, "k8s"))
        self.leftovers = []  # what close() found of the double's containers (container mode)
        self.instance = "pool-" + secrets.token_hex(4)
        self.extra_env = extra_env or {}
        self.db = os.path.join(self.tmp, "db", "ci.db")
        self.proc = None
        self.start()

    def start(self):
        self.port = e2e_run.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env.update({
            "APP_HTTP_PORT": str(self.port), "APP_RUN_DIR": os.path.join(self.tmp, "run"),
            "APP_DB_PATH": self.db, "APP_FILE_STORAGE_PATH": os.path.join(self.tmp, "objects"),
            "APP_WORKERS": "4", "APP_PRELOAD_MODULES": "", "APP_DATA_DIR": REPO, "APP_LOG_LEVEL": "info",
            "APP_EXECUTOR_BACKEND": "kubernetes", "APP_KUBERNETES_API_URL": self.api,
            "APP_KUBERNETES_TOKEN_FILE": self.token_file, "APP_KUBERNETES_NAMESPACE": "default",
            "APP_KUBERNETES_INSTANCE": self.instance,
            "APP_EXECUTOR_POD_QUEUE_TARGET_LENGTH": str(TARGET), "APP_SANDBOX_START_TIMEOUT": "20",
        })
        if e2e_run.POD_IMAGE:
            env["APP_EXECUTOR_IMAGE"] = e2e_run.POD_IMAGE
        env.update(self.extra_env)
        self.log = open(os.path.join(self.tmp, "service.log"), "ab")
        self.proc = subprocess.Popen([os.path.join(BUILD, "code-interpreter")], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for("GET /readyz", lambda: self.ready(), 60)

    def ready(self):
        try:
            return e2e_run.get(self.port, "/readyz")[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def state(self):
        return request(self.api, "GET", "/admin/state")[1]

    def admin(self, path, body):
        st, out, _ = request(self.api, "POST", path, body)
        assert st == 200, (path, st, out)

    def execute(self, code="print(6 * 7)"):
        st, out, hdr = request("http://127.0.0.1:%d" % self.port, "POST", "/v1/execute",
                               {"source_code": code}, timeout=120)
        return st, out, hdr

    def get_pod(self, name):
        with open(self.token_file) as f:
            token = f.read().strip()
        st, pod, _ = request(self.api, "GET", "/api/v1/namespaces/default/pods/" + name, token=token)
        assert st == 200, (st, pod)
        return pod

    def live(self):
        return [p for p in self.state()["pods"] if p["labels"].get("code-interpreter/instance") == self.instance]

    def settled(self):
        """The pool is back to TARGET ready pods and nothing else of ours."""
        pods = self.live()
        return len(pods) == TARGET and all(p["ready"] and not p["deleting"] for p in pods)

    def executed_pods(self):
        with sqlite3.connect(self.db) as c:
            return [r[0] for r in c.execute("SELECT sandbox FROM executions WHERE sandbox IS NOT NULL")]

    def kill_hard(self):
        """SIGKILL to the service's whole process group: nothing gets to clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.log.close()

    def close(self):
        self.stop()
        self.double.send_signal(signal.SIGTERM)
        try:
            self.double.wait(60)
        except subprocess.TimeoutExpired:
            self.double.kill()
            self.double.wait()
        lines = []
        if not e2e_run.container_leftovers(self.double, lines):
            self.leftovers = lines
        if not os.environ.get("K8S_KEEP"):  # K8S_KEEP=1 keeps logs and state for a look
            shutil.rmtree(self.tmp, ignore_errors=True)


class PoolCase(unittest.TestCase):
    extra_env = None

    @classmethod
    def setUpClass(cls):
        cls.i = Instance(cls.extra_env)

    @classmethod
    def tearDownClass(cls):
        cls.i.close()
        assert not cls.i.leftovers, cls.i.leftovers

    def ok(self, code="print(6 * 7)", want="42\n"):
        st, out, _ = self.i.execute(code)
        self.assertEqual(st, 200, out)
        self.assertEqual(out["stdout"], want)
        self.assertEqual(out["exit_code"], 0)


class Accounting(PoolCase):
    def test_n_executions_create_n_pods_beyond_the_target_and_delete_each_used_one(self):
        wait_for("the warm pool", self.i.settled)
        before = self.i.state()["created"]
        self.assertEqual(before, TARGET)
        n = 6
        for k in range(n):
            self.ok("print(%d)" % k, "%d\n" % k)
        wait_for("the pool to settle", self.i.settled)
        st = self.i.state()
        self.assertEqual(st["created"], before + n, st["created_names"])
        used = self.i.executed_pods()
        self.assertEqual(len(used), n)
        self.assertEqual(len(set(used)), n, "a pod served two executions")
        live = {p["name"] for p in st["pods"]}
        for name in used:
            self.assertNotIn(name, live)
            self.assertIn(name, st["deleted_names"])

    def test_generated_pod_spec_matches_the_kubernetes_schema(self):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "kubernetes-models")):
            self.skipTest("tests/k8s/node_modules missing: run `make k8s-test` (npm install)")
        name = wait_for("a pod", lambda: self.i.live())[0]["name"]
        pod = self.i.get_pod(name)
        path = os.path.join(self.i.tmp, "pod.json")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": pod["metadata"]["name"], "labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}, f)
        r = subprocess.run(["node", os.path.join(HERE, "validate.mjs"), path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok   Pod/", r.stdout)


class Replacement(PoolCase):
    def test_pod_stuck_in_image_pull_backoff_is_replaced(self):
        wait_for("the warm pool", self.i.settled)
        self.i.admin("/admin/image-pull-failures", {"count": 1})
        self.ok()  # claims a warm pod; its replacement gets stuck
        stuck = wait_for("a pod in ImagePullBackOff", lambda: [
            p for p in self.i.live() if not p["ready"] and p["phase"] == "Pending" and not p["ip"]])
        name = stuck[0]["name"]
        wait_for("the stuck pod to be deleted", lambda: name in self.i.state()["deleted_names"])
        wait_for("the pool to settle", self.i.settled)
        self.ok()

    def test_evicted_ready_pod_is_replaced_and_never_handed_out(self):
        pods = wait_for("the warm pool", self.i.settled) and self.i.live()
        victim = pods[0]["name"]
        self.i.admin("/admin/pods/%s/fail" % victim, {"reason": "Evicted"})
        wait_for("the evicted pod to be deleted", lambda: victim in self.i.state()["deleted_names"])
        for _ in range(TARGET + 1):
            self.ok()
        self.assertNotIn(victim, self.i.executed_pods())


class Faults(PoolCase):
    def test_api_errors_and_dropped_connections_lose_nothing_and_duplicate_nothing(self):
        wait_for("the warm pool", self.i.settled)
        before = self.i.state()["created"]
        for f in ({"method": "POST", "status": 429, "retry_after": 1, "text": True, "count": 1},
                  {"method": "POST", "status": 500, "count": 1},
                  {"method": "POST", "drop": True, "after": True, "count": 1},   # created, answer lost
                  {"method": "POST", "drop": True, "count": 1},                  # lost before it arrived
                  {"method": "DELETE", "status": 503, "count": 1},
                  {"method": "DELETE", "drop": True, "after": True, "count": 1},
                  {"method": "GET", "watch": True, "status": 500, "count": 1}):
            self.i.admin("/admin/fault", f)
        n = 8
        for k in range(n):
            if k == 2:
                self.i.admin("/admin/expire", {"mode": "stream"})   # 410 in the stream
            if k == 4:
                self.i.admin("/admin/drop-watches", {})
            if k == 6:
                self.i.admin("/admin/expire", {"mode": "status"})   # 410 as the status
            self.ok("print(%d)" % k, "%d\n" % k)
        wait_for("the pool to settle", self.i.settled, 90)
        st = self.i.state()
        self.assertEqual(st["faults"], [], "not every injected fault was hit")
        self.assertEqual(st["created"], before + n, "duplicate pods: %s" % st["created_names"])
        self.assertEqual(len(self.i.live()), TARGET)
        for name in self.i.executed_pods():
            self.assertIn(name, st["deleted_names"])

    def test_rotated_token_is_picked_up(self):
        wait_for("the warm pool", self.i.settled)
        new = secrets.token_hex(16)
        tmp = self.i.token_file + ".new"
        with open(tmp, "w") as f:
            f.write(new + "\n")
        os.rename(tmp, self.i.token_file)           # as the kubelet rotates it
        self.i.admin("/admin/token", {"tokens": [new]})  # the old one is refused from now on
        created = self.i.state()["created"]
        for _ in range(3):
            self.ok()
        wait_for("new pods made with the new token", lambda: self.i.state()["created"] >= created + 3)
        wait_for("the pool to settle", self.i.settled)


class PodToken(PoolCase):
    """Each pod answers only the service: EXECUTOR_TOKEN in its spec, one per pod,
    sent by the workers, never in the service's log or database, never seen by
    the code."""
    extra_env = {"APP_LOG_LEVEL": "debug"}  # the most the service logs

    def pod_request(self, pod, method, path, body=None, token=None):
        return request("http://%s:8000" % pod["ip"], method, path, body, timeout=10, token=token)

    def test_pods_refuse_requests_without_their_own_token(self):
        wait_for("the warm pool", self.i.settled)
        pods = self.i.live()
        env = self.i.state()["created_env"]
        tokens = {p["name"]: env[p["name"]].get("EXECUTOR_TOKEN") for p in pods}
        for name, token in tokens.items():
            self.assertRegex(token or "", r"^[0-9a-f]{64}$", name)
        self.assertEqual(len(set(tokens.values())), len(pods), "two pods share a token")
        a, b = pods[0], pods[1]
        # the readiness probe's route stays open (it is how the pods became ready)
        st, out, _ = self.pod_request(a, "GET", "/healthz")
        self.assertEqual((st, out), (200, {"status": "ok"}))
        for token in (None, "0" * 64, tokens[a["name"]][:-1], tokens[b["name"]]):  # b's token does not open a
            for method, path, body in (("PUT", "/workspace/planted.py", None),
                                       ("GET", "/workspace/planted.py", None),
                                       ("POST", "/execute", {"source_code": "import os", "check_imports": True}),
                                       ("POST", "/execute", {"source_code": "open('/workspace/x', 'w')"})):
                st, out, hdr = self.pod_request(a, method, path, body, token)
                self.assertEqual(st, 401, (method, path, token, out))
                self.assertEqual(out, {"detail": "Not authenticated"})
                self.assertEqual(hdr.get("WWW-Authenticate"), "Bearer")
        # its own token opens it (a GET of nothing: the pod stays fresh for a client)
        st, _, _ = self.pod_request(a, "GET", "/workspace/missing.txt", token=tokens[a["name"]])
        self.assertEqual(st, 404)

    def test_executions_work_and_the_token_is_nowhere_else(self):
        wait_for("the warm pool", self.i.settled)
        for k in range(3):
            self.ok("print(%d)" % k, "%d\n" % k)
        # the code sees no token: not in its environment, not in the server's
        # (which a container pod's code, as the server's uid, may not read at
        # all: the server is not dumpable; the double's process pods run both
        # as root)
        st, out, _ = self.i.execute(
            "import os\ntry:\n    seen = b'EXECUTOR_TOKEN' in open('/proc/%d/environ' % os.getppid(), 'rb').read()\n"
            "except PermissionError:\n    seen = 'unreadable'\nprint(os.environ.get('EXECUTOR_TOKEN'), seen)")
        self.assertEqual((st, out.get("exit_code")), (200, 0), out)
        self.assertEqual(out["stdout"], "None unreadable\n" if e2e_run.POD_IMAGE else "None False\n")
        wait_for("the pool to settle", self.i.settled)
        env = self.i.state()["created_env"]
        used = self.i.executed_pods()
        self.assertGreaterEqual(len(used), 4)
        tokens = {name: e.get("EXECUTOR_TOKEN") for name, e in env.items()}
        for name in used:
            self.assertRegex(tokens.get(name) or "", r"^[0-9a-f]{64}$", name)
        with open(os.path.join(self.i.tmp, "service.log"), "rb") as f:
            log = f.read()
        self.assertIn(b"created", log)  # the debug log is there to look into
        db = b""
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.i.db + suffix):
                with open(self.i.db + suffix, "rb") as f:
                    db += f.read()
        self.assertIn(used[0].encode(), db)  # the pod's name is, its token is not
        for name, token in tokens.items():
            self.assertNotIn(token.encode(), log, "the token of %s is in the service's log" % name)
            self.assertNotIn(token.encode(), db, "the token of %s is in the database" % name)


class Restart(unittest.TestCase):
    def test_killed_service_leaves_pods_that_its_restart_deletes(self):
        i = Instance()
        try:
            wait_for("the warm pool", i.settled)
            old = {p["name"] for p in i.live()}
            i.kill_hard()
            self.assertEqual({p["name"] for p in i.live()}, old, "pods vanished without a delete")
            i.start()  # same instance identity, same database
            wait_for("the orphans to be deleted", lambda: not (old & {p["name"] for p in i.live()}))
            wait_for("the pool to settle", i.settled)
            st = i.state()
            for name in old:
                self.assertIn(name, st["deleted_names"])
            i.stop()
            wait_for("every pod deleted at shutdown", lambda: not i.live(), 20)
        finally:
            i.close()


class InstallerSweep(unittest.TestCase):
    def test_a_start_deletes_its_ended_installer_pods_only(self):
        i = Instance()
        try:
            wait_for("the warm pool", i.settled)
            with open(i.token_file) as f:
                token = f.read().strip()
            model = i.get_pod(i.live()[0]["name"])
            names = {}
            for what, owner in (("ended", i.instance), ("running", i.instance), ("other", "pool-someone-else")):
                name = "code-executor-install-%s-%s" % (what, secrets.token_hex(3))
                labels = {"app.kubernetes.io/managed-by": "code-interpreter",
                          "app.kubernetes.io/name": "code-interpreter-installer",
                          "code-interpreter/installer-of": owner}
                st, out, _ = request(i.api, "POST", "/api/v1/namespaces/default/pods",
                                     {"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": name, "labels": labels}, "spec": model["spec"]},
                                     token=token)
                self.assertEqual(st, 201, out)
                names[what] = name
            for name in names.values():
                wait_for("%s running" % name, lambda n=name: i.get_pod(n)["status"].get("phase") == "Running")
            i.admin("/admin/pods/%s/fail" % names["ended"], {"reason": "DeadlineExceeded"})
            i.admin("/admin/pods/%s/fail" % names["other"], {"reason": "DeadlineExceeded"})
            i.stop()
            i.start()
            wait_for("the ended installer pod deleted", lambda: names["ended"] in i.state()["deleted_names"])
            wait_for("the pool to settle", i.settled)
            deleted = i.state()["deleted_names"]
            # one that still runs may be an install in progress; another instance's is not ours
            self.assertNotIn(names["running"], deleted)
            self.assertNotIn(names["other"], deleted)
            for what in ("running", "other"):
                st, _, _ = request(i.api, "DELETE", "/api/v1/namespaces/default/pods/" + names[what], token=token)
                self.assertEqual(st, 200)
        finally:
            i.close()


PROBE_NET = r'''
import json, socket, time
out = {}
def attempt(key, host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(3)
    t = time.monotonic()
    try:
        s.connect((host, port))
        out[key] = ["connected", 0]
    except OSError as e:
        out[key] = [type(e).__name__ + ":" + str(e.errno), round(time.monotonic() - t, 2)]
    s.close()
def mine(ip):
    try:
        socket.socket().bind((ip, 0))
        return True
    except OSError:
        return False
attempt("outside", "1.1.1.1", 53)
attempt("host_address", %(host_address)r, %(port)d)
attempt("gateway", %(gateway)r, %(port)d)
attempt("service_on_gateway", %(gateway)r, %(service_port)d)
for ip in %(pods)r:
    if not mine(ip):
        attempt("pod " + ip, ip, 8000)
routes = [l.split()[1] for l in open("/proc/net/route").read().splitlines()[1:]]
out["default_route"] = "00000000" in routes
print(json.dumps(out))
'''


class PodNetwork(PoolCase):
    """Only the service reaches a pod: from a pod's code, no route out, no
    service of the host (its side of the bridge included), no other pod; the
    host reaches each pod's port 8000."""

    @classmethod
    def setUpClass(cls):
        if e2e_run.POD_IMAGE:
            super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        if e2e_run.POD_IMAGE:
            super().tearDownClass()

    def setUp(self):
        if not e2e_run.POD_IMAGE:
            self.skipTest("pods are processes on the host's loopback without --pods container")

    def test_a_pod_reaches_nothing_but_answers_the_host(self):
        import socket
        wait_for("the warm pool", self.i.settled)
        pods = self.i.live()
        gateway = self.i.get_pod(pods[0]["name"])["status"]["hostIP"]
        for p in pods:  # the host (the service's side) reaches every pod
            st, out, _ = request("http://%s:8000" % p["ip"], "GET", "/healthz", timeout=5)
            self.assertEqual((st, out), (200, {"status": "ok"}), p)
        # a service of the host on every address, which the host itself reaches
        srv = socket.socket()
        srv.bind(("0.0.0.0", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        host_address = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True,
                                      text=True).stdout.split(" src ")[1].split()[0]
        try:
            socket.create_connection((gateway, port), 2).close()
            code = PROBE_NET % {"host_address": host_address, "gateway": gateway, "port": port,
                                "service_port": self.i.port, "pods": [p["ip"] for p in pods]}
            st, out, _ = self.i.execute(code)
        finally:
            srv.close()
        self.assertEqual(st, 200, out)
        self.assertEqual(out["exit_code"], 0, out)
        res = json.loads(out["stdout"])
        self.assertFalse(res.pop("default_route"), "a pod has a default route")
        self.assertEqual(len([k for k in res if k.startswith("pod ")]), len(pods) - 1, res)
        for key, (what, _) in res.items():
            self.assertNotEqual(what, "connected", "a pod reached %s: %s" % (key, res))
        # no route at all out of its subnet: refused at once, not timed out
        for key in ("outside", "host_address"):
            self.assertTrue(res[key][0].endswith(":101"), res)  # ENETUNREACH

    def test_the_bridge_keeps_its_address_while_ports_come_and_go(self):
        """The gateway's MAC address, which each pod resolved at its first
        answer, stays while ports join and leave the bridge. A bridge whose
        address was never set takes its lowest port's: once the pod whose veth
        held it was deleted, the other pods' answers went to an address
        nothing had (lost until a pod probed its neighbour entry again, 30-90
        s: calls under `make image-test` failed with curl's timeout). Here a
        port with the lowest address there is joins (without the fix the
        bridge takes its address: the first check fails) and leaves; then
        every pod still answers."""
        wait_for("the warm pool", self.i.settled)
        pods = self.i.live()
        gateway = self.i.get_pod(pods[0]["name"])["status"]["hostIP"]
        bridge = subprocess.run(["ip", "-o", "-4", "addr", "show", "to", gateway], capture_output=True,
                                text=True, check=True).stdout.split()[1]

        def address():
            with open("/sys/class/net/%s/address" % bridge) as f:
                return f.read().strip()
        before = address()
        port = "ci-mac-%d" % os.getpid()
        subprocess.run(["ip", "link", "add", port, "address", "02:00:00:00:00:01", "type", "veth", "peer",
                        "name", port + "p"], check=True)
        try:
            subprocess.run(["ip", "link", "set", port, "master", bridge, "up"], check=True)
            self.assertEqual(address(), before, "the bridge took the address of a port that joined")
        finally:
            subprocess.run(["ip", "link", "del", port], check=False)
        self.assertEqual(address(), before, "the bridge's address changed when a port left")
        for p in pods:
            st, out, _ = request("http://%s:8000" % p["ip"], "GET", "/healthz", timeout=5)
            self.assertEqual((st, out), (200, {"status": "ok"}), p)


class Manifests(unittest.TestCase):
    def test_kustomize_renders_and_objects_match_the_kubernetes_schemas(self):
        if e2e_run.POD_IMAGE:
            self.skipTest("checks no pod: `make k8s-test` runs it")
        if not shutil.which("kubectl"):
            self.skipTest("kubectl is not installed")
        r = subprocess.run(["kubectl", "kustomize", os.path.join(REPO, "k8s")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        import yaml
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        kinds = sorted(d["kind"] for d in docs)
        self.assertEqual(kinds, ["Namespace", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "PersistentVolumeClaim",
                                 "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "Service",
                                 "ServiceAccount", "StatefulSet"])
        # runs' pods reach nothing; installers' only HTTPS outside the cluster's
        # private ranges and DNS; both answer only the service
        policies = {d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: d["spec"]
                    for d in docs if d["kind"] == "NetworkPolicy"}
        self.assertEqual(policies["code-interpreter-executor"]["egress"], [])
        installer = policies["code-interpreter-installer"]
        self.assertEqual(installer["policyTypes"], ["Ingress", "Egress"])
        self.assertIn("10.0.0.0/8", installer["egress"][0]["to"][0]["ipBlock"]["except"])
        self.assertEqual(installer["egress"][0]["ports"], [{"protocol": "TCP", "port": 443}])
        for spec in (policies["code-interpreter-executor"], installer):
            self.assertEqual(spec["ingress"][0]["from"][0]["podSelector"]["matchLabels"],
                             {"app.kubernetes.io/name": "code-interpreter"})
        # replicas: the objects on one ReadWriteMany claim every replica mounts,
        # the database on a volume of each replica's own, never the shared one
        sts = [d for d in docs if d["kind"] == "StatefulSet"][0]
        self.assertGreaterEqual(sts["spec"]["replicas"], 2)
        deploy = sts["spec"]["template"]["spec"]
        env = {e["name"]: e for e in deploy["containers"][0]["env"]}
        mounts = {m["name"]: m["mountPath"] for m in deploy["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in deploy["volumes"]}
        pvc = [d for d in docs if d["kind"] == "PersistentVolumeClaim"][0]
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteMany"])
        self.assertEqual(volumes["objects"]["persistentVolumeClaim"]["claimName"], pvc["metadata"]["name"])
        self.assertEqual(env["APP_FILE_STORAGE_PATH"]["value"], mounts["objects"])
        own = [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]
               if t["spec"]["accessModes"] == ["ReadWriteOnce"]]
        self.assertIn("data", own)
        self.assertNotIn("data", volumes)  # from the template: one per replica
        self.assertTrue(env["APP_DB_PATH"]["value"].startswith(mounts["data"] + "/"), env["APP_DB_PATH"])
        self.assertFalse(env["APP_DB_PATH"]["value"].startswith(mounts["objects"] + "/"))
        self.assertTrue(env["APP_PACKAGE_CACHE"]["value"].startswith(mounts["data"] + "/"))
        pdb = [d for d in docs if d["kind"] == "PodDisruptionBudget"][0]
        self.assertEqual(pdb["spec"]["selector"], sts["spec"]["selector"])
        headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
        self.assertEqual([d["metadata"]["name"] for d in headless], [sts["spec"]["serviceName"]])
        resources = deploy["containers"][0]["resources"]
        self.assertTrue(resources["requests"] and resources["limits"], resources)
        # the service pod listens on every interface, so it has keys, from the Secret,
        # which ships without any (the service refuses to start until one is put in)
        self.assertEqual(env["APP_HTTP_HOST"]["value"], "0.0.0.0")
        keys_dir = [m for m in deploy["containers"][0]["volumeMounts"] if m["name"] == "api-keys"][0]["mountPath"]
        self.assertEqual(env["APP_API_KEYS_FILE"]["value"], keys_dir + "/api-keys")
        secret = [d for d in docs if d["kind"] == "Secret"][0]
        self.assertEqual([line for line in secret["stringData"]["api-keys"].splitlines()
                          if line.strip() and not line.startswith("#")], [])
        role = [d for d in docs if d["kind"] == "Role"][0]
        self.assertEqual(role["rules"], [{"apiGroups": [""], "resources": ["pods"],
                                          "verbs": ["create", "get", "list", "watch", "delete"]}])
        np = [d for d in docs if d["metadata"]["name"] == "code-interpreter-executors"][0]
        self.assertEqual(np["spec"]["egress"], [])
        self.assertIn("Egress", np["spec"]["policyTypes"])
        if not os.path.isdir(os.path.join(HERE, "node_modules", "kubernetes-models")):
            self.skipTest("tests/k8s/node_modules missing: run `make k8s-test` (npm install)")
        extra = []
        for f in ("runtimeclass-gvisor.yaml", "executor-pod.example.yaml"):
            with open(os.path.join(REPO, "k8s", f)) as fh:
                extra += [d for d in yaml.safe_load_all(fh) if d]
        path = tempfile.mktemp(suffix=".json")
        with open(path, "w") as fh:
            json.dump(docs + extra, fh)
        v = subprocess.run(["node", os.path.join(HERE, "validate.mjs"), path], capture_output=True, text=True)
        os.unlink(path)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertEqual(v.stdout.count("ok   "), len(docs) + len(extra), v.stdout)


def main():
    global BUILD
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", dest="pattern", action="append", default=[])
    ap.add_argument("--pods", choices=["process", "container"], default="process",
                    help="container: each pod a podman container of --image (make image-test)")
    ap.add_argument("--image", help="with --pods container: the executor image")
    args = ap.parse_args()
    if args.pods == "container" and not args.image:
        ap.error("--pods container needs --image")
    e2e_run.POD_IMAGE = args.image if args.pods == "container" else None
    BUILD = os.path.abspath(args.build)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = [p if "*" in p else "*%s*" % p for p in args.pattern]
    suite = loader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    bad = len(result.failures) + len(result.errors)
    skipped = len(result.skipped)
    line = "k8s-pool: %d passed, %d failed" % (result.testsRun - bad - skipped, bad)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
