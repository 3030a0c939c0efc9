"""The open loop's rate over time (``chatflow.client.rate_profile``): pure, no sockets."""

from __future__ import annotations

import pytest

from chatflow.client.rate_profile import RateError, RateProfile, Stage, parse_rate

PROFILES = ["2000", "500:5000:60s", "0:2000:30s,2000:2m", "5000:500:10s", "1:2", "300:100:0.5m,100:900:2s"]


@pytest.mark.parametrize(
    ("text", "stages"),
    [
        ("2000", (Stage(2000, 2000, 1.0),)),
        ("500:5000:60s", (Stage(500, 5000, 60),)),
        (" 0:2000:30s, 2000:2m ", (Stage(0, 2000, 30), Stage(2000, 2000, 120))),
        ("10:90", (Stage(10, 10, 90),)),
        ("1:2:1h", (Stage(1, 2, 3600),)),
        ("100:200:500ms", (Stage(100, 200, 0.5),)),
    ],
)
def test_good_rates(text: str, stages: tuple[Stage, ...]) -> None:
    assert parse_rate(text).stages == stages


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0", "must be more than 0 messages per second, not 0"),
        ("-5", "must be more than 0 messages per second, not -5"),
        ("nan", "must be more than 0"),
        ("fast", "not a number of messages per second: 'fast'"),
        ("a:b:c", "not a number of messages per second: 'a' in 'a:b:c'"),
        ("1:2:0s", "not a length of time: '0s' in '1:2:0s'"),
        ("1:2:3:4", "stage '1:2:3:4' is not RATE:LENGTH or FROM:TO:LENGTH"),
        ("0:0:5s", "stage '0:0:5s' sends nothing"),
        ("5:0:5s", "the last stage must end above 0 msg/s"),
        ("100:5s,", "stage '' is not RATE:LENGTH"),
    ],
)
def test_bad_rates_say_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(RateError, match="^" + error.replace("(", r"\(").replace("'", "'")):
        parse_rate(text)


def test_a_constant_rate_is_slot_over_rate() -> None:
    profile = RateProfile.constant(400.0)
    assert not profile.ramps
    assert [profile.offset_s(i) for i in (0, 1, 399, 400, 1000)] == pytest.approx([0, 1 / 400, 399 / 400, 1, 2.5])
    assert profile.mean_rate(1000) == pytest.approx(400)
    assert profile.due(1.0, 10_000) == 401 and profile.due(100.0, 10_000) == 10_000


@pytest.mark.parametrize("text", PROFILES)
def test_each_slot_is_where_the_count_of_messages_due_reaches_it(text: str) -> None:
    profile = parse_rate(text)
    total = profile.messages
    previous = -1.0
    for slot in range(0, total + 50, max(1, total // 997)):
        at = profile.offset_s(slot)
        assert at > previous, slot
        assert profile.count_by(at) == pytest.approx(slot, abs=1e-6 * max(1, slot)), slot
        # Due at its own time, not a hair before.
        assert profile.due(at, total + 50) >= min(slot + 1, total + 50)
        previous = at


def test_a_ramp_lasts_its_stages_and_its_mean_is_the_messages_over_them() -> None:
    profile = parse_rate("500:5000:60s")
    assert profile.ramps and profile.messages == 165_000 and profile.duration_s == 60
    assert profile.offset_s(profile.messages) == pytest.approx(60)
    assert profile.mean_rate(profile.messages) == pytest.approx(2750)
    assert profile.rate_at(0) == 500 and profile.rate_at(30) == 2750 and profile.rate_at(90) == 5000
    # After the stages the last rate holds.
    assert profile.offset_s(profile.messages + 5000) == pytest.approx(61)
