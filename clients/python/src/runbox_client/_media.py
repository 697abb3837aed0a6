"""Images and notebook outputs of a run.

Raster images are stored by the server and referenced by URL; their bytes are fetched
only when asked for (`fetch()`, `save()`, or a notebook rendering them), then kept.
The `_repr_*_` methods are IPython's display protocol, so an `Output` or an `Image` left
as the last expression of a notebook cell renders as what the sandbox drew.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Protocol, Union

PathArg = Union[str, "os.PathLike[str]"]


class ImageSource(Protocol):
    """Whatever can download an image URL: the client that produced the result."""

    def get_image(self, url: str) -> bytes: ...

    async def aget_image(self, url: str) -> bytes: ...


@dataclass(eq=False)
class Image:
    """An image the run stored. `size` is its length in bytes (the JSON's `bytes`)."""

    name: str
    url: str
    mime: str
    size: int
    _source: Optional[ImageSource] = field(default=None, repr=False)
    _content: Optional[bytes] = field(default=None, repr=False)

    def fetch(self) -> bytes:
        """The image's bytes, downloaded on the first call."""
        if self._content is None:
            if self._source is None:
                raise RuntimeError(f"no client to fetch {self.url} with")
            self._content = self._source.get_image(self.url)
        return self._content

    async def afetch(self) -> bytes:
        """`fetch()` without blocking the event loop."""
        if self._content is None:
            if self._source is None:
                raise RuntimeError(f"no client to fetch {self.url} with")
            self._content = await self._source.aget_image(self.url)
        return self._content

    def save(self, path: PathArg) -> Path:
        """Writes the image to `path`; a directory gets a file of the image's own name.
        Returns the file written."""
        target = Path(path)
        if target.is_dir():
            target = target / Path(self.name).name
        target.write_bytes(self.fetch())
        return target

    def _repr_png_(self) -> Optional[bytes]:
        return self.fetch() if self.mime == "image/png" else None

    def _repr_jpeg_(self) -> Optional[bytes]:
        return self.fetch() if self.mime == "image/jpeg" else None

    def _repr_svg_(self) -> Optional[str]:
        if self.mime != "image/svg+xml":
            return None
        return self.fetch().decode("utf-8", errors="replace")


def image_from_json(obj: Mapping[str, Any], source: Optional[ImageSource]) -> Image:
    return Image(
        name=str(obj.get("name", "")),
        url=str(obj["url"]),
        mime=str(obj.get("mime", "")),
        size=int(obj.get("bytes", 0)),
        _source=source,
    )


_STORED_MIMES = ("image/png", "image/jpeg")


@dataclass(eq=False)
class Output:
    """One display item: a figure shown, an object passed to `display()`, or the rich
    form of the cell's value. `type` is `display_data` or `execute_result`; `data`
    maps MIME types to representations, raster images as `Image`."""

    type: str
    data: Dict[str, Any]
    metadata: Dict[str, Any] = field(default_factory=dict)
    truncated: bool = False

    def _text_of(self, mime: str) -> Optional[str]:
        value = self.data.get(mime)
        return value if isinstance(value, str) else None

    @property
    def text(self) -> Optional[str]:
        """`text/plain`: what `repr()` of the object gave."""
        return self._text_of("text/plain")

    @property
    def html(self) -> Optional[str]:
        return self._text_of("text/html")

    @property
    def markdown(self) -> Optional[str]:
        return self._text_of("text/markdown")

    @property
    def latex(self) -> Optional[str]:
        return self._text_of("text/latex")

    @property
    def svg(self) -> Optional[str]:
        return self._text_of("image/svg+xml")

    @property
    def json(self) -> Any:
        """`application/json`, decoded (None when absent)."""
        return self.data.get("application/json")

    @property
    def image(self) -> Optional[Image]:
        """The stored raster image (PNG preferred over JPEG), not yet downloaded."""
        for mime in _STORED_MIMES:
            value = self.data.get(mime)
            if isinstance(value, Image):
                return value
        return None

    @property
    def png(self) -> Optional[bytes]:
        """The PNG's bytes, downloaded on first access."""
        value = self.data.get("image/png")
        return value.fetch() if isinstance(value, Image) else None

    @property
    def jpeg(self) -> Optional[bytes]:
        value = self.data.get("image/jpeg")
        return value.fetch() if isinstance(value, Image) else None

    def _repr_html_(self) -> Optional[str]:
        return self.html

    def _repr_markdown_(self) -> Optional[str]:
        return self.markdown

    def _repr_latex_(self) -> Optional[str]:
        return self.latex

    def _repr_svg_(self) -> Optional[str]:
        return self.svg

    def _repr_json_(self) -> Any:
        return self.json

    def _repr_png_(self) -> Optional[bytes]:
        return self.png

    def _repr_jpeg_(self) -> Optional[bytes]:
        return self.jpeg

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text if self.text is not None else repr(self))


def output_from_json(obj: Mapping[str, Any], source: Optional[ImageSource]) -> Output:
    data: Dict[str, Any] = {}
    for mime, value in dict(obj.get("data") or {}).items():
        if mime in _STORED_MIMES and isinstance(value, dict) and "url" in value:
            data[mime] = image_from_json(value, source)
        else:
            data[mime] = value
    return Output(
        type=str(obj.get("type", "display_data")),
        data=data,
        metadata=dict(obj.get("metadata") or {}),
        truncated=bool(obj.get("truncated", False)),
    )
