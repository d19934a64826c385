"""Point 3: what a run sees and returns; runs do not see each other."""

from support import E2E, PNG_MAGIC, sha256


class P3Runs(E2E):
    def test_env_reaches_the_code(self):
        out = self.run_code("import os; print(os.environ['FOO']); print(os.environ['UNI'])",
                            env={"FOO": "bar baz", "UNI": "\u00fc\u20ac"})
        self.assertEqual(out["stdout"], "bar baz\n\u00fc\u20ac\n")

    def test_zero_division_gives_exit_1_and_traceback(self):
        out = self.run_code("0/0", expect_exit=1)
        self.assertIn("ZeroDivisionError", out["stderr"])
        self.assertIn("Traceback", out["stderr"])
        self.assertEqual(out["stdout"], "")

    def test_sys_exit_code_is_returned(self):
        out = self.run_code("import sys; sys.exit(7)", expect_exit=7)
        self.assertEqual(out["stdout"], "")

    def test_stderr_is_captured_separately(self):
        out = self.run_code("import sys; print('out'); print('err', file=sys.stderr)")
        self.assertEqual(out["stdout"], "out\n")
        self.assertEqual(out["stderr"], "err\n")

    def test_unicode_output_is_exact(self):
        out = self.run_code("print('h\u00e9llo \u2713 \U0001f600')")
        self.assertEqual(out["stdout"], "h\u00e9llo \u2713 \U0001f600\n")

    def test_invalid_utf8_output_is_replaced(self):
        out = self.run_code("import sys; sys.stdout.buffer.write(b'a\\xff\\xfeb\\n'); sys.stdout.flush()")
        self.assertTrue(out["stdout"].startswith("a"), out["stdout"])
        self.assertTrue(out["stdout"].endswith("b\n"), out["stdout"])
        self.assertIn("\ufffd", out["stdout"])

    def test_runs_as_main_script_in_workspace(self):
        v = self.run_probe("import os, json; print(json.dumps([__name__, os.getcwd()]))")
        self.assertEqual(v, ["__main__", "/workspace"])

    def test_numpy_pandas_scipy_compute_right_numbers(self):
        out = self.run_code(r'''
import numpy as np, pandas as pd
from scipy import stats, special
print(round(float(np.linalg.det(np.array([[1.0, 2.0], [3.0, 4.0]]))), 6))
df = pd.DataFrame({"a": [1, 2, 3], "b": [4.5, 5.5, 6.5]})
print(int(df["a"].sum()), float(df["b"].mean()))
print(float(stats.norm.cdf(0.0)), int(special.comb(5, 2)))
''', timeout=120)
        self.assertEqual(out["stdout"], "-2.0\n6 5.5\n0.5 10\n")

    def test_matplotlib_show_returns_plot_png(self):
        out = self.run_code("import matplotlib.pyplot as plt; plt.plot([1, 2]); plt.show()", timeout=120)
        self.assertIn("/workspace/plot.png", out["files"], out)
        oid = out["files"]["/workspace/plot.png"]
        out2 = self.run_code("print(open('/workspace/plot.png', 'rb').read(8).hex())",
                             files={"/workspace/plot.png": oid})
        self.assertEqual(out2["stdout"], PNG_MAGIC + "\n")

    def test_pil_image_show_returns_image_png(self):
        out = self.run_code("from PIL import Image; Image.new('RGB', (4, 4), 'red').show()", timeout=120)
        self.assertIn("/workspace/image.png", out["files"], out)
        out2 = self.run_code("print(open('/workspace/image.png', 'rb').read(8).hex())",
                             files={"/workspace/image.png": out["files"]["/workspace/image.png"]})
        self.assertEqual(out2["stdout"], PNG_MAGIC + "\n")

    def test_output_without_trailing_newline_is_kept(self):
        out = self.run_code("import sys; sys.stdout.write('no newline'); sys.stderr.write('err')")
        self.assertEqual((out["stdout"], out["stderr"]), ("no newline", "err"))

    def test_large_source_code_runs(self):
        src = "x = 0\n" + "x += 1\n" * 100000 + "print(x)\n"
        out = self.run_code(src, timeout=60)
        self.assertEqual(out["stdout"], "100000\n")

    def test_compiler_warnings_of_code_with_an_import_are_the_runs(self):
        # the import check compiles the code and the executor reads no stderr
        # during it: ~64 KiB of warnings written then blocked the runner, and
        # the call failed after 10 s ("the runner was lost in the import check")
        out = self.run_code("import os\n" + "x = 1 is 1\n" * 2000 + "print('done')\n", timeout=30)
        self.assertEqual(out["stdout"], "done\n")
        self.assertTrue(out["stderr"].startswith('<string>:2: SyntaxWarning: "is" with a literal.'
                                                 ' Did you mean "=="?\n  x = 1 is 1\n'), out["stderr"][:300])
        # code that parses but does not compile is parsed again for its tree:
        # the parser's own warnings are held back too
        out = self.run_code("import os\n" + "x = 1if 1 else 2\n" * 3000 + "return 1\n", timeout=30,
                            expect_exit=1)
        self.assertTrue(out["stderr"].endswith("SyntaxError: 'return' outside function\n"), out["stderr"][-300:])

    def test_syntax_error_is_reported(self):
        out = self.run_code("def f(:\n", expect_exit=1)
        self.assertIn("SyntaxError", out["stderr"])

    def test_stdin_is_empty(self):
        v = self.run_probe("import sys, json; print(json.dumps(sys.stdin.read()))")
        self.assertEqual(v, "")

    def test_nothing_from_one_run_is_visible_to_the_next(self):
        out = self.run_code(r'''
import os, subprocess
open("/tmp/x", "w").write("x")
open("/workspace/y", "w").write("y")
subprocess.Popen(["sleep", "1000"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.environ["LEAK"] = "1"
print("planted")
''')
        self.assertEqual(out["stdout"], "planted\n")
        self.assertEqual(out["files"], {"/workspace/y": sha256("y")})
        v = self.run_probe(r'''
import os, json
sleeps = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
        except OSError:
            continue
        if cmd and os.path.basename(cmd[0]) == b"sleep":
            sleeps.append(pid)
print(json.dumps({"tmp_x": os.path.exists("/tmp/x"), "workspace_y": os.path.exists("/workspace/y"),
                  "sleep": sleeps, "LEAK": os.environ.get("LEAK")}))
''')
        self.assertEqual(v, {"tmp_x": False, "workspace_y": False, "sleep": [], "LEAK": None})

    def test_workspace_starts_empty(self):
        v = self.run_probe("import os, json; print(json.dumps(sorted(os.listdir('/workspace'))))")
        self.assertEqual(v, [])

    def test_imported_module_state_does_not_leak(self):
        self.run_code("import json; json.LEAKED = 1")
        v = self.run_probe("import json; print(json.dumps(hasattr(json, 'LEAKED')))")
        self.assertEqual(v, False)
