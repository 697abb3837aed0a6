"""Compiling and running user Python in a namespace: what one-shot children and a
session's kernel share. The code is compiled as USER_FILE, so that its tracebacks can
be cut to its own frames."""

import sys

from .protocol import error, write_all
from .values import encode_value

USER_FILE = "<string>"
# error.traceback is cut to its last this many characters (and to output_bytes), so a
# result frame stays within what runbox accepts (see docs/agent-protocol.md).
TRACEBACK_CHARS = 64 << 10


class OutputLimit(BaseException):
    """Raised inside persistent user code when its output passes output_kill_bytes."""


def user_traceback(exc):
    """The traceback of `exc` without the agent's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != USER_FILE:
        tb = tb.tb_next
    try:
        import traceback
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        return "%s\n" % type(exc).__name__


def exception_message(exc):
    if isinstance(exc, SyntaxError):
        text = "%s: %s" % (type(exc).__name__, exc.msg)
        if exc.lineno:
            text += " (line %d)" % exc.lineno
        return text
    try:
        import traceback
        lines = traceback.format_exception_only(type(exc), exc)
        text = lines[0].rstrip("\n") if lines else type(exc).__name__
    except BaseException:
        text = type(exc).__name__
    if len(text) > 4000:
        text = text[:4000] + "..."
    return text


def write_stderr(text):
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except BaseException:
        try:
            write_all(2, text.encode("utf-8", "replace"))
        except OSError:
            pass


def flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            pass


def linecache_entry(source):
    """linecache's cache entry for USER_FILE: no file behind it, never rechecked."""
    return (len(source), None, source.splitlines(True), USER_FILE)


class AfterImport:
    """A finder on sys.meta_path that finds nothing itself: when one of its modules is
    imported, it lets the real finder load it and then calls `then(module)`, once. What
    the agent adds to a module the code may import (linecache's cache, pyplot's show)
    costs a run nothing unless the code imports it."""

    def __init__(self, hooks):
        self.hooks = dict(hooks)  # module name -> then(module)

    def find_spec(self, name, path=None, target=None):
        then = self.hooks.pop(name, None)
        if then is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenLoader(spec.loader, then)
                return spec
        return None


class _ThenLoader:
    """The module's own loader, which then hands the module to the hook."""

    def __init__(self, loader, then):
        self.loader = loader
        self.then = then

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module looks as if it had been loaded the usual way.
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        try:
            self.then(module)
        except Exception:  # the agent's addition must never fail the code's import
            pass


def show_user_source(code):
    """Tracebacks and warnings show the lines of USER_FILE from linecache's cache.
    linecache is not imported for it: importing it with every run costs a fresh sandbox
    several ms of CPU (linecache imports tokenize, and tokenize re)."""
    entry = linecache_entry(code)

    def seed(linecache):
        linecache.cache[USER_FILE] = entry

    linecache = sys.modules.get("linecache")
    if linecache is not None:
        seed(linecache)
    else:
        sys.meta_path.insert(0, AfterImport({"linecache": seed}))


def compile_user_code(req, show_source):
    """(body code, trailing expression code or None, whether that expression ends in a
    semicolon, which in a notebook keeps its value from being shown)."""
    if show_source:
        # Not in sessions: a function defined by an earlier exec would be shown with
        # the lines of the current one.
        show_user_source(req.code)
    if req.mode == "cell" and req.call is None and req.check is None:
        import ast
        tree = ast.parse(req.code, USER_FILE, "exec")
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop()
            body = compile(tree, USER_FILE, "exec", dont_inherit=True)
            expr = compile(ast.Expression(last.value), USER_FILE, "eval", dont_inherit=True)
            return body, expr, req.outputs and ends_in_semicolon(req.code, last)
        return compile(tree, USER_FILE, "exec", dont_inherit=True), None, False
    return compile(req.code, USER_FILE, "exec", dont_inherit=True), None, False


def ends_in_semicolon(code, statement):
    """Whether `statement` (the code's last) is followed by a semicolon on its last line."""
    lines = code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    try:
        line = lines[statement.end_lineno - 1].encode("utf-8")
    except (IndexError, AttributeError, TypeError):
        return False
    # ast's column offsets count UTF-8 bytes.
    return line[statement.end_col_offset:].lstrip().startswith(b";")


def describe_callable(fn):
    import inspect  # registration checks only; not worth importing at start-up
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return {"callable": True, "parameters": None}
    parameters = []
    for parameter in signature.parameters.values():
        parameters.append({
            "name": parameter.name,
            "kind": parameter.kind.name.lower(),
            "has_default": parameter.default is not inspect.Parameter.empty,
        })
    return {"callable": True, "parameters": parameters}


class Outcome:
    # `shown` is what a run with outputs shows as its execute_result: the value of the
    # last expression or of the call (None: nothing), never sent as such.
    __slots__ = ("exit_code", "has_value", "value", "error", "truncated", "shown")

    def __init__(self):
        self.exit_code = 0
        self.has_value = False
        self.value = None
        self.error = None
        self.truncated = False
        self.shown = None

    @classmethod
    def agent_failure(cls, exc):
        """The outcome of a run that failed in the agent's own code, not the user's."""
        outcome = cls()
        outcome.exit_code = 70
        outcome.error = error("killed", "agent error: %s: %s" % (type(exc).__name__, exc))
        return outcome

    def as_dict(self):
        return {"exit_code": self.exit_code, "has_value": self.has_value, "value": self.value,
                "error": self.error, "truncated": self.truncated}


def execute_python(req, namespace, show_source=True):
    """Runs python code in `namespace`; returns an Outcome. Never raises (except
    OutputLimit, which the persistent caller handles)."""
    outcome = Outcome()
    print_traceback = req.mode == "script" and req.call is None and req.check is None
    try:
        body, expr, quiet = compile_user_code(req, show_source)
    except (SyntaxError, ValueError) as exc:
        outcome.exit_code = 1
        if isinstance(exc, SyntaxError):
            import traceback
            text = "".join(traceback.format_exception_only(type(exc), exc))
        else:
            text = "%s: %s\n" % (type(exc).__name__, exc)
        outcome.error = error("syntax", exception_message(exc), text)
        if print_traceback:
            write_stderr(text)
        return outcome
    except MemoryError:
        outcome.exit_code = 1
        outcome.error = error("memory", "MemoryError", None)
        return outcome
    except Exception as exc:
        outcome.exit_code = 1
        outcome.error = error("runtime", exception_message(exc), None)
        return outcome

    value = None
    try:
        exec(body, namespace)
        if req.call is not None:
            name, args = req.call
            fn = namespace.get(name)
            if not callable(fn):
                outcome.exit_code = 1
                outcome.error = error("runtime", "no callable named %r" % name, None)
                return outcome
            value = fn(**args)
            outcome.has_value = True
            if req.outputs:
                outcome.shown = value
        elif req.check is not None:
            fn = namespace.get(req.check)
            if not callable(fn):
                outcome.exit_code = 1
                outcome.error = error("runtime", "no callable named %r" % req.check, None)
                return outcome
            value = describe_callable(fn)
            outcome.has_value = True
        elif req.mode == "cell":
            if expr is not None:
                value = eval(expr, namespace)
                outcome.has_value = True
                if req.outputs and not quiet:
                    outcome.shown = value
                if value is None and "result" in namespace:
                    value = namespace["result"]
            elif "result" in namespace:
                value = namespace["result"]
                outcome.has_value = True
    except SystemExit as exc:
        code = exc.code
        if code is None:
            outcome.exit_code = 0
        elif isinstance(code, int):
            outcome.exit_code = code & 0xFF
        else:
            write_stderr("%s\n" % (code,))
            outcome.exit_code = 1
        if outcome.exit_code != 0:
            outcome.error = error("runtime", "exited with code %d" % outcome.exit_code, None)
        return outcome
    except OutputLimit:
        raise
    except BaseException as exc:
        tb_text = user_traceback(exc)
        cap = min(req.output_bytes, TRACEBACK_CHARS)
        if len(tb_text) > cap:  # keep the end: the exception itself
            tb_text = tb_text[len(tb_text) - cap:]
        kind = "memory" if isinstance(exc, MemoryError) else "runtime"
        outcome.exit_code = 1
        outcome.error = error(kind, exception_message(exc), tb_text)
        if print_traceback:
            write_stderr(tb_text)
        return outcome
    if outcome.has_value:
        outcome.value, outcome.truncated = encode_value(value, req.output_bytes)
    return outcome
