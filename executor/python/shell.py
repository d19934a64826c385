# shell: upstream's code semantics (trusted; loaded by runner.py). Upstream's
# executor ran every piece of code with xonsh, so shell lines (`ls -la`,
# `echo hi`, `cat a.txt | wc -l`, `$(...)`, `!(...)`) work, alone or mixed
# with Python. Here Python runs as Python, with CPython's own compiler,
# tracebacks and speed; Debian's xonsh is imported, and decides, only for code
# that may hold a shell line:
#   - code CPython cannot compile (`echo hi`, `$(pwd)`, `pip list`): xonsh
#     compiles it; when xonsh cannot either, CPython's SyntaxError is reported;
#   - code with an expression statement, or an operand of `not`/`and`/`or`,
#     that names something the code never binds and that is not a builtin
#     (`ls -la`, `pwd`, `id -u`): xonsh compiles it, and the code runs as
#     xonsh made it only if xonsh turned something into a command (a NameError
#     in plain Python stays plain Python).
# Nothing here runs the code; runner.py does, in the __main__ it made.
import ast
import builtins
import os
import re
import sys

# Names a script's globals have without binding them.
_MODULE_NAMES = frozenset(dir(builtins)) | {
    "__builtins__", "__file__", "__name__", "__doc__", "__loader__", "__spec__",
    "__package__", "__annotations__", "__cached__"}

_XONSH = None  # the xonsh session's execer, once loaded

# What may begin a statement may_be_shell looks for, at a line's start or
# after `;` or `:` (`x = 1; pwd`, `if y: pwd`): a name that is not a keyword,
# alone (`pwd`) or followed by a blank and then anything but an assignment, a
# call, an attribute, an index or an annotation (`ls -la`, `echo @(x)`,
# `ls and pwd`); or `not` and such a name. Code without one is Python
# whatever its names, and costs no tree.
_KEYWORDS = ("False|None|True|and|as|assert|async|await|break|case|class|continue|def|del|elif|else|"
             "except|finally|for|from|global|if|import|in|is|lambda|match|nonlocal|not|or|pass|raise|"
             "return|try|type|while|with|yield")
_COMMAND_LINE = re.compile(r"""
    (?:^|[;:]) [ \t]* (?:not[ \t]+)?
    (?!(?:%s)\b) [^\W\d]\w*
    (?: [ \t]* (?:$|\#|;)
      | [ \t]+ (?![-+*/%%@&|^<>]*=|[(.\[,:]) )
    """ % _KEYWORDS, re.M | re.X)


def _has_command_line(source):
    """True when a line of the source may be a command (see _COMMAND_LINE)."""
    return _COMMAND_LINE.search(source) is not None


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_NAMED = (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)


def may_be_shell(tree):
    """True when xonsh could read a line of this (compilable) code as a
    command: an expression statement, or an operand of not/and/or (what
    xonsh's context-aware pass looks at), names something that the code never
    binds and that is not a builtin. A star import may bind anything: False.
    One walk of the tree: this runs before every piece of Python."""
    bound = set()
    values = []
    for node in ast.walk(tree):
        kind = type(node)
        if kind is ast.Name:
            if type(node.ctx) is not ast.Load:
                bound.add(node.id)
        elif kind is ast.Expr:
            values.append(node.value)
        elif kind is ast.alias:
            if node.name == "*":
                return False
            bound.add(node.asname or node.name.partition(".")[0])
        elif kind is ast.arg:
            bound.add(node.arg)
        elif kind in _DEFS:
            bound.add(node.name)
        elif kind is ast.UnaryOp:
            values.append(node.operand)
        elif kind is ast.BoolOp:
            values.extend(node.values)
        elif kind is ast.Global or kind is ast.Nonlocal:
            bound.update(node.names)
        elif kind in _NAMED:
            if node.name:
                bound.add(node.name)
        elif kind is ast.MatchMapping and node.rest:
            bound.add(node.rest)
    for value in values:
        if type(value) is ast.Lambda:
            continue
        for n in ast.walk(value):
            if type(n) is ast.Name and n.id not in bound and n.id not in _MODULE_NAMES:
                return True
    return False


def _load():
    """Starts a xonsh session in this process, as `xonsh --no-rc script`
    would, once; returns its execer. XONSH_SHOW_TRACEBACK is on, as it was in
    upstream's executor image, unless the request's env set it."""
    global _XONSH
    if _XONSH is None:
        os.environ.setdefault("XONSH_SHOW_TRACEBACK", "True")
        argv = sys.argv
        from xonsh.built_ins import XSH
        from xonsh.main import premain
        premain(["--no-rc", "--no-script-cache", "<string>"])
        sys.argv = argv  # premain leaves it alone today; the code's argv is ours
        _XONSH = XSH.execer
    return _XONSH


def _runs_commands(tree):
    """True when xonsh's tree calls into the xonsh session (a command,
    $VAR, @(...), a path literal ...); compilable Python never does."""
    return any(isinstance(n, ast.Name) and n.id == "__xonsh__" for n in ast.walk(tree))


def compile_code(source, filename, namespace, compiled=None):
    """The code object to exec in namespace (a fresh __main__'s dict). Raises
    SyntaxError, CPython's when CPython cannot compile the code and xonsh
    finds no command in it. Plain Python costs a compile and one regular
    expression search: the tree is looked at only when a line could be a
    command. compiled: the source already compiled as CPython would here
    (the import check's), or None."""
    python_error = None
    try:
        code = compiled or compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        python_error, code = e, None
    else:
        if not _has_command_line(source):
            return code
        if not may_be_shell(compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)):
            return code
    execer = _load()
    execer.filename = filename  # what xonsh's own messages name
    text = source if source.endswith("\n") else source + "\n"
    try:
        shell_tree = execer.parse(text, set(dir(builtins)) | set(namespace), mode="exec", filename=filename)
    except Exception:  # SyntaxError, or xonsh failing on what it was given
        shell_tree = None
    if shell_tree is None or not _runs_commands(shell_tree):  # None: comments only
        if code is None:
            raise python_error
        return code
    return compile(shell_tree, filename, "exec", dont_inherit=True)
