"""``chatflow-analysis`` / ``python -m chatflow.analysis``: analyse existing metrics CSVs.

One file: a statistics table per message type, outcomes, throughput. Several files:
the same figures side by side, one column per file, and their throughput curves on
one chart. Either way the charts and a report per file are written next to the first
CSV (or ``--output-dir``). Bad input is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chatflow.arguments import seconds
from chatflow.analysis.performance_analyzer import (DEFAULT_BUCKET_SECONDS, MIN_BUCKET_SECONDS, AnalysisError,
                                                    AnalysisResult, LatencyStats, PerformanceAnalyzer)
from chatflow.analysis.report import format_ms, format_percent, format_rate, latency_cells, write_report
from chatflow.analysis.throughput_visualizer import ThroughputVisualizer

PROG = "chatflow-analysis"
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Statistics, charts and a report from ChatFlow (or Java client) per-message metrics CSVs. "
                    "With several files, their figures side by side and throughput curves on one chart.",
    )
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE.csv", help="metrics CSV file(s)")
    parser.add_argument("--bucket-seconds", type=seconds(MIN_BUCKET_SECONDS, allow_minimum=True), default=DEFAULT_BUCKET_SECONDS,
                        help="length of a throughput-over-time bucket (default %(default)g)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where charts and reports go (default: the first CSV's directory)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        analyzer = PerformanceAnalyzer(args.bucket_seconds)
        analyses = [analyzer.analyze(path) for path in args.files]
        stems = unique_stems(args.files)
        print(side_by_side(stems, analyses) if len(analyses) > 1 else statistics_table(analyses[0]))
        directory = args.output_dir or args.files[0].parent
        written = [path for stem, analysis in zip(stems, analyses)
                   for path in write_outputs(analysis, directory, stem)]
        if len(analyses) > 1:
            written.append(ThroughputVisualizer().comparison_chart(
                list(zip(stems, analyses)), Path(directory) / f"{stems[0]}_comparison_throughput.png"))
    except AnalysisError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"{PROG}: error: cannot write {exc.filename or 'the output'}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\nFiles written:")
    for path in written:
        print(f"  {path}")
    return EXIT_OK


def write_outputs(analysis: AnalysisResult, directory: str | Path, stem: str,
                  run: Mapping[str, Any] | None = None) -> list[Path]:
    """One run's three charts and its report (Markdown and JSON); returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    charts = ThroughputVisualizer().charts(analysis, directory, stem)
    report = write_report(directory, stem, analysis, run=run, charts=charts)
    return [report.markdown, report.json, *charts.values()]


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made distinct (``run``, ``run_2``) so two runs never overwrite each other's charts."""
    stems: list[str] = []
    for path in paths:
        stem, n = path.stem, 1
        while stem in stems:
            n += 1
            stem = f"{path.stem}_{n}"
        stems.append(stem)
    return stems


# -- terminal tables ------------------------------------------------------------------

_STATS_HEADER = ("Type", "# msgs", "# fails", "fail %", "Avg ms", "Med ms", "p95 ms", "p99 ms",
                 "Min ms", "Max ms", "msg/s")


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """First column left-aligned, the figures right-aligned, like locust's stats table."""
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


def _aligned(header: Sequence[str], rows: list[list[str]], total: list[str] | None = None) -> list[str]:
    widths = [max(len(r[i]) for r in [list(header), *rows, *([total] if total else [])])
              for i in range(len(header))]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [_row(header, widths), rule] + [_row(r, widths) for r in rows]
    if total:
        lines += [rule, _row(total, widths)]
    return lines


def _stats_cells(label: str, messages: int, failures: int, stats: LatencyStats,
                 rate: float | None) -> list[str]:
    mean, median, p95, p99, low, high = latency_cells(stats)
    return [label, f"{messages:,}", f"{failures:,}", format_percent(failures, messages),
            mean, median, p95, p99, low, high, format_rate(rate)]


def _bucket_summary(analysis: AnalysisResult) -> str:
    rates = [b.throughput_per_s for b in analysis.buckets if b.throughput_per_s is not None]
    if not rates:
        return "no bucket"
    return (f"per {analysis.bucket_seconds:g} s bucket min {format_rate(min(rates))}, "
            f"median {format_rate(statistics.median(rates))}, max {format_rate(max(rates))} "
            f"({len(analysis.buckets):,} buckets, listed in the report)")


def statistics_table(analysis: AnalysisResult) -> str:
    a = analysis
    messages_are = "rows with final = 1" if a.has_final_column else "every row: no final column"
    lines = [f"ChatFlow metrics analysis: {Path(a.source).name}",
             f"{a.rows:,} rows read, {a.malformed_rows:,} malformed rows skipped; {a.messages:,} messages "
             f"({messages_are}), {a.retried_attempts:,} retried attempts",
             "Run span " + (f"{a.span_s:,.3f} s (first send → last completion)" if a.span_s is not None else "n/a"),
             ""]
    lines += _aligned(_STATS_HEADER,
                      [_stats_cells(t.message_type, t.messages, t.failures, t.latency_ms, t.throughput_per_s)
                       for t in a.message_types],
                      _stats_cells("Aggregated", a.messages, a.failures, a.latency_ms, a.throughput_per_s))
    lines += [f"Latencies of successful messages; percentiles by {a.percentile_method}.", ""]
    lines += _aligned(("Status", "messages", "%"),
                      [[s, f"{n:,}", format_percent(n, a.messages)] for s, n in a.status_counts.items()])
    if a.retried_by_status:
        lines.append("Retried attempts: " + ", ".join(f"{s} {n:,}" for s, n in a.retried_by_status.items()))
    lines += ["", f"Throughput: {format_rate(a.throughput_per_s)} successful messages/s overall; "
                  f"{_bucket_summary(a)}"]
    if a.fanout is not None:
        f = a.fanout
        lines.append(f"Fan-out: {f.deliveries:,} of {f.expected:,} deliveries expected ({f.members} members × "
                     f"{f.messages:,} messages), {f.missing:,} missing; send → last member p50 "
                     f"{format_ms(f.last_member_latency_ms.median)} ms, p99 {format_ms(f.last_member_latency_ms.p99)} ms")
    if a.rooms:
        busiest = max(a.rooms, key=lambda r: r.messages)
        quietest = min(a.rooms, key=lambda r: r.messages)
        lines.append(f"Rooms: {len(a.rooms):,}; messages per room from {quietest.messages:,} (room "
                     f"{quietest.room_id}) to {busiest.messages:,} (room {busiest.room_id})")
    return "\n".join(lines)


def side_by_side(labels: Sequence[str], analyses: Sequence[AnalysisResult]) -> str:
    """One row per figure, one column per file."""
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
    types = dict.fromkeys(t.message_type for a in analyses for t in a.message_types)
    figures += [(f"{t} % of messages", share(t)) for t in types]
    rows = [[name] + [figure(a) for a in analyses] for name, figure in figures]
    lines = [f"ChatFlow metrics analysis: {len(analyses)} files"] + _aligned(["Figure", *labels], rows)
    lines.append(f"Latencies of successful messages; percentiles by {analyses[0].percentile_method}.")
    return "\n".join(lines)
