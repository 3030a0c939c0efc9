"""The JSON the Java original reads and writes (SPEC §1.3–1.5): keys, order, types, compactness."""

from __future__ import annotations

import json

import pytest

from chatflow import wire
from chatflow.server.message_validator import MessageValidator
from chatflow.models import ChatMessage, ChatResponse, ErrorResponse, MessageType

#: 2026-02-13T10:30:00.000Z and 123 ms later.
CLIENT_MS = 1_770_978_600_000
SERVER_MS = CLIENT_MS + 123

MESSAGE = ChatMessage(
    user_id=12345,
    username="user12345",
    message="Hello everyone!",
    timestamp_ms=CLIENT_MS,
    message_type=MessageType.TEXT,
)


def test_chat_message_bytes() -> None:
    assert wire.encode_chat_message(MESSAGE) == (
        b'{"userId":12345,"username":"user12345","message":"Hello everyone!",'
        b'"timestamp":"2026-02-13T10:30:00.000Z","messageType":"TEXT"}'
    )


def test_chat_response_bytes() -> None:
    response = ChatResponse.for_message(MESSAGE, SERVER_MS)
    assert wire.encode_chat_response(response) == (
        b'{"userId":12345,"username":"user12345","message":"Hello everyone!",'
        b'"clientTimestamp":"2026-02-13T10:30:00.000Z","serverTimestamp":"2026-02-13T10:30:00.123Z",'
        b'"messageType":"TEXT","status":"success"}'
    )


def test_chat_response_copies_the_message() -> None:
    response = ChatResponse.for_message(MESSAGE, SERVER_MS)
    assert response == ChatResponse(12345, "user12345", "Hello everyone!", CLIENT_MS, SERVER_MS, MessageType.TEXT)
    assert response.status == "success"


def test_error_response_bytes() -> None:
    response = ErrorResponse(("userId must be between 1 and 100000", "username must be 3-20 characters"), SERVER_MS)
    assert wire.encode_error_response(response) == (
        b'{"status":"error","timestamp":"2026-02-13T10:30:00.123Z",'
        b'"errors":["userId must be between 1 and 100000","username must be 3-20 characters"]}'
    )


def test_error_response_key_order() -> None:
    decoded = json.loads(wire.encode_error_response(ErrorResponse(("x",), SERVER_MS)))
    assert list(decoded) == ["status", "timestamp", "errors"]


@pytest.mark.parametrize("message_type", list(MessageType))
def test_message_type_is_written_by_name(message_type: MessageType) -> None:
    message = ChatMessage(1, "abc", "m", CLIENT_MS, message_type)
    decoded = json.loads(wire.encode_chat_response(ChatResponse.for_message(message, SERVER_MS)))
    assert decoded["messageType"] == message_type.name
    assert json.loads(wire.encode_chat_message(message))["messageType"] == message_type.name


def test_non_ascii_is_written_as_raw_utf8() -> None:
    # Jackson writes UTF-8 as is, with no \\u escapes for non-ASCII text.
    message = ChatMessage(1, "abc", "héllo 日本 \U0001f600 \"q\" \\ \n", CLIENT_MS, MessageType.TEXT)
    encoded = wire.encode_chat_response(ChatResponse.for_message(message, SERVER_MS))
    assert '"message":"héllo 日本 \U0001f600 \\"q\\" \\\\ \\n"'.encode() in encoded
    assert json.loads(encoded)["message"] == message.message


def test_user_id_is_a_json_integer() -> None:
    encoded = wire.encode_chat_response(ChatResponse.for_message(MESSAGE, SERVER_MS))
    assert encoded.startswith(b'{"userId":12345,')
    assert type(json.loads(encoded)["userId"]) is int


def test_encoded_chat_message_validates_back_to_itself() -> None:
    assert MessageValidator().validate(wire.decode(wire.encode_chat_message(MESSAGE))) == MESSAGE


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a":1}', {"a": 1}),
        (b'{"a":[1,2.5,"x",null,true]}', {"a": [1, 2.5, "x", None, True]}),
        ("[]", []),
        ('"s"', "s"),
        ("null", None),
        ("  7  ", 7),
        ('"\\ud83d\\ude00"', "\U0001f600"),
    ],
)
def test_decode(text: str | bytes, value: object) -> None:
    assert wire.decode(text) == value


@pytest.mark.parametrize(
    "text",
    ["", " ", "{", "{'a':1}", "{a:1}", '{"a":1,}', "[1,]", "NaN", "1e400", b"\xff", '"\\ud800"', "\ud800", "{}x"],
)
def test_decode_errors_are_value_errors(text: str | bytes) -> None:
    with pytest.raises(wire.DecodeError):
        wire.decode(text)
    assert issubclass(wire.DecodeError, ValueError)


def test_is_success_on_the_servers_own_replies() -> None:
    assert wire.is_success(wire.encode_chat_response(ChatResponse.for_message(MESSAGE, SERVER_MS)))
    assert not wire.is_success(wire.encode_error_response(ErrorResponse(("x",), SERVER_MS)))


@pytest.mark.parametrize(
    ("reply", "success"),
    [
        # Another server may put the status anywhere, or space its JSON out.
        (b'{"status":"success","userId":1}', True),
        (b'{"userId": 1, "status": "success"}', True),
        (b'{"status":"error","errors":["x"]}', False),
        (b'{"status":"SUCCESS"}', False),
        (b'{"userId":1}', False),
        (b'["status","success"]', False),
        (b'"status"', False),
        (b'not json', False),
        (b'', False),
    ],
)
def test_is_success_on_any_reply(reply: bytes, success: bool) -> None:
    assert wire.is_success(reply) is success
