#!/usr/bin/env python3
"""The runbox sandbox agent.

Runs inside every sandbox container as `python3 -u /opt/runbox/agent.py` and executes
code for runbox. It speaks the protocol of docs/agent-protocol.md over stdio (frames
on stdin/stdout) or http (RUNBOX_TRANSPORT=http). Standard library only, Python >= 3.9,
one file.

Environment:
  RUNBOX_WORKDIR    work dir (default /workspace)
  RUNBOX_PRELOAD    comma-separated modules imported before `ready`
  RUNBOX_TRANSPORT  stdio (default) or http
  RUNBOX_AGENT_PORT http port (default 8080)
  RUNBOX_AGENT_KEY  http request key (required for http; removed from the environment)
  RUNBOX_PREFORK    0: fork each run's child on demand instead of ahead of time
"""

# Only what every sandbox needs is imported at start-up: a fresh sandbox pays each
# import with CPU time, and that CPU bounds how many fresh sandboxes the machine makes
# per second. ast, base64, linecache, reprlib, threading and traceback are imported by
# the runs that use them; json and signal are used through their C modules (see
# "JSON" below; the signal package only adds enums, and with them the enum module).
import _thread
import atexit
import builtins
import codecs
import errno
import gc
import io
import os
import select
import stat
import struct
import sys
import time

try:
    import _signal as signal
except ImportError:  # not CPython
    import signal

PROTOCOL_VERSION = 1

DEFAULT_OUTPUT_BYTES = 1 << 20
DEFAULT_OUTPUT_KILL_BYTES = 256 << 20
DEFAULT_IMAGE_BYTES = 16 << 20
# Largest frame accepted from runbox: input files are bounded by the work dir anyway.
MAX_INPUT_FRAME = 256 << 20
DRAIN_SECONDS = 0.2
READ_CHUNK = 1 << 16
# Stream events are coalesced for at most this long / this many bytes.
STREAM_FLUSH_SECONDS = 0.02
STREAM_FLUSH_BYTES = 1 << 15
# A line still being written is held back this long, so that events end at line ends
# (print() writes its parts separately) while a prompt without a newline still shows.
STREAM_PARTIAL_LINE_SECONDS = 0.1
USER_FILE = "<string>"
# error.traceback is cut to its last this many characters (and to output_bytes), so a
# result frame stays within what runbox accepts (see docs/agent-protocol.md).
TRACEBACK_CHARS = 64 << 10

IMAGE_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "webp": "image/webp",
}

ERROR_KINDS = ("syntax", "runtime", "timeout", "memory", "output_limit", "killed",
               "invalid_args", "dependency")

SIGNAL_NAMES = {}
for _name in dir(signal):
    if _name.startswith("SIG") and not _name.startswith("SIG_") and isinstance(getattr(signal, _name), int):
        SIGNAL_NAMES.setdefault(int(getattr(signal, _name)), _name)


# --------------------------------------------------------------------------------------
# Agent state (set up by main())

WORKDIR = "/workspace"
AGENT_KEY = bytearray()   # the http key; zeroed in forked children
compare_digest = None     # hmac.compare_digest, imported by serve_http
DIAG_FD = 2               # the container's stderr, kept even while fd 2 is redirected
AGENT_FDS = set()         # fds a forked child must close (protocol channel, sockets)
READY = {}
BASH = None
OOM_PATH = None
KILL_STRAYS = False       # kill every other process of the container after a one-shot run
SESSION = None            # the persistent module (sessions)
UNREAPED = set()          # children of finished runs still exiting
PREFORK = None            # (pid, req_w, out_r, err_r, res_r): the next one-shot run's child
KERNEL = None             # (pid, req_w, res_r, out_r, err_r): a python session's interpreter
FROZEN = set()            # processes stopped between a session's executions
LIBC = None               # ctypes' handle on libc, for prctl
PR_SET_DUMPABLE = 4


def diag(message):
    """A short diagnostic line on the container's stderr."""
    try:
        os.write(DIAG_FD, ("runbox-agent: %s\n" % message).encode("utf-8", "replace"))
    except OSError:
        pass


class InvalidArgs(Exception):
    """A request field the agent cannot accept (error kind invalid_args)."""


class OutputLimit(BaseException):
    """Raised inside persistent user code when its output passes output_kill_bytes."""


# --------------------------------------------------------------------------------------
# JSON: the C encoder and scanner of the json package, used directly. Importing the
# package (with re and enum, which only its pure-Python fallbacks and its error type
# need) was a quarter of the agent's start-up. json_dumps gives the text json.dumps
# gives and json_loads the values json.loads gives; where the C module is missing or
# differs (another interpreter), the json package does the work.

class _ScanContext:
    """The attributes _json's scanner reads off a json.JSONDecoder: json.loads' defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


def _not_serializable(obj):
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _c_encoder(ensure_ascii, separators, allow_nan):
    """_json's encoder as json.dumps builds it (a fresh one per call: it keeps the
    markers of the objects it is inside of)."""
    quote = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    item_separator, key_separator = separators
    return _json.make_encoder({}, _not_serializable, quote, None, key_separator,
                              item_separator, False, False, allow_nan)


try:
    import _json
    _scan_once = _json.make_scanner(_ScanContext)
    _c_encoder(False, (",", ":"), True)
except Exception:  # ImportError, or a _json of another shape
    _json = None

_JSON_SPACE = " \t\n\r"


def json_dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=True):
    """json.dumps(obj, ensure_ascii=..., separators=..., allow_nan=...)."""
    if _json is None:
        import json
        return json.dumps(obj, ensure_ascii=ensure_ascii, separators=separators,
                          allow_nan=allow_nan)
    return "".join(_c_encoder(ensure_ascii, separators, allow_nan)(obj, 0))


def json_loads(data):
    """json.loads(data) of a str or of UTF-8 bytes; malformed input raises ValueError."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    if _json is None:
        import json
        return json.loads(data)
    start = len(data) - len(data.lstrip(_JSON_SPACE))
    try:
        value, end = _scan_once(data, start)
    except StopIteration as stop:
        raise ValueError("Expecting value: char %d" % stop.value)
    if data[end:].strip(_JSON_SPACE):
        raise ValueError("Extra data: char %d" % end)
    return value


# --------------------------------------------------------------------------------------
# Frames and sinks

def encode_frame(message):
    body = json_dumps(message)
    # A lone surrogate (from user data) cannot be UTF-8; it becomes "?".
    data = body.encode("utf-8", "replace")
    return struct.pack(">I", len(data)) + data


def write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class StdioSink:
    """Frames to the protocol fd (the original stdout)."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = _thread.allocate_lock()
        self.broken = False

    def send(self, message):
        frame = encode_frame(message)
        with self.lock:
            if self.broken:
                return
            try:
                write_all(self.fd, frame)
            except OSError:
                self.broken = True


class HttpSink:
    """Frames as the body of an http response: chunked, or close-delimited (HTTP/1.0)."""

    def __init__(self, sock, chunked):
        self.sock = sock
        self.chunked = chunked
        self.lock = _thread.allocate_lock()
        self.broken = False

    def send(self, message):
        frame = encode_frame(message)
        if self.chunked:
            frame = b"%x\r\n%s\r\n" % (len(frame), frame)
        with self.lock:
            if self.broken:
                return
            try:
                self.sock.sendall(frame)
            except OSError:
                self.broken = True

    def end(self):
        if self.chunked and not self.broken:
            try:
                self.sock.sendall(b"0\r\n\r\n")
            except OSError:
                self.broken = True


def result_message(stdout="", stderr="", exit_code=None, has_value=False, value=None,
                   error=None, images=(), truncated=False, duration_ms=0.0,
                   session_ended=False):
    return {
        "session_ended": session_ended,
        "type": "result",
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": exit_code,
        "has_value": has_value,
        "value": value,
        "error": error,
        "images": list(images),
        "truncated": truncated,
        "duration_ms": round(duration_ms, 3),
    }


def error(kind, message, traceback_text=None):
    return {"kind": kind, "message": message, "traceback": traceback_text}


def agent_error_result(message):
    return result_message(error=error("killed", "agent error: " + message))


# --------------------------------------------------------------------------------------
# Requests

class Request:
    __slots__ = ("language", "mode", "code", "variables", "files", "env", "stream",
                 "persistent", "output_bytes", "output_kill_bytes", "image_bytes",
                 "call", "check", "timeout_ms")


def _int_field(message, name, default):
    value = message.get(name)
    if value is None:
        return default
    if type(value) is not int or value < 0:
        raise InvalidArgs("`%s` must be a non-negative integer" % name)
    return value


def _or_default(message, name, default):
    value = message.get(name)
    return default if value is None else value


def _env_name_ok(name):
    return isinstance(name, str) and name != "" and "=" not in name and "\0" not in name


def parse_exec(message):
    req = Request()
    req.language = message.get("language", "python")
    if req.language not in ("python", "bash"):
        raise InvalidArgs("unsupported language %r" % (req.language,))
    req.mode = message.get("mode") or "script"
    if req.mode not in ("script", "cell"):
        raise InvalidArgs("unknown mode %r" % (req.mode,))
    req.code = message.get("code")
    if not isinstance(req.code, str):
        raise InvalidArgs("`code` must be a string")
    req.variables = _or_default(message, "variables", {})
    if not isinstance(req.variables, dict):
        raise InvalidArgs("`variables` must be an object")
    req.env = _or_default(message, "env", {})
    if not isinstance(req.env, dict):
        raise InvalidArgs("`env` must be an object")
    for name, value in req.env.items():
        if not _env_name_ok(name) or not isinstance(value, str) or "\0" in value:
            raise InvalidArgs("invalid environment variable %r" % (name,))
    req.files = _or_default(message, "files", [])
    if not isinstance(req.files, list):
        raise InvalidArgs("`files` must be a list")
    req.stream = bool(message.get("stream", False))
    req.persistent = bool(message.get("persistent", False))
    req.output_bytes = _int_field(message, "output_bytes", DEFAULT_OUTPUT_BYTES)
    req.output_kill_bytes = _int_field(message, "output_kill_bytes", DEFAULT_OUTPUT_KILL_BYTES)
    req.image_bytes = _int_field(message, "image_bytes", DEFAULT_IMAGE_BYTES)
    req.timeout_ms = _int_field(message, "timeout_ms", 0)  # 0: runbox enforces it alone
    req.call = None
    req.check = None
    call = message.get("call")
    check = message.get("check")
    if call is not None and check is not None:
        raise InvalidArgs("`call` and `check` exclude each other")
    if call is not None:
        if not isinstance(call, dict) or not isinstance(call.get("function"), str):
            raise InvalidArgs("`call` must be {\"function\": name, \"args\": {...}}")
        args = _or_default(call, "args", {})
        if not isinstance(args, dict):
            raise InvalidArgs("`call.args` must be an object")
        req.call = (call["function"], args)
    if check is not None:
        if not isinstance(check, str):
            raise InvalidArgs("`check` must be a function name")
        req.check = check
    if (req.call or req.check) and req.language != "python":
        raise InvalidArgs("`call` and `check` need language python")
    if req.language == "bash":
        if "\0" in req.code:
            raise InvalidArgs("the code contains a NUL byte")
        for name, value in req.variables.items():
            if not _env_name_ok(name) or "\0" in bash_value(value):
                raise InvalidArgs("variable %r cannot be an environment variable" % (name,))
    return req


def bash_value(value):
    if isinstance(value, str):
        return value
    return json_dumps(value, separators=(", ", ": "))


# --------------------------------------------------------------------------------------
# Work dir: input files and images

def write_input_files(files):
    """Writes the request's files below the work dir; never follows a symlink."""
    for index, item in enumerate(files):
        if not isinstance(item, dict):
            raise InvalidArgs("files[%d] must be an object" % index)
        path = item.get("path")
        if not isinstance(path, str) or not path:
            raise InvalidArgs("files[%d] has no path" % index)
        content = item.get("content", "")
        if not isinstance(content, str):
            raise InvalidArgs("input file %r: content must be base64 text" % path)
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if path.startswith("/") or "\0" in path or ".." in parts or not parts:
            raise InvalidArgs("input file %r: the path must be relative and stay inside the work dir" % path)
        import base64
        try:
            data = base64.b64decode(content, validate=True)
        except ValueError:
            raise InvalidArgs("input file %r: content is not valid base64" % path)
        _write_one(path, parts, data)


def _write_one(path, parts, data):
    dir_fd = os.open(WORKDIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=dir_fd)
            except FileExistsError:
                pass
            except OSError as e:
                raise InvalidArgs("input file %r: cannot create directory %r: %s" % (path, part, e.strerror))
            try:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=dir_fd)
            except OSError as e:
                raise InvalidArgs("input file %r: %r is a symlink or not a directory (%s)"
                                  % (path, part, e.strerror))
            os.close(dir_fd)
            dir_fd = next_fd
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, 0o644, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InvalidArgs("input file %r: the path is a symlink" % path)
            raise InvalidArgs("input file %r: %s" % (path, e.strerror))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidArgs("input file %r: the path exists and is not a regular file" % path)
            os.ftruncate(fd, 0)
            write_all(fd, data)
        except OSError as e:
            raise InvalidArgs("input file %r: %s" % (path, e.strerror))
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def image_mime(name):
    base, dot, ext = name.rpartition(".")
    if not dot:
        return None
    return IMAGE_MIME.get(ext.lower())


def snapshot_images():
    snapshot = {}
    try:
        with os.scandir(WORKDIR) as entries:
            for entry in entries:
                if image_mime(entry.name):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        snapshot[entry.name] = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        pass
    return snapshot


def collect_images(before, budget):
    """Images the run created or changed, in name order, up to `budget` bytes in all."""
    after = snapshot_images()
    names = sorted(name for name, key in after.items() if before.get(name) != key)
    if names:
        import base64
    images = []
    total = 0
    truncated = False
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            continue
        try:
            fd = os.open(os.path.join(WORKDIR, name),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            if total + st.st_size > budget:
                truncated = True
                break
            chunks = []
            remaining = st.st_size
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
        except OSError:
            continue
        finally:
            os.close(fd)
        total += len(data)
        images.append({"name": name, "mime": image_mime(name),
                       "data_base64": base64.b64encode(data).decode("ascii")})
    return images, truncated


# --------------------------------------------------------------------------------------
# Output capture

def utf8_cut(data, limit):
    """`data[:limit]` without a trailing partial UTF-8 sequence."""
    data = data[:limit]
    end = len(data)
    back = 0
    while back < 4 and end - back - 1 >= 0:
        byte = data[end - back - 1]
        back += 1
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 6 else 3 if byte >> 4 == 14 else 4 if byte >> 3 == 30 else 1
            if need > back:
                return data[:end - back]
            break
    return data


class Capture:
    """One output stream: keeps at most `cap` bytes, forwards stream events."""

    def __init__(self, name, cap, sink, stream):
        self.name = name
        self.cap = cap
        self.sink = sink
        self.buf = bytearray()
        self.total = 0
        self.dropped = False
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace") if stream else None
        self.pending = []
        self.pending_bytes = 0
        self.pending_since = 0.0

    def feed(self, data):
        self.total += len(data)
        room = self.cap - len(self.buf)
        if room <= 0:
            self.dropped = True
            return
        if len(data) > room:
            data = data[:room]
            self.dropped = True
        self.buf += data
        if self.decoder is not None:
            text = self.decoder.decode(data)
            if text:
                if not self.pending:
                    self.pending_since = time.monotonic()
                self.pending.append(text)
                self.pending_bytes += len(data)

    def due(self):
        """When the pending output should go out as an event (None: nothing pending)."""
        if not self.pending:
            return None
        if self.pending_bytes >= STREAM_FLUSH_BYTES:
            return self.pending_since
        whole_line = any("\n" in part for part in self.pending)
        wait = STREAM_FLUSH_SECONDS if whole_line else STREAM_PARTIAL_LINE_SECONDS
        return self.pending_since + wait

    def flush_events(self, final=False):
        """Sends what is due: at a flush, everything up to the last line end; a line
        still being written only when it has waited long enough, or at the end."""
        if self.decoder is None:
            return
        if final and not self.dropped:
            tail = self.decoder.decode(b"", final=True)
            if tail:
                self.pending.append(tail)
        if not self.pending:
            return
        now = time.monotonic()
        due = self.due()
        if not final and due is not None and now < due:
            return
        text = "".join(self.pending)
        rest = ""
        if not final and now < self.pending_since + STREAM_PARTIAL_LINE_SECONDS \
                and self.pending_bytes < STREAM_FLUSH_BYTES:
            cut = text.rfind("\n") + 1
            if cut > 0:
                text, rest = text[:cut], text[cut:]
        self.pending = [rest] if rest else []
        self.pending_bytes = len(rest.encode("utf-8", "replace"))
        self.pending_since = now if rest else 0.0
        if text:
            self.sink.send({"type": self.name, "data": text})

    def text(self):
        data = bytes(self.buf)
        if self.dropped:
            data = utf8_cut(data, self.cap)
        text = data.decode("utf-8", "replace")
        if len(data) * 3 > self.cap:
            # Each invalid byte became U+FFFD (3 bytes): keep the text within the cap.
            encoded = text.encode("utf-8")
            if len(encoded) > self.cap:
                text = utf8_cut(encoded, self.cap).decode("utf-8", "replace")
                self.dropped = True
        return text


class Pump:
    """Reads the stdout/stderr pipes of a run (and extra fds) with one poll loop."""

    def __init__(self, req, sink, out_fd, err_fd):
        self.captures = {
            out_fd: Capture("stdout", req.output_bytes, sink, req.stream),
            err_fd: Capture("stderr", req.output_bytes, sink, req.stream),
        }
        self.stdout = self.captures[out_fd]
        self.stderr = self.captures[err_fd]
        self.kill_bytes = req.output_kill_bytes
        self.stream = req.stream
        self.over_limit = False
        self.open = set(self.captures)
        self.poller = select.poll()
        for fd in self.captures:
            self.poller.register(fd, select.POLLIN)

    def register(self, fd):
        self.poller.register(fd, select.POLLIN)

    def unregister(self, fd):
        try:
            self.poller.unregister(fd)
        except (KeyError, ValueError):
            pass

    def step(self, timeout):
        """Polls once (timeout in seconds or None); returns events of extra fds."""
        dues = [d for d in (self.stdout.due(), self.stderr.due()) if d is not None] \
            if self.stream else []
        if dues:
            due = min(dues) - time.monotonic()
            timeout = max(0.0, due) if timeout is None else max(0.0, min(timeout, due))
        millis = None if timeout is None else int(timeout * 1000 + 0.999)
        extra = []
        for fd, _ in self.poller.poll(millis):
            capture = self.captures.get(fd)
            if capture is None:
                extra.append(fd)
                continue
            try:
                data = os.read(fd, READ_CHUNK)
            except OSError:
                data = b""
            if not data:
                self.close_fd(fd)
                continue
            capture.feed(data)
            if not self.over_limit and self.stdout.total + self.stderr.total > self.kill_bytes:
                self.over_limit = True
        if self.stream:
            self.flush_events()
        return extra

    def flush_events(self, final=False):
        self.stdout.flush_events(final)
        self.stderr.flush_events(final)

    def close_fd(self, fd):
        if fd in self.open:
            self.open.discard(fd)
            self.unregister(fd)
            os.close(fd)

    def close(self):
        for fd in list(self.open):
            self.close_fd(fd)

    @property
    def truncated(self):
        return self.stdout.dropped or self.stderr.dropped


# --------------------------------------------------------------------------------------
# Values

class _TooLarge(Exception):
    pass


class _NotJson(Exception):
    pass


_VALUE_REPR = None


def value_repr_class():
    """The bounded repr() of values (reprlib is imported by the first run that needs it)."""
    global _VALUE_REPR
    if _VALUE_REPR is not None:
        return _VALUE_REPR
    import reprlib

    class ValueRepr(reprlib.Repr):
        """repr() with bounds on containers, strings and bytes; dicts keep their order."""

        def __init__(self, limit):
            reprlib.Repr.__init__(self)
            self.maxlevel = 20
            self.maxtuple = self.maxlist = self.maxarray = self.maxdict = 10000
            self.maxset = self.maxfrozenset = self.maxdeque = 10000
            self.maxstring = self.maxother = self.maxlong = max(limit, 64)
            self._active = set()

        def repr1(self, x, level):
            # reprlib has no cycle detection of its own (builtin repr() has).
            if isinstance(x, (list, dict, set, frozenset, tuple)) or type(x).__name__ == "deque":
                ident = id(x)
                if ident in self._active:
                    return "[...]" if isinstance(x, list) else "{...}" if isinstance(x, dict) else "..."
                self._active.add(ident)
                try:
                    return reprlib.Repr.repr1(self, x, level)
                finally:
                    self._active.discard(ident)
            return reprlib.Repr.repr1(self, x, level)

        def repr_dict(self, x, level):
            if not x:
                return "{}"
            if level <= 0:
                return "{...}"
            pieces = []
            for index, (key, value) in enumerate(x.items()):
                if index >= self.maxdict:
                    pieces.append("...")
                    break
                pieces.append("%s: %s" % (self.repr1(key, level - 1), self.repr1(value, level - 1)))
            return "{%s}" % ", ".join(pieces)

        def repr_bytes(self, x, level):
            if len(x) > self.maxstring:
                return builtins.repr(x[:self.maxstring]) + "..."
            return builtins.repr(x)

        def repr_bytearray(self, x, level):
            if len(x) > self.maxstring:
                return "bytearray(%s...)" % builtins.repr(bytes(x[:self.maxstring]))
            return builtins.repr(x)

    _VALUE_REPR = ValueRepr
    return ValueRepr


def bounded_repr(value, limit):
    """(text, truncated): repr() cut at `limit` UTF-8 bytes; never raises."""
    try:
        text = value_repr_class()(limit).repr(value)
    except BaseException as e:  # a __repr__ that raises anything at all
        try:
            text = "<%s object (repr failed: %s)>" % (type(value).__name__, type(e).__name__)
        except BaseException:
            text = "<unrepresentable object>"
    encoded = text.encode("utf-8", "replace")
    if len(encoded) > limit:
        return utf8_cut(encoded, limit).decode("utf-8", "replace"), True
    return text, False


def _key(key):
    if isinstance(key, str):
        return "".join((key,))
    if key is None:
        return "null"
    if key is True:
        return "true"
    if key is False:
        return "false"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        return float.__repr__(key)
    return str(key)


def _to_json(obj, budget, depth, active):
    t = type(obj)
    if obj is None or t is bool:
        budget[0] -= 5
    elif t is int:
        budget[0] -= obj.bit_length() // 3 + 2
        if obj.bit_length() > 14000:
            raise _NotJson()
    elif t is float:
        budget[0] -= 24
        if obj != obj or obj in (float("inf"), float("-inf")):
            obj = None
    elif t is str:
        budget[0] -= len(obj) + 2
    else:
        return _to_json_other(obj, t, budget, depth, active)
    if budget[0] < 0:
        raise _TooLarge()
    return obj


def _to_json_other(obj, t, budget, depth, active):
    if depth > 100:
        raise _NotJson()
    # A date or time can exist only once its module was imported; the agent does not.
    datetime = sys.modules.get("datetime")
    module = getattr(t, "__module__", "") or ""
    if module.startswith("numpy"):
        if hasattr(obj, "ndim") and hasattr(obj, "tolist") and getattr(obj, "ndim", 0) > 0:
            if int(getattr(obj, "size", 0)) * 2 > budget[0]:
                raise _TooLarge()
            return _to_json(obj.tolist(), budget, depth + 1, active)
        if hasattr(obj, "item"):
            return _to_json(obj.item(), budget, depth + 1, active)
        raise _NotJson()
    if module.startswith("pandas"):
        if t.__name__ in ("NAType", "NaTType"):
            budget[0] -= 5
            return None
        if datetime is not None and isinstance(obj, datetime.datetime):
            return _to_json(obj.isoformat(), budget, depth, active)
        size = getattr(obj, "size", None)
        if isinstance(size, int) and size * 2 > budget[0]:
            raise _TooLarge()
        if hasattr(obj, "to_dict"):
            return _to_json(obj.to_dict(), budget, depth + 1, active)
        if hasattr(obj, "tolist"):
            return _to_json(obj.tolist(), budget, depth + 1, active)
        raise _NotJson()
    if datetime is not None and isinstance(obj, (datetime.date, datetime.time)):
        return _to_json(obj.isoformat(), budget, depth, active)
    if isinstance(obj, str):
        return _to_json("".join((obj,)), budget, depth, active)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return _to_json(int(obj), budget, depth, active)
    if isinstance(obj, float):
        return _to_json(float(obj), budget, depth, active)
    ident = id(obj)
    if ident in active:
        raise _NotJson()  # a cycle
    if isinstance(obj, dict):
        budget[0] -= 2
        active.add(ident)
        out = {}
        for key, value in obj.items():
            key = _key(key)
            budget[0] -= len(key) + 4
            out[key] = _to_json(value, budget, depth + 1, active)
        active.discard(ident)
        return out
    if isinstance(obj, (set, frozenset)):
        try:
            items = sorted(obj)
        except Exception:
            items = list(obj)
    elif isinstance(obj, (list, tuple)) or type(obj).__name__ == "deque":
        items = obj
    else:
        raise _NotJson()
    budget[0] -= 2 + len(items)
    if budget[0] < 0:
        raise _TooLarge()
    active.add(ident)
    out = [_to_json(item, budget, depth + 1, active) for item in items]
    active.discard(ident)
    return out


def encode_value(value, limit):
    """(json-able value, truncated). Never raises."""
    try:
        obj = _to_json(value, [limit], 0, set())
        text = json_dumps(obj, allow_nan=False)
        if len(text) <= limit // 4 or len(text.encode("utf-8", "replace")) <= limit:
            return obj, False
        return bounded_repr(value, limit)[0], True
    except _TooLarge:
        return bounded_repr(value, limit)[0], True
    except BaseException:
        return bounded_repr(value, limit)


# --------------------------------------------------------------------------------------
# Python execution (shared by one-shot children and persistent sessions)

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


class LinecacheSeed:
    """A finder on sys.meta_path that finds nothing itself: when something imports
    linecache (a traceback being formatted, a warning, the user's code), it lets the
    real finder load it and then puts the user's source into its cache. Importing
    linecache with every run instead costs a fresh sandbox several ms of CPU
    (linecache imports tokenize, and tokenize re)."""

    def __init__(self, source):
        self.entry = linecache_entry(source)
        self.done = False

    def find_spec(self, name, path=None, target=None):
        if name != "linecache" or self.done:
            return None
        self.done = True
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _SeedingLoader(spec.loader, self.entry)
                return spec
        return None


class _SeedingLoader:
    """linecache's own loader, which then adds the user's source to its cache."""

    def __init__(self, loader, entry):
        self.loader = loader
        self.entry = entry

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module looks as if it had been loaded the usual way.
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        module.cache[USER_FILE] = self.entry


def show_user_source(code):
    """Tracebacks and warnings show the lines of USER_FILE from linecache's cache."""
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        linecache.cache[USER_FILE] = linecache_entry(code)
    else:
        sys.meta_path.insert(0, LinecacheSeed(code))


def compile_user_code(req, show_source):
    """(body code, trailing expression code or None)."""
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
            return body, expr
        return compile(tree, USER_FILE, "exec", dont_inherit=True), None
    return compile(req.code, USER_FILE, "exec", dont_inherit=True), None


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
    __slots__ = ("exit_code", "has_value", "value", "error", "truncated")

    def __init__(self):
        self.exit_code = 0
        self.has_value = False
        self.value = None
        self.error = None
        self.truncated = False

    def as_dict(self):
        return {"exit_code": self.exit_code, "has_value": self.has_value, "value": self.value,
                "error": self.error, "truncated": self.truncated}


def execute_python(req, namespace, show_source=True):
    """Runs python code in `namespace`; returns an Outcome. Never raises (except
    OutputLimit, which the persistent caller handles)."""
    outcome = Outcome()
    print_traceback = req.mode == "script" and req.call is None and req.check is None
    try:
        body, expr = compile_user_code(req, show_source)
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


# --------------------------------------------------------------------------------------
# One-shot runs: a forked child per exec

def read_oom_kills():
    if OOM_PATH is None:
        return None
    try:
        with open(OOM_PATH, "rb") as f:
            for line in f:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def reap_children():
    """Reaps the runs' children that were left to finish exiting. Only pids the agent
    forked: a session's own subprocesses keep their exit status for the user's wait().
    As pid 1 (no init in the container) outside sessions, every orphan too."""
    for pid in list(UNREAPED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done == pid:
            UNREAPED.discard(pid)
    if os.getpid() == 1 and SESSION is None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except OSError:
                return
            if pid == 0:
                return
            UNREAPED.discard(pid)


def kill_leftovers(pgid, sweep):
    """Kills the run's process group and, in a container, every process but pid 1
    and the agent (user code can leave the group with setsid). The run's own child
    (pid == pgid) has been killed or reaped already and is skipped."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    if not sweep:
        return
    me = os.getpid()
    for _ in range(200):
        found = False
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            if pid == 1 or pid == me or pid == pgid:
                continue
            try:
                with open("/proc/%d/stat" % pid, "rb") as f:
                    fields = f.read()
            except OSError:
                continue
            state = fields[fields.rfind(b")") + 2:fields.rfind(b")") + 3]
            if state in (b"Z", b"X"):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                found = True
            except OSError:
                pass
        reap_children()
        if not found:
            return
        time.sleep(0.002)


def deadline_of(req, started):
    """When the run's time is up (monotonic), or None where runbox alone enforces it.
    The agent stops the code itself so that the output written until then is kept."""
    return started + req.timeout_ms / 1000.0 if req.timeout_ms else None


def timeout_error(req):
    seconds = req.timeout_ms / 1000.0
    limit = "%d s" % seconds if seconds == int(seconds) else "%.1f s" % seconds
    message = "execution exceeded the time limit of %s" % limit
    if req.persistent:
        message += "; the session has ended"
    return error("timeout", message)


def run_forked(req, sink, sweep, message):
    write_input_files(req.files)
    before = snapshot_images()
    oom_before = read_oom_kills()
    started = time.monotonic()
    deadline = deadline_of(req, started)
    timed_out = False
    child = hand_to_prefork(message)
    if child is not None:
        pid, out_r, err_r, res_r = child
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        flush_std_streams()  # nothing buffered in the agent may reach the child's output
        pid = os.fork()
        if pid == 0:  # the child never returns
            code = 70
            try:
                code = child_main(req, out_w, err_w, res_w, (out_r, err_r, res_r))
            finally:
                os._exit(code)
        os.close(out_w)
        os.close(err_w)
        os.close(res_w)

    pump = Pump(req, sink, out_r, err_r)
    pump.open.add(res_r)  # closed with the others
    pump.register(res_r)
    res_chunks = []
    res_size = 0
    res_limit = 3 * req.output_bytes + (1 << 20)
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
            pump.register(pidfd)
        except OSError:
            pidfd = None
    status = None
    ended = None
    killed_for_output = False
    res_done = False
    try:
        while True:
            if status is None:
                if res_done and not pump.open and not killed_for_output:
                    # The child sent its result and closed its pipes, and nothing else
                    # holds them: it is exiting. Do not wait for the kernel to tear its
                    # address space down; it is reaped later.
                    ended = time.monotonic()
                    break
                timeout = None if pidfd is not None else 0.02
                if deadline is not None and not timed_out:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        timed_out = True
                        ended = time.monotonic()
                        try:  # the sweep of the rest follows below, once it is reaped
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass
                        timeout = 0.02
                    elif timeout is None or left < timeout:
                        timeout = left
            else:
                if not pump.open:
                    break
                timeout = ended + DRAIN_SECONDS - time.monotonic()
                if timeout <= 0:
                    break
            for fd in pump.step(timeout):
                if fd == res_r:
                    try:
                        data = os.read(res_r, READ_CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        pump.close_fd(res_r)
                        res_done = bool(res_chunks) and res_size <= res_limit
                    else:
                        res_size += len(data)
                        if res_size <= res_limit:
                            res_chunks.append(data)
            if pump.over_limit and not killed_for_output:
                killed_for_output = True
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    status = st
                    if ended is None:
                        ended = time.monotonic()
                    if pidfd is not None:
                        pump.unregister(pidfd)
                        os.close(pidfd)
                        pidfd = None
    finally:
        if status is None:
            # Exiting after its result (see above), or an agent error: either way the
            # child must not go on running.
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            UNREAPED.add(pid)
            if ended is None:
                ended = time.monotonic()
        if pidfd is not None:
            os.close(pidfd)
        kill_leftovers(pid, sweep)
        pump.close()
    pump.flush_events(final=True)

    child = None
    if res_chunks and res_size <= res_limit:
        try:
            child = json_loads(b"".join(res_chunks))
            if not isinstance(child, dict):
                child = None
        except ValueError:
            child = None
    if status is not None:
        exit_code = os.waitstatus_to_exitcode(status)
    elif child is not None and isinstance(child.get("exit_code"), int):
        exit_code = child["exit_code"]
    else:
        exit_code = -signal.SIGKILL
        child = None
    oom_after = read_oom_kills()
    oom = oom_before is not None and oom_after is not None and oom_after > oom_before

    has_value = False
    value = None
    value_truncated = False
    err = None
    if timed_out:
        err = timeout_error(req)
    elif killed_for_output:
        err = error("output_limit", "the run wrote more than %d bytes of output and was stopped"
                    % req.output_kill_bytes)
    elif exit_code < 0:
        signum = -exit_code
        if oom:
            err = error("memory", "out of memory: the run was killed by the kernel's OOM killer (%s)"
                        % SIGNAL_NAMES.get(signum, signum))
        else:
            err = error("killed", "killed by signal %d (%s)" % (signum, SIGNAL_NAMES.get(signum, "?")))
    else:
        if child is not None:
            has_value = bool(child.get("has_value"))
            value = child.get("value")
            value_truncated = bool(child.get("truncated"))
            err = child.get("error")
        if err is None and exit_code != 0:
            if oom:
                err = error("memory", "out of memory: a process of the run was killed by the "
                                      "kernel's OOM killer (exit code %d)" % exit_code)
            else:
                err = error("runtime", "exited with code %d" % exit_code)
        elif err is not None and oom and err.get("kind") == "runtime":
            err["kind"] = "memory"
    images, images_truncated = collect_images(before, req.image_bytes)
    return result_message(
        stdout=pump.stdout.text(),
        stderr=pump.stderr.text(),
        exit_code=exit_code,
        has_value=has_value and err is None,
        value=value if has_value and err is None else None,
        error=err,
        images=images,
        truncated=pump.truncated or value_truncated or images_truncated,
        duration_ms=(ended - started) * 1000.0,
        session_ended=timed_out and req.persistent,
    )


def child_main(req, out_w, err_w, res_w, parent_fds):
    """In the forked child: set up the process and run the code. Returns the exit code."""
    prepare_child(out_w, err_w, parent_fds)
    return run_child(req, res_w)


# --------------------------------------------------------------------------------------
# Prefork: with numpy and matplotlib loaded, fork() and the child's set-up take several
# milliseconds, more than running a small snippet. The agent forks the child of its
# first one-shot run while it waits for work; the request then only travels through a
# pipe. A one-shot sandbox serves one run, so later runs fork on demand as before.

def fork_prepared(serve):
    """Forks a prepared child (see prepare_child) that runs serve(req_r, res_w) and
    exits with its code; returns (pid, req_w, res_r, out_r, err_r), the agent's ends."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    req_r, req_w = os.pipe()
    flush_std_streams()
    pid = os.fork()
    if pid == 0:  # the child never returns
        code = 70
        try:
            prepare_child(out_w, err_w, (out_r, err_r, res_r, req_w))
            code = serve(req_r, res_w)
        finally:
            flush_std_streams()
            os._exit(code)
    for fd in (out_w, err_w, res_w, req_r):
        os.close(fd)
    AGENT_FDS.update((req_w, out_r, err_r, res_r))
    return pid, req_w, res_r, out_r, err_r


def prefork():
    global PREFORK
    pid, req_w, res_r, out_r, err_r = fork_prepared(prefork_child)
    PREFORK = (pid, req_w, out_r, err_r, res_r)


def prefork_child(req_r, res_w):
    """Waits for the exec message (the parent closes the pipe after it), then runs it."""
    chunks = []
    while True:
        try:
            data = os.read(req_r, 1 << 20)
        except InterruptedError:
            continue
        if not data:
            break
        chunks.append(data)
    os.close(req_r)
    if not chunks:
        return 0  # not needed after all
    return run_child(parse_exec(json_loads(b"".join(chunks))), res_w)


def hand_to_prefork(message):
    """Sends `message` to the child forked ahead; returns (pid, out_r, err_r, res_r), or
    None when there is none or it died meanwhile (the caller forks then)."""
    global PREFORK
    child, PREFORK = PREFORK, None
    if child is None:
        return None
    pid, req_w, out_r, err_r, res_r = child
    AGENT_FDS.difference_update((req_w, out_r, err_r, res_r))
    # The parent has written the input files already.
    body = json_dumps({k: v for k, v in message.items() if k != "files"},
                      ensure_ascii=True).encode("utf-8")
    try:
        write_all(req_w, body)
        os.close(req_w)
        return pid, out_r, err_r, res_r
    except OSError:
        for fd in (req_w, out_r, err_r, res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        UNREAPED.add(pid)
        return None


def discard_prefork():
    """A persistent run needs no forked child: the waiting one exits on end of file."""
    global PREFORK
    child, PREFORK = PREFORK, None
    if child is None:
        return
    pid, req_w, out_r, err_r, res_r = child
    AGENT_FDS.difference_update((req_w, out_r, err_r, res_r))
    for fd in (req_w, out_r, err_r, res_r):
        try:
            os.close(fd)
        except OSError:
            pass
    UNREAPED.add(pid)


def set_dumpable(flag):
    """prctl(PR_SET_DUMPABLE): a process that is not dumpable has its /proc/<pid> owned
    by root, so that processes of the same user (the code) cannot open its fds, read its
    memory or ptrace it. The agent is not; its children, which hold none of its
    channels, are made so again for the code's sake."""
    global LIBC
    try:
        if LIBC is None:
            import ctypes
            LIBC = ctypes.CDLL(None, use_errno=True)
        if LIBC.prctl(PR_SET_DUMPABLE, 1 if flag else 0, 0, 0, 0) != 0:
            diag("prctl(PR_SET_DUMPABLE) failed: errno %d" % sys.modules["ctypes"].get_errno())
    except Exception as exc:
        diag("cannot set the dumpable flag: %s: %s" % (type(exc).__name__, exc))


def prepare_child(out_w, err_w, parent_fds):
    """In a forked child, before it knows its request: no key, own session, only its
    own pipes open, first in line for the OOM killer."""
    global DIAG_FD
    DIAG_FD = -1
    for index in range(len(AGENT_KEY)):
        AGENT_KEY[index] = 0
    try:
        os.setsid()
    except OSError:
        pass
    for fd in list(AGENT_FDS) + list(parent_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    set_dumpable(True)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the agent's is SIG_IGN as pid 1
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    settle_interpreter()


def run_child(req, res_w):
    """In a prepared child: runs the code, writes the outcome. Returns the exit code."""
    me = os.getpid()
    try:
        os.chdir(WORKDIR)
        os.environ["HOME"] = WORKDIR
        os.environ.update(req.env)
        if req.language == "bash":
            exec_bash(req)  # returns only when exec failed
            raise OSError("cannot run bash")
        outcome = run_python_child(req)
    except BaseException as exc:
        outcome = Outcome()
        outcome.exit_code = 70
        outcome.error = error("killed", "agent error: %s: %s" % (type(exc).__name__, exc))
    if os.getpid() != me:
        # A process the code forked that ran off the end of the code: it exits like
        # the rest of the code would, without a second outcome message.
        return outcome.exit_code
    try:
        data = json_dumps(outcome.as_dict()).encode("utf-8", "replace")
        write_all(res_w, data)
    except BaseException:
        pass
    # Closing every pipe tells the agent that the run is over (see run_forked).
    for fd in (1, 2, res_w):
        try:
            os.close(fd)
        except OSError:
            pass
    return outcome.exit_code


def exec_bash(req):
    env = dict(os.environ)
    for name, value in req.variables.items():
        env[name] = bash_value(value)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    if BASH is None:
        raise OSError("bash is not installed in this image")
    os.execve(BASH, ["bash", "-c", req.code], env)


def new_user_module(name):
    module = type(sys)(name)
    module.__dict__["__builtins__"] = builtins
    module.__dict__["__annotations__"] = {}
    return module


def settle_interpreter():
    """What a child's interpreter needs whatever it will run: argv and path as under
    `python -c`, numpy's global generator reseeded (fork copies its state, unlike that
    of `random`). Done before the request arrives where the child is forked ahead."""
    sys.argv = ["-c"]
    if sys.path and sys.path[0] != "":
        sys.path[0] = ""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        try:
            numpy_random.seed()
        except BaseException:
            pass


def run_python_child(req):
    name = "__runbox__" if (req.call or req.check) else "__main__"
    module = new_user_module(name)
    sys.modules["__main__"] = module
    if name != "__main__":
        sys.modules[name] = module
    namespace = module.__dict__
    namespace.update(req.variables)
    outcome = execute_python(req, namespace)
    # What `python -c` does at exit: join non-daemon threads, run atexit handlers.
    # Threads exist only if the code imported threading (the agent does not).
    threading = sys.modules.get("threading")
    try:
        if threading is not None:
            threading._shutdown()
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    flush_std_streams()
    return outcome


# --------------------------------------------------------------------------------------
# Persistent runs (sessions): a python session's code runs in a process of its own,
# the session's kernel, forked once and kept between executions. The agent keeps the
# channel to runbox; the kernel holds none of its descriptors and cannot open them
# (the agent is not dumpable), so code in a session cannot speak for the agent.

_limit_armed = False


def _on_output_limit(signum, frame):
    if _limit_armed:
        raise OutputLimit()


def ensure_std_streams():
    """Sessions: a user who closed sys.stdout/sys.stderr gets working ones back."""
    for name, fd, errors in (("stdout", 1, "strict"), ("stderr", 2, "backslashreplace")):
        stream = getattr(sys, name, None)
        if stream is None or getattr(stream, "closed", False):
            setattr(sys, name, open(fd, "w", buffering=1, encoding="utf-8", errors=errors,
                                    closefd=False))


def write_message(fd, message):
    """A length-prefixed JSON message on a pipe between the agent and the kernel."""
    body = json_dumps(message, ensure_ascii=True).encode("utf-8")
    write_all(fd, struct.pack(">I", len(body)) + body)


def start_kernel():
    global KERNEL
    KERNEL = fork_prepared(kernel_main)


def stop_kernel():
    """Kills the kernel and everything it started; the session's state is gone."""
    global KERNEL
    kernel, KERNEL = KERNEL, None
    if kernel is None:
        return
    pid = kernel[0]
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    kill_leftovers(pid, True)
    for fd in kernel[1:]:
        AGENT_FDS.discard(fd)
        try:
            os.close(fd)
        except OSError:
            pass
    UNREAPED.add(pid)


def kernel_main(req_r, res_w):
    """In the kernel: runs each request in the session's module until end of file."""
    global SESSION
    me = os.getpid()
    SESSION = new_user_module("__main__")
    signal.signal(signal.SIGUSR1, _on_output_limit)
    while True:
        header = read_exact(req_r, 4)
        if header is None:
            return 0
        body = read_exact(req_r, struct.unpack(">I", header)[0])
        if body is None:
            return 0
        try:
            outcome = kernel_run(parse_exec(json_loads(body)))
        except BaseException as exc:
            outcome = Outcome()
            outcome.exit_code = 70
            outcome.error = error("killed", "agent error: %s: %s" % (type(exc).__name__, exc))
        if os.getpid() != me:
            # A process the code forked that ran off the end of the code: it exits like
            # the rest of the code would, without a second outcome.
            return outcome.exit_code
        write_message(res_w, outcome.as_dict())


def kernel_run(req):
    global _limit_armed
    namespace = SESSION.__dict__
    sys.modules["__main__"] = SESSION
    os.chdir(WORKDIR)
    os.environ["HOME"] = WORKDIR
    os.environ.update(req.env)
    namespace.update(req.variables)
    ensure_std_streams()
    hidden = req.call is not None or req.check is not None
    saved_name = namespace.get("__name__")
    outcome = None
    _limit_armed = True
    try:
        if hidden:
            namespace["__name__"] = "__runbox__"
        try:
            outcome = execute_python(req, namespace, show_source=False)
        except OutputLimit:
            pass
        _limit_armed = False
    except OutputLimit:  # arrived between execute_python and disarming
        pass
    finally:
        _limit_armed = False
        if hidden:
            namespace["__name__"] = saved_name
        flush_std_streams()
        try:
            os.chdir(WORKDIR)
        except OSError:
            pass
    if outcome is None:  # stopped for its output; the agent says so
        outcome = Outcome()
        outcome.exit_code = 1
    return outcome


def kernel_outcome(data):
    """The kernel's answer, checked: the code can write on that pipe too, and all it may
    decide is what the code could decide anyway (its value, its error)."""
    try:
        length = struct.unpack(">I", bytes(data[:4]))[0]
        answer = json_loads(bytes(data[4:4 + length]))
    except (ValueError, struct.error):
        return None
    if not isinstance(answer, dict):
        return None
    err = answer.get("error")
    if err is not None and not (isinstance(err, dict) and err.get("kind") in ERROR_KINDS
                                and isinstance(err.get("message"), str)):
        return None
    exit_code = answer.get("exit_code")
    return {
        "exit_code": exit_code if type(exit_code) is int else 1,
        "has_value": answer.get("has_value") is True,
        "value": answer.get("value"),
        "error": err,
        "truncated": answer.get("truncated") is True,
    }


def run_in_kernel(req, sink, message):
    if KERNEL is None:
        start_kernel()
    pid, req_w, res_r, out_r, err_r = KERNEL
    write_input_files(req.files)
    before = snapshot_images()
    oom_before = read_oom_kills()
    started = time.monotonic()
    deadline = deadline_of(req, started)
    pump = Pump(req, sink, os.dup(out_r), os.dup(err_r))
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
            pump.register(pidfd)
        except OSError:
            pidfd = None
    pump.register(res_r)
    answer = None
    answer_bytes = bytearray()
    ended_how = None  # None (answered), "timeout" or "died"
    signalled_at = None
    try:
        write_message(req_w, {k: v for k, v in message.items() if k != "files"})
    except OSError:
        ended_how = "died"
    try:
        while ended_how is None and answer is None:
            timeout = None if pidfd is not None else 0.02
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    ended_how = "timeout"
                    break
                timeout = left if timeout is None else min(timeout, left)
            if pump.over_limit:
                timeout = 0.1 if timeout is None else min(timeout, 0.1)
            for fd in pump.step(timeout):
                if fd == res_r:
                    try:
                        data = os.read(res_r, READ_CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        ended_how = "died"
                        break
                    answer_bytes += data
                    if len(answer_bytes) > 3 * req.output_bytes + (1 << 20):
                        ended_how = "died"  # a kernel that answers this much misbehaves
                        break
                    if len(answer_bytes) >= 4 and \
                            len(answer_bytes) >= 4 + struct.unpack(">I", bytes(answer_bytes[:4]))[0]:
                        answer = kernel_outcome(answer_bytes)
                        if answer is None:
                            ended_how = "died"
                elif fd == pidfd:
                    ended_how = "died"
            if pump.over_limit and ended_how is None and answer is None:
                now = time.monotonic()
                if signalled_at is None or now - signalled_at > 0.1:
                    signalled_at = now
                    try:
                        os.kill(pid, signal.SIGUSR1)
                    except OSError:
                        pass
        ended = time.monotonic()
        pump.unregister(res_r)
        if pidfd is not None:
            pump.unregister(pidfd)
            os.close(pidfd)
            pidfd = None
        status = None
        if ended_how == "died":
            try:  # how it ended, before the sweep (as pid 1 the agent reaps every orphan)
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                status = os.waitpid(pid, 0)[1]
            except ChildProcessError:
                pass
        if ended_how is not None:
            stop_kernel()
        drain_until = time.monotonic() + DRAIN_SECONDS
        while pump.open and time.monotonic() < drain_until:
            if not [fd for fd, _ in pump.poller.poll(0) if fd in pump.captures]:
                if ended_how is None:
                    break  # everything written before the answer has been read
                pump.step(drain_until - time.monotonic())
            else:
                pump.step(0)
    finally:
        if pidfd is not None:
            os.close(pidfd)
        pump.close()
    pump.flush_events(final=True)

    has_value = False
    value = None
    truncated = False
    exit_code = 1
    oom_after = read_oom_kills()
    oom = oom_before is not None and oom_after is not None and oom_after > oom_before
    if ended_how == "timeout":
        err = timeout_error(req)
    elif ended_how == "died":
        if status is not None and os.waitstatus_to_exitcode(status) < 0:
            signum = -os.waitstatus_to_exitcode(status)
            how = "was killed by signal %d (%s)" % (signum, SIGNAL_NAMES.get(signum, "?"))
        elif status is not None:
            how = "exited with code %d" % os.waitstatus_to_exitcode(status)
        else:
            how = "stopped answering"
        if oom:
            err = error("memory", "out of memory: the session's interpreter was killed by the "
                                  "kernel's OOM killer; the session has ended")
        else:
            err = error("killed", "the session's interpreter %s; the session has ended" % how)
    elif pump.over_limit:
        err = error("output_limit", "the run wrote more than %d bytes of output and was stopped"
                    % req.output_kill_bytes)
    else:
        exit_code = answer["exit_code"]
        err = answer["error"]
        has_value = answer["has_value"] and err is None
        value = answer["value"] if has_value else None
        truncated = answer["truncated"]
        if err is not None and oom and err.get("kind") == "runtime":
            err["kind"] = "memory"
    images, images_truncated = collect_images(before, req.image_bytes)
    return result_message(
        stdout=pump.stdout.text(),
        stderr=pump.stderr.text(),
        exit_code=exit_code,
        has_value=has_value,
        value=value,
        error=err,
        images=images,
        truncated=pump.truncated or truncated or images_truncated,
        duration_ms=(ended - started) * 1000.0,
        session_ended=ended_how is not None,
    )


# Between a session's executions nothing of it runs: every process but the agent (and
# the container's init) is stopped when an execution ends and continued when the next
# one begins, so that work left in the background uses no CPU outside an admitted run.

def other_processes():
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit() and int(n) not in (1, me)]


def freeze_session():
    # Stopping is not atomic: a process may fork meanwhile. A few passes catch those.
    for _ in range(10):
        fresh = [pid for pid in other_processes() if pid not in FROZEN]
        if not fresh:
            return
        for pid in fresh:
            try:
                os.kill(pid, signal.SIGSTOP)
                FROZEN.add(pid)
            except OSError:
                pass


def thaw_session():
    for pid in FROZEN:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    FROZEN.clear()


# --------------------------------------------------------------------------------------
# Dispatch

def run_exec(message, sink):
    thaw_session()
    try:
        req = parse_exec(message)
        if req.persistent and req.language == "python":
            discard_prefork()
            result = run_in_kernel(req, sink, message)
        else:
            result = run_forked(req, sink, KILL_STRAYS and not req.persistent, message)
        if req.persistent and not result["session_ended"]:
            freeze_session()
    except InvalidArgs as exc:
        result = result_message(error=error("invalid_args", str(exc)))
    sink.send(result)


def handle_frame(body, sink):
    try:
        try:
            message = json_loads(body)
        except ValueError as exc:
            sink.send(agent_error_result("malformed message: %s" % exc))
            return
        if not isinstance(message, dict):
            sink.send(agent_error_result("malformed message: not a JSON object"))
            return
        kind = message.get("type")
        if kind == "exec":
            run_exec(message, sink)
        elif kind == "ping":
            sink.send({"type": "pong"})
        else:
            sink.send(agent_error_result("unknown message type %r" % (kind,)))
    except BaseException as exc:  # never die silently
        if os.getpid() != AGENT_PID:  # a forked child must never return into the loop
            os._exit(70)
        import traceback
        diag("error handling a message: %s" % "".join(
            traceback.format_exception_only(type(exc), exc)).strip())
        try:
            sink.send(agent_error_result("%s: %s" % (type(exc).__name__, exc)))
        except BaseException:
            pass
    finally:
        reap_children()


# --------------------------------------------------------------------------------------
# stdio transport

def read_exact(fd, count):
    chunks = []
    while count > 0:
        data = os.read(fd, min(count, 1 << 20))
        if not data:
            return None
        chunks.append(data)
        count -= len(data)
    return b"".join(chunks)


def serve_stdio(proto_in, proto_out):
    sink = StdioSink(proto_out)
    sink.send(READY)
    while not sink.broken:
        header = read_exact(proto_in, 4)
        if header is None:
            return
        (length,) = struct.unpack(">I", header)
        if length > MAX_INPUT_FRAME:
            while length > 0:
                data = os.read(proto_in, min(length, 1 << 20))
                if not data:
                    return
                length -= len(data)
            sink.send(agent_error_result("malformed message: a frame larger than %d bytes"
                                         % MAX_INPUT_FRAME))
            continue
        body = read_exact(proto_in, length)
        if body is None:
            return
        handle_frame(body, sink)


# --------------------------------------------------------------------------------------
# http transport: a small single-threaded HTTP/1.1 server (keep-alive, chunked replies)

MAX_HEADER_BYTES = 64 << 10
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           431: "Request Header Fields Too Large"}


class HttpConnection:
    def __init__(self, sock):
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = b""


def http_respond(conn, status, body, keep_alive, content_type="application/json", extra=""):
    head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
        status, REASONS.get(status, "Error"), content_type, len(body), extra,
        "" if keep_alive else "Connection: close\r\n")
    conn.sock.sendall(head.encode("ascii") + body)


def http_json(conn, status, message, keep_alive, extra=""):
    body = json_dumps(message, ensure_ascii=True).encode("utf-8")
    http_respond(conn, status, body, keep_alive, extra=extra)


def http_handle(conn):
    """Handles every complete request in conn.buf; returns False to close."""
    while True:
        end = conn.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.buf) > MAX_HEADER_BYTES:
                http_json(conn, 431, {"error": "headers too large"}, False)
                return False
            return True
        head = conn.buf[:end].decode("latin-1")
        conn.buf = conn.buf[end + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            http_json(conn, 400, {"error": "bad request line"}, False)
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                http_json(conn, 400, {"error": "bad header"}, False)
                return False
            headers[name.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            http_json(conn, 411, {"error": "chunked request bodies are not supported"}, False)
            return False
        try:
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError()
        except ValueError:
            http_json(conn, 400, {"error": "bad Content-Length"}, False)
            return False
        if length > MAX_INPUT_FRAME:
            http_json(conn, 413, {"error": "body too large"}, False)
            return False
        key = headers.get("x-runbox-key", "").encode("latin-1")
        authorized = bool(AGENT_KEY) and compare_digest(key, bytes(AGENT_KEY))
        if authorized and length > len(conn.buf) and headers.get("expect", "").lower() == "100-continue":
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if length and (authorized or length <= MAX_HEADER_BYTES):
            conn.sock.settimeout(30)
            try:
                while len(conn.buf) < length:
                    data = conn.sock.recv(min(1 << 20, length - len(conn.buf) + 65536))
                    if not data:
                        return False
                    conn.buf += data
            finally:
                conn.sock.settimeout(None)
        elif length:
            http_json(conn, 403, {"error": "forbidden"}, False)
            return False
        body, conn.buf = conn.buf[:length], conn.buf[length:]
        path = target.split("?", 1)[0]
        if not authorized:
            http_json(conn, 403, {"error": "forbidden"}, keep_alive)
        elif path in ("/ready", "/ping"):
            if method != "GET":
                http_json(conn, 405, {"error": "method not allowed"}, keep_alive, "Allow: GET\r\n")
            else:
                http_json(conn, 200, READY if path == "/ready" else {"type": "pong"}, keep_alive)
        elif path == "/exec":
            if method != "POST":
                http_json(conn, 405, {"error": "method not allowed"}, keep_alive, "Allow: POST\r\n")
            else:
                chunked = version == "HTTP/1.1"
                keep_alive = keep_alive and chunked
                conn.sock.sendall((
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-runbox-frames\r\n"
                    "Cache-Control: no-store\r\n%s\r\n"
                    % ("Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n")
                ).encode("ascii"))
                sink = HttpSink(conn.sock, chunked)
                handle_frame(body, sink)
                sink.end()
                if sink.broken:
                    return False
        else:
            http_json(conn, 404, {"error": "not found"}, keep_alive)
        if not keep_alive:
            return False


def serve_http(port):
    # Imported here: hmac pulls in OpenSSL, milliseconds of every stdio sandbox's start.
    global compare_digest
    from hmac import compare_digest
    import socket
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(16)
    AGENT_FDS.add(server.fileno())
    diag("listening on 0.0.0.0:%d" % port)
    poller = select.poll()
    poller.register(server.fileno(), select.POLLIN)
    connections = {}

    def close(conn):
        poller.unregister(conn.fd)
        AGENT_FDS.discard(conn.fd)
        connections.pop(conn.fd, None)
        try:
            conn.sock.close()
        except OSError:
            pass

    while True:
        for fd, _ in poller.poll():
            if fd == server.fileno():
                try:
                    sock, _ = server.accept()
                except OSError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = HttpConnection(sock)
                connections[conn.fd] = conn
                AGENT_FDS.add(conn.fd)
                poller.register(conn.fd, select.POLLIN)
                continue
            conn = connections.get(fd)
            if conn is None:
                continue
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(conn)
                continue
            conn.buf += data
            try:
                keep = http_handle(conn)
            except OSError:
                keep = False
            except BaseException as exc:
                if os.getpid() != AGENT_PID:
                    os._exit(70)
                diag("http error: %s: %s" % (type(exc).__name__, exc))
                keep = False
            if not keep:
                close(conn)
        reap_children()


# --------------------------------------------------------------------------------------
# Start-up

def scrub_environ_memory(name):
    """Overwrites NAME's value in this process's original environment block, so
    /proc/<agent>/environ no longer shows it (best effort)."""
    try:
        with open("/proc/self/environ", "rb") as f:
            block = f.read()
        with open("/proc/self/stat", "rb") as f:
            fields = f.read()
        fields = fields[fields.rfind(b")") + 2:].split()
        env_start = int(fields[47])  # field 50 of proc(5)
        prefix = name.encode() + b"="
        offset = 0
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            for entry in block.split(b"\0"):
                if entry.startswith(prefix):
                    mem.seek(env_start + offset + len(prefix))
                    mem.write(b"\0" * (len(entry) - len(prefix)))
                offset += len(entry) + 1
    except (OSError, ValueError, IndexError):
        pass


def seed_matplotlib_cache():
    """matplotlib needs a writable config/cache dir; the root fs is read-only. Point it
    at /tmp and copy the font cache built into the image, so no warning is printed and
    the font list is not rebuilt."""
    seed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "matplotlib")
    if not os.path.isdir(seed):
        return
    target = os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")
    try:
        os.makedirs(target, mode=0o700, exist_ok=True)
        for name in os.listdir(seed):
            source = os.path.join(seed, name)
            destination = os.path.join(target, name)
            if os.path.isfile(source) and not os.path.exists(destination):
                with open(source, "rb") as src, open(destination, "wb") as dst:
                    dst.write(src.read())
    except OSError as exc:
        diag("cannot seed the matplotlib cache: %s" % exc)


def warm_matplotlib():
    """Draws and saves one small figure, so that the backend, the font files and the PNG
    writer are loaded once here rather than by every run's first plot (tens of ms).
    Closed again: the run's first figure is still figure 1."""
    try:
        plt = sys.modules["matplotlib.pyplot"]
        fig = plt.figure(figsize=(2, 2), dpi=50)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1])
        ax.set_title("warm-up")
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    except BaseException as exc:
        diag("matplotlib warm-up failed: %s: %s" % (type(exc).__name__, exc))


def preload(names):
    preloaded = []
    failed = []
    for name in names:
        try:
            __import__(name)
            if name == "matplotlib":
                # What plotting code imports; the package alone saves little.
                __import__("matplotlib.pyplot")
                warm_matplotlib()
            preloaded.append(name)
        except BaseException as exc:  # a failed preload is reported, not fatal
            message = "%s: %s" % (type(exc).__name__, exc)
            diag("preload of %s failed: %s" % (name, message))
            failed.append({"module": name, "error": message})
    return preloaded, failed


def find_executable(name):
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def main():
    global WORKDIR, DIAG_FD, READY, BASH, OOM_PATH, KILL_STRAYS, AGENT_PID
    AGENT_PID = os.getpid()
    # The protocol channel moves off fds 0/1, so no stray write can corrupt frames.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    DIAG_FD = os.dup(2)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    AGENT_FDS.update((proto_in, proto_out, DIAG_FD))

    AGENT_KEY.extend(os.environ.pop("RUNBOX_AGENT_KEY", "").encode("utf-8"))
    scrub_environ_memory("RUNBOX_AGENT_KEY")
    # Before any code can run: the channel's fds and the key stay out of its reach.
    set_dumpable(False)
    if os.getpid() == 1:
        # The kernel drops the signals a namespace's init has no handler for; Python's
        # SIGINT handler would let the code end the agent with a KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    transport = os.environ.get("RUNBOX_TRANSPORT", "stdio") or "stdio"
    WORKDIR = os.path.abspath(os.environ.get("RUNBOX_WORKDIR") or "/workspace")
    try:
        os.makedirs(WORKDIR, exist_ok=True)
        os.chdir(WORKDIR)
    except OSError as exc:
        diag("cannot use the work dir %s: %s" % (WORKDIR, exc))
        return 1
    BASH = find_executable("bash")
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        if os.path.exists(path):
            OOM_PATH = path
            break
    sweep = os.environ.get("RUNBOX_KILL_STRAYS", "auto")
    KILL_STRAYS = sweep == "1" or (sweep == "auto" and (os.getpid() == 1 or os.getppid() == 1))
    if sys.version_info >= (3, 12):
        import warnings
        warnings.filterwarnings("ignore", message=".*multi-threaded.*fork", category=DeprecationWarning)

    seed_matplotlib_cache()
    modules = [m.strip() for m in os.environ.get("RUNBOX_PRELOAD", "").split(",") if m.strip()]
    preloaded, failed = preload(modules)
    os.chdir(WORKDIR)
    # Objects that exist now are never collected: forked children do not copy their pages.
    gc.collect()
    gc.freeze()
    if os.environ.get("RUNBOX_PREFORK", "1") != "0":
        prefork()
    READY = {
        "type": "ready",
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "transport": transport,
        "preloaded": preloaded,
        "failed": failed,
    }
    if transport == "http":
        if not AGENT_KEY:
            diag("RUNBOX_AGENT_KEY is required for the http transport")
            return 2
        try:
            port = int(os.environ.get("RUNBOX_AGENT_PORT", "8080"))
        except ValueError:
            diag("RUNBOX_AGENT_PORT is not a port number")
            return 2
        serve_http(port)
    elif transport == "stdio":
        serve_stdio(proto_in, proto_out)
    else:
        diag("unknown RUNBOX_TRANSPORT %r" % transport)
        return 2
    return 0


AGENT_PID = os.getpid()
# User code replaces sys.modules["__main__"]; this keeps the agent's module alive.
_AGENT_MODULE = sys.modules[__name__]

if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        if os.getpid() != AGENT_PID:
            os._exit(70)
        import traceback
        diag("fatal: " + traceback.format_exc().strip().replace("\n", "\n  "))
        code = 1
    # The channel is closed and the agent's work is done: end now. The interpreter's
    # finalization (tens of ms with numpy and matplotlib loaded) would only delay the
    # container's end; the frames are written unbuffered and user code runs in
    # children, or in sessions whose container is removed anyway.
    flush_std_streams()
    os._exit(code)
