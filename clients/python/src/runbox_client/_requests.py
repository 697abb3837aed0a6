"""Request bodies, shared by the sync and the async client."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union

Language = Literal["python", "bash"]

ArgsDeclaration = Union[Mapping[str, Union[str, Mapping[str, Any]]], Sequence[Mapping[str, Any]]]
"""A function's arguments: `{"count": "int", "factor": {"type": "float", "default": 2.0}}`
or `[{"name": "count", "type": "int", "required": True, "description": "..."}, ...]`."""

Content = Union[bytes, str, "os.PathLike[str]"]
"""A file's content: bytes, text (UTF-8), or a local file (`pathlib.Path`) to read."""

FileItem = Union[str, "os.PathLike[str]", Tuple[str, Content]]
"""A local file uploaded under its own name, or `(name, content)`."""

Files = Union[Mapping[str, Content], Sequence[FileItem]]


def encode_files(files: Optional[Files]) -> Optional[List[Dict[str, str]]]:
    """The `files` field: `{"path", "content_base64"}` entries.

    A bare string in a list is a local path (it has no other name to go by); the
    content of a named entry is bytes, text, or a `pathlib.Path` to read."""
    if files is None:
        return None
    if isinstance(files, (str, bytes)):
        raise TypeError("files must be a list or a mapping, not a single str or bytes")
    pairs: List[Tuple[str, Content]] = []
    if isinstance(files, Mapping):
        pairs = list(files.items())
    else:
        for item in files:
            if isinstance(item, tuple):
                pairs.append(item)
            elif isinstance(item, (str, os.PathLike)):
                pairs.append((Path(item).name, Path(item)))
            else:
                raise TypeError(
                    f"a file is a path or a (name, content) pair, not {type(item).__name__}"
                )
    return [{"path": name, "content_base64": _b64(content)} for name, content in pairs]


def _b64(content: Content) -> str:
    if isinstance(content, bytes):
        raw = content
    elif isinstance(content, str):
        raw = content.encode("utf-8")
    else:
        raw = Path(content).read_bytes()
    return base64.b64encode(raw).decode("ascii")


def exec_body(
    code: str,
    *,
    language: Language,
    context: Optional[Mapping[str, Any]],
    files: Optional[Files],
    env: Optional[Mapping[str, str]],
    timeout: Optional[float],
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"code": code, "language": language}
    if context is not None:
        body["context"] = dict(context)
    encoded = encode_files(files)
    if encoded is not None:
        body["files"] = encoded
    if env is not None:
        body["env"] = dict(env)
    if timeout is not None:
        body["timeout"] = timeout
    return body


def function_body(
    name: Optional[str],
    code: str,
    *,
    dependencies: Optional[Sequence[str]],
    args: Optional[ArgsDeclaration],
    max_concurrency: Optional[int],
    timeout: Optional[float],
    description: Optional[str],
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"code": code}
    if name is not None:
        body["name"] = name
    if dependencies is not None:
        body["dependencies"] = list(dependencies)
    if isinstance(args, Mapping):
        body["args"] = {k: v if isinstance(v, str) else dict(v) for k, v in args.items()}
    elif args is not None:
        body["args"] = [dict(a) for a in args]
    if max_concurrency is not None:
        body["max_concurrency"] = max_concurrency
    if timeout is not None:
        body["timeout"] = timeout
    if description is not None:
        body["description"] = description
    return body


def call_body(
    args: Optional[Mapping[str, Any]], *, is_async: bool, version: Optional[int]
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"args": dict(args or {})}
    if is_async:
        body["async"] = True
    if version is not None:
        body["version"] = version
    return body


def runcode_body(
    code: str, language: str, variables: Optional[Mapping[str, Any]]
) -> Dict[str, Any]:
    return {"languageType": language, "variables": dict(variables or {}), "code": code}


def task_list_params(
    function: Optional[str], status: Optional[str], limit: Optional[int]
) -> Dict[str, str]:
    params: Dict[str, str] = {}
    if function is not None:
        params["function"] = function
    if status is not None:
        params["status"] = status
    if limit is not None:
        params["limit"] = str(limit)
    return params
