"""One real runbox server for the whole test session.

The binary is `RUNBOX_BIN` (default `target/debug/runbox` of the repository). The
server gets a configuration of its own: a temporary data dir, a sandbox instance label
no other server uses, three static tokens (full, read-only, and one whose subject the
rate-limit test may exhaust), a small warm pool, and images served only with a
token, so that every image the tests fetch proves the client sends it. It is stopped with SIGTERM, which
removes its containers; teardown fails if any container of its label is left.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator, List

import pytest

from runbox_client import AsyncClient, Client

REPO = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 300.0
MAX_SESSIONS = 2


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    reader_token: str
    burst_token: str
    instance: str
    max_sessions: int = MAX_SESSIONS


def _binary() -> Path:
    given = Path(os.environ.get("RUNBOX_BIN", "target/debug/runbox"))
    binary = given if given.is_absolute() else REPO / given
    if not binary.is_file():
        raise RuntimeError(
            f"no runbox binary at {binary}: build it (cargo build) or set RUNBOX_BIN"
        )
    return binary


def _config(data_dir: Path, server: Server) -> str:
    return f"""
server: {{host: 127.0.0.1, port: 0, shutdown_grace: 5s}}
data_dir: "{data_dir}"
auth:
  tokens:
    - "{server.token}"
    - {{token: "{server.reader_token}", subject: reader, scopes: [functions:read]}}
    - {{token: "{server.burst_token}", subject: burst}}
sandbox: {{instance: "{server.instance}", pool: {{size: 1}}}}
sessions: {{max_per_subject: {MAX_SESSIONS}}}
rate_limit: {{per_minute: 1200, burst: 60}}
images: {{require_auth: true}}
"""


def _containers_of(instance: str) -> List[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=runbox.instance={instance}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def _wait_for_url(process: "subprocess.Popen[str]", log: Path) -> str:
    lines: "queue.Queue[str]" = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line.startswith("runbox listening on "):
            return line.split()[-1].strip()
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"runbox did not start (exit code {process.poll()}); its log ends:\n{tail}")


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    binary = _binary()
    suffix = uuid.uuid4().hex[:8]
    spec = Server(
        url="",
        token=f"full-{suffix}",
        reader_token=f"reader-{suffix}",
        burst_token=f"burst-{suffix}",
        instance=f"pyclient-{os.getpid()}-{suffix}",
    )
    workdir = Path(tempfile.mkdtemp(prefix="runbox-pyclient-"))
    config = workdir / "config.yaml"
    config.write_text(_config(workdir / "data", spec))
    log = workdir / "server.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [str(binary), "--config", str(config), "serve"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=workdir,
        )
    try:
        url = _wait_for_url(process, log)
        yield Server(url, spec.token, spec.reader_token, spec.burst_token, spec.instance)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError("runbox did not stop within 60 s of SIGTERM")
        left = _containers_of(spec.instance)
        shutil.rmtree(workdir, ignore_errors=True)
        assert not left, f"containers left after the server stopped: {left}"


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def aclient(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, server.token) as c:
        yield c
