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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatflow.analysis.performance_analyzer import AnalysisResult, FanoutFigures, LatencyStats

NA = "n/a"
CHART_TITLES = {
    "throughput": "Throughput over time",
    "latency": "Latency distribution",
    "rooms": "Messages per room",
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
                 charts: Mapping[str, str | Path] | None = None) -> ReportFiles:
    """Write both files; chart paths are stored relative to ``directory`` so the report can move."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    relative = {name: Path(os.path.relpath(path, directory)).as_posix() for name, path in (charts or {}).items()}
    markdown = directory / f"{stem}_report.md"
    markdown.write_text(_markdown(analysis, run, relative), encoding="utf-8")
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


def _cell(value: Any) -> str:
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
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _image(title: str, path: str) -> str:
    target = f"<{path}>" if any(c in path for c in " ()<>") else path
    return f"![{title}]({target})\n"


def _run_sections(run: Mapping[str, Any]) -> list[str]:
    """Scalars in one table; each mapping its own table; a list of mappings one row each."""
    lines = ["## Run", ""]
    scalars = [[_cell(k), _cell(v)] for k, v in run.items() if not isinstance(v, (Mapping, list, tuple))]
    if scalars:
        lines += _table(["Figure", "Value"], scalars)
    for key, value in run.items():
        title = f"### {str(key).replace('_', ' ').capitalize()}"
        if isinstance(value, Mapping):
            lines += [title, ""] + _table(["Figure", "Value"], [[_cell(k), _cell(v)] for k, v in value.items()])
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            columns = list(dict.fromkeys(k for item in value for k in item))
            lines += [title, ""] + _table([_cell(c) for c in columns],
                                          [[_cell(item.get(c)) for c in columns] for item in value])
        elif isinstance(value, (list, tuple)):
            lines += [title, ""] + [f"- {_cell(v)}" for v in value] + [""]
    return lines


def _fanout_section(f: FanoutFigures) -> list[str]:
    """The broadcast scenario's columns (docs/analysis.md#the-broadcast-scenarios-columns)."""
    lines = ["## Fan-out (broadcast scenario)", ""]
    lines += _table(["Figure", "Value"], [
        ["Room members (largest deliveries of a message)", f"{f.members:,}"],
        ["Successful messages", f"{f.messages:,}"],
        ["Deliveries expected (members × messages)", f"{f.expected:,}"],
        ["Deliveries received", f"{f.deliveries:,}"],
        ["Deliveries missing", f"{f.missing:,}"],
        ["Messages that reached every member", f"{f.complete:,}"],
        ["Messages that did not", f"{f.incomplete:,}"],
    ])
    lines += ["Send → the last member (ms), over the messages that reached every member:", ""]
    lines += _table(["Count", "Mean", "Median", "p95", "p99", "Min", "Max"],
                    [[f"{f.last_member_latency_ms.count:,}"] + latency_cells(f.last_member_latency_ms)])
    lines += ["Each member's latency is in the run's figures above (`fanout_each_member_latency`), when the "
              "report was written by the run itself: one row a message cannot hold it.", ""]
    return lines


def _markdown(analysis: AnalysisResult, run: Mapping[str, Any] | None, charts: Mapping[str, str]) -> str:
    a = analysis
    name = Path(a.source).name
    messages_are = "rows with final = 1" if a.has_final_column else "every row (no final column)"
    lines = [f"# ChatFlow metrics report: {name}", ""]
    lines += _table(["Figure", "Value"], [
        ["Source", f"`{_cell(name)}`"],
        ["Rows read", f"{a.rows:,}"],
        ["Malformed rows skipped", f"{a.malformed_rows:,}"],
        ["Messages", f"{a.messages:,} ({messages_are})"],
        ["Retried attempts", f"{a.retried_attempts:,}"],
        ["Successful", f"{a.successes:,}"],
        ["Failed", f"{a.failures:,}"],
        ["Run span", NA if a.span_s is None else f"{a.span_s:,.3f} s (first send → last completion)"],
        ["Throughput", f"{format_rate(a.throughput_per_s)} msg/s (successful messages / run span)"],
    ])
    if run:
        lines += _run_sections(run)

    lines += ["## Outcomes", ""]
    lines += _table(["Status", "Messages", "%"],
                    [[_cell(s), f"{n:,}", format_percent(n, a.messages)] for s, n in a.status_counts.items()])
    if a.retried_by_status:
        lines += ["Retried attempts (not counted as messages):", ""]
        lines += _table(["Status", "Attempts"], [[_cell(s), f"{n:,}"] for s, n in a.retried_by_status.items()])

    lines += ["## Latency of successful messages (ms)", ""]
    lines += _table(["Count", "Mean", "Median", "p95", "p99", "Min", "Max"],
                    [[f"{a.latency_ms.count:,}"] + latency_cells(a.latency_ms)])
    lines += [f"Percentiles: {a.percentile_method}, over every successful message.", ""]

    lines += ["## Message types", ""]
    lines += _table(["Type", "Messages", "%", "Successful", "Failed", "msg/s",
                     "Mean ms", "Median ms", "p95 ms", "p99 ms", "Min ms", "Max ms"],
                    [[_cell(t.message_type), f"{t.messages:,}", f"{t.percent:.2f}", f"{t.successes:,}",
                      f"{t.failures:,}", format_rate(t.throughput_per_s)] + latency_cells(t.latency_ms)
                     for t in a.message_types])

    lines += [f"## Throughput over time ({a.bucket_seconds:g} s buckets)", ""]
    if "throughput" in charts:
        lines += [_image(CHART_TITLES["throughput"], charts["throughput"])]
    lines += _table(["From (s)", "To (s)", "Successful", "msg/s"],
                    [[f"{b.start_s:,.3f}", f"{b.end_s:,.3f}", f"{b.successes:,}", format_rate(b.throughput_per_s)]
                     for b in a.buckets])
    lines += ["A successful message counts in the bucket where it completed (send time + latency); "
              "the last bucket ends at the last completion and is divided by its real length.", ""]

    if a.fanout is not None:
        lines += _fanout_section(a.fanout)

    lines += ["## Rooms", ""]
    if "rooms" in charts:
        lines += [_image(CHART_TITLES["rooms"], charts["rooms"])]
    lines += _table(["Room", "Messages", "Successful", "Failed", "msg/s"],
                    [[str(r.room_id), f"{r.messages:,}", f"{r.successes:,}", f"{r.failures:,}",
                      format_rate(r.throughput_per_s)] for r in a.rooms])
    lines += ["A room's msg/s is its successful messages over the whole run's span.", ""]

    lines += ["## Latency distribution", ""]
    if "latency" in charts:
        lines += [_image(CHART_TITLES["latency"], charts["latency"])]
    if a.latency_histogram.zero_count:
        lines += [f"{a.latency_histogram.zero_count:,} successful messages have a latency of 0 ms "
                  "(a 1 ms clock); a log axis cannot show them.", ""]
    others = {title: path for title, path in charts.items() if title not in CHART_TITLES}
    if others:
        lines += ["## Other charts", ""] + [_image(title, path) for title, path in others.items()]
    return "\n".join(lines)
