"""Chat messages as clients send them (SPEC §1.3), and the shape of the replies (§1.4)."""

from __future__ import annotations

import json
import re
from typing import Any

SUCCESS_KEYS = ["userId", "username", "message", "clientTimestamp", "serverTimestamp", "messageType", "status"]
ERROR_KEYS = ["status", "timestamp", "errors"]
#: How every success reply ends: a load client that checks no more per reply checks this.
SUCCESS_TAIL = b'"status":"success"}'
#: The wire form of every instant the server writes (SPEC §1.4).
WIRE_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
#: The benchmarks' message size: SPEC §1.3's example is about this long.
MESSAGE_SIZE = 160


def chat_message_fields(omit: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """A valid chat message as a dict; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "userId": 12345,
        "username": "user12345",
        "message": "Hello everyone!",
        "timestamp": "2026-02-13T10:30:00.000Z",
        "messageType": "TEXT",
    }
    fields.update(overrides)
    for key in omit:
        del fields[key]
    return fields


def chat_message_json(omit: tuple[str, ...] = (), **overrides: Any) -> str:
    """A valid chat message as compact JSON text, as the Java client writes it."""
    return json.dumps(chat_message_fields(omit, **overrides), separators=(",", ":"), ensure_ascii=False)


def sized_chat_message(user_id: int, size: int = MESSAGE_SIZE) -> bytes:
    """A valid message from ``user_id`` of exactly ``size`` bytes, its text padded to fit."""
    def encode(text: str) -> bytes:
        return chat_message_json(userId=user_id, username=f"user{user_id}", message=text).encode()

    filler = "Hello everyone, this is a benchmark line of chat that says the same thing each time "
    room_for_text = size - len(encode(""))
    if not 1 <= room_for_text <= 500:
        raise ValueError(f"cannot make a {size}-byte message for user {user_id}")
    text = (filler * (room_for_text // len(filler) + 1))[:room_for_text].rstrip(" ")
    text += "!" * (room_for_text - len(text))
    message = encode(text)
    assert len(message) == size
    return message
