"""Issue 5: the layout that makes local sandboxes cheap without sharing a run.

The sandbox's pid 1 is a small process (forked from the zygote's spawner, not
from the warm interpreter); the runner is forked from the warm interpreter
straight into the sandbox's namespaces, as pid 1's only child, with the
preloads already imported."""

import hashlib
import os
import time

from support import E2E, MASTER_PID, RUN_DIR, comm


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except OSError:
        return 0


def spawner_pid():
    """The zygote's spawner of the service under test."""
    for d in os.listdir("/proc"):
        if d.isdigit() and comm(int(d)) == "spawner":
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


def rss_anon_kb(status_text):
    for line in status_text.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in:\n" + status_text)


class P11Warm(E2E):
    def test_runner_is_the_only_child_of_pid_1(self):
        v = self.run_probe(
            "import os, json\n"
            "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "print(json.dumps([os.getpid(), os.getppid(), pids]))")
        me, parent, pids = v
        self.assertEqual(parent, 1)
        self.assertEqual(pids, sorted([1, me]))

    def test_preloads_are_imported_before_the_code_runs(self):
        v = self.run_probe("import sys, json; print(json.dumps(['numpy' in sys.modules, 'pandas' in sys.modules]))")
        self.assertEqual(v, [True, True])

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
