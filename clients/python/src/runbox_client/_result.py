"""The result object every run answers with (`/execute`, sessions, function calls,
tasks)."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ._errors import ExecutionError
from ._media import Image, ImageSource, Output, image_from_json, output_from_json


@dataclass(frozen=True)
class ExecError:
    """How the user's code failed. `kind` is one of `syntax`, `runtime`, `timeout`,
    `memory`, `output_limit`, `killed`, `invalid_args`, `dependency`, `sandbox`
    (kept a plain string so that a kind added by a newer server still reads)."""

    kind: str
    message: str
    traceback: Optional[str] = None


@dataclass(eq=False)
class Result:
    """What a run produced. A failure of the user's code is not an exception: it is
    `success` false with `error` set (call `raise_for_error()` to turn it into one)."""

    success: bool
    value: Any
    error: Optional[ExecError]
    stdout: str
    stderr: str
    exit_code: Optional[int]
    images: List[Image]
    outputs: List[Output]
    truncated: bool
    execution_time: float
    task_id: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)
    """The JSON object as the server sent it."""

    def raise_for_error(self) -> Result:
        """Raises `ExecutionError` when the code failed; returns the result otherwise,
        so that `client.execute(code).raise_for_error().value` reads in one line."""
        if not self.success:
            raise ExecutionError(self)
        return self

    def display(self) -> None:
        """Shows the run in a notebook as the cell itself would have: its stdout and
        stderr, then every output in order (figures, tables, the value)."""
        # Imported by name: IPython is optional, and only notebooks have it.
        try:
            display: Any = importlib.import_module("IPython.display").display
        except ImportError as exc:
            raise RuntimeError(
                "Result.display() needs IPython (a notebook or IPython shell)"
            ) from exc
        if self.stdout:
            sys.stdout.write(self.stdout)
        if self.stderr:
            sys.stderr.write(self.stderr)
        for output in self.outputs:
            display(output)
        if self.error is not None:
            sys.stderr.write(self.error.traceback or f"{self.error.kind}: {self.error.message}\n")


def result_from_json(obj: Mapping[str, Any], source: Optional[ImageSource]) -> Result:
    error_obj = obj.get("error")
    error = None
    if isinstance(error_obj, dict):
        error = ExecError(
            kind=str(error_obj.get("kind", "")),
            message=str(error_obj.get("message", "")),
            traceback=error_obj.get("traceback"),
        )
    exit_code = obj.get("exit_code")
    return Result(
        success=bool(obj.get("success", error is None)),
        value=obj.get("value"),
        error=error,
        stdout=str(obj.get("stdout") or ""),
        stderr=str(obj.get("stderr") or ""),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        images=[image_from_json(i, source) for i in obj.get("images") or []],
        outputs=[output_from_json(o, source) for o in obj.get("outputs") or []],
        truncated=bool(obj.get("truncated", False)),
        execution_time=float(obj.get("execution_time") or 0.0),
        task_id=obj.get("task_id"),
        raw=dict(obj),
    )
