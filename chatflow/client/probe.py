"""The round-trip probe: W of Little's Law, measured before the run (SPEC §2.4)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from chatflow import wire
from chatflow.client.chat_websocket_client import ChatWebSocketClient, ConnectFailed, ConnectionClosed, ReplyTimeout
from chatflow.client.config import LoadTestConfig
from chatflow.client.message_generator import random_message


class ServerUnreachable(Exception):
    """No connection could be opened before the run."""


WARM_UP_ROUND_TRIPS = 10


def probe_round_trip(config: LoadTestConfig, stop: threading.Event,
                     clock: Callable[[], float] = time.perf_counter) -> float | None:
    """Mean round trip of one message on one connection, no other load (W of Little's Law).

    The probe's messages are not part of the run's count. A timeout or a dropped
    connection is retried on a new connection like a sender's; after the retry policy's
    number of failures the server is declared unreachable (ServerUnreachable). Returns
    None when ``stop`` is set first.
    """
    rng = random.Random(config.seed)
    url = config.room_url(rng.randint(1, config.rooms))
    client: ChatWebSocketClient | None = None
    samples: list[float] = []
    failures = 0
    warm_up = WARM_UP_ROUND_TRIPS
    try:
        while len(samples) < config.probe_messages:
            if stop.is_set():
                return None
            try:
                if client is None:
                    client = ChatWebSocketClient(url, timeout=config.timeout)
                    warm_up = WARM_UP_ROUND_TRIPS  # a new connection warms up again
                payload = wire.encode_chat_message(random_message(rng, config.rooms)[0])
                start = clock()
                reply = client.request(payload)
                elapsed = clock() - start
            except (ConnectFailed, ReplyTimeout, ConnectionClosed) as exc:
                failures += 1
                if client is not None:
                    client.close()
                    client = None
                if failures >= config.retry.max_attempts:
                    what = (f"cannot connect to {url}" if isinstance(exc, ConnectFailed)
                            else f"the server at {url} did not answer the probe")
                    raise ServerUnreachable(f"{what}: {exc} ({failures} attempts)") from exc
                if stop.wait(config.retry.delay(failures + 1)):
                    return None
                continue
            if not wire.is_success(reply):
                raise ServerUnreachable(f"the server at {url} answered the probe with an error: {reply[:200]!r}")
            failures = 0  # the attempts are per round trip, as a sender's per message
            if warm_up:
                warm_up -= 1
            else:
                samples.append(elapsed)
        return sum(samples) / len(samples)
    finally:
        if client is not None:
            client.close()
