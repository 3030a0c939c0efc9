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

#: One connection in this many, the first included, has its replies' waits measured.
SAMPLE_EVERY = 8
#: Waits below this many µs have a bucket each; above, each power of two has ``SUB``.
LINEAR = 32
SUB = 16
#: Waits up to 2**25 µs (33 s) have their own bucket, longer than any reply timeout.
MAX_BITS = 25
BUCKETS = ((MAX_BITS - 5) << 4) + LINEAR


def bucket_of(wait_us: int) -> int:
    """The bucket of a wait in µs: exact below 32 µs, then within 1/16 of its value."""
    if wait_us < LINEAR:
        return wait_us if wait_us > 0 else 0
    shift = wait_us.bit_length() - 5
    index = (shift << 4) + (wait_us >> shift)
    return index if index < BUCKETS else BUCKETS - 1


def bucket_range(index: int) -> tuple[int, int]:
    """The waits in µs that ``bucket_of`` puts in bucket ``index``: [low, high)."""
    if index < LINEAR:
        return index, index + 1
    shift = (index >> 4) - 1
    mantissa = index - (shift << 4)
    return mantissa << shift, (mantissa + 1) << shift


def empty_counts() -> list[int]:
    return [0] * BUCKETS


def percentile_us(counts: list[int], fraction: float) -> float | None:
    """The wait at ``fraction`` (0..1) of the counted replies, as the middle of its bucket."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, round(fraction * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            low, high = bucket_range(index)
            return (low + high) / 2
    return None  # not reached: rank <= total


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
