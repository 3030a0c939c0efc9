"""What the transport counts: plain numbers that the selector thread alone writes.

No lock and no metrics library on the per-message path: the selector thread bumps ints
and fixed bucket lists, and whoever wants the figures (the ``/metrics`` collector, a
periodic log line) reads them from another thread. A read of an int is whole under the
GIL; a bucket list is copied before it is read, so a histogram's buckets always agree
with its count (its sum may lag one message behind). Names, units and the bucket bounds
are the server's metrics module's (``chatflow.server.metrics``), given here as numbers.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from random import getrandbits

from websockets.frames import CloseCode
from websockets.protocol import Protocol


class TransportStats:
    """One server's counts: connections, bytes, messages, handler time, wake-ups.

    ``handler_bounds_ns`` and ``batch_bounds`` are the histograms' upper bounds (inclusive,
    ascending); each bucket list has one more entry, for what is above the last bound.
    The handler is timed on a sample of the messages, about one in ``2 ** sample_bits``
    (0: every one): two clock reads and a histogram entry for every message would cost as much
    as all the other counts together (docs/metrics.md). The gap to the next timed message
    is drawn at random, so that the sample cannot lock onto a round of the connections.
    """

    __slots__ = ("handler_bounds_ns", "batch_bounds", "sample_bits", "until_timed", "opened", "closed", "refused",
                 "bytes_in", "bytes_out", "messages", "replies", "handler_ns", "handler_buckets", "wakeups",
                 "batch_buckets")

    def __init__(self, *, handler_bounds_ns: Sequence[int], batch_bounds: Sequence[int], sample_bits: int) -> None:
        self.handler_bounds_ns = tuple(handler_bounds_ns)
        self.batch_bounds = tuple(batch_bounds)
        self.sample_bits = sample_bits
        #: Messages to go until the next one timed; the first one is.
        self.until_timed = 1
        #: Handshakes accepted; connections closed, by close code; handshakes refused, by HTTP status.
        self.opened = 0
        self.closed: dict[int, int] = {}
        self.refused: dict[int, int] = {}
        #: Bytes read from and written to the sockets, handshakes and framing included.
        self.bytes_in = 0
        self.bytes_out = 0
        #: Whole messages handed to the handler; frames the handler sent on their own connection.
        self.messages = 0
        self.replies = 0
        #: The handler's time per timed message: the total, and the histogram's buckets.
        self.handler_ns = 0
        self.handler_buckets = [0] * (len(self.handler_bounds_ns) + 1)
        #: Every wake-up of the selector; the messages of each that handled any, as a histogram.
        self.wakeups = 0
        self.batch_buckets = [0] * (len(self.batch_bounds) + 1)

    def timed(self, elapsed_ns: int) -> None:
        """The message of the sample went through the handler in ``elapsed_ns``; draw the
        next (1 to ``2 ** (sample_bits + 1)`` messages on; with ``sample_bits`` 0, the next)."""
        self.handler_ns += elapsed_ns
        self.handler_buckets[bisect_left(self.handler_bounds_ns, elapsed_ns)] += 1
        self.until_timed = getrandbits(self.sample_bits + 1) + 1 if self.sample_bits else 1

    def woke(self, messages: int) -> None:
        """One wake-up of the selector, which handled ``messages``."""
        self.wakeups += 1
        if messages:
            self.batch_buckets[bisect_left(self.batch_bounds, messages)] += 1

    def close(self, code: int) -> None:
        """An admitted connection ended with ``code`` (``ending``)."""
        self.closed[code] = self.closed.get(code, 0) + 1

    def refuse(self, status: int) -> None:
        """A handshake answered with HTTP ``status`` instead of 101."""
        self.refused[status] = self.refused.get(status, 0) + 1


def ending(protocol: Protocol) -> tuple[int, str]:
    """The code and reason a connection ended with: those of the first close frame,
    whichever side sent it (the server's 1001 at shutdown, a client's 1000), or 1006 and
    no reason when none was sent."""
    sent, received = protocol.close_sent, protocol.close_rcvd
    if sent is not None and (received is None or protocol.close_rcvd_then_sent is False):
        return sent.code, sent.reason
    if received is not None:
        return received.code, received.reason
    return CloseCode.ABNORMAL_CLOSURE, ""
