"""``chatflow-analysis`` / ``python -m chatflow.analysis``: analyse existing metrics CSVs.

One file: a statistics table per message type, outcomes, throughput. Several files:
the same figures side by side, one column per file, and their throughput curves on
one chart. Either way the charts and a report per file are written next to the first
CSV (or ``--output-dir``). A CSV's summary.json beside it (the client's) gives the
reports its thresholds and the warmup/main boundary. Bad input is one line on stderr
and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatflow.arguments import seconds
from chatflow.analysis.performance_analyzer import (DEFAULT_BUCKET_SECONDS, MIN_BUCKET_SECONDS, AnalysisError,
                                                    AnalysisResult, LatencyStats, PerformanceAnalyzer)
from chatflow.analysis.report import (Threshold, comparison_table, format_ms, format_percent, format_rate,
                                      latency_cells, phase_boundary_s, write_report)
from chatflow.analysis.html_report import render_run, render_runs, write_html
from chatflow.analysis.summary_file import boundary_of, summary_beside, thresholds_of
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
        summaries = [summary_or_none(path) for path in args.files]
        judged = [thresholds_of(summary["thresholds"]) if summary else None for summary in summaries]
        print(side_by_side(stems, analyses) if len(analyses) > 1 else statistics_table(analyses[0]))
        for stem, summary in zip(stems, summaries):
            if summary and summary["thresholds"]:
                print(thresholds_text(stem, summary))
        directory = args.output_dir or args.files[0].parent
        outputs = [write_outputs(analysis, directory, stem, run=earlier_run(path), thresholds=thresholds,
                                 boundary_s=boundary_of(summary) if summary else None)
                   for path, stem, analysis, summary, thresholds in zip(args.files, stems, analyses, summaries, judged)]
        written = [path for files in outputs for path in files.paths]
        if len(analyses) > 1:
            written += write_comparison(stems, analyses, [files.charts for files in outputs], Path(directory), judged)
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


@dataclass(frozen=True)
class Outputs:
    """What :func:`write_outputs` wrote: every path, and the charts by name."""
    paths: list[Path]
    charts: dict[str, Path]

    def __iter__(self) -> Iterator[Path]:
        return iter(self.paths)


def write_outputs(analysis: AnalysisResult, directory: str | Path, stem: str,
                  run: Mapping[str, Any] | None = None, thresholds: Sequence[Threshold] | None = None,
                  boundary_s: float | None = None) -> Outputs:
    """One run's charts and its report (Markdown, JSON and HTML); iterates over the paths written.

    The warmup/main boundary is the run figures' (``phase_boundary_s``) unless given.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if boundary_s is None:
        boundary_s = phase_boundary_s(run)
    charts = ThroughputVisualizer().charts(analysis, directory, stem, boundary_s)
    report = write_report(directory, stem, analysis, run=run, charts=charts, thresholds=thresholds)
    page = write_html(directory / f"{stem}_report.html",
                      render_run(analysis, charts, run=run, thresholds=thresholds, boundary_s=boundary_s))
    return Outputs([report.markdown, report.json, page, *charts.values()], charts)


def write_comparison(stems: Sequence[str], analyses: Sequence[AnalysisResult],
                     run_charts: Sequence[Mapping[str, Path]], directory: Path,
                     thresholds: Sequence[Sequence[Threshold] | None] | None = None) -> list[Path]:
    """Several runs: their curves overlaid on two charts, and one page with a column per run
    (and each run's thresholds, when its summary.json had any)."""
    visualizer, pairs = ThroughputVisualizer(), list(zip(stems, analyses))
    charts = {"throughput": visualizer.comparison_chart(pairs, directory / f"{stems[0]}_comparison_throughput.png"),
              "latency_cdf": visualizer.cdf_chart(pairs, directory / f"{stems[0]}_comparison_latency_cdf.png")}
    page = write_html(directory / f"{stems[0]}_comparison.html",
                      render_runs(stems, analyses, charts, run_charts, thresholds))
    return [*charts.values(), page]


def earlier_run(csv: Path) -> Mapping[str, Any] | None:
    """The client's run figures from the report it wrote beside ``csv``, if any: re-analysing a
    CSV rewrites that report, so they are read first and kept (the phase boundary is theirs)."""
    try:
        run = json.loads((csv.parent / f"{csv.stem}_report.json").read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        return None
    return run if isinstance(run, Mapping) else None


def summary_or_none(csv: Path) -> Mapping[str, Any] | None:
    """The client's summary.json beside ``csv``; a broken one is a warning, not the end of
    the analysis of a good CSV."""
    try:
        return summary_beside(csv)
    except AnalysisError as exc:
        print(f"{PROG}: warning: {exc}; analysed without it", file=sys.stderr)
        return None


def thresholds_text(stem: str, summary: Mapping[str, Any]) -> str:
    """The run's thresholds as its summary ended, and the exit status they gave."""
    ended = summary["exit"]
    lines = [f"\nThresholds of {stem} (its summary.json; exit status {ended['status']}, {ended['name']})"]
    return "\n".join(lines + [f"  {t['text']}" for t in summary["thresholds"]])


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
    if a.response_time_ms is not None:
        r = a.response_time_ms
        lines += [f"Response time (open loop: intended send → reply; the latencies above are service times): "
                  f"mean {format_ms(r.mean)}, median {format_ms(r.median)}, p95 {format_ms(r.p95)}, "
                  f"p99 {format_ms(r.p99)}, max {format_ms(r.max)} ms", ""]
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
    header, rows = comparison_table(labels, analyses)
    lines = [f"ChatFlow metrics analysis: {len(analyses)} files"] + _aligned(header, rows)
    lines.append(f"Latencies of successful messages; percentiles by {analyses[0].percentile_method}.")
    return "\n".join(lines)
