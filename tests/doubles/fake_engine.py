"""A deterministic stand-in for the engine, for the UI's tests and snapshots only.

It produces :class:`EngineSnapshot` values from a seed and a :class:`ManualClock`: the same
seed and the same calls give the same screens, byte for byte. The market moves only when a
test calls :meth:`FakeEngine.step`; nothing runs on a timer. The real console never uses it
(it builds the real engine in ``cryptoj_tui.console``).

It implements the engine's commands the way the real one behaves as seen from the console,
and records every call so tests assert on what the UI asked for: ``kill`` latches HALTED
inside the call and returns a task that cancels every open order; a HALTED engine denies new
orders (TRADING_HALTED) but still cancels; limit orders rest, market orders fill at the touch;
``flatten`` closes every position; ``resume`` wants the typed word and the finished kill.
Positions, P&L, equity and the exposure / loss / drawdown gauges come from the engine's own
``core.portfolio.Portfolio``, fed the fake's fills and marks, so there is one copy of that maths.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from core.clock import ManualClock
from core.denials import Denial, DenialReason
from core.emergency import RESUME_CONFIRMATION, FlattenResult, ResumeRefused
from core.model import (
    Balance,
    ExchangeOrder,
    ExchangeOrderStatus,
    Fill,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Product,
    Side,
    TimeInForce,
    Trade,
)
from core.order_state import ManagedOrder, OrderState
from core.orders import ReconcileReport
from core.portfolio import Portfolio
from core.product_catalog import default_products, make_usd_product
from core.snapshot import (
    BalanceView,
    BookStatus,
    BookView,
    ConnectionState,
    ConnectionView,
    EngineSnapshot,
    EventLevel,
    EventView,
    GaugeView,
    KillPhase,
    Mode,
    PositionView,
    StrategyView,
    TapeView,
    TradingState,
    TradingView,
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
# The fills the fake's portfolio starts from (product, side, size, price): 0.4125 BTC at
# 63,800; 3.5 ETH at 3,150 after selling 1 of 4.5 at a 12.40 loss; SOL flat after a 35.10 gain.
_START_FILLS = (
    ("BTC-USD", Side.BUY, Decimal("0.41250000"), Decimal("63800.00")),
    ("ETH-USD", Side.BUY, Decimal("4.500000"), Decimal("3150.00")),
    ("ETH-USD", Side.SELL, Decimal("1.000000"), Decimal("3137.60")),
    ("SOL-USD", Side.BUY, Decimal("1.0000"), Decimal("100.00")),
    ("SOL-USD", Side.SELL, Decimal("1.0000"), Decimal("135.10")),
)
# Limits the fake's gauges are measured against (the real ones come from RiskSettings).
_LIMITS = {
    "order_rate": (Decimal(10), "orders/1s"),
    "open_orders": (Decimal(200), "orders"),
    "position": (Decimal(50_000), "USD"),
    "gross_exposure": (Decimal(100_000), "USD"),
    "daily_loss": (Decimal(2_000), "USD"),
    "drawdown": (Decimal(5_000), "USD"),
    "data_age": (Decimal(5), "s"),
}
_CENTS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class _FakeFill:
    """What ``Portfolio.on_fill`` reads (``core.orders.FillEvent`` has more)."""

    fill: Fill


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
        mode: Mode = Mode.DEMO,
        levels: int = 25,
        warmup_steps: int = 80,
        run_error: BaseException | None = None,
        strategy: str | None = None,
    ) -> None:
        if not products:
            raise ValueError("the fake engine needs at least one product")
        self._clock = clock
        self.products = tuple(products)
        self.mode = Mode(mode)
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
        self._trading = TradingView(
            state=TradingState.ACTIVE,
            cause="first start: no trading state stored yet",
            source="startup",
            reconciling=False,
        )
        # The real P&L and gauge maths: the engine's Portfolio, fed the fake's fills and marks.
        self._portfolio = Portfolio(clock=clock, product_ids=self.products)
        self._fill_counter = 0
        for product_id, side, size, price in _START_FILLS:
            if product_id in self.products:
                self._book_fill(product_id, side, size, price)
        self._portfolio_balances()
        self._positions_version = 1
        self._strategy = None if strategy is None else StrategyView(strategy, paused=False)
        self._order_counter = 0
        self._kill_task: asyncio.Task[None] | None = None
        # What the UI asked for, in order (tests assert on these).
        self.submitted: list[OrderIntent] = []
        self.previewed: list[OrderIntent] = []
        self.cancelled: list[str] = []
        self.cancel_all_calls: list[tuple[str, ...] | None] = []
        self.kill_calls: list[tuple[str, str]] = []
        self.halt_now_calls: list[tuple[str, str]] = []
        self.flatten_calls = 0
        self.resume_calls: list[str] = []
        self.strategy_calls: list[str] = []
        # Set to make every preview and submit deny with it (e.g. a PRICE_BAND denial).
        self.deny_with: Denial | None = None
        for _ in range(warmup_steps):
            self.step()
        self._add_default_orders()
        self.add_event(EventLevel.INFO, f"{mode} session started")
        self.add_event(EventLevel.INFO, "market stream connected; books synced")

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
        for known in self.products:
            self._portfolio.mark(known, self._mark(known))
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
            trading=self._trading,
            positions=self._position_views(),
            positions_version=self._positions_version,
            equity=self._portfolio.equity,
            daily_pnl=self._portfolio.daily_pnl,
            gauges=self._gauges(market),
            strategy=self._strategy,
        )

    def product(self, product_id: str) -> Product | None:
        if product_id not in self._markets:
            return None
        for known in default_products():
            if known.product_id == product_id:
                return known
        base = product_id.split("-")[0]
        step = Decimal("0.0001")
        return make_usd_product(
            base, base_increment=step, base_min_size=step, base_max_size=Decimal(1_000_000)
        )

    def preview(self, intent: OrderIntent) -> Denial | None:
        self.previewed.append(intent)
        return self._decide(intent)

    async def submit(self, intent: OrderIntent) -> ManagedOrder:
        self.submitted.append(intent)
        self._order_counter += 1
        number = self._order_counter
        spec = intent.spec
        denial = self._decide(intent)
        now = self._clock.monotonic()
        order = ManagedOrder(
            client_order_id=f"ui-client-{number}",
            intent=intent,
            state=OrderState.DENIED if denial is not None else OrderState.ACCEPTED,
            order_id=None if denial is not None else f"ui-order-{number}",
            denial=denial,
            created_at=now,
            updated_at=now,
        )
        if denial is not None:
            self.add_event(EventLevel.WARNING, f"DENIED {_describe(spec)}: {denial}")
            return order
        if spec.order_type is OrderType.MARKET:
            market = self._markets[spec.product_id]
            book = market.book()
            touch = book.best_ask if spec.side is Side.BUY else book.best_bid
            price = Decimal(f"{touch:.{market.price_decimals}f}")
            size = spec.base_size or Decimal(0)
            self._fill(spec.product_id, spec.side, size, price)
            order.state = OrderState.FILLED
            order.filled_size = size
            order.filled_value = size * price
            return order
        self.set_open_orders(
            (
                *self._orders,
                ExchangeOrder(
                    order_id=f"ui-order-{number}",
                    client_order_id=order.client_order_id,
                    product_id=spec.product_id,
                    side=spec.side,
                    status=ExchangeOrderStatus.OPEN,
                    order_type=spec.order_type.value,
                    time_in_force=spec.time_in_force.value,
                    base_size=spec.base_size,
                    limit_price=spec.limit_price,
                    stop_price=spec.stop_price,
                    post_only=spec.post_only,
                ),
            )
        )
        return order

    async def cancel(self, client_order_ids: Sequence[str]) -> int:
        self.cancelled.extend(client_order_ids)
        wanted = set(client_order_ids)
        return self._cancel_where(lambda order: order.client_order_id in wanted)

    async def cancel_all(self, product_ids: Sequence[str] | None = None) -> int:
        self.cancel_all_calls.append(None if product_ids is None else tuple(product_ids))
        return self._cancel_where(
            lambda order: product_ids is None or order.product_id in product_ids
        )

    def halt_now(self, cause: str = "kill switch", source: str = "user") -> None:
        """Latch HALTED at once (any thread); ``kill`` follows on the loop."""
        self.halt_now_calls.append((cause, source))
        self._trading = self._halted(cause, source, self._trading.kill_phase)

    def _halted(self, cause: str, source: str, phase: KillPhase) -> TradingView:
        return TradingView(
            state=TradingState.HALTED,
            cause=cause,
            source=source,
            reconciling=False,
            kill_phase=phase,
        )

    def kill(self, cause: str = "kill switch", source: str = "user") -> asyncio.Task[None]:
        """Latch HALTED now; the returned task cancels every open order (at its first step)."""
        self.kill_calls.append((cause, source))
        self._trading = self._halted(cause, source, KillPhase.CANCELLING)
        self.add_event(EventLevel.ERROR, f"trading HALTED: {cause}")
        if self._strategy is not None and not self._strategy.paused:
            self._strategy = StrategyView(self._strategy.name, paused=True)
        if self._kill_task is None or self._kill_task.done():
            self._kill_task = asyncio.ensure_future(self._cancel_everything())
        return self._kill_task

    async def _cancel_everything(self) -> None:
        await asyncio.sleep(0)
        sent = self._cancel_where(lambda order: True)
        self._trading = TradingView(
            state=self._trading.state,
            cause=self._trading.cause,
            source=self._trading.source,
            reconciling=False,
            kill_phase=KillPhase.DONE,
            kill_rounds=1,
            kill_still_open=0,
            kill_took_ms=0.0,
        )
        self.add_event(EventLevel.INFO, f"kill switch: {sent} cancel(s) sent, no open orders")

    async def flatten(self, *, confirmed: bool) -> FlattenResult:
        if not confirmed:
            raise ValueError("flatten needs the trader's confirmation")
        self.flatten_calls += 1
        orders: list[ManagedOrder] = []
        skipped: list[str] = []
        for position in self._portfolio.positions():
            product_id = position.product_id
            if position.size <= 0:
                continue
            spec = OrderSpec(
                product_id=product_id,
                side=Side.SELL,
                order_type=OrderType.LIMIT,
                base_size=position.size,
                limit_price=self._mark(product_id),
                time_in_force=TimeInForce.IOC,
            )
            intent = OrderIntent(spec, IntentSource.FLATTEN, reduce_only=True, note="flatten")
            self.submitted.append(intent)
            self._order_counter += 1
            now = self._clock.monotonic()
            size = position.size
            price = self._mark(product_id) or Decimal(0)
            self._fill(product_id, Side.SELL, size, price)
            orders.append(
                ManagedOrder(
                    client_order_id=f"ui-client-{self._order_counter}",
                    intent=intent,
                    state=OrderState.FILLED,
                    order_id=f"ui-order-{self._order_counter}",
                    filled_size=size,
                    filled_value=size * price,
                    created_at=now,
                    updated_at=now,
                )
            )
        self.add_event(EventLevel.WARNING, f"flatten: {len(orders)} order(s)")
        return FlattenResult(tuple(orders), tuple(skipped))

    async def resume(self, confirmation: str) -> ReconcileReport:
        self.resume_calls.append(confirmation)
        if confirmation.strip() != RESUME_CONFIRMATION:
            raise ResumeRefused(f"type {RESUME_CONFIRMATION} to resume trading")
        if self._kill_task is not None and not self._kill_task.done():
            raise ResumeRefused("the kill switch is still cancelling orders")
        self._trading = TradingView(
            state=TradingState.ACTIVE,
            cause="resumed by the trader after reconciliation",
            source="user",
            reconciling=False,
        )
        self.add_event(
            EventLevel.INFO, "trading ACTIVE: resumed by the trader after reconciliation"
        )
        return ReconcileReport()

    def pause_strategy(self) -> None:
        self.strategy_calls.append("pause")
        if self._strategy is not None:
            self._strategy = StrategyView(self._strategy.name, paused=True)

    def resume_strategy(self) -> None:
        self.strategy_calls.append("resume")
        if self._strategy is not None:
            self._strategy = StrategyView(self._strategy.name, paused=False)

    @property
    def trading_state(self) -> str:
        """ACTIVE / REDUCING / HALTED, as the engine holds it now."""
        return self._trading.state

    @property
    def open_orders(self) -> tuple[ExchangeOrder, ...]:
        return self._orders

    def position_size(self, product_id: str) -> Decimal:
        return self._portfolio.size(product_id)

    def set_trading(self, trading: TradingView) -> None:
        """Put the engine in any trading state (e.g. a trigger's HALTED) for a test."""
        self._trading = trading

    def _decide(self, intent: OrderIntent) -> Denial | None:
        if self._trading.state is TradingState.HALTED and intent.source is not IntentSource.FLATTEN:
            return Denial(
                DenialReason.TRADING_HALTED,
                f"trading is HALTED ({self._trading.cause}); cancels only",
            )
        return self.deny_with

    def _cancel_where(self, predicate: Callable[[ExchangeOrder], bool]) -> int:
        keep = tuple(order for order in self._orders if not predicate(order))
        gone = len(self._orders) - len(keep)
        if gone:
            self.set_open_orders(keep)
        return gone

    def _fill(self, product_id: str, side: Side, size: Decimal, price: Decimal) -> None:
        self._book_fill(product_id, side, size, price)
        self._positions_version += 1
        self.add_event(EventLevel.INFO, f"FILL {side.value} {size} {product_id} @ {price}")

    def _book_fill(self, product_id: str, side: Side, size: Decimal, price: Decimal) -> None:
        self._fill_counter += 1
        fill = Fill(
            trade_id=f"fake-trade-{self._fill_counter}",
            order_id=f"fake-fill-order-{self._fill_counter}",
            product_id=product_id,
            side=side,
            price=price,
            size=size,
            commission=Decimal(0),
        )
        self._portfolio.on_fill(_FakeFill(fill))

    def _portfolio_balances(self) -> None:
        """The portfolio's cash is the USD balance; its base holdings are the positions the
        fills made (the fake's balance panel shows other figures, as a stand-in may)."""
        usd = next((b for b in self._balances or () if b.currency == "USD"), None)
        balances = [
            Balance(position.product_id.split("-")[0], position.size, Decimal(0))
            for position in self._portfolio.positions()
        ]
        if usd is not None and usd.available is not None and usd.hold is not None:
            balances.append(Balance("USD", usd.available, usd.hold))
        self._portfolio.set_balances(balances)

    def _mark(self, product_id: str) -> Decimal | None:
        market = self._markets.get(product_id)
        if market is None or market.status is not BookStatus.LIVE:
            return None
        mid = market.book().mid
        return None if mid is None else Decimal(f"{mid:.{market.price_decimals}f}")

    def _position_views(self) -> tuple[PositionView, ...]:
        return tuple(
            PositionView(
                product_id=position.product_id,
                size=position.size,
                avg_entry=position.avg_entry,
                mark=position.mark,
                unrealized_pnl=position.unrealized_pnl,
                realized_pnl=position.realized_pnl,
                fees=position.fees,
            )
            for position in self._portfolio.positions()
        )

    def _gauges(self, market: _FakeMarket) -> tuple[GaugeView, ...]:
        portfolio = self._portfolio
        exposures = {pid: portfolio.exposure(pid) for pid in self.products}
        known = [value for value in exposures.values() if value is not None]
        unknown = len(known) != len(exposures)
        largest = max(known, default=Decimal(0))
        largest_product = next((pid for pid, value in exposures.items() if value == largest), None)
        daily = portfolio.daily_pnl
        gross = portfolio.gross_exposure
        book = market.book()
        used: dict[str, tuple[Decimal | None, str | None]] = {
            "order_rate": (Decimal(0), None),
            "open_orders": (Decimal(len(self._orders)), None),
            "position": (None if unknown else largest.quantize(_CENTS), largest_product),
            "gross_exposure": (None if gross is None else gross.quantize(_CENTS), None),
            "daily_loss": (None if daily is None else max(Decimal(0), -daily), None),
            "drawdown": (portfolio.drawdown, None),
            "data_age": (
                None
                if book.status is not BookStatus.LIVE or book.last_update_age_s is None
                else Decimal(f"{book.last_update_age_s:.3f}"),
                market.product_id,
            ),
        }
        return tuple(
            GaugeView(name, used[name][0], limit, unit, used[name][1])
            for name, (limit, unit) in _LIMITS.items()
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

    def add_event(self, level: EventLevel, text: str) -> None:
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


def _describe(spec: OrderSpec) -> str:
    price = f" @ {spec.limit_price}" if spec.limit_price is not None else ""
    return f"{spec.side.value} {spec.base_size} {spec.product_id} {spec.order_type.value}{price}"
