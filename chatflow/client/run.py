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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from chatflow.client.config import LoadTestConfig
from chatflow.client.cpu import CpuMeter, usable_cores
from chatflow.client.littles_law import Prediction, predict, with_result
from chatflow.client.message_generator import MessageGenerator
from chatflow.client.message_sender import MessageSender
from chatflow.client.plan import PhasePlan, plan_phases
from chatflow.client.probe import ServerUnreachable, probe_round_trip
from chatflow.client.results import PhaseResult, RunResult, SenderStats
from chatflow.metrics import Recorder


class LoadTest:
    """Runs the phases of one configuration; ``stop`` (Ctrl-C) ends it early but counted."""

    def __init__(self, config: LoadTestConfig, recorder: Recorder | None = None,
                 server_pid: int | None = None) -> None:
        self.config = config
        self.recorder = recorder
        self.server_pid = server_pid
        self.stop = threading.Event()
        self._senders: list[MessageSender] = []
        self._room_rng = random.Random(None if config.seed is None else config.seed + 1)

    def progress(self) -> tuple[int, int]:
        """(done, failed) so far; read from another thread without locks."""
        done = failed = 0
        for sender in list(self._senders):
            stats = sender.stats
            done += stats.success + stats.failure
            failed += stats.failure
        return done, failed

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

        messages: queue.SimpleQueue = queue.SimpleQueue()
        generator = MessageGenerator(config.messages, messages, self.stop, rooms=config.rooms, seed=config.seed)
        cpu = CpuMeter(self.server_pid)
        generator.start()
        # As the Java original, which makes its messages before sending: the senders
        # start on a full queue, and never wait for the generator.
        while not generator.primed.wait(0.1) and not self.stop.is_set():
            pass
        try:
            for plan in plans:
                if self.stop.is_set():
                    break
                phase = self._run_phase(plan, messages)
                result.phases.append(phase)
                result.predictions.append(with_result(predictions[plan.name], phase.throughput, phase.mean_latency_s))
        finally:
            result.interrupted = self.stop.is_set()
            self.stop.set()
            generator.join()
            result.generated = generator.generated
            result.unsent = _drain(messages)
            result.client_cpu_s, result.server_cpu_s = cpu.read()
            result.cores = usable_cores()
            result.client_peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            result.wall_s = time.monotonic() - started
            result.last_error = next((s.last_error for s in reversed(self._senders) if s.last_error), "")
        return result

    def _run_phase(self, plan: PhasePlan, messages: queue.SimpleQueue) -> PhaseResult:
        config = self.config
        senders = []
        for quota in plan.quotas:
            # As the Java original: each thread picks a random room and stays in it.
            room = self._room_rng.randint(1, config.rooms)
            senders.append(MessageSender(
                config.room_url(room), room, messages, quota, self.stop,
                timeout=config.timeout, retry=config.retry, recorder=self.recorder,
            ))
        self._senders.extend(senders)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=plan.threads, thread_name_prefix=f"{plan.name}-sender") as pool:
            futures = [pool.submit(sender.run) for sender in senders]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5)
        duration = time.perf_counter() - start
        stats = SenderStats()
        for future in futures:
            stats.merge(future.result())
        return PhaseResult(plan.name, plan.threads, plan.messages, stats, duration)


def _drain(messages: queue.SimpleQueue) -> int:
    """Messages generated but never taken by a sender (a stopped run)."""
    count = 0
    while True:
        try:
            messages.get_nowait()
        except queue.Empty:
            return count
        count += 1
