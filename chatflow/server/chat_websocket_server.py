"""The chat application: the Java ``ChatWebSocketServer``'s onOpen/onMessage/onClose.

The Java class of that name extends Java-WebSocket's ``WebSocketServer``; here it keeps
the name but is the *handler* that the transport (``chatflow.server.transport``) calls,
so the same transport serves the echo endpoint too. Per-message work is
``chatflow.server.message_handler``, pure and free of I/O.
"""

from __future__ import annotations

import re

from websockets.frames import CloseCode

from chatflow import wire
from chatflow.server.message_handler import Rejection, accept_text, handle_binary
from chatflow.server.metrics import ChatStats
from chatflow.server.room_registry import RoomRegistry
from chatflow.server.transport import Connection

_CHAT_PATH = re.compile(r"/chat/([0-9]+)")


def room_of(path: str, max_rooms: int) -> int | str:
    """The room a request path names, or the close reason that refuses it (SPEC §1.2)."""
    match = _CHAT_PATH.fullmatch(path)
    if match is None:
        return f"Invalid endpoint. Use /chat/{{roomId}} where roomId is 1-{max_rooms}"
    # Compared as digits first: int() refuses strings of more than 4,300 digits, and
    # a request line may hold 8,000.
    digits = match.group(1).lstrip("0")
    room = int(digits) if 0 < len(digits) <= len(str(max_rooms)) else 0
    if not 1 <= room <= max_rooms:
        return f"Invalid room number. Room must be between 1 and {max_rooms}"
    return room


class ChatWebSocketServer:
    """The chat handler: puts each connection in its room, answers each message once,
    and with ``stats`` counts each message's outcome (docs/metrics.md)."""

    def __init__(self, *, max_rooms: int, stats: ChatStats | None = None) -> None:
        self.max_rooms = max_rooms
        self.rooms = RoomRegistry()
        self.stats = stats

    def on_open(self, conn: Connection) -> None:
        room = room_of(conn.path, self.max_rooms)
        if isinstance(room, str):
            # As the Java original: accept the handshake, then close with 1003 (the
            # transport's closing line at DEBUG says so, with the reason).
            conn.close(CloseCode.UNSUPPORTED_DATA, room)
            return
        conn.context = room
        self.rooms.join(room, conn)

    def on_text(self, conn: Connection, text: str) -> None:
        self.answer(conn, text)

    def answer(self, conn: Connection, text: str) -> bytes | None:
        """Send ``text``'s one reply and count its outcome; the success reply's bytes (for
        a room to fan out), or None when the message was refused."""
        accepted = accept_text(text)
        stats = self.stats
        if accepted.__class__ is Rejection:
            reply, success = accepted.reply, None
            if stats is not None:
                stats.rejected(accepted.fields)
        else:
            reply = success = wire.encode_chat_response(accepted)
            if stats is not None:
                stats.success += 1
        conn.send_text(reply)
        return success

    def on_binary(self, conn: Connection, data: bytes) -> None:
        if self.stats is not None:
            self.stats.binary += 1
        conn.send_text(handle_binary())

    def broadcast_counts(self) -> dict[str, int] | None:
        """The broadcast mode's counts (``BroadcastChat``); None here, where nothing is broadcast."""
        return None

    def on_close(self, conn: Connection) -> None:
        if conn.context is not None:
            self.rooms.leave(conn.context, conn)
