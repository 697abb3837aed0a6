"""The sync client."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type

from ._handles import Session, Stream, Task
from ._http import (
    BUILD_ALLOWANCE,
    RUN_ALLOWANCE,
    SyncHTTP,
    Verify,
    make_settings,
    path,
    run_allowance,
)
from ._records import (
    FunctionInfo,
    SessionInfo,
    TaskInfo,
    Terminated,
    function_from_json,
    session_info_from_json,
    task_info_from_json,
)
from ._requests import (
    ArgsDeclaration,
    Files,
    Language,
    call_body,
    exec_body,
    function_body,
    runcode_body,
    task_list_params,
)
from ._result import Result, result_from_json


class Client:
    """A runbox server. `url` and `token` default to `RUNBOX_URL` and `RUNBOX_TOKEN`
    (the URL then to http://127.0.0.1:8000).

    `timeout` (seconds, None for none) bounds connecting and each wait for an answer;
    a request that runs code waits longer by the run's own `timeout` (300 s when it
    names none, the server's default cap)."""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Optional[float] = 60.0,
        verify: Verify = True,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self._http = SyncHTTP(make_settings(url, token, timeout, verify, headers))
        self.functions = Functions(self._http)

    @property
    def url(self) -> str:
        return self._http.settings.base_url

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
        """Runs `code` in a fresh sandbox. Python runs as a notebook cell: `value` is
        its last expression (else the global `result`). `context` becomes globals
        (python) or environment variables (bash); `files` are written into the work
        dir first; `timeout` is the run's wall-clock limit in seconds."""
        body = exec_body(
            code, language=language, context=context, files=files, env=env, timeout=timeout
        )
        data = self._http.json("POST", "/execute", body=body, allowance=run_allowance(timeout))
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
        """Runs `code` and yields its events as they happen (see `Stream`)."""
        body = exec_body(
            code, language=language, context=context, files=files, env=env, timeout=timeout
        )
        return Stream(self._http, "/execute", body)

    def session(self, *, idle_timeout: Optional[float] = None, language: str = "python") -> Session:
        """Opens a session now; use it as a context manager so that it is deleted."""
        body: Dict[str, Any] = {"language": language}
        if idle_timeout is not None:
            body["idle_timeout"] = idle_timeout
        info = session_info_from_json(
            self._http.json("POST", "/sessions", body=body, allowance=RUN_ALLOWANCE)
        )
        return Session(self._http, info)

    def list_sessions(self) -> List[SessionInfo]:
        """This token's sessions, oldest first (ended ones for a while too)."""
        data = self._http.json("GET", "/sessions")
        return [session_info_from_json(s) for s in data.get("sessions", [])]

    def task(self, task_id: str) -> Task:
        """A handle on an existing task (nothing is asked of the server yet)."""
        return Task(self._http, task_id)

    def list_tasks(
        self,
        *,
        function: Optional[str] = None,
        status: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[TaskInfo]:
        """This token's tasks, newest first, without their results."""
        data = self._http.json("GET", "/tasks", params=task_list_params(function, status, limit))
        return [task_info_from_json(t, self._http) for t in data.get("tasks", [])]

    def runcode(
        self, code: str, language: str = "python", variables: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        """The original Code Interpreter API's call, answered as it answered:
        `{"output": stdout}` (and `"images": {file name: url}`) or `{"error": text}`."""
        data = self._http.json(
            "POST",
            "/runcode",
            body=runcode_body(code, language, variables),
            allowance=RUN_ALLOWANCE,
        )
        return dict(data)

    def health(self) -> Dict[str, Any]:
        """`GET /health` (no token needed). A degraded server answers 503, raised as
        `UnavailableError` with the health document as its `body`."""
        return dict(self._http.json("GET", "/health"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"


class Functions:
    """The registry of stored functions (`client.functions`)."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def register(
        self,
        name: str,
        code: str,
        *,
        dependencies: Optional[Sequence[str]] = None,
        args: Optional[ArgsDeclaration] = None,
        max_concurrency: Optional[int] = None,
        timeout: Optional[float] = None,
        description: Optional[str] = None,
    ) -> FunctionInfo:
        """Stores version 1 of a function; `ConflictError` if the name is taken (use
        `put`). `code` must define a callable called `name`; `args` is
        `{"count": "int", ...}` or a list of `{"name", "type", "required", "default",
        "description"}`. Waits for `dependencies` to be installed."""
        body = function_body(
            name,
            code,
            dependencies=dependencies,
            args=args,
            max_concurrency=max_concurrency,
            timeout=timeout,
            description=description,
        )
        return function_from_json(
            self._http.json("POST", "/functions", body=body, allowance=BUILD_ALLOWANCE)
        )

    def put(
        self,
        name: str,
        code: str,
        *,
        dependencies: Optional[Sequence[str]] = None,
        args: Optional[ArgsDeclaration] = None,
        max_concurrency: Optional[int] = None,
        timeout: Optional[float] = None,
        description: Optional[str] = None,
    ) -> FunctionInfo:
        """Stores the next version (version 1 of a new name). A whole definition:
        what is left out takes its default, not the previous version's."""
        body = function_body(
            name,
            code,
            dependencies=dependencies,
            args=args,
            max_concurrency=max_concurrency,
            timeout=timeout,
            description=description,
        )
        return function_from_json(
            self._http.json("PUT", path("functions", name), body=body, allowance=BUILD_ALLOWANCE)
        )

    def get(self, name: str, *, version: Optional[int] = None) -> FunctionInfo:
        """The latest version with its `versions`, `env` and `running`, or one version."""
        url = (
            path("functions", name)
            if version is None
            else path("functions", name, "versions", str(version))
        )
        return function_from_json(self._http.json("GET", url))

    def list(self) -> List[FunctionInfo]:
        """Every function's latest version, without code."""
        data = self._http.json("GET", "/functions")
        return [function_from_json(f) for f in data.get("functions", [])]

    def delete(self, name: str) -> int:
        """Deletes every version (running calls finish); returns how many went."""
        data = self._http.json("DELETE", path("functions", name))
        return int(data.get("versions", 0))

    def call(self, name: str, /, **args: Any) -> Result:
        """Calls the function in a fresh sandbox and waits for its result. Bad
        arguments raise `RejectedError` (its `argument` names the one at fault)."""
        return self.call_with(name, args)

    def call_with(
        self, name: str, args: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> Result:
        """`call` with the arguments as a mapping, and optionally an older version."""
        body = call_body(args, is_async=False, version=version)
        data = self._http.json(
            "POST", path("functions", name, "call"), body=body, allowance=RUN_ALLOWANCE
        )
        return result_from_json(data, self._http)

    def call_async(self, name: str, /, **args: Any) -> Task:
        """Starts the call as a task and returns at once."""
        return self.call_async_with(name, args)

    def call_async_with(
        self, name: str, args: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> Task:
        body = call_body(args, is_async=True, version=version)
        data = self._http.json("POST", path("functions", name, "call"), body=body)
        return Task(self._http, str(data["task_id"]))

    def terminate(self, name: str) -> Terminated:
        """Ends every running call of the function in this server: sync calls answer
        `killed`, tasks end `CANCELLED`."""
        data = self._http.json("POST", path("functions", name, "terminate"))
        return Terminated(
            count=int(data.get("terminated", 0)), task_ids=list(data.get("task_ids", []))
        )
