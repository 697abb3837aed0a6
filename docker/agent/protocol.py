"""The protocol of docs/agent-protocol.md: frames, the exec request as the agent
accepts it, and the result and error messages it answers with."""

import os
import struct

from .json_codec import json_dumps

PROTOCOL_VERSION = 1

DEFAULT_OUTPUT_BYTES = 1 << 20
DEFAULT_OUTPUT_KILL_BYTES = 256 << 20
DEFAULT_IMAGE_BYTES = 16 << 20
DEFAULT_OUTPUTS_BYTES = 1 << 20
# Largest frame accepted from runbox: input files are bounded by the work dir anyway.
MAX_INPUT_FRAME = 256 << 20

ERROR_KINDS = ("syntax", "runtime", "timeout", "memory", "output_limit", "killed",
               "invalid_args", "dependency")


class InvalidArgs(Exception):
    """A request field the agent cannot accept (error kind invalid_args)."""


# --------------------------------------------------------------------------------------
# Frames

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


def read_exact(fd, count):
    chunks = []
    while count > 0:
        data = os.read(fd, min(count, 1 << 20))
        if not data:
            return None
        chunks.append(data)
        count -= len(data)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------
# Messages

def result_message(stdout="", stderr="", exit_code=None, has_value=False, value=None,
                   error=None, images=(), truncated=False, duration_ms=0.0,
                   session_ended=False, outputs=()):
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
        # Always present, [] unless the exec asked for outputs: one shape to parse.
        "outputs": list(outputs),
        "truncated": truncated,
        "duration_ms": round(duration_ms, 3),
    }


def error(kind, message, traceback_text=None):
    return {"kind": kind, "message": message, "traceback": traceback_text}


def agent_error_result(message):
    return result_message(error=error("killed", "agent error: " + message))


# --------------------------------------------------------------------------------------
# The exec request

class Request:
    __slots__ = ("language", "mode", "code", "variables", "files", "env", "stream",
                 "persistent", "output_bytes", "output_kill_bytes", "image_bytes",
                 "call", "check", "timeout_ms", "outputs", "outputs_bytes")


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
    req.outputs = bool(message.get("outputs", False))
    req.outputs_bytes = _int_field(message, "outputs_bytes", DEFAULT_OUTPUTS_BYTES)
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


# A run's time limit, kept by one-shot runs and sessions alike.

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
