"""matplotlib's figures as a run's outputs: pyplot.show() shows every open figure, and
the figures still open when the run ends are shown then; each is closed once shown.
pyplot is not imported for it: its show is replaced where pyplot is loaded already (the
warm pool preloads it) or as soon as the code imports it, and put back after the run."""

import sys

from .python_exec import AfterImport

_PYPLOT_SHOW = None       # pyplot's own show, while ours stands in for it
_WATCH = None             # the finder that waits for pyplot's import
_SHOW_FIGURE = None       # makes a figure an item of the run, and closes it


def show(*args, **kwargs):
    """pyplot.show() in a run with outputs: the open figures become items. Nothing is
    drawn on a screen, so the Agg backend's warning that nothing can be is not printed."""
    show_open_figures()


def show_open_figures():
    """Every open figure, in the order of their numbers, shown (and so closed)."""
    show_figure = _SHOW_FIGURE
    if show_figure is None:
        return
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None:
        return
    try:
        managers = sorted(helpers.Gcf.get_all_fig_managers(), key=lambda manager: manager.num)
    except Exception:
        return
    for manager in managers:
        figure = getattr(getattr(manager, "canvas", None), "figure", None)
        if figure is not None:
            show_figure(figure)


def _replace_show(pyplot):
    global _PYPLOT_SHOW
    current = getattr(pyplot, "show", None)
    if current is not None and current is not show:
        _PYPLOT_SHOW = current
        pyplot.show = show


def hook(show_figure):
    """pyplot.show() shows with `show_figure` until unhook()."""
    global _WATCH, _SHOW_FIGURE
    _SHOW_FIGURE = show_figure
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        _replace_show(pyplot)
    else:
        _WATCH = AfterImport({"matplotlib.pyplot": _replace_show})
        sys.meta_path.insert(0, _WATCH)


def unhook():
    """pyplot as it was: a run without outputs (a later run of the session) shows and
    warns as before."""
    global _WATCH, _PYPLOT_SHOW, _SHOW_FIGURE
    _SHOW_FIGURE = None
    if _WATCH is not None:
        try:
            sys.meta_path.remove(_WATCH)
        except ValueError:
            pass
        _WATCH = None
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and _PYPLOT_SHOW is not None and getattr(pyplot, "show", None) is show:
        pyplot.show = _PYPLOT_SHOW
    _PYPLOT_SHOW = None
