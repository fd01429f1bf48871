"""Counting malformed input without flooding the log.

A feed that starts sending garbage sends it at full rate: logging every frame would turn one
problem into a second one (a multi-gigabyte log, a stalled event loop). So each kind of bad
input is counted every time, and logged at most once per kind per interval (a minute by
default), with the number of occurrences suppressed since the previous line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.clock import Clock, SystemClock


class BadInputCounter:
    """Counts bad input per kind; logs each kind at most once per ``log_interval_s``."""

    def __init__(
        self,
        clock: Clock,
        logger: logging.Logger,
        *,
        log_interval_s: float = 60.0,
        level: int = logging.WARNING,
    ) -> None:
        self._clock = clock
        self._logger = logger
        self._log_interval_s = log_interval_s
        self._level = level
        self._counts: dict[str, int] = {}
        self._last_logged_at: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def record(self, kind: str, detail: str) -> None:
        """Count one occurrence of ``kind``; ``detail`` says what exactly was wrong."""
        self._counts[kind] = self._counts.get(kind, 0) + 1
        now = self._clock.monotonic()
        last = self._last_logged_at.get(kind)
        if last is not None and now - last < self._log_interval_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last_logged_at[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            self._logger.log(
                self._level,
                "bad input (%s): %s (%d more since the last report)",
                kind,
                detail,
                suppressed,
            )
        else:
            self._logger.log(self._level, "bad input (%s): %s", kind, detail)

    def count(self, kind: str) -> int:
        return self._counts.get(kind, 0)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        """A copy of the counts per kind (kinds never seen are absent)."""
        return dict(self._counts)


class RefusedExchangeData:
    """Exchange data refused for being impossible (a fill past its order's size, a balance of
    1e400, a product with a zero increment), counted per kind for the whole process.

    One registry, not one per decoder: REST decoding, the user stream and the order manager
    all refuse data, and the soak and the UI want one table. Listeners (the engine's event
    list) hear each refusal so the trader sees it where they look.
    """

    def __init__(self, clock: Clock, logger: logging.Logger) -> None:
        self._counter = BadInputCounter(clock, logger)
        self._listeners: list[Callable[[str, str], None]] = []

    def refuse(self, kind: str, detail: str) -> None:
        self._counter.record(kind, detail)
        for listener in list(self._listeners):
            try:
                listener(kind, detail)
            except Exception:  # a listener's bug must not turn a refusal into a crash
                logging.getLogger(__name__).exception("refusal listener failed")

    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str, str], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def listener_count(self) -> int:
        """How many listeners are registered (a leak shows as a count that keeps growing)."""
        return len(self._listeners)

    def count(self, kind: str) -> int:
        return self._counter.count(kind)

    def counts(self) -> dict[str, int]:
        """Refusals per kind since the process started (kinds never seen are absent)."""
        return self._counter.counts()


# The process's registry of refused exchange data (see RefusedExchangeData).
REFUSED_EXCHANGE_DATA = RefusedExchangeData(SystemClock(), logging.getLogger("core.refused"))
