"""One text frame in, one reply out (SPEC §1.3–1.5), for every input there is."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.server.message_handler import error_reply, handle_binary, handle_text
from chatflow.timestamps import now_ms, parse_instant
from tests.support.messages import ERROR_KEYS, SUCCESS_KEYS, WIRE_INSTANT

#: 2026-02-13T10:30:00.123Z, the server's clock in every test.
SERVER_MS = 1_770_978_600_123
SERVER_TEXT = "2026-02-13T10:30:00.123Z"

FIELD_ERRORS = {
    "userId is required",
    "userId must be between 1 and 100000",
    "username is required",
    "username must be 3-20 characters",
    "username must be alphanumeric",
    "message is required",
    "message must be 1-500 characters",
    "timestamp is required",
    "timestamp must be a valid ISO-8601 timestamp",
    "messageType is required",
    "messageType must be one of TEXT, JOIN, LEAVE",
}

VALID_TEXT = (
    '{"userId":12345,"username":"user12345","message":"Hello everyone!",'
    '"timestamp":"2026-02-13T10:30:00.000Z","messageType":"TEXT"}'
)
VALID_REPLY = (
    b'{"userId":12345,"username":"user12345","message":"Hello everyone!",'
    b'"clientTimestamp":"2026-02-13T10:30:00.000Z","serverTimestamp":"2026-02-13T10:30:00.123Z",'
    b'"messageType":"TEXT","status":"success"}'
)


def clock() -> int:
    return SERVER_MS


def reply_to(fields: dict[str, Any]) -> dict[str, Any]:
    return json.loads(handle_text(json.dumps(fields), clock=clock))


def message(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(VALID_TEXT)
    fields.update(overrides)
    return fields


def error_bytes(*errors: str) -> bytes:
    reply = {"status": "error", "timestamp": SERVER_TEXT, "errors": list(errors)}
    return json.dumps(reply, separators=(",", ":"), ensure_ascii=False).encode()


# --- success --------------------------------------------------------------------------


def test_success_reply_bytes() -> None:
    assert handle_text(VALID_TEXT, clock=clock) == VALID_REPLY


def test_bytes_input_gets_the_same_reply() -> None:
    assert handle_text(VALID_TEXT.encode(), clock=clock) == VALID_REPLY


def test_success_key_order_and_nothing_else() -> None:
    reply = json.loads(handle_text(VALID_TEXT, clock=clock))
    assert list(reply) == SUCCESS_KEYS


def test_reply_is_compact() -> None:
    spaced = json.dumps(json.loads(VALID_TEXT), indent=2)
    reply = handle_text(spaced, clock=clock)
    assert reply == VALID_REPLY


@pytest.mark.parametrize("message_type", ["TEXT", "JOIN", "LEAVE"])
def test_message_type_is_echoed(message_type: str) -> None:
    assert reply_to(message(messageType=message_type))["messageType"] == message_type


def test_digit_string_user_id_is_emitted_as_integer() -> None:
    reply = handle_text(json.dumps(message(userId="123")), clock=clock)
    assert reply.startswith(b'{"userId":123,"username":')


def test_client_timestamp_is_the_request_instant_normalised() -> None:
    cases = {
        "2026-02-13T11:30:00.98765+01:00": "2026-02-13T10:30:00.987Z",
        "2026-02-13t05:00:00-05:30": "2026-02-13T10:30:00.000Z",
        "2026-02-13T10:30:00.123456789z": "2026-02-13T10:30:00.123Z",
        "2026-02-13T10:30:00Z": "2026-02-13T10:30:00.000Z",
    }
    for sent, normalised in cases.items():
        reply = reply_to(message(timestamp=sent))
        assert (reply["status"], reply["clientTimestamp"], reply["serverTimestamp"]) == (
            "success",
            normalised,
            SERVER_TEXT,
        )


def test_numeric_timestamp_of_the_java_client() -> None:
    text = VALID_TEXT.replace('"2026-02-13T10:30:00.000Z"', "1795518076.943278969")
    reply = json.loads(handle_text(text, clock=clock))
    assert reply["clientTimestamp"] == "2026-11-24T11:01:16.943Z"
    assert reply["status"] == "success"


def test_extra_fields_are_ignored() -> None:
    text = VALID_TEXT[:-1] + ',"roomId":7,"status":"error","extra":{"a":[1,null]}}'
    assert handle_text(text, clock=clock) == VALID_REPLY


def test_unicode_message_round_trips_as_utf8() -> None:
    text = "日本語 \U0001f600 é"
    raw = handle_text(json.dumps(message(message=text)), clock=clock)
    assert f'"message":"{text}"'.encode() in raw
    assert json.loads(raw)["message"] == text


def test_server_timestamp_comes_from_the_clock() -> None:
    reply = json.loads(handle_text(VALID_TEXT, clock=lambda: 0))
    assert reply["serverTimestamp"] == "1970-01-01T00:00:00.000Z"


def test_default_clock_is_now() -> None:
    before = now_ms()
    reply = json.loads(handle_text(VALID_TEXT))
    after = now_ms()
    assert WIRE_INSTANT.fullmatch(reply["serverTimestamp"])
    assert before <= parse_instant(reply["serverTimestamp"]) <= after


# --- errors ---------------------------------------------------------------------------


def test_error_reply_bytes() -> None:
    assert handle_text(json.dumps(message(userId=0, username="x")), clock=clock) == (
        b'{"status":"error","timestamp":"2026-02-13T10:30:00.123Z","errors":'
        b'["userId must be between 1 and 100000","username must be 3-20 characters"]}'
    )


def test_all_missing_gives_five_errors_in_order() -> None:
    assert handle_text("{}", clock=clock) == error_bytes(
        "userId is required",
        "username is required",
        "message is required",
        "timestamp is required",
        "messageType is required",
    )


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"userId": True}, ["userId must be between 1 and 100000"]),
        ({"userId": 1.5}, ["userId must be between 1 and 100000"]),
        ({"userId": "abc"}, ["userId must be between 1 and 100000"]),
        ({"userId": []}, ["userId must be between 1 and 100000"]),
        ({"userId": {}}, ["userId must be between 1 and 100000"]),
        ({"userId": "9" * 5000}, ["userId must be between 1 and 100000"]),
        ({"username": 5}, ["username must be alphanumeric"]),
        ({"message": 5}, ["message must be 1-500 characters"]),
        ({"timestamp": True}, ["timestamp must be a valid ISO-8601 timestamp"]),
        ({"timestamp": []}, ["timestamp must be a valid ISO-8601 timestamp"]),
        ({"timestamp": 253402300800}, ["timestamp must be a valid ISO-8601 timestamp"]),
        ({"messageType": 1}, ["messageType must be one of TEXT, JOIN, LEAVE"]),
        ({"messageType": "text"}, ["messageType must be one of TEXT, JOIN, LEAVE"]),
        ({"userId": None, "message": None}, ["userId is required", "message is required"]),
        ({"username": " ", "message": ""}, ["username is required", "message is required"]),
        (
            {"messageType": "X", "timestamp": "x", "message": "m" * 501, "username": "a!", "userId": 100001},
            [
                "userId must be between 1 and 100000",
                "username must be 3-20 characters",
                "username must be alphanumeric",
                "message must be 1-500 characters",
                "timestamp must be a valid ISO-8601 timestamp",
                "messageType must be one of TEXT, JOIN, LEAVE",
            ],
        ),
    ],
)
def test_field_errors_over_the_wire(overrides: dict[str, Any], errors: list[str]) -> None:
    assert handle_text(json.dumps(message(**overrides)), clock=clock) == error_bytes(*errors)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[]", "Invalid message format: expected a JSON object, got an array"),
        ("[" + VALID_TEXT + "]", "Invalid message format: expected a JSON object, got an array"),
        ('"hello"', "Invalid message format: expected a JSON object, got a string"),
        ("42", "Invalid message format: expected a JSON object, got a number"),
        ("4.2", "Invalid message format: expected a JSON object, got a number"),
        ("null", "Invalid message format: expected a JSON object, got null"),
        ("true", "Invalid message format: expected a JSON object, got a boolean"),
    ],
)
def test_json_that_is_not_an_object(text: str, error: str) -> None:
    assert handle_text(text, clock=clock) == error_bytes(error)


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "hello", "{", VALID_TEXT[:-1], VALID_TEXT + "x", "{'userId':1}", "NaN", "\ud800",
        b"\xff\xfe", b'{"a":"\xc3"}',
    ],
)
def test_text_that_is_not_json(text: str | bytes) -> None:
    raw = handle_text(text, clock=clock)
    reply = json.loads(raw)
    assert list(reply) == ERROR_KEYS
    assert reply["status"] == "error"
    assert reply["timestamp"] == SERVER_TEXT
    [error] = reply["errors"]
    assert error.startswith("Invalid message format: ")
    assert len(error) > len("Invalid message format: ")


def test_binary_reply() -> None:
    assert handle_binary(clock=clock) == (
        b'{"status":"error","timestamp":"2026-02-13T10:30:00.123Z","errors":["binary frames are not supported"]}'
    )


def test_error_reply_keeps_order_of_errors() -> None:
    assert error_reply(["b", "a"], clock=clock) == error_bytes("b", "a")


# --- properties: any input gets one well-formed reply ---------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

#: Per key: values near the rules' edges, mixed with arbitrary JSON.
FIELD_VALUES = {
    "userId": st.integers(min_value=-2, max_value=100_002) | st.from_regex(r"[0-9]{1,8}", fullmatch=True) | JSON_VALUES,
    "username": st.from_regex(r"[A-Za-z0-9]{1,22}", fullmatch=True) | JSON_VALUES,
    "message": st.text(max_size=510) | JSON_VALUES,
    "timestamp": st.sampled_from(["2026-02-13T10:30:00.000Z", "2026-02-13T10:30:00+01:00", "2026-02-30T00:00:00Z"])
    | st.floats(min_value=-7e10, max_value=3e11)
    | st.integers(min_value=-7 * 10**10, max_value=3 * 10**11)
    | JSON_VALUES,
    "messageType": st.sampled_from(["TEXT", "JOIN", "LEAVE", "text", ""]) | JSON_VALUES,
}
CHAT_LIKE = st.fixed_dictionaries({}, optional=FIELD_VALUES)


def assert_well_formed(raw: bytes) -> dict[str, Any]:
    assert isinstance(raw, bytes)
    reply = json.loads(raw.decode("utf-8"))
    assert isinstance(reply, dict)
    if reply["status"] == "success":
        assert list(reply) == SUCCESS_KEYS
        assert type(reply["userId"]) is int and 1 <= reply["userId"] <= 100_000
        assert reply["messageType"] in ("TEXT", "JOIN", "LEAVE")
        assert WIRE_INSTANT.fullmatch(reply["clientTimestamp"])
        assert reply["serverTimestamp"] == SERVER_TEXT
    else:
        assert list(reply) == ERROR_KEYS
        assert reply["status"] == "error"
        assert reply["timestamp"] == SERVER_TEXT
        errors = reply["errors"]
        assert isinstance(errors, list) and errors
        assert all(e in FIELD_ERRORS for e in errors) or (
            len(errors) == 1 and errors[0].startswith("Invalid message format: ")
        )
    assert raw == json.dumps(reply, separators=(",", ":"), ensure_ascii=False).encode()
    return reply


def is_missing(key: str, value: object) -> bool:
    """SPEC §1.3: absent or null is missing; so is a blank username or message."""
    blank = isinstance(value, str) and value.strip() == "" and key in ("username", "message")
    return value is None or blank


def iso_text(moment: datetime, offset_minutes: int) -> str:
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    return local.isoformat().replace("+00:00", "Z")


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

VALID_MESSAGES = st.fixed_dictionaries(
    {
        "userId": st.integers(min_value=1, max_value=100_000),
        "username": st.from_regex(r"[A-Za-z0-9]{3,20}", fullmatch=True),
        "message": st.text(min_size=1, max_size=250).filter(lambda text: text.strip() != ""),
        "moment": st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)
        ),
        "offset_minutes": st.integers(min_value=-18 * 60, max_value=18 * 60),
        "messageType": st.sampled_from(["TEXT", "JOIN", "LEAVE"]),
        "user_id_as_text": st.booleans(),
    }
)


@settings(max_examples=200, deadline=None)
@given(CHAT_LIKE)
def test_any_chat_like_object_gets_a_well_formed_reply(fields: dict[str, Any]) -> None:
    reply = assert_well_formed(handle_text(json.dumps(fields), clock=clock))
    missing = [f"{key} is required" for key in FIELD_VALUES if is_missing(key, fields.get(key))]
    assert [e for e in reply.get("errors", []) if e.endswith(" is required")] == missing


@settings(max_examples=300, deadline=None)
@given(VALID_MESSAGES)
def test_any_valid_message_is_echoed(drawn: dict[str, Any]) -> None:
    moment: datetime = drawn["moment"]
    user_id = str(drawn["userId"]) if drawn["user_id_as_text"] else drawn["userId"]
    fields = message(
        userId=user_id,
        username=drawn["username"],
        message=drawn["message"],
        timestamp=iso_text(moment, drawn["offset_minutes"]),
        messageType=drawn["messageType"],
    )
    reply = assert_well_formed(handle_text(json.dumps(fields), clock=clock))
    truncated = EPOCH + (moment - EPOCH) // timedelta(milliseconds=1) * timedelta(milliseconds=1)
    assert reply == {
        "userId": drawn["userId"],
        "username": drawn["username"],
        "message": drawn["message"],
        "clientTimestamp": f"{truncated.year:04d}-{truncated:%m-%dT%H:%M:%S}.{truncated.microsecond // 1000:03d}Z",
        "serverTimestamp": SERVER_TEXT,
        "messageType": drawn["messageType"],
        "status": "success",
    }


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_gets_a_well_formed_reply(value: object) -> None:
    reply = assert_well_formed(handle_text(json.dumps(value), clock=clock))
    if not isinstance(value, dict):
        assert reply["status"] == "error"
        assert reply["errors"][0].startswith("Invalid message format: ")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=())))
def test_any_text_gets_a_well_formed_reply(text: str) -> None:
    assert_well_formed(handle_text(text, clock=clock))


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_any_bytes_get_a_well_formed_reply(data: bytes) -> None:
    assert_well_formed(handle_text(data, clock=clock))
