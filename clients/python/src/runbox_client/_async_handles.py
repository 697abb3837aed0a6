"""Handles of the async client: the same as `_handles`, awaited."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, AsyncGenerator, Dict, Generator, Mapping, Optional, Type

import httpx

from ._errors import APIConnectionError, NotFoundError, TaskNotFinishedError, TaskTimeoutError
from ._events import ResultEvent, StreamEvent, event_from_sse
from ._handles import WAIT_CHUNK
from ._http import AsyncHTTP, path, run_allowance, transport_error
from ._json import loads
from ._records import SessionInfo, TaskInfo, session_info_from_json, task_info_from_json
from ._requests import Files, Language, exec_body
from ._result import Result, result_from_json
from ._sse import SSEDecoder


AsyncEvents = AsyncGenerator[StreamEvent, None]


class AsyncStream:
    """`Stream` for `async for`. The request is sent on entering `async with` or at
    the first event; leaving early closes the connection (which cancels a run outside
    a session)."""

    def __init__(self, http: AsyncHTTP, url: str, body: Dict[str, Any]) -> None:
        self._http = http
        self._url = url
        self._body = body
        self._response: Optional[httpx.Response] = None
        self._events: Optional[AsyncEvents] = None
        self._closed = False
        self.result: Optional[Result] = None

    async def _open(self) -> AsyncEvents:
        if self._events is None:
            if self._closed:
                raise RuntimeError("the stream is closed")
            self._response = await self._http.open_stream(self._url, self._body)
            self._events = _read_events(self._response, self._http)
        return self._events

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._closed and self._events is None:
            raise StopAsyncIteration
        events = await self._open()
        event = await events.__anext__()
        if isinstance(event, ResultEvent):
            self.result = event.result
        return event

    async def collect(self) -> Result:
        """Reads the remaining events and returns the result."""
        async for _ in self:
            pass
        if self.result is None:
            raise APIConnectionError("the stream ended before its result")
        return self.result

    async def aclose(self) -> None:
        self._closed = True
        if self._events is not None:
            await self._events.aclose()
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()


async def _read_events(response: httpx.Response, source: AsyncHTTP) -> AsyncEvents:
    # No reference to its AsyncStream, as in `_handles._read_events`.
    decoder = SSEDecoder()
    try:
        async for line in response.aiter_lines():
            sse = decoder.feed(line.rstrip("\r\n"))
            event = event_from_sse(sse, source) if sse is not None else None
            if event is None:
                continue
            yield event
            if isinstance(event, ResultEvent):
                return
    except httpx.TransportError as exc:
        transport_error(exc, "reading the stream")
    finally:
        await response.aclose()
    # A stream cut right after its last data line still delivers that event.
    last = decoder.feed("")
    final = event_from_sse(last, source) if last is not None else None
    if isinstance(final, ResultEvent):
        yield final
        return
    raise APIConnectionError("the stream ended before its result")


class AsyncSession:
    """`Session` of the async client; `async with` deletes it at exit."""

    def __init__(self, http: AsyncHTTP, info: SessionInfo) -> None:
        self._http = http
        self.id = info.id
        self.created = info

    async def execute(
        self,
        code: str,
        *,
        language: Language = "python",
        context: Optional[Mapping[str, Any]] = None,
        files: Optional[Files] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Result:
        body = exec_body(
            code, language=language, context=context, files=files, env=env, timeout=timeout
        )
        data = await self._http.json(
            "POST",
            path("sessions", self.id, "execute"),
            body=body,
            allowance=run_allowance(timeout),
        )
        return result_from_json(data, self._http)

    def stream(
        self,
        code: str,
        *,
        language: Language = "python",
        context: Optional[Mapping[str, Any]] = None,
        files: Optional[Files] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> AsyncStream:
        body = exec_body(
            code, language=language, context=context, files=files, env=env, timeout=timeout
        )
        return AsyncStream(self._http, path("sessions", self.id, "execute"), body)

    async def info(self) -> SessionInfo:
        return session_info_from_json(await self._http.json("GET", path("sessions", self.id)))

    async def delete(self) -> None:
        try:
            await self._http.request("DELETE", path("sessions", self.id))
        except NotFoundError:
            pass

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.delete()

    def __repr__(self) -> str:
        return f"AsyncSession(id={self.id!r})"


class SessionOpener:
    """What `AsyncClient.session()` returns: `await` it for an `AsyncSession`, or
    `async with` it to have the session deleted at the end."""

    def __init__(self, http: AsyncHTTP, body: Dict[str, Any]) -> None:
        self._http = http
        self._body = body
        self._session: Optional[AsyncSession] = None

    async def _create(self) -> AsyncSession:
        data = await self._http.json(
            "POST", "/sessions", body=self._body, allowance=run_allowance(None)
        )
        return AsyncSession(self._http, session_info_from_json(data))

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._create().__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._create()
        return self._session

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._session is not None:
            await self._session.delete()


class AsyncTask:
    """`Task` of the async client."""

    def __init__(self, http: AsyncHTTP, task_id: str) -> None:
        self._http = http
        self.id = task_id
        self._last_status = ""

    async def info(self) -> TaskInfo:
        return task_info_from_json(await self._http.json("GET", path("tasks", self.id)), self._http)

    async def status(self) -> str:
        return (await self.info()).status

    async def done(self) -> bool:
        return (await self.info()).done

    async def _poll(self, seconds: float) -> Optional[Result]:
        response = await self._http.request(
            "GET",
            path("tasks", self.id, "result"),
            params={"wait": f"{seconds:.3f}"},
            allowance=seconds,
        )
        data = loads(response.content)
        if response.status_code == 200:
            return result_from_json(data, self._http)
        self._last_status = str(data.get("status", "")) if isinstance(data, dict) else ""
        return None

    async def result(self) -> Result:
        result = await self._poll(0.0)
        if result is None:
            raise TaskNotFinishedError(self.id, self._last_status)
        return result

    async def wait(self, timeout: Optional[float] = None) -> Result:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = WAIT_CHUNK if deadline is None else max(0.0, deadline - time.monotonic())
            result = await self._poll(min(WAIT_CHUNK, remaining))
            if result is not None:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeoutError(self.id, self._last_status)

    async def cancel(self) -> TaskInfo:
        return task_info_from_json(
            await self._http.json("DELETE", path("tasks", self.id)), self._http
        )

    def __repr__(self) -> str:
        return f"AsyncTask(id={self.id!r})"
