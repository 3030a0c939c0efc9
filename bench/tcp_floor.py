"""A floor for reference: ChatFlow's traffic over plain TCP, with no WebSocket and no JSON.

``python -m bench.tcp_floor`` starts a tiny echo server as its own process on 127.0.0.1
(one selector thread over non-blocking sockets, as ChatFlow's transport) and runs, in this
process, the main phase's thread layout: 64 threads, one connection each, each sending
the same 160 bytes as the server benchmark's chat message and waiting for them to come
back before the next, over and over. Messages have a fixed size, which is all the framing
there is: nothing is parsed, encoded or validated on either side.

So its figures are what Python threads and the kernel allow for this traffic on this
machine: msg/s, and the client's and the server's CPU per message over the measured
window (after a warmup, between two barriers, as in bench.server_bench). Each ChatFlow
figure can then be read as a multiple of it; ``python -m bench`` prints those ratios.
Results go to bench/results/tcp_floor_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import os
import selectors
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from bench import defaults
from bench.results import RESULTS_DIR, environment, format_spread, summarise, write_results
from bench.server_bench import REPLY_TIMEOUT, BenchError, Window, connect, repeat, run_workers, server_running
from chatflow.arguments import port, whole_number
from chatflow.client.config import LoadTestConfig
from chatflow.client.plan import split
from chatflow.server import listening
from tests.support.messages import MESSAGE_SIZE, sized_chat_message
from tests.support.network import LOCALHOST, RECV_SIZE, free_port

LISTEN_BACKLOG = 1024


# -- the echo server (its own process) -------------------------------------------------------


class EchoConnection:
    """One client socket: whole messages go back at once, a part waits for the rest."""

    __slots__ = ("sock", "pending", "out", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray()
        self.out = bytearray()
        self.writing = False

    def on_readable(self, buffer: memoryview, selector: selectors.BaseSelector) -> None:
        try:
            size = self.sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        if not size:
            self.close(selector)
            return
        if not self.pending and size % MESSAGE_SIZE == 0:
            # The closed loop's common case: whole messages only, nothing held back.
            self.send(buffer[:size], selector)
            return
        self.pending += buffer[:size]
        whole = len(self.pending) - len(self.pending) % MESSAGE_SIZE
        if whole:
            replies = bytes(self.pending[:whole])
            del self.pending[:whole]
            self.send(replies, selector)

    def send(self, data: memoryview | bytes, selector: selectors.BaseSelector) -> None:
        if self.out:
            self.out += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close(selector)
            return
        if sent < len(data):
            self.out += data[sent:]
            self.writing = True
            selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def on_writable(self, selector: selectors.BaseSelector) -> None:
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(selector)
            return
        del self.out[:sent]
        if not self.out:
            self.writing = False
            selector.modify(self.sock, selectors.EVENT_READ, self)

    def close(self, selector: selectors.BaseSelector) -> None:
        self.writing = False
        selector.unregister(self.sock)
        self.sock.close()


def serve(listen_port: int) -> None:
    """Echo whole messages on 127.0.0.1 until interrupted; the calling thread is the selector thread."""
    listener = socket.create_server((LOCALHOST, listen_port), backlog=LISTEN_BACKLOG)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    buffer = memoryview(bytearray(RECV_SIZE))
    print(listening.line("echo server", "tcp", LOCALHOST, listener.getsockname()[1]), file=sys.stderr, flush=True)
    while True:
        for key, mask in selector.select():
            conn = key.data
            if conn is None:
                accept_all(listener, selector)
                continue
            if mask & selectors.EVENT_READ:
                conn.on_readable(buffer, selector)
            if mask & selectors.EVENT_WRITE and conn.writing:
                conn.on_writable(selector)


def accept_all(listener: socket.socket, selector: selectors.BaseSelector) -> None:
    for _ in range(LISTEN_BACKLOG):
        try:
            sock, _ = listener.accept()
        except OSError:  # nothing left to accept, or a client that reset before accept()
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        selector.register(sock, selectors.EVENT_READ, EchoConnection(sock))


# -- the client side (this process) ------------------------------------------------------------


def exchange(sock: socket.socket, message: bytes, count: int) -> None:
    """``count`` closed-loop round trips, every reply checked byte for byte."""
    sendall, recv = sock.sendall, sock.recv
    try:
        for _ in range(count):
            sendall(message)
            reply = recv(MESSAGE_SIZE)
            while len(reply) < MESSAGE_SIZE:
                more = recv(MESSAGE_SIZE - len(reply))
                if not more:
                    raise BenchError("the echo server closed the connection")
                reply += more
            if reply != message:
                raise BenchError(f"the echo differs from the message: {reply[:80]!r}")
    except BlockingIOError:  # SO_RCVTIMEO or SO_SNDTIMEO ran out
        raise BenchError(f"no reply within {REPLY_TIMEOUT:g} s") from None


@dataclass
class Sender:
    """One thread's connection and share; ``error`` set if it failed, ``stopped`` if another did."""

    index: int
    warmup: int
    messages: int
    answered: int = 0
    error: str | None = None
    stopped: bool = False

    def run(self, server_port: int, ready: threading.Barrier, done: threading.Barrier, barrier_timeout: float) -> None:
        sock = None
        try:
            message = sized_chat_message(self.index + 1)
            sock = connect(server_port)
            exchange(sock, message, self.warmup)
            ready.wait(barrier_timeout)
            exchange(sock, message, self.messages)
            self.answered = self.messages
            done.wait(barrier_timeout)
        except threading.BrokenBarrierError:
            self.stopped = True
        except (OSError, BenchError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            ready.abort()
            done.abort()
        finally:
            if sock is not None:
                sock.close()


def run_once(threads: int, messages: int, warmup: int, timeout: float) -> dict:
    """One echo server process, one load: the figures of the measured window."""
    load_before = os.getloadavg()[0]
    server_port = free_port()
    command = [sys.executable, "-m", "bench.tcp_floor", "--serve", str(server_port)]
    with server_running(command, server_port) as (server, _):
        window = Window()
        ready, done = window.barriers(server, threads)
        warmups = [max(1, share) for share in split(warmup, threads)]
        senders = [Sender(index, share_of_warmup, share)
                   for index, (share_of_warmup, share) in enumerate(zip(warmups, split(messages, threads)))]
        workers = [threading.Thread(target=sender.run, name=f"floor-{sender.index}", daemon=True,
                                    args=(server_port, ready, done, timeout))
                   for sender in senders]
        run_workers(workers, senders, timeout, server, "the TCP floor run", "thread")
        answered = sum(sender.answered for sender in senders)
        if answered != messages:
            raise BenchError(f"{answered} messages answered, {messages} expected")
        wall = window.ended_at - window.started_at
        server_user, server_system = (end - start for start, end in zip(window.server_cpu_start, window.server_cpu_end))
        client_cpu = window.client_cpu_end - window.client_cpu_start
        return {
            "threads": threads,
            "messages": messages,
            "warmup_messages": sum(warmups),
            "wall_seconds": wall,
            "messages_per_second": messages / wall,
            "server_cpu_us_per_message": (server_user + server_system) / messages * 1e6,
            "server_user_cpu_us_per_message": server_user / messages * 1e6,
            "server_system_cpu_us_per_message": server_system / messages * 1e6,
            "client_cpu_us_per_message": client_cpu / messages * 1e6,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        }


def measure(threads: int, messages: int, warmup: int, runs: int, timeout: float) -> dict:
    """``runs`` runs, each on a fresh echo server: every run's figures and their spread."""
    results = repeat(f"tcp_floor: {threads} threads", runs, lambda: run_once(threads, messages, warmup, timeout),
                     lambda figures: f"{figures['messages_per_second']:,.0f} msg/s, "
                                     f"server {figures['server_cpu_us_per_message']:.1f} µs/msg, "
                                     f"client {figures['client_cpu_us_per_message']:.1f} µs/msg")
    return {"threads": threads, "messages": messages, "warmup": warmup, "runs": results, "summary": summarise(results)}


# -- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tcp_floor",
        description="The experiment's traffic over plain TCP (fixed 160-byte messages echoed by a one-thread "
                    "selector server): what Python threads and the kernel allow on this machine.",
    )
    parser.add_argument("--threads", type=whole_number(1), default=LoadTestConfig.threads,
                        help="client threads, one connection each, as the client's main phase (default %(default)s)")
    parser.add_argument("--messages", type=whole_number(1), default=defaults.MESSAGES,
                        help="measured messages per run, split across the threads (default %(default)s)")
    parser.add_argument("--warmup", type=whole_number(1), default=defaults.WARMUP,
                        help="messages before the measured window, at least one per thread (default %(default)s)")
    parser.add_argument("--runs", type=whole_number(1), default=defaults.RUNS, help="runs (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=defaults.RUN_TIMEOUT,
                        help="seconds one run may take (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    parser.add_argument("--serve", type=port, metavar="PORT",
                        help="only run the echo server on 127.0.0.1:PORT (the benchmark starts it this way)")
    return parser


FIGURES = [("msg/s", "messages_per_second", 0), ("server CPU µs/msg", "server_cpu_us_per_message", 1),
           ("client CPU µs/msg", "client_cpu_us_per_message", 1)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve is not None:
        try:
            serve(args.serve)
        except KeyboardInterrupt:
            pass
        return 0
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        floor = measure(args.threads, args.messages, args.warmup, args.runs, args.timeout)
    except BenchError as exc:
        print(f"tcp_floor: error: {exc}", file=sys.stderr)
        return 1
    print(f"TCP floor, {args.threads} threads, {args.messages:,} messages: median of {args.runs} run(s) (min–max)")
    for label, key, digits in FIGURES:
        print(f"  {label:<20}{format_spread(floor['summary'][key], digits)}")
    report = {
        "benchmark": "tcp_floor",
        "started_at": started.isoformat(),
        "options": {"threads": args.threads, "messages": args.messages, "warmup": args.warmup, "runs": args.runs,
                    "timeout": args.timeout, "message_bytes": MESSAGE_SIZE},
        "environment": environment(),
        "results": floor,
    }
    print(f"results: {write_results(report, args.output_dir, 'tcp_floor')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
