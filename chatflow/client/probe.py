"""The round-trip probe: W of Little's Law, measured before the run (SPEC §2.4).

The probe's messages are made and framed as the generator makes them, and go through
the senders' own ``RetryingConnection``: the round trip it measures is the senders'.
"""

from __future__ import annotations

import random
import threading

from chatflow.client.config import LoadTestConfig
from chatflow.client.framing import MaskKeys
from chatflow.client.message_generator import OutgoingMessage, random_message
from chatflow.client.results import SenderStats
from chatflow.client.retry import RetryingConnection
from chatflow.metrics import Status
from chatflow.wire import is_success

#: Round trips left out of the mean at the start of each connection.
WARM_UP_ROUND_TRIPS = 10


class ServerUnreachable(Exception):
    """No connection could be opened before the run, or the probe got no answer."""


def probe_round_trip(config: LoadTestConfig, stop: threading.Event) -> float | None:
    """Mean round trip, in seconds, of one message on one connection with no other load.

    The probe's messages are not part of the run's count. A failed attempt is retried
    as a sender's is, by the same retry policy; a message that fails every attempt, or
    an error reply, raises ServerUnreachable. Returns None when ``stop`` is set first.
    """
    return RoundTripProbe(config, stop).run()


class RoundTripProbe:
    """``config.probe_messages`` round trips, each after the previous one's reply."""

    def __init__(self, config: LoadTestConfig, stop: threading.Event) -> None:
        self._rng = random.Random(config.seed)
        self._rooms = config.rooms
        self._room = self._rng.randint(1, config.rooms)
        self.url = config.room_url(self._room)
        self._wanted = config.probe_messages
        self._stop = stop
        self._max_attempts = config.retry.max_attempts
        #: The probe's own connections, not the run's.
        self._stats = SenderStats()
        self._connection = RetryingConnection(self.url, timeout=config.timeout, retry=config.retry, stop=stop,
                                              stats=self._stats, on_reply=self._on_reply,
                                              on_failure=self._on_failure)
        self._latencies_ms: list[float] = []
        self._warm_up = 0
        self._connections_seen = 0
        self._unreachable: str | None = None
        self._cancelled = False

    def run(self) -> float | None:
        """The mean round trip in seconds; None when stopped; raises ServerUnreachable."""
        mask_keys = MaskKeys()
        try:
            while len(self._latencies_ms) < self._wanted:
                if self._stop.is_set():
                    return None
                message, _ = random_message(self._rng, self._rooms)
                self._connection.deliver(OutgoingMessage.of(message, self._room, mask_keys))
                if self._unreachable is not None:
                    raise ServerUnreachable(self._unreachable)
                if self._cancelled:
                    return None
            return sum(self._latencies_ms) / len(self._latencies_ms) / 1000.0
        finally:
            self._connection.close()

    def _on_reply(self, item: OutgoingMessage, sent_ms: int, latency_ms: float, reply: bytes) -> None:
        if not is_success(reply):
            self._unreachable = f"the server at {self.url} answered the probe with an error: {reply[:200]!r}"
            return
        if self._stats.connections != self._connections_seen:
            self._connections_seen = self._stats.connections
            self._warm_up = WARM_UP_ROUND_TRIPS  # a new connection warms up again
        if self._warm_up:
            self._warm_up -= 1
        else:
            self._latencies_ms.append(latency_ms)

    def _on_failure(self, item: OutgoingMessage, sent_ms: int, latency_ms: float, status: str, final: bool) -> None:
        if not final:
            return
        if status == Status.CANCELLED:
            self._cancelled = True
            return
        what = (f"cannot connect to {self.url}" if status == Status.CONNECTION_FAILED
                else f"the server at {self.url} did not answer the probe")
        self._unreachable = f"{what}: {self._connection.last_error} ({self._max_attempts} attempts)"
