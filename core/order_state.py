"""Order states, the one table of legal transitions between them, and ``ManagedOrder`` (one
order as the engine tracks it).

Its own module so that the order manager (``core/orders.py``) and the journal
(``core/journal.py``) can both depend on it without depending on each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from core.denials import Denial
from core.model import ExchangeOrder, ExchangeOrderStatus, OrderIntent

ZERO = Decimal(0)


# --------------------------------------------------------------------------- states


class OrderState(StrEnum):
    INITIALIZED = "INITIALIZED"  # intent journaled, not sent yet
    SUBMITTED = "SUBMITTED"  # the request is on its way
    ACCEPTED = "ACCEPTED"  # the exchange has it (PENDING / QUEUED / OPEN, nothing filled)
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"  # by the exchange (or never sendable: journal down, not at venue)
    DENIED = "DENIED"  # by our risk gate; never sent
    PENDING_CANCEL = "PENDING_CANCEL"
    UNKNOWN = "UNKNOWN"  # the send's outcome is unknown: reconciliation decides

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_working(self) -> bool:
        """At the exchange and able to trade (what a cancel can reach by order id)."""
        return self in WORKING_STATES


_S = OrderState
TERMINAL_STATES = frozenset({_S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED, _S.DENIED})
WORKING_STATES = frozenset({_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.PENDING_CANCEL})
STILL_OPEN_STATES = frozenset({_S.ACCEPTED, _S.PARTIALLY_FILLED})
EXCHANGE_DRIVEN_STATES = frozenset(
    {_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED}
)

# The one table of legal transitions. Anything else is logged and ignored.
# INITIALIZED -> exchange states: an order adopted as external is first seen already there.
# SUBMITTED/UNKNOWN -> anything the exchange reports: the stream may overtake the place answer.
# PENDING_CANCEL -> ACCEPTED/PARTIALLY_FILLED: the cancel was refused.
LEGAL_TRANSITIONS: Mapping[OrderState, frozenset[OrderState]] = {
    _S.INITIALIZED: frozenset({_S.SUBMITTED, _S.DENIED, _S.UNKNOWN, _S.PENDING_CANCEL})
    | EXCHANGE_DRIVEN_STATES,
    _S.SUBMITTED: EXCHANGE_DRIVEN_STATES | {_S.UNKNOWN, _S.PENDING_CANCEL},
    _S.UNKNOWN: EXCHANGE_DRIVEN_STATES | {_S.SUBMITTED, _S.PENDING_CANCEL},
    _S.ACCEPTED: frozenset(
        {_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED, _S.PENDING_CANCEL}
    ),
    _S.PARTIALLY_FILLED: frozenset({_S.FILLED, _S.CANCELED, _S.EXPIRED, _S.PENDING_CANCEL}),
    _S.PENDING_CANCEL: frozenset(
        {_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}
    ),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.DENIED: frozenset(),
}


def is_legal_transition(previous: OrderState, target: OrderState) -> bool:
    return target in LEGAL_TRANSITIONS[previous]


# Closed states the VENUE may re-open, outside the table above: what the venue reports about an
# order we sent wins over our own conclusion (closed as NOT_AT_VENUE when its POST was still on
# the way; cancelled or expired on a stale report). FILLED is complete (a report of less is
# old) and DENIED was never sent.
REOPENABLE_STATES = frozenset({_S.CANCELED, _S.EXPIRED, _S.REJECTED})


def can_reopen(previous: OrderState) -> bool:
    return previous in REOPENABLE_STATES


_STATUS_TO_STATE: Mapping[ExchangeOrderStatus, OrderState] = {
    ExchangeOrderStatus.PENDING: _S.ACCEPTED,
    ExchangeOrderStatus.QUEUED: _S.ACCEPTED,
    ExchangeOrderStatus.OPEN: _S.ACCEPTED,
    ExchangeOrderStatus.EDIT_QUEUED: _S.ACCEPTED,
    ExchangeOrderStatus.CANCEL_QUEUED: _S.PENDING_CANCEL,
    ExchangeOrderStatus.FILLED: _S.FILLED,
    ExchangeOrderStatus.CANCELLED: _S.CANCELED,
    ExchangeOrderStatus.EXPIRED: _S.EXPIRED,
    ExchangeOrderStatus.FAILED: _S.REJECTED,
}


def state_for_exchange_order(order: ExchangeOrder) -> OrderState | None:
    """Our state for what the exchange reports; None for UNKNOWN_ORDER_STATUS (keep ours)."""
    state = _STATUS_TO_STATE.get(order.status)
    if state is _S.ACCEPTED and order.pending_cancel:
        return _S.PENDING_CANCEL
    if state is _S.ACCEPTED and order.filled_size > 0:
        return _S.PARTIALLY_FILLED
    return state


@dataclass(slots=True, kw_only=True)
class ManagedOrder:
    """One order as we track it. ``filled_*`` are the cumulative figures of journaled fills."""

    client_order_id: str
    intent: OrderIntent
    state: OrderState
    order_id: str | None = None
    external: bool = False
    filled_size: Decimal = ZERO
    filled_value: Decimal = ZERO
    total_fees: Decimal = ZERO
    denial: Denial | None = None
    reject_code: str | None = None
    reject_message: str | None = None
    created_at: float
    updated_at: float

    @property
    def product_id(self) -> str:
        return self.intent.spec.product_id

    @property
    def average_price(self) -> Decimal | None:
        """Volume-weighted fill price; None until something filled (never a fake 0)."""
        return self.filled_value / self.filled_size if self.filled_size > 0 else None

    @property
    def is_open(self) -> bool:
        """Counts against open-order limits: sent (or maybe sent) and not finished."""
        return not self.state.is_terminal and self.state is not _S.INITIALIZED

    def copy(self) -> ManagedOrder:
        return dataclasses.replace(self)
