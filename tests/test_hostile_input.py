"""The server against hostile clients: garbage handshakes, broken frames, floods, a
client that stops reading, more clients than file descriptors, idle health connections;
and each limit set through its run_server.py option (docs/reliability.md).

Most tests run with a well-behaved bystander connected to the same server, which must
still get its replies afterwards, and end by checking that what the hostile client held
is given back: its socket on the server, and this process's threads and file
descriptors. Frames are built and masked by hand (``tests.support.frames``), so that
they can be wrong in ways no WebSocket library would send.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import os
import re
import select
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import websocket

from chatflow.server.config import DEFAULTS, ECHO_LIMITS, KiB, ServerConfig, ServerLimits
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.health_check_server import HealthCheckServer
from chatflow.server.main import build_parser, config_from, limits_from
from chatflow.server.transport import Connection, WebSocketServer
from chatflow.server.transport.loop import RECV_SIZE
from tests.support.clients import connect, connected, receive_close, round_trip
from tests.support.frames import (
    OPCODE_CLOSE,
    OPCODE_CONT,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameReader,
    client_frame,
    handshake_request,
    raw_handshake,
)
from tests.support.memory import traced_memory
from tests.support.messages import chat_message_json
from tests.support.network import LOCALHOST, MAX_READ, read_to_end, recv_exactly
from tests.support.processes import server_process
from tests.support.servers import RunningServer, chat_handler, serving
from tests.support.waiting import DEFAULT_TIMEOUT, wait_until

#: Short, so that the slow-client tests are quick; the bystander is never that slow.
HANDSHAKE_TIMEOUT = 1.0
WRITE_TIMEOUT = 2.0


# -- what a hostile client holds, and what it must give back -------------------------------


@dataclasses.dataclass(frozen=True)
class Held:
    """What the in-process server and this process hold: the counts that must not leak."""

    connections: int
    threads: int
    fds: int

    def within(self, baseline: Held) -> bool:
        """Nothing more than at the baseline. Fewer threads or descriptors is someone
        else's cleanup (an earlier test's garbage collected), not this test's leak."""
        return (self.connections == baseline.connections and self.threads <= baseline.threads
                and self.fds <= baseline.fds)


def held(server: WebSocketServer) -> Held:
    return Held(server.connection_count, threading.active_count(), len(os.listdir("/proc/self/fd")))


def baseline_of(server: WebSocketServer) -> Held:
    """What is held now, after collecting garbage that still holds sockets open."""
    gc.collect()
    return held(server)


@dataclasses.dataclass
class Arena:
    """A chat server with a bystander connected, and what they held before the test."""

    running: RunningServer
    bystander: websocket.WebSocket
    baseline: Held

    @property
    def port(self) -> int:
        return self.running.port

    def assert_recovered(self) -> None:
        """Everything given back, and the bystander still answered."""
        server = self.running.server
        wait_until(lambda: held(server).within(self.baseline), message=f"back to {self.baseline}",
                   describe=lambda: held(server))
        reply = round_trip(self.bystander, chat_message_json(userId=4242))
        assert (reply["status"], reply["userId"]) == ("success", 4242)


@pytest.fixture
def arena() -> Iterator[Arena]:
    with serving(chat_handler(), ServerLimits(handshake_timeout=HANDSHAKE_TIMEOUT)) as running:
        with connected(f"{running.url}/chat/1") as bystander:
            assert round_trip(bystander, chat_message_json())["status"] == "success"
            yield Arena(running, bystander, baseline_of(running.server))


# -- the opening handshake -------------------------------------------------------------------


HANDSHAKE_GARBAGE = {
    # A TLS ClientHello's first bytes, then every byte value: not a request line at all.
    "non-HTTP bytes": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4, False, None),
    "request line then EOF": (b"GET /chat/2 HTTP/1.1\r\n", True, None),
    "no Sec-WebSocket-Key": (handshake_request("/chat/2", key=None), False, 400),
    "key of 5 bytes": (handshake_request("/chat/2", key="c2hvcnQ="), False, 400),
    "key not base64": (handshake_request("/chat/2", key="not base64 at all!"), False, 400),
    "Sec-WebSocket-Version 12": (handshake_request("/chat/2", version="12"), False, 426),
    "one header of 100 KB": (handshake_request("/chat/2", extra=f"X-Filler: {'a' * 100_000}\r\n"), False, 431),
    "100 KB of headers": (
        handshake_request("/chat/2", extra="".join(f"X-Filler-{n}: {'a' * 800}\r\n" for n in range(125))), False, 431),
}


@pytest.mark.parametrize(("request_bytes", "half_close", "status"), HANDSHAKE_GARBAGE.values(),
                         ids=HANDSHAKE_GARBAGE.keys())
def test_garbage_handshake_is_refused_and_released(arena: Arena, request_bytes: bytes, half_close: bool,
                                                   status: int | None) -> None:
    with socket.create_connection((LOCALHOST, arena.port), timeout=DEFAULT_TIMEOUT) as sock:
        sock.sendall(request_bytes)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = read_to_end(sock)
    if status is None:
        # Nothing that could be answered in HTTP: the server just ends the stream.
        assert response == b""
    else:
        head = response.split(b"\r\n\r\n", 1)[0].decode()
        assert re.match(rf"HTTP/1\.1 {status} ", head), head
        assert "\r\nConnection: close" in head
        if status == 426:
            assert "\r\nSec-WebSocket-Version: 13" in head
    arena.assert_recovered()


def test_slowloris_handshake_is_dropped_at_the_handshake_timeout(arena: Arena) -> None:
    """A client that keeps sending, a byte at a time, still gets only the handshake timeout."""
    request = handshake_request("/chat/2")
    started = time.monotonic()
    dropped = False
    with socket.create_connection((LOCALHOST, arena.port), timeout=DEFAULT_TIMEOUT) as sock:
        # At 20 bytes a second the whole request would take about 8 s.
        for byte in request:
            try:
                sock.send(bytes([byte]))
                readable, _, _ = select.select([sock], [], [], 0.05)
                if readable:
                    dropped = sock.recv(MAX_READ) == b""
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
            if dropped:
                break
    assert dropped, "the whole request was trickled in without the server ending it"
    assert time.monotonic() - started >= HANDSHAKE_TIMEOUT
    arena.assert_recovered()


def test_room_number_of_5000_digits_is_out_of_range_not_an_internal_error(arena: Arena) -> None:
    # int() refuses strings this long: the room must still be refused as out of range.
    with connected(f"{arena.running.url}/chat/{'7' * 5000}") as ws:
        assert receive_close(ws) == (1003, "Invalid room number. Room must be between 1 and 20")
    arena.assert_recovered()


# -- frames ------------------------------------------------------------------------------------------

MESSAGE = chat_message_json().encode()
BAD_FRAMES = {
    "unmasked": (client_frame(OPCODE_TEXT, MESSAGE, masked=False), 1002),
    "reserved bit set": (client_frame(OPCODE_TEXT, MESSAGE, rsv=0b100), 1002),
    "unknown data opcode 0x3": (client_frame(0x3, MESSAGE), 1002),
    "unknown control opcode 0xB": (client_frame(0xB, b"?"), 1002),
    "ping of 126 bytes": (client_frame(OPCODE_PING, b"p" * 126), 1002),
    # Only the header: the close must come without waiting for 2^62 bytes.
    "length of 2^62": (client_frame(OPCODE_TEXT, announced_length=1 << 62), 1009),
    "UTF-16 surrogate in UTF-8": (client_frame(OPCODE_TEXT, b'{"message":"\xed\xa0\x80"}'), 1007),
    "last fragment ends inside a character": (
        client_frame(OPCODE_TEXT, b'{"message":"caf', fin=False) + client_frame(OPCODE_CONT, b"\xc3", fin=True),
        1007,
    ),
}


@pytest.mark.parametrize(("frames", "code"), BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_bad_frame_closes_with_its_code_and_is_released(arena: Arena, frames: bytes, code: int) -> None:
    with raw_handshake(arena.port, "/chat/2") as sock:
        sock.sendall(frames)
        reader = FrameReader(sock)
        assert reader.close_code() == code
        assert reader.ends()
    arena.assert_recovered()


def test_fragments_with_a_ping_between_are_one_message_with_one_reply(arena: Arena) -> None:
    text = chat_message_json(message="three fragments, one message").encode()
    with raw_handshake(arena.port, "/chat/2") as sock:
        sock.sendall(client_frame(OPCODE_TEXT, text[:20], fin=False)
                     + client_frame(OPCODE_PING, b"between")
                     + client_frame(OPCODE_CONT, text[20:40], fin=False)
                     + client_frame(OPCODE_CONT, text[40:], fin=True)
                     + client_frame(OPCODE_TEXT, chat_message_json(userId=2).encode()))
        reader = FrameReader(sock)
        assert reader.next() == (OPCODE_PONG, b"between")
        opcode, reply = reader.next()
        assert opcode == OPCODE_TEXT
        assert b'"message":"three fragments, one message"' in reply
        assert reply.endswith(b'"status":"success"}')
        # The next reply is the next message's: the fragments got exactly one.
        assert reader.next()[1].startswith(b'{"userId":2,')
        sock.sendall(client_frame(OPCODE_CLOSE, (1000).to_bytes(2, "big")))
        assert reader.close_code() == 1000
        assert reader.ends()
    arena.assert_recovered()


def test_ping_flood_gets_every_pong_in_order_and_the_connection_still_chats(arena: Arena) -> None:
    pings = 1000
    with raw_handshake(arena.port, "/chat/2") as sock:
        sock.sendall(b"".join(client_frame(OPCODE_PING, n.to_bytes(2, "big")) for n in range(pings)))
        reader = FrameReader(sock)
        for n in range(pings):
            assert reader.next() == (OPCODE_PONG, n.to_bytes(2, "big"))
        sock.sendall(client_frame(OPCODE_TEXT, chat_message_json(userId=3).encode()))
        opcode, reply = reader.next()
        assert opcode == OPCODE_TEXT and reply.startswith(b'{"userId":3,') and reply.endswith(b'"success"}')
    arena.assert_recovered()


class StallingChat(ChatWebSocketServer):
    """Chat whose selector thread stops on the text "stall" until ``release`` is set, so
    that everything the test sends meanwhile is ready at the same wake-up."""

    def __init__(self) -> None:
        super().__init__(max_rooms=DEFAULTS.max_rooms)
        self.stalled, self.release = threading.Event(), threading.Event()

    def on_text(self, conn: Connection, text: str) -> None:
        if text == "stall":
            self.stalled.set()
            self.release.wait(DEFAULT_TIMEOUT)
        else:
            super().on_text(conn, text)


def test_ping_floods_ready_on_many_sockets_at_once_are_answered_in_bounded_batches() -> None:
    """One 64 KiB read of empty pings is 10,922 frames; a wake-up must not hold every
    flooding socket's frames and pongs at once (8 sockets: 18 MiB when it did)."""
    flooders, pings = 8, RECV_SIZE // 6
    flood = client_frame(OPCODE_PING, b"", masked=True) * pings
    handler = StallingChat()
    with serving(handler) as running:
        staller = raw_handshake(running.port)
        # Under tracemalloc the server takes seconds over these frames.
        socks = [raw_handshake(running.port, timeout=60) for _ in range(flooders)]
        try:
            staller.sendall(client_frame(OPCODE_TEXT, b"stall"))
            assert handler.stalled.wait(DEFAULT_TIMEOUT), "the selector thread never took the stall message"
            with traced_memory() as traced:
                for sock in socks:
                    sock.sendall(flood)
                handler.release.set()
                pongs = [recv_exactly(sock, 2 * pings) for sock in socks]
                peak = traced()[1]
        finally:
            handler.release.set()
            for sock in [staller, *socks]:
                sock.close()
    assert all(received == bytes([0x80 | OPCODE_PONG, 0]) * pings for received in pongs)
    assert peak < 8 * 1024 * KiB, f"peak {peak / 2**20:.1f} MiB"


def test_frames_behind_a_refused_handshake_reach_no_handler() -> None:
    """A client refused with 503 that sent a message in the same packet gets no reply."""
    seen: list[str] = []

    class Recording(ChatWebSocketServer):
        def on_text(self, conn: Connection, text: str) -> None:
            seen.append(text)
            super().on_text(conn, text)

    with serving(Recording(max_rooms=DEFAULTS.max_rooms), ServerLimits(max_connections=0)) as running:
        with socket.create_connection((LOCALHOST, running.port), timeout=DEFAULT_TIMEOUT) as sock:
            sock.sendall(handshake_request("/chat/2") + client_frame(OPCODE_TEXT, chat_message_json().encode()))
            response = read_to_end(sock)
    assert response.startswith(b"HTTP/1.1 503 ")
    assert b'"status"' not in response
    assert seen == []


def connections_on(server: WebSocketServer, path: str) -> list[Connection]:
    """The server's side of the connections on ``path``, for what only it can show."""
    return [conn for conn in server.connections() if conn.path == path]


def test_stream_of_empty_fragments_holds_no_memory_and_the_message_still_completes(arena: Arena) -> None:
    """Empty fragments count nothing towards the size limit, so they must cost nothing."""
    text = chat_message_json(message="after many empty fragments").encode()
    empties = 100_000
    with raw_handshake(arena.port, "/chat/2") as sock:
        reader = FrameReader(sock)
        sock.sendall(client_frame(OPCODE_TEXT, text[:10], fin=False))
        sock.sendall(client_frame(OPCODE_CONT, fin=False) * empties)
        # The pong says the server has read every fragment before it.
        sock.sendall(client_frame(OPCODE_PING, b"sync"))
        assert reader.next() == (OPCODE_PONG, b"sync")
        [conn] = connections_on(arena.running.server, "/chat/2")
        assert conn.assembler.pending_parts <= 1
        sock.sendall(client_frame(OPCODE_CONT, text[10:], fin=True))
        opcode, reply = reader.next()
        assert opcode == OPCODE_TEXT and b'"message":"after many empty fragments"' in reply
    arena.assert_recovered()


# -- a client that stops reading ---------------------------------------------------------------------


#: Bounded in bytes, far beyond what the kernel buffers of both sides hold.
FLOOD_BYTES = 64 * 1024 * KiB
STUCK_CLIENT_MESSAGES = {
    "1 KiB chat messages": chat_message_json(message="m" * 500, padding="p" * 400),
    # A 7-byte frame whose error reply is 166 bytes: the most reply per byte read.
    "1-byte garbage": "x",
}


@pytest.mark.parametrize("text", STUCK_CLIENT_MESSAGES.values(), ids=STUCK_CLIENT_MESSAGES.keys())
def test_client_that_stops_reading_is_bounded_then_dropped_while_others_are_served(text: str) -> None:
    """It sends messages as fast as it can and reads none of the replies.

    The server buffers its replies up to the high-water mark (plus the replies to the
    one read that crossed it), then stops reading from it, serves everyone else as
    before, and drops it when nothing could be written to it for the write timeout.
    """
    limits = ServerLimits(write_timeout=WRITE_TIMEOUT)
    frame = client_frame(OPCODE_TEXT, text.encode())
    batch = frame * max(1, 64 * KiB // len(frame))
    with serving(chat_handler(), limits) as running, connected(f"{running.url}/chat/1") as bystander:
        server = running.server
        bystander.send(text)
        reply_size = len(bystander.recv().encode())
        reply_frame_size = reply_size + (2 if reply_size < 126 else 4)
        # One read of RECV_SIZE bytes holds this many messages, at most; each gets its reply.
        bound = limits.send_buffer_high_water + (RECV_SIZE // len(frame) + 1) * reply_frame_size
        baseline = baseline_of(server)

        stuck = raw_handshake(running.port, "/chat/3")
        stuck.settimeout(WRITE_TIMEOUT * 10)
        sent, send_error = 0, []

        def flood() -> None:
            nonlocal sent
            try:
                while sent < FLOOD_BYTES:
                    stuck.sendall(batch)
                    sent += len(batch)
            except OSError as exc:
                send_error.append(exc)

        flooder = threading.Thread(target=flood, name="stuck-client", daemon=True)
        flooder.start()
        [conn] = wait_until(lambda: connections_on(server, "/chat/3"))
        most_buffered, reading_stopped, round_trips = 0, False, 0
        deadline = time.monotonic() + WRITE_TIMEOUT + 30
        while not conn.released and time.monotonic() < deadline:
            most_buffered = max(most_buffered, conn.output.size)
            reading_stopped |= not conn.interest & selectors.EVENT_READ
            reply = round_trip(bystander, chat_message_json(userId=round_trips + 1))
            assert (reply["status"], reply["userId"]) == ("success", round_trips + 1)
            round_trips += 1
        flooder.join(DEFAULT_TIMEOUT)
        stuck.close()

        assert conn.released, f"not dropped within {WRITE_TIMEOUT + 30:g} s"
        assert reading_stopped, f"the server never stopped reading it ({sent} bytes sent)"
        assert 0 < most_buffered <= bound
        assert round_trips > 0
        # It was dropped, not let finish: its sends end in a reset.
        assert not flooder.is_alive() and sent < FLOOD_BYTES
        assert [exc.errno for exc in send_error] in ([errno.ECONNRESET], [errno.EPIPE])
        wait_until(lambda: held(server).within(baseline), describe=lambda: held(server))


# -- out of file descriptors ---------------------------------------------------------------------------


def test_out_of_file_descriptors_waits_for_them_without_spinning_and_keeps_serving() -> None:
    """More clients than the process has descriptors for: the open connections are
    served, the rest wait in the backlog until descriptors free up, and the server
    does not retry accept() in a tight loop (which logged a warning per try)."""
    fd_limit, strays = 32, 60
    with server_process("--handshake-timeout", "1", fd_limit=fd_limit) as server:
        port, stderr = server.chat_port, server.process.stderr
        url = f"{server.url}/chat/1"
        with connected(url) as bystander:
            assert round_trip(bystander, chat_message_json())["status"] == "success"
            waiting = [socket.create_connection((LOCALHOST, port), timeout=DEFAULT_TIMEOUT) for _ in range(strays)]
            try:
                wait_until(lambda: "Too many open files" in stderr.text, describe=lambda: stderr.lines[-10:])
                assert round_trip(bystander, chat_message_json(userId=2))["userId"] == 2
                # Each stray is accepted when a descriptor frees up, then dropped at its
                # handshake timeout, which frees the descriptor for the next.
                for sock in waiting:
                    readable, _, _ = select.select([sock], [], [], 20)
                    assert readable, "a client never accepted"
                    assert read_to_end(sock) == b""
            finally:
                for sock in waiting:
                    sock.close()
            wait_until(lambda: "accepting connections again" in stderr.text, describe=lambda: stderr.lines[-10:])
            with connected(url) as newcomer:
                assert round_trip(newcomer, chat_message_json(userId=3))["userId"] == 3
            assert round_trip(bystander, chat_message_json(userId=4))["userId"] == 4
        failures = [line for line in stderr.lines if "accept failed" in line]
        assert 1 <= len(failures) <= 3, "\n".join(failures[:10])
        assert server.process.returncode is None


# -- the health endpoint ---------------------------------------------------------------------------------


def test_idle_health_connections_are_closed_and_their_threads_end() -> None:
    """The health endpoint runs a thread per connection: an idle one must not keep it."""
    health = HealthCheckServer(host=LOCALHOST, port=0, idle_timeout=HANDSHAKE_TIMEOUT)
    health.start()
    try:
        threads_before = threading.active_count()
        idle = [socket.create_connection(health.address, timeout=DEFAULT_TIMEOUT) for _ in range(5)]
        try:
            idle[0].sendall(b"GET /hea")  # and one that stops mid-request
            for sock in idle:
                assert read_to_end(sock) == b""
        finally:
            for sock in idle:
                sock.close()
        wait_until(lambda: threading.active_count() == threads_before, describe=threading.active_count)
        with socket.create_connection(health.address, timeout=DEFAULT_TIMEOUT) as sock:
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: {LOCALHOST}\r\nConnection: close\r\n\r\n".encode())
            assert read_to_end(sock).endswith(b'{"status":"healthy"}')
    finally:
        health.stop()


# -- limits as run_server.py options --------------------------------------------------------------------


def test_the_command_line_starts_with_the_servers_defaults() -> None:
    assert config_from(build_parser().parse_args([])) == ServerConfig()
    assert config_from(build_parser().parse_args(["--echo"])).limits == ECHO_LIMITS


def test_every_limit_is_an_option_that_shows_its_default() -> None:
    defaults = ServerLimits()
    assert limits_from(build_parser().parse_args([])) == defaults
    help_text = " ".join(build_parser().format_help().split())
    for option, value in [
        ("--max-message-size", defaults.max_message_size),
        ("--max-connections", defaults.max_connections),
        ("--handshake-timeout", defaults.handshake_timeout),
        ("--ping-interval", defaults.ping_interval),
        ("--ping-timeout", defaults.ping_timeout),
        ("--write-timeout", defaults.write_timeout),
    ]:
        assert re.search(rf"{option} \S+ [^(]*\(default {value:g}\b", help_text), option


def test_max_connections_option_refuses_with_503() -> None:
    with server_process("--max-connections", "1") as server:
        with connected(f"{server.url}/chat/1") as first:
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                connect(f"{server.url}/chat/2")
            assert refused.value.status_code == 503
            assert round_trip(first, chat_message_json())["status"] == "success"


def test_handshake_timeout_option_drops_a_silent_client() -> None:
    with server_process("--handshake-timeout", "0.5") as server:
        with socket.create_connection((LOCALHOST, server.chat_port), timeout=DEFAULT_TIMEOUT) as silent:
            silent.sendall(b"GET /chat/1 HTTP/1.1\r\n")
            # Well before the default 10 s: the option took effect.
            assert read_to_end(silent) == b""


def test_ping_options_close_a_client_that_never_answers_with_1011() -> None:
    with server_process("--ping-interval", "0.3", "--ping-timeout", "0.3") as server:
        with raw_handshake(server.chat_port, "/chat/1") as silent:
            reader = FrameReader(silent)
            assert reader.next()[0] == OPCODE_PING
            assert reader.close_code() == 1011
            assert reader.ends()


def test_write_timeout_option_drops_a_client_that_reads_nothing() -> None:
    frame = client_frame(OPCODE_TEXT, chat_message_json(message="m" * 500).encode())
    with server_process("--write-timeout", "1") as server:
        with raw_handshake(server.chat_port, "/chat/1") as stuck:
            stuck.setblocking(False)
            # Send until the kernel's buffers on both sides are full; then the server's
            # sends fail, and once the timeout passes it resets the connection.
            deadline = time.monotonic() + 60
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                while time.monotonic() < deadline:
                    try:
                        stuck.send(frame)
                    except BlockingIOError:
                        select.select([], [stuck], [], 0.1)
