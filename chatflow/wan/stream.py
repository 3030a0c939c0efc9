"""One direction's bytes between their arrival and their release, and its memory bound.

Pure: the proxy pushes what it read with the time it read it, asks what is due, and says
how much it wrote; nothing here touches a socket (docs/wan.md).
"""

from __future__ import annotations

import enum
from collections import deque

from chatflow.wan.delay import Delay


class End(enum.Enum):
    """How a direction's source ended, passed on after the bytes ahead of it."""

    EOF = "eof"
    RESET = "reset"


#: Chunks one direction holds at most: each costs a queue entry beside its bytes, so
#: a source that sends one byte at a time is bounded too.
MAX_CHUNKS = 4096


class HeldStream:
    """Chunks in arrival order, each with its release time (``Delay``), and their size.

    ``room`` is how much the source may be read now: a direction never holds more than
    ``max_buffer`` bytes nor more than ``max_chunks`` chunks, so a destination that does
    not read stops its source being read (back-pressure) instead of growing a queue.
    """

    def __init__(self, delay: Delay, max_buffer: int, max_chunks: int = MAX_CHUNKS) -> None:
        if max_buffer < 1 or max_chunks < 1:
            raise ValueError(f"max_buffer and max_chunks must be at least 1, not {max_buffer} and {max_chunks}")
        self.delay = delay
        self.max_buffer = max_buffer
        self.max_chunks = max_chunks
        #: Bytes read and not yet written.
        self.held = 0
        #: The end that was read (nothing comes after it), or None.
        self.ended: End | None = None
        self._queue: deque[tuple[float, memoryview | End]] = deque()

    @property
    def room(self) -> int:
        """Bytes that may be read from the source now (0: stop reading it)."""
        if self.ended is not None or len(self._queue) >= self.max_chunks:
            return 0
        return max(0, self.max_buffer - self.held)

    def push(self, data: bytes, arrival: float) -> float:
        """Hold ``data`` (read at ``arrival``); returns when it is due."""
        assert self.ended is None, "nothing comes after the end"
        release = self.delay.release(arrival)
        self._queue.append((release, memoryview(data)))
        self.held += len(data)
        return release

    def end(self, how: End, arrival: float) -> float:
        """The source ended at ``arrival``; returns when that is due (after every byte ahead).

        A reset may follow an end of stream (a side that half-closed can still reset);
        nothing follows a reset."""
        assert self.ended is None or (self.ended is End.EOF and how is End.RESET), f"{how} after {self.ended}"
        self.ended = how
        release = self.delay.release(arrival)
        self._queue.append((release, how))
        return release

    def next_release(self) -> float | None:
        """When the head is due, or None when nothing is held."""
        return self._queue[0][0] if self._queue else None

    def due(self, now: float) -> memoryview | End | None:
        """The head if it is due at ``now``: the bytes still to write, or the end."""
        if self._queue and self._queue[0][0] <= now:
            return self._queue[0][1]
        return None

    def written(self, size: int) -> None:
        """``size`` bytes of the head chunk went out."""
        release, head = self._queue[0]
        assert isinstance(head, memoryview) and 0 < size <= len(head)
        self.held -= size
        if size == len(head):
            self._queue.popleft()
        else:
            self._queue[0] = (release, head[size:])

    def passed_on(self) -> None:
        """The end at the head was passed on to the destination."""
        assert self._queue and isinstance(self._queue[0][1], End)
        self._queue.popleft()

    def clear(self) -> None:
        """Drop everything held (the destination is gone)."""
        self._queue.clear()
        self.held = 0
