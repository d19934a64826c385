"""Unit tests for executor/python/imports.py: which imports are found (every
form, nested, relative skipped), which count as missing (stdlib, importable,
extra path entries), the pip lines and their removal. Run by
tests/unit/run.sh with python3 -m unittest."""
import json
import opcode
import os
import subprocess
import sys
import tempfile
import unittest
import warnings

sys.dont_write_bytecode = True
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "executor", "python")
sys.path.insert(0, HERE)
import imports  # noqa: E402

ABSENT = "ci_absent_pkg_zz"


class Detection(unittest.TestCase):
    def missing(self, code, paths=()):
        return imports.check(code, list(paths))["missing"]

    def test_every_import_form_is_found(self):
        code = ("import a_zz1\nimport a_zz2.sub as s, a_zz3\nfrom a_zz4 import x\n"
                "from a_zz5.deep.er import (y, z)\n")
        self.assertEqual(self.missing(code), ["a_zz1", "a_zz2", "a_zz3", "a_zz4", "a_zz5"])

    def test_imports_inside_functions_classes_and_try_blocks(self):
        code = ("def f():\n    import b_zz1\n"
                "class C:\n    def m(self):\n        from b_zz2 import q\n"
                "try:\n    import b_zz3\nexcept ImportError:\n    import b_zz4\n"
                "if x:\n    import b_zz5\n")
        self.assertEqual(sorted(self.missing(code)), ["b_zz1", "b_zz2", "b_zz3", "b_zz4", "b_zz5"])

    def test_an_import_the_compiler_leaves_out_is_not_reported(self):
        # it can never run: nothing to install for it
        self.assertEqual(self.missing("if False:\n    import j_zz1\nwhile 0:\n    import j_zz2\n"
                                      "if x:\n    import j_zz3\n"), ["j_zz3"])

    def test_imports_in_every_statement_body_are_found_in_source_order(self):
        code = ("async def f():\n    async with x:\n        import i_zz01\n"
                "    async for a in b:\n        pass\n    else:\n        import i_zz02\n"
                "while x:\n    import i_zz03\nelse:\n    import i_zz04\n"
                "for a in b:\n    with y:\n        import i_zz05\n"
                "try:\n    import i_zz06\nexcept* ValueError:\n    import i_zz07\n"
                "try:\n    import i_zz08\nexcept KeyError:\n    import i_zz09\n"
                "else:\n    import i_zz10\nfinally:\n    import i_zz11\n"
                "match x:\n    case 1:\n        import i_zz12\n    case _:\n        import i_zz13\n"
                "class C:\n    class D:\n        import i_zz14\n"
                "if x:\n    pass\nelif y:\n    import i_zz15\n"
                "import i_zz16\n")
        self.assertEqual(self.missing(code), ["i_zz%02d" % i for i in range(1, 17)])

    def test_relative_imports_are_skipped(self):
        self.assertEqual(self.missing("from . import c_zz\nfrom .c_zz2 import x\nfrom .. import y\n"), [])

    def test_stdlib_and_builtins_are_not_missing(self):
        self.assertEqual(self.missing("import os, sys, json, asyncio.tasks\nfrom collections import abc\n"
                                      "import _thread, itertools, tomllib\n"), [])

    def test_installed_modules_are_not_missing(self):
        # importable from the interpreter's own sys.path (here: this test's)
        self.assertEqual(self.missing("import imports\nimport unittest\n"), [])

    def test_a_module_on_an_extra_path_is_not_missing(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(self.missing("import d_zz_mod\n", [d]), ["d_zz_mod"])
            os.mkdir(os.path.join(d, "d_zz_pkg"))
            open(os.path.join(d, "d_zz_pkg", "__init__.py"), "w").close()
            open(os.path.join(d, "d_zz_mod.py"), "w").close()
            self.assertEqual(self.missing("import d_zz_mod\nimport d_zz_pkg.x\n", [d]), [])

    def test_each_name_once_in_order(self):
        self.assertEqual(self.missing("import e_zz2\nimport e_zz1\nfrom e_zz2 import a\nimport e_zz2.b\n"),
                         ["e_zz2", "e_zz1"])

    def test_syntax_error_means_no_detection(self):
        out = imports.check("import f_zz\ndef broken(:\n")
        self.assertEqual(out["missing"], [])
        self.assertEqual(out["source_code"], "import f_zz\ndef broken(:\n")

    def test_dynamic_imports_are_not_guessed(self):
        self.assertEqual(self.missing("__import__('g_zz')\nimportlib.import_module('g_zz2')\n"), [])


class FromTheBytecode(unittest.TestCase):
    """Code CPython compiles is read from its code object (what the run
    executes), not from a tree; the tree only for code that parses but does
    not compile."""

    SOURCES = ("import a_zz1\nimport a_zz2.sub as s, a_zz3\nfrom a_zz4 import x\nfrom a_zz5.deep.er import (y, z)\n",
               "def f():\n    import b_zz1\nclass C:\n    def m(self):\n        from b_zz2 import q\n"
               "try:\n    import b_zz3\nexcept ImportError:\n    import b_zz4\nfinally:\n    import b_zz5\n",
               "import c_zz1\ndef f():\n    import c_zz2\n    def g():\n        import c_zz3\nimport c_zz4\n"
               "class K:\n    import c_zz5\nimport c_zz6; import c_zz7\n",
               "from . import d_zz1\nfrom .d_zz2 import x\nfrom ..d_zz3 import y\nimport d_zz4\n",
               "async def f():\n    import e_zz1\n    await x\nmatch v:\n    case 1:\n        import e_zz2\n"
               "lambda: __import__('e_zz3')\nimport os, e_zz4\n")

    def test_the_bytecode_and_the_tree_agree(self):
        for src in self.SOURCES:
            self.assertEqual(imports.compiled_imports(compile(src, "<string>", "exec", dont_inherit=True)),
                             imports.imported(imports.ast.parse(src)), src)

    def test_compilable_code_is_read_without_a_tree(self):
        real = imports.ast.parse
        def refuse(*a, **k):
            raise AssertionError("a tree was built")
        imports.ast.parse = refuse
        try:
            for src in self.SOURCES:
                self.assertEqual(imports.check(src)["missing"],
                                 [n for n in imports.imported(real(src)) if not imports.findable(n)], src)
        finally:
            imports.ast.parse = real

    def test_code_that_parses_but_does_not_compile_is_read_from_its_tree(self):
        answer, code = imports.check_code("import k_zz\nreturn 1\n")
        self.assertEqual((answer["missing"], code), (["k_zz"], None))

    def test_the_code_object_is_that_of_the_answers_source(self):
        answer, code = imports.check_code("!pip install l_zz\nimport l_zz\nx = 2\n", (), "<run>")
        self.assertEqual(code.co_filename, "<run>")
        self.assertEqual(code.co_consts, compile(answer["source_code"], "<run>", "exec").co_consts)
        self.assertEqual(code.co_firstlineno, 1)
        self.assertIsNone(imports.check_code("def broken(:\n")[1])

    def test_long_code_with_extended_arguments(self):
        # past 256 constants the level of an import (a constant) and past 256
        # names its name take an EXTENDED_ARG prefix
        consts = "".join("v%d = %d\n" % (i, i + 1) for i in range(300))
        names = "".join("n%d = 0\n" % i for i in range(300))
        for src in (consts + "import m_zz1\nfrom .m_zz2 import x\nfrom m_zz3 import y\n",
                    names + "import m_zz1\nfrom .m_zz2 import x\nfrom m_zz3 import y\n"):
            code = compile(src, "<string>", "exec")
            self.assertIn(opcode.EXTENDED_ARG, code.co_code[::2])
            self.assertEqual(imports.compiled_imports(code), ["m_zz1", "m_zz3"])

    def test_a_private_name_in_a_class_is_the_module_python_imports(self):
        # the compiler mangles it (the tree has it as written)
        self.assertEqual(imports.check("class C:\n    import __p_zz\n")["missing"], ["_C__p_zz"])

    def test_a_warning_of_the_compiler_is_not_shown_and_the_code_not_kept(self):
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            answer, code = imports.check_code("import q_zz\nx = 1 is 1\n")
        self.assertEqual((answer["missing"], code, shown), (["q_zz"], None, []))

    def test_a_warning_of_the_parser_read_for_a_tree_is_not_shown(self):
        # code that does not compile is parsed again for its tree: the
        # parser's own warnings (an invalid decimal literal) stay unshown
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            answer, code = imports.check_code("import r_zz\nx = 1if 1 else 2\nreturn 1\n")
        self.assertEqual((answer["missing"], code, shown), (["r_zz"], None, []))

    def test_an_unknown_bytecode_shape_falls_back_to_the_tree(self):
        # a compiler that does not push the level right before: no guess
        code = compile("import n_zz\n", "<string>", "exec")
        units = bytearray(code.co_code)
        first = units[::2].index(opcode.opmap["LOAD_CONST"]) * 2
        units[first] = opcode.opmap["NOP"]
        self.assertIsNone(imports.compiled_imports(code.replace(co_code=bytes(units))))


class PipLines(unittest.TestCase):
    def test_bang_and_percent_pip_lines_are_removed_and_collected(self):
        code = "!pip install a b==1.2\nimport os\n%pip install -q c>=2 --upgrade\nprint(1)\n"
        out = imports.check(code)
        self.assertEqual(out["pip"], ["a", "b==1.2", "c>=2"])
        self.assertEqual(out["source_code"], "\nimport os\n\nprint(1)\n")

    def test_line_numbers_are_kept(self):
        out = imports.check("!pip install a\nx = 1\n")
        self.assertEqual(out["source_code"].splitlines()[1], "x = 1")

    def test_indented_and_pip3_and_python_m_pip_forms(self):
        self.assertEqual(imports.pip_line("   !pip3 install z"), ["z"])
        self.assertEqual(imports.pip_line("!python -m pip install y"), ["y"])
        self.assertEqual(imports.pip_line("%pip install"), [])

    def test_other_pip_commands_are_removed_without_specs(self):
        self.assertEqual(imports.check("!pip list\nprint(2)\n"),
                         {"missing": [], "pip": [], "source_code": "\nprint(2)\n"})

    def test_ordinary_lines_are_not_pip_lines(self):
        for line in ("pip = 3", "x = '!pip install a'", "!pipx install a", "# !pip install a", "!ls"):
            self.assertIsNone(imports.pip_line(line), line)

    def test_code_without_pip_is_not_split_into_lines(self):
        # the common case answers the very string it was given
        code = "import os\nprint(1)\n" * 50
        self.assertIs(imports.check(code)["source_code"], code)

    def test_code_after_pip_lines_is_checked(self):
        out = imports.check("!pip install h_zz\nimport h_zz\n")
        self.assertEqual(out["missing"], ["h_zz"])
        self.assertEqual(out["pip"], ["h_zz"])


class Program(unittest.TestCase):
    def test_the_script_speaks_json_on_stdout(self):
        code = "!pip install k_zz\nimport %s, os\n" % ABSENT
        p = subprocess.run([sys.executable, "-I", "-B", os.path.join(HERE, "imports.py"), "/nonexistent"],
                           input=code.encode(), capture_output=True, check=True)
        self.assertEqual(json.loads(p.stdout), {"missing": [ABSENT], "pip": ["k_zz"],
                                                "source_code": "\nimport %s, os\n" % ABSENT})

    def test_the_map_is_data_and_covers_the_usual_names(self):
        with open(os.path.join(HERE, "package_map.json")) as f:
            m = json.load(f)
        for mod, dist in {"cv2": "opencv-python", "PIL": "pillow", "sklearn": "scikit-learn",
                          "skimage": "scikit-image", "yaml": "pyyaml", "bs4": "beautifulsoup4",
                          "fitz": "pymupdf", "docx": "python-docx", "pptx": "python-pptx",
                          "dateutil": "python-dateutil", "Crypto": "pycryptodome",
                          "dotenv": "python-dotenv"}.items():
            self.assertEqual(m[mod], dist)


if __name__ == "__main__":
    unittest.main()
