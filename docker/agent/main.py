"""Start-up: the protocol channel moves off fds 0 and 1, the key out of the code's
reach, the work dir and the preload are set up, then a transport serves runbox until
its channel closes; run() is the agent's whole life."""

import gc
import os
import sys

from . import state
from .http_transport import serve_http
from .oneshot import prefork
from .preload import preload, seed_matplotlib_cache
from .privileges import scrub_environ_memory, set_dumpable
from .processes import signal
from .protocol import PROTOCOL_VERSION
from .python_exec import flush_std_streams
from .stdio_transport import serve_stdio

PACKAGE = __name__.rpartition(".")[0]
_HIDDEN = []              # the package's modules, out of sys.modules, still running


def hide_package():
    """Takes the agent's modules out of sys.modules: under `python -c` there are none,
    and a module of the code's own with the package's name (an agent.py in the work
    dir) must be the one the code imports. Done once, before anything is forked, so
    that every child inherits sys.modules without them (scanning it in each child costs
    a run copy-on-write faults, most with numpy and matplotlib loaded). Nothing imports
    them again: by now every module of the package is imported."""
    prefix = PACKAGE + "."
    for name in list(sys.modules):
        if name == PACKAGE or name.startswith(prefix):
            _HIDDEN.append(sys.modules.pop(name))


def find_executable(name):
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def main():
    state.AGENT_PID = os.getpid()
    hide_package()
    # The protocol channel moves off fds 0/1, so no stray write can corrupt frames.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    state.DIAG_FD = os.dup(2)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    state.AGENT_FDS.update((proto_in, proto_out, state.DIAG_FD))

    state.AGENT_KEY.extend(os.environ.pop("RUNBOX_AGENT_KEY", "").encode("utf-8"))
    scrub_environ_memory("RUNBOX_AGENT_KEY")
    # Before any code can run: the channel's fds and the key stay out of its reach.
    set_dumpable(False)
    if os.getpid() == 1:
        # The kernel drops the signals a namespace's init has no handler for; Python's
        # SIGINT handler would let the code end the agent with a KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    transport = os.environ.get("RUNBOX_TRANSPORT", "stdio") or "stdio"
    state.WORKDIR = os.path.abspath(os.environ.get("RUNBOX_WORKDIR") or "/workspace")
    try:
        os.makedirs(state.WORKDIR, exist_ok=True)
        os.chdir(state.WORKDIR)
    except OSError as exc:
        state.diag("cannot use the work dir %s: %s" % (state.WORKDIR, exc))
        return 1
    state.BASH = find_executable("bash")
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        if os.path.exists(path):
            state.OOM_PATH = path
            break
    sweep = os.environ.get("RUNBOX_KILL_STRAYS", "auto")
    state.KILL_STRAYS = sweep == "1" or (sweep == "auto" and (os.getpid() == 1 or os.getppid() == 1))
    if sys.version_info >= (3, 12):
        import warnings
        warnings.filterwarnings("ignore", message=".*multi-threaded.*fork", category=DeprecationWarning)

    seed_matplotlib_cache()
    modules = [m.strip() for m in os.environ.get("RUNBOX_PRELOAD", "").split(",") if m.strip()]
    preloaded, failed = preload(modules)
    os.chdir(state.WORKDIR)
    # Objects that exist now are never collected: forked children do not copy their pages.
    gc.collect()
    gc.freeze()
    if os.environ.get("RUNBOX_PREFORK", "1") != "0":
        prefork()
    ready = {
        "type": "ready",
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "transport": transport,
        "preloaded": preloaded,
        "failed": failed,
    }
    if transport == "http":
        if not state.AGENT_KEY:
            state.diag("RUNBOX_AGENT_KEY is required for the http transport")
            return 2
        try:
            port = int(os.environ.get("RUNBOX_AGENT_PORT", "8080"))
        except ValueError:
            state.diag("RUNBOX_AGENT_PORT is not a port number")
            return 2
        serve_http(port, ready)
    elif transport == "stdio":
        serve_stdio(proto_in, proto_out, ready)
    else:
        state.diag("unknown RUNBOX_TRANSPORT %r" % transport)
        return 2
    return 0


def run():
    """Runs the agent and exits with its code; never returns."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        if os.getpid() != state.AGENT_PID:
            os._exit(70)
        import traceback
        state.diag("fatal: " + traceback.format_exc().strip().replace("\n", "\n  "))
        code = 1
    # The channel is closed and the agent's work is done: end now. The interpreter's
    # finalization (tens of ms with numpy and matplotlib loaded) would only delay the
    # container's end; the frames are written unbuffered and user code runs in
    # children, or in sessions whose container is removed anyway.
    flush_std_streams()
    os._exit(code)
