#!/usr/bin/python3
"""Soak test (not part of `make test`; run with `make soak`).

    /usr/bin/python3 tests/soak.py --build build [--requests 10000] [--concurrency 16]

Starts its own service instance in a temp dir, sends mixed requests (executions
with and without files, file uploads and downloads, metrics, health) from
`concurrency` threads, and checks: no request failed; the open file
descriptors and the resident memory of the service's processes (master,
workers, pool manager, cleanup) did not grow between the end of the warm-up and
the end of the run; after a cleanup pass with APP_FILE_TTL=0 the store is back
to its size at the start. Prints the figures; exits non-zero on a failure.
"""
import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "e2e"))
sys.dont_write_bytecode = True


def proc_children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(b")") + 2:].split()
        if int(rest[1]) == pid and rest[0] != b"Z":
            out.append(int(d))
    return out


def service_processes(master, binary):
    procs = [master]
    for p in proc_children(master):
        try:
            if os.readlink("/proc/%d/exe" % p).replace(" (deleted)", "") == binary:
                procs.append(p)
        except OSError:
            pass
    return sorted(procs)


def fds_and_rss(pids):
    fds = rss = 0
    for p in pids:
        try:
            fds += len(os.listdir("/proc/%d/fd" % p))
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return fds, rss


def per_worker(pids):
    return {p: fds_and_rss([p]) for p in pids}


def store_size(path):
    n = size = 0
    for name in os.listdir(path):
        if name.startswith("."):
            continue  # the lock file
        n += 1
        size += os.path.getsize(os.path.join(path, name))
    return n, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=300)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    os.environ.setdefault("E2E_PORT", "0")
    os.environ["E2E_BUILD"] = build
    import client
    from instance import Instance

    inst = Instance({"APP_WORKERS": "8", "APP_EXECUTOR_POOL_SIZE": "8", "APP_CLAIM_TIMEOUT": "120",
                     "APP_LOG_LEVEL": "warn"}, workers=8, pool=8)
    inst.env["APP_LOG_LEVEL"] = "warn"
    binary = os.path.realpath(os.path.join(build, "code-interpreter"))
    failures = []
    counts = {}
    lock = threading.Lock()
    try:
        inst.start()
        start_store = store_size(inst.store)
        with inst.current():
            def one(i):
                kind = random.choices(["exec", "exec_file", "roundtrip", "exec_in", "metrics", "health"],
                                      [30, 15, 25, 10, 10, 10])[0]
                try:
                    if kind == "exec":
                        r = client.execute("print(%d * 2)" % i)
                        ok = r.status == 200 and r.json["stdout"] == "%d\n" % (i * 2)
                    elif kind == "exec_file":
                        r = client.execute("open('o%d.txt', 'w').write('%d' * 100)" % (i, i))
                        ok = r.status == 200 and r.json["files"] == {
                            "/workspace/o%d.txt" % i: hashlib.sha256(("%d" % i * 100).encode()).hexdigest()}
                    elif kind == "roundtrip":
                        data = os.urandom(random.randint(0, 200000))
                        u = client.raw("POST", "/v1/files", data)
                        ok = u.status == 201
                        if ok:
                            d = client.raw("GET", "/v1/files/" + u.json["object_id"])
                            ok = d.status == 200 and d.body == data
                    elif kind == "exec_in":
                        data = ("input %d" % i).encode()
                        u = client.raw("POST", "/v1/files", data)
                        r = client.execute("print(open('in.txt').read())", files={"/workspace/in.txt": u.json["object_id"]})
                        ok = r.status == 200 and r.json["stdout"] == data.decode() + "\n"
                    elif kind == "metrics":
                        r = client.raw("GET", "/metrics")
                        ok = r.status == 200
                    else:
                        r = client.raw("GET", "/healthz")
                        ok = r.status == 200
                    if not ok:
                        raise AssertionError("unexpected answer: %r" % (r,))
                except Exception as e:
                    with lock:
                        failures.append("%s #%d: %s" % (kind, i, e))
                with lock:
                    counts[kind] = counts.get(kind, 0) + 1

            with ThreadPoolExecutor(args.concurrency) as ex:
                list(ex.map(one, range(args.warmup)))
            pids = service_processes(inst.proc.pid, binary)
            # the pool manager's fds follow the sandboxes it is starting: not checked
            pool = [p_ for p_ in pids if p_ != inst.proc.pid and proc_children(p_)]
            checked = [p_ for p_ in pids if p_ not in pool]
            before = fds_and_rss(checked)
            before_each = per_worker(pids)
            t0 = time.monotonic()
            with ThreadPoolExecutor(args.concurrency) as ex:
                list(ex.map(one, range(args.warmup, args.warmup + args.requests)))
            elapsed = time.monotonic() - t0
            # a worker may still hold the connection of a request that just
            # ended: that goes within moments, a leak stays
            deadline = time.monotonic() + 2
            while True:
                pids_after = service_processes(inst.proc.pid, binary)
                after = fds_and_rss([p_ for p_ in pids_after if p_ not in pool])
                if after[0] <= before[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            after_each = per_worker(pids_after)
        full_store = store_size(inst.store)
        env = dict(inst.env, APP_FILE_TTL="0")
        p = subprocess.run([binary, "cleanup"], env=env, capture_output=True, text=True, timeout=600)
        end_store = store_size(inst.store)
        print("soak: %d requests (+%d warm-up) at concurrency %d in %.1f s (%.0f req/s); mix %s"
              % (args.requests, args.warmup, args.concurrency, elapsed, args.requests / elapsed,
                 json.dumps(counts, sort_keys=True)))
        print("soak: failures: %d" % len(failures))
        for f in failures[:20]:
            print("  " + f)
        print("soak: service processes %s -> %s" % (pids, pids_after))
        print("soak: master, workers and cleanup (pool manager %s not counted): open fds (sum) %d -> %d; "
              "RSS (sum) %d kB -> %d kB" % (pool, before[0], after[0], before[1], after[1]))
        for p_ in pids:
            if p_ in after_each:
                print("soak:   pid %d: fds %d -> %d, RSS %d kB -> %d kB" % (
                    p_, before_each[p_][0], after_each[p_][0], before_each[p_][1], after_each[p_][1]))
        print("soak: store at start %s, after the run %s, after cleanup (TTL 0) %s (objects, bytes)"
              % (start_store, full_store, end_store))
        print("soak: cleanup said: %s" % p.stdout.strip())
        ok = not failures and pids == pids_after and end_store == start_store and p.returncode == 0
        # fds must not grow at all; RSS may wobble by allocator noise, not grow with load
        ok = ok and after[0] <= before[0] and after[1] <= before[1] * 1.10 + 2048
        print("soak: %s" % ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        okk, lines = inst.stop()
        for l in lines:
            print(l)
        inst.remove()


if __name__ == "__main__":
    sys.exit(main())
