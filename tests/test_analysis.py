"""The metrics analysis (SPEC §2.5) on real CSV files written by the tests.

Expected figures are computed by hand in the comments; percentiles follow the
documented definition (linear interpolation between closest ranks), which the
1..100 case tells apart from nearest-rank.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from chatflow.analysis.cli import main, unique_stems
from chatflow.analysis.performance_analyzer import AnalysisError, AnalysisResult, PerformanceAnalyzer
from chatflow.analysis.report import write_report
from chatflow.analysis.throughput_visualizer import ThroughputVisualizer
from chatflow.metrics import CSV_HEADER, JAVA_COLUMNS
from tests.support.processes import REPO_ROOT

HEADER = "timestamp,messageType,latency,statusCode,roomId,final"
JAVA_HEADER = "timestamp,messageType,latency,statusCode,roomId"
T0 = 1_760_000_000_000
CLI_TIMEOUT = 60

# (timestamp, type, latency ms, status, room, final); successful latencies 1, 2, 2, 4, 10, 3.
HAND_ROWS = [
    (T0, "TEXT", "1.000", "success", 1, 1),
    (T0, "TEXT", "2.000", "success", 1, 1),
    (T0 + 1, "JOIN", "2.000", "success", 2, 1),
    (T0 + 2, "TEXT", "4.000", "success", 2, 1),
    (T0 + 3, "LEAVE", "10.000", "success", 3, 1),
    (T0 + 4, "TEXT", "1000.000", "timeout", 3, 0),
    (T0 + 5, "TEXT", "0.500", "error", 1, 1),
    (T0 + 1010, "TEXT", "3.000", "success", 3, 1),
]


def test_the_headers_are_the_metrics_contract() -> None:
    assert CSV_HEADER == HEADER
    assert ",".join(JAVA_COLUMNS) == JAVA_HEADER


def write_csv(path: Path, rows, header: str | None = HEADER) -> Path:
    lines = ([header] if header is not None else []) + [",".join(str(c) for c in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def analyze(path: Path, bucket_seconds: float = 10.0) -> AnalysisResult:
    return PerformanceAnalyzer(bucket_seconds).analyze(path)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_sane_png(path: Path) -> None:
    width, height = png_size(path)
    assert 300 <= width <= 4000 and 300 <= height <= 4000, (path.name, width, height)


# -- statistics -----------------------------------------------------------------------


def test_hand_computed_figures(tmp_path):
    result = analyze(write_csv(tmp_path / "hand.csv", HAND_ROWS), bucket_seconds=0.5)
    assert (result.rows, result.malformed_rows, result.messages, result.retried_attempts) == (8, 0, 7, 1)
    assert (result.successes, result.failures) == (6, 1)
    assert result.status_counts == {"success": 6, "error": 1}
    assert result.retried_by_status == {"timeout": 1}
    # Sorted successes 1, 2, 2, 3, 4, 10; rank h = (n - 1)·p = 5p.
    stats = result.latency_ms
    assert stats.count == 6
    assert stats.mean == pytest.approx(22 / 6)
    assert stats.median == pytest.approx(2.5)         # h 2.5: 2 + 0.5·(3 - 2)
    assert stats.p95 == pytest.approx(8.5)            # h 4.75: 4 + 0.75·(10 - 4)
    assert stats.p99 == pytest.approx(9.7)            # h 4.95: 4 + 0.95·6
    assert (stats.min, stats.max) == (1.0, 10.0)
    # Run: first send T0, last completion T0 + 1010 + 3 → 1.013 s.
    assert result.first_timestamp_ms == T0
    assert result.span_s == pytest.approx(1.013)
    assert result.throughput_per_s == pytest.approx(6 / 1.013)


def test_message_types_and_rooms(tmp_path):
    result = analyze(write_csv(tmp_path / "hand.csv", HAND_ROWS))
    types = {t.message_type: t for t in result.message_types}
    assert list(types) == ["TEXT", "JOIN", "LEAVE"]  # by count, then first seen
    text = types["TEXT"]
    assert (text.messages, text.successes, text.failures) == (5, 4, 1)  # the retried attempt is no message
    assert text.percent == pytest.approx(500 / 7)
    assert types["JOIN"].percent == pytest.approx(100 / 7)
    assert (text.latency_ms.median, text.latency_ms.p95) == (pytest.approx(2.5), pytest.approx(3.85))
    assert text.throughput_per_s == pytest.approx(4 / 1.013)
    rooms = {r.room_id: (r.messages, r.successes, r.failures) for r in result.rooms}
    assert rooms == {1: (3, 2, 1), 2: (2, 2, 0), 3: (2, 2, 0)}
    # Per-room throughput is over the run's span, so the rooms add up to the run.
    assert sum(r.throughput_per_s for r in result.rooms) == pytest.approx(result.throughput_per_s)


def test_buckets_count_completions_and_divide_the_last_by_its_real_length(tmp_path):
    result = analyze(write_csv(tmp_path / "hand.csv", HAND_ROWS), bucket_seconds=0.5)
    # Successes complete at 1, 2, 3, 6, 13 and 1013 ms after T0; the run ends at 1013 ms.
    assert [(b.start_s, b.end_s, b.successes) for b in result.buckets] == [
        (0.0, 0.5, 5), (0.5, 1.0, 0), (1.0, 1.013, 1)]
    assert [b.throughput_per_s for b in result.buckets] == [
        pytest.approx(10.0), 0.0, pytest.approx(1 / 0.013)]


def test_a_completion_on_the_last_edge_stays_in_the_last_bucket(tmp_path):
    rows = [(T0, "TEXT", "0.000", "success", 1, 1), (T0 + 1000, "TEXT", "1000.000", "success", 1, 1)]
    result = analyze(write_csv(tmp_path / "edge.csv", rows), bucket_seconds=1.0)
    assert [(b.start_s, b.end_s, b.successes) for b in result.buckets] == [(0.0, 1.0, 1), (1.0, 2.0, 1)]


def test_percentiles_are_linear_interpolation_not_nearest_rank(tmp_path):
    rows = [(T0 + i, "TEXT", f"{i}.000", "success", 1, 1) for i in range(100, 0, -1)]
    stats = analyze(write_csv(tmp_path / "hundred.csv", rows)).latency_ms
    # 1..100: h = 99p; nearest rank would give 50, 95 and 99.
    assert (stats.median, stats.p95, stats.p99) == (pytest.approx(50.5), pytest.approx(95.05), pytest.approx(99.01))
    assert stats.mean == pytest.approx(50.5)


def test_a_single_row(tmp_path):
    result = analyze(write_csv(tmp_path / "one.csv", [(T0, "JOIN", "0.412", "success", 7, 1)]))
    stats = result.latency_ms
    assert (stats.count, stats.mean, stats.median, stats.p95, stats.p99, stats.min, stats.max) == (
        1, 0.412, 0.412, 0.412, 0.412, 0.412, 0.412)
    assert result.span_s == pytest.approx(0.000412)
    assert [(b.successes, b.end_s) for b in result.buckets] == [(1, pytest.approx(0.000412))]
    assert [(t.message_type, t.percent) for t in result.message_types] == [("JOIN", 100.0)]


def test_all_equal_latencies(tmp_path):
    rows = [(T0 + i, "TEXT", "7.000", "success", 1 + i % 2, 1) for i in range(5)]
    stats = analyze(write_csv(tmp_path / "equal.csv", rows)).latency_ms
    assert {stats.mean, stats.median, stats.p95, stats.p99, stats.min, stats.max} == {7.0}


def test_java_csv_integer_milliseconds_without_final_column(tmp_path):
    rows = [
        (T0, "TEXT", 2, "success", 5),
        (T0, "TEXT", 0, "success", 5),
        (T0 + 1, "JOIN", 3, "SUCCESS", 6),
        (T0 + 2, "LEAVE", 0, "connection_closed", 6),
        (T0 + 3, "TEXT", 1000, "timeout", 5),
        (T0 + 4, "TEXT", 0, "error", 7),
    ]
    result = analyze(write_csv(tmp_path / "java.csv", rows, JAVA_HEADER))
    assert not result.has_final_column
    assert (result.rows, result.messages, result.retried_attempts) == (6, 6, 0)  # every row is a message
    assert (result.successes, result.failures) == (3, 3)
    assert result.status_counts == {"connection_closed": 1, "error": 1, "success": 3, "timeout": 1}
    assert (result.latency_ms.median, result.latency_ms.min, result.latency_ms.max) == (2.0, 0.0, 3.0)
    assert result.latency_histogram.zero_count == 1
    assert sum(result.latency_histogram.counts) == 2
    assert result.span_s == pytest.approx(1.003)  # the timeout's send + 1000 ms


@pytest.mark.parametrize("header", [None, "Timestamp,MessageType,LatencyMs,StatusCode,RoomId",
                                    "roomId,statusCode,latency,messageType,timestamp"])
def test_java_header_variants_and_headerless_files(tmp_path, header):
    rows = [(T0, "TEXT", 2, "success", 5), (T0 + 1, "JOIN", 4, "success", 6)]
    if header and header.startswith("roomId"):
        rows = [tuple(reversed(row)) for row in rows]
    result = analyze(write_csv(tmp_path / "java.csv", rows, header))
    assert (result.messages, result.successes, result.malformed_rows) == (2, 2, 0)
    assert result.latency_ms.mean == 3.0
    assert {r.room_id for r in result.rooms} == {5, 6}


# -- bad input ------------------------------------------------------------------------


def test_malformed_rows_are_counted_and_skipped(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join([
        HEADER,
        f"{T0},TEXT,1.5,success,3,1",
        f"{T0},TEXT,abc,success,3,1",         # latency not a number
        "xx,JOIN,2,success,3,1",               # timestamp not a number
        f"{T0},LEAVE,2,success,2.5,1",        # room not an integer
        f"{T0},TEXT,2,success,4,7",           # final neither 0 nor 1
        f"{T0},TEXT,2,success,4,1,extra",     # a field too many
        f"{T0},TEXT,2",                       # fields missing (a cut-off last line)
        f"{T0},,2,success,4,1",               # no message type
        f"{T0},SHOUT,2,success,4,1",          # not a message type
        f"{T0},TEXT,-1,success,4,1",          # negative latency
        f"{T0},TEXT,inf,success,4,1",         # infinite latency
        f"{T0},TEXT,1e300,success,4,1",       # a latency no clock measures
        f"{T0},TEXT,2,success,99999999999,1",  # beyond any room id
        HEADER,                               # a second header (two files concatenated)
        f"{T0 + 1}, text ,2.25, Success ,4,1",  # spaces and case are tolerated
    ]) + "\n", encoding="ascii")
    result = analyze(path)
    assert (result.rows, result.malformed_rows) == (2, 13)
    assert result.latency_ms.mean == pytest.approx(1.875)
    assert result.status_counts == {"success": 2}
    assert [t.message_type for t in result.message_types] == ["TEXT"]


def test_header_only_is_an_empty_run(tmp_path):
    result = analyze(write_csv(tmp_path / "header.csv", []))
    assert (result.rows, result.messages, result.successes, result.buckets, result.rooms) == (0, 0, 0, [], [])
    assert result.latency_ms.mean is None and result.span_s is None and result.throughput_per_s is None


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", "empty file"),
    ("blank.csv", b"\n\n  \n", "empty file"),
    ("columns.csv", b"timestamp,messageType,statusCode\n1,TEXT,success\n", "missing column(s) latency, roomId"),
    ("twice.csv", b"timestamp,latency,latencyMs,messageType,statusCode,roomId\n", "column latency appears twice"),
    ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text CSV file"),
    ("quote.csv", (HEADER + f'\n{T0},"TEXT,1,success,1,1\n').encode(), "cannot parse as CSV"),
])
def test_unusable_files_raise_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AnalysisError, match=re.escape(message)) as caught:
        analyze(path)
    assert "\n" not in str(caught.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AnalysisError, match="no such file"):
        analyze(tmp_path / "absent.csv")
    with pytest.raises(AnalysisError, match="is a directory"):
        analyze(tmp_path)


def test_bucket_length_is_checked(tmp_path):
    with pytest.raises(AnalysisError, match="at least"):
        PerformanceAnalyzer(0)
    rows = [(0, "TEXT", "1", "success", 1, 1), (T0, "TEXT", "1", "success", 1, 1)]  # a stray timestamp
    with pytest.raises(AnalysisError, match="buckets"):
        analyze(write_csv(tmp_path / "stray.csv", rows))


@pytest.mark.parametrize("make", [
    lambda d: d / "absent.csv",
    lambda d: d,
    lambda d: write_csv(d / "columns.csv", [(1, "TEXT")], "timestamp,messageType"),
    lambda d: (d / "empty.csv", (d / "empty.csv").write_bytes(b""))[0],
])
def test_cli_bad_input_is_one_line_and_exit_1(tmp_path, capsys, make):
    assert main([str(make(tmp_path))]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("chatflow-analysis: error: ") and captured.err.count("\n") == 1


def test_cli_unwritable_output_is_one_line_and_exit_1(tmp_path, capsys):
    source = write_csv(tmp_path / "run.csv", HAND_ROWS)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main([str(source), "--output-dir", str(blocker / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatflow-analysis: error: cannot write") and err.count("\n") == 1


def test_cli_bad_option_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main([str(tmp_path / "x.csv"), "--bucket-seconds", "0"])
    assert caught.value.code == 2
    assert "--bucket-seconds: must be at least" in capsys.readouterr().err


def test_module_command_reports_a_missing_file_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "chatflow.analysis", str(tmp_path / "absent.csv")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert result.returncode == 1
    assert result.stderr == f"chatflow-analysis: error: {tmp_path / 'absent.csv'}: no such file\n"


# -- charts and report ----------------------------------------------------------------


def test_charts_are_valid_pngs(tmp_path):
    result = analyze(write_csv(tmp_path / "hand.csv", HAND_ROWS), bucket_seconds=0.5)
    charts = ThroughputVisualizer().charts(result, tmp_path, "hand")
    assert sorted(charts) == ["latency", "latency_cdf", "rooms", "throughput"]
    for path in charts.values():
        assert path.parent == tmp_path
        assert_sane_png(path)


def test_report_has_every_figure_and_renders_the_run(tmp_path):
    result = analyze(write_csv(tmp_path / "hand.csv", HAND_ROWS))
    chart = tmp_path / "charts" / "hand_throughput.png"
    chart.parent.mkdir()
    ThroughputVisualizer().throughput_chart(result, chart)
    run = {
        "summary": {"successful": 6, "failed": 1, "overall_throughput": 5.92},
        "littles_law": [{"phase": "warmup", "predicted": 1000.0, "actual": 800.0},
                        {"phase": "main", "predicted": 2000.0, "ratio": float("nan")}],
        "server": "ws://127.0.0.1:1",
    }
    files = write_report(tmp_path / "out", "hand", result, run=run, charts={"throughput": chart})
    document = json.loads(files.json.read_text(encoding="utf-8"))
    assert document["analysis"] == json.loads(json.dumps(result.to_dict()))
    assert set(document["analysis"]) == {f.name for f in fields(AnalysisResult)}
    assert document["analysis"]["latency_ms"]["p99"] == pytest.approx(9.7)
    assert document["run"]["littles_law"][1] == {"phase": "main", "predicted": 2000.0, "ratio": None}
    assert document["charts"] == {"throughput": "../charts/hand_throughput.png"}
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "![Throughput over time](../charts/hand_throughput.png)" in markdown
    assert "| phase | predicted | actual | ratio |" in markdown
    assert "| main | 2000 | n/a | n/a |" in markdown
    assert "| overall_throughput | 5.92 |" in markdown
    assert "| server | ws://127.0.0.1:1 |" in markdown
    assert "| 6 | 3.667 | 2.500 | 8.500 | 9.700 | 1.000 | 10.000 |" in markdown


def test_zero_successes_give_a_valid_report(tmp_path):
    rows = [(T0 + i, "TEXT", "1000.000", "timeout", 1, 1) for i in range(3)]
    result = analyze(write_csv(tmp_path / "failed.csv", rows))
    assert (result.successes, result.failures, result.latency_ms.count) == (0, 3, 0)
    assert result.throughput_per_s == 0.0
    charts = ThroughputVisualizer().charts(result, tmp_path, "failed")
    for path in charts.values():
        assert_sane_png(path)
    files = write_report(tmp_path, "failed", result, charts=charts)
    document = json.loads(files.json.read_text(encoding="utf-8"))
    assert document["analysis"]["latency_ms"] == {
        "count": 0, "mean": None, "median": None, "p95": None, "p99": None, "min": None, "max": None}
    assert "| 0 | n/a | n/a | n/a | n/a | n/a | n/a |" in files.markdown.read_text(encoding="utf-8")


# -- the command ----------------------------------------------------------------------


def test_cli_one_file_prints_a_stats_table_and_writes_next_to_the_csv(tmp_path, capsys):
    source = write_csv(tmp_path / "run.csv", HAND_ROWS)
    assert main([str(source), "--bucket-seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("Type"))
    aggregated = next(line for line in lines if line.startswith("Aggregated"))
    assert header.split() == ["Type", "#", "msgs", "#", "fails", "fail", "%", "Avg", "ms", "Med", "ms",
                              "p95", "ms", "p99", "ms", "Min", "ms", "Max", "ms", "msg/s"]
    assert len(aggregated) == len(header)  # right-aligned under the header
    assert aggregated.split() == ["Aggregated", "7", "1", "14.29", "3.667", "2.500", "8.500", "9.700",
                                  "1.000", "10.000", "5.9"]
    written = [tmp_path / f"run_{suffix}" for suffix in
               ("report.md", "report.json", "throughput.png", "latency.png", "rooms.png")]
    for path in written:
        assert f"  {path}" in lines


def test_cli_two_files_side_by_side(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_csv(tmp_path / "a" / "run.csv", HAND_ROWS)
    java_rows = [(T0 + i, "TEXT", i % 4, "success", 1 + i % 3) for i in range(20)]
    second = write_csv(tmp_path / "b" / "run.csv", java_rows, JAVA_HEADER)
    out_dir = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "chatflow.analysis", str(first), str(second),
                             "--output-dir", str(out_dir)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert next(line for line in lines if line.startswith("Figure")).split() == ["Figure", "run", "run_2"]
    assert next(line for line in lines if line.startswith("Messages")).split() == ["Messages", "7", "20"]
    assert next(line for line in lines if line.startswith("Latency max")).split()[-2:] == ["10.000", "3.000"]
    assert "Traceback" not in result.stdout
    for name in ("run_report.json", "run_2_report.json", "run_comparison_throughput.png"):
        assert (out_dir / name).is_file()
    assert_sane_png(out_dir / "run_comparison_throughput.png")


def test_unique_stems():
    assert unique_stems([Path("a/run.csv"), Path("b/run.csv"), Path("c.csv"), Path("d/run.csv")]) == [
        "run", "run_2", "c", "run_3"]
