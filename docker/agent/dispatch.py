"""An incoming message (from either transport) to its run, and the run's answer to
the sink it came from."""

import os

from . import state
from .json_codec import json_loads
from .kernel import run_in_kernel
from .oneshot import discard_prefork, run_forked
from .processes import freeze_session, reap_children, thaw_session
from .protocol import InvalidArgs, agent_error_result, error, parse_exec, result_message


def run_exec(message, sink):
    thaw_session()
    try:
        req = parse_exec(message)
        if req.persistent and req.language == "python":
            discard_prefork()
            result = run_in_kernel(req, sink, message)
        else:
            result = run_forked(req, sink, state.KILL_STRAYS and not req.persistent, message)
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
        if os.getpid() != state.AGENT_PID:  # a forked child must never return into the loop
            os._exit(70)
        import traceback
        state.diag("error handling a message: %s" % "".join(
            traceback.format_exception_only(type(exc), exc)).strip())
        try:
            sink.send(agent_error_result("%s: %s" % (type(exc).__name__, exc)))
        except BaseException:
            pass
    finally:
        reap_children()
