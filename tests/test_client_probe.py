"""The round-trip probe (SPEC §2.4): W measured through the senders' own connection and
retries, warm-up round trips left out on every connection, and its clear failures.

The scripted servers decide each message's fate by (connection, message number), so
the probe's attempts can be compared with a sender's as the server saw them.
"""

from __future__ import annotations

import queue
import random
import threading

import pytest

from chatflow.client.config import LoadTestConfig, RetryPolicy
from chatflow.client.framing import MaskKeys
from chatflow.client.message_generator import OutgoingMessage, random_message
from chatflow.client.message_sender import MessageSender
from chatflow.client.probe import WARM_UP_ROUND_TRIPS, ServerUnreachable, probe_round_trip
from chatflow.metrics import Status
from tests.support.scripted_server import Action, Script, ScriptedServer
from tests.support.waiting import wait_until

TIMEOUT_S = 0.5
FAST_RETRY = RetryPolicy(max_attempts=3, backoff=0.01)


def probe_config(url: str, **options) -> LoadTestConfig:
    settings = dict(timeout=TIMEOUT_S, retry=FAST_RETRY, seed=1, probe_messages=5)
    settings.update(options)
    return LoadTestConfig(url, **settings)


def attempts(server: ScriptedServer) -> list[tuple[int, int, str]]:
    """(connection, message number on it, text) of every message the server got."""
    return [(r.connection, r.number, r.text) for r in server.received]


def drop_first_messages(failing_connections: int) -> Script:
    """The first message of each of the first ``failing_connections`` connections is dropped."""
    return lambda connection, number: Action.DROP if connection <= failing_connections else Action.REPLY


def test_the_probe_measures_its_round_trips_after_the_warm_up() -> None:
    with ScriptedServer(lambda connection, number: Action.REPLY) as server:
        round_trip = probe_round_trip(probe_config(server.url), threading.Event())
    assert round_trip is not None and round_trip > 0
    assert [(c, n) for c, n, _ in attempts(server)] == [(1, n) for n in range(1, WARM_UP_ROUND_TRIPS + 6)]


def test_a_failed_probe_message_is_retried_as_a_senders_is() -> None:
    """Two dropped connections, then a good one: the server sees the probe's attempts
    exactly as it sees a sender's, the same message sent again on each new connection."""
    with ScriptedServer(drop_first_messages(2)) as server:
        assert probe_round_trip(probe_config(server.url), threading.Event()) is not None
    probe_attempts = attempts(server)

    mask_keys = MaskKeys()
    messages: queue.SimpleQueue[OutgoingMessage] = queue.SimpleQueue()
    rng = random.Random(1)
    for _ in range(len(probe_attempts)):
        messages.put(OutgoingMessage.of(random_message(rng, 20)[0], 1, mask_keys))
    records: list[tuple] = []
    with ScriptedServer(drop_first_messages(2)) as server:
        sender = MessageSender(f"{server.url}/chat/1", 1, messages, len(probe_attempts) - 2, threading.Event(),
                               timeout=TIMEOUT_S, retry=FAST_RETRY, recorder=lambda *record: records.append(record))
        stats = sender.run()
    sender_attempts = attempts(server)

    shape = [(c, n) for c, n, _ in probe_attempts]
    assert shape == [(c, n) for c, n, _ in sender_attempts]
    assert shape[:3] == [(1, 1), (2, 1), (3, 1)]
    assert len({text for _, _, text in probe_attempts[:3]}) == 1, "the probe's first message was not the one resent"
    assert len({text for _, _, text in sender_attempts[:3]}) == 1
    assert (stats.connections, stats.reconnections, stats.retries, stats.failure) == (3, 2, 2, 0)
    assert [record[3] for record in records[:2]] == [Status.CONNECTION_CLOSED] * 2


def test_every_new_connection_warms_up_again() -> None:
    """Connection 1 drops its 13th message: 10 warm-up and 2 measured round trips there,
    then the dropped message and 9 more warm up connection 2 before the last 3."""
    def script(connection: int, number: int) -> Action:
        return Action.DROP if (connection, number) == (1, WARM_UP_ROUND_TRIPS + 3) else Action.REPLY

    with ScriptedServer(script) as server:
        assert probe_round_trip(probe_config(server.url), threading.Event()) is not None
    per_connection = [sum(1 for c, _, _ in attempts(server) if c == connection) for connection in (1, 2)]
    assert per_connection == [WARM_UP_ROUND_TRIPS + 3, WARM_UP_ROUND_TRIPS + 3]
    assert len(attempts(server)) == sum(per_connection)


def test_a_probe_message_that_fails_every_attempt_makes_the_server_unreachable() -> None:
    with ScriptedServer(lambda connection, number: Action.DROP) as server:
        with pytest.raises(ServerUnreachable, match=r"did not answer the probe: .* \(3 attempts\)$"):
            probe_round_trip(probe_config(server.url), threading.Event())
    assert [(c, n) for c, n, _ in attempts(server)] == [(1, 1), (2, 1), (3, 1)]


def test_an_error_reply_to_the_probe_makes_the_server_unreachable_at_once() -> None:
    with ScriptedServer(lambda connection, number: Action.ERROR) as server:
        with pytest.raises(ServerUnreachable, match=r"answered the probe with an error: .*refused"):
            probe_round_trip(probe_config(server.url), threading.Event())
    assert len(server.received) == 1


def test_a_stop_during_the_probes_backoff_returns_none() -> None:
    stop = threading.Event()
    results: list[float | None] = []
    with ScriptedServer(lambda connection, number: Action.DROP) as server:
        config = probe_config(server.url, retry=RetryPolicy(max_attempts=3, backoff=30.0))
        thread = threading.Thread(target=lambda: results.append(probe_round_trip(config, stop)), daemon=True)
        thread.start()
        wait_until(lambda: server.received, message="the probe's first attempt")
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and results == [None]
