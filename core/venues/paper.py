"""``PaperVenue``: orders filled by a local model on the LIVE L2 book and the public tape.

Why this model (docs/paper-fill-model.md): tools whose paper fills are full fills at the limit
price on any touch make paper results far better than live, and a fill model that can be
gamed is worse than none. Here:

* Market orders walk the book level by level and CONSUME what they take. The public book does
  not know about paper fills, so it keeps listing the orders we took (a phantom in front of
  the level's queue). Per level we note the size the book showed and how much of it we took;
  what is left for us is the difference. When the book shows a new size for that level
  (``_Consumption.follow``): at or below what remained after our take, the orders we took
  are gone from the public book too, so the note is cleared and the book is the truth again;
  a rise over the last size shown is replenishment (new orders behind the phantom) and is
  ours to take; a fall that stays above what remained comes out of what remained first, and
  only the part beyond it is the phantom leaving. So liquidity we took stays taken until the
  book shows it replaced, and a level that flickers (1.10, 1.15, 1.10, ...) never hands out
  the same size twice.
* Market-order protection, as Coinbase: a market order fills no further than
  ``settings.paper.market_protection_pct`` (10%) from the touch; the rest is cancelled.
* Self-trade prevention, as Coinbase's default "decrement and cancel": a taking order that
  meets one of our own resting paper orders on the other side (at a price it reaches) does
  not trade with it. The smaller of the two is cancelled and the larger decremented by its
  size (both cancelled when equal); no fill, no fee. At one price our own order is met before
  the book's size there (we do not know our place in that queue, and meeting it only ever
  costs the taker liquidity). A post-only order that would cross our own order is rejected.
* Resting limits fill only when the public tape prints THROUGH their price (strictly better
  than ours), or AT our price once the queue ahead of us has traded, and never for more than
  the printed size. With ``queue_position`` the size ahead is the book's size at our price when
  we joined; prints at our price eat it first, and a level that shrinks below it shrinks it
  too. Coinbase sends one trade twice, as a level2 change and as a print, in either order: a
  fall at our price that a print follows within ``PRINT_AFTER_BOOK_S`` is taken as that
  print's trade, so the queue is shortened once, not twice. Resting fills are at our limit
  price, as maker.
* Marketable limits take from the book like a market order up to the limit price; the rest
  rests (GTC/GTD), is cancelled (IOC) or, for FOK, nothing happens unless all of it can fill.
  Post-only that would cross is rejected with INVALID_LIMIT_PRICE_POST_ONLY. Stop-limits wait
  off the book and trigger on a print at or through the stop, then act as a limit.
* Fees: maker/taker rates from a ``FeeSchedule`` (Coinbase tiers by 30-day volume; by default
  the flat rates of ``settings.paper``), fixed when the order is placed, as Coinbase does.
* Latency: ``settings.paper.latency_ms`` passes (through the injected ``sleep``) before an
  order or a cancel takes effect; the book may move meanwhile.
* Money: balances start at ``settings.paper.starting_balances``; a resting or working order
  holds what it may spend (limit buys at the worse of the two fee rates), each fill spends from
  the hold, and an order that ends releases the rest.
* Validation: the shared order rules (core/order_rules.py), answered with Coinbase's codes in
  the simulated exchange's order of checks (core/sim/exchange.py), so both venues answer alike.

Updates reach the listener as CUMULATIVE ``ExchangeOrder`` states, exactly like the user
channel: OPEN on acceptance, then after each fill (filled_size, filled_value, total_fees), then
the final state. Updates caused by ``place``/``cancel`` are delivered on the next event-loop
turn, after the call has returned, which is the order Coinbase usually answers in (REST first,
then the stream); updates caused by market data are delivered before the callback returns.
Everything runs on the event loop thread; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Final, Protocol

from core.book import BookSide, Level, to_decimal
from core.clock import Clock, utc_datetime
from core.config import PaperSettings
from core.fees import FeeRates, FeeSchedule, TrailingVolume
from core.model import (
    Balance,
    ExchangeOrder,
    ExchangeOrderStatus,
    Fill,
    LiquidityIndicator,
    OrderSpec,
    OrderType,
    PlacedOrder,
    Product,
    Side,
    StopDirection,
    TimeInForce,
    Trade,
    quantize_to_step,
)
from core.order_rules import OrderProblem, ProblemReason, order_problems
from core.venue import (
    CancelResult,
    CreateOrderOutcome,
    OrderAccepted,
    OrderNotFound,
    OrderRejected,
    VenueListener,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

ZERO: Final = Decimal(0)
# How deep a taking order may walk. Far beyond any paper order's size; bounded so a walk
# never copies a whole 10k-level book.
WALK_DEPTH: Final = 1000
# Coinbase sends a trade on two channels: the level2 change and the market_trades print, in
# either order. A fall of the level at our price that reached us this long before a print at
# that price is taken as that print's trade (so the queue is not reduced twice); older falls
# were cancels.
PRINT_AFTER_BOOK_S: Final = 2.0
SELF_TRADE_REASON: Final = "Self-trade prevention: met our own order on the other side"
PROTECTION_REASON: Final = "Market order protection: no fills further from the touch"
_OPEN = ExchangeOrderStatus.OPEN
_FILLED = ExchangeOrderStatus.FILLED
_CANCELLED = ExchangeOrderStatus.CANCELLED
_EXPIRED = ExchangeOrderStatus.EXPIRED


class PaperBook(Protocol):
    """What the fill model reads of one product's live book (``core.book.L2Book`` fits)."""

    def top(self, n: int) -> tuple[list[Level], list[Level]]: ...

    def best_bid(self) -> Level | None: ...

    def best_ask(self) -> Level | None: ...

    def size_at(self, side: BookSide, price: float) -> float: ...


class PaperMarket(Protocol):
    """What the paper venue needs from market data (``core.market.MarketDataService``)."""

    def book(self, product_id: str) -> PaperBook: ...

    def add_trade_listener(self, listener: Callable[[Trade], None]) -> None: ...

    def add_book_listener(self, listener: Callable[[str], None]) -> None: ...


class _Rejection(Exception):
    """Internal: an order refused before anything changed."""

    def __init__(self, code: str, preview: str | None, message: str) -> None:
        super().__init__(message)
        self.outcome = OrderRejected(
            code=code,
            message=message,
            details=message,
            preview_failure_reason=preview,
            new_order_failure_reason=code if code != "UNKNOWN_FAILURE_REASON" else None,
        )


@dataclass(slots=True)
class _Wallet:
    available: Decimal = ZERO
    hold: Decimal = ZERO


@dataclass(slots=True)
class _Consumption:
    """What our taking orders removed from one book level that the public book still shows.

    ``book_size`` is the level's size as the book last showed it and ``taken`` the part of it
    we consumed (a phantom: real orders the public book still lists because it does not know
    about paper fills). What is really left for us is ``book_size - taken``. See
    ``_Consumption.follow`` for how a new size from the exchange changes that.
    """

    book_size: Decimal
    taken: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.book_size - self.taken)

    def follow(self, size: Decimal) -> bool:
        """The book now shows ``size`` at this level: False when our note is done with.

        The public book lists the orders we took (the phantom, ``taken``) as if they were
        still there, in front of the queue. When the level's size changes we cannot tell
        which orders moved, so:

        * At or below what remained after our take: the orders we took have left the public
          book too (traded by others or cancelled); the book is the whole truth again and
          the consumed amount is cleared.
        * A rise over the last size shown: replenishment, new orders at the back of the
          queue; it is available to us. ``taken`` stays.
        * A fall that stays above what remained: it comes out of what remained first (the
          pessimistic reading); only the part beyond that must have been the phantom
          leaving. A flickering level (1.10, 1.05, 1.10, ...) therefore never hands out the
          same liquidity twice.
        """
        if size == self.book_size:
            return True
        remaining = self.remaining
        if size <= remaining:
            return False
        if size < self.book_size:
            fall = self.book_size - size
            self.taken -= max(ZERO, fall - remaining)
        self.book_size = size
        return self.taken > 0


@dataclass(slots=True)
class _SelfTrade:
    """Self-trade prevention met one of our own resting orders: ``amount`` (base) comes off
    both orders without a trade; ``cancel_own`` when that leaves nothing of ours."""

    own: _PaperOrder
    amount: Decimal
    cancel_own: bool


@dataclass(slots=True)
class _Walk:
    """What a taking order would get now. ``complete``: it stopped because its size or budget
    was used up, not because the book (or its limit price) ran out. ``limit_reached``: it
    stopped at its limit (market-order protection for a market order). ``self_trades``: our
    own resting orders it met, and ``taker_decrement`` the base that came off the taker for
    them; ``ended_by_self_trade`` when that used up the taker."""

    fills: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    complete: bool = False
    limit_reached: bool = False
    self_trades: list[_SelfTrade] = field(default_factory=list)
    taker_decrement: Decimal = ZERO
    ended_by_self_trade: bool = False

    @property
    def size(self) -> Decimal:
        return sum((size for _, size in self.fills), ZERO)

    def cost(self, taker_rate: Decimal) -> Decimal:
        return sum((price * size * (1 + taker_rate) for price, size in self.fills), ZERO)


@dataclass(slots=True)
class _PaperOrder:
    order_id: str
    client_order_id: str
    spec: OrderSpec
    product: Product
    rates: FeeRates
    created_time: datetime
    sequence: int
    hold_currency: str
    hold: Decimal
    status: ExchangeOrderStatus = _OPEN
    filled_size: Decimal = ZERO
    filled_value: Decimal = ZERO
    total_fees: Decimal = ZERO
    number_of_fills: int = 0
    # Base taken off this order by self-trade prevention (it never trades).
    self_trade_decrement: Decimal = ZERO
    queue_ahead: Decimal = ZERO
    # What a fall of the level at our price took off ``queue_ahead`` that no print has
    # explained yet, and when: the print of that same trade must not take it off again.
    unprinted_shrink: Decimal = ZERO
    shrunk_at: float = 0.0
    stop_pending: bool = False
    resting: bool = False
    cancel_reason: str | None = None

    @property
    def limit(self) -> Decimal:
        assert self.spec.limit_price is not None
        return self.spec.limit_price

    @property
    def leaves(self) -> Decimal:
        """Base size still to fill (limit and stop-limit orders are always sized in base)."""
        assert self.spec.base_size is not None
        return self.spec.base_size - self.filled_size - self.self_trade_decrement

    def fillable_by(self, price: Decimal) -> bool:
        """A print at ``price`` reaches our limit (at it, or through it)."""
        return price <= self.limit if self.spec.side is Side.BUY else price >= self.limit

    def to_exchange(self) -> ExchangeOrder:
        spec = self.spec
        average = self.filled_value / self.filled_size if self.filled_size else ZERO
        leaves = (
            None
            if spec.base_size is None
            else spec.base_size - self.filled_size - self.self_trade_decrement
        )
        time_in_force = (
            TimeInForce.IOC if spec.order_type is OrderType.MARKET else spec.time_in_force
        )
        return ExchangeOrder(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            product_id=spec.product_id,
            side=spec.side,
            status=self.status,
            order_type=spec.order_type.value,
            time_in_force=time_in_force.value,
            base_size=spec.base_size,
            quote_size=spec.quote_size,
            limit_price=spec.limit_price,
            stop_price=spec.stop_price,
            post_only=spec.post_only,
            filled_size=self.filled_size,
            average_filled_price=average,
            filled_value=self.filled_value,
            total_fees=self.total_fees,
            number_of_fills=self.number_of_fills,
            leaves_quantity=leaves,
            created_time=self.created_time,
            cancel_reason=self.cancel_reason,
        )


class PaperVenue:
    """The ``core.venue.Venue`` port over the local fill model (see the module docstring)."""

    def __init__(
        self,
        market: PaperMarket,
        products: Iterable[Product],
        settings: PaperSettings,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        fee_schedule: FeeSchedule | None = None,
        id_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
        name: str = "paper",
    ) -> None:
        self._market = market
        self._products = {product.product_id: product for product in products}
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._fees = fee_schedule or FeeSchedule.from_paper_settings(settings)
        self._new_id = id_factory
        self._name = name
        self._listener: VenueListener | None = None
        self._wallets: dict[str, _Wallet] = {
            currency: _Wallet(available=amount)
            for currency, amount in settings.starting_balances.items()
        }
        self._orders: dict[str, _PaperOrder] = {}
        self._by_client_id: dict[str, str] = {}
        # Per product, the orders waiting on the tape: resting limits and untriggered stops.
        self._waiting: dict[str, list[_PaperOrder]] = {}
        # Per product: (book side, price) -> what our taking orders removed from that level.
        self._consumed: dict[str, dict[tuple[BookSide, float], _Consumption]] = {}
        self._last_trade: dict[str, Decimal] = {}
        self._fills: list[Fill] = []
        self._volume = TrailingVolume()
        self._sequence = 0
        self._outbox: list[ExchangeOrder] = []
        self._flush_scheduled = False
        self._started = False

    # ------------------------------------------------------------------ the Venue port

    @property
    def name(self) -> str:
        return self._name

    @property
    def stream_connected(self) -> bool:
        return True  # updates come from this process: they cannot be lost in transit

    def set_listener(self, listener: VenueListener) -> None:
        self._listener = listener

    @property
    def keeps_orders_across_restarts(self) -> bool:
        return False  # its book of orders lives in this process only

    @property
    def user_socket(self) -> None:
        """No user channel: the paper venue's updates come from this process."""
        return None

    def bad_input_counts(self) -> dict[str, int]:
        return {}  # no stream of its own to refuse input from

    def add_products(self, products: Iterable[Product]) -> None:
        """Products whose increments became known after construction (loaded at start-up)."""
        for product in products:
            self._products[product.product_id] = product

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._market.add_trade_listener(self.on_trade)
        self._market.add_book_listener(self.on_book)

    async def stop(self) -> None:
        self._flush()

    async def place(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        if not client_order_id:
            return _rejected("INVALID_ARGUMENT", None, "client_order_id must not be empty")
        await self._latency()
        # Checked after the wait, with no await before the order exists, so two concurrent
        # requests with one client_order_id cannot both place an order.
        existing = self._by_client_id.get(client_order_id)
        if existing is not None:
            # Coinbase answers a repeated client_order_id with the ORIGINAL order.
            return OrderAccepted(self._placed(self._orders[existing]))
        try:
            order = self._accept(spec, client_order_id)
        except _Rejection as rejection:
            return rejection.outcome
        finally:
            self._schedule_flush()
        return OrderAccepted(self._placed(order))

    async def cancel(self, order_ids: Sequence[str]) -> list[CancelResult]:
        if not order_ids:
            return []
        await self._latency()
        results: list[CancelResult] = []
        seen: set[str] = set()
        for order_id in order_ids:
            if order_id in seen:
                results.append(CancelResult(order_id, False, "DUPLICATE_CANCEL_REQUEST"))
                continue
            seen.add(order_id)
            order = self._orders.get(order_id)
            if order is None:
                results.append(CancelResult(order_id, False, "UNKNOWN_CANCEL_ORDER"))
            elif not order.status.is_open:
                results.append(CancelResult(order_id, False, "INVALID_CANCEL_REQUEST"))
            else:
                self._finish(order, _CANCELLED, "User requested cancel")
                results.append(CancelResult(order_id, True, None))
        self._schedule_flush()
        return results

    async def list_open_orders(
        self, product_ids: Sequence[str] | None = None
    ) -> list[ExchangeOrder]:
        self._expire_due()
        self._schedule_flush()
        return [
            order.to_exchange()
            for order in self._orders.values()
            if order.status.is_open and (not product_ids or order.spec.product_id in product_ids)
        ]

    async def list_orders_since(self, since: datetime | None) -> list[ExchangeOrder]:
        return [
            order.to_exchange()
            for order in self._orders.values()
            if since is None or order.created_time >= since
        ]

    async def get_order(self, order_id: str) -> ExchangeOrder:
        order = self._orders.get(order_id)
        if order is None:
            # The venue-neutral not-found of the Venue port, as every venue raises it.
            raise OrderNotFound(f"order {order_id} not found")
        return order.to_exchange()

    async def list_fills(
        self, *, since: datetime | None = None, order_ids: Sequence[str] | None = None
    ) -> list[Fill]:
        wanted = set(order_ids) if order_ids else None
        return [
            fill
            for fill in self._fills
            if (wanted is None or fill.order_id in wanted)
            and (since is None or (fill.trade_time is not None and fill.trade_time >= since))
        ]

    async def balances(self) -> list[Balance]:
        return [
            Balance(currency, wallet.available, wallet.hold)
            for currency, wallet in sorted(self._wallets.items())
        ]

    async def products(self, product_ids: Sequence[str]) -> list[Product]:
        if not product_ids:
            return list(self._products.values())
        return [self._products[pid] for pid in product_ids if pid in self._products]

    # ------------------------------------------------------------------ market data callbacks

    def on_trade(self, trade: Trade) -> None:
        """A public print: fills resting orders it reaches, then triggers stops."""
        if trade.product_id not in self._products:
            return
        price = to_decimal(trade.price)
        self._last_trade[trade.product_id] = price
        self._expire_due()
        waiting = self._waiting.get(trade.product_id)
        if waiting:
            self._fill_resting(waiting, price, to_decimal(trade.size))
            self._trigger_stops(trade.product_id, price)
        self._flush()

    def on_book(self, product_id: str) -> None:
        """The live book of ``product_id`` changed: forget consumption the exchange replaced,
        and shrink queue positions where the level at our price shrank (cancels ahead)."""
        book = self._book(product_id)
        if book is None:
            return
        consumed = self._consumed.get(product_id)
        if consumed:
            done = [
                key
                for key, note in consumed.items()
                if not note.follow(to_decimal(book.size_at(*key)))
            ]
            for key in done:
                del consumed[key]
        waiting = self._waiting.get(product_id)
        if not waiting:
            return
        # A dropped book (disconnect, resync) says nothing about the queue at our price: keep
        # our place until a fresh snapshot shows the level again.
        if book.best_bid() is not None or book.best_ask() is not None:
            for order in waiting:
                if order.resting and order.queue_ahead > 0:
                    side = BookSide.BID if order.spec.side is Side.BUY else BookSide.ASK
                    level = to_decimal(book.size_at(side, float(order.limit)))
                    if level < order.queue_ahead:
                        order.unprinted_shrink = self._unprinted(order) + order.queue_ahead - level
                        order.shrunk_at = self._clock.time()
                        order.queue_ahead = level
        self._expire_due()
        self._flush()

    # ------------------------------------------------------------------ placing

    def _accept(self, spec: OrderSpec, client_order_id: str) -> _PaperOrder:
        """Validate, reserve funds, create the order and run it as far as it goes now."""
        self._expire_due()
        product = self._validate(spec)
        rates = self._fees.rates_for(self._volume.total(self._clock.time()))
        walk: _Walk | None = None
        if spec.order_type is OrderType.MARKET:
            walk = self._walk(spec, product, rates, limit=self._protection_limit(spec))
            if not walk.fills and not walk.self_trades:
                if spec.quote_size is not None and walk.complete:
                    raise _Rejection(
                        "UNKNOWN_FAILURE_REASON",
                        "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                        f"quote_size {spec.quote_size} does not buy one {product.base_increment}",
                    )
                raise _Rejection(
                    "INVALID_NO_LIQUIDITY",
                    "PREVIEW_INVALID_NO_LIQUIDITY",
                    f"no {spec.side.opposite.value.lower()} liquidity on {spec.product_id}",
                )
        hold_currency, hold = self._required_hold(spec, product, rates, walk)
        available = self._wallets.get(hold_currency, _Wallet()).available
        if available < hold:
            raise _Rejection(
                "INSUFFICIENT_FUND",
                "PREVIEW_INSUFFICIENT_FUND",
                f"{hold_currency} available {available} is less than {hold} needed",
            )
        wallet = self._wallet(hold_currency)
        wallet.available -= hold
        wallet.hold += hold
        self._sequence += 1
        order = _PaperOrder(
            order_id=self._new_id(),
            client_order_id=client_order_id,
            spec=spec,
            product=product,
            rates=rates,
            created_time=utc_datetime(self._clock),
            sequence=self._sequence,
            hold_currency=hold_currency,
            hold=hold,
        )
        self._orders[order.order_id] = order
        self._by_client_id[client_order_id] = order.order_id
        self._emit(order)
        if spec.order_type is OrderType.MARKET:
            assert walk is not None
            self._execute_walk(order, walk)
            if walk.ended_by_self_trade:
                self._finish(order, _CANCELLED, SELF_TRADE_REASON)
            elif walk.complete:
                self._finish(order, _FILLED, None)
            elif walk.limit_reached:
                self._finish(order, _CANCELLED, PROTECTION_REASON)
            else:
                self._finish(order, _CANCELLED, None)
        elif spec.order_type is OrderType.LIMIT:
            self._work_limit(order)
        else:
            order.stop_pending = True
            self._waiting.setdefault(spec.product_id, []).append(order)
        return order

    def _work_limit(self, order: _PaperOrder) -> None:
        """A limit (or a triggered stop-limit): take what crosses, then rest or end."""
        spec = order.spec
        walk = self._walk(spec, order.product, order.rates, limit=order.limit, size=order.leaves)
        if spec.time_in_force is TimeInForce.FOK and not walk.complete:
            self._finish(order, _CANCELLED, "Fill-or-kill order could not fill completely")
            return
        self._execute_walk(order, walk)
        if walk.ended_by_self_trade:
            self._finish(order, _CANCELLED, SELF_TRADE_REASON)
        elif order.leaves <= 0:
            self._finish(order, _FILLED, None)
        elif spec.time_in_force is TimeInForce.IOC:
            self._finish(order, _CANCELLED, "Immediate-or-cancel remainder cancelled")
        else:
            self._rest(order)

    def _rest(self, order: _PaperOrder) -> None:
        order.resting = True
        order.stop_pending = False
        if self._settings.queue_position:
            book = self._book(order.spec.product_id)
            side = BookSide.BID if order.spec.side is Side.BUY else BookSide.ASK
            at_price = book.size_at(side, float(order.limit)) if book is not None else 0.0
            order.queue_ahead = to_decimal(at_price)
        waiting = self._waiting.setdefault(order.spec.product_id, [])
        if order not in waiting:
            waiting.append(order)

    # ------------------------------------------------------------------ validation

    def _validate(self, spec: OrderSpec) -> Product:
        """Coinbase's checks in the simulated exchange's order; raises ``_Rejection``."""
        product = self._products.get(spec.product_id)
        if product is None:
            raise _Rejection(
                "INVALID_PRODUCT_ID", "PREVIEW_INVALID_PRODUCT_ID", f"unknown {spec.product_id}"
            )
        if not product.tradable:
            raise _Rejection(
                "UNTRADABLE_PRODUCT",
                "PREVIEW_UNTRADABLE_PRODUCT",
                f"{spec.product_id} is not tradable now",
            )
        problems = order_problems(spec, product, now=self._clock.time())
        if problems:
            raise _rule_rejection(problems)
        self._check_stop(spec)
        if spec.post_only and self._would_cross(spec):
            raise _Rejection(
                "INVALID_LIMIT_PRICE_POST_ONLY",
                "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY",
                f"post-only {spec.side.value.lower()} at {spec.limit_price} would take liquidity",
            )
        return product

    def _check_stop(self, spec: OrderSpec) -> None:
        if spec.order_type is not OrderType.STOP_LIMIT:
            return
        last = self._last_trade.get(spec.product_id)
        stop = spec.stop_price
        if last is None or stop is None:
            return
        if spec.stop_direction is StopDirection.UP and stop <= last:
            raise _Rejection(
                "UNKNOWN_FAILURE_REASON",
                "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE",
                f"stop-up price {stop} is not above the last trade {last}",
            )
        if spec.stop_direction is StopDirection.DOWN and stop >= last:
            raise _Rejection(
                "UNKNOWN_FAILURE_REASON",
                "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE",
                f"stop-down price {stop} is not below the last trade {last}",
            )

    def _would_cross(self, spec: OrderSpec) -> bool:
        """Would a post-only order take liquidity, our own resting orders included?"""
        best_level = next(self._opposite_liquidity(spec.product_id, spec.side), None)
        if best_level is None or spec.limit_price is None:
            return False
        best = best_level[0]
        return spec.limit_price >= best if spec.side is Side.BUY else spec.limit_price <= best

    def _required_hold(
        self, spec: OrderSpec, product: Product, rates: FeeRates, walk: _Walk | None
    ) -> tuple[str, Decimal]:
        """(currency, amount) an order must reserve: the most it can spend."""
        if spec.side is Side.SELL:
            if spec.base_size is not None:
                return product.base_currency, spec.base_size
            assert walk is not None  # a market sell by quote: the base this walk sells
            return product.base_currency, walk.size
        if spec.order_type is OrderType.MARKET:
            if spec.quote_size is not None:
                return product.quote_currency, spec.quote_size
            assert walk is not None
            return product.quote_currency, walk.cost(rates.taker)
        assert spec.base_size is not None and spec.limit_price is not None
        return product.quote_currency, spec.limit_price * spec.base_size * (1 + rates.worst)

    # ------------------------------------------------------------------ taking liquidity

    def _effective_levels(
        self, product_id: str, taker_side: Side
    ) -> Iterator[tuple[Decimal, Decimal]]:
        """The opposite side's levels, best first, minus what we already consumed. Lazy: a
        walk converts only the levels it reaches."""
        book = self._book(product_id)
        if book is None:
            return
        bids, asks = book.top(WALK_DEPTH)
        book_side = BookSide.ASK if taker_side is Side.BUY else BookSide.BID
        consumed = self._consumed.get(product_id, {})
        for price, size in asks if taker_side is Side.BUY else bids:
            available = to_decimal(size)
            note = consumed.get((book_side, price))
            if note is not None:
                # The book may have changed without a callback yet: follow it here too.
                if note.follow(available):
                    available = note.remaining
                else:
                    del consumed[(book_side, price)]
            if available > 0:
                yield to_decimal(price), available

    def _protection_limit(self, spec: OrderSpec) -> Decimal | None:
        """The worst price a market order may fill at: ``market_protection_pct`` from the
        touch (the best price it could take now), as Coinbase's market-order protection."""
        touch = next(self._opposite_liquidity(spec.product_id, spec.side), None)
        if touch is None:
            return None
        share = self._settings.market_protection_pct / 100
        return touch[0] * (1 + share) if spec.side is Side.BUY else touch[0] * (1 - share)

    def _own_opposite(self, product_id: str, taker_side: Side) -> list[_PaperOrder]:
        """Our resting orders a taker of ``taker_side`` would meet, best price then oldest."""
        own = [
            o
            for o in self._waiting.get(product_id, ())
            if o.resting and o.status.is_open and o.spec.side is not taker_side
        ]
        own.sort(key=lambda o: (o.limit if taker_side is Side.BUY else -o.limit, o.sequence))
        return own

    def _opposite_liquidity(
        self, product_id: str, taker_side: Side
    ) -> Iterator[tuple[Decimal, Decimal | _PaperOrder]]:
        """What a taker meets, best price first: the book's levels (price, size left after our
        consumption) and our own resting orders (price, order). At one price our own order
        comes first: we may not know our place in that queue, and meeting it can only cost
        the taker liquidity (self-trade prevention), never give it any."""
        own = self._own_opposite(product_id, taker_side)
        index = 0
        for price, available in self._effective_levels(product_id, taker_side):
            while index < len(own) and (
                own[index].limit <= price if taker_side is Side.BUY else own[index].limit >= price
            ):
                yield own[index].limit, own[index]
                index += 1
            yield price, available
        for order in own[index:]:
            yield order.limit, order

    def _walk(
        self,
        spec: OrderSpec,
        product: Product,
        rates: FeeRates,
        *,
        limit: Decimal | None,
        size: Decimal | None = None,
    ) -> _Walk:
        """What taking liquidity now would do (nothing changes). ``size`` overrides the
        spec's base size (the leaves of a partly filled order).

        Our own resting orders on the other side take part: meeting one is a self-trade,
        which Coinbase prevents, by default with "decrement and cancel": the smaller of the
        two is cancelled and the larger decremented by its size (both when equal). Nothing
        trades, so no fill and no fee; a quote-sized taker loses the value instead.
        """
        step = product.base_increment
        base_left = size if size is not None else spec.base_size
        quote_left = spec.quote_size if base_left is None else None
        walk = _Walk()
        for price, met in self._opposite_liquidity(spec.product_id, spec.side):
            if limit is not None and (price > limit if spec.side is Side.BUY else price < limit):
                walk.limit_reached = True
                return walk
            unit = price * (1 + rates.taker) if spec.side is Side.BUY else price
            if isinstance(met, _PaperOrder):
                own_left = met.leaves
                if base_left is not None:
                    amount = min(own_left, base_left)
                    base_left -= amount
                    walk.taker_decrement += amount
                else:
                    assert quote_left is not None
                    amount = min(own_left, _floor(quote_left / unit, step))
                    if amount <= 0:  # not one increment of budget left to meet it with
                        walk.complete = True
                        return walk
                    quote_left = ZERO if amount < own_left else quote_left - amount * unit
                walk.self_trades.append(_SelfTrade(met, amount, amount >= own_left))
                if (base_left is not None and base_left <= 0) or (
                    quote_left is not None and quote_left <= 0
                ):
                    walk.complete = walk.ended_by_self_trade = True
                    return walk
                continue
            available = met
            if base_left is not None:
                take = _floor(min(available, base_left), step)
            else:
                assert quote_left is not None
                # A buy by quote spends at most quote_size INCLUDING the taker fee; a sell by
                # quote sells until its gross proceeds would pass quote_size (as Coinbase).
                affordable = _floor(quote_left / unit, step)
                if affordable <= 0:
                    # Not one more increment fits the budget here, nor deeper (worse prices).
                    walk.complete = True
                    return walk
                take = _floor(min(available, affordable), step)
            if take <= 0:
                continue  # less than one increment left at this level (our consumption)
            walk.fills.append((price, take))
            if base_left is not None:
                base_left -= take
                if base_left <= 0:
                    walk.complete = True
                    return walk
            else:
                assert quote_left is not None
                quote_left -= take * unit
        return walk

    def _execute_walk(self, order: _PaperOrder, walk: _Walk) -> None:
        product_id = order.spec.product_id
        book = self._book(product_id)
        book_side = BookSide.ASK if order.spec.side is Side.BUY else BookSide.BID
        consumed = self._consumed.setdefault(product_id, {})
        for met in walk.self_trades:
            if met.cancel_own:
                self._finish(met.own, _CANCELLED, SELF_TRADE_REASON)
            else:
                met.own.self_trade_decrement += met.amount
                self._release(met.own, met.amount)
                self._emit(met.own)
        if walk.taker_decrement > 0:
            order.self_trade_decrement += walk.taker_decrement
            self._release(order, walk.taker_decrement)
        for price, size in walk.fills:
            key = (book_side, float(price))
            book_size = to_decimal(book.size_at(*key)) if book is not None else ZERO
            note = consumed.get(key)
            if note is None or not note.follow(book_size):
                consumed[key] = _Consumption(book_size, size)
            else:
                note.taken += size
            self._fill(order, price, size, LiquidityIndicator.TAKER)

    def _release(self, order: _PaperOrder, base: Decimal) -> None:
        """Give back the hold that covered ``base`` of a limit order, or of any sell (a
        market buy holds only what its fills cost; ending it releases the rest)."""
        if order.spec.side is Side.SELL:
            amount = base
        elif order.spec.limit_price is not None:
            amount = order.limit * base * (1 + order.rates.worst)
        else:
            return
        amount = min(amount, order.hold)
        order.hold -= amount
        wallet = self._wallet(order.hold_currency)
        wallet.hold -= amount
        wallet.available += amount

    # ------------------------------------------------------------------ the tape

    def _fill_resting(self, waiting: list[_PaperOrder], price: Decimal, printed: Decimal) -> None:
        """Share one print among our resting orders it reaches, best price then oldest.

        A print AT our price first trades what is ahead of us. If the level2 change for the
        same trade came first, ``on_book`` already took it off our queue: that part of the
        print (``unprinted_shrink``) is not taken off again and does not reach us either.
        """
        reached = [o for o in waiting if o.resting and o.status.is_open and o.fillable_by(price)]
        if not reached:
            return
        reached.sort(key=lambda o: (-o.limit if o.spec.side is Side.BUY else o.limit, o.sequence))
        given = ZERO  # of this print, what our earlier (better or older) orders received
        for order in reached:
            if price == order.limit:
                explained = min(self._unprinted(order), printed)
                order.unprinted_shrink = self._unprinted(order) - explained
                past_queue = printed - explained
                eaten = min(order.queue_ahead, past_queue)
                order.queue_ahead -= eaten
                reaching = past_queue - eaten
            else:
                # Traded through our price: no one is left ahead of us.
                order.queue_ahead = ZERO
                order.unprinted_shrink = ZERO
                reaching = printed
            size = _floor(min(reaching - given, order.leaves), order.product.base_increment)
            if size <= 0:
                continue
            given += size
            self._fill(order, order.limit, size, LiquidityIndicator.MAKER)
            if order.leaves <= 0:
                self._finish(order, _FILLED, None)

    def _unprinted(self, order: _PaperOrder) -> Decimal:
        """The order's shrink still waiting for its print (none once the window passed)."""
        if self._clock.time() - order.shrunk_at > PRINT_AFTER_BOOK_S:
            return ZERO
        return order.unprinted_shrink

    def _trigger_stops(self, product_id: str, price: Decimal) -> None:
        for order in list(self._waiting.get(product_id, ())):
            if not order.stop_pending or not order.status.is_open:
                continue
            stop = order.spec.stop_price
            assert stop is not None
            up = order.spec.stop_direction is StopDirection.UP
            if (up and price >= stop) or (not up and price <= stop):
                order.stop_pending = False
                self._work_limit(order)

    # ------------------------------------------------------------------ money and state

    def _fill(
        self, order: _PaperOrder, price: Decimal, size: Decimal, liquidity: LiquidityIndicator
    ) -> None:
        product = order.product
        notional = price * size
        fee = order.rates.fee(notional, liquidity)
        base = self._wallet(product.base_currency)
        quote = self._wallet(product.quote_currency)
        if order.spec.side is Side.BUY:
            cost = notional + fee
            reserved = cost
            if order.spec.limit_price is not None:
                # The hold covered this size at the limit price and the worse fee rate; give
                # back what the better price or the cheaper fee saved.
                reserved = order.limit * size * (1 + order.rates.worst)
            self._spend(order, quote, cost, reserved)
            base.available += size
        else:
            self._spend(order, base, size, size)
            quote.available += notional - fee
        order.filled_size += size
        order.filled_value += notional
        order.total_fees += fee
        order.number_of_fills += 1
        now = utc_datetime(self._clock)
        self._volume.add(self._clock.time(), notional)
        self._fills.append(
            Fill(
                trade_id=f"paper-{len(self._fills) + 1}",
                order_id=order.order_id,
                product_id=order.spec.product_id,
                side=order.spec.side,
                price=price,
                size=size,
                commission=fee,
                liquidity=liquidity,
                trade_time=now,
                sequence_timestamp=now,
            )
        )
        self._emit(order)

    @staticmethod
    def _spend(order: _PaperOrder, wallet: _Wallet, amount: Decimal, reserved: Decimal) -> None:
        """Pay ``amount`` for a fill: release the part of the hold that covered it
        (``reserved``) and spend from that; what it did not need becomes available again."""
        released = min(reserved, order.hold)
        order.hold -= released
        wallet.hold -= released
        # Holds cover the worst case, so released >= amount; if a rounding ever made it
        # otherwise the difference comes out of available, so money is still conserved.
        wallet.available += released - amount

    def _finish(self, order: _PaperOrder, status: ExchangeOrderStatus, reason: str | None) -> None:
        wallet = self._wallet(order.hold_currency)
        wallet.available += order.hold
        wallet.hold -= order.hold
        order.hold = ZERO
        order.status = status
        order.resting = False
        order.stop_pending = False
        order.cancel_reason = reason
        waiting = self._waiting.get(order.spec.product_id)
        if waiting is not None and order in waiting:
            waiting.remove(order)
        self._emit(order)

    def _expire_due(self) -> None:
        now = self._clock.time()
        for waiting in list(self._waiting.values()):
            for order in list(waiting):
                end = order.spec.end_time
                if (
                    order.spec.time_in_force is TimeInForce.GTD
                    and end is not None
                    and end.timestamp() <= now
                ):
                    self._finish(order, _EXPIRED, "Order expired (end_time reached)")

    def _wallet(self, currency: str) -> _Wallet:
        wallet = self._wallets.get(currency)
        if wallet is None:
            wallet = self._wallets[currency] = _Wallet()
        return wallet

    def _book(self, product_id: str) -> PaperBook | None:
        try:
            return self._market.book(product_id)
        except KeyError:  # market data does not carry this product: no liquidity
            return None

    async def _latency(self) -> None:
        delay = self._settings.latency_ms / 1000.0
        if delay > 0:
            await self._sleep(delay)

    @staticmethod
    def _placed(order: _PaperOrder) -> PlacedOrder:
        return PlacedOrder(
            order.order_id, order.client_order_id, order.spec.product_id, order.spec.side
        )

    # ------------------------------------------------------------------ delivering updates

    def _emit(self, order: _PaperOrder) -> None:
        self._outbox.append(order.to_exchange())

    def _schedule_flush(self) -> None:
        if self._flush_scheduled or not self._outbox:
            return
        self._flush_scheduled = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, []
        listener = self._listener
        if listener is None:
            return
        for update in outbox:
            try:
                listener.on_order_update(update)
            except Exception:  # one bad listener call must not lose the updates after it
                log.exception("venue listener failed on %s", update.order_id)


# ---------------------------------------------------------------------- checks (pure)


def _rejected(code: str, preview: str | None, message: str) -> OrderRejected:
    return _Rejection(code, preview, message).outcome


def _unsupported(message: str) -> _Rejection:
    return _Rejection("UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG", message)


# Coinbase's (error, preview_failure_reason) for each shared order rule, as the simulated
# exchange answers them (core/sim/exchange.py), so both venues reject alike.
_UNSUPPORTED = ("UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG")
# In the simulated exchange's order of checks: the first problem in this order answers.
_RULE_CODES: Final[dict[ProblemReason, tuple[str, str]]] = {
    ProblemReason.SIZE_MISSING: _UNSUPPORTED,
    ProblemReason.QUOTE_SIZE_NOT_MARKET: _UNSUPPORTED,
    ProblemReason.PRICE_NOT_ALLOWED: _UNSUPPORTED,
    ProblemReason.STOP_NOT_ALLOWED: _UNSUPPORTED,
    ProblemReason.END_TIME_NOT_ALLOWED: _UNSUPPORTED,
    ProblemReason.TIME_IN_FORCE_NOT_ALLOWED: _UNSUPPORTED,
    ProblemReason.POST_ONLY_NOT_ALLOWED: _UNSUPPORTED,
    ProblemReason.POST_ONLY_REQUIRED: _UNSUPPORTED,
    ProblemReason.LIMIT_ONLY_PRODUCT: _UNSUPPORTED,
    ProblemReason.POST_ONLY_WITH_FOK: (
        "POST_ONLY_NOT_ALLOWED_WITH_FOK",
        "PREVIEW_POST_ONLY_NOT_ALLOWED_WITH_FOK",
    ),
    ProblemReason.SIZE_PRECISION: ("INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION"),
    ProblemReason.QUOTE_SIZE_PRECISION: (
        "INVALID_SIZE_PRECISION",
        "PREVIEW_INVALID_QUOTE_SIZE_PRECISION",
    ),
    ProblemReason.PRICE_MISSING: ("INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE"),
    ProblemReason.PRICE_PRECISION: ("INVALID_PRICE_PRECISION", "PREVIEW_INVALID_PRICE_PRECISION"),
    ProblemReason.STOP_MISSING: ("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_STOP_PRICE"),
    ProblemReason.STOP_PRECISION: (
        "INVALID_PRICE_PRECISION",
        "PREVIEW_INVALID_STOP_PRICE_PRECISION",
    ),
    ProblemReason.END_TIME_MISSING: (
        "GTD_ORDERS_MUST_HAVE_END_TIME",
        "PREVIEW_GTD_ORDERS_MUST_HAVE_END_TIME",
    ),
    ProblemReason.END_TIME_IN_PAST: ("END_TIME_IS_IN_THE_PAST", "PREVIEW_END_TIME_IS_IN_THE_PAST"),
    ProblemReason.SIZE_NOT_POSITIVE: (
        "UNKNOWN_FAILURE_REASON",
        "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL",
    ),
    ProblemReason.SIZE_TOO_SMALL: ("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"),
    ProblemReason.SIZE_TOO_LARGE: ("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE"),
    ProblemReason.QUOTE_SIZE_TOO_SMALL: (
        "UNKNOWN_FAILURE_REASON",
        "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
    ),
    ProblemReason.QUOTE_SIZE_TOO_LARGE: (
        "UNKNOWN_FAILURE_REASON",
        "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE",
    ),
}
_RULE_RANK: Final = {reason: rank for rank, reason in enumerate(_RULE_CODES)}


def _rule_rejection(problems: list[OrderProblem]) -> _Rejection:
    """The rejection Coinbase would give: the problem it checks first."""
    problem = min(problems, key=lambda problem: _RULE_RANK[problem.reason])
    code, preview = _RULE_CODES[problem.reason]
    return _Rejection(code, preview, str(problem))


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return quantize_to_step(value, step, ROUND_DOWN) if value > 0 else ZERO
