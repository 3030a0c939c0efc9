"""``--threshold`` (issue #16): the parser and the evaluation on their own, then
``run_client.py`` against real servers: thresholds held → 0, crossed → 3, messages failed
→ 1 whatever the thresholds, a malformed one → 2 before anything connects."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatflow.client.config import LoadTestConfig
from chatflow.client.fanout import FanoutCounts
from chatflow.client.figures import summary_figures
from chatflow.client.histogram import add_latency, empty_counts
from chatflow.client.results import PhaseResult, RunResult, SenderStats
from chatflow.client.summary import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS, outcome,
                                     summary_text)
from chatflow.client.thresholds import METRICS, ThresholdError, evaluate, parse_threshold, unavailable
from tests.support.client_runs import assert_no_traceback, summary_json
from tests.support.network import free_port
from tests.support.processes import ListeningServer, run_client, server_process
from tests.support.scripted_server import Action, ScriptedServer

#: A run of a second or so: a warmup, a main phase, no analysis (pandas not loaded).
SMALL_RUN = ("--messages", "400", "--warmup-threads", "2", "--warmup-messages", "50", "--threads", "4",
             "--probe-messages", "5", "--processes", "1", "--quiet", "--no-analysis")


# -- the parser -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "metric", "op", "limit"), [
    ("p99<50ms", "p99", "<", 50.0),
    ("p95<=20ms", "p95", "<=", 20.0),
    ("p95 <= 0.02s", "p95", "<=", 20.0),
    ("p50<3", "p50", "<", 3.0),  # a bare number is ms
    ("p90 > .5ms", "p90", ">", 0.5),
    ("p999<1.5e3", "p999", "<", 1500.0),
    ("max!=0", "max", "!=", 0.0),
    ("mean>=1s", "mean", ">=", 1000.0),
    ("failures==0", "failures", "==", 0.0),
    ("failure_rate<0.1%", "failure_rate", "<", 0.001),
    ("failure_rate<=0.01", "failure_rate", "<=", 0.01),
    ("throughput>=10000", "throughput", ">=", 10_000.0),
    ("throughput>5msg/s", "throughput", ">", 5.0),
    ("missing==0", "missing", "==", 0.0),
    ("duplicated<1", "duplicated", "<", 1.0),
    ("out_of_order==0", "out_of_order", "==", 0.0),
    ("fanout_p99<20ms", "fanout_p99", "<", 20.0),
])
def test_good_expressions_parse(text: str, metric: str, op: str, limit: float) -> None:
    threshold = parse_threshold(text)
    assert (threshold.text, threshold.metric, threshold.operator) == (text.strip(), metric, op)
    assert threshold.limit == pytest.approx(limit)


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty: expected METRIC OP VALUE"),
    ("   ", "empty: expected METRIC OP VALUE"),
    ("<50ms", "expected METRIC OP VALUE"),
    ("p99", "no comparison after p99; one of < <= > >= == !="),
    ("p99 50ms", "no comparison after p99"),
    ("p99=50ms", "'=' is not a comparison; did you mean '=='?"),
    ("p98<50ms", "unknown metric 'p98'; one of p50, p90"),
    ("latency<5ms", "unknown metric 'latency'"),
    ("p99<", "no value after '<'"),
    ("p99<<5ms", "'<5ms' is not a number"),
    ("p99<fast", "'fast' is not a number"),
    ("p99<50kb", "p99 takes ms or s (a bare number is ms), not 'kb'"),
    ("p99<50%", "not '%'"),
    ("failures==0ms", "failures takes no unit (it is a count), not 'ms'"),
    ("throughput>5ms", "throughput takes msg/s or a bare number, not 'ms'"),
    ("failure_rate<5ms", "failure_rate takes % or a bare fraction"),
    ("p99<-1ms", "p99 is never negative"),
    ("failure_rate<200%", "a failure rate is at most 1 (100%)"),
    ("failure_rate<2", "a failure rate is at most 1"),
])
def test_malformed_expressions_say_what_is_wrong_in_one_line(text: str, says: str) -> None:
    with pytest.raises(ThresholdError) as raised:
        parse_threshold(text)
    message = str(raised.value)
    assert says in message and "\n" not in message, message


def test_broadcast_metrics_are_unavailable_to_the_echo_scenario() -> None:
    broadcast_only = {name for name, metric in METRICS.items() if metric.scenario == "broadcast"}
    assert broadcast_only == {"missing", "duplicated", "out_of_order", "fanout_p99"}
    for name in METRICS:
        threshold = parse_threshold(f"{name}<1")
        assert unavailable(threshold, "broadcast") is None
        said = unavailable(threshold, "echo")
        assert (said is not None) == (name in broadcast_only)
    assert unavailable(parse_threshold("fanout_p99<1"), "echo") == \
        "'fanout_p99<1': fanout_p99 is measured only by --scenario broadcast"


# -- evaluation on a run's figures -------------------------------------------------------


def counted_stats(latencies_ms: list[float], failed: int = 0) -> SenderStats:
    """A phase's counts: these successful round trips (in its histogram), ``failed`` more."""
    stats = SenderStats(success=len(latencies_ms), failure=failed, latency_sum=sum(latencies_ms))
    for ms in latencies_ms:
        add_latency(stats.latency_counts, int(ms * 1000))
    stats.latency_max_us = int(max(latencies_ms) * 1000)
    if failed:
        stats.failures_by_status["error"] = failed
    return stats


def run_of(stats: SenderStats, duration_s: float = 2.0, **config) -> RunResult:
    generated = stats.success + stats.failure
    result = RunResult(LoadTestConfig("ws://127.0.0.1:1", messages=generated, **config), round_trip_s=0.001,
                       phases=[PhaseResult("main", 4, generated, stats, duration_s)], generated=generated)
    return result


#: 1, 2, …, 100 ms: p50 ≈ 50, p99 ≈ 99 (within 1/16), max 100, mean 50.5.
ONE_TO_HUNDRED = [float(ms) for ms in range(1, 101)]


def test_latency_thresholds_read_the_run_round_trips() -> None:
    figures = summary_figures(run_of(counted_stats(ONE_TO_HUNDRED)))
    latency = figures["latency"]
    assert latency["measure"] == "round trip" and latency["count"] == 100
    assert latency["p99_ms"] == pytest.approx(99, rel=1 / 16) and latency["max_ms"] == 100.0
    assert latency["mean_ms"] == 50.5
    held = evaluate(parse_threshold("p99<0.2s"), figures)
    assert (held.passed, held.measured) == (True, latency["p99_ms"])
    assert held.text == f"p99 (round trip) {latency['p99_ms']:,.3f} ms < 200 ms ✓"
    crossed = evaluate(parse_threshold("mean<=50"), figures)
    assert (crossed.passed, crossed.text) == (False, "mean (round trip) 50.500 ms <= 50 ms ✗")
    assert evaluate(parse_threshold("max==100"), figures).passed
    assert evaluate(parse_threshold("max!=100"), figures).passed is False
    assert evaluate(parse_threshold("p50>=40ms"), figures).passed
    assert evaluate(parse_threshold("p999>100ms"), figures).passed is False, "a percentile is never above the max"


def test_count_rate_and_throughput_thresholds() -> None:
    figures = summary_figures(run_of(counted_stats(ONE_TO_HUNDRED, failed=1), duration_s=4.0))
    assert evaluate(parse_threshold("failures==1"), figures).text == "failures 1 == 1 ✓"
    assert not evaluate(parse_threshold("failures==0"), figures).passed
    rate = evaluate(parse_threshold("failure_rate<1%"), figures)
    assert (rate.passed, rate.measured, rate.text) == (True, 1 / 101, "failure_rate 0.9901% < 1% ✓")
    assert not evaluate(parse_threshold("failure_rate<0.009"), figures).passed
    throughput = evaluate(parse_threshold("throughput>=26"), figures)
    assert (throughput.passed, throughput.text) == (False, "throughput 25.0 msg/s >= 26 msg/s ✗")


def test_an_open_loop_run_s_latency_thresholds_read_its_response_time() -> None:
    stats = counted_stats([1.0] * 100)  # the service times: 1 ms each
    stats.response_counts, stats.service_counts = empty_counts(), list(stats.latency_counts)
    for ms in ONE_TO_HUNDRED:  # the response times, from each message's intended send
        add_latency(stats.response_counts, int(ms * 1000))
    stats.response_max_us, stats.response_sum_us = 100_000, 5_050_000
    figures = summary_figures(run_of(stats, rate=50.0))
    assert figures["latency"]["measure"] == "response time" and figures["latency"]["mean_ms"] == 50.5
    verdict = evaluate(parse_threshold("p99<50ms"), figures)
    assert not verdict.passed and verdict.text.startswith("p99 (response time) ")
    assert verdict.measured == figures["open_loop"]["response_time"]["p99_ms"]


def test_broadcast_thresholds_read_the_deliveries() -> None:
    result = run_of(counted_stats(ONE_TO_HUNDRED), scenario="broadcast")
    result.fanout = FanoutCounts(members=2, expected=200, received=199, matched=197, duplicated=2)
    for ms in (5.0, 6.0):
        add_latency(result.fanout.last_counts, int(ms * 1000))
    result.fanout.last_max_us = 6000
    figures = summary_figures(result)
    assert evaluate(parse_threshold("missing==3"), figures).text == "missing 3 == 3 ✓"
    assert not evaluate(parse_threshold("duplicated==0"), figures).passed
    assert evaluate(parse_threshold("out_of_order==0"), figures).passed
    fanout = evaluate(parse_threshold("fanout_p99<=6ms"), figures)
    assert fanout.passed and fanout.text == "fanout_p99 (send → last member) 6.000 ms <= 6 ms ✓"


def test_a_figure_not_measured_crosses_its_threshold() -> None:
    unreachable = RunResult(LoadTestConfig("ws://127.0.0.1:1"), unreachable="connection refused")
    figures = summary_figures(unreachable)
    for text in ("failures==0", "p99<1s", "throughput>=0"):
        verdict = evaluate(parse_threshold(text), figures)
        assert (verdict.passed, verdict.measured) == (False, None), text
        assert " not measured " in verdict.text and verdict.text.endswith("✗")


def test_the_exit_status_and_its_line() -> None:
    ok = summary_figures(run_of(counted_stats(ONE_TO_HUNDRED)))
    held, crossed = (evaluate(parse_threshold(t), ok) for t in ("p99<1s", "p50<1ms"))
    assert outcome(ok) == outcome(ok, []) and outcome(ok).status == EXIT_OK
    assert outcome(ok).reason == "OK: all 100 messages succeeded"
    assert (outcome(ok, [held]).status, outcome(ok, [held]).reason) == (
        EXIT_OK, "OK: all 100 messages succeeded; the threshold held")
    assert outcome(ok, [held, held]).reason.endswith("; all 2 thresholds held")
    assert (outcome(ok, [held, crossed]).status, outcome(ok, [held, crossed]).reason) == (
        EXIT_THRESHOLDS, "FAILED: 1 of 2 thresholds crossed: p50<1ms; all 100 messages succeeded")
    failed = summary_figures(run_of(counted_stats(ONE_TO_HUNDRED, failed=1)))
    crossed = evaluate(parse_threshold("failures==0"), failed)
    assert (outcome(failed, [crossed]).status, outcome(failed, [crossed]).reason) == (
        EXIT_FAILED, "FAILED: 1 of 101 messages failed (and 1 of 1 threshold crossed)")
    interrupted = run_of(counted_stats(ONE_TO_HUNDRED))
    interrupted.interrupted = True
    assert outcome(summary_figures(interrupted), [crossed]).status == EXIT_INTERRUPTED
    assert outcome(ok, [held]).name == "ok" and outcome(ok, [crossed]).name == "thresholds crossed"


def test_the_summary_ends_with_one_line_per_threshold_and_has_none_without() -> None:
    figures = summary_figures(run_of(counted_stats(ONE_TO_HUNDRED)))
    verdicts = [evaluate(parse_threshold(t), figures) for t in ("p99<1s", "failures==0")]
    lines = summary_text(figures, verdicts).splitlines()
    assert lines[-4:] == ["Thresholds (--threshold)", f"  {verdicts[0].text}", "  failures 0 == 0 ✓", "=" * 72]
    assert "Thresholds" not in summary_text(figures)


# -- the command line ------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--threshold", "p99<<5ms"], ["--threshold", "p99<50kb"],
                                  ["--threshold", "p99=5"], ["--threshold", "failures==0", "--threshold", "nope<1"],
                                  ["--threshold", "missing==0"]],
                         ids=["operator", "unit", "single-equals", "second-of-two", "echo-scenario"])
def test_a_malformed_threshold_is_a_one_line_usage_error_before_anything_runs(args: list[str],
                                                                               tmp_path: Path) -> None:
    # A port nothing listens on: the client must not even try it.
    result = run_client("--server", f"127.0.0.1:{free_port()}", *args, "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2, result
    assert_no_traceback(result)
    assert result.stdout == ""
    assert result.stderr.startswith("usage: chatflow-client ")
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [result.stderr.strip().splitlines()[-1]], result.stderr
    assert errors[0].startswith("chatflow-client: error: argument --threshold: "), result.stderr
    assert not (tmp_path / "out").exists(), "nothing written"


def test_help_lists_the_exit_statuses_and_the_metrics() -> None:
    result = run_client("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--threshold EXPR" in text and "fanout_p99" in text
    assert (f"exit status: 0 every message succeeded (and every --threshold held); 1 messages failed or the server "
            f"could not be reached (whatever the thresholds); 2 bad options (a malformed --threshold too); 3 every "
            f"message succeeded but a --threshold was crossed; 130 interrupted (Ctrl-C)") in text


@pytest.fixture(scope="module")
def server() -> Iterator[ListeningServer]:
    with server_process() as running:
        yield running


def last_line(result) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_thresholds_held_exit_0(server: ListeningServer, tmp_path: Path) -> None:
    result = run_client("--server", f"127.0.0.1:{server.chat_port}", *SMALL_RUN, "--output-dir", str(tmp_path),
                        "--threshold", "p99<30s", "--threshold", "failures==0", "--threshold", "throughput>0")
    assert result.returncode == 0, result
    assert_no_traceback(result)
    assert last_line(result) == "OK: all 400 messages succeeded; all 3 thresholds held"
    assert re.search(r"^  p99 \(round trip\) [\d.,]+ ms < 30,000 ms ✓$", result.stdout, re.M), result.stdout
    assert re.search(r"^  failures 0 == 0 ✓$", result.stdout, re.M)
    assert summary_json(tmp_path)["exit"] == {"status": 0, "name": "ok", "reason": last_line(result)}


def test_a_crossed_threshold_exits_3_and_says_which(server: ListeningServer, tmp_path: Path) -> None:
    result = run_client("--server", f"127.0.0.1:{server.chat_port}", *SMALL_RUN, "--output-dir", str(tmp_path),
                        "--threshold", "failures==0", "--threshold", "p50<0.001ms", "--threshold", "throughput>=1e12")
    assert result.returncode == 3, result
    assert_no_traceback(result)
    assert last_line(result) == ("FAILED: 2 of 3 thresholds crossed: p50<0.001ms, throughput>=1e12; "
                                 "all 400 messages succeeded")
    assert re.search(r"^  p50 \(round trip\) [\d.,]+ ms < 0\.001 ms ✗$", result.stdout, re.M), result.stdout
    assert re.search(r"^  throughput [\d.,]+ msg/s >= 1e\+12 msg/s ✗$", result.stdout, re.M), result.stdout
    document = summary_json(tmp_path)
    assert [t["passed"] for t in document["thresholds"]] == [True, False, False]
    assert document["exit"]["status"] == 3 and document["exit"]["name"] == "thresholds crossed"


def test_failed_messages_exit_1_even_with_a_threshold_crossed(tmp_path: Path) -> None:
    # Every 5th message of each sender's connection gets an error reply (the probe's
    # connection, the first, is answered throughout).
    def script(connection: int, number: int) -> Action:
        return Action.ERROR if connection > 1 and number % 5 == 0 else Action.REPLY

    with ScriptedServer(script) as scripted:
        result = run_client("--server", scripted.url, *SMALL_RUN, "--output-dir", str(tmp_path),
                            "--threshold", "failures==0", "--threshold", "p99<30s")
        refused = len(scripted.with_action(Action.ERROR))
    assert refused > 0
    assert result.returncode == 1, result
    assert_no_traceback(result)
    assert last_line(result) == f"FAILED: {refused} of 400 messages failed (and 1 of 2 thresholds crossed)"
    assert f"  failures {refused:,} == 0 ✗" in result.stdout.splitlines()
    assert summary_json(tmp_path)["exit"]["status"] == 1
