"""A sender: one thread, one persistent connection, messages from the shared queue.

Every message it takes ends counted as a success or a failure. A timeout or a dropped
connection is retried (up to ``max_attempts`` attempts, exponential backoff) on a newly
opened connection; an error reply is a definite answer and is not retried.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from chatflow.client.chat_websocket_client import (
    ChatWebSocketClient,
    ConnectFailed,
    ConnectionClosed,
    ReplyTimeout,
)
from chatflow.client.message_generator import OutgoingMessage
from chatflow.client.results import SenderStats
from chatflow.client.retry import RetryPolicy
from chatflow.metrics import Recorder, Status
from chatflow.timestamps import now_ms
from chatflow.wire import is_success

log = logging.getLogger("chatflow.client")

# Plain str values on the per-message path: an enum member costs a lookup each time,
# and the CSV writer formats a str faster.
SUCCESS, ERROR, TIMEOUT = Status.SUCCESS.value, Status.ERROR.value, Status.TIMEOUT.value
CONNECTION_CLOSED, CONNECTION_FAILED = Status.CONNECTION_CLOSED.value, Status.CONNECTION_FAILED.value
CANCELLED, CLIENT_ERROR = Status.CANCELLED.value, Status.CLIENT_ERROR.value


class MessageSender:
    """Sends ``quota`` messages from ``messages`` to one room, over one connection."""

    def __init__(
        self,
        url: str,
        room: int,
        messages: queue.SimpleQueue[OutgoingMessage],
        quota: int,
        stop: threading.Event,
        *,
        timeout: float,
        retry: RetryPolicy,
        recorder: Recorder | None = None,
    ) -> None:
        self.url = url
        self.room = room
        self.messages = messages
        self.quota = quota
        self.stop = stop
        self.timeout = timeout
        self.retry = retry
        self.recorder = recorder
        self.stats = SenderStats()
        self._client: ChatWebSocketClient | None = None
        self._last_error = ""

    def run(self) -> SenderStats:
        """Take and deliver messages until the quota is met or the run is stopped."""
        try:
            for _ in range(self.quota):
                item = self._take()
                if item is None:
                    break
                counted = self.stats.success + self.stats.failure
                try:
                    self._deliver(item)
                except Exception:
                    # A bug (here or in the recorder) must neither lose the message in
                    # hand nor count it twice.
                    log.exception("sender for room %d failed on a message", self.room)
                    self._drop_connection()
                    if self.stats.success + self.stats.failure == counted:
                        self._count_failure(CLIENT_ERROR)
        finally:
            self._drop_connection()
        return self.stats

    def _take(self) -> OutgoingMessage | None:
        """The next message; None once the run is stopped, even with messages queued."""
        if self.stop.is_set():
            return None
        try:
            return self.messages.get_nowait()
        except queue.Empty:
            self.stats.queue_empty += 1
        while not self.stop.is_set():
            try:
                return self.messages.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _deliver(self, item: OutgoingMessage) -> None:
        stats = self.stats
        for attempt in range(1, self.retry.max_attempts + 1):
            if attempt > 1:
                stats.retries += 1
                if self.stop.wait(self.retry.delay(attempt)):
                    self._fail(item, CANCELLED)
                    return
            if self._client is None and not self._connect():
                self._attempt_failed(item, attempt, CONNECTION_FAILED, now_ms(), 0.0)
                continue
            sent_ms = now_ms()
            start = time.perf_counter()
            try:
                reply = self._client.request_frame(item.frame)
            except ReplyTimeout as exc:
                status = TIMEOUT
                self._last_error = str(exc)
            except ConnectionClosed as exc:
                status = CONNECTION_CLOSED
                self._last_error = str(exc)
            else:
                latency_ms = (time.perf_counter() - start) * 1000.0
                if is_success(reply):
                    stats.success += 1
                    stats.latency_sum += latency_ms
                    self._record(sent_ms, item, latency_ms, SUCCESS, True)
                else:
                    self._fail(item, ERROR, sent_ms, latency_ms)
                return
            latency_ms = (time.perf_counter() - start) * 1000.0
            # A late reply must never be taken for the next message's: this
            # connection is done.
            self._drop_connection()
            self._attempt_failed(item, attempt, status, sent_ms, latency_ms)

    def _attempt_failed(self, item: OutgoingMessage, attempt: int, status: str, sent_ms: int, latency_ms: float) -> None:
        if attempt == self.retry.max_attempts:
            self._fail(item, status, sent_ms, latency_ms)
        else:
            self._record(sent_ms, item, latency_ms, status, False)

    def _connect(self) -> bool:
        try:
            self._client = ChatWebSocketClient(self.url, timeout=self.timeout)
        except ConnectFailed as exc:
            self._last_error = str(exc)
            log.debug("connect to %s failed: %s", self.url, exc)
            return False
        if self.stats.connections:
            self.stats.reconnections += 1
        self.stats.connections += 1
        return True

    def _drop_connection(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _fail(self, item: OutgoingMessage, status: str, sent_ms: int | None = None, latency_ms: float = 0.0) -> None:
        self._count_failure(status)
        self._record(sent_ms if sent_ms is not None else now_ms(), item, latency_ms, status, True)

    def _count_failure(self, status: str) -> None:
        stats = self.stats
        stats.failure += 1
        stats.failures_by_status[status] = stats.failures_by_status.get(status, 0) + 1

    def _record(self, sent_ms: int, item: OutgoingMessage, latency_ms: float, status: str, final: bool) -> None:
        if self.recorder is not None:
            self.recorder(sent_ms, item.message_type.value, latency_ms, status, self.room, final)

    @property
    def last_error(self) -> str:
        return self._last_error
