"""Unit tests for executor/python/runner.py's use of the package cache: what a
run's sys.path gets from the execute request's "packages" (those directories,
in order, after the interpreter's own entries; never the bare cache; nothing
touched of the cache without them) and what the import check searches (the
workspace, never the cache). The cache is a temporary directory put in place
of /opt/code-interpreter/packages; each case runs in a fresh interpreter,
since a run changes its process (cwd, __main__, sys.path). Run by
tests/unit/run.sh with python3 -m unittest."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "executor", "python")

# argv: runner dir, cache, workspace, op, request (JSON). Prints one JSON line
# after whatever the code printed: the calls that touched the cache and, for
# "imports", the answer and whether sys.path came back unchanged.
DRIVER = r"""
import json, os, sys
here, cache, ws, op, req = sys.argv[1:6]
req = json.loads(req)
sys.path.insert(0, here)
import imports
import shell
import runner  # drops its own directory from sys.path[0]
runner._IMPORTS = imports
runner._SHELL = shell
runner._PACKAGES = cache
runner._WORKSPACE = ws
touched = []
real_isdir, real_exists = os.path.isdir, os.path.exists
def isdir(p):
    touched.append(["isdir", str(p)])
    return real_isdir(p)
def exists(p):
    touched.append(["exists", str(p)])
    return real_exists(p)
os.path.isdir, os.path.exists = isdir, exists
def hook(event, args):
    if event in ("os.listdir", "os.scandir", "open") and args and isinstance(args[0], str):
        touched.append([event, args[0]])
sys.addaudithook(hook)
out = {}
if op == "imports":
    if req.get("finder_imports"):
        class Importing:
            # a meta path finder that imports a module as it searches (as
            # some packages' import hooks do)
            def find_spec(self, name, path=None, target=None):
                if name != req["finder_imports"]:
                    __import__(req["finder_imports"])
                return None
        sys.meta_path.insert(0, Importing())
    before = list(sys.path)
    modules, finders = set(sys.modules), set(sys.path_importer_cache)
    out["answer"] = runner._check_imports(req["source_code"])
    out["path_kept"] = sys.path == before
    out["modules_added"] = sorted(set(sys.modules) - modules)
    out["modules_removed"] = sorted(modules - set(sys.modules))
    out["finders_added"] = sorted(set(sys.path_importer_cache) - finders)
else:
    out["status"] = runner._run(req["source_code"], req.get("env") or {}, req.get("packages") or ())
    sys.stdout.flush()
out["touched"] = [t for t in touched if t[1] == cache or t[1].startswith(cache + "/")]
sys.stdout.write("\n" + json.dumps(out) + "\n")
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class CacheOnSysPath(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.cache = os.path.join(self.tmp.name, "packages")
        self.ws = os.path.join(self.tmp.name, "ws")
        os.mkdir(self.ws)
        # two distributions, one module in both; a module at the cache's top
        # level (what a shared site-packages had) and one shadowing the stdlib
        write(os.path.join(self.cache, "ci-a-1.0", "ci_a_mod.py"), "A = 'a'\n")
        write(os.path.join(self.cache, "ci-a-1.0", "ci_both.py"), "WHO = 'a'\n")
        write(os.path.join(self.cache, "ci-a-1.0", "colorsys.py"), "WHO = 'evil'\n")
        write(os.path.join(self.cache, "ci-b-2.0", "ci_b_mod.py"), "B = 'b'\n")
        write(os.path.join(self.cache, "ci-b-2.0", "ci_both.py"), "WHO = 'b'\n")
        write(os.path.join(self.cache, "ci_top.py"), "TOP = 1\n")
        write(os.path.join(self.cache, "ci_top_pkg", "__init__.py"), "")
        write(os.path.join(self.ws, "ws_mod.py"), "W = 1\n")

    def tearDown(self):
        self.tmp.cleanup()

    def drive(self, op, req):
        p = subprocess.run([sys.executable, "-s", "-B", "-c", DRIVER, HERE, self.cache, self.ws, op,
                            json.dumps(req)], capture_output=True, cwd=self.tmp.name, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        text = p.stdout.decode()
        cut = text.rstrip("\n").rfind("\n")
        return text[:cut], json.loads(text[cut:]), p.stderr.decode()

    def test_the_named_directories_come_last_in_the_order_given(self):
        code = ("import sys, json, colorsys, ci_a_mod, ci_b_mod, ci_both\n"
                "print(json.dumps([sys.path, ci_both.WHO, hasattr(colorsys, 'WHO')]))\n")
        out, res, err = self.drive("execute", {"source_code": code, "packages": ["ci-b-2.0", "ci-a-1.0"]})
        self.assertEqual(res["status"], 0, err)
        path, who, shadowed = json.loads(out)
        self.assertEqual(path[0], self.ws)
        self.assertEqual(path[-2:], [self.cache + "/ci-b-2.0", self.cache + "/ci-a-1.0"])
        self.assertEqual([p for p in path if p.startswith(self.cache)], path[-2:])
        self.assertEqual(who, "b")          # the first named wins
        self.assertFalse(shadowed)          # the stdlib stays first

    def test_the_bare_cache_is_never_on_sys_path(self):
        code = ("import sys, json\n"
                "try:\n    import ci_top\n    top = 'imported'\nexcept ImportError:\n    top = 'missing'\n"
                "try:\n    import ci_top_pkg\n    pkg = 'imported'\nexcept ImportError:\n    pkg = 'missing'\n"
                "print(json.dumps([top, pkg, sys.path, list(sys.path_importer_cache)]))\n")
        for packages in ([], ["ci-a-1.0"]):
            out, res, err = self.drive("execute", {"source_code": code, "packages": packages})
            self.assertEqual(res["status"], 0, err)
            top, pkg, path, finders = json.loads(out)
            self.assertEqual([top, pkg], ["missing", "missing"], packages)
            self.assertNotIn(self.cache, path)
            self.assertNotIn(self.cache, finders)
            self.assertEqual([p for p in path if p.startswith(self.cache)],
                             [self.cache + "/" + n for n in packages])

    def test_a_run_without_packages_touches_nothing_of_the_cache(self):
        code = "try:\n    import ci_absent_zz\nexcept ImportError:\n    print('absent')\n"
        for req in ({"source_code": code}, {"source_code": code, "packages": []}):
            out, res, err = self.drive("execute", req)
            self.assertEqual((out, res["status"]), ("absent\n", 0), err)
            self.assertEqual(res["touched"], [])

    def test_the_import_check_searches_the_workspace_not_the_cache(self):
        code = "import os, ws_mod, ci_top, ci_top_pkg.sub, ci_a_mod\n"
        _, res, err = self.drive("imports", {"source_code": code})
        self.assertEqual(res["answer"]["missing"], ["ci_top", "ci_top_pkg", "ci_a_mod"], err)
        self.assertTrue(res["path_kept"])
        self.assertEqual(res["touched"], [])

    def test_the_import_check_leaves_no_module_or_finder_behind(self):
        # the workspace's finder is made anew by the check, colorsys imported
        # by a finder as it searches: both are gone after it, nothing else is
        code = "import ws_mod, ci_absent_zz\n"
        _, res, err = self.drive("imports", {"source_code": code, "finder_imports": "colorsys"})
        self.assertEqual(res["answer"]["missing"], ["ci_absent_zz"], err)
        self.assertTrue(res["path_kept"])
        self.assertEqual(res["modules_added"], [])
        self.assertEqual(res["modules_removed"], [])
        self.assertEqual(res["finders_added"], [])


# argv: runner dir, workspace, "rehearse" or "plain". Warms the runner as the
# zygote does (runner.warm, then the collector frozen), rehearses or not, then
# runs PROBE with runner._run: its output is what code run after it sees.
# With "faults" or "finish" instead: one JSON line, the page faults that a
# run (runner._run), or the question runner._finish asks of threading (with
# threading preloaded), takes in a process forked from this one with and
# without the rehearsal before it (each the minimum of five forks). Each fork
# measures an empty step first: the pages the measuring itself writes (its
# frames, getrusage's result) are then not counted, 4-9 faults that varied
# from one driver to the next and made a ratio of small counts fail.
REHEARSAL_DRIVER = r"""
import gc, json, os, resource, sys
here, ws, mode = sys.argv[1:4]
sys.path.insert(0, here)
import runner
runner.warm(ws, "threading" if mode == "finish" else "")
gc.collect()
gc.freeze()

def a_run():
    assert runner._run("x = 1\n", {}, ()) == 0

def the_finish_question():
    assert runner._nothing_to_shut_down(sys.modules["threading"])

def nothing():
    pass

def faults_of(step):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def faults_in_a_fork(rehearse, step):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        if rehearse:
            runner._rehearse()
        faults_of(nothing)  # the measuring's own first writes, not counted
        os.write(w, json.dumps(faults_of(step)).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        faults = json.loads(f.read())
    _, status = os.waitpid(pid, 0)
    assert status == 0
    return faults

if mode in ("faults", "finish"):
    step = a_run if mode == "faults" else the_finish_question
    print(json.dumps({k: min(faults_in_a_fork(k == "rehearsed", step) for _ in range(5))
                      for k in ("plain", "rehearsed")}))
else:
    if mode == "rehearse":
        runner._rehearse()
    sys.exit(runner._run(sys.stdin.read(), {}, ()))
"""

# What code sees of its process: the interpreter's state a run could read.
PROBE = """
import gc, json, linecache, os, sys, threading
out = {"modules": sorted(sys.modules), "path": list(sys.path), "path_size": sys.getsizeof(sys.path),
       "finders": sorted(sys.path_importer_cache), "main": sorted(vars(sys.modules["__main__"])),
       "lines": sorted(linecache.cache), "lines_size": sys.getsizeof(linecache.cache),
       "argv": sys.argv, "cwd": os.getcwd(), "environ": dict(os.environ),
       "threads": threading.active_count(), "frozen": gc.get_freeze_count(),
       "objects": len(gc.get_objects()), "end": sys.getrefcount("end"),
       "exc": repr(sys.exc_info())}
for i in range(12):
    linecache.cache["probe%d" % i] = (0, None, [], "probe")
    out["lines_size_%d" % i] = sys.getsizeof(linecache.cache)
print(json.dumps(out))
"""


class Rehearsal(unittest.TestCase):
    """runner._rehearse, run in each runner before its ready byte."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()  # the workspace of every drive

    def tearDown(self):
        self.tmp.cleanup()

    def drive(self, mode, stdin=""):
        p = subprocess.run([sys.executable, "-s", "-B", "-u", "-c", REHEARSAL_DRIVER, HERE, self.tmp.name, mode],
                           input=stdin.encode(), capture_output=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"})
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode()

    def test_code_run_after_it_sees_what_it_would_see_without_it(self):
        plain, rehearsed = self.drive("plain", PROBE), self.drive("rehearse", PROBE)
        self.assertEqual(rehearsed.count("\n"), 1, "it printed something: %r" % rehearsed)
        plain, rehearsed = json.loads(plain), json.loads(rehearsed)
        for what in plain:
            self.assertEqual(rehearsed[what], plain[what], what)

    def test_it_takes_the_page_copies_of_a_run_ahead_of_it(self):
        # a run in a forked process writes fewer pages of its parent's for the
        # first time once the rehearsal has (here 16-21 pages against 132-136)
        faults = json.loads(self.drive("faults"))
        self.assertLess(faults["rehearsed"] * 2, faults["plain"], faults)

    def test_it_takes_the_page_copies_of_the_finish_ahead_of_it(self):
        # what _finish asks before it skips threading._shutdown writes almost
        # no page of its parent's once the rehearsal has asked it (here 2-3,
        # against 20-22 without)
        faults = json.loads(self.drive("finish"))
        self.assertLess(faults["rehearsed"] * 4, faults["plain"], faults)


# argv: runner dir, code. Runs the code, then ends as a run ends
# (runner._finish), with threading._shutdown standing for the warm image's
# own but writing "[shutdown]" to stdout when called.
SHUTDOWN_DRIVER = r"""
import os, sys, threading
here, code = sys.argv[1:3]
sys.path.insert(0, here)
import runner
real = threading._shutdown
def recorder():
    os.write(1, b"[shutdown]")
    real()
threading._shutdown = runner._THREADING_SHUTDOWN = recorder
exec(compile(code, "<code>", "exec"), {"__name__": "__main__"})
runner._finish(0)
"""


class ThreadShutdown(unittest.TestCase):
    """runner._finish calls threading._shutdown only when it has something to
    do that a run could tell."""

    def finish(self, code):
        p = subprocess.run([sys.executable, "-s", "-B", "-c", SHUTDOWN_DRIVER, HERE, code],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = p.stdout.decode()
        return out.replace("[shutdown]", ""), "[shutdown]" in out

    def test_a_run_with_nothing_to_shut_down_skips_it(self):
        self.assertEqual(self.finish("import threading\nprint('x')\n"), ("x\n", False))

    def test_what_a_run_could_tell_is_not_skipped(self):
        # a thread still running is waited for, atexit handlers run after it,
        # a threading atexit call is made (concurrent.futures joins its
        # workers through threading._register_atexit)
        cases = {
            "a live thread": ("import threading, time\n"
                              "def late():\n    time.sleep(0.2)\n    print('late')\n"
                              "threading.Thread(target=late).start()\nprint('main')\n", "main\nlate\n"),
            "an atexit handler": ("import atexit\natexit.register(print, 'bye')\nprint('hi')\n", "hi\nbye\n"),
            "a threading atexit call": ("import concurrent.futures\n"
                                        "pool = concurrent.futures.ThreadPoolExecutor(1)\n"
                                        "print(pool.submit(lambda: 6 * 7).result())\n", "42\n"),
        }
        for what, (code, out) in cases.items():
            with self.subTest(what):
                self.assertEqual(self.finish(code), (out, True))

    def test_the_codes_own_shutdown_is_called(self):
        code = "import threading\nthreading._shutdown = lambda: print('own')\n"
        self.assertEqual(self.finish(code), ("own\n", False))


# argv: runner dir, workspace, checked code, run code. Warms the runner, makes
# the import check of the first code, then runs the second with every call of
# compile counted; prints the count and the run's status after the code's output.
CHECKED_DRIVER = r"""
import builtins, json, sys
here, ws, checked, ran = sys.argv[1:5]
sys.path.insert(0, here)
import runner
runner.warm(ws, "")
answer = runner._check_imports(checked)
sys.stderr.write("[checked]\n")
calls = []
real = builtins.compile
def counted(*args, **kwargs):
    calls.append(args[2] if len(args) > 2 else kwargs.get("mode"))
    return real(*args, **kwargs)
builtins.compile = counted
status = runner._run(ran, {}, ())
builtins.compile = real
sys.stdout.write("\n" + json.dumps({"status": status, "compiles": calls, "missing": answer["missing"]}) + "\n")
"""


class CheckedCode(unittest.TestCase):
    """The code an import check compiled is the code the run executes."""

    def drive(self, checked, ran):
        with tempfile.TemporaryDirectory() as ws:
            p = subprocess.run([sys.executable, "-s", "-B", "-c", CHECKED_DRIVER, HERE, ws, checked, ran],
                               capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        text = p.stdout.decode()
        cut = text.rstrip("\n").rfind("\n")
        self.during_check, _, self.stderr = p.stderr.decode().partition("[checked]\n")
        return text[:cut], json.loads(text[cut:])

    def test_a_compiler_warning_is_the_runs_with_its_source_line(self):
        # nothing on stderr while the check runs (the server does not read it
        # then: ~64 KiB of warnings would block the runner); the run compiles
        # again and warns as it would without the check
        code = "import os\nx = 1 is 1\n"
        out, r = self.drive(code, code)
        self.assertEqual(self.during_check, "")
        self.assertEqual(r["compiles"], ["exec"])
        self.assertIn("SyntaxWarning", self.stderr)
        self.assertIn("x = 1 is 1", self.stderr)

    def test_a_run_after_its_check_compiles_nothing(self):
        code = "import os\nprint(os.sep, __name__)\n"
        out, r = self.drive(code, code)
        self.assertEqual((out, r["status"], r["compiles"]), ("/ __main__\n", 0, []))

    def test_other_code_is_compiled_for_its_run(self):
        out, r = self.drive("import os\n", "print(2)\n")
        self.assertEqual((out, r["status"], r["compiles"]), ("2\n", 0, ["exec"]))

    def test_code_with_pip_lines_runs_as_blanked(self):
        # the service sends the blanked code the check answered with
        code = "!pip install ci_zz\nimport sys\nprint(sys._getframe().f_lineno)\n"
        out, r = self.drive(code, "\nimport sys\nprint(sys._getframe().f_lineno)\n")
        self.assertEqual((out, r["compiles"]), ("3\n", []))

    def test_a_syntax_error_is_reported_as_without_the_check(self):
        out, r = self.drive("import os\nx = (\n", "import os\nx = (\n")
        # compiled again (then xonsh reads it, and finds no command)
        self.assertEqual((r["status"], r["compiles"][0]), (1, "exec"))
        self.assertIn("SyntaxError: '(' was never closed", self.stderr)
        self.assertEqual(self.during_check, "")


# argv: runner dir, a JSON list of answers. Writes each with
# runner._write_message, json.dumps out of its reach, and fails unless the
# framed message carries what json.dumps writes.
ENCODE_DRIVER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import runner
answers = json.loads(sys.argv[2])
expected = [json.dumps(obj).encode("ascii") for obj in answers]
def refuse(*args, **kwargs):
    raise AssertionError("json.dumps called")
json.dumps = refuse
r, w = os.pipe()
runner._READY_FD = w
for obj, want in zip(answers, expected):
    runner._write_message(obj)
    got = os.read(r, 1 << 16)
    assert got == len(want).to_bytes(4, "big") + want, (got, want)
"""


class Answers(unittest.TestCase):
    def test_an_answer_is_what_json_dumps_writes_without_it(self):
        answers = [{"missing": [], "pip": [], "source_code": ""},
                   {"missing": ["a", "b"], "pip": ["c==1"],
                    "source_code": 'x = "\\\u00e9\u2028\n\x00\t" # \ud800 \U0001f600'}]
        p = subprocess.run([sys.executable, "-s", "-B", "-c", ENCODE_DRIVER, HERE, json.dumps(answers)],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
