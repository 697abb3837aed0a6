"""A run's outputs (docs/agent-protocol.md, "Outputs"): the items, their caps, and the
channel that carries them from the code's process to the agent.

The channel is a pipe of JSON lines, one item a line, and a pipe back on which the
agent acknowledges each line when the run streams (so that the code's process waits
until the stdout and stderr written before an item are read, and the events keep the
order the code made them in). The code can write on the channel as on its stdout: the
agent takes every line apart, drops what is not an item, and applies the caps again,
whatever the code's process claims.
"""

import os

from .capture import utf8_cut
from .json_codec import json_dumps, json_loads

ITEM_TYPES = ("display_data", "execute_result")
IMAGE_MIMES = ("image/png", "image/jpeg")
JSON_MIME = "application/json"
# A bundle's entries in an item, in this order; text/plain first, so that it is the
# one kept (cut if need be) when the rest does not fit.
MIME_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml",
              "image/png", "image/jpeg", JSON_MIME)
# What an item costs on top of its text, so that empty items cannot fill a frame: its
# field names are well below 6 times this (the frame bound's allowance for escaping).
ITEM_BYTES = 64
# base64 of the PNG signature (and the first two bits of IHDR's length, always 0) and
# of JPEG's start-of-image marker: bytes that are not what their type says are dropped.
SIGNATURES = {"image/png": "iVBORw0KGgo", "image/jpeg": "/9j/"}
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
ACK = b"\x06"


def wanted(req):
    """Whether a run has outputs: python asked for them (bash has no display)."""
    return req.outputs and req.language == "python"


def utf8_len(text):
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def json_text(value):
    """The JSON text of `value`, or None where it is not JSON (NaN included)."""
    try:
        return json_dumps(value, allow_nan=False)
    except Exception:  # a TypeError, a cycle, or an exception of the code's own objects
        return None


def image_size(mime, value):
    """The byte count of base64 `value`, or None unless it is canonical base64 of an
    image of type `mime`."""
    if not isinstance(value, str) or len(value) % 4 or not value.startswith(SIGNATURES[mime]):
        return None
    body = value.rstrip("=")
    padding = len(value) - len(body)
    if padding > 2 or not body.isascii() or body.encode("ascii").translate(None, _BASE64_ALPHABET):
        return None
    return len(value) // 4 * 3 - padding


class Budget:
    """The caps of one run's items: `text` bytes (outputs_bytes) of the strings of all
    items, `image` bytes (image_bytes) of their raster images, which the image files
    collected at the end share; `cut` says that something was cut or dropped."""

    def __init__(self, text, image):
        self.text = text
        self.image = image
        self.cut = False

    def admit(self, kind, data, metadata, truncated=False):
        """The item as it goes out, within what is left of the caps, or None when there is
        no room for an item at all. Entries that are not of a known type, or not of the
        value their type needs, are left out."""
        if self.text < ITEM_BYTES:
            self.cut = True
            return None
        self.text -= ITEM_BYTES
        kept = {}
        for mime in MIME_TYPES:
            if mime not in data:
                continue
            value = data[mime]
            if mime in IMAGE_MIMES:
                size = image_size(mime, value)
                if size is None:
                    continue
                if size > self.image:
                    truncated = True
                    continue
                self.image -= size
            else:
                if mime == JSON_MIME:
                    text = json_text(value)
                elif isinstance(value, str):
                    text = value
                else:
                    text = None
                if text is None:
                    continue
                size = utf8_len(text)
                if size > self.text:
                    truncated = True
                    if mime != "text/plain":
                        continue
                    value = utf8_cut(text.encode("utf-8", "replace"), self.text).decode("utf-8")
                    size = len(value.encode("utf-8"))
                self.text -= size
            kept[mime] = value
        if metadata:
            text = json_text(metadata) if isinstance(metadata, dict) else None
            if text is None:
                metadata = {}
            elif utf8_len(text) > self.text:
                metadata = {}
                truncated = True
            else:
                self.text -= utf8_len(text)
        if truncated:
            self.cut = True
        return {"type": kind, "data": kept, "metadata": metadata or {}, "truncated": truncated}


def open_channel():
    """The pipes of a run's outputs: ((items_r, ack_w) for the agent, (items_w, ack_r)
    for the code's process)."""
    items_r, items_w = os.pipe()
    ack_r, ack_w = os.pipe()
    # An acknowledgement never blocks the agent: when the code leaves them unread and the
    # pipe is full, a waiting writer finds one there anyway.
    os.set_blocking(ack_w, False)
    return (items_r, ack_w), (items_w, ack_r)


def close_fds(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class OutputsReader:
    """The agent's end of one run's channel: complete lines become items, checked and
    capped; a line longer than any item can be is skipped to its end unread."""

    def __init__(self, fd, ack_fd, req):
        self.fd = fd
        self.ack_fd = ack_fd if req.stream else None
        self.budget = Budget(req.outputs_bytes, req.image_bytes)
        self.items = []
        self.partial = bytearray()
        self.skipping = False
        self.max_line = 6 * req.outputs_bytes + req.image_bytes * 4 // 3 + (64 << 10)

    def feed(self, data):
        """Takes what was read from the pipe; returns (the items it completed, the number
        of lines it ended, items or not)."""
        new = []
        lines = 0
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            lines += 1
            if self.skipping:
                self.skipping = False
            else:
                line = data[start:end]
                if self.partial:
                    self.partial += line
                    line, self.partial = bytes(self.partial), bytearray()
                if len(line) <= self.max_line:
                    item = self.item_of(line)
                    if item is not None:
                        new.append(item)
            start = end + 1
        rest = data[start:]
        if rest and not self.skipping:
            if len(self.partial) + len(rest) > self.max_line:
                self.partial = bytearray()
                self.skipping = True
            else:
                self.partial += rest
        self.items.extend(new)
        return new, lines

    def acknowledge(self, lines):
        """One byte per line read: a writer waits for it (see display.Channel)."""
        if self.ack_fd is not None and lines:
            try:
                os.write(self.ack_fd, ACK * lines)
            except OSError:  # full: the writer finds an earlier one (or it is gone)
                pass

    def item_of(self, line):
        try:
            obj = json_loads(line)
        except Exception:  # not UTF-8, not JSON, nested too deep
            return None
        if not isinstance(obj, dict) or obj.get("type") not in ITEM_TYPES:
            return None
        data = obj.get("data")
        metadata = obj.get("metadata", {})
        truncated = obj.get("truncated", False)
        if not isinstance(data, dict) or not isinstance(metadata, dict) or type(truncated) is not bool:
            return None
        return self.budget.admit(obj["type"], data, metadata, truncated)
