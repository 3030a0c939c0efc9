"""A connection's unsent bytes, with the high-water mark that bounds them.

What the kernel does not take at once waits here for the socket to be writable. Past
``high_water`` bytes the connection stops reading from its client (see
``Connection.interest``): a client that does not read its replies then fills its own
kernel buffers, not this process's memory (docs/reliability.md).
"""

from __future__ import annotations

import collections
import itertools
import socket

#: Buffers one ``sendmsg`` takes at most (Linux's IOV_MAX).
MAX_BUFFERS = 1024


class OutputBuffer:
    """Chunks waiting for the socket, and a pending half-close (SHUT_WR) after them."""

    __slots__ = ("_chunks", "size", "high_water", "last_write", "_eof_pending", "_eof_sent")

    def __init__(self, high_water: int, now: float) -> None:
        self._chunks: collections.deque[memoryview] = collections.deque()
        #: Bytes waiting.
        self.size = 0
        self.high_water = high_water
        #: When the socket last took bytes (or the buffer was created): the write timeout's clock.
        self.last_write = now
        self._eof_pending = False
        self._eof_sent = False

    @property
    def empty(self) -> bool:
        """Nothing to write, not even the half-close."""
        return not self.size and not self._eof_pending

    @property
    def full(self) -> bool:
        """At or past the high-water mark: stop reading from the client."""
        return self.size >= self.high_water

    def append(self, data: bytes | memoryview, now: float | None = None) -> None:
        """Queue ``data``; ``now`` restarts the write timeout's clock (a partial send)."""
        if not data:
            return
        self._chunks.append(memoryview(data))
        self.size += len(data)
        if now is not None:
            self.last_write = now

    def append_eof(self) -> None:
        """Half-close the socket once every chunk before it is written."""
        self._eof_pending = True

    def write_to(self, sock: socket.socket, now: float) -> int:
        """Write as much as the socket takes now, and say how many bytes that was; raises
        OSError if the client is gone.

        Every waiting chunk in one system call (``sendmsg``, gathering them): a broadcast
        member has a frame per message of its room waiting, and a call each would cost
        the server more than the frames themselves (docs/broadcast.md#how-it-is-built)."""
        chunks = self._chunks
        written = 0
        try:
            while chunks:
                batch = chunks if len(chunks) <= MAX_BUFFERS else list(itertools.islice(chunks, MAX_BUFFERS))
                sent = sock.sendmsg(batch) if len(batch) > 1 else sock.send(batch[0])
                if not sent:
                    return written
                written += sent
                self.size -= sent
                self.last_write = now
                while sent:
                    chunk = chunks[0]
                    if sent < len(chunk):
                        chunks[0] = chunk[sent:]
                        return written  # the socket took what it could
                    sent -= len(chunk)
                    chunks.popleft()
            if self._eof_pending and not self._eof_sent:
                self._eof_pending = False
                self._eof_sent = True
                sock.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        return written

    def clear(self) -> None:
        """Forget everything (the client is gone)."""
        self._chunks.clear()
        self.size = 0
        self._eof_pending = False
