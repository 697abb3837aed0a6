"""Async calls: tasks waited for, listed, cancelled, terminated; concurrency limits."""

from __future__ import annotations

import time

import pytest

from runbox_client import (
    Client,
    ConcurrencyLimitError,
    ConflictError,
    NotFoundError,
    Task,
    TaskNotFinishedError,
    TaskTimeoutError,
)

SLEEPY = "import time\ndef sleepy(seconds):\n    time.sleep(seconds)\n    return seconds\n"


@pytest.fixture(scope="module")
def sleepy(client: Client) -> str:
    client.functions.put("sleepy", SLEEPY, args={"seconds": "float"}, max_concurrency=1, timeout=60)
    return "sleepy"


def _until_running(task: Task) -> None:
    deadline = time.monotonic() + 30
    while task.status() != "RUNNING":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)


def test_an_async_call_is_a_task_to_wait_for(client: Client, sleepy: str) -> None:
    task = client.functions.call_async(sleepy, seconds=0.2)
    result = task.wait(timeout=60)
    assert result.success and result.value == 0.2
    assert result.task_id == task.id
    info = task.info()
    assert info.status == "DONE" and info.done and info.args == {"seconds": 0.2}
    assert info.result is not None and info.result.value == 0.2
    assert task.result().value == 0.2
    listed = client.list_tasks(function=sleepy, status="DONE", limit=5)
    assert task.id in [t.task_id for t in listed]
    assert client.task(task.id).result().value == 0.2


def test_waiting_gives_up_cancel_ends_it(client: Client, sleepy: str) -> None:
    task = client.functions.call_async(sleepy, seconds=30)
    with pytest.raises(TaskTimeoutError) as caught:
        task.wait(timeout=0.5)
    assert caught.value.status in ("QUEUED", "RUNNING")
    with pytest.raises(TaskNotFinishedError):
        task.result()
    cancelled = task.cancel()
    assert cancelled.status == "CANCELLED"
    result = task.wait(timeout=10)
    assert not result.success and result.error is not None and result.error.kind == "killed"
    with pytest.raises(ConflictError):
        task.cancel()


def test_concurrency_limit_and_terminate(client: Client, sleepy: str) -> None:
    task = client.functions.call_async(sleepy, seconds=30)
    _until_running(task)
    with pytest.raises(ConcurrencyLimitError) as caught:
        client.functions.call(sleepy, seconds=0)
    assert "Over Max Concurrency 1" in caught.value.message
    ended = client.functions.terminate(sleepy)
    assert ended.count == 1 and ended.task_ids == [task.id]
    assert task.wait(timeout=10).error is not None
    assert task.status() == "CANCELLED"


def test_an_unknown_task(client: Client) -> None:
    with pytest.raises(NotFoundError):
        client.task("00000000-0000-0000-0000-000000000000").info()
