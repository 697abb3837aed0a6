"""The code's end of a run's outputs channel (see outputs.py), in the code's process.

While a run with outputs lasts, display() is a builtin, the IPython shim's finder is last
on sys.meta_path, pyplot's show() and a real IPython's display() make items; the run's
value and the figures still open at its end make the last ones. Each item goes out as a
JSON line, which the agent checks again. Without outputs none of it is there, so such a
run (or the next exec of a session) behaves as it always did."""

import _thread
import builtins
import os
import sys

from . import figures
from .ipython_shim import ShimFinder
from .json_codec import json_dumps
from .mimebundle import format_object, is_figure, raw_bundle
from .outputs import ITEM_BYTES, Budget
from .protocol import write_all
from .python_exec import AfterImport, flush_std_streams

# Where a real IPython defines display() (IPython.core.display in older versions), and
# the modules that import it from there.
IPYTHON_DISPLAY_MODULES = ("IPython.core.display_functions", "IPython.core.display",
                           "IPython.display")


class Channel:
    """One run's channel as its code's process writes it."""

    def __init__(self, fds, req):
        self.items_fd, self.ack_fd = fds
        self.wait = req.stream
        # The caps as the agent applies them, so that what is sure to be dropped is not
        # made or sent; the agent's count is the one that holds.
        self.budget = Budget(req.outputs_bytes, req.image_bytes)
        self.lock = _thread.allocate_lock()
        self.broken = False
        self.told_full = False

    def full(self):
        return self.budget.text < ITEM_BYTES

    def publish(self, kind, data, metadata=None, truncated=False):
        with self.lock:
            if self.broken:
                return
            item = self.budget.admit(kind, data, metadata or {}, truncated)
            if item is None:
                if self.told_full:
                    return
                # Once, so that the agent, which drops it for the same lack of room,
                # knows that items were dropped.
                self.told_full = True
                item = {"type": kind, "data": {}, "metadata": {}, "truncated": True}
            # What the code printed before the item is in the stdout and stderr pipes
            # before the item is in its own.
            flush_std_streams()
            line = json_dumps(item).encode("utf-8", "replace") + b"\n"
            try:
                write_all(self.items_fd, line)
                if self.wait and not os.read(self.ack_fd, 1):
                    self.broken = True
            except OSError:  # the code closed the channel's fds
                self.broken = True


CHANNEL = None            # the current run's Channel, while it has outputs
_REAL_DISPLAY = None      # a real IPython's display(), while ours stands in for it
_IPYTHON_WATCH = None


def show(obj, kind="display_data", include=None, exclude=None, metadata=None):
    """Makes `obj` an item of the current run (none without one). A figure shown is
    closed, so that it is not shown again when the run ends (or by the next run of a
    session)."""
    channel = CHANNEL
    if channel is None or channel.broken:
        return
    try:
        if channel.full():  # not worth rendering
            channel.publish(kind, {}, None, True)
            return
        data, bundle_metadata, left_out = format_object(
            obj, include, exclude, images=channel.budget.image > 0)
        if isinstance(metadata, dict):
            bundle_metadata.update(metadata)
        channel.publish(kind, data, bundle_metadata, left_out)
    finally:
        if is_figure(obj):
            pyplot = sys.modules.get("matplotlib.pyplot")
            if pyplot is not None:
                try:
                    pyplot.close(obj)
                except Exception:
                    pass


def display(*objs, include=None, exclude=None, metadata=None, transient=None,
            display_id=None, raw=False, clear=False, **kwargs):
    """IPython's display(): each object an item of the run, rendered as Jupyter renders
    it; with raw=True each is a MIME bundle already. display_id, transient and clear
    are accepted and have no effect (items cannot be updated or cleared)."""
    for obj in objs:
        if raw:
            channel = CHANNEL
            if channel is not None:
                channel.publish("display_data", raw_bundle(obj),
                                metadata if isinstance(metadata, dict) else None)
        else:
            show(obj, "display_data", include, exclude, metadata)


display.__module__ = "IPython.core.display_functions"
SHIM_FINDER = ShimFinder(display)


def adopt_real_display(_module=None):
    """A real IPython's display() prints its objects when no IPython shell runs: while the
    run lasts, its modules hold ours, which makes items of them (its HTML, Image, ...
    render through their _repr_*_ methods like any object)."""
    global _REAL_DISPLAY
    for name in IPYTHON_DISPLAY_MODULES:
        module = sys.modules.get(name)
        current = getattr(module, "display", None)
        if current is None or current is display:
            continue
        _REAL_DISPLAY = current
        module.display = display


def _restore_real_display():
    global _REAL_DISPLAY, _IPYTHON_WATCH
    if _IPYTHON_WATCH is not None:
        try:
            sys.meta_path.remove(_IPYTHON_WATCH)
        except ValueError:
            pass
        _IPYTHON_WATCH = None
    if _REAL_DISPLAY is not None:
        for name in IPYTHON_DISPLAY_MODULES:
            module = sys.modules.get(name)
            if getattr(module, "display", None) is display:
                module.display = _REAL_DISPLAY
        _REAL_DISPLAY = None


def start(req, fds):
    """The run has outputs; `fds` is the code's end of its channel. Nothing is imported
    and nothing rendered until the code displays something."""
    global CHANNEL, _IPYTHON_WATCH
    CHANNEL = Channel(fds, req)
    try:
        builtins.display = display
        if SHIM_FINDER not in sys.meta_path:
            sys.meta_path.append(SHIM_FINDER)
        figures.hook(show)
        adopt_real_display()
        _IPYTHON_WATCH = AfterImport({name: adopt_real_display
                                      for name in IPYTHON_DISPLAY_MODULES[:2]})
        sys.meta_path.insert(0, _IPYTHON_WATCH)
    except Exception:  # a session's code left sys.meta_path unusable: fewer hooks, still a run
        pass


def show_value(value):
    """The run's value (a cell's last expression, a call's return value) as its
    execute_result; None makes none. Never fails the run: what the value's repr methods
    raise is dropped."""
    if value is None:
        return
    try:
        show(value, "execute_result")
    except BaseException:
        pass


def finish():
    """The run ends: the figures still open are shown, and everything start() set up is
    taken down again."""
    global CHANNEL
    try:
        if "matplotlib.pyplot" in sys.modules:
            figures.show_open_figures()
    except BaseException:
        pass
    finally:
        CHANNEL = None
        try:
            figures.unhook()
            _restore_real_display()
            if getattr(builtins, "display", None) is display:
                del builtins.display
            if SHIM_FINDER in sys.meta_path:
                sys.meta_path.remove(SHIM_FINDER)
        except Exception:
            pass
