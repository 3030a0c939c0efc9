"""One client connection to a chat room: send a message, wait for its reply.

Built on websocket-client (the user's choice of client library). The replies are
matched to requests by order alone, which is only sound while the connection carries
one request at a time and no late reply can arrive: after a timeout the caller must
drop the connection (``close``) and open a new one, never reuse it.
"""

from __future__ import annotations

import socket

import websocket
from websocket import ABNF

OPCODE_TEXT = ABNF.OPCODE_TEXT
OPCODE_BINARY = ABNF.OPCODE_BINARY
OPCODE_CLOSE = ABNF.OPCODE_CLOSE
STATUS_INVALID_PAYLOAD = websocket.STATUS_INVALID_PAYLOAD
STATUS_PROTOCOL_ERROR = websocket.STATUS_PROTOCOL_ERROR


class ConnectFailed(Exception):
    """The connection could not be opened (refused, timed out, handshake refused)."""


class ConnectionClosed(Exception):
    """The connection ended while a reply was awaited (close frame, reset, EOF)."""


class ReplyTimeout(Exception):
    """No reply within the timeout; the connection can no longer be trusted."""


def open_websocket(url: str, timeout: float) -> websocket.WebSocket:
    """A connected websocket-client socket with ChatFlow's settings.

    - TCP_NODELAY: one small frame per request; Nagle would hold it back.
    - ``enable_multithread=False``: one thread owns each connection, so the library's
      per-send lock is pure cost.
    - ``skip_utf8_validation=True``: the library's check is slow and misses a text that
      ends inside a character; ``receive`` decodes strictly instead (close 1007).
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

    def __init__(self, url: str, timeout: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self._ws = open_websocket(url, timeout)

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
        try:
            self._ws.send(payload, opcode)
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionClosed(describe_error(exc)) from exc

    def request(self, payload: bytes) -> bytes:
        """Send one message and return the reply that answers it."""
        self.send(payload)
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
