#!/usr/bin/python3
"""Benchmark of code-interpreter against a bare interpreter (`make bench`).

    /usr/bin/python3 bench/bench.py [--build build] [--requests N] [--seconds S]

Starts the service from the build directory like tests/e2e/run.py does (free port,
all state in a temporary directory), with APP_EXECUTOR_POOL_SIZE=8 and the default
APP_PRELOAD_MODULES, waits until the pool is full, and measures side by side:
  1. hello world: p50/p99 of POST /v1/execute, sequential, one keep-alive
     connection, vs the p50 wall time of `python3 -c 'print("hello world")'`:
     back to back (each call while the sandbox of the one before is being
     replaced), and spaced (each call finds the pool full, as an agent's
     calls seconds apart do);
  2. the numpy + pandas snippet the same way, and a shell line (`echo hello
     world`) against upstream's way of running one, `xonsh --no-rc script`;
  3. executions per second at concurrency 8 for S seconds (errors counted) vs
     bare `python3 -c` runs per second two at a time; then overload: p99 at
     concurrency 32 against p99 at concurrency 8 (S/2 seconds each), with the
     refusals (503 with Retry-After, the only one expected) and other errors;
  4. PSS (/proc/PID/smaps_rollup) of the service, lighttpd and the warm pool at
     rest, and the PSS the pool adds;
  5. a CPU profile of one execution (hello world at concurrency 8): each
     process role's CPU time per execution from /proc (live processes' own
     time plus their ended children's), the workers' by stage (/metrics,
     ci_worker_cpu_seconds_total), the bench's own, and the rest of the
     machine's busy time (/proc/stat: kernel threads and anything else);
     and, where Debian's perf can sample (linux-perf), the kernel's share of
     the sandboxes' time from `perf record -a -g` over the same load: page
     faults, teardown (exit), the forks of runners and of sandboxes; and the
     machine's busy time split into the kernel's and user space's, with the
     rate the kernel's part alone would allow were the service's user space
     free (the floor of this design here);
  6. the floor this machine sets, without the service: /bin/true started and
     reaped, `unshare --fork /bin/true` without and with seven new namespaces
     (the difference: the namespaces made and torn down), and what a forked
     process pays per page it first reads or writes (pages its parent wrote:
     what a runner forked from the warm image pays); and the fork floor: a
     python3 that imported the preloads forks one process per run, without
     any sandbox (hello world and numpy+pandas one at a time, hello world two
     at a time), against the bare figures of 1-3: the least any service that
     gives each run a fresh process forked from a warm image pays here.
The service runs with an API key (APP_API_KEYS_FILE) and every request carries
it, as a service reachable by others must; --no-keys runs it open.
Figures 1-3 are taken in turns (service, bare, service, bare, ...: ROUNDS each)
so that a machine whose speed drifts weighs on both sides alike; the throughput
line also prints each round's ratio. Prints each figure and each ratio. Not a
test: it asserts nothing.
"""
import argparse
import hashlib
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import run as e2e  # noqa: E402  (free_port, get, descendants, read_proc, ...)

PYTHON = "/usr/bin/python3"
XONSH = "/usr/bin/xonsh"
SHELL = "echo hello world"
POOL = 8
HELLO = 'print("hello world")'
ROUNDS = 4  # each side-by-side figure: service and bare in turn, this many times
NUMPY = ("import numpy as np, pandas as pd; df = pd.DataFrame({'a': np.arange(100)}); "
         "print(int(df.a.sum()))")


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(x):
    return "%.1f ms" % (x * 1000)


KEY = None  # the bearer key every request carries (None: the service runs open)


class Client:
    """One keep-alive connection to the service."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.headers = {"Content-Type": "application/json"}
        if KEY:
            self.headers["Authorization"] = "Bearer " + KEY

    def execute(self, source):
        """(status, body, its Retry-After header or None)."""
        body = json.dumps({"source_code": source}).encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request("POST", "/v1/execute", body, self.headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data, r.getheader("Retry-After")
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def service_instance(data_dir=None):
    """A service instance (tests/e2e/instance.py; its binaries from E2E_BUILD,
    or from instance.BUILD once set) with a pool of POOL and the service's own
    defaults for the workers and APP_PRELOAD_MODULES; its executor/python from
    data_dir when given. Not started."""
    import instance
    inst = instance.Instance({"APP_LOG_LEVEL": "warn"}, pool=POOL)
    del inst.env["APP_WORKERS"], inst.env["APP_PRELOAD_MODULES"]
    if data_dir:
        inst.env["APP_DATA_DIR"] = data_dir
    return inst


def ready_count(db):
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            return c.execute("SELECT count(*) FROM sandboxes WHERE state = 'ready'").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def wait_pool_full(db, timeout=180):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if ready_count(db) >= POOL:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def timed_service(client, source, n, expect, before=None):
    """n calls one after the other; before(), when given, runs ahead of
    each call, outside its time."""
    lat, errors = [], 0
    for _ in range(n):
        if before:
            before()
        t = time.perf_counter()
        status, body, _ = client.execute(source)
        lat.append(time.perf_counter() - t)
        if status != 200 or json.loads(body).get("stdout") != expect:
            errors += 1
    return lat, errors


def timed_bare(argv, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        lat.append(time.perf_counter() - t)
    return lat


def run_threads(loop, conc):
    """Runs loop(0) .. loop(conc - 1) in threads; returns the seconds they took."""
    t0 = time.monotonic()
    ts = [threading.Thread(target=loop, args=(i,)) for i in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0


def interleaved(rounds, service, bare, settle):
    """Runs service() and bare() in turn, rounds times each, and returns the
    lists of their results: a machine whose speed drifts during the run (other
    tenants, frequency) weighs on both sides alike. settle() before each bare
    turn lets the pool refill outside of it."""
    a, b = [], []
    for _ in range(rounds):
        a.append(service())
        settle()
        b.append(bare())
    return a, b


def load(port, seconds, conc):
    """hello world from conc clients for seconds: (executions per second,
    latencies of the answered ones, 503s with Retry-After, other errors)."""
    lat = [[] for _ in range(conc)]
    busy, errors = [0] * conc, [0] * conc
    stop = time.monotonic() + seconds

    def loop(i):
        c = Client(port)
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                status, body, retry = c.execute(HELLO)
                ok = status == 200 and json.loads(body).get("stdout") == "hello world\n"
            except Exception:
                status, retry, ok = 0, None, False
            if ok:
                lat[i].append(time.perf_counter() - t)
            elif status == 503 and retry:
                busy[i] += 1
            else:
                errors[i] += 1

    elapsed = run_threads(loop, conc)
    done = [x for xs in lat for x in xs]
    return len(done) / elapsed, done, sum(busy), sum(errors)


def throughput_service(port, seconds, conc):
    rate, done, busy, errors = load(port, seconds, conc)
    return rate, len(done), busy + errors


def throughput_bare(seconds, conc=2):
    done = [0] * conc
    stop = time.monotonic() + seconds

    def loop(i):
        while time.monotonic() < stop:
            subprocess.run([PYTHON, "-c", HELLO], stdout=subprocess.DEVNULL, check=True)
            done[i] += 1

    elapsed = run_threads(loop, conc)
    return sum(done) / elapsed


UNSHARE = ["/usr/bin/unshare", "--fork"]
NAMESPACES = ["--user", "--map-root-user", "--pid", "--mount", "--net", "--ipc", "--uts", "--cgroup"]
FLOOR_PAGES = 2000


def page_costs():
    """(µs per page first read, µs per page first written) in a child forked
    from this process, of pages the parent wrote before the fork: what every
    runner forked from the warm image pays per page it touches."""
    buf = bytearray(2 * FLOOR_PAGES * 4096)
    for i in range(0, len(buf), 4096):
        buf[i] = 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            half = FLOOR_PAGES * 4096
            t0 = time.thread_time()
            total = 0
            for i in range(0, half, 4096):
                total += buf[i]
            t1 = time.thread_time()
            for i in range(half, 2 * half, 4096):
                buf[i] = 2
            t2 = time.thread_time()
            for i in range(0, half, 4096):  # the loop alone: pages already mapped
                total += buf[i]
            t3 = time.thread_time()
            os.write(w, json.dumps([t1 - t0 - (t3 - t2), t2 - t1 - (t3 - t2)]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        read_s, write_s = json.loads(f.read())
    os.waitpid(pid, 0)
    return read_s * 1e6 / FLOOR_PAGES, write_s * 1e6 / FLOOR_PAGES


def floor(runs):
    """What this machine charges for the pieces every sandbox is made of,
    whatever the service does: a process started and reaped, the same in
    seven new namespaces, and the pages a forked process touches."""
    true = statistics.median(timed_bare(["/bin/true"], runs))
    plain = statistics.median(timed_bare(UNSHARE + ["/bin/true"], runs))
    spaced = statistics.median(timed_bare(UNSHARE + NAMESPACES + ["/bin/true"], runs))
    reads, writes = zip(*[page_costs() for _ in range(3)])
    print("floor         /bin/true started and reaped %s | `unshare --fork /bin/true` %s, in 7 new namespaces "
          "%s: namespaces made and torn down %s | a page a forked process reads %.1f µs, writes %.1f µs "
          "(first touch, %d pages, median of 3)"
          % (ms(true), ms(plain), ms(spaced), ms(spaced - plain), statistics.median(reads),
             statistics.median(writes), FLOOR_PAGES))


# One fork per run of a python3 that imported the preloads: what a service
# that forks a fresh process per run from a warm image pays at least on this
# machine, sandbox or not. argv: preloads, code, "latency" N (N runs one
# after the other: their wall times in ms) or "rate" S (two at a time for S
# seconds: runs per second).
FORK_FLOOR = r"""
import gc, os, sys, time
for name in filter(None, sys.argv[1].split(",")):
    __import__(name)
gc.freeze()
code = compile(sys.argv[2], "<string>", "exec")
devnull = os.open("/dev/null", os.O_WRONLY)

def fork():
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 1)
        exec(code, {"__name__": "__main__"})
        sys.stdout.flush()
        os._exit(0)
    return pid

mode, n = sys.argv[3], float(sys.argv[4])
if mode == "latency":
    walls = []
    for _ in range(int(n)):
        t = time.perf_counter()
        os.waitpid(fork(), 0)
        walls.append((time.perf_counter() - t) * 1000)
    print(" ".join("%.3f" % w for w in walls))
else:
    t0, done, live = time.monotonic(), 0, {fork(), fork()}
    while time.monotonic() - t0 < n:
        pid = os.wait()[0]
        live.discard(pid)
        done += 1
        live.add(fork())
    for pid in live:
        os.waitpid(pid, 0)
        done += 1
    print("%.2f" % (done / (time.monotonic() - t0)))
"""


def default_of(build, name):
    """The service's default for option name, as its binary documents it
    (`code-interpreter --config-markdown`: one table row per option)."""
    table = subprocess.run([os.path.join(build, "code-interpreter"), "--config-markdown"], capture_output=True,
                           text=True, check=True).stdout
    for row in table.splitlines():
        cells = [c.strip() for c in row.split("|")]
        if len(cells) > 3 and cells[1] == "`%s`" % name:
            return cells[2]
    raise SystemExit("bench: %s is not an option of %s/code-interpreter" % (name, build))


def fork_floor(preloads, bare_hello, bare_numpy, bare_rate, runs, seconds):
    """The floor of a fresh process per run (FORK_FLOOR), against the bare
    interpreter's figures of the same run."""
    def fork_run(code, mode, n):
        r = subprocess.run([PYTHON, "-c", FORK_FLOOR, preloads, code, mode, str(n)], capture_output=True,
                           text=True, check=True)
        return [float(x) for x in r.stdout.split()]
    hello = statistics.median(fork_run(HELLO, "latency", runs)) / 1000
    numpy = statistics.median(fork_run(NUMPY, "latency", runs)) / 1000
    rate = fork_run(HELLO, "rate", seconds)[0]
    print("fork floor    a fork per run of python3 with %s imported, no sandbox: hello world p50 %s (%.3f× "
          "bare), numpy+pandas p50 %s (%.3f× bare), two at a time %.1f runs/s (%.2f× bare)"
          % (preloads or "nothing", ms(hello), hello / bare_hello, ms(numpy), numpy / bare_numpy, rate,
             rate / bare_rate))


def pss_kb(pid):
    s = e2e.read_proc(pid, "smaps_rollup")
    if not s:
        return 0
    for line in s.decode().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def memory(master):
    """(service total, lighttpd, pool) PSS in kB; pool = everything under the
    pool manager. A runner's memory holder shares the runner's address space:
    its smaps are the runner's, counted once, with the runner."""
    fields = {p: e2e.proc_fields(p) for p in e2e.descendants(master)}
    procs = {p for p, (comm, _) in fields.items() if comm and comm != "runner-memory"}
    total = pss_kb(master) + sum(pss_kb(p) for p in procs)
    lighttpd = sum(pss_kb(p) for p in procs if fields[p][0] == "lighttpd")
    pool = 0
    for p in procs:
        if int(fields[p][1][1]) != master:
            continue
        below = procs.intersection(e2e.descendants(p))
        if any(b"executor" in (e2e.read_proc(q, "cmdline") or b"") for q in below):
            pool += sum(pss_kb(q) for q in below)
    return total, lighttpd, pool, len(procs) + 1


TICK = os.sysconf("SC_CLK_TCK")
# process name (comm) -> what the profile calls it; a process's ended
# children (cutime, cstime) are counted as what they were
SANDBOXES = "sandboxes (server, runner, code)"
MASTER_COMM = "code-interprete"  # the binary's name, cut to comm's 15 bytes
ROLES = {"lighttpd": "lighttpd", "ci-worker": "workers", MASTER_COMM: "master",
         "ci-cleanup": "cleanup process", "ci-root-helper": "root helper", "ci-pool": "pool manager (refill)",
         "spawner": "spawner (forks sandboxes)", "zygote": "warm zygote (forks runners)",
         "sandbox": SANDBOXES, "runner": SANDBOXES, "runner-memory": SANDBOXES}
ENDED = {"ci-pool": "pool manager (refill)", "spawner": SANDBOXES, "zygote": SANDBOXES,
         "sandbox": SANDBOXES, "runner": SANDBOXES, "runner-memory": SANDBOXES}


def pids_named(master, comm):
    """The service's processes named comm."""
    return [pid for pid in e2e.descendants(master) if e2e.proc_fields(pid)[0] == comm]


def cpu_by_role(master):
    """{role: CPU seconds} of the service's processes: each live one's own
    time, plus the time of its children that ended (as their role)."""
    out = {}
    for pid in [master] + list(e2e.descendants(master)):
        comm, f = e2e.proc_fields(pid)
        if not comm:
            continue
        own, ended = (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK
        role = ROLES.get(comm, "other (%s)" % comm)
        out[role] = out.get(role, 0) + own
        kids = ENDED.get(comm, role)
        out[kids] = out.get(kids, 0) + ended
    return out


def machine_cpu():
    """Busy CPU seconds of the whole machine (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK


def stage_cpu(port):
    """{stage: workers' CPU seconds} from GET /metrics."""
    headers = {"Authorization": "Bearer " + KEY} if KEY else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers=headers)
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("ci_worker_cpu_seconds_total{"):
            name, value = line.rsplit(" ", 1)
            out[name.split('"')[1]] = float(value)
    return out


PERF = "/usr/bin/perf"
PERF_HZ = 499
# (what, process names, kernel function whose inclusive time it is): the
# kernel's share of the sandboxes' time, from a perf sample of the load
PERF_PARTS = (
    ("page faults", ("runner", "sandbox", "zygote"), "asm_exc_page_fault"),
    ("teardown (exit of server, runner and its memory holder)", ("runner", "sandbox", "runner-memory"),
     "do_exit"),
    ("fork of a runner", ("zygote",), "copy_process"),
    ("fork of a sandbox's pid 1 (namespaces)", ("spawner",), "copy_process"),
)


def perf_start(path, delay, seconds):
    """perf record of the whole machine (cpu-clock, call graphs) for seconds
    from delay seconds on, or (None, why) when perf cannot sample here."""
    if not os.access(PERF, os.X_OK):
        return None, "%s not installed (Debian's linux-perf)" % PERF
    p = subprocess.Popen([PERF, "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ), "-a", "-g", "-o", path,
                          "-D", str(int(delay * 1000)), "--", "sleep", "%.1f" % (delay + seconds)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p, None


def perf_split(p, path, seconds, rate):
    """ms per execution of each PERF_PARTS entry, from the sample perf_start
    took while executions ran at rate per second; or a reason."""
    err = p.communicate()[1].decode(errors="replace").strip()
    if p.returncode != 0:
        return None, "perf record failed: %s" % (err.splitlines() or ["exit %d" % p.returncode])[-1]
    r = subprocess.run([PERF, "report", "-i", path, "--children", "--sort", "comm,sym", "-g", "none", "-q",
                        "--percent-limit", "0.01", "-t", "|"], capture_output=True, timeout=300)
    if r.returncode != 0:
        return None, "perf report failed"
    share = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) >= 4 and f[0].endswith("%"):
            share[(f[2], f[3].replace("[k] ", ""))] = float(f[0][:-1]) / 100
    # cpu-clock on every CPU: the sample spans ncpu * seconds of time, idle included
    per_exec = os.cpu_count() * seconds * 1000 / max(rate * seconds, 1)
    return [(what, sum(share.get((c, sym), 0) for c in comms) * per_exec) for what, comms, sym in PERF_PARTS], None


def perf_modes(path, seconds, rate, measuring):
    """(kernel, service's user space, measuring) ms per execution from the
    sample perf_start took while executions ran at rate per second: the
    kernel's time on every CPU but idle (the service's system calls, faults,
    forks, exits, and the kernel threads that tear namespaces down), the
    user-space time of everything else, and the time of the processes named
    in measuring (the bench's client, perf) on their own; or a reason."""
    r = subprocess.run([PERF, "report", "-i", path, "--no-children", "--sort", "comm,dso", "-g", "none", "-q",
                        "--percent-limit", "0", "-t", "|"], capture_output=True, timeout=300)
    if r.returncode != 0:
        return None, "perf report failed"
    kernel = user = ours = 0.0
    for line in r.stdout.decode(errors="replace").splitlines():
        f = [x.strip() for x in line.split("|")]
        if len(f) < 3 or not f[0].endswith("%"):
            continue
        share, comm, dso = float(f[0][:-1]) / 100, f[1], f[2]
        if comm in measuring:
            ours += share
        elif comm == "swapper":
            continue  # idle
        elif dso == "[kernel.kallsyms]":
            kernel += share
        else:
            user += share
    per_exec = os.cpu_count() * seconds * 1000 / max(rate * seconds, 1)
    return (kernel * per_exec, user * per_exec, ours * per_exec), None


def profile(master, port, seconds, conc, bare_rate):
    """CPU per execution of hello world at concurrency conc, by process
    role and, for the workers, by stage; the rest of the machine's busy
    time (kernel threads: network namespace teardown, RCU; the bench
    itself) on its own line."""
    perf_data = "/tmp/code-interpreter-bench-%d.perf" % os.getpid()
    perf_seconds = max(seconds - 2, 1)  # inside the load, not its ramps
    roles0, stages0, busy0, self0 = cpu_by_role(master), stage_cpu(port), machine_cpu(), sum(os.times()[:2])
    proc, why = perf_start(perf_data, 1.0, perf_seconds)
    rate, n, errors = throughput_service(port, seconds, conc)
    # the sandboxes used last end, and the refill settles, before the reading
    time.sleep(1.0)
    roles1, stages1, busy1, self1 = cpu_by_role(master), stage_cpu(port), machine_cpu(), sum(os.times()[:2])
    n = max(n, 1)
    per = {r: (roles1.get(r, 0) - roles0.get(r, 0)) * 1000 / n for r in set(roles0) | set(roles1)}
    ours = sum(per.values())
    bench = (self1 - self0) * 1000 / n
    rest = (busy1 - busy0) * 1000 / n - ours - bench
    print("profile       CPU per execution, hello world at concurrency %d, %d executions (%d errors): "
          "service %.2f ms, machine %.2f ms" % (conc, n, errors, ours, (busy1 - busy0) * 1000 / n))
    for role, v in sorted(per.items(), key=lambda kv: -kv[1]):
        if abs(v) < 0.005:
            continue
        line = "  %-34s %6.2f ms" % (role, v)
        if role == "workers":
            line += "  (" + ", ".join("%s %.2f" % (k, (stages1.get(k, 0) - stages0.get(k, 0)) * 1000 / n)
                                      for k in stages1) + ")"
        print(line)
    print("  %-34s %6.2f ms" % ("the bench's client", bench))
    print("  %-34s %6.2f ms%s" % ("kernel threads and the rest", rest,
                                   "  (perf's sampling included)" if proc is not None else ""))
    if proc is None:
        print("  kernel's share of the sandboxes: not measured: %s" % why)
        return
    parts, why = perf_split(proc, perf_data, perf_seconds, rate)
    modes = None
    if parts is not None:
        with open("/proc/self/comm") as f:
            modes, why = perf_modes(perf_data, perf_seconds, rate, (f.read().strip(), "perf", "sleep"))
    try:
        os.unlink(perf_data)
    except OSError:
        pass
    if parts is None:
        print("  kernel's share of the sandboxes: not measured: %s" % why)
        return
    print("  kernel's share of the sandboxes (perf, %.0f s of the load): %s" % (
        perf_seconds, ", ".join("%s %.2f ms" % (what, v) for what, v in parts)))
    if modes is None:
        print("  kernel and user space: not measured: %s" % why)
        return
    # the kernel's work alone, with the bench's client, bounds the rate
    # whatever the service's own code costs
    kernel, user, measuring = modes
    bound = os.cpu_count() * 1000 / (kernel + measuring)
    print("  kernel and user space (perf): the kernel %.2f ms per execution, the service's user space "
          "%.2f ms, the bench's client and perf %.2f ms | were the service's user space free: at most "
          "%.0f exec/s, %.2f× bare" % (kernel, user, measuring, bound, bound / bare_rate))


def other_services():
    """Pids of code-interpreter masters already running on this machine."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit() and e2e.proc_fields(int(d))[0] == MASTER_COMM:
            pids.append(int(d))
    return sorted(pids)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--requests", type=int, default=100, help="sequential requests per latency figure")
    ap.add_argument("--bare-runs", type=int, default=30, help="bare interpreter runs per latency figure")
    ap.add_argument("--seconds", type=float, default=20, help="duration of the throughput figure")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra APP_* setting for the service (e.g. APP_ZYGOTE=0)")
    ap.add_argument("--no-keys", action="store_true", help="run the service without API keys")
    args = ap.parse_args()

    os.environ["E2E_BUILD"] = os.path.abspath(args.build)
    os.environ.setdefault("E2E_PORT", "0")
    inst = service_instance()
    if not args.no_keys:
        global KEY
        KEY = "bench-" + os.urandom(16).hex()
        with open(inst.tmp + "/api-keys", "w") as f:
            f.write("bench:sha256:%s\n" % hashlib.sha256(KEY.encode()).hexdigest())
        inst.env["APP_API_KEYS_FILE"] = inst.tmp + "/api-keys"
    for kv in args.env:
        k, _, v = kv.partition("=")
        inst.env[k] = v
    env, port, db, log_path = inst.env, inst.port, inst.db, inst.log
    others = other_services()
    if others:
        # they share library pages with the measured service (its PSS looks
        # smaller) and take CPU from it
        print("bench: warning: %d other code-interpreter service(s) running (pid %s): memory and "
              "timings are off" % (len(others), ", ".join(map(str, others))), flush=True)
    print("bench: %s; load average %s" % (
        " ".join("%s=%s" % (k, env[k]) for k in sorted(env) if k.startswith("APP_") and
                 k not in ("APP_RUN_DIR", "APP_DB_PATH", "APP_FILE_STORAGE_PATH", "APP_DATA_DIR",
                           "APP_PACKAGE_CACHE", "APP_PIP_FIND_LINKS")),
        " ".join(open("/proc/loadavg").read().split()[:3])), flush=True)
    try:
        inst.start("/healthz", timeout=120)
        proc = inst.proc
        fill = wait_pool_full(db)
        if fill is None:
            print("bench: the pool never filled; see %s" % log_path)
            print(e2e.tail(log_path, 30))
            return 1
        print("pool of %d ready %.2f s after the service answered" % (POOL, fill))

        # 4. memory at rest, first (nothing has run yet)
        time.sleep(1)
        total, lighttpd, pool, nproc = memory(proc.pid)
        c = Client(port)
        rows = []

        # 1. hello world, 2. numpy + pandas: service and bare in turn, in
        # ROUNDS slices each
        for _ in range(3):
            c.execute(HELLO)
        # 2b. a shell line, against upstream's way: `xonsh script` in a fresh process
        script = os.path.join(inst.tmp, "shell.xsh")
        with open(script, "w") as f:
            f.write(SHELL + "\n")
        # "hello, spaced": each call finds the pool full, as the calls of an
        # agent seconds apart do; the others come back to back, each while
        # the sandbox the one before used is replaced
        full = lambda: wait_pool_full(db)  # noqa: E731
        for name, source, expect, requests, bare_name, bare_argv, bare_runs, before in (
                ("hello world", HELLO, "hello world\n", args.requests, "bare python3",
                 [PYTHON, "-c", HELLO], args.bare_runs, None),
                ("hello, spaced", HELLO, "hello world\n", max(ROUNDS, args.requests // 2), "bare python3",
                 [PYTHON, "-c", HELLO], max(ROUNDS, args.bare_runs // 2), full),
                ("numpy+pandas", NUMPY, "4950\n", args.requests, "bare python3",
                 [PYTHON, "-c", NUMPY], max(ROUNDS, args.bare_runs // 3), None),
                ("shell line", SHELL, "hello world\n", args.requests // 2, "bare xonsh",
                 [XONSH, "--no-rc", script], max(ROUNDS, args.bare_runs // 3), None)):
            wait_pool_full(db)
            svc, bare = interleaved(
                ROUNDS, lambda: timed_service(c, source, requests // ROUNDS, expect, before),
                lambda: timed_bare(bare_argv, bare_runs // ROUNDS), lambda: wait_pool_full(db))
            rows.append((name, [x for lat, _ in svc for x in lat], sum(e for _, e in svc), bare_name,
                         [x for b in bare for x in b]))

        for name, lat, err, bare_name, bare in rows:
            b50 = statistics.median(bare)
            print("%-13s service p50 %s  p99 %s  (n=%d, errors %d) | %s p50 %s (n=%d)"
                  " | ratio p50 service/bare %.3f" % (name, ms(pct(lat, 50)), ms(pct(lat, 99)), len(lat),
                                                      err, bare_name, ms(b50), len(bare), pct(lat, 50) / b50))

        # 3. throughput, in turns too (the bare side for half as long)
        wait_pool_full(db)
        svc, bare = interleaved(
            ROUNDS, lambda: throughput_service(port, args.seconds / ROUNDS, 8),
            lambda: throughput_bare(min(args.seconds, 10) / ROUNDS), lambda: wait_pool_full(db))
        rate = sum(r for r, _, _ in svc) / ROUNDS
        n, errors = sum(k for _, k, _ in svc), sum(e for _, _, e in svc)
        bare_rate = sum(bare) / ROUNDS
        print("throughput    service %.1f exec/s at concurrency 8 for %.0f s (%d ok, %d errors) | "
              "bare python3 %.1f runs/s two at a time | ratio %.2f (per round: %s)"
              % (rate, args.seconds, n, errors, bare_rate, rate / bare_rate,
                 " ".join("%.2f" % (a[0] / b) for a, b in zip(svc, bare))))

        # 3b. overload: concurrency 32 against 8
        wait_pool_full(db)
        at8 = load(port, args.seconds / 2, 8)
        wait_pool_full(db)
        at32 = load(port, args.seconds / 2, 32)
        p8, p32 = pct(at8[1], 99), pct(at32[1], 99)
        print("overload      p99 at concurrency 32 %s vs at 8 %s: ratio %.2f | at 32: %d answered, %d refused "
              "with 503 and Retry-After, %d other errors (at 8: %d, %d, %d)"
              % (ms(p32), ms(p8), p32 / p8, len(at32[1]), at32[2], at32[3], len(at8[1]), at8[2], at8[3]))

        wait_pool_full(db)
        profile(proc.pid, port, min(args.seconds, 10), 8, bare_rate)

        print("memory        PSS at rest, pool of %d: service total %.1f MB (%d processes, incl. "
              "lighttpd %.1f MB) | added by the pool %.1f MB | service without the pool %.1f MB"
              % (POOL, total / 1024, nproc, lighttpd / 1024, pool / 1024, (total - pool) / 1024))
        floor(max(ROUNDS, args.bare_runs // 3))
        bare = {name: statistics.median(b) for name, _, _, _, b in rows}
        preloads = (env["APP_PRELOAD_MODULES"] if "APP_PRELOAD_MODULES" in env
                    else default_of(args.build, "APP_PRELOAD_MODULES"))
        fork_floor(preloads, bare["hello world"], bare["numpy+pandas"], bare_rate, max(ROUNDS, args.bare_runs),
                   min(args.seconds, 10) / 2)
        print("bench: load average now %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        ok, lines = inst.stop()
        if not ok:
            print("\n".join(lines))
        inst.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
