"""stream(): typed events in the order the code made them."""

from __future__ import annotations

import gc
import weakref

import pytest

from runbox_client import (
    Client,
    DisplayEvent,
    ImageEvent,
    RejectedError,
    ResultEvent,
    StderrEvent,
    StdoutEvent,
    StreamEvent,
)

CODE = """
import sys, time
import matplotlib.pyplot as plt
print("one", flush=True)
time.sleep(0.3)
print("oops", file=sys.stderr, flush=True)
time.sleep(0.3)
plt.plot([1, 2])
plt.savefig("file.png")
plt.show()
time.sleep(0.3)
print("two", flush=True)
7
"""


def test_events_arrive_in_order_and_end_with_the_result(client: Client) -> None:
    events: list[StreamEvent] = []
    with client.stream(CODE) as stream:
        for event in stream:
            events.append(event)
    kinds = [e.event for e in events]
    assert kinds == ["stdout", "stderr", "display", "stdout", "display", "image", "result"], kinds
    assert isinstance(events[0], StdoutEvent) and events[0].text == "one\n"
    assert isinstance(events[1], StderrEvent) and events[1].text == "oops\n"
    figure = events[2]
    assert isinstance(figure, DisplayEvent) and figure.output.image is not None
    value = events[4]
    assert isinstance(value, DisplayEvent) and value.output.type == "execute_result"
    assert isinstance(events[5], ImageEvent) and events[5].image.name == "file.png"
    last = events[-1]
    assert isinstance(last, ResultEvent) and stream.result is last.result
    assert last.result.value == 7
    assert last.result.stdout == "one\ntwo\n"
    assert figure.output.png == last.result.outputs[0].png


LONG = "import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.1)"


def test_collect_and_leaving_early(client: Client) -> None:
    assert client.stream("print('x')\n1 + 1").collect().value == 2
    stream = client.stream(LONG)
    for event in stream:
        assert isinstance(event, StdoutEvent)
        break
    stream.close()
    assert stream.result is None


def test_a_stream_dropped_mid_loop_closes_its_connection_at_once(client: Client) -> None:
    stream = client.stream(LONG)
    next(stream)
    assert stream._response is not None
    response = weakref.ref(stream._response)
    gc.disable()
    try:
        del stream
        left = response()
        assert left is None or left.is_closed, "the connection outlived its stream"
    finally:
        gc.enable()


def test_a_refusal_raises_before_any_event(client: Client) -> None:
    with pytest.raises(RejectedError) as caught:
        for _ in client.stream("1", timeout=-1):
            pass
    assert caught.value.field == "timeout"
