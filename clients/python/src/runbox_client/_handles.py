"""Handles of the sync client: a stream, a session, a task."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Dict, Generator, Mapping, Optional, Type

import httpx

from ._errors import APIConnectionError, NotFoundError, TaskNotFinishedError, TaskTimeoutError
from ._events import ResultEvent, StreamEvent, event_from_sse
from ._http import SyncHTTP, path, run_allowance, transport_error
from ._json import loads
from ._records import SessionInfo, TaskInfo, session_info_from_json, task_info_from_json
from ._requests import Files, Language, exec_body
from ._result import Result, result_from_json
from ._sse import iter_events

Events = Generator[StreamEvent, None, None]

WAIT_CHUNK = 30.0
"""Seconds of one long poll of a task; the server holds one for at most 60."""


class Stream:
    """The events of a streamed run, in order: `StdoutEvent`, `StderrEvent`,
    `DisplayEvent`, `ImageEvent`, and last a `ResultEvent` (also kept in `result`).

    The request is sent on entering `with` or at the first event. Leaving early closes
    the connection, which cancels a run outside a session. A refusal raises the
    `APIError` before any event; so does runbox failing mid-stream (its `error`
    event)."""

    def __init__(self, http: SyncHTTP, url: str, body: Dict[str, Any]) -> None:
        self._http = http
        self._url = url
        self._body = body
        self._response: Optional[httpx.Response] = None
        self._events: Optional[Events] = None
        self._closed = False
        self.result: Optional[Result] = None

    def _open(self) -> Events:
        if self._events is None:
            if self._closed:
                raise RuntimeError("the stream is closed")
            self._response = self._http.open_stream(self._url, self._body)
            self._events = _read_events(self._response, self._http)
        return self._events

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> StreamEvent:
        if self._closed and self._events is None:
            raise StopIteration
        event = next(self._open())
        if isinstance(event, ResultEvent):
            self.result = event.result
        return event

    def collect(self) -> Result:
        """Reads the remaining events and returns the result."""
        for _ in self:
            pass
        if self.result is None:
            raise APIConnectionError("the stream ended before its result")
        return self.result

    def close(self) -> None:
        self._closed = True
        if self._events is not None:
            self._events.close()
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Stream:
        self._open()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


def _read_events(response: httpx.Response, source: SyncHTTP) -> Events:
    # Holds no reference to its Stream: a stream dropped in the middle of a loop is
    # freed at once, and closing this generator closes the connection (and so cancels
    # the run) without waiting for the garbage collector.
    try:
        for sse in iter_events(response.iter_lines()):
            event = event_from_sse(sse, source)
            if event is None:
                continue
            yield event
            if isinstance(event, ResultEvent):
                return
    except httpx.TransportError as exc:
        transport_error(exc, "reading the stream")
    finally:
        response.close()
    raise APIConnectionError("the stream ended before its result")


class Session:
    """A live interpreter whose globals, imports and files persist between
    executions. Leaving `with` (or `delete()`) removes its container."""

    def __init__(self, http: SyncHTTP, info: SessionInfo) -> None:
        self._http = http
        self.id = info.id
        self.created = info

    def execute(
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
        data = self._http.json(
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
    ) -> Stream:
        """Like `Client.stream`, except that closing the stream early does not stop
        the execution: the session stays busy (409) until it ends."""
        body = exec_body(
            code, language=language, context=context, files=files, env=env, timeout=timeout
        )
        return Stream(self._http, path("sessions", self.id, "execute"), body)

    def info(self) -> SessionInfo:
        return session_info_from_json(self._http.json("GET", path("sessions", self.id)))

    def delete(self) -> None:
        """Ends the session and removes its container; a session already gone is no
        error."""
        try:
            self._http.request("DELETE", path("sessions", self.id))
        except NotFoundError:
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.delete()

    def __repr__(self) -> str:
        return f"Session(id={self.id!r})"


class Task:
    """An async function call. `wait()` blocks until it ends; it goes on in the
    server whether or not anyone waits."""

    def __init__(self, http: SyncHTTP, task_id: str) -> None:
        self._http = http
        self.id = task_id
        self._last_status = ""

    def info(self) -> TaskInfo:
        return task_info_from_json(self._http.json("GET", path("tasks", self.id)), self._http)

    def status(self) -> str:
        """`QUEUED`, `RUNNING`, `DONE`, `FAILED`, `TIMEOUT` or `CANCELLED`."""
        return self.info().status

    def done(self) -> bool:
        return self.info().done

    def _poll(self, seconds: float) -> Optional[Result]:
        response = self._http.request(
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

    def result(self) -> Result:
        """The result of an ended task (whatever its status: a failed or cancelled
        task has `success` false); `TaskNotFinishedError` while it runs."""
        result = self._poll(0.0)
        if result is None:
            raise TaskNotFinishedError(self.id, self._last_status)
        return result

    def wait(self, timeout: Optional[float] = None) -> Result:
        """Blocks until the task has ended and returns its result; after `timeout`
        seconds raises `TaskTimeoutError` (the task goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = WAIT_CHUNK if deadline is None else max(0.0, deadline - time.monotonic())
            result = self._poll(min(WAIT_CHUNK, remaining))
            if result is not None:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeoutError(self.id, self._last_status)

    def cancel(self) -> TaskInfo:
        """Cancels a queued or running task (its sandbox is gone when this returns);
        `ConflictError` if it had already ended."""
        return task_info_from_json(self._http.json("DELETE", path("tasks", self.id)), self._http)

    def __repr__(self) -> str:
        return f"Task(id={self.id!r})"
