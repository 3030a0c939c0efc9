"""One client connection to a chat room: send a message, wait for its reply.

Built on websocket-client (the user's choice of client library). The replies are
matched to requests by order alone, which is only sound while the connection carries
one request at a time and no late reply can arrive: after a timeout the caller must
drop the connection (``close``) and open a new one, never reuse it.
"""

from __future__ import annotations

import socket
import struct
import sys

import websocket
from websocket import ABNF

from chatflow.client.framing import MaskKeys

OPCODE_TEXT = ABNF.OPCODE_TEXT
OPCODE_CLOSE = ABNF.OPCODE_CLOSE
STATUS_INVALID_PAYLOAD = websocket.STATUS_INVALID_PAYLOAD
STATUS_PROTOCOL_ERROR = websocket.STATUS_PROTOCOL_ERROR


class ConnectFailed(Exception):
    """The connection could not be opened (refused, timed out, handshake refused)."""


class ConnectionClosed(Exception):
    """The connection ended while a reply was awaited (close frame, reset, EOF)."""


class ReplyTimeout(Exception):
    """No reply within the timeout; the connection can no longer be trusted."""


READ_SIZE = 64 * 1024
#: Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS), which the socket module does not name:
#: the kernel's receive time of the data, as a struct timespec in the ancillary data.
SO_TIMESTAMPNS = 35 if sys.platform.startswith("linux") else None
_TIMESPEC = struct.Struct("ll")
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if SO_TIMESTAMPNS is not None else 0


class BufferedSocket:
    """The connection's socket, read in large chunks, with the timeout in the kernel.

    One ``recv`` fills a buffer that serves websocket-client's three small reads of a
    frame, and the reply timeout is the socket's SO_RCVTIMEO, so Python puts no ``poll``
    before each read: fewer system calls per reply (docs/client.md). On Linux each read
    also brings the kernel's receive time of its data (``received_ns``), for the client
    wait (docs/client.md#where-a-reply-waits). Everything else is the socket's own.
    """

    __slots__ = ("_sock", "_buffer", "_timeout", "_stamp")

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._buffer = b""
        self._timeout = timeout
        self._stamp = b""
        sock.settimeout(None)
        self.settimeout(timeout)
        if SO_TIMESTAMPNS is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def recv(self, size: int) -> bytes:
        buffer = self._buffer
        if not buffer:
            try:
                buffer, ancillary, _, _ = self._sock.recvmsg(READ_SIZE, ANCILLARY_SIZE)
            except BlockingIOError:  # SO_RCVTIMEO ran out
                raise TimeoutError("timed out") from None
            # The stamp of the read that brought the bytes served last: for a reply,
            # the read of its last bytes.
            self._stamp = ancillary[0][2] if ancillary else b""
            if len(buffer) <= size:
                return buffer
        self._buffer = buffer[size:]
        return buffer[:size]

    @property
    def received_ns(self) -> int | None:
        """Epoch ns at which the kernel received the data of the last read; None unknown."""
        stamp = self._stamp
        if len(stamp) != _TIMESPEC.size:
            return None
        seconds, nanoseconds = _TIMESPEC.unpack(stamp)
        return seconds * 1_000_000_000 + nanoseconds

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        seconds = timeout or 0.0
        timeval = struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def gettimeout(self) -> float | None:
        return self._timeout

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def open_websocket(url: str, timeout: float) -> websocket.WebSocket:
    """A connected websocket-client socket with ChatFlow's settings.

    - TCP_NODELAY: one small frame per request; Nagle would hold it back.
    - ``enable_multithread=False``: one thread owns each connection, so the library's
      per-send lock is pure cost.
    - ``skip_utf8_validation=True``: the library's check is slow and misses a text that
      ends inside a character; ``receive`` decodes strictly instead (close 1007). The
      flag also turns off the check of a close frame's reason, which only the library
      can do (it answers the close before returning it), so that one is turned back on.
    - a ``BufferedSocket`` under the library, and masking keys from a ``MaskKeys`` pool.
    """
    ws = websocket.WebSocket(
        enable_multithread=False,
        skip_utf8_validation=True,
        sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )
    try:
        ws.connect(url, timeout=timeout)
    except (OSError, websocket.WebSocketException) as exc:
        ws.shutdown()
        raise ConnectFailed(describe_error(exc)) from exc
    ws.frame_buffer.skip_utf8_validation = False
    ws.sock = BufferedSocket(ws.sock, timeout)
    ws.set_mask_key(MaskKeys())
    return ws


def describe_error(exc: BaseException) -> str:
    """A short, human description of a connection error."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"handshake refused with HTTP {exc.status_code}"
    return str(exc) or type(exc).__name__


class ChatWebSocketClient:
    """A persistent connection for one sender thread, one request at a time."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._ws = open_websocket(url, timeout)
        self._socket: BufferedSocket = self._ws.sock

    @property
    def received_ns(self) -> int | None:
        """When the kernel received the last bytes of the latest reply (epoch ns); None unknown."""
        return self._socket.received_ns

    def receive(self) -> tuple[int, bytes]:
        """The next data message (opcode, payload); answers pings on the way.

        Raises ReplyTimeout or ConnectionClosed. A text message that is not valid
        UTF-8 fails the connection with 1007, as RFC 6455 requires.
        """
        ws = self._ws
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketTimeoutException as exc:
            raise ReplyTimeout(f"no reply within {self.timeout:g} s") from exc
        except websocket.WebSocketProtocolException as exc:
            self.close(STATUS_PROTOCOL_ERROR)
            raise ConnectionClosed(describe_error(exc)) from exc
        except websocket.WebSocketPayloadException as exc:
            self.close(STATUS_INVALID_PAYLOAD)
            raise ConnectionClosed(describe_error(exc)) from exc
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionClosed(describe_error(exc)) from exc
        if opcode == OPCODE_TEXT:
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                self.close(STATUS_INVALID_PAYLOAD)
                raise ConnectionClosed("reply is not valid UTF-8") from exc
        elif opcode == OPCODE_CLOSE:
            raise ConnectionClosed(_close_description(data))
        return opcode, data

    def send(self, payload: bytes, opcode: int = OPCODE_TEXT) -> None:
        """One message, framed by the library (the conformance echo client's path)."""
        try:
            self._ws.send(payload, opcode)
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionClosed(describe_error(exc)) from exc

    def request(self, frame: bytes) -> bytes:
        """Write one whole frame (``framing.text_frame``) and return the reply that answers it.

        The one request path of the load test: the senders and the round-trip probe.
        """
        try:
            self._ws.sock.sendall(frame)
        except OSError as exc:
            raise ConnectionClosed(describe_error(exc)) from exc
        return self.receive()[1]

    def close(self, status: int = websocket.STATUS_NORMAL) -> None:
        """Close quickly: a sender must not wait on a server that stopped answering."""
        try:
            self._ws.close(status=status, timeout=0.2)
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            self._ws.shutdown()


def _close_description(payload: bytes) -> str:
    if len(payload) >= 2:
        code = int.from_bytes(payload[:2], "big")
        reason = payload[2:].decode(errors="replace")
        return f"server closed the connection ({code}{': ' + reason if reason else ''})"
    return "server closed the connection"
