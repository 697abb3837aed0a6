"""Stored functions: register, versions, calls, argument checks."""

from __future__ import annotations

import pytest

from runbox_client import Client, ConflictError, NotFoundError, RejectedError

ADD = "def add(x, y=1):\n    return x + y\n"


def test_register_call_version_list_delete(client: Client) -> None:
    stored = client.functions.register(
        "add",
        ADD,
        args={"x": "int", "y": {"type": "int", "default": 1}},
        max_concurrency=2,
        timeout=10,
        description="adds",
    )
    assert (stored.name, stored.version, stored.description) == ("add", 1, "adds")
    assert [(a.name, a.type, a.required) for a in stored.args] == [
        ("x", "int", True),
        ("y", "int", False),
    ]
    assert stored.args[1].has_default and stored.args[1].default == 1
    assert not stored.args[0].has_default
    assert stored.max_concurrency == 2 and stored.timeout == 10.0
    assert stored.env is not None and stored.env.status == "ready"

    assert client.functions.call("add", x=2).value == 3
    assert client.functions.call("add", x=2**100, y=-1).value == 2**100 - 1

    with pytest.raises(ConflictError):
        client.functions.register("add", ADD)

    second = client.functions.put("add", "def add(x):\n    return x * 10\n", args={"x": "int"})
    assert second.version == 2
    assert client.functions.call("add", x=2).value == 20
    assert client.functions.call_with("add", {"x": 2}, version=1).value == 3

    latest = client.functions.get("add")
    assert latest.versions is not None and [v.version for v in latest.versions] == [1, 2]
    assert client.functions.get("add", version=1).code == ADD
    assert "add" in [f.name for f in client.functions.list()]

    assert client.functions.delete("add") == 2
    with pytest.raises(NotFoundError):
        client.functions.get("add")


def test_bad_arguments_are_rejected_naming_the_argument(client: Client) -> None:
    client.functions.put(
        "scale",
        "def scale(count, factor=2.0):\n    return count * factor\n",
        args={"count": "int", "factor": "float"},
    )
    with pytest.raises(RejectedError) as caught:
        client.functions.call("scale", count="ten")
    assert caught.value.status == 422
    assert caught.value.kind == "invalid_args"
    assert caught.value.argument == "count"
    with pytest.raises(RejectedError) as unexpected:
        client.functions.call("scale", count=1, colour="red")
    assert unexpected.value.argument == "colour"
    with pytest.raises(NotFoundError):
        client.functions.call("no_such_function")


def test_a_definition_that_does_not_load_is_rejected(client: Client) -> None:
    with pytest.raises(RejectedError) as caught:
        client.functions.register("broken", "def broken(:\n    pass\n")
    assert caught.value.kind == "syntax"
    with pytest.raises(RejectedError) as missing:
        client.functions.register("absent", "def other():\n    pass\n")
    assert missing.value.kind == "runtime"


def test_dependencies_and_a_failing_call(client: Client) -> None:
    stored = client.functions.put(
        "total",
        "import numpy as np\ndef total(n):\n    if n < 0:\n        raise ValueError('negative')\n"
        "    return int(np.arange(n).sum())\n",
        dependencies=["numpy"],
        args={"n": "int"},
    )
    assert stored.dependencies == ["numpy"]
    assert client.functions.call("total", n=10).value == 45
    failed = client.functions.call("total", n=-1)
    assert not failed.success and failed.error is not None
    assert failed.error.kind == "runtime" and "negative" in failed.error.message
