"""``--threshold EXPR`` (k6-style): a pass/fail condition on one figure of a run.

Pure functions. ``parse_threshold`` reads ``p99<50ms`` into a :class:`Threshold`, or raises
:class:`ThresholdError` with one line that names the mistake; ``evaluate`` compares it with
the run's figures (``chatflow.client.figures``, the ones summary.json holds) and gives a
:class:`Verdict` with its line for the summary. Every metric is one row of ``METRICS``:
its name, its unit, how it is read from the figures (docs/client.md#thresholds).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatflow.client.figures import Figures

#: The comparisons, by their operator.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}

#: Each kind of metric's units as written after the value → the factor to the metric's own
#: unit; "" is a bare number.
MS, COUNT, FRACTION, RATE = "ms", "count", "fraction", "msg/s"
UNITS: dict[str, dict[str, float]] = {
    MS: {"": 1.0, "ms": 1.0, "s": 1000.0},
    COUNT: {"": 1.0},
    FRACTION: {"": 1.0, "%": 0.01},
    RATE: {"": 1.0, "msg/s": 1.0},
}
#: How each kind's units are said in an error.
UNITS_SAID = {MS: "ms or s (a bare number is ms)", COUNT: "no unit (it is a count)",
              FRACTION: "% or a bare fraction (0.001 = 0.1%)", RATE: "msg/s or a bare number"}

Reader = Callable[[Figures], "float | None"]


@dataclass(frozen=True)
class Metric:
    """A figure a threshold may name: its unit, where the run's figures hold it, what it is."""

    name: str
    unit: str
    read: Reader
    what: str
    #: The scenario that alone measures it, or None for every run.
    scenario: str | None = None


#: The run's latency figures a threshold may name, and what each is.
LATENCIES = {"p50": "median", "p90": "90th percentile", "p95": "95th percentile", "p99": "99th percentile",
             "p999": "99.9th percentile", "max": "largest", "mean": "mean"}


def _latency(name: str) -> Metric:
    def read(f: Figures) -> float | None:
        return f["latency"][f"{name}_ms"]
    return Metric(name, MS, read, f"the {LATENCIES[name]} latency (the response time with --rate)")


def _failure_rate(f: Figures) -> float | None:
    totals = f["totals"]
    counted = totals["successful"] + totals["failed"]
    return totals["failed"] / counted if counted else None


def _throughput(f: Figures) -> float | None:
    return f["throughput_msg_s"] if f["phases_time_s"] > 0 else None


def _fanout(key: str, latency: bool = False) -> Reader:
    def read(f: Figures) -> float | None:
        fanout = f["fanout"]
        if fanout is None:
            return None
        return fanout["last_member_latency"]["p99_ms"] if latency else fanout[key]
    return read


#: Every metric ``--threshold`` accepts, by name.
METRICS: dict[str, Metric] = {m.name: m for m in (
    *(_latency(name) for name in LATENCIES),
    Metric("failures", COUNT, lambda f: f["totals"]["failed"], "messages failed"),
    Metric("failure_rate", FRACTION, _failure_rate, "failed ÷ (successful + failed) messages"),
    Metric("throughput", RATE, _throughput, "the summary's Overall throughput"),
    Metric("missing", COUNT, _fanout("missing"), "deliveries missing", "broadcast"),
    Metric("duplicated", COUNT, _fanout("duplicated"), "deliveries duplicated", "broadcast"),
    Metric("out_of_order", COUNT, _fanout("out_of_order"), "deliveries out of order", "broadcast"),
    Metric("fanout_p99", MS, _fanout("", latency=True), "send → the room's last member, p99", "broadcast"),
)}

EXAMPLE = "e.g. p99<50ms"
_NAME = re.compile(r"\s*([A-Za-z_]\w*)\s*(<=|>=|==|!=|<|>|=)?\s*(.*?)\s*")
_VALUE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(\S*)")


class ThresholdError(ValueError):
    """A malformed threshold; its message is one line for the user."""


@dataclass(frozen=True)
class Threshold:
    """``metric operator limit``, ``limit`` in the metric's own unit (ms, a count, a
    fraction, msg/s); ``text`` as given."""

    text: str
    metric: str
    operator: str
    limit: float

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    passed: bool
    #: The figure compared, in the metric's unit; None when the run did not measure it.
    measured: float | None
    #: The summary's line: "p99 (round trip) 1.234 ms < 50 ms ✓".
    text: str
    #: The measured figure as the line shows it, with what it measures: "1.234 ms (round trip)".
    shown: str


def parse_threshold(text: str) -> Threshold:
    """``METRIC OP VALUE[UNIT]`` → Threshold; ThresholdError saying what is wrong otherwise."""
    shown = text.strip()
    if not shown:
        raise ThresholdError(f"empty: expected METRIC OP VALUE, {EXAMPLE}")
    match = _NAME.fullmatch(text)
    if match is None:
        raise ThresholdError(f"{shown!r}: expected METRIC OP VALUE, {EXAMPLE}")
    name, op, rest = match.groups()
    metric = METRICS.get(name)
    if metric is None:
        raise ThresholdError(f"{shown!r}: unknown metric {name!r}; one of {', '.join(METRICS)}")
    if op is None:
        raise ThresholdError(f"{shown!r}: no comparison after {name}; one of {' '.join(OPERATORS)}")
    if op == "=":
        raise ThresholdError(f"{shown!r}: '=' is not a comparison; did you mean '=='?")
    if not rest:
        raise ThresholdError(f"{shown!r}: no value after {op!r}, {EXAMPLE}")
    value = _VALUE.fullmatch(rest)
    if value is None:
        raise ThresholdError(f"{shown!r}: {rest!r} is not a number (with its unit)")
    number, unit = float(value[1]), value[2]
    units = UNITS[metric.unit]
    if unit not in units:
        raise ThresholdError(f"{shown!r}: {name} takes {UNITS_SAID[metric.unit]}, not {unit!r}")
    if number < 0:
        raise ThresholdError(f"{shown!r}: {name} is never negative")
    limit = number * units[unit]
    if metric.unit == FRACTION and limit > 1:
        raise ThresholdError(f"{shown!r}: a failure rate is at most 1 (100%)")
    return Threshold(shown, name, op, limit)


def unavailable(threshold: Threshold, scenario: str) -> str | None:
    """Why the run the options ask for cannot measure the threshold's metric, or None."""
    needs = METRICS[threshold.metric].scenario
    if needs is not None and needs != scenario:
        return f"{threshold.text!r}: {threshold.metric} is measured only by --scenario {needs}"
    return None


def evaluate(threshold: Threshold, figures: Figures) -> Verdict:
    """The threshold against the run's figures; a figure the run did not measure (no
    message succeeded, the server unreachable) fails it."""
    metric = METRICS[threshold.metric]
    measured = None if figures["unreachable"] else metric.read(figures)
    passed = measured is not None and OPERATORS[threshold.operator](measured, threshold.limit)
    shown = "not measured" if measured is None else _shown(metric.unit, measured, measured=True)
    what = _what(metric, figures)
    text = (f"{metric.name}{what} {shown} {threshold.operator} {_shown(metric.unit, threshold.limit)} "
            f"{'✓' if passed else '✗'}")
    return Verdict(threshold, passed, measured, text, shown + what)


def _what(metric: Metric, figures: Figures) -> str:
    """What a latency measures, as the line says it after the metric's name."""
    if metric.unit != MS:
        return ""
    return f" ({'send → last member' if metric.scenario else figures['latency']['measure']})"


def _shown(unit: str, value: float, measured: bool = False) -> str:
    """A value in the metric's unit as the threshold line shows it: a limit as short as it
    was given, a measured figure as precise as it is kept (latencies to the µs)."""
    if unit == FRACTION:
        return f"{value * 100:.4g}%"
    if unit == COUNT:
        return f"{value:,.0f}" if measured else f"{value:,g}"
    number = (f"{value:,.3f}" if unit == MS else f"{value:,.1f}") if measured else f"{value:,g}"
    return f"{number} {unit}"


def verdict_figures(verdict: Verdict) -> dict[str, Any]:
    """A verdict as summary.json records it."""
    t = verdict.threshold
    return {"expression": t.text, "metric": t.metric, "operator": t.operator, "limit": t.limit, "unit": t.unit,
            "measured": verdict.measured, "measured_text": verdict.shown, "passed": verdict.passed,
            "text": verdict.text}
