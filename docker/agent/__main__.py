"""The agent's entry. The image runs it as a script compiled at build,
`python3 -u /opt/runbox/agent/__main__.pyc` (see docker/Dockerfile); from the source
tree, `python3 -u docker/agent/__main__.py`.

A script rather than `python3 -m agent`: -m puts the working directory first on
sys.path, and a sandbox starts in its work dir, where the code writes. The agent imports
modules after runs have begun (base64 for input files and images, traceback for an
error), and a base64.py the code left there would then run in the agent, with its
channel. -m also imports runpy, and importlib.util with what it needs where site has not.
"""

import os
import sys

if not __package__:
    # A script's directory comes first on sys.path: here, the package itself, whose
    # modules would stand in for any others of their names. The package's parent takes
    # its place, holding only the package and matplotlib's font cache.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from agent.main import run  # noqa: E402

# User code replaces sys.modules["__main__"]; this keeps the agent's module alive.
_AGENT_MODULE = sys.modules[__name__]

run()
