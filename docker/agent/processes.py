"""The container's processes as the agent handles them: reaping children (the agent
is pid 1, with no init), killing what a run left behind, stopping a session's
processes between its executions, counting the kernel's OOM kills."""

import os
import time

from . import state

# The C module: the signal package only adds enums, and with them the enum module. The
# agent's other modules take it from here.
try:
    import _signal as signal
except ImportError:  # not CPython
    import signal

SIGNAL_NAMES = {}
for _name in dir(signal):
    if _name.startswith("SIG") and not _name.startswith("SIG_") and isinstance(getattr(signal, _name), int):
        SIGNAL_NAMES.setdefault(int(getattr(signal, _name)), _name)

FROZEN = set()            # processes stopped between a session's executions


def read_oom_kills():
    if state.OOM_PATH is None:
        return None
    try:
        with open(state.OOM_PATH, "rb") as f:
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
    for pid in list(state.UNREAPED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done == pid:
            state.UNREAPED.discard(pid)
    if os.getpid() == 1 and state.SESSION is None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except OSError:
                return
            if pid == 0:
                return
            state.UNREAPED.discard(pid)


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
