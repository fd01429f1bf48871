"""A deterministic stand-in for the engine, for the UI's tests and snapshots only.

It produces :class:`EngineSnapshot` values from a seed and a :class:`ManualClock`: the same
seed and the same calls give the same screens, byte for byte. The market moves only when a
test calls :meth:`FakeEngine.step`; nothing runs on a timer. The real console never uses it
(it builds the real engine in ``cryptoj_tui.console``).
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from core.clock import ManualClock
from core.model import ExchangeOrder, ExchangeOrderStatus, Side, Trade
from core.snapshot import (
    BalanceView,
    BookStatus,
    BookView,
    ConnectionState,
    ConnectionView,
    EngineSnapshot,
    EventView,
    TapeView,
)

DEFAULT_PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD")

# Reference prices (and display decimals) of the products the fake knows; others get 100.00.
# product: (reference price, price decimals, size decimals, ticks between two levels)
_REFERENCE = {
    "BTC-USD": (64_250.0, 2, 8, 50),
    "ETH-USD": (3_120.0, 2, 6, 5),
    "SOL-USD": (145.0, 2, 4, 1),
}
_TAPE_LENGTH = 100
_MID_HISTORY_LENGTH = 240
_EVENT_HISTORY_LENGTH = 200


@dataclass
class _FakeMarket:
    """One product's simulated book, tape and mid history."""

    product_id: str
    tick: float
    price_decimals: int
    size_decimals: int
    spacing: int  # ticks between two adjacent levels
    mid_ticks: int  # the mid in whole ticks, so prices stay exact multiples of the tick
    bid_sizes: list[float]
    ask_sizes: list[float]
    version: int = 1
    status: BookStatus = BookStatus.LIVE
    status_reason: str | None = None
    resyncs: int = 0
    tape_version: int = 0
    trades: deque[Trade] = field(default_factory=lambda: deque(maxlen=_TAPE_LENGTH))
    mids: deque[float] = field(default_factory=lambda: deque(maxlen=_MID_HISTORY_LENGTH))
    book_cache: BookView | None = None
    tape_cache: TapeView | None = None
    mids_cache: tuple[float, ...] = ()

    def price(self, ticks: int) -> float:
        return round(ticks * self.tick, self.price_decimals)

    def book(self) -> BookView:
        cached = self.book_cache
        if cached is not None:
            return cached
        if self.status is BookStatus.SYNCING:
            bids: tuple[tuple[float, float], ...] = ()
            asks: tuple[tuple[float, float], ...] = ()
        else:
            step = self.spacing
            bids = tuple(
                (self.price(self.mid_ticks - step * (1 + i)), size)
                for i, size in enumerate(self.bid_sizes)
            )
            asks = tuple(
                (self.price(self.mid_ticks + step * (1 + i)), size)
                for i, size in enumerate(self.ask_sizes)
            )
        self.book_cache = BookView(
            product_id=self.product_id,
            status=self.status,
            version=self.version,
            bids=bids,
            asks=asks,
            status_reason=self.status_reason,
            last_update_age_s=0.0,
            resyncs=self.resyncs,
            price_decimals=self.price_decimals,
            size_decimals=self.size_decimals,
        )
        return self.book_cache

    def tape(self) -> TapeView:
        if self.tape_cache is None:
            self.tape_cache = TapeView(self.product_id, self.tape_version, tuple(self.trades))
        return self.tape_cache

    def mid_history(self) -> tuple[float, ...]:
        if len(self.mids_cache) != len(self.mids) or (
            self.mids and self.mids_cache[-1] != self.mids[-1]
        ):
            self.mids_cache = tuple(self.mids)
        return self.mids_cache

    def changed(self) -> None:
        self.version += 1
        self.book_cache = None


class FakeEngine:
    """A ``ConsoleEngine`` double: deterministic snapshots, controllable faults."""

    def __init__(
        self,
        *,
        clock: ManualClock,
        products: Sequence[str] = DEFAULT_PRODUCTS,
        seed: int = 7,
        mode: str = "demo",
        levels: int = 25,
        warmup_steps: int = 80,
        run_error: BaseException | None = None,
    ) -> None:
        if not products:
            raise ValueError("the fake engine needs at least one product")
        self._clock = clock
        self.products = tuple(products)
        self.mode = mode
        self._random = random.Random(seed)
        self._markets = {
            product_id: self._new_market(product_id, seed, levels) for product_id in self.products
        }
        self._trade_counter = 0
        self._stopped = asyncio.Event()
        self._failure: BaseException | None = run_error
        self.running = False
        self.stop_calls = 0
        self.snapshot_calls = 0
        self._connections = {
            "market": ConnectionView("market", ConnectionState.CONNECTED, last_message_age_s=0.2),
            "user": ConnectionView("user", ConnectionState.CONNECTED, last_message_age_s=1.4),
        }
        self._balances: tuple[BalanceView, ...] | None = (
            BalanceView("USD", Decimal("25000.00"), Decimal("1250.50")),
            BalanceView("BTC", Decimal("0.41250000"), Decimal("0.01000000")),
            BalanceView("ETH", Decimal("3.500000"), Decimal("0")),
            BalanceView("SOL", Decimal("12.0000"), None),
        )
        self._balances_version = 1
        self._orders: tuple[ExchangeOrder, ...] = ()
        self._orders_version = 0
        self._events: deque[EventView] = deque(maxlen=_EVENT_HISTORY_LENGTH)
        self._events_version = 0
        for _ in range(warmup_steps):
            self.step()
        self._add_default_orders()
        self.add_event("info", f"{mode} session started")
        self.add_event("info", "market stream connected; books synced")

    # -- ConsoleEngine -------------------------------------------------------------------

    async def run(self) -> None:
        """Wait until :meth:`stop`; raise the injected failure, if any, like a crashed engine."""
        self.running = True
        try:
            if self._failure is None:
                await self._stopped.wait()
            if self._failure is not None:
                raise self._failure
        finally:
            self.running = False

    async def stop(self) -> None:
        self.stop_calls += 1
        self._stopped.set()

    def snapshot(self, product_id: str) -> EngineSnapshot:
        self.snapshot_calls += 1
        market = self._markets.get(product_id) or self._markets[self.products[0]]
        return EngineSnapshot(
            mode=self.mode,
            wall_time=self._clock.time(),
            products=self.products,
            selected_product=market.product_id,
            book=market.book(),
            tape=market.tape(),
            connections=tuple(self._connections.values()),
            balances=self._balances,
            balances_version=self._balances_version,
            open_orders=self._orders,
            orders_version=self._orders_version,
            events=tuple(self._events),
            events_version=self._events_version,
            mid_history=market.mid_history(),
        )

    # -- controls for tests --------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        """Make a running (or future) :meth:`run` raise ``error``."""
        self._failure = error
        self._stopped.set()

    def step(self) -> None:
        """Move every market one step: the mid walks, a few sizes change, one trade prints."""
        rng = self._random
        for market in self._markets.values():
            market.mid_ticks += market.spacing * rng.choice((-2, -1, 0, 0, 1, 2))
            for sizes in (market.bid_sizes, market.ask_sizes):
                index = rng.randrange(len(sizes))
                sizes[index] = self._level_size(market, rng)
            market.changed()
            market.mids.append(market.price(market.mid_ticks))
            self._print_trade(market, rng)

    def set_level_size(self, product_id: str, side: Side, index: int, size: float) -> None:
        """Change one level's size (index 0 = best) and bump the book's version."""
        market = self._markets[product_id]
        sizes = market.bid_sizes if side is Side.BUY else market.ask_sizes
        sizes[index] = size
        market.changed()

    def set_book_status(
        self, product_id: str, status: BookStatus, reason: str | None = None
    ) -> None:
        market = self._markets[product_id]
        if status is BookStatus.STALE and market.status is BookStatus.LIVE:
            market.resyncs += 1
        market.status = status
        market.status_reason = reason
        market.changed()

    def set_connection(
        self,
        name: str,
        state: ConnectionState,
        *,
        attempt: int = 0,
        last_message_age_s: float | None = None,
    ) -> None:
        self._connections[name] = ConnectionView(
            name, state, attempt=attempt, last_message_age_s=last_message_age_s
        )

    def set_balances(self, balances: Sequence[BalanceView] | None) -> None:
        self._balances = None if balances is None else tuple(balances)
        self._balances_version += 1

    def set_open_orders(self, orders: Sequence[ExchangeOrder]) -> None:
        self._orders = tuple(orders)
        self._orders_version += 1

    def add_event(self, level: str, text: str) -> None:
        self._events.append(EventView(self._clock.time(), level, text))
        self._events_version += 1

    def book(self, product_id: str) -> BookView:
        return self._markets[product_id].book()

    # -- internals -----------------------------------------------------------------------

    def _new_market(self, product_id: str, seed: int, levels: int) -> _FakeMarket:
        reference, price_decimals, size_decimals, spacing = _REFERENCE.get(
            product_id, (100.0, 2, 4, 1)
        )
        tick = 10.0**-price_decimals
        # crc32, not hash(): str hashes change from one interpreter run to the next.
        rng = random.Random(seed ^ zlib.crc32(product_id.encode()))
        market = _FakeMarket(
            product_id=product_id,
            tick=tick,
            price_decimals=price_decimals,
            size_decimals=size_decimals,
            spacing=spacing,
            mid_ticks=round(reference / tick),
            bid_sizes=[],
            ask_sizes=[],
        )
        market.bid_sizes = [self._level_size(market, rng) for _ in range(levels)]
        market.ask_sizes = [self._level_size(market, rng) for _ in range(levels)]
        return market

    @staticmethod
    def _level_size(market: _FakeMarket, rng: random.Random) -> float:
        # Between $500 and $60,000 of notional per level, whatever the product's price.
        notional = rng.uniform(500.0, 60_000.0)
        return round(notional / market.price(market.mid_ticks), market.size_decimals)

    def _print_trade(self, market: _FakeMarket, rng: random.Random) -> None:
        self._trade_counter += 1
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        ticks = market.mid_ticks + (market.spacing if side is Side.BUY else -market.spacing)
        when = self._clock.time() - 0.5 * (_TAPE_LENGTH - len(market.trades))
        market.trades.appendleft(
            Trade(
                trade_id=str(self._trade_counter),
                product_id=market.product_id,
                price=market.price(ticks),
                size=round(rng.uniform(50.0, 20_000.0) / market.price(ticks), market.size_decimals),
                side=side,
                time=datetime.fromtimestamp(when, tz=UTC),
            )
        )
        market.tape_version += 1
        market.tape_cache = None

    def _add_default_orders(self) -> None:
        orders = []
        for number, (product_id, side, depth) in enumerate(
            (("BTC-USD", Side.BUY, 3), ("BTC-USD", Side.SELL, 5), ("ETH-USD", Side.BUY, 2)),
            start=1,
        ):
            market = self._markets.get(product_id)
            if market is None:
                continue
            book = market.book()
            levels = book.bids if side is Side.BUY else book.asks
            price = Decimal(f"{levels[depth][0]:.{market.price_decimals}f}")
            orders.append(
                ExchangeOrder(
                    order_id=f"fake-order-{number}",
                    client_order_id=f"fake-client-{number}",
                    product_id=product_id,
                    side=side,
                    status=ExchangeOrderStatus.OPEN,
                    order_type="LIMIT",
                    time_in_force="GOOD_UNTIL_CANCELLED",
                    base_size=Decimal("0.0500"),
                    limit_price=price,
                    filled_size=Decimal("0.0100") if number == 1 else Decimal(0),
                )
            )
        self.set_open_orders(orders)
