"""A run's stdout and stderr: each kept up to its cap, forwarded as stream events,
read from the run's pipes with one poll loop, which reads the run's outputs channel too
(see outputs.py)."""

import codecs
import os
import select
import time

# How long a run's pipes are still read after it ended (for what it wrote last).
DRAIN_SECONDS = 0.2
READ_CHUNK = 1 << 16
# Items carry images: the outputs channel is read in larger pieces.
OUTPUTS_READ_CHUNK = 1 << 20
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

    def flush_events(self, final=False, now_all=False):
        """Sends what is due: at a flush, everything up to the last line end; a line
        still being written only when it has waited long enough, or at the end, or
        (`now_all`) when something the code made after it is about to go out."""
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
        whole = final or now_all
        if not whole and due is not None and now < due:
            return
        text = "".join(self.pending)
        rest = ""
        if not whole and now < self.pending_since + STREAM_PARTIAL_LINE_SECONDS \
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
    """Reads the stdout/stderr pipes of a run (its outputs channel, and extra fds) with
    one poll loop."""

    def __init__(self, req, sink, out_fd, err_fd, outputs=None):
        self.captures = {
            out_fd: Capture("stdout", req.output_bytes, sink, req.stream),
            err_fd: Capture("stderr", req.output_bytes, sink, req.stream),
        }
        self.stdout = self.captures[out_fd]
        self.stderr = self.captures[err_fd]
        self.sink = sink
        self.kill_bytes = req.output_kill_bytes
        self.stream = req.stream
        self.over_limit = False
        self.open = set(self.captures)
        self.poller = select.poll()
        for fd in self.captures:
            self.poller.register(fd, select.POLLIN)
        self.outputs = outputs  # an outputs.OutputsReader, or None
        self.captures_poller = None
        if outputs is not None:
            self.open.add(outputs.fd)
            self.poller.register(outputs.fd, select.POLLIN)
            # stdout and stderr alone, read up before each item (see read_outputs)
            self.captures_poller = select.poll()
            for fd in self.captures:
                self.captures_poller.register(fd, select.POLLIN)

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
        outputs_ready = False
        for fd, _ in self.poller.poll(millis):
            if fd in self.captures:
                self.read_capture(fd)
            elif self.outputs is not None and fd == self.outputs.fd:
                outputs_ready = True
            else:
                extra.append(fd)
        if outputs_ready:
            self.read_outputs()
        if self.stream:
            self.flush_events()
        return extra

    def read_capture(self, fd):
        try:
            data = os.read(fd, READ_CHUNK)
        except OSError:
            data = b""
        if not data:
            self.close_fd(fd)
            return
        self.captures[fd].feed(data)
        if not self.over_limit and self.stdout.total + self.stderr.total > self.kill_bytes:
            self.over_limit = True

    def read_outputs(self):
        """Items from the outputs channel. When the run streams, the code's process waits
        after each item until it is acknowledged: whatever is in the stdout and stderr
        pipes now was written before it, and goes out first."""
        for _ in range(64):  # bounded: other processes of the code may write all along
            ready = [fd for fd, _ in self.captures_poller.poll(0) if fd in self.open]
            if not ready:
                break
            for fd in ready:
                self.read_capture(fd)
        fd = self.outputs.fd
        try:
            data = os.read(fd, OUTPUTS_READ_CHUNK)
        except OSError:
            data = b""
        if not data:
            self.close_fd(fd)
            return
        items, lines = self.outputs.feed(data)
        if self.stream and items:
            self.flush_events(now_all=True)
            for item in items:
                self.sink.send({"type": "display", "output": item})
        self.outputs.acknowledge(lines)

    def pending_output(self):
        """Whether any output pipe of the run has something to read now."""
        fds = set(self.captures)
        if self.outputs is not None:
            fds.add(self.outputs.fd)
        return any(fd in fds for fd, _ in self.poller.poll(0))

    def flush_events(self, final=False, now_all=False):
        self.stdout.flush_events(final, now_all)
        self.stderr.flush_events(final, now_all)

    def close_fd(self, fd):
        if fd in self.open:
            self.open.discard(fd)
            self.unregister(fd)
            if self.captures_poller is not None and fd in self.captures:
                try:
                    self.captures_poller.unregister(fd)
                except (KeyError, ValueError):
                    pass
            os.close(fd)

    def close(self):
        for fd in list(self.open):
            self.close_fd(fd)

    @property
    def truncated(self):
        return self.stdout.dropped or self.stderr.dropped
