"""The http transport: a small single-threaded HTTP/1.1 server (keep-alive, chunked
replies) carrying the same frames, each call authorized by the container's key."""

import _thread
import os
import select

from . import state
from .dispatch import handle_frame
from .json_codec import json_dumps
from .processes import reap_children
from .protocol import MAX_INPUT_FRAME, encode_frame

compare_digest = None     # hmac.compare_digest, imported by serve_http

MAX_HEADER_BYTES = 64 << 10
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           431: "Request Header Fields Too Large"}


class HttpSink:
    """Frames as the body of an http response: chunked, or close-delimited (HTTP/1.0)."""

    def __init__(self, sock, chunked):
        self.sock = sock
        self.chunked = chunked
        self.lock = _thread.allocate_lock()
        self.broken = False

    def send(self, message):
        frame = encode_frame(message)
        if self.chunked:
            frame = b"%x\r\n%s\r\n" % (len(frame), frame)
        with self.lock:
            if self.broken:
                return
            try:
                self.sock.sendall(frame)
            except OSError:
                self.broken = True

    def end(self):
        if self.chunked and not self.broken:
            try:
                self.sock.sendall(b"0\r\n\r\n")
            except OSError:
                self.broken = True


class HttpConnection:
    def __init__(self, sock):
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = b""


def http_respond(conn, status, body, keep_alive, content_type="application/json", extra=""):
    head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
        status, REASONS.get(status, "Error"), content_type, len(body), extra,
        "" if keep_alive else "Connection: close\r\n")
    conn.sock.sendall(head.encode("ascii") + body)


def http_json(conn, status, message, keep_alive, extra=""):
    body = json_dumps(message, ensure_ascii=True).encode("utf-8")
    http_respond(conn, status, body, keep_alive, extra=extra)


def http_handle(conn, ready):
    """Handles every complete request in conn.buf; returns False to close."""
    while True:
        end = conn.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.buf) > MAX_HEADER_BYTES:
                http_json(conn, 431, {"error": "headers too large"}, False)
                return False
            return True
        head = conn.buf[:end].decode("latin-1")
        conn.buf = conn.buf[end + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            http_json(conn, 400, {"error": "bad request line"}, False)
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                http_json(conn, 400, {"error": "bad header"}, False)
                return False
            headers[name.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            http_json(conn, 411, {"error": "chunked request bodies are not supported"}, False)
            return False
        try:
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError()
        except ValueError:
            http_json(conn, 400, {"error": "bad Content-Length"}, False)
            return False
        if length > MAX_INPUT_FRAME:
            http_json(conn, 413, {"error": "body too large"}, False)
            return False
        key = headers.get("x-runbox-key", "").encode("latin-1")
        authorized = bool(state.AGENT_KEY) and compare_digest(key, bytes(state.AGENT_KEY))
        if authorized and length > len(conn.buf) and headers.get("expect", "").lower() == "100-continue":
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if length and (authorized or length <= MAX_HEADER_BYTES):
            conn.sock.settimeout(30)
            try:
                while len(conn.buf) < length:
                    data = conn.sock.recv(min(1 << 20, length - len(conn.buf) + 65536))
                    if not data:
                        return False
                    conn.buf += data
            finally:
                conn.sock.settimeout(None)
        elif length:
            http_json(conn, 403, {"error": "forbidden"}, False)
            return False
        body, conn.buf = conn.buf[:length], conn.buf[length:]
        path = target.split("?", 1)[0]
        if not authorized:
            http_json(conn, 403, {"error": "forbidden"}, keep_alive)
        elif path in ("/ready", "/ping"):
            if method != "GET":
                http_json(conn, 405, {"error": "method not allowed"}, keep_alive, "Allow: GET\r\n")
            else:
                http_json(conn, 200, ready if path == "/ready" else {"type": "pong"}, keep_alive)
        elif path == "/exec":
            if method != "POST":
                http_json(conn, 405, {"error": "method not allowed"}, keep_alive, "Allow: POST\r\n")
            else:
                chunked = version == "HTTP/1.1"
                keep_alive = keep_alive and chunked
                conn.sock.sendall((
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-runbox-frames\r\n"
                    "Cache-Control: no-store\r\n%s\r\n"
                    % ("Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n")
                ).encode("ascii"))
                sink = HttpSink(conn.sock, chunked)
                handle_frame(body, sink)
                sink.end()
                if sink.broken:
                    return False
        else:
            http_json(conn, 404, {"error": "not found"}, keep_alive)
        if not keep_alive:
            return False


def serve_http(port, ready):
    # Imported here: hmac pulls in OpenSSL, milliseconds of every stdio sandbox's start.
    global compare_digest
    from hmac import compare_digest
    import socket
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(16)
    state.AGENT_FDS.add(server.fileno())
    state.diag("listening on 0.0.0.0:%d" % port)
    poller = select.poll()
    poller.register(server.fileno(), select.POLLIN)
    connections = {}

    def close(conn):
        poller.unregister(conn.fd)
        state.AGENT_FDS.discard(conn.fd)
        connections.pop(conn.fd, None)
        try:
            conn.sock.close()
        except OSError:
            pass

    while True:
        for fd, _ in poller.poll():
            if fd == server.fileno():
                try:
                    sock, _ = server.accept()
                except OSError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = HttpConnection(sock)
                connections[conn.fd] = conn
                state.AGENT_FDS.add(conn.fd)
                poller.register(conn.fd, select.POLLIN)
                continue
            conn = connections.get(fd)
            if conn is None:
                continue
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(conn)
                continue
            conn.buf += data
            try:
                keep = http_handle(conn, ready)
            except OSError:
                keep = False
            except BaseException as exc:
                if os.getpid() != state.AGENT_PID:
                    os._exit(70)
                state.diag("http error: %s: %s" % (type(exc).__name__, exc))
                keep = False
            if not keep:
                close(conn)
        reap_children()
