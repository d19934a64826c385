# imports: the import check run before a piece of code (trusted; it reads the
# code, never runs it). Finds the top-level modules the code imports that the
# sandbox's Python cannot find, and the `!pip install` / `%pip install` lines,
# which it removes. Only ast, sys, importlib.util and json; protocol in
# docs/executor-protocol.md (POST /execute, check_imports). The warm runner
# (runner.py) loads it at warm-up and calls check() in-process (putting back
# sys.path, sys.modules and sys.path_importer_cache afterwards); it also runs
# as a script:
#
#   python3 -I imports.py [PATH ...] < code  ->  one JSON object on stdout
#   {"missing": ["cv2"], "pip": ["a", "b==1.2"], "source_code": "..."}
# PATH entries are searched as well as the interpreter's own sys.path (the
# runner passes the workspace only: what only the package cache provides is
# reported missing).
import ast
import importlib.util
import json
import sys

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
    seen, out = set(), []
    for n in names:
        if n and n not in seen:
            seen.add(n)
            out.append(n)
    return out


def findable(name):
    if name in sys.builtin_module_names or name in sys.stdlib_module_names:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check(source, paths=()):
    code, specs = strip_pip(source)
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
        # listed anew: files may have arrived since a finder cached the listing
        # (importlib.invalidate_caches would visit every package's finder)
        sys.path_importer_cache.pop(p, None)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        tree = None  # the run reports it
    missing = [] if tree is None else [n for n in imported(tree) if not findable(n)]
    return {"missing": missing, "pip": specs, "source_code": code}


def main():
    source = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    out = check(source, sys.argv[1:])
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
