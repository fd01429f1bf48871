"""An instant stand-in for ``asyncio.sleep`` that remembers the delays asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.clock import ManualClock


class Sleeps:
    """Returns after one loop turn instead of waiting; ``delays`` lists every wait asked for.
    Given a manual clock it moves the clock on by each delay, so rules that depend on time
    passing (the window that proves an order absent, backoff) are reached without waiting."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.delays: list[float] = []
        self._clock = clock

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._clock is not None:
            self._clock.advance(delay)
        await asyncio.sleep(0)


async def loop_until(condition: Callable[[], bool], steps: int = 10_000_000) -> None:
    """Let the event loop run until ``condition`` holds (bounded by loop turns, not by time)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
