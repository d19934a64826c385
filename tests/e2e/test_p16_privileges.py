"""Issue 16, least privilege: the FastCGI workers, which parse every request,
run as the unprivileged APP_SERVICE_USER with no capability and no_new_privs;
the cleanup process too. What needs root stays in the pool manager and the
root helper, which workers reach only through sockets their user alone may
open and which checks what they ask. The FastCGI socket is lighttpd's alone.
Everything is read from /proc and the file system: no code is put into a
worker."""
import glob
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import unittest

from support import DB_PATH, E2E, MASTER_PID, RUN_DIR, STORE
from instance import Instance
from test_p8_resilience import alive, wait_until

SERVICE_USER = os.environ.get("APP_SERVICE_USER", "code-interpreter")
CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def status(pid):
    """/proc/PID/status as a dict of its fields, or None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return None


def children(pid):
    out = []
    for d in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d.split("/")[2]))
    return out


def socket_inodes(path):
    """The inodes of the unix sockets bound to path (/proc/net/unix)."""
    with open("/proc/net/unix") as f:
        next(f)
        return {parts[6] for parts in (line.split() for line in f) if len(parts) > 7 and parts[7] == path}


def holds(pid, inodes):
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def workers():
    """The master's children that accept on the FastCGI socket: the workers."""
    inodes = socket_inodes(os.path.join(RUN_DIR, "fcgi.sock"))
    return sorted(p for p in children(MASTER_PID) if comm(p) != "lighttpd" and holds(p, inodes))


def as_service_user(script, *args):
    """Runs a Python snippet with the service user's credentials (what a
    compromised worker has); returns (exit code, stdout, stderr)."""
    pw = pwd.getpwnam(SERVICE_USER)
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60,
                       user=pw.pw_uid, group=pw.pw_gid, extra_groups=[pw.pw_gid], cwd="/")
    return r.returncode, r.stdout, r.stderr


ASK_HELPER = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.decode())
'''


class P16LeastPrivilege(E2E):
    def assertUnprivileged(self, pid):
        pw = pwd.getpwnam(SERVICE_USER)
        st = status(pid)
        self.assertIsNotNone(st, "process %d is gone" % pid)
        uids = [int(x) for x in st["Uid"].split()]
        gids = [int(x) for x in st["Gid"].split()]
        self.assertEqual(uids, [pw.pw_uid] * 4, "Uid of %d (real, effective, saved, fs)" % pid)
        self.assertNotEqual(pw.pw_uid, 0)
        self.assertEqual(gids, [pw.pw_gid] * 4, "Gid of %d" % pid)
        self.assertNotIn("0", st["Groups"].split(), "process %d is in group root" % pid)
        for field in CAP_FIELDS:
            self.assertEqual(int(st[field], 16), 0, "%s of %d is %s" % (field, pid, st[field]))
        self.assertEqual(st["NoNewPrivs"], "1", "NoNewPrivs of %d" % pid)

    def test_every_worker_runs_as_the_service_user_without_capabilities(self):
        for _ in range(8):  # every worker has served
            self.assertHello()
        found = workers()
        self.assertEqual(len(found), 4, "APP_WORKERS=4 workers expected, found %s" % found)
        for pid in found:
            with self.subTest(worker=pid):
                self.assertUnprivileged(pid)

    def test_a_respawned_worker_is_unprivileged_too(self):
        before = workers()
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not alive(victim) and len(workers()) == len(before), 15),
                        "worker %d not replaced: %s" % (victim, workers()))
        respawned = set(workers()) - set(before)
        self.assertTrue(respawned, "no new worker among %s" % workers())
        for pid in respawned:
            self.assertUnprivileged(pid)
        self.assertHello()

    def test_only_the_pool_manager_and_the_root_helper_keep_root(self):
        found = set(workers())
        rest = [p for p in children(MASTER_PID) if p not in found and comm(p) != "lighttpd"]
        root = [p for p in rest if status(p) and status(p)["Uid"].split()[1] == "0"]
        others = [p for p in rest if p not in root]
        self.assertEqual(len(root), 2, "the pool manager and the root helper: %s" % root)
        self.assertEqual(len(others), 1, "the cleanup process: %s" % others)
        self.assertUnprivileged(others[0])

    def test_what_a_worker_may_do_is_no_more_than_its_user_may(self):
        # /proc/PID/status says uid != 0, no capability: then the kernel gives
        # the worker what it gives the user, which is checked here with the
        # same credentials (no code goes into a worker)
        code, out, err = as_service_user(
            "import os, sys\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        open(p, 'rb').close(); print('open', p)\n"
            "    except PermissionError:\n"
            "        print('denied', p)\n",
            "/etc/shadow", DB_PATH, os.path.join(RUN_DIR, "lighttpd.conf"))
        self.assertEqual(code, 0, err)
        self.assertEqual(out.split("\n")[:3], ["denied /etc/shadow", "open " + DB_PATH,
                                               "open " + os.path.join(RUN_DIR, "lighttpd.conf")])

    def test_the_fastcgi_socket_is_lighttpds_alone(self):
        path = os.path.join(RUN_DIR, "fcgi.sock")
        st = os.lstat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, "mode %o" % stat.S_IMODE(st.st_mode))
        lighttpd = [p for p in children(MASTER_PID) if comm(p) == "lighttpd"]
        self.assertEqual(len(lighttpd), 1)
        self.assertEqual(st.st_uid, int(status(lighttpd[0])["Uid"].split()[1]),
                         "the socket's owner is not the user lighttpd runs as")
        self.assertEqual(st.st_uid, pwd.getpwnam("www-data").pw_uid, "lighttpd dropped to www-data here")
        # and lighttpd, which connects to it, does not hold the workers'
        # listening descriptor (a lighttpd outliving the master queued every
        # request there for an accept that never came)
        self.assertFalse(holds(lighttpd[0], socket_inodes(path)), "lighttpd holds the FastCGI listening socket")
        # the workers do not need the file: they accept on the descriptor
        code, _, err = as_service_user("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])",
                                       path)
        self.assertNotEqual(code, 0)
        self.assertIn("PermissionError", err)

    def test_state_is_the_service_users_and_nobody_elses(self):
        pw = pwd.getpwnam(SERVICE_USER)
        for path in (DB_PATH, DB_PATH + "-wal", DB_PATH + "-shm"):
            with self.subTest(path=path):
                st = os.lstat(path)
                self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, pw.pw_gid, 0o600))
        st = os.lstat(os.path.dirname(DB_PATH))
        self.assertEqual(st.st_uid, 0, "the database's directory stays root's (it may hold root's state too)")
        st = os.lstat(STORE)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, 0o700))
        st = os.lstat(os.path.join(RUN_DIR, "root-helper.sock"))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, 0o600))

    @unittest.skipIf(os.environ.get("E2E_BACKEND") == "kubernetes", "pods are reached over TCP")
    def test_executor_sockets_are_reachable_by_the_service_group_only(self):
        self.assertHello()
        pw = pwd.getpwnam(SERVICE_USER)
        checked = 0
        for path in glob.glob(os.path.join(RUN_DIR, "sandboxes", "*", "sock", "executor.sock")):
            try:  # a sandbox claimed meanwhile is gone after its run
                d, s = os.lstat(os.path.dirname(path)), os.lstat(path)
            except FileNotFoundError:
                continue
            checked += 1
            with self.subTest(path=path):
                self.assertEqual((d.st_gid, stat.S_IMODE(d.st_mode)), (pw.pw_gid, 0o2710))
                self.assertEqual((s.st_gid, stat.S_IMODE(s.st_mode)), (pw.pw_gid, 0o660))
        self.assertGreater(checked, 0, "no warm sandbox")

    def test_the_root_helper_answers_the_service_user_only_and_checks_what_it_asks(self):
        path = os.path.join(RUN_DIR, "root-helper.sock")
        # root (any uid but the service user's) gets no answer
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        try:
            s.sendall(b'{"op":"give","name":".tmp-00000000000000000000000000000000"}')
            s.shutdown(socket.SHUT_WR)
            got = s.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            got = b""  # closed unread
        s.close()
        self.assertEqual(got, b"", "an answer to root")
        bad = [
            '{"op":"give","name":"../../etc/passwd"}',        # not a temp file of a shared store
            '{"op":"install","execution_id":"x","requirement":"numpy","timeout_ms":1000}',
            '{"op":"install","execution_id":"00000000-0000-4000-8000-000000000000",'
            '"requirement":"numpy @ https://example.com/x.whl","timeout_ms":1000}',
            '{"op":"install","execution_id":"00000000-0000-4000-8000-000000000000",'
            '"requirement":"numpy","timeout_ms":1000,"index_url":"https://example.com"}',
            '{"op":"install","execution_id":"00000000-0000-4000-8000-000000000000",'
            '"requirement":"numpy","timeout_ms":999999999}',
            '{"op":"chown","path":"/etc/shadow"}',
            'not json',
        ]
        for req in bad:
            with self.subTest(request=req):
                code, out, err = as_service_user(ASK_HELPER, path, req)
                self.assertEqual(code, 0, err)
                self.assertEqual(json.loads(out), {"error": "refused"})
        self.assertHello()


class P16DatabaseIsNotTrustedByRoot(E2E):
    """The database is the service user's to write, so a worker taken over can
    put anything in it; root reads names of the package cache from it and
    removes what they name (eviction at start and after installs). A name that
    reaches out of the cache must remove nothing: written here as the service
    user, as such a worker would."""

    def test_a_planted_cache_row_cannot_make_root_remove_a_file(self):
        inst = Instance(workers=1, pool=1)
        try:
            inst.start()
            ok, lines = inst.stop()
            self.assertTrue(ok, "\n".join(lines))
            victim = os.path.join(inst.tmp, "victim-root")
            os.mkdir(victim, 0o700)  # root's, on the cache's file system
            rel = os.path.relpath(victim, os.path.join(inst.tmp, "packages", "dists"))
            user = pwd.getpwnam(SERVICE_USER)
            plant = subprocess.run(
                ["/usr/bin/python3", "-c",
                 "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("
                 "\"INSERT INTO package_dists (dir, package, version, requirement, kind, metadata, size_bytes,"
                 " installed_ms, last_used_ms) VALUES (?, 'x', '1', 'x', 'latest', 'x-1.dist-info', ?, 0, 0)\","
                 " (sys.argv[2], 1 << 50)); c.commit()", inst.db, rel],
                user=user.pw_uid, group=user.pw_gid, capture_output=True, text=True)
            self.assertEqual(plant.returncode, 0, plant.stderr)
            inst.start()  # start-up drops rows whose directory is missing, and evicts over the limit
            self.assertTrue(os.path.isdir(victim), "root removed %s, named by a planted row" % victim)
            with open(inst.log) as f:
                self.assertIn("no such name is used", f.read())
        finally:
            ok, lines = inst.stop()
            inst.remove()
            self.assertTrue(ok, "\n".join(lines))
