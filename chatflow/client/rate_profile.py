"""The open loop's rate over time (``--rate``): constant, or stages that ramp linearly.

``--rate 2000`` is 2,000 msg/s for as long as the run lasts; ``--rate 500:5000:60s`` ramps
from 500 to 5,000 msg/s over 60 s; stages follow one another, comma-separated
(``--rate 0:2000:30s,2000:2m``: a ramp, then 2,000 msg/s held for two minutes). After the
last stage the rate stays at its end. Pure: where each message falls on the schedule, and
how many are due by a time (docs/client.md#ramps).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: A stage's length: a number and a unit (s, m or h), or a bare number of seconds.
_LENGTH = re.compile(r"(?P<number>[0-9.eE+-]+)(?P<unit>ms|s|m|h)?")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class RateError(ValueError):
    """A ``--rate`` that is not a rate: the message says what is wrong, in one line."""


@dataclass(frozen=True)
class Stage:
    """``seconds`` over which the rate goes linearly from ``start`` to ``end`` msg/s."""

    start: float
    end: float
    seconds: float

    @property
    def messages(self) -> float:
        return (self.start + self.end) / 2 * self.seconds

    def count_by(self, t: float) -> float:
        """Messages due in the stage's first ``t`` s (0 ≤ t ≤ seconds): N(t) = r₀t + at²/2."""
        return self.start * t + (self.end - self.start) / self.seconds * t * t / 2

    def offset_s(self, n: float) -> float:
        """When the stage's ``n``-th message is due, in s from its start: N(t) = n solved as
        2n / (r₀ + √(r₀² + 2an)), which holds for a ramp up, down or flat, and from 0."""
        if n <= 0:
            return 0.0
        slope = (self.end - self.start) / self.seconds
        return 2 * n / (self.start + math.sqrt(max(0.0, self.start * self.start + 2 * slope * n)))

    def describe(self) -> str:
        length = f"{self.seconds:g} s"
        if self.start == self.end:
            return f"{self.start:,.0f} msg/s for {length}"
        return f"{self.start:,.0f} → {self.end:,.0f} msg/s over {length}"


@dataclass(frozen=True)
class RateProfile:
    """The stages, then their last rate for as long as the run goes on."""

    stages: tuple[Stage, ...]

    @classmethod
    def constant(cls, rate: float) -> RateProfile:
        return cls((Stage(rate, rate, 1.0),))

    @property
    def ramps(self) -> bool:
        return len(self.stages) > 1 or self.stages[0].start != self.stages[0].end

    @property
    def final_rate(self) -> float:
        return self.stages[-1].end

    @property
    def duration_s(self) -> float:
        """The stages' length (after which the last rate holds)."""
        return sum(stage.seconds for stage in self.stages)

    @property
    def messages(self) -> int:
        """The stages' messages, rounded, at least one: a run's size when nothing else says."""
        return max(1, round(sum(stage.messages for stage in self.stages)))

    def offset_s(self, slot: int) -> float:
        """When message ``slot`` (from 0) is due, in s from slot 0."""
        before = 0.0
        n = float(slot)
        for stage in self.stages:
            if n < stage.messages:
                return before + stage.offset_s(n)
            n -= stage.messages
            before += stage.seconds
        return before + n / self.final_rate

    def count_by(self, t: float) -> float:
        """Messages due in the first ``t`` s (not rounded)."""
        count = 0.0
        for stage in self.stages:
            if t <= stage.seconds:
                return count + stage.count_by(max(0.0, t))
            count += stage.messages
            t -= stage.seconds
        return count + t * self.final_rate

    def due(self, elapsed_s: float, total: int) -> int:
        """Of ``total`` messages, those whose slot has come ``elapsed_s`` s after slot 0."""
        return min(total, math.floor(self.count_by(elapsed_s) + 1e-9) + 1)

    def rate_at(self, t: float) -> float:
        """The rate asked ``t`` s after slot 0."""
        for stage in self.stages:
            if t <= stage.seconds:
                return stage.start + (stage.end - stage.start) * max(0.0, t) / stage.seconds
            t -= stage.seconds
        return self.final_rate

    def mean_rate(self, messages: int) -> float:
        """The rate asked on average over a run of ``messages``: they over the time from
        slot 0 to the slot one past the last (for a constant rate, the rate itself)."""
        return messages / self.offset_s(messages)

    def describe(self) -> str:
        return ", then ".join(stage.describe() for stage in self.stages)


def parse_rate(text: str) -> RateProfile:
    """``R``, or stages ``A:B:T`` (a ramp) and ``R:T`` (a rate held), comma-separated."""
    text = text.strip()
    if ":" not in text and "," not in text:
        return RateProfile.constant(_rate(text, text))
    stages = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) == 2:
            start = end = _rate(fields[0], part)
        elif len(fields) == 3:
            start, end = _rate(fields[0], part, zero=True), _rate(fields[1], part, zero=True)
        else:
            raise RateError(f"stage {part.strip()!r} is not RATE:LENGTH or FROM:TO:LENGTH (e.g. 500:5000:60s)")
        if start == end == 0:
            raise RateError(f"stage {part.strip()!r} sends nothing: a stage needs a rate above 0")
        stages.append(Stage(start, end, _length(fields[-1], part)))
    if stages[-1].end <= 0:
        raise RateError("the last stage must end above 0 msg/s (the rate holds there after the stages)")
    return RateProfile(tuple(stages))


def _rate(field: str, context: str, zero: bool = False) -> float:
    where = "" if field.strip() == context.strip() else f" in {context.strip()!r}"
    try:
        value = float(field)
    except ValueError:
        raise RateError(f"not a number of messages per second: {field.strip()!r}{where}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise RateError(f"must be more than 0 messages per second, not {field.strip()}{where}")
    return value


def _length(field: str, context: str) -> float:
    match = _LENGTH.fullmatch(field.strip())
    try:
        seconds = float(match["number"]) * _UNITS[match["unit"]] if match else math.nan
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise RateError(f"not a length of time: {field.strip()!r} in {context.strip()!r} (e.g. 60s, 2m, 90)")
    return seconds
