"""``--mode broadcast``: a room's valid messages delivered to its other members too.

The sender's reply is the echo mode's, byte for byte, so that the load client's
accounting holds; every other member of the room gets one ``roomMessage`` frame
(``chatflow.wire.encode_room_message``, docs/broadcast.md). A member that does not read
must not grow this process's memory: past ``member_backlog`` unsent bytes it is closed
with 1008, counted and logged, and gets nothing more; a member that stays connected gets
every message of its room, in the room's order.
"""

from __future__ import annotations

import logging

from websockets.frames import CloseCode

from chatflow import wire
from chatflow.models import RoomMessage
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.message_handler import accept_text
from chatflow.server.transport import Connection

log = logging.getLogger("chatflow.server.broadcast")


class BroadcastChat(ChatWebSocketServer):
    """The chat handler with fan-out: rooms are members, not labels."""

    def __init__(self, *, max_rooms: int, instance_id: str, member_backlog: int) -> None:
        super().__init__(max_rooms=max_rooms)
        self.instance_id = instance_id
        self.member_backlog = member_backlog
        self._sequences: dict[int, int] = {}
        #: Frames handed to members, and members closed for not reading (only the
        #: selector thread writes them).
        self.delivered = 0
        self.evicted = 0

    def on_text(self, conn: Connection, text: str) -> None:
        accepted = accept_text(text)
        if accepted.__class__ is bytes:  # an error reply: the message goes nowhere
            conn.send_text(accepted)
            return
        reply = wire.encode_chat_response(accepted)
        conn.send_text(reply)
        room = conn.context
        if room is None:  # a refused path, closing
            return
        sequence = self._sequences[room] = self._sequences.get(room, 0) + 1
        frame = wire.encode_room_message(RoomMessage(room, sequence, accepted, self.instance_id), reply)
        for member in self.rooms.members(room):
            if member is conn:
                continue
            if member.backlog > self.member_backlog:
                self._evict(room, member)
            else:
                member.deliver_text(frame)
                self.delivered += 1

    def _evict(self, room: int, member: Connection) -> None:
        self.rooms.leave(room, member)
        self.evicted += 1
        reason = f"too slow: more than {self.member_backlog:,} bytes of room messages unread"
        log.warning("closing %s in room %d with 1008: %s", member.remote_address, room, reason)
        member.evict(CloseCode.POLICY_VIOLATION, reason)
