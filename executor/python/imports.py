# imports: the import check run before a piece of code (trusted; it reads the
# code, never runs it). Finds the top-level modules the code imports that the
# sandbox's Python cannot find, and the `!pip install` / `%pip install` lines,
# which it removes. Only ast, opcode, sys, warnings, importlib.util and json;
# protocol in docs/executor-protocol.md (POST /execute, check_imports). The
# warm runner (runner.py) loads it at warm-up and calls check_code()
# in-process (putting back sys.path, sys.modules and sys.path_importer_cache
# afterwards), and runs the code object the check compiled; it also runs as a
# script:
#
#   python3 -I imports.py [PATH ...] < code  ->  one JSON object on stdout
#   {"missing": ["cv2"], "pip": ["a", "b==1.2"], "source_code": "..."}
# PATH entries are searched as well as the interpreter's own sys.path (the
# runner passes the workspace only: what only the package cache provides is
# reported missing).
import ast
import importlib.util
import json
import opcode
import sys
import warnings

_PIP_PREFIXES = ("!pip", "%pip", "!pip3", "%pip3", "!python -m pip", "!python3 -m pip",
                 "%python -m pip")
_PIP_PREFIXES_LONGEST_FIRST = sorted(_PIP_PREFIXES, key=len, reverse=True)


def pip_line(line):
    """The requirement specs of an IPython-style pip install line, or None
    when the line is not one. Options (-q, -U, --upgrade, ...) are dropped."""
    s = line.strip()
    for p in _PIP_PREFIXES_LONGEST_FIRST:
        if s.startswith(p) and (len(s) == len(p) or s[len(p)].isspace()):
            words = s[len(p):].split()
            break
    else:
        return None
    if not words or words[0] != "install":
        return []
    return [w for w in words[1:] if not w.startswith("-")]


def strip_pip(source):
    """(source without the pip lines, [specs]). A removed line becomes an
    empty line so that line numbers in tracebacks stay right."""
    if "pip" not in source:  # every pip line names it
        return source, []
    out, specs = [], []
    for line in source.splitlines(True):
        found = pip_line(line)
        if found is None:
            out.append(line)
            continue
        specs.extend(found)
        out.append("\n" if line.endswith("\n") else "")
    return "".join(out), specs


# The fields that hold statements (an import is one), in the order their
# statements come in the source: the bodies of modules, functions, classes,
# loops, if, with, try (its handlers, else and finally), match (its cases).
# Expressions hold none, so they are never visited.
_BODIES = ("body", "handlers", "orelse", "finalbody", "cases")


def imported(tree):
    """Top-level names of every absolute import in the tree, in source order."""
    names = []
    pending = [iter(tree.body)]
    while pending:
        node = next(pending[-1], None)
        if node is None:
            pending.pop()
        elif isinstance(node, ast.Import):
            names.extend(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if not node.level and node.module:
                names.append(node.module.split(".")[0])
        else:
            for field in reversed(_BODIES):
                inner = getattr(node, field, None)
                if inner:
                    pending.append(iter(inner))
    return unique(names)


_IMPORT_NAME = opcode.opmap["IMPORT_NAME"]
_LOAD_CONST = opcode.opmap["LOAD_CONST"]
_CACHE = opcode.opmap.get("CACHE", -1)
_CODE = type(compile("", "", "exec"))


def compiled_imports(code):
    """Top-level names of every absolute import in a code object and the code
    objects in its constants (functions, classes), in source order: what
    imported() finds in the tree, read from the bytecode the compiler made,
    without the tree (whose Python objects cost a runner ~50 pages copied
    from the warm image). An import statement compiles to LOAD_CONST level,
    LOAD_CONST fromlist, IMPORT_NAME name; level 0 is absolute. None when an
    IMPORT_NAME is not so preceded (a compiler this reading does not know):
    the caller reads the tree instead."""
    found = []
    pending = [code]
    while pending:
        co = pending.pop()
        units, consts = co.co_code, co.co_consts
        positions = None
        before = last = None  # the two instructions before this one
        extended = 0
        for i in range(0, len(units), 2):
            op, arg = units[i], units[i + 1] | extended
            if op == opcode.EXTENDED_ARG:
                extended = arg << 8
                continue
            extended = 0
            if op == _IMPORT_NAME:
                if before is None or before[0] != _LOAD_CONST:
                    return None
                if consts[before[1]] == 0:
                    if positions is None:
                        positions = list(co.co_positions())
                    line, _, column, _ = positions[i // 2]
                    found.append((line or 0, column or 0, len(found), co.co_names[arg].split(".")[0]))
            if op != _CACHE:
                before, last = last, (op, arg)
        pending.extend(c for c in consts if type(c) is _CODE)
    found.sort()
    return unique(f[3] for f in found)


def unique(names):
    seen, out = set(), []
    for n in names:
        if n and n not in seen:
            seen.add(n)
            out.append(n)
    return out


def findable(name):
    if name in sys.modules or name in sys.builtin_module_names or name in sys.stdlib_module_names:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_code(source, paths=(), filename="<string>"):
    """(the answer, the code object of its source_code compiled as a script
    named filename, or None when the compiler refuses it or warns). The code's imports
    are read from that code object (compiled_imports); only code the compiler
    refuses is parsed into a tree (a syntax error gives no imports; `return`
    outside a function, say, parses but does not compile)."""
    code, specs = strip_pip(source)
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
        # listed anew: files may have arrived since a finder cached the listing
        # (importlib.invalidate_caches would visit every package's finder)
        sys.path_importer_cache.pop(p, None)
    compiled = names = None
    # the parser's and the compiler's warnings (SyntaxWarning: `x is 1`,
    # `1if x else 2`) are the run's to show, with its source in linecache and
    # its stderr read: here they are only recorded, and code that warned is
    # compiled again by the run
    with warnings.catch_warnings(record=True) as warned:
        try:
            compiled = compile(code, filename, "exec", dont_inherit=True)
            names = compiled_imports(compiled)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            pass
        if names is None:
            try:
                names = imported(ast.parse(code))
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                names = []  # the run reports it
    if warned:
        compiled = None
    missing = [n for n in names if not findable(n)]
    return {"missing": missing, "pip": specs, "source_code": code}, compiled


def check(source, paths=()):
    return check_code(source, paths)[0]


def main():
    source = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    out = check(source, sys.argv[1:])
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
