"""Server benchmark: what one chat message costs the server, in CPU and in throughput.

``python -m bench.server_bench`` starts the server as its own process on 127.0.0.1,
opens N WebSocket connections from N client threads (rooms 1..20), and has each send
the 160-byte chat message of SPEC §1.3 and wait for its reply, over and over. Over the
measured window only (after a warmup) it reads the server process's CPU time from
/proc, so "server CPU µs per message" is the server's own cost whatever the client
costs; msg/s depends on both, since the two share the machine's cores.

The load client is deliberately not ChatFlow's client: raw blocking sockets, a
hand-made opening handshake and one pre-masked frame built once per thread, so that as
much of the machine as possible is left to the server under test. It still checks every
reply: a chat reply must end in ``"status":"success"}`` (the first reply of every
connection is parsed and checked in full), an echo reply must equal the message.

``--server-cmd`` aims the same load at any other server. Results go to
bench/results/server_bench_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import hashlib
import json
import os
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.results import REPO_ROOT, RESULTS_DIR, environment, summarise, write_results
from chatflow.arguments import whole_number
from chatflow.server import listening
from chatflow.client.plan import split

HOST = "127.0.0.1"
ROOMS = 20
MESSAGE_SIZE = 160
FIXED_TIMESTAMP = "2026-02-13T10:30:00.000Z"
SUCCESS_TAIL = b'"status":"success"}'
REPLY_KEYS = ["userId", "username", "message", "clientTimestamp", "serverTimestamp", "messageType", "status"]
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

RECV_SIZE = 64 * 1024
MAX_HANDSHAKE_RESPONSE = 16 * 1024
#: Control frames (a keepalive ping) tolerated in front of one reply.
MAX_FRAMES_PER_REPLY = 8
REPLY_TIMEOUT = 10.0
START_TIMEOUT = 20.0
CONNECT_POLL = 0.05
STOP_GRACE = 5.0
KILL_GRACE = 3.0
STDERR_TAIL_LINES = 40
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x1, 0x8, 0x9, 0xA


class BenchError(Exception):
    """The run cannot give a valid figure: a failed reply, a dead server, a timeout."""


# -- the server under test ------------------------------------------------------------------


class ServerProcess:
    """The server as a child process in its own process group, and its /proc figures.

    CPU and peak RSS are summed over the process and its live descendants, so a wrapper
    (``sh -c``, a profiler) still measures the server it runs.
    """

    def __init__(self, command: list[str], port: int | None) -> None:
        self.command = command
        self.port = port
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._announced = threading.Event()
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True,
        )
        threading.Thread(target=self._read_stderr, name="server-stderr", daemon=True).start()

    def _read_stderr(self) -> None:
        """Drain stderr (a full pipe would block the server) and spot the port line."""
        for line in self.process.stderr:
            self._stderr_tail.append(line.rstrip())
            if not self._announced.is_set():
                found = listening.parse(line)
                if found is not None and found.scheme == "ws" and self.port is None:
                    self.port = found.port
                    self._announced.set()

    def wait_until_listening(self, timeout: float = START_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        if self.port is None:
            while not self._announced.wait(CONNECT_POLL):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"no 'listening on ws://HOST:PORT' line within {timeout:g} s{self.stderr_tail()}")
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                socket.create_connection((HOST, self.port), timeout=1.0).close()
                return self.port
            except OSError:
                time.sleep(CONNECT_POLL)
        raise BenchError(f"server not accepting on {HOST}:{self.port} within {timeout:g} s{self.stderr_tail()}")

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"server exited with status {self.process.returncode}{self.stderr_tail()}")

    def stderr_tail(self) -> str:
        return "".join(f"\n  | {line}" for line in self._stderr_tail)

    def _pids(self) -> list[int]:
        """The process and its live descendants, from /proc/PID/task/*/children."""
        pids, pending = [], [self.process.pid]
        while pending and len(pids) < 1000:
            pid = pending.pop()
            pids.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as children:
                        pending.extend(int(child) for child in children.read().split())
            except OSError:
                continue
        return pids

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU time of the process tree so far.

        Apart because system time is what the sockets cost (on loopback a send also
        delivers to the receiver), user time what the Python code costs.
        """
        user = system = 0
        for pid in self._pids():
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            user += int(fields[11])  # utime and stime: fields 14 and 15 of proc(5)
            system += int(fields[12])
        return user / CLOCK_TICKS, system / CLOCK_TICKS

    def peak_rss_bytes(self) -> int:
        """VmHWM: the most resident memory each process of the tree has had."""
        total = 0
        for pid in self._pids():
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            total += int(line.split()[1]) * 1024
                            break
            except OSError:
                continue
        return total

    def stop(self) -> None:
        """Ctrl-C the process group (as a terminal would), then SIGTERM, then SIGKILL."""
        for signum, grace in ((signal.SIGINT, STOP_GRACE), (signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, KILL_GRACE)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                break
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        if self.process.stderr is not None:
            self.process.stderr.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ServerUnderTest:
    label: str
    #: A command line, ``{port}`` standing for a free port; None: our run_server.py.
    command: str | None = None


def start_server(command_template: str | None, echo: bool) -> ServerProcess:
    """Our server by default (port 0, port read from its log line), else the template."""
    if command_template is None:
        command = [sys.executable, "run_server.py", "--host", HOST, "--port", "0", "--health-port", "0",
                   "--log-level", "INFO"]  # INFO: the port line is logged at INFO; nothing per message is.
        if echo:
            command.append("--echo")
        return ServerProcess(command, None)
    if "{port}" in command_template:
        port = free_port()
        return ServerProcess(shlex.split(command_template.replace("{port}", str(port))), port)
    return ServerProcess(shlex.split(command_template), None)


# -- the load client ------------------------------------------------------------------------


def chat_message(user_id: int, size: int = MESSAGE_SIZE) -> bytes:
    """A valid SPEC §1.3 message of exactly ``size`` bytes, the text padded to fit."""
    def encode(text: str) -> bytes:
        return json.dumps(
            {"userId": user_id, "username": f"user{user_id}", "message": text,
             "timestamp": FIXED_TIMESTAMP, "messageType": "TEXT"},
            separators=(",", ":"),
        ).encode()

    filler = "Hello everyone, this is a benchmark line of chat that says the same thing each time "
    room_for_text = size - len(encode(""))
    if not 1 <= room_for_text <= 500:
        raise ValueError(f"cannot make a {size}-byte message for user {user_id}")
    text = (filler * (room_for_text // len(filler) + 1))[:room_for_text].rstrip(" ")
    text += "!" * (room_for_text - len(text))
    message = encode(text)
    assert len(message) == size
    return message


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (RFC 6455 §5.2): FIN, masked with a random key."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + masked


class FrameReader:
    """Server frames off a blocking socket; the bytes after a frame wait for the next call."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self.recv = sock.recv
        self.pending = bytearray(pending)

    def next_text(self) -> bytes:
        """The next text frame's payload, answering any ping in front of it."""
        for _ in range(MAX_FRAMES_PER_REPLY):
            opcode, payload = self._next_frame()
            if opcode == OPCODE_TEXT:
                return payload
            if opcode == OPCODE_PING:
                self.sock.sendall(masked_frame(OPCODE_PONG, payload))
            elif opcode == OPCODE_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                raise BenchError(f"server closed the connection ({code}): {payload[2:].decode(errors='replace')}")
            elif opcode != OPCODE_PONG:
                raise BenchError(f"unexpected frame with opcode {opcode:#x}")
        raise BenchError(f"no text frame among {MAX_FRAMES_PER_REPLY} frames")

    def _next_frame(self) -> tuple[int, bytes]:
        buffer = self.pending
        while True:
            if len(buffer) >= 2:
                first, second = buffer[0], buffer[1]
                if second & 0x80:
                    raise BenchError("the server masked a frame")
                length, start = second & 0x7F, 2
                if length == 126:
                    length, start = (int.from_bytes(buffer[2:4], "big"), 4) if len(buffer) >= 4 else (None, 0)
                elif length == 127:
                    length, start = (int.from_bytes(buffer[2:10], "big"), 10) if len(buffer) >= 10 else (None, 0)
                if length is not None and len(buffer) >= start + length:
                    if not first & 0x80:
                        raise BenchError("fragmented reply: this load client reads whole frames only")
                    payload = bytes(buffer[start:start + length])
                    del buffer[:start + length]
                    return first & 0x0F, payload
            try:
                data = self.recv(RECV_SIZE)
            except BlockingIOError:
                raise BenchError(f"no reply within {REPLY_TIMEOUT:g} s") from None
            if not data:
                raise BenchError("server closed the TCP connection")
            buffer += data


def open_websocket(port: int, path: str) -> FrameReader:
    """TCP connect and the opening handshake (RFC 6455 §4.1), checked."""
    sock = socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            if len(response) > MAX_HANDSHAKE_RESPONSE:
                raise BenchError("handshake response too long")
            data = sock.recv(RECV_SIZE)
            if not data:
                raise BenchError(f"server closed the connection during the handshake: {response[:200]!r}")
            response += data
        head, rest = response.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise BenchError(f"handshake refused: {lines[0]}")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        expected = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise BenchError("wrong Sec-WebSocket-Accept in the handshake response")
        # Blocking with kernel timeouts from here: a Python-level timeout would poll()
        # before every send and recv, doubling the client's system calls per message.
        sock.settimeout(None)
        kernel_timeout = struct.pack("ll", int(REPLY_TIMEOUT), 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, kernel_timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, kernel_timeout)
        return FrameReader(sock, rest)
    except BaseException:
        sock.close()
        raise


def check_first_reply(reply: bytes, message: bytes, echo: bool) -> None:
    """The whole reply, once per connection: the hot loop checks only its tail."""
    if echo:
        if reply != message:
            raise BenchError(f"echo reply differs from the message: {reply[:200]!r}")
        return
    fields = json.loads(reply)
    sent = json.loads(message)
    if list(fields) != REPLY_KEYS or fields["status"] != "success":
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
        message = chat_message(client.index + 1)
        frame = masked_frame(OPCODE_TEXT, message)
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
        reader.sock.sendall(masked_frame(OPCODE_CLOSE, (1000).to_bytes(2, "big")))
    except threading.BrokenBarrierError:
        client.stopped = True
    except Exception as exc:
        client.error = f"{type(exc).__name__}: {exc}"
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
    server = start_server(under_test.command, args.echo)
    try:
        port = server.wait_until_listening()
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
    finally:
        server.stop()


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
    parser.add_argument("--messages", type=whole_number(1), default=200_000,
                        help="measured messages per run, split across the connections (default %(default)s)")
    parser.add_argument("--warmup", type=whole_number(1), default=10_000,
                        help="messages before the measured window, at least one per connection (default %(default)s)")
    parser.add_argument("--runs", type=whole_number(1), default=3, help="runs per connection count (default %(default)s)")
    parser.add_argument("--server-cmd", metavar="COMMAND",
                        help="benchmark this command instead of run_server.py; {port} is replaced by a free port, "
                             "without it the port is read from a 'listening on ws://HOST:PORT' line on stderr")
    parser.add_argument("--echo", action="store_true",
                        help="run our server with --echo and expect every reply to equal the message")
    parser.add_argument("--label", help="name of the server in the table and the JSON (default: the command)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take (default %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results)")
    return parser


def server_from(args: argparse.Namespace) -> ServerUnderTest:
    if args.server_cmd is None:
        return ServerUnderTest(args.label or ("run_server.py --echo" if args.echo else "run_server.py"))
    return ServerUnderTest(args.label or args.server_cmd, args.server_cmd)


def measure(args: argparse.Namespace, server: ServerUnderTest) -> list[dict]:
    """``args.runs`` runs at each connection count, each on a fresh server process: every
    run's figures and their spread, one result per connection count."""
    results = []
    for connections in args.connections:
        runs = []
        for run in range(1, args.runs + 1):
            figures = run_once(args, server, connections)
            runs.append(figures)
            print(f"{server.label}: {connections} connection{'s' if connections > 1 else ''}, run {run}/{args.runs}: "
                  f"{figures['messages_per_second']:,.0f} msg/s, "
                  f"server {figures['server_cpu_us_per_message']:.1f} µs/msg, "
                  f"load average {figures['load_average_after']:.1f}", file=sys.stderr, flush=True)
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
