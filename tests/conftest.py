"""Shared helpers for the whole suite: servers on real sockets, clients, and deadlines.

Everything listens and connects on 127.0.0.1 only, on ports the kernel picks, so test
files can run in parallel. Nothing here sleeps and hopes: waits are on
conditions, each with a deadline.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import websocket

from chatflow.client.results import RunResult
from chatflow.client.run import LoadTest
from chatflow.server.config import ServerConfig, ServerLimits
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.process import ServerProcess
from chatflow.server.transport import Handler, WebSocketServer

LOCALHOST = "127.0.0.1"
#: The server's defaults, as run_server.py starts with them.
SERVER_DEFAULTS = ServerConfig()
REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_SERVER = REPO_ROOT / "run_server.py"

#: Long enough for a loaded 2-core machine, short enough that a hang fails fast.
DEFAULT_TIMEOUT = 5.0
#: How long a server process may take to import and bind before a test gives up.
STARTUP_TIMEOUT = 15.0

SUCCESS_KEYS = ["userId", "username", "message", "clientTimestamp", "serverTimestamp", "messageType", "status"]
ERROR_KEYS = ["status", "timestamp", "errors"]
#: The wire form of every instant the server writes (SPEC §1.4).
WIRE_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

T = TypeVar("T")


# -- deadlines and ports --------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.01,
               message: str = "", describe: Callable[[], object] | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy; return that.

    Raises AssertionError at the deadline, so a condition that never comes fails the
    test instead of hanging it. ``message`` names the condition; ``describe`` is asked
    for the state at the deadline, when it is worth seeing.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            state = f"; state: {describe()}" if describe else ""
            raise AssertionError(f"not true within {timeout:g} s: {message or predicate.__qualname__}{state}")
        time.sleep(interval)


@contextmanager
def traced_memory() -> Iterator[Callable[[], tuple[int, int]]]:
    """tracemalloc on for the ``with`` body, its peak reset; yields ``get_traced_memory``
    (current, peak). Tracing that was on before (``-X tracemalloc``) is left on."""
    tracing_already = tracemalloc.is_tracing()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield tracemalloc.get_traced_memory
    finally:
        if not tracing_already:
            tracemalloc.stop()


def free_port() -> int:
    """A port nothing listens on right now (for tests that need a number before binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


# -- chat messages --------------------------------------------------------------------


def chat_message_fields(omit: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """A valid chat message (SPEC §1.3) as a dict; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "userId": 12345,
        "username": "user12345",
        "message": "Hello everyone!",
        "timestamp": "2026-02-13T10:30:00.000Z",
        "messageType": "TEXT",
    }
    fields.update(overrides)
    for key in omit:
        del fields[key]
    return fields


def chat_message_json(omit: tuple[str, ...] = (), **overrides: Any) -> str:
    """A valid chat message as compact JSON text, as the Java client writes it."""
    return json.dumps(chat_message_fields(omit, **overrides), separators=(",", ":"), ensure_ascii=False)


# -- in-process WebSocket servers -----------------------------------------------------


@dataclass
class RunningServer:
    """A WebSocketServer serving on 127.0.0.1, with what tests inspect of it."""

    server: WebSocketServer
    handler: Handler
    url: str

    @property
    def port(self) -> int:
        return self.server.address[1]


def chat_handler() -> ChatWebSocketServer:
    """The chat application with the server's default rooms."""
    return ChatWebSocketServer(max_rooms=SERVER_DEFAULTS.max_rooms)


@contextmanager
def serving(handler: Handler, limits: ServerLimits = SERVER_DEFAULTS.limits) -> Iterator[RunningServer]:
    """Run ``handler`` behind a WebSocketServer on a free port for the ``with`` body."""
    server = WebSocketServer(handler, host=LOCALHOST, port=0, limits=limits,
                             shutdown_grace=SERVER_DEFAULTS.shutdown_grace)
    server.start()
    try:
        yield RunningServer(server, handler, f"ws://{LOCALHOST}:{server.address[1]}")
    finally:
        server.stop(grace=1.0)


@pytest.fixture
def chat_server() -> Iterator[RunningServer]:
    """The chat application with default limits, in this process."""
    with serving(chat_handler()) as running:
        yield running


@pytest.fixture
def chat_url(chat_server: RunningServer) -> str:
    """The ws:// base URL of ``chat_server`` (append ``/chat/{roomId}``)."""
    return chat_server.url


# -- clients --------------------------------------------------------------------------


def connect(url: str, timeout: float = DEFAULT_TIMEOUT) -> websocket.WebSocket:
    """A websocket-client connection whose every receive fails after ``timeout``."""
    return websocket.create_connection(url, timeout=timeout)


@contextmanager
def connected(url: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[websocket.WebSocket]:
    """``connect`` for a ``with`` block; closes on the way out, whatever state it is in."""
    ws = connect(url, timeout)
    try:
        yield ws
    finally:
        close(ws)


def close(ws: websocket.WebSocket) -> None:
    """Closing handshake if still open, then the socket in any case.

    websocket-client's ``close()`` does nothing once it has answered the server's close
    frame, which leaves the socket open and the server waiting for the client's EOF.
    """
    ws.close(timeout=1)
    ws.shutdown()


def round_trip(ws: websocket.WebSocket, text: str) -> dict[str, Any]:
    """Send one text message and return its reply, parsed."""
    ws.send(text)
    return json.loads(ws.recv())


def receive_close(ws: websocket.WebSocket, max_frames: int = 100) -> tuple[int, str]:
    """Read up to the server's close frame; return its code and reason.

    websocket-client answers the close frame itself; data frames before it are skipped.
    """
    for _ in range(max_frames):
        opcode, payload = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(payload[:2], "big"), payload[2:].decode()
    raise AssertionError(f"no close frame among {max_frames} frames")


def raw_handshake(port: int, path: str = "/chat/1", timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    """A plain TCP socket that has completed the WebSocket opening handshake.

    For clients that misbehave below what a WebSocket library allows: half frames,
    resets, never answering a ping. Frames to send: ``websocket.ABNF.create_frame(...).format()``.
    """
    sock = socket.create_connection((LOCALHOST, port), timeout=timeout)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = bytearray()
    # Byte by byte, so that nothing after the headers is consumed here.
    while not response.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte or len(response) > 8192:
            sock.close()
            raise AssertionError(f"handshake did not complete: {bytes(response)!r}")
        response += byte
    if not response.startswith(b"HTTP/1.1 101 "):
        sock.close()
        raise AssertionError(f"handshake refused: {bytes(response)!r}")
    return sock


# -- run_server.py as a process -------------------------------------------------------


@dataclass(frozen=True)
class ListeningServer:
    """``run_server.py`` running as its own process, with the ports it bound."""

    process: ServerProcess
    chat_port: int
    health_port: int

    @property
    def url(self) -> str:
        return f"ws://{LOCALHOST}:{self.chat_port}"


def server_command(*args: str) -> list[str]:
    return [sys.executable, str(RUN_SERVER), *args]


def with_fd_limit(limit: int, command: list[str]) -> list[str]:
    """``command`` with RLIMIT_NOFILE set to ``limit``: a Python that sets it, then execs
    the command in its place (the same process)."""
    setter = ("import os, resource, sys; "
              f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", setter, *command]


@contextmanager
def server_process(*args: str, timeout: float = STARTUP_TIMEOUT, fd_limit: int | None = None,
                   log_path: Path | None = None) -> Iterator[ListeningServer]:
    """Start ``run_server.py`` on 127.0.0.1, free ports, plus ``args``; wait until it listens.

    ``args`` come last, so ``--port N`` there overrides the free port. ``fd_limit`` lowers
    its RLIMIT_NOFILE; ``log_path`` keeps its whole stderr. The process is killed on the way
    out if the test left it running.
    """
    command = server_command("--host", LOCALHOST, "--port", "0", "--health-port", "0", *args)
    if fd_limit is not None:
        command = with_fd_limit(fd_limit, command)
    with ServerProcess(command, cwd=REPO_ROOT, log_path=log_path, stop_signals=(signal.SIGKILL,),
                       grace=DEFAULT_TIMEOUT) as process:
        chat_port = process.wait_listening("ws", timeout).port
        health_port = process.wait_listening("http", timeout).port
        yield ListeningServer(process, chat_port, health_port)


def run_server_to_exit(*args: str, timeout: float = STARTUP_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``run_server.py args`` for a command that must end by itself (errors, --help)."""
    return subprocess.run(server_command(*args), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


# -- the client as a command ----------------------------------------------------------

RUN_CLIENT = REPO_ROOT / "run_client.py"
#: Long enough for a loaded machine; a client that hangs fails here instead of the suite.
RUN_TIMEOUT = 40.0
SUMMARY_LABELS = ("Successful", "Failed", "Warmup phase", "Main phase", "Overall throughput",
                  "Connections opened", "Reconnections", "Little's Law")


def run_client(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN_CLIENT), *args], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def figure(output: str, label: str) -> int:
    """The first number after ``label`` at the start of a summary line."""
    match = re.search(rf"^{re.escape(label)}\s+([\d,]+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return int(match[1].replace(",", ""))


def assert_no_traceback(result: subprocess.CompletedProcess[str] | str) -> None:
    text = result if isinstance(result, str) else result.stdout + result.stderr
    assert "Traceback" not in text, text


# -- the client in a background thread ---------------------------------------------------


class BackgroundRun:
    """A LoadTest running in its own thread, so the test can act on the world meanwhile;
    stopped and joined when the ``with`` block ends, whatever happened in it."""

    def __init__(self, test: LoadTest) -> None:
        self.test = test
        self._results: list[RunResult] = []
        self._thread = threading.Thread(target=lambda: self._results.append(test.run()),
                                        name="load-test", daemon=True)

    def __enter__(self) -> BackgroundRun:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.test.stop.set()
        self._thread.join(10)

    def result(self, timeout: float, message: str = "the run did not finish") -> RunResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), message
        return self._results[0]
