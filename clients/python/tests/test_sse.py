"""The event-stream decoder, on the corner cases of the format that runbox's own
streams do not exercise (multi-line data, CRLF, a stream cut before its blank line)."""

from __future__ import annotations

from runbox_client._sse import ServerSentEvent, iter_events


def test_the_format() -> None:
    lines = [
        ": keep-alive",
        "event: stdout",
        'data: {"data":',
        'data:"x"}',
        "",
        "",
        "id: 7\r",
        "retry: 1000",
        "data: plain",
        "",
        "event: result",
        "data: {}",
    ]
    assert list(iter_events(lines)) == [
        ServerSentEvent("stdout", '{"data":\n"x"}'),
        ServerSentEvent("message", "plain", id="7", retry=1000),
        ServerSentEvent("result", "{}", id="7"),
    ]
