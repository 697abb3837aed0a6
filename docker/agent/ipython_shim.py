"""A small IPython.display of the agent's, for images without IPython: what notebook
code imports to show things (display, HTML, Markdown, Latex, SVG, JSON, Image and the
display_* functions), as the modules IPython, IPython.display, IPython.core,
IPython.core.display, IPython.core.display_functions and IPython.core.getipython.

Its finder comes last on sys.meta_path, so a real IPython, wherever the code can import
one from, is always found first; and it makes these modules only, so that nothing else of
the agent becomes importable. The objects are IPython's in what they render (their
_repr_*_ methods), not in every detail: nothing is fetched from a URL, an SVG is not
parsed, and clear_output() and display ids have no effect."""

import os
import sys

# IPython's own module names, which is what repr() and pickle show.
CORE_DISPLAY = "IPython.core.display"


def get_ipython():
    """No IPython shell runs here (libraries check this before using one)."""
    return None


def _is_file(text):
    try:
        return os.path.isfile(text)
    except (ValueError, OSError):  # a NUL, a name too long
        return False


def _escape(text):
    return str(text).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


class DisplayObject:
    """IPython's base of objects made to be displayed: data given, or read from a file
    (a string that names a file is one); a string starting with http is a URL."""

    __module__ = CORE_DISPLAY
    _read_flags = "r"

    def __init__(self, data=None, url=None, filename=None, metadata=None):
        if isinstance(data, os.PathLike):
            data = os.fspath(data)
        if isinstance(data, str):
            if data.startswith("http") and url is None:
                url, filename, data = data, None, None
            elif filename is None and _is_file(data):
                url, filename, data = None, data, None
        self.url = url
        self.filename = None if filename is None else os.fspath(filename)
        self.data = data
        self.metadata = dict(metadata) if isinstance(metadata, dict) else {}
        self.reload()
        self._check_data()

    def reload(self):
        if self.filename is not None:
            if "b" in self._read_flags:
                with open(self.filename, "rb") as f:
                    self.data = f.read()
            else:
                with open(self.filename, encoding="utf-8") as f:
                    self.data = f.read()

    def _check_data(self):
        pass

    def _data_and_metadata(self):
        if self.metadata:
            return self.data, dict(self.metadata)
        return self.data

    def __repr__(self):
        return "<%s.%s object>" % (CORE_DISPLAY, type(self).__name__)


class TextDisplayObject(DisplayObject):
    """Text to be displayed as one MIME type."""

    __module__ = CORE_DISPLAY

    def _check_data(self):
        if self.data is not None and not isinstance(self.data, str):
            raise TypeError("%s expects text, not %r" % (type(self).__name__, self.data))


class HTML(TextDisplayObject):
    __module__ = CORE_DISPLAY

    def _repr_html_(self):
        return self._data_and_metadata()

    def __html__(self):
        return self.data


class Markdown(TextDisplayObject):
    __module__ = CORE_DISPLAY

    def _repr_markdown_(self):
        return self._data_and_metadata()


class Latex(TextDisplayObject):
    __module__ = CORE_DISPLAY

    def _repr_latex_(self):
        return self._data_and_metadata()


class SVG(DisplayObject):
    __module__ = CORE_DISPLAY
    _read_flags = "rb"

    def _check_data(self):
        if isinstance(self.data, (bytes, bytearray)):
            self.data = bytes(self.data).decode("utf-8", "replace")

    def _repr_svg_(self):
        return self._data_and_metadata()


class JSON(DisplayObject):
    """JSON data, or a JSON string (or file) parsed; `expanded` and `root` are metadata
    for the front end, as in IPython."""

    __module__ = CORE_DISPLAY

    def __init__(self, data=None, url=None, filename=None, expanded=False, metadata=None,
                 root="root", **kwargs):
        extra = {"expanded": expanded, "root": root}
        if isinstance(metadata, dict):
            extra.update(metadata)
        extra.update(kwargs)
        DisplayObject.__init__(self, data=data, url=url, filename=filename)
        self.metadata = extra

    def _check_data(self):
        if isinstance(self.data, (str, bytes)):
            import json
            self.data = json.loads(self.data)

    def _data_and_metadata(self):
        return self.data, dict(self.metadata)

    def _repr_json_(self):
        return self._data_and_metadata()


class Image(DisplayObject):
    """A PNG or JPEG image from bytes, a file, or (not embedded) a URL: the format from
    the file's extension or the bytes' signature; width and height go to the metadata."""

    __module__ = CORE_DISPLAY
    _read_flags = "rb"
    _FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg"}

    def __init__(self, data=None, url=None, filename=None, format=None, embed=None,
                 width=None, height=None, retina=False, unconfined=False, metadata=None,
                 alt=None):
        if isinstance(data, os.PathLike):
            data = os.fspath(data)
        if filename is not None:
            ext = self._extension(os.fspath(filename))
        elif url is not None:
            ext = self._extension(url)
        elif data is None:
            raise ValueError("No image data found. Expecting filename, url, or data.")
        elif isinstance(data, str) and (data.startswith("http") or _is_file(data)):
            ext = self._extension(data)
        else:
            ext = None
        if format is None:
            if ext is not None:
                format = self._FORMATS.get(ext, ext)
            elif isinstance(data, (bytes, bytearray)):
                format = "jpeg" if bytes(data[:2]) == b"\xff\xd8" else "png"
            else:
                format = "png"
        self.format = self._FORMATS.get(str(format).lower(), str(format).lower())
        self.embed = embed if embed is not None else (url is None)
        if self.embed and self.format not in ("png", "jpeg"):
            raise ValueError("Cannot embed the '%s' image format" % self.format)
        self.width = width
        self.height = height
        self.retina = retina
        self.unconfined = unconfined
        self.alt = alt
        DisplayObject.__init__(self, data=data, url=url, filename=filename, metadata=metadata)

    @staticmethod
    def _extension(name):
        return name.rpartition(".")[2].lower() if "." in name else None

    def _check_data(self):
        if isinstance(self.data, bytearray):
            self.data = bytes(self.data)

    def _image_metadata(self):
        metadata = {}
        if self.width:
            metadata["width"] = self.width
        if self.height:
            metadata["height"] = self.height
        if self.unconfined:
            metadata["unconfined"] = self.unconfined
        if self.alt:
            metadata["alt"] = self.alt
        metadata.update(self.metadata)
        return metadata

    def _image(self, format):
        if not self.embed or self.format != format or not isinstance(self.data, bytes):
            return None
        metadata = self._image_metadata()
        return (self.data, metadata) if metadata else self.data

    def _repr_png_(self):
        return self._image("png")

    def _repr_jpeg_(self):
        return self._image("jpeg")

    def _repr_html_(self):
        if self.embed or not self.url:
            return None
        attributes = "".join(' %s="%s"' % (name, _escape(value)) for name, value in (
            ("width", self.width), ("height", self.height), ("alt", self.alt)) if value)
        if self.unconfined:
            attributes += ' class="unconfined"'
        return '<img src="%s"%s/>' % (_escape(self.url), attributes)


def clear_output(wait=False):
    """Accepted and without effect: items cannot be cleared."""


def _publisher(display):
    def publish_display_data(data, metadata=None, source=None, *, transient=None, **kwargs):
        display(data, raw=True, metadata=metadata)
    return publish_display_data


def _display_as(name, mime, display):
    def display_mime(*objs, raw=False, metadata=None):
        if metadata:
            metadata = {mime: metadata}
        if raw:
            objs = [{mime: obj} for obj in objs]
        display(*objs, raw=raw, metadata=metadata, include=[mime])
    display_mime.__name__ = display_mime.__qualname__ = name
    display_mime.__doc__ = "Displays each object as %s only (raw: each is %s data)." % (mime, mime)
    return display_mime


DISPLAY_AS = (("display_pretty", "text/plain"), ("display_html", "text/html"),
              ("display_markdown", "text/markdown"), ("display_latex", "text/latex"),
              ("display_svg", "image/svg+xml"), ("display_png", "image/png"),
              ("display_jpeg", "image/jpeg"), ("display_json", "application/json"))
_DISPLAY_NAMES = ("display", "clear_output", "publish_display_data", "display_pretty",
                  "display_html", "display_markdown", "display_latex", "display_svg",
                  "display_png", "display_jpeg", "display_json", "DisplayObject",
                  "TextDisplayObject", "HTML", "Markdown", "Latex", "SVG", "JSON", "Image")
# Each module: its names, the submodules it imports (as IPython's own do).
MODULES = {
    "IPython": (("get_ipython",), ("IPython.core", "IPython.display")),
    "IPython.display": (_DISPLAY_NAMES, ()),
    "IPython.core": ((), ("IPython.core.getipython", "IPython.core.display_functions",
                          "IPython.core.display")),
    "IPython.core.display": (_DISPLAY_NAMES, ()),
    "IPython.core.display_functions": (("display", "clear_output", "publish_display_data"), ()),
    "IPython.core.getipython": (("get_ipython",), ()),
}
PACKAGES = ("IPython", "IPython.core")
ModuleSpec = type(__spec__)  # importlib.machinery's, without importing it


class ShimFinder:
    """The finder, and loader, of the shim's modules, whose display() is `display`."""

    def __init__(self, display):
        names = dict(get_ipython=get_ipython, display=display, clear_output=clear_output,
                     publish_display_data=_publisher(display), DisplayObject=DisplayObject,
                     TextDisplayObject=TextDisplayObject, HTML=HTML, Markdown=Markdown,
                     Latex=Latex, SVG=SVG, JSON=JSON, Image=Image)
        for name, mime in DISPLAY_AS:
            names[name] = _display_as(name, mime, display)
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name not in MODULES:
            return None
        if name != "IPython":
            # Never a module of ours inside a real IPython that lacks it.
            parent = sys.modules.get("IPython")
            if getattr(getattr(parent, "__spec__", None), "loader", None) is not self:
                return None
        # An origin that is no file: repr() shows it rather than the finder's class.
        return ModuleSpec(name, self, origin="runbox", is_package=name in PACKAGES)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        names, submodules = MODULES[module.__name__]
        for attr in names:
            setattr(module, attr, self.names[attr])
        module.__all__ = list(names)
        for submodule in submodules:
            __import__(submodule)

