"""The wire format: how ChatFlow's messages look as JSON text.

Key names, key order and number types are fixed by the Java original (SPEC §1.3–1.5):
its client deserializes strictly, so a reply with one key more or in another shape is
counted as a failure there. Everything that turns models into bytes or bytes into
models goes through this module.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatflow.models import ChatMessage, ChatResponse, ErrorResponse, ReplyStatus
from chatflow.timestamps import format_instant

DecodeError = orjson.JSONDecodeError

_SUCCESS = ReplyStatus.SUCCESS.value
#: How a success reply from ChatFlow's server ends: ``status`` is its last key.
SUCCESS_TAIL = b'"status":"' + _SUCCESS.encode() + b'"}'


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
