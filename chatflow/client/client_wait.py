"""The client wait: how long each reply sat between the kernel and its sender's clock.

The kernel stamps each received segment (SO_TIMESTAMPNS, ``BufferedSocket``); the sender
reads the wall clock once the reply is parsed. The difference is time the reply spent
waiting for its thread to wake and take the GIL, plus the parsing: latency the server
never saw (docs/client.md#where-a-reply-waits). Each sender counts its waits in a small
fixed histogram, merged like its other counts.

One connection in ``SAMPLE_EVERY`` is measured (``wrap_socket``): the senders are alike,
so a share of them gives the waits' distribution, and the stamped read costs more.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatflow.client.histogram import percentile_us

#: One connection in this many, the first included, has its replies' waits measured.
SAMPLE_EVERY = 8
@dataclass(frozen=True)
class ClientWait:
    """A run's client waits, in ms, and their share of the mean latency."""

    replies: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    #: mean wait / mean latency of the successful messages; None without a latency.
    share: float | None


def summarise_waits(counts: list[int], sum_us: int, mean_latency_ms: float | None) -> ClientWait | None:
    """The run's figures from the merged histogram; None when no wait was measured."""
    replies = sum(counts)
    if not replies:
        return None
    mean_ms = sum_us / replies / 1000.0
    share = mean_ms / mean_latency_ms if mean_latency_ms else None
    return ClientWait(replies, percentile_us(counts, 0.50) / 1000.0, percentile_us(counts, 0.99) / 1000.0,
                      mean_ms, share)
