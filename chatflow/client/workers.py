"""``--processes N``: the senders spread over worker processes, one run for the user.

Each worker is a process of its own, with its own GIL, running a share of every phase's
sender threads with its own generator and CSV writer. This process probes, starts each
phase in every worker at once and ends it when the last worker's senders have (a
barrier, so a phase's time means what it means in one process), adds up the counts and
merges the CSV parts into the one metrics file. A worker that ends before reporting is
said so, and its unfinished messages are counted failed (``worker_lost``);
Ctrl-C reaches this process only, which stops the workers (docs/client.md#several-processes).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import queue
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import RawArray
from pathlib import Path

from chatflow.client.config import LoadTestConfig
from chatflow.client.csv_writer import CsvWriter, MergedCsv, final_outcomes
from chatflow.client.histogram import BUCKETS
from chatflow.client.message_generator import QUEUE_SIZE, MessageGenerator
from chatflow.client.message_sender import MessageSender
from chatflow.client.plan import PhasePlan
from chatflow.client.progress import ProgressSnapshot
from chatflow.client.results import LostWorker, PhaseResult, RunResult, SenderStats
from chatflow.client.run import LoadTest, SenderPlan, drain, run_senders, sample_senders
from chatflow.metrics import WORKER_LOST

#: Per worker, in the shared progress array: messages done, failed, peak RSS (KiB),
#: reconnections (their offsets below); and in a second array, its senders' histogram of
#: round trips (``latency_counts``), BUCKETS long.
PROGRESS_FIELDS = 4
DONE, FAILED, RSS_KIB, RECONNECTIONS = range(PROGRESS_FIELDS)
PROGRESS_INTERVAL = 0.25
#: How often the coordinator looks at the stop flag while it waits on the workers.
POLL = 0.1
#: Beyond the reply timeout, how long a stopped or finished worker may take to report.
STOP_GRACE = 10.0


@dataclass(frozen=True)
class WorkerPlan:
    """One worker's share: its senders in each phase, its seed, its part of the CSV."""

    index: int
    phases: list[tuple[str, list[SenderPlan]]]
    seed: str | None
    part: Path
    #: Its generator's queue: its share of the one process's, so that N workers hold no
    #: more messages than one process would.
    capacity: int = QUEUE_SIZE

    @property
    def messages(self) -> int:
        return sum(quota for _, senders in self.phases for _, quota, _ in senders)


def spread(plans: list[PhasePlan], senders: list[list[SenderPlan]], processes: int,
           seed: int | None, part: Callable[[int], Path]) -> list[WorkerPlan]:
    """Every phase's senders dealt round-robin, worker i taking senders i, i + N, …;
    each worker's generator seeded from the run's seed and its index."""
    return [WorkerPlan(i, [(plan.name, phase[i::processes]) for plan, phase in zip(plans, senders)],
                       None if seed is None else f"{seed}/{i}", part(i), max(1, QUEUE_SIZE // processes))
            for i in range(processes)]


@dataclass
class WorkerFinal:
    """What a worker reports once its senders have stopped."""

    generated: int
    unsent: int
    last_error: str
    csv_error: str | None


# -- in the worker process ----------------------------------------------------------


def worker_main(plan: WorkerPlan, config: LoadTestConfig, conn: multiprocessing.connection.Connection,
                progress: RawArray, latency: RawArray) -> None:
    """A worker: its generator primed, then each phase it is told to run, then its final count.

    Commands: ("phase", index), ("stop",), ("finish",); a closed pipe (the coordinator
    gone) stops it as ("stop",) does. An error of its own ends it with one line to the
    coordinator, never a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _work(plan, config, conn, progress, latency)
    except Exception as exc:  # reported, and the coordinator counts its messages
        try:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
        sys.exit(1)


def _work(plan: WorkerPlan, config: LoadTestConfig, conn: multiprocessing.connection.Connection,
          progress: RawArray, latency: RawArray) -> None:
    stop = threading.Event()
    commands: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
    threading.Thread(target=_listen, args=(conn, stop, commands), name="control", daemon=True).start()
    writer = CsvWriter(plan.part.parent, plan.part)
    writer.start()
    messages: queue.SimpleQueue = queue.SimpleQueue()
    generator = MessageGenerator(plan.messages, messages, stop, rooms=config.rooms, seed=plan.seed,
                                 capacity=plan.capacity)
    senders: list[MessageSender] = []
    done = threading.Event()
    reporter = threading.Thread(target=_report_progress, args=(progress, latency, plan.index, senders, done),
                                name="progress", daemon=True)
    reporter.start()
    generator.start()
    try:
        while not generator.primed.wait(POLL) and not stop.is_set():
            pass
        conn.send(("ready",))
        while (command := commands.get()) is not None and command[0] == "phase":
            name, phase_senders = plan.phases[command[1]]
            stats = run_senders(name, phase_senders, messages, stop, config, writer.record, senders)
            conn.send(("phase", command[1], stats))
    finally:
        stop.set()
        generator.join()
        unsent = drain(messages)
        writer.close()
        done.set()
        reporter.join()
        last_error = next((s.last_error for s in reversed(senders) if s.last_error), "")
        try:
            conn.send(("final", WorkerFinal(generator.generated, unsent, last_error, writer.error)))
        except OSError:
            pass  # the coordinator is gone


def _listen(conn: multiprocessing.connection.Connection, stop: threading.Event,
            commands: queue.SimpleQueue) -> None:
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            command = ("stop",)
        if command[0] != "phase":
            stop.set()
            commands.put(None)
            return
        commands.put(command)


def _report_progress(progress: RawArray, latency: RawArray, index: int, senders: list[MessageSender],
                     done: threading.Event) -> None:
    """The worker's counts to the shared arrays, every PROGRESS_INTERVAL until ``done``
    (about 0.1 ms a time for 32 senders: a pass over their histograms)."""
    base = index * PROGRESS_FIELDS
    while True:
        finished = done.wait(PROGRESS_INTERVAL)
        counted = sample_senders(list(senders))
        progress[base + DONE], progress[base + FAILED] = counted.done, counted.failed
        progress[base + RECONNECTIONS] = counted.reconnections
        progress[base + RSS_KIB] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        latency[index * BUCKETS:(index + 1) * BUCKETS] = counted.latency_counts
        if finished:
            return


# -- in the coordinating process ----------------------------------------------------


@dataclass
class Worker:
    """The coordinator's handle on one worker process and what it has reported."""

    plan: WorkerPlan
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    ready: bool = False
    phases: dict[int, SenderStats] = field(default_factory=dict)
    final: WorkerFinal | None = None
    ended: bool = False
    #: Its one line, when an error of its own ended it.
    error: str = ""
    #: The phase it ended in without reporting, once counted; counted at most once.
    lost: LostWorker | None = None

    def send(self, command: tuple) -> None:
        if not self.ended:
            try:
                self.conn.send(command)
            except OSError:
                pass  # it has ended: its sentinel says so next

    def receive(self) -> None:
        """Every report waiting on the pipe; at its end, the worker has ended."""
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if message[0] == "ready":
                    self.ready = True
                elif message[0] == "phase":
                    self.phases[message[1]] = message[2]
                elif message[0] == "final":
                    self.final = message[1]
                else:
                    self.error = message[1]
        except (EOFError, OSError):
            self.ended = True

    def reported(self) -> SenderStats:
        total = SenderStats()
        for stats in self.phases.values():
            total.merge(stats)
        return total


class MultiProcessLoadTest(LoadTest):
    """The run of ``LoadTest`` with its senders in ``processes`` worker processes.

    The metrics go to ``output``'s part files, merged into its one file at the end.
    """

    def __init__(self, config: LoadTestConfig, processes: int, output: MergedCsv,
                 server_pid: int | None = None) -> None:
        super().__init__(config, recorder=None, server_pid=server_pid)
        self.processes = processes
        self.output = output
        self._context = multiprocessing.get_context("spawn")
        self._progress = RawArray("q", PROGRESS_FIELDS * processes)
        self._latency = RawArray("q", BUCKETS * processes)
        self._workers: list[Worker] = []

    @property
    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def snapshot(self) -> ProgressSnapshot:
        """The workers' counts as they last wrote them to shared memory (every
        PROGRESS_INTERVAL), and the phase this process runs."""
        counts = self._progress[:]
        latency = self._latency[:]
        return ProgressSnapshot(
            phase=self.phase, done=sum(counts[DONE::PROGRESS_FIELDS]), failed=sum(counts[FAILED::PROGRESS_FIELDS]),
            reconnections=sum(counts[RECONNECTIONS::PROGRESS_FIELDS]),
            latency_counts=list(map(sum, zip(*(latency[i:i + BUCKETS] for i in range(0, len(latency), BUCKETS))))))

    def _phases(self, plans: list[PhasePlan], senders: list[list[SenderPlan]]) -> Iterator[PhaseResult]:
        shares = spread(plans, senders, self.processes, self.config.seed, self.output.part)
        self._start(shares)
        self._wait_for(lambda w: w.ready)
        for index, plan in enumerate(plans):
            if self.stop.is_set():
                return
            self.phase = plan.name
            start = time.perf_counter()
            for worker in self._workers:
                worker.send(("phase", index))
            self._wait_for(lambda w: index in w.phases)
            duration = time.perf_counter() - start
            stats = SenderStats()
            for worker in self._workers:
                stats.merge(worker.phases[index] if index in worker.phases else self._lost(worker, index, plan.name))
            yield PhaseResult(plan.name, plan.threads, plan.messages, stats, duration)

    def _start(self, shares: list[WorkerPlan]) -> None:
        # Ctrl-C is this process's: the workers start with SIGINT blocked, and ignore it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for share in shares:
                ours, theirs = self._context.Pipe()
                process = self._context.Process(target=worker_main, name=f"chatflow-worker-{share.index}",
                                                args=(share, self.config, theirs, self._progress, self._latency),
                                                daemon=True)
                self._workers.append(Worker(share, process, ours))
                process.start()
                theirs.close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _wait_for(self, reported: Callable[[Worker], bool], deadline: float | None = None) -> None:
        """Until every worker has ``reported`` or ended; tells them to stop once ``stop`` is set."""
        stop_sent = False
        while waiting := [w for w in self._workers if not w.ended and not reported(w)]:
            if self.stop.is_set() and not stop_sent:
                for worker in waiting:
                    worker.send(("stop",))
                stop_sent = True
            if deadline is not None and time.monotonic() > deadline:
                return
            multiprocessing.connection.wait([w.conn for w in waiting] + [w.process.sentinel for w in waiting], POLL)
            for worker in waiting:
                worker.receive()
                if not worker.process.is_alive():
                    worker.receive()
                    worker.ended = True

    def _lost(self, worker: Worker, index: int, phase: str) -> SenderStats:
        """A phase of a worker that ended without reporting it: the final rows its part file
        holds beyond what it reported (the first time), the rest of its quota lost."""
        quota = sum(q for _, q, _ in worker.plan.phases[index][1])
        stats = SenderStats()
        if worker.lost is None:
            success, failures = final_outcomes(worker.plan.part) if worker.plan.part.exists() else (0, {})
            reported = worker.reported()
            stats.success = max(0, success - reported.success)
            for status, count in failures.items():
                if (beyond := count - reported.failures_by_status.get(status, 0)) > 0:
                    stats.failures_by_status[status] = beyond
            worker.lost = LostWorker(worker.plan.index, worker.process.pid, worker.process.exitcode, phase,
                                     error=worker.error)
        salvaged = stats.success + sum(stats.failures_by_status.values())
        lost = max(0, quota - salvaged)
        if lost:
            stats.failures_by_status[WORKER_LOST] = stats.failures_by_status.get(WORKER_LOST, 0) + lost
        stats.failure = sum(stats.failures_by_status.values())
        worker.lost.messages += lost
        return stats

    def _finish(self, result: RunResult) -> None:
        for worker in self._workers:
            worker.send(("finish",))
        self._wait_for(lambda w: w.final is not None, time.monotonic() + self.config.timeout + STOP_GRACE)
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(STOP_GRACE)
            worker.receive()
            worker.conn.close()
        self.output.merge([w.plan.part for w in self._workers])
        counted = sum((phase.stats.success + phase.stats.failure for phase in result.phases), 0)
        result.unsent = sum(w.final.unsent for w in self._workers if w.final is not None)
        result.generated = counted + result.unsent
        result.processes = self.processes
        result.lost_workers = [w.lost for w in self._workers if w.lost is not None]
        for worker in self._workers:
            if worker.final is None and worker.lost is None:
                # It reported every phase that ran, then ended before its final count.
                result.lost_workers.append(LostWorker(worker.plan.index, worker.process.pid,
                                                      worker.process.exitcode, "shutdown", error=worker.error))
        errors = [w.final.csv_error for w in self._workers if w.final is not None and w.final.csv_error]
        self.output.error = self.output.error or (errors[0] if errors else None)
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + sum(self._progress[RSS_KIB::PROGRESS_FIELDS])
        result.client_peak_rss_mib = round(rss_kib / 1024, 1)
        result.last_error = next((w.final.last_error for w in reversed(self._workers)
                                  if w.final is not None and w.final.last_error), "")

