"""A minimal client of the sandbox agent protocol (docs/agent-protocol.md), for tests."""

import json
import os
import select
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The agent package and its entry, started as a script as in the image (which runs the
# entry's byte code, see docker/Dockerfile).
AGENT_PACKAGE = os.path.join(os.path.dirname(HERE), "agent")
AGENT = os.path.join(AGENT_PACKAGE, "__main__.py")


class ProtocolError(Exception):
    pass


class AgentProcess:
    """An agent on the stdio transport: a local process or `docker run -i …`."""

    def __init__(self, argv=None, env=None, startup_timeout=60.0, cwd=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.argv = argv or [sys.executable, "-u", AGENT]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=full_env, cwd=cwd)
        self.stdout_fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.ready = self.recv(timeout=startup_timeout)
        self.ready_seconds = time.monotonic() - self.started
        if self.ready.get("type") != "ready":
            raise ProtocolError("expected ready, got %r" % (self.ready,))

    # frames -----------------------------------------------------------------------
    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message):
        body = json.dumps(message).encode("utf-8")
        self.send_raw(struct.pack(">I", len(body)) + body)

    def _fill(self, count, deadline):
        while len(self.buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the agent in time")
            ready, _, _ = select.select([self.stdout_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.stdout_fd, 1 << 20)
            if not chunk:
                raise ProtocolError("the agent closed its stdout (exit code %r, stderr %r)"
                                    % (self.proc.poll(), self.stderr_text()))
            self.buffer += chunk

    def recv(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        self._fill(4, deadline)
        (length,) = struct.unpack(">I", self.buffer[:4])
        self._fill(4 + length, deadline)
        body, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
        return json.loads(body.decode("utf-8"))

    # requests ---------------------------------------------------------------------
    def exec(self, code, language="python", timeout=60.0, **fields):
        """Sends an exec; returns (result, events)."""
        message = {"type": "exec", "language": language, "mode": "script", "code": code,
                   "variables": {}, "files": [], "env": {}, "stream": False,
                   "persistent": False, "output_bytes": 1 << 20,
                   "output_kill_bytes": 256 << 20, "image_bytes": 16 << 20}
        message.update(fields)
        self.send(message)
        return self.collect(timeout)

    def collect(self, timeout=60.0):
        events = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(timeout=max(0.001, deadline - time.monotonic()))
            if frame.get("type") == "result":
                return frame, events
            events.append(frame)

    def ping(self, timeout=10.0):
        self.send({"type": "ping"})
        return self.recv(timeout)

    def stderr_text(self):
        """The agent's (or docker's) stderr once it has exited; "" while it runs."""
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return ""
        try:
            return self.proc.stderr.read().decode("utf-8", "replace")[-2000:]
        except (OSError, ValueError):
            return ""

    def close(self, timeout=10.0):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def parse_frames(data):
    """Splits a byte string of frames (an http /exec body) into messages."""
    messages = []
    while data:
        if len(data) < 4:
            raise ProtocolError("a partial frame header")
        (length,) = struct.unpack(">I", data[:4])
        if len(data) < 4 + length:
            raise ProtocolError("a partial frame")
        messages.append(json.loads(data[4:4 + length].decode("utf-8")))
        data = data[4 + length:]
    return messages


def tiny_png():
    """A valid 1x1 PNG, written by hand (signature, IHDR, IDAT, IEND)."""
    import zlib

    def chunk(kind, payload):
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")           # filter 0, one red pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
