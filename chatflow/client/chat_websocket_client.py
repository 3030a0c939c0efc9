"""One client connection to a chat room: send a message, wait for its reply.

Built on websocket-client (the user's choice of client library). The replies are
matched to requests by order alone, which is only sound while the connection carries
one request at a time and no late reply can arrive: after a timeout the caller must
drop the connection (``close``) and open a new one, never reuse it.
"""

from __future__ import annotations

import itertools
import socket
import struct
import sys
from time import perf_counter

import websocket
from websocket import ABNF

from chatflow.client.client_wait import SAMPLE_EVERY
from chatflow.client.framing import MaskKeys
from chatflow.wire import ROOM_FRAME_PREFIX

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
    before each read: fewer system calls per reply (docs/client.md). Everything else is
    the socket's own.
    """

    __slots__ = ("_sock", "_buffer", "_timeout", "_stamp", "sendall")

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._buffer = b""
        self._timeout = timeout
        self._stamp = b""
        #: The socket's own, bound once: through ``__getattr__`` it is a Python call per message.
        self.sendall = sock.sendall
        sock.settimeout(None)
        self.settimeout(timeout)

    def recv(self, size: int) -> bytes:
        buffer = self._buffer
        if not buffer:
            try:
                buffer = self._sock.recv(READ_SIZE)
            except BlockingIOError:  # SO_RCVTIMEO ran out
                raise TimeoutError("timed out") from None
            if len(buffer) <= size:
                return buffer
        self._buffer = buffer[size:]
        return buffer[:size]

    @property
    def received_ns(self) -> int | None:
        """Epoch ns at which the kernel received the data of the last read; None unknown
        (always, but on a ``StampedSocket``)."""
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
        """0 for websocket-client, which asks before every read and write: the timeouts are
        the kernel's, so the library must not wait again with a ``select`` on EAGAIN, and
        with 0 it calls ``recv`` and ``send`` directly, without a closure per read."""
        return 0.0

    @property
    def timeout(self) -> float | None:
        """The reply timeout, SO_RCVTIMEO and SO_SNDTIMEO."""
        return self._timeout

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class StampedSocket(BufferedSocket):
    """A BufferedSocket whose reads also bring the kernel's receive time of their data
    (SO_TIMESTAMPNS, Linux), for the client wait (docs/client.md#where-a-reply-waits)."""

    __slots__ = ()

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__(sock, timeout)
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


#: Connections opened by this process; every ``SAMPLE_EVERY``-th, the first included, is stamped.
_opened = itertools.count()


def wrap_socket(sock: socket.socket, timeout: float) -> BufferedSocket:
    """The socket under the library: a StampedSocket for one connection in ``SAMPLE_EVERY``
    (Linux), a BufferedSocket for the others, whose reads cost less."""
    if SO_TIMESTAMPNS is not None and next(_opened) % SAMPLE_EVERY == 0:
        return StampedSocket(sock, timeout)
    return BufferedSocket(sock, timeout)


def open_websocket(url: str, timeout: float) -> websocket.WebSocket:
    """A connected websocket-client socket with ChatFlow's settings.

    - TCP_NODELAY: one small frame per request; Nagle would hold it back.
    - ``enable_multithread=False``: one thread owns each connection, so the library's
      per-send lock is pure cost.
    - ``skip_utf8_validation=True``: the library's check is slow and misses a text that
      ends inside a character; ``receive`` decodes strictly instead (close 1007). The
      flag also turns off the check of a close frame's reason, which only the library
      can do (it answers the close before returning it), so that one is turned back on.
    - a ``BufferedSocket`` under the library (``wrap_socket``), and masking keys from a
      ``MaskKeys`` pool.
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
    ws.sock = wrap_socket(ws.sock, timeout)
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
        #: The socket under the library: its ``received_ns`` says when the latest reply's
        #: last bytes reached the kernel.
        self.socket: BufferedSocket = self._ws.sock

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
            self.socket.sendall(frame)
        except OSError as exc:
            raise ConnectionClosed(describe_error(exc)) from exc
        return self.receive()[1]

    def reply_after_room_frames(self, deadline: float) -> tuple[bytes, int]:
        """The reply behind the room frames (``run_server.py --mode broadcast`` sends a
        sender its room's other messages too), by ``deadline`` (``perf_counter``) at the
        latest, whatever the number of frames; and how many frames were passed over.

        Called once a room frame came where a reply was awaited. Raises ReplyTimeout at the
        deadline, or ConnectionClosed.
        """
        sock, skipped = self.socket, 1
        try:
            while True:
                remaining = deadline - perf_counter()
                if remaining <= 0:
                    raise ReplyTimeout(f"no reply within {self.timeout:g} s ({skipped} room frames came instead)")
                sock.settimeout(remaining)
                reply = self.receive()[1]
                if not reply.startswith(ROOM_FRAME_PREFIX):
                    return reply, skipped
                skipped += 1
        finally:
            sock.settimeout(self.timeout)

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
