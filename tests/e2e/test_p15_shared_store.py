"""Point 15: the store folder shared with a client process that is not root
(APP_FILE_STORAGE_GROUP), as LocalPythonStorage uses it: the client copies
files in under their SHA-256 and copies outputs out, over existing files.
Nothing a client writes is trusted: an input that does not hash to its name
is a 422 naming it, at once, and never reaches a run."""
import concurrent.futures
import grp
import hashlib
import os
import subprocess
import sys
import time

import client
from instance import Instance
from support import E2E

GROUP = "users"            # Debian's gid 100
CLIENT_UID = 65534         # nobody: a client process that is not root
CLIENT_GID = grp.getgrnam(GROUP).gr_gid


def as_client(script, *args):
    """Runs a Python snippet as the non-root client (uid nobody, in the
    storage group only); returns its stdout, failing with its stderr."""
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                       user=CLIENT_UID, group=CLIENT_GID, extra_groups=[CLIENT_GID], cwd="/")
    if r.returncode != 0:
        raise AssertionError("client failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    return r.stdout


# What node's fs.copyFile does (LocalPythonStorage's upload and download):
# open the destination O_WRONLY|O_CREAT (over an existing file too), truncate,
# give it the source's mode, write.
COPY_FILE = r'''
import os, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT, os.stat(src).st_mode & 0o777)
os.ftruncate(fd, 0)
os.fchmod(fd, os.stat(src).st_mode & 0o777)
os.write(fd, data)
os.close(fd)
'''

# the same, again and again, in pieces as node writes them
REWRITE_LOOP = r'''
import os, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
while True:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    os.ftruncate(fd, 0)
    for i in range(0, len(data), 65536):
        os.write(fd, data[i:i + 65536])
    os.close(fd)
'''

WRITE_BYTES = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, bytes.fromhex(sys.argv[2]))
os.close(fd)
'''


class P15SharedStore(E2E):
    inst = None

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(env={"APP_FILE_STORAGE_GROUP": GROUP}, workers=4, pool=2)
        # the folder is the client's user's (README): node's copyFile over an
        # object the service wrote must be allowed to set its mode
        os.mkdir(cls.inst.store)
        os.chown(cls.inst.store, CLIENT_UID, CLIENT_GID)
        cls.inst.start()
        cls.local = os.path.join(cls.inst.tmp, "client")  # the client's own folder
        os.mkdir(cls.local)
        os.chown(cls.local, CLIENT_UID, CLIENT_GID)

    @classmethod
    def tearDownClass(cls):
        ok, lines = cls.inst.stop()
        cls.inst.remove()
        assert ok, lines

    def run_in(self, source, files=None, expect=200):
        with self.inst.current():
            r = client.execute(source, files=files)
        self.assertEqual(r.status, expect, r.body[:2000])
        return r.json

    def client_upload(self, data):
        """The client puts data in the store under its SHA-256 (as
        LocalPythonStorage does); returns the id."""
        oid = hashlib.sha256(data).hexdigest()
        as_client(WRITE_BYTES, os.path.join(self.local, "in.bin"), data.hex())
        as_client(COPY_FILE, os.path.join(self.local, "in.bin"), os.path.join(self.inst.store, oid))
        return oid

    def test_folder_and_objects_belong_to_the_group(self):
        st = os.stat(self.inst.store)
        self.assertEqual((st.st_uid, st.st_gid), (CLIENT_UID, CLIENT_GID))
        self.assertEqual(st.st_mode & 0o7777, 0o2770)
        out = self.run_in("open('o.txt', 'w').write('from the service')")
        st = os.stat(os.path.join(self.inst.store, out["files"]["/workspace/o.txt"]))
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (CLIENT_UID, CLIENT_GID, 0o660))

    def test_non_root_client_round_trip(self):
        # upload (a new object), run, download the output twice, use it again
        oid = self.client_upload(b"a,b\n1,2\n")
        out = self.run_in("import csv\nrows = list(csv.reader(open('data.csv')))\n"
                          "open('sum.txt', 'w').write(str(sum(int(x) for x in rows[1])))\nprint(rows)",
                          files={"/workspace/data.csv": oid})
        self.assertEqual(out["stdout"], "[['a', 'b'], ['1', '2']]\n")
        made = out["files"]["/workspace/sum.txt"]
        local = os.path.join(self.local, "sum.txt")
        for _ in range(2):  # the same name twice: the local copy must stay writable
            as_client(COPY_FILE, os.path.join(self.inst.store, made), local)
        with open(local) as f:
            self.assertEqual(f.read(), "3")
        # re-uploaded: the client copies over the object the service wrote
        as_client(COPY_FILE, local, os.path.join(self.inst.store, made))
        out = self.run_in("print(open('sum.txt').read())", files={"/workspace/sum.txt": made})
        self.assertEqual(out["stdout"], "3\n")

    def test_object_with_other_bytes_is_an_immediate_422_naming_it(self):
        good = b"the real content\n" * 100
        oid = hashlib.sha256(good).hexdigest()
        for bad in (good[:-1], good[:-1] + b"X", good + b"more", b""):
            with self.subTest(size=len(bad)):
                as_client(WRITE_BYTES, os.path.join(self.inst.store, oid), bad.hex())
                t0 = time.monotonic()
                out = self.run_in("open('ran.txt', 'w').write('ran')\nprint(open('in.txt').read())",
                                  files={"/workspace/in.txt": oid}, expect=422)
                self.assertLess(time.monotonic() - t0, 10)
                detail = out["detail"]
                self.assertTrue(any(oid in d["msg"] and d["loc"][-1] == "/workspace/in.txt" for d in detail),
                                detail)

    def test_an_emptied_object_is_no_object(self):
        # what node's copyFile leaves for an instant: truncated to 0 bytes
        good = b"about to be rewritten\n"
        oid = hashlib.sha256(good).hexdigest()
        as_client(WRITE_BYTES, os.path.join(self.inst.store, oid), "")
        with self.inst.current():
            r = client.raw("GET", "/v1/files/" + oid)
        self.assertEqual(r.status, 404, r.body[:200])
        self.run_in("print(1)", files={"/workspace/x.txt": oid}, expect=422)

    def test_a_sparse_giant_is_no_object(self):
        oid = "ab" * 32
        as_client("import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
                  "os.ftruncate(fd, 1 << 40)\n", os.path.join(self.inst.store, oid))
        t0 = time.monotonic()
        with self.inst.current():
            r = client.raw("GET", "/v1/files/" + oid)
        self.assertEqual(r.status, 404, r.body[:200])
        self.run_in("print(1)", files={"/workspace/x.txt": oid}, expect=422)
        self.assertLess(time.monotonic() - t0, 10)

    def test_download_never_sends_other_bytes(self):
        good = b"downloaded content\n" * 50
        oid = hashlib.sha256(good).hexdigest()
        as_client(WRITE_BYTES, os.path.join(self.inst.store, oid), (good[:-1] + b"!").hex())
        with self.inst.current():
            try:
                r = client.raw("GET", "/v1/files/" + oid)
                body = r.body
            except Exception:  # a body shorter than its Content-Length
                body = None
        self.assertNotEqual(body, good[:-1] + b"!")

    def test_input_rewritten_in_place_while_runs_read_it(self):
        # the client's copyFile over an existing object truncates and writes it
        # again: runs reading it meanwhile get the whole object or a 422, never
        # a cut one and never a hang
        data = os.urandom(4 << 20)
        oid = hashlib.sha256(data).hexdigest()
        src = os.path.join(self.local, "big.bin")
        with open(src, "wb") as f:
            f.write(data)
        os.chown(src, CLIENT_UID, CLIENT_GID)
        as_client(COPY_FILE, src, os.path.join(self.inst.store, oid))
        rewriter = subprocess.Popen([sys.executable, "-c", REWRITE_LOOP, src, os.path.join(self.inst.store, oid)],
                                    user=CLIENT_UID, group=CLIENT_GID, extra_groups=[CLIENT_GID])
        try:
            code = "import hashlib\nprint(hashlib.sha256(open('big.bin', 'rb').read()).hexdigest())"

            def one(_):
                t0 = time.monotonic()
                r = client.execute(code, files={"/workspace/big.bin": oid}, http_timeout=60)
                return r.status, r.json, time.monotonic() - t0

            # current() once for all the threads: it swaps the port in os.environ
            with self.inst.current(), concurrent.futures.ThreadPoolExecutor(10) as pool:
                results = list(pool.map(one, range(10)))
        finally:
            rewriter.kill()
            rewriter.wait()
        for status, body, took in results:
            self.assertIn(status, (200, 422), body)
            self.assertLess(took, 30)
            if status == 200:
                self.assertEqual(body["stdout"], oid + "\n")
                self.assertEqual(body["exit_code"], 0)
        print("\n    [p15] %d of 10 runs read the object whole, %d got 422"
              % (sum(s == 200 for s, _, _ in results), sum(s == 422 for s, _, _ in results)))
