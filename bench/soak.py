"""Soak: thousands of connections held open, then connection churn, against
``run_server.py`` as its own process on 127.0.0.1.

``python -m bench.soak`` runs two phases against one server process:

1. **hold**: opens ``--connections`` WebSocket connections (default 2,000) across all 20
   rooms, and has each send the 160-byte chat message of SPEC §1.3 every ``--interval``
   seconds (default 2; each connection starts at a random offset, so the load is even)
   for ``--duration`` seconds (default 60). Then it waits for the replies still due and
   closes every connection with the closing handshake.
2. **churn**: ``--churn`` cycles (default 10,000) of connect, handshake, one message, its
   reply, closing handshake, ``--churn-parallel`` cycles at a time.

Every reply must be the success reply to its own message (its ``userId``, and the
``"status":"success"}`` tail); the run fails (exit status 1) if any message is not
answered, any connection fails, or the server does not give back its sockets. The
server's resident memory, threads and open file descriptors are read from /proc/PID
every ``--sample-interval`` seconds and before and after each phase (after waiting for
its descriptor count to return to its idle count).

The load generator is one thread and one selector over non-blocking sockets, with a
hand-made opening handshake and hand-masked frames: thousands of client threads would
cost this 2-core machine more than the server does. It raises its own soft
RLIMIT_NOFILE to the hard limit (the server process inherits it): each process needs a
descriptor per connection. Results go to bench/results/soak_<timestamp>.json and, for a
run with the defaults, the page docs/measurements/soak.md (``--doc PATH`` for another).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import errno
import heapq
import json
import os
import random
import resource
import selectors
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import doc
from bench.doc import number, text_table
from bench.results import RESULTS_DIR, environment, write_results
from bench.server_bench import ROOMS, BenchError, server_command, server_running
from chatflow.arguments import seconds, whole_number
from chatflow.server.process import ServerProcess
from chatflow.wire import SUCCESS_TAIL
from tests.support.frames import (
    MAX_RESPONSE_HEAD,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameError,
    check_response,
    client_frame,
    handshake_request,
    new_key,
    parse_frame,
)
from tests.support.messages import sized_chat_message
from tests.support.network import LOCALHOST, RECV_SIZE

#: How long the server may take to give back its descriptors after a phase.
SETTLE_TIMEOUT = 30.0
#: Opening or closing thousands of connections on a busy 2-core machine.
PHASE_TIMEOUT = 300.0
PROGRESS_EVERY = 10.0
MAX_ERRORS_KEPT = 20
CLOSE_NORMAL = (1000).to_bytes(2, "big")
PONG_FRAME_LIMIT = 125
DOC = doc.MEASUREMENTS / "soak.md"

CONNECTING, HANDSHAKING, OPEN, CLOSING, CLOSED = "connecting", "handshaking", "open", "closing", "closed"


# -- the server's figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerFigures:
    """One reading of /proc/PID: what the server holds at that moment."""

    at: float
    rss_bytes: int
    threads: int
    fds: int
    cpu_seconds: float


def read_figures(server: ServerProcess, started: float) -> ServerFigures:
    process = psutil.Process(server.pid)
    user, system = server.cpu_seconds()
    return ServerFigures(round(time.monotonic() - started, 2), server.rss_bytes(), process.num_threads(),
                         process.num_fds(), user + system)


def settle(server: ServerProcess, idle_fds: int, started: float) -> ServerFigures:
    """Wait for the server to close what the phase opened; its figures then."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        figures = read_figures(server, started)
        if figures.fds <= idle_fds:
            return figures
        if time.monotonic() > deadline:
            raise BenchError(f"the server still holds {figures.fds - idle_fds} descriptors more than when idle, "
                             f"{SETTLE_TIMEOUT:g} s after the phase{server.stderr_tail()}")
        time.sleep(0.1)


def idle_figures(server: ServerProcess, started: float) -> ServerFigures:
    """The fewest descriptors over a second after start: the readiness probe's socket
    and the start-up's own files are closed by then."""
    readings = []
    for _ in range(5):
        readings.append(read_figures(server, started))
        time.sleep(0.25)
    return min(readings, key=lambda figures: figures.fds)


# -- the load generator --------------------------------------------------------------------------


@dataclass
class Tally:
    """What one phase counted."""

    sent: int = 0
    answered: int = 0
    opened: int = 0
    closed_cleanly: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(text)

    def figures(self) -> dict:
        """The phase's counts and latency, as its results JSON has them."""
        return {
            "sent": self.sent,
            "answered": self.answered,
            "closed_cleanly": self.closed_cleanly,
            "errors": self.error_count,
            "error_examples": self.errors,
            "latency": latency_summary(self.latencies),
        }


class Connection:
    """One client connection as a state machine driven by the generator's selector."""

    __slots__ = ("generator", "index", "path", "user_id", "frame", "reply_head", "key", "sock", "state",
                 "inbuf", "outbuf", "sent_at", "close_received", "events")

    def __init__(self, generator: LoadGenerator, index: int, user_id: int) -> None:
        self.generator = generator
        self.index = index
        self.path = f"/chat/{index % ROOMS + 1}"
        self.user_id = user_id
        self.frame = client_frame(OPCODE_TEXT, sized_chat_message(user_id))
        self.reply_head = b'{"userId":%d,' % user_id
        self.key = new_key()
        self.state = CONNECTING
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.sent_at: collections.deque[float] = collections.deque()
        self.close_received = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        result = self.sock.connect_ex((LOCALHOST, generator.port))
        self.events = selectors.EVENT_WRITE
        generator.selector.register(self.sock, self.events, self)
        if result not in (0, errno.EINPROGRESS):
            self.fail(f"connect: {os.strerror(result)}")

    # -- what the phases do with it

    def send_message(self, now: float) -> None:
        self.sent_at.append(now)
        self.generator.tally.sent += 1
        self.write(self.frame)

    def start_close(self) -> None:
        self.state = CLOSING
        self.write(client_frame(OPCODE_CLOSE, CLOSE_NORMAL))

    # -- the selector's calls

    def on_writable(self) -> None:
        if self.state == CONNECTING:
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.fail(f"connect: {os.strerror(error)}")
                return
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.state = HANDSHAKING
            self.write(handshake_request(self.path, f"{LOCALHOST}:{self.generator.port}", self.key))
        else:
            self.flush()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(f"recv: {exc}")
            return
        if not data:
            if self.state == CLOSING and self.close_received:
                self.finish()
            else:
                self.fail(f"the server ended the connection while {self.state}")
            return
        self.inbuf += data
        if self.state == HANDSHAKING and not self.read_handshake():
            return
        self.read_frames()

    # -- internals

    def write(self, data: bytes) -> None:
        self.outbuf += data
        self.flush()

    def flush(self) -> None:
        if self.outbuf:
            try:
                sent = self.sock.send(self.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.fail(f"send: {exc}")
                return
            del self.outbuf[:sent]
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbuf else 0)
        if wanted != self.events:
            self.events = wanted
            self.generator.selector.modify(self.sock, wanted, self)

    def read_handshake(self) -> bool:
        end = self.inbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.inbuf) > MAX_RESPONSE_HEAD:
                self.fail("handshake response too long")
            return False
        head = bytes(self.inbuf[:end])
        del self.inbuf[: end + 4]
        try:
            check_response(head, self.key)
        except FrameError as exc:
            self.fail(str(exc))
            return False
        self.state = OPEN
        self.generator.tally.opened += 1
        self.generator.phase.on_open(self)
        return True

    def read_frames(self) -> None:
        buffer = self.inbuf
        while self.state in (OPEN, CLOSING):
            try:
                frame = parse_frame(buffer)
            except FrameError as exc:
                self.fail(str(exc))
                return
            if frame is None:
                return
            opcode, payload, end = frame
            del buffer[:end]
            if opcode == OPCODE_TEXT:
                self.on_reply(payload)
            elif opcode == OPCODE_PING:
                self.write(client_frame(OPCODE_PONG, payload[:PONG_FRAME_LIMIT]))
            elif opcode == OPCODE_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                if self.state != CLOSING:
                    self.fail(f"the server closed the connection with {code}: {payload[2:].decode(errors='replace')}")
                    return
                self.close_received = True
            elif opcode != OPCODE_PONG:
                self.fail(f"unexpected frame, opcode {opcode:#x}")
                return

    def on_reply(self, reply: bytes) -> None:
        if not self.sent_at:
            self.fail(f"a reply to no message: {reply[:120]!r}")
            return
        if not (reply.startswith(self.reply_head) and reply.endswith(SUCCESS_TAIL)):
            self.fail(f"not the success reply to user {self.user_id}: {reply[:200]!r}")
            return
        tally = self.generator.tally
        tally.answered += 1
        tally.latencies.append(time.monotonic() - self.sent_at.popleft())
        self.generator.phase.on_reply(self)

    def fail(self, reason: str) -> None:
        if self.state == CLOSED:
            return
        self.generator.tally.error(f"connection {self.index} ({self.path}): {reason}")
        self._release()

    def finish(self) -> None:
        self.generator.tally.closed_cleanly += 1
        self._release()

    def _release(self) -> None:
        self.state = CLOSED
        self.generator.selector.unregister(self.sock)
        self.sock.close()
        self.generator.phase.on_closed(self)


class Phase:
    """What the generator tells a phase; the phase decides what a connection does next."""

    def on_open(self, conn: Connection) -> None: ...

    def on_reply(self, conn: Connection) -> None: ...

    def on_closed(self, conn: Connection) -> None: ...


class LoadGenerator:
    """One selector over every client socket, a timetable of sends, and /proc sampling."""

    def __init__(self, server: ServerProcess, port: int, started: float, sample_interval: float) -> None:
        self.server = server
        self.port = port
        self.started = started
        self.selector = selectors.DefaultSelector()
        self.tally = Tally()
        self.phase: Phase = Phase()
        self.samples: list[ServerFigures] = []
        self._sample_interval = sample_interval
        self._next_sample = 0.0
        self._next_progress = 0.0
        self._timetable: list[tuple[float, int, Connection]] = []
        self._interval = 0.0
        self._sending_until = 0.0

    def start_phase(self, phase: Phase) -> Tally:
        self.phase = phase
        self.tally = Tally()
        return self.tally

    def send_periodically(self, conns: list[Connection], interval: float, until: float, rng: random.Random) -> None:
        """Every connection sends every ``interval`` s, from a random offset, until ``until``."""
        now = time.monotonic()
        self._interval, self._sending_until = interval, until
        self._timetable = [(now + rng.uniform(0, interval), conn.index, conn) for conn in conns]
        heapq.heapify(self._timetable)

    def run_until(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        """Drive every socket until ``done()``; BenchError at the deadline."""
        deadline = time.monotonic() + timeout
        select = self.selector.select
        while not done():
            now = time.monotonic()
            if now > deadline:
                raise BenchError(f"{what}: not done within {timeout:g} s ({self.describe()})"
                                 f"{self.server.stderr_tail()}")
            wait = self._send_due(now)
            self._sample(now)
            if not self.selector.get_map():
                time.sleep(min(wait, 0.05))
                continue
            for key, mask in select(min(wait, 0.05)):
                conn = key.data
                if mask & selectors.EVENT_WRITE and conn.state != CLOSED:
                    conn.on_writable()
                if mask & selectors.EVENT_READ and conn.state != CLOSED:
                    conn.on_readable()

    def _send_due(self, now: float) -> float:
        """Send what is due; seconds until the next send."""
        timetable = self._timetable
        while timetable and timetable[0][0] <= now:
            due, index, conn = heapq.heappop(timetable)
            if conn.state != OPEN or now >= self._sending_until:
                continue
            conn.send_message(now)
            following = due + self._interval
            heapq.heappush(timetable, (following if following > now else now + self._interval, index, conn))
        return timetable[0][0] - now if timetable else 0.05

    def _sample(self, now: float) -> None:
        if now < self._next_sample:
            return
        self._next_sample = now + self._sample_interval
        figures = read_figures(self.server, self.started)
        self.samples.append(figures)
        if now >= self._next_progress:
            self._next_progress = now + PROGRESS_EVERY
            print(f"  {figures.at:6.0f} s  {self.describe()}; server RSS {figures.rss_bytes / 2**20:.1f} MiB, "
                  f"{figures.threads} threads, {figures.fds} fds", file=sys.stderr, flush=True)

    def describe(self) -> str:
        tally = self.tally
        return (f"{tally.opened} opened, {tally.sent} sent, {tally.answered} answered, "
                f"{tally.closed_cleanly} closed, {tally.error_count} errors")


# -- the phases --------------------------------------------------------------------------------


class Hold(Phase):
    """Open ``count`` connections, ``parallel`` handshakes at a time; keep them."""

    def __init__(self, generator: LoadGenerator, count: int, parallel: int) -> None:
        self.generator = generator
        self.count = count
        self.parallel = parallel
        self.conns: list[Connection] = []
        self.opened: set[Connection] = set()
        #: Connections that opened, or failed before they could.
        self.settled = 0

    def open_next(self) -> None:
        if len(self.conns) < self.count:
            self.conns.append(Connection(self.generator, len(self.conns), len(self.conns) % 100_000 + 1))

    def start(self) -> None:
        for _ in range(min(self.parallel, self.count)):
            self.open_next()

    def on_open(self, conn: Connection) -> None:
        self.opened.add(conn)
        self.settled += 1
        self.open_next()

    def on_closed(self, conn: Connection) -> None:
        if conn not in self.opened:
            self.settled += 1
            self.open_next()

    def all_settled(self) -> bool:
        return self.settled >= self.count

    def open_conns(self) -> list[Connection]:
        return [conn for conn in self.conns if conn.state == OPEN]


class Churn(Phase):
    """``cycles`` times: connect, one message, its reply, close; ``parallel`` at a time."""

    def __init__(self, generator: LoadGenerator, cycles: int, parallel: int, first_index: int) -> None:
        self.generator = generator
        self.cycles = cycles
        self.parallel = parallel
        self.first_index = first_index
        self.started = 0
        self.ended = 0

    def open_next(self) -> None:
        if self.started < self.cycles:
            index = self.first_index + self.started
            self.started += 1
            Connection(self.generator, index, index % 100_000 + 1)

    def start(self) -> None:
        for _ in range(min(self.parallel, self.cycles)):
            self.open_next()

    def on_open(self, conn: Connection) -> None:
        conn.send_message(time.monotonic())

    def on_reply(self, conn: Connection) -> None:
        conn.start_close()

    def on_closed(self, conn: Connection) -> None:
        self.ended += 1
        self.open_next()

    def done(self) -> bool:
        return self.ended >= self.cycles


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies)

    def percentile(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {"p50_ms": percentile(0.50), "p99_ms": percentile(0.99), "max_ms": ordered[-1] * 1000}


def figures_dict(figures: ServerFigures) -> dict:
    return {"at_seconds": figures.at, "rss_bytes": figures.rss_bytes, "threads": figures.threads,
            "fds": figures.fds, "cpu_seconds": figures.cpu_seconds}


def run_hold(generator: LoadGenerator, args: argparse.Namespace, rng: random.Random) -> dict:
    hold = Hold(generator, args.connections, args.connect_parallel)
    tally = generator.start_phase(hold)
    opening_started = time.monotonic()
    hold.start()
    generator.run_until(hold.all_settled, f"opening {args.connections} connections", PHASE_TIMEOUT)
    opening_seconds = time.monotonic() - opening_started
    conns = hold.open_conns()
    held = len(conns)
    print(f"hold: {held} connections open in {opening_seconds:.1f} s; sending for {args.duration:g} s",
          file=sys.stderr, flush=True)
    sending_until = time.monotonic() + args.duration
    generator.send_periodically(conns, args.interval, sending_until, rng)
    generator.run_until(lambda: time.monotonic() >= sending_until, "sending", args.duration + PHASE_TIMEOUT)
    generator.run_until(lambda: all(not conn.sent_at for conn in conns if conn.state == OPEN),
                        "the last replies", PHASE_TIMEOUT)
    for conn in hold.open_conns():
        conn.start_close()
    generator.run_until(lambda: all(conn.state == CLOSED for conn in conns), "closing", PHASE_TIMEOUT)
    return {
        "connections_requested": args.connections,
        "connections_held": held,
        "opening_seconds": opening_seconds,
        **tally.figures(),
    }


def run_churn(generator: LoadGenerator, args: argparse.Namespace) -> dict:
    churn = Churn(generator, args.churn, args.churn_parallel, first_index=args.connections)
    tally = generator.start_phase(churn)
    started = time.monotonic()
    churn.start()
    generator.run_until(churn.done, f"{args.churn} churn cycles", PHASE_TIMEOUT)
    return {
        "cycles": args.churn,
        "parallel": args.churn_parallel,
        "seconds": time.monotonic() - started,
        **tally.figures(),
    }


# -- reporting -----------------------------------------------------------------------------------


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit, for this process and the server it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def phase_rows(report: dict) -> list[tuple[str, ...]]:
    """One row per phase: what it opened, sent and got back, and its latency."""
    hold, churn = report["hold"], report["churn"]
    rows = []
    for name, phase, count in (("hold", hold, f"{hold['connections_held']:,} held"),
                               ("churn", churn, f"{churn['cycles']:,} cycles")):
        latency = phase["latency"]
        rows.append((name, count, f"{phase['sent']:,}", f"{phase['answered']:,}", str(phase["errors"]),
                     number(latency["p50_ms"], 1), number(latency["p99_ms"], 1), number(latency["max_ms"], 1)))
    return rows


SERVER_POINTS = ("idle", "hold_peak", "after_hold", "after_churn")


def server_rows(report: dict) -> list[tuple[str, ...]]:
    """What the server held at each point: resident memory, threads, descriptors."""
    points = [report["server"][name] for name in SERVER_POINTS]
    return [
        ("RSS (MiB)", *(f"{point['rss_bytes'] / 2**20:.1f}" for point in points)),
        ("threads", *(str(point["threads"]) for point in points)),
        ("open fds", *(f"{point['fds']:,}" for point in points)),
    ]


def format_table(report: dict) -> str:
    head = ("phase", "connections", "sent", "answered", "errors", "p50 ms", "p99 ms", "max ms")
    blank = ("",) * (len(head) - 1 - len(SERVER_POINTS))
    rows = [head, *phase_rows(report), ("",) * len(head),
            ("server", "idle", "hold peak", "after hold", "after churn", *blank),
            *(row + blank for row in server_rows(report))]
    return "\n".join(text_table(rows))


def page(report: dict) -> list[str]:
    """docs/measurements/soak.md, from the run's JSON."""
    options, hold, churn, server = report["options"], report["hold"], report["churn"], report["server"]
    problems = failures(report)
    hold_row, churn_row = phase_rows(report)
    held = max(1, hold["connections_held"])
    per_connection = (server["hold_peak"]["rss_bytes"] - server["idle"]["rss_bytes"]) / held
    churn_growth = server["after_churn"]["rss_bytes"] - server["after_hold"]["rss_bytes"]
    verdict = ("Passed: every connection opened, every message got its own success reply, and the server gave "
               "back every descriptor after each phase." if not problems
               else "FAILED: " + "; ".join(problems) + ".")
    return [
        *doc.header("Soak: the latest figures", "python -m bench.soak",
                    "What each phase checks and why: [reliability.md](../reliability.md#soak-long-form)."),
        f"{doc.measured_on(report['started_at'], report['environment'])} Client and server on the same machine; "
        f"load average (1 minute) {report['environment']['load_average_after']:.1f} at the end.",
        "",
        f"Hold: {options['connections']:,} connections across all {ROOMS} rooms, "
        f"{options['connect_parallel']:,} handshakes in flight at a time, each sending the 160-byte chat message "
        f"every {options['interval']:g} s for {options['duration']:g} s. Churn: {options['churn']:,} cycles of "
        f"connect, one message, its reply and close, {options['churn_parallel']:,} at a time. Latency is from the "
        "send to the whole reply, measured by the one-thread load generator, so it includes the generator's own "
        "delays.",
        "",
        *doc.table(("phase", "connections", "sent", "answered", "errors", "p50 (ms)", "p99 (ms)", "max (ms)"), [
            (f"hold, {options['duration']:g} s", f"{hold['connections_held']:,} held "
             f"(opened in {hold['opening_seconds']:.1f} s)", *hold_row[2:]),
            ("churn", f"{churn['cycles']:,} cycles in {churn['seconds']:.1f} s", *churn_row[2:]),
        ], "llrrrrrr"),
        "",
        *doc.table(("server", "idle", "hold, peak", "after hold (= before churn)", "after churn"),
                   server_rows(report), "lrrrr"),
        "",
        f"Each held connection cost the server {per_connection / 1024:,.1f} KiB of resident memory; the churn "
        f"changed it by {churn_growth / 1024:+,.0f} KiB. {verdict}",
    ]


def default_run(args: argparse.Namespace) -> bool:
    """Whether the run is the one the page is for: every measuring option at its default."""
    defaults = build_parser().parse_args([])
    return all(getattr(args, name) == getattr(defaults, name) for name in MEASURING_OPTIONS)


#: The options that change what is measured (not where the JSON goes).
MEASURING_OPTIONS = ("connections", "duration", "interval", "connect_parallel", "churn", "churn_parallel",
                     "sample_interval", "seed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Thousands of connections held open, then connection churn, against run_server.py on 127.0.0.1.",
    )
    parser.add_argument("--connections", type=whole_number(1), default=2000,
                        help="connections held open in the hold phase (default %(default)s)")
    parser.add_argument("--duration", type=seconds(), default=60.0,
                        help="seconds the held connections send for (default %(default)g)")
    parser.add_argument("--interval", type=seconds(), default=2.0,
                        help="seconds between two messages of one connection (default %(default)g)")
    parser.add_argument("--connect-parallel", type=whole_number(1), default=100,
                        help="handshakes in flight while opening them (default %(default)s)")
    parser.add_argument("--churn", type=whole_number(0), default=10_000,
                        help="connect-send-close cycles in the churn phase (default %(default)s)")
    parser.add_argument("--churn-parallel", type=whole_number(1), default=20,
                        help="churn cycles in flight at a time (default %(default)s)")
    parser.add_argument("--sample-interval", type=seconds(), default=1.0,
                        help="seconds between two readings of the server's /proc figures (default %(default)g)")
    parser.add_argument("--seed", type=int, default=1, help="for the send offsets (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR,
                        help="where the JSON goes (default bench/results)")
    parser.add_argument("--doc", type=Path, metavar="PATH",
                        help=f"the page to write (default: {doc.shown(DOC)} for a run with the defaults, "
                             "none otherwise)")
    parser.add_argument("--from-results", type=Path, metavar="JSON",
                        help="run nothing: write the page from a past run's JSON")
    return parser


def run(args: argparse.Namespace) -> dict:
    fd_limit = raise_fd_limit()
    needed = args.connections + args.churn_parallel + 64
    if fd_limit[0] < needed:
        raise BenchError(f"RLIMIT_NOFILE is {fd_limit[0]} (hard limit {fd_limit[1]}); "
                         f"{args.connections} connections need about {needed}")
    started_at = datetime.datetime.now(datetime.timezone.utc)
    with server_running(*server_command(None, echo=False)) as (server, port):
        started = time.monotonic()
        idle = idle_figures(server, started)
        generator = LoadGenerator(server, port, started, args.sample_interval)
        hold = run_hold(generator, args, random.Random(args.seed))
        hold_samples = list(generator.samples)
        after_hold = settle(server, idle.fds, started)
        print(f"churn: {args.churn} cycles, {args.churn_parallel} at a time", file=sys.stderr, flush=True)
        churn = run_churn(generator, args)
        after_churn = settle(server, idle.fds, started)
    hold_samples.append(after_hold)
    hold_peak = {name: max(getattr(sample, name) for sample in hold_samples) for name in ("rss_bytes", "threads", "fds")}
    return {
        "benchmark": "soak",
        "started_at": started_at.isoformat(),
        "options": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "rlimit_nofile": list(fd_limit),
        "environment": {**environment(), "load_average_after": os.getloadavg()[0]},
        "hold": hold,
        "churn": churn,
        "server": {
            "idle": figures_dict(idle),
            "hold_peak": hold_peak,
            "after_hold": figures_dict(after_hold),
            "after_churn": figures_dict(after_churn),
            "samples": [figures_dict(sample) for sample in generator.samples],
        },
    }


def failures(report: dict) -> list[str]:
    """Why the run does not pass; empty when it does."""
    problems = []
    hold, churn = report["hold"], report["churn"]
    if hold["connections_held"] != hold["connections_requested"]:
        problems.append(f"{hold['connections_held']} of {hold['connections_requested']} connections opened")
    for name, phase in (("hold", hold), ("churn", churn)):
        if phase["sent"] != phase["answered"]:
            problems.append(f"{name}: {phase['sent']} sent, {phase['answered']} answered")
        if phase["errors"]:
            problems.append(f"{name}: {phase['errors']} errors, e.g. {phase['error_examples'][:3]}")
    if churn["answered"] != churn["cycles"]:
        problems.append(f"churn: {churn['answered']} of {churn['cycles']} cycles answered")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_results:
        report = json.loads(args.from_results.read_text())
    else:
        try:
            report = run(args)
        except BenchError as exc:
            print(f"soak: error: {exc}", file=sys.stderr)
            return 1
        print(format_table(report))
        print(f"results: {write_results(report, args.output_dir, 'soak')}")
    page_path = args.doc or (DOC if not args.from_results and default_run(args) else None)
    if page_path is not None:
        print(f"wrote {doc.shown(doc.write_page(page_path, page(report)))}")
    problems = failures(report)
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
