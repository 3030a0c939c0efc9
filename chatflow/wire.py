"""The wire format: how ChatFlow's messages look as JSON text.

Key names, key order and number types are fixed by the Java original (SPEC §1.3–1.5):
its client deserializes strictly, so a reply with one key more or in another shape is
counted as a failure there. Everything that turns models into bytes or bytes into
models goes through this module.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatflow.models import ChatMessage, ChatResponse, ErrorResponse, ReplyStatus, RoomMessage
from chatflow.timestamps import format_instant

DecodeError = orjson.JSONDecodeError

_SUCCESS = ReplyStatus.SUCCESS.value
#: How a success reply from ChatFlow's server ends: ``status`` is its last key.
SUCCESS_TAIL = b'"status":"' + _SUCCESS.encode() + b'"}'
#: ``,"status":"success"}``: what a success reply has after its last field.
_STATUS_FIELD_LENGTH = len(b"," + SUCCESS_TAIL)
#: How every room frame begins (``encode_room_message``): a reply never does.
ROOM_FRAME_PREFIX = b'{"type":"roomMessage"'
#: What pairs a room frame with the message sent: (the sender's room, userId,
#: clientTimestamp, message), the timestamp in SPEC §1.4's form.
DeliveryKey = tuple[int, int, str, str]


def decode(text: str | bytes) -> Any:
    """Parse one JSON document; raises DecodeError (a ValueError) on bad input."""
    return orjson.loads(text)


def encode_chat_message(message: ChatMessage) -> bytes:
    """The five fields of SPEC §1.3, in the Java client's order, compact."""
    return orjson.dumps(
        {
            "userId": message.user_id,
            "username": message.username,
            "message": message.message,
            "timestamp": format_instant(message.timestamp_ms),
            "messageType": message.message_type.value,
        }
    )


def encode_chat_response(response: ChatResponse) -> bytes:
    return orjson.dumps(
        {
            "userId": response.user_id,
            "username": response.username,
            "message": response.message,
            "clientTimestamp": format_instant(response.client_timestamp_ms),
            "serverTimestamp": format_instant(response.server_timestamp_ms),
            "messageType": response.message_type.value,
            "status": response.status,
        }
    )


def encode_error_response(response: ErrorResponse) -> bytes:
    return orjson.dumps(
        {
            "status": response.status,
            "timestamp": format_instant(response.timestamp_ms),
            "errors": list(response.errors),
        }
    )


def encode_room_message(message: RoomMessage, reply: bytes | None = None) -> bytes:
    """The frame a room's other members get (docs/broadcast.md): the room's keys, then the
    success reply's fields but its ``status``, then the instance. Made from the reply's own
    bytes (``reply``, when already encoded), so that the two never differ in a field."""
    if reply is None:
        reply = encode_chat_response(message.response)
    return room_frame(message.room_id, message.message_id, message.sequence,
                      room_message_body(reply, message.instance_id))


def room_message_body(reply: bytes, instance_id: str) -> bytes:
    """A room frame after its head: the success reply ``reply``'s fields but its status,
    then the instance. The same for every member, and what a bus carries between instances."""
    return reply[1:-_STATUS_FIELD_LENGTH] + b',"instanceId":' + orjson.dumps(instance_id) + b"}"


def room_frame(room_id: int, message_id: str, sequence: int | None, body: bytes) -> bytes:
    """A whole room frame: its head (type, room, id, sequence) before ``room_message_body``."""
    return b'{"type":"roomMessage","roomId":%d,"messageId":%s,"sequence":%s,%s' % (
        room_id, orjson.dumps(message_id), b"null" if sequence is None else b"%d" % sequence, body)


def is_success(reply: bytes) -> bool:
    """Whether ``reply`` is a success reply (SPEC §1.4), whatever server wrote it.

    ChatFlow's own replies end with their status, so one ``endswith`` answers for nearly
    every reply of a run; anything else is parsed.
    """
    if reply.endswith(SUCCESS_TAIL):
        return True
    try:
        return orjson.loads(reply).get("status") == _SUCCESS
    except (orjson.JSONDecodeError, AttributeError):
        return False


def sent_key(payload: bytes, room: int) -> DeliveryKey:
    """The delivery key of a chat message (``encode_chat_message``'s bytes) sent in ``room``."""
    message = orjson.loads(payload)
    return room, message["userId"], message["timestamp"], message["message"]


def room_delivery(frame: bytes) -> tuple[DeliveryKey, int | None]:
    """A room frame's delivery key and its ``sequence`` (None: delivered while the bus was
    down, outside the room's order). Raises ValueError for anything but a room frame."""
    try:
        message = orjson.loads(frame)
        key = (message["roomId"], message["userId"], message["clientTimestamp"], message["message"])
        sequence = message["sequence"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a room frame: {exc}") from None
    if message.get("type") != "roomMessage" or not (sequence is None or type(sequence) is int):
        raise ValueError("not a room frame")
    return key, sequence
