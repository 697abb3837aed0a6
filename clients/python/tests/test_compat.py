"""runcode(): the original Code Interpreter API's answers, unchanged."""

from __future__ import annotations

from runbox_client import Client


def test_runcode_answers_as_the_original(client: Client) -> None:
    assert client.runcode("print(n * 2)", "python", {"n": 3}) == {"output": "6\n"}
    assert client.runcode("echo hi $WHO", "bash", {"WHO": "you"}) == {"output": "hi you\n"}
    assert "error" in client.runcode("import sys\nsys.stderr.write('bad')")
    drawn = client.runcode(
        "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.savefig('p.png')\nprint('ok')"
    )
    assert drawn["output"] == "ok\n"
    assert set(drawn["images"]) == {"p.png"}
