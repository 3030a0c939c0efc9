"""The messages ChatFlow exchanges, as plain data.

Instants are epoch milliseconds (see ``chatflow.timestamps``); how these objects look
as JSON is the business of ``chatflow.wire`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class MessageType(str, Enum):
    TEXT = "TEXT"
    JOIN = "JOIN"
    LEAVE = "LEAVE"


class ReplyStatus(StrEnum):
    """The ``status`` of a reply (SPEC §1.4, §1.5)."""

    SUCCESS = "success"
    ERROR = "error"


@dataclass(slots=True)
class ChatMessage:
    """A validated chat message (client → server)."""

    user_id: int
    username: str
    message: str
    timestamp_ms: int
    message_type: MessageType


@dataclass(slots=True)
class ChatResponse:
    """The success reply: the message echoed back with the server's time."""

    user_id: int
    username: str
    message: str
    client_timestamp_ms: int
    server_timestamp_ms: int
    message_type: MessageType
    status: str = ReplyStatus.SUCCESS.value

    @classmethod
    def for_message(cls, message: ChatMessage, server_timestamp_ms: int) -> ChatResponse:
        return cls(
            user_id=message.user_id,
            username=message.username,
            message=message.message,
            client_timestamp_ms=message.timestamp_ms,
            server_timestamp_ms=server_timestamp_ms,
            message_type=message.message_type,
        )


@dataclass(slots=True)
class ErrorResponse:
    """The error reply: every problem found with one message."""

    errors: tuple[str, ...]
    timestamp_ms: int
    status: str = ReplyStatus.ERROR.value


@dataclass(slots=True)
class RoomMessage:
    """A valid message as a room's other members get it (``run_server.py --mode broadcast``):
    the sender's reply, with the room, the room's sequence number and the instance that took it."""

    room_id: int
    #: The message's place in its room: increasing in the order the room took them. None
    #: for a message its instance could not hand to the bus (delivered to its own
    #: members only, outside the room's order: docs/broadcast.md#when-redis-is-down).
    sequence: int | None
    response: ChatResponse
    #: The server instance (process) that received the message.
    instance_id: str
    #: For a message without a sequence: the instance's own count of such messages.
    unordered_number: int = 0

    @property
    def message_id(self) -> str:
        """Unique among the messages of every instance that shares the room."""
        if self.sequence is None:
            return unordered_message_id(self.room_id, self.instance_id, self.unordered_number)
        return ordered_message_id(self.room_id, self.sequence)


def ordered_message_id(room_id: int, sequence: int) -> str:
    """``<room>-<sequence>``: a message in its room's order."""
    return f"{room_id}-{sequence}"


def unordered_message_id(room_id: int, instance_id: str, number: int) -> str:
    """``<room>-<instance>-<n>``: a message outside the room's order, unique by its instance."""
    return f"{room_id}-{instance_id}-{number}"
