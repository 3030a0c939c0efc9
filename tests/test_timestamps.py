"""Instants on the wire: what the Java original accepts and how it writes them (SPEC §1.3–1.4).

Expected values come from ``datetime`` arithmetic or are written out by hand, never
from the code under test.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.timestamps import MAX_EPOCH_MS, MIN_EPOCH_MS, format_instant, now_ms, parse_instant
from tests.support.messages import WIRE_INSTANT

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)

#: 2026-02-13T10:30:00.123Z
KNOWN_MS = 1_770_978_600_123


def epoch_ms_of(moment: datetime) -> int:
    """Whole milliseconds since the epoch, rounded down, in exact integer arithmetic."""
    return (moment - EPOCH) // ONE_MS


def test_known_instant_matches_datetime() -> None:
    assert epoch_ms_of(datetime(2026, 2, 13, 10, 30, 0, 123_000, tzinfo=timezone.utc)) == KNOWN_MS


# --- format_instant -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch_ms", "text"),
    [
        (KNOWN_MS, "2026-02-13T10:30:00.123Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (1000, "1970-01-01T00:00:01.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (-1500, "1969-12-31T23:59:58.500Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (MIN_EPOCH_MS, "0001-01-01T00:00:00.000Z"),
        (MAX_EPOCH_MS, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_format_instant(epoch_ms: int, text: str) -> None:
    assert format_instant(epoch_ms) == text
    assert WIRE_INSTANT.fullmatch(format_instant(epoch_ms))


def test_format_instant_same_second_different_millis() -> None:
    # The per-second cache must not leak one reply's milliseconds into another's.
    base = KNOWN_MS - 123
    assert [format_instant(base + ms) for ms in (0, 7, 42, 999)] == [
        "2026-02-13T10:30:00.000Z",
        "2026-02-13T10:30:00.007Z",
        "2026-02-13T10:30:00.042Z",
        "2026-02-13T10:30:00.999Z",
    ]


def test_now_ms_is_the_wall_clock() -> None:
    before = epoch_ms_of(datetime.now(timezone.utc))
    value = now_ms()
    after = epoch_ms_of(datetime.now(timezone.utc))
    assert isinstance(value, int)
    assert before <= value <= after


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=MIN_EPOCH_MS, max_value=MAX_EPOCH_MS))
def test_format_instant_agrees_with_datetime(epoch_ms: int) -> None:
    moment = EPOCH + epoch_ms * ONE_MS
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    # strftime pads years below 1000 inconsistently across platforms; build the year ourselves.
    expected = f"{moment.year:04d}" + expected[expected.index("-"):]
    text = format_instant(epoch_ms)
    assert text == expected
    assert WIRE_INSTANT.fullmatch(text)
    assert parse_instant(text) == epoch_ms


# --- parse_instant: ISO-8601 strings --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-13T10:30:00.123Z", "2026-02-13T10:30:00.123Z"),
        ("2026-02-13T10:30:00Z", "2026-02-13T10:30:00.000Z"),
        ("2026-02-13t10:30:00.123z", "2026-02-13T10:30:00.123Z"),
        ("2026-02-13T10:30:00.123z", "2026-02-13T10:30:00.123Z"),
        ("2026-02-13T10:30:00.123+01:00", "2026-02-13T09:30:00.123Z"),
        ("2026-02-13T10:30:00.123-05:30", "2026-02-13T16:00:00.123Z"),
        ("2026-02-13T10:30:00+00:00", "2026-02-13T10:30:00.000Z"),
        ("2026-02-13T10:30:00-00:00", "2026-02-13T10:30:00.000Z"),
        ("2026-02-13T10:30:00+01:00:30", "2026-02-13T09:29:30.000Z"),
        ("2026-02-13T10:30:00+18:00", "2026-02-12T16:30:00.000Z"),
        ("2026-02-13T10:30:00-18:00", "2026-02-14T04:30:00.000Z"),
        ("2026-02-13T23:30:00-01:00", "2026-02-14T00:30:00.000Z"),
        ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00.000Z"),
        ("1969-12-31T23:59:59.9999Z", "1969-12-31T23:59:59.999Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.999Z"),
    ],
)
def test_iso_strings_normalise_to_utc_millis(text: str, expected: str) -> None:
    epoch_ms = parse_instant(text)
    assert epoch_ms is not None
    assert format_instant(epoch_ms) == expected


@pytest.mark.parametrize(
    ("fraction", "millis"),
    [
        ("", 0),
        (".1", 100),
        (".12", 120),
        (".123", 123),
        (".1234", 123),
        (".12345", 123),
        (".123456", 123),
        (".1234567", 123),
        (".12345678", 123),
        (".123456789", 123),
        (".9999", 999),
        (".999999999", 999),
        (".0009", 0),
        (".000000001", 0),
    ],
)
def test_fraction_of_0_to_9_digits_is_truncated_to_millis(fraction: str, millis: int) -> None:
    assert parse_instant(f"2026-02-13T10:30:00{fraction}Z") == KNOWN_MS - 123 + millis


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T10:30:00Z",  # no February 30th
        "2025-02-29T10:30:00Z",  # not a leap year
        "2026-13-01T10:30:00Z",  # month 13
        "2026-00-10T10:30:00Z",  # month 0
        "2026-01-00T10:30:00Z",  # day 0
        "2026-04-31T10:30:00Z",  # April has 30 days
        "2026-02-13T24:30:00Z",  # hour 24
        "2026-02-13T25:00:00Z",
        "2026-02-13T10:60:00Z",  # minute 60
        "2026-02-13T10:30:61Z",
        "2026-02-13T10:30Z",  # no seconds
        "2026-02-13T10:30:00",  # no zone
        "2026-02-13T10:30:00.123",  # no zone
        "2026-02-13 10:30:00Z",  # space instead of T
        "2026-02-13",  # a date only
        "2026-02-13T10:30:00.1234567890Z",  # ten fraction digits
        "2026-02-13T10:30:00+0100",  # offset without a colon
        "2026-02-13T10:30:00+01",  # offset without minutes
        "2026-02-13T10:30:00+18:30",  # beyond Java's ±18:00
        "2026-02-13T10:30:00-19:00",
        "2026-02-13T10:30:00+01:60",
        "2026-02-13T10:30:00ZZ",
        "2026-02-13T10:30:00.123Z ",  # trailing space
        " 2026-02-13T10:30:00.123Z",
        "2026-02-13T10:30:00.123Z\n",
        "+2026-02-13T10:30:00Z",
        "26-02-13T10:30:00Z",
        "0000-01-01T00:00:00Z",  # year 0: outside 1..9999
        "0001-01-01T00:00:00+00:01",  # before year 1 once in UTC
        "9999-12-31T23:59:59-00:01",  # after year 9999 once in UTC
        "２０２６-02-13T10:30:00Z",  # full-width digits
        "2026-02-13T10:30:00.１２３Z",
        "",
        "now",
        "garbage",
        "1795518076",  # digits in a string are not a number
        "1795518076.943",
    ],
)
def test_invalid_iso_strings(text: str) -> None:
    assert parse_instant(text) is None


def test_canonical_string_parses_the_same_on_every_call() -> None:
    # The second call takes the cached fast path; both must agree, whatever the millis.
    texts = ["2031-07-04T08:09:10.000Z", "2031-07-04T08:09:10.555Z", "2031-07-04T08:09:10.555z"]
    first = [parse_instant(t) for t in texts]
    second = [parse_instant(t) for t in texts]
    expected = epoch_ms_of(datetime(2031, 7, 4, 8, 9, 10, tzinfo=timezone.utc))
    assert first == second == [expected, expected + 555, expected + 555]


def test_fast_path_rejects_non_digit_millis_after_a_cached_second() -> None:
    assert parse_instant("2031-07-04T08:09:10.000Z") is not None
    assert parse_instant("2031-07-04T08:09:10.1x3Z") is None
    assert parse_instant("2031-07-04T08:09:10.-12Z") is None
    assert parse_instant("2031-07-04T08:09:10.١٢٣Z") is None


# --- parse_instant: JSON numbers of epoch seconds -------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1795518076, "2026-11-24T11:01:16.000Z"),
        (1795518076.943278969, "2026-11-24T11:01:16.943Z"),
        (1795518076.943, "2026-11-24T11:01:16.943Z"),
        (1.5, "1970-01-01T00:00:01.500Z"),
        (0.001, "1970-01-01T00:00:00.001Z"),
        (0.0009, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.000Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
        (-0.0001, "1969-12-31T23:59:59.999Z"),
        (253402300799, "9999-12-31T23:59:59.000Z"),
        (-62135596800, "0001-01-01T00:00:00.000Z"),
        (1e9, "2001-09-09T01:46:40.000Z"),
    ],
)
def test_epoch_seconds(seconds: int | float, expected: str) -> None:
    epoch_ms = parse_instant(seconds)
    assert epoch_ms is not None
    assert format_instant(epoch_ms) == expected


def test_float_seconds_are_read_through_their_decimal_form() -> None:
    # 1.005 * 1000 is 1004.9999999999999 in binary floating point.
    assert parse_instant(1.005) == 1005
    assert parse_instant(0.943) == 943


@pytest.mark.parametrize(
    "value",
    [
        253402300800,  # year 10000
        253402300799.9999 + 1,
        -62135596801,  # year 0
        10**20,
        -(10**20),
        1e300,
        -1e300,
        float("inf"),
        float("-inf"),
        float("nan"),
        True,
        False,
        None,
        [],
        [1795518076],
        {},
        {"epochSecond": 1795518076},
    ],
)
def test_values_that_are_no_instant(value: object) -> None:
    assert parse_instant(value) is None


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=-18 * 60, max_value=18 * 60),
    st.sampled_from(["T", "t"]),
    st.sampled_from(["Z", "z"]),
)
def test_iso_string_property(moment: datetime, nanos: int, offset_minutes: int, t: str, z: str) -> None:
    """Any instant written with any offset and 9 fraction digits parses to its millisecond."""
    offset = timedelta(minutes=offset_minutes)
    local = moment.astimezone(timezone(offset)).replace(tzinfo=None)
    fraction = f".{local.microsecond:06d}{nanos:03d}"
    base = f"{local.year:04d}-{local.month:02d}-{local.day:02d}{t}{local:%H:%M:%S}{fraction}"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    expected = epoch_ms_of(moment)
    assert parse_instant(f"{base}{sign}{hours:02d}:{minutes:02d}") == expected
    in_utc = moment.replace(tzinfo=None)
    utc_text = f"{in_utc.year:04d}-{in_utc.month:02d}-{in_utc.day:02d}{t}{in_utc:%H:%M:%S}.{in_utc.microsecond:06d}{z}"
    assert parse_instant(utc_text) == expected
