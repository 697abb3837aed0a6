"""The async client: `Client` with every request awaited."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type

from ._async_handles import AsyncStream, AsyncTask, SessionOpener
from ._http import (
    BUILD_ALLOWANCE,
    RUN_ALLOWANCE,
    AsyncHTTP,
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


class AsyncClient:
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
        self._http = AsyncHTTP(make_settings(url, token, timeout, verify, headers))
        self.functions = AsyncFunctions(self._http)

    @property
    def url(self) -> str:
        return self._http.settings.base_url

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
        """Runs `code` in a fresh sandbox. Python runs as a notebook cell: `value` is
        its last expression (else the global `result`). `context` becomes globals
        (python) or environment variables (bash); `files` are written into the work
        dir first; `timeout` is the run's wall-clock limit in seconds."""
        body = exec_body(
            code, language=language, context=context, files=files, env=env, timeout=timeout
        )
        data = await self._http.json(
            "POST", "/execute", body=body, allowance=run_allowance(timeout)
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
        """Runs `code` and yields its events as they happen (see `Stream`)."""
        body = exec_body(
            code, language=language, context=context, files=files, env=env, timeout=timeout
        )
        return AsyncStream(self._http, "/execute", body)

    def session(
        self, *, idle_timeout: Optional[float] = None, language: str = "python"
    ) -> SessionOpener:
        """`async with client.session() as s:` opens a session and deletes it at the
        end; `s = await client.session()` opens one to delete yourself."""
        body: Dict[str, Any] = {"language": language}
        if idle_timeout is not None:
            body["idle_timeout"] = idle_timeout
        return SessionOpener(self._http, body)

    async def list_sessions(self) -> List[SessionInfo]:
        """This token's sessions, oldest first (ended ones for a while too)."""
        data = await self._http.json("GET", "/sessions")
        return [session_info_from_json(s) for s in data.get("sessions", [])]

    def task(self, task_id: str) -> AsyncTask:
        """A handle on an existing task (nothing is asked of the server yet)."""
        return AsyncTask(self._http, task_id)

    async def list_tasks(
        self,
        *,
        function: Optional[str] = None,
        status: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[TaskInfo]:
        """This token's tasks, newest first, without their results."""
        data = await self._http.json(
            "GET", "/tasks", params=task_list_params(function, status, limit)
        )
        return [task_info_from_json(t, self._http) for t in data.get("tasks", [])]

    async def runcode(
        self, code: str, language: str = "python", variables: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        """The original Code Interpreter API's call, answered as it answered:
        `{"output": stdout}` (and `"images": {file name: url}`) or `{"error": text}`."""
        data = await self._http.json(
            "POST",
            "/runcode",
            body=runcode_body(code, language, variables),
            allowance=RUN_ALLOWANCE,
        )
        return dict(data)

    async def health(self) -> Dict[str, Any]:
        """`GET /health` (no token needed). A degraded server answers 503, raised as
        `UnavailableError` with the health document as its `body`."""
        return dict(await self._http.json("GET", "/health"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"


class AsyncFunctions:
    """`Functions` of the async client."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def register(
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
            await self._http.json("POST", "/functions", body=body, allowance=BUILD_ALLOWANCE)
        )

    async def put(
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
            await self._http.json(
                "PUT", path("functions", name), body=body, allowance=BUILD_ALLOWANCE
            )
        )

    async def get(self, name: str, *, version: Optional[int] = None) -> FunctionInfo:
        """The latest version with its `versions`, `env` and `running`, or one version."""
        url = (
            path("functions", name)
            if version is None
            else path("functions", name, "versions", str(version))
        )
        return function_from_json(await self._http.json("GET", url))

    async def list(self) -> List[FunctionInfo]:
        """Every function's latest version, without code."""
        data = await self._http.json("GET", "/functions")
        return [function_from_json(f) for f in data.get("functions", [])]

    async def delete(self, name: str) -> int:
        """Deletes every version (running calls finish); returns how many went."""
        data = await self._http.json("DELETE", path("functions", name))
        return int(data.get("versions", 0))

    async def call(self, name: str, /, **args: Any) -> Result:
        """Calls the function in a fresh sandbox and waits for its result. Bad
        arguments raise `RejectedError` (its `argument` names the one at fault)."""
        return await self.call_with(name, args)

    async def call_with(
        self, name: str, args: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> Result:
        """`call` with the arguments as a mapping, and optionally an older version."""
        body = call_body(args, is_async=False, version=version)
        data = await self._http.json(
            "POST", path("functions", name, "call"), body=body, allowance=RUN_ALLOWANCE
        )
        return result_from_json(data, self._http)

    async def call_async(self, name: str, /, **args: Any) -> AsyncTask:
        """Starts the call as a task and returns at once."""
        return await self.call_async_with(name, args)

    async def call_async_with(
        self, name: str, args: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> AsyncTask:
        body = call_body(args, is_async=True, version=version)
        data = await self._http.json("POST", path("functions", name, "call"), body=body)
        return AsyncTask(self._http, str(data["task_id"]))

    async def terminate(self, name: str) -> Terminated:
        """Ends every running call of the function in this server: sync calls answer
        `killed`, tasks end `CANCELLED`."""
        data = await self._http.json("POST", path("functions", name, "terminate"))
        return Terminated(
            count=int(data.get("terminated", 0)), task_ids=list(data.get("task_ids", []))
        )
