"""Little's Law (SPEC §2.4): the idle probe's prediction, the seed's prediction from the
warmup's W, the CPU ceiling and the bound a run hit; pure, then from real runs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from chatflow.client.config import LoadTestConfig
from chatflow.client.littles_law import (
    HIT_FRACTION, Bound, Bounds, cpu_ceiling, lower_bound, predict, predict_from_warmup, which_bound,
    with_result,
)
from chatflow.client.local_server import LocalServer
from chatflow.client.results import PhaseResult, RunResult, SenderStats
from chatflow.client.cpu import usable_cores
from chatflow.client.run import LoadTest
from chatflow.client.summary import format_summary, run_figures
from chatflow.wan.proxy import DelayProxy
from tests.support.network import LOCALHOST
from tests.support.servers import chat_handler, serving

URL = "ws://127.0.0.1:1"


# -- the idle probe's prediction ------------------------------------------------------


def test_little_law_predicts_threads_over_round_trip() -> None:
    prediction = predict("main", 8, 0.002)
    assert prediction.predicted == pytest.approx(4_000)
    assert prediction.ratio is None and prediction.concurrency is None


def test_little_law_ratio_and_concurrency_after_the_phase() -> None:
    measured = with_result(predict("main", 8, 0.002), actual=3_000, mean_latency_s=0.0025)
    assert (measured.phase, measured.threads, measured.round_trip_s) == ("main", 8, 0.002)
    assert measured.ratio == pytest.approx(0.75)
    assert measured.concurrency == pytest.approx(7.5)  # L = λ·W


def test_little_law_degenerate_cases() -> None:
    assert math.isinf(predict("warmup", 4, 0.0).predicted)
    assert with_result(predict("main", 8, 0.002), actual=0.0, mean_latency_s=None).concurrency is None
    assert with_result(predict("main", 8, 0.002), actual=0.0, mean_latency_s=None).ratio == 0.0


# -- the seed's prediction, the CPU ceiling, the bound ----------------------------------


def test_the_seeds_prediction_is_main_threads_over_the_warmups_w() -> None:
    # The seed: W = 34 ms in warmup, 64 main threads → 1.9k msg/s; it measured ≈ 1,880.
    prediction = predict_from_warmup(64, 0.034, actual=1_880.0, main_mean_latency_s=0.034)
    assert (prediction.phase, prediction.threads, prediction.round_trip_s) == ("main", 64, 0.034)
    assert prediction.predicted == pytest.approx(1_882.35, rel=1e-4)
    assert prediction.ratio == pytest.approx(0.9988, rel=1e-3)
    assert prediction.concurrency == pytest.approx(63.92)
    assert predict_from_warmup(64, 0.034, actual=None, main_mean_latency_s=None).ratio is None


@pytest.mark.parametrize("warmup_w", [None, 0.0, -1.0])
def test_no_warmup_w_gives_no_prediction(warmup_w: float | None) -> None:
    assert predict_from_warmup(64, warmup_w, actual=1_000.0, main_mean_latency_s=0.05) is None


def test_cpu_ceiling_is_cores_over_cpu_per_message() -> None:
    assert cpu_ceiling(2, 100e-6) == pytest.approx(20_000)
    assert cpu_ceiling(4, 125e-6) == pytest.approx(32_000)
    for cores, per_message in [(None, 1e-4), (0, 1e-4), (2, None), (2, 0.0)]:
        assert cpu_ceiling(cores, per_message) is None


def test_usable_cores_are_this_process_affinity() -> None:
    cores = usable_cores()
    assert cores is not None and 1 <= cores <= (os.cpu_count() or cores)


def test_the_lower_known_bound_applies() -> None:
    assert lower_bound(1_000.0, 20_000.0) == (Bound.ROUND_TRIP, 1_000.0)
    assert lower_bound(50_000.0, 20_000.0) == (Bound.CPU, 20_000.0)
    assert lower_bound(20_000.0, 20_000.0) == (Bound.ROUND_TRIP, 20_000.0)
    assert lower_bound(None, 20_000.0) == (Bound.CPU, 20_000.0)
    assert lower_bound(math.inf, 20_000.0) == (Bound.CPU, 20_000.0)
    assert lower_bound(1_000.0, None) == (Bound.ROUND_TRIP, 1_000.0)
    assert lower_bound(None, None) is None and lower_bound(math.inf, 0.0) is None


def test_a_run_hits_the_lower_bound_from_the_hit_fraction_up() -> None:
    assert which_bound(990.0, 1_000.0, 20_000.0) is Bound.ROUND_TRIP
    assert which_bound(HIT_FRACTION * 1_000.0, 1_000.0, None) is Bound.ROUND_TRIP
    assert which_bound(1_050.0, 1_000.0, None) is Bound.ROUND_TRIP  # above a prediction still hits it
    assert which_bound(18_000.0, 40_000.0, 20_000.0) is Bound.CPU
    # Below the fraction of the lower bound: not the higher one either.
    assert which_bound(700.0, 1_000.0, 20_000.0) is Bound.NEITHER
    assert which_bound(9_000.0, 40_000.0, 20_000.0) is Bound.NEITHER
    assert which_bound(None, 1_000.0, 20_000.0) is None
    assert which_bound(1_000.0, None, None) is None


def test_bounds_take_the_warmup_w_before_the_idle_probes() -> None:
    idle = with_result(predict("main", 64, 0.0002), 15_000.0, 0.004)
    warmup = predict_from_warmup(64, 0.002, 15_000.0, 0.004)
    seeded = Bounds(threads=64, actual=15_000.0, warmup=warmup, idle=idle, cores=2, cpu_s_per_message=100e-6)
    assert (seeded.round_trip, seeded.cpu) == (pytest.approx(32_000), pytest.approx(20_000))
    assert seeded.applies == (Bound.CPU, pytest.approx(20_000))
    assert seeded.fraction == pytest.approx(0.75)
    assert seeded.bound is Bound.NEITHER
    unseeded = Bounds(threads=64, actual=15_000.0, warmup=None, idle=idle, cores=None, cpu_s_per_message=None)
    assert (unseeded.round_trip, unseeded.cpu) == (pytest.approx(320_000), None)
    assert unseeded.bound is Bound.NEITHER
    assert Bounds(64, 15_000.0, None, None, None, None).bound is None
    assert Bounds(64, 15_000.0, None, None, None, None).fraction is None


# -- the summary and the report's figures, from a run's counts ---------------------------


def counted(name: str, threads: int, success: int, latency_ms: float, duration_s: float) -> PhaseResult:
    stats = SenderStats(success=success, latency_sum=success * latency_ms)
    return PhaseResult(name, threads, success, stats, duration_s)


def a_result(*phases: PhaseResult, round_trip_s: float = 0.020, server_cpu_s: float | None = None,
             client_cpu_s: float = 0.5, cores: int | None = 2) -> RunResult:
    """A run's result as LoadTest makes it, from the counts given."""
    result = RunResult(LoadTestConfig(URL, messages=sum(p.planned for p in phases)), round_trip_s=round_trip_s,
                       phases=list(phases), client_cpu_s=client_cpu_s, server_cpu_s=server_cpu_s, cores=cores)
    result.predictions = [with_result(predict(p.name, p.threads, round_trip_s), p.throughput, p.mean_latency_s)
                          for p in phases]
    result.generated = sum(p.planned for p in phases)
    return result


def bound_line(summary: str) -> str:
    [line] = [line for line in summary.splitlines() if line.startswith("Bound ")]
    return line


def test_summary_adds_the_seeds_prediction_below_the_probes_table() -> None:
    # 34 ms through the network, 32 then 64 threads: the seed's two phases.
    result = a_result(counted("warmup", 32, 32_000, 34.0, 34.0), counted("main", 64, 468_000, 34.0, 249.0),
                      round_trip_s=0.034)
    summary = format_summary(result)
    lines = summary.splitlines()
    table = lines.index("Little's Law (W = 34.000 ms on one idle connection)")
    assert lines[table + 2].split()[:2] == ["warmup", "32"] and lines[table + 3].split()[:2] == ["main", "64"]
    assert lines[table + 4] == "Little's Law the seed's way (W = 34.000 ms, the warmup's mean latency)"
    assert lines[table + 5].split()[:5] == ["main", "64", "1,882", "1,880", "1.00"]
    assert lines[table + 6] == "CPU ceiling  unknown: the server's CPU is measured only with --local"
    assert bound_line(summary).startswith("Bound        round trip: main phase at 1.00 of threads ÷ the warmup's W "
                                          "(1,882 msg/s), the one known")
    bounds = run_figures(result)["bounds"]
    assert bounds == {
        "main_threads": 64, "warmup_mean_latency_ms": 34.0, "predicted_from_warmup_msg_s": 1882.4,
        "main_actual_msg_s": 1879.5, "actual_over_predicted_from_warmup": 0.9985,
        "round_trip_bound_msg_s": 1882.4, "round_trip_basis": "warmup", "cores": 2, "cpu_us_per_message": None,
        "cpu_ceiling_msg_s": None, "bound": "round trip", "bound_applying": "round trip",
        "actual_over_bound": 0.9985, "hit_fraction": HIT_FRACTION,
    }


def test_summary_without_warmup_says_so_and_bounds_on_the_idle_probe() -> None:
    result = a_result(counted("main", 8, 1_000, 20.0, 2.5))
    summary = format_summary(result)
    assert "Little's Law the seed's way: no warmup phase, so no warmup W to predict the main phase from" in summary
    assert bound_line(summary).startswith("Bound        round trip: main phase at 1.00 of threads ÷ the idle "
                                          "probe's W (400 msg/s)")
    bounds = run_figures(result)["bounds"]
    assert (bounds["main_threads"], bounds["predicted_from_warmup_msg_s"], bounds["round_trip_basis"]) \
        == (8, None, "idle probe")


def test_summary_with_a_failed_warmup_says_so() -> None:
    result = a_result(counted("warmup", 4, 0, 0.0, 1.0), counted("main", 8, 1_000, 20.0, 2.5))
    assert "Little's Law the seed's way: no warmup message succeeded" in format_summary(result)


def test_summary_of_a_run_stopped_in_warmup_has_no_bound() -> None:
    result = a_result(counted("warmup", 4, 100, 2.0, 0.05))
    assert "Little's Law the seed's way: no main phase to predict" in format_summary(result)
    assert "bounds" not in run_figures(result)


def test_cpu_ceiling_and_a_cpu_bound_run() -> None:
    # 100 µs client + 25 µs server a message on 2 cores: 16,000 msg/s at most.
    result = a_result(counted("warmup", 32, 32_000, 2.0, 2.0), counted("main", 64, 68_000, 4.0, 4.5),
                      round_trip_s=0.0002, client_cpu_s=10.0, server_cpu_s=2.5)
    summary = format_summary(result)
    assert "CPU ceiling  16,000 msg/s = 2 cores ÷ (100.0 µs client + 25.0 µs server CPU per message)" in summary
    assert bound_line(summary).startswith("Bound        CPU: main phase at 0.94 of the CPU ceiling (16,000 msg/s), "
                                          "the lower bound: the cores were busy")
    bounds = run_figures(result)["bounds"]
    assert (bounds["cpu_ceiling_msg_s"], bounds["cpu_us_per_message"], bounds["bound"]) == (16_000.0, 125.0, "CPU")


def test_a_run_under_both_bounds_names_neither() -> None:
    result = a_result(counted("warmup", 32, 32_000, 2.0, 2.0), counted("main", 64, 68_000, 8.0, 8.5),
                      round_trip_s=0.0002, client_cpu_s=10.0, server_cpu_s=2.5)
    line = bound_line(format_summary(result))
    assert line.startswith("Bound        neither: main phase at 0.50 of the CPU ceiling (16,000 msg/s), the lower "
                           f"bound; under {HIT_FRACTION:.2f} of it"), line


def test_unknown_cores_leave_the_ceiling_unknown() -> None:
    result = a_result(counted("main", 8, 1_000, 20.0, 2.5), server_cpu_s=0.1, cores=None)
    assert "CPU ceiling  unknown: the number of usable cores is unknown" in format_summary(result)


# -- from real runs -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_through_a_delay_the_warmup_predicts_the_main_phase_and_the_round_trip_bounds_it() -> None:
    # 4 × 50 warmup messages, then 8 threads × 150: about 5 s at 20 ms a round trip.
    rtt_ms, threads = 20.0, 8
    with serving(chat_handler()) as running, \
            DelayProxy(listen=(LOCALHOST, 0), upstream=(LOCALHOST, running.port), rtt_ms=rtt_ms) as proxy:
        config = LoadTestConfig(f"ws://{LOCALHOST}:{proxy.port}", messages=1_400, warmup_threads=4,
                                warmup_messages=50, threads=threads, seed=5, probe_messages=5)
        result = LoadTest(config).run()
    assert result.ok, format_summary(result)
    warmup, main = result.phase("warmup"), result.phase("main")
    assert warmup.mean_latency_s >= rtt_ms / 1000  # each direction held half the round trip
    bounds = result.bounds
    assert bounds.warmup.predicted == pytest.approx(threads / warmup.mean_latency_s)
    assert bounds.warmup.actual == pytest.approx(main.throughput)
    assert bounds.warmup.ratio == pytest.approx(1.0, abs=0.10), format_summary(result)
    assert bounds.bound is Bound.ROUND_TRIP
    summary = format_summary(result)
    assert "Little's Law the seed's way (W = " in summary
    assert bound_line(summary).startswith("Bound        round trip: main phase at ")


@pytest.mark.timeout(60)
def test_a_local_run_knows_the_cpu_ceiling(tmp_path: Path) -> None:
    with LocalServer(tmp_path / "server.log") as server:
        config = LoadTestConfig(server.url, messages=3_000, warmup_threads=2, warmup_messages=500, threads=4,
                                seed=7, probe_messages=5)
        result = LoadTest(config, server_pid=server.pid).run()
    assert result.ok
    bounds = result.bounds
    assert bounds.cores == usable_cores() and bounds.cpu is not None and bounds.cpu > 0
    assert bounds.cpu == pytest.approx(bounds.cores / ((result.client_cpu_s + result.server_cpu_s) / 3_000))
    assert bounds.bound is not None
    summary = format_summary(result)
    assert f"CPU ceiling  {bounds.cpu:,.0f} msg/s = {bounds.cores} cores ÷ (" in summary
    figures = run_figures(result)["bounds"]
    assert figures["cpu_ceiling_msg_s"] == pytest.approx(bounds.cpu, abs=0.1)
    assert figures["bound"] == bounds.bound.value
