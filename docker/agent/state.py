"""What the agent process knows about itself: set up by main(), read by the modules
that serve runs as `state.NAME`, so that every module sees what main() set."""

import os

WORKDIR = "/workspace"
AGENT_PID = os.getpid()
AGENT_KEY = bytearray()   # the http key; zeroed in forked children
DIAG_FD = 2               # the container's stderr, kept even while fd 2 is redirected
AGENT_FDS = set()         # fds a forked child must close (protocol channel, sockets)
BASH = None
OOM_PATH = None
KILL_STRAYS = False       # kill every other process of the container after a one-shot run
SESSION = None            # the persistent module (sessions)
UNREAPED = set()          # children of finished runs still exiting


def diag(message):
    """A short diagnostic line on the container's stderr."""
    try:
        os.write(DIAG_FD, ("runbox-agent: %s\n" % message).encode("utf-8", "replace"))
    except OSError:
        pass
