"""Python client of runbox: run untrusted Python and bash in sandboxes.

from runbox_client import Client

with Client() as rb:                      # RUNBOX_URL, RUNBOX_TOKEN
    print(rb.execute("21 * 2").value)     # 42
"""

__version__ = "0.1.0"

from ._async_client import AsyncClient, AsyncFunctions
from ._async_handles import AsyncSession, AsyncStream, AsyncTask, SessionOpener
from ._client import Client, Functions
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConcurrencyLimitError,
    ConflictError,
    ExecutionError,
    GoneError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    RejectedError,
    RunboxError,
    ScopeError,
    ServerError,
    TaskNotFinishedError,
    TaskTimeoutError,
    TooManySessionsError,
    UnavailableError,
)
from ._events import DisplayEvent, ImageEvent, ResultEvent, StderrEvent, StdoutEvent, StreamEvent
from ._handles import Session, Stream, Task
from ._media import Image, Output
from ._records import (
    ArgSpec,
    Environment,
    FunctionInfo,
    FunctionVersion,
    SessionInfo,
    TaskInfo,
    Terminated,
)
from ._result import ExecError, Result

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ArgSpec",
    "AsyncClient",
    "AsyncFunctions",
    "AsyncSession",
    "AsyncStream",
    "AsyncTask",
    "AuthenticationError",
    "Client",
    "ConcurrencyLimitError",
    "ConflictError",
    "DisplayEvent",
    "Environment",
    "ExecError",
    "ExecutionError",
    "FunctionInfo",
    "FunctionVersion",
    "Functions",
    "GoneError",
    "Image",
    "ImageEvent",
    "NotFoundError",
    "Output",
    "OverloadedError",
    "RateLimitError",
    "RejectedError",
    "Result",
    "ResultEvent",
    "RunboxError",
    "ScopeError",
    "ServerError",
    "Session",
    "SessionInfo",
    "SessionOpener",
    "StderrEvent",
    "StdoutEvent",
    "Stream",
    "StreamEvent",
    "Task",
    "TaskInfo",
    "TaskNotFinishedError",
    "TaskTimeoutError",
    "Terminated",
    "TooManySessionsError",
    "UnavailableError",
]
