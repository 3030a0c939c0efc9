"""The client's side of RFC 6455 by hand: the opening handshake and frames, field by field.

For peers below what a WebSocket library allows: tests that send frames wrong on
purpose (unmasked, reserved bits, a length that lies), the benchmarks' load clients that
must cost as little as possible, and the fault proxy that reads both directions back
from its log. ``parse_frame`` is the one decoder; ``FrameReader`` reads the server's
frames off a blocking socket with it, a selector loop calls it on its own buffer.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket

from tests.support.network import LOCALHOST, MAX_READ, RECV_SIZE
from tests.support.waiting import DEFAULT_TIMEOUT

OPCODE_CONT, OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: RFC 6455 §1.3's example key, for a request whose key does not matter.
SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The longest frame a reader accepts: more than any reply or message here (a longer
#: header is a broken stream, not a frame to wait for).
MAX_FRAME_LENGTH = MAX_READ
#: The longest handshake response a reader waits for.
MAX_RESPONSE_HEAD = 16 * 1024
#: Frames a reader skips (pings answered, pongs) looking for the one it wants.
MAX_SKIPPED_FRAMES = 8


class FrameError(Exception):
    """The server's side of the stream is not what RFC 6455 (or this reader) allows."""


# -- the opening handshake -------------------------------------------------------------------


def new_key() -> str:
    """A random Sec-WebSocket-Key (RFC 6455 §4.1)."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_value(key: str) -> str:
    """The Sec-WebSocket-Accept that answers ``key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + WEBSOCKET_GUID).digest()).decode()


def handshake_request(path: str = "/chat/1", host: str = LOCALHOST, key: str | None = SAMPLE_KEY,
                      version: str | None = "13", extra: str = "") -> bytes:
    """The opening handshake's request; ``key`` or ``version`` None leaves the header out,
    ``extra`` is more header lines (each ending in CRLF)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def check_response(head: bytes, key: str) -> None:
    """FrameError unless ``head`` (the response up to its blank line) accepts ``key``."""
    status, *lines = head.decode("latin-1").split("\r\n")
    if not status.startswith("HTTP/1.1 101 "):
        raise FrameError(f"handshake refused: {head[:300]!r}")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    if headers.get("sec-websocket-accept") != accept_value(key):
        raise FrameError("wrong Sec-WebSocket-Accept in the handshake response")


def handshake(sock: socket.socket, path: str = "/chat/1", key: str | None = None) -> tuple[bytes, bytes]:
    """The opening handshake on a connected blocking socket, its response checked; the
    request sent and the response read (up to its blank line, included).

    The response is read byte by byte, so that nothing the server sends after it is
    taken from the socket here.
    """
    key = key or new_key()
    host, port = sock.getpeername()[:2]
    request = handshake_request(path, f"{host}:{port}", key)
    sock.sendall(request)
    response = bytearray()
    while not response.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise FrameError(f"the server ended the connection during the handshake: {bytes(response[:300])!r}")
        if len(response) > MAX_RESPONSE_HEAD:
            raise FrameError("handshake response too long")
        response += byte
    check_response(bytes(response[:-4]), key)
    return request, bytes(response)


def handshaken(sock: socket.socket, path: str = "/chat/1") -> socket.socket:
    """``sock`` once ``handshake`` has succeeded on it; closed if it has not."""
    try:
        handshake(sock, path)
    except BaseException:
        sock.close()
        raise
    return sock


def raw_handshake(port: int, path: str = "/chat/1", timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    """A plain TCP socket to 127.0.0.1:``port`` that has completed the opening handshake,
    with ``timeout`` on every later call."""
    return handshaken(socket.create_connection((LOCALHOST, port), timeout=timeout), path)


# -- frames ---------------------------------------------------------------------------------


def mask(key: bytes, payload: bytes) -> bytes:
    """``payload`` XORed with the 4-byte ``key`` repeated (RFC 6455 §5.3): masks and unmasks."""
    length = len(payload)
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True,
                 announced_length: int | None = None) -> bytes:
    """One client frame (RFC 6455 §5.2), masked with a random key; every field can be set
    wrong on purpose. ``announced_length`` puts another length in the header than the
    payload's."""
    length = len(payload) if announced_length is None else announced_length
    header = bytearray([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header.append(mask_bit | length)
    elif length < 1 << 16:
        header += bytes([mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        header += bytes([mask_bit | 127]) + length.to_bytes(8, "big")
    if not masked:
        return bytes(header) + payload
    key = os.urandom(4)
    return bytes(header) + key + mask(key, payload)


def parse_frame(data: bytes | bytearray, offset: int = 0) -> tuple[int, bytes, int] | None:
    """The whole frame at ``offset``: (opcode, payload unmasked, the offset after it);
    None while it is not all there. FrameError for a fragment (neither ChatFlow side
    sends one) or a length beyond ``MAX_FRAME_LENGTH``."""
    if len(data) < offset + 2:
        return None
    first, second = data[offset], data[offset + 1]
    if not first & 0x80:
        raise FrameError("a fragmented frame: these peers read whole frames only")
    length, start = second & 0x7F, offset + 2
    if length >= 126:
        size = 2 if length == 126 else 8
        if len(data) < start + size:
            return None
        length = int.from_bytes(data[start:start + size], "big")
        start += size
    if length > MAX_FRAME_LENGTH:
        raise FrameError(f"a frame of {length} bytes")
    if second & 0x80:
        if len(data) < start + 4 + length:
            return None
        key, start = bytes(data[start:start + 4]), start + 4
        return first & 0x0F, mask(key, bytes(data[start:start + length])), start + length
    if len(data) < start + length:
        return None
    return first & 0x0F, bytes(data[start:start + length]), start + length


class FrameReader:
    """The server's frames off a blocking socket, one whole frame a call; what arrived
    after a frame waits in ``pending`` for the next."""

    def __init__(self, sock: socket.socket, pending: bytes = b"") -> None:
        self.sock = sock
        self.recv = sock.recv
        self.pending = bytearray(pending)

    def next(self) -> tuple[int, bytes]:
        """The next frame's opcode and payload."""
        buffer = self.pending
        while (frame := parse_frame(buffer)) is None:
            data = self.recv(RECV_SIZE)
            if not data:
                raise FrameError(f"the server ended the connection inside a frame: {bytes(buffer[:64])!r}"
                                 if buffer else "the server ended the connection")
            buffer += data
        if buffer[1] & 0x80:
            raise FrameError("the server masked a frame")
        opcode, payload, end = frame
        del buffer[:end]
        return opcode, payload

    def next_text(self) -> bytes:
        """The next text frame's payload, answering any ping in front of it."""
        for _ in range(MAX_SKIPPED_FRAMES):
            opcode, payload = self.next()
            if opcode == OPCODE_TEXT:
                return payload
            if opcode == OPCODE_PING:
                self.sock.sendall(client_frame(OPCODE_PONG, payload))
            elif opcode == OPCODE_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                raise FrameError(f"the server closed the connection ({code}): {payload[2:].decode(errors='replace')}")
            elif opcode != OPCODE_PONG:
                raise FrameError(f"unexpected frame with opcode {opcode:#x}")
        raise FrameError(f"no text frame among {MAX_SKIPPED_FRAMES} frames")

    def close_code(self, max_frames: int = 100) -> int:
        """Skip to the server's close frame; its code."""
        for _ in range(max_frames):
            opcode, payload = self.next()
            if opcode == OPCODE_CLOSE:
                return int.from_bytes(payload[:2], "big")
        raise FrameError(f"no close frame among {max_frames} frames")

    def ends(self) -> bool:
        """True once the server has ended the TCP stream (EOF or reset), after nothing more."""
        try:
            rest = self.recv(MAX_READ)
        except ConnectionResetError:
            return True
        if rest:
            raise FrameError(f"more after the end: {rest[:64]!r}")
        return True
