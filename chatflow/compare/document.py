"""The comparison report's content as data: blocks (paragraphs, tables, code, lists, charts) in
sections, the figures formatted once, and the tables read from ``comparison.json``.

Markdown and the console (:mod:`chatflow.compare.markdown`) and HTML
(:mod:`chatflow.compare.html`) each render these blocks, so the three never disagree. The
schema is docs/comparison.md's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from chatflow.compare import aggregate
from chatflow.compare.aggregate import RATIOS

#: The figure's text where it was not measured or its run failed.
NA = "n/a"
#: The pairings' order in every table and chart: the baseline (other → other) first, then
#: each side swapped for Python's, then Python → Python.
CODE_ORDER = ("oo", "op", "po", "pp")
#: Each ratio's numerator over its denominator, should a JSON leave a ratio out.
RATIO_CODES = {side: (numerator, denominator) for side, (numerator, denominator, _) in RATIOS.items()}
#: The ratios' figures, in order, each with its column title.
RATIO_FIGURES = {"msg_s": "msg/s", "server_cpu_us_per_msg": "server CPU µs/msg",
                 "client_cpu_us_per_msg": "client CPU µs/msg"}
#: The chart files, named in the output directory, each with its title.
CHARTS = {
    "throughput": ("comparison_throughput.png", "Throughput over time"),
    "latency": ("comparison_latency_cdf.png", "Latency CDF"),
    "bars": ("comparison_bars.png", "msg/s and CPU per message"),
}
WHOLE_MS_MARK = "†"


# -- the content, as data ---------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A figure: its median, the min–max beside it ("" for none) and a mark (†), kept apart
    so that a renderer can place each without parsing text."""
    value: str
    range: str = ""
    mark: str = ""

    def __str__(self) -> str:
        return self.value + (f" ({self.range})" if self.range else "") + self.mark


#: A table's cell: a figure, or plain text shown as it is.
Text = Union[Cell, str]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Text, ...], ...]
    #: The rows' indices that stand for a failure, for the renderers to mark.
    failed: frozenset[int] = frozenset()
    #: How many leading columns are names (left-aligned), not figures.
    names: int = 1


@dataclass(frozen=True)
class Code:
    """Literal lines (the commands), shown as they are."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Items:
    """A list of one-line entries (the failures)."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    caption: str


Block = Union[str, Table, Code, Items, Chart]


@dataclass(frozen=True)
class Section:
    #: Empty for a section shown without a heading.
    title: str
    blocks: tuple[Block, ...]
    #: Long detail (every run): closed until opened in HTML, a plain section elsewhere.
    folded: bool = False


@dataclass(frozen=True)
class Document:
    title: str
    summary: str
    finding: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


# -- formatting --------------------------------------------------------------------------


def number(value: float | None, digits: int | None = None) -> str:
    """A figure with as many decimals as its size needs (13,850; 36.9; 2.41), or n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}"


def ratio_cell(figure: Mapping[str, float | None] | None) -> Cell:
    """``0.82×`` with ``0.74–0.94``: the median of the per-round ratios and their range."""
    if not figure or figure.get("median") is None:
        return Cell(NA)
    median = f"{figure['median']:.2f}"
    low, high = figure.get("min"), figure.get("max")
    ranged = low is not None and high is not None and (f"{low:.2f}" != median or f"{high:.2f}" != median)
    return Cell(f"{median}×", f"{low:.2f}–{high:.2f}" if ranged else "")


def ratio_text(figure: Mapping[str, float | None] | None) -> str:
    """``0.82× (0.74–0.94)``, or n/a."""
    return str(ratio_cell(figure))


def spread_cell(pairing: Mapping[str, Any] | None, key: str, digits: int | None = None, ranged: bool = True,
                mark: str = "") -> Cell:
    """A pairing's median over its rounds, with min–max where they differ (and ``ranged``)."""
    median, low, high = (((pairing or {}).get(part) or {}).get(key) for part in ("median", "min", "max"))
    spread = ""
    if ranged and median is not None and low is not None and high is not None:
        low_text, high_text = number(low, digits), number(high, digits)
        spread = f"{low_text}–{high_text}" if low_text != high_text else ""
    return Cell(number(median, digits), spread, mark)


# -- reading the JSON ----------------------------------------------------------------------


def codes_of(data: Mapping[str, Any]) -> list[str]:
    """The pairings of this comparison, in the tables' order."""
    present = data.get("codes") or {}
    return [c for c in CODE_ORDER if c in present] + [c for c in present if c not in CODE_ORDER]


def label(data: Mapping[str, Any], code: str) -> str:
    """``Python → Java``: the JSON's label, else made from the names for a code not run."""
    given = ((data.get("codes") or {}).get(code) or {}).get("label")
    if given:
        return given
    names = data.get("names") or {}
    sides = {"p": names.get("python", "Python"), "o": names.get("other", "other")}
    return " → ".join(sides.get(side, side) for side in code) if len(code) == 2 else code


def runs_of(data: Mapping[str, Any], code: str) -> list[Mapping[str, Any]]:
    return [run for run in data.get("runs") or [] if run.get("code") == code]


def ok_runs(data: Mapping[str, Any], code: str) -> list[Mapping[str, Any]]:
    """The pairing's runs that ended ok, the ones its figures are made of."""
    return aggregate.ok_runs(data.get("runs") or [], code)


def whole_ms(data: Mapping[str, Any], code: str) -> bool:
    """Whether a pairing's client wrote whole milliseconds (the Java client does)."""
    return any(((run.get("figures") or {}).get("latency_resolution_ms") or 0) >= 1 for run in ok_runs(data, code))


def representative(data: Mapping[str, Any], code: str) -> Mapping[str, Any] | None:
    """The pairing's ok run nearest its median msg/s (the lower of two on a tie): the one the
    charts draw bold."""
    runs = [r for r in ok_runs(data, code) if (r.get("figures") or {}).get("msg_s") is not None]
    if not runs:
        return None
    middle = statistics.median_low(r["figures"]["msg_s"] for r in runs)
    return next(r for r in runs if r["figures"]["msg_s"] == middle)


def ratio_codes(ratios: Mapping[str, Any], side: str) -> tuple[str, str]:
    """A ratio's numerator and denominator pairings, from the JSON or else the default."""
    entry = ratios.get(side) or {}
    default = RATIO_CODES[side]
    return entry.get("numerator") or default[0], entry.get("denominator") or default[1]


def not_compared(data: Mapping[str, Any], codes: Sequence[str]) -> str:
    """Why a ratio is missing: which of its pairings was not run or has no ok run."""
    only = (data.get("settings") or {}).get("only")
    reasons = []
    for code in dict.fromkeys(codes):
        if code not in (data.get("codes") or {}) or (only is not None and code not in only):
            reasons.append(f"{label(data, code)} was not run")
        elif not ok_runs(data, code):
            reasons.append(f"{label(data, code)} failed")
    return " and ".join(reasons) or "no round with both pairings ok"


# -- the tables ----------------------------------------------------------------------------


PAIRING_HEADER = ("client → server", "runs ok", "msg/s", "p50 ms", "p99 ms", "server CPU µs/msg",
                  "client CPU µs/msg", "client peak RSS MiB", "success / messages")


def pairing_table(data: Mapping[str, Any], ranged: bool = True) -> Table:
    """Per pairing, medians over its ok rounds (min–max beside each where ``ranged``, else
    beside msg/s only); latencies marked where the client writes whole ms."""
    rows: list[tuple[Text, ...]] = []
    failed = set()
    for code in codes_of(data):
        pairing = (data.get("pairings") or {}).get(code)
        runs = ok_runs(data, code)
        if not runs:
            failed.add(len(rows))
            rows.append((label(data, code), f"0/{len(runs_of(data, code))}", "failed", *[""] * 6))
            continue
        whole = whole_ms(data, code)
        mark = WHOLE_MS_MARK if whole else ""
        success = sum(r["figures"].get("success") or 0 for r in runs)
        messages = sum(r["figures"].get("messages") or 0 for r in runs)
        rows.append((label(data, code), f"{len(runs)}/{len(runs_of(data, code))}",
                     spread_cell(pairing, "msg_s", 0),
                     spread_cell(pairing, "p50_ms", _ms_digits(pairing, "p50_ms", whole), ranged, mark),
                     spread_cell(pairing, "p99_ms", _ms_digits(pairing, "p99_ms", whole), ranged, mark),
                     spread_cell(pairing, "server_cpu_us_per_msg", 1, ranged),
                     spread_cell(pairing, "client_cpu_us_per_msg", 1, ranged),
                     spread_cell(pairing, "client_peak_rss_mib", 0, ranged),
                     f"{success:,} / {messages:,}"))
    return Table(PAIRING_HEADER, tuple(rows), frozenset(failed))


def ms_digits(values: Sequence[float | None], whole: bool) -> int | None:
    """Whole-ms latencies without decimals (a median of two rounds may be half a ms); others
    as :func:`number` chooses."""
    if not whole:
        return None
    return 0 if all(v is None or float(v).is_integer() for v in values) else 1


def _ms_digits(pairing: Mapping[str, Any] | None, key: str, whole: bool) -> int | None:
    return ms_digits([((pairing or {}).get(part) or {}).get(key) for part in ("median", "min", "max")], whole)


def whole_ms_note(data: Mapping[str, Any]) -> str | None:
    clients = sorted({(data["codes"][c] or {}).get("client", c) for c in codes_of(data) if whole_ms(data, c)})
    if not clients:
        return None
    who = " and ".join(f"the {name} client" for name in clients)
    return (f"{WHOLE_MS_MARK} {who[0].upper()}{who[1:]} writes latencies in whole milliseconds: "
            "its percentiles are whole ms, not comparable below 1 ms.")


RATIO_SIDES = {"server": "server", "client": "client", "pair": "pair (both sides)"}


def ratio_table(data: Mapping[str, Any]) -> Table:
    """The three ratios, each the median of per-round ratios with their min–max."""
    ratios = data.get("ratios") or {}
    rows = []
    for side, title in RATIO_SIDES.items():
        entry = ratios.get(side) or {}
        numerator, denominator = ratio_codes(ratios, side)
        rows.append((title, f"{label(data, numerator)} ÷ {label(data, denominator)}",
                     *(ratio_cell(entry.get(key)) if key in entry else "" for key in RATIO_FIGURES)))
    return Table(("ratio", "numerator ÷ denominator", *RATIO_FIGURES.values()), tuple(rows), names=2)


RUN_HEADER = ("#", "pairing", "round", "ok", "msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
              "server µs/msg", "client µs/msg", "RSS MiB", "success / messages", "span s", "client wall s",
              "CSV / error")


def run_table(data: Mapping[str, Any]) -> Table:
    """Every run in the order it ran."""
    rows, failed = [], set()
    for run in sorted(data.get("runs") or [], key=lambda r: r.get("index", 0)):
        if not run.get("ok"):
            failed.add(len(rows))
        f = run.get("figures") or {}
        latency = f.get("latency_ms") or {}
        whole = (f.get("latency_resolution_ms") or 0) >= 1
        messages = f.get("messages")
        rows.append((
            str(run.get("index", "")), label(data, run.get("code", "")), str(run.get("round", "")),
            "yes" if run.get("ok") else "FAILED",
            number(f.get("msg_s"), 0),
            *(number(latency.get(k), ms_digits([latency.get(k)], whole)) for k in ("p50", "p95", "p99", "max")),
            number(f.get("server_cpu_us_per_msg"), 1), number(f.get("client_cpu_us_per_msg"), 1),
            number(f.get("client_peak_rss_mib"), 0),
            NA if messages is None else f"{f.get('success') or 0:,} / {messages:,}",
            number(f.get("span_s")), number(f.get("client_wall_s")),
            (run.get("csv") or "") if run.get("ok") else (run.get("error") or "failed")))
    return Table(RUN_HEADER, tuple(rows), frozenset(failed), names=2)


def failures(data: Mapping[str, Any]) -> list[str]:
    """One line per failed run: pairing, round, position and its one-line error."""
    return [f"{label(data, run.get('code', ''))}, round {run.get('round')} (run {run.get('index')}): "
            f"{run.get('error') or 'failed'}"
            for run in sorted(data.get("runs") or [], key=lambda r: r.get("index", 0)) if not run.get("ok")]


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_value, value))
    return str(value)


def pairs(mapping: Mapping[str, Any] | None) -> Table:
    """A mapping as a two-column table (the settings, the machine, the versions)."""
    return Table(("", ""), tuple((str(k).replace("_", " "), _value(v)) for k, v in (mapping or {}).items()), names=2)


def regime(settings: Mapping[str, Any]) -> str:
    rtt = settings.get("rtt_ms") or 0
    if not rtt:
        return "on loopback"
    jitter = settings.get("jitter_ms") or 0
    return f"through chatflow.wan at {rtt:g} ms round trip" + (f" ± {jitter:g} ms jitter" if jitter else "")


def summary(data: Mapping[str, Any]) -> str:
    """The experiment in one sentence: messages, phases, rounds, network, when."""
    s = data.get("settings") or {}
    return (f"{s.get('messages', 0):,} messages a run ({s.get('warmup_threads', '?')} × "
            f"{s.get('warmup_messages', 0):,} warmup, {s.get('threads', '?')} main threads), "
            f"{s.get('rounds', '?')} round{'' if s.get('rounds') == 1 else 's'} interleaved (ABBA), {regime(s)}; "
            f"{len(data.get('runs') or [])} runs, created {data.get('created', NA)}.")


def title(data: Mapping[str, Any]) -> str:
    names = data.get("names") or {}
    return (f"ChatFlow comparison: {names.get('python', 'Python')} and {names.get('other', 'other')}, "
            f"{regime(data.get('settings') or {})}")
