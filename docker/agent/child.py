"""Forked children: a one-shot run's child and a session's kernel are forked by one
helper and set up alike (no key, none of the agent's descriptors, a session of their
own, dumpable again); a one-shot child then runs its python or bash."""

import atexit
import builtins
import os
import sys

from . import display, state
from .json_codec import json_dumps
from .outputs import close_fds, open_channel, wanted
from .privileges import set_dumpable
from .processes import signal
from .protocol import bash_value, write_all
from .python_exec import Outcome, execute_python, flush_std_streams


def fork_prepared(serve):
    """Forks a prepared child (see prepare_child) that runs serve(req_r, res_w,
    outputs_fds) and exits with its code; returns (pid, req_w, res_r, out_r, err_r,
    outputs_fds), the agent's ends. The child does not know its request yet, so it gets
    an outputs channel whether its runs will want one or not."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    req_r, req_w = os.pipe()
    agent_outputs, child_outputs = open_channel()
    flush_std_streams()
    pid = os.fork()
    if pid == 0:  # the child never returns
        code = 70
        try:
            prepare_child(out_w, err_w, (out_r, err_r, res_r, req_w) + agent_outputs)
            code = serve(req_r, res_w, child_outputs)
        finally:
            flush_std_streams()
            os._exit(code)
    for fd in (out_w, err_w, res_w, req_r) + child_outputs:
        os.close(fd)
    state.AGENT_FDS.update((req_w, out_r, err_r, res_r) + agent_outputs)
    return pid, req_w, res_r, out_r, err_r, agent_outputs


def prepare_child(out_w, err_w, parent_fds):
    """In a forked child, before it knows its request: no key, own session, only its
    own pipes open, first in line for the OOM killer."""
    state.DIAG_FD = -1
    for index in range(len(state.AGENT_KEY)):
        state.AGENT_KEY[index] = 0
    try:
        os.setsid()
    except OSError:
        pass
    for fd in list(state.AGENT_FDS) + list(parent_fds):
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


def run_child(req, res_w, outputs_fds=None):
    """In a prepared child: runs the code, writes the outcome. Returns the exit code.
    `outputs_fds`, the code's end of the outputs channel, is closed unless it has
    outputs."""
    me = os.getpid()
    if outputs_fds is not None and not wanted(req):
        close_fds(outputs_fds)
        outputs_fds = None
    try:
        os.chdir(state.WORKDIR)
        os.environ["HOME"] = state.WORKDIR
        os.environ.update(req.env)
        if req.language == "bash":
            exec_bash(req)  # returns only when exec failed
            raise OSError("cannot run bash")
        outcome = run_python_child(req, outputs_fds)
    except BaseException as exc:
        outcome = Outcome.agent_failure(exc)
    if os.getpid() != me:
        # A process the code forked that ran off the end of the code: it exits like
        # the rest of the code would, without a second outcome message.
        return outcome.exit_code
    try:
        data = json_dumps(outcome.as_dict()).encode("utf-8", "replace")
        write_all(res_w, data)
    except BaseException:
        pass
    # Closing every pipe tells the agent that the run is over (see oneshot.run_forked).
    close_fds((1, 2, res_w) + (outputs_fds or ()))
    return outcome.exit_code


def exec_bash(req):
    env = dict(os.environ)
    for name, value in req.variables.items():
        env[name] = bash_value(value)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    if state.BASH is None:
        raise OSError("bash is not installed in this image")
    os.execve(state.BASH, ["bash", "-c", req.code], env)


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


def run_python_child(req, outputs_fds):
    name = "__runbox__" if (req.call or req.check) else "__main__"
    module = new_user_module(name)
    sys.modules["__main__"] = module
    if name != "__main__":
        sys.modules[name] = module
    namespace = module.__dict__
    namespace.update(req.variables)
    if outputs_fds is not None:
        display.start(req, outputs_fds)
    outcome = execute_python(req, namespace)
    if outputs_fds is not None:
        display.show_value(outcome.shown)
    # What `python -c` does at exit: join non-daemon threads, run atexit handlers.
    # Threads exist only if the code imported threading (the agent does not).
    threading = sys.modules.get("threading")
    try:
        if threading is not None:
            threading._shutdown()
    except BaseException:
        pass
    if outputs_fds is not None:
        # Before the atexit handlers: pyplot's closes every figure.
        display.finish()
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    flush_std_streams()
    return outcome


def child_main(req, out_w, err_w, res_w, outputs_fds, parent_fds):
    """In the forked child: set up the process and run the code. Returns the exit code."""
    prepare_child(out_w, err_w, parent_fds)
    return run_child(req, res_w, outputs_fds)
