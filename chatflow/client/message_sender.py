"""A sender: one thread, one persistent connection, messages from the shared queue.

Every message it takes ends counted as a success or a failure. A timeout or a dropped
connection is retried on a newly opened connection (``RetryingConnection``); an error
reply is a definite answer and is not retried. In the broadcast scenario (``fanout``)
each message is registered with the fan-out tracker right before its first send, and its
final row goes to the tracker, which writes it once its deliveries are settled.
"""

from __future__ import annotations

import logging
import queue
import threading

from chatflow.client.config import RetryPolicy
from chatflow.client.fanout import Entry, FanoutTracker
from chatflow.client.histogram import bucket_of
from chatflow.client.message_generator import OutgoingMessage
from chatflow.client.results import SenderStats
from chatflow.client.retry import RetryingConnection
from chatflow.metrics import CLIENT_ERROR, ERROR, SUCCESS, Recorder
from chatflow.wire import is_success

log = logging.getLogger("chatflow.client")


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
        fanout: FanoutTracker | None = None,
    ) -> None:
        self.url = url
        self.room = room
        self.messages = messages
        self.quota = quota
        self.stop = stop
        self.recorder = recorder
        self.stats = SenderStats()
        self.fanout = fanout
        #: The message in hand's fan-out entry, and that message (broadcast scenario).
        self._entry: Entry | None = None
        self._entry_of: OutgoingMessage | None = None
        self._connection = RetryingConnection(url, timeout=timeout, retry=retry, stop=stop, stats=self.stats,
                                              on_reply=self._on_reply, on_failure=self._on_failure,
                                              on_send=None if fanout is None else self._on_send)

    def run(self) -> SenderStats:
        """Take and deliver messages until the quota is met or the run is stopped."""
        try:
            for _ in range(self.quota):
                item = self._take()
                if item is None:
                    break
                self._deliver(item)
        finally:
            self._connection.close()
        return self.stats

    def _deliver(self, item: OutgoingMessage) -> None:
        """One message to its outcome, counted once whatever happens."""
        counted = self.stats.success + self.stats.failure
        try:
            self._connection.deliver(item)
        except Exception:
            # A bug (here or in the recorder) must neither lose the message in hand nor
            # count it twice.
            log.exception("sender for room %d failed on a message", self.room)
            self._connection.close()
            if self.stats.success + self.stats.failure == counted:
                self._count_failure(CLIENT_ERROR)

    @property
    def last_error(self) -> str:
        return self._connection.last_error

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

    def _on_reply(self, item: OutgoingMessage, sent_ms: int, latency_ms: float, reply: bytes) -> None:
        if not is_success(reply):
            self._on_failure(item, sent_ms, latency_ms, ERROR, True)
            return
        stats = self.stats
        stats.success += 1
        stats.latency_sum += latency_ms
        latency_us = int(latency_ms * 1000)
        stats.latency_counts[bucket_of(latency_us)] += 1
        if latency_us > stats.latency_max_us:
            stats.latency_max_us = latency_us
        if self.fanout is not None and self._settled(item, (sent_ms, item.type_name, latency_ms, SUCCESS, self.room,
                                                             True), True):
            return
        recorder = self.recorder
        if recorder is not None:
            recorder(sent_ms, item.type_name, latency_ms, SUCCESS, self.room, True)

    def _on_failure(self, item: OutgoingMessage, sent_ms: int, latency_ms: float, status: str, final: bool) -> None:
        if final:
            self._count_failure(status)
            if self.fanout is not None and self._settled(item, (sent_ms, item.type_name, latency_ms, status,
                                                                 self.room, True), False):
                return
        recorder = self.recorder
        if recorder is not None:
            recorder(sent_ms, item.type_name, latency_ms, status, self.room, final)

    def _on_send(self, item: OutgoingMessage) -> None:
        """Before each send: the message registered with the tracker at its first."""
        if self._entry_of is not item:
            self._entry_of = item
            self._entry = self.fanout.sent(self.room, item)

    def _settled(self, item: OutgoingMessage, row: tuple, success: bool) -> bool:
        """The final outcome handed to the tracker, which writes the row; False when the
        message was never sent (its row is written as it is)."""
        if self._entry_of is not item:
            return False
        self.fanout.outcome(self._entry, row, success)
        self._entry_of = self._entry = None
        return True

    def _count_failure(self, status: str) -> None:
        stats = self.stats
        stats.failure += 1
        stats.failures_by_status[status] = stats.failures_by_status.get(status, 0) + 1
