"""The async client against the same server."""

from __future__ import annotations

from typing import Any

import pytest

from runbox_client import AsyncClient, AuthenticationError, ResultEvent, StreamEvent

pytestmark = pytest.mark.anyio


async def test_execute_and_fetch_an_image(aclient: AsyncClient) -> None:
    result = await aclient.execute(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nx * 2", context={"x": 2**80}
    )
    assert result.value == 2**81
    image = result.outputs[0].image
    assert image is not None
    data = await image.afetch()
    assert data.startswith(b"\x89PNG") and len(data) == image.size


async def test_stream(aclient: AsyncClient) -> None:
    events: list[StreamEvent] = []
    async for event in aclient.stream(
        "print('a', flush=True)\nimport time\ntime.sleep(0.2)\nprint('b')\n3"
    ):
        events.append(event)
    assert [e.event for e in events] == ["stdout", "stdout", "display", "result"]
    last = events[-1]
    assert isinstance(last, ResultEvent) and last.result.value == 3


async def test_session_and_task(aclient: AsyncClient) -> None:
    async with aclient.session() as session:
        await session.execute("y = 5")
        assert (await session.execute("y * y")).value == 25
        async with session.stream("y + 1") as stream:
            assert (await stream.collect()).value == 6
        assert (await session.info()).executions == 3
    opened = await aclient.session()
    await opened.delete()

    await aclient.functions.put("twice", "def twice(v):\n    return v * 2\n")
    assert (await aclient.functions.call("twice", v=21)).value == 42
    task = await aclient.functions.call_async("twice", v=2**70)
    assert (await task.wait(timeout=60)).value == 2**71
    assert (await task.info()).status == "DONE"
    assert task.id in [t.task_id for t in await aclient.list_tasks(function="twice")]
    assert await aclient.functions.delete("twice") == 1


async def test_a_wrong_token(server: Any) -> None:
    async with AsyncClient(server.url, "wrong") as bad:
        with pytest.raises(AuthenticationError):
            await bad.execute("1")
