"""An in-memory venue that behaves like an exchange, for the order manager's unit tests.

Orders rest until the test fills, cancels or expires them; every change is reported to the
listener as the order's CUMULATIVE state (like Coinbase's user channel), unless the stream is
"down". Outcomes of ``place`` can be scripted: reject, timeout after the order was created
(unknown to the caller, but the order exists), a 5xx before it was created (unknown, nothing
exists). A second ``place`` with a client_order_id already used returns the original order, as
the exchange deduplicates on it. Every call is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum

from core.clock import Clock
from core.model import (
    Balance,
    ExchangeOrder,
    ExchangeOrderStatus,
    Fill,
    OrderSpec,
    PlacedOrder,
    Product,
    Side,
)
from core.venue import (
    CancelResult,
    CreateOrderOutcome,
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
    VenueListener,
)

MAX_CANCEL_IDS = 100


class VenueDown(ConnectionError):
    """What a REST call raises while the fake venue is told to fail."""


class PlaceScript(Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # created, but the caller hears "unknown"
    ERROR_BEFORE_ACCEPT = "error_before_accept"  # 5xx: nothing created, caller hears "unknown"
    RAISE = "raise"  # the adapter itself blew up (nothing created)


@dataclass
class _Order:
    """The exchange's own record of one order."""

    order: ExchangeOrder
    history: list[ExchangeOrder] = field(default_factory=list)


class FakeVenue:
    """Implements ``core.venue.Venue`` in memory."""

    def __init__(self, clock: Clock, *, initial_status: ExchangeOrderStatus | None = None) -> None:
        self._clock = clock
        self._listener: VenueListener | None = None
        self._orders: dict[str, _Order] = {}
        self._by_client_id: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._scripts: deque[PlaceScript] = deque()
        self.initial_status = initial_status or ExchangeOrderStatus.OPEN
        self.streaming = True  # False: updates are not delivered (stream down)
        self.failing_lists = 0  # the next N list/get calls raise VenueDown
        self.failing_cancels = 0  # the next N cancel requests raise VenueDown
        self.hang_lists = 0  # the next N open-order listings never answer
        self.late_accepts = 0  # the next N POSTs time out; ``land_late_orders`` accepts them
        self._late: list[tuple[OrderSpec, str]] = []
        self.hide_from_lists: set[str] = set()  # client_order_ids lists do not show (lag)
        self.cancel_queues = False  # cancel answers CANCEL_QUEUED first, not CANCELLED
        self.reject_code = "INSUFFICIENT_FUND"
        self.duplicate_rejects = False  # reuse of a client_order_id answers DUPLICATE_...
        self.place_calls: list[tuple[OrderSpec, str]] = []
        self.cancel_calls: list[list[str]] = []
        self.list_calls = 0
        self.get_calls: list[str] = []
        self.before_place: Callable[[str], None] | None = None  # sees the id as it "leaves"
        self.hold_next_list: asyncio.Event | None = None  # the next listing waits for it
        self.list_held = asyncio.Event()  # set while a listing is held

    # ----------------------------------------------------------------- test controls

    def script(self, *outcomes: PlaceScript) -> None:
        """The next ``place`` calls answer these, in order (then ACCEPT)."""
        self._scripts.extend(outcomes)

    def land_late_orders(self) -> int:
        """The POSTs that timed out reach the exchange now (issue 9 §1: 14 s late)."""
        landed = 0
        for spec, client_order_id in self._late:
            if client_order_id in self._by_client_id:
                continue
            size = spec.base_size if spec.base_size is not None else spec.quote_size
            order = self._create(
                spec.product_id,
                spec.side,
                size or Decimal(0),
                spec.limit_price or Decimal(0),
                client_order_id,
                self.initial_status,
                spec.order_type.value,
            )
            self._publish(order.order_id)
            landed += 1
        self._late.clear()
        return landed

    def open_orders_now(self) -> list[ExchangeOrder]:
        """What the exchange holds open, whatever the test has made its listings do."""
        return [r.order for r in self._orders.values() if r.order.status.is_open]

    def adopt_from(self, other: FakeVenue) -> None:
        """Hold the other fake's orders (the same exchange seen by a restarted process)."""
        self._orders = other._orders
        self._by_client_id = other._by_client_id
        self._ids = other._ids

    def orders_for(self, client_order_id: str) -> list[ExchangeOrder]:
        """Every order the exchange holds with this client_order_id (must be 0 or 1)."""
        return [
            o.order for o in self._orders.values() if o.order.client_order_id == client_order_id
        ]

    def order(self, order_id: str) -> ExchangeOrder:
        return self._orders[order_id].order

    def order_id_for(self, client_order_id: str) -> str:
        return self._by_client_id[client_order_id]

    def history(self, order_id: str) -> list[ExchangeOrder]:
        """Every cumulative report of this order so far (to replay them)."""
        return list(self._orders[order_id].history)

    @property
    def all_orders(self) -> list[ExchangeOrder]:
        return [o.order for o in self._orders.values()]

    def fill(
        self, order_id: str, size: Decimal, price: Decimal, fee: Decimal = Decimal(0)
    ) -> ExchangeOrder:
        """Execute ``size`` at ``price``: cumulative figures grow; FILLED when nothing is left."""
        current = self._orders[order_id].order
        filled = current.filled_size + size
        value = current.filled_value + size * price
        total = current.base_size
        status = (
            ExchangeOrderStatus.FILLED
            if total is not None and filled >= total
            else ExchangeOrderStatus.OPEN
        )
        return self._update(
            order_id,
            status=status,
            filled_size=filled,
            filled_value=value,
            average_filled_price=value / filled,
            total_fees=current.total_fees + fee,
            number_of_fills=current.number_of_fills + 1,
            leaves_quantity=None if total is None else total - filled,
        )

    def expire(self, order_id: str) -> ExchangeOrder:
        return self._update(order_id, status=ExchangeOrderStatus.EXPIRED)

    def fail(self, order_id: str, reason: str) -> ExchangeOrder:
        return self._update(order_id, status=ExchangeOrderStatus.FAILED, reject_reason=reason)

    def set_status(self, order_id: str, status: ExchangeOrderStatus) -> ExchangeOrder:
        return self._update(order_id, status=status)

    def add_external(
        self,
        product_id: str,
        side: Side,
        size: Decimal,
        price: Decimal,
        *,
        client_order_id: str = "",
        status: ExchangeOrderStatus = ExchangeOrderStatus.OPEN,
    ) -> ExchangeOrder:
        """An order placed elsewhere (the website, another program)."""
        order = self._create(product_id, side, size, price, client_order_id, status, "LIMIT")
        self._publish(order.order_id)
        return order

    # ----------------------------------------------------------------- Venue

    @property
    def name(self) -> str:
        return "fake"

    @property
    def stream_connected(self) -> bool:
        return self.streaming

    def set_listener(self, listener: VenueListener) -> None:
        self._listener = listener

    keeps_orders_across_restarts = True

    @property
    def user_socket(self) -> None:
        return None

    def bad_input_counts(self) -> dict[str, int]:
        return {}

    def add_products(self, products: Sequence[Product]) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def place(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        self.place_calls.append((spec, client_order_id))
        if self.before_place is not None:
            self.before_place(client_order_id)
        script = self._scripts.popleft() if self._scripts else PlaceScript.ACCEPT
        existing = self._by_client_id.get(client_order_id)
        if existing is not None:
            return self._duplicate(existing)
        if script is PlaceScript.REJECT:
            return OrderRejected(self.reject_code, "not enough funds", "details")
        if script is PlaceScript.ERROR_BEFORE_ACCEPT:
            return OrderOutcomeUnknown("HTTP 503 before the order was created")
        if script is PlaceScript.RAISE:
            raise VenueDown("connection reset")
        if self.late_accepts > 0:
            self.late_accepts -= 1
            self._late.append((spec, client_order_id))
            return OrderOutcomeUnknown("timed out after 10 s (the POST is still on its way)")
        size = spec.base_size if spec.base_size is not None else spec.quote_size
        order = self._create(
            spec.product_id,
            spec.side,
            size or Decimal(0),
            spec.limit_price or Decimal(0),
            client_order_id,
            self.initial_status,
            spec.order_type.value,
        )
        self._publish(order.order_id)
        if script is PlaceScript.TIMEOUT_AFTER_ACCEPT:
            return OrderOutcomeUnknown("timed out after 10 s")
        return OrderAccepted(self._placed(order))

    async def cancel(self, order_ids: Sequence[str]) -> list[CancelResult]:
        ids = list(order_ids)
        self.cancel_calls.append(ids)
        if self.failing_cancels > 0:
            self.failing_cancels -= 1
            raise VenueDown("HTTP 429 Too Many Requests")
        if len(ids) > MAX_CANCEL_IDS:
            raise VenueDown(f"Too many orderIDs entered, limit is {MAX_CANCEL_IDS}")
        return [self._cancel_one(order_id) for order_id in ids]

    async def list_open_orders(
        self, product_ids: Sequence[str] | None = None
    ) -> list[ExchangeOrder]:
        if self.hang_lists > 0:
            self.hang_lists -= 1
            await asyncio.Event().wait()  # a server that never answers
        self._maybe_fail()
        return [
            o
            for o in self._listable()
            if o.status.is_open and (not product_ids or o.product_id in product_ids)
        ]

    async def list_orders_since(self, since: datetime | None) -> list[ExchangeOrder]:
        if self.hold_next_list is not None:
            release, self.hold_next_list = self.hold_next_list, None
            self.list_held.set()
            await release.wait()
        self._maybe_fail()
        return [
            o
            for o in self._listable()
            if since is None or o.created_time is None or o.created_time >= since
        ]

    async def get_order(self, order_id: str) -> ExchangeOrder:
        self.get_calls.append(order_id)
        self._maybe_fail()
        return self._orders[order_id].order

    async def list_fills(
        self, *, since: datetime | None = None, order_ids: Sequence[str] | None = None
    ) -> list[Fill]:
        return []

    async def balances(self) -> list[Balance]:
        return []

    async def products(self, product_ids: Sequence[str]) -> list[Product]:
        return []

    # ----------------------------------------------------------------- internals

    def _create(
        self,
        product_id: str,
        side: Side,
        size: Decimal,
        price: Decimal,
        client_order_id: str,
        status: ExchangeOrderStatus,
        order_type: str,
    ) -> ExchangeOrder:
        order_id = f"ex-{next(self._ids)}"
        order = ExchangeOrder(
            order_id=order_id,
            client_order_id=client_order_id,
            product_id=product_id,
            side=side,
            status=status,
            order_type=order_type,
            time_in_force="GOOD_UNTIL_CANCELLED",
            base_size=size,
            limit_price=price,
            leaves_quantity=size,
            created_time=datetime.fromtimestamp(self._clock.time(), tz=UTC),
        )
        self._orders[order_id] = _Order(order, [order])
        if client_order_id:
            self._by_client_id[client_order_id] = order_id
        return order

    def _update(self, order_id: str, **changes: object) -> ExchangeOrder:
        record = self._orders[order_id]
        record.order = dataclasses.replace(record.order, **changes)  # type: ignore[arg-type]
        record.history.append(record.order)
        self._publish(order_id)
        return record.order

    def _publish(self, order_id: str) -> None:
        if self.streaming and self._listener is not None:
            self._listener.on_order_update(self._orders[order_id].order)

    def _duplicate(self, order_id: str) -> CreateOrderOutcome:
        if self.duplicate_rejects:
            return OrderRejected("DUPLICATE_CLIENT_ORDER_ID", "duplicate", "")
        return OrderAccepted(self._placed(self._orders[order_id].order))

    @staticmethod
    def _placed(order: ExchangeOrder) -> PlacedOrder:
        return PlacedOrder(order.order_id, order.client_order_id, order.product_id, order.side)

    def _cancel_one(self, order_id: str) -> CancelResult:
        record = self._orders.get(order_id)
        if record is None:
            return CancelResult(order_id, False, "UNKNOWN_CANCEL_ORDER")
        if not record.order.status.is_open:
            return CancelResult(order_id, False, "UNKNOWN_CANCEL_ORDER")
        if record.order.status is ExchangeOrderStatus.CANCEL_QUEUED:
            return CancelResult(order_id, False, "DUPLICATE_CANCEL_REQUEST")
        status = (
            ExchangeOrderStatus.CANCEL_QUEUED
            if self.cancel_queues
            else ExchangeOrderStatus.CANCELLED
        )
        self._update(order_id, status=status)
        return CancelResult(order_id, True, None)

    def _listable(self) -> list[ExchangeOrder]:
        self.list_calls += 1
        return [
            record.order
            for record in self._orders.values()
            if record.order.client_order_id not in self.hide_from_lists
        ]

    def _maybe_fail(self) -> None:
        if self.failing_lists > 0:
            self.failing_lists -= 1
            raise VenueDown("HTTP 502 from the list endpoint")
