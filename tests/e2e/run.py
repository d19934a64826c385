#!/usr/bin/python3
"""End-to-end test runner for code-interpreter.

    /usr/bin/python3 tests/e2e/run.py --build build [-k PATTERN] [--keep] [--backend kubernetes
        [--pods container --image IMAGE]]

Starts the service from the build directory on a free port with all of its state
in a fresh temporary directory, waits for GET /readyz, runs the test modules in
this directory (test_*.py), then stops the service with SIGTERM and checks that
nothing is left behind: no process of this run, no sandbox directory, no cgroup,
no mount, no lighttpd. The last line of output is always
`e2e: N passed, M failed[, K skipped]`; the exit status is non-zero on any
failure. Uses only the Python standard library.

With --backend kubernetes the same suites run against APP_EXECUTOR_BACKEND=kubernetes
and the API server test double (tests/k8s/apiserver.py), which runs each pod as an
unconfined `executor serve` on its own loopback address; the tests that check the
local sandbox's confinement are skipped (see LOCAL_ONLY), and at shutdown the double
must hold no pod and no executor process. With --pods container --image IMAGE too
(make image-test) each pod is a podman container of IMAGE instead, confinement
is real and only what a container cannot show is skipped (CONTAINER_SKIP); no
container, network or firewall rule of the double may be left.
"""
import argparse
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep tests/e2e free of __pycache__

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
CGROUP_ROOTS = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def tail(path, n=80):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(lines[-n:])


# ---- /proc ------------------------------------------------------------------

def read_proc(pid, name):
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as f:
            return f.read()
    except OSError:
        return None


def proc_fields(pid):
    """(comm, the fields after it) of /proc/PID/stat (f[0] is the state, f[1]
    the ppid, f[8] cminflt, f[11:15] utime, stime, cutime, cstime, f[16] the
    nice value, f[19] starttime), or (None, None)."""
    s = read_proc(pid, "stat")
    if not s:
        return None, None
    return s[s.find(b"(") + 1:s.rfind(b")")].decode(errors="replace"), s[s.rfind(b")") + 2:].split()


def proc_stat(pid):
    """(state, ppid, starttime) or None."""
    f = proc_fields(pid)[1]
    return (f[0].decode(), int(f[1]), int(f[19])) if f else None


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root):
    """{pid: starttime} of every live descendant of root."""
    children = {}
    info = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            info[pid] = st
            children.setdefault(st[1], []).append(pid)
    out, todo = {}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out[c] = info[c][2]
                todo.append(c)
    return out


def describe(pid):
    cmd = (read_proc(pid, "cmdline") or b"").replace(b"\0", b" ").decode("utf-8", "replace").strip()
    st = proc_stat(pid)
    return "pid %d (%s, ppid %s): %s" % (pid, st[0] if st else "?", st[1] if st else "?", cmd[:200])


def leftover_processes(tmp, cgroup_parent, snapshot):
    me = os.getpid()
    found = {}
    marker = tmp.encode()
    cg_marker = ("/%s/" % cgroup_parent).encode()
    for pid in all_pids():
        if pid == me:
            continue
        st = proc_stat(pid)
        if not st or st[0] == "Z":
            continue  # gone, or a zombie (its parent, if left, is reported itself)
        why = []
        if pid in snapshot and snapshot[pid] == st[2]:
            why.append("was part of the service before SIGTERM")
        if marker in (read_proc(pid, "cmdline") or b""):
            why.append("command line names the run's temp dir")
        if marker in (read_proc(pid, "environ") or b""):
            why.append("environment names the run's temp dir")
        if cg_marker in (read_proc(pid, "cgroup") or b""):
            why.append("in a cgroup under %s" % cgroup_parent)
        if why:
            found[pid] = "%s [%s]" % (describe(pid), "; ".join(why))
    return found


def leftover_cgroups(parent):
    out = []
    for root in CGROUP_ROOTS:
        d = os.path.join(root, parent)
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if os.path.isdir(os.path.join(d, name)):
                    out.append(os.path.join(d, name))
    return out


def leftover_mounts(tmp):
    try:
        with open("/proc/self/mountinfo") as f:
            return [l.strip() for l in f if tmp in l]
    except OSError:
        return []


def leftover_sandbox_dirs(tmp):
    d = os.path.join(tmp, "run", "sandboxes")
    try:
        return [os.path.join(d, n) for n in sorted(os.listdir(d))]
    except FileNotFoundError:
        return []


def check_shutdown(proc, tmp, cgroup_parent, lines):
    """SIGTERM the master, wait, and look for anything left. Returns True when clean."""
    ok = True
    snapshot = descendants(proc.pid)
    lighttpd = [p for p in snapshot if (read_proc(p, "comm") or b"").strip() == b"lighttpd"]
    lines.append("shutdown: %d processes under the master before SIGTERM (lighttpd: %s)"
                 % (len(snapshot), lighttpd or "none"))
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(STOP_TIMEOUT)
        lines.append("shutdown: master exited with %d after %.1f s" % (rc, time.monotonic() - t0))
        if rc != 0:
            ok = False
            lines.append("shutdown: FAIL: the master should exit 0 after SIGTERM")
    except subprocess.TimeoutExpired:
        ok = False
        lines.append("shutdown: FAIL: the master did not exit within %d s of SIGTERM" % STOP_TIMEOUT)
        proc.kill()
        proc.wait()
    # Killed processes may need a moment to be reaped by their parents; bounded.
    deadline = time.monotonic() + 5
    while True:
        procs = leftover_processes(tmp, cgroup_parent, snapshot)
        sbx = leftover_sandbox_dirs(tmp)
        cgs = leftover_cgroups(cgroup_parent)
        mnts = leftover_mounts(tmp)
        if not (procs or sbx or cgs or mnts) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid, d in sorted(procs.items()):
        lines.append("shutdown: FAIL: process left: %s" % d)
    for p in lighttpd:
        if p in procs:
            lines.append("shutdown: FAIL: lighttpd (pid %d) survived" % p)
    for s in sbx:
        lines.append("shutdown: FAIL: sandbox entry left: %s" % s)
    for c in cgs:
        lines.append("shutdown: FAIL: cgroup left: %s" % c)
    for m in mnts:
        lines.append("shutdown: FAIL: mount left: %s" % m)
    if procs or sbx or cgs or mnts:
        ok = False
    else:
        lines.append("shutdown: nothing left behind")
    # Tidy up after a failure so later runs start clean: only what this run made.
    for pid in procs:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return ok, bool(procs or mnts)


def remove_cgroup_parent(parent):
    for root in CGROUP_ROOTS:
        d = os.path.join(root, parent)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if os.path.isdir(os.path.join(d, name)):
                try:
                    os.rmdir(os.path.join(d, name))
                except OSError:
                    pass
        try:
            os.rmdir(d)
        except OSError:
            pass


# ---- kubernetes backend ---------------------------------------------------------

# Tests that only make sense for the local backend: in a pod, confinement is the
# container runtime's job (and the double runs executors unconfined, so these
# would test nothing, or fill the host's disk and process table).
LOCAL_ONLY = {
    "test_p5_isolation.": "pod isolation is the container runtime's (the double runs executors unconfined)",
    "test_p11_warm.": "the process layout of local sandboxes (a pod runs `executor serve` as its pid 1)",
    "test_p5_uid_slots.": "a pod's uids are the runtime's (the double runs executors as the host's root)",
    "test_many_empty_files_in_tmp": "/tmp is an emptyDir in a pod (the host's /tmp in the double)",
    "test_memory_bomb": "pod memory limits are the kubelet's cgroup (the double sets none)",
    "test_fork_bomb": "pod process limits are the runtime's (the double sets none)",
    "test_thread_bomb": "pod process limits are the runtime's (the double sets none)",
    "test_filling_workspace": "the workspace is an emptyDir with sizeLimit in a pod (a plain directory in the double)",
    "test_filling_tmp": "/tmp is an emptyDir with sizeLimit in a pod (the host's /tmp in the double)",
    "test_one_huge_file": "file size limits come with lockdown, which the double does not apply",
    "test_open_files_without_end": "RLIMIT_NOFILE comes with lockdown, which the double does not apply",
    "test_worker_killed_mid_request": "checks a local sandbox directory",
    "test_killed_pool_manager": "checks local sandbox processes",
    "test_killed_spawner": "the zygote's spawner is the local backend's",
    "P8UnusableSandboxes": "kills runners of local sandboxes, removes their sockets",
    "test_no_process_started_by_the_code": "a pod's processes die with the pod (pid 1 there); the double's do not",
    "test_timed_out_run_leaves_no_process": "a pod's processes die with the pod (pid 1 there); the double's do not",
    "test_nothing_from_one_run_is_visible_to_the_next": "a pod has its own /tmp and pid namespace; the double's "
                                                         "executors share the host's",
}


def skip_local_only(suite, table=None, prefix="local backend only: "):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            skip_local_only(t, table, prefix)
            continue
        for pat, reason in (LOCAL_ONLY if table is None else table).items():
            if pat in t.id():
                name = t._testMethodName
                setattr(t, name, unittest.skip(prefix + reason)(getattr(t, name)))
                break


# ---- pods as containers (--pods container: make image-test) ----------------------
# The double runs each pod as a container of POD_IMAGE (tests/k8s/podman_pods.py),
# so confinement is real: only what a container cannot show is skipped here.
POD_IMAGE = None  # set by --image; start_double and kubernetes_env follow it

CONTAINER_SKIP = {
    "test_p11_warm.": "the process layout of local sandboxes (zygote, spawner, shared root); a pod runs "
                      "`executor serve` as its pid 1",
    "test_p5_uid_slots.": "host uid slots are the local backend's; every pod runs as its securityContext's 1000",
    "test_killed_pool_manager": "checks local sandbox processes",
    "test_killed_spawner": "the zygote's spawner is the local backend's",
    "P8UnusableSandboxes": "kills runners of local sandboxes, removes their sockets",
    "test_only_loopback_interface": "a pod has the interface the service reaches it on (test_pool.py's "
                                    "PodNetwork checks that it reaches nothing)",
    "test_root_directory_is_minimal": "a pod's root is the image's Debian root (/boot, /media, /mnt, /srv), "
                                      "read-only",
    "test_dev_has_only_the_harmless_devices": "/dev is the container runtime's: /dev/tty and /dev/pts/ptmx too, "
                                              "as in every OCI container",
    "test_many_empty_files_in_tmp": "an emptyDir's sizeLimit caps bytes, not inodes",
}


def container_leftovers(double, lines):
    """After the double's exit: its containers and network gone (removed if not,
    reported). True when clean."""
    ident = getattr(double, "podman_id", None)
    if not ident:
        return True
    sys.path.insert(0, os.path.join(REPO, "tests", "k8s"))
    import podman_pods
    left = podman_pods.leftovers(ident, remove=True)
    for kind, items in zip(("container", "network", "firewall rule"), left):
        for n in items:
            lines.append("kubernetes: FAIL: %s left (now removed): %s" % (kind, n))
    if any(left):
        return False
    lines.append("kubernetes: no container, network or firewall rule of %s left" % ident)
    return True


def container_times(st, lines):
    """What each pod's container took, from the double's record."""
    ts = st.get("container_times") or []
    if not ts:
        return

    def med(k):
        v = sorted(t[k] for t in ts if k in t)
        return "%.2f s" % v[len(v) // 2] if v else "-"
    lines.append("kubernetes: %d containers; median podman run %s, start to ready %s, removal %s"
                 % (len(ts), med("run"), med("ready"), med("remove")))


def start_double(build, state):
    """Starts tests/k8s/apiserver.py; returns (proc, url, token_file). With
    POD_IMAGE its pods are containers, and proc.podman_id names them."""
    os.makedirs(state, exist_ok=True)
    token_file = os.path.join(state, "token")
    with open(token_file, "w") as f:
        f.write(secrets.token_hex(16) + "\n")
    port_file = os.path.join(state, "port")
    log = open(os.path.join(state, "apiserver.log"), "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "E2E_"))}
    container_args = []
    if POD_IMAGE:
        # installer pods find the tests' wheel directories where the services
        # name them (run.py's and each Instance's: ci-e2e-*/wheels)
        container_args = ["--pods", "container", "--image", POD_IMAGE,
                          "--index-dir", os.path.join(tempfile.gettempdir(), "ci-e2e-*", "wheels"),
                          "--podman-id", "ci-k8s-" + secrets.token_hex(4)]
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "k8s", "apiserver.py"),
                             "--port-file", port_file, "--token-file", token_file,
                             "--executor", os.path.join(build, "executor"), "--data-dir", REPO,
                             "--state-dir", os.path.join(state, "pods")] + container_args,
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    if POD_IMAGE:
        proc.podman_id = container_args[-1]
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the API server double did not start: " + tail(os.path.join(state, "apiserver.log")))
        time.sleep(0.05)
    with open(port_file) as f:
        return proc, "http://127.0.0.1:%s" % f.read().strip(), token_file


def kubernetes_env(url, token_file, queue):
    """A service's settings for the API server double; each service its own
    instance label (the pods it may find and delete as its own)."""
    return {
        "APP_EXECUTOR_BACKEND": "kubernetes",
        "APP_KUBERNETES_API_URL": url,
        "APP_KUBERNETES_TOKEN_FILE": token_file,
        "APP_KUBERNETES_NAMESPACE": "default",
        "APP_KUBERNETES_INSTANCE": "e2e-" + secrets.token_hex(4),
        "APP_EXECUTOR_POD_QUEUE_TARGET_LENGTH": str(queue),
        **({"APP_EXECUTOR_IMAGE": POD_IMAGE} if POD_IMAGE else {}),
    }


def double_state(url):
    import json
    host, port = url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/admin/state")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def check_double_empty(url, lines):
    """After shutdown: no pod left, no executor process left. True when clean."""
    deadline = time.monotonic() + 10
    while True:
        st = double_state(url)
        if (not st["pods"] and not st["live_processes"]) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    lines.append("kubernetes: %d pods created, %d deleted, %d API requests"
                 % (st["created"], st["deleted"], sum(st["requests"].values())))
    if st["pods"] or st["live_processes"]:
        for p in st["pods"]:
            lines.append("kubernetes: FAIL: pod left: %s (%s)" % (p["name"], p["phase"]))
        lines.append("kubernetes: FAIL: %d executor processes left" % st["live_processes"])
        return False
    lines.append("kubernetes: no pod left behind")
    return True


# ---- main -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="directory with code-interpreter, executor, health_check")
    ap.add_argument("-k", dest="pattern", action="append", default=[],
                    help="only tests whose name (module.Class.method) matches; substring or fnmatch pattern")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--healthz-only", action="store_true",
                    help="wait for GET /healthz instead of /readyz (to run the tests that need no sandbox "
                         "while the executor does not work)")
    ap.add_argument("--backend", choices=["local", "kubernetes"], default="local",
                    help="kubernetes: run against the API server double (tests/k8s/apiserver.py)")
    ap.add_argument("--pods", choices=["process", "container"], default="process",
                    help="with --backend kubernetes, container: each pod a podman container of --image "
                         "(make image-test)")
    ap.add_argument("--image", help="with --pods container: the executor image")
    args = ap.parse_args()
    if args.pods == "container":
        if args.backend != "kubernetes" or not args.image:
            ap.error("--pods container needs --backend kubernetes and --image")
        global POD_IMAGE
        POD_IMAGE = args.image

    build = os.path.abspath(args.build)
    tmp = tempfile.mkdtemp(prefix="ci-e2e-")
    os.chmod(tmp, 0o755)
    port = free_port()
    cgroup_parent = "ci-test-" + secrets.token_hex(4)
    log_path = os.path.join(tmp, "service.log")
    paths = {
        "run": os.path.join(tmp, "run"),
        "db": os.path.join(tmp, "db", "ci.db"),
        "objects": os.path.join(tmp, "objects"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env.update({
        "APP_HTTP_PORT": str(port),
        "APP_RUN_DIR": paths["run"],
        "APP_DB_PATH": paths["db"],
        "APP_FILE_STORAGE_PATH": paths["objects"],
        "APP_WORKERS": "4",
        "APP_EXECUTOR_POOL_SIZE": "2",
        "APP_CGROUP_PARENT": cgroup_parent,
        "APP_PRELOAD_MODULES": "",
        "APP_LOG_LEVEL": "info",
        "APP_DATA_DIR": REPO,
        # installs on the fly from an empty wheel directory: a missing import
        # fails at once instead of reaching for PyPI
        "APP_PACKAGE_CACHE": os.path.join(tmp, "packages"),
        "APP_PIP_FIND_LINKS": os.path.join(tmp, "wheels"),
    })
    os.mkdir(os.path.join(tmp, "wheels"))
    os.environ.update({
        "E2E_PORT": str(port),
        "E2E_TMP": tmp,
        "E2E_BUILD": build,
        "E2E_DB_PATH": paths["db"],
        "E2E_STORE": paths["objects"],
        "E2E_RUN_DIR": paths["run"],
        "E2E_LOG": log_path,
        "E2E_CGROUP_PARENT": cgroup_parent,
    })
    os.environ["E2E_BACKEND"] = args.backend
    double = None
    if args.backend == "kubernetes":
        # its own temp dir: the double's processes must not look like the service's
        k8s_state = tempfile.mkdtemp(prefix="ci-k8s-")
        try:
            double, k8s_url, token_file = start_double(build, k8s_state)
        except RuntimeError as e:
            print("e2e: FAIL: %s" % e)
            print("e2e: 0 passed, 1 failed")
            return 1
        env.update(kubernetes_env(k8s_url, token_file, queue=2))
        os.environ.update({"E2E_K8S_API": k8s_url, "E2E_K8S_STATE": k8s_state, "E2E_K8S_TOKEN_FILE": token_file})
        print("e2e: kubernetes backend, API server double at %s" % k8s_url, flush=True)
    print("e2e: temp dir %s, port %d, cgroup parent %s" % (tmp, port, cgroup_parent), flush=True)

    passed = failed = skipped = 0
    report = []
    binary = os.path.join(build, "code-interpreter")
    if not os.access(binary, os.X_OK):
        print("e2e: FAIL: %s is missing; run `make all` first" % binary)
        print("e2e: 0 passed, 1 failed")
        return 1
    logf = open(log_path, "wb")
    proc = subprocess.Popen([binary], env=env, stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp)
    logf.close()
    os.environ["E2E_MASTER_PID"] = str(proc.pid)
    keep_tmp = args.keep
    try:
        # ---- readiness
        t0 = time.monotonic()
        ready, last = False, "no answer"
        while time.monotonic() - t0 < READY_TIMEOUT:
            if proc.poll() is not None:
                last = "the service exited with %d" % proc.returncode
                break
            try:
                status, body = get(port, "/healthz" if args.healthz_only else "/readyz")
                last = "%d %s" % (status, body[:300].decode("utf-8", "replace"))
                if status == 200:
                    ready = True
                    break
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.2)
        if ready:
            print("e2e: service ready after %.1f s" % (time.monotonic() - t0), flush=True)
        else:
            failed += 1
            report.append("readiness: FAIL: GET %s did not answer 200 within %d s (last: %s)"
                          % ("/healthz" if args.healthz_only else "/readyz", READY_TIMEOUT, last))

        # ---- the suites
        if ready:
            sys.path.insert(0, HERE)
            loader = unittest.TestLoader()
            if args.pattern:
                loader.testNamePatterns = [p if "*" in p else "*%s*" % p for p in args.pattern]
            suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
            if args.backend == "kubernetes" and POD_IMAGE:
                skip_local_only(suite, CONTAINER_SKIP, "with real containers: ")
            elif args.backend == "kubernetes":
                skip_local_only(suite)
            runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=1 if args.quiet else 2)
            result = runner.run(suite)
            # count tests, not subtests: a test with three failing subtests is one failure
            def tid(t):
                return getattr(t, "test_case", t).id()
            bad = {tid(t) for t, _ in result.failures + result.errors}
            bad |= {tid(t) for t in result.unexpectedSuccesses}
            n_skip = len({tid(t) for t, _ in result.skipped} - bad)
            failed += len(bad)
            skipped += n_skip
            passed += result.testsRun - len(bad) - n_skip
            if bad:
                print("failed tests:")
                for t in sorted(bad):
                    print("  " + t)
    finally:
        # ---- shutdown: nothing may be left
        if proc.poll() is None:
            ok, dangerous = check_shutdown(proc, tmp, cgroup_parent, report)
        else:
            ok, dangerous = False, True
            report.append("shutdown: FAIL: the master had already exited with %s" % proc.returncode)
            for pid, d in leftover_processes(tmp, cgroup_parent, {}).items():
                report.append("shutdown: FAIL: process left: %s" % d)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if double is not None:
            try:
                ok = check_double_empty(os.environ["E2E_K8S_API"], report) and ok
            except (OSError, ValueError, http.client.HTTPException) as e:
                report.append("kubernetes: FAIL: the API server double does not answer: %r" % e)
                ok = False
            if POD_IMAGE:
                try:
                    container_times(double_state(os.environ["E2E_K8S_API"]), report)
                except (OSError, ValueError, http.client.HTTPException):
                    pass
            double.send_signal(signal.SIGTERM)
            try:
                double.wait(60)
            except subprocess.TimeoutExpired:
                double.kill()
                double.wait()
            ok = container_leftovers(double, report) and ok
            if ok and not keep_tmp and not failed:
                shutil.rmtree(os.environ["E2E_K8S_STATE"], ignore_errors=True)
            else:
                report.append("kubernetes: double's state kept in %s" % os.environ["E2E_K8S_STATE"])
        if ok:
            passed += 1
        else:
            failed += 1
        remove_cgroup_parent(cgroup_parent)

    for line in report:
        print(line)
    if failed:
        print("---- tail of %s ----" % log_path)
        print(tail(log_path))
        print("---- end of service log ----")
        keep_tmp = True
    if dangerous or leftover_mounts(tmp):
        print("e2e: temp dir %s kept (mounts or processes were left; not removing it)" % tmp)
    elif keep_tmp:
        print("e2e: temp dir kept: %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = "e2e: %d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
