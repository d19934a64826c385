"""Point 17, item 2: replicas. Two service instances share one object store
directory (in a cluster a ReadWriteMany volume), each with its own SQLite
database, and the same API keys. What one of them stored is usable and
downloadable on the other by the same key, and by no other key on either;
one instance's cleanup keeps what the other used within APP_FILE_TTL (the
object file's modification time is its last use on any instance) and
removes what nobody used, with its ownership entries; a restart loses
nothing. Runs on the backend run.py was given (--backend kubernetes: both
instances against the API server double)."""
import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

import run
from instance import Instance
from support import BUILD, E2E, sha256
from test_p16_access import assert_answers_as_unknown, download, execute, upload

ALICE = "alice-key-" + "e5" * 12
BOB = "bob-key-" + "f6" * 12
TTL = 3600  # seconds; what the cleanup command is given
OLD = 2 * TTL  # how long ago an aged object was last used


def tag(name):
    """The name of a key's ownership entry (docs/schema.md)."""
    return hashlib.sha256(name.encode()).hexdigest()


class P17Replicas(E2E):
    @classmethod
    def setUpClass(cls):
        # the shared folder lives apart from both instances' temp dirs: each
        # instance's shutdown check looks for processes naming its own
        cls.shared = tempfile.mkdtemp(prefix="ci-e2e-shared-")
        os.chmod(cls.shared, 0o755)
        cls.store = cls.shared + "/objects"
        keys = cls.shared + "/api-keys"
        with open(keys, "w") as f:
            f.write("alice:%s\nbob:%s\n" % (ALICE, BOB))
        os.chmod(keys, 0o600)
        backend = os.environ.get("E2E_BACKEND", "local")
        env = {"APP_FILE_STORAGE_PATH": cls.store, "APP_API_KEYS_FILE": keys}
        cls.a = Instance(env=env, workers=2, pool=1, backend=backend)
        cls.b = Instance(env=env, workers=2, pool=1, backend=backend)
        cls.started = []
        try:
            for inst in (cls.a, cls.b):
                inst.start()
                cls.started.append(inst)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        lines, ok = [], True
        for inst in cls.started:
            good, more = inst.stop()
            ok, lines = ok and good, lines + more
            if good:
                inst.remove()
        if ok:
            shutil.rmtree(cls.shared, ignore_errors=True)
        if not ok:
            raise AssertionError("\n".join(lines))

    def put(self, inst, key, data):
        with inst.current():
            r = upload(key, data)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["object_id"], sha256(data))
        return r.json["object_id"]

    def owners(self, oid):
        try:
            return sorted(os.listdir(os.path.join(self.store, ".owners", oid)))
        except FileNotFoundError:
            return []

    def age(self, inst, oid):
        """Makes the object look unused for OLD seconds to inst: its row in
        inst's database and its file's modification time."""
        then = time.time() - OLD
        with sqlite3.connect(inst.db, timeout=10) as db:
            n = db.execute("UPDATE file_objects SET last_used_ms = ? WHERE id = ?", (int(then * 1000), oid)).rowcount
        self.assertEqual(n, 1, "instance has no row for %s" % oid)
        os.utime(os.path.join(self.store, oid), (then, then))

    def last_used_ms(self, inst, oid):
        with sqlite3.connect(inst.db, timeout=10) as db:
            rows = db.execute("SELECT last_used_ms FROM file_objects WHERE id = ?", (oid,)).fetchall()
        return rows[0][0] if rows else None

    def cleanup(self, inst):
        """`code-interpreter cleanup` with inst's database and a TTL of an hour."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        env.update(APP_DB_PATH=inst.db, APP_FILE_STORAGE_PATH=self.store, APP_FILE_TTL=str(TTL),
                   APP_AUDIT_RETENTION="86400", APP_DATA_DIR=run.REPO, APP_RUN_DIR=inst.run_dir)
        p = subprocess.run([os.path.join(BUILD, "code-interpreter"), "cleanup"], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def assertUnknown(self, inst, key, oid):
        """key gets for oid exactly what an unknown id gets, on inst."""
        with inst.current():
            assert_answers_as_unknown(self, key, oid)

    def test_an_upload_on_a_downloads_and_runs_on_b_for_its_key_alone(self):
        data = b"uploaded to A " + os.urandom(16).hex().encode()
        oid = self.put(self.a, ALICE, data)
        with self.b.current():
            d = download(ALICE, oid)
            self.assertEqual((d.status, d.body), (200, data))
            r = execute(ALICE, "print(open('in.txt').read(), end='')", files={"/workspace/in.txt": oid})
            self.assertEqual((r.status, r.json["stdout"]), (200, data.decode()), r)
        self.assertEqual(self.owners(oid), [tag("alice")])
        self.assertUnknown(self.b, BOB, oid)
        self.assertUnknown(self.a, BOB, oid)
        # the same bytes from bob on B: one object, now his too, on A as well
        self.assertEqual(self.put(self.b, BOB, data), oid)
        self.assertEqual(self.owners(oid), sorted([tag("alice"), tag("bob")]))
        with self.a.current():
            self.assertEqual(download(BOB, oid).body, data)

    def test_an_output_produced_on_b_downloads_on_a_for_its_key_alone(self):
        text = "made on B " + os.urandom(8).hex()
        with self.b.current():
            r = execute(ALICE, "open('out.txt', 'w').write(%r)" % text)
        self.assertEqual(r.status, 200, r)
        # B ran it on the backend the suite was given: a pod, or a local sandbox
        with sqlite3.connect(self.b.db, timeout=10) as db:
            (sandbox,), = db.execute("SELECT sandbox FROM executions WHERE id = ?", (r.headers["x-execution-id"],))
        self.assertEqual(sandbox.startswith("sbx-"), os.environ.get("E2E_BACKEND", "local") == "local", sandbox)
        out = r.json["files"]["/workspace/out.txt"]
        with self.a.current():
            d = download(ALICE, out)
            self.assertEqual((d.status, d.body), (200, text.encode()))
            r = execute(ALICE, "print(open('o.txt').read(), end='')", files={"/workspace/o.txt": out})
            self.assertEqual((r.status, r.json["stdout"]), (200, text), r)
        self.assertEqual(self.owners(out), [tag("alice")])
        self.assertUnknown(self.a, BOB, out)

    def test_cleanup_on_a_keeps_what_b_used_within_the_ttl(self):
        data = b"used on B lately " + os.urandom(16).hex().encode()
        oid = self.put(self.a, ALICE, data)
        self.put(self.b, ALICE, data)  # B knows it too: its own row
        self.age(self.a, oid)  # A's row, and the file: unused for two hours...
        with self.b.current():  # ...until B serves it now
            self.assertEqual(download(ALICE, oid).body, data)
        before = int(time.time() * 1000)
        self.cleanup(self.a)
        self.assertTrue(os.path.exists(os.path.join(self.store, oid)), "A's cleanup removed what B used just now")
        self.assertEqual(self.owners(oid), [tag("alice")])
        with self.b.current():
            self.assertEqual(download(ALICE, oid).body, data)
        # A's row is kept and takes its last use from the file
        self.assertGreaterEqual(self.last_used_ms(self.a, oid), before - 60000)
        with self.a.current():
            self.assertEqual(download(ALICE, oid).body, data)
        # the same through a run on B: an input is a use
        self.age(self.a, oid)
        with self.b.current():
            r = execute(ALICE, "print(len(open('in.txt').read()))", files={"/workspace/in.txt": oid})
        self.assertEqual((r.status, r.json["stdout"]), (200, "%d\n" % len(data)), r)
        self.cleanup(self.a)
        self.assertTrue(os.path.exists(os.path.join(self.store, oid)), "A's cleanup removed B's input of just now")

    def test_cleanup_on_a_removes_what_nobody_used_with_its_owners(self):
        data = b"nobody uses this " + os.urandom(16).hex().encode()
        oid = self.put(self.a, ALICE, data)
        self.assertEqual(self.owners(oid), [tag("alice")])
        self.age(self.a, oid)
        out = self.cleanup(self.a)
        self.assertIn("removed 1 objects", out)
        self.assertFalse(os.path.exists(os.path.join(self.store, oid)))
        self.assertFalse(os.path.exists(os.path.join(self.store, ".owners", oid)))
        self.assertIsNone(self.last_used_ms(self.a, oid))
        for inst in (self.a, self.b):
            with inst.current():
                self.assertEqual(download(ALICE, oid).status, 404)
        # B's own cleanup then finds an object of another instance's, old and
        # without a row of its own (an orphan to B): also removed
        other = b"stored on A, unused since " + os.urandom(16).hex().encode()
        oid2 = self.put(self.a, ALICE, other)
        then = time.time() - OLD
        os.utime(os.path.join(self.store, oid2), (then, then))
        self.assertIsNone(self.last_used_ms(self.b, oid2))
        self.assertIn("1 orphan files", self.cleanup(self.b))
        self.assertFalse(os.path.exists(os.path.join(self.store, oid2)))
        self.assertFalse(os.path.exists(os.path.join(self.store, ".owners", oid2)))

    def test_a_restart_of_a_loses_nothing(self):
        on_a = b"stored on A before its restart " + os.urandom(8).hex().encode()
        on_b = b"stored on B before A's restart " + os.urandom(8).hex().encode()
        oid_a = self.put(self.a, ALICE, on_a)
        oid_b = self.put(self.b, BOB, on_b)
        with self.a.current():
            r = execute(ALICE, "open('made.txt', 'w').write('made on A')")
        self.assertEqual(r.status, 200, r)
        made = r.json["files"]["/workspace/made.txt"]
        ok, lines = self.a.stop()
        self.assertTrue(ok, "\n".join(lines))
        self.a.start()
        with self.a.current():
            self.assertEqual(download(ALICE, oid_a).body, on_a)
            self.assertEqual(download(ALICE, made).body, b"made on A")
            self.assertEqual(download(BOB, oid_b).body, on_b)
            self.assertEqual(download(BOB, oid_a).status, 404)
        with self.b.current():
            self.assertEqual(download(ALICE, made).body, b"made on A")
