"""``SimExchange``: a Coinbase-like spot exchange that runs in-process, synchronously.

It validates orders with Coinbase's failure codes, matches them with price-time priority
(``core.sim.matching``), settles fills through holds and fees (``core.sim.accounts``) and tells
listeners about every book change, trade, fill and order change as it happens. It never does
I/O and never awaits; given (seed, clock, call order) everything it does is deterministic.

Rules that Coinbase does not spell out, chosen to behave like it and written down here:

Rejections, checked in this order; the first failing check answers. ``error`` and
``new_order_failure_reason`` carry the first code, ``preview_failure_reason`` the second:
    unknown product            INVALID_PRODUCT_ID               PREVIEW_INVALID_PRODUCT_ID
    product not tradable       UNTRADABLE_PRODUCT               PREVIEW_UNTRADABLE_PRODUCT
    bad field combination      UNSUPPORTED_ORDER_CONFIGURATION  PREVIEW_INVALID_ORDER_CONFIG
      (unknown config, quote_size on a non-market order, both or neither size on a market
      order, a price on a market order, stop fields without a stop config, end_time without
      GTD, post_only outside limit GTC/GTD)
    invalid side               INVALID_SIDE                     PREVIEW_INVALID_SIDE
    post_only on FOK           POST_ONLY_NOT_ALLOWED_WITH_FOK   PREVIEW_POST_ONLY_NOT_ALLOWED_WITH_FOK
    base size off increment    INVALID_SIZE_PRECISION           PREVIEW_INVALID_SIZE_PRECISION
    quote size off increment   INVALID_SIZE_PRECISION           PREVIEW_INVALID_QUOTE_SIZE_PRECISION
    limit price missing or <=0 INVALID_LIMIT_PRICE              PREVIEW_INVALID_LIMIT_PRICE
    limit price off tick       INVALID_PRICE_PRECISION          PREVIEW_INVALID_PRICE_PRECISION
    stop price missing, <= 0, or no stop_direction
                               UNKNOWN_FAILURE_REASON           PREVIEW_INVALID_STOP_PRICE
    stop price off tick        INVALID_PRICE_PRECISION          PREVIEW_INVALID_STOP_PRICE_PRECISION
    GTD without end_time       GTD_ORDERS_MUST_HAVE_END_TIME    PREVIEW_GTD_ORDERS_MUST_HAVE_END_TIME
    end_time not in the future END_TIME_IS_IN_THE_PAST          PREVIEW_END_TIME_IS_IN_THE_PAST
    base size < min / > max    UNKNOWN_FAILURE_REASON           PREVIEW_INVALID_BASE_SIZE_TOO_SMALL / _TOO_LARGE
    quote size, or limit notional (price x size), < quote_min_size / > quote_max_size
                               UNKNOWN_FAILURE_REASON           PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL / _TOO_LARGE
    stop already reached (STOP_UP with stop <= last trade, STOP_DOWN with stop >= last trade)
                               UNKNOWN_FAILURE_REASON           PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE / _ABOVE_
    post-only would cross      INVALID_LIMIT_PRICE_POST_ONLY    PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY
    market order, empty book   INVALID_NO_LIQUIDITY             PREVIEW_INVALID_NO_LIQUIDITY
    not enough available       INSUFFICIENT_FUND                PREVIEW_INSUFFICIENT_FUND
    Checks that Coinbase reports only as a preview reason (sizes, notional, stop price) carry
    ``UNKNOWN_FAILURE_REASON`` as error, as Coinbase's own answers do. ``message`` and
    ``error_details`` say what was wrong in words.

Holds
    A buy holds quote: a limit or stop-limit buy ``limit_price * base_size * (1 + fee rate)``
    with the higher of its maker and taker rates (the worst fee it can pay); a market buy by
    quote its ``quote_size``; a market buy by base
    the cost of walking the book now, fees included. A sell holds base: its ``base_size``, or
    for a market sell by quote the base that walking the book now needs. Each fill spends from
    the hold and gives back what the better price or the maker fee saved; an order that ends
    releases what it still holds. Fee rates are fixed when an order is placed.

Market orders
    A market buy by ``quote_size`` spends at most ``quote_size`` INCLUDING the taker fee, as
    Coinbase does: at each level it buys the most whole base increments whose cost plus fee
    fits in what is left. A market sell by ``quote_size`` sells base until its gross proceeds
    would exceed ``quote_size``; the fee comes out of the proceeds. A market order against an
    empty opposite side is rejected (INVALID_NO_LIQUIDITY); one that empties the book before
    it is done ends CANCELLED with its partial fills (like an IOC remainder), and otherwise
    ends FILLED. Market-order protection: it fills no further than ``market_protection``
    (10%) from the touch it found; reaching that ends it CANCELLED with its fills.

Order life
    Accepted orders are OPEN at once (no PENDING stage: there is no network in between). IOC
    and FOK remainders end CANCELLED; a FOK that cannot fill completely ends CANCELLED with no
    fill. A stop-limit rests outside the book as OPEN / STOP_PENDING; when a trade prints at
    or through its stop (STOP_UP: price >= stop, STOP_DOWN: price <= stop) it becomes
    STOP_TRIGGERED, keeps order_type STOP_LIMIT (as Coinbase reports it) and enters the book
    as a limit order, taking liquidity first if it crosses. GTD orders (and GTD stop-limits)
    end EXPIRED once the clock reaches ``end_time``: ``expire_orders()`` does it, and so does
    every ``create_order`` before it matches. Self-trades are allowed (no self-trade
    prevention). Idempotency: (user_id, client_order_id) of an accepted order answers a repeat
    with the original order; a rejected request leaves nothing behind.

Events, per create_order / cancel / expiry, in this order
    the new order (OPEN); then for each match: on_book_change (the maker's level), on_trade,
    on_fill + on_order_update for the maker, on_fill + on_order_update for the taker; then the
    taker's final state (on_book_change when it rests, on_order_update when it ended without
    a fill that said so); then stops triggered by those trades, in placement order. Listeners
    receive the engine's live ``SimOrder`` object: read it during the call, do not keep it.

History is bounded so a long demo does not grow without end: per user the newest
``history_limit`` finished orders and fills are kept (open orders always), per product the
newest ``trade_history`` trades and ``candle_minutes`` one-minute candles.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import islice

from core.clock import Clock
from core.model import ExchangeOrderStatus, Product, Side, StopDirection
from core.sim.accounts import FEE_USER_ID, InsufficientFunds, Ledger
from core.sim.matching import BookMatch, OrderBook
from core.sim.products import default_product_specs
from core.sim.types import (
    ORDER_CONFIG_KINDS,
    SimAccount,
    SimCancelResult,
    SimCandle,
    SimFill,
    SimListener,
    SimOrder,
    SimOrderRequest,
    SimOrderResult,
    SimProductSpec,
    SimTicker,
    SimTrade,
)

__all__ = ["FEE_USER_ID", "MARKET_PROTECTION", "SimExchange"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
_OPEN = ExchangeOrderStatus.OPEN
_FILLED = ExchangeOrderStatus.FILLED
_CANCELLED = ExchangeOrderStatus.CANCELLED
_EXPIRED = ExchangeOrderStatus.EXPIRED
_BUY = Side.BUY
_UNKNOWN_FAILURE = "UNKNOWN_FAILURE_REASON"
_MARKET_KIND = "market_market_ioc"
# Coinbase's market-order protection: a market order fills no further than this share of the
# touch (the best opposite price when it arrives) from it; the rest is cancelled.
MARKET_PROTECTION = Decimal("0.10")
PROTECTION_REASON = "Market order protection: no fills further from the touch"
_TIME_IN_FORCE = {
    "market_market_ioc": "IMMEDIATE_OR_CANCEL",
    "sor_limit_ioc": "IMMEDIATE_OR_CANCEL",
    "limit_limit_gtc": "GOOD_UNTIL_CANCELLED",
    "limit_limit_gtd": "GOOD_UNTIL_DATE_TIME",
    "limit_limit_fok": "FILL_OR_KILL",
    "stop_limit_stop_limit_gtc": "GOOD_UNTIL_CANCELLED",
    "stop_limit_stop_limit_gtd": "GOOD_UNTIL_DATE_TIME",
}
_POST_ONLY_KINDS = frozenset({"limit_limit_gtc", "limit_limit_gtd"})
_ORDER_TYPE = {kind: "LIMIT" for kind in ORDER_CONFIG_KINDS} | {
    "market_market_ioc": "MARKET",
    "stop_limit_stop_limit_gtc": "STOP_LIMIT",
    "stop_limit_stop_limit_gtd": "STOP_LIMIT",
}


class _Rejected(Exception):
    """A create-order request failed validation; carries Coinbase's codes."""

    def __init__(self, error: str, preview: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.preview = preview
        self.message = message

    def result(self) -> SimOrderResult:
        return SimOrderResult(
            success=False,
            order=None,
            error=self.error,
            message=self.message,
            error_details=self.message,
            preview_failure_reason=self.preview,
            new_order_failure_reason=self.error,
        )


class _Live:
    """Engine-side state of an order that can still trade."""

    __slots__ = (
        "hold_currency",
        "hold_per_lot",
        "lots_left",
        "maker_rate",
        "market",
        "order",
        "quote_left",
        "resting",
        "stop_ticks",
        "taker_rate",
        "ticks",
    )

    def __init__(
        self,
        order: SimOrder,
        market: _Market,
        *,
        ticks: int | None,
        lots_left: int | None,
        quote_left: Decimal | None,
        maker_rate: Decimal,
        taker_rate: Decimal,
        hold_currency: str,
        hold_per_lot: Decimal | None,
        stop_ticks: int | None,
    ) -> None:
        self.order = order
        self.market = market
        self.ticks = ticks  # limit price in ticks; None for market orders
        self.lots_left = lots_left  # base still to fill; None for quote-sized market orders
        self.quote_left = quote_left  # budget left of a quote-sized market order
        self.maker_rate = maker_rate
        self.taker_rate = taker_rate
        self.hold_currency = hold_currency
        # What one lot's fill releases from the hold: the limit's worst case for limit buys,
        # one base increment for sells; None for market buys, which spend exactly what they pay.
        self.hold_per_lot = hold_per_lot
        self.stop_ticks = stop_ticks
        self.resting = False


class _Market:
    """Everything the exchange keeps for one product."""

    __slots__ = (
        "book",
        "last_price",
        "lot",
        "minutes",
        "product",
        "stats",
        "stats_minute",
        "stops",
        "tick",
        "trade_seq",
        "trades",
    )

    def __init__(self, spec: SimProductSpec, trade_history: int) -> None:
        self.product = spec.product
        self.book = OrderBook()
        self.tick = spec.product.price_increment
        self.lot = spec.product.base_increment
        self.last_price = spec.start_price
        self.trade_seq = 0
        self.trades: deque[SimTrade] = deque(maxlen=trade_history)
        self.minutes: dict[int, list[Decimal]] = {}  # minute start -> [open, high, low, close, vol]
        self.stops: list[_Live] = []  # pending stop-limits, placement order
        self.stats_minute = -1
        self.stats: tuple[Decimal, Decimal | None, Decimal | None, Decimal | None] = (
            _ZERO,
            None,
            None,
            None,
        )

    def price(self, ticks: int) -> Decimal:
        return self.tick * ticks

    def size(self, lots: int) -> Decimal:
        return self.lot * lots


@dataclass(frozen=True, slots=True)
class _Plan:
    """A validated request: what to hold and how to run it."""

    market: _Market
    ticks: int | None
    lots: int | None
    stop_ticks: int | None
    hold_currency: str
    hold_amount: Decimal
    hold_per_lot: Decimal | None
    maker_rate: Decimal
    taker_rate: Decimal
    end_time: datetime | None


class _ProductView(Mapping[str, Product]):
    """The listed products, each with ``price`` = its last trade price."""

    def __init__(self, markets: dict[str, _Market]) -> None:
        self._markets = markets

    def __getitem__(self, product_id: str) -> Product:
        market = self._markets[product_id]
        return replace(market.product, price=market.last_price)

    def __iter__(self) -> Iterator[str]:
        return iter(self._markets)

    def __len__(self) -> int:
        return len(self._markets)


class SimExchange:
    """The simulated exchange's engine. See the module docstring for its rules."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int,
        products: Sequence[SimProductSpec] | None = None,
        history_limit: int = 10_000,
        trade_history: int = 1_000,
        candle_minutes: int = 7 * 24 * 60,
        market_protection: Decimal = MARKET_PROTECTION,
    ) -> None:
        self._clock = clock
        self._market_protection = market_protection
        self._rng = random.Random(seed)
        self._ledger = Ledger()
        self._listeners: list[SimListener] = []
        specs = default_product_specs() if products is None else tuple(products)
        self._markets = {spec.product.product_id: _Market(spec, trade_history) for spec in specs}
        self.products: Mapping[str, Product] = _ProductView(self._markets)
        self._history_limit = history_limit
        self._candle_minutes = candle_minutes
        self._live: dict[str, _Live] = {}
        self._user_orders: dict[str, dict[str, SimOrder]] = {}
        self._user_done: dict[str, deque[str]] = {}
        self._user_fills: dict[str, deque[SimFill]] = {}
        self._client_ids: dict[tuple[str, str], str] = {}
        self._expiries: list[tuple[float, int, str]] = []
        self._expiry_seq = 0

    @property
    def clock(self) -> Clock:
        """The clock the exchange stamps everything with."""
        return self._clock

    # -- set-up ------------------------------------------------------------------------------

    def add_listener(self, listener: SimListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: SimListener) -> None:
        self._listeners.remove(listener)

    def open_account(self, user_id: str, balances: Mapping[str, Decimal]) -> None:
        """Create a user (or top it up) with the given available balances."""
        self._ledger.open(user_id, balances)
        self._user_orders.setdefault(user_id, {})

    def accounts(self, user_id: str) -> list[SimAccount]:
        return self._ledger.accounts(user_id)

    def fee_rates(self, user_id: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) fee rates, e.g. (0.004, 0.006)."""
        return self._ledger.fee_rates(user_id)

    def set_fee_rates(self, user_id: str, maker: Decimal, taker: Decimal) -> None:
        """Give a user its own fee tier; orders placed afterwards use it."""
        self._ledger.set_fee_rates(user_id, maker, taker)

    def update_product(self, product: Product) -> None:
        """Replace a listed product's flags or limits (e.g. take it offline)."""
        self._markets[product.product_id].product = product

    def total_balance(self, currency: str) -> Decimal:
        """Available + hold of a currency over every user incl. the fee account."""
        return self._ledger.total(currency)

    # -- orders ------------------------------------------------------------------------------

    def create_order(self, user_id: str, request: SimOrderRequest) -> SimOrderResult:
        self.expire_orders()
        existing_id = self._client_ids.get((user_id, request.client_order_id))
        if existing_id is not None:
            return SimOrderResult(True, self._user_orders[user_id][existing_id])
        now = self._now()
        try:
            plan = self._validate(user_id, request, now)
            self._ledger.place_hold(user_id, plan.hold_currency, plan.hold_amount)
        except _Rejected as rejected:
            return rejected.result()
        except InsufficientFunds as short:  # pragma: no cover - _validate checks funds first
            return _Rejected("INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND", str(short)).result()
        kind = request.config_kind
        order = SimOrder(
            order_id=self._new_id(),
            client_order_id=request.client_order_id,
            user_id=user_id,
            product_id=request.product_id,
            side=request.side,
            config_kind=kind,
            order_type=_ORDER_TYPE[kind],
            time_in_force=_TIME_IN_FORCE[kind],
            base_size=request.base_size,
            quote_size=request.quote_size,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            stop_direction=request.stop_direction,
            post_only=request.post_only,
            end_time=plan.end_time,
            created_time=now,
            status=_OPEN,
            outstanding_hold_amount=plan.hold_amount,
        )
        live = _Live(
            order,
            plan.market,
            ticks=plan.ticks,
            lots_left=plan.lots,
            quote_left=request.quote_size if plan.lots is None else None,
            maker_rate=plan.maker_rate,
            taker_rate=plan.taker_rate,
            hold_currency=plan.hold_currency,
            hold_per_lot=plan.hold_per_lot,
            stop_ticks=plan.stop_ticks,
        )
        self._register(user_id, live)
        if plan.stop_ticks is not None:
            order.trigger_status = "STOP_PENDING"
        self._emit_order(order)
        if plan.end_time is not None:
            self._expiry_seq += 1
            heapq.heappush(
                self._expiries, (plan.end_time.timestamp(), self._expiry_seq, order.order_id)
            )
        if plan.stop_ticks is not None:
            plan.market.stops.append(live)
        elif kind == _MARKET_KIND:
            self._trigger_stops(plan.market, self._run_market(live, now), now)
        else:
            self._trigger_stops(plan.market, self._run_limit(live, now), now)
        return SimOrderResult(True, order)

    def cancel_orders(self, user_id: str, order_ids: Sequence[str]) -> list[SimCancelResult]:
        """Cancel each order; answers one result per id, in the given order."""
        results: list[SimCancelResult] = []
        seen: set[str] = set()
        orders = self._user_orders.get(user_id, {})
        for order_id in order_ids:
            if order_id in seen:
                results.append(SimCancelResult(order_id, False, "DUPLICATE_CANCEL_REQUEST"))
                continue
            seen.add(order_id)
            if order_id not in orders:
                results.append(SimCancelResult(order_id, False, "UNKNOWN_CANCEL_ORDER"))
                continue
            live = self._live.get(order_id)
            if live is None:
                results.append(SimCancelResult(order_id, False, "INVALID_CANCEL_REQUEST"))
                continue
            self._finish(live, _CANCELLED, "User requested cancel", self._now())
            results.append(SimCancelResult(order_id, True, "UNKNOWN_CANCEL_FAILURE_REASON"))
        return results

    def expire_orders(self) -> None:
        """End every GTD order whose end_time the clock has reached (EXPIRED)."""
        expiries = self._expiries
        if not expiries:
            return
        now_ts = self._clock.time()
        now: datetime | None = None
        while expiries and expiries[0][0] <= now_ts:
            _, _, order_id = heapq.heappop(expiries)
            live = self._live.get(order_id)
            if live is not None:
                now = now or self._now()
                self._finish(live, _EXPIRED, "Order expired (end_time reached)", now)

    def get_order(self, user_id: str, order_id: str) -> SimOrder | None:
        return self._user_orders.get(user_id, {}).get(order_id)

    def list_orders(
        self,
        user_id: str,
        *,
        product_ids: Iterable[str] | None = None,
        statuses: Iterable[ExchangeOrderStatus | str] | None = None,
        order_ids: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SimOrder]:
        """The user's orders, newest first, filtered (every given filter must match)."""
        products = None if product_ids is None else set(product_ids)
        wanted = None if statuses is None else {str(status) for status in statuses}
        ids = None if order_ids is None else set(order_ids)
        found: list[SimOrder] = []
        for order in reversed(self._user_orders.get(user_id, {}).values()):
            if products is not None and order.product_id not in products:
                continue
            if wanted is not None and str(order.status) not in wanted:
                continue
            if ids is not None and order.order_id not in ids:
                continue
            if start is not None and order.created_time < start:
                continue
            if end is not None and order.created_time > end:
                continue
            found.append(order)
        return found

    def list_fills(
        self,
        user_id: str,
        *,
        order_ids: Iterable[str] | None = None,
        product_ids: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SimFill]:
        """The user's fills, newest first, filtered by order, product and trade time."""
        ids = None if order_ids is None else set(order_ids)
        products = None if product_ids is None else set(product_ids)
        found: list[SimFill] = []
        for fill in reversed(self._user_fills.get(user_id, ())):
            if ids is not None and fill.order_id not in ids:
                continue
            if products is not None and fill.product_id not in products:
                continue
            if start is not None and fill.trade_time < start:
                continue
            if end is not None and fill.trade_time > end:
                continue
            found.append(fill)
        return found

    # -- market data -------------------------------------------------------------------------

    def book_levels(
        self, product_id: str, depth: int | None = None
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Aggregated (price, size): bids descending, asks ascending."""
        market = self._markets[product_id]
        tick, lot = market.tick, market.lot
        bids = [(tick * t, lot * n) for t, n in market.book.bids.levels(depth)]
        asks = [(tick * t, lot * n) for t, n in market.book.asks.levels(depth)]
        return bids, asks

    def best_bid_ask(self, product_id: str) -> tuple[Decimal | None, Decimal | None]:
        """Best bid and ask prices (None for an empty side): cheap, for agents and the server."""
        market = self._markets[product_id]
        bid, ask = market.book.bids.best(), market.book.asks.best()
        return (
            None if bid is None else market.tick * bid,
            None if ask is None else market.tick * ask,
        )

    def last_price(self, product_id: str) -> Decimal:
        """Price of the last trade (the start price before the first one)."""
        return self._markets[product_id].last_price

    def book(self, product_id: str) -> OrderBook:
        """The product's raw book, in ticks and lots: read-only, for invariant checks."""
        return self._markets[product_id].book

    def recent_trades(self, product_id: str, limit: int) -> list[SimTrade]:
        """Newest first."""
        return list(islice(reversed(self._markets[product_id].trades), max(0, limit)))

    def candles(self, product_id: str, start: int, end: int, granularity_s: int) -> list[SimCandle]:
        """OHLCV buckets of ``granularity_s`` (a multiple of 60) over [start, end], newest first."""
        if granularity_s <= 0 or granularity_s % 60:
            raise ValueError(f"granularity must be a positive multiple of 60 s: {granularity_s}")
        buckets: dict[int, list[Decimal]] = {}
        for minute, (open_, high, low, close, volume) in self._markets[product_id].minutes.items():
            if minute < start or minute > end:
                continue
            bucket_start = minute - minute % granularity_s
            bucket = buckets.get(bucket_start)
            if bucket is None:
                buckets[bucket_start] = [open_, high, low, close, volume]
            else:
                bucket[1] = max(bucket[1], high)
                bucket[2] = min(bucket[2], low)
                bucket[3] = close
                bucket[4] += volume
        return [
            SimCandle(start=s, low=b[2], high=b[1], open=b[0], close=b[3], volume=b[4])
            for s, b in sorted(buckets.items(), reverse=True)
        ]

    def seed_candles(self, product_id: str, candles: Iterable[SimCandle]) -> None:
        """Add one-minute candles of history from before now (market data only: no orders,
        no balances), so charts and 24 h figures have a past when the market starts."""
        market = self._markets[product_id]
        current = int(self._clock.time()) // 60 * 60
        merged = {
            candle.start: [candle.open, candle.high, candle.low, candle.close, candle.volume]
            for candle in candles
        }
        for start in merged:
            if start % 60 or start >= current:
                raise ValueError(f"history candles start on past minutes, got {start}")
        merged.update(market.minutes)  # real trades win over seeded history
        ordered = sorted(merged.items())[-self._candle_minutes :]
        market.minutes = dict(ordered)
        market.stats_minute = -1

    def ticker(self, product_id: str) -> SimTicker:
        """Last price, rolling 24 h volume / low / high / change, and the top of the book."""
        market = self._markets[product_id]
        volume, low, high, open_ = self._stats_24h(market)
        last = market.last_price
        change = _ZERO if not open_ else (last - open_) * _HUNDRED / open_
        book = market.book
        bid, ask = book.bids.best(), book.asks.best()
        return SimTicker(
            product_id=product_id,
            price=last,
            volume_24h=volume,
            low_24h=last if low is None else low,
            high_24h=last if high is None else high,
            price_percent_chg_24h=change,
            best_bid=_ZERO if bid is None else market.price(bid),
            best_bid_quantity=_ZERO if bid is None else market.size(book.bids.level_lots(bid)),
            best_ask=_ZERO if ask is None else market.price(ask),
            best_ask_quantity=_ZERO if ask is None else market.size(book.asks.level_lots(ask)),
        )

    # -- validation --------------------------------------------------------------------------

    def _validate(self, user_id: str, request: SimOrderRequest, now: datetime) -> _Plan:
        market = self._markets.get(request.product_id)
        if market is None:
            raise _Rejected(
                "INVALID_PRODUCT_ID",
                "PREVIEW_INVALID_PRODUCT_ID",
                f"unknown product {request.product_id!r}",
            )
        product = market.product
        if not product.tradable:
            raise _Rejected(
                "UNTRADABLE_PRODUCT",
                "PREVIEW_UNTRADABLE_PRODUCT",
                f"{product.product_id} is not tradable now",
            )
        kind = request.config_kind
        _check_configuration(request)
        is_market = kind == _MARKET_KIND
        side = request.side
        base_size, quote_size = request.base_size, request.quote_size
        if base_size is not None and not _on_step(base_size, product.base_increment):
            raise _Rejected(
                "INVALID_SIZE_PRECISION",
                "PREVIEW_INVALID_SIZE_PRECISION",
                f"base_size {base_size} is not a multiple of {product.base_increment}",
            )
        if quote_size is not None and not _on_step(quote_size, product.quote_increment):
            raise _Rejected(
                "INVALID_SIZE_PRECISION",
                "PREVIEW_INVALID_QUOTE_SIZE_PRECISION",
                f"quote_size {quote_size} is not a multiple of {product.quote_increment}",
            )
        ticks = None if is_market else self._limit_ticks(market, request.limit_price)
        stop_ticks = None
        if request.stop_price is not None or kind.startswith("stop_limit"):
            stop_ticks = self._stop_ticks(market, request)
        end_time = None
        if kind.endswith("_gtd"):
            end_time = _check_end_time(request.end_time, now)
        if base_size is not None:
            _check_bounds(
                base_size,
                product.base_min_size,
                product.base_max_size,
                "PREVIEW_INVALID_BASE_SIZE",
                "base_size",
            )
        if quote_size is not None:
            _check_bounds(
                quote_size,
                product.quote_min_size,
                product.quote_max_size,
                "PREVIEW_INVALID_QUOTE_SIZE",
                "quote_size",
            )
        if ticks is not None and base_size is not None:
            _check_bounds(
                market.price(ticks) * base_size,
                product.quote_min_size,
                product.quote_max_size,
                "PREVIEW_INVALID_QUOTE_SIZE",
                "notional (limit_price x base_size)",
            )
        if stop_ticks is not None:
            self._check_stop_side(market, request, stop_ticks)
        book = market.book
        if request.post_only and ticks is not None and book.would_cross(side, ticks):
            raise _Rejected(
                "INVALID_LIMIT_PRICE_POST_ONLY",
                "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY",
                "post-only order would cross the book",
            )
        if is_market and book.opposite(side).best() is None:
            raise _Rejected(
                "INVALID_NO_LIQUIDITY",
                "PREVIEW_INVALID_NO_LIQUIDITY",
                f"no {side.opposite.lower()} orders on {product.product_id}",
            )
        maker_rate, taker_rate = self._ledger.fee_rates(user_id)
        lots = None if base_size is None else int(base_size / market.lot)
        hold_per_lot: Decimal | None
        if side is _BUY:
            hold_currency = product.quote_currency
            if ticks is not None:
                # The worst fee this order can pay, whichever way round it ends up trading.
                worst_rate = max(maker_rate, taker_rate)
                hold_per_lot = market.price(ticks) * market.lot * (_ONE + worst_rate)
                hold_amount = hold_per_lot * (lots or 0)
            else:
                hold_per_lot = None
                hold_amount = (
                    quote_size
                    if quote_size is not None
                    else self._market_buy_cost(market, lots or 0, taker_rate)
                )
        else:
            hold_currency = product.base_currency
            hold_per_lot = market.lot
            if lots is not None:
                hold_amount = base_size or _ZERO
            else:
                hold_amount = market.size(self._market_sell_lots(market, quote_size or _ZERO))
        available = self._ledger.available(user_id, hold_currency)
        if hold_amount > available:
            raise _Rejected(
                "INSUFFICIENT_FUND",
                "PREVIEW_INSUFFICIENT_FUND",
                f"Insufficient balance in source account: needs {hold_amount} "
                f"{hold_currency}, available {available}",
            )
        return _Plan(
            market=market,
            ticks=ticks,
            lots=lots,
            stop_ticks=stop_ticks,
            hold_currency=hold_currency,
            hold_amount=hold_amount,
            hold_per_lot=hold_per_lot,
            maker_rate=maker_rate,
            taker_rate=taker_rate,
            end_time=end_time,
        )

    @staticmethod
    def _limit_ticks(market: _Market, limit_price: Decimal | None) -> int:
        if limit_price is None or not limit_price.is_finite() or limit_price <= 0:
            raise _Rejected(
                "INVALID_LIMIT_PRICE",
                "PREVIEW_INVALID_LIMIT_PRICE",
                f"limit_price must be a positive number, got {limit_price}",
            )
        if not _on_step(limit_price, market.tick):
            raise _Rejected(
                "INVALID_PRICE_PRECISION",
                "PREVIEW_INVALID_PRICE_PRECISION",
                f"limit_price {limit_price} is not a multiple of {market.tick}",
            )
        return int(limit_price / market.tick)

    @staticmethod
    def _stop_ticks(market: _Market, request: SimOrderRequest) -> int:
        stop = request.stop_price
        if stop is None or request.stop_direction is None or not stop.is_finite() or stop <= 0:
            raise _Rejected(
                _UNKNOWN_FAILURE,
                "PREVIEW_INVALID_STOP_PRICE",
                "a stop-limit order needs a positive stop_price and a stop_direction",
            )
        if not _on_step(stop, market.tick):
            raise _Rejected(
                "INVALID_PRICE_PRECISION",
                "PREVIEW_INVALID_STOP_PRICE_PRECISION",
                f"stop_price {stop} is not a multiple of {market.tick}",
            )
        return int(stop / market.tick)

    @staticmethod
    def _check_stop_side(market: _Market, request: SimOrderRequest, stop_ticks: int) -> None:
        last = market.last_price
        stop = market.price(stop_ticks)
        if request.stop_direction is StopDirection.UP and stop <= last:
            raise _Rejected(
                _UNKNOWN_FAILURE,
                "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE",
                f"STOP_UP stop_price {stop} must be above the last trade price {last}",
            )
        if request.stop_direction is StopDirection.DOWN and stop >= last:
            raise _Rejected(
                _UNKNOWN_FAILURE,
                "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE",
                f"STOP_DOWN stop_price {stop} must be below the last trade price {last}",
            )

    @staticmethod
    def _market_buy_cost(market: _Market, lots: int, taker_rate: Decimal) -> Decimal:
        """What buying ``lots`` at market costs now, taker fee included."""
        cost = _ZERO
        remaining = lots
        for ticks, level_lots in market.book.asks.iter_levels():
            take = min(remaining, level_lots)
            cost += market.price(ticks) * market.size(take)
            remaining -= take
            if remaining == 0:
                break
        return cost * (_ONE + taker_rate)

    @staticmethod
    def _market_sell_lots(market: _Market, quote: Decimal) -> int:
        """How many lots a market sell for ``quote`` gross proceeds sells now."""
        lots = 0
        remaining = quote
        for ticks, level_lots in market.book.bids.iter_levels():
            lot_value = market.price(ticks) * market.lot
            take = min(level_lots, int(remaining / lot_value))
            if take <= 0:
                break
            lots += take
            remaining -= lot_value * take
        return lots

    # -- execution ---------------------------------------------------------------------------

    def _run_limit(self, live: _Live, now: datetime) -> tuple[int, int] | None:
        """Match a limit order (or a triggered stop-limit), then rest, cancel or fill it.

        Returns the (lowest, highest) ticks it traded at, for stop triggering, or None.
        """
        market = live.market
        order = live.order
        ticks = live.ticks
        lots_left = live.lots_left
        assert ticks is not None and lots_left is not None
        book = market.book
        opposite = book.opposite(order.side)
        if (
            order.time_in_force == "FILL_OR_KILL"
            and opposite.lots_through(ticks, lots_left) < lots_left
        ):
            self._finish(live, _CANCELLED, "Fill-or-kill order could not fill completely", now)
            return None
        traded: tuple[int, int] | None = None
        while live.lots_left:
            best = opposite.best()
            if best is None or not opposite.reaches(best, ticks):
                break
            for match in opposite.consume_best(live.lots_left):
                self._settle(live, match, now)
            traded = _widen(traded, best)
        if live.lots_left == 0:
            self._retire(live)
        elif order.time_in_force in ("IMMEDIATE_OR_CANCEL", "FILL_OR_KILL"):
            self._finish(live, _CANCELLED, "Immediate-or-cancel remainder cancelled", now)
        else:
            level_lots = book.side(order.side).add(order.order_id, ticks, live.lots_left or 0)
            live.resting = True
            self._emit_book(market, order.side, ticks, level_lots, now)
        return traded

    def _run_market(self, live: _Live, now: datetime) -> tuple[int, int] | None:
        """Walk the book for a market order, by base size or by quote budget."""
        market = live.market
        order = live.order
        opposite = market.book.opposite(order.side)
        traded: tuple[int, int] | None = None
        book_ran_out = protected = False
        worst = self._protection_ticks(order.side, opposite.best())
        while order.status is _OPEN:
            best = opposite.best()
            if best is None:
                book_ran_out = True
                break
            if worst is not None and not opposite.reaches(best, worst):
                protected = True
                break
            if live.lots_left is not None:
                cap = live.lots_left
            else:
                cap = self._affordable_lots(live, market.price(best))
            if cap <= 0:
                break
            for match in opposite.consume_best(cap):
                self._settle(live, match, now)
            traded = _widen(traded, best)
        if order.status is not _OPEN:  # filled completely by base size
            self._retire(live)
        elif protected:
            self._finish(live, _CANCELLED, PROTECTION_REASON, now)
        elif order.filled_size > 0 and not book_ran_out:
            self._finish(live, _FILLED, "", now)
        else:
            self._finish(live, _CANCELLED, "Market order could not fill completely", now)
        return traded

    def _protection_ticks(self, side: Side, touch: int | None) -> int | None:
        """The worst price (ticks) a market order of ``side`` may fill at: the protection
        share from the touch, rounded inwards (a buy down, a sell up)."""
        if touch is None:
            return None
        share = self._market_protection
        if side is _BUY:
            return int(touch * (_ONE + share))  # floor: positive
        return -int(-touch * (_ONE - share))  # ceiling

    @staticmethod
    def _affordable_lots(live: _Live, price: Decimal) -> int:
        """Lots a quote-sized market order can still take at ``price``."""
        budget = live.quote_left or _ZERO
        lot = live.market.lot
        # Buys pay the fee on top, so the budget covers price*(1+fee) per unit; sells spend
        # their budget on gross proceeds alone.
        unit = price * lot * (_ONE + live.taker_rate) if live.order.side is _BUY else price * lot
        lots = int(budget / unit)
        while lots > 0 and unit * lots > budget:  # guard against division rounding up
            lots -= 1
        return lots

    def _settle(self, taker: _Live, match: BookMatch, now: datetime) -> None:
        """Move money for one match and tell the listeners, in the documented order."""
        market = taker.market
        maker = self._live[match.order_id]
        lots = match.lots
        price = market.price(match.ticks)
        size = market.size(lots)
        notional = price * size
        maker_fee = notional * maker.maker_rate
        taker_fee = notional * taker.taker_rate
        product = market.product
        taker_side = taker.order.side
        self._emit_book(market, taker_side.opposite, match.ticks, match.level_lots_left, now)
        if match.maker_lots_left == 0:
            maker.resting = False

        market.trade_seq += 1
        trade_id = str(market.trade_seq)
        trade = SimTrade(trade_id, product.product_id, price, size, taker_side, now)
        self._record_trade(market, trade, now)

        self._fill(maker, trade, lots, notional, maker_fee, "MAKER", now)
        if maker.order.status is _FILLED:
            self._retire(maker)
        self._fill(taker, trade, lots, notional, taker_fee, "TAKER", now)
        self._ledger.credit(FEE_USER_ID, product.quote_currency, maker_fee + taker_fee)

    def _fill(
        self,
        live: _Live,
        trade: SimTrade,
        lots: int,
        notional: Decimal,
        fee: Decimal,
        liquidity: str,
        now: datetime,
    ) -> None:
        """Settle one side of a trade: balances, the order's totals, its fill and update."""
        order = live.order
        user_id = order.user_id
        product = live.market.product
        ledger = self._ledger
        size = trade.size
        if order.side is _BUY:
            spent = notional + fee
            used = spent if live.hold_per_lot is None else live.hold_per_lot * lots
            ledger.spend_hold(user_id, product.quote_currency, spent)
            ledger.release_hold(user_id, product.quote_currency, used - spent)
            ledger.credit(user_id, product.base_currency, size)
        else:
            used = size
            spent = notional
            ledger.spend_hold(user_id, product.base_currency, size)
            ledger.credit(user_id, product.quote_currency, notional - fee)
        order.outstanding_hold_amount -= used
        order.filled_size += size
        order.filled_value += notional
        order.total_fees += fee
        order.number_of_fills += 1
        order.last_fill_time = now
        if live.lots_left is not None:
            live.lots_left -= lots
            if live.lots_left == 0:
                order.status = _FILLED
                self._release_rest(live)
        elif live.quote_left is not None:
            live.quote_left -= spent
        fill = SimFill(
            entry_id=self._new_id(),
            trade_id=trade.trade_id,
            order_id=order.order_id,
            user_id=user_id,
            product_id=trade.product_id,
            side=order.side,
            price=trade.price,
            size=size,
            commission=fee,
            liquidity=liquidity,
            trade_time=now,
            sequence_timestamp=now,
        )
        self._user_fills[user_id].append(fill)
        for listener in self._listeners:
            listener.on_fill(fill)
        self._emit_order(order)

    def _trigger_stops(
        self, market: _Market, traded: tuple[int, int] | None, now: datetime
    ) -> None:
        """Trigger the stop-limits that trades in the ``traded`` tick range reached.

        A triggered stop trades like a limit order, and its own trades may trigger more: they
        are handled in turn, each batch in placement order.
        """
        pending = deque([traded] if traded is not None else [])
        while pending and market.stops:
            low, high = pending.popleft()
            fired = [live for live in market.stops if _stop_reached(live, low, high)]
            if not fired:
                continue
            market.stops = [live for live in market.stops if live not in fired]
            for live in fired:
                live.order.trigger_status = "STOP_TRIGGERED"
                self._emit_order(live.order)
                more = self._run_limit(live, now)
                if more is not None:
                    pending.append(more)

    def _finish(self, live: _Live, status: ExchangeOrderStatus, reason: str, now: datetime) -> None:
        """End an order that can still trade: off the book, hold released, listeners told."""
        order = live.order
        market = live.market
        if live.resting:
            assert live.ticks is not None
            _, level_lots = market.book.side(order.side).remove(order.order_id, live.ticks)
            live.resting = False
            self._emit_book(market, order.side, live.ticks, level_lots, now)
        elif live.stop_ticks is not None and live in market.stops:
            market.stops.remove(live)
        order.status = status
        if status is not _FILLED:
            order.cancel_reason = reason
        self._release_rest(live)
        self._emit_order(order)
        self._retire(live)

    def _release_rest(self, live: _Live) -> None:
        order = live.order
        if order.outstanding_hold_amount:
            self._ledger.release_hold(
                order.user_id, live.hold_currency, order.outstanding_hold_amount
            )
            order.outstanding_hold_amount = _ZERO

    # -- bookkeeping -------------------------------------------------------------------------

    def _register(self, user_id: str, live: _Live) -> None:
        order = live.order
        self._live[order.order_id] = live
        self._user_orders.setdefault(user_id, {})[order.order_id] = order
        self._client_ids[(user_id, order.client_order_id)] = order.order_id
        if user_id not in self._user_fills:
            self._user_fills[user_id] = deque(maxlen=self._history_limit)
            self._user_done[user_id] = deque()

    def _retire(self, live: _Live) -> None:
        """An order is done: stop tracking it as live and bound the user's history."""
        order = live.order
        if self._live.pop(order.order_id, None) is None:
            return
        done = self._user_done[order.user_id]
        done.append(order.order_id)
        if len(done) > self._history_limit:
            oldest_id = done.popleft()
            oldest = self._user_orders[order.user_id].pop(oldest_id)
            self._client_ids.pop((order.user_id, oldest.client_order_id), None)

    def _record_trade(self, market: _Market, trade: SimTrade, now: datetime) -> None:
        market.last_price = trade.price
        market.trades.append(trade)
        minute = int(now.timestamp()) // 60 * 60
        candle = market.minutes.get(minute)
        price = trade.price
        if candle is None:
            market.minutes[minute] = [price, price, price, price, trade.size]
            if len(market.minutes) > self._candle_minutes:
                del market.minutes[next(iter(market.minutes))]
        else:
            if price > candle[1]:
                candle[1] = price
            if price < candle[2]:
                candle[2] = price
            candle[3] = price
            candle[4] += trade.size
        for listener in self._listeners:
            listener.on_trade(trade)

    def _stats_24h(
        self, market: _Market
    ) -> tuple[Decimal, Decimal | None, Decimal | None, Decimal | None]:
        """(volume, low, high, open) over the last 24 h, from one-minute candles.

        The finished minutes are summed once per minute and cached, so a ticker per trade
        costs O(1) instead of a pass over 1,440 candles.
        """
        current = int(self._clock.time()) // 60 * 60
        if market.stats_minute != current:
            volume, low, high, open_ = _ZERO, None, None, None
            for minute, (o, h, lo, _, v) in market.minutes.items():
                if current - 86_400 < minute < current:
                    open_ = o if open_ is None else open_
                    high = h if high is None or h > high else high
                    low = lo if low is None or lo < low else low
                    volume += v
            market.stats_minute = current
            market.stats = (volume, low, high, open_)
        volume, low, high, open_ = market.stats
        candle = market.minutes.get(current)
        if candle is not None:
            open_ = candle[0] if open_ is None else open_
            high = candle[1] if high is None or candle[1] > high else high
            low = candle[2] if low is None or candle[2] < low else low
            volume += candle[4]
        return volume, low, high, open_

    def _emit_book(self, market: _Market, side: Side, ticks: int, lots: int, now: datetime) -> None:
        if not self._listeners:
            return
        price, size, product_id = market.price(ticks), market.size(lots), market.product.product_id
        for listener in self._listeners:
            listener.on_book_change(product_id, side, price, size, now)

    def _emit_order(self, order: SimOrder) -> None:
        for listener in self._listeners:
            listener.on_order_update(order)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), tz=UTC)

    def _new_id(self) -> str:
        """A uuid4-shaped id from the seeded generator (same seed, same ids)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


# -- validation helpers ----------------------------------------------------------------------


def _on_step(value: Decimal, step: Decimal) -> bool:
    """Is ``value`` a finite multiple of ``step``? (False, not an exception, for absurd values.)"""
    if not value.is_finite():
        return False
    try:
        return value % step == 0
    except InvalidOperation:  # the quotient has more digits than the context: not on a step
        return False


def _unsupported(message: str) -> _Rejected:
    return _Rejected("UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG", message)


def _check_configuration(request: SimOrderRequest) -> None:
    """Which fields each order_configuration may carry (UNSUPPORTED_ORDER_CONFIGURATION)."""
    kind = request.config_kind
    if kind not in _TIME_IN_FORCE:
        raise _unsupported(f"unsupported order configuration {kind!r}")
    if request.side not in (Side.BUY, Side.SELL):
        raise _Rejected("INVALID_SIDE", "PREVIEW_INVALID_SIDE", f"invalid side {request.side!r}")
    if kind == _MARKET_KIND:
        if (request.base_size is None) == (request.quote_size is None):
            raise _unsupported("a market order needs exactly one of base_size and quote_size")
        if request.limit_price is not None:
            raise _unsupported("a market order takes no limit_price")
    else:
        if request.quote_size is not None:
            raise _unsupported(f"{kind} is sized in base: quote_size is not supported")
        if request.base_size is None:
            raise _unsupported(f"{kind} needs a base_size")
    if not kind.startswith("stop_limit") and (
        request.stop_price is not None or request.stop_direction is not None
    ):
        raise _unsupported(f"{kind} takes no stop_price / stop_direction")
    if not kind.endswith("_gtd") and request.end_time is not None:
        raise _unsupported(f"{kind} takes no end_time")
    if request.post_only and kind not in _POST_ONLY_KINDS:
        if kind == "limit_limit_fok":
            raise _Rejected(
                "POST_ONLY_NOT_ALLOWED_WITH_FOK",
                "PREVIEW_POST_ONLY_NOT_ALLOWED_WITH_FOK",
                "post_only is not allowed on a fill-or-kill order",
            )
        raise _unsupported(f"{kind} does not support post_only")


def _check_end_time(end_time: datetime | None, now: datetime) -> datetime:
    if end_time is None:
        raise _Rejected(
            "GTD_ORDERS_MUST_HAVE_END_TIME",
            "PREVIEW_GTD_ORDERS_MUST_HAVE_END_TIME",
            "a good-til-date order needs an end_time",
        )
    if end_time.tzinfo is None:  # a naive time on the wire means UTC (RFC 3339 'Z')
        end_time = end_time.replace(tzinfo=UTC)
    if end_time <= now:
        raise _Rejected(
            "END_TIME_IS_IN_THE_PAST",
            "PREVIEW_END_TIME_IS_IN_THE_PAST",
            f"end_time {end_time.isoformat()} is not in the future",
        )
    return end_time


def _check_bounds(value: Decimal, low: Decimal, high: Decimal, code: str, what: str) -> None:
    if value < low:
        raise _Rejected(_UNKNOWN_FAILURE, f"{code}_TOO_SMALL", f"{what} {value} is below {low}")
    if value > high:
        raise _Rejected(_UNKNOWN_FAILURE, f"{code}_TOO_LARGE", f"{what} {value} is above {high}")


def _widen(traded: tuple[int, int] | None, ticks: int) -> tuple[int, int]:
    """Extend a (low, high) tick range by one traded price."""
    if traded is None:
        return ticks, ticks
    low, high = traded
    return (ticks if ticks < low else low), (ticks if ticks > high else high)


def _stop_reached(live: _Live, low: int, high: int) -> bool:
    """STOP_UP fires when a trade printed at or above the stop, STOP_DOWN at or below."""
    stop = live.stop_ticks
    if stop is None:  # pragma: no cover - only stop-limits are in the stop list
        return False
    if live.order.stop_direction is StopDirection.UP:
        return high >= stop
    return low <= stop
