"""``--workers N``: N server processes on one port, and this one supervising them.

Each worker is a process of its own, with its own GIL and selector thread, whose listener
binds the same host and port with SO_REUSEPORT: the kernel spreads the connections over
the workers by a hash of each connection's addresses. This process holds the port (bound,
never listening, so that with ``--port 0`` every worker binds the one number the kernel
picked), serves ``/health`` for all of them (asking each for its figures over its pipe),
and ``/metrics`` (each worker's families, merged under a ``worker`` label), logs a worker
that exits unasked, and on SIGTERM or SIGINT stops them all within the grace
(docs/workers.md).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from multiprocessing.process import BaseProcess

from chatflow.server import listening, metrics
from chatflow.server.config import ServerConfig
from chatflow.server.health_check_server import DEGRADED, UNHEALTHY, HealthCheckServer
from chatflow.server.main import (PROG, assemble, cannot_listen, configure_logging, endpoint, instance_name,
                                  lifecycle_log, scraper)
from chatflow.server.summary import SummaryLog

log = logging.getLogger("chatflow.server.workers")

#: Stale answers (to a question that timed out) read past before the one awaited, at most.
MAX_STALE = 100
#: What the supervisor asks a worker: its ``/health?verbose`` figures, what is wrong with
#: it (``main.problem_of``'s answer, None when nothing is), its metric families.
DETAILS, PROBLEM, METRICS = "details", "problem", "metrics"


class WorkerError(Exception):
    """A worker that could not start: one line for the user."""


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT and never listening: it holds the
    port (with 0, the kernel's pick) for the workers' listeners and takes no connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def worker_config(config: ServerConfig, index: int, port: int, instance: str) -> ServerConfig:
    """Worker ``index``'s configuration: one process on the reserved ``port``, its instance
    named ``{instance}/w{index}`` (a bus, when rooms span workers, tells them apart by it)."""
    return dataclasses.replace(config, port=port, workers=1, instance_id=f"{instance}/w{index}")


def add_up(figures: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """Each figure summed over the workers: numbers added, mappings (rooms, broadcast counts) key by key."""
    total: dict[str, object] = {}
    for one in figures:
        for key, value in one.items():
            if isinstance(value, Mapping):
                merged = add_up([total.get(key, {}), value])  # type: ignore[list-item]
                total[key] = dict(sorted(merged.items()))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value  # type: ignore[operator]
    return total


# -- in a worker process ------------------------------------------------------------


def worker_main(config: ServerConfig, index: int, conn: multiprocessing.connection.Connection) -> None:
    """One worker: the chat (or echo) endpoint on the shared port until SIGTERM, or until
    its pipe to the supervisor closes (the supervisor is gone).

    Says ``("ready", pid)`` once it listens, or ``("failed", reason)`` and exits 1; then
    answers each ``(kind, n)`` with ``(kind, n, answer)``, kind one of ``DETAILS``,
    ``PROBLEM`` and ``METRICS``. SIGINT is ignored (it starts blocked, too): a terminal's
    Ctrl-C is the supervisor's to act on.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    configure_logging(config, worker=index)
    server = assemble(config, reuse_port=True)
    websocket, bus, registry = server.websocket, server.bus, server.registry
    try:
        websocket.start()
    except OSError as exc:
        _tell(conn, ("failed", f"worker {index} cannot listen for WebSocket on {config.host}:{config.port}: "
                               f"{exc.strerror or exc}"))
        sys.exit(1)
    if bus is not None:
        bus.start()
    answers: dict[str, Callable[[], object]] = {DETAILS: server.details, PROBLEM: server.problem}
    if registry is not None:
        answers[METRICS] = lambda: metrics.families(registry)
    threading.Thread(target=_answer, args=(conn, answers, stop), name="WorkerControl", daemon=True).start()
    # Each worker its own summary line, from its own counts (docs/logging.md#with---workers).
    summary = SummaryLog(websocket, server.chat, config.log_interval)
    summary.start()
    _tell(conn, ("ready", os.getpid()))
    while not stop.wait(3600):
        pass
    summary.stop()
    websocket.stop()
    if bus is not None:
        bus.stop()


def _tell(conn: multiprocessing.connection.Connection, message: tuple) -> None:
    try:
        conn.send(message)
    except OSError:
        pass  # the supervisor is gone; the control thread stops this worker


def _answer(conn: multiprocessing.connection.Connection, answers: Mapping[str, Callable[[], object]],
            stop: threading.Event) -> None:
    """The supervisor's questions, until its pipe closes: then this worker stops too."""
    while True:
        try:
            kind, number = conn.recv()
            conn.send((kind, number, answers[kind]() if kind in answers else None))
        except (EOFError, OSError):
            stop.set()
            return


# -- in the supervisor --------------------------------------------------------------


class _Worker:
    """One worker process and the supervisor's end of its pipe."""

    def __init__(self, index: int, process: BaseProcess, conn: multiprocessing.connection.Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn

    def wait_ready(self, deadline: float, timeout: float) -> None:
        """Until it says it listens; WorkerError if it fails, exits, or the deadline passes."""
        for _ in range(MAX_STALE):
            remaining = max(0.0, deadline - time.monotonic())
            multiprocessing.connection.wait([self.conn, self.process.sentinel], remaining)
            if self.conn.poll():
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    message = ("exited",)
                if message[0] == "ready":
                    return
                if message[0] == "failed":
                    raise WorkerError(message[1])
            if not self.process.is_alive():
                raise WorkerError(f"worker {self.index} exited with status {self.process.exitcode} "
                                  "before it listened")
            if remaining <= 0:
                raise WorkerError(f"worker {self.index} was not listening within {timeout:g} s")
        raise WorkerError(f"worker {self.index} said {MAX_STALE} things, none of them that it listens")

    def ask(self, kind: str, request: int) -> bool:
        """Asks it a question of ``kind``; False if its pipe is closed."""
        try:
            self.conn.send((kind, request))
            return True
        except OSError:
            return False

    def answer(self, request: int, deadline: float) -> Any:
        """Its answer to ``request`` (older ones skipped), or None by the deadline."""
        for _ in range(MAX_STALE):
            try:
                if not self.conn.poll(max(0.0, deadline - time.monotonic())):
                    return None
                message = self.conn.recv()
            except (EOFError, OSError):
                return None
            if message[1] == request:
                return message[2]
        return None

    def row(self, figures: Mapping[str, object] | None) -> dict[str, object]:
        """Its entry in ``/health?verbose``'s ``workers``."""
        alive = self.process.is_alive()
        row: dict[str, object] = {"index": self.index, "pid": self.process.pid, "alive": alive,
                                  "answered": figures is not None}
        if not alive:
            row["exitcode"] = self.process.exitcode
        return {**row, **(figures or {})}


class WorkerPool:
    """The worker processes of one server: started, asked for their figures, watched, stopped."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        #: One question to the workers at a time: the health endpoint has a thread per request.
        self._asking = threading.Lock()
        self._request = 0
        self._stopping = False

    @property
    def pids(self) -> list[int | None]:
        return [worker.process.pid for worker in self._workers]

    def start(self, port: int) -> None:
        """Every worker started on ``port``, and waited for until it listens (all within
        ``worker_start_timeout``); WorkerError, with one line, if one does not."""
        instance = instance_name(self.config)
        # A terminal's Ctrl-C is this process's: the workers start with SIGINT blocked,
        # then ignore it, so that none dies of it with a traceback while it starts.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for index in range(self.config.workers):
                ours, theirs = self._context.Pipe()
                process = self._context.Process(
                    target=worker_main, name=f"chatflow-server-w{index}", daemon=True,
                    args=(worker_config(self.config, index, port, instance), index, theirs))
                process.start()
                theirs.close()
                self._workers.append(_Worker(index, process, ours))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        timeout = self.config.worker_start_timeout
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.wait_ready(deadline, timeout)
            log.info("worker %d ready (pid %d)", worker.index, worker.process.pid)

    def details(self) -> dict[str, object]:
        """``/health?verbose``: the totals of the workers' figures, and each worker's. Every
        worker is asked at once; one that has not answered within ``worker_answer_timeout``
        is reported as not answering, and holds the answer up no longer."""
        answers = self._ask_all(DETAILS)
        rows = [worker.row(answers.get(worker.index)) for worker in self._workers]
        return {**add_up(figures for figures in answers.values() if figures is not None), "workers": rows}

    def metrics(self) -> dict[int, list | None]:
        """``/metrics``: each worker's families by its index, None for one gone or that did
        not answer within ``worker_answer_timeout``."""
        answers = self._ask_all(METRICS)
        return {worker.index: answers.get(worker.index) for worker in self._workers}

    def _ask_all(self, kind: str) -> dict[int, Any]:
        """Each live worker's answer to a question of ``kind`` (None: no answer in time),
        asked all at once."""
        with self._asking:
            self._request += 1
            asked = [worker for worker in self._workers
                     if worker.process.is_alive() and worker.ask(kind, self._request)]
            deadline = time.monotonic() + self.config.worker_answer_timeout
            return {worker.index: worker.answer(self._request, deadline) for worker in asked}

    def problem(self) -> dict[str, object] | None:
        """The 503's fields while a worker has exited unasked (``workers_down``) or says
        its WebSocket listener is gone (``reason``, which and why), else ``degraded`` while
        a worker's bus is down (which, and why); None otherwise."""
        if self._stopping:
            return None
        down = [{"index": worker.index, "pid": worker.process.pid, "exitcode": worker.process.exitcode}
                for worker in self._workers if worker.process.exitcode is not None]
        problems = {index: problem for index, problem in sorted(self._ask_all(PROBLEM).items()) if problem}
        broken = [f"worker {index}: {problem['reason']}" for index, problem in problems.items()
                  if problem["status"] == UNHEALTHY]
        if down or broken:
            return {"status": UNHEALTHY, **({"workers_down": down} if down else {}),
                    **({"reason": "; ".join(broken)} if broken else {})}
        reasons = [f"worker {index}: {problem['reason']}" for index, problem in problems.items()]
        return {"status": DEGRADED, "reason": "; ".join(reasons)} if reasons else None

    def watch(self, stop: threading.Event, wake: socket.socket) -> bool:
        """Until ``stop`` is set (``wake`` turns readable then): a worker that exits meanwhile
        is logged once, as an error. It is not restarted (docs/workers.md says why); with
        ``worker_exit`` "stop" the watch ends there. True when it ended for a worker's exit."""
        watched = {worker.process.sentinel: worker for worker in self._workers}
        stopping = self.config.worker_exit == "stop"
        while not stop.is_set():
            for ready in multiprocessing.connection.wait([wake, *watched]):
                if ready is wake:
                    _drain(wake)
                    continue
                worker = watched.pop(ready)
                # Its pipe closes as it dies, a moment before it can be reaped.
                worker.process.join(self.config.worker_stop_margin)
                then = ("stopping the others (--worker-exit stop), exit status 1" if stopping else
                        "/health answers 503; it is not restarted")
                log.error("worker %d (pid %d) exited unasked with status %s: %s", worker.index, worker.process.pid,
                          worker.process.exitcode, then)
                if stopping:
                    return True
        return False

    def stop(self) -> None:
        """SIGTERM to every worker (each closes its connections with 1001 within the grace);
        those still running ``worker_stop_margin`` seconds past the grace are killed."""
        self._stopping = True
        for worker in self._workers:
            worker.process.terminate()
        margin = self.config.worker_stop_margin
        deadline = time.monotonic() + self.config.shutdown_grace + margin
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process.is_alive():
                log.warning("worker %d (pid %d) still running %g s after SIGTERM: killed", worker.index,
                            worker.process.pid, self.config.shutdown_grace + margin)
                worker.process.kill()
                worker.process.join(margin)
            worker.conn.close()


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def supervise(config: ServerConfig) -> int:
    """``run_server.py --workers N`` (N > 1): the port held, the workers started, the health
    endpoint served, until SIGTERM or SIGINT; then every worker stopped. The exit status."""
    try:
        reservation = reserve_port(config.host, config.port)
    except OSError as exc:
        cannot_listen("WebSocket", config.host, config.port, exc)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    wake, wake_writer = socket.socketpair()
    for end in (wake, wake_writer):
        end.setblocking(False)
    with reservation, wake, wake_writer:
        # A signal's number is written to wake_writer, so that the watch wakes up at once.
        previous = signal.set_wakeup_fd(wake_writer.fileno())
        try:
            return _serve(config, reservation.getsockname()[:2], stop, wake)
        finally:
            signal.set_wakeup_fd(previous)


def _serve(config: ServerConfig, address: tuple[str, int], stop: threading.Event, wake: socket.socket) -> int:
    pool = WorkerPool(config)
    registry = metrics.workers_registry(pool.metrics) if config.metrics else None
    health = HealthCheckServer(host=config.host, port=config.health_port, idle_timeout=config.health_idle_timeout,
                               details=pool.details, problem=pool.problem, metrics=scraper(registry))
    try:
        pool.start(address[1])
    except WorkerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        pool.stop()
        return 1
    try:
        health.start()
    except OSError as exc:
        cannot_listen("health", config.host, config.health_port, exc)
        pool.stop()
        return 1
    what = f"WebSocket {endpoint(config)} in {config.workers} worker processes"
    lifecycle_log.info(listening.line(what, "ws", *address))
    lifecycle_log.info(listening.line("health endpoint", "http", *health.address, path="/health"))
    lost = pool.watch(stop, wake)
    lifecycle_log.info("shutting down: closing connections with 1001")
    pool.stop()
    health.stop()
    lifecycle_log.info("stopped")
    return 1 if lost else 0
