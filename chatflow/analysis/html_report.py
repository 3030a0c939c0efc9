"""``<stem>_report.html`` beside the Markdown report, and one page for several runs side by side.

The tables are :mod:`chatflow.analysis.report`'s (the same figures as the Markdown), the
charts the PNGs :class:`~chatflow.analysis.throughput_visualizer.ThroughputVisualizer` drew,
embedded; the page skeleton, style and escaping are :mod:`chatflow.html_page`'s. Nothing is
computed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chatflow.analysis.performance_analyzer import AnalysisResult
from chatflow.analysis.report import (BUCKETS_NOTE, CHART_TITLES, ROOMS_NOTE, TableData, Threshold, bucket_table,
                                      comparison_table, fanout_table, latency_table, outcome_table, retried_table,
                                      RESPONSE_NOTE, room_table, run_tables, summary_table, threshold_table,
                                      type_table, zero_note)
from chatflow.html_page import BASE_STYLE, figure_html, page, table_html, text_html

STYLE = BASE_STYLE + """
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 0 1rem; }
table[id^="thresholds"] tbody tr:not(.failed) td:nth-child(2) { color: #1a7f37; }
"""

CHART_CAPTIONS = {
    "throughput": "Successful messages per second in each bucket (completion time); the dashed line is the "
                  "run's average. The dotted line, when the client's phase times are known, marks where the "
                  "main phase starts.",
    "latency": "Histogram on a log axis, 10 bins a decade; the median, p95 and p99 marked.",
    "latency_cdf": "Share of successful messages at or under each latency, from the histogram's bins.",
    "rooms": "Messages per room, successful and failed stacked.",
}


def _table(data: TableData, table_id: str | None = None) -> str:
    """A table, with an id a reader (or a test) can find it by."""
    return table_html(*data, table_id=table_id)


def _lead(text: str) -> str:
    return f'<p class="summary">{text_html(text)}</p>'


def _h2(title: str) -> str:
    return f"<h2>{text_html(title)}</h2>"


def _p(text: str) -> str:
    return f"<p>{text_html(text)}</p>"


def _chart(charts: Mapping[str, Path], name: str) -> str:
    return figure_html(charts[name], CHART_TITLES[name], CHART_CAPTIONS[name]) if name in charts else ""


def thresholds_html(thresholds: Sequence[Threshold] | None, title: str = "Thresholds",
                    table_id: str = "thresholds") -> str:
    """A "Thresholds" section, or nothing when the run had none."""
    if not thresholds:
        return ""
    (header, rows), failed, verdict = threshold_table(thresholds)
    return _h2(title) + _p(verdict) + table_html(header, rows, failed=failed, table_id=table_id)


def _run_figures(run: Mapping[str, Any]) -> str:
    parts = [_h2("Run (the client's figures)")]
    for title, header, rows in run_tables(run):
        if title:
            parts.append(f"<h3>{text_html(title)}</h3>")
        if header:
            parts.append(table_html(header, rows))
        else:
            parts.append("<ul>" + "".join(f"<li>{text_html(row[0])}</li>" for row in rows) + "</ul>")
    return "".join(parts)


def render_run(analysis: AnalysisResult, charts: Mapping[str, Path], run: Mapping[str, Any] | None = None,
               thresholds: Sequence[Threshold] | None = None, boundary_s: float | None = None) -> str:
    """One run's page: the Markdown report's tables and every chart embedded."""
    a = analysis
    name = Path(a.source).name
    started = _started(a)
    boundary = (f"Warmup → main boundary at {boundary_s:,.3f} s from the first send (the client's warmup "
                "duration, which also holds its connection set-up)." if boundary_s is not None else
                "Warmup → main boundary not marked: the CSV alone does not say which phase a row belongs to.")
    parts = [_h2("Summary"), _table(summary_table(a), "summary"), thresholds_html(thresholds)]
    parts += [_h2("Outcomes"), _table(outcome_table(a), "outcomes")]
    if a.retried_by_status:
        parts += [_p("Retried attempts (not counted as messages):"), _table(retried_table(a))]
    parts += [_h2("Latency of successful messages (ms)"), _table(latency_table(a.latency_ms), "latency"),
              _p(f"Percentiles: {a.percentile_method}, over every successful message.")]
    if a.response_time_ms is not None:
        parts += [_h2("Response time of successful messages (ms)"),
                  _table(latency_table(a.response_time_ms), "response-time"), _p(RESPONSE_NOTE)]
    parts += [_h2("Message types"), _table(type_table(a), "types")]
    parts += [_h2(f"Throughput over time ({a.bucket_seconds:g} s buckets)"), _chart(charts, "throughput"),
              _p(boundary), _table(bucket_table(a), "buckets"), _p(BUCKETS_NOTE)]
    parts += [_h2("Latency distribution"), '<div class="charts">', _chart(charts, "latency"),
              _chart(charts, "latency_cdf"), "</div>"]
    if a.latency_histogram.zero_count:
        parts.append(_p(zero_note(a)))
    if a.fanout is not None:
        parts += [_h2("Fan-out (broadcast scenario)"), _table(fanout_table(a.fanout), "fanout"),
                  _p("Send → the last member (ms), over the messages that reached every member:"),
                  _table(latency_table(a.fanout.last_member_latency_ms))]
    parts += [_h2("Rooms"), _chart(charts, "rooms"), _table(room_table(a), "rooms"), _p(ROOMS_NOTE)]
    if run:
        parts.append(_run_figures(run))
    return page(f"ChatFlow metrics report: {name}", _lead(started) + "".join(parts), STYLE)


def _started(a: AnalysisResult) -> str:
    if a.first_timestamp_ms is None:
        return "No valid row."
    when = datetime.fromtimestamp(a.first_timestamp_ms / 1000, tz=timezone.utc)
    return f"First message sent {when:%Y-%m-%d %H:%M:%S} UTC; {a.messages:,} messages."


def render_runs(labels: Sequence[str], analyses: Sequence[AnalysisResult], charts: Mapping[str, Path],
                run_charts: Sequence[Mapping[str, Path]],
                thresholds: Sequence[Sequence[Threshold] | None] | None = None) -> str:
    """Several runs on one page: a column per run, the curves overlaid, each run's charts side by side."""
    parts = [_h2("The runs side by side"), _table(comparison_table(labels, analyses), "runs"),
             _p(f"Latencies of successful messages; percentiles by {analyses[0].percentile_method}.")]
    parts += [thresholds_html(judged, f"Thresholds: {label}", f"thresholds-{i}")
              for i, (label, judged) in enumerate(zip(labels, thresholds or []))]
    parts += [_h2("Throughput over time, overlaid")]
    if "throughput" in charts:
        parts.append(figure_html(charts["throughput"], "Throughput over time, every run",
                            "Each run's curve from its own first send."))
    parts += [_h2("Latency CDF, overlaid")]
    if "latency_cdf" in charts:
        parts.append(figure_html(charts["latency_cdf"], "Latency CDF, every run", CHART_CAPTIONS["latency_cdf"]))
    for name in ("latency", "rooms"):
        parts += [_h2(f"{CHART_TITLES[name]}, each run"), '<div class="charts">']
        parts += [figure_html(drawn[name], f"{CHART_TITLES[name]}: {label}", label)
                  for label, drawn in zip(labels, run_charts) if name in drawn]
        parts.append("</div>")
    return page(f"ChatFlow metrics: {len(analyses)} runs compared", _lead(", ".join(labels)) + "".join(parts),
                STYLE)


def write_html(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
