"""A one-shot run: the code runs in a forked child, which ends with the run; the
agent reads its output and its outcome and answers with the result."""

import os
import time

from . import state
from .capture import DRAIN_SECONDS, READ_CHUNK, Pump
from .child import child_main, fork_prepared, run_child
from .files import write_input_files
from .images import collect_images, snapshot_images
from .json_codec import json_dumps, json_loads
from .outputs import OutputsReader, close_fds, open_channel, wanted
from .processes import SIGNAL_NAMES, kill_leftovers, read_oom_kills, signal
from .protocol import deadline_of, error, parse_exec, result_message, timeout_error, write_all
from .python_exec import flush_std_streams

PREFORK = None            # (pid, req_w, out_r, err_r, res_r, outputs_fds): the next one-shot run's child


def run_forked(req, sink, sweep, message):
    write_input_files(req.files)
    before = snapshot_images()
    oom_before = read_oom_kills()
    started = time.monotonic()
    deadline = deadline_of(req, started)
    timed_out = False
    child = hand_to_prefork(message)
    if child is not None:
        pid, out_r, err_r, res_r, outputs_fds = child
        if not wanted(req):
            close_fds(outputs_fds)
            outputs_fds = None
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        outputs_fds, child_outputs = open_channel() if wanted(req) else (None, None)
        flush_std_streams()  # nothing buffered in the agent may reach the child's output
        pid = os.fork()
        if pid == 0:  # the child never returns
            code = 70
            try:
                code = child_main(req, out_w, err_w, res_w, child_outputs,
                                  (out_r, err_r, res_r) + (outputs_fds or ()))
            finally:
                os._exit(code)
        close_fds((out_w, err_w, res_w) + (child_outputs or ()))

    reader = OutputsReader(outputs_fds[0], outputs_fds[1], req) if outputs_fds else None
    pump = Pump(req, sink, out_r, err_r, reader)
    pump.open.add(res_r)  # closed with the others
    pump.register(res_r)
    res_chunks = []
    res_size = 0
    res_limit = 3 * req.output_bytes + (1 << 20)
    pidfd = pump.watch_process(pid)
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
            state.UNREAPED.add(pid)
            if ended is None:
                ended = time.monotonic()
        if pidfd is not None:
            os.close(pidfd)
        kill_leftovers(pid, sweep)
        pump.close()
        if outputs_fds:
            close_fds(outputs_fds[1:])
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
    # The images among the items came first; the files get what is left.
    images, images_truncated = collect_images(
        before, req.image_bytes if reader is None else reader.budget.image)
    return result_message(
        stdout=pump.stdout.text(),
        stderr=pump.stderr.text(),
        exit_code=exit_code,
        has_value=has_value and err is None,
        value=value if has_value and err is None else None,
        error=err,
        images=images,
        truncated=pump.truncated or value_truncated or images_truncated
        or (reader is not None and reader.budget.cut),
        duration_ms=(ended - started) * 1000.0,
        session_ended=timed_out and req.persistent,
        outputs=reader.items if reader is not None else (),
    )


# --------------------------------------------------------------------------------------
# Prefork: with numpy and matplotlib loaded, fork() and the child's set-up take several
# milliseconds, more than running a small snippet. The agent forks the child of its
# first one-shot run while it waits for work; the request then only travels through a
# pipe. A one-shot sandbox serves one run, so later runs fork on demand as before.

def prefork():
    global PREFORK
    pid, req_w, res_r, out_r, err_r, outputs_fds = fork_prepared(prefork_child)
    PREFORK = (pid, req_w, out_r, err_r, res_r, outputs_fds)


def prefork_child(req_r, res_w, outputs_fds):
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
    return run_child(parse_exec(json_loads(b"".join(chunks))), res_w, outputs_fds)


def hand_to_prefork(message):
    """Sends `message` to the child forked ahead; returns (pid, out_r, err_r, res_r,
    outputs_fds), or None when there is none or it died meanwhile (the caller forks then)."""
    global PREFORK
    child, PREFORK = PREFORK, None
    if child is None:
        return None
    pid, req_w, out_r, err_r, res_r, outputs_fds = child
    state.AGENT_FDS.difference_update((req_w, out_r, err_r, res_r) + outputs_fds)
    # The parent has written the input files already.
    body = json_dumps({k: v for k, v in message.items() if k != "files"},
                      ensure_ascii=True).encode("utf-8")
    try:
        write_all(req_w, body)
        os.close(req_w)
        return pid, out_r, err_r, res_r, outputs_fds
    except OSError:
        close_fds((req_w, out_r, err_r, res_r) + outputs_fds)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        state.UNREAPED.add(pid)
        return None


def discard_prefork():
    """A persistent run needs no forked child: the waiting one exits on end of file."""
    global PREFORK
    child, PREFORK = PREFORK, None
    if child is None:
        return
    pid, req_w, out_r, err_r, res_r, outputs_fds = child
    fds = (req_w, out_r, err_r, res_r) + outputs_fds
    state.AGENT_FDS.difference_update(fds)
    close_fds(fds)
    state.UNREAPED.add(pid)
