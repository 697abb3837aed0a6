"""Persistent runs (sessions): a python session's code runs in a process of its own,
the session's kernel, forked once and kept between executions. The agent keeps the
channel to runbox; the kernel holds none of its descriptors and cannot open them
(the agent is not dumpable), so code in a session cannot speak for the agent."""

import os
import struct
import sys
import time

from . import display, state
from .capture import DRAIN_SECONDS, READ_CHUNK, Pump
from .child import fork_prepared, new_user_module
from .files import write_input_files
from .images import collect_images, snapshot_images
from .json_codec import json_dumps, json_loads
from .outputs import OutputsReader, close_fds
from .processes import SIGNAL_NAMES, kill_leftovers, read_oom_kills, signal
from .protocol import (ERROR_KINDS, deadline_of, error, parse_exec, read_exact, result_message,
                       timeout_error, write_all)
from .python_exec import OutputLimit, Outcome, execute_python, flush_std_streams

KERNEL = None             # (pid, req_w, res_r, out_r, err_r, outputs_fds): a python session's interpreter

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
    fds = kernel[1:5] + kernel[5]
    state.AGENT_FDS.difference_update(fds)
    close_fds(fds)
    state.UNREAPED.add(pid)


def kernel_main(req_r, res_w, outputs_fds):
    """In the kernel: runs each request in the session's module until end of file.
    `outputs_fds` is the kernel's end of the session's outputs channel, which each exec
    with outputs uses."""
    me = os.getpid()
    state.SESSION = new_user_module("__main__")
    signal.signal(signal.SIGUSR1, _on_output_limit)
    while True:
        header = read_exact(req_r, 4)
        if header is None:
            return 0
        body = read_exact(req_r, struct.unpack(">I", header)[0])
        if body is None:
            return 0
        try:
            outcome = kernel_run(parse_exec(json_loads(body)), outputs_fds)
        except BaseException as exc:
            outcome = Outcome.agent_failure(exc)
        if os.getpid() != me:
            # A process the code forked that ran off the end of the code: it exits like
            # the rest of the code would, without a second outcome.
            return outcome.exit_code
        write_message(res_w, outcome.as_dict())


def kernel_run(req, outputs_fds):
    global _limit_armed
    namespace = state.SESSION.__dict__
    sys.modules["__main__"] = state.SESSION
    os.chdir(state.WORKDIR)
    os.environ["HOME"] = state.WORKDIR
    os.environ.update(req.env)
    namespace.update(req.variables)
    ensure_std_streams()
    hidden = req.call is not None or req.check is not None
    saved_name = namespace.get("__name__")
    outcome = None
    if req.outputs:
        display.start(req, outputs_fds)
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
            os.chdir(state.WORKDIR)
        except OSError:
            pass
    if req.outputs:
        # Disarmed: the agent's output limit cannot stop this half-way.
        if outcome is not None:
            display.show_value(outcome.shown)
        display.finish()
        flush_std_streams()  # what the value's repr methods printed comes before the answer
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
    pid, req_w, res_r, out_r, err_r, (items_r, ack_w) = KERNEL
    write_input_files(req.files)
    before = snapshot_images()
    oom_before = read_oom_kills()
    started = time.monotonic()
    deadline = deadline_of(req, started)
    # The kernel's pipes are its own for the session: the run reads copies of them.
    reader = OutputsReader(os.dup(items_r), ack_w, req) if req.outputs else None
    pump = Pump(req, sink, os.dup(out_r), os.dup(err_r), reader)
    pidfd = pump.watch_process(pid)
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
            if not pump.pending_output():
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
    # The images among the items came first; the files get what is left.
    images, images_truncated = collect_images(
        before, req.image_bytes if reader is None else reader.budget.image)
    return result_message(
        stdout=pump.stdout.text(),
        stderr=pump.stderr.text(),
        exit_code=exit_code,
        has_value=has_value,
        value=value,
        error=err,
        images=images,
        truncated=pump.truncated or truncated or images_truncated
        or (reader is not None and reader.budget.cut),
        duration_ms=(ended - started) * 1000.0,
        session_ended=ended_how is not None,
        outputs=reader.items if reader is not None else (),
    )
