"""Point 4: limits on time, memory, processes, threads, output, disk, inodes,
open files, CPU and socket buffers; nothing started by the code outlives the
response."""
import json
import os
import random
import re
import threading
import time

import client
import run
from instance import Instance
from support import E2E

MiB = 1 << 20


def host_processes_with_cmdline(argv):
    """Live (non-zombie) host processes whose argv is exactly `argv` (list of bytes)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().split(b"\0")
            with open("/proc/%s/stat" % d, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if cmd and cmd[-1] == b"":
            cmd = cmd[:-1]
        state = stat[stat.rfind(b")") + 2:].split()[0]
        if cmd == argv and state != b"Z":
            found.append(int(d))
    return found


def parent_chain(pid):
    chain = []
    while pid > 1 and len(chain) < 50:
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                s = f.read()
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")[:80]
        except OSError:
            break
        chain.append("%d %s" % (pid, cmd))
        pid = int(s[s.rfind(b")") + 2:].split()[1])
    return " <- ".join(chain)


class P4Limits(E2E):
    def assertTimedOut(self, source, timeout=2):
        t0 = time.monotonic()
        r = client.execute(source, timeout=timeout)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r.body[:2000])
        self.assertEqual(r.json["exit_code"], -1, r.json)
        lines = [l for l in r.json["stderr"].splitlines() if l.strip()]
        self.assertTrue(lines, "stderr is empty")
        self.assertRegex(lines[-1], r"(?i)time limit", r.json["stderr"][-2000:])
        self.assertLess(elapsed, timeout + 10, "the request took %.1f s" % elapsed)
        self.assertGreaterEqual(elapsed, timeout * 0.9, "the run was stopped before its time limit")
        return r.json

    def test_busy_loop_is_killed_at_time_limit(self):
        self.assertTimedOut("while True: pass")

    def test_sleep_is_killed_at_time_limit(self):
        self.assertTimedOut("import time; time.sleep(1e6)")

    def test_output_before_timeout_is_kept(self):
        out = self.assertTimedOut("print('started', flush=True)\nwhile True: pass")
        self.assertEqual(out["stdout"], "started\n")

    def test_timeout_ignoring_sigterm_still_killed(self):
        self.assertTimedOut("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                            "while True: time.sleep(0.01)")

    def test_memory_bomb_reports_memory_limit(self):
        t0 = time.monotonic()
        r = client.execute("a = []\nfor _ in range(40):  # 4 GiB at most, in case there is no limit at all\n    a.append(bytearray(b'\\x01') * (100 << 20))\nprint('no memory limit hit')\n", timeout=60)
        self.assertEqual(r.status, 200, r.body[:2000])
        self.assertNotEqual(r.json["exit_code"], 0, r.json)
        self.assertRegex(r.json["stderr"], r"(?i)memory limit", r.json["stderr"][-2000:])
        self.assertLess(time.monotonic() - t0, 60, "the memory bomb ran into the time limit instead")
        self.assertHello()

    def test_fork_bomb_is_contained(self):
        out = self.run_code(r'''
import os, time
count, err = 0, None
while count < 1000:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        try:
            os.fork()
        except OSError:
            pass
        time.sleep(1000)
        os._exit(0)
    count += 1
import errno
print(count, errno.errorcode.get(err))
''', timeout=30, expect_exit=None)
        self.assertEqual(out["exit_code"], 0, out["stderr"][-2000:])
        count, err = out["stdout"].split()
        self.assertLess(int(count), 1000)
        self.assertEqual(err, "EAGAIN")
        self.assertHello()

    def test_thread_bomb_is_contained(self):
        out = self.run_code(r'''
import threading, time
n, why = 0, None
while n < 5000:
    try:
        threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
    except RuntimeError as e:
        why = str(e)
        break
    n += 1
print(n, why is not None)
''', timeout=30, expect_exit=None)
        self.assertEqual(out["exit_code"], 0, out["stderr"][-2000:])
        n, hit = out["stdout"].split()
        self.assertEqual(hit, "True", out)
        self.assertLess(int(n), 5000)
        self.assertHello()

    def test_huge_stdout_is_capped_with_marker(self):
        out = self.run_code(
            "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n",
            timeout=120)
        text = out["stdout"]
        self.assertLessEqual(len(text), MiB + 200)
        kept, _, marker = text.rstrip("\n").rpartition("\n")
        self.assertTrue(kept, "no output kept before the marker: %r" % text[-300:])
        self.assertEqual(kept.strip("x"), "", "the kept output is not the code's: %r" % kept[-200:])
        self.assertLessEqual(len(kept), MiB)
        m = re.search(r"(\d+) bytes", marker)
        self.assertTrue(m and "dropped" in marker, "no marker line saying bytes were dropped: %r" % marker)
        self.assertEqual(int(m.group(1)) + len(kept), 1 << 30, "dropped + kept != written: %r" % marker)

    def test_huge_stderr_is_capped_with_marker(self):
        out = self.run_code(
            "import sys\nchunk = 'e' * (1 << 20)\nfor _ in range(64):\n    sys.stderr.write(chunk)\n",
            timeout=60)
        self.assertLessEqual(len(out["stderr"]), MiB + 200)
        self.assertRegex(out["stderr"].rstrip("\n").rpartition("\n")[2], r"\d+ bytes.*dropped")

    def fill(self, directory):
        out = self.run_code(r'''
import errno, os
d = %r
chunk = b"\0" * (1 << 20)
err, written, files = None, 0, []
try:
    for i in range(32):  # 2 GiB at most
        name = os.path.join(d, "fill%%d" %% i)
        files.append(name)
        with open(name, "wb") as f:
            for _ in range(64):
                f.write(chunk)
                written += len(chunk)
except OSError as e:
    err = errno.errorcode.get(e.errno, e.errno)
for name in files:
    try:
        os.remove(name)
    except OSError:
        pass
print(err, written >> 20)
''' % directory, timeout=120)
        err, mib = out["stdout"].split()
        self.assertIn(err, ("ENOSPC", "EFBIG"), out)
        self.assertLess(int(mib), 2048, "wrote %s MiB before the limit" % mib)
        self.assertHello()

    def test_filling_workspace_fails_inside_and_next_request_works(self):
        self.fill("/workspace")

    def test_filling_tmp_fails_inside_and_next_request_works(self):
        self.fill("/tmp")

    def test_one_huge_file_hits_a_limit(self):
        out = self.run_code(r'''
import errno
chunk = b"\0" * (1 << 20)
err, n = None, 0
try:
    with open("/workspace/big", "wb") as f:
        while n < 2048:
            f.write(chunk); n += 1
except OSError as e:
    err = errno.errorcode.get(e.errno)
import os; os.remove("/workspace/big")
print(err, n)
''', timeout=120)
        err, n = out["stdout"].split()
        self.assertIn(err, ("ENOSPC", "EFBIG"))
        self.assertHello()

    def test_many_empty_files_in_tmp_stop_at_the_inode_limit(self):
        t0 = time.monotonic()
        out = self.run_code(r'''
import errno, os
n, err = 0, None
try:
    while n < 100000:
        os.close(os.open("/tmp/f%d" % n, os.O_CREAT | os.O_WRONLY, 0o600))
        n += 1
except OSError as e:
    err = errno.errorcode.get(e.errno, e.errno)
print(err, n)
''', timeout=60)
        elapsed = time.monotonic() - t0
        err, n = out["stdout"].split()
        self.assertEqual(err, "ENOSPC", out)
        # one inode per 4 KiB of APP_SANDBOX_TMP_MB (256: 65536), the root directory's among them
        self.assertTrue(60000 <= int(n) < 65536, "created %s files" % n)
        self.assertLess(elapsed, 30, "the request took %.1f s" % elapsed)
        self.assertHello()

    def test_open_files_without_end_fails_with_emfile(self):
        out = self.run_code(r'''
import errno
fs, err = [], None
while len(fs) < 100000:
    try:
        fs.append(open("/dev/null"))
    except OSError as e:
        err = errno.errorcode.get(e.errno)
        break
print(err, len(fs))
''', timeout=60)
        err, n = out["stdout"].split()
        self.assertEqual(err, "EMFILE")
        self.assertLess(int(n), 100000)

    def test_no_process_started_by_the_code_survives_the_response(self):
        token = "1000.%06d" % random.randrange(10 ** 6)
        out = self.run_code(r'''
import os, subprocess
p = subprocess.Popen(["sleep", %r], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
# and a double-forked one, re-parented away from the runner
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", %r])
    os._exit(0)
os.wait()
print(p.pid)
''' % (token, token))
        self.assertRegex(out["stdout"], r"^\d+\n$")
        argv = [b"sleep", token.encode()]
        # The server kills everything before it answers; allow only the moment a
        # SIGKILLed process needs to disappear from /proc.
        deadline = time.monotonic() + 2
        left = host_processes_with_cmdline(argv)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = host_processes_with_cmdline(argv)
        self.assertEqual(left, [], "still running: " + "; ".join(parent_chain(p) for p in left))

    def test_timed_out_run_leaves_no_process(self):
        token = "1000.%06d" % random.randrange(10 ** 6)
        self.assertTimedOut(
            "import subprocess, time\n"
            "subprocess.Popen(['sleep', %r], start_new_session=True)\n"
            "time.sleep(1e6)\n" % token)
        deadline = time.monotonic() + 2
        left = host_processes_with_cmdline([b"sleep", token.encode()])
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = host_processes_with_cmdline([b"sleep", token.encode()])
        self.assertEqual(left, [], "still running: " + "; ".join(parent_chain(p) for p in left))

    def test_timeout_above_the_maximum_is_refused(self):
        r = client.execute("print(1)", timeout=10 ** 7)
        detail = self.assertValidationError(r)
        self.assertTrue(any("timeout" in d["loc"] for d in detail), detail)


def cpu_controller():
    """Why this host has no cgroup cpu controller for sandboxes, or None when it has one."""
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(root + "/cgroup.controllers") as f:
                words = f.read().split()
        except OSError:
            continue
        if "memory" in words and "pids" in words:
            return None if "cpu" in words else "the v2 hierarchy at %s has no cpu controller" % root
    for root in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        if os.path.exists(root + "/cpu.cfs_quota_us"):
            return None
    return "no v2 cpu controller and no v1 cpu mount"


SPIN = r'''
import hashlib, json, resource, threading, time
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
def busy(stop):
    data = b"x" * (1 << 20)  # hashing it releases the GIL: the 8 threads run at once
    while time.monotonic() < stop:
        hashlib.sha256(data).digest()
w0, c0 = time.monotonic(), cpu()
threads = [threading.Thread(target=busy, args=(w0 + 3,)) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"cpu": cpu() - c0, "wall": time.monotonic() - w0}))
'''

# 120 loopback connection pairs with the largest buffers the host allows, filled
# without reading until the kernel refuses more; what they hold, by ioctl
SOCKETS = r'''
import errno, fcntl, json, socket, struct, termios
def queued(s, request):
    return struct.unpack("i", fcntl.ioctl(s.fileno(), request, b"\0" * 4))[0]
big = 64 << 20
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, big)  # the accepted sockets inherit it
listener.bind(("127.0.0.1", 0))
listener.listen(128)
pairs, err, chunk = [], None, b"\0" * (1 << 20)
try:
    for _ in range(120):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, big)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, big)
        c.connect(listener.getsockname())
        a = listener.accept()[0]
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, big)
        c.setblocking(False)
        pairs.append((c, a))
        while True:
            try:
                c.send(chunk)
            except BlockingIOError:
                break
except OSError as e:
    err = errno.errorcode.get(e.errno, e.errno)
total = sum(queued(c, termios.TIOCOUTQ) + queued(a, termios.FIONREAD) for c, a in pairs)
print(json.dumps({"pairs": len(pairs), "queued": total, "error": err}))
'''


class P4DedicatedLimits(E2E):
    """Limits that need an instance of their own: a CPU quota, a small memory limit."""

    def test_busy_runs_keep_to_their_cpus_and_the_service_answers(self):
        cpus = 0.2  # well below what an unlimited run gets on a busy two-CPU host
        inst = Instance({"APP_SANDBOX_CPUS": str(cpus)}, workers=4, pool=3)
        try:
            inst.start()
            with inst.current():
                results = []
                spinners = [threading.Thread(target=lambda: results.append(client.execute(SPIN, timeout=30)))
                            for _ in range(2)]
                for t in spinners:
                    t.start()
                time.sleep(0.5)
                while any(t.is_alive() for t in spinners):
                    t0 = time.monotonic()
                    self.assertEqual(run.get(inst.port, "/healthz")[0], 200)
                    r = client.execute("print('hello world')", timeout=10)
                    took = time.monotonic() - t0
                    self.assertEqual(r.status, 200, r.body[:2000])
                    self.assertEqual(r.json["stdout"], "hello world\n", r.json)
                    self.assertLess(took, 2, "/healthz and a hello world took %.1f s during the busy runs" % took)
                for t in spinners:
                    t.join()
            self.assertEqual(len(results), 2)
            use = []
            for r in results:
                self.assertEqual(r.status, 200, r.body[:2000])
                self.assertEqual(r.json["exit_code"], 0, r.json)
                m = json.loads(r.json["stdout"])
                use.append(m["cpu"] / m["wall"])
            why_not = cpu_controller()
            print("\n  CPUs used with APP_SANDBOX_CPUS=%s: %s" % (cpus, ", ".join("%.2f" % u for u in use)))
            if why_not:
                print("  CPU share not checked: %s (RLIMIT_CPU only)" % why_not)
                return
            for u in use:
                self.assertLessEqual(u, cpus * 1.2, "a run used %.2f CPUs with APP_SANDBOX_CPUS=%s" % (u, cpus))
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))

    def test_socket_buffers_count_against_the_memory_limit(self):
        limit = 256
        inst = Instance({"APP_SANDBOX_MEMORY_MB": str(limit), "APP_SANDBOX_OPEN_FILES": "1024"})
        try:
            inst.start()
            with inst.current():
                r = client.execute(SOCKETS, timeout=60)
                self.assertEqual(r.status, 200, r.body[:2000])
                if r.json["exit_code"] != 0:
                    self.assertRegex(r.json["stderr"], r"(?i)memory limit", r.json)
                else:
                    m = json.loads(r.json["stdout"])
                    print("\n  %d MiB queued in %d connection pairs (%s)" % (m["queued"] >> 20, m["pairs"], m["error"]))
                    self.assertGreater(m["pairs"], 0, m)
                    self.assertLess(m["queued"], limit << 20, "%d MiB queued in %d connection pairs with a %d MiB limit"
                                    % (m["queued"] >> 20, m["pairs"], limit))
                self.assertHello()
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))
