"""What the server says about its sessions, functions and tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from ._media import ImageSource
from ._result import Result, result_from_json

TASK_STATUSES = ("QUEUED", "RUNNING", "DONE", "FAILED", "TIMEOUT", "CANCELLED")
FINISHED_STATUSES = frozenset({"DONE", "FAILED", "TIMEOUT", "CANCELLED"})

_TIMESTAMP = re.compile(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


def parse_time(text: Optional[str]) -> Optional[datetime]:
    """RFC 3339 with the server's nanoseconds, which `datetime.fromisoformat` of
    Python < 3.11 does not read."""
    if not text:
        return None
    match = _TIMESTAMP.match(text)
    if match is None:
        return datetime.fromisoformat(text)
    base, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    if zone in (None, "Z"):
        zone = "+00:00"
    parsed = datetime.fromisoformat(f"{base}.{micros}{zone}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class SessionInfo:
    id: str
    language: str
    created_at: Optional[datetime]
    last_used_at: Optional[datetime]
    expires_at: Optional[datetime]
    idle_timeout: float
    max_lifetime: float
    executions: int
    alive: bool
    busy: bool
    ended_at: Optional[datetime] = None
    ended_reason: Optional[str] = None


def session_info_from_json(obj: Mapping[str, Any]) -> SessionInfo:
    return SessionInfo(
        id=str(obj["id"]),
        language=str(obj.get("language", "python")),
        created_at=parse_time(obj.get("created_at")),
        last_used_at=parse_time(obj.get("last_used_at")),
        expires_at=parse_time(obj.get("expires_at")),
        idle_timeout=float(obj.get("idle_timeout") or 0.0),
        max_lifetime=float(obj.get("max_lifetime") or 0.0),
        executions=int(obj.get("executions") or 0),
        alive=bool(obj.get("alive", True)),
        busy=bool(obj.get("busy", False)),
        ended_at=parse_time(obj.get("ended_at")),
        ended_reason=obj.get("ended_reason"),
    )


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a stored function. `has_default` tells a default of `None`
    from no default."""

    name: str
    type: str
    required: bool
    description: str = ""
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True)
class Environment:
    """The function's dependency environment: `status` is `ready`, `building` or
    `failed` (then `log` has pip's output)."""

    status: str
    image: str
    log: str
    hash: Optional[str] = None
    build_seconds: Optional[float] = None


@dataclass(frozen=True)
class FunctionVersion:
    version: int
    created_at: Optional[datetime]
    created_by: str
    description: str
    dependencies: List[str]


@dataclass(frozen=True)
class FunctionInfo:
    """A stored function. `code` is None in lists; `env` and `running` describe the
    latest version; `versions` is set by `functions.get()`."""

    name: str
    version: int
    description: str
    dependencies: List[str]
    args: List[ArgSpec]
    max_concurrency: Optional[int]
    timeout: Optional[float]
    created_at: Optional[datetime]
    created_by: str
    code: Optional[str] = None
    env: Optional[Environment] = None
    running: Optional[int] = None
    versions: Optional[List[FunctionVersion]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def function_from_json(obj: Mapping[str, Any]) -> FunctionInfo:
    env = obj.get("env")
    versions = obj.get("versions")
    timeout = obj.get("timeout")
    return FunctionInfo(
        name=str(obj["name"]),
        version=int(obj.get("version") or 0),
        description=str(obj.get("description") or ""),
        dependencies=list(obj.get("dependencies") or []),
        args=[
            ArgSpec(
                name=str(a["name"]),
                type=str(a.get("type", "any")),
                required=bool(a.get("required", False)),
                description=str(a.get("description") or ""),
                default=a.get("default"),
                has_default="default" in a,
            )
            for a in obj.get("args") or []
        ],
        max_concurrency=obj.get("max_concurrency"),
        timeout=float(timeout) if timeout is not None else None,
        created_at=parse_time(obj.get("created_at")),
        created_by=str(obj.get("created_by") or ""),
        code=obj.get("code"),
        env=(
            Environment(
                status=str(env.get("status", "")),
                image=str(env.get("image", "")),
                log=str(env.get("log") or ""),
                hash=env.get("hash"),
                build_seconds=env.get("build_seconds"),
            )
            if isinstance(env, dict)
            else None
        ),
        running=obj.get("running"),
        versions=(
            [
                FunctionVersion(
                    version=int(v["version"]),
                    created_at=parse_time(v.get("created_at")),
                    created_by=str(v.get("created_by") or ""),
                    description=str(v.get("description") or ""),
                    dependencies=list(v.get("dependencies") or []),
                )
                for v in versions
            ]
            if isinstance(versions, list)
            else None
        ),
        raw=dict(obj),
    )


@dataclass(frozen=True)
class TaskInfo:
    """An async call as the server records it. `result` is set once it has ended
    (`GET /tasks/{id}`; lists leave it and `args` out)."""

    task_id: str
    function_name: str
    function_version: int
    status: str
    reason: Optional[str]
    created_at: Optional[datetime]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    args: Optional[Dict[str, Any]] = None
    result: Optional[Result] = None

    @property
    def done(self) -> bool:
        return self.status in FINISHED_STATUSES


def task_info_from_json(obj: Mapping[str, Any], source: Optional[ImageSource]) -> TaskInfo:
    result = obj.get("result")
    return TaskInfo(
        task_id=str(obj["task_id"]),
        function_name=str(obj.get("function_name") or ""),
        function_version=int(obj.get("function_version") or 0),
        status=str(obj.get("status") or ""),
        reason=obj.get("reason"),
        created_at=parse_time(obj.get("created_at")),
        started_at=parse_time(obj.get("started_at")),
        finished_at=parse_time(obj.get("finished_at")),
        args=obj.get("args"),
        result=result_from_json(result, source) if isinstance(result, dict) else None,
    )


@dataclass(frozen=True)
class Terminated:
    """What `functions.terminate(name)` ended: `count` calls, of which these tasks."""

    count: int
    task_ids: List[str]
