"""The written report of a run: ``<stem>_report.md`` for people, ``<stem>_report.json`` for tools.

The client's own figures (Part 1 summary, Little's Law) arrive as an optional ``run``
mapping and are rendered generically, whatever its keys, so the client can add figures
without touching this module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatflow.analysis.performance_analyzer import AnalysisResult, FanoutFigures, LatencyStats

NA = "n/a"
CHART_TITLES = {
    "throughput": "Throughput over time",
    "latency": "Latency distribution",
    "rooms": "Messages per room",
    "latency_cdf": "Latency CDF",
}


def format_ms(value: float | None) -> str:
    return NA if value is None else f"{value:,.3f}"


def format_rate(value: float | None) -> str:
    return NA if value is None else f"{value:,.1f}"


def format_percent(part: int, whole: int) -> str:
    return NA if not whole else f"{100.0 * part / whole:.2f}"


def latency_cells(stats: LatencyStats) -> list[str]:
    """Mean, median, p95, p99, min, max in the order every table uses."""
    return [format_ms(v) for v in (stats.mean, stats.median, stats.p95, stats.p99, stats.min, stats.max)]


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    json: Path


def write_report(directory: str | Path, stem: str, analysis: AnalysisResult,
                 run: Mapping[str, Any] | None = None,
                 charts: Mapping[str, str | Path] | None = None,
                 thresholds: Sequence[Threshold] | None = None) -> ReportFiles:
    """Write both files; chart paths are stored relative to ``directory`` so the report can move."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    relative = {name: Path(os.path.relpath(path, directory)).as_posix() for name, path in (charts or {}).items()}
    markdown = directory / f"{stem}_report.md"
    markdown.write_text(_markdown(analysis, run, relative, thresholds), encoding="utf-8")
    document = {"analysis": analysis.to_dict(), "run": _jsonable(run), "charts": relative}
    json_path = directory / f"{stem}_report.json"
    json_path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return ReportFiles(markdown, json_path)


def _jsonable(value: Any) -> Any:
    """Strict JSON: NaN and infinity become null; anything unknown becomes its text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


# -- Markdown -------------------------------------------------------------------------


def plain_cell(value: Any) -> str:
    """A figure as text, for any page: yes/no, thousands separators, n/a for none."""
    value = _jsonable(value)
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:.6g}"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"))
    return str(value)


def _cell(value: Any) -> str:
    return _md_escape(plain_cell(value))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


#: A table as texts, shown by any page: its header and its rows.
TableData = tuple[list[str], list[list[str]]]
#: A titled table of the client's run figures; an empty header is a plain list of values.
RunTable = tuple[str, list[str], list[list[str]]]
LATENCY_HEADER = ["Count", "Mean", "Median", "p95", "p99", "Min", "Max"]
BUCKETS_NOTE = ("A successful message counts in the bucket where it completed (send time + latency); "
                "the last bucket ends at the last completion and is divided by its real length.")
ROOMS_NOTE = "A room's msg/s is its successful messages over the whole run's span."
#: A threshold's outcome as the run judged it (its summary.json): its expression, whether
#: it passed, the figure measured.
Threshold = tuple[str, bool, str]


def threshold_table(thresholds: Sequence[Threshold]) -> tuple[TableData, frozenset[int], str]:
    """The thresholds' table, the indices of the rows that failed, and the sentence above it."""
    rows = [[expression, "passed" if passed else "FAILED", measured] for expression, passed, measured in thresholds]
    failed = frozenset(i for i, (_, passed, _) in enumerate(thresholds) if not passed)
    verdict = f"{len(failed)} of {len(rows)} thresholds failed." if failed else f"All {len(rows)} thresholds passed."
    return (["Threshold", "Result", "Measured"], rows), failed, verdict


def summary_table(a: AnalysisResult) -> TableData:
    """The report's first table: what was read and the run's overall figures."""
    messages_are = "rows with final = 1" if a.has_final_column else "every row (no final column)"
    return ["Figure", "Value"], [
        ["Source", Path(a.source).name],
        ["Rows read", f"{a.rows:,}"],
        ["Malformed rows skipped", f"{a.malformed_rows:,}"],
        ["Messages", f"{a.messages:,} ({messages_are})"],
        ["Retried attempts", f"{a.retried_attempts:,}"],
        ["Successful", f"{a.successes:,}"],
        ["Failed", f"{a.failures:,}"],
        ["Run span", NA if a.span_s is None else f"{a.span_s:,.3f} s (first send → last completion)"],
        ["Throughput", f"{format_rate(a.throughput_per_s)} msg/s (successful messages / run span)"],
    ]


def outcome_table(a: AnalysisResult) -> TableData:
    return ["Status", "Messages", "%"], [[s, f"{n:,}", format_percent(n, a.messages)]
                                         for s, n in a.status_counts.items()]


def retried_table(a: AnalysisResult) -> TableData:
    return ["Status", "Attempts"], [[s, f"{n:,}"] for s, n in a.retried_by_status.items()]


def latency_table(stats: LatencyStats) -> TableData:
    return list(LATENCY_HEADER), [[f"{stats.count:,}"] + latency_cells(stats)]


def type_table(a: AnalysisResult) -> TableData:
    return (["Type", "Messages", "%", "Successful", "Failed", "msg/s",
             "Mean ms", "Median ms", "p95 ms", "p99 ms", "Min ms", "Max ms"],
            [[t.message_type, f"{t.messages:,}", f"{t.percent:.2f}", f"{t.successes:,}",
              f"{t.failures:,}", format_rate(t.throughput_per_s)] + latency_cells(t.latency_ms)
             for t in a.message_types])


def bucket_table(a: AnalysisResult) -> TableData:
    return (["From (s)", "To (s)", "Successful", "msg/s"],
            [[f"{b.start_s:,.3f}", f"{b.end_s:,.3f}", f"{b.successes:,}", format_rate(b.throughput_per_s)]
             for b in a.buckets])


def room_table(a: AnalysisResult) -> TableData:
    """The Java original's per-room table: each room's messages and throughput."""
    return (["Room", "Messages", "Successful", "Failed", "msg/s"],
            [[str(r.room_id), f"{r.messages:,}", f"{r.successes:,}", f"{r.failures:,}",
              format_rate(r.throughput_per_s)] for r in a.rooms])


def fanout_table(f: FanoutFigures) -> TableData:
    """The broadcast scenario's columns (docs/analysis.md#the-broadcast-scenarios-columns)."""
    return ["Figure", "Value"], [
        ["Room members (largest deliveries of a message)", f"{f.members:,}"],
        ["Successful messages", f"{f.messages:,}"],
        ["Deliveries expected (members × messages)", f"{f.expected:,}"],
        ["Deliveries received", f"{f.deliveries:,}"],
        ["Deliveries missing", f"{f.missing:,}"],
        ["Messages that reached every member", f"{f.complete:,}"],
        ["Messages that did not", f"{f.incomplete:,}"],
    ]


def run_tables(run: Mapping[str, Any]) -> list[RunTable]:
    """Scalars in one table; each mapping its own table; a list of mappings one row each."""
    tables: list[RunTable] = []
    scalars = [[plain_cell(k), plain_cell(v)] for k, v in run.items() if not isinstance(v, (Mapping, list, tuple))]
    if scalars:
        tables.append(("", ["Figure", "Value"], scalars))
    for key, value in run.items():
        title = str(key).replace("_", " ").capitalize()
        if isinstance(value, Mapping):
            tables.append((title, ["Figure", "Value"], [[plain_cell(k), plain_cell(v)] for k, v in value.items()]))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            columns = list(dict.fromkeys(k for item in value for k in item))
            tables.append((title, [plain_cell(c) for c in columns],
                           [[plain_cell(item.get(c)) for c in columns] for item in value]))
        elif isinstance(value, (list, tuple)):
            tables.append((title, [], [[plain_cell(v)] for v in value]))
    return tables


def comparison_table(labels: Sequence[str], analyses: Sequence[AnalysisResult]) -> TableData:
    """Several runs: one row per figure, one column per run."""
    def peak(a: AnalysisResult) -> str:
        return format_rate(max((b.throughput_per_s for b in a.buckets if b.throughput_per_s is not None),
                               default=None))

    def share(message_type: str):
        def percent(a: AnalysisResult) -> str:
            found = [t for t in a.message_types if t.message_type == message_type]
            return f"{found[0].percent:.2f}" if found else "0.00"
        return percent

    figures = [
        ("Rows read", lambda a: f"{a.rows:,}"),
        ("Malformed rows skipped", lambda a: f"{a.malformed_rows:,}"),
        ("Messages", lambda a: f"{a.messages:,}"),
        ("Retried attempts", lambda a: f"{a.retried_attempts:,}"),
        ("Successful", lambda a: f"{a.successes:,}"),
        ("Failed", lambda a: f"{a.failures:,}"),
        ("Success %", lambda a: format_percent(a.successes, a.messages)),
        ("Latency mean (ms)", lambda a: format_ms(a.latency_ms.mean)),
        ("Latency median (ms)", lambda a: format_ms(a.latency_ms.median)),
        ("Latency p95 (ms)", lambda a: format_ms(a.latency_ms.p95)),
        ("Latency p99 (ms)", lambda a: format_ms(a.latency_ms.p99)),
        ("Latency min (ms)", lambda a: format_ms(a.latency_ms.min)),
        ("Latency max (ms)", lambda a: format_ms(a.latency_ms.max)),
        ("Run span (s)", lambda a: "n/a" if a.span_s is None else f"{a.span_s:,.3f}"),
        ("Throughput (msg/s)", lambda a: format_rate(a.throughput_per_s)),
        ("Peak bucket (msg/s)", peak),
        ("Rooms", lambda a: f"{len(a.rooms):,}"),
    ]
    if any(a.response_time_ms is not None for a in analyses):
        after = [name for name, _ in figures].index("Latency max (ms)") + 1
        figures[after:after] = [(f"Response time {name} (ms)", lambda a, name=name: "n/a" if a.response_time_ms is None
                           else format_ms(getattr(a.response_time_ms, name))) for name in ("median", "p99", "max")]
    types = dict.fromkeys(t.message_type for a in analyses for t in a.message_types)
    figures += [(f"{t} % of messages", share(t)) for t in types]
    return ["Figure", *labels], [[name] + [figure(a) for a in analyses] for name, figure in figures]


def phase_boundary_s(run: Mapping[str, Any] | None) -> float | None:
    """Where the main phase starts, in s from the first send, from the client's run figures.

    The warmup's duration as the client timed it: it also holds the warmup's connection
    set-up before its first send, so the mark may be late by that much. None without a
    warmup and a main phase (a CSV alone does not say which phase a row belongs to).
    """
    summary = (run or {}).get("summary")
    if not isinstance(summary, Mapping):
        return None
    warmup, main = summary.get("warmup_duration_s"), summary.get("main_duration_s")
    if not isinstance(warmup, (int, float)) or not isinstance(main, (int, float)) or warmup <= 0:
        return None
    return float(warmup)


# -- Markdown -------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _escaped(data: TableData) -> list[str]:
    header, rows = data
    return _table([_md_escape(c) for c in header], [[_md_escape(c) for c in row] for row in rows])


def _image(title: str, path: str) -> str:
    target = f"<{path}>" if any(c in path for c in " ()<>") else path
    return f"![{title}]({target})\n"


def _run_sections(run: Mapping[str, Any]) -> list[str]:
    lines = ["## Run", ""]
    for title, header, rows in run_tables(run):
        if title:
            lines += [f"### {title}", ""]
        if header:
            lines += _escaped((header, rows))
        else:
            lines += [f"- {_md_escape(row[0])}" for row in rows] + [""]
    return lines


def _fanout_section(f: FanoutFigures) -> list[str]:
    lines = ["## Fan-out (broadcast scenario)", ""]
    lines += _escaped(fanout_table(f))
    lines += ["Send → the last member (ms), over the messages that reached every member:", ""]
    lines += _escaped(latency_table(f.last_member_latency_ms))
    lines += [FANOUT_NOTE, ""]
    return lines


FANOUT_NOTE = ("Each member's latency is in the run's figures above (`fanout_each_member_latency`), when the "
               "report was written by the run itself: one row a message cannot hold it.")


def _markdown(analysis: AnalysisResult, run: Mapping[str, Any] | None, charts: Mapping[str, str],
              thresholds: Sequence[Threshold] | None = None) -> str:
    a = analysis
    name = Path(a.source).name
    lines = [f"# ChatFlow metrics report: {name}", ""]
    header, rows = summary_table(a)
    rows[0][1] = f"`{name}`"
    lines += _escaped((header, rows))
    if thresholds:
        table, _, verdict = threshold_table(thresholds)
        lines += ["## Thresholds", "", verdict, ""] + _escaped(table)
    if run:
        lines += _run_sections(run)

    lines += ["## Outcomes", ""]
    lines += _escaped(outcome_table(a))
    if a.retried_by_status:
        lines += ["Retried attempts (not counted as messages):", ""]
        lines += _escaped(retried_table(a))

    lines += ["## Latency of successful messages (ms)", ""]
    lines += _escaped(latency_table(a.latency_ms))
    lines += [f"Percentiles: {a.percentile_method}, over every successful message.", ""]
    if a.response_time_ms is not None:
        lines += ["## Response time of successful messages (ms)", ""]
        lines += _escaped(latency_table(a.response_time_ms))
        lines += [RESPONSE_NOTE, ""]

    lines += ["## Message types", ""]
    lines += _escaped(type_table(a))

    lines += [f"## Throughput over time ({a.bucket_seconds:g} s buckets)", ""]
    if "throughput" in charts:
        lines += [_image(CHART_TITLES["throughput"], charts["throughput"])]
    lines += _escaped(bucket_table(a))
    lines += [BUCKETS_NOTE, ""]

    if a.fanout is not None:
        lines += _fanout_section(a.fanout)

    lines += ["## Rooms", ""]
    if "rooms" in charts:
        lines += [_image(CHART_TITLES["rooms"], charts["rooms"])]
    lines += _escaped(room_table(a))
    lines += [ROOMS_NOTE, ""]

    lines += ["## Latency distribution", ""]
    for chart in ("latency", "latency_cdf"):
        if chart in charts:
            lines += [_image(CHART_TITLES[chart], charts[chart])]
    if a.latency_histogram.zero_count:
        lines += [zero_note(a), ""]
    others = {title: path for title, path in charts.items() if title not in CHART_TITLES}
    if others:
        lines += ["## Other charts", ""] + [_image(title, path) for title, path in others.items()]
    return "\n".join(lines)


RESPONSE_NOTE = ("An open loop (--rate): each message's response time runs from its intended send time on the "
                 "schedule to its reply (what a user who meant to send it then waits); the latency above is its "
                 "service time, from its actual send. They part when messages were sent late "
                 "(docs/client.md#open-loop---rate).")


def zero_note(a: AnalysisResult) -> str:
    return (f"{a.latency_histogram.zero_count:,} successful messages have a latency of 0 ms "
            "(a 1 ms clock); a log axis cannot show them.")
