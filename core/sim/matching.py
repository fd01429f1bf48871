"""One product's limit order book with price-time priority.

This is the engine's hot path, so it works on integers: a price is a count of price ticks and a
size a count of base increments ("lots"). Both are exact, cheap to compare and to add, and the
exchange converts to ``Decimal`` at its edges. The book knows nothing of users, money or
events: it only keeps resting orders in order and hands out matches; ``core.sim.exchange``
settles them.

Each side keeps its price levels in a sorted list of keys (``bisect``; a side has hundreds of
levels, and most activity is near the top, so inserts move few pointers) and a dict from
price to level. A level keeps its orders in an insertion-ordered dict: FIFO for matching and
O(1) removal on cancel.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass

from core.model import Side

__all__ = ["BookMatch", "BookSide", "OrderBook"]


class _Level:
    """The resting orders at one price, oldest first, and their total size."""

    __slots__ = ("lots", "orders")

    def __init__(self) -> None:
        self.lots = 0
        self.orders: dict[str, int] = {}  # order_id -> remaining lots, insertion = time priority


@dataclass(frozen=True, slots=True)
class BookMatch:
    """One maker order (partly) filled by a taker, and what is left after it."""

    order_id: str
    ticks: int
    lots: int
    maker_lots_left: int
    level_lots_left: int


class BookSide:
    """The bids or the asks of one book."""

    __slots__ = ("_is_bid", "_keys", "_levels", "side")

    def __init__(self, side: Side) -> None:
        self.side = side
        self._is_bid = side is Side.BUY
        # Sorted ascending; bids are stored negated so that index 0 is the best price either way.
        self._keys: list[int] = []
        self._levels: dict[int, _Level] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def best(self) -> int | None:
        """The best price in ticks, or None when the side is empty."""
        if not self._keys:
            return None
        key = self._keys[0]
        return -key if self._is_bid else key

    def level_lots(self, ticks: int) -> int:
        level = self._levels.get(ticks)
        return 0 if level is None else level.lots

    def add(self, order_id: str, ticks: int, lots: int) -> int:
        """Queue an order at the back of its level; returns the level's new total."""
        if lots <= 0:
            raise ValueError(f"a resting order needs a positive size, got {lots} lots")
        level = self._levels.get(ticks)
        if level is None:
            level = self._levels[ticks] = _Level()
            insort(self._keys, -ticks if self._is_bid else ticks)
        if order_id in level.orders:
            raise ValueError(f"order {order_id} already rests at {ticks}")
        level.orders[order_id] = lots
        level.lots += lots
        return level.lots

    def remove(self, order_id: str, ticks: int) -> tuple[int, int]:
        """Take an order off the book; returns (its remaining lots, the level's new total)."""
        level = self._levels[ticks]
        lots = level.orders.pop(order_id)
        level.lots -= lots
        if not level.orders:
            self._drop_level(ticks)
        return lots, level.lots

    def consume_best(self, max_lots: int) -> list[BookMatch]:
        """Fill up to ``max_lots`` from the best level only, oldest order first."""
        if not self._keys or max_lots <= 0:
            return []
        key = self._keys[0]
        ticks = -key if self._is_bid else key
        level = self._levels[ticks]
        orders = level.orders
        matches: list[BookMatch] = []
        remaining = max_lots
        while remaining > 0 and orders:
            order_id = next(iter(orders))
            resting = orders[order_id]
            take = resting if resting <= remaining else remaining
            left = resting - take
            if left:
                orders[order_id] = left
            else:
                del orders[order_id]
            level.lots -= take
            remaining -= take
            matches.append(BookMatch(order_id, ticks, take, left, level.lots))
        if not orders:
            self._drop_level(ticks)
        return matches

    def levels(self, depth: int | None = None) -> list[tuple[int, int]]:
        """Aggregated (ticks, lots), best first."""
        keys = self._keys if depth is None else self._keys[:depth]
        sign = -1 if self._is_bid else 1
        return [(sign * key, self._levels[sign * key].lots) for key in keys]

    def iter_levels(self) -> Iterator[tuple[int, int]]:
        """(ticks, lots) best first, lazily: for walks that usually stop near the top."""
        sign = -1 if self._is_bid else 1
        for key in self._keys:
            yield sign * key, self._levels[sign * key].lots

    def lots_through(self, limit_ticks: int | None, enough: int) -> int:
        """Size a taker could fill at ``limit_ticks`` or better, counting only up to ``enough``."""
        total = 0
        for ticks, lots in self.iter_levels():
            if limit_ticks is not None and not self.reaches(ticks, limit_ticks):
                break
            total += lots
            if total >= enough:
                break
        return total

    def reaches(self, ticks: int, limit_ticks: int) -> bool:
        """Does a level at ``ticks`` on this side trade with a taker limited at ``limit_ticks``?"""
        return ticks >= limit_ticks if self._is_bid else ticks <= limit_ticks

    def orders(self) -> Iterator[tuple[int, str, int]]:
        """Every resting (ticks, order_id, lots), in priority order."""
        sign = -1 if self._is_bid else 1
        for key in self._keys:
            for order_id, lots in self._levels[sign * key].orders.items():
                yield sign * key, order_id, lots

    def _drop_level(self, ticks: int) -> None:
        del self._levels[ticks]
        key = -ticks if self._is_bid else ticks
        del self._keys[bisect_left(self._keys, key)]


class OrderBook:
    """Bids and asks of one product."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)

    def side(self, side: Side) -> BookSide:
        return self.bids if side is Side.BUY else self.asks

    def opposite(self, taker_side: Side) -> BookSide:
        """The side a taker of ``taker_side`` trades against."""
        return self.asks if taker_side is Side.BUY else self.bids

    def would_cross(self, side: Side, ticks: int) -> bool:
        """Would an order of ``side`` at ``ticks`` trade on arrival?"""
        best = self.opposite(side).best()
        if best is None:
            return False
        return ticks >= best if side is Side.BUY else ticks <= best

    def is_crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask
