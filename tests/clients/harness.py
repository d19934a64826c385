#!/usr/bin/python3
"""The real npm clients against the service (make clients-test).

    /usr/bin/python3 tests/clients/harness.py --build build [-k PATTERN] [--keep]

Installs tests/clients/node_modules with `npm ci` when it is missing or older
than package-lock.json; starts the service from the build directory with its
own temporary state (tests/e2e/instance.py) and APP_FILE_STORAGE_GROUP set to
a group of its own; runs the node:test suites (tests/clients/*.test.mjs) as
uid 65534, not root, with that group as a supplementary one, the way a client
process that shares the storage folder runs; stops the service and checks
that nothing is left. The last line is `clients: N passed, M failed[, K
skipped]`; the exit status is non-zero on any failure. It skips (exit 0) only
when npm is missing or the npm registry cannot be reached for the install.
Runs as root, like the service.
"""
import argparse
import glob
import grp
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
E2E = os.path.join(REPO, "tests", "e2e")
NPM_CI = ["npm", "ci", "--legacy-peer-deps", "--ignore-scripts", "--no-audit", "--no-fund"]
NPM_TIMEOUT = 900
SUITE_TIMEOUT = 900
CLIENT_UID = 65534  # nobody
NETWORK_ERRORS = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
                            r"network request .* failed|socket hang up|request to .* failed")


def say(msg):
    print("clients: " + msg, flush=True)


def summary(passed, failed, skipped=0):
    line = "clients: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)


def tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


def install():
    """npm ci when node_modules is missing or stale. Returns (status, message):
    "ok", "skip" (npm or the registry unreachable) or "fail"."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "skip", "node or npm is not installed (scripts/deps.sh installs them)"
    stamp = os.path.join(HERE, "node_modules", ".package-lock.json")
    lock = os.path.join(HERE, "package-lock.json")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock):
        return "ok", "node_modules is up to date"
    t0 = time.monotonic()
    try:
        p = subprocess.run(NPM_CI, cwd=HERE, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=NPM_TIMEOUT)
        out, rc = p.stdout.decode("utf-8", "replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode("utf-8", "replace"), None
    took = time.monotonic() - t0
    if rc == 0:
        return "ok", "npm ci took %.1f s" % took
    reachable = not NETWORK_ERRORS.search(out)
    if reachable:  # a failure that names no network error: is the registry there?
        try:
            reachable = subprocess.run(["npm", "ping"], cwd=HERE, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, timeout=30).returncode == 0
        except subprocess.TimeoutExpired:
            reachable = False
    if not reachable:
        return "skip", "the npm registry is unreachable (npm ci %s after %.0f s):\n%s" % (
            "timed out" if rc is None else "exited %d" % rc, took, tail(out, 10))
    return "fail", "npm ci exited %s after %.0f s:\n%s" % (rc, took, tail(out))


def unused_gid():
    """A group id no group in the group database has: the clients' group is
    then only what APP_FILE_STORAGE_GROUP and setpriv make of it."""
    for gid in range(64000, 65000):
        try:
            grp.getgrgid(gid)
        except KeyError:
            return gid
    raise RuntimeError("no free gid in 64000-64999")


def as_client(gid, argv):
    return ["setpriv", "--reuid=%d" % CLIENT_UID, "--regid=%d" % CLIENT_UID, "--groups=%d" % gid, "--"] + argv


def readable_by_client(gid, suite_dir):
    probe = os.path.join(suite_dir, "node_modules", "beeai-framework", "package.json")
    return subprocess.run(as_client(gid, ["/bin/sh", "-c", 'test -r "$1"', "sh", probe]),
                          stdin=subprocess.DEVNULL).returncode == 0


def run_suites(gid, suite_dir, env, patterns):
    """Runs node --test as the client user, echoing its output. Returns
    (counts, exit code); counts is {} when node printed no summary."""
    files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(suite_dir, "*.test.mjs")))
    argv = [shutil.which("node"), "--test", "--test-reporter=spec"]
    argv += ["--test-name-pattern=%s" % p for p in patterns]
    proc = subprocess.Popen(as_client(gid, argv + files), cwd=suite_dir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    timer = threading.Timer(SUITE_TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    counts = {}
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            print(line, flush=True)
            m = re.match(r"^(?:ℹ|#) (tests|pass|fail|cancelled|skipped|todo) (\d+)$", line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
        rc = proc.wait()
    finally:
        timer.cancel()
    if rc < 0:
        say("FAIL: node --test was killed (%s s limit)" % SUITE_TIMEOUT)
    return counts, rc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="directory with code-interpreter and executor")
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="only tests whose name matches this regular expression (node --test-name-pattern)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    status, msg = install()
    if status == "skip":
        say("SKIP: " + msg)
        summary(0, 0, 1)
        return 0
    if status == "fail":
        say("FAIL: " + msg)
        summary(0, 1)
        return 1
    say(msg)
    if os.geteuid() != 0:
        say("FAIL: run as root: the service's sandboxes need it, and the suites run as uid %d through setpriv"
            % CLIENT_UID)
        summary(0, 1)
        return 1
    if not os.access(os.path.join(build, "code-interpreter"), os.X_OK):
        say("FAIL: %s/code-interpreter is missing; run `make BUILD=%s all` first" % (build, args.build))
        summary(0, 1)
        return 1

    os.environ["E2E_BUILD"] = build  # read by tests/e2e/support.py when imported
    sys.path.insert(0, E2E)
    from instance import Instance  # noqa: E402 (needs E2E_BUILD)
    import run as e2e_run  # noqa: E402

    gid = unused_gid()
    tmp = tempfile.mkdtemp(prefix="ci-clients-")
    inst = Instance(env={"APP_FILE_STORAGE_GROUP": str(gid)}, tmp=tmp, workers=4, pool=2)
    # the client's user owns the folder (README): node's copyFile over an
    # object the service wrote sets its mode, which only the owner may do
    os.mkdir(inst.store)
    os.chown(inst.store, CLIENT_UID, gid)
    work = os.path.join(tmp, "client")
    os.mkdir(work, 0o700)
    os.chown(work, CLIENT_UID, gid)
    say("temp dir %s, port %d, storage group %d, clients as uid %d" % (tmp, inst.port, gid, CLIENT_UID))

    suite_dir = HERE
    if not readable_by_client(gid, HERE):
        # a checkout that uid 65534 cannot read (under /root, say): a readable copy
        suite_dir = os.path.join(tmp, "suite")
        shutil.copytree(HERE, suite_dir, symlinks=True)
        for d, _, names in os.walk(suite_dir):
            os.chmod(d, 0o755)
        say("%s is not readable by uid %d; running a copy in %s" % (HERE, CLIENT_UID, suite_dir))

    passed = failed = skipped = 0
    keep = args.keep
    try:
        t0 = time.monotonic()
        inst.start()
        say("service ready after %.1f s" % (time.monotonic() - t0))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, "LANG": "C.UTF-8",
               "CLIENTS_URL": "http://127.0.0.1:%d" % inst.port, "CLIENTS_STORE": inst.store,
               "CLIENTS_WORK": work}
        t0 = time.monotonic()
        counts, rc = run_suites(gid, suite_dir, env, args.patterns)
        say("the suites took %.1f s" % (time.monotonic() - t0))
        if not counts:
            say("FAIL: node --test printed no summary (exit status %s)" % rc)
            failed += 1
        passed += counts.get("pass", 0)
        failed += counts.get("fail", 0) + counts.get("cancelled", 0)
        skipped += counts.get("skipped", 0) + counts.get("todo", 0)
        if rc != 0 and counts and not failed:
            say("FAIL: node --test exited %s with no failed test" % rc)
            failed += 1
    except AssertionError as e:  # the instance did not start
        say("FAIL: %s" % e)
        failed += 1
    finally:
        ok, lines = inst.stop()
        for line in lines:
            say(line)
        if not ok:
            failed += 1
    if failed:
        print("---- tail of %s ----" % inst.log)
        print(e2e_run.tail(inst.log))
        print("---- end of service log ----")
        keep = True
    if keep or getattr(inst, "dangerous", False):
        say("temp dir kept: %s" % tmp)
    else:
        inst.remove()
    summary(passed, failed, skipped)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
