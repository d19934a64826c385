"""Unit tests for executor/python/tool_parse.py: the annotation to JSON Schema
mapping (every supported type, nested, aliased, rejected) and the reST
docstring parser. Run by tests/unit/run.sh with python3 -m unittest."""
import json
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "executor", "python"))
import tool_parse  # noqa: E402

NULL = {"type": "null"}
INT = {"type": "integer"}
STR = {"type": "string"}


def schema_of(annotation, imports="import typing\n"):
    tool = tool_parse.parse("%sdef f(x: %s) -> None:\n    pass\n" % (imports, annotation))
    return tool.schema()["properties"]["x"]


def errors_of(source):
    with unittest.TestCase().assertRaises(tool_parse.ToolError) as cm:
        tool_parse.parse(source)
    return cm.exception.messages


class TypeMapping(unittest.TestCase):
    def check(self, annotation, expected, imports="import typing\n"):
        self.assertEqual(schema_of(annotation, imports), expected, annotation)

    def test_scalars(self):
        for ann, exp in (("int", INT), ("float", {"type": "number"}), ("str", STR),
                         ("bool", {"type": "boolean"}), ("None", NULL), ("typing.Any", {}),
                         ("typing.Text", STR)):
            with self.subTest(ann=ann):
                self.check(ann, exp)

    def test_lists_and_sequences(self):
        for ann in ("list[int]", "typing.List[int]", "typing.Sequence[int]", "typing.MutableSequence[int]"):
            with self.subTest(ann=ann):
                self.check(ann, {"type": "array", "items": INT})
        self.check("list", {"type": "array", "items": {}})
        self.check("typing.List", {"type": "array", "items": {}})

    def test_dicts(self):
        self.check("dict[str, int]", {"type": "object", "additionalProperties": INT})
        self.check("typing.Dict[str, typing.Any]", {"type": "object"})
        self.check("dict", {"type": "object"})
        self.check("typing.Mapping[str, str]", {"type": "object", "additionalProperties": STR})
        self.check("dict[typing.Literal['a', 'b'], int]",
                   {"type": "object", "additionalProperties": INT, "propertyNames": {"enum": ["a", "b"]}})

    def test_sets(self):
        self.check("set[int]", {"type": "array", "uniqueItems": True, "items": INT})
        self.check("typing.FrozenSet[str]", {"type": "array", "uniqueItems": True, "items": STR})
        self.check("set", {"type": "array", "uniqueItems": True, "items": {}})

    def test_tuples_in_draft_07_form(self):
        self.check("tuple[int, str]", {"type": "array", "minItems": 2, "items": [INT, STR], "additionalItems": False})
        self.check("typing.Tuple[int]", {"type": "array", "minItems": 1, "items": [INT], "additionalItems": False})
        self.check("typing.Tuple[int, ...]", {"type": "array", "items": INT})
        self.check("tuple", {"type": "array", "items": {}})
        self.check("tuple[()]", {"type": "array", "minItems": 0, "maxItems": 0})

    def test_tuple_key_order_matches_the_reference(self):
        self.assertEqual(list(schema_of("tuple[int, str]")), ["type", "minItems", "items", "additionalItems"])

    def test_unions(self):
        opt = {"anyOf": [INT, NULL]}
        for ann in ("typing.Optional[int]", "typing.Union[int, None]", "int | None", "None | int",
                    "typing.Union[None, int]", "typing.Optional[typing.Optional[int]]"):
            with self.subTest(ann=ann):
                self.check(ann, opt)
        self.check("typing.Union[int, str]", {"anyOf": [INT, STR]})
        self.check("typing.Union[int, None, str]", {"anyOf": [INT, STR, NULL]})
        self.check("int | str | int", {"anyOf": [INT, STR]})
        self.check("typing.Union[int]", INT)
        self.check("typing.Union[int, typing.Union[str, float]]", {"anyOf": [INT, STR, {"type": "number"}]})
        self.check("typing.Optional[typing.Any]", {"anyOf": [{}, NULL]})

    def test_literals(self):
        self.check("typing.Literal['a', 'b']", {"enum": ["a", "b"], "type": "string"})
        self.check("typing.Literal[1, 2]", {"enum": [1, 2], "type": "integer"})
        self.check("typing.Literal['only']", {"const": "only", "type": "string"})
        self.check("typing.Literal[True]", {"const": True, "type": "boolean"})
        self.check("typing.Literal[-1, 'a']", {"enum": [-1, "a"]})
        self.check("typing.Literal['a', typing.Literal['b']]", {"enum": ["a", "b"], "type": "string"})

    def test_dates_and_paths(self):
        imports = "import datetime\nimport pathlib\n"
        for ann, fmt in (("datetime.datetime", "date-time"), ("datetime.date", "date"),
                         ("datetime.time", "time"), ("datetime.timedelta", "duration"),
                         ("pathlib.Path", "path"), ("pathlib.PurePath", "path")):
            with self.subTest(ann=ann):
                self.check(ann, {"type": "string", "format": fmt}, imports)

    def test_nested(self):
        self.check("dict[str, list[typing.Tuple[int, typing.Optional[str]]]]",
                   {"type": "object", "additionalProperties": {"type": "array", "items": {
                       "type": "array", "minItems": 2, "items": [INT, {"anyOf": [STR, NULL]}],
                       "additionalItems": False}}})
        self.check("list[list[list[int]]]", {"type": "array", "items": {"type": "array", "items": {
            "type": "array", "items": INT}}})

    def test_aliases(self):
        self.check("banana.List[Onion[int, str]]", {"type": "array", "items": {"anyOf": [INT, STR]}},
                   "import typing as banana\nfrom typing import Union as Onion\n")
        self.check("dt.date", {"type": "string", "format": "date"}, "import datetime as dt\n")
        self.check("D", {"type": "string", "format": "date-time"}, "from datetime import datetime as D\n")
        self.check("P", {"type": "string", "format": "path"}, "from pathlib import Path as P\n")
        self.check("List[int]", {"type": "array", "items": INT}, "from typing import *\n")

    def test_forward_reference_strings(self):
        self.check("'list[int]'", {"type": "array", "items": INT})
        self.check("list['typing.Optional[int]']", {"type": "array", "items": {"anyOf": [INT, NULL]}})

    def test_rejected(self):
        cases = {
            "np.ndarray": "import numpy as np\n",
            "os.PathLike": "import os\n",
            "PathLike": "from os import PathLike\n",
            "Foo": "",
            "typing.List[int]": "",  # typing not imported
            "typing.Callable[[int], int]": "import typing\n",
            "open('x')": "",
            "typing.List[int]()": "import typing\n",
            "lambda: int": "",
            "int[str]": "",
            "list[int, str]": "",
            "typing.Optional": "import typing\n",
            "typing": "import typing\n",
            "typing.Literal[int]": "import typing\n",
            "datetime.datetime.now": "import datetime\n",
            "[int]": "",
            "'1 +'": "",
            "int + str": "",
            "typing.Tuple[int, ..., str]": "import typing\n",
            "typing.Union[()]": "import typing\n",
        }
        for ann, imports in cases.items():
            with self.subTest(ann=ann):
                msgs = errors_of("%sdef f(x: %s) -> None:\n    pass\n" % (imports, ann))
                self.assertEqual(len(msgs), 1, msgs)
                self.assertTrue(msgs[0].startswith("Invalid type annotation `"), msgs[0])
                self.assertIn("argument `x`", msgs[0])

    def test_rebinding_by_another_import_is_rejected(self):
        msgs = errors_of("import typing\nimport os as typing\ndef f(x: typing.List[int]) -> None:\n    pass\n")
        self.assertIn("module `os`", msgs[0])

    def test_too_deep_is_rejected_not_crashing(self):
        msgs = errors_of("def f(x: %sint%s) -> None:\n    pass\n" % ("list[" * 150, "]" * 150))
        self.assertEqual(len(msgs), 1)
        self.assertIn("nested too deeply", msgs[0])
        msgs = errors_of("def f(x: %sint%s) -> None:\n    pass\n" % ("list[" * 300, "]" * 300))
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].startswith("Syntax error: too many nested parentheses"), msgs[0])

    def test_long_union_chain_is_fine(self):
        ann = " | ".join(["int", "str"] * 30)
        self.assertEqual(schema_of(ann), {"anyOf": [INT, STR]})


class Structure(unittest.TestCase):
    def test_reference_2_collects_every_error(self):
        self.assertEqual(errors_of("def my_tool(a, /, b, *args, **kwargs) -> int:\n  return 1 + 1"), [
            "The tool function must not have positional-only arguments", "The tool function must not have *args",
            "The tool function must not have **kwargs", "The tool function arguments must have type annotations"])

    def test_structural_and_type_errors_together(self):
        msgs = errors_of("def f(a: Foo, *args: int, b) -> int:\n    pass\n")
        self.assertEqual(msgs[:2], ["The tool function must not have *args",
                                    "The tool function arguments must have type annotations"])
        self.assertIn("`Foo`", msgs[2])

    def test_syntax_error(self):
        self.assertEqual(errors_of("def f(:\n"), ["Syntax error: invalid syntax on line 1"])

    def test_required_and_order(self):
        tool = tool_parse.parse("def f(z: int, a: int = 1, *, m: str, b: str = 'x') -> None:\n    pass\n")
        s = tool.schema()
        self.assertEqual(list(s["properties"]), ["z", "a", "m", "b"])
        self.assertEqual(s["required"], ["z", "m"])
        self.assertEqual(list(s), ["$schema", "type", "title", "properties", "required", "additionalProperties"])

    def test_indented_source_is_dedented(self):
        self.assertEqual(tool_parse.parse("    def f(a: int):\n        pass\n").name, "f")

    def test_result_document(self):
        doc = tool_parse.result_of("def f(a: int):\n    '''Adds.'''\n")
        self.assertEqual(doc["tool_name"], "f")
        self.assertEqual(doc["tool_description"], "Adds.")
        self.assertEqual(json.loads(doc["tool_input_schema_json"])["properties"], {"a": INT})
        self.assertEqual(tool_parse.result_of("x = 1"), {"error_messages": [tool_parse.MSG_SINGLE]})


class Docstrings(unittest.TestCase):
    def test_multi_line_params_and_return_anywhere(self):
        doc = ("Does things.\nIn two lines.\n:param a: first\n  continued here\n:return: the result\n"
               ":param b: second")
        self.assertEqual(tool_parse.parse_docstring(doc),
                         ("Does things.\nIn two lines.", "the result", {"a": "first\n  continued here", "b": "second"}))

    def test_return_first(self):
        self.assertEqual(tool_parse.parse_docstring(":return: r\n:param a: x"), ("", "r", {"a": "x"}))

    def test_returns_spelling_and_typed_param(self):
        self.assertEqual(tool_parse.parse_docstring("D\n:param int a: x\n:returns: r"), ("D", "r", {"a": "x"}))

    def test_unknown_fields_are_ignored(self):
        self.assertEqual(tool_parse.parse_docstring("D\n:raises ValueError: no\n:param a: x"), ("D", "", {"a": "x"}))

    def test_no_docstring(self):
        self.assertEqual(tool_parse.parse_docstring(""), ("", "", {}))
        tool = tool_parse.parse("def f(a: int):\n    pass\n")
        self.assertEqual(tool.description, "")
        self.assertNotIn("description", tool.schema()["properties"]["a"])

    def test_description_combinations(self):
        def desc(src):
            return tool_parse.parse(src).description
        self.assertEqual(desc("def f(a: int) -> int:\n    pass\n"), "Returns: int")
        self.assertEqual(desc("def f(a: int):\n    ':return: r'\n"), "Returns: r")
        self.assertEqual(desc("def f(a: int) -> list[int]:\n    '''Text.\n    :return: r'''\n"),
                         "Text.\n\nReturns: list[int] -- r")
        self.assertEqual(desc("def f(a: int):\n    '''\n    Text.\n\n    More.\n    '''\n"), "Text.\n\nMore.")

    def test_param_description_lands_in_schema(self):
        tool = tool_parse.parse("def f(a: int, b: int):\n    ''':param a: first\n    :param b:\n    '''\n")
        self.assertEqual(tool.schema()["properties"], {"a": {"type": "integer", "description": "first"},
                                                       "b": {"type": "integer"}})


if __name__ == "__main__":
    unittest.main()
