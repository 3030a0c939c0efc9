"""When each chunk of one direction may go on: half the round trip after it arrived, plus
a seeded jitter, and never before the chunk ahead of it (so jitter never reorders).

Pure: times in, times out; the proxy reads the clock (docs/wan.md).
"""

from __future__ import annotations

import math
import random


class Delay:
    """The release schedule of one direction of one connection.

    A chunk that arrives at ``t`` is released at ``max(previous release, t + rtt/2 + j)``,
    ``j`` drawn uniform in ``0..jitter`` from ``random.Random(seed)``: the same seed and
    arrivals give the same schedule, and releases never decrease.
    """

    def __init__(self, rtt_ms: float, jitter_ms: float = 0.0, seed: int | str | None = None) -> None:
        for name, value in (("rtt_ms", rtt_ms), ("jitter_ms", jitter_ms)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of at least 0, not {value!r}")
        self.one_way = rtt_ms / 2000.0
        self.jitter = jitter_ms / 1000.0
        self._rng = random.Random(seed)
        self._last = -math.inf

    def release(self, arrival: float) -> float:
        """The time (same clock as ``arrival``, seconds) a chunk arriving at ``arrival`` goes on."""
        due = arrival + self.one_way
        if self.jitter:
            due += self._rng.uniform(0.0, self.jitter)
        self._last = max(self._last, due)
        return self._last


def direction_seed(seed: int | None, connection: int, to_upstream: bool) -> str | None:
    """One seed per direction of each connection, drawn from the proxy's one ``seed``, so
    that a direction's jitter does not depend on how the other directions' reads interleave."""
    if seed is None:
        return None
    return f"{seed}/{connection}/{'up' if to_upstream else 'down'}"
