"""SPEC §1.3's validation table, row by row, with boundary values on both sides."""

from __future__ import annotations

from typing import Any

import pytest

from chatflow.server.message_validator import MessageValidator, java_length
from tests.support.messages import chat_message_fields
from chatflow.models import ChatMessage, MessageType

#: 2026-02-13T10:30:00.000Z
KNOWN_MS = 1_770_978_600_000

USER_ID_RANGE = "userId must be between 1 and 100000"
USERNAME_LENGTH = "username must be 3-20 characters"
USERNAME_ALPHANUMERIC = "username must be alphanumeric"
MESSAGE_LENGTH = "message must be 1-500 characters"
TIMESTAMP_FORMAT = "timestamp must be a valid ISO-8601 timestamp"
MESSAGE_TYPE_VALUES = "messageType must be one of TEXT, JOIN, LEAVE"

EMOJI = "\U0001f600"  # one character in Python, two UTF-16 code units in Java


def validate(fields: dict[str, Any]) -> ChatMessage | list[str]:
    return MessageValidator().validate(fields)


def errors_of(**overrides: Any) -> list[str]:
    result = validate(chat_message_fields(**overrides))
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return result


def accepted(**overrides: Any) -> ChatMessage:
    result = validate(chat_message_fields(**overrides))
    assert isinstance(result, ChatMessage), f"expected a message, got {result!r}"
    return result


def test_valid_message_becomes_a_chat_message() -> None:
    assert validate(chat_message_fields()) == ChatMessage(
        user_id=12345,
        username="user12345",
        message="Hello everyone!",
        timestamp_ms=KNOWN_MS,
        message_type=MessageType.TEXT,
    )


# --- userId ---------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", [1, 2, 99_999, 100_000])
def test_user_id_in_range(user_id: int) -> None:
    assert accepted(userId=user_id).user_id == user_id


@pytest.mark.parametrize("user_id", [0, 100_001, -1, -100_000, 2**63 - 1, 2**64 - 1])
def test_user_id_out_of_range(user_id: int) -> None:
    assert errors_of(userId=user_id) == [USER_ID_RANGE]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("123", 123), ("1", 1), ("100000", 100_000), ("007", 7), ("0000000000000000000042", 42)],
)
def test_digit_string_user_id_is_coerced_to_int(text: str, expected: int) -> None:
    user_id = accepted(userId=text).user_id
    assert user_id == expected
    assert type(user_id) is int


@pytest.mark.parametrize(
    "text",
    ["0", "000", "100001", "1234567", "9" * 5000, "0" * 5000, "-5", "+5", " 5", "5 ", "5\n", "1.5", "1e3", "1_000",
     "0x10", "", "abc", "١٢٣", "１２３"],
)
def test_other_strings_are_out_of_range(text: str) -> None:
    assert errors_of(userId=text) == [USER_ID_RANGE]


@pytest.mark.parametrize("value", [True, False, 1.5, 1e3, "abc", [], [1], {}, {"id": 1}])
def test_user_id_of_wrong_type(value: object) -> None:
    assert errors_of(userId=value) == [USER_ID_RANGE]


# --- username -------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["abc", "ABC", "a1B", "123", "a" * 20, "user12345", "Z9" * 10])
def test_username_accepted(username: str) -> None:
    assert accepted(username=username).username == username


@pytest.mark.parametrize("username", ["ab", "a" * 21, "a", "x" * 100])
def test_username_length(username: str) -> None:
    assert errors_of(username=username) == [USERNAME_LENGTH]


@pytest.mark.parametrize(
    "username", ["user_1", "user-1", "user 1", " user1", "user1 ", "usér1", "user.1", "ＡＢＣ", "abc\n", "ab\x00c"]
)
def test_username_not_alphanumeric(username: str) -> None:
    assert errors_of(username=username) == [USERNAME_ALPHANUMERIC]


@pytest.mark.parametrize("username", ["a_", "a" * 20 + "!", "@@", "é" * 21])
def test_username_both_errors_in_order(username: str) -> None:
    assert errors_of(username=username) == [USERNAME_LENGTH, USERNAME_ALPHANUMERIC]


def test_username_length_counts_utf16_code_units() -> None:
    # "a" + emoji is two characters in Python but three in Java: only the alphabet is wrong.
    assert errors_of(username="a" + EMOJI) == [USERNAME_ALPHANUMERIC]
    assert errors_of(username="a" * 19 + EMOJI) == [USERNAME_LENGTH, USERNAME_ALPHANUMERIC]


@pytest.mark.parametrize("username", ["", " ", "   ", "\t\n", "\u3000"])
def test_blank_username_is_missing(username: str) -> None:
    assert errors_of(username=username) == ["username is required"]


@pytest.mark.parametrize("value", [5, 12345, 1.5, True, [], ["abc"], {}, {"name": "abc"}])
def test_username_of_wrong_type(value: object) -> None:
    assert errors_of(username=value) == [USERNAME_ALPHANUMERIC]


# --- message --------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["a", "a" * 2, "a" * 499, "a" * 500, " a ", "é" * 500, EMOJI * 250, "\x00"])
def test_message_accepted(message: str) -> None:
    assert accepted(message=message).message == message


@pytest.mark.parametrize("message", ["a" * 501, "a" * 5000, EMOJI * 251, "a" * 499 + EMOJI])
def test_message_too_long(message: str) -> None:
    assert errors_of(message=message) == [MESSAGE_LENGTH]


@pytest.mark.parametrize("message", ["", " ", "\t", "\n\r ", " " * 600])
def test_blank_message_is_missing(message: str) -> None:
    assert errors_of(message=message) == ["message is required"]


@pytest.mark.parametrize("value", [5, 0, 1.5, True, False, [], ["hi"], {}, {"text": "hi"}])
def test_message_of_wrong_type(value: object) -> None:
    assert errors_of(message=value) == [MESSAGE_LENGTH]


@pytest.mark.parametrize(
    ("text", "length"),
    [("", 0), ("abc", 3), ("é", 1), ("日本", 2), (EMOJI, 2), ("a" + EMOJI + "b", 4), (EMOJI * 250, 500)],
)
def test_java_length(text: str, length: int) -> None:
    assert java_length(text) == length


# --- timestamp ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "epoch_ms"),
    [
        ("2026-02-13T10:30:00.000Z", KNOWN_MS),
        ("2026-02-13T11:30:00+01:00", KNOWN_MS),
        ("2026-02-13T10:30:00.000999999Z", KNOWN_MS),
        (1_770_978_600, KNOWN_MS),
        (1_770_978_600.5, KNOWN_MS + 500),
    ],
)
def test_timestamp_accepted(value: object, epoch_ms: int) -> None:
    assert accepted(timestamp=value).timestamp_ms == epoch_ms


@pytest.mark.parametrize(
    "value",
    ["", " ", "garbage", "2026-02-30T10:30:00Z", "2026-02-13T10:30Z", True, False, [], {}, 253_402_300_800],
)
def test_timestamp_invalid(value: object) -> None:
    assert errors_of(timestamp=value) == [TIMESTAMP_FORMAT]


# --- messageType ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["TEXT", "JOIN", "LEAVE"])
def test_message_type_accepted(name: str) -> None:
    assert accepted(messageType=name).message_type is MessageType(name)


@pytest.mark.parametrize(
    "value", ["text", "Text", "join", "leave", "TEXT ", " TEXT", "", "OTHER", 1, 0, True, [], ["TEXT"], {}]
)
def test_message_type_invalid(value: object) -> None:
    assert errors_of(messageType=value) == [MESSAGE_TYPE_VALUES]


# --- missing fields and several errors at once ----------------------------------------

REQUIRED = {
    "userId": "userId is required",
    "username": "username is required",
    "message": "message is required",
    "timestamp": "timestamp is required",
    "messageType": "messageType is required",
}


@pytest.mark.parametrize("key", list(REQUIRED))
def test_each_field_missing(key: str) -> None:
    fields = chat_message_fields()
    del fields[key]
    assert validate(fields) == [REQUIRED[key]]


@pytest.mark.parametrize("key", list(REQUIRED))
def test_each_field_null_is_missing(key: str) -> None:
    assert errors_of(**{key: None}) == [REQUIRED[key]]


def test_all_five_missing_in_table_order() -> None:
    assert validate({}) == list(REQUIRED.values())


def test_all_five_null_in_table_order() -> None:
    assert validate(dict.fromkeys(REQUIRED)) == list(REQUIRED.values())


def test_every_format_error_at_once_in_table_order() -> None:
    fields = {
        "messageType": "CHAT",
        "timestamp": "yesterday",
        "message": "m" * 501,
        "username": "x!",
        "userId": 0,
    }
    assert validate(fields) == [
        USER_ID_RANGE,
        USERNAME_LENGTH,
        USERNAME_ALPHANUMERIC,
        MESSAGE_LENGTH,
        TIMESTAMP_FORMAT,
        MESSAGE_TYPE_VALUES,
    ]


def test_missing_and_invalid_mixed_in_table_order() -> None:
    fields = {"userId": "abc", "message": " ", "timestamp": 1e300, "messageType": None}
    assert validate(fields) == [
        USER_ID_RANGE,
        "username is required",
        "message is required",
        TIMESTAMP_FORMAT,
        "messageType is required",
    ]


def test_unknown_fields_are_ignored() -> None:
    fields = chat_message_fields(roomId=5, extra={"nested": [1, 2]}, status="error")
    assert validate(fields) == validate(chat_message_fields())


def test_keys_are_case_sensitive() -> None:
    fields = chat_message_fields()
    fields["userid"] = fields.pop("userId")
    assert validate(fields) == ["userId is required"]


def test_validator_keeps_no_state_between_calls() -> None:
    validator = MessageValidator()
    assert validator.validate({}) == list(REQUIRED.values())
    assert isinstance(validator.validate(chat_message_fields()), ChatMessage)
    assert validator.validate(chat_message_fields(userId=0)) == [USER_ID_RANGE]
