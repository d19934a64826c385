"""Custom tools (issue 3): POST /v1/parse-custom-tool reads a function into a
JSON Schema without running any of it; POST /v1/execute-custom-tool validates
the input, calls the function in a sandbox and returns its JSON result."""
import json
import sqlite3

import client
from support import DB_PATH, E2E

REF1_SOURCE = '''import typing
import typing as banana
from typing import Optional
from typing import Union as Onion

def my_tool(a: int, b: typing.Tuple[Optional[str], str] = ("hello", "world"), *, c: Onion[list[str], dict[str, banana.Optional[float]]]) -> int:
    """
    This tool is really really cool.
    Very toolish experience:
    - Toolable.
    - Toolastic.
    - Toolicious.
    :param a: something cool
    (very cool indeed)
    :param b: something nice
    :return: something great
    :param c: something awful
    """
    return 1 + 1
'''
REF1_DESCRIPTION = ("This tool is really really cool.\nVery toolish experience:\n- Toolable.\n- Toolastic.\n"
                    "- Toolicious.\n\nReturns: int -- something great")
REF1_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "title": "my_tool",
    "properties": {
        "a": {"type": "integer", "description": "something cool\n(very cool indeed)"},
        "b": {"type": "array", "minItems": 2,
              "items": [{"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": "string"}],
              "additionalItems": False, "description": "something nice"},
        "c": {"anyOf": [{"type": "array", "items": {"type": "string"}},
                        {"type": "object", "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "null"}]}}],
              "description": "something awful"}},
    "required": ["a", "c"], "additionalProperties": False}
REF2_SOURCE = "def my_tool(a, /, b, *args, **kwargs) -> int:\n  return 1 + 1"
REF2_ERRORS = {"The tool function must not have positional-only arguments",
               "The tool function must not have *args",
               "The tool function must not have **kwargs",
               "The tool function arguments must have type annotations"}
SINGLE = "The tool source code must only define a single function, optionally preceded by imports."

ADDING = "def adding_tool(a: int, b: int) -> int:\n    return a + b\n"


def parse(source):
    return client.raw("POST", "/v1/parse-custom-tool", json.dumps({"tool_source_code": source}))


def execute(source, tool_input, env=None, raw_input=False):
    body = {"tool_source_code": source,
            "tool_input_json": tool_input if raw_input else json.dumps(tool_input)}
    if env is not None:
        body["env"] = env
    return client.raw("POST", "/v1/execute-custom-tool", json.dumps(body), timeout=150)


def db_row(execution_id):
    with sqlite3.connect("file:%s?mode=ro" % DB_PATH, uri=True, timeout=10) as c:
        c.row_factory = sqlite3.Row
        rows = c.execute("SELECT * FROM executions WHERE id = ?", (execution_id,)).fetchall()
    return rows[0] if rows else None


class CustomToolParse(E2E):
    def parsed(self, source):
        r = parse(source)
        self.assertEqual(r.status, 200, r.body[:2000])
        self.assertEqual(set(r.json), {"tool_name", "tool_input_schema_json", "tool_description"}, r.json)
        return r.json, json.loads(r.json["tool_input_schema_json"])

    def errors(self, source):
        body = self.assertJsonError(parse(source), 400)
        self.assertEqual(set(body), {"error_messages"}, body)
        self.assertIsInstance(body["error_messages"], list, body)
        return body["error_messages"]

    def test_reference_request_1(self):
        js, schema = self.parsed(REF1_SOURCE)
        self.assertEqual(js["tool_name"], "my_tool")
        self.assertEqual(js["tool_description"], REF1_DESCRIPTION)
        self.assertEqual(schema, REF1_SCHEMA)
        # the string is what json.dumps makes of the schema, as in the original
        self.assertEqual(js["tool_input_schema_json"], json.dumps(REF1_SCHEMA))

    def test_reference_request_2(self):
        msgs = self.errors(REF2_SOURCE)
        self.assertEqual(len(msgs), 4, msgs)
        self.assertEqual(set(msgs), REF2_ERRORS)

    def test_syntax_error_names_message_and_line(self):
        self.assertEqual(self.errors("def f(a: int) -> int:\n    return (\n"),
                         ["Syntax error: '(' was never closed on line 2"])

    def test_not_a_single_function(self):
        for source in ("", "x = 1\n", "print('hi')\ndef f(a: int): pass\n",
                       "def f(a: int): pass\ndef g(a: int): pass\n", "class A: pass\n",
                       "async def f(a: int): pass\n", "def f(a: int): pass\nimport os\n"):
            with self.subTest(source=source):
                self.assertEqual(self.errors(source), [SINGLE])

    def test_annotation_from_another_module_is_named(self):
        msgs = self.errors("import os\nimport numpy as np\ndef f(a: np.ndarray, b: os.PathLike, c: int) -> int:\n"
                           "    return 1\n")
        self.assertEqual(len(msgs), 2, msgs)
        self.assertIn("`np.ndarray`", msgs[0])
        self.assertIn("`os.PathLike`", msgs[1])

    def test_call_and_unknown_name_in_annotation_are_named(self):
        msgs = self.errors("def f(a: open('/workspace/x', 'w'), b: Foo, c: typing.List[int]) -> int:\n    return 1\n")
        self.assertEqual(len(msgs), 3, msgs)
        for m, ann in zip(msgs, ("open('/workspace/x', 'w')", "Foo", "typing.List[int]")):
            self.assertTrue(m.startswith("Invalid type annotation `%s`" % ann), m)

    def test_aliases_and_std_types(self):
        source = ("import datetime as dt\nfrom pathlib import Path as P\nfrom typing import Literal as L, Any\n"
                  "def f(a: dt.datetime, b: dt.timedelta, c: P, d: L['x', 'y'], e: Any, f: set[int] | None = None)"
                  " -> None:\n    pass\n")
        js, schema = self.parsed(source)
        p = schema["properties"]
        self.assertEqual(p["a"], {"type": "string", "format": "date-time"})
        self.assertEqual(p["b"], {"type": "string", "format": "duration"})
        self.assertEqual(p["c"], {"type": "string", "format": "path"})
        self.assertEqual(p["d"], {"enum": ["x", "y"], "type": "string"})
        self.assertEqual(p["e"], {})
        self.assertEqual(p["f"], {"anyOf": [{"type": "array", "uniqueItems": True, "items": {"type": "integer"}},
                                            {"type": "null"}]})
        self.assertEqual(schema["required"], ["a", "b", "c", "d", "e"])
        self.assertEqual(js["tool_description"], "Returns: None")

    def test_no_docstring_no_return_gives_empty_description(self):
        js, schema = self.parsed("def f(a: int):\n    return a\n")
        self.assertEqual(js["tool_description"], "")
        self.assertEqual(schema["properties"], {"a": {"type": "integer"}})

    def assertNothingRan(self, source, expected_properties):
        r = parse(source)
        self.assertEqual(r.status, 200, r.body[:2000])
        self.assertEqual(json.loads(r.json["tool_input_schema_json"])["properties"], expected_properties)
        row = db_row(r.headers.get("x-execution-id"))
        self.assertIsNotNone(row, "parse not recorded")
        # our program wrote its one line and nothing else wrote anything
        ours = json.dumps({k: r.json[k] for k in ("tool_name", "tool_input_schema_json", "tool_description")})
        self.assertEqual(row["stdout_bytes"], len(ours) + 1)
        self.assertEqual(row["stderr_bytes"], 0)
        self.assertEqual(row["exit_code"], 0)

    def test_parse_runs_nothing_at_top_level_imports(self):
        # `import this` prints the Zen of Python to stdout when imported; `antigravity` opens a browser
        self.assertNothingRan("import this\nimport antigravity\ndef f(a: int) -> int:\n    return a\n",
                              {"a": {"type": "integer"}})

    def test_parse_runs_nothing_in_a_decorator(self):
        source = ("@(lambda f: (print('decorated'), open('/workspace/pwned', 'w'), __import__('os')._exit(7)))\n"
                  "def f(a: int) -> int:\n    return a\n")
        self.assertNothingRan(source, {"a": {"type": "integer"}})

    def test_parse_runs_nothing_in_a_default_value(self):
        source = ("def f(a: int = print('default') or __import__('os')._exit(7), "
                  "*, b: str = __import__('sys').stderr.write('x')) -> int:\n    return a\n")
        self.assertNothingRan(source, {"a": {"type": "integer"}, "b": {"type": "string"}})

    def test_parse_runs_nothing_in_an_annotation(self):
        msgs = self.errors("def f(a: __import__('os')._exit(7)) -> int:\n    return 1\n")
        self.assertEqual(len(msgs), 1, msgs)
        self.assertIn("`__import__('os')._exit(7)`", msgs[0])

    def test_parse_is_recorded_with_its_kind(self):
        r = parse(ADDING)
        self.assertEqual(r.status, 200, r.body)
        row = db_row(r.headers.get("x-execution-id"))
        self.assertIsNotNone(row)
        self.assertEqual(row["kind"], "parse-custom-tool")
        self.assertEqual(row["source_code"], ADDING)
        self.assertEqual(row["status"], "ok")

    def test_bad_bodies_are_422(self):
        for body in ("{", "[]", json.dumps({}), json.dumps({"tool_source_code": 5}),
                     json.dumps({"tool_source_code": "x", "env": {}}),
                     json.dumps({"tool_source_code": "x", "tool_input_json": "{}"})):
            with self.subTest(body=body):
                self.assertValidationError(client.raw("POST", "/v1/parse-custom-tool", body))

    def test_get_is_405(self):
        r = client.raw("GET", "/v1/parse-custom-tool")
        self.assertJsonError(r, 405)


class CustomToolExecute(E2E):
    def ok(self, source, tool_input, env=None):
        r = execute(source, tool_input, env)
        self.assertEqual(r.status, 200, r.body[:3000])
        self.assertEqual(set(r.json), {"tool_output_json"}, r.json)
        return json.loads(r.json["tool_output_json"])

    def bad(self, source, tool_input, raw_input=False):
        body = self.assertJsonError(execute(source, tool_input, raw_input=raw_input), 400)
        self.assertEqual(set(body), {"stderr"}, body)
        return body["stderr"]

    def test_adding_tool(self):
        r = execute(ADDING, {"a": 1, "b": 2})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json, {"tool_output_json": "3"})

    def test_datetime_input_is_converted(self):
        source = "import datetime\ndef date_tool(a: datetime.datetime) -> str:\n    return f'The year is {a.year}'\n"
        self.assertEqual(self.ok(source, {"a": "2000-01-01T00:00:00"}), "The year is 2000")

    def test_conversions_and_serialisation(self):
        source = ("import datetime, pathlib\nfrom typing import Tuple, Optional, Literal\n"
                  "def t(a: Tuple[int, str], b: set[int], c: dict[int, float], d: Optional[datetime.date],"
                  " e: pathlib.Path, f: Literal['x', 'y'], g: float, h: bool = False) -> dict:\n"
                  "    return {'a': a, 'types': [type(a).__name__, type(b).__name__, type(next(iter(c))).__name__,"
                  " type(d).__name__, type(e).__name__, type(g).__name__],"
                  " 'b': sorted(b), 'd': d, 'e': e, 'f': f, 'g': g, 'h': h, 'when': datetime.datetime(2000, 1, 2, 3, 4, 5),"
                  " 'set': {1}}\n")
        out = self.ok(source, {"a": [1, "x"], "b": [3, 1, 3], "c": {"1": 2}, "d": "2024-02-29",
                               "e": "/workspace/x", "f": "y", "g": 1})
        self.assertEqual(out, {"a": [1, "x"], "types": ["tuple", "set", "int", "date", "PosixPath", "float"],
                               "b": [1, 3], "d": "2024-02-29", "e": "/workspace/x", "f": "y", "g": 1.0,
                               "h": False, "when": "2000-01-02T03:04:05", "set": [1]})

    def test_division_by_zero_is_400_with_traceback(self):
        source = "def div(a: int, b: int) -> float:\n    return a / b\n"
        stderr = self.bad(source, {"a": 0, "b": 0})
        self.assertIn("division by zero", stderr)
        self.assertIn("ZeroDivisionError", stderr)
        self.assertNotIn("tool_execute", stderr)  # our frames are not shown

    def test_env_reaches_the_tool(self):
        source = "import os\ndef hello(greeting: str) -> str:\n    return greeting + ', ' + os.environ['MY_NAME']\n"
        self.assertEqual(self.ok(source, {"greeting": "Hello"}, env={"MY_NAME": "Bee"}), "Hello, Bee")

    def test_prints_do_not_reach_the_result(self):
        source = ("import os, subprocess, sys\ndef noisy(a: int) -> int:\n"
                  "    print('print'); sys.stdout.write('sys.stdout'); sys.__stdout__.write('dunder')\n"
                  "    sys.stdout.flush(); os.write(1, b'fd 1'); subprocess.run(['echo', 'child'])\n"
                  "    return a\n")
        r = execute(source, {"a": 5})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json, {"tool_output_json": "5"})

    def test_wrong_type_names_the_field(self):
        stderr = self.bad(ADDING, {"a": 1, "b": "two"})
        self.assertIn("\nb\n", stderr)
        self.assertIn("valid integer", stderr)

    def test_missing_and_unknown_fields_are_named(self):
        stderr = self.bad(ADDING, {"a": 1, "zzz": 3})
        self.assertIn("\nb\n  Field required", stderr)
        self.assertIn("\nzzz\n  Extra inputs are not permitted", stderr)

    def test_invalid_input_json_is_400(self):
        for text in ("{", "not json", "[1, 2]", "3"):
            with self.subTest(tool_input_json=text):
                stderr = self.bad(ADDING, text, raw_input=True)
                self.assertIn("validation error for adding_tool", stderr)

    def test_invalid_tool_source_is_400(self):
        stderr = self.bad(REF2_SOURCE, {})
        self.assertIn("must not have *args", stderr)

    def test_unserialisable_result_is_400(self):
        stderr = self.bad("def f(a: int) -> object:\n    return object()\n", {"a": 1})
        self.assertIn("not JSON serializable", stderr)

    def test_tool_exiting_early_is_400(self):
        stderr = self.bad("import os\ndef f(a: int) -> int:\n    os._exit(0)\n", {"a": 1})
        self.assertIn("without a result", stderr)

    def test_execute_is_recorded_with_its_kind(self):
        r = execute(ADDING, {"a": 1, "b": 2}, env={"SOME_NAME": "v"})
        self.assertEqual(r.status, 200, r.body)
        row = db_row(r.headers.get("x-execution-id"))
        self.assertIsNotNone(row)
        self.assertEqual(row["kind"], "execute-custom-tool")
        self.assertEqual(row["source_code"], ADDING)
        self.assertEqual(json.loads(row["env_names"]), ["SOME_NAME"])

    def test_bad_bodies_are_422(self):
        cases = [{"tool_source_code": ADDING},
                 {"tool_input_json": "{}"},
                 {"tool_source_code": ADDING, "tool_input_json": {"a": 1}},
                 {"tool_source_code": ADDING, "tool_input_json": "{}", "env": {"LD_PRELOAD": "x"}},
                 {"tool_source_code": ADDING, "tool_input_json": "{}", "env": {"A": 1}},
                 {"tool_source_code": ADDING, "tool_input_json": "{}", "extra": 1}]
        for body in cases:
            with self.subTest(body=body):
                self.assertValidationError(client.raw("POST", "/v1/execute-custom-tool", json.dumps(body)))
