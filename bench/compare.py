#!/usr/bin/python3
"""Two checkouts of code-interpreter side by side (what a change bought).

    /usr/bin/python3 bench/compare.py OLD NEW [--rounds N] [--build-dir build]

OLD and NEW are checkouts, each built (`make BUILD=OLD/build`, ...); each
service runs its own binaries and its own executor/python (APP_DATA_DIR).
In turns (old, new, old, new, ...: a machine whose speed drifts weighs on
both alike), each round starts one service with a pool of 8 and measures:
  - quiet p50: hello world with the pool manager stopped (SIGSTOP) so that
    nothing is refilled during the calls (18 calls, the pool full before
    each 6), then bench's numpy + pandas snippet the same way;
  - spaced p50: hello world with the pool full before each call and the
    manager at work, as an agent calling now and then meets it (18 calls);
  - back-to-back p50: 30 calls one after the other, each while the sandbox
    the one before used is being replaced;
  - over those 30: CPU per execution of the sandboxes and of the whole
    service (bench.cpu_by_role), and page faults per sandbox (the spawner's
    cminflt: every sandbox is its child).
Prints each round and the medians; a round whose sandboxes took more CPU
than the whole service (its accounting off) is shown and not counted. Not a
test: it asserts nothing.
"""
import argparse
import os
import signal
import statistics
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
os.environ.setdefault("E2E_PORT", "0")
os.environ.setdefault("E2E_BUILD", os.path.join(os.path.dirname(HERE), "build"))
import bench  # noqa: E402
import instance  # noqa: E402
import support  # noqa: E402

def settle(inst):
    """Waits until the pool is full and no used sandbox is left to reap (the
    pool manager ends them; until then their time is not yet their parent's)."""
    bench.wait_pool_full(inst.db)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = bench.pids_named(inst.proc.pid, "sandbox")
        if len(alive) <= bench.POOL:
            return
        time.sleep(0.05)
    print("compare: %d sandboxes still alive after 30 s; this round's figures include some of them"
          % len(alive), flush=True)


def children_faults(pid):
    """The page faults of pid's ended children (cminflt)."""
    f = bench.e2e.proc_fields(pid)[1]
    return int(f[8]) if f else 0


def measure(tree, build_dir):
    instance.BUILD = os.path.join(tree, build_dir)
    inst = bench.service_instance(tree)
    inst.start("/healthz", timeout=120)
    try:
        master = inst.proc.pid
        c = bench.Client(inst.port)
        if bench.wait_pool_full(inst.db) is None:
            raise SystemExit("%s: the pool never filled; see %s" % (tree, inst.log))
        c.execute("1")
        manager = bench.pids_named(master, "ci-pool")[0]
        quiet = {bench.HELLO: [], bench.NUMPY: []}
        errors = 0
        for code, expected in ((bench.HELLO, "hello world\n"), (bench.NUMPY, "4950\n")):
            for _ in range(3):
                bench.wait_pool_full(inst.db)
                os.kill(manager, signal.SIGSTOP)
                try:
                    lat, e = bench.timed_service(c, code, 6, expected)
                finally:
                    os.kill(manager, signal.SIGCONT)
                quiet[code] += lat
                errors += e
        spaced, e = bench.timed_service(c, bench.HELLO, 18, "hello world\n", lambda: settle(inst))
        errors += e
        settle(inst)
        # the spawner, not a sandbox it has just forked (named so until it names itself)
        spawner = [p for p in bench.pids_named(master, "spawner") if support.is_spawner(p)][0]
        roles0, faults0 = bench.cpu_by_role(master), children_faults(spawner)
        n = 30
        seq, e = bench.timed_service(c, bench.HELLO, n, "hello world\n")
        errors += e
        settle(inst)
        roles1, faults1 = bench.cpu_by_role(master), children_faults(spawner)
        return {"quiet p50 ms": statistics.median(quiet[bench.HELLO]) * 1000,
                "quiet numpy+pandas p50 ms": statistics.median(quiet[bench.NUMPY]) * 1000,
                "spaced p50 ms": statistics.median(spaced) * 1000,
                "back-to-back p50 ms": statistics.median(seq) * 1000,
                "sandbox CPU ms": (roles1.get(bench.SANDBOXES, 0) - roles0.get(bench.SANDBOXES, 0)) * 1000 / n,
                "service CPU ms": (sum(roles1.values()) - sum(roles0.values())) * 1000 / n,
                "faults per sandbox": (faults1 - faults0) / n,
                "errors": errors}
    finally:
        inst.stop()
        inst.remove()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--build-dir", default="build")
    args = ap.parse_args()
    trees = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    got = {"old": [], "new": []}
    for r in range(args.rounds):
        for side in ("old", "new"):
            m = measure(trees[side], args.build_dir)
            # more CPU in the sandboxes than in the whole service cannot be:
            # seen now and then, most likely a long-lived process under the
            # spawner that ended in the window (its whole life then counts
            # as the spawner's ended children, i.e. as sandboxes)
            odd = m["sandbox CPU ms"] > m["service CPU ms"]
            if not odd:
                got[side].append(m)
            print("round %d %-3s %s | errors %d%s" % (r + 1, side, " | ".join(
                "%s %.2f" % (k, v) for k, v in m.items() if k != "errors"), m["errors"],
                " | not counted: accounting off" if odd else ""), flush=True)
    for side in ("old", "new"):
        if not got[side]:
            print("median  %-3s none counted" % side)
            continue
        print("median  %-3s %s  (%s)" % (side, " | ".join(
            "%s %.2f" % (k, statistics.median(m[k] for m in got[side]))
            for k in got[side][0] if k != "errors"), trees[side]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
