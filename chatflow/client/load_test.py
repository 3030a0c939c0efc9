"""A whole run: the round-trip probe, the warmup and main phases, the accounting.

Mirrors the Java client's main class: a generator thread fills the queue, a fixed
thread pool runs the senders of each phase, and each phase is timed on its own.
"""

from __future__ import annotations

import logging
import queue
import random
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import psutil

from chatflow.client.chat_websocket_client import ChatWebSocketClient, ConnectFailed, ConnectionClosed, ReplyTimeout
from chatflow.client.littles_law import Prediction, predict, with_result
from chatflow.client.message_generator import MessageGenerator, random_message
from chatflow.client.message_sender import MessageSender, RetryPolicy, SenderStats
from chatflow import wire
from chatflow.metrics import Recorder, Status
from chatflow.config import ClientDefaults

log = logging.getLogger("chatflow.client")

DEFAULTS = ClientDefaults()


class ServerUnreachable(Exception):
    """No connection could be opened before the run."""


@dataclass(frozen=True)
class LoadTestConfig:
    base_url: str
    messages: int = DEFAULTS.messages
    warmup_threads: int = DEFAULTS.warmup_threads
    warmup_messages: int = DEFAULTS.warmup_messages
    threads: int = DEFAULTS.threads
    timeout: float = DEFAULTS.timeout
    retry: RetryPolicy = RetryPolicy(DEFAULTS.max_attempts, DEFAULTS.backoff)
    rooms: int = DEFAULTS.rooms
    seed: int | None = None
    probe_messages: int = DEFAULTS.probe_messages

    def room_url(self, room: int) -> str:
        return f"{self.base_url}/chat/{room}"


@dataclass
class PhasePlan:
    name: str
    quotas: list[int]

    @property
    def threads(self) -> int:
        return len(self.quotas)

    @property
    def messages(self) -> int:
        return sum(self.quotas)


@dataclass
class PhaseResult:
    name: str
    threads: int
    planned: int
    stats: SenderStats
    duration_s: float

    @property
    def throughput(self) -> float:
        """Successful messages per second of the phase."""
        return self.stats.success / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def mean_latency_s(self) -> float | None:
        return self.stats.latency_sum / self.stats.success / 1000.0 if self.stats.success else None


@dataclass
class RunResult:
    config: LoadTestConfig
    round_trip_s: float | None = None
    phases: list[PhaseResult] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    generated: int = 0
    unsent: int = 0
    wall_s: float = 0.0
    client_cpu_s: float | None = None
    server_cpu_s: float | None = None
    #: This process's peak resident memory when the run ended (before any analysis).
    client_peak_rss_mib: float | None = None
    interrupted: bool = False
    unreachable: str | None = None
    last_error: str = ""

    @property
    def totals(self) -> SenderStats:
        total = SenderStats()
        for phase in self.phases:
            total.merge(phase.stats)
        total.failure += self.unsent
        if self.unsent:
            cancelled = Status.CANCELLED.value
            total.failures_by_status[cancelled] = total.failures_by_status.get(cancelled, 0) + self.unsent
        return total

    @property
    def phases_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @property
    def throughput(self) -> float:
        """Successful messages per second over the phases (no probe, no set-up)."""
        return self.totals.success / self.phases_s if self.phases_s > 0 else 0.0

    @property
    def client_cpu_us_per_message(self) -> float | None:
        return self._per_message_us(self.client_cpu_s)

    @property
    def server_cpu_us_per_message(self) -> float | None:
        return self._per_message_us(self.server_cpu_s)

    def _per_message_us(self, cpu_s: float | None) -> float | None:
        totals = self.totals
        done = totals.success + totals.failure
        return cpu_s / done * 1e6 if cpu_s is not None and done else None

    @property
    def ok(self) -> bool:
        totals = self.totals
        return (self.unreachable is None and not self.interrupted
                and totals.failure == 0 and totals.success == self.generated > 0)


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares that differ by at most one."""
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def plan_phases(config: LoadTestConfig) -> list[PhasePlan]:
    """Warmup: each warmup thread sends its fixed count; main: the rest, split evenly."""
    warmup_total = min(config.messages, config.warmup_threads * config.warmup_messages)
    plans = []
    if warmup_total:
        plans.append(PhasePlan("warmup", split(warmup_total, config.warmup_threads)))
    main_total = config.messages - warmup_total
    if main_total:
        plans.append(PhasePlan("main", split(main_total, config.threads)))
    return plans


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
                    client = ChatWebSocketClient(url, config.timeout)
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
        generator = MessageGenerator(config.messages, messages, self.stop, config.rooms, config.seed)
        cpu = _CpuMeter(self.server_pid)
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
                config.room_url(room), room, messages, quota,
                self.stop, config.timeout, config.retry, self.recorder,
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


class _CpuMeter:
    """CPU seconds of this process and, when it is local, of the server, over the phases."""

    def __init__(self, server_pid: int | None) -> None:
        self._client_start = time.process_time()
        self._server: psutil.Process | None = None
        if server_pid is not None:
            try:
                self._server = psutil.Process(server_pid)
            except psutil.Error:
                pass  # the local server is gone: the run will say so, this figure is missing
        self._server_start = self._server_cpu()

    def _server_cpu(self) -> float | None:
        if self._server is None:
            return None
        try:
            times = self._server.cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system

    def read(self) -> tuple[float, float | None]:
        client = time.process_time() - self._client_start
        end = self._server_cpu()
        server = end - self._server_start if end is not None and self._server_start is not None else None
        return client, server
