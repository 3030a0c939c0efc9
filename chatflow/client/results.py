"""What a run counted: each sender's counts, each phase's, and the whole run's."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from chatflow.client.client_wait import ClientWait, summarise_waits
from chatflow.client.histogram import bucket_of, empty_counts, latency_figures
from chatflow.client.config import RATE_HELD_FRACTION, LoadTestConfig
from chatflow.client.fanout import FanoutCounts
from chatflow.client.littles_law import Bounds, Prediction, predict_from_warmup
from chatflow.client.saturation import ClientLoad, client_load
from chatflow.metrics import Status


@dataclass
class SenderStats:
    """One sender's counts. Only its own thread writes them, so no lock is needed on
    the hot path; the run adds them up (``merge``) for progress and for the summary."""

    success: int = 0
    failure: int = 0
    connections: int = 0
    reconnections: int = 0
    retries: int = 0
    queue_empty: int = 0
    latency_sum: float = 0.0
    #: Each successful message's round trip (send → reply), a histogram
    #: (chatflow.client.histogram) and its exact max in µs: the run's percentiles.
    latency_counts: list[int] = field(default_factory=empty_counts)
    latency_max_us: int = 0
    failures_by_status: dict[str, int] = field(default_factory=dict)
    #: Room frames a broadcast server sent where a reply was awaited, passed over.
    room_frames: int = 0
    #: Deliveries the broadcast scenario's members received during the phase.
    deliveries: int = 0
    #: Each reply's client wait (chatflow.client.client_wait): µs in all, and a histogram.
    client_wait_sum_us: int = 0
    client_wait_counts: list[int] = field(default_factory=empty_counts)
    #: The open loop (``--rate``): its successful messages' response times (intended send
    #: → reply) and service times (actual send → reply), each a histogram and its exact
    #: max in µs; the messages sent more than ``BEHIND_TOLERANCE_MS`` after their intended
    #: time, and the largest lag in µs. Empty in the closed loop.
    response_counts: list[int] = field(default_factory=list)
    response_max_us: int = 0
    #: The response times in all, µs: their mean (summary.json, ``--threshold mean``).
    response_sum_us: int = 0
    service_counts: list[int] = field(default_factory=list)
    service_max_us: int = 0
    behind: int = 0
    #: Of ``behind``: those whose sender was early and slept, and woke late (the client's
    #: doing: its GIL, its other threads); the others' previous reply came after their slot.
    behind_waking: int = 0
    lag_max_us: int = 0
    #: The open loop's phase: seconds from the schedule's slot 0 to the phase's end.
    schedule_s: float = 0.0

    def add_client_wait(self, wait_us: int) -> None:
        self.client_wait_sum_us += wait_us
        self.client_wait_counts[bucket_of(wait_us)] += 1

    def merge(self, other: SenderStats) -> None:
        for f in fields(self):
            name = f.name
            if name == "failures_by_status":
                for status, count in other.failures_by_status.items():
                    self.failures_by_status[status] = self.failures_by_status.get(status, 0) + count
            elif name.endswith("_counts"):
                mine, theirs = getattr(self, name), getattr(other, name)
                setattr(self, name, [a + b for a, b in zip(mine, theirs)] if mine and theirs else list(mine or theirs))
            elif name.endswith("_max_us"):
                setattr(self, name, max(getattr(self, name), getattr(other, name)))
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class LostWorker:
    """A worker process (``--processes``) that ended before its final count."""

    index: int
    pid: int | None
    #: Negative: the signal that ended it.
    exitcode: int | None
    #: The phase it ended in, or "shutdown" after its last phase.
    phase: str
    #: Its messages counted failed (``worker_lost``).
    messages: int = 0
    error: str = ""

    def describe(self) -> str:
        if self.exitcode is None:
            how = "did not report"
        elif self.exitcode < 0:
            how = f"killed by signal {-self.exitcode}"
        else:
            how = f"exit status {self.exitcode}"
        when = "after its last phase" if self.phase == "shutdown" else f"during the {self.phase} phase"
        error = f": {self.error}" if self.error else ""
        return (f"worker {self.index} (pid {self.pid}) ended {when} ({how}{error}); "
                f"{self.messages:,} of its messages counted failed")


@dataclass(frozen=True)
class OpenLoop:
    """An open-loop run's schedule against what it did (docs/client.md#open-loop---rate).

    ``response_time`` is from each message's intended send time to its reply (what a user
    waiting for it sees, coordinated omission corrected); ``service_time`` from its actual
    send. Each: count, p50_ms, p95_ms, p99_ms (the middles of their histogram buckets,
    within 1/16) and the exact max_ms, of the successful messages."""

    asked_msg_s: float
    achieved_msg_s: float
    #: Messages sent (those cancelled before a send, by a stop, left out).
    messages: int
    behind: int
    #: Of ``behind``: late because their sender woke late from its sleep to the slot (the
    #: client), not because the previous reply came after the slot (the server, the network).
    behind_waking: int
    lag_max_ms: float
    response_time: dict
    service_time: dict
    #: The most messages a second the senders could send, one in flight each: senders ÷
    #: the mean service time; None without a successful message.
    senders_bound_msg_s: float | None

    @property
    def held(self) -> bool:
        return self.achieved_msg_s >= RATE_HELD_FRACTION * self.asked_msg_s


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

    @property
    def deliveries_per_s(self) -> float:
        """The broadcast scenario's deliveries to members per second of the phase."""
        return self.stats.deliveries / self.duration_s if self.duration_s > 0 else 0.0


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
    #: The CPUs this process could run on, for the CPU ceiling.
    cores: int | None = None
    interrupted: bool = False
    unreachable: str | None = None
    last_error: str = ""
    #: The processes the senders ran in (``--processes``), and the workers that ended early.
    processes: int = 1
    lost_workers: list[LostWorker] = field(default_factory=list)
    #: The broadcast scenario's deliveries; None in the echo scenario.
    fanout: FanoutCounts | None = None

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

    def phase(self, name: str) -> PhaseResult | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def bounds(self) -> Bounds | None:
        """The main phase against the round trip and the CPU; None without a main phase."""
        main = self.phase("main")
        if main is None:
            return None
        warmup = self.phase("warmup")
        client_us, server_us = self.client_cpu_us_per_message, self.server_cpu_us_per_message
        return Bounds(
            threads=main.threads,
            actual=main.throughput,
            warmup=predict_from_warmup(main.threads, warmup.mean_latency_s if warmup else None,
                                       main.throughput, main.mean_latency_s),
            idle=next((p for p in self.predictions if p.phase == "main"), None),
            cores=self.cores,
            cpu_s_per_message=(client_us + server_us) / 1e6 if client_us is not None and server_us is not None
            else None,
        )

    @property
    def client_wait(self) -> ClientWait | None:
        """The replies' client waits over the phases; None where none was measured."""
        totals = self.totals
        mean_latency_ms = totals.latency_sum / totals.success if totals.success else None
        return summarise_waits(totals.client_wait_counts, totals.client_wait_sum_us, mean_latency_ms)

    @property
    def open_loop(self) -> OpenLoop | None:
        """The schedule against what the run did; None in the closed loop (or with no phase)."""
        config = self.config
        if config.rate is None or not self.phases:
            return None
        totals = self.totals
        mean_service_s = totals.latency_sum / totals.success / 1000.0 if totals.success else None
        threads = max(p.threads for p in self.phases)
        return OpenLoop(
            asked_msg_s=config.rate,
            achieved_msg_s=totals.success / totals.schedule_s if totals.schedule_s > 0 else 0.0,
            messages=totals.success + totals.failure - totals.failures_by_status.get(Status.CANCELLED.value, 0),
            behind=totals.behind, behind_waking=totals.behind_waking, lag_max_ms=totals.lag_max_us / 1000.0,
            response_time=latency_figures(totals.response_counts or empty_counts(), totals.response_max_us),
            service_time=latency_figures(totals.service_counts or empty_counts(), totals.service_max_us),
            senders_bound_msg_s=threads / mean_service_s if mean_service_s else None)

    @property
    def client_load(self) -> ClientLoad | None:
        """The client's cores used over the phases, and whether it was saturated."""
        wait = self.client_wait
        return client_load(self.client_cpu_s, self.phases_s, self.cores, wait.share if wait else None,
                           self.processes)

    @property
    def ok(self) -> bool:
        totals = self.totals
        return (self.unreachable is None and not self.interrupted
                and totals.failure == 0 and totals.success == self.generated > 0
                and (self.fanout is None or self.fanout.ok))
