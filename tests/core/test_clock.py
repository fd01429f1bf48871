"""Clocks: the manual clock moves only when told, and only forward."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.clock import ManualClock, SystemClock, utc_datetime


def test_manual_clock_advances_both_clocks() -> None:
    clock = ManualClock(start=1000.0)
    clock.advance(2.5)
    assert clock.time() == 1002.5
    assert clock.monotonic() == 2.5
    assert utc_datetime(clock) == datetime.fromtimestamp(1002.5, tz=UTC)


def test_manual_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError, match="forward"):
        ManualClock().advance(-1)


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    first = clock.monotonic()
    assert clock.monotonic() >= first
    assert clock.time() > 1_700_000_000
