"""The stdio transport: frames on the container's stdin and stdout (the Docker attach
stream), which the agent keeps on descriptors of its own."""

import _thread
import os
import struct

from .dispatch import handle_frame
from .protocol import MAX_INPUT_FRAME, agent_error_result, encode_frame, read_exact, write_all


class StdioSink:
    """Frames to the protocol fd (the original stdout)."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = _thread.allocate_lock()
        self.broken = False

    def send(self, message):
        frame = encode_frame(message)
        with self.lock:
            if self.broken:
                return
            try:
                write_all(self.fd, frame)
            except OSError:
                self.broken = True


def serve_stdio(proto_in, proto_out, ready):
    sink = StdioSink(proto_out)
    sink.send(ready)
    while not sink.broken:
        header = read_exact(proto_in, 4)
        if header is None:
            return
        (length,) = struct.unpack(">I", header)
        if length > MAX_INPUT_FRAME:
            while length > 0:
                data = os.read(proto_in, min(length, 1 << 20))
                if not data:
                    return
                length -= len(data)
            sink.send(agent_error_result("malformed message: a frame larger than %d bytes"
                                         % MAX_INPUT_FRAME))
            continue
        body = read_exact(proto_in, length)
        if body is None:
            return
        handle_frame(body, sink)
