from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statewise.definition.durations import format_duration, parse_duration, timer_event


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("48h", 172_800.0),
        ("2d", 172_800.0),
        ("1h30m", 5_400.0),
        ("1d2h3m4s5ms", 93_784.005),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ("90", 90.0),
        ("0.25", 0.25),
        (" 10s ", 10.0),
        (30, 30.0),
        (2.5, 2.5),
        (-5, -5.0),
    ],
)
def test_parse_duration_reads_units_combinations_and_plain_seconds(
    text: str | float, seconds: float
) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "10 s", "s", "5m1h", "1s1s", "-5s", "1h-30m", "inf"])
def test_parse_duration_rejects_malformed_text_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration; write it like 500ms"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, None, [1], float("inf"), float("nan")])
def test_parse_duration_rejects_other_types_and_non_finite_numbers(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (172_800, "2d"),
        (90, "1m30s"),
        (0.5, "500ms"),
        (0, "0s"),
        (5_400, "1h30m"),
        (1.5, "1s500ms"),
        (93_784.005, "1d2h3m4s5ms"),
        (0.0001, "0.0001"),
    ],
)
def test_format_duration_uses_the_largest_exact_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, float("inf")])
def test_format_duration_refuses_what_cannot_be_written(seconds: float) -> None:
    with pytest.raises(ValueError, match="cannot format"):
        format_duration(seconds)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_format_then_parse_gives_back_exactly_the_same_seconds(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=10**13))
def test_whole_milliseconds_round_trip_through_unit_text(millis: int) -> None:
    text = format_duration(millis / 1000)
    assert "." not in text
    assert parse_duration(text) == millis / 1000


def test_timer_event_keeps_the_duration_as_written() -> None:
    assert timer_event("48h") == "timer:48h"
    assert timer_event(60) == "timer:60"
