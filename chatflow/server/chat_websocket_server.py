"""The chat application: the Java ``ChatWebSocketServer``'s onOpen/onMessage/onClose.

The Java class of that name extends Java-WebSocket's ``WebSocketServer``; here it keeps
the name but is the *handler* that the transport (``chatflow.server.transport``) calls,
so the same transport serves the echo endpoint too. Per-message work is
``chatflow.server.message_handler``, pure and free of I/O.
"""

from __future__ import annotations

import logging
import re

from websockets.frames import CloseCode

from chatflow.server.message_handler import handle_binary, handle_text
from chatflow.server.room_registry import RoomRegistry
from chatflow.server.transport import Connection

log = logging.getLogger("chatflow.server.chat")

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
    """The chat handler: puts each connection in its room, answers each message once."""

    def __init__(self, *, max_rooms: int) -> None:
        self.max_rooms = max_rooms
        self.rooms = RoomRegistry()
        self._debug = log.isEnabledFor(logging.DEBUG)

    def on_open(self, conn: Connection) -> None:
        room = room_of(conn.path, self.max_rooms)
        if isinstance(room, str):
            # As the Java original: accept the handshake, then close with 1003.
            log.debug("refusing %s for path %r", conn.remote_address, conn.path)
            conn.close(CloseCode.UNSUPPORTED_DATA, room)
            return
        conn.context = room
        self.rooms.join(room, conn)
        log.debug("%s joined room %d", conn.remote_address, room)

    def on_text(self, conn: Connection, text: str) -> None:
        reply = handle_text(text)
        if self._debug:
            log.debug("room %s: %s -> %s", conn.context, text, reply.decode())
        conn.send_text(reply)

    def on_binary(self, conn: Connection, data: bytes) -> None:
        conn.send_text(handle_binary())

    def on_close(self, conn: Connection) -> None:
        if conn.context is not None:
            self.rooms.leave(conn.context, conn)
