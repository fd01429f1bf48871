"""An instant stand-in for ``asyncio.sleep`` that remembers the delays asked for."""

from __future__ import annotations

import asyncio


class Sleeps:
    """Returns after one loop turn instead of waiting; ``delays`` lists every wait asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)
