"""Little's Law, L = λ·W, as the client uses it (SPEC §2.4), and the bounds of a run.

With N threads each keeping one request in flight, the system holds L = N requests, so
the throughput to expect is λ = N / W, W being one round trip. After the run, the
measured throughput and mean latency give the concurrency actually achieved.

Two rates bound a run's main phase: the round trip (N / W) and the CPU (the cores ÷ the
CPU seconds each message costs client and server); ``which_bound`` says which one the
run reached, if either (docs/client.md#littles-law-and-the-bounds-of-a-run).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Prediction:
    phase: str
    threads: int
    round_trip_s: float
    predicted: float
    actual: float | None = None
    mean_latency_s: float | None = None

    @property
    def ratio(self) -> float | None:
        """Actual over predicted throughput."""
        if self.actual is None or not self.predicted:
            return None
        return self.actual / self.predicted

    @property
    def concurrency(self) -> float | None:
        """L = λ·W from the measured throughput and mean latency of the phase."""
        if self.actual is None or self.mean_latency_s is None:
            return None
        return self.actual * self.mean_latency_s


def predict(phase: str, threads: int, round_trip_s: float) -> Prediction:
    """λ = N / W."""
    predicted = threads / round_trip_s if round_trip_s > 0 else float("inf")
    return Prediction(phase, threads, round_trip_s, predicted)


def with_result(prediction: Prediction, actual: float, mean_latency_s: float | None) -> Prediction:
    return replace(prediction, actual=actual, mean_latency_s=mean_latency_s)


def predict_from_warmup(main_threads: int, warmup_mean_latency_s: float | None, actual: float | None,
                        main_mean_latency_s: float | None) -> Prediction | None:
    """The seed's prediction: the main phase's λ = its threads / the warmup's mean W.

    None without a warmup W (no warmup phase, or none of its messages succeeded).
    """
    if not warmup_mean_latency_s or warmup_mean_latency_s <= 0:
        return None
    prediction = predict("main", main_threads, warmup_mean_latency_s)
    return prediction if actual is None else with_result(prediction, actual, main_mean_latency_s)


def cpu_ceiling(cores: int | None, cpu_s_per_message: float | None) -> float | None:
    """The most messages per second the cores can carry: cores ÷ CPU seconds per message.

    ``cpu_s_per_message`` is the client's and the server's together; None when either
    is unknown.
    """
    if not cores or cores <= 0 or not cpu_s_per_message or cpu_s_per_message <= 0:
        return None
    return cores / cpu_s_per_message


class Bound(enum.Enum):
    """What set a run's main-phase rate."""

    ROUND_TRIP = "round trip"
    CPU = "CPU"
    NEITHER = "neither"


#: A run "hit" a bound when its main phase ran at this fraction of that bound or more.
HIT_FRACTION = 0.8


def lower_bound(round_trip: float | None, cpu: float | None) -> tuple[Bound, float] | None:
    """The bound that applies: the lower of the known ones (the round trip on a tie)."""
    known = [(rate, bound) for bound, rate in ((Bound.ROUND_TRIP, round_trip), (Bound.CPU, cpu))
             if rate is not None and 0 < rate < math.inf]
    if not known:
        return None
    rate, bound = min(known, key=lambda pair: pair[0])
    return bound, rate


def which_bound(actual: float | None, round_trip: float | None, cpu: float | None,
                hit_fraction: float = HIT_FRACTION) -> Bound | None:
    """ROUND_TRIP or CPU when ``actual`` reached ``hit_fraction`` of the lower known
    bound, NEITHER when it stayed below it, None when no bound (or no rate) is known."""
    applies = lower_bound(round_trip, cpu)
    if applies is None or actual is None:
        return None
    bound, rate = applies
    return bound if actual >= hit_fraction * rate else Bound.NEITHER


@dataclass(frozen=True)
class Bounds:
    """A run's main phase against the two rates that bound it.

    The round-trip bound is the seed's prediction (``warmup``) when the run had a warmup,
    else the idle probe's (``idle``).
    """

    threads: int
    actual: float | None
    warmup: Prediction | None
    idle: Prediction | None
    cores: int | None
    cpu_s_per_message: float | None

    @property
    def round_trip(self) -> float | None:
        basis = self.warmup or self.idle
        return basis.predicted if basis is not None else None

    @property
    def cpu(self) -> float | None:
        return cpu_ceiling(self.cores, self.cpu_s_per_message)

    @property
    def applies(self) -> tuple[Bound, float] | None:
        return lower_bound(self.round_trip, self.cpu)

    @property
    def bound(self) -> Bound | None:
        return which_bound(self.actual, self.round_trip, self.cpu)

    @property
    def fraction(self) -> float | None:
        """The main phase's rate over the bound that applies."""
        applies = self.applies
        return self.actual / applies[1] if applies is not None and self.actual is not None else None
