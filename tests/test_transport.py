"""The transport's parts through their public interfaces: the assembler, the output
buffer, the handshake policy, and one connection driven as the selector loop drives it.

The connection tests stand in for the loop with the two callbacks a connection is given
(``watch`` and ``forget``) and talk to it over a real socket pair, its client side
spoken by the `websockets` library's own sans-I/O client.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from chatflow.server.config import KiB, ServerLimits
from chatflow.server.transport import Connection
from chatflow.server.transport.assembler import MessageAssembler
from chatflow.server.transport.connection import Admission
from chatflow.server.transport.handshake import handshake_response
from chatflow.server.transport.loop import RECV_SIZE
from chatflow.server.transport.output import OutputBuffer
from tests.support.frames import SAMPLE_KEY
from tests.support.network import LOCALHOST
from tests.support.waiting import DEFAULT_TIMEOUT

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


# -- the assembler ------------------------------------------------------------------------


def test_a_message_in_one_frame_comes_out_at_once_as_its_type() -> None:
    assembler = MessageAssembler()
    assert assembler.add(Frame(TEXT, "héllo".encode())) == "héllo"
    assert assembler.add(Frame(BINARY, b"\x00\xff")) == b"\x00\xff"
    assert assembler.pending_parts == 0


def test_fragments_are_joined_and_a_character_may_straddle_two() -> None:
    assembler = MessageAssembler()
    data = "ünïcode".encode()
    assert assembler.add(Frame(TEXT, data[:1], fin=False)) is None
    assert assembler.add(Frame(CONT, data[1:4], fin=False)) is None
    assert assembler.add(Frame(CONT, data[4:])) == "ünïcode"
    assert assembler.add(Frame(BINARY, b"ab", fin=False)) is None
    assert assembler.add(Frame(CONT, b"cd")) == b"abcd"
    assert assembler.pending_parts == 0


def test_empty_fragments_are_not_kept() -> None:
    assembler = MessageAssembler()
    assembler.add(Frame(TEXT, b"start", fin=False))
    for _ in range(1000):
        assert assembler.add(Frame(CONT, b"", fin=False)) is None
    assert assembler.pending_parts == 1
    assert assembler.add(Frame(CONT, b" end")) == "start end"


def test_invalid_utf8_fails_in_the_fragment_that_carries_it_and_is_forgotten() -> None:
    assembler = MessageAssembler()
    assembler.add(Frame(TEXT, b"ok", fin=False))
    with pytest.raises(UnicodeDecodeError):
        assembler.add(Frame(CONT, b"\xff", fin=False))
    assert assembler.pending_parts == 0
    with pytest.raises(UnicodeDecodeError):
        assembler.add(Frame(TEXT, b"\xc3"))  # a text that ends inside a character


# -- the output buffer ------------------------------------------------------------------------


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    near, far = socket.socketpair()
    near.setblocking(False)
    far.settimeout(DEFAULT_TIMEOUT)
    try:
        yield near, far
    finally:
        near.close()
        far.close()


def read_all(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def test_output_is_written_in_order_then_half_closed(sockets) -> None:
    near, far = sockets
    output = OutputBuffer(high_water=1 * KiB, now=0.0)
    assert output.empty and not output.full
    output.append(b"first ")
    output.append(b"second")
    output.append_eof()
    assert not output.empty
    output.write_to(near, now=5.0)
    assert output.empty and output.size == 0 and output.last_write == 5.0
    assert read_all(far, 100) == b"first second"  # then EOF: the half-close


def test_what_the_peer_does_not_read_waits_and_marks_the_buffer_full(sockets) -> None:
    near, far = sockets
    output = OutputBuffer(high_water=64 * KiB, now=0.0)
    chunk = b"x" * (64 * KiB)
    for _ in range(64):  # 4 MiB: more than the kernel buffers of a socket pair
        output.append(chunk)
    output.write_to(near, now=1.0)
    assert 0 < output.size < 64 * len(chunk)
    assert output.full
    waiting = output.size
    written = 64 * len(chunk) - waiting
    assert read_all(far, written) == b"x" * written
    output.write_to(near, now=2.0)
    assert output.size < waiting and output.last_write == 2.0


def test_a_peer_that_is_gone_raises_and_clear_forgets_everything(sockets) -> None:
    near, far = sockets
    far.close()
    output = OutputBuffer(high_water=1 * KiB, now=0.0)
    output.append(b"nobody reads this")
    output.append_eof()
    with pytest.raises(OSError):
        output.write_to(near, now=1.0)
    output.clear()
    assert output.empty and output.size == 0


# -- the handshake policy -------------------------------------------------------------------------


def opening_request(version: str = "13") -> Request:
    return Request("/chat/1", Headers({
        "Host": LOCALHOST, "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": SAMPLE_KEY, "Sec-WebSocket-Version": version,
    }))


def test_a_valid_request_is_accepted() -> None:
    response = handshake_response(ServerProtocol(), opening_request(), at_capacity=False)
    assert response.status_code == 101


def test_at_capacity_the_answer_is_503() -> None:
    response = handshake_response(ServerProtocol(), opening_request(), at_capacity=True)
    assert response.status_code == 503


def test_another_version_gets_426_naming_13() -> None:
    response = handshake_response(ServerProtocol(), opening_request(version="8"), at_capacity=False)
    assert response.status_code == 426
    assert response.headers["Sec-WebSocket-Version"] == "13"


def test_admission_counts_against_its_limit() -> None:
    admission = Admission(limit=2)
    assert not admission.full
    admission.admit()
    admission.admit()
    assert (admission.open, admission.full) == (2, True)
    admission.leave()
    assert (admission.open, admission.full) == (1, False)


# -- one connection, driven as the loop drives it ----------------------------------------------------


@dataclass
class Recorder:
    """The handler and the loop's two callbacks, recording what the connection asks of them."""

    texts: list[str] = field(default_factory=list)
    binaries: list[bytes] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    watched: list[int] = field(default_factory=list)
    forgotten: int = 0

    def on_open(self, conn: Connection) -> None:
        self.events.append(f"open {conn.path}")

    def on_text(self, conn: Connection, text: str) -> None:
        self.texts.append(text)
        conn.send_text(text.upper())

    def on_binary(self, conn: Connection, data: bytes) -> None:
        self.binaries.append(data)
        conn.send_binary(data)

    def on_close(self, conn: Connection) -> None:
        self.events.append("close")

    def watch(self, conn: Connection, events: int) -> None:
        self.watched.append(events)

    def forget(self, conn: Connection) -> None:
        self.forgotten += 1


class Peer:
    """The client end: a real socket, spoken by the library's sans-I/O client."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.protocol = ClientProtocol(parse_uri("ws://127.0.0.1/chat/7"))

    def send_pending(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def receive(self) -> list:
        self.protocol.receive_data(self.sock.recv(RECV_SIZE))
        return self.protocol.events_received()


class Driven:
    """A Connection and the loop's side of it: read, handle, flush, as one wake-up does."""

    def __init__(self, sock: socket.socket, recorder: Recorder, limits: ServerLimits) -> None:
        self.buffer = memoryview(bytearray(RECV_SIZE))
        self.conn = Connection(sock, (LOCALHOST, 0), handler=recorder, limits=limits, admission=Admission(10),
                               now=0.0, watch=recorder.watch, forget=recorder.forget)

    def wake_up(self, now: float = 0.0) -> None:
        events = self.conn.receive(self.buffer, now)
        if events:
            self.conn.handle(events)
        self.conn.flush(now)


@pytest.fixture
def opened(sockets) -> Iterator[tuple[Driven, Peer, Recorder]]:
    near, far = sockets
    recorder, peer = Recorder(), Peer(far)
    driven = Driven(near, recorder, ServerLimits())
    peer.protocol.send_request(peer.protocol.connect())
    peer.send_pending()
    driven.wake_up()
    [response] = peer.receive()
    assert isinstance(response, Response) and response.status_code == 101
    yield driven, peer, recorder


def test_messages_reach_the_handler_and_its_replies_the_peer(opened) -> None:
    driven, peer, recorder = opened
    assert driven.conn.opened and driven.conn.path == "/chat/7"
    peer.protocol.send_text(b"hello", fin=False)
    peer.protocol.send_continuation(b" world", fin=True)
    peer.send_pending()
    driven.wake_up()
    assert recorder.texts == ["hello world"]
    [reply] = peer.receive()
    assert (reply.opcode, reply.data) == (TEXT, b"HELLO WORLD")
    assert recorder.events == ["open /chat/7"]
    assert recorder.watched == [] and recorder.forgotten == 0


def test_invalid_utf8_closes_with_1007_and_the_handler_sees_nothing(opened) -> None:
    driven, peer, recorder = opened
    peer.sock.sendall(Frame(TEXT, b"\xff\xfe").serialize(mask=True))
    driven.wake_up()
    assert recorder.texts == []
    [close] = peer.receive()
    assert close.opcode is Opcode.CLOSE and Close.parse(close.data).code == 1007


def test_a_peer_that_leaves_is_forgotten_once_and_its_close_reported_once(opened) -> None:
    driven, peer, recorder = opened
    peer.sock.shutdown(socket.SHUT_WR)
    driven.wake_up()
    driven.conn.release()
    assert driven.conn.released
    assert recorder.forgotten == 1
    assert recorder.events == ["open /chat/7", "close"]


def test_a_peer_that_does_not_read_stops_the_reading_until_it_does(sockets) -> None:
    """Past the high-water mark the connection asks to wait for writability only."""
    near, far = sockets
    recorder, peer = Recorder(), Peer(far)
    driven = Driven(near, recorder, ServerLimits(send_buffer_high_water=16 * KiB))
    peer.protocol.send_request(peer.protocol.connect())
    peer.send_pending()
    driven.wake_up()
    peer.receive()
    conn, frame = driven.conn, Frame(BINARY, b"y" * (32 * KiB)).serialize(mask=True)
    for _ in range(200):  # 6 MiB at most, echoed to a peer that reads none of it
        if not conn.interest & READ:
            break
        peer.sock.sendall(frame)
        driven.wake_up()
    assert conn.interest == WRITE, "the connection kept reading from a peer that reads nothing"
    assert conn.output.full and recorder.watched[-1] == WRITE

    peer.sock.setblocking(False)
    for _ in range(200):
        if conn.interest & READ:
            break
        try:
            while peer.sock.recv(RECV_SIZE):
                pass
        except BlockingIOError:
            pass
        conn.on_writable(now=1.0)
    assert conn.interest & READ, "reading did not resume once the peer read"
    assert recorder.watched[-1] & READ
