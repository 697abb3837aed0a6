"""A run's stdout and stderr: each kept up to its cap, forwarded as stream events,
read from the run's pipes with one poll loop."""

import codecs
import os
import select
import time

# How long a run's pipes are still read after it ended (for what it wrote last).
DRAIN_SECONDS = 0.2
READ_CHUNK = 1 << 16
# Stream events are coalesced for at most this long / this many bytes.
STREAM_FLUSH_SECONDS = 0.02
STREAM_FLUSH_BYTES = 1 << 15
# A line still being written is held back this long, so that events end at line ends
# (print() writes its parts separately) while a prompt without a newline still shows.
STREAM_PARTIAL_LINE_SECONDS = 0.1


def utf8_cut(data, limit):
    """`data[:limit]` without a trailing partial UTF-8 sequence."""
    data = data[:limit]
    end = len(data)
    back = 0
    while back < 4 and end - back - 1 >= 0:
        byte = data[end - back - 1]
        back += 1
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 6 else 3 if byte >> 4 == 14 else 4 if byte >> 3 == 30 else 1
            if need > back:
                return data[:end - back]
            break
    return data


class Capture:
    """One output stream: keeps at most `cap` bytes, forwards stream events."""

    def __init__(self, name, cap, sink, stream):
        self.name = name
        self.cap = cap
        self.sink = sink
        self.buf = bytearray()
        self.total = 0
        self.dropped = False
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace") if stream else None
        self.pending = []
        self.pending_bytes = 0
        self.pending_since = 0.0

    def feed(self, data):
        self.total += len(data)
        room = self.cap - len(self.buf)
        if room <= 0:
            self.dropped = True
            return
        if len(data) > room:
            data = data[:room]
            self.dropped = True
        self.buf += data
        if self.decoder is not None:
            text = self.decoder.decode(data)
            if text:
                if not self.pending:
                    self.pending_since = time.monotonic()
                self.pending.append(text)
                self.pending_bytes += len(data)

    def due(self):
        """When the pending output should go out as an event (None: nothing pending)."""
        if not self.pending:
            return None
        if self.pending_bytes >= STREAM_FLUSH_BYTES:
            return self.pending_since
        whole_line = any("\n" in part for part in self.pending)
        wait = STREAM_FLUSH_SECONDS if whole_line else STREAM_PARTIAL_LINE_SECONDS
        return self.pending_since + wait

    def flush_events(self, final=False):
        """Sends what is due: at a flush, everything up to the last line end; a line
        still being written only when it has waited long enough, or at the end."""
        if self.decoder is None:
            return
        if final and not self.dropped:
            tail = self.decoder.decode(b"", final=True)
            if tail:
                self.pending.append(tail)
        if not self.pending:
            return
        now = time.monotonic()
        due = self.due()
        if not final and due is not None and now < due:
            return
        text = "".join(self.pending)
        rest = ""
        if not final and now < self.pending_since + STREAM_PARTIAL_LINE_SECONDS \
                and self.pending_bytes < STREAM_FLUSH_BYTES:
            cut = text.rfind("\n") + 1
            if cut > 0:
                text, rest = text[:cut], text[cut:]
        self.pending = [rest] if rest else []
        self.pending_bytes = len(rest.encode("utf-8", "replace"))
        self.pending_since = now if rest else 0.0
        if text:
            self.sink.send({"type": self.name, "data": text})

    def text(self):
        data = bytes(self.buf)
        if self.dropped:
            data = utf8_cut(data, self.cap)
        text = data.decode("utf-8", "replace")
        if len(data) * 3 > self.cap:
            # Each invalid byte became U+FFFD (3 bytes): keep the text within the cap.
            encoded = text.encode("utf-8")
            if len(encoded) > self.cap:
                text = utf8_cut(encoded, self.cap).decode("utf-8", "replace")
                self.dropped = True
        return text


class Pump:
    """Reads the stdout/stderr pipes of a run (and extra fds) with one poll loop."""

    def __init__(self, req, sink, out_fd, err_fd):
        self.captures = {
            out_fd: Capture("stdout", req.output_bytes, sink, req.stream),
            err_fd: Capture("stderr", req.output_bytes, sink, req.stream),
        }
        self.stdout = self.captures[out_fd]
        self.stderr = self.captures[err_fd]
        self.kill_bytes = req.output_kill_bytes
        self.stream = req.stream
        self.over_limit = False
        self.open = set(self.captures)
        self.poller = select.poll()
        for fd in self.captures:
            self.poller.register(fd, select.POLLIN)

    def register(self, fd):
        self.poller.register(fd, select.POLLIN)

    def watch_process(self, pid):
        """Polls a pidfd of `pid` too, so that its exit wakes the loop; the fd, or None
        where the kernel or Python has no pidfd_open."""
        if not hasattr(os, "pidfd_open"):
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        self.register(pidfd)
        return pidfd

    def unregister(self, fd):
        try:
            self.poller.unregister(fd)
        except (KeyError, ValueError):
            pass

    def step(self, timeout):
        """Polls once (timeout in seconds or None); returns events of extra fds."""
        dues = [d for d in (self.stdout.due(), self.stderr.due()) if d is not None] \
            if self.stream else []
        if dues:
            due = min(dues) - time.monotonic()
            timeout = max(0.0, due) if timeout is None else max(0.0, min(timeout, due))
        millis = None if timeout is None else int(timeout * 1000 + 0.999)
        extra = []
        for fd, _ in self.poller.poll(millis):
            capture = self.captures.get(fd)
            if capture is None:
                extra.append(fd)
                continue
            try:
                data = os.read(fd, READ_CHUNK)
            except OSError:
                data = b""
            if not data:
                self.close_fd(fd)
                continue
            capture.feed(data)
            if not self.over_limit and self.stdout.total + self.stderr.total > self.kill_bytes:
                self.over_limit = True
        if self.stream:
            self.flush_events()
        return extra

    def flush_events(self, final=False):
        self.stdout.flush_events(final)
        self.stderr.flush_events(final)

    def close_fd(self, fd):
        if fd in self.open:
            self.open.discard(fd)
            self.unregister(fd)
            os.close(fd)

    def close(self):
        for fd in list(self.open):
            self.close_fd(fd)

    @property
    def truncated(self):
        return self.stdout.dropped or self.stderr.dropped
