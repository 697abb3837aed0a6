"""What the agent does before `ready` so that runs need not: the modules of
RUNBOX_PRELOAD imported (matplotlib drawn once), matplotlib's cache seeded."""

import io
import os
import sys

from . import state


def seed_matplotlib_cache():
    """matplotlib needs a writable config/cache dir; the root fs is read-only. Point it
    at /tmp and copy the font cache built into the image, so no warning is printed and
    the font list is not rebuilt. The image builds it next to the package
    (/opt/runbox/matplotlib)."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    seed = os.path.join(os.path.dirname(package_dir), "matplotlib")
    if not os.path.isdir(seed):
        return
    target = os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")
    try:
        os.makedirs(target, mode=0o700, exist_ok=True)
        for name in os.listdir(seed):
            source = os.path.join(seed, name)
            destination = os.path.join(target, name)
            if os.path.isfile(source) and not os.path.exists(destination):
                with open(source, "rb") as src, open(destination, "wb") as dst:
                    dst.write(src.read())
    except OSError as exc:
        state.diag("cannot seed the matplotlib cache: %s" % exc)


def warm_matplotlib():
    """Draws and saves one small figure, so that the backend, the font files and the PNG
    writer are loaded once here rather than by every run's first plot (tens of ms).
    Closed again: the run's first figure is still figure 1."""
    try:
        plt = sys.modules["matplotlib.pyplot"]
        fig = plt.figure(figsize=(2, 2), dpi=50)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1])
        ax.set_title("warm-up")
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    except BaseException as exc:
        state.diag("matplotlib warm-up failed: %s: %s" % (type(exc).__name__, exc))


def preload(names):
    preloaded = []
    failed = []
    for name in names:
        try:
            __import__(name)
            if name == "matplotlib":
                # What plotting code imports; the package alone saves little.
                __import__("matplotlib.pyplot")
                warm_matplotlib()
            preloaded.append(name)
        except BaseException as exc:  # a failed preload is reported, not fatal
            message = "%s: %s" % (type(exc).__name__, exc)
            state.diag("preload of %s failed: %s" % (name, message))
            failed.append({"module": name, "error": message})
    return preloaded, failed
