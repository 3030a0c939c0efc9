"""Server benchmark: what one chat message costs the server, in CPU and in throughput.

``python -m bench.server_bench`` starts the server as its own process on 127.0.0.1,
opens N WebSocket connections from N client threads (rooms 1..20), and has each send
the 160-byte chat message of SPEC §1.3 and wait for its reply, over and over. Over the
measured window only (after a warmup) it reads the server process's CPU time from
/proc, so "server CPU µs per message" is the server's own cost whatever the client
costs; msg/s depends on both, since the two share the machine's cores.

The load client is deliberately not ChatFlow's client: raw blocking sockets, a
hand-made opening handshake and one pre-masked frame built once per thread
(``tests.support.frames``), so that as much of the machine as possible is left to the
server under test. It still checks every reply: a chat reply must end in
``"status":"success"}`` (the first reply of every connection is parsed and checked in
full), an echo reply must equal the message.

``--server-cmd`` aims the same load at any other server. Results go to
bench/results/server_bench_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import defaults
from bench.results import REPO_ROOT, RESULTS_DIR, environment, summarise, write_results
from chatflow.arguments import whole_number
from chatflow.client.plan import split
from chatflow.server.config import DEFAULTS
from chatflow.server.process import ServerProcess, ServerProcessError, local_server_command
from chatflow.wire import SUCCESS_TAIL
from tests.support.frames import OPCODE_CLOSE, OPCODE_TEXT, FrameReader, client_frame, handshaken
from tests.support.messages import MESSAGE_SIZE, SUCCESS_KEYS, sized_chat_message
from tests.support.network import LOCALHOST, free_port

ROOMS = DEFAULTS.max_rooms
REPLY_TIMEOUT = 10.0


class BenchError(Exception):
    """The run cannot give a valid figure: a failed reply, a dead server, a timeout."""


# -- the server under test ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerUnderTest:
    label: str
    #: A command line, ``{port}`` standing for a free port; None: our run_server.py.
    command: str | None = None
    #: More options for our run_server.py (``--no-metrics``).
    options: tuple[str, ...] = ()


def server_command(command_template: str | None, echo: bool,
                   options: tuple[str, ...] = ()) -> tuple[list[str], int | None]:
    """The command to run and its port when known: our server by default (port 0, the port
    read from its log line; ``options`` added), else the template (``{port}`` in it: a free port)."""
    if command_template is None:
        # INFO: the port line is logged at INFO; nothing per message is.
        return local_server_command("--log-level", "INFO", *(["--echo"] if echo else []), *options,
                                    script="run_server.py"), None
    if "{port}" in command_template:
        port = free_port()
        return shlex.split(command_template.replace("{port}", str(port))), port
    return shlex.split(command_template), None


@contextmanager
def server_running(command: list[str], port: int | None) -> Iterator[tuple[ServerProcess, int]]:
    """The server as a child process in its own process group for the ``with`` block, and
    the port it accepts on (read from its ``listening on ws://`` line unless given).

    Stopped by Ctrl-C to its process group (as a terminal would: a profiler then writes its
    output), then SIGTERM, then SIGKILL, each after the launcher's grace. CPU and memory are of its whole process tree, so
    that a wrapper (``sh -c``, a profiler) still measures the server it runs.
    """
    try:
        with ServerProcess(command, cwd=REPO_ROOT, stop_signals=(signal.SIGINT, signal.SIGTERM)) as server:
            if port is None:
                port = server.wait_listening("ws").port
            server.wait_accepting(port, LOCALHOST)
            yield server, port
    except ServerProcessError as exc:
        raise BenchError(str(exc)) from None


# -- the load client ------------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1, blocking with kernel timeouts (``SO_RCVTIMEO``): a
    Python-level timeout would poll() before every send and recv, doubling the client's
    system calls per message."""
    sock = socket.create_connection((LOCALHOST, port), timeout=REPLY_TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        kernel_timeout = struct.pack("ll", int(REPLY_TIMEOUT), 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, kernel_timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, kernel_timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def open_websocket(port: int, path: str) -> FrameReader:
    """``connect`` and the opening handshake (RFC 6455 §4.1), checked."""
    return FrameReader(handshaken(connect(port), path))


def check_first_reply(reply: bytes, message: bytes, echo: bool) -> None:
    """The whole reply, once per connection: the hot loop checks only its tail."""
    if echo:
        if reply != message:
            raise BenchError(f"echo reply differs from the message: {reply[:200]!r}")
        return
    fields = json.loads(reply)
    sent = json.loads(message)
    if list(fields) != SUCCESS_KEYS or fields["status"] != "success":
        raise BenchError(f"not a SPEC §1.4 success reply: {reply[:300]!r}")
    for key in ("userId", "username", "message", "messageType"):
        if fields[key] != sent[key]:
            raise BenchError(f"reply {key} {fields[key]!r} is not the message's {sent[key]!r}")
    if fields["clientTimestamp"] != sent["timestamp"]:
        raise BenchError(f"clientTimestamp {fields['clientTimestamp']!r} is not {sent['timestamp']!r}")


@dataclass
class Window:
    """The measured window, marked by the barrier actions when every thread is at the line."""

    started_at: float = 0.0
    ended_at: float = 0.0
    server_cpu_start: tuple[float, float] = (0.0, 0.0)
    server_cpu_end: tuple[float, float] = (0.0, 0.0)
    client_cpu_start: float = 0.0
    client_cpu_end: float = 0.0

    def barriers(self, server: ServerProcess, parties: int) -> tuple[threading.Barrier, threading.Barrier]:
        """The start and end lines: whichever thread arrives last reads both clocks."""
        def mark_start() -> None:
            self.server_cpu_start = server.cpu_seconds()
            self.client_cpu_start = time.process_time()
            self.started_at = time.perf_counter()

        def mark_end() -> None:
            self.ended_at = time.perf_counter()
            self.client_cpu_end = time.process_time()
            self.server_cpu_end = server.cpu_seconds()

        return threading.Barrier(parties, action=mark_start), threading.Barrier(parties, action=mark_end)


@dataclass
class Client:
    index: int
    warmup: int
    messages: int
    answered: int = 0
    error: str | None = None
    #: Stopped because another client failed (its error is the one to report).
    stopped: bool = False


def run_client(client: Client, port: int, echo: bool, ready: threading.Barrier, done: threading.Barrier,
               barrier_timeout: float) -> None:
    """One connection: warmup, wait for all, the measured messages, wait for all, close."""
    reader = None
    try:
        message = sized_chat_message(client.index + 1)
        frame = client_frame(OPCODE_TEXT, message)
        reader = open_websocket(port, f"/chat/{client.index % ROOMS + 1}")
        sendall, next_text = reader.sock.sendall, reader.next_text

        def exchange(count: int) -> None:
            for _ in range(count):
                sendall(frame)
                reply = next_text()
                if not (reply == message if echo else reply.endswith(SUCCESS_TAIL)):
                    raise BenchError(f"not a success reply: {reply[:300]!r}")

        sendall(frame)
        check_first_reply(next_text(), message, echo)
        exchange(client.warmup - 1)
        ready.wait(barrier_timeout)
        exchange(client.messages)
        client.answered = client.messages
        done.wait(barrier_timeout)
        reader.sock.sendall(client_frame(OPCODE_CLOSE, (1000).to_bytes(2, "big")))
    except threading.BrokenBarrierError:
        client.stopped = True
    except Exception as exc:
        client.error = (f"no reply within {REPLY_TIMEOUT:g} s" if isinstance(exc, BlockingIOError)  # SO_RCVTIMEO
                        else f"{type(exc).__name__}: {exc}")
        ready.abort()
        done.abort()
    finally:
        if reader is not None:
            reader.sock.close()


def run_workers(threads: list[threading.Thread], workers: list, timeout: float, server: ServerProcess,
                run: str, worker: str) -> None:
    """Start the load threads and wait for them, ``timeout`` in all; a run that overran, a
    worker that failed (its ``error``) or gave up on the others (``stopped``) is a BenchError."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise BenchError(f"{run} did not finish within {timeout:g} s")
    errors = [f"{worker} {each.index}: {each.error}" for each in workers if each.error]
    if errors:
        raise BenchError("; ".join(errors[:3]) + server.stderr_tail())
    if any(each.stopped for each in workers):
        raise BenchError(f"a {worker} gave up waiting for the others{server.stderr_tail()}")


def run_once(args: argparse.Namespace, under_test: ServerUnderTest, connections: int) -> dict:
    """One server process, one load: the figures of the measured window."""
    load_before = os.getloadavg()[0]
    with server_running(*server_command(under_test.command, args.echo, under_test.options)) as (server, port):
        window = Window()
        ready, done = window.barriers(server, connections)
        warmups = [max(1, share) for share in split(args.warmup, connections)]
        clients = [Client(index, warmup, share)
                   for index, (warmup, share) in enumerate(zip(warmups, split(args.messages, connections)))]
        threads = [
            threading.Thread(target=run_client, name=f"client-{client.index}", daemon=True,
                             args=(client, port, args.echo, ready, done, args.timeout))
            for client in clients
        ]
        run_workers(threads, clients, args.timeout, server, "the run", "client")
        sent = sum(client.answered for client in clients)
        if sent != args.messages:
            raise BenchError(f"{sent} messages answered, {args.messages} expected")
        wall = window.ended_at - window.started_at
        server_user, server_system = (end - start for start, end in zip(window.server_cpu_start, window.server_cpu_end))
        server_cpu = server_user + server_system
        client_cpu = window.client_cpu_end - window.client_cpu_start
        return {
            "connections": connections,
            "messages": sent,
            "warmup_messages": sum(warmups),
            "wall_seconds": wall,
            "messages_per_second": sent / wall,
            "server_cpu_seconds": server_cpu,
            "server_cpu_us_per_message": server_cpu / sent * 1e6,
            "server_user_cpu_us_per_message": server_user / sent * 1e6,
            "server_system_cpu_us_per_message": server_system / sent * 1e6,
            "server_cpu_utilisation": server_cpu / wall,
            "client_cpu_seconds": client_cpu,
            "client_cpu_us_per_message": client_cpu / sent * 1e6,
            "server_peak_rss_bytes": server.peak_rss_bytes(),
            # The 1-minute load average around the run: on a shared machine, how much
            # else wanted the cores (2 cores and a load of 2 is already full).
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        }


# -- reporting -------------------------------------------------------------------------------

def format_table(results: list[dict]) -> str:
    def cell(summary: dict, scale: float = 1.0, digits: int = 0) -> str:
        median, low, high = (summary[key] * scale for key in ("median", "min", "max"))
        return f"{median:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"

    header = ("server", "connections", "msg/s", "server CPU µs/msg", "user+sys", "client CPU µs/msg",
              "server peak RSS MiB")
    rows = [header]
    for result in results:
        summary = result["summary"]
        rows.append((
            result["server"],
            str(result["connections"]),
            cell(summary["messages_per_second"]),
            cell(summary["server_cpu_us_per_message"], digits=1),
            f'{summary["server_user_cpu_us_per_message"]["median"]:.0f}+'
            f'{summary["server_system_cpu_us_per_message"]["median"]:.0f}',
            cell(summary["client_cpu_us_per_message"], digits=1),
            cell(summary["server_peak_rss_bytes"], scale=1 / 2**20, digits=1),
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["median of the runs (min–max)"]
    lines += ["  ".join([row[0].ljust(widths[0])] + [value.rjust(width) for value, width in zip(row[1:], widths[1:])])
              for row in rows]
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------


def connection_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not counts or not all(1 <= count <= 10_000 for count in counts):
        raise argparse.ArgumentTypeError(f"connection counts must be 1-10000: {text!r}")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.server_bench",
        description="Server CPU per message and throughput of the chat server under a closed-loop load on 127.0.0.1.",
    )
    parser.add_argument("--connections", type=connection_counts, default=[64], metavar="N[,N...]",
                        help="client threads, one connection each; a list runs each (default 64)")
    parser.add_argument("--messages", type=whole_number(1), default=defaults.MESSAGES,
                        help="measured messages per run, split across the connections (default %(default)s)")
    parser.add_argument("--warmup", type=whole_number(1), default=defaults.WARMUP,
                        help="messages before the measured window, at least one per connection (default %(default)s)")
    parser.add_argument("--runs", type=whole_number(1), default=defaults.RUNS,
                        help="runs per connection count (default %(default)s)")
    parser.add_argument("--server-cmd", metavar="COMMAND",
                        help="benchmark this command instead of run_server.py; {port} is replaced by a free port, "
                             "without it the port is read from a 'listening on ws://HOST:PORT' line on stderr")
    parser.add_argument("--echo", action="store_true",
                        help="run our server with --echo and expect every reply to equal the message")
    parser.add_argument("--label", help="name of the server in the table and the JSON (default: the command)")
    parser.add_argument("--timeout", type=float, default=defaults.RUN_TIMEOUT,
                        help="seconds one run may take (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    return parser


def server_from(args: argparse.Namespace) -> ServerUnderTest:
    if args.server_cmd is None:
        return ServerUnderTest(args.label or ("run_server.py --echo" if args.echo else "run_server.py"))
    return ServerUnderTest(args.label or args.server_cmd, args.server_cmd)


def repeat(what: str, runs: int, run_once: Callable[[], dict], figures: Callable[[dict], str]) -> list[dict]:
    """``runs`` runs of ``run_once``, their figures in order; after each, a progress line on
    stderr: ``what``, the run's number, ``figures`` of it and the load average."""
    results = []
    for run in range(1, runs + 1):
        result = run_once()
        results.append(result)
        print(f"{what}, run {run}/{runs}: {figures(result)}, load average {result['load_average_after']:.1f}",
              file=sys.stderr, flush=True)
    return results


def measure(args: argparse.Namespace, server: ServerUnderTest) -> list[dict]:
    """``args.runs`` runs at each connection count, each on a fresh server process: every
    run's figures and their spread, one result per connection count."""
    results = []
    for connections in args.connections:
        runs = repeat(f"{server.label}: {connections} connection{'s' if connections > 1 else ''}", args.runs,
                      lambda: run_once(args, server, connections),
                      lambda figures: f"{figures['messages_per_second']:,.0f} msg/s, "
                                      f"server {figures['server_cpu_us_per_message']:.1f} µs/msg")
        results.append({"server": server.label, "command": server.command, "connections": connections,
                        "messages": args.messages, "warmup": args.warmup, "runs": runs, "summary": summarise(runs)})
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        results = measure(args, server_from(args))
    except BenchError as exc:
        print(f"server_bench: error: {exc}", file=sys.stderr)
        return 1
    print(format_table(results))
    report = {
        "benchmark": "server_bench",
        "started_at": started.isoformat(),
        "options": {
            "connections": args.connections, "messages": args.messages, "warmup": args.warmup, "runs": args.runs,
            "server_cmd": args.server_cmd, "echo": args.echo,
            "timeout": args.timeout, "message_bytes": MESSAGE_SIZE, "rooms": ROOMS,
        },
        "environment": environment(),
        "results": results,
    }
    print(f"results: {write_results(report, args.output_dir, 'server_bench')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
