"""A seeded generator of realistic Coinbase ``level2`` recordings (raw WebSocket frames).

The order book benchmark, the replay tests and the comparison against cryptofeed's C book all
need the same thing: a long stream of frames shaped exactly like what the market-data socket
sends. This module produces it deterministically from a seed, so every figure can be
reproduced:

* first a ``subscriptions`` ack, then one ``l2_data`` snapshot per product (~1,000 levels a side
  by default),
* then ``messages`` update frames, each carrying 1 to 8 level changes for one product: size
  changes at existing levels, new levels and deletions, concentrated near the top of the book,
  so the best bid and ask keep moving, but the book never crosses,
* ``heartbeats`` frames interleaved once a second of recorded time,
* one ``sequence_num`` counter across every frame (as on one real connection), realistic
  ``timestamp`` / ``event_time`` strings, prices as decimal strings on a 0.01 tick and sizes
  with 8 decimals.

The generator keeps its own book in integer ticks and integer size units (1e-8), so the prices
and sizes it writes are exact decimal strings and it can guarantee the book never crosses.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

# One price tick is 0.01 quote currency; one size unit is 1e-8 base currency.
_TICKS_PER_UNIT = 100
_SIZE_UNITS = 100_000_000

# Typical starting mid prices, so a multi-product recording looks plausible.
_START_MIDS = {"BTC-USD": 68_000.0, "ETH-USD": 3_500.0, "SOL-USD": 150.0}
_DEFAULT_MID = 100.0

# Near-top concentration: the level an update touches is picked this many levels from the top
# on average (exponential), which is where real books are busiest.
_MEAN_DEPTH_TOUCHED = 12.0
# New levels appear this many ticks behind the best price on average...
_MEAN_NEW_LEVEL_OFFSET_TICKS = 40.0
# ...except for this share, which lands inside the spread and so moves the best price.
_INSIDE_SPREAD_SHARE = 0.15


@dataclass(frozen=True, slots=True)
class SyntheticL2Config:
    """What to generate. ``messages`` counts l2 update frames (the ack, the snapshots and the
    heartbeats come on top)."""

    messages: int = 200_000
    seed: int = 1
    products: tuple[str, ...] = ("BTC-USD",)
    levels_per_side: int = 1_000
    max_updates_per_message: int = 8
    start_time: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    mean_message_interval_s: float = 0.004
    heartbeat_interval_s: float = 1.0
    start_mids: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.messages < 0:
            raise ValueError("messages must be >= 0")
        if not self.products:
            raise ValueError("at least one product is needed")
        if self.levels_per_side < 2:
            raise ValueError("levels_per_side must be >= 2")
        if self.max_updates_per_message < 1:
            raise ValueError("max_updates_per_message must be >= 1")


class _SideBook:
    """One side of the generator's own book, in integer ticks and integer size units."""

    __slots__ = ("is_bid", "sizes", "ticks")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.sizes: dict[int, int] = {}
        self.ticks: list[int] = []  # ascending

    def best(self) -> int:
        return self.ticks[-1] if self.is_bid else self.ticks[0]

    def tick_from_top(self, depth: int) -> int:
        depth = min(depth, len(self.ticks) - 1)
        return self.ticks[-1 - depth] if self.is_bid else self.ticks[depth]

    def set(self, tick: int, size: int) -> None:
        if tick not in self.sizes:
            bisect.insort(self.ticks, tick)
        self.sizes[tick] = size

    def delete(self, tick: int) -> None:
        del self.sizes[tick]
        del self.ticks[bisect.bisect_left(self.ticks, tick)]


class _ProductGenerator:
    """Evolves one product's book and turns every change into a wire-format level update."""

    def __init__(self, product_id: str, mid: float, rng: random.Random, levels: int) -> None:
        self.product_id = product_id
        self.rng = rng
        self.target_levels = levels
        self.bids = _SideBook(is_bid=True)
        self.asks = _SideBook(is_bid=False)
        mid_tick = round(mid * _TICKS_PER_UNIT)
        self._fill_side(self.bids, mid_tick - 1, -1)
        self._fill_side(self.asks, mid_tick + 1, +1)

    def _fill_side(self, side: _SideBook, first_tick: int, direction: int) -> None:
        tick = first_tick
        for level in range(self.target_levels):
            side.set(tick, self._random_size())
            # Dense near the top, sparser deeper down, as on a real BTC-USD book.
            tick += direction * (1 + int(self.rng.expovariate(1.0) * level / 60.0))

    def _random_size(self) -> int:
        return max(1, int(self.rng.lognormvariate(-2.5, 1.6) * _SIZE_UNITS))

    def snapshot_updates(self, event_time: str) -> list[dict[str, str]]:
        bids = [
            _level("bid", event_time, tick, self.bids.sizes[tick])
            for tick in reversed(self.bids.ticks)
        ]
        asks = [
            _level("offer", event_time, tick, self.asks.sizes[tick]) for tick in self.asks.ticks
        ]
        return bids + asks

    def random_updates(self, count: int, event_time: str) -> list[dict[str, str]]:
        return [self._random_update(event_time) for _ in range(count)]

    def _random_update(self, event_time: str) -> dict[str, str]:
        rng = self.rng
        side = self.bids if rng.random() < 0.5 else self.asks
        name = "bid" if side.is_bid else "offer"
        levels = len(side.ticks)
        # Keep each side near its target size: add more when thin, delete more when thick.
        balance = levels / self.target_levels
        p_new = 0.25 / balance
        p_delete = 0.25 * balance if levels > 10 else 0.0
        roll = rng.random()
        if roll < p_delete:
            tick = side.tick_from_top(int(rng.expovariate(1.0 / _MEAN_DEPTH_TOUCHED)))
            side.delete(tick)
            return _level(name, event_time, tick, 0)
        if roll < p_delete + p_new:
            new_tick = self._new_level_tick(side)
            if new_tick is not None and new_tick not in side.sizes:
                size = self._random_size()
                side.set(new_tick, size)
                return _level(name, event_time, new_tick, size)
        # A size change at an existing level (also the fallback when no new tick is free).
        tick = side.tick_from_top(int(rng.expovariate(1.0 / _MEAN_DEPTH_TOUCHED)))
        size = self._random_size()
        while size == side.sizes[tick]:
            size = self._random_size()
        side.set(tick, size)
        return _level(name, event_time, tick, size)

    def _new_level_tick(self, side: _SideBook) -> int | None:
        rng = self.rng
        best_bid, best_ask = self.bids.best(), self.asks.best()
        if best_ask - best_bid > 1 and rng.random() < _INSIDE_SPREAD_SHARE:
            # Improves the best price but never reaches the other side: the book never crosses.
            return rng.randint(best_bid + 1, best_ask - 1)
        offset = 1 + int(rng.expovariate(1.0 / _MEAN_NEW_LEVEL_OFFSET_TICKS))
        tick = best_bid - offset if side.is_bid else best_ask + offset
        return tick if tick > 0 else None


def _level(side: str, event_time: str, tick: int, size_units: int) -> dict[str, str]:
    return {
        "side": side,
        "event_time": event_time,
        "price_level": f"{tick // _TICKS_PER_UNIT}.{tick % _TICKS_PER_UNIT:02d}",
        "new_quantity": "0" if size_units == 0 else _format_size(size_units),
    }


def _format_size(size_units: int) -> str:
    return f"{size_units // _SIZE_UNITS}.{size_units % _SIZE_UNITS:08d}"


def _rfc3339(epoch_s: float) -> str:
    """Coinbase's envelope timestamp form, e.g. ``2026-01-01T00:00:00.123456Z``."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _heartbeat_time(epoch_s: float, start: float) -> str:
    """The Go-style ``current_time`` string the heartbeats channel carries."""
    wall = datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{wall} +0000 UTC m=+{epoch_s - start:.9f}"


def generate_l2_frames(config: SyntheticL2Config) -> Iterator[bytes]:
    """Yield the recording frame by frame (JSON bytes, no trailing newline)."""
    rng = random.Random(config.seed)
    products = [
        _ProductGenerator(
            product_id,
            config.start_mids.get(product_id, _START_MIDS.get(product_id, _DEFAULT_MID)),
            rng,
            config.levels_per_side,
        )
        for product_id in config.products
    ]
    now = config.start_time
    sequence = 0
    yield _envelope(
        "subscriptions",
        now,
        sequence,
        [{"subscriptions": {"level2": list(config.products), "heartbeats": []}}],
    )
    for product in products:
        sequence += 1
        now += 0.001
        stamp = _rfc3339(now)
        event = {
            "type": "snapshot",
            "product_id": product.product_id,
            "updates": product.snapshot_updates(stamp),
        }
        yield _envelope("l2_data", now, sequence, [event])

    heartbeat_counter = 0
    next_heartbeat = config.start_time + config.heartbeat_interval_s
    max_updates = config.max_updates_per_message
    for _ in range(config.messages):
        now += rng.expovariate(1.0 / config.mean_message_interval_s)
        while now >= next_heartbeat:
            sequence += 1
            heartbeat_counter += 1
            yield _envelope(
                "heartbeats",
                next_heartbeat,
                sequence,
                [
                    {
                        "current_time": _heartbeat_time(next_heartbeat, config.start_time),
                        "heartbeat_counter": str(heartbeat_counter),
                    }
                ],
            )
            next_heartbeat += config.heartbeat_interval_s
        product = products[0] if len(products) == 1 else rng.choice(products)
        # The exchange's own event time is a little earlier than the send time.
        event_time = _rfc3339(now - rng.uniform(0.0002, 0.002))
        updates = product.random_updates(rng.randint(1, max_updates), event_time)
        sequence += 1
        yield _envelope(
            "l2_data",
            now,
            sequence,
            [{"type": "update", "product_id": product.product_id, "updates": updates}],
        )


def _envelope(channel: str, epoch_s: float, sequence: int, events: Sequence[object]) -> bytes:
    return orjson.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": _rfc3339(epoch_s),
            "sequence_num": sequence,
            "events": events,
        }
    )


def generate_l2_lines(config: SyntheticL2Config) -> list[bytes]:
    """The whole recording in memory, one frame per element (what benchmarks replay)."""
    return list(generate_l2_frames(config))


def write_l2_recording(path: Path, config: SyntheticL2Config) -> int:
    """Write the recording as JSONL (one raw frame per line). Returns the number of lines."""
    count = 0
    with path.open("wb") as out:
        for frame in generate_l2_frames(config):
            out.write(frame)
            out.write(b"\n")
            count += 1
    return count
