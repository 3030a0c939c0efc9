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
from chatflow.models import ordered_message_id, unordered_message_id
from chatflow.server.bus import Crossing, RedisBus
from chatflow.server.chat_websocket_server import ChatWebSocketServer
from chatflow.server.metrics import ChatStats
from chatflow.server.transport import Connection

log = logging.getLogger("chatflow.server.broadcast")


class BroadcastChat(ChatWebSocketServer):
    """The chat handler with fan-out: rooms are members, not labels.

    Without a bus the room's order is this process's; with one (``attach``) every valid
    message goes through the bus and comes back, numbered, to be delivered here as on
    every other instance (``on_bus``). All of it runs on the selector thread.
    """

    def __init__(self, *, max_rooms: int, instance_id: str, member_backlog: int,
                 stats: ChatStats | None = None) -> None:
        super().__init__(max_rooms=max_rooms, stats=stats)
        self.instance_id = instance_id
        self.member_backlog = member_backlog
        self._sequences: dict[int, int] = {}
        self.bus: RedisBus | None = None
        #: Each connection's number, which the bus carries so that its sender is left out.
        self._numbers: dict[Connection, int] = {}
        self._by_number: dict[int, Connection] = {}
        self._opened = 0
        #: Messages delivered outside the room's order while the bus was down.
        self.unordered = 0
        #: Frames handed to members, and members closed for not reading (only the
        #: selector thread writes them).
        self.delivered = 0
        self.evicted = 0

    def attach(self, bus: RedisBus) -> None:
        """Share the rooms over ``bus`` (before the server starts)."""
        self.bus = bus

    def on_open(self, conn: Connection) -> None:
        super().on_open(conn)
        if conn.context is not None:
            self._opened += 1
            self._numbers[conn] = self._opened
            self._by_number[self._opened] = conn

    def on_close(self, conn: Connection) -> None:
        super().on_close(conn)
        number = self._numbers.pop(conn, None)
        if number is not None:
            del self._by_number[number]

    def on_text(self, conn: Connection, text: str) -> None:
        reply = self.answer(conn, text)
        if reply is None:  # an error reply: the message goes nowhere
            return
        room = conn.context
        if room is None:  # a refused path, closing
            return
        body = wire.room_message_body(reply, self.instance_id)
        bus = self.bus
        if bus is None:
            sequence = self._sequences[room] = self._sequences.get(room, 0) + 1
            self._fan_out(room, wire.room_frame(room, ordered_message_id(room, sequence), sequence, body), conn)
        elif not bus.publish(room, body, self._numbers[conn]):
            self.on_bus_failed()  # what was already on its way goes first
            self._deliver_unordered(room, body, conn)

    def broadcast_counts(self) -> dict[str, int]:
        """Frames delivered to members, members evicted, messages delivered out of order."""
        return {"delivered": self.delivered, "evicted": self.evicted, "unordered": self.unordered}

    def on_bus(self, crossings: list[Crossing]) -> None:
        """Messages read from the bus, in their rooms' order: to this instance's members."""
        by_number = self._by_number
        for room, sequence, body, sender in crossings:
            frame = wire.room_frame(room, ordered_message_id(room, sequence), sequence, body)
            self._fan_out(room, frame, None if sender is None else by_number.get(sender))

    def on_bus_failed(self) -> None:
        """Messages that were on their way to the bus when it went: to this instance's members."""
        if self.bus is None:
            return
        by_number = self._by_number
        for room, body, sender in self.bus.take_failed():
            self._deliver_unordered(room, body, by_number.get(sender))

    def _deliver_unordered(self, room: int, body: bytes, sender: Connection | None) -> None:
        self.unordered += 1
        message_id = unordered_message_id(room, self.instance_id, self.unordered)
        self._fan_out(room, wire.room_frame(room, message_id, None, body), sender)

    def _fan_out(self, room: int, frame: bytes, sender: Connection | None) -> None:
        for member in self.rooms.members(room):
            if member is sender:
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
