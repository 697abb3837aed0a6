"""The README's example, run as a reader would run it: its Python blocks in order, in a
fresh interpreter, in an empty directory, configured only by RUNBOX_URL and
RUNBOX_TOKEN. The interpreter is RUNBOX_README_PYTHON when set (the script points it
at a virtualenv holding only the installed client), else this one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(server: Any, tmp_path: Path) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 8, "the README lost its examples"
    script = tmp_path / "readme_example.py"
    script.write_text("\n".join(blocks))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOX_")}
    env.update(RUNBOX_URL=server.url, RUNBOX_TOKEN=server.token)
    run = subprocess.run(
        [os.environ.get("RUNBOX_README_PYTHON", sys.executable), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    expected = [
        "30",
        "45",
        "False",
        "runtime",
        "ZeroDivisionError: division by zero",
        "<div>",
        "7",
        "4.5",
        "live: 0",
        "live: 1",
        "live: 2",
        "2.5",
        "499.5",
    ]
    assert run.stdout.split("\n")[: len(expected)] == expected, run.stdout
    assert (tmp_path / "squares.png").read_bytes().startswith(b"\x89PNG")
