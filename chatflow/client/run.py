"""A whole run: the round-trip probe, the warmup and main phases, the accounting.

Mirrors the Java client's main class: a generator thread fills the queue, a fixed
thread pool runs the senders of each phase, and each phase is timed on its own.
"""

from __future__ import annotations

import queue
import random
import resource
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

from chatflow.client.config import LoadTestConfig
from chatflow.client.cpu import CpuMeter, usable_cores
from chatflow.client.fanout import FanoutTracker
from chatflow.client.histogram import empty_counts
from chatflow.client.littles_law import Prediction, predict, with_result
from chatflow.client.message_generator import MessageGenerator, OutgoingMessage
from chatflow.client.members import BroadcastRooms
from chatflow.client.message_sender import MessageSender
from chatflow.client.pacing import PacedSender, RowSink, Schedule
from chatflow.client.plan import PhasePlan, plan_phases
from chatflow.client.probe import ServerUnreachable, probe_round_trip
from chatflow.client.progress import ProgressSnapshot
from chatflow.client.results import PhaseResult, RunResult, SenderStats
from chatflow.metrics import Recorder


class LoadTest:
    """Runs the phases of one configuration; ``stop`` (Ctrl-C) ends it early but counted."""

    #: The processes its senders run in (``chatflow.client.workers`` for more than one).
    processes = 1

    def __init__(self, config: LoadTestConfig, recorder: Recorder | None = None,
                 server_pid: int | None = None, fanout_rows: Callable[[tuple], None] | None = None,
                 rate_rows: RowSink | None = None) -> None:
        self.config = config
        self.recorder = recorder
        #: The open loop's rows (``--rate``), with its two more columns.
        self.rate_rows = rate_rows
        #: The broadcast scenario's final rows, with their fan-out columns.
        self.fanout_rows = fanout_rows
        self.server_pid = server_pid
        self.stop = threading.Event()
        self._senders: list[MessageSender] = []
        self._messages: queue.SimpleQueue[OutgoingMessage] = queue.SimpleQueue()
        self._generator: MessageGenerator | None = None
        self._rooms: BroadcastRooms | None = None
        #: The phase running (warmup, main, drain), "" before the first: for the live progress.
        self.phase = ""

    def snapshot(self) -> ProgressSnapshot:
        """What the run has counted so far, for the live progress; read from another
        thread without locks (``ProgressSnapshot`` says what that means)."""
        return sample_senders(list(self._senders), self.phase, self.config.rate)

    def run(self, on_probe: Callable[[float, list[Prediction]], None] | None = None) -> RunResult:
        config = self.config
        result = RunResult(config)
        started = time.monotonic()
        try:
            result.round_trip_s = probe_round_trip(config, self.stop)
        except ServerUnreachable as exc:
            result.unreachable = str(exc)
        if result.round_trip_s is None:
            result.interrupted = result.unreachable is None
            result.wall_s = time.monotonic() - started
            return result
        plans = plan_phases(config)
        predictions = {p.name: predict(p.name, p.threads, result.round_trip_s) for p in plans}
        if on_probe is not None:
            on_probe(result.round_trip_s, list(predictions.values()))
        cpu = CpuMeter(self.server_pid)
        try:
            for phase in self._phases(plans, assign_rooms(plans, config)):
                result.phases.append(phase)
                result.predictions.append(with_result(predictions[phase.name], phase.throughput, phase.mean_latency_s))
        finally:
            result.interrupted = self.stop.is_set()
            self.stop.set()
            if self._rooms is not None:
                result.fanout = self._rooms.finish()
            self._finish(result)
            result.client_cpu_s, result.server_cpu_s = cpu.read()
            result.cores = usable_cores()
            result.wall_s = time.monotonic() - started
        return result

    def _phases(self, plans: list[PhasePlan], senders: list[list[SenderPlan]]) -> Iterator[PhaseResult]:
        """Each phase run to its end, in order, until the run is stopped."""
        config = self.config
        self._generator = MessageGenerator(config.messages, self._messages, self.stop, rooms=config.rooms,
                                           seed=config.seed)
        self._generator.start()
        # As the Java original, which makes its messages before sending: the senders
        # start on a full queue, and never wait for the generator.
        while not self._generator.primed.wait(0.1) and not self.stop.is_set():
            pass
        tracker = None
        if config.broadcast:
            # The rooms full before the first message: every member joined (or given up).
            self._rooms = BroadcastRooms(config, range(1, config.rooms + 1), self.fanout_rows)
            self._rooms.open()
            tracker = self._rooms.tracker
        for plan, phase_senders in zip(plans, senders):
            if self.stop.is_set():
                return
            self.phase = plan.name
            start = time.perf_counter()
            stats = run_senders(plan.name, phase_senders, self._messages, self.stop, config, self.recorder,
                                self._senders, tracker, self.rate_rows)
            yield PhaseResult(plan.name, plan.threads, plan.messages, stats, time.perf_counter() - start)
        if self._rooms is not None:
            self.phase = "drain"
            self._rooms.drain(self.stop)

    def _finish(self, result: RunResult) -> None:
        """What the run made and left once it has stopped: the generator's count, the
        messages still queued, the memory, the last error."""
        if self._generator is not None:
            self._generator.join()
            result.generated = self._generator.generated
        result.unsent = drain(self._messages)
        result.client_peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        result.last_error = next((s.last_error for s in reversed(self._senders) if s.last_error), "")


#: One sender of a phase: (its room, its quota of messages, the server it connects to).
SenderPlan = tuple[int, int, str]


def assign_rooms(plans: list[PhasePlan], config: LoadTestConfig) -> list[list[SenderPlan]]:
    """Each phase's senders as (room, quota, server). As the Java original, each thread
    picks a random room and stays in it; the same seed picks the same rooms however the
    senders are spread over processes (``chatflow.client.workers``). With several servers
    the senders of each phase are dealt over them in turn."""
    rng = random.Random(None if config.seed is None else config.seed + 1)
    servers = config.servers
    return [[(rng.randint(1, config.rooms), quota, servers[i % len(servers)]) for i, quota in enumerate(plan.quotas)]
            for plan in plans]


def run_senders(name: str, senders: list[SenderPlan], messages: queue.SimpleQueue, stop: threading.Event,
                config: LoadTestConfig, recorder: Recorder | None,
                started: list[MessageSender] | None = None, fanout: FanoutTracker | None = None,
                rate_rows: RowSink | None = None) -> SenderStats:
    """One phase's senders, each in a thread of a pool of that size, to their end; their
    counts added up. Each new sender is appended to ``started`` (for progress). With
    ``fanout`` (the broadcast scenario) the senders register their messages with it, and
    the phase counts the deliveries its members received meanwhile. In the open loop
    (``config.rate``) they are paced on one schedule that starts now, their rows going to
    ``rate_rows``."""
    stats = SenderStats()
    if not senders:
        return stats
    received = fanout.received if fanout is not None else 0
    if config.rate is not None:
        schedule = Schedule(config.schedule_profile())
        ready = threading.Barrier(len(senders), action=schedule.start)
        made = [PacedSender(config.room_url(room, server), room, messages, quota, stop, timeout=config.timeout,
                            retry=config.retry, schedule=schedule, index=i, stride=len(senders), ready=ready,
                            rows=rate_rows)
                for i, (room, quota, server) in enumerate(senders)]
    else:
        made = [MessageSender(config.room_url(room, server), room, messages, quota, stop,
                              timeout=config.timeout, retry=config.retry, recorder=recorder, fanout=fanout)
                for room, quota, server in senders]
    if started is not None:
        started.extend(made)
    with ThreadPoolExecutor(max_workers=len(made), thread_name_prefix=f"{name}-sender") as pool:
        futures = [pool.submit(sender.run) for sender in made]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5)
    for future in futures:
        stats.merge(future.result())
    if config.rate is not None:
        stats.schedule_s = schedule.elapsed_s()
    if fanout is not None:
        stats.deliveries = fanout.received - received
    return stats


def sample_senders(senders: list[MessageSender], phase: str = "", rate: float | None = None) -> ProgressSnapshot:
    """The senders' counts added up as they are now, written meanwhile by their threads:
    the live progress's sample (``LoadTest.snapshot``, and each worker's report). In the
    open loop (``rate``) its latencies are the response times, and its schedule the one
    of the last sender's phase. Costs a pass over each sender's histogram (about 0.2 ms
    for 64 senders), on the sampling thread."""
    done = failed = reconnections = 0
    latencies = []
    schedule = None
    for sender in senders:
        stats = sender.stats
        done += stats.success + stats.failure
        failed += stats.failure
        reconnections += stats.reconnections
        latencies.append(stats.response_counts if rate is not None else stats.latency_counts)
        if isinstance(sender, PacedSender):
            schedule = sender.schedule
    return ProgressSnapshot(
        phase=phase, done=done, failed=failed, reconnections=reconnections,
        latency_counts=list(map(sum, zip(*latencies))) if latencies else empty_counts(), rate=rate,
        schedule_s=schedule.elapsed_s() if schedule is not None and schedule.t0_ns is not None else None,
        profile=schedule.profile if schedule is not None else None)


def drain(messages: queue.SimpleQueue) -> int:
    """Messages generated but never taken by a sender (a stopped run)."""
    count = 0
    while True:
        try:
            messages.get_nowait()
        except queue.Empty:
            return count
        count += 1
