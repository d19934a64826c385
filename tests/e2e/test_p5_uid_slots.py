"""Point 5, uids: every live sandbox maps to host uids of its own (a uid slot:
APP_SANDBOX_UID_BASE + slot * 2000 for sandbox root, + 1000 for the code), so
that no per-user kernel account is shared between runs. The attack: one run
takes the whole per-user pipe budget (fs.pipe-user-pages-soft) and holds it;
another run's F_SETPIPE_SZ then failed with EPERM when both ran as the same
host uid."""
import os
import threading
import time
import unittest

import client
from support import E2E

F_SETPIPE_SZ = 1031
UID_BASE = 1000000  # run.py leaves APP_SANDBOX_UID_BASE at its default
STRIDE = 2000

HOARD = """
import fcntl, os, time
pipes, n = [], 0
try:
    for i in range(%(pipes)d):
        r, w = os.pipe()
        pipes.append((r, w))
        fcntl.fcntl(w, %(op)d, 1 << 20)
        n += 1
except OSError:
    pass
time.sleep(%(hold)d)
print(n)
"""

PROBE = """
import fcntl, os, json
r, w = os.pipe()
try:
    fcntl.fcntl(w, %(op)d, 1 << 20)
    out = 'ok'
except OSError as e:
    out = e.errno
print(json.dumps([out, open('/proc/self/uid_map').read().split()]))
"""


def sandbox_processes_with_pipes(least):
    """Host pids running as a sandbox user that hold at least `least` pipes."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/status" % pid) as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            if uid < UID_BASE or (uid - UID_BASE) % STRIDE != 1000:
                continue
            fds = os.listdir("/proc/%s/fd" % pid)
            pipes = sum(1 for fd in fds if os.readlink("/proc/%s/fd/%s" % (pid, fd)).startswith("pipe:"))
        except (OSError, StopIteration):
            continue
        if pipes >= least:
            found.append(int(pid))
    return found


class P5UidSlots(E2E):
    def test_two_live_sandboxes_have_host_uids_of_their_own(self):
        maps = []
        for _ in range(2):
            out = self.run_probe("import json\nprint(json.dumps(open('/proc/self/uid_map').read().split()))\n")
            maps.append(out)
        for m in maps:
            # "0 ROOT 1 1000 USER 1": sandbox root and the user, one slot's pair
            self.assertEqual((m[0], m[2], m[3], m[5]), ("0", "1", "1000", "1"), m)
            self.assertEqual(int(m[4]), int(m[1]) + 1000)
            self.assertEqual((int(m[1]) - UID_BASE) % STRIDE, 0)
        self.assertNotEqual(maps[0][1], maps[1][1], "two sandboxes shared a host uid")

    def test_one_run_cannot_spend_another_runs_per_user_pipe_budget(self):
        with open("/proc/sys/fs/pipe-user-pages-soft") as f:
            soft = int(f.read())
        if soft == 0:
            self.skipTest("fs.pipe-user-pages-soft is 0 (no per-user pipe limit on this host)")
        pipes = soft // 256 + 2  # 1 MiB pipes are 256 pages each
        hoard = {}

        def run_hoard():
            hoard["r"] = client.execute(HOARD % {"pipes": pipes, "op": F_SETPIPE_SZ, "hold": 8}, timeout=30)

        t = threading.Thread(target=run_hoard)
        t.start()
        try:
            deadline = time.monotonic() + 15
            while not sandbox_processes_with_pipes(2 * (soft // 256)):
                self.assertLess(time.monotonic(), deadline, "the hoarding run never held its pipes")
                time.sleep(0.05)
            out = self.run_probe(PROBE % {"op": F_SETPIPE_SZ})
        finally:
            t.join(60)
        self.assertEqual(out[0], "ok", "another run's pipes took this run's budget: %r" % out)
        r = hoard["r"]
        self.assertEqual(r.status, 200, r.body[:500])
        self.assertEqual(int(r.json["stdout"]), soft // 256, "the hoard did not reach the per-user limit")


if __name__ == "__main__":
    unittest.main()
