"""Validation of incoming chat messages: SPEC §1.3's table, as a table.

Every failing rule is reported, in the table's row order. Lengths are counted in
UTF-16 code units, as Java's ``String.length()`` counts them, so that one message gets
the same verdict from the Python and the Java server. A wrong JSON type is an error of
its field (the field's format error), never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from chatflow.models import ChatMessage, MessageType
from chatflow.timestamps import parse_instant

MIN_USER_ID, MAX_USER_ID = 1, 100_000
MIN_USERNAME, MAX_USERNAME = 3, 20
MIN_MESSAGE, MAX_MESSAGE = 1, 500

# Leading zeros, then at most six digits: a longer number is out of range anyway, and
# int() refuses strings of more than 4300 digits with a ValueError.
_USER_ID_DIGITS = re.compile(r"0*([0-9]{1,6})")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")
_MESSAGE_TYPES = {t.value: t for t in MessageType}

Check = Callable[[object], tuple[object, Sequence[str]]]

#: What a check returns for a valid value: one shared empty tuple, no allocation.
_VALID: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldRule:
    """One row of the table: a wire key, its 'required' error, and its format check."""

    key: str
    required: str
    check: Check
    blank_is_missing: bool = False


def java_length(text: str) -> int:
    """Length in UTF-16 code units, as Java counts it."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _user_id(value: object) -> tuple[object, Sequence[str]]:
    # The Java server coerces a string of digits ("123") to an int; so do we.
    if isinstance(value, str) and (digits := _USER_ID_DIGITS.fullmatch(value)):
        value = int(digits[1])
    if isinstance(value, int) and not isinstance(value, bool) and MIN_USER_ID <= value <= MAX_USER_ID:
        return value, _VALID
    return None, [f"userId must be between {MIN_USER_ID} and {MAX_USER_ID}"]


def _username(value: object) -> tuple[object, Sequence[str]]:
    if not isinstance(value, str):
        return None, ["username must be alphanumeric"]
    length_ok = MIN_USERNAME <= java_length(value) <= MAX_USERNAME
    alphanumeric = _ALPHANUMERIC.fullmatch(value) is not None
    if length_ok and alphanumeric:
        return value, _VALID
    errors = []
    if not length_ok:
        errors.append(f"username must be {MIN_USERNAME}-{MAX_USERNAME} characters")
    if not alphanumeric:
        errors.append("username must be alphanumeric")
    return value, errors


def _message(value: object) -> tuple[object, Sequence[str]]:
    if isinstance(value, str) and MIN_MESSAGE <= java_length(value) <= MAX_MESSAGE:
        return value, _VALID
    return None, [f"message must be {MIN_MESSAGE}-{MAX_MESSAGE} characters"]


def _timestamp(value: object) -> tuple[object, Sequence[str]]:
    epoch_ms = parse_instant(value)
    if epoch_ms is None:
        return None, ["timestamp must be a valid ISO-8601 timestamp"]
    return epoch_ms, _VALID


def _message_type(value: object) -> tuple[object, Sequence[str]]:
    message_type = _MESSAGE_TYPES.get(value) if isinstance(value, str) else None
    if message_type is None:
        return None, ["messageType must be one of TEXT, JOIN, LEAVE"]
    return message_type, _VALID


RULES: tuple[FieldRule, ...] = (
    FieldRule("userId", "userId is required", _user_id),
    FieldRule("username", "username is required", _username, blank_is_missing=True),
    FieldRule("message", "message is required", _message, blank_is_missing=True),
    FieldRule("timestamp", "timestamp is required", _timestamp),
    FieldRule("messageType", "messageType is required", _message_type),
)


#: The wire keys of the rules, in the table's order: the kinds of validation error the
#: server counts (``chatflow.server.metrics``).
FIELDS: tuple[str, ...] = tuple(rule.key for rule in RULES)


class Invalid(NamedTuple):
    """A message that failed: its errors in the table's order, and the keys of the rules
    that failed, once each."""

    errors: list[str]
    fields: tuple[str, ...]


class MessageValidator:
    """Turns a decoded JSON object into a ChatMessage, or into the list of its errors.

    Pure: no I/O, no clock, no state between calls; one instance serves all threads.
    """

    rules: tuple[FieldRule, ...] = RULES

    def validate(self, fields: Mapping[str, object]) -> ChatMessage | list[str]:
        result = self.verdict(fields)
        return result.errors if result.__class__ is Invalid else result

    def verdict(self, fields: Mapping[str, object]) -> ChatMessage | Invalid:
        """``validate``, with the failed rules named (what the server's metrics count)."""
        values: list[object] = []
        errors: list[str] = []
        failed: list[str] = []
        for rule in self.rules:
            raw = fields.get(rule.key)
            if raw is None or (rule.blank_is_missing and isinstance(raw, str) and not raw.strip()):
                errors.append(rule.required)
                failed.append(rule.key)
                continue
            value, field_errors = rule.check(raw)
            values.append(value)
            if field_errors:
                errors.extend(field_errors)
                failed.append(rule.key)
        if errors:
            return Invalid(errors, tuple(failed))
        user_id, username, message, timestamp_ms, message_type = values
        return ChatMessage(user_id, username, message, timestamp_ms, message_type)
