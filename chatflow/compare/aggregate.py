"""A comparison's runs summed up: each pairing's median and min–max over its rounds, and
the three ratios that judge one side with the other held fixed. Pure: runs in, figures out.

Only runs that ended ok count. A ratio is taken per round (the round's numerator run over
the same round's denominator run), then its median and min–max over the rounds where both
ran ok, so a drift between rounds cancels out of it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Run = Mapping[str, Any]

#: The figures of a pairing's summary, each read from a run's ``figures``.
PAIRING_FIGURES: dict[str, Callable[[Mapping[str, Any]], float | None]] = {
    "msg_s": lambda f: f.get("msg_s"),
    "p50_ms": lambda f: (f.get("latency_ms") or {}).get("p50"),
    "p99_ms": lambda f: (f.get("latency_ms") or {}).get("p99"),
    "server_cpu_us_per_msg": lambda f: f.get("server_cpu_us_per_msg"),
    "client_cpu_us_per_msg": lambda f: f.get("client_cpu_us_per_msg"),
    "client_peak_rss_mib": lambda f: f.get("client_peak_rss_mib"),
    "success_ratio": lambda f: f.get("success_ratio"),
}

#: Each ratio: which pairing over which, and the figures it compares.
RATIOS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # The Python server against the other's, both under the other's client.
    "server": ("op", "oo", ("msg_s", "server_cpu_us_per_msg")),
    # The Python client against the other's, both against the other's server.
    "client": ("po", "oo", ("msg_s", "client_cpu_us_per_msg")),
    # Python through and through against the other through and through.
    "pair": ("pp", "oo", ("msg_s", "server_cpu_us_per_msg", "client_cpu_us_per_msg")),
}


def spread(values: Iterable[float | None]) -> dict[str, float | None]:
    """Median, min and max of the values that are there; all None when none is."""
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(present), "min": min(present), "max": max(present)}


def ok_runs(runs: Sequence[Run], code: str) -> list[Run]:
    return [run for run in runs if run["code"] == code and run["ok"]]


def pairing_summary(runs: Sequence[Run], code: str) -> dict[str, Any]:
    """``runs``, ``ok_runs`` and, per figure of ``PAIRING_FIGURES``, median / min / max."""
    good = ok_runs(runs, code)
    spreads = {name: spread(read(run["figures"]) for run in good) for name, read in PAIRING_FIGURES.items()}
    return {"runs": sum(run["code"] == code for run in runs), "ok_runs": len(good),
            **{key: {name: figures[key] for name, figures in spreads.items()} for key in ("median", "min", "max")}}


def pairings(runs: Sequence[Run], codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """:func:`pairing_summary` of each code."""
    return {code: pairing_summary(runs, code) for code in codes}


def round_ratios(runs: Sequence[Run], numerator: str, denominator: str, figure: str) -> list[float]:
    """Per round where both ran ok and both have ``figure`` (not 0 below): numerator / denominator."""
    by_round = {(run["code"], run["round"]): run["figures"] for run in runs if run["ok"]}
    ratios = []
    for (code, round_number), top in sorted(by_round.items(), key=lambda item: item[0][1]):
        bottom = by_round.get((denominator, round_number))
        if code != numerator or bottom is None:
            continue
        a, b = top.get(figure), bottom.get(figure)
        if a is not None and b:
            ratios.append(a / b)
    return ratios


def ratios(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """The server, client and pair ratios; a figure's spread is all None where no round had both."""
    return {name: {"numerator": numerator, "denominator": denominator,
                   **{figure: spread(round_ratios(runs, numerator, denominator, figure)) for figure in figures}}
            for name, (numerator, denominator, figures) in RATIOS.items()}
