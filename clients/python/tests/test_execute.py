"""execute(): values, context, files, env, typed user errors, exact numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from runbox_client import Client, ExecutionError, RejectedError


def test_value_of_the_cell_and_context_globals(client: Client) -> None:
    result = client.execute("result = x + y", context={"x": 10, "y": 20})
    assert result.success and result.error is None
    assert result.value == 30
    assert result.exit_code == 0
    assert result.execution_time > 0
    assert result.raise_for_error() is result


def test_big_integers_and_floats_travel_exactly(client: Client) -> None:
    big = 2**200 + 1
    result = client.execute("[n * 3, n, f]", context={"n": big, "f": 0.1})
    assert result.value == [big * 3, big, 0.1]
    assert all(isinstance(v, int) for v in result.value[:2])
    assert result.value[2] == 0.1 and isinstance(result.value[2], float)
    assert client.execute("2**100").value == 2**100


def test_nan_is_refused_before_anything_is_sent(client: Client) -> None:
    with pytest.raises(ValueError, match="NaN"):
        client.execute("x", context={"x": math.nan})


def test_a_failure_of_the_code_is_a_field_not_an_exception(client: Client) -> None:
    result = client.execute("print('before')\nraise ValueError('bad')")
    assert not result.success
    assert result.stdout == "before\n"
    assert result.error is not None
    assert result.error.kind == "runtime"
    assert result.error.message == "ValueError: bad"
    assert result.error.traceback is not None and "ValueError" in result.error.traceback
    with pytest.raises(ExecutionError) as caught:
        result.raise_for_error()
    assert caught.value.kind == "runtime" and caught.value.result is result


def test_syntax_and_timeout_kinds(client: Client) -> None:
    assert client.execute("x = ").error is not None
    assert client.execute("x = ").error.kind == "syntax"  # type: ignore[union-attr]
    timed_out = client.execute("print('started', flush=True)\nwhile True: pass", timeout=1)
    assert timed_out.error is not None and timed_out.error.kind == "timeout"
    assert timed_out.stdout == "started\n"


def test_files_in_every_form_and_bash_with_env(client: Client, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_text("from disk")
    result = client.execute(
        "print(open('local.txt').read(), open('named.bin', 'rb').read(), open('sub/t.txt').read())",
        files=[local, ("named.bin", b"\x00\x01"), ("sub/t.txt", "text")],
    )
    assert result.stdout == "from disk b'\\x00\\x01' text\n", result
    bash = client.execute(
        'echo "$GREETING $WHO"; cat data.csv >&2',
        language="bash",
        context={"GREETING": "hello"},
        env={"WHO": "world"},
        files={"data.csv": "a,b\n"},
    )
    assert bash.success and bash.value is None
    assert bash.stdout == "hello world\n"
    assert bash.stderr == "a,b\n"


def test_a_bad_field_is_rejected_naming_it(client: Client) -> None:
    with pytest.raises(RejectedError) as caught:
        client.execute("1", files=[("../escape.txt", b"x")])
    assert caught.value.status == 400
    assert caught.value.field == "files[0].path"
