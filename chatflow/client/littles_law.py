"""Little's Law, L = λ·W, as the client uses it (SPEC §2.4).

With N threads each keeping one request in flight, the system holds L = N requests, so
the throughput to expect is λ = N / W, W being one round trip. After the run, the
measured throughput and mean latency give the concurrency actually achieved.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    return Prediction(
        prediction.phase, prediction.threads, prediction.round_trip_s,
        prediction.predicted, actual, mean_latency_s,
    )
