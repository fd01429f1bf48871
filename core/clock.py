"""Time, injected. Nothing in core calls ``time.time()`` directly, so tests and snapshots can
run on a manual clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (timestamps, JWT claims, day boundaries)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (ages, timeouts, watchdogs, rates)."""
        ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to: for tests and deterministic snapshots."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._wall = start
        self._mono = 0.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a manual clock only moves forward")
        self._wall += seconds
        self._mono += seconds


def utc_datetime(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.time(), tz=UTC)
