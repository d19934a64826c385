# runner: the warm Python runner the executor server starts ahead of time. Owns
# the preload imports, the shims, and running one piece of code the way
# `python3 script.py` would; protocol (fds 3 and 4) in executor/runner.h.
# Run as a script (main), or imported by the zygote (executor/warm.c), which
# calls warm() once and serve() in each sandbox's forked runner.
import os
import sys
# Bound once, here: an import statement in a forked runner, even of a module
# already loaded, writes to (copies) dozens of the zygote's pages.
import _signal
import atexit as _atexit
import json as _json
import linecache as _linecache
import types as _types

_HERE = os.path.dirname(os.path.abspath(__file__))
# The runner's own directory must not be importable by the code or the preloads.
if sys.path and sys.path[0] == _HERE:
    sys.path.pop(0)

_WORKSPACE = "/workspace"
# The package cache's dists/, read-only (SBX_INSIDE_PACKAGES, executor/sandbox.h):
# one directory per install, NAME-VERSION-<random>. It cannot be listed (mode 0711) and is
# never on sys.path itself: a run gets the directories the execute request
# names (docs/executor-protocol.md), and nothing else of the cache.
_PACKAGES = "/opt/code-interpreter/packages"
_REQUEST_FD = 3
_READY_FD = 4  # also the reply pipe: the answers to "imports" requests
_SELF = None
_IMPORTS = None  # executor/python/imports.py, loaded by warm()
_CHECKED = None  # (source, code object) of the last import check (_check_imports)
# import checks the warm image makes (warm()): CPython 3.11 quickens a
# function at its 8th call and specializes its instructions over the next few
_WARM_CHECKS = 20
_SHELL = None  # executor/python/shell.py, loaded by warm()
_OWN_FILES = (os.path.join(_HERE, "runner.py"), os.path.join(_HERE, "shell.py"))
_THREADING_SHUTDOWN = None  # threading._shutdown of the warm image (warm())


def _preload(names):
    """Imports the comma-separated modules with output sent to /dev/null;
    failures are ignored (a missing package must not keep the sandbox from
    starting)."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    try:
        import importlib
        for name in names.split(","):
            name = name.strip()
            if not name:
                continue
            try:
                importlib.import_module(name)
            except (Exception, SystemExit):
                pass
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _install_shims():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "_code_interpreter_shims", os.path.join(_HERE, "shims.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    mod.install(_WORKSPACE)


def _read_exact(n):
    """n bytes from the request pipe; fewer only at EOF."""
    chunks, got = [], 0
    while got < n:
        b = os.read(_REQUEST_FD, min(n - got, 1 << 20))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _read_message():
    """The next framed request (4-byte big-endian length, then that much JSON)
    as bytes; None at EOF (or a message cut short)."""
    head = _read_exact(4)
    if len(head) < 4:
        return None
    n = int.from_bytes(head, "big")
    body = _read_exact(n)
    return body if len(body) == n else None


def _no_default(obj):
    raise TypeError("not JSON: %s" % type(obj).__name__)


# json's C encoder, made once in the warm image: json.dumps makes one per call
# through JSONEncoder's Python (~40 pages copied in a forked runner's first
# answer). What json.dumps writes: ASCII, ", " and ": ".
_ENCODE = _json.encoder.c_make_encoder and _json.encoder.c_make_encoder(
    None, _no_default, _json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)


def _write_message(obj):
    text = "".join(_ENCODE(obj, 0)) if _ENCODE else _json.dumps(obj)
    data = text.encode("ascii")
    data = len(data).to_bytes(4, "big") + data
    try:
        while data:
            data = data[os.write(_READY_FD, data):]
    except OSError:
        os._exit(2)  # the server gave up on us (and kills us)


def _decode(raw):
    """A request (the server's own JSON, one object) as a dict: json's C
    scanner straight away, without json.loads's Python around it (~15 pages
    fewer copied)."""
    return _json._default_decoder.scan_once(raw.decode("utf-8", "surrogateescape"), 0)[0]


_FILENAME = "<string>"  # the code's, as python3 -c names it


def _script(source):
    """What running source as a script needs: its lines in linecache (for
    tracebacks) and a fresh module named __main__ to run it in (not yet in
    sys.modules). Returns (filename, module)."""
    filename = _FILENAME
    _linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    main = _types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    return filename, main


def _mark(d):
    """Where dict d stands now: its last key and its size."""
    return next(reversed(d)) if d else None, len(d)


def _drop_added(d, mark):
    """Removes the keys added to d since mark (_mark), read from the end (a
    dict keeps insertion order): never a walk of the whole dict, whose every
    key would be a page copied from the zygote (hundreds with the preloads).
    When the marked last key went meanwhile, d is left as it is."""
    last = mark[0]
    added = []
    for key in reversed(d):
        if key is last:
            break
        added.append(key)
    else:
        if last is not None:
            return
    for key in added:
        d.pop(key, None)


def _check_imports(source):
    """imports.check_code on the code, in this process, leaving nothing behind
    that the code could see: sys.path is put back, and what the check added to
    sys.modules and sys.path_importer_cache is removed (_run lists the
    workspace anew anyway). Only the workspace is searched besides our own
    sys.path: a module that only the package cache provides is missing, and
    the service decides which cached distribution's directory the run gets
    for it. The code object the check compiled is kept for _run (_CHECKED):
    the code the check answers for is compiled once. Any failure answers
    "nothing missing", the code unchanged."""
    global _CHECKED
    _CHECKED = None
    path = list(sys.path)
    modules = _mark(sys.modules)
    importers = _mark(sys.path_importer_cache)
    try:
        answer, code = _IMPORTS.check_code(source, [_WORKSPACE], _FILENAME)
        _CHECKED = (answer["source_code"], code)
        return answer
    except BaseException:
        return {"missing": [], "pip": [], "source_code": source}
    finally:
        sys.path[:] = path
        _drop_added(sys.modules, modules)
        _drop_added(sys.path_importer_cache, importers)


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            pass


def _nothing_to_shut_down(t):
    """Whether threading._shutdown (t: the threading module) would do nothing
    a run could tell from skipping it: the warm image's function, no thread
    but the main one, no lock to wait for but the main thread's own, no
    threading atexit call, and no atexit handler to run after it. What it
    would still do then is bookkeeping the process's exit makes moot (marking
    the main thread stopped), which in a forked runner writes most of a
    millisecond of copied pages (~0.7-1 ms on a 2-core VM)."""
    try:
        if t._shutdown is not _THREADING_SHUTDOWN or t._threading_atexits or _atexit._ncallbacks():
            return False
        if len(t._active) != 1 or t._limbo:
            return False
        main = t._main_thread._tstate_lock
        return all(lock is main or not lock.locked() for lock in t._shutdown_locks)
    except BaseException:
        return False


def _finish(status):
    """Ends the process like the interpreter would: wait for non-daemon threads,
    run atexit handlers, flush, exit without tearing the interpreter down."""
    try:
        t = sys.modules.get("threading")
        if t is not None and not _nothing_to_shut_down(t):
            t._shutdown()
    except BaseException:
        pass
    try:
        _atexit._run_exitfuncs()
    except BaseException:
        pass
    _flush()
    status &= 0xFF
    # Output closed before the teardown of this process; the server takes the
    # exit status from the kernel (protocol in executor/runner.h).
    for fd in (1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    os._exit(status)


def _exit_status(exc):
    """The status for SystemExit, printing a non-integer code as python does."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(str(code) + "\n")
    except BaseException:
        pass
    return 1


def _report(exc, tb):
    """Prints an uncaught exception without the runner's frames. The default
    hook is done with the traceback module, which (unlike the C hook) takes
    source lines from linecache, where the code is registered."""
    import traceback
    exc.__traceback__ = tb  # the C hook prints this, not its tb argument
    try:
        if sys.excepthook is sys.__excepthook__:
            traceback.print_exception(type(exc), exc, tb)
        else:
            sys.excepthook(type(exc), exc, tb)
    except BaseException:
        try:
            traceback.print_exception(type(exc), exc, tb)
        except BaseException:
            pass


def _run(source, env, packages):
    """Runs the code; packages: names of directories under the package cache
    (checked by the server), appended to sys.path in that order."""
    # one item at a time, and only when there are any: os.environ.update
    # goes through the Mapping ABC's isinstance check (~35 pages copied)
    for name, value in env.items():
        os.environ[name] = value
    os.chdir(_WORKSPACE)
    sys.path.insert(0, _WORKSPACE)
    # The directories that may have changed since the zygote started are
    # listed anew (importlib.invalidate_caches would visit the finder of every
    # package the preloads imported, most of a millisecond in a forked runner).
    sys.path_importer_cache.pop(_WORKSPACE, None)
    for name in packages:
        p = _PACKAGES + "/" + name
        sys.path.append(p)
        sys.path_importer_cache.pop(p, None)
    sys.argv = ["<string>"]
    filename, main = _script(source)
    global _SELF
    _SELF = sys.modules.get("__main__")  # keeps the runner's module alive
    sys.modules["__main__"] = main
    try:
        checked = _CHECKED[1] if _CHECKED and _CHECKED[0] == source else None
        code = _SHELL.compile_code(source, filename, main.__dict__, checked)
        exec(code, main.__dict__)
    except SystemExit as e:
        return _exit_status(e)
    except MemoryError as e:
        del e
        _flush()
        try:
            sys.stderr.write("MemoryError: the sandbox's memory limit was reached\n")
        except BaseException:
            pass
        return 1
    except BaseException as e:
        tb = e.__traceback__
        # Drop the runner's own frames (this function's, the compiler's in
        # shell.py): a SyntaxError is then reported as python reports one.
        while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
            tb = tb.tb_next
        _report(e, tb)
        return 1
    return 0


def _exercise():
    """In the warm image, when pandas is preloaded: the first DataFrame and its
    first repr fill pandas' caches (and import pandas.io.formats.string), which
    every run using them would otherwise do again (in a forked runner on a
    paravirtualized 2-core VM, a DataFrame and its sum 16.5 -> 14.9 ms, its
    repr 25.1 -> 21.8 ms). Done once here, on made-up data, warnings ignored,
    nothing printed: a run starts as after any earlier use of pandas, with
    nothing of another run in it."""
    pandas, numpy = sys.modules.get("pandas"), sys.modules.get("numpy")
    if pandas is None or numpy is None:
        return
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pandas.DataFrame({"a": numpy.arange(3), "b": ["x"] * 3})
            int(frame.a.sum())
            repr(frame)
    except Exception:
        pass  # a run pays for it itself


def warm(workspace, preload):
    """Everything a run should not pay for: preloads, shims, our own imports."""
    global _WORKSPACE
    _WORKSPACE = workspace
    _preload(preload)
    _install_shims()
    _exercise()
    global _THREADING_SHUTDOWN
    threading = sys.modules.get("threading")
    if threading is not None:
        _THREADING_SHUTDOWN = getattr(threading, "_shutdown", None)
    import traceback  # noqa: F401 (imported before the request so a run pays nothing)
    import io
    # print's keyword names, a tuple CPython makes at the first keyword call
    # and keeps: made here, in the warm image, not by a runner's _rehearse
    print(end="", file=io.StringIO())
    global _IMPORTS, _SHELL, _CHECKED
    _IMPORTS = _own_module("imports")
    _SHELL = _own_module("shell")
    # CPython 3.11 rewrites a function's bytecode in place over its first
    # calls (specialization); done here, the import check's code is not among
    # the pages a runner's first check copies (~15 fewer)
    for _ in range(_WARM_CHECKS):
        _check_imports("import os\nfrom sys import path\n")
    _CHECKED = None


def _own_module(name):
    """executor/python/NAME.py, loaded without a place in sys.modules."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "_code_interpreter_" + name, os.path.join(_HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settle(environ):
    """In the zygote, once warm: the environment every runner starts with (a list
    of "NAME=value") instead of the zygote's own, whose single-thread settings
    were for the preloads' start-up. Done once here rather than in each runner."""
    os.environ.clear()
    os.environ.update(e.split("=", 1) for e in environ)


def redundant_fork_hooks():
    """In the zygote, once warm: the os.register_at_fork hooks (after_in_child)
    a runner need not run. The zygote forks it from C, single-threaded, while
    no Python code runs, so every lock of Python's is free: these only make
    new ones (threading, logging, concurrent.futures), and cost a runner over
    100 copied pages. Every other hook runs in each runner as after os.fork(),
    but random's reseeding, which the zygote's C code does when it found
    random's state (random_generator)."""
    hooks = []
    for module, name in (("threading", "_after_fork"),
                         ("logging", "_after_at_fork_child_reinit_locks")):
        hook = getattr(sys.modules.get(module), name, None)
        if hook is not None:
            hooks.append(hook)
    lock = getattr(sys.modules.get("concurrent.futures.thread"), "_global_shutdown_lock", None)
    if lock is not None:
        hooks.append(lock._at_fork_reinit)
    return hooks


def random_generator():
    """In the zygote, once warm: random's global generator (random._inst), its
    state set to the key 1..624 at position 624 and no Gaussian cached, for the
    zygote to check where that state lies and to refill it from the OS in each
    runner instead of running random's after-fork hook; None when it is not a
    plain random.Random."""
    import random
    inst = getattr(random, "_inst", None)
    if type(inst) is not random.Random:
        return None
    inst.setstate((3, tuple(range(1, 625)) + (624,), None))
    return inst


def numpy_generator():
    """In the zygote, once warm: the BitGenerator capsule of NumPy's global
    generator (numpy.random.mtrand._rand), its MT19937 state set to the key
    1..624 at position 624 (set_state also drops a cached Gaussian), for the
    zygote to check where that state lies and to refill it from the OS in
    each runner; None without NumPy's global MT19937."""
    mtrand = sys.modules.get("numpy.random.mtrand")
    if mtrand is None:
        return None
    try:
        import numpy
        rs = mtrand._rand
        if type(rs._bit_generator).__name__ != "MT19937":
            return None
        rs.set_state(("MT19937", numpy.arange(1, 625, dtype=numpy.uint32), 624))
        return rs._bit_generator.capsule
    except Exception:
        return None


# What _rehearse runs: the op a request carries, code that prints nothing.
_REHEARSAL = b'{"op": "execute", "source_code": "print(end=\\"\\")", "env": {}}'


def _rehearse():
    """Before the ready byte: the steps every run takes (decode, __main__,
    sys.path, linecache, compile, exec, print, flush), taken once on nothing.
    In a forked runner each page they write is a copy of the warm image's,
    made at the first write; made here, those copies are not made while a
    request waits (hello world: ~100 fewer on the request's path). Leaves no
    state the code can see: what it adds is taken out again or replaced by
    _run, what it sets is set to the value it had, the code it runs prints an
    empty string (a write of 0 bytes to the stdout pipe, which delivers
    nothing). Only what any code leaves differs: the allocator's free lists
    and the collector's counts."""
    source = _decode(_REHEARSAL)["source_code"]
    sys.path.insert(0, _WORKSPACE)
    del sys.path[0]
    # its linecache entry is left in place: _run replaces it (taken out, it
    # would leave a deleted slot behind, and the dict grow one insertion sooner)
    filename, scratch = _script(source)
    main = sys.modules.get("__main__")
    if main is not None:
        sys.modules["__main__"] = main
    exec(_SHELL.compile_code(source, filename, scratch.__dict__), scratch.__dict__)
    _flush()
    # what _run and _finish look at besides: a lookup each, nothing changed
    sys.path_importer_cache.pop(_WORKSPACE, None)
    threading = sys.modules.get("threading")
    if threading is not None:
        _nothing_to_shut_down(threading)


def serve(forked=False, numpy_seeded=False):
    """The rest of a runner's life: ready, import checks, one execution, exit.
    forked: a runner forked from the zygote, which gets Python's SIGINT handler
    back and its own draw of NumPy's global generator (numpy_seeded: the
    zygote's C code has already drawn it)."""
    if forked:
        # _signal's, not signal's: the latter's enum conversions copy ~50 pages
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        # Forked from one zygote, every sandbox would draw the same numbers:
        # a whole new MT19937 state from the OS (what seed() would derive from
        # 128 bits, at under half the cost in a forked runner).
        nprandom = None if numpy_seeded else sys.modules.get("numpy.random")
        if nprandom is not None:
            try:
                words = sys.modules["numpy"].frombuffer(os.urandom(624 * 4), dtype="<u4")
                nprandom.set_state(("MT19937", words, 624))
            except Exception:
                pass
    try:
        _rehearse()
    except Exception:
        pass  # a run is all the same; it pays for its copies itself
    os.write(_READY_FD, b"R")
    while True:
        raw = _read_message()
        if raw is None:
            os._exit(0)
        try:
            req = _decode(raw)
            op = req.get("op")
            source = req["source_code"]
        except Exception:
            os._exit(2)  # the server never sends that
        del raw
        if op == "imports":
            _write_message(_check_imports(source))
            continue
        if op == "execute":
            break
        os._exit(2)
    # The code sees neither pipe (nor a later request).
    os.close(_REQUEST_FD)
    os.close(_READY_FD)
    try:
        status = _run(source, req.get("env") or {}, req.get("packages") or ())
    except Exception as e:  # the runner's own setup, not the code
        sys.stderr.write("runner: cannot run the code: %s\n" % (e,))
        status = 1
    _finish(status)


def main():
    warm(sys.argv[1] if len(sys.argv) > 1 else "/workspace",
         os.environ.pop("APP_PRELOAD_MODULES", ""))
    serve()


if __name__ == "__main__":
    main()
