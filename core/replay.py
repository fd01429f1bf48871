"""Replay of a recorded market-data session (JSONL: one raw WebSocket frame per line).

Every line goes through the sink's ``on_frame`` — the same path the live socket uses — so a
replayed session exercises exactly the live decoding, sequence checks and book handling.

Pacing:

* ``"fast"``: as fast as possible, yielding to the event loop every ``yield_every`` lines so a
  UI sharing the loop keeps drawing;
* ``"recorded"``: sleeps between frames by the difference of their envelope ``timestamp``
  (divided by ``speed``); frames without a readable timestamp are sent without a pause.

A file cannot reconnect or resubscribe: the control handed to the sink only records what was
asked, so tests and the UI can show it.

The end of the file: by default the sink is told ``on_disconnected("replay finished")`` (its
books drop, as for any lost connection). The console's replay mode passes
``disconnect_at_end=False`` instead: the end of a replay is "replay finished", not a fault, so
the books keep their last state and the engine (told by the feed's task ending) neither marks
them STALE nor halts on stale data; ``--replay FILE --headless`` then exits 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.coinbase.market_messages import frame_timestamp
from core.coinbase.stream import FrameSink

Pace = Literal["fast", "recorded"]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class ReplayControl:
    """A ``ConnectionControl`` for a file: requests are recorded, nothing else happens."""

    name: str = "replay"
    reconnect_requests: list[str] = field(default_factory=list)
    resubscribe_requests: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def request_reconnect(self, reason: str) -> None:
        self.reconnect_requests.append(reason)

    def request_resubscribe(self, channel: str, product_ids: Sequence[str]) -> None:
        self.resubscribe_requests.append((channel, tuple(product_ids)))


@dataclass(frozen=True, slots=True)
class ReplayResult:
    frames: int
    recorded_span_s: float  # last minus first envelope timestamp ("recorded" pace; else 0.0)


class ReplayFeed:
    """Pushes a recording through a ``FrameSink``."""

    def __init__(
        self,
        path: Path,
        sink: FrameSink,
        *,
        pace: Pace = "fast",
        speed: float = 1.0,
        yield_every: int = 1000,
        sleep: Sleep = asyncio.sleep,
        disconnect_at_end: bool = True,
    ) -> None:
        if pace not in ("fast", "recorded"):
            raise ValueError(f"pace must be 'fast' or 'recorded', not {pace!r}")
        if speed <= 0:
            raise ValueError("speed must be > 0")
        if yield_every < 1:
            raise ValueError("yield_every must be >= 1")
        self._path = path
        self._sink = sink
        self._pace = pace
        self._speed = speed
        self._yield_every = yield_every
        self._sleep = sleep
        self._disconnect_at_end = disconnect_at_end
        self.control = ReplayControl()

    async def run(self) -> ReplayResult:
        """Replay the whole file. The sink sees on_connected first and (by default)
        on_disconnected("replay finished") at the end."""
        sink = self._sink
        sink.on_connected(self.control)
        frames = 0
        first_stamp: float | None = None
        previous_stamp: float | None = None
        with self._path.open("rb") as source:
            for raw in source:
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                if self._pace == "recorded":
                    stamp = frame_timestamp(line)
                    if stamp is not None:
                        if previous_stamp is not None and stamp > previous_stamp:
                            await self._sleep((stamp - previous_stamp) / self._speed)
                        previous_stamp = stamp
                        if first_stamp is None:
                            first_stamp = stamp
                sink.on_frame(line)
                frames += 1
                if self._pace == "fast" and frames % self._yield_every == 0:
                    await self._sleep(0)
        if self._disconnect_at_end:
            sink.on_disconnected("replay finished")
        span = (
            previous_stamp - first_stamp
            if previous_stamp is not None and first_stamp is not None
            else 0.0
        )
        return ReplayResult(frames=frames, recorded_span_s=span)
