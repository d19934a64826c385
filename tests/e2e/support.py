"""Shared helpers for the end-to-end tests: what run.py told us about the service
under test (through E2E_* environment variables) and a TestCase base class."""
import hashlib
import json
import os
import unittest

import client
import run

TMP = os.environ.get("E2E_TMP", "")
BUILD = os.environ.get("E2E_BUILD", "")
DB_PATH = os.environ.get("E2E_DB_PATH", "")
STORE = os.environ.get("E2E_STORE", "")
RUN_DIR = os.environ.get("E2E_RUN_DIR", "")
LOG = os.environ.get("E2E_LOG", "")
CGROUP_PARENT = os.environ.get("E2E_CGROUP_PARENT", "")
MASTER_PID = int(os.environ.get("E2E_MASTER_PID", "0") or 0)

HELLO = {"stdout": "hello world\n", "stderr": "", "exit_code": 0, "files": {}}
PNG_MAGIC = "89504e470d0a1a0a"


def sha256(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def comm(pid):
    """The process's name, or None once it is gone."""
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def is_spawner(pid):
    """Whether pid is the zygote's spawner: named so, and its parent not (a
    sandbox it has just forked bears its name until it names itself)."""
    name, fields = run.proc_fields(pid)
    return name == "spawner" and run.proc_fields(int(fields[1]))[0] != "spawner"


def read_log():
    try:
        with open(LOG, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class E2E(unittest.TestCase):
    maxDiff = 4000

    def run_code(self, source, files=None, env=None, timeout=None, expect_exit=0, subdirectories=None):
        """Runs source; asserts HTTP 200 and (unless expect_exit is None) the exit code.
        Returns the parsed body."""
        r = client.execute(source, files=files, env=env, timeout=timeout, subdirectories=subdirectories)
        self.assertEqual(r.status, 200, "expected 200, got %s: %r" % (r.status, r.body[:2000]))
        self.assertIsInstance(r.json, dict, r.body[:2000])
        for key, typ in (("stdout", str), ("stderr", str), ("exit_code", int), ("files", dict)):
            self.assertIsInstance(r.json.get(key), typ, "field %s in %r" % (key, r.body[:2000]))
        if expect_exit is not None:
            self.assertEqual(r.json["exit_code"], expect_exit,
                             "exit code; stderr was:\n%s" % r.json["stderr"][-3000:])
        return r.json

    def run_probe(self, source, **kw):
        """Runs code whose last stdout line is one JSON value; returns that value."""
        out = self.run_code(source, **kw)
        lines = out["stdout"].strip().splitlines()
        self.assertTrue(lines, "no output; stderr:\n%s" % out["stderr"][-3000:])
        try:
            return json.loads(lines[-1])
        except ValueError:
            self.fail("last stdout line is not JSON: %r; stderr:\n%s" % (lines[-1], out["stderr"][-3000:]))

    def assertHello(self):
        r = client.execute("print('hello world')")
        self.assertEqual(r.status, 200, r.body[:2000])
        self.assertEqual(r.json, HELLO)

    def assertJsonError(self, r, status):
        self.assertEqual(r.status, status, "expected %d, got %s: %r" % (status, r.status, r.body[:2000]))
        self.assertTrue(r.json_ok, "error body is not JSON: %r" % r.body[:2000])
        self.assertIsInstance(r.json, dict, r.body[:2000])
        ctype = r.headers.get("content-type", "")
        self.assertIn("application/json", ctype, "Content-Type of the %d answer" % status)
        return r.json

    def assertValidationError(self, r):
        """A 422 in FastAPI's shape: {"detail": [{"loc": [...], "msg": str, "type": str}, ...]}."""
        body = self.assertJsonError(r, 422)
        detail = body.get("detail")
        self.assertIsInstance(detail, list, body)
        self.assertTrue(detail, "empty detail list")
        for d in detail:
            self.assertIsInstance(d, dict, d)
            self.assertIsInstance(d.get("loc"), list, d)
            self.assertIsInstance(d.get("msg"), str, d)
            self.assertIsInstance(d.get("type"), str, d)
        return detail
