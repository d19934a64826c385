"""Point 7: every execution is recorded in SQLite (migrations/0001_initial.sql),
with its files, times and outcome; env names are kept, values never."""
import json
import os
import sqlite3
import time

import client
from support import DB_PATH, E2E, read_log, sha256

SECRET_NAME = "SECRET_NAME"
SECRET_VALUE = "s3cr3t-value"

SOURCE = r'''
import os
data = open("in.txt").read()
open("out.txt", "w").write(data.upper() + str(len(os.environ["SECRET_NAME"])))
print("done")
'''


def db():
    return sqlite3.connect("file:%s?mode=ro" % DB_PATH, uri=True, timeout=10)


class P7Records(E2E):
    @classmethod
    def setUpClass(cls):
        cls.setup_error = None
        try:
            r = client.execute("open('in.txt', 'w').write('abc')")
            assert r.status == 200, r
            cls.input_id = r.json["files"]["/workspace/in.txt"]
            cls.resp = client.execute(SOURCE, files={"/workspace/in.txt": cls.input_id},
                                      env={SECRET_NAME: SECRET_VALUE})
            assert cls.resp.status == 200, cls.resp
            cls.exec_id = cls.resp.headers.get("x-execution-id")
            assert cls.exec_id, "no X-Execution-Id header: %r" % cls.resp.headers
        except Exception as e:  # reported by each test, so the cause is visible
            cls.setup_error = "%s: %s" % (type(e).__name__, e)

    def setUp(self):
        if self.setup_error:
            self.fail("the recorded execution failed: " + self.setup_error)

    def row(self, sql, *args):
        with db() as c:
            c.row_factory = sqlite3.Row
            return c.execute(sql, args).fetchall()

    def test_response_is_as_expected(self):
        self.assertEqual(self.resp.json["stdout"], "done\n")
        self.assertEqual(self.resp.json["files"], {"/workspace/out.txt": sha256("ABC12")})

    def test_execution_row_exists_with_outcome(self):
        rows = self.row("SELECT * FROM executions WHERE id = ?", self.exec_id)
        self.assertEqual(len(rows), 1, "no executions row for %s" % self.exec_id)
        r = rows[0]
        self.assertEqual(r["kind"], "execute")
        self.assertEqual(r["exit_code"], 0)
        self.assertEqual(r["status"], "ok")
        self.assertEqual(r["source_code"], SOURCE)
        self.assertEqual(r["stdout_bytes"], len("done\n"))
        self.assertEqual(r["stderr_bytes"], 0)
        self.assertIsNone(r["error"])
        self.assertTrue(r["sandbox"], "no sandbox recorded")

    def test_execution_row_has_times_and_duration(self):
        r = self.row("SELECT started_ms, finished_ms, duration_ms, finished_at FROM executions WHERE id = ?",
                     self.exec_id)[0]
        now = time.time() * 1000
        self.assertLessEqual(r["started_ms"], r["finished_ms"])
        self.assertEqual(r["duration_ms"], r["finished_ms"] - r["started_ms"])
        self.assertLess(abs(now - r["finished_ms"]), 10 * 60 * 1000, "finish time is not now-ish")
        self.assertRegex(r["finished_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

    def test_input_and_output_files_recorded(self):
        rows = self.row("SELECT direction, path, object_id FROM execution_files WHERE execution_id = ? "
                        "ORDER BY direction, path", self.exec_id)
        self.assertEqual([tuple(r) for r in rows],
                         [("input", "/workspace/in.txt", self.input_id),
                          ("output", "/workspace/out.txt", sha256("ABC12"))])

    def test_file_objects_recorded_with_size(self):
        for oid, size in ((self.input_id, 3), (sha256("ABC12"), 5)):
            with self.subTest(object_id=oid):
                rows = self.row("SELECT size, created_ms, last_used_ms FROM file_objects WHERE id = ?", oid)
                self.assertEqual(len(rows), 1)
                self.assertEqual(rows[0]["size"], size)
                self.assertLessEqual(rows[0]["created_ms"], rows[0]["last_used_ms"])

    def test_env_name_stored(self):
        r = self.row("SELECT env_names FROM executions WHERE id = ?", self.exec_id)[0]
        self.assertEqual(json.loads(r["env_names"]), [SECRET_NAME])

    def test_env_value_appears_nowhere_in_the_database_files(self):
        found = []
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = DB_PATH + suffix
            if os.path.exists(path):
                with open(path, "rb") as f:
                    if SECRET_VALUE.encode() in f.read():
                        found.append(path)
        self.assertEqual(found, [])

    def test_env_value_not_in_service_log(self):
        self.assertNotIn(SECRET_VALUE, read_log())

    def test_failed_run_recorded_with_error_status(self):
        r = client.execute("import sys; sys.exit(3)")
        self.assertEqual(r.status, 200, r.body)
        rows = self.row("SELECT exit_code, status FROM executions WHERE id = ?", r.headers.get("x-execution-id"))
        self.assertEqual([tuple(x) for x in rows], [(3, "error")])

    def test_timed_out_run_recorded_as_timeout(self):
        r = client.execute("while True: pass", timeout=1)
        self.assertEqual(r.status, 200, r.body)
        rows = self.row("SELECT exit_code, status FROM executions WHERE id = ?", r.headers.get("x-execution-id"))
        self.assertEqual([tuple(x) for x in rows], [(-1, "timeout")])

    def test_migrations_recorded_in_user_version(self):
        with db() as c:
            self.assertGreaterEqual(c.execute("PRAGMA user_version").fetchone()[0], 1)
            self.assertEqual(c.execute("PRAGMA journal_mode").fetchone()[0].lower(), "wal")


class P7Checkpoints(E2E):
    def test_the_wal_is_copied_back_by_the_cleanup_process_within_seconds(self):
        """Requests' connections leave checkpoints (and their fsyncs) to the
        cleanup process, which runs one every second: a record reaches the
        database file itself soon after the run, with no request doing it."""
        self.run_code("print('checkpointed')")
        count = "SELECT count(*) FROM executions"
        with db() as c:
            recorded = c.execute(count).fetchone()[0]

        def in_file():
            # an immutable reader ignores the WAL: what the main file holds
            # (None: read while a checkpoint was writing it)
            try:
                with sqlite3.connect("file:%s?immutable=1" % DB_PATH, uri=True) as c:
                    return c.execute(count).fetchone()[0]
            except sqlite3.DatabaseError:
                return None

        deadline = time.monotonic() + 10
        while in_file() != recorded and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(in_file(), recorded, "the run's record did not reach the database file")
