"""The venue port: where orders go. Adapters: Coinbase (REST + user channel; live and the
demo against the simulated exchange) and Paper (fills simulated on the live L2 book).

Order updates arrive as the CUMULATIVE state of one order (``ExchangeOrder``: filled size,
filled value, fees so far), whatever the adapter: that is what Coinbase's user channel sends,
and the paper venue speaks the same way, so the order manager derives fills one way only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from core.model import Balance, ExchangeOrder, Fill, OrderSpec, PlacedOrder, Product

if TYPE_CHECKING:
    from core.feed_state import WsStatus

# --------------------------------------------------------------------------- outcomes
# What a venue answers, in the venue's neutral terms; each adapter translates its own wire
# (Coinbase JSON, the paper fill model) into these.


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    """The exchange placed the order (``success: true``)."""

    placed: PlacedOrder


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The exchange refused the order before placing it; nothing rests on the book."""

    code: str
    message: str
    details: str
    preview_failure_reason: str | None = None
    new_order_failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderOutcomeUnknown:
    """No trustworthy answer (timeout, 5xx, garbled body): the order may exist. Reconcile, and
    if it must be sent again, send it with the SAME client_order_id."""

    reason: str


CreateOrderOutcome = OrderAccepted | OrderRejected | OrderOutcomeUnknown


@dataclass(frozen=True, slots=True)
class CancelResult:
    order_id: str
    success: bool
    failure_reason: str | None


class OrderNotFound(LookupError):
    """The venue does not know this order id (a venue-neutral 404)."""


class WsStatusSource(Protocol):
    """A connection whose status the console shows (the Coinbase WebSocket client)."""

    @property
    def status(self) -> WsStatus: ...


class VenueListener(Protocol):
    def on_order_update(self, order: ExchangeOrder) -> None:
        """The latest cumulative state of one of our orders (may repeat after reconnects)."""
        ...

    def on_order_updates(self, orders: Sequence[ExchangeOrder]) -> None:
        """Updates that arrived together (one user-channel message), in order: the same as
        ``on_order_update`` for each, which lets the listener journal them in one commit."""
        ...

    def on_stream_reset(self, reason: str) -> None:
        """Updates may have been missed (gap, reconnect, garbage): reconcile through REST."""
        ...


class Venue(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def stream_connected(self) -> bool:
        """True while order updates flow (the user channel is up; always True for paper)."""
        ...

    @property
    def keeps_orders_across_restarts(self) -> bool:
        """False for a venue that starts empty (paper): orders journaled open by an earlier
        session are not there any more and are closed at start."""
        ...

    def set_listener(self, listener: VenueListener) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def place(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        """Accepted, rejected, or unknown (timeout/5xx/disconnect: reconcile, never re-id)."""
        ...

    async def cancel(self, order_ids: Sequence[str]) -> list[CancelResult]:
        """Cancel any number of orders (the adapter batches by at most 100)."""
        ...

    async def list_open_orders(
        self, product_ids: Sequence[str] | None = None
    ) -> list[ExchangeOrder]:
        """Every order still open or cancelable: PENDING, OPEN, QUEUED, CANCEL_QUEUED included."""
        ...

    async def list_orders_since(self, since: datetime | None) -> list[ExchangeOrder]:
        """Recent orders in any status (to find a client_order_id after an UNKNOWN outcome)."""
        ...

    async def get_order(self, order_id: str) -> ExchangeOrder: ...

    async def list_fills(
        self, *, since: datetime | None = None, order_ids: Sequence[str] | None = None
    ) -> list[Fill]: ...

    async def balances(self) -> list[Balance]: ...

    async def products(self, product_ids: Sequence[str]) -> list[Product]: ...

    def add_products(self, products: Sequence[Product]) -> None:
        """The increments and limits of the products traded (paper fills need them; a
        venue that knows them itself ignores this)."""
        ...

    @property
    def user_socket(self) -> WsStatusSource | None:
        """The user-channel connection, for its status on screen (None: there is none)."""
        ...

    def bad_input_counts(self) -> Mapping[str, int]:
        """Malformed or refused input on the venue's own stream (the user channel), by kind
        (empty for a venue without one)."""
        ...
