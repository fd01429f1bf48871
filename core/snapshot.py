"""What the UI reads: immutable views of the engine's state, taken by ``Engine.snapshot()``.

Widgets depend on these types only, never on the engine itself. Every view carries a
``version`` (or its parts do) so a panel can skip work when nothing it shows has changed.
A value that is not known is ``None`` (shown as "—"), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from core.config import Mode
from core.feed_state import BookStatus, ConnectionState
from core.model import ExchangeOrder, Trade
from core.trading_state import KillPhase, TradingState

__all__ = [
    "BalanceView",
    "BookStatus",
    "BookView",
    "ConnectionState",
    "ConnectionView",
    "EngineSnapshot",
    "EventLevel",
    "EventView",
    "GaugeView",
    "KillPhase",
    "Mode",
    "PositionView",
    "StrategyView",
    "TapeView",
    "TradingState",
    "TradingView",
]


class EventLevel(StrEnum):
    """How loud one line of the event log is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ConnectionView:
    name: str  # "market" | "user" | "rest"
    state: ConnectionState
    attempt: int = 0  # consecutive failed connects while reconnecting
    last_message_age_s: float | None = None
    reconnects: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class BookView:
    """The top of one product's book. Levels are (price, size), best first."""

    product_id: str
    status: BookStatus
    version: int
    bids: tuple[tuple[float, float], ...] = ()
    asks: tuple[tuple[float, float], ...] = ()
    status_reason: str | None = None
    last_update_age_s: float | None = None
    resyncs: int = 0
    price_decimals: int = 2
    size_decimals: int = 8

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2

    @property
    def spread(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return self.asks[0][0] - self.bids[0][0]


@dataclass(frozen=True, slots=True)
class BalanceView:
    currency: str
    available: Decimal | None
    hold: Decimal | None

    @property
    def total(self) -> Decimal | None:
        if self.available is None or self.hold is None:
            return None
        return self.available + self.hold


@dataclass(frozen=True, slots=True)
class TapeView:
    """Recent public trades for one product, newest first."""

    product_id: str
    version: int
    trades: tuple[Trade, ...] = ()


@dataclass(frozen=True, slots=True)
class EventView:
    """One line of the event log (fills, denials with their reason, disconnects, kill switch)."""

    time: float  # wall-clock seconds
    level: EventLevel
    text: str


@dataclass(frozen=True, slots=True)
class TradingView:
    """The trading state banner and the kill switch's progress."""

    state: TradingState
    cause: str
    source: str
    reconciling: bool
    kill_phase: KillPhase = KillPhase.IDLE
    kill_rounds: int = 0
    kill_still_open: int | None = None
    kill_took_ms: float | None = None
    kill_waiting: str | None = None  # what the kill's sweep is waiting for (issue 9 §2)


@dataclass(frozen=True, slots=True)
class PositionView:
    product_id: str
    size: Decimal
    avg_entry: Decimal | None
    mark: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal
    fees: Decimal


@dataclass(frozen=True, slots=True)
class GaugeView:
    """One risk limit: how much is used (None = not known, shown as "—")."""

    name: str
    used: Decimal | None
    limit: Decimal
    unit: str
    subject: str | None = None

    @property
    def fraction(self) -> float | None:
        return None if self.used is None else float(self.used / self.limit)


@dataclass(frozen=True, slots=True)
class StrategyView:
    name: str
    paused: bool
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """Everything the screen shows, at one instant."""

    mode: Mode
    wall_time: float
    products: tuple[str, ...]
    selected_product: str
    book: BookView
    tape: TapeView
    connections: tuple[ConnectionView, ...]
    balances: tuple[BalanceView, ...] | None = None  # None until first loaded
    balances_version: int = 0
    open_orders: tuple[ExchangeOrder, ...] = ()
    orders_version: int = 0
    events: tuple[EventView, ...] = ()
    events_version: int = 0
    mid_history: tuple[float, ...] = field(default=())
    trading: TradingView | None = None
    # None until the account is known (balances loaded): "—", not "no positions".
    positions: tuple[PositionView, ...] | None = ()
    positions_version: int = 0
    equity: Decimal | None = None
    daily_pnl: Decimal | None = None
    gauges: tuple[GaugeView, ...] = ()
    strategy: StrategyView | None = None
