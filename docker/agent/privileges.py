"""The agent's channel out of the code's reach: the agent is not dumpable (its
children are again), and the http key is gone from its environment block."""

import sys

from . import state

LIBC = None               # ctypes' handle on libc, for prctl
PR_SET_DUMPABLE = 4


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
            state.diag("prctl(PR_SET_DUMPABLE) failed: errno %d" % sys.modules["ctypes"].get_errno())
    except Exception as exc:
        state.diag("cannot set the dumpable flag: %s: %s" % (type(exc).__name__, exc))


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
