"""A whole client run against the real chat server, and the arithmetic around it (SPEC §2.2–2.4)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from chatflow.client.main import build_parser, load_test_config
from chatflow.client.config import LoadTestConfig, RetryPolicy
from chatflow.client.plan import PhasePlan, plan_phases, split
from chatflow.client.results import RunResult
from chatflow.client.run import LoadTest
from chatflow.client.summary import format_summary, run_figures, verdict
from chatflow.metrics import Status
from tests.support.client_runs import BackgroundRun
from tests.support.messages import WIRE_INSTANT
from tests.support.servers import RecordingChatHandler, chat_handler, serving
from tests.support.waiting import wait_until

WIRE_KEYS = ["userId", "username", "message", "timestamp", "messageType"]
ROOM_PATH = re.compile(r"/chat/([0-9]+)")
PROBE_MESSAGES = 20
#: The probe sends this many before it starts measuring.
PROBE_WARMING = 10


# -- a scaled run end to end ----------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_run() -> tuple[RunResult, RecordingChatHandler, list[tuple]]:
    """5,000 messages: 4 warmup threads × 250, then 8 main threads, against the chat server."""
    records: list[tuple] = []
    handler = RecordingChatHandler()
    with serving(handler) as running:
        config = LoadTestConfig(
            running.url, messages=5_000, warmup_threads=4, warmup_messages=250, threads=8,
            seed=11, probe_messages=PROBE_MESSAGES,
        )
        result = LoadTest(config, recorder=lambda *record: records.append(record)).run()
    return result, handler, records


def test_every_message_succeeds_and_is_counted_once(recorded_run) -> None:
    result, _, records = recorded_run
    totals = result.totals
    assert result.unreachable is None and not result.interrupted
    assert result.generated == 5_000
    assert (totals.success, totals.failure) == (5_000, 0)
    assert totals.success + totals.failure == result.generated
    assert result.unsent == 0 and totals.retries == 0 and totals.failures_by_status == {}
    assert result.ok
    assert verdict(result) == "OK: all 5,000 messages succeeded"
    # One recorder call per attempt; here one final success per message.
    assert len(records) == 5_000
    assert {(status, final) for _, _, _, status, _, final in records} == {(Status.SUCCESS, True)}


def test_phases_are_accounted_separately(recorded_run) -> None:
    result, _, _ = recorded_run
    assert [(p.name, p.threads, p.planned, p.stats.success, p.stats.failure) for p in result.phases] \
        == [("warmup", 4, 1_000, 1_000, 0), ("main", 8, 4_000, 4_000, 0)]
    for phase in result.phases:
        assert phase.duration_s > 0
        assert phase.throughput == pytest.approx(phase.stats.success / phase.duration_s)
        assert phase.mean_latency_s is not None and phase.mean_latency_s > 0
    assert result.phases_s == pytest.approx(sum(p.duration_s for p in result.phases))
    assert result.throughput == pytest.approx(5_000 / result.phases_s)
    assert result.wall_s >= result.phases_s


def test_one_connection_per_thread_and_no_reconnection(recorded_run) -> None:
    result, handler, _ = recorded_run
    assert (result.totals.connections, result.totals.reconnections) == (12, 0)
    # The server saw the probe's connection and one per sender, each to a room in 1..20.
    assert len(handler.paths) == 1 + 12
    rooms = [int(ROOM_PATH.fullmatch(path)[1]) for path in handler.paths]
    assert all(1 <= room <= 20 for room in rooms)


def test_little_law_predictions_use_the_probe_and_the_phases(recorded_run) -> None:
    result, _, _ = recorded_run
    w = result.round_trip_s
    assert w is not None and w > 0
    assert [(p.phase, p.threads) for p in result.predictions] == [("warmup", 4), ("main", 8)]
    for prediction, phase in zip(result.predictions, result.phases):
        assert prediction.predicted == pytest.approx(phase.threads / w)
        assert prediction.actual == pytest.approx(phase.throughput)
        assert prediction.concurrency == pytest.approx(phase.throughput * phase.mean_latency_s)
    summary = format_summary(result)
    for label in ("Successful", "Failed", "Warmup phase", "Main phase", "Overall throughput",
                  "Connections opened", "Reconnections", "Little's Law"):
        assert label in summary


def test_each_reply_has_a_client_wait_shorter_than_its_latency(recorded_run) -> None:
    result, _, records = recorded_run
    wait = result.client_wait
    # One connection in SAMPLE_EVERY is measured: of 12 senders' connections at least
    # one, of 250 messages or more.
    assert wait is not None and 250 <= wait.replies <= 5_000
    latencies = sorted(latency for _, _, latency, _, _, _ in records)
    assert 0 <= wait.p50_ms <= wait.p99_ms
    # The wait is part of each latency: the kernel had the reply after the request left.
    assert wait.p99_ms <= latencies[-1] * 17 / 16 and 0 < wait.share < 1
    summary = format_summary(result)
    assert re.search(r"^Client wait +p50 [\d.]+ ms, p99 [\d.]+ ms, mean [\d.]+ ms = \d+% of the mean latency",
                     summary, re.MULTILINE)
    assert re.search(r"^Client saturated +(yes|no): ", summary, re.MULTILINE)
    figures = run_figures(result)
    assert figures["client_wait"]["replies"] == wait.replies
    assert figures["client_load"]["cores_used"] > 0


def test_what_the_client_sends_is_the_java_wire_format(recorded_run) -> None:
    _, handler, _ = recorded_run
    texts = handler.texts
    assert len(texts) == 5_000 + PROBE_MESSAGES + PROBE_WARMING
    for text in texts:
        fields = json.loads(text)
        assert isinstance(fields, dict)
        assert list(fields) == WIRE_KEYS, text
        assert text == json.dumps(fields, separators=(",", ":"), ensure_ascii=False), text
        assert WIRE_INSTANT.fullmatch(fields["timestamp"]), text
        assert type(fields["userId"]) is int and fields["username"] == f"user{fields['userId']}"
    # The run's messages are the generator's mix, not one message repeated.
    types = Counter(json.loads(text)["messageType"] for text in texts)
    assert set(types) == {"TEXT", "JOIN", "LEAVE"} and types["TEXT"] > types["JOIN"] + types["LEAVE"]


# -- phase planning -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "parts", "shares"),
    [(10, 3, [4, 3, 3]), (12, 4, [3, 3, 3, 3]), (2, 4, [1, 1, 0, 0]), (0, 2, [0, 0]), (7, 1, [7])],
)
def test_split_shares_differ_by_at_most_one(total: int, parts: int, shares: list[int]) -> None:
    assert split(total, parts) == shares


def plans(**options) -> list[tuple[str, list[int]]]:
    return [(plan.name, plan.quotas) for plan in plan_phases(LoadTestConfig("ws://127.0.0.1:1", **options))]


def test_plan_of_the_scaled_run() -> None:
    assert plans(messages=5_000, warmup_threads=4, warmup_messages=250, threads=8) \
        == [("warmup", [250] * 4), ("main", [500] * 8)]


def test_plan_of_the_default_run_is_the_java_originals() -> None:
    (warmup, warmup_quotas), (main, main_quotas) = plans()
    assert (warmup, warmup_quotas) == ("warmup", [1_000] * 32)
    assert main == "main" and len(main_quotas) == 64 and sum(main_quotas) == 468_000
    assert set(main_quotas) == {7_312, 7_313}
    assert sum(warmup_quotas) + sum(main_quotas) == LoadTestConfig.messages


def test_plan_when_the_warmup_would_take_everything() -> None:
    assert plans(messages=500, warmup_threads=4, warmup_messages=250, threads=8) == [("warmup", [125] * 4)]


def test_plan_without_warmup() -> None:
    assert plans(messages=100, warmup_threads=0, warmup_messages=0, threads=3) == [("main", [34, 33, 33])]
    assert plans(messages=100, warmup_threads=5, warmup_messages=0, threads=2) == [("main", [50, 50])]


def test_phase_plan_counts() -> None:
    plan = PhasePlan("main", [3, 2, 2])
    assert (plan.threads, plan.messages) == (3, 7)


# -- the command line's configuration ----------------------------------------------------

URL = "ws://127.0.0.1:1"


def configured(*options: str) -> LoadTestConfig:
    return load_test_config(build_parser().parse_args(["--server", URL, *options]), URL)


def test_the_command_lines_defaults_are_the_configs() -> None:
    assert configured() == LoadTestConfig(URL)


def test_max_attempts_from_the_command_line_keeps_the_default_backoff() -> None:
    assert configured("--max-attempts", "3").retry == RetryPolicy(max_attempts=3, backoff=LoadTestConfig.retry.backoff)


@pytest.mark.parametrize("option", ["--warmup-threads", "--warmup-messages"])
def test_no_warmup_from_the_command_line(option: str) -> None:
    config = configured("--messages", "100", "--threads", "3", option, "0")
    assert [(plan.name, plan.quotas) for plan in plan_phases(config)] == [("main", [34, 33, 33])]


# -- stopping a run (Ctrl-C) ----------------------------------------------------------


def test_stop_ends_the_run_at_once_and_every_generated_message_is_counted() -> None:
    threads = 4
    handler = RecordingChatHandler()
    with serving(handler) as running:
        config = LoadTestConfig(running.url, messages=1_000_000, warmup_threads=0, warmup_messages=0,
                                threads=threads, seed=13, probe_messages=1)
        test = LoadTest(config)
        with BackgroundRun(test) as run:
            wait_until(lambda: test.snapshot().done >= 1_000, timeout=30, message="the run is under way")
            test.stop.set()
            received_at_stop = len(handler.texts)
            result = run.result(10, "the run went on after stop")
        # Each sender finishes the message it holds, and takes no other.
        assert len(handler.texts) - received_at_stop <= threads
    totals = result.totals
    assert result.interrupted and not result.ok
    assert result.generated < config.messages
    assert totals.success + totals.failure == result.generated
    assert totals.success >= 1_000
    assert totals.failures_by_status == ({"cancelled": result.unsent} if result.unsent else {})
    assert verdict(result).startswith("INTERRUPTED")


def test_a_failing_recorder_costs_its_message_only_and_counts_it_once() -> None:
    """A bug in the metrics path must not lose a message, count one twice, or end a sender."""
    calls = Counter()

    def faulty(*record) -> None:
        calls["all"] += 1
        if calls["all"] % 100 == 0:
            raise RuntimeError("recorder bug")

    with serving(chat_handler()) as running:
        config = LoadTestConfig(running.url, messages=1_000, warmup_threads=2, warmup_messages=100,
                                threads=4, seed=3, probe_messages=5)
        result = LoadTest(config, recorder=faulty).run()
    totals = result.totals
    # Every faulty call came after its message's reply: each of those is a success whose
    # metric row is lost, counted once, and the senders went on to the end.
    assert calls["all"] == 1_000
    assert result.generated == 1_000 == totals.success + totals.failure
    assert (totals.success, totals.failures_by_status) == (1_000, {})
