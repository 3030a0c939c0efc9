"""A well-behaved WebSocket client for tests: websocket-client, with a deadline on every
receive and a close that leaves nothing open."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import websocket

from tests.support.waiting import DEFAULT_TIMEOUT


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
