"""The contract between the simulated exchange's engine and its server.

The engine (``core.sim.exchange``) creates and mutates these objects; the server only reads
them and turns them into Coinbase's wire format. Field names follow Coinbase's REST order,
fill and account objects so that encoding is a straight mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from core.model import ExchangeOrderStatus, Product, Side, StopDirection

__all__ = [
    "ORDER_CONFIG_KINDS",
    "SimAccount",
    "SimCancelResult",
    "SimCandle",
    "SimFill",
    "SimListener",
    "SimOrder",
    "SimOrderRequest",
    "SimOrderResult",
    "SimProductSpec",
    "SimTicker",
    "SimTrade",
]

ORDER_CONFIG_KINDS = (
    "market_market_ioc",
    "sor_limit_ioc",
    "limit_limit_gtc",
    "limit_limit_gtd",
    "limit_limit_fok",
    "stop_limit_stop_limit_gtc",
    "stop_limit_stop_limit_gtd",
)

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class SimProductSpec:
    """A product the simulated exchange lists, and the price its market starts around."""

    product: Product
    start_price: Decimal


@dataclass(frozen=True, slots=True)
class SimOrderRequest:
    """One create-order request, already decoded from its ``order_configuration``."""

    client_order_id: str
    product_id: str
    side: Side
    config_kind: str  # one of ORDER_CONFIG_KINDS
    base_size: Decimal | None = None
    quote_size: Decimal | None = None  # market orders only
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: StopDirection | None = None
    post_only: bool = False
    end_time: datetime | None = None  # GTD


@dataclass(slots=True)
class SimOrder:
    """An order as the exchange holds it. Mutable and owned by the engine; the server reads it."""

    order_id: str
    client_order_id: str
    user_id: str
    product_id: str
    side: Side
    config_kind: str
    order_type: str  # "MARKET" | "LIMIT" | "STOP_LIMIT"
    # GOOD_UNTIL_CANCELLED | GOOD_UNTIL_DATE_TIME | IMMEDIATE_OR_CANCEL | FILL_OR_KILL
    time_in_force: str
    base_size: Decimal | None
    quote_size: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_direction: StopDirection | None
    post_only: bool
    end_time: datetime | None
    created_time: datetime
    status: ExchangeOrderStatus
    filled_size: Decimal = _ZERO
    filled_value: Decimal = _ZERO
    total_fees: Decimal = _ZERO
    number_of_fills: int = 0
    last_fill_time: datetime | None = None
    trigger_status: str = "INVALID_ORDER_TYPE"  # STOP_PENDING / STOP_TRIGGERED for stop-limits
    reject_reason: str = ""
    cancel_reason: str = ""
    outstanding_hold_amount: Decimal = _ZERO

    @property
    def average_filled_price(self) -> Decimal:
        """Volume-weighted price of the fills so far (0 before the first fill, as Coinbase)."""
        if self.filled_size == 0:
            return _ZERO
        return self.filled_value / self.filled_size

    @property
    def leaves_quantity(self) -> Decimal:
        """Base size still to fill; 0 for a quote-sized market order (its size is in quote)."""
        if self.base_size is None or not self.status.is_open:
            return _ZERO
        return self.base_size - self.filled_size

    @property
    def completion_percentage(self) -> Decimal:
        """How much of the order has filled, 0..100 (by quote for a quote-sized market order)."""
        if self.base_size is not None and self.base_size > 0:
            return self.filled_size * _HUNDRED / self.base_size
        if self.quote_size is not None and self.quote_size > 0:
            return min(_HUNDRED, (self.filled_value + self.total_fees) * _HUNDRED / self.quote_size)
        return _ZERO


@dataclass(frozen=True, slots=True)
class SimOrderResult:
    """The answer to ``create_order``: the order on success, the exchange's codes on failure."""

    success: bool
    order: SimOrder | None  # set on success (also for an idempotent repeat)
    error: str = ""  # e.g. "INSUFFICIENT_FUND", "INVALID_LIMIT_PRICE_POST_ONLY"
    message: str = ""
    error_details: str = ""
    preview_failure_reason: str = ""  # e.g. "PREVIEW_INSUFFICIENT_FUND"
    new_order_failure_reason: str = ""  # e.g. "INSUFFICIENT_FUND"


@dataclass(frozen=True, slots=True)
class SimCancelResult:
    """One entry of a batch cancel's results."""

    order_id: str
    success: bool
    failure_reason: str  # "UNKNOWN_CANCEL_FAILURE_REASON" on success (like Coinbase)


@dataclass(frozen=True, slots=True)
class SimFill:
    """One execution of one user's order (one side of a trade)."""

    entry_id: str
    trade_id: str
    order_id: str
    user_id: str
    product_id: str
    side: Side
    price: Decimal
    size: Decimal
    commission: Decimal
    liquidity: str  # "MAKER" | "TAKER"
    trade_time: datetime
    sequence_timestamp: datetime


@dataclass(frozen=True, slots=True)
class SimTrade:
    """A public trade print. ``side`` is the TAKER's side, as Coinbase market_trades reports it."""

    trade_id: str
    product_id: str
    price: Decimal
    size: Decimal
    side: Side
    time: datetime


@dataclass(frozen=True, slots=True)
class SimAccount:
    """One currency wallet of one user."""

    uuid: str
    currency: str
    available: Decimal
    hold: Decimal


@dataclass(frozen=True, slots=True)
class SimCandle:
    """One OHLCV bucket; ``start`` in unix seconds."""

    start: int
    low: Decimal
    high: Decimal
    open: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class SimTicker:
    """Last price, 24 h statistics and top of book for one product."""

    product_id: str
    price: Decimal
    volume_24h: Decimal
    low_24h: Decimal
    high_24h: Decimal
    price_percent_chg_24h: Decimal
    best_bid: Decimal
    best_bid_quantity: Decimal
    best_ask: Decimal
    best_ask_quantity: Decimal


class SimListener(Protocol):
    """What the engine tells the server, synchronously, as things happen."""

    def on_book_change(
        self, product_id: str, side: Side, price: Decimal, new_size: Decimal, time: datetime
    ) -> None:
        """Aggregated size at that level AFTER the change (0 = level gone); BUY = bid, SELL = offer."""
        ...

    def on_trade(self, trade: SimTrade) -> None:
        """A public trade printed."""
        ...

    def on_order_update(self, order: SimOrder) -> None:
        """Any change of a user order (status, fill)."""
        ...

    def on_fill(self, fill: SimFill) -> None:
        """One execution of a user order."""
        ...
