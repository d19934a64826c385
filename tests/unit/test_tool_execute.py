"""Unit tests for executor/python/tool_execute.py: validating and converting the
input JSON per the annotations, and serialising results. Run by
tests/unit/run.sh with python3 -m unittest."""
import datetime
import os
import pathlib
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "executor", "python"))
import tool_execute  # noqa: E402
import tool_parse  # noqa: E402


def args(signature, input_json, imports="import typing, datetime, pathlib\n"):
    tool = tool_parse.parse("%sdef f(%s) -> None:\n    pass\n" % (imports, signature))
    return tool_execute.arguments(tool, input_json)


class Conversion(unittest.TestCase):
    def invalid(self, signature, input_json):
        with self.assertRaises(tool_execute.Invalid) as cm:
            args(signature, input_json)
        return str(cm.exception)

    def test_scalars(self):
        self.assertEqual(args("a: int, b: float, c: str, d: bool, e: None", '{"a": 1, "b": 2, "c": "x", "d": true, '
                              '"e": null}'), {"a": 1, "b": 2.0, "c": "x", "d": True, "e": None})
        self.assertIs(type(args("b: float", '{"b": 2}')["b"]), float)
        self.assertEqual(args("a: int", '{"a": 3.0}'), {"a": 3})

    def test_scalar_type_errors(self):
        for sig, value in (("a: int", '"1"'), ("a: int", "1.5"), ("a: int", "true"), ("a: float", '"1"'),
                           ("a: bool", "1"), ("a: str", "1"), ("a: None", "0")):
            with self.subTest(sig=sig, value=value):
                msg = self.invalid(sig, '{"a": %s}' % value)
                self.assertIn("1 validation error for f\na\n  Input should be", msg)

    def test_containers(self):
        got = args("a: list[int], b: typing.Tuple[int, str], c: typing.Tuple[int, ...], d: set[int], "
                   "e: frozenset[str], f: dict[int, list[float]], g: typing.Sequence[str]",
                   '{"a": [1], "b": [1, "x"], "c": [1, 2], "d": [1, 1], "e": ["x"], "f": {"1": [1]}, "g": []}')
        self.assertEqual(got, {"a": [1], "b": (1, "x"), "c": (1, 2), "d": {1}, "e": frozenset({"x"}),
                               "f": {1: [1.0]}, "g": []})

    def test_container_errors_name_the_item(self):
        msg = self.invalid("a: list[int], b: typing.Tuple[int, str]", '{"a": [1, "x"], "b": [1]}')
        self.assertIn("\na.1\n", msg)
        self.assertIn("\nb\n  Input should be an array of 2 items, not 1", msg)
        self.assertIn("\nc.k\n", self.invalid("c: dict[str, int]", '{"c": {"k": "v"}}'))
        self.assertIn("\nc.x\n", self.invalid("c: dict[int, int]", '{"c": {"x": 1}}'))

    def test_unions_prefer_exact_types(self):
        self.assertEqual(args("a: typing.Union[float, int]", '{"a": 1}'), {"a": 1})
        self.assertIs(type(args("a: typing.Union[float, int]", '{"a": 1}')["a"]), int)
        self.assertEqual(args("a: typing.Union[int, str]", '{"a": "1"}'), {"a": "1"})
        self.assertEqual(args("a: typing.Optional[int]", '{"a": null}'), {"a": None})
        self.assertEqual(args("a: int | list[int]", '{"a": [2]}'), {"a": [2]})
        self.assertIn("valid integer or a valid string", self.invalid("a: typing.Union[int, str]", '{"a": []}'))
        self.assertIn("\na.0\n", self.invalid("a: typing.Optional[list[int]]", '{"a": ["x"]}'))

    def test_literals(self):
        self.assertEqual(args("a: typing.Literal['x', 1]", '{"a": 1}'), {"a": 1})
        self.assertIn("Input should be 'x' or 1", self.invalid("a: typing.Literal['x', 1]", '{"a": true}'))

    def test_dates_and_paths(self):
        got = args("a: datetime.datetime, b: datetime.date, c: datetime.time, d: datetime.timedelta, "
                   "e: datetime.timedelta, f: pathlib.Path",
                   '{"a": "2000-01-01T00:00:00Z", "b": "2024-02-29", "c": "12:30", "d": "P1DT2H", "e": 90, '
                   '"f": "/tmp/x"}')
        self.assertEqual(got["a"], datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
        self.assertEqual(got["b"], datetime.date(2024, 2, 29))
        self.assertEqual(got["c"], datetime.time(12, 30))
        self.assertEqual(got["d"], datetime.timedelta(days=1, hours=2))
        self.assertEqual(got["e"], datetime.timedelta(seconds=90))
        self.assertEqual(got["f"], pathlib.Path("/tmp/x"))
        self.assertIn("valid date", self.invalid("b: datetime.date", '{"b": "2024-02-30"}'))
        self.assertIn("valid duration", self.invalid("d: datetime.timedelta", '{"d": "P"}'))

    def test_any_keeps_the_value(self):
        self.assertEqual(args("a: typing.Any", '{"a": {"x": [1, null]}}'), {"a": {"x": [1, None]}})

    def test_missing_unknown_and_defaults(self):
        self.assertEqual(args("a: int, b: int = 2", '{"a": 1}'), {"a": 1})
        msg = self.invalid("a: int, b: int = 2", '{"z": 1}')
        self.assertIn("2 validation errors for f", msg)
        self.assertIn("\na\n  Field required", msg)
        self.assertIn("\nz\n  Extra inputs are not permitted", msg)

    def test_bad_json(self):
        self.assertIn("Invalid JSON", self.invalid("a: int", "{"))
        self.assertIn("Input should be a JSON object", self.invalid("a: int", "[1]"))
        self.assertIn("Invalid JSON", self.invalid("a: int", "[" * 100000))


class Serialisation(unittest.TestCase):
    def test_values(self):
        v = {"t": (1, 2), "s": {3}, "dt": datetime.datetime(2000, 1, 2, 3, 4, 5), "d": datetime.date(2000, 1, 2),
             "td": datetime.timedelta(days=1, seconds=3.5), "p": pathlib.PurePosixPath("/a"), 1: None}
        self.assertEqual(tool_execute.jsonable(v), {"t": [1, 2], "s": [3], "dt": "2000-01-02T03:04:05",
                                                    "d": "2000-01-02", "td": "P1DT3.5S", "p": "/a", 1: None})

    def test_unserialisable_and_circular(self):
        with self.assertRaises(TypeError):
            tool_execute.jsonable(object())
        loop = []
        loop.append(loop)
        with self.assertRaises(ValueError):
            tool_execute.jsonable(loop)


if __name__ == "__main__":
    unittest.main()
