"""Sessions: state kept between executions, deleted at the end of `with`."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from runbox_client import (
    Client,
    ConflictError,
    GoneError,
    NotFoundError,
    RateLimitError,
    Result,
    Session,
    StdoutEvent,
    TooManySessionsError,
)


def test_a_session_keeps_state_and_is_deleted_at_exit(client: Client) -> None:
    with client.session(idle_timeout=60) as session:
        assert session.created.alive and session.created.idle_timeout == 60
        assert session.execute("import math\nx = 41").success
        assert session.execute("x + 1").value == 42
        with session.stream("print(math.factorial(5))\nx * 2") as stream:
            events = list(stream)
        assert isinstance(events[0], StdoutEvent) and events[0].text == "120\n"
        assert stream.result is not None and stream.result.value == 82
        info = session.info()
        assert info.id == session.id and info.executions == 3 and info.alive
        assert any(s.id == session.id for s in client.list_sessions())
    with pytest.raises(NotFoundError):
        session.info()
    session.delete()  # a second delete is no error


def test_sessions_do_not_share_state(client: Client) -> None:
    with client.session() as first, client.session() as second:
        first.execute("secret = 1")
        result = second.execute("secret")
        assert result.error is not None and result.error.kind == "runtime"
        assert "NameError" in result.error.message


def test_a_busy_session_answers_conflict(client: Client) -> None:
    with client.session() as session:
        slow: list[Result] = []
        runner = threading.Thread(
            target=lambda: slow.append(session.execute("import time\ntime.sleep(3)\n'done'"))
        )
        runner.start()
        try:
            deadline = time.monotonic() + 10
            while not session.info().busy and time.monotonic() < deadline:
                time.sleep(0.05)
            with pytest.raises(ConflictError):
                session.execute("1")
        finally:
            runner.join()
        assert slow[0].value == "done"


def test_an_ended_session_is_gone(client: Client) -> None:
    with client.session() as session:
        ended = session.execute("while True: pass", timeout=1)
        assert ended.error is not None and ended.error.kind == "timeout"
        with pytest.raises(GoneError) as caught:
            session.execute("1")
        assert "session ended" in caught.value.message
        info = session.info()
        assert not info.alive and info.ended_reason


def test_one_session_too_many(client: Client, server: Any) -> None:
    opened: list[Session] = []
    try:
        for _ in range(server.max_sessions):
            opened.append(client.session())
        with pytest.raises(TooManySessionsError) as caught:
            opened.append(client.session())
        assert isinstance(caught.value, RateLimitError)
        assert caught.value.max_per_subject == server.max_sessions
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
    finally:
        for session in opened:
            session.delete()
