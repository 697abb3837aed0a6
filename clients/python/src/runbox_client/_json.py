"""JSON in and out, keeping numbers exact.

The standard library already does the right thing for runbox's exactness contract:
an `int` of any size is written with every digit and read back as an `int`, and a
`float` is written as the shortest text that reads back to the same double, which the
server accepts as exact. What is left is to refuse the values JSON cannot carry (NaN
and the infinities) here, with a message, instead of sending text the server rejects.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> bytes:
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError as exc:
        raise ValueError(
            f"{exc}: NaN and infinities have no exact JSON form; send them as strings"
        ) from exc
    return text.encode("utf-8")


def loads(data: bytes) -> Any:
    return json.loads(data)
