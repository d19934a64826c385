"""Unit tests for executor/python/shell.py: which code xonsh gets to look at
(may_be_shell), and what compile_code makes of it, without xonsh for Python.
Run by tests/unit/run.sh with python3 -m unittest."""
import ast
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "executor", "python"))
import shell  # noqa: E402


def may_be_shell(source):
    return shell.may_be_shell(ast.parse(source))


class MayBeShell(unittest.TestCase):
    def test_python_is_not_looked_at(self):
        for src in ("print('hi')", "import os\nos.getcwd()", "x = 1\nx", "def f(a):\n    a\nf(1)",
                    "class C:\n    pass\nC()", "for i in range(2):\n    i", "'''docstring'''",
                    "try:\n    pass\nexcept Exception as e:\n    e", "import numpy as np\nnp.zeros(2)",
                    "from os import *\ngetcwd()", "f = lambda: undefined\n", "(y := 2)\ny",
                    "global g\ng = 1\ng", "not True", "a = b = 1\na and b",
                    "def main():\n    helper()\ndef helper():\n    pass\nmain()"):
            with self.subTest(source=src):
                self.assertFalse(may_be_shell(src))

    def test_bare_commands_are(self):
        for src in ("ls -la", "pwd", "id -u", "x = 1\nls", "whoami", "ls and pwd", "not ls",
                    "for i in range(2):\n    date", "print(undefined)"):
            with self.subTest(source=src):
                self.assertTrue(may_be_shell(src))


class CommandLine(unittest.TestCase):
    """The cheap gate before may_be_shell: it may let Python through to the
    tree, never a bare command past it."""

    def test_lines_that_may_be_commands(self):
        for src in ("pwd", "  ls -la", "ls --color=auto", "echo @(x)", "ls and pwd", "not ls",
                    "x = 1\nwhoami  # me", "date;", "for i in r:\n    echo @(i)", "x = 1; pwd",
                    "if True: pwd"):
            with self.subTest(source=src):
                self.assertTrue(shell._has_command_line(src))

    def test_python_lines_that_are_not(self):
        for src in ("x = 1", "x += 1", "x -= 1", "x == 1", "print(x)", "os.getcwd()", "d[k] = v",
                    "a, b = 1, 2", "x : int = 3", "import os", "return -1", "if x:", "for i in y:",
                    "def f(a):", "class C:", "raise ValueError", "del x", "print (x)", "x **= 2",
                    "x //= 2", "x <<= 1", "x >>= 1", "x @= m", "    pass"):
            with self.subTest(source=src):
                self.assertFalse(shell._has_command_line(src))


class CompileCode(unittest.TestCase):
    def test_python_compiles_without_xonsh(self):
        code = shell.compile_code("import os\nprint(os.sep)\n", "<string>", {})
        self.assertEqual(code.co_filename, "<string>")
        self.assertFalse([m for m in sys.modules if m.startswith("xonsh")])

    def test_syntax_error_is_cpythons_for_python(self):
        # xonsh (Debian's, scripts/deps.sh) cannot compile it either
        with self.assertRaises(SyntaxError) as cm:
            shell.compile_code("def f(:\n    pass\n", "<string>", {})
        self.assertEqual(cm.exception.filename, "<string>")
        self.assertEqual(cm.exception.lineno, 1)
        self.assertEqual(cm.exception.msg, "invalid syntax")


if __name__ == "__main__":
    unittest.main()
