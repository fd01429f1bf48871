"""Value types shared by every part of the engine.

Money and sizes are ``Decimal`` everywhere except inside the order book's hot path, which
works on floats and converts at its edges. Types here are immutable and know nothing of the
wire format: ``core.coinbase`` converts Coinbase JSON into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GOOD_UNTIL_CANCELLED"
    GTD = "GOOD_UNTIL_DATE_TIME"
    IOC = "IMMEDIATE_OR_CANCEL"
    FOK = "FILL_OR_KILL"


class StopDirection(StrEnum):
    UP = "STOP_DIRECTION_STOP_UP"
    DOWN = "STOP_DIRECTION_STOP_DOWN"


class ExchangeOrderStatus(StrEnum):
    """Order status exactly as Coinbase reports it (REST and the user channel).

    There is no PARTIALLY_FILLED on the wire: a partly filled order is OPEN with
    ``filled_size`` > 0. The order manager's own state machine is richer than this.
    """

    PENDING = "PENDING"
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN_ORDER_STATUS"
    QUEUED = "QUEUED"
    CANCEL_QUEUED = "CANCEL_QUEUED"
    EDIT_QUEUED = "EDIT_QUEUED"

    @property
    def is_open(self) -> bool:
        """Still able to trade or still cancelable (what cancel-all must sweep)."""
        return self in _OPEN_STATUSES


_OPEN_STATUSES = frozenset(
    {
        ExchangeOrderStatus.PENDING,
        ExchangeOrderStatus.OPEN,
        ExchangeOrderStatus.QUEUED,
        ExchangeOrderStatus.CANCEL_QUEUED,
        ExchangeOrderStatus.EDIT_QUEUED,
    }
)


class LiquidityIndicator(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"
    UNKNOWN = "UNKNOWN_LIQUIDITY_INDICATOR"


@dataclass(frozen=True, slots=True)
class Product:
    """A tradable product and its precision and size rules."""

    product_id: str
    base_currency: str
    quote_currency: str
    base_increment: Decimal
    quote_increment: Decimal
    price_increment: Decimal
    base_min_size: Decimal
    base_max_size: Decimal
    quote_min_size: Decimal
    quote_max_size: Decimal
    status: str = "online"
    trading_disabled: bool = False
    cancel_only: bool = False
    limit_only: bool = False
    post_only: bool = False
    auction_mode: bool = False
    price: Decimal | None = None
    # USD/USDC aliasing (docs/coinbase-protocol.md): BTC-USDC has ``alias`` "BTC-USD" and the
    # market channels serve its data keyed BTC-USD; BTC-USD lists "BTC-USDC" in ``alias_to``.
    alias: str | None = None
    alias_to: tuple[str, ...] = ()

    @property
    def tradable(self) -> bool:
        return (
            self.status == "online"
            and not self.trading_disabled
            and not self.cancel_only
            and not self.auction_mode
        )

    def round_size_down(self, size: Decimal) -> Decimal:
        """Quantize a base size down to the base increment (never sends more than asked)."""
        return quantize_to_step(size, self.base_increment, ROUND_DOWN)

    def snap_price(self, price: Decimal, side: Side) -> Decimal:
        """Snap a price to the tick, buys down and sells up, so a passive quote stays passive."""
        rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
        return quantize_to_step(price, self.price_increment, rounding)

    def is_size_on_increment(self, size: Decimal) -> bool:
        return is_multiple(size, self.base_increment)

    def is_price_on_tick(self, price: Decimal) -> bool:
        return is_multiple(price, self.price_increment)


def quantize_to_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """Round ``value`` to a multiple of ``step`` with the given rounding mode."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    units = (value / step).quantize(Decimal(1), rounding=rounding)
    return (units * step).quantize(step)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step > 0 and value % step == 0


def decimal_str(value: Decimal) -> str:
    """Format a Decimal for the wire: plain notation, never an exponent."""
    return format(value, "f")


@dataclass(frozen=True, slots=True)
class Balance:
    """One currency's balance. ``total`` = available + hold."""

    currency: str
    available: Decimal
    hold: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.hold


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What a trader or a strategy asks for, before it becomes a wire order.

    Exactly one of ``base_size`` / ``quote_size`` is set (``quote_size`` only for market
    orders). ``limit_price`` for LIMIT and STOP_LIMIT; ``stop_price`` and
    ``stop_direction`` for STOP_LIMIT; ``end_time`` for GTD.
    """

    product_id: str
    side: Side
    order_type: OrderType
    base_size: Decimal | None = None
    quote_size: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: StopDirection | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    end_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as the exchange reports it (REST order object or user-channel update)."""

    order_id: str
    client_order_id: str
    product_id: str
    side: Side
    status: ExchangeOrderStatus
    order_type: str
    time_in_force: str | None = None
    base_size: Decimal | None = None
    quote_size: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    post_only: bool = False
    filled_size: Decimal = Decimal(0)
    average_filled_price: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    total_fees: Decimal = Decimal(0)
    number_of_fills: int = 0
    leaves_quantity: Decimal | None = None
    created_time: datetime | None = None
    reject_reason: str | None = None
    cancel_reason: str | None = None
    pending_cancel: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (from REST /fills, or derived from cumulative user-channel updates)."""

    trade_id: str
    order_id: str
    product_id: str
    side: Side
    price: Decimal
    size: Decimal
    commission: Decimal
    liquidity: LiquidityIndicator = LiquidityIndicator.UNKNOWN
    trade_time: datetime | None = None
    sequence_timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade print (market_trades channel or REST ticker)."""

    trade_id: str
    product_id: str
    price: float
    size: float
    side: Side
    time: datetime | None


@dataclass(frozen=True, slots=True)
class Ticker:
    product_id: str
    price: float
    best_bid: float | None
    best_ask: float | None
    best_bid_quantity: float | None = None
    best_ask_quantity: float | None = None
    volume_24h: float | None = None
    price_percent_change_24h: float | None = None


@dataclass(frozen=True, slots=True)
class Candle:
    start: int  # unix seconds
    open: float
    high: float
    low: float
    close: float
    volume: float
    product_id: str = ""


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """The exchange's answer to a create-order request that succeeded."""

    order_id: str
    client_order_id: str
    product_id: str
    side: Side


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a cursor-paginated list."""

    items: list[T] = field(default_factory=list)
    has_next: bool = False
    cursor: str = ""


class IntentSource(StrEnum):
    """Who asked for an order. Every source goes through the same risk gate."""

    MANUAL = "manual"  # the trader, from the keyboard
    STRATEGY = "strategy"
    FLATTEN = "flatten"  # the kill switch's confirmed flatten


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A request to place one order, before the risk gate has seen it."""

    spec: OrderSpec
    source: IntentSource
    reduce_only: bool = False  # must not grow the position (flatten, REDUCING state)
    strategy_id: str | None = None
    note: str = ""
