"""A message's attempts on one room's connection: reconnection and backoff, by a RetryPolicy.

The senders and the round-trip probe send through the same ``RetryingConnection``, so
the probe's round trip is measured on the senders' own path, and fails as theirs do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from time import perf_counter, time_ns

from chatflow.client.chat_websocket_client import ChatWebSocketClient, ConnectFailed, ConnectionClosed, ReplyTimeout
from chatflow.client.config import RetryPolicy
from chatflow.client.message_generator import OutgoingMessage
from chatflow.client.results import SenderStats
from chatflow.metrics import CANCELLED, CONNECTION_CLOSED, CONNECTION_FAILED, TIMEOUT
from chatflow.timestamps import now_ms
from chatflow.wire import ROOM_FRAME_PREFIX

log = logging.getLogger("chatflow.client")

#: (message, epoch ms at send, latency ms, the reply's payload)
OnReply = Callable[[OutgoingMessage, int, float, bytes], None]
#: (message, epoch ms at send, latency ms, status, final): ``final`` for its last attempt.
OnFailure = Callable[[OutgoingMessage, int, float, str, bool], None]
#: (message): called right before each of its attempts' send (the broadcast scenario's).
OnSend = Callable[[OutgoingMessage], None]


class RetryingConnection:
    """One room's persistent connection, and each message's attempts on it.

    A timeout or a dropped connection ends the connection (a late reply must never be
    taken for the next message's) and, after the policy's backoff, the next attempt
    opens a new one; a reply of any kind ends the message's attempts. Each reply goes
    to ``on_reply``, each failed attempt to ``on_failure``; connections, reconnections
    and retries are counted in ``stats``. Room frames that come where a reply is awaited
    (a broadcast server's: the sender is a member of its room) are passed over within the
    reply's timeout and counted. Used by one thread at a time.
    """

    def __init__(self, url: str, *, timeout: float, retry: RetryPolicy, stop: threading.Event,
                 stats: SenderStats, on_reply: OnReply, on_failure: OnFailure,
                 on_send: OnSend | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.retry = retry
        self.stop = stop
        self.stats = stats
        self.on_reply = on_reply
        self.on_failure = on_failure
        self.on_send = on_send
        #: What went wrong last (a refused connection, a timeout), for the run's verdict.
        self.last_error = ""
        self._client: ChatWebSocketClient | None = None

    def deliver(self, item: OutgoingMessage) -> None:
        """Send ``item`` until a reply comes, the attempts run out or ``stop`` is set."""
        retry, on_send = self.retry, self.on_send
        for attempt in range(1, retry.max_attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
                if self.stop.wait(retry.delay(attempt)):
                    self.on_failure(item, now_ms(), 0.0, CANCELLED, True)
                    return
            if self._client is None and not self._connect():
                self._attempt_failed(item, attempt, CONNECTION_FAILED, now_ms(), 0.0)
                continue
            client = self._client
            if on_send is not None:
                on_send(item)
            sent_ms = now_ms()
            start = perf_counter()
            try:
                reply = client.request(item.frame)
                if reply.startswith(ROOM_FRAME_PREFIX):
                    reply, skipped = client.reply_after_room_frames(start + self.timeout)
                    self.stats.room_frames += skipped
            except ReplyTimeout as exc:
                status = TIMEOUT
                self.last_error = str(exc)
            except ConnectionClosed as exc:
                status = CONNECTION_CLOSED
                self.last_error = str(exc)
            else:
                latency_ms = (perf_counter() - start) * 1000.0
                received_ns = client.socket.received_ns
                if received_ns is not None:
                    # The reply's client wait: from the kernel's receive to this clock read.
                    self.stats.add_client_wait(max(0, time_ns() - received_ns) // 1000)
                self.on_reply(item, sent_ms, latency_ms, reply)
                return
            latency_ms = (perf_counter() - start) * 1000.0
            self.close()
            self._attempt_failed(item, attempt, status, sent_ms, latency_ms)

    def open(self) -> bool:
        """Connect now unless connected (the open loop's senders, before the schedule
        starts); False if it failed, and the first attempt tries again."""
        return self._client is not None or self._connect()

    def close(self) -> None:
        """Drop the connection; the next attempt opens a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _attempt_failed(self, item: OutgoingMessage, attempt: int, status: str, sent_ms: int,
                        latency_ms: float) -> None:
        self.on_failure(item, sent_ms, latency_ms, status, attempt == self.retry.max_attempts)

    def _connect(self) -> bool:
        try:
            self._client = ChatWebSocketClient(self.url, timeout=self.timeout)
        except ConnectFailed as exc:
            self.last_error = str(exc)
            log.debug("connect to %s failed: %s", self.url, exc)
            return False
        if self.stats.connections:
            self.stats.reconnections += 1
        self.stats.connections += 1
        return True
