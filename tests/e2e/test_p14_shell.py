"""Point 14: upstream's code semantics. Shell lines run as upstream's executor
ran them, with xonsh (executor/python/shell.py); Python runs as Python, with
CPython's own tracebacks and without xonsh being loaded at all."""
import os
import subprocess
import tempfile

from support import E2E, sha256

LINES = "one\ntwo\nthree\n"


def cpython_stderr(source):
    """What /usr/bin/python3 prints on stderr for source run as a script, with
    the script's name spelled as the service spells it."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "script.py")
        with open(path, "w") as f:
            f.write(source)
        r = subprocess.run(["/usr/bin/python3", "-I", path], capture_output=True, text=True, cwd=d)
    return r.stderr.replace(path, "<string>")


class P14Shell(E2E):
    def lines_file(self):
        out = self.run_code("open('a.txt', 'w').write(%r)" % LINES)
        return out["files"]

    def test_echo(self):
        out = self.run_code("echo hello from shell")
        self.assertEqual(out["stdout"], "hello from shell\n")
        self.assertEqual(out["stderr"], "")

    def test_pwd_is_the_workspace(self):
        self.assertEqual(self.run_code("pwd")["stdout"], "/workspace\n")

    def test_ls_la_lists_the_inputs(self):
        out = self.run_code("ls -la", files=self.lines_file())
        self.assertRegex(out["stdout"], r"(?m)^total \d+$")
        self.assertRegex(out["stdout"], r"(?m)^-\S+ .* a\.txt$")

    def test_pipeline(self):
        out = self.run_code("cat a.txt | wc -l", files=self.lines_file())
        self.assertEqual(out["stdout"].strip(), "3")

    def test_pip_list(self):
        out = self.run_code("pip list")
        self.assertRegex(out["stdout"], r"(?im)^numpy\s+\d")

    def test_captured_subprocess(self):
        out = self.run_code("x = $(echo hi)\nprint(repr(x))")
        self.assertEqual(out["stdout"], "'hi\\n'\n")

    def test_captured_object_has_the_return_code(self):
        out = self.run_code("r = !(ls /nonexistent)\nprint(r.returncode, bool(r))")
        self.assertEqual(out["stdout"], "2 False\n")

    def test_python_and_shell_lines_mixed(self):
        out = self.run_code(
            "import json\n"
            "n = 21\n"
            "echo @(n * 2)\n"
            "open('made.txt', 'w').write(json.dumps({'n': n}))\n"
            "cat made.txt\n"
            "print()\n"
            "for i in range(2):\n"
            "    echo line @(i)\n")
        self.assertEqual(out["stdout"], '42\n{"n": 21}\nline 0\nline 1\n')
        self.assertEqual(out["files"], {"/workspace/made.txt": sha256('{"n": 21}')})

    def test_bare_commands_that_are_not_python_names(self):
        # compilable as Python (`ls - la`, a bare name, `id - u` with a builtin)
        # but xonsh runs them as commands
        out = self.run_code("ls -la\npwd\nid -u", files=self.lines_file())
        self.assertIn("a.txt", out["stdout"])
        self.assertRegex(out["stdout"], r"(?m)^/workspace\n\d+\n\Z")

    def test_commands_after_a_semicolon_or_a_colon(self):
        # compilable as Python, so found by shell.py's line pattern (xonsh
        # itself runs both; it runs nothing for `if x: echo one`, nor here)
        out = self.run_code("x = 1; pwd\nif True: pwd")
        self.assertEqual(out["stdout"], "/workspace\n/workspace\n")

    def test_a_failed_command_does_not_stop_the_script(self):
        # as `xonsh script` did: the script goes on, and exits 0
        out = self.run_code("ls /nonexistent\necho after")
        self.assertEqual(out["stdout"], "after\n")
        self.assertIn("No such file or directory", out["stderr"])

    def test_exception_and_exit_status_in_shell_code(self):
        out = self.run_code("echo before\nraise ValueError('boom')", expect_exit=1)
        self.assertEqual(out["stdout"], "before\n")
        self.assertIn('File "<string>", line 2, in <module>', out["stderr"])
        self.assertTrue(out["stderr"].rstrip().endswith("ValueError: boom"), out["stderr"])
        out = self.run_code("echo x\nimport sys\nsys.exit(3)", expect_exit=3)
        self.assertEqual(out["stdout"], "x\n")

    def test_env_reaches_shell_lines(self):
        out = self.run_code("echo $GREETING", env={"GREETING": "hi there"})
        self.assertEqual(out["stdout"], "hi there\n")

    def test_pip_install_lines_are_still_taken_out(self):
        # `!pip install` is handled before the code runs (a package install),
        # never given to xonsh
        out = self.run_code("!pip install --quiet tabulate\necho done")
        self.assertEqual(out["stdout"], "done\n")

    # -- Python stays Python ------------------------------------------------

    def test_python_never_loads_xonsh(self):
        out = self.run_code("import sys\nprint(sorted(m for m in sys.modules if 'xonsh' in m))\n"
                            "print(__name__, sys.argv)")
        self.assertEqual(out["stdout"], "[]\n__main__ ['<string>']\n")

    def test_python_traceback_is_cpythons(self):
        src = "import os\n\ndef f(d):\n    return d['key'] / 0\n\nf({'key': len(os.sep)})\n"
        out = self.run_code(src, expect_exit=1)
        self.assertIn("ZeroDivisionError", out["stderr"])
        self.assertEqual(out["stderr"], cpython_stderr(src))

    def test_name_error_stays_cpythons(self):
        # xonsh looks at it (an unbound name) and finds no command in it
        src = "x = 1\nprint(undefined_name + x)\n"
        out = self.run_code(src, expect_exit=1)
        self.assertIn("NameError: name 'undefined_name' is not defined", out["stderr"])
        self.assertEqual(out["stderr"], cpython_stderr(src))

    def test_syntax_error_is_cpythons(self):
        # neither Python nor xonsh can read it: CPython's message, no traceback
        for src in ('print("a"\n', "def f(:\n    pass\n", "x = 1\n  y = 2\n"):
            with self.subTest(source=src):
                out = self.run_code(src, expect_exit=1)
                self.assertIn("Error", out["stderr"])
                self.assertEqual(out["stderr"], cpython_stderr(src))

    def test_function_defined_later_and_star_imports(self):
        out = self.run_code("def main():\n    helper()\n\ndef helper():\n    print('ok')\n\nmain()\n"
                            "from os.path import *\nprint(basename('/a/b'))\n")
        self.assertEqual(out["stdout"], "ok\nb\n")
