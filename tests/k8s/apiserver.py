#!/usr/bin/python3
"""A test double of the Kubernetes API server, for the pods the service uses.

    /usr/bin/python3 tests/k8s/apiserver.py --executor build/executor --port-file F
        [--port 0] [--token-file T] [--state-dir D] [--data-dir REPO] [--start-delay S]
        [--pods container --image IMAGE [--podman-id ID]]

Serves, like the real one, every call the service's client makes on
/api/v1/namespaces/{ns}/pods: create (201 with uid and resourceVersion; 409
AlreadyExists, 422 Invalid, 403 Forbidden as Status objects), get, list with
labelSelector, watch (chunked newline-delimited JSON, events split across chunks,
BOOKMARKs, 410 Expired in the stream or as a status, closed at timeoutSeconds),
delete (returns the pod, then DELETED). Bearer tokens are checked (401 Status).
Discovery (/version, /api, /api/v1, /apis) is enough for `kubectl --server`.

Each pod "runs": a real `executor serve --host 127.A.B.N --port 8000 --lockdown
none` is started for it, with the container's env (EXECUTOR_TOKEN included), in a
mount namespace where its own directory is bind-mounted on /workspace, and
another on the mountPath of its "packages" emptyDir when it has one (so this
needs root, and creates the empty mount points), and its status goes Pending ->
Running -> Ready once the executor's /healthz answers (no header, as the
kubelet's probe), with podIP 127.A.B.N. GET /admin/state's created_env and
created_labels keep each created pod's container env and labels by name,
after its deletion too.

With --pods container (as root, podman set up as scripts/images.sh does), each
pod is instead a container of IMAGE started from its spec as a kubelet would
(tests/k8s/podman_pods.py: securityContext, resources, emptyDirs as tmpfs,
command, args and env as given, so `--lockdown process` runs), on an internal
podman network named ID that only the host reaches; podIP is its address
there, and a deletion is `podman rm -f -t 0`. At exit no container, network or
firewall rule of ID is left.

Test hooks (no auth) under /admin: GET /admin/state; POST /admin/fault
{"method","path","status","retry_after","count","drop","after","text"};
POST /admin/token {"tokens": [...]}; POST /admin/expire {"mode":"stream"|"status"};
POST /admin/drop-watches; POST /admin/image-pull-failures {"count": n};
POST /admin/pods/NAME/fail {"reason": "Evicted"}.
A test double, not product code: standard library only.
"""
import argparse
import copy
import datetime
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

RUNNER_DIR = "/opt/code-interpreter/python"  # where the executor image keeps runner.py
BIN_DIR = "/opt/code-interpreter/bin"  # and executor/bin (upstream's pandoc wrapper)
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


def parse_selector(sel):
    """[(key, op, value)] for k=v, k==v, k!=v, k, !k."""
    out = []
    for part in [p.strip() for p in (sel or "").split(",") if p.strip()]:
        if "!=" in part:
            k, v = part.split("!=", 1)
            out.append((k.strip(), "!=", v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            out.append((k.strip(), "=", v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            out.append((k.strip(), "=", v.strip()))
        elif part.startswith("!"):
            out.append((part[1:].strip(), "!", None))
        else:
            out.append((part, "exists", None))
    return out


def matches(labels, sel):
    for k, op, v in sel:
        have = labels.get(k)
        if op == "=" and have != v:
            return False
        if op == "!=" and have == v:
            return False
        if op == "exists" and have is None:
            return False
        if op == "!" and have is not None:
            return False
    return True


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()
        self.rv = 1
        self.pods = {}          # (ns, name) -> pod
        self.procs = {}         # (ns, name) -> Popen
        self.events = []        # (rv, ns, type, pod)
        self.expired_before = 0  # watches from an rv below this get 410
        self.expire_mode = "stream"
        self.watch_generation = 0  # bumped to cut or expire running watches
        self.watch_cut = "none"
        self.faults = []
        self.tokens = set()
        self.image_pull_failures = 0
        self.containers = None  # podman_pods.Pods with --pods container
        self.stats = {"created": 0, "deleted": 0, "requests": {}, "max_live": 0, "watches": 0,
                      "created_names": [], "deleted_names": [], "created_env": {},
                      "created_labels": {}}
        self.ip_base = "127.%d.%d" % (random.randint(100, 250), random.randint(1, 250))
        self.free_ips = ["%s.%d" % (self.ip_base, n) for n in range(2, 255)]
        if args.token_file:
            with open(args.token_file) as f:
                self.tokens.add(f.read().strip())

    def next_rv(self):
        self.rv += 1
        return self.rv

    def emit(self, ns, type_, pod):
        """Records an event (lock held) and wakes the watches."""
        rv = self.next_rv()
        pod["metadata"]["resourceVersion"] = str(rv)
        self.events.append((rv, ns, type_, copy.deepcopy(pod)))
        if len(self.events) > 5000:
            self.events = self.events[-4000:]
            self.expired_before = max(self.expired_before, self.events[0][0])
        self.lock.notify_all()


S = None  # the State


# ---- pods -------------------------------------------------------------------

def set_ready(pod, ready):
    conds = pod["status"].setdefault("conditions", [])
    for c in conds:
        if c["type"] in ("Ready", "ContainersReady"):
            c["status"] = "True" if ready else "False"
            c["lastTransitionTime"] = now_iso()


def set_waiting(ns, pod, reason, message):
    """The container waits for good (lock held): ImagePullBackOff and the like."""
    pod["status"]["containerStatuses"] = [{
        "name": "executor", "ready": False, "restartCount": 0,
        "image": pod["spec"]["containers"][0].get("image", ""), "imageID": "",
        "state": {"waiting": {"reason": reason, "message": message}}}]
    S.emit(ns, "MODIFIED", pod)


def pull_failure(ns, pod):
    """The /admin/image-pull-failures hook (lock held): True when this pod got one."""
    if S.image_pull_failures <= 0:
        return False
    S.image_pull_failures -= 1
    set_waiting(ns, pod, "ImagePullBackOff", "Back-off pulling image (test double)")
    return True


def mark_running(ns, pod, ip, host_ip="127.0.0.1"):
    """Running with its IP, not yet Ready (lock held)."""
    pod["status"].update({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip,
                          "startTime": now_iso()})
    pod["status"]["containerStatuses"] = [{
        "name": "executor", "ready": False, "restartCount": 0, "started": True,
        "image": pod["spec"]["containers"][0].get("image", ""), "imageID": "",
        "state": {"running": {"startedAt": now_iso()}}}]
    S.emit(ns, "MODIFIED", pod)


def run_pod(ns, name):
    """The kubelet: takes the pod from Pending to Ready, or to a failure."""
    if S.containers is not None:
        return run_container_pod(ns, name)
    key = (ns, name)
    time.sleep(S.args.start_delay)
    with S.lock:
        pod = S.pods.get(key)
        if not pod or pod["metadata"].get("deletionTimestamp"):
            return
        if pull_failure(ns, pod):
            return
        if not S.free_ips:
            return
        ip = S.free_ips.pop(0)
        c = pod["spec"]["containers"][0]
        # the container's env as the kubelet gives it (EXECUTOR_TOKEN among it:
        # the executor then refuses every request but /healthz without it)
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_") and k != "EXECUTOR_TOKEN"}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
        env["APP_DATA_DIR"] = S.args.data_dir
        ws = os.path.join(S.args.state_dir, name, "workspace")
        os.makedirs(ws, exist_ok=True)
        log = open(os.path.join(S.args.state_dir, name, "executor.log"), "wb")
        # like a pod's emptyDir: the pod's own directory at /workspace, in a mount
        # namespace of its own (the code uses absolute /workspace paths)
        # the container's args, with no lock-down (the double is not a container
        # runtime) and bound to the pod's own address
        args = list(c.get("args") or ["serve"])
        if "--lockdown" in args:
            args[args.index("--lockdown") + 1] = "none"
        else:
            args += ["--lockdown", "none"]
        cmd = [S.args.executor] + args + ["--host", ip]
        # the image's runner and bin directories, as executor/Dockerfile installs them
        binds = [(ws, "/workspace"), (os.path.join(S.args.data_dir, "executor", "python"), RUNNER_DIR),
                 (os.path.join(S.args.data_dir, "executor", "bin"), BIN_DIR)]
        # the packages emptyDir, when the spec has one: the pod's own directory (0777, as the kubelet's)
        for m in c.get("volumeMounts") or []:
            if m.get("name") == "packages":
                own = os.path.join(S.args.state_dir, name, "packages")
                os.makedirs(own, exist_ok=True)
                os.chmod(own, 0o777)
                os.makedirs(m["mountPath"], exist_ok=True)
                binds.append((own, m["mountPath"]))
        script = " && ".join('mount --bind "$%d" %s' % (i, dst) for i, (_, dst) in enumerate(binds))
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
               script + ' && shift %d && exec "$@"' % (len(binds) - 1)] + [src for src, _ in binds] + cmd
        proc = subprocess.Popen(cmd,
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        S.procs[key] = proc
        S.stats["max_live"] = max(S.stats["max_live"], len(S.procs))
        mark_running(ns, pod, ip)
    probe_until_ready(key, proc, ip)
    report_exit(key, proc)


def probe_until_ready(key, proc, ip):
    """The readiness probe, GET /healthz on port 8000 with no header: the pod is
    Ready once it answers 200. True then, False if proc ended or 120 s passed."""
    ns = key[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            conn = http.client.HTTPConnection(ip, 8000, timeout=2)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
        except OSError:
            ok = False
        if ok:
            with S.lock:
                pod = S.pods.get(key)
                if pod and not pod["metadata"].get("deletionTimestamp"):
                    set_ready(pod, True)
                    pod["status"]["containerStatuses"][0]["ready"] = True
                    S.emit(ns, "MODIFIED", pod)
            return True
        time.sleep(0.02)
    return False


def report_exit(key, proc):
    """The container's life: a death is reported as the kubelet would."""
    ns = key[0]
    rc = proc.wait()
    with S.lock:
        pod = S.pods.get(key)
        if pod and not pod["metadata"].get("deletionTimestamp") and pod["status"]["phase"] == "Running":
            set_ready(pod, False)
            pod["status"]["phase"] = "Failed" if rc else "Succeeded"
            pod["status"]["containerStatuses"][0]["state"] = {
                "terminated": {"exitCode": rc, "reason": "Error" if rc else "Completed"}}
            S.emit(ns, "MODIFIED", pod)


def stop_proc(key):
    """Kills a pod's executor (lock held by the caller or not: only Popen calls)."""
    proc = S.procs.pop(key, None)
    pod = S.pods.get(key)
    if pod and pod["status"].get("podIP"):
        S.free_ips.append(pod["status"]["podIP"])
    return proc


def reap(proc):
    if proc is None:
        return
    if S.containers is not None:
        return remove_container(proc)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except OSError:
        pass


def new_pod(ns, body):
    md = body.get("metadata") or {}
    pod = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": md["name"], "namespace": ns, "uid": str(uuid.uuid4()),
                     "creationTimestamp": now_iso(), "labels": md.get("labels") or {},
                     "annotations": md.get("annotations") or {}},
        "spec": copy.deepcopy(body.get("spec") or {}),
        "status": {"phase": "Pending", "qosClass": "Burstable",
                   "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_iso()},
                                  {"type": "Initialized", "status": "True", "lastTransitionTime": now_iso()},
                                  {"type": "Ready", "status": "False", "lastTransitionTime": now_iso()},
                                  {"type": "ContainersReady", "status": "False",
                                   "lastTransitionTime": now_iso()}]},
    }
    if md.get("ownerReferences"):
        pod["metadata"]["ownerReferences"] = md["ownerReferences"]
    pod["spec"].setdefault("nodeName", "test-double-node")
    return pod


def validate(body):
    """A 422 Status for a pod the real server would refuse, else None."""
    causes = []
    md = body.get("metadata") if isinstance(body, dict) else None
    name = (md or {}).get("name", "")
    if body.get("kind") not in (None, "Pod") or body.get("apiVersion") not in (None, "v1"):
        causes.append({"reason": "FieldValueInvalid", "message": "not a v1 Pod", "field": "kind"})
    if not name or len(name) > 253 or not NAME_RE.match(name):
        causes.append({"reason": "FieldValueInvalid", "message": "Invalid value: %r" % name,
                       "field": "metadata.name"})
    for k, v in ((md or {}).get("labels") or {}).items():
        if not isinstance(v, str) or len(v) > 63 or not re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", v):
            causes.append({"reason": "FieldValueInvalid", "message": "Invalid label value %r" % v,
                           "field": "metadata.labels"})
    spec = body.get("spec") or {}
    cs = spec.get("containers")
    if not isinstance(cs, list) or not cs:
        causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"})
    else:
        for i, c in enumerate(cs):
            if not c.get("name") or not c.get("image"):
                causes.append({"reason": "FieldValueRequired", "message": "Required value",
                               "field": "spec.containers[%d].image" % i})
    if causes:
        return status_obj(422, "Invalid", 'Pod "%s" is invalid: %s' % (name, causes[0]["message"]),
                          {"name": name, "kind": "pods", "causes": causes})
    return None


# ---- pods as containers (--pods container) ----------------------------------
# Each pod a container of --image, made by tests/k8s/podman_pods.py from the
# pod's spec (securityContext, resources, emptyDirs, command, args and env as
# given: the executor's own `--lockdown process` runs), on a network that only
# the host reaches; its IP there is status.podIP. Here is the kubelet's part:
# start it outside the lock (podman takes a few tenths of a second), then the
# same readiness probe and life as a process pod; a deletion is `podman rm -f
# -t 0`. Each pod's times go to /admin/state's container_times, its log to
# STATE_DIR/logs/NAME.log.

def run_container_pod(ns, name):
    key = (ns, name)
    begin = time.monotonic()
    time.sleep(S.args.start_delay)
    with S.lock:
        pod = S.pods.get(key)
        if not pod or pod["metadata"].get("deletionTimestamp") or pull_failure(ns, pod):
            return
        spec = copy.deepcopy(pod["spec"])
        labels = dict(pod["metadata"].get("labels") or {})
    pod_dir = os.path.join(S.args.state_dir, name)
    os.makedirs(pod_dir, exist_ok=True)
    log = os.path.join(pod_dir, "executor.log")
    try:
        proc, ip = S.containers.start(name, spec, log, begin, labels)
        proc.log = log
    except S.containers.SpecError as e:
        with S.lock:
            pod = S.pods.get(key)
            if pod and not pod["metadata"].get("deletionTimestamp"):
                set_waiting(ns, pod, e.reason, str(e))
        return
    with S.lock:
        pod = S.pods.get(key)
        gone = not pod or pod["metadata"].get("deletionTimestamp")
        if not gone:
            S.procs[key] = proc
            S.stats["max_live"] = max(S.stats["max_live"], len(S.procs))
            mark_running(ns, pod, ip, S.containers.gateway)
    if gone:  # deleted while podman started it
        return reap(proc)
    if probe_until_ready(key, proc, ip):
        proc.times["ready"] = time.monotonic()
    report_exit(key, proc)


def remove_container(proc):
    """A pod's deletion; its times (seconds) and its log kept."""
    proc.remove()
    logs = os.path.join(S.args.state_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    try:
        os.replace(proc.log, os.path.join(logs, os.path.basename(os.path.dirname(proc.log)) + ".log"))
    except OSError:
        pass
    t = proc.times
    rec = {"run": t.get("running", t["removed"]) - t["begin"], "remove": t["removed"] - t["deleted"]}
    if "ready" in t:
        rec["ready"] = t["ready"] - t["begin"]
        rec["ready_to_delete"] = t["deleted"] - t["ready"]
    with S.lock:
        S.stats.setdefault("container_times", []).append(rec)


# ---- HTTP -------------------------------------------------------------------

POD_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if S.args.verbose:
            sys.stderr.write("apiserver: " + (fmt % a) + "\n")

    # -- plumbing
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def send_json(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, code, text, headers=None):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        """Closes the connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def fault(self, method, path):
        with S.lock:
            for f in S.faults:
                if f.get("count", 1) <= 0:
                    continue
                if f.get("method") and f["method"] != method:
                    continue
                if f.get("path") and f["path"] not in path:
                    continue
                if f.get("watch") is not None and f["watch"] != ("watch=" in path):
                    continue
                f["count"] = f.get("count", 1) - 1
                S.stats.setdefault("faults_fired", 0)
                S.stats["faults_fired"] += 1
                return dict(f)
        return None

    def authorized(self):
        if not S.tokens:
            return True
        h = self.headers.get("Authorization", "")
        return h.startswith("Bearer ") and h[7:].strip() in S.tokens

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        with S.lock:
            S.stats["requests"][method] = S.stats["requests"].get(method, 0) + 1
        if url.path.startswith("/admin/"):
            return self.admin(method, url.path)
        if not self.authorized():
            self.body()
            return self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
        f = self.fault(method, self.path)
        if f and f.get("drop") and not f.get("after"):
            self.body()
            return self.drop()
        if f and f.get("status"):
            self.body()
            hdr = {"Retry-After": str(f["retry_after"])} if f.get("retry_after") is not None else {}
            if f.get("text"):
                return self.send_text(f["status"], "Too many requests, please try again later.\n", hdr)
            reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                      410: "Expired", 403: "Forbidden"}.get(f["status"], "InternalError")
            return self.send_json(f["status"], status_obj(f["status"], reason, "injected by the test double"), hdr)
        after_drop = bool(f and f.get("drop") and f.get("after"))
        if url.path == "/version":
            return self.send_json(200, {"major": "1", "minor": "29", "gitVersion": "v1.29.0-testdouble",
                                        "platform": "linux/amd64"})
        if url.path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if url.path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if url.path == "/api/v1":
            return self.send_json(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                 "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["po"]}]})
        m = POD_PATH.match(url.path)
        if not m:
            self.body()
            return self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
        ns, name = urllib.parse.unquote(m.group(1)), m.group(2) and urllib.parse.unquote(m.group(2))
        if ns in S.args.forbid:
            self.body()
            return self.send_json(403, status_obj(403, "Forbidden", 'pods is forbidden: User cannot %s pods '
                                                  'in the namespace "%s"' % (method.lower(), ns)))
        if method == "POST" and not name:
            return self.create(ns, after_drop)
        if method == "GET" and not name and q.get("watch") in ("1", "true"):
            return self.watch(ns, q)
        if method == "GET" and not name:
            return self.list(ns, q)
        if method == "GET":
            with S.lock:
                pod = copy.deepcopy(S.pods.get((ns, name)))
            if not pod:
                return self.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name,
                                                      {"name": name, "kind": "pods"}))
            return self.send_json(200, pod)
        if method == "DELETE" and name:
            return self.delete(ns, name, after_drop)
        self.body()
        return self.send_json(405, status_obj(405, "MethodNotAllowed", "method not allowed"))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    # -- pods
    def create(self, ns, after_drop):
        body = self.body()
        if not isinstance(body, dict):
            return self.send_json(400, status_obj(400, "BadRequest", "the body is not a JSON object"))
        bad = validate(body)
        if bad:
            return self.send_json(422, bad)
        name = body["metadata"]["name"]
        with S.lock:
            if (ns, name) in S.pods:
                return self.send_json(409, status_obj(409, "AlreadyExists", 'pods "%s" already exists' % name,
                                                      {"name": name, "kind": "pods"}))
            pod = new_pod(ns, body)
            S.pods[(ns, name)] = pod
            S.stats["created"] += 1
            S.stats["created_names"].append(name)
            # what each pod was created with, kept after its deletion (tests look
            # for its EXECUTOR_TOKEN where it must not be)
            cs = (body.get("spec") or {}).get("containers") or [{}]
            S.stats["created_env"][name] = {e.get("name"): e.get("value") for e in cs[0].get("env") or []
                                            if isinstance(e, dict)}
            S.stats["created_labels"][name] = dict((body.get("metadata") or {}).get("labels") or {})
            S.emit(ns, "ADDED", pod)
            out = copy.deepcopy(pod)
        threading.Thread(target=run_pod, args=(ns, name), daemon=True).start()
        if after_drop:
            return self.drop()
        self.send_json(201, out)

    def list(self, ns, q):
        sel = parse_selector(q.get("labelSelector"))
        with S.lock:
            items = [copy.deepcopy(p) for (n, _), p in sorted(S.pods.items()) if n == ns
                     and matches(p["metadata"].get("labels", {}), sel)]
            rv = str(S.rv)
        self.send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv},
                             "items": items})

    def delete(self, ns, name, after_drop):
        opts = self.body() or {}
        grace = opts.get("gracePeriodSeconds") if isinstance(opts, dict) else None
        with S.lock:
            pod = S.pods.get((ns, name))
            if not pod:
                return self.send_json(404, status_obj(404, "NotFound", 'pods "%s" not found' % name,
                                                      {"name": name, "kind": "pods"}))
            if not pod["metadata"].get("deletionTimestamp"):
                pod["metadata"]["deletionTimestamp"] = now_iso()
                pod["metadata"]["deletionGracePeriodSeconds"] = grace if grace is not None else 30
                S.emit(ns, "MODIFIED", pod)
            out = copy.deepcopy(pod)
            proc = stop_proc((ns, name))
        threading.Thread(target=self.finish_delete, args=(ns, name, proc), daemon=True).start()
        if after_drop:
            return self.drop()
        self.send_json(200, out)

    @staticmethod
    def finish_delete(ns, name, proc):
        reap(proc)
        with S.lock:
            pod = S.pods.pop((ns, name), None)
            if pod:
                S.stats["deleted"] += 1
                S.stats["deleted_names"].append(name)
                S.emit(ns, "DELETED", pod)
        shutil.rmtree(os.path.join(S.args.state_dir, name), ignore_errors=True)

    # -- watch
    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_event(self, type_, obj):
        line = json.dumps({"type": type_, "object": obj}).encode() + b"\n"
        half = max(1, len(line) // 2)  # split JSON across chunks, as proxies do
        self.chunk(line[:half])
        self.chunk(line[half:])

    def watch(self, ns, q):
        sel = parse_selector(q.get("labelSelector"))
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        rv_param = q.get("resourceVersion", "")
        try:
            since = int(rv_param) if rv_param not in ("", "0") else None
        except ValueError:
            return self.send_json(400, status_obj(400, "BadRequest", "bad resourceVersion"))
        with S.lock:
            S.stats["watches"] += 1
            expired = since is not None and since < S.expired_before
            mode = S.expire_mode
            gen = S.watch_generation
        if expired and mode == "status":
            return self.send_json(410, status_obj(410, "Expired", "too old resource version: %s (%d)"
                                                  % (rv_param, S.expired_before)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if expired:
                self.send_event("ERROR", status_obj(410, "Expired", "too old resource version: %s" % rv_param))
                return self.chunk(b"")
            with S.lock:
                if since is None:
                    initial = [copy.deepcopy(p) for (n, _), p in sorted(S.pods.items())
                               if n == ns and matches(p["metadata"].get("labels", {}), sel)]
                    since = S.rv
                else:
                    initial = []
            for p in initial:
                self.send_event("ADDED", p)
            end = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            while True:
                with S.lock:
                    pending = [(rv, t, p) for rv, n, t, p in S.events
                               if rv > since and n == ns and matches(p["metadata"].get("labels", {}), sel)]
                    if not pending and S.watch_generation == gen:
                        S.lock.wait(min(0.25, max(0.0, end - time.monotonic())))
                        pending = [(rv, t, p) for rv, n, t, p in S.events
                                   if rv > since and n == ns and matches(p["metadata"].get("labels", {}), sel)]
                    cut = S.watch_cut if S.watch_generation != gen else None
                    cur = S.rv
                for rv, t, p in pending:
                    self.send_event(t, p)
                    since = rv
                if cut == "drop":
                    return self.drop()
                if cut == "expire":
                    self.send_event("ERROR", status_obj(410, "Expired", "too old resource version"))
                    return self.chunk(b"")
                if time.monotonic() >= end:
                    return self.chunk(b"")
                if bookmarks and time.monotonic() - last_bookmark > S.args.bookmark_interval:
                    self.send_event("BOOKMARK", {"kind": "Pod", "apiVersion": "v1",
                                                 "metadata": {"resourceVersion": str(cur)}})
                    since = max(since, cur)
                    last_bookmark = time.monotonic()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- test hooks
    def admin(self, method, path):
        body = self.body() if method == "POST" else {}
        if method == "GET" and path == "/admin/state":
            with S.lock:
                pods = [{"name": p["metadata"]["name"], "namespace": ns, "phase": p["status"]["phase"],
                         "ip": p["status"].get("podIP"), "labels": p["metadata"].get("labels", {}),
                         "deleting": bool(p["metadata"].get("deletionTimestamp")),
                         "ready": any(c["type"] == "Ready" and c["status"] == "True"
                                      for c in p["status"].get("conditions", []))}
                        for (ns, _), p in sorted(S.pods.items())]
                out = dict(S.stats, pods=pods, live_processes=len(S.procs), rv=S.rv,
                           faults=[f for f in S.faults if f.get("count", 1) > 0])
            return self.send_json(200, out)
        if method != "POST":
            return self.send_json(405, {"error": "POST"})
        with S.lock:
            if path == "/admin/fault":
                S.faults.append(body)
            elif path == "/admin/token":
                S.tokens = set(body.get("tokens", []))
            elif path == "/admin/expire":
                S.expire_mode = body.get("mode", "stream")
                S.expired_before = S.rv + 1
                S.watch_cut = "expire"
                S.watch_generation += 1
                S.lock.notify_all()
            elif path == "/admin/drop-watches":
                S.watch_cut = "drop"
                S.watch_generation += 1
                S.lock.notify_all()
            elif path == "/admin/image-pull-failures":
                S.image_pull_failures += int(body.get("count", 1))
            elif path.startswith("/admin/pods/") and path.endswith("/fail"):
                name = path[len("/admin/pods/"):-len("/fail")]
                hit = [k for k in S.pods if k[1] == name]
                if not hit:
                    return self.send_json(404, {"error": "no such pod"})
                pod = S.pods[hit[0]]
                reason = body.get("reason", "Evicted")
                if reason in ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff"):
                    pod["status"]["phase"] = "Pending"
                    pod["status"]["containerStatuses"] = [{"name": "executor", "ready": False, "restartCount": 3,
                                                           "state": {"waiting": {"reason": reason}}}]
                else:
                    pod["status"].update({"phase": "Failed", "reason": reason,
                                          "message": "set by the test double"})
                set_ready(pod, False)
                S.emit(hit[0][0], "MODIFIED", pod)
                proc = stop_proc(hit[0])
                threading.Thread(target=reap, args=(proc,), daemon=True).start()
            else:
                return self.send_json(404, {"error": "unknown admin path"})
        return self.send_json(200, {"ok": True})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global S
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="written with the port once listening")
    ap.add_argument("--token-file", help="bearer token accepted at start (none: no auth)")
    ap.add_argument("--executor", default=os.path.join(repo, "build", "executor"))
    ap.add_argument("--data-dir", default=repo)
    ap.add_argument("--state-dir", help="pods' workspaces (default: a temp dir, removed at exit)")
    ap.add_argument("--start-delay", type=float, default=0.05, help="seconds a pod stays Pending")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--forbid", action="append", default=[], help="namespace where every call is 403")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--pods", choices=["process", "container"], default="process",
                    help="container: each pod a podman container of --image (tests/k8s/podman_pods.py)")
    ap.add_argument("--image", help="with --pods container: the executor image every pod runs")
    ap.add_argument("--index-dir", action="append", default=[],
                    help="with --pods container: directories (a glob pattern, expanded at each pod's start) "
                         "installer pods see read-only at the same path (the tests' wheels: their package index)")
    ap.add_argument("--podman-id", default="ci-k8s-" + uuid.uuid4().hex[:8],
                    help="with --pods container: the network's name, the containers' prefix and label")
    args = ap.parse_args()
    if args.pods == "container" and not args.image:
        ap.error("--pods container needs --image")
    own_state = not args.state_dir
    if own_state:
        args.state_dir = tempfile.mkdtemp(prefix="k8s-double-")
    S = State(args)
    if args.pods == "container":
        import podman_pods  # beside this file
        S.containers = podman_pods.Pods(args.image, args.podman_id, args.index_dir)
        print("apiserver: pods are containers of %s on network %s (%s)"
              % (args.image, args.podman_id, S.containers.gateway), flush=True)
    # mount points of every pod's workspace and runner; left in place (other
    # doubles may use them)
    os.makedirs("/workspace", exist_ok=True)
    os.makedirs(RUNNER_DIR, exist_ok=True)
    os.makedirs(BIN_DIR, exist_ok=True)
    srv = Server(("127.0.0.1", args.port), Handler)
    port = srv.server_address[1]

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, args.port_file)
    print("apiserver: listening on 127.0.0.1:%d, pod IPs %s.N" % (port, S.ip_base), flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        with S.lock:
            procs = list(S.procs.values())
            S.procs.clear()
        for p in procs:
            reap(p)
        if S.containers is not None:
            S.containers.close()
        if own_state:
            shutil.rmtree(args.state_dir, ignore_errors=True)

    return 0


if __name__ == "__main__":
    sys.exit(main())
