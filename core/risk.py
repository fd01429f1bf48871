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
8. no mid, or no touch to value a market order -> NO_MARKET_PRICE; a market order the
   visible book cannot fill -> INSUFFICIENT_BOOK_DEPTH
9. state REDUCING and the order does not shrink a position -> REDUCING_ONLY
10. a reduce-only order that does not shrink a position -> REDUCE_ONLY_WOULD_INCREASE
11. notional within the product's min and the per-order max -> NOTIONAL_BELOW_MIN / _ABOVE_MAX
12. price band around the mid (fat finger) -> PRICE_BAND
13. daily loss limit reached, for orders that do not shrink a position -> DAILY_LOSS_LIMIT
14. resulting position value per product, working orders on the order's side included ->
    POSITION_LIMIT (not for shrinking orders)
15. resulting gross exposure, every working order included -> GROSS_EXPOSURE_LIMIT (not for
    shrinking orders)
16. free balance, net of what working orders need -> INSUFFICIENT_BALANCE
17. open orders (UNKNOWN and PENDING_CANCEL included) -> MAX_OPEN_ORDERS
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
price. A market order is walked through the visible book (asks for a buy, bids for a sell)
and valued at the worst level it reaches; its notional is what the walk spends. It is refused
INSUFFICIENT_BOOK_DEPTH when the visible book cannot fill it, PRICE_BAND when the walk goes
past the band, NOTIONAL_ABOVE_MAX when the walk costs more than the cap: the gate's own
market protection, as Coinbase has one.

Working orders count (docs/design.md §4): every order of ours that may still trade
(working, PENDING_CANCEL, UNKNOWN) is assumed to fill completely, per product and per side.
An order grows the position if, after every working order on its side and itself, the
position is larger; the position, gross exposure and free balance limits are checked on that
worst case. Free balance is what the venue reported (total) minus our working orders' needs,
plus any part of the venue's hold our orders did not explain at the last refresh.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from core.clock import Clock
from core.config import RiskSettings
from core.denials import Denial, DenialReason
from core.feed_state import BookStatus
from core.market import BookHealth
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
from core.order_rules import shape_problems
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

    ``latch`` may be called from any thread (the terminal's key reader latches the kill switch
    without waiting for the event loop; docs/design.md, the kill switch). Every change to the
    state therefore happens under one lock, and a looser ``set`` that is overtaken by a latch
    while it stores itself leaves the latch standing: a kill is never undone by a resume that
    began before it.
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
        self._lock = threading.Lock()  # guards _last/_version: latch() may come from any thread

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
        with self._lock:
            before = self._last
            tighter = state.strictness >= before.state.strictness
            if tighter:
                self._apply(change)
        if tighter:
            self._store.save_trading_state(change, durable=durable)
            return change
        self._store.save_trading_state(change, durable=durable)
        with self._lock:
            if self._last is before:
                self._apply(change)
            # else a latch (the kill key, on another thread) came in while this looser state
            # was being stored: the latch stands, and the kill it belongs to stores it again.
        return change

    def tighten(
        self, state: TradingState, cause: str, source: str, *, durable: bool = True
    ) -> TradingStateChange | None:
        """Switch to ``state`` only if it is stricter than the current one, then store it;
        None (nothing changed) if it is not. The check and the switch are one step under the
        lock, so a HALT latched by another thread just before is never loosened (a trigger's
        REDUCING after a kill key)."""
        if not cause or not source:
            raise ValueError("a trading state change needs a cause and a source")
        change = TradingStateChange(state, cause, source, self._clock.time())
        with self._lock:
            if state.strictness <= self._last.state.strictness:
                return None
            self._apply(change)
        self._store.save_trading_state(change, durable=durable)
        return change

    def latch(self, state: TradingState, cause: str, source: str) -> TradingStateChange:
        """Tighten the state in memory only, at once (the kill switch: nothing on disk may
        delay it). ``persist()`` writes it; until then a crash restarts from the stored one.
        Safe from any thread."""
        if not cause or not source:
            raise ValueError("a trading state change needs a cause and a source")
        change = TradingStateChange(state, cause, source, self._clock.time())
        with self._lock:
            if state.strictness < self._last.state.strictness:
                raise ValueError("only a tighter state can be latched without storing it")
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

    def levels(self, product_id: str, side: Side) -> Sequence[tuple[float, float]]:
        """The visible levels a market order on ``side`` would take (asks for a buy, bids for
        a sell), best first, as (price, size); empty when there is no LIVE book."""
        ...


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """One of our orders that may still trade, as the gate counts it: in the worst case it
    fills completely (working, PENDING_CANCEL and UNKNOWN orders alike).

    Exactly one of ``remaining_size`` (base) and ``remaining_quote`` (a market order sized in
    quote) is set. ``price`` is the limit price; None for a market order, which the gate values
    at the edge of the price band (the furthest a market order it allowed could walk).
    """

    client_order_id: str
    product_id: str
    side: Side
    remaining_size: Decimal | None
    remaining_quote: Decimal | None
    price: Decimal | None


class OpenOrderLike(Protocol):
    """What ``working_orders_of`` reads from an open order (``core.order_state.ManagedOrder``)."""

    @property
    def client_order_id(self) -> str: ...

    @property
    def intent(self) -> OrderIntent: ...

    @property
    def filled_size(self) -> Decimal: ...

    @property
    def filled_value(self) -> Decimal: ...


def working_orders_of(open_orders: Iterable[OpenOrderLike]) -> list[WorkingOrder]:
    """The gate's view of the order manager's open orders (what is left of each)."""
    working: list[WorkingOrder] = []
    for order in open_orders:
        spec = order.intent.spec
        if spec.base_size is not None:
            left = spec.base_size - order.filled_size
            if left > 0:
                working.append(
                    WorkingOrder(
                        order.client_order_id,
                        spec.product_id,
                        spec.side,
                        left,
                        None,
                        spec.limit_price,
                    )
                )
        elif spec.quote_size is not None:
            left = spec.quote_size - order.filled_value
            if left > 0:
                working.append(
                    WorkingOrder(
                        order.client_order_id, spec.product_id, spec.side, None, left, None
                    )
                )
    return working


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

    ``working_orders()`` is the narrow view of the order manager's open orders (the engine
    passes ``working_orders_of(orders.open_orders())``): what each may still trade, counted
    as if it fills for the position, gross exposure and free-balance checks. ``reserved``
    (currency) overrides what is held for open orders (tests); with neither, the gate uses
    the venue's ``hold`` from the last balances, which misses orders placed since.
    ``fee_allowance_rate`` is the fee share a buy must leave room for.
    ``check_resend`` is the check for re-sending our own UNKNOWN order (see its doc).
    """

    __slots__ = (
        "_balances_seen",
        "_band",
        "_band_bps",
        "_band_fraction",
        "_clock",
        "_daily_loss_limit",
        "_fee_factor",
        "_market",
        "_max_gross",
        "_max_open",
        "_max_order_notional",
        "_max_position",
        "_open_orders",
        "_ours_at_balances",
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
        "_working",
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
        working_orders: Callable[[], Iterable[WorkingOrder]] | None = None,
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
        self._working = working_orders
        # What our working orders reserved when the portfolio last took balances: the part of
        # the venue's hold they do not explain is held by something else (see _reservations).
        self._balances_seen = -1
        self._ours_at_balances: dict[str, Decimal] = {}
        # Constants of the hot path, computed once.
        self._max_order_notional = settings.max_order_notional
        self._max_position = settings.max_position_notional
        self._max_gross = settings.max_gross_exposure
        self._daily_loss_limit = settings.daily_loss_limit
        self._band_bps = settings.price_band_bps
        # The band is a fat-finger screen: a float comparison is precise enough and 10x cheaper.
        self._band = float(settings.price_band_bps / _BPS)
        self._band_fraction = settings.price_band_bps / _BPS
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

    def check_resend(self, intent: OrderIntent, client_order_id: str) -> Denial | None:
        """``check`` for the re-send of our own order ``client_order_id`` (an UNKNOWN order the
        venue proved absent): the same checks against the state now (it may be REDUCING or
        HALTED since the first send), without counting the order itself as working twice.
        An allowed re-send counts in the rate: it is a request to the venue."""
        return self._decide(intent, count=True, exclude=client_order_id)

    def preview(self, intent: OrderIntent) -> Denial | None:
        """What ``check`` would answer now, without counting the order in the rate.

        For the order ticket, which shows the gate's decision while the trader types: a
        preview sends nothing, so it must not spend the rate budget of the real order.
        """
        return self._decide(intent, count=False)

    def _decide(
        self, intent: OrderIntent, *, count: bool, exclude: str | None = None
    ) -> Denial | None:
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
        walked: _Walk | None = None
        if spec.order_type is _MARKET:
            levels = market.levels(product_id, side)
            if not levels:
                return Denial(
                    DenialReason.NO_MARKET_PRICE,
                    f"{product_id}: no best {'ask' if side is _BUY else 'bid'} to value a "
                    f"market {side.value}",
                )
            walked = _walk(levels, spec.base_size, spec.quote_size)
            if walked is None:
                asked = (
                    f"{decimal_str(spec.base_size)} {product.base_currency}"
                    if spec.base_size is not None
                    else f"{decimal_str(spec.quote_size)} {product.quote_currency}"  # type: ignore[arg-type]
                )
                return Denial(
                    DenialReason.INSUFFICIENT_BOOK_DEPTH,
                    f"market {side.value} of {asked}: the visible "
                    f"{'asks' if side is _BUY else 'bids'} of {product_id} cannot fill it "
                    f"({len(levels)} levels seen)",
                )
            # Valued at the worst level the walk reaches: that is where the last part fills.
            price = walked.worst_price
            band_price = float(walked.worst_price)
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
        if walked is not None:
            size = walked.size
            notional = walked.notional
        elif base_size is not None:
            size = base_size
            notional = base_size * price
        else:
            notional = spec.quote_size  # type: ignore[assignment]  # checked by _invalid
            size = notional / price

        portfolio = self._portfolio
        position = portfolio.size(product_id)
        tally = self._tally(exclude)
        working = tally.products.get(product_id, _NO_WORKING)
        # Worst case: every working order on this side fills before this one does.
        same_side = working.buys if side is _BUY else working.sells
        after = position + same_side + size if side is _BUY else position - same_side - size
        shrinks = (position > 0 and side is not _BUY and after >= 0) or (
            position < 0 and side is _BUY and after <= 0
        )
        if not shrinks:
            pending = (
                f" and {decimal_str(same_side)} on working {side.value.lower()}s"
                if same_side
                else ""
            )
            if state is _REDUCING:
                return Denial(
                    DenialReason.REDUCING_ONLY,
                    f"trading is REDUCING ({self._state.last_change.cause}): {side.value} "
                    f"{decimal_str(size)} with position {decimal_str(position)}{pending} "
                    "does not reduce it",
                )
            if intent.reduce_only:
                return Denial(
                    DenialReason.REDUCE_ONLY_WOULD_INCREASE,
                    f"reduce-only {side.value} {decimal_str(size)} with position "
                    f"{decimal_str(position)}{pending} would leave {decimal_str(after)}",
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
            denial = self._exposure(product_id, position, side, after, price, tally)
            if denial is not None:
                return denial

        denial = self._balance(product, side, size, notional, position, tally)
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
        """What is missing or contradictory in the order's fields, if anything: the shared
        order rules (core/order_rules.py), so the gate refuses whatever the encoder cannot send.
        """
        problems = shape_problems(spec, product, now=self._clock.time())
        return str(problems[0]) if problems else None

    def _tally(self, exclude: str | None) -> _Tally:
        """What our working orders add in the worst case (all of them fill), per product and
        per currency; ``exclude``: an order not to count (the one being re-sent)."""
        tally = _Tally()
        if self._working is None:
            return tally
        products = self._products
        for order in self._working():
            if order.client_order_id == exclude:
                continue
            product_id = order.product_id
            product = products.get(product_id)
            if product is not None:
                base, quote = product.base_currency, product.quote_currency
            else:
                base, _, quote = product_id.partition("-")
            price_high = price_low = order.price
            if price_high is None:
                # A market order: at most the band's edge away from the mid, the furthest a
                # market order this gate allowed can walk.
                reference = self._reference_price(product_id)
                if reference is None:
                    tally.unvalued = tally.unvalued or order.client_order_id
                    continue
                price_high = reference * (1 + self._band_fraction)
                price_low = reference * (1 - self._band_fraction)
            assert price_low is not None
            if order.remaining_size is not None:
                size = order.remaining_size
                spend = size * price_high * self._fee_factor
            else:
                spend = order.remaining_quote or _ZERO
                size = spend / price_low if price_low > 0 else _ZERO
            totals = tally.products.get(product_id)
            if totals is None:
                totals = tally.products[product_id] = _Working()
            totals.price = max(totals.price, price_high)
            reserved = tally.reserved
            if order.side is _BUY:
                totals.buys += size
                reserved[quote] = reserved.get(quote, _ZERO) + spend
            else:
                totals.sells += size
                reserved[base] = reserved.get(base, _ZERO) + size
        return tally

    def _reference_price(self, product_id: str) -> Decimal | None:
        mid = self._market.mid(product_id)
        if mid is not None:
            return Decimal(repr(mid))
        return self._portfolio.mark_price(product_id)

    def _worst_value(self, product_id: str, working: _Working) -> Decimal | None:
        """The larger of |position| if every working buy fills and if every working sell
        fills, valued at the mark (or, flat without a mark, at the working orders' price)."""
        position = self._portfolio.size(product_id)
        worst = max(abs(position + working.buys), abs(position - working.sells))
        if not worst:
            return _ZERO
        mark = self._portfolio.mark_price(product_id)
        if mark is None:
            if position:
                return None
            mark = working.price
        return worst * mark

    def _exposure(
        self,
        product_id: str,
        position: Decimal,
        side: Side,
        after: Decimal,
        price: Decimal,
        tally: _Tally,
    ) -> Denial | None:
        """Daily loss, position and gross limits for an order that does not shrink a position.

        ``after`` is the position if this order and every working order on its side fill.
        """
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
        working = tally.products.get(product_id, _NO_WORKING)
        value = abs(after) * price
        if value > self._max_position:
            on_working = working.buys if side is _BUY else working.sells
            with_working = (
                f" and {decimal_str(on_working)} on working {side.value.lower()}s"
                if on_working
                else ""
            )
            return Denial(
                DenialReason.POSITION_LIMIT,
                f"{product_id} position after the order{with_working} {_money(value)} > limit "
                f"{_money(self._max_position)}",
            )
        if tally.unvalued is not None:
            return Denial(
                DenialReason.GROSS_EXPOSURE_LIMIT,
                f"gross exposure unknown: working order {tally.unvalued} has no price",
            )
        gross = portfolio.gross_exposure
        current = portfolio.exposure(product_id)
        if gross is None or current is None:
            return Denial(
                DenialReason.GROSS_EXPOSURE_LIMIT,
                "gross exposure unknown: a position has no mark price",
            )
        # This product: the worse of its two sides, this order included.
        other_side = position - working.sells if side is _BUY else position + working.buys
        after_gross = gross - current + max(abs(after), abs(other_side)) * price
        for other_id, other in tally.products.items():
            if other_id == product_id:
                continue
            worst = self._worst_value(other_id, other)
            held = portfolio.exposure(other_id)
            if worst is None or held is None:
                return Denial(
                    DenialReason.GROSS_EXPOSURE_LIMIT,
                    f"gross exposure unknown: {other_id} has working orders and no mark price",
                )
            after_gross += worst - held
        if after_gross > self._max_gross:
            pending = " and every working order" if tally.products else ""
            return Denial(
                DenialReason.GROSS_EXPOSURE_LIMIT,
                f"gross exposure after the order{pending} {_money(after_gross)} > limit "
                f"{_money(self._max_gross)}",
            )
        return None

    def _reservations(self, tally: _Tally, currency: str) -> Decimal:
        """What is not free in ``currency``: our working orders' worst-case needs, plus the
        part of the venue's hold at the last balances our orders did not explain (orders
        placed elsewhere). Our orders are counted once whether or not the venue's hold at
        the last refresh already included them, and orders sent since are counted at once.
        """
        portfolio = self._portfolio
        ours = tally.reserved.get(currency, _ZERO)
        if portfolio.balances_version != self._balances_seen:
            # The first check after new balances: the working orders now are those the
            # refresh saw (every order placed since passes this check first).
            self._balances_seen = portfolio.balances_version
            self._ours_at_balances = dict(tally.reserved)
        unexplained = portfolio.hold(currency) - self._ours_at_balances.get(currency, _ZERO)
        return ours + max(_ZERO, unexplained)

    def _balance(
        self,
        product: Product,
        side: Side,
        size: Decimal,
        notional: Decimal,
        position: Decimal,
        tally: _Tally,
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
        if self._reserved is not None:
            reserved = self._reserved(currency)
        elif self._working is not None:
            if side is _BUY and tally.unvalued is not None:
                return Denial(
                    DenialReason.INSUFFICIENT_BALANCE,
                    f"free {currency} unknown: working order {tally.unvalued} has no price",
                )
            reserved = self._reservations(tally, currency)
        else:
            reserved = portfolio.hold(currency)
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

    # ------------------------------------------------------------------ limits for resume

    def breached_limits(self) -> list[str]:
        """The P&L limits past their bound now, one line each with the numbers (empty when
        none is). RESUME is refused while any is: after a daily-loss or drawdown trigger,
        trading resumes only once the loss is back within the limit (a new day, or a gain).
        The drawdown is measured from the all-time P&L peak: a drawdown stop is a hard stop
        that lifts only when P&L recovers or the trader raises the limit in the settings.
        An unknown P&L (a position without a mark) is not reported as breached here; the
        triggers act as soon as it is known again."""
        portfolio = self._portfolio
        breached: list[str] = []
        daily = portfolio.daily_pnl
        if daily is not None and -daily >= self._daily_loss_limit:
            breached.append(
                f"daily loss {_money(-daily)} >= limit {_money(self._daily_loss_limit)} "
                "(resets at the day boundary)"
            )
        drawdown = portfolio.drawdown
        if drawdown is not None and drawdown >= self._settings.max_drawdown:
            breached.append(
                f"drawdown {_money(drawdown)} from peak >= limit "
                f"{_money(self._settings.max_drawdown)} (lifts when P&L recovers, or with a "
                "higher risk.max_drawdown)"
            )
        return breached

    # ------------------------------------------------------------------ gauges

    def gauges(self) -> list[LimitGauge]:
        """Usage of each limit, for the UI's gauges."""
        settings = self._settings
        portfolio = self._portfolio
        quote = portfolio.quote_currency
        now = self._clock.monotonic()
        in_window = sum(1 for at in self._recent if now - at < self._rate_window_s)
        daily = portfolio.daily_pnl
        tally = self._tally(None)
        position_used, position_product = self._largest_position(tally)
        gross_used = self._worst_gross(tally)
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
            LimitGauge(GaugeName.GROSS_EXPOSURE, gross_used, self._max_gross, quote),
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

    def _largest_position(self, tally: _Tally) -> tuple[Decimal | None, str | None]:
        """The largest position value, if every working order on its worse side fills, and
        its product; (None, product) if one is unknown."""
        largest = _ZERO
        which: str | None = None
        for position in self._portfolio.positions():
            notional = position.notional
            if notional is None:
                return None, position.product_id
            if abs(notional) > largest:
                largest, which = abs(notional), position.product_id
        for product_id, working in tally.products.items():
            worst = self._worst_value(product_id, working)
            if worst is None:
                return None, product_id
            if worst > largest:
                largest, which = worst, product_id
        return largest, which

    def _worst_gross(self, tally: _Tally) -> Decimal | None:
        """Gross exposure if every working order fills on its product's worse side."""
        gross = self._portfolio.gross_exposure
        if gross is None or tally.unvalued is not None:
            return None
        for product_id, working in tally.products.items():
            worst = self._worst_value(product_id, working)
            held = self._portfolio.exposure(product_id)
            if worst is None or held is None:
                return None
            gross += worst - held
        return gross

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


@dataclass(slots=True)
class _Working:
    """Worst-case base sizes of one product's working orders, per side."""

    buys: Decimal = _ZERO
    sells: Decimal = _ZERO
    price: Decimal = _ZERO  # the highest price they were valued at (for a flat product)


_NO_WORKING = _Working()


@dataclass(slots=True)
class _Tally:
    products: dict[str, _Working] = field(default_factory=dict)
    reserved: dict[str, Decimal] = field(default_factory=dict)  # per currency, worst case
    unvalued: str | None = None  # a working market order that could not be valued


@dataclass(frozen=True, slots=True)
class _Walk:
    """A market order walked through the visible book."""

    size: Decimal  # base filled
    notional: Decimal  # quote spent / received
    worst_price: Decimal  # the last level reached


def _walk(
    levels: Sequence[tuple[float, float]], base_size: Decimal | None, quote_size: Decimal | None
) -> _Walk | None:
    """Fill ``base_size`` (or spend ``quote_size``) level by level; None if the visible book
    runs out first. Like Coinbase's market protection, the gate refuses a market order whose
    walk goes past the price band, so the walk is valued, never the touch alone."""
    size = _ZERO
    notional = _ZERO
    for raw_price, raw_size in levels:
        if raw_size <= 0:
            continue
        price = Decimal(repr(raw_price))
        available = Decimal(repr(raw_size))
        if base_size is not None:
            if available >= base_size - size:
                return _Walk(base_size, notional + (base_size - size) * price, price)
        else:
            assert quote_size is not None
            left = quote_size - notional
            if available * price >= left:
                return _Walk(size + left / price, quote_size, price)
        size += available
        notional += available * price
    return None


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
            if health.state is not BookStatus.LIVE and down_for > bound:
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
