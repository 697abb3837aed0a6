"""The exceptions of the client.

Two families that never mix: runbox's own refusals and failures (an HTTP status of
400 and above) raise an `APIError`; a failure of the user's code is data (a `Result`
with `success` false) and only raises `ExecutionError` when asked to by
`Result.raise_for_error()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Type

if TYPE_CHECKING:
    from ._result import Result


class RunboxError(Exception):
    """Everything this package raises on purpose derives from this."""


class APIConnectionError(RunboxError):
    """The server could not be reached, or the connection broke mid-answer."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """No answer within the HTTP timeout."""


class APIError(RunboxError):
    """runbox answered with an error status. `body` is the decoded JSON body (or the
    text when it was not JSON), `message` the human part of it."""

    status: int
    body: Any
    message: str
    request_id: Optional[str]
    headers: Dict[str, str]

    def __init__(
        self,
        status: int,
        body: Any,
        *,
        message: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.status = status
        self.body = body
        self.message = message if message is not None else _message_of(body, status)
        self.headers = dict(headers or {})
        self.request_id = self.headers.get("x-request-id")
        super().__init__(f"{status}: {self.message}")


class AuthenticationError(APIError):
    """401: the token is missing, unknown, expired or revoked."""


class ScopeError(APIError):
    """403: the token is valid but lacks the scope in `required`."""

    @property
    def required(self) -> Optional[str]:
        return _text(_field(self.body, "required"))


class NotFoundError(APIError):
    """404: no such function, task, session (or one of another token's), or image."""


class ConflictError(APIError):
    """409: a function name already taken, a session busy with another execution, a
    task that has already finished."""


class GoneError(APIError):
    """410: the session has ended (timeout, memory, reaped); see its `info()`."""


class RejectedError(APIError):
    """400, 413 or 422: the request itself was refused. `field` names the request
    field at fault (`timeout`, `files[0].path`, `context.x`); for functions, `kind`
    says why (`invalid_args`, `invalid_definition`, `syntax`, `dependency`, ...) and
    `argument` names the argument at fault."""

    @property
    def kind(self) -> Optional[str]:
        return _text(_detail(self.body, "kind"))

    @property
    def field(self) -> Optional[str]:
        return _text(_detail(self.body, "field"))

    @property
    def argument(self) -> Optional[str]:
        return _text(_detail(self.body, "argument"))

    @property
    def traceback(self) -> Optional[str]:
        return _text(_detail(self.body, "traceback"))

    @property
    def log(self) -> Optional[str]:
        """pip's output, when a function's dependencies could not be installed."""
        return _text(_detail(self.body, "log"))

    @property
    def detail(self) -> Optional[str]:
        return _text(_detail(self.body, "detail"))


class RateLimitError(APIError):
    """429. `retry_after` is in seconds when the server said when to come back."""

    @property
    def retry_after(self) -> Optional[float]:
        header = self.headers.get("retry-after")
        if header is not None:
            try:
                return float(header)
            except ValueError:
                pass
        seconds = _field(self.body, "retry_after")
        return float(seconds) if isinstance(seconds, (int, float)) else None


class ConcurrencyLimitError(RateLimitError):
    """429: the function already runs `max_concurrency` calls."""


class TooManySessionsError(RateLimitError):
    """429: this token's subject has `max_per_subject` live sessions already."""

    @property
    def max_per_subject(self) -> Optional[int]:
        value = _field(self.body, "max_per_subject")
        return value if isinstance(value, int) else None


class ServerError(APIError):
    """5xx: runbox itself failed."""


class UnavailableError(ServerError):
    """503: runbox cannot run anything now (Docker or the database is unreachable)."""


class OverloadedError(ServerError):
    """504: no run could start within the server's admission wait. Safe to retry
    later: the code did not start."""


class ExecutionError(RunboxError):
    """The user's code failed; raised by `Result.raise_for_error()`. The `result`
    keeps everything the run produced."""

    def __init__(self, result: Result) -> None:
        self.result = result
        error = result.error
        self.kind = error.kind if error is not None else "unknown"
        self.message = error.message if error is not None else "the run failed"
        self.traceback = error.traceback if error is not None else None
        super().__init__(f"{self.kind}: {self.message}")


class TaskNotFinishedError(RunboxError):
    """`Task.result()` on a task that has not ended yet."""

    def __init__(self, task_id: str, status: str) -> None:
        self.task_id = task_id
        self.status = status
        super().__init__(f"task {task_id} has not finished (status {status})")


class TaskTimeoutError(TaskNotFinishedError, TimeoutError):
    """`Task.wait(timeout)` gave up; the task goes on (cancel it if that is meant)."""


_BY_STATUS: Dict[int, Type[APIError]] = {
    400: RejectedError,
    401: AuthenticationError,
    403: ScopeError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: RejectedError,
    422: RejectedError,
    429: RateLimitError,
    503: UnavailableError,
    504: OverloadedError,
}


def error_for_status(
    status: int, body: Any, headers: Optional[Mapping[str, str]] = None
) -> APIError:
    """The exception for an error answer; also used for a stream's `error` event,
    which carries the status the request would have had."""
    cls = _BY_STATUS.get(status)
    if status == 429 and isinstance(body, dict):
        if "max_per_subject" in body:
            cls = TooManySessionsError
        elif "task_id" in body:
            cls = ConcurrencyLimitError
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(status, body, headers=headers)


def _message_of(body: Any, status: int) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return f"HTTP {status}"


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


def _detail(body: Any, name: str) -> Any:
    """A field of the rejection: top level for 400s, under `error` for the 422s of the
    functions surface."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and name in error:
        return error[name]
    return body.get(name)
