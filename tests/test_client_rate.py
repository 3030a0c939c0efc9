"""The open loop (``--rate``): the schedule kept, the two latencies, against real servers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from chatflow.analysis.performance_analyzer import PerformanceAnalyzer
from chatflow.analysis.report import write_report
from chatflow.client.config import LoadTestConfig
from chatflow.client.csv_writer import CsvWriter
from chatflow.client.rate_profile import parse_rate
from chatflow.client.results import RunResult
from chatflow.client.run import LoadTest
from chatflow.client.summary import format_summary, verdict
from chatflow.metrics import INTENDED, RATE_COLUMNS, RATE_CSV, RESPONSE
from tests.support.client_runs import assert_no_traceback
from tests.support.fault_proxy import FaultProxy, FaultRates, Stalls
from tests.support.processes import run_client, server_process
from tests.support.servers import chat_handler, serving

#: A run of the tests' size finishes well within this (its schedule is 1–3 s).
RUN_DEADLINE = 30.0


def open_loop_run(url: str, directory: Path, **settings) -> tuple[RunResult, list[dict[str, str]]]:
    """An open-loop LoadTest against ``url``, its rows read back from its metrics file."""
    config = LoadTestConfig(url, probe_messages=5, output_dir=directory, **settings)
    writer = CsvWriter(directory, form=RATE_CSV)
    writer.start()
    try:
        result = LoadTest(config, rate_rows=writer.record_row).run()
    finally:
        writer.close()
    with writer.path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return result, rows


def test_the_schedule_is_kept_and_never_run_ahead_of(tmp_path: Path) -> None:
    rate, messages = 400.0, 400
    with serving(chat_handler()) as server:
        result, rows = open_loop_run(server.url, tmp_path, rate=rate, messages=messages, threads=8)
    assert result.ok, format_summary(result)
    assert [p.name for p in result.phases] == ["main"], "an open loop has no warmup phase"
    assert list(rows[0]) == list(RATE_COLUMNS)
    final = [row for row in rows if row["final"] == "1"]
    assert len(final) == messages
    intended = sorted(float(row[INTENDED]) for row in final)
    # Every slot once: message i at t0 + i / R (to the µs the column keeps).
    step_ms = 1000.0 / rate
    for i, at in enumerate(intended):
        assert at == pytest.approx(intended[0] + i * step_ms, abs=0.002), i
    for row in final:
        # Never sent before its slot (timestamp is whole epoch ms, so up to 1 ms below),
        # and the response time holds the service time.
        assert int(row["timestamp"]) >= float(row[INTENDED]) - 1.0, row
        assert float(row[RESPONSE]) >= float(row["latency"]), row
    o = result.open_loop
    assert o is not None and o.messages == messages
    assert o.response_time["count"] == o.service_time["count"] == messages
    assert o.response_time["max_ms"] >= o.service_time["max_ms"]
    # One message in flight and never ahead of the schedule: the achieved rate cannot
    # exceed the rate asked (beyond the phase's end being its last reply, not its last slot).
    assert o.achieved_msg_s <= rate * messages / (messages - 1)
    summary = format_summary(result)
    assert "Rate asked" in summary and "Behind schedule" in summary and "Service time" in summary


def test_a_ramp_puts_each_message_where_its_stages_say(tmp_path: Path) -> None:
    # 100 → 500 msg/s over 1 s, then 500 msg/s for 0.4 s: 300 + 200 messages.
    profile = parse_rate("100:500:1s,500:0.4s")
    messages = profile.messages
    assert messages == 500
    with serving(chat_handler()) as server:
        result, rows = open_loop_run(server.url, tmp_path, rate=profile.mean_rate(messages), rate_profile=profile,
                                     messages=messages, threads=8)
    assert result.ok, format_summary(result)
    intended = sorted(float(row[INTENDED]) for row in rows if row["final"] == "1")
    assert len(intended) == messages
    for i, at in enumerate(intended):
        assert at - intended[0] == pytest.approx(profile.offset_s(i) * 1000, abs=0.002), i
    # The gaps shrink along the ramp, then hold at 1/500 s.
    assert intended[1] - intended[0] > 4 * (intended[-1] - intended[-2])
    assert intended[-1] - intended[-2] == pytest.approx(2.0, abs=0.002)
    summary = format_summary(result)
    assert "on average (100 → 500 msg/s over 1 s, then 500 msg/s for 0.4 s)" in summary, summary


def test_stalled_replies_show_in_the_response_time_not_the_service_time(tmp_path: Path) -> None:
    # Replies held 0.4 s every 1 s: two stalls in a run of 2.5 s of schedule, two senders.
    stall = 0.4
    with server_process() as server, FaultProxy(server.chat_port, FaultRates(), seed=1,
                                                 stalls=Stalls(every=1.0, length=stall)) as proxy:
        result, rows = open_loop_run(proxy.url, tmp_path, rate=400.0, messages=1000, threads=2, timeout=3.0)
    assert result.ok, format_summary(result)
    o = result.open_loop
    # The messages whose slots fell in a stall waited for its end before they were sent.
    assert o.response_time["p99_ms"] >= 0.5 * stall * 1000, o
    assert o.lag_max_ms >= 0.5 * stall * 1000, o
    assert o.behind - o.behind_waking > 0, "late for the stalled replies, not for the client's wake-ups"
    # Only the message each sender had in flight at a stall's start took it in its service
    # time: 2 senders × at most 3 stalls of 1,000 messages, under 1 %.
    assert o.service_time["p99_ms"] < 0.25 * stall * 1000, o
    summary = format_summary(result)
    assert "Why they differ" in summary, summary
    stalled = sum(1 for link in proxy.links for chunk in link.chunks if chunk.fault.value == "stall")
    assert stalled > 0
    # The analysis reads both latencies from the CSV, exactly, and they agree with the run's
    # histograms (their percentiles are within 1/16; the max is exact in both).
    analysis = PerformanceAnalyzer().analyze(next(tmp_path.glob("metrics_*.csv")))
    response, service = analysis.response_time_ms, analysis.latency_ms
    assert response.count == service.count == result.totals.success
    assert response.p99 >= 0.5 * stall * 1000 > 2 * service.p99, (response, service)
    assert response.max == pytest.approx(o.response_time["max_ms"], abs=0.002)
    assert response.p99 == pytest.approx(o.response_time["p99_ms"], rel=1 / 16)
    files = write_report(tmp_path / "report", "rate", analysis)
    assert "## Response time of successful messages (ms)" in files.markdown.read_text()


def test_a_rate_not_held_is_said_plainly(tmp_path: Path) -> None:
    # One sender against replies stalled 0.5 s of every 0.6 s cannot keep 200 msg/s.
    with server_process() as server, FaultProxy(server.chat_port, FaultRates(), seed=2,
                                                 stalls=Stalls(every=0.6, length=0.5)) as proxy:
        result, _ = open_loop_run(proxy.url, tmp_path, rate=200.0, messages=300, threads=1, timeout=3.0)
    assert result.ok, format_summary(result)
    assert not result.open_loop.held
    assert "the rate was NOT held" in format_summary(result)
    assert "rate was NOT held" in verdict(result)


def test_the_command_line_runs_for_a_duration(tmp_path: Path) -> None:
    result = run_client("--local", "--rate", "200", "--duration", "1", "--threads", "4", "--probe-messages", "5",
                        "--quiet", "--no-analysis", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result
    assert_no_traceback(result)
    assert "200 messages" in result.stdout and "Rate achieved" in result.stdout, result.stdout
    (metrics,) = tmp_path.glob("metrics_*.csv")
    assert metrics.read_text().splitlines()[0] == ",".join(RATE_COLUMNS)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--rate", "0"], "argument --rate: must be more than 0"),
        (["--rate", "fast"], "argument --rate: not a number"),
        (["--duration", "5"], "argument --duration: needs --rate"),
        (["--rate", "10", "--duration", "5", "--messages", "10"], "argument --duration: not allowed with --messages"),
        (["--rate", "10", "--scenario", "broadcast"], "argument --rate: the broadcast scenario"),
        (["--rate", "500:5000:"], "argument --rate: not a length of time: ''"),
        (["--rate", "500:5000:soon"], "argument --rate: not a length of time: 'soon'"),
        (["--rate", "5000:0:10s"], "argument --rate: the last stage must end above 0 msg/s"),
    ],
    ids=["zero", "not-a-number", "duration-alone", "duration-and-messages", "broadcast", "ramp-no-length",
         "ramp-bad-length", "ramp-to-zero"],
)
def test_bad_open_loop_options_are_one_line_errors(args: list[str], error: str, tmp_path: Path) -> None:
    result = run_client("--server", "127.0.0.1:1", *args, "--output-dir", str(tmp_path))
    assert result.returncode == 2, result
    assert_no_traceback(result)
    assert result.stderr.strip().splitlines()[-1].startswith(f"chatflow-client: error: {error}"), result.stderr
