"""Unit tests for executor/python/imports.py: which imports are found (every
form, nested, relative skipped), which count as missing (stdlib, importable,
extra path entries), the pip lines and their removal. Run by
tests/unit/run.sh with python3 -m unittest."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

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
                "if False:\n    import b_zz5\n")
        self.assertEqual(sorted(self.missing(code)), ["b_zz1", "b_zz2", "b_zz3", "b_zz4", "b_zz5"])

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
