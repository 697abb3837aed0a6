"""The typed events of a streamed run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from ._errors import APIConnectionError, error_for_status
from ._json import loads
from ._media import Image, ImageSource, Output, image_from_json, output_from_json
from ._result import Result, result_from_json
from ._sse import ServerSentEvent


@dataclass(frozen=True)
class StdoutEvent:
    """Output as the code wrote it (whole lines, gathered for a few milliseconds)."""

    event: ClassVar[str] = "stdout"
    text: str


@dataclass(frozen=True)
class StderrEvent:
    event: ClassVar[str] = "stderr"
    text: str


@dataclass(frozen=True)
class DisplayEvent:
    """A notebook output, as the code showed it."""

    event: ClassVar[str] = "display"
    output: Output


@dataclass(frozen=True)
class ImageEvent:
    """An image file the code wrote, stored after the run."""

    event: ClassVar[str] = "image"
    image: Image


@dataclass(frozen=True)
class ResultEvent:
    """The last event: the run's result object."""

    event: ClassVar[str] = "result"
    result: Result


StreamEvent = Union[StdoutEvent, StderrEvent, DisplayEvent, ImageEvent, ResultEvent]


def event_from_sse(sse: ServerSentEvent, source: Optional[ImageSource]) -> Optional[StreamEvent]:
    """The typed event, or None for an event this client does not know (a newer
    server's). An `error` event raises: runbox itself failed mid-stream."""
    if sse.event not in ("stdout", "stderr", "display", "image", "result", "error"):
        return None
    try:
        payload = loads(sse.data.encode("utf-8"))
    except ValueError as exc:
        raise APIConnectionError(
            f"the `{sse.event}` event is not JSON: {sse.data[:200]!r}"
        ) from exc
    if sse.event == "stdout":
        return StdoutEvent(str(payload.get("data", "")))
    if sse.event == "stderr":
        return StderrEvent(str(payload.get("data", "")))
    if sse.event == "display":
        return DisplayEvent(output_from_json(payload, source))
    if sse.event == "image":
        return ImageEvent(image_from_json(payload, source))
    if sse.event == "result":
        return ResultEvent(result_from_json(payload, source))
    status = payload.get("status") if isinstance(payload, dict) else None
    raise error_for_status(status if isinstance(status, int) else 500, payload)
