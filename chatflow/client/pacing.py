"""The open loop (``--rate``): each message has an intended send time on a fixed schedule.

Message *i* of the phase is meant to be sent at t0 + i / R (or where the ramp's stages put
it: ``chatflow.client.rate_profile``). The phase's S senders share
the slots: sender *s* takes slots *s*, *s + S*, *s + 2S*, … (so its own rate is R / S), and
its quota is the count of those slots (``plan.split`` gives the first ones one more). A
sender early for its slot sleeps until it; one late (its last reply came after the slot)
sends at once and the lag is counted: it never skips a slot and never has more than one
message in flight, so a slow server shows as lag and as response time, not as a lower
rate that looks like a faster server (coordinated omission, docs/client.md#open-loop---rate).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from time import perf_counter_ns, time_ns

from chatflow.client.histogram import bucket_of, empty_counts
from chatflow.client.config import BEHIND_TOLERANCE_MS, RetryPolicy
from chatflow.client.message_generator import OutgoingMessage
from chatflow.client.message_sender import MessageSender
from chatflow.client.rate_profile import RateProfile
from chatflow.client.results import SenderStats
from chatflow.metrics import SUCCESS

#: Takes a row of the open loop's metrics file (``chatflow.metrics.RATE_COLUMNS``): the writer.
RowSink = Callable[[tuple], None]


class Schedule:
    """One phase's slots: t0 on the monotonic clock, and the same instant on the epoch
    clock, so that an intended time can be written as the CSV's epoch ms. It starts once
    every sender has its connection open (``start``, the senders' barrier's action), so
    that the first slots are not late for the handshakes."""

    def __init__(self, profile: RateProfile) -> None:
        self.profile = profile
        self.t0_ns: int | None = None
        self.epoch_t0_ns = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Slot 0 now; a second call changes nothing."""
        with self._lock:
            if self.t0_ns is None:
                self.epoch_t0_ns, self.t0_ns = time_ns(), perf_counter_ns()

    def elapsed_s(self) -> float:
        """Seconds since slot 0 (0 before the start)."""
        return 0.0 if self.t0_ns is None else (perf_counter_ns() - self.t0_ns) / 1e9

    def slot_ns(self, slot: int) -> int:
        """Slot ``slot``'s intended time (``perf_counter_ns``)."""
        return self.t0_ns + round(self.profile.offset_s(slot) * 1e9)

    def epoch_ms(self, at_ns: int) -> float:
        """A ``perf_counter_ns`` time as epoch ms."""
        return (self.epoch_t0_ns + at_ns - self.t0_ns) / 1e6


#: How long a sender waits for the others' connections before the schedule starts anyway.
READY_TIMEOUT_S = 30.0


class PacedSender(MessageSender):
    """A sender that sends each message at its slot of the schedule, or at once when late.

    ``index`` and ``stride``: it takes slots index, index + stride, …. It opens its
    connection, then waits at ``ready`` for the phase's other senders. Its rows go to
    ``rows`` with the open loop's two more columns; its response and service times and
    its lag are counted in its stats."""

    def __init__(self, url: str, room: int, messages: queue.SimpleQueue[OutgoingMessage], quota: int,
                 stop: threading.Event, *, timeout: float, retry: RetryPolicy, schedule: Schedule, index: int,
                 stride: int, ready: threading.Barrier, rows: RowSink | None = None) -> None:
        super().__init__(url, room, messages, quota, stop, timeout=timeout, retry=retry)
        self.schedule = schedule
        self.index = index
        self.stride = stride
        self.rows = rows
        self.ready = ready
        self.recorder = self._record
        self._intended_ns = 0
        stats = self.stats
        stats.response_counts, stats.service_counts = empty_counts(), empty_counts()
        self._tolerance_ns = int(BEHIND_TOLERANCE_MS * 1e6)

    def run(self) -> SenderStats:
        schedule, stop, stats = self.schedule, self.stop, self.stats
        try:
            self._connection.open()
            try:
                self.ready.wait(READY_TIMEOUT_S)
            except threading.BrokenBarrierError:
                pass
            schedule.start()
            for k in range(self.quota):
                intended = schedule.slot_ns(self.index + k * self.stride)
                # Bounded: each wait ends by the slot (or the stop), and the clock moves on.
                slept = False
                while (now := perf_counter_ns()) < intended:
                    slept = True
                    if stop.wait((intended - now) / 1e9):
                        return stats
                item = self._take()
                if item is None:
                    break
                lag_ns = perf_counter_ns() - intended
                if lag_ns > self._tolerance_ns:
                    stats.behind += 1
                    if slept:
                        # Early for its slot, yet late sending: the client woke it late.
                        stats.behind_waking += 1
                    if lag_ns // 1000 > stats.lag_max_us:
                        stats.lag_max_us = lag_ns // 1000
                self._intended_ns = intended
                self._deliver(item)
        finally:
            self._connection.close()
        return stats

    def _record(self, sent_ms: int, type_name: str, latency_ms: float, status: str, room: int, final: bool) -> None:
        """Each attempt's row, with its intended time and its response time (intended →
        the outcome known); a success's two times counted."""
        intended = self._intended_ns
        response_ns = perf_counter_ns() - intended
        if final and status == SUCCESS:
            stats = self.stats
            response_us, service_us = response_ns // 1000, int(latency_ms * 1000)
            stats.response_counts[bucket_of(response_us)] += 1
            stats.response_sum_us += response_us
            stats.service_counts[bucket_of(service_us)] += 1
            if response_us > stats.response_max_us:
                stats.response_max_us = response_us
            if service_us > stats.service_max_us:
                stats.service_max_us = service_us
        rows = self.rows
        if rows is not None:
            rows((sent_ms, type_name, latency_ms, status, room, final, self.schedule.epoch_ms(intended),
                  response_ns / 1e6))
