"""An object as a Jupyter MIME bundle, made in the code's process the way IPython's
display formatter makes it: `_repr_mimebundle_` first, then the `_repr_*_` methods for
the types it did not give, `text/plain` from repr() always; a matplotlib figure as a PNG.
Everything here calls the code's own objects, so nothing of it may fail the run."""

import io
import sys

from .outputs import IMAGE_MIMES, JSON_MIME, MIME_TYPES

REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    (JSON_MIME, "_repr_json_"),
)
# An object that claims to have this has every attribute (a proxy, a mock): IPython
# trusts none of its repr methods, nor does the agent.
CANARY = "_ipython_canary_method_should_not_exist_"


def _attribute(obj, name):
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def repr_method(obj, name):
    if isinstance(obj, type):  # a class's repr methods are its instances'
        return None
    method = _attribute(obj, name)
    if not callable(method) or callable(_attribute(obj, CANARY)):
        return None
    return method


def base64_text(data):
    binascii = sys.modules.get("binascii") or __import__("binascii")
    return binascii.b2a_base64(bytes(data), newline=False).decode("ascii")


def entry(mime, value):
    """A bundle value as the protocol carries it (images as base64 text), or None."""
    if value is None:
        return None
    if mime in IMAGE_MIMES:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return base64_text(value)
        return value if isinstance(value, str) else None
    if mime == JSON_MIME:
        return value
    return value if isinstance(value, str) else None


def plain_text(obj):
    try:
        return repr(obj)
    except Exception as exc:
        try:
            return "<%s object (repr failed: %s)>" % (type(obj).__name__, type(exc).__name__)
        except Exception:
            return "<unrepresentable object>"


def figure_png(figure):
    """A matplotlib figure as PNG bytes, cut to what it draws (as Jupyter's inline
    backend does), or None when it does not draw."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", bbox_inches="tight")
    except Exception:
        return None
    return buffer.getvalue()


def is_figure(obj):
    module = sys.modules.get("matplotlib.figure")
    return module is not None and isinstance(obj, module.Figure)


def format_object(obj, include=None, exclude=None, images=True):
    """(data, metadata, images_left_out) of `obj`. With `images` false no image is
    made, and images_left_out says whether there would have been one."""
    data = {}
    metadata = {}
    left_out = False

    def wanted(mime):
        return (include is None or mime in include) and (exclude is None or mime not in exclude)

    if is_figure(obj):
        if wanted("image/png"):
            if images:
                png = figure_png(obj)
                if png is not None:
                    data["image/png"] = base64_text(png)
            else:
                left_out = True
    else:
        method = repr_method(obj, "_repr_mimebundle_")
        if method is not None:
            try:
                bundle = method(include=include, exclude=exclude)
            except Exception:
                bundle = None
            if isinstance(bundle, tuple) and len(bundle) == 2:
                bundle, bundle_metadata = bundle
                if isinstance(bundle_metadata, dict):
                    metadata.update(bundle_metadata)
            if isinstance(bundle, dict):
                for mime in MIME_TYPES:
                    if mime in bundle and wanted(mime):
                        value = entry(mime, bundle[mime])
                        if value is not None:
                            data[mime] = value
        for mime, name in REPR_METHODS:
            if mime in data or not wanted(mime):
                continue
            method = repr_method(obj, name)
            if method is None:
                continue
            if mime in IMAGE_MIMES and not images:
                left_out = True
                continue
            try:
                value = method()
            except Exception:
                continue
            if isinstance(value, tuple) and len(value) == 2:
                value, value_metadata = value
                if isinstance(value_metadata, dict) and value is not None:
                    metadata[mime] = value_metadata
            value = entry(mime, value)
            if value is not None:
                data[mime] = value
        if not images:
            for mime in IMAGE_MIMES:
                if data.pop(mime, None) is not None:
                    left_out = True
    if "text/plain" not in data:
        data["text/plain"] = plain_text(obj)
    return data, metadata, left_out


def raw_bundle(bundle):
    """A bundle the code passed as it is (display(..., raw=True)): the known types, images
    as base64 text."""
    data = {}
    if isinstance(bundle, dict):
        for mime in MIME_TYPES:
            if mime in bundle:
                value = entry(mime, bundle[mime])
                if value is not None:
                    data[mime] = value
    return data
