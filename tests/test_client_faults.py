"""The client against servers that fail it (SPEC §2.2, §3): timeouts, drops, errors, silence,
and a server killed and restarted in the middle of a run.

The misbehaving servers serve the probe's connection (the first one) well, so that the
run gets past its round-trip measurement; the senders' connections get the script.
Each run is small and uses a short reply timeout, so the whole file stays quick.
"""

from __future__ import annotations

import signal
from contextlib import ExitStack

import pytest

from chatflow.client.config import LoadTestConfig, RetryPolicy
from chatflow.client.plan import plan_phases
from chatflow.client.results import RunResult
from chatflow.client.run import LoadTest
from chatflow.client.summary import verdict
from chatflow.metrics import Status
from tests.support.client_runs import BackgroundRun
from tests.support.network import free_port
from tests.support.processes import server_process
from tests.support.scripted_server import Action, Received, Script, ScriptedServer
from tests.support.waiting import wait_until

#: Short, to keep the file quick; long enough that a loaded machine does not time out
#: the replies the script sends at once (the scripted server shares this process).
TIMEOUT_S = 0.5
#: The scripted servers' late replies come well after the client has given up.
LATE_S = 2 * TIMEOUT_S
FAST_RETRY = RetryPolicy(max_attempts=5, backoff=0.02)
PROBE_CONNECTION = 1
#: The scripted message number on a sender's connection.
NTH = 10


def on_nth_message(action: Action, nth: int = NTH) -> Script:
    """``action`` for the ``nth`` message of every sender connection; replies otherwise."""
    return lambda connection, number: action if connection > PROBE_CONNECTION and number == nth else Action.REPLY


def small_config(url: str, **options) -> LoadTestConfig:
    """200 messages: 4 warmup threads × 25, then 4 main threads × 25."""
    settings = dict(messages=200, warmup_threads=4, warmup_messages=25, threads=4, timeout=TIMEOUT_S,
                    retry=FAST_RETRY, seed=3, probe_messages=1)
    settings.update(options)
    return LoadTestConfig(url, **settings)


def run(config: LoadTestConfig) -> tuple[RunResult, list[tuple]]:
    """The run's result and every recorder call: (sent ms, type, latency ms, status, room, final)."""
    records: list[tuple] = []
    result = LoadTest(config, recorder=lambda *record: records.append(record)).run()
    assert result.unreachable is None, result.unreachable
    totals = result.totals
    assert totals.success + totals.failure == result.generated == config.messages
    assert sum(1 for record in records if record[5]) == result.generated, "one final record per message"
    return result, records


def statuses(records: list[tuple], final: bool) -> list[str]:
    return [status for _, _, _, status, _, is_final in records if is_final is final]


def lost_replies(quota: int, nth: int = NTH) -> int:
    """Messages of one sender that meet the scripted ``nth`` message of a connection.

    The first connection carries messages 1..nth; after each loss the message is
    retried as the first of a new connection, so the next loss comes nth - 1 later.
    """
    return 0 if quota < nth else (quota - nth) // (nth - 1) + 1


def expected_losses(config: LoadTestConfig) -> int:
    return sum(lost_replies(quota) for plan in plan_phases(config) for quota in plan.quotas)


def assert_answered_later(server: ScriptedServer, lost: list[Received]) -> None:
    """Each lost message was sent again, on a later connection, and answered there."""
    replied = {r.text: r.connection for r in server.with_action(Action.REPLY) if r.connection > PROBE_CONNECTION}
    for r in lost:
        assert replied.get(r.text, 0) > r.connection, f"message never answered after its loss: {r.text}"


# -- late replies ---------------------------------------------------------------------


def test_late_reply_is_a_timeout_then_a_retry_on_a_new_connection_and_never_credited() -> None:
    with ScriptedServer(on_nth_message(Action.DELAY), delay=LATE_S) as server:
        config = small_config(server.url)
        result, records = run(config)
    delayed = server.with_action(Action.DELAY)
    losses = expected_losses(config)
    assert losses == 16 and len(delayed) == losses
    totals = result.totals
    assert (totals.success, totals.failure) == (200, 0), totals.failures_by_status
    assert totals.retries == totals.reconnections == losses
    assert totals.connections == 8 + losses
    assert statuses(records, final=False) == [Status.TIMEOUT] * losses
    assert set(statuses(records, final=True)) == {Status.SUCCESS}
    # Every success's reply was its own: the client never sent on a connection whose
    # reply was still out, and the late replies (error replies) were not counted.
    assert [r for r in server.received if r.after_unanswered] == []
    assert_answered_later(server, delayed)


# -- dropped connections ----------------------------------------------------------------


@pytest.mark.parametrize("action", [Action.DROP, Action.CLOSE], ids=["tcp-shutdown", "close-1001"])
def test_dropped_connection_is_reopened_and_the_message_retried(action: Action) -> None:
    with ScriptedServer(on_nth_message(action)) as server:
        config = small_config(server.url)
        result, records = run(config)
    dropped = server.with_action(action)
    losses = expected_losses(config)
    assert len(dropped) == losses
    totals = result.totals
    assert (totals.success, totals.failure) == (200, 0), totals.failures_by_status
    assert totals.reconnections == totals.retries == losses
    assert statuses(records, final=False) == [Status.CONNECTION_CLOSED] * losses
    assert_answered_later(server, dropped)
    assert result.ok and verdict(result).startswith("OK")


# -- error replies --------------------------------------------------------------------


def test_error_reply_counts_failed_and_is_not_retried() -> None:
    every = 4

    def script(connection: int, number: int) -> Action:
        return Action.ERROR if connection > PROBE_CONNECTION and number % every == 0 else Action.REPLY

    with ScriptedServer(script) as server:
        config = small_config(server.url)
        result, records = run(config)
    refused = len(server.with_action(Action.ERROR))
    assert refused == 8 * (25 // every)
    totals = result.totals
    assert (totals.success, totals.failure) == (200 - refused, refused)
    assert totals.failures_by_status == {Status.ERROR: refused}
    assert (totals.retries, totals.reconnections, totals.connections) == (0, 0, 8)
    assert statuses(records, final=False) == []
    assert sorted(statuses(records, final=True)) \
        == sorted([Status.ERROR] * refused + [Status.SUCCESS] * (200 - refused))
    # Each message reached the server once: nothing was sent again.
    texts = [r.text for r in server.received if r.connection > PROBE_CONNECTION]
    assert len(texts) == len(set(texts)) == 200
    assert not result.ok and verdict(result) == f"FAILED: {refused} of 200 messages failed"


# -- silence --------------------------------------------------------------------------


def test_silent_server_every_attempt_times_out_and_each_message_counts_failed() -> None:
    attempts = 3
    with ScriptedServer(lambda connection, _: Action.REPLY if connection == PROBE_CONNECTION else Action.SILENT) \
            as server:
        config = small_config(server.url, messages=4, warmup_threads=0, warmup_messages=0, threads=4,
                              retry=RetryPolicy(max_attempts=attempts, backoff=0.01))
        result, records = run(config)
    totals = result.totals
    assert (totals.success, totals.failure) == (0, 4)
    assert totals.failures_by_status == {Status.TIMEOUT: 4}
    assert totals.retries == 4 * (attempts - 1)
    assert (totals.connections, totals.reconnections) == (4 * attempts, 4 * (attempts - 1))
    assert statuses(records, final=False) == [Status.TIMEOUT] * (4 * (attempts - 1))
    assert statuses(records, final=True) == [Status.TIMEOUT] * 4
    # Each attempt went out once, as the only message of a fresh connection.
    sent = [r for r in server.received if r.connection > PROBE_CONNECTION]
    assert len(sent) == 4 * attempts and {r.number for r in sent} == {1}
    assert verdict(result).startswith("FAILED: no message succeeded")


def test_server_that_never_answers_the_probe_is_reported_unreachable() -> None:
    with ScriptedServer(lambda connection, number: Action.SILENT) as server:
        result = LoadTest(small_config(server.url)).run()
    assert result.unreachable is not None and "did not answer the probe" in result.unreachable
    assert (result.generated, result.phases, result.totals.success) == (0, [], 0)
    assert verdict(result).startswith("FAILED: could not connect")


# -- a server killed and restarted mid-run --------------------------------------------------


@pytest.mark.timeout(60)
def test_server_killed_and_restarted_mid_run_every_message_counted() -> None:
    port = free_port()
    messages = 5_000
    with ExitStack() as servers:
        first = servers.enter_context(server_process("--port", str(port)))
        # Enough attempts to outlast a server process's start on a loaded machine:
        # 0.1 + 0.2 + … + 6.4 s of backoff.
        config = LoadTestConfig(first.url, messages=messages, warmup_threads=2, warmup_messages=250,
                                threads=8, timeout=1.0, retry=RetryPolicy(max_attempts=8, backoff=0.1),
                                seed=5, probe_messages=5)
        test = LoadTest(config)
        with BackgroundRun(test) as run:
            wait_until(lambda: test.snapshot().done >= 1_000, timeout=30, message="the run is under way")
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(5)
            done_at_kill = test.snapshot().done
            second = servers.enter_context(server_process("--port", str(port)))
            assert second.chat_port == port
            result = run.result(45, "the run did not finish after the restart")
    totals = result.totals
    assert done_at_kill < messages
    assert result.generated == messages == totals.success + totals.failure
    assert (totals.success, totals.failures_by_status) == (messages, {})
    # Every main sender held a connection when the server died, and had to open another.
    assert totals.reconnections >= config.threads
    assert not result.interrupted and result.ok
