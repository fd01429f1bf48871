"""The journal's error types and record types: what is written to and read from the SQLite
journal. Their own module so that writers (the order manager, the risk gate, the kill switch)
can name them while depending only on a narrow protocol of the journal, not on
``core/journal.py`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.denials import Denial
from core.model import Fill, IntentSource, Side
from core.order_state import OrderState

ZERO = Decimal(0)


class JournalError(RuntimeError):
    """The journal could not be opened or written (disk full, locked, corrupt, newer schema)."""


class DuplicateRecord(JournalError):
    """A row with the same unique key is already journaled (a replay); nothing was written."""


# --------------------------------------------------------------------------- record types


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One journaled fill.

    ``cumulative_size`` is the order's filled size after this fill: with ``order_id`` it is the
    unique key of a fill derived from cumulative updates (which carry no trade id), so a replay
    of the same cumulative update can never be journaled twice. ``value`` is the fill's exact
    quote value (the delta of the order's filled value); ``price`` = value / size may be rounded.
    ``trade_id`` is the exchange's trade id when known (REST fills), else None.
    """

    client_order_id: str
    fill: Fill
    value: Decimal
    cumulative_size: Decimal | None
    trade_id: str | None
    external: bool


@dataclass(frozen=True, slots=True)
class OrderStateRecord:
    client_order_id: str
    order_id: str | None
    state: OrderState
    cause: str
    at: float


@dataclass(frozen=True, slots=True)
class DenialRecord:
    client_order_id: str | None
    product_id: str
    side: Side
    source: IntentSource
    strategy_id: str | None
    denial: Denial
    at: float


@dataclass(frozen=True, slots=True)
class RiskEvent:
    kind: str
    detail: str
    at: float


@dataclass(frozen=True, slots=True)
class FlattenMarker:
    flatten_id: str
    detail: str
    started_at: float
    finished_at: float | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class FillTotals:
    """The sums of an order's journaled fills (what the exchange's cumulative figures must equal)."""

    size: Decimal = ZERO
    value: Decimal = ZERO
    fees: Decimal = ZERO
