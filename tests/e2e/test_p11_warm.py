"""Issue 5: the layout that makes local sandboxes cheap without sharing a run.

The sandbox's pid 1 is a small process (forked from the zygote's spawner, not
from the warm interpreter); the runner is forked from the warm interpreter
straight into the sandbox's namespaces, as pid 1's child, with the preloads
already imported, beside its memory holder (issue 18: a process that shares
the runner's memory and nothing else, so that the runner's exit does not wait
for its memory to come down)."""

import ctypes
import errno
import hashlib
import os
import re
import socket
import sqlite3
import struct
import threading
import time

import client
import run
from instance import Instance
from support import DB_PATH, E2E, MASTER_PID, RUN_DIR, comm, is_spawner, read_log

SYS_KCMP = {"x86_64": 312, "aarch64": 272}.get(os.uname().machine)
KCMP_VM = 1


def ppid(pid):
    f = run.proc_fields(pid)[1]
    return int(f[1]) if f else 0


def spawner_pid():
    """The zygote's spawner of the service under test."""
    for d in os.listdir("/proc"):
        if d.isdigit() and is_spawner(int(d)):
            p = int(d)
            while p > 1 and p != MASTER_PID:
                p = ppid(p)
            if p == MASTER_PID:
                return int(d)
    raise AssertionError("no spawner under the master")


def held_network_namespaces(spawner):
    """Network namespaces the spawner holds for sandboxes that have ended: its
    descriptors of namespaces no process of its children is in."""
    fds = set()
    for fd in os.listdir("/proc/%d/fd" % spawner):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (spawner, fd))
        except OSError:
            continue
        if target.startswith("net:["):
            fds.add(target)
    live = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                live.add(os.readlink("/proc/%s/ns/net" % d))
            except OSError:
                pass
    return fds - live


def db_rows(sql, db=DB_PATH):
    """The rows of sql in the database at db (the service under test's)."""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def children(pid):
    """The pids of pid's children (its main thread's)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def status_fields(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def nice(pid):
    return int(run.proc_fields(pid)[1][16])


def same_memory(a, b):
    """Whether processes a and b share one address space (kcmp(2), as root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.syscall(SYS_KCMP, a, b, KCMP_VM, 0, 0)
    if r < 0:
        raise OSError(ctypes.get_errno(), "kcmp(%d, %d)" % (a, b))
    return r == 0


def rss_anon_kb(status_text):
    for line in status_text.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in:\n" + status_text)


class P11Warm(E2E):
    def test_runner_and_its_memory_holder_are_the_only_children_of_pid_1(self):
        v = self.run_probe(
            "import os, json\n"
            "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "names = {p: open('/proc/%d/comm' % p).read().strip() for p in pids}\n"
            "parents = {p: int(open('/proc/%d/stat' % p).read().rsplit(')', 1)[1].split()[1]) for p in pids}\n"
            "print(json.dumps([os.getpid(), os.getppid(), names, parents]))")
        me, parent, names, parents = v
        self.assertEqual(parent, 1)
        holders = [int(p) for p, n in names.items() if n == "runner-memory"]
        self.assertEqual(len(holders), 1, names)
        self.assertEqual(sorted(int(p) for p in names), sorted([1, me, holders[0]]), names)
        self.assertEqual(parents[str(holders[0])], 1)

    def test_each_runners_memory_is_held_by_a_process_that_holds_nothing_else(self):
        """Seen from the host, in every ready sandbox: the holder shares the
        runner's address space (kcmp), has no descriptor, blocks every signal
        but SIGKILL and SIGSTOP, and runs at the lowest priority."""
        if SYS_KCMP is None:
            self.skipTest("kcmp's system call number is not known for %s" % os.uname().machine)
        # the ready sandboxes (pid 1's host pid in the pool's table), once
        # the runs of the tests before are replaced
        ready = "SELECT pid FROM sandboxes WHERE state = 'ready'"
        self.assertTrue(wait_for(lambda: db_rows(ready), 30), "no sandbox became ready")
        pairs = []
        for (sandbox,) in db_rows(ready):
            kids = {comm(p): p for p in children(sandbox)}
            if "runner" in kids and "runner-memory" in kids:
                pairs.append((kids["runner"], kids["runner-memory"]))
        self.assertTrue(pairs, "no ready sandbox with a runner and its memory holder")
        all_but_kill_and_stop = ((1 << 64) - 1) & ~(1 << (9 - 1)) & ~(1 << (19 - 1))
        for runner, holder in pairs:
            self.assertTrue(same_memory(runner, holder), (runner, holder))
            self.assertEqual(os.listdir("/proc/%d/fd" % holder), [])
            self.assertEqual(int(status_fields(holder)["SigBlk"], 16), all_but_kill_and_stop)
            # its last step, once the runner has gone on
            self.assertTrue(wait_for(lambda: nice(holder) == 19, 5), "nice %d" % nice(holder))
            self.assertEqual(nice(runner), 0)

    def test_a_run_whose_code_kills_the_memory_holder_ends_as_usual(self):
        out = self.run_code(r'''
import os, signal
for p in os.listdir("/proc"):
    if p.isdigit() and open("/proc/%s/comm" % p).read().strip() == "runner-memory":
        os.kill(int(p), signal.SIGKILL)
        print("killed")
raise SystemExit(3)
''', expect_exit=3)
        self.assertEqual(out["stdout"], "killed\n")

    def test_a_memory_holder_the_code_takes_over_can_make_no_system_call(self):
        """The attack: stop the holder, rewrite the instruction it restarts its
        sleep with (libc's syscall(), in the memory it shares with the code)
        into getpid and a spin, let it go on. Its own filter kills it at the
        system call; without one it would be the code's, spared by the
        server's last wait."""
        if os.uname().machine != "x86_64":
            self.skipTest("the patch is x86_64 code")
        out = self.run_code(r'''
import ctypes, mmap, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
def state(pid):
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
holder = next(int(p) for p in os.listdir("/proc")
              if p.isdigit() and open("/proc/%s/comm" % p).read().strip() == "runner-memory")
os.kill(holder, signal.SIGSTOP)
while state(holder) not in ("T", "t"):
    time.sleep(0.001)
fn = ctypes.cast(libc.syscall, ctypes.c_void_p).value
at = fn + ctypes.string_at(fn, 64).index(b"\x0f\x05")
page = at & ~(mmap.PAGESIZE - 1)
if libc.mprotect(page, 2 * mmap.PAGESIZE, 7) != 0:
    raise OSError(ctypes.get_errno(), "mprotect")
ctypes.memmove(at, b"\xb8\x27\x00\x00\x00\x0f\x05\xeb\xfe", 9)  # mov eax, getpid; syscall; spin
os.kill(holder, signal.SIGCONT)
deadline = time.monotonic() + 3
while state(holder) not in ("Z", "X", "gone") and time.monotonic() < deadline:
    time.sleep(0.01)
print(state(holder))
''')
        self.assertIn(out["stdout"], ("Z\n", "X\n", "gone\n"), out["stderr"])

    def test_the_code_waits_for_no_child_it_did_not_make(self):
        # the holder is the runner's sibling: os.wait() answers at once
        out = self.run_code("import os\n"
                            "try:\n"
                            "    os.wait()\n"
                            "except ChildProcessError:\n"
                            "    print('no child')\n", timeout=10)
        self.assertEqual(out["stdout"], "no child\n")

    def test_preloads_are_imported_before_the_code_runs(self):
        v = self.run_probe("import sys, json; print(json.dumps(['numpy' in sys.modules, 'pandas' in sys.modules]))")
        self.assertEqual(v, [True, True])

    def test_pandas_was_exercised_in_the_warm_image(self):
        # a DataFrame made and shown there (runner._exercise): its repr's
        # module is in place before the code shows one of its own, and the
        # code's frame is shown as in a fresh interpreter
        out = self.run_code("import sys\n"
                            "print('pandas.io.formats.string' in sys.modules)\n"
                            "import pandas as pd\n"
                            "print(pd.DataFrame({'n': [7]}))\n")
        self.assertEqual(out["stdout"], "True\n   n\n0  7\n", out["stderr"])

    def test_pid_1_is_not_a_copy_of_the_warm_interpreter(self):
        v = self.run_probe(
            "import json\n"
            "print(json.dumps([open('/proc/1/status').read(), open('/proc/self/status').read()]))")
        pid1, runner = (rss_anon_kb(t) for t in v)
        # the runner maps the warm interpreter's heap (numpy, pandas); pid 1
        # only the executor server's
        self.assertGreater(runner, 4 * pid1, "pid 1 %d kB, runner %d kB" % (pid1, runner))
        self.assertLess(pid1, 16 * 1024)

    def test_sandbox_directories_are_on_a_tmpfs_of_the_service(self):
        # one per sandbox made and removed: never a disk journal's business
        where = os.path.join(RUN_DIR, "sandboxes")
        with open("/proc/self/mountinfo") as f:
            mounts = [l.split() for l in f]
        mine = [m for m in mounts if m[4] == where]
        self.assertEqual(len(mine), 1, "no mount on %s" % where)
        fstype = mine[0][mine[0].index("-") + 1]
        self.assertEqual(fstype, "tmpfs")
        self.assertIn("nosuid", mine[0][5])
        self.assertIn("noexec", mine[0][5])

    def test_a_module_from_an_earlier_run_is_importable(self):
        # the workspace's finder is made anew for each run (not the zygote's)
        first = self.run_code("open('helper_mod.py', 'w').write('X = 42\\n')")
        self.assertIn("/workspace/helper_mod.py", first["files"])
        out = self.run_code("import helper_mod; print(helper_mod.X)", files=first["files"])
        self.assertEqual(out["stdout"], "42\n")

    def test_random_generators_are_reseeded_in_each_run(self):
        probe = ("import json, random, numpy\n"
                 "print(json.dumps([random.random(), numpy.random.random(), numpy.random.randint(1 << 30)]))")
        a, b = self.run_probe(probe), self.run_probe(probe)
        for x, y in zip(a, b):
            self.assertNotEqual(x, y)

    def test_a_runner_starts_with_few_page_copies(self):
        # what a fork of the warm image costs shows in its page faults by the
        # time the code runs: ~530 here; leaving the zygote's free small
        # blocks to the runners (~590), running every after-fork hook (~595),
        # reseeding NumPy with its set_state (~575), compiling the seccomp
        # filter in each runner or leaving malloc's free chunks unsorted (over
        # 1,000) goes past 570.
        # (No "import" in the code: the import check would add its own.)
        out = self.run_code('r = __builtins__["__imp" + "ort__"]("resource")\n'
                            'print(r.getrusage(r.RUSAGE_SELF).ru_minflt)')
        self.assertLess(int(out["stdout"]), 570)

    def test_runners_inherit_the_filter_the_warm_interpreter_is_under(self):
        # the warm interpreter puts a run's seccomp filter on itself once, but
        # for setns (entering a sandbox's namespaces); a runner inherits it,
        # compiled once by the kernel, and adds a filter of a few instructions
        # that refuses setns, not the whole filter again
        warm = [p for p in children(spawner_pid()) if run.proc_fields(p)[0] == "zygote"]
        self.assertEqual(len(warm), 1, "the warm interpreter among the spawner's children")
        fields = status_fields(warm[0])
        self.assertEqual((fields["Seccomp"], fields["Seccomp_filters"], fields["NoNewPrivs"]), ("2", "1", "1"))
        v = self.run_probe(r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
fields = dict(l.split(':\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\t' in l)
# a bad descriptor: the kernel would answer EBADF, the filter answers first
setns = libc.setns(-1, 0), ctypes.get_errno()
print(json.dumps([fields['Seccomp'], fields['Seccomp_filters'], setns]))
""")
        self.assertEqual(v, ["2", "2", [-1, errno.EPERM]])

    def test_extension_modules_are_mapped_in_two_parts(self):
        # in the zygote, the headers of each library the preloads loaded join
        # its code and its RELRO its data (fewer mappings per fork and exit);
        # libpython and libc, the zygote's own, keep read-only headers and RELRO
        v = self.run_probe(r"""
import json, struct
maps = []
for line in open('/proc/self/maps'):
    f = line.split()
    if len(f) > 5 and f[5].startswith('/'):
        lo, hi = (int(x, 16) for x in f[0].split('-'))
        maps.append((lo, hi, f[1], int(f[2], 16), f[5]))
def relro(path):
    try:
        f = open(path, 'rb')
    except OSError:  # the zygote's own program: a host path
        return None
    with f:
        head = f.read(64)
        if head[:4] != b'\x7fELF':
            return None
        phoff, = struct.unpack_from('<Q', head, 32)
        size, count = struct.unpack_from('<HH', head, 54)
        f.seek(phoff)
        table = f.read(size * count)
    for i in range(count):
        kind, _, _, vaddr = struct.unpack_from('<IIQQ', table, i * size)
        if kind == 0x6474e552:
            return vaddr
def perms_at(path, address):
    return [m[2] for m in maps if m[4] == path and m[0] <= address < m[1]][0]
perms = {}  # file: [headers, RELRO]
for path in sorted({m[4] for m in maps}):
    base = min(lo for lo, _, _, off, p in maps if p == path and off == 0)
    at = relro(path)
    if at is not None:
        perms[path.rsplit('/', 1)[-1]] = [perms_at(path, base), perms_at(path, base + at)]
print(json.dumps(perms))
""")
        perms = v
        modules = {n: p for n, p in perms.items() if ".cpython-" in n}
        self.assertGreater(len(modules), 30)  # numpy's and pandas'
        self.assertEqual({n for n, p in modules.items() if p != ["r-xp", "rw-p"]}, set())
        self.assertEqual([p for n, p in perms.items() if n.startswith(("libpython", "libc."))],
                         [["r--p", "r--p"], ["r--p", "r--p"]])

    def test_a_fork_by_the_code_runs_every_after_fork_hook(self):
        # the runner skips threading's (the zygote forks it single-threaded);
        # a fork the code makes must not
        out = self.run_code(
            "import os, threading\n"
            "before = id(threading._active_limbo_lock)\n"
            "r, w = os.pipe()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.write(w, b'new' if id(threading._active_limbo_lock) != before else b'same')\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
            "print(os.read(r, 10).decode())\n")
        self.assertEqual(out["stdout"], "new\n", out)

    def test_the_read_only_root_is_shared_and_the_scratch_space_is_not(self):
        # the spawner builds the root once; each sandbox binds a copy of it
        # (read-only, locked so) and mounts its own /workspace, /tmp, /dev/shm
        probe = ("import os, json\n"
                 "print(json.dumps({p: [os.stat(p).st_dev, bool(os.statvfs(p).f_flag & os.ST_RDONLY)]\n"
                 "                  for p in ('/', '/etc', '/dev', '/workspace', '/tmp', '/dev/shm')}))")
        a, b = self.run_probe(probe), self.run_probe(probe)
        for path in ("/", "/etc", "/dev"):
            self.assertEqual(a[path], b[path], path)
            self.assertTrue(a[path][1], path + " is writable")
        for path in ("/workspace", "/tmp", "/dev/shm"):
            self.assertNotEqual(a[path][0], b[path][0], path)
            self.assertFalse(a[path][1], path + " is read-only")

    def test_pid_1_serves_the_run_with_one_thread(self):
        # a local sandbox's server has no HTTP thread of its own: pid 1's only
        # thread serves the run
        v = self.run_probe(
            "import os, json\n"
            "print(json.dumps(sorted(open('/proc/1/task/%s/comm' % t).read().strip()\n"
            "                        for t in os.listdir('/proc/1/task'))))")
        self.assertEqual(v, ["sandbox"])

    def test_each_run_gets_its_own_namespaces(self):
        probe = ("import os, json\n"
                 "print(json.dumps({n: os.readlink('/proc/self/ns/' + n) for n in "
                 "('pid', 'mnt', 'net', 'ipc', 'uts', 'user', 'cgroup')}))")
        a, b = self.run_probe(probe), self.run_probe(probe)
        for name in a:
            self.assertNotEqual(a[name], b[name], name)

    def test_ended_sandboxes_network_namespaces_are_let_go_together(self):
        """The spawner holds the network namespaces of ended sandboxes (the
        kernel then tears them down together, paying the fixed costs once), for
        at most a second: none is held long after the runs stop."""
        spawner = spawner_pid()
        for _ in range(3):
            self.assertHello()
        deadline = time.monotonic() + 10
        while not held_network_namespaces(spawner) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(held_network_namespaces(spawner), "no ended sandbox's namespace is held")
        deadline = time.monotonic() + 3
        while held_network_namespaces(spawner) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(held_network_namespaces(spawner), set(), "held after the runs stopped")

    def test_etc_is_copied_into_the_shared_root_not_mounted(self):
        """The spawner copies /etc's whitelist into the shared root once (a
        mount per entry would be copied into every sandbox): same content as
        the host's, nothing the host keeps from others (/etc/ssl/private)."""
        v = self.run_probe(
            "import os, json, hashlib\n"
            "mounts = [l.split()[4] for l in open('/proc/self/mountinfo')]\n"
            "f = '/etc/ssl/certs/ca-certificates.crt'\n"
            "certs = sorted(os.listdir('/etc/ssl/certs')) if os.path.isdir('/etc/ssl/certs') else []\n"
            "print(json.dumps({'mounts': [m for m in mounts if m.startswith('/etc')], 'certs': certs,\n"
            "    'sha': hashlib.sha256(open(f, 'rb').read()).hexdigest() if os.path.exists(f) else None,\n"
            "    'private': os.path.exists('/etc/ssl/private')}))")
        self.assertEqual(v["mounts"], [])
        host = "/etc/ssl/certs"
        self.assertEqual(v["certs"], sorted(os.listdir(host)) if os.path.isdir(host) else [])
        crt = os.path.join(host, "ca-certificates.crt")
        if os.path.exists(crt):
            with open(crt, "rb") as f:
                self.assertEqual(v["sha"], hashlib.sha256(f.read()).hexdigest())
        self.assertFalse(v["private"])



# Scans every readable mapping of the runner (/proc/self/maps) for needles
# given as two hex halves each, so that no needle is ever whole in the
# runner's memory unless it came from elsewhere. /proc/self/mem is not the
# runner's to open (not dumpable); the kernel copies each chunk through a pipe
# instead (a fault is EFAULT there, not a crash). Prints the names found.
MEMORY_SCAN = r'''
import ctypes, json, os, re
NEEDLES = %s
halves = {name: (bytes.fromhex(a), bytes.fromhex(b)) for name, (a, b) in NEEDLES.items()}
overlap = max(len(a) + len(b) for a, b in halves.values())
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.write.restype = ctypes.c_ssize_t
r, w = os.pipe()
regions = []
with open("/proc/self/maps") as f:
    for line in f:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        what = line.split()[-1] if len(line.split()) > 5 else "[anon]"
        if m and m.group(3)[0] == "r" and what not in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
            regions.append((int(m.group(1), 16), int(m.group(2), 16), what))
found = {}
scanned = 0
for start, end, what in regions:
    pos = start
    while pos < end:
        n = min(60000, end - pos)
        k = libc.write(w, pos, min(n + overlap, end - pos))
        if k <= 0:
            break
        chunk = os.read(r, k)
        scanned += len(chunk)
        for name, (a, b) in halves.items():
            i = chunk.find(a)
            while i >= 0:
                if chunk[i + len(a):i + len(a) + len(b)] == b:
                    found.setdefault(name, what)
                i = chunk.find(a, i + 1)
        pos += n
print(json.dumps([sorted(found.items()), scanned]))
'''


def halves(s):
    b = s.encode()
    return [b[:len(b) // 2].hex(), b[len(b) // 2:].hex()]


class P11WarmEnvironment(E2E):
    """Issue 14 item 1: the warm interpreter, which every runner is a fork of,
    holds nothing of the service's environment and no secret of its
    configuration."""

    def test_no_byte_of_the_services_environment_is_in_a_runner(self):
        from instance import Instance
        import secrets
        marker = secrets.token_hex(16)
        password = secrets.token_hex(16)
        inst = Instance({"CI_SECRET_MARKER": marker,
                         "APP_PIP_INDEX_URL": "http://user:%s@127.0.0.1:9/simple" % password},
                        workers=1, pool=1)
        try:
            inst.start()
            with inst.current():
                needles = {"marker value": halves(marker), "index password": halves(password),
                           "marker name": halves("CI_SECRET_MARKER")}
                found, scanned = self.run_probe(MEMORY_SCAN % repr(needles), timeout=60)
                self.assertGreater(scanned, 1 << 20, "too little memory was readable")
                self.assertEqual(found, [], "found in the runner's memory (name, mapping)")
                cmdline = self.run_probe(
                    "import json; print(json.dumps(open('/proc/self/cmdline', 'rb').read().decode('latin-1')))")
                build = os.path.realpath(os.environ["E2E_BUILD"])
                self.assertNotIn(build, cmdline)
                self.assertNotIn(os.path.dirname(build), cmdline)
                self.assertNotIn("/", cmdline.replace("\0", " "), "a path in the runner's command line")
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))


def pool_rows(db):
    """{state: count} of the sandboxes table of the database at db."""
    return dict(db_rows("SELECT state, count(*) FROM sandboxes GROUP BY state", db))


def wait_for(what, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.02)
    return what()


class P11Refill(E2E):
    """Issue 18: the sandbox of the one run under way is replaced when the run
    has ended, so that making its successor takes no CPU from the run; with
    more runs at once (load), at once."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(pool=4, workers=4)
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        ok, lines = cls.inst.stop()
        cls.inst.remove()
        assert ok, "\n".join(lines)

    def rows(self):
        return pool_rows(self.inst.db)

    def claimed_runs(self, n, seconds):
        """Once the pool is full, n runs of `sleep seconds` in threads (call
        inside inst.current()), back when all n are claimed: the threads and
        the list their statuses go to."""
        self.assertTrue(wait_for(lambda: self.rows() == {"ready": 4}, 60), self.rows())
        got = []

        def one():
            got.append(client.execute("import time; time.sleep(%g)" % seconds).status)

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        self.assertTrue(wait_for(lambda: self.rows().get("claimed") == n, 10), self.rows())
        return threads, got

    def test_one_run_is_replaced_when_it_ends(self):
        with self.inst.current():
            threads, got = self.claimed_runs(1, 1.5)
            seen = []
            while threads[0].is_alive():
                rows = self.rows()  # one reading: claimed, and the rest then
                if not rows.get("claimed"):
                    break
                seen.append(rows.get("ready", 0) + rows.get("starting", 0))
                time.sleep(0.05)
            threads[0].join()
        self.assertEqual(got, [200])
        self.assertGreater(len(seen), 5)
        self.assertEqual(set(seen), {3}, "the pool during the run (ready or starting)")
        self.assertTrue(wait_for(lambda: self.rows() == {"ready": 4}, 30), self.rows())

    def test_runs_at_once_are_replaced_at_once(self):
        with self.inst.current():
            threads, got = self.claimed_runs(2, 3)
            # the replacements come while the runs go on
            self.assertTrue(wait_for(lambda: self.rows().get("ready", 0) >= 4, 2.5), self.rows())
            self.assertEqual(self.rows().get("claimed"), 2)
            for t in threads:
                t.join()
        self.assertEqual(got, [200] * 2)


class P11Dispatch(E2E):
    """Issue 18: calls that come one at a time, as an agent's do, are taken by
    the first idle worker, whose caches and pages are warm, rather than by
    each worker in turn (fcgi-app/worker.c, wait_first)."""

    def test_calls_one_at_a_time_go_to_one_worker(self):
        line = re.compile(r"worker\[(\d+)\] request .*route=/v1/execute ")
        before = len(line.findall(read_log()))
        for _ in range(6):
            # each call finds the pool full: the last one's refill is done
            self.assertTrue(wait_for(lambda: set(pool_rows(DB_PATH)) == {"ready"}, 30), pool_rows(DB_PATH))
            self.assertHello()
        self.assertTrue(wait_for(lambda: len(line.findall(read_log())) >= before + 6, 5), "no request lines")
        workers = line.findall(read_log())[before:]
        self.assertEqual(len(workers), 6, workers)
        self.assertEqual(len(set(workers)), 1, "workers that took the calls: %s" % workers)

    def test_a_connection_the_web_server_keeps_is_served(self):
        # a web server may keep its FastCGI connection for the next request
        # (FCGI_KEEP_CONN, e.g. nginx's fastcgi_keep_conn): that request
        # comes on the kept connection, not through the listening socket the
        # idle worker waits on
        def record(kind, body=b""):
            return struct.pack(">BBHHBB", 1, kind, 1, len(body), 0, 0) + body

        def params(**kv):
            return b"".join(bytes([len(k), len(v)]) + k.encode() + v.encode() for k, v in kv.items())

        request = (record(1, struct.pack(">HB5x", 1, 1))  # responder, FCGI_KEEP_CONN
                   + record(4, params(REQUEST_METHOD="GET", REQUEST_URI="/healthz")) + record(4)
                   + record(5))
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(os.path.join(RUN_DIR, "fcgi.sock"))
            for n in (1, 2):
                s.sendall(request)
                out, ended = b"", False
                while not ended:
                    head = s.recv(8, socket.MSG_WAITALL)
                    self.assertEqual(len(head), 8, "request %d: the connection closed" % n)
                    _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", head)
                    body = s.recv(length + padding, socket.MSG_WAITALL)[:length] if length + padding else b""
                    out += body if kind == 6 else b""
                    ended = kind == 3
                self.assertIn(b"Status: 200", out, "request %d" % n)

