"""Number, age and time formatting: "—" for unknown, separators, fixed places."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from widgets.format import (
    UNKNOWN,
    currency_decimals,
    format_age,
    format_decimal,
    format_lag_ms,
    format_number,
    format_number_to_width,
    format_time_of_day,
    format_utc_clock,
    nice_ceiling,
)


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (None, 2, UNKNOWN),
        (float("nan"), 2, UNKNOWN),
        (float("inf"), 2, UNKNOWN),
        (0.0, 2, "0.00"),
        (64250.5, 2, "64,250.50"),
        (1234567.891, 0, "1,234,568"),
        (0.123456789, 8, "0.12345679"),
        (Decimal("26250.5"), 2, "26,250.50"),
        (5.0, -3, "5"),
    ],
)
def test_format_number(value: float | Decimal | None, decimals: int, expected: str) -> None:
    assert format_number(value, decimals) == expected


def test_format_decimal_keeps_zero_distinct_from_unknown() -> None:
    assert format_decimal(Decimal(0), 2) == "0.00"
    assert format_decimal(None, 2) == UNKNOWN


def test_format_number_to_width_drops_places_until_it_fits() -> None:
    assert format_number_to_width(0.12345678, 8, 10) == "0.12345678"
    assert format_number_to_width(0.12345678, 8, 9) == "0.1234568"
    assert format_number_to_width(12345.5, 2, 6) == "12,346"
    # The integer part is never cut: too long stays too long (the caller crops).
    assert format_number_to_width(1234567.0, 2, 4) == "1,234,567"
    assert format_number_to_width(None, 2, 4) == UNKNOWN


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, UNKNOWN),
        (float("nan"), UNKNOWN),
        (-1.0, "0.0s"),
        (0.24, "0.2s"),
        (9.94, "9.9s"),
        (12.7, "12s"),
        (185.0, "3m05s"),
        (7620.0, "2h07m"),
    ],
)
def test_format_age(seconds: float | None, expected: str) -> None:
    assert format_age(seconds) == expected


@pytest.mark.parametrize(
    ("milliseconds", "expected"),
    [
        (None, UNKNOWN),
        (float("inf"), UNKNOWN),
        (-2.0, "0.0 ms"),
        (0.42, "0.4 ms"),
        (1234.0, "1,234 ms"),
    ],
)
def test_format_lag_ms(milliseconds: float | None, expected: str) -> None:
    assert format_lag_ms(milliseconds) == expected


def test_format_utc_clock() -> None:
    assert format_utc_clock(1_767_225_600.0) == "2026-01-01 00:00:00 UTC"
    assert format_utc_clock(None) == UNKNOWN
    assert format_utc_clock(float("nan")) == UNKNOWN


def test_format_time_of_day_is_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_time_of_day(datetime(2026, 1, 1, 2, 30, 5, tzinfo=plus_two)) == "00:30:05"
    assert format_time_of_day(datetime(2026, 1, 1, 7, 8, 9)) == "07:08:09"
    assert format_time_of_day(1_767_225_600.0 + 61) == "00:01:01"
    assert format_time_of_day(datetime(2026, 1, 1, tzinfo=UTC)) == "00:00:00"
    assert format_time_of_day(None) == UNKNOWN
    assert format_time_of_day(float("nan")) == UNKNOWN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, 1.0),
        (-3.0, 1.0),
        (float("nan"), 1.0),
        (0.3, 0.5),
        (1.0, 1.0),
        (1.2, 2.0),
        (3.0, 5.0),
        (7.0, 10.0),
        (129.5, 200.0),
    ],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)


def test_currency_decimals() -> None:
    assert currency_decimals("usd") == 2
    assert currency_decimals("USDC") == 2
    assert currency_decimals("BTC") == 8
