"""Latency histograms: fixed buckets, exact below 32 µs and within 1/16 above.

A sender adds to its own lists of counts on its hot path (one index, one increment); the
run adds the lists up and reads percentiles from them (docs/client.md#latency-histograms).
The client wait, the open loop's two latencies, the run's round trips and the fan-out
latencies all use these buckets.
"""

from __future__ import annotations

#: Latencies below this many µs have a bucket each; above, each power of two has ``SUB``.
LINEAR = 32
SUB = 16
#: Latencies up to 2**25 µs (33 s) have their own bucket, longer than any reply timeout.
MAX_BITS = 25
BUCKETS = ((MAX_BITS - 5) << 4) + LINEAR


def bucket_of(latency_us: int) -> int:
    """The bucket of a latency in µs: exact below 32 µs, then within 1/16 of its value."""
    if latency_us < LINEAR:
        return latency_us if latency_us > 0 else 0
    shift = latency_us.bit_length() - 5
    index = (shift << 4) + (latency_us >> shift)
    return index if index < BUCKETS else BUCKETS - 1


def bucket_range(index: int) -> tuple[int, int]:
    """The latencies in µs that ``bucket_of`` puts in bucket ``index``: [low, high)."""
    if index < LINEAR:
        return index, index + 1
    shift = (index >> 4) - 1
    mantissa = index - (shift << 4)
    return mantissa << shift, (mantissa + 1) << shift


def empty_counts() -> list[int]:
    return [0] * BUCKETS


def percentile_us(counts: list[int], fraction: float) -> float | None:
    """The latency at ``fraction`` (0..1) of the counted latencies, as the middle of its bucket."""
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


#: The percentiles reported of each latency.
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
#: The run's latency in summary.json, which ``--threshold`` reads: two more.
RUN_PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))


def add_latency(counts: list[int], latency_us: int) -> None:
    counts[bucket_of(max(0, latency_us))] += 1


def latency_figures(counts: list[int], max_us: int,
                    percentiles: tuple[tuple[str, float], ...] = PERCENTILES) -> dict[str, float | int | None]:
    """p50, p95, p99 (or ``percentiles``; the middles of their histogram buckets, within
    1/16, and never above the max) and the exact max, in ms, and how many latencies were
    counted."""
    figures: dict[str, float | int | None] = {"count": sum(counts)}
    for name, fraction in percentiles:
        value = percentile_us(counts, fraction)
        figures[f"{name}_ms"] = None if value is None else round(min(value, max_us) / 1000, 3)
    figures["max_ms"] = round(max_us / 1000, 3) if figures["count"] else None
    return figures
