"""One chat message in, one reply out: the whole of the chat server's per-message work.

No I/O: the server's connection layer hands over the frame's text and sends back
what this returns. Any text, any JSON value gets a success or an error reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from chatflow import wire
from chatflow.models import ChatResponse, ErrorResponse
from chatflow.server.message_validator import Invalid, MessageValidator
from chatflow.timestamps import now_ms

Clock = Callable[[], int]

_VALIDATOR = MessageValidator()
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


class Rejection(NamedTuple):
    """A message refused: the error reply's bytes, and the keys of the validation rules it
    failed (none: it was not a JSON object at all)."""

    reply: bytes
    fields: tuple[str, ...] = ()


def handle_text(text: str | bytes, clock: Clock = now_ms) -> bytes:
    """The reply to one text frame, as the bytes of a JSON text frame."""
    accepted = accept_text(text, clock)
    return accepted.reply if accepted.__class__ is Rejection else wire.encode_chat_response(accepted)


def accept_text(text: str | bytes, clock: Clock = now_ms) -> ChatResponse | Rejection:
    """A valid message's success reply, as data (for a room to fan out), or its rejection."""
    try:
        fields = wire.decode(text)
    except wire.DecodeError as exc:
        return Rejection(error_reply([f"Invalid message format: {exc}"], clock))
    if not isinstance(fields, dict):
        kind = "null" if fields is None else _JSON_KINDS[type(fields)]
        return Rejection(error_reply([f"Invalid message format: expected a JSON object, got {kind}"], clock))
    result = _VALIDATOR.verdict(fields)
    if result.__class__ is Invalid:
        return Rejection(error_reply(result.errors, clock), result.fields)
    return ChatResponse.for_message(result, clock())


def handle_binary(clock: Clock = now_ms) -> bytes:
    """The reply to a binary frame: ChatFlow speaks JSON text only."""
    return error_reply(["binary frames are not supported"], clock)


def error_reply(errors: list[str], clock: Clock = now_ms) -> bytes:
    return wire.encode_error_response(ErrorResponse(tuple(errors), clock()))
