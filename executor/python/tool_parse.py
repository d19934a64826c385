# tool_parse: reads a custom tool (one function, optionally preceded by imports)
# into a name, a draft-07 JSON Schema of its arguments and a description, from the
# syntax tree alone: nothing in the source is imported, evaluated or run.
import ast
import json
import os
import re
import textwrap

ALLOWED_MODULES = ("typing", "pathlib", "datetime")
MAX_DEPTH = 100

MSG_SINGLE = "The tool source code must only define a single function, optionally preceded by imports."
MSG_POSONLY = "The tool function must not have positional-only arguments"
MSG_VARARG = "The tool function must not have *args"
MSG_KWARG = "The tool function must not have **kwargs"
MSG_ANNOT = "The tool function arguments must have type annotations"

# The names each allowed module offers for annotations (for `from m import *`).
MODULE_NAMES = {
    "typing": ("Any", "Optional", "Union", "Literal", "List", "Dict", "Set", "FrozenSet",
               "Tuple", "Sequence", "MutableSequence", "Mapping", "MutableMapping", "Text"),
    "datetime": ("datetime", "date", "time", "timedelta"),
    "pathlib": ("Path", "PurePath", "PosixPath", "PurePosixPath"),
}
BUILTINS = ("int", "float", "str", "bool", "list", "dict", "set", "frozenset", "tuple")

# Type trees: tuples whose first item is the kind.
INT, FLOAT, STR, BOOL, NONE, ANY = ("int",), ("float",), ("str",), ("bool",), ("none",), ("any",)
DATETIME, DATE, TIME, TIMEDELTA = ("datetime",), ("date",), ("time",), ("timedelta",)

SIMPLE = {
    "builtins.int": INT, "builtins.float": FLOAT, "builtins.str": STR, "builtins.bool": BOOL,
    "typing.Any": ANY, "typing.Text": STR,
    "datetime.datetime": DATETIME, "datetime.date": DATE, "datetime.time": TIME,
    "datetime.timedelta": TIMEDELTA,
    "pathlib.Path": ("path", "Path"), "pathlib.PurePath": ("path", "PurePath"),
    "pathlib.PosixPath": ("path", "PosixPath"), "pathlib.PurePosixPath": ("path", "PurePosixPath"),
}
# generic name -> (kind, number of parameters)
GENERIC = {
    "builtins.list": ("list", 1), "typing.List": ("list", 1), "typing.Sequence": ("list", 1),
    "typing.MutableSequence": ("list", 1),
    "builtins.set": ("set", 1), "typing.Set": ("set", 1),
    "builtins.frozenset": ("frozenset", 1), "typing.FrozenSet": ("frozenset", 1),
    "builtins.dict": ("dict", 2), "typing.Dict": ("dict", 2), "typing.Mapping": ("dict", 2),
    "typing.MutableMapping": ("dict", 2),
    "builtins.tuple": ("tuple", None), "typing.Tuple": ("tuple", None),
    "typing.Optional": ("optional", 1), "typing.Union": ("union", None),
    "typing.Literal": ("literal", None),
}


class ToolError(Exception):
    """The source is not a valid tool; messages lists every problem found."""

    def __init__(self, messages):
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class AnnotationError(Exception):
    pass


class Param:
    def __init__(self, name, type_, required, description):
        self.name, self.type, self.required, self.description = name, type_, required, description


class Tool:
    def __init__(self, name, params, description, source, function_def):
        self.name, self.params, self.description = name, params, description
        self.source, self.function_def = source, function_def

    def schema(self):
        props = {}
        for p in self.params:
            prop = json_schema(p.type)
            if p.description:
                prop["description"] = p.description
            props[p.name] = prop
        return {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "title": self.name,
            "properties": props,
            "required": [p.name for p in self.params if p.required],
            "additionalProperties": False,
        }


def unparse(node, limit=200):
    try:
        s = ast.unparse(node)
    except (RecursionError, ValueError, MemoryError):
        s = "..."
    return s if len(s) <= limit else s[:limit] + "..."


# ---- docstrings -----------------------------------------------------------

PARAM_RE = re.compile(r"param\s+(?:[^\s:]+\s+)?([A-Za-z_]\w*)\s*:(.*)", re.DOTALL)
RETURN_RE = re.compile(r"returns?\s*:(.*)", re.DOTALL)


def parse_docstring(doc):
    """(description, return description, {param: description}) of a reST
    docstring (already cleaned, as ast.get_docstring returns it). A line whose
    first non-blank character is ':' starts a field; a field runs until the next."""
    chunks, current = [], []
    for line in (doc or "").split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(":"):
            chunks.append("\n".join(current).strip())
            current = [stripped[1:]]
        else:
            current.append(line)
    chunks.append("\n".join(current).strip())
    description, returns, params = chunks[0], "", {}
    for chunk in chunks[1:]:
        m = PARAM_RE.match(chunk)
        if m:
            params[m.group(1)] = m.group(2).strip()
            continue
        m = RETURN_RE.match(chunk)
        if m:
            returns = m.group(1).strip()
    return description, returns, params


def full_description(doc, returns_node):
    description, returns, params = parse_docstring(doc)
    return_type = unparse(returns_node, 10000) if returns_node is not None else ""
    ret = " -- ".join(s for s in (return_type, returns) if s)
    return "\n\n".join(s for s in (description, "Returns: " + ret if ret else "") if s), params


# ---- annotations ----------------------------------------------------------

def namespace(imports):
    """What each name means in annotations: ("module", m), ("sym", "m.name") or
    ("bad", why). Later imports rebind names, as they would at run time."""
    ns = {name: ("sym", "builtins." + name) for name in BUILTINS}
    for node in imports:
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                bound = a.asname or top
                mod = a.name if a.asname else top
                if mod in ALLOWED_MODULES:
                    ns[bound] = ("module", mod)
                else:
                    ns[bound] = ("bad", "module `%s`" % a.name)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module if not node.level else None
            for a in node.names:
                if a.name == "*":
                    for name in MODULE_NAMES.get(mod, ()):
                        ns[name] = ("sym", "%s.%s" % (mod, name))
                elif mod in ALLOWED_MODULES:
                    ns[a.asname or a.name] = ("sym", "%s.%s" % (mod, a.name))
                else:
                    ns[a.asname or a.name] = ("bad", "module `%s`" % ("." * node.level + (node.module or "")))
    return ns


def symbol(node, ns):
    if isinstance(node, ast.Name):
        s = ns.get(node.id)
        if s is None:
            raise AnnotationError("`%s` is not defined here (annotations may use builtins and what is "
                                  "imported from typing, pathlib and datetime)" % node.id)
        if s[0] == "bad":
            raise AnnotationError("`%s` comes from %s; only typing, pathlib and datetime may be used"
                                  % (node.id, s[1]))
        return s
    if isinstance(node, ast.Attribute):
        base = symbol(node.value, ns)
        if base[0] != "module":
            raise AnnotationError("`%s` is not a name from typing, pathlib or datetime" % unparse(node))
        return ("sym", "%s.%s" % (base[1], node.attr))
    raise AnnotationError("`%s` is not a type" % unparse(node))


def qualname(node, ns):
    s = symbol(node, ns)
    if s[0] == "module":
        raise AnnotationError("`%s` is a module, not a type" % unparse(node))
    return s[1]


def flatten_union(members):
    out = []
    for m in members:
        for x in (m[1] if m[0] == "union" else (m,)):
            if x not in out:
                out.append(x)
    return out[0] if len(out) == 1 else ("union", tuple(out))


def literal_values(nodes, ns, depth):
    values = []
    for n in nodes:
        if isinstance(n, ast.Constant) and (n.value is None or type(n.value) in (str, int, float, bool)):
            v = (type(n.value).__name__, n.value)
        elif (isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub) and isinstance(n.operand, ast.Constant)
              and type(n.operand.value) in (int, float)):
            v = (type(n.operand.value).__name__, -n.operand.value)
        elif isinstance(n, ast.Subscript):
            inner = resolve(n, ns, depth + 1)
            if inner[0] != "literal":
                raise AnnotationError("`%s` is not a literal value" % unparse(n))
            for x in inner[1]:
                if x not in values:
                    values.append(x)
            continue
        else:
            raise AnnotationError("`%s` is not a literal value" % unparse(n))
        if v not in values:
            values.append(v)
    return ("literal", tuple(values))


def resolve(node, ns, depth=0):
    """The type tree of an annotation. Raises AnnotationError."""
    if depth > MAX_DEPTH:
        raise AnnotationError("it is nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is None:
            return NONE
        if isinstance(node.value, str):  # a forward reference: the same rules inside
            try:
                inner = ast.parse(node.value.strip(), mode="eval").body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                raise AnnotationError("`%s` is not a type expression" % node.value[:200]) from None
            return resolve(inner, ns, depth + 1)
        raise AnnotationError("`%s` is not a type" % unparse(node))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return flatten_union([resolve(node.left, ns, depth + 1), resolve(node.right, ns, depth + 1)])
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = qualname(node, ns)
        if name in SIMPLE:
            return SIMPLE[name]
        if name in GENERIC:
            kind = GENERIC[name][0]
            if kind in ("list", "set", "frozenset"):
                return (kind, ANY)
            if kind == "dict":
                return ("dict", ANY, ANY)
            if kind == "tuple":
                return ("tuplevar", ANY)
            raise AnnotationError("`%s` needs parameters" % name)
        raise AnnotationError("`%s` is not supported" % name)
    if isinstance(node, ast.Subscript):
        name = qualname(node.value, ns)
        if name not in GENERIC:
            raise AnnotationError("`%s` takes no parameters" % name
                                  if name in SIMPLE else "`%s` is not supported" % name)
        kind, n = GENERIC[name]
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if n is not None and len(args) != n:
            raise AnnotationError("`%s` takes %d parameter%s, not %d" % (name, n, "s" if n > 1 else "",
                                                                       len(args)))
        if kind == "literal":
            if not args:
                raise AnnotationError("`%s` needs values" % name)
            return literal_values(args, ns, depth)
        if kind == "tuple":
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
                return ("tuplevar", resolve(args[0], ns, depth + 1))
            return ("tuple", tuple(resolve(a, ns, depth + 1) for a in args))
        if kind == "union" and not args:
            raise AnnotationError("`%s` needs parameters" % name)
        types = [resolve(a, ns, depth + 1) for a in args]
        if kind in ("list", "set", "frozenset"):
            return (kind, types[0])
        if kind == "dict":
            return ("dict", types[0], types[1])
        if kind == "optional":
            return flatten_union([types[0], NONE])
        return flatten_union(types)
    raise AnnotationError("`%s` is not a type expression" % unparse(node))


# ---- JSON Schema (pydantic v2's output, tuples in draft-07 form) ------------

def literal_schema(values):
    vals = [v for _, v in values]
    out = {"const": vals[0]} if len(vals) == 1 else {"enum": vals}
    types = {t for t, _ in values}
    names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "NoneType": "null"}
    if len(types) == 1 and next(iter(types)) in names:
        out["type"] = names[next(iter(types))]
    return out


def json_schema(t):
    kind = t[0]
    if kind in ("int", "float", "str", "bool", "none"):
        return {"type": {"int": "integer", "float": "number", "str": "string", "bool": "boolean",
                         "none": "null"}[kind]}
    if kind == "any":
        return {}
    if kind in ("datetime", "date", "time", "timedelta"):
        return {"type": "string", "format": {"datetime": "date-time", "timedelta": "duration"}.get(kind, kind)}
    if kind == "path":
        return {"type": "string", "format": "path"}
    if kind == "list":
        return {"type": "array", "items": json_schema(t[1])}
    if kind in ("set", "frozenset"):
        return {"type": "array", "uniqueItems": True, "items": json_schema(t[1])}
    if kind == "tuplevar":
        return {"type": "array", "items": json_schema(t[1])}
    if kind == "tuple":
        if not t[1]:
            return {"type": "array", "minItems": 0, "maxItems": 0}
        return {"type": "array", "minItems": len(t[1]), "items": [json_schema(x) for x in t[1]],
                "additionalItems": False}
    if kind == "dict":
        out = {"type": "object"}
        keys, values = json_schema(t[1]), json_schema(t[2])
        if values:
            out["additionalProperties"] = values
        if keys.get("type") == "string" and len(keys) > 1:
            keys.pop("type")
            out["propertyNames"] = keys
        return out
    if kind == "literal":
        return literal_schema(t[1])
    if kind == "union":
        members = [json_schema(m) for m in t[1] if m != NONE]
        if NONE in t[1]:
            members.append({"type": "null"})
        flat = []
        for m in members:
            for x in (m["anyOf"] if len(m) == 1 and "anyOf" in m else [m]):
                if x not in flat:
                    flat.append(x)
        return flat[0] if len(flat) == 1 else {"anyOf": flat}
    raise ValueError("unknown type kind %r" % (kind,))


# ---- the tool ---------------------------------------------------------------

def parse(source):
    """The Tool in source. Raises ToolError with every problem found."""
    source = textwrap.dedent(source)
    try:
        body = ast.parse(source).body
    except SyntaxError as e:
        raise ToolError(["Syntax error: %s on line %s" % (e.msg, e.lineno)]) from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise ToolError(["Syntax error: %s" % (str(e) or type(e).__name__)]) from None
    if (not body or not isinstance(body[-1], ast.FunctionDef)
            or not all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body[:-1])):
        raise ToolError([MSG_SINGLE])
    imports, fn = body[:-1], body[-1]
    args = fn.args
    errors = []
    if args.posonlyargs:
        errors.append(MSG_POSONLY)
    if args.vararg:
        errors.append(MSG_VARARG)
    if args.kwarg:
        errors.append(MSG_KWARG)
    every = list(args.posonlyargs) + list(args.args) + list(args.kwonlyargs)
    if not all(a.annotation for a in every):
        errors.append(MSG_ANNOT)
    ns = namespace(imports)
    n_plain = len(args.args)
    required = {a.arg for a in args.args[:n_plain - len(args.defaults)]}
    required |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None}
    description, param_docs = full_description(ast.get_docstring(fn) or "", fn.returns)
    params = []
    for a in list(args.args) + list(args.kwonlyargs):
        if not a.annotation:
            continue
        try:
            t = resolve(a.annotation, ns)
        except AnnotationError as e:
            errors.append("Invalid type annotation `%s` of argument `%s`: %s" % (unparse(a.annotation), a.arg, e))
            continue
        except RecursionError:
            errors.append("Invalid type annotation of argument `%s`: it is nested too deeply" % a.arg)
            continue
        params.append(Param(a.arg, t, a.arg in required, param_docs.get(a.arg, "")))
    if errors:
        raise ToolError(errors)
    return Tool(fn.name, params, description, source, fn)


SURROGATES = re.compile("[\ud800-\udfff]")


def clean(s):
    """s without lone surrogates (a docstring may spell them), so it is valid UTF-8."""
    return SURROGATES.sub("\ufffd", s)


def result_of(source):
    """The result document of a parse: the response fields, or error_messages."""
    try:
        tool = parse(source)
        return {"tool_name": clean(tool.name), "tool_input_schema_json": json.dumps(tool.schema()),
                "tool_description": clean(tool.description)}
    except ToolError as e:
        return {"error_messages": [clean(m) for m in e.messages]}
    except RecursionError:
        return {"error_messages": ["The tool source code is nested too deeply"]}


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def main(tool_dir):
    """Entry point inside the sandbox: the source is tool_dir/source.py; the
    result is the one JSON document written to stdout (no tool code runs here)."""
    doc = result_of(read_text(os.path.join(tool_dir, "source.py")))
    write_all(1, json.dumps(doc).encode("ascii") + b"\n")
