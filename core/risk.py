"""The pre-trade risk gate, the trading state machine and the automatic triggers.

Every order, whoever sent it (keyboard, strategy, flatten), passes ``RiskGate.check`` before it
is journaled and sent; only cancels bypass it. A refusal is a ``Denial`` with a named reason and
a one-line detail with the numbers, for the UI and the journal.

The checks run in this order; the first that fails decides the reason:

1. trading state HALTED -> TRADING_HALTED (everything but the reduce-only flatten)
2. reconciling with the venue -> RECONCILING (our picture of orders/balances is not trusted)
3. product unknown / not tradable -> UNKNOWN_PRODUCT / PRODUCT_NOT_TRADABLE
4. fields missing or contradictory -> INVALID_ORDER
5. price on the tick, size on the increment -> PRICE_PRECISION / SIZE_PRECISION
6. base size within the product's min/max -> SIZE_BELOW_MIN / SIZE_ABOVE_MAX
7. market data age over the limit or unknown -> STALE_MARKET_DATA
8. no mid, or no touch to value a market order -> NO_MARKET_PRICE
9. state REDUCING and the order does not shrink a position -> REDUCING_ONLY
10. a reduce-only order that does not shrink a position -> REDUCE_ONLY_WOULD_INCREASE
11. notional within the product's min and the per-order max -> NOTIONAL_BELOW_MIN / _ABOVE_MAX
12. price band around the mid (fat finger) -> PRICE_BAND
13. daily loss limit reached, for orders that do not shrink a position -> DAILY_LOSS_LIMIT
14. resulting position value per product -> POSITION_LIMIT (not for shrinking orders)
15. resulting gross exposure -> GROSS_EXPOSURE_LIMIT (not for shrinking orders)
16. free balance -> INSUFFICIENT_BALANCE
17. open orders -> MAX_OPEN_ORDERS
18. order rate -> ORDER_RATE

Why this order: states that refuse everything come first, so the trader sees the real
blocker; then whether the order is well formed at all (no point valuing a malformed order);
then whether it can be valued (fresh data, a price); then what it does to the position and
the limits; the rate comes last because it counts only allowed orders. A denied order never
reaches the venue and so spends none of its rate budget; counting it would let a runaway
sender (a strategy spamming refused orders) lock the trader out, flatten included. Nothing
is queued: a denied order is gone and its sender decides what to do.

"Shrinks" means the order is on the other side of a non-zero position and no larger than it
(an order that crosses zero grows the opposite position). Orders are valued at their limit
price; market orders at the touch (best ask for buys, best bid for sells); a market order
sized in quote is turned into base at that touch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from core.clock import Clock
from core.config import RiskSettings
from core.denials import Denial, DenialReason
from core.market import BookHealth, BookState
from core.model import (
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Product,
    Side,
    TimeInForce,
    decimal_str,
    is_multiple,
)
from core.portfolio import Portfolio
from core.trading_state import TradingState, TradingStateChange

_ZERO = Decimal(0)
_BPS = Decimal(10_000)
# Coinbase Advanced Trade's highest taker fee (its lowest volume tier): a buy must leave room
# for it or the venue rejects what the gate allowed.
DEFAULT_FEE_ALLOWANCE_RATE = Decimal("0.012")

_ACTIVE = TradingState.ACTIVE
_REDUCING = TradingState.REDUCING
_HALTED = TradingState.HALTED
_FLATTEN = IntentSource.FLATTEN
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP_LIMIT = OrderType.STOP_LIMIT
_BUY = Side.BUY
_GTD = TimeInForce.GTD
_IMMEDIATE = frozenset({TimeInForce.IOC, TimeInForce.FOK})

# How restrictive each state is: moving up takes effect even if it cannot be journaled.


# ---------------------------------------------------------------------------- trading state


class TradingStateStore(Protocol):
    """Where the trading state survives restarts (implemented by ``core.journal.Journal``)."""

    def load_trading_state(self) -> TradingStateChange | None: ...

    def save_trading_state(self, change: TradingStateChange, *, durable: bool = True) -> None: ...


class TradingStateMachine:
    """ACTIVE / REDUCING / HALTED, persisted through a store.

    It starts from the stored state (a restart keeps a HALT); the first start ever is ACTIVE,
    and that too is recorded. Every ``set`` is journaled with its cause and source, even when
    the state does not change (a kill switch pressed while a trigger already halted trading is
    worth a line in the journal); callers that poll (triggers) should call it on transitions.

    Rule (enforced by the caller, not here): HALTED -> ACTIVE or REDUCING only through the
    engine's resume path (typed confirmation and a clean reconciliation). Anything else may
    tighten the state at any time; only the trader loosens it.

    A tighter state takes effect even if the store fails (the error still propagates): refusing
    to halt because a disk is full would be the wrong way round. A looser state takes effect
    only once it is stored, so a restart can never come back looser than what was shown.
    """

    def __init__(self, store: TradingStateStore, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        stored = store.load_trading_state()
        if stored is None:
            stored = TradingStateChange(
                _ACTIVE, "first start: no trading state stored yet", "startup", clock.time()
            )
            store.save_trading_state(stored)
        self._last = stored
        self._version = 0

    @property
    def state(self) -> TradingState:
        return self._last.state

    @property
    def last_change(self) -> TradingStateChange:
        return self._last

    @property
    def version(self) -> int:
        return self._version

    def set(
        self, state: TradingState, cause: str, source: str, *, durable: bool = True
    ) -> TradingStateChange:
        """Switch to ``state``; ``cause`` is for the trader, ``source`` "user" | "trigger:<name>".

        ``durable=False`` (the kill switch) skips the fsync; the caller syncs the store soon.
        """
        if not cause or not source:
            raise ValueError("a trading state change needs a cause and a source")
        change = TradingStateChange(state, cause, source, self._clock.time())
        if state.strictness >= self._last.state.strictness:
            self._apply(change)
            self._store.save_trading_state(change, durable=durable)
        else:
            self._store.save_trading_state(change, durable=durable)
            self._apply(change)
        return change

    def latch(self, state: TradingState, cause: str, source: str) -> TradingStateChange:
        """Tighten the state in memory only, at once (the kill switch: nothing on disk may
        delay it). ``persist()`` writes it; until then a crash restarts from the stored one."""
        if not cause or not source:
            raise ValueError("a trading state change needs a cause and a source")
        if state.strictness < self._last.state.strictness:
            raise ValueError("only a tighter state can be latched without storing it")
        change = TradingStateChange(state, cause, source, self._clock.time())
        self._apply(change)
        return change

    def persist(self, *, durable: bool = True) -> None:
        """Store the current state (after ``latch``); a store error propagates."""
        self._store.save_trading_state(self._last, durable=durable)

    def _apply(self, change: TradingStateChange) -> None:
        self._last = change
        self._version += 1


# ---------------------------------------------------------------------------- the gate


class MarketView(Protocol):
    """What the gate needs from market data (an adapter over ``MarketDataService``)."""

    def mid(self, product_id: str) -> float | None: ...

    def best_bid(self, product_id: str) -> float | None: ...

    def best_ask(self, product_id: str) -> float | None: ...

    def data_age_s(self, product_id: str) -> float | None:
        """Seconds since the book last changed; None when there is no LIVE book."""
        ...


class GaugeName(StrEnum):
    ORDER_RATE = "order_rate"
    OPEN_ORDERS = "open_orders"
    POSITION = "position"
    GROSS_EXPOSURE = "gross_exposure"
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    DATA_AGE = "data_age"


@dataclass(frozen=True, slots=True)
class LimitGauge:
    """How much of one limit is used. ``used`` None: not known (shown as "—", never 0)."""

    name: GaugeName
    used: Decimal | None
    limit: Decimal
    unit: str  # "USD", "orders", "s", "orders/1s"
    subject: str | None = None  # which product, for the per-product maximum

    @property
    def headroom(self) -> Decimal | None:
        return None if self.used is None else self.limit - self.used

    @property
    def fraction(self) -> float | None:
        """Share of the limit used (1.0 = at the limit; may exceed 1)."""
        return None if self.used is None else float(self.used / self.limit)


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _price(value: Decimal | float) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".")


class RiskGate:
    """The one pre-trade check (implements ``core.orders.PreTradeCheck``); see the module doc.

    ``reserved(currency)`` says how much of a currency our open orders already hold (buys:
    remaining size x limit price with fees; sells: remaining base). Without it the gate uses
    the venue's ``hold`` from the last balances, which misses orders placed since.
    ``fee_allowance_rate`` is the fee share a buy must leave room for.
    """

    __slots__ = (
        "_band",
        "_band_bps",
        "_clock",
        "_daily_loss_limit",
        "_fee_factor",
        "_market",
        "_max_gross",
        "_max_open",
        "_max_order_notional",
        "_max_position",
        "_open_orders",
        "_portfolio",
        "_products",
        "_rate_capacity",
        "_rate_window_s",
        "_recent",
        "_reconciling",
        "_reserved",
        "_settings",
        "_stale_s",
        "_state",
    )

    def __init__(
        self,
        settings: RiskSettings,
        *,
        state: TradingStateMachine,
        portfolio: Portfolio,
        market: MarketView,
        products: Mapping[str, Product],
        open_orders: Callable[[], int],
        reconciling: Callable[[], bool],
        clock: Clock,
        reserved: Callable[[str], Decimal] | None = None,
        fee_allowance_rate: Decimal = DEFAULT_FEE_ALLOWANCE_RATE,
    ) -> None:
        if fee_allowance_rate < 0:
            raise ValueError(f"fee_allowance_rate must be >= 0, got {fee_allowance_rate}")
        self._settings = settings
        self._state = state
        self._portfolio = portfolio
        self._market = market
        self._products = products
        self._open_orders = open_orders
        self._reconciling = reconciling
        self._clock = clock
        self._reserved = reserved
        # Constants of the hot path, computed once.
        self._max_order_notional = settings.max_order_notional
        self._max_position = settings.max_position_notional
        self._max_gross = settings.max_gross_exposure
        self._daily_loss_limit = settings.daily_loss_limit
        self._band_bps = settings.price_band_bps
        # The band is a fat-finger screen: a float comparison is precise enough and 10x cheaper.
        self._band = float(settings.price_band_bps / _BPS)
        self._max_open = settings.max_open_orders
        self._stale_s = settings.stale_market_data_s
        self._fee_factor = 1 + fee_allowance_rate
        # Sliding window: at most `capacity` allowed orders within `window` seconds. A rate
        # below 1/s becomes one order per 1/rate seconds.
        rate = settings.max_orders_per_s
        self._rate_capacity = max(1, int(rate))
        self._rate_window_s = self._rate_capacity / rate
        self._recent: deque[float] = deque(maxlen=self._rate_capacity)

    # ------------------------------------------------------------------ check

    def check(self, intent: OrderIntent) -> Denial | None:
        """None if the order may go; otherwise why not. An allowed order counts in the rate."""
        return self._decide(intent, count=True)

    def preview(self, intent: OrderIntent) -> Denial | None:
        """What ``check`` would answer now, without counting the order in the rate.

        For the order ticket, which shows the gate's decision while the trader types: a
        preview sends nothing, so it must not spend the rate budget of the real order.
        """
        return self._decide(intent, count=False)

    def _decide(self, intent: OrderIntent, *, count: bool) -> Denial | None:
        state = self._state.state
        # HALTED stops everything but the kill switch's own confirmed flatten, which is
        # reduce-only and still passes every check below (the reduce-only one included).
        if state is _HALTED and not (intent.reduce_only and intent.source is _FLATTEN):
            return Denial(
                DenialReason.TRADING_HALTED,
                f"trading is HALTED ({self._state.last_change.cause}); cancels only",
            )
        if self._reconciling():
            return Denial(
                DenialReason.RECONCILING,
                "reconciling orders, fills and balances with the venue; wait for it to finish",
            )
        spec = intent.spec
        product_id = spec.product_id
        product = self._products.get(product_id)
        if product is None:
            return Denial(DenialReason.UNKNOWN_PRODUCT, f"{product_id} is not a known product")
        if not product.tradable:
            return Denial(DenialReason.PRODUCT_NOT_TRADABLE, _untradable(product))
        problem = self._invalid(spec, product)
        if problem is not None:
            return Denial(DenialReason.INVALID_ORDER, problem)
        denial = _precision_and_size(spec, product)
        if denial is not None:
            return denial

        market = self._market
        age = market.data_age_s(product_id)
        if age is None:
            return Denial(DenialReason.STALE_MARKET_DATA, f"{product_id}: no live order book")
        if age > self._stale_s:
            return Denial(
                DenialReason.STALE_MARKET_DATA,
                f"{product_id} book is {age:.1f}s old > limit {self._stale_s:g}s",
            )
        mid = market.mid(product_id)
        if mid is None:
            return Denial(DenialReason.NO_MARKET_PRICE, f"{product_id}: no mid price")
        side = spec.side
        if spec.order_type is _MARKET:
            touch = market.best_ask(product_id) if side is _BUY else market.best_bid(product_id)
            if touch is None:
                return Denial(
                    DenialReason.NO_MARKET_PRICE,
                    f"{product_id}: no best {'ask' if side is _BUY else 'bid'} to value a "
                    f"market {side.value}",
                )
            price = Decimal(repr(touch))
            band_price = touch
            band_reference = mid
        else:
            price = spec.limit_price  # type: ignore[assignment]  # checked by _invalid
            band_price = float(price)
            # A stop may rest far from the market on purpose; the fat finger is a limit far
            # from its own trigger.
            band_reference = (
                float(spec.stop_price)  # type: ignore[arg-type]  # checked by _invalid
                if spec.order_type is _STOP_LIMIT
                else mid
            )

        base_size = spec.base_size
        if base_size is not None:
            size = base_size
            notional = base_size * price
        else:
            notional = spec.quote_size  # type: ignore[assignment]  # checked by _invalid
            size = notional / price
        delta = size if side is _BUY else -size

        portfolio = self._portfolio
        position = portfolio.size(product_id)
        shrinks = bool(position) and (position > 0) != (delta > 0) and size <= abs(position)
        if not shrinks:
            if state is _REDUCING:
                return Denial(
                    DenialReason.REDUCING_ONLY,
                    f"trading is REDUCING ({self._state.last_change.cause}): {side.value} "
                    f"{decimal_str(size)} with position {decimal_str(position)} does not reduce it",
                )
            if intent.reduce_only:
                return Denial(
                    DenialReason.REDUCE_ONLY_WOULD_INCREASE,
                    f"reduce-only {side.value} {decimal_str(size)} with position "
                    f"{decimal_str(position)} would leave {decimal_str(position + delta)}",
                )

        if notional < product.quote_min_size:
            return Denial(
                DenialReason.NOTIONAL_BELOW_MIN,
                f"notional {_money(notional)} < venue min {_money(product.quote_min_size)}",
            )
        if notional > self._max_order_notional:
            return Denial(
                DenialReason.NOTIONAL_ABOVE_MAX,
                f"notional {_money(notional)} > max per order {_money(self._max_order_notional)}",
            )
        if notional > product.quote_max_size:
            return Denial(
                DenialReason.NOTIONAL_ABOVE_MAX,
                f"notional {_money(notional)} > venue max {_money(product.quote_max_size)}",
            )

        if abs(band_price - band_reference) > self._band * band_reference:
            away = abs(band_price - band_reference) / band_reference * 10_000
            what = "stop" if spec.order_type is _STOP_LIMIT else "mid"
            return Denial(
                DenialReason.PRICE_BAND,
                f"price {_price(band_price)} is {away:.0f} bps from {what} "
                f"{_price(band_reference)} > band {self._band_bps} bps",
            )

        if not shrinks:
            denial = self._exposure(product_id, position, delta, price)
            if denial is not None:
                return denial

        denial = self._balance(product, side, size, notional, position)
        if denial is not None:
            return denial

        open_orders = self._open_orders()
        if open_orders >= self._max_open:
            return Denial(
                DenialReason.MAX_OPEN_ORDERS,
                f"{open_orders} open orders, limit {self._max_open}",
            )

        now = self._clock.monotonic()
        recent = self._recent
        if len(recent) == self._rate_capacity and now - recent[0] < self._rate_window_s:
            return Denial(
                DenialReason.ORDER_RATE,
                f"{self._rate_capacity} orders in the last {self._rate_window_s:g}s, limit "
                f"{self._settings.max_orders_per_s:g}/s",
            )
        if count:
            recent.append(now)
        return None

    def _invalid(self, spec: OrderSpec, product: Product) -> str | None:
        """What is missing or contradictory in the order's fields, if anything."""
        base_size = spec.base_size
        quote_size = spec.quote_size
        if (base_size is None) == (quote_size is None):
            return "give exactly one of base size and quote size"
        if (base_size if base_size is not None else quote_size) <= 0:  # type: ignore[operator]
            return "size must be positive"
        order_type = spec.order_type
        if order_type is _MARKET:
            if spec.limit_price is not None or spec.stop_price is not None:
                return "a market order takes no limit or stop price"
            if spec.post_only:
                return "a market order cannot be post-only"
            if product.limit_only:
                return f"{product.product_id} accepts limit orders only"
            return None
        if quote_size is not None:
            return "quote size is for market orders only"
        limit_price = spec.limit_price
        if limit_price is None or limit_price <= 0:
            return f"a {order_type.value} order needs a positive limit price"
        time_in_force = spec.time_in_force
        if (time_in_force is _GTD) != (spec.end_time is not None):
            return "an end time goes with GOOD_UNTIL_DATE_TIME, and only with it"
        if spec.end_time is not None and spec.end_time.timestamp() <= self._clock.time():
            return f"end time {spec.end_time.isoformat()} is in the past"
        if spec.post_only and time_in_force in _IMMEDIATE:
            return f"a post-only order cannot be {time_in_force.value}"
        if product.post_only and not spec.post_only:
            return f"{product.product_id} accepts post-only orders only"
        if order_type is _STOP_LIMIT:
            if spec.stop_price is None or spec.stop_price <= 0:
                return "a stop-limit order needs a positive stop price"
            if spec.stop_direction is None:
                return "a stop-limit order needs a stop direction"
            if time_in_force in _IMMEDIATE:
                return f"a stop-limit order cannot be {time_in_force.value}"
        elif spec.stop_price is not None or spec.stop_direction is not None:
            return "a limit order takes no stop price or direction"
        return None

    def _exposure(
        self, product_id: str, position: Decimal, delta: Decimal, price: Decimal
    ) -> Denial | None:
        """Daily loss, position and gross limits for an order that does not shrink a position."""
        portfolio = self._portfolio
        daily = portfolio.daily_pnl
        # Unknown daily P&L (a position without a mark) does not deny here: the stale-data
        # check covers this product and the triggers cover the others.
        if daily is not None and -daily >= self._daily_loss_limit:
            return Denial(
                DenialReason.DAILY_LOSS_LIMIT,
                f"daily P&L {_money(daily)} is past the loss limit "
                f"{_money(self._daily_loss_limit)}; only reducing orders",
            )
        value = abs(position + delta) * price
        if value > self._max_position:
            return Denial(
                DenialReason.POSITION_LIMIT,
                f"{product_id} position after the order {_money(value)} > limit "
                f"{_money(self._max_position)}",
            )
        gross = portfolio.gross_exposure
        current = portfolio.exposure(product_id)
        if gross is None or current is None:
            return Denial(
                DenialReason.GROSS_EXPOSURE_LIMIT,
                "gross exposure unknown: a position has no mark price",
            )
        after = gross - current + value
        if after > self._max_gross:
            return Denial(
                DenialReason.GROSS_EXPOSURE_LIMIT,
                f"gross exposure after the order {_money(after)} > limit {_money(self._max_gross)}",
            )
        return None

    def _balance(
        self, product: Product, side: Side, size: Decimal, notional: Decimal, position: Decimal
    ) -> Denial | None:
        portfolio = self._portfolio
        cash = portfolio.cash
        quote = product.quote_currency
        if cash is None or quote != portfolio.quote_currency:
            return Denial(
                DenialReason.INSUFFICIENT_BALANCE, f"{quote} balance not known (no balances yet)"
            )
        if side is _BUY:
            currency = quote
            need = notional * self._fee_factor
            held = cash
        else:
            currency = product.base_currency
            need = size
            held = position if position > 0 else _ZERO
        reserved = (
            self._reserved(currency) if self._reserved is not None else portfolio.hold(currency)
        )
        free = held - reserved
        if need > free:
            what = " with fees" if side is _BUY else ""
            return Denial(
                DenialReason.INSUFFICIENT_BALANCE,
                f"needs {decimal_str(need.normalize())} {currency}{what}, free "
                f"{decimal_str(free.normalize())} ({decimal_str(reserved.normalize())} held by "
                "open orders)",
            )
        return None

    # ------------------------------------------------------------------ gauges

    def gauges(self) -> list[LimitGauge]:
        """Usage of each limit, for the UI's gauges."""
        settings = self._settings
        portfolio = self._portfolio
        quote = portfolio.quote_currency
        now = self._clock.monotonic()
        in_window = sum(1 for at in self._recent if now - at < self._rate_window_s)
        daily = portfolio.daily_pnl
        position_used, position_product = self._largest_position()
        age_used, age_product = self._oldest_data()
        return [
            LimitGauge(
                GaugeName.ORDER_RATE,
                Decimal(in_window),
                Decimal(self._rate_capacity),
                f"orders/{self._rate_window_s:g}s",
            ),
            LimitGauge(
                GaugeName.OPEN_ORDERS,
                Decimal(self._open_orders()),
                Decimal(self._max_open),
                "orders",
            ),
            LimitGauge(
                GaugeName.POSITION, position_used, self._max_position, quote, position_product
            ),
            LimitGauge(GaugeName.GROSS_EXPOSURE, portfolio.gross_exposure, self._max_gross, quote),
            LimitGauge(
                GaugeName.DAILY_LOSS,
                None if daily is None else max(_ZERO, -daily),
                self._daily_loss_limit,
                quote,
            ),
            LimitGauge(GaugeName.DRAWDOWN, portfolio.drawdown, settings.max_drawdown, quote),
            LimitGauge(
                GaugeName.DATA_AGE,
                age_used,
                Decimal(repr(settings.stale_market_data_s)),
                "s",
                age_product,
            ),
        ]

    def _largest_position(self) -> tuple[Decimal | None, str | None]:
        """The largest position value and its product; (None, product) if one is unknown."""
        largest = _ZERO
        which: str | None = None
        for position in self._portfolio.positions():
            notional = position.notional
            if notional is None:
                return None, position.product_id
            if abs(notional) > largest:
                largest, which = abs(notional), position.product_id
        return largest, which

    def _oldest_data(self) -> tuple[Decimal | None, str | None]:
        """The oldest book among the gate's products; (None, product) if one has none."""
        oldest = -1.0
        which: str | None = None
        for product_id in self._products:
            age = self._market.data_age_s(product_id)
            if age is None:
                return None, product_id
            if age > oldest:
                oldest, which = age, product_id
        if which is None:
            return None, None
        return Decimal(f"{oldest:.3f}"), which


def _untradable(product: Product) -> str:
    flags = [
        name
        for name, value in (
            ("trading disabled", product.trading_disabled),
            ("cancel only", product.cancel_only),
            ("auction mode", product.auction_mode),
        )
        if value
    ]
    if product.status != "online":
        flags.insert(0, f"status {product.status}")
    return f"{product.product_id} is not tradable: {', '.join(flags)}"


def _precision_and_size(spec: OrderSpec, product: Product) -> Denial | None:
    limit_price = spec.limit_price
    if limit_price is not None and not product.is_price_on_tick(limit_price):
        return Denial(
            DenialReason.PRICE_PRECISION,
            f"limit price {decimal_str(limit_price)} is not a multiple of the tick "
            f"{decimal_str(product.price_increment)}",
        )
    stop_price = spec.stop_price
    if stop_price is not None and not product.is_price_on_tick(stop_price):
        return Denial(
            DenialReason.PRICE_PRECISION,
            f"stop price {decimal_str(stop_price)} is not a multiple of the tick "
            f"{decimal_str(product.price_increment)}",
        )
    base_size = spec.base_size
    if base_size is None:
        quote_size = spec.quote_size
        if quote_size is not None and not is_multiple(quote_size, product.quote_increment):
            return Denial(
                DenialReason.SIZE_PRECISION,
                f"quote size {decimal_str(quote_size)} is not a multiple of "
                f"{decimal_str(product.quote_increment)}",
            )
        return None
    if not product.is_size_on_increment(base_size):
        return Denial(
            DenialReason.SIZE_PRECISION,
            f"size {decimal_str(base_size)} is not a multiple of the increment "
            f"{decimal_str(product.base_increment)}",
        )
    if base_size < product.base_min_size:
        return Denial(
            DenialReason.SIZE_BELOW_MIN,
            f"size {decimal_str(base_size)} < min {decimal_str(product.base_min_size)}",
        )
    if base_size > product.base_max_size:
        return Denial(
            DenialReason.SIZE_ABOVE_MAX,
            f"size {decimal_str(base_size)} > max {decimal_str(product.base_max_size)}",
        )
    return None


# ---------------------------------------------------------------------------- triggers


class TriggerName(StrEnum):
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    MARKET_DATA_STALE = "market_data_stale"
    USER_STREAM_DOWN = "user_stream_down"
    REJECT_STORM = "reject_storm"


@dataclass(frozen=True, slots=True)
class TrippedTrigger:
    name: TriggerName
    cause: str  # one line with the numbers, for the banner and the journal
    state: TradingState  # the state it calls for

    @property
    def source(self) -> str:
        """The ``source`` for ``TradingStateMachine.set``."""
        return f"trigger:{self.name.value}"


class AutomaticTriggers:
    """Which automatic triggers are tripped right now. Pure: it reads, it never acts.

    Daily loss calls for REDUCING (no new risk today; closing stays possible); the others call
    for HALTED: a drawdown from the peak, or trading blind (market data or the user stream down
    too long) or against a venue that keeps refusing us. The emergency manager acts.
    """

    def __init__(self, settings: RiskSettings) -> None:
        self._settings = settings

    def evaluate(
        self,
        portfolio: Portfolio,
        market_health: Mapping[str, BookHealth],
        *,
        user_stream_down_since: float | None,
        reject_times: Sequence[float],
        now: float,
    ) -> list[TrippedTrigger]:
        """``now``, ``user_stream_down_since`` (None: up), ``reject_times``: monotonic seconds."""
        settings = self._settings
        tripped: list[TrippedTrigger] = []
        daily = portfolio.daily_pnl
        if daily is not None and -daily >= settings.daily_loss_limit:
            tripped.append(
                TrippedTrigger(
                    TriggerName.DAILY_LOSS,
                    f"daily loss {_money(-daily)} >= limit {_money(settings.daily_loss_limit)}",
                    _REDUCING,
                )
            )
        drawdown = portfolio.drawdown
        if drawdown is not None and drawdown >= settings.max_drawdown:
            tripped.append(
                TrippedTrigger(
                    TriggerName.DRAWDOWN,
                    f"drawdown {_money(drawdown)} from peak >= limit "
                    f"{_money(settings.max_drawdown)}",
                    _HALTED,
                )
            )
        bound = settings.market_data_outage_s
        for product_id in sorted(market_health):
            health = market_health[product_id]
            down_for = now - health.since
            if health.state is not BookState.LIVE and down_for > bound:
                why = f": {health.reason}" if health.reason else ""
                tripped.append(
                    TrippedTrigger(
                        TriggerName.MARKET_DATA_STALE,
                        f"{product_id} market data {health.state.value} for {down_for:.0f}s > "
                        f"{bound:g}s{why}",
                        _HALTED,
                    )
                )
        if user_stream_down_since is not None:
            down_for = now - user_stream_down_since
            if down_for > settings.user_stream_outage_s:
                tripped.append(
                    TrippedTrigger(
                        TriggerName.USER_STREAM_DOWN,
                        f"user stream down for {down_for:.0f}s > "
                        f"{settings.user_stream_outage_s:g}s",
                        _HALTED,
                    )
                )
        window = settings.reject_storm_window_s
        rejects = sum(1 for at in reject_times if now - at < window)
        if rejects >= settings.reject_storm_count:
            tripped.append(
                TrippedTrigger(
                    TriggerName.REJECT_STORM,
                    f"{rejects} rejects in the last {window:g}s >= {settings.reject_storm_count}",
                    _HALTED,
                )
            )
        return tripped
