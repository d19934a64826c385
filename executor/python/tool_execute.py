# tool_execute: runs a custom tool inside the sandbox: checks the source the way
# tool_parse does, validates and converts the input JSON per the annotations,
# calls the function and writes its JSON-serialised result to the saved stdout,
# which the tool cannot reach through print(), sys.stdout or fd 1.
import datetime
import json
import math
import os
import pathlib
import re
import sys

import tool_parse


class Invalid(Exception):
    pass


# ---- input conversion (pydantic-like: strict first, then lax, per union) ----

def describe(t):
    kind = t[0]
    if kind == "union":
        return " or ".join(describe(m) for m in t[1])
    if kind == "literal":
        vals = [repr(v) for _, v in t[1]]
        return vals[0] if len(vals) == 1 else ", ".join(vals[:-1]) + " or " + vals[-1]
    if kind == "tuple":
        return "an array of %d items" % len(t[1])
    return {
        "int": "a valid integer", "float": "a valid number", "str": "a valid string",
        "bool": "a valid boolean", "none": "null", "list": "a valid array", "tuplevar": "a valid array",
        "set": "a valid array", "frozenset": "a valid array", "dict": "a valid object",
        "datetime": "a valid datetime (ISO 8601)", "date": "a valid date (ISO 8601)",
        "time": "a valid time (ISO 8601)", "timedelta": "a valid duration (ISO 8601 or seconds)",
        "path": "a valid path string",
    }.get(kind, kind)


DURATION_RE = re.compile(r"([-+])?P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                         r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def parse_duration(s):
    m = DURATION_RE.fullmatch(s.strip())
    if not m or not any(m.groups()[1:]) or s.strip().endswith("T"):
        raise ValueError("not an ISO 8601 duration")
    w, d, h, mi, sec = (float(x) if x else 0.0 for x in m.groups()[1:])
    td = datetime.timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=sec)
    return -td if m.group(1) == "-" else td


def is_number(v):
    return type(v) in (int, float)


def convert(t, v, loc, errors, strict):
    """v (a value decoded from JSON) converted to t; problems go to errors as
    (loc, message) and the return value is then meaningless."""
    kind = t[0]
    before = len(errors)

    def bad():
        errors.append((loc, "Input should be %s" % describe(t), v))

    if kind == "any":
        return v
    if kind == "none":
        return None if v is None else bad()
    if kind == "bool":
        return v if type(v) is bool else bad()
    if kind == "int":
        if type(v) is int:
            return v
        if not strict and type(v) is float and math.isfinite(v) and v.is_integer():
            return int(v)
        return bad()
    if kind == "float":  # strict (the first pass of a union) takes only floats
        return float(v) if type(v) is float or (type(v) is int and not strict) else bad()
    if kind == "str":
        return v if type(v) is str else bad()
    if kind in ("datetime", "date", "time", "timedelta", "path"):
        try:
            if kind == "timedelta" and is_number(v) and not strict:
                return datetime.timedelta(seconds=v)
            if kind == "datetime" and is_number(v) and not strict:
                return datetime.datetime.fromtimestamp(v, datetime.timezone.utc)
            if type(v) is not str:
                return bad()
            if kind == "path":
                return getattr(pathlib, t[1])(v)
            if kind == "timedelta":
                return parse_duration(v)
            return getattr(datetime, kind).fromisoformat(v)
        except (ValueError, OverflowError, OSError):
            return bad()
    if kind == "literal":
        for tn, lit in t[1]:
            if type(v).__name__ == tn and v == lit:
                return lit
        return bad()
    if kind in ("list", "set", "frozenset", "tuplevar", "tuple"):
        if type(v) is not list:
            return bad()
        if kind == "tuple":
            if len(v) != len(t[1]):
                errors.append((loc, "Input should be %s, not %d" % (describe(t), len(v)), v))
                return None
            return tuple(convert(it, x, loc + (i,), errors, strict) for i, (it, x) in enumerate(zip(t[1], v)))
        items = [convert(t[1], x, loc + (i,), errors, strict) for i, x in enumerate(v)]
        if len(errors) != before:
            return None
        if kind == "list":
            return items
        if kind == "tuplevar":
            return tuple(items)
        try:
            return set(items) if kind == "set" else frozenset(items)
        except TypeError:
            errors.append((loc, "Input should be an array of hashable items", v))
            return None
    if kind == "dict":
        if type(v) is not dict:
            return bad()
        out = {}
        for k, x in v.items():
            key = convert_key(t[1], k, loc + (k,), errors)
            val = convert(t[2], x, loc + (k,), errors, strict)
            if len(errors) == before:
                try:
                    out[key] = val
                except TypeError:
                    errors.append((loc + (k,), "Key is not hashable", k))
        return out
    if kind == "union":
        others = [m for m in t[1] if m != tool_parse.NONE]
        if len(others) == 1 and v is not None:  # Optional[X]: X's own errors say more
            return convert(others[0], v, loc, errors, strict)
        for mode in ((True, False) if not strict else (True,)):
            for m in t[1]:
                scratch = []
                r = convert(m, v, loc, scratch, mode)
                if not scratch:
                    return r
        return bad()
    raise ValueError("unknown type kind %r" % (kind,))


def convert_key(t, k, loc, errors):
    """An object key (always a string in JSON) converted to t."""
    kind = t[0]
    if kind in ("int", "float"):
        try:
            return convert(t, json.loads(k) if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", k) else k,
                           loc, errors, False)
        except ValueError:
            errors.append((loc, "Input should be %s" % describe(t), k))
            return None
    if kind == "bool" and k in ("true", "false"):
        return k == "true"
    if kind == "union":
        for m in t[1]:
            scratch = []
            r = convert_key(m, k, loc, scratch)
            if not scratch:
                return r
        errors.append((loc, "Input should be %s" % describe(t), k))
        return None
    if kind == "literal":
        for tn, lit in t[1]:
            if str(lit) == k if tn in ("int", "float") else (tn == "str" and lit == k):
                return lit
    return convert(t, k, loc, errors, False)


def short_repr(v):
    r = repr(v)
    return r if len(r) <= 100 else r[:97] + "..."


def format_errors(name, errors):
    lines = ["%d validation error%s for %s" % (len(errors), "" if len(errors) == 1 else "s", name)]
    for loc, msg, value in errors:
        lines.append(".".join(str(x) for x in loc) or "input")
        if value is Invalid:
            lines.append("  " + msg)
        else:
            lines.append("  %s [input_value=%s, input_type=%s]" % (msg, short_repr(value), type(value).__name__))
    return "\n".join(lines)


def arguments(tool, input_json):
    """The keyword arguments for the tool, or Invalid with the message."""
    errors = []
    try:
        data = json.loads(input_json)
    except (ValueError, RecursionError) as e:
        raise Invalid(format_errors(tool.name, [((), "Invalid JSON: %s" % e, Invalid)])) from None
    if type(data) is not dict:
        raise Invalid(format_errors(tool.name, [((), "Input should be a JSON object", data)]))
    kwargs = {}
    names = {p.name for p in tool.params}
    for p in tool.params:
        if p.name in data:
            value = convert(p.type, data[p.name], (p.name,), errors, False)
            kwargs[p.name] = value
        elif p.required:
            errors.append(((p.name,), "Field required", Invalid))
    for k in data:
        if k not in names:
            errors.append(((k,), "Extra inputs are not permitted", data[k]))
    if errors:
        raise Invalid(format_errors(tool.name, errors))
    return kwargs


# ---- output -------------------------------------------------------------------

def iso_duration(td):
    sign = "-" if td < datetime.timedelta(0) else ""
    td = abs(td)
    secs = td.seconds + td.microseconds / 1e6
    s = ("%f" % secs).rstrip("0").rstrip(".") if td.microseconds else str(td.seconds)
    return "%sP%dDT%sS" % (sign, td.days, s)


def jsonable(v, seen=None):
    """v as plain JSON values: datetimes as ISO strings, tuples and sets as
    arrays, paths as strings. TypeError for anything else."""
    if v is None or type(v) in (bool, int, float, str):
        return v
    if isinstance(v, (bool, int, float, str)):
        return json.loads(json.dumps(v))
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, datetime.timedelta):
        return iso_duration(v)
    if isinstance(v, pathlib.PurePath):
        return str(v)
    seen = seen if seen is not None else set()
    if id(v) in seen:
        raise ValueError("Circular reference detected")
    if isinstance(v, (list, tuple, set, frozenset, dict)):
        seen.add(id(v))
        try:
            if isinstance(v, dict):
                return {jsonable_key(k): jsonable(x, seen) for k, x in v.items()}
            return [jsonable(x, seen) for x in v]
        finally:
            seen.discard(id(v))
    raise TypeError("Object of type %s is not JSON serializable" % type(v).__name__)


def jsonable_key(k):
    if k is None or isinstance(k, (bool, int, float, str)):
        return k
    if isinstance(k, (datetime.date, datetime.time, datetime.timedelta, pathlib.PurePath)):
        return jsonable(k)
    raise TypeError("keys must be str, int, float, bool or None, not %s" % type(k).__name__)


# ---- running ------------------------------------------------------------------

def fail(message):
    sys.stderr.write(message.rstrip("\n") + "\n")
    raise SystemExit(1)


def report(exc):
    """Prints exc's traceback without this module's frames."""
    import traceback
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def main(tool_dir):
    # The result channel: the stdout the runner gave us. From here on fd 1 (and
    # so print, sys.stdout, sys.__stdout__ and child processes) is stderr.
    sys.stdout.flush()
    result_fd = os.dup(1)  # not inheritable: children never get it
    os.dup2(2, 1)
    source = tool_parse.read_text(os.path.join(tool_dir, "source.py"))
    input_json = tool_parse.read_text(os.path.join(tool_dir, "input.json"))
    try:
        tool = tool_parse.parse(source)
    except tool_parse.ToolError as e:
        fail("The tool is not valid:\n" + "\n".join(e.messages))
    except RecursionError:
        fail("The tool is not valid: it is nested too deeply")
    try:
        kwargs = arguments(tool, input_json)
    except Invalid as e:
        fail(str(e))

    import linecache
    import types
    filename = "<string>"
    linecache.cache[filename] = (len(tool.source), None, tool.source.splitlines(True), filename)
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    try:
        exec(compile(tool.source, filename, "exec", dont_inherit=True), module.__dict__)
    except BaseException as e:  # the imports, a decorator or a default value raised
        report(e)
        raise SystemExit(1) from None
    fn = module.__dict__.get(tool.name)
    if not callable(fn):
        fail("The tool function %s is not defined after running the source" % tool.name)
    try:
        value = fn(**kwargs)
    except BaseException as e:  # SystemExit too: the tool gave no result
        report(e)
        raise SystemExit(1) from None
    try:
        text = json.dumps(jsonable(value))
    except (TypeError, ValueError, RecursionError) as e:
        fail("The tool's result cannot be serialised to JSON: %s" % e)
    tool_parse.write_all(result_fd, json.dumps({"tool_output_json": text}).encode("ascii") + b"\n")
    os.close(result_fd)
