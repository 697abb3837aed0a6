"""runbox's own refusals raise typed exceptions carrying the body."""

from __future__ import annotations

from typing import Any

import pytest

from runbox_client import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    Client,
    OverloadedError,
    RateLimitError,
    RejectedError,
    ScopeError,
    ServerError,
    UnavailableError,
)
from runbox_client._errors import error_for_status


def test_a_wrong_token(server: Any) -> None:
    with Client(server.url, "not-a-token") as bad:
        with pytest.raises(AuthenticationError) as caught:
            bad.execute("1")
    assert caught.value.status == 401
    assert caught.value.body == {"error": "Invalid token"}
    assert caught.value.request_id


def test_no_token(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOX_TOKEN", raising=False)
    with Client(server.url) as anonymous:
        assert anonymous.health()["status"] in ("ok", "degraded")
        with pytest.raises(AuthenticationError) as caught:
            anonymous.execute("1")
    assert caught.value.message == "Authorization header is missing or invalid"


def test_url_and_token_from_the_environment(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOX_URL", server.url + "/")
    monkeypatch.setenv("RUNBOX_TOKEN", server.token)
    with Client() as from_env:
        assert from_env.url == server.url
        assert from_env.execute("6 * 7").value == 42


def test_a_token_without_the_scope(server: Any) -> None:
    with Client(server.url, server.reader_token) as reader:
        assert isinstance(reader.functions.list(), list)
        with pytest.raises(ScopeError) as caught:
            reader.execute("1")
    assert caught.value.status == 403 and caught.value.required == "run"


def test_the_rate_limit_says_when_to_come_back(server: Any) -> None:
    with Client(server.url, server.burst_token) as burst:
        with pytest.raises(RateLimitError) as caught:
            for _ in range(1000):
                burst.list_sessions()
    assert caught.value.status == 429
    assert caught.value.retry_after is not None and caught.value.retry_after >= 0


def test_a_malformed_parameter(client: Client) -> None:
    with pytest.raises(RejectedError) as caught:
        client.list_tasks(status="bogus")
    assert caught.value.status == 400 and caught.value.detail is not None


def test_no_server_there() -> None:
    with Client("http://127.0.0.1:9", "t", timeout=5) as nowhere:
        with pytest.raises(APIConnectionError):
            nowhere.execute("1")


@pytest.mark.parametrize(
    "status, body, kind",
    [
        (503, {"error": "the Docker engine is unavailable"}, UnavailableError),
        (504, {"error": "Request timed out"}, OverloadedError),
        (500, {"error": "internal"}, ServerError),
        (418, "teapot", APIError),
    ],
)
def test_statuses_a_healthy_test_server_does_not_give(status: int, body: Any, kind: type) -> None:
    # Overload and an unreachable engine cannot be caused without starving the
    # machine; the mapping they go through is the same as every other status's.
    error = error_for_status(status, body)
    assert type(error) is kind and error.status == status and error.body == body
