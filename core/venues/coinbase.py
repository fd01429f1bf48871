"""``CoinbaseVenue``: the venue port over Coinbase Advanced Trade (live, or the simulated
exchange in the demo): orders through ``CoinbaseRestClient``, updates from the user channel.

The user socket (``CoinbaseWebSocket``) feeds a ``UserStream``, which checks sequence numbers
and decodes the cumulative order updates; this adapter is its listener and forwards the
``ExchangeOrder``s of every message, snapshots included, to the ``VenueListener`` unchanged
(together, ``on_order_updates``: the order manager journals them in one commit), and
every stream reset (gap, garbage, disconnect) as ``on_stream_reset`` so the order manager
reconciles through REST. Nothing is deduplicated here: the order manager derives fills from
cumulative states and dedupes replays itself.

Errors: ``place`` never raises for an exchange answer (accepted / rejected / unknown, as the
REST client decides); a missing key is a rejection because nothing was sent. ``cancel``
answers one result per id, failures included. The read methods let ``CoinbaseError``
propagate: the order manager decides whether to retry or to stay in reconciliation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from core.clock import Clock
from core.coinbase.errors import CoinbaseError, NotFoundError
from core.coinbase.rest import CoinbaseRestClient
from core.coinbase.stream import FrameSink
from core.coinbase.user_messages import UserOrdersEvent
from core.coinbase.ws import CoinbaseWebSocket
from core.feed_state import ConnectionState
from core.model import Balance, ExchangeOrder, Fill, OrderSpec, Product
from core.user_stream import UserStream
from core.venue import CancelResult, CreateOrderOutcome, OrderNotFound, OrderRejected, VenueListener

log = logging.getLogger(__name__)

UserSocketFactory = Callable[[FrameSink], CoinbaseWebSocket]


class CoinbaseVenue:
    """The ``core.venue.Venue`` port for Coinbase. Also the ``UserStream``'s listener."""

    def __init__(
        self,
        rest: CoinbaseRestClient,
        *,
        user_socket_factory: UserSocketFactory | None,
        clock: Clock,
        name: str = "coinbase",
    ) -> None:
        self._rest = rest
        self._name = name
        self._listener: VenueListener | None = None
        self.user_stream = UserStream(self, clock=clock)
        # Without a factory (no key, or a test of REST alone) there is no user channel:
        # ``stream_connected`` stays False and the order manager relies on REST.
        self.user_socket: CoinbaseWebSocket | None = (
            user_socket_factory(self.user_stream) if user_socket_factory is not None else None
        )
        self._socket_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def name(self) -> str:
        return self._name

    @property
    def stream_connected(self) -> bool:
        socket = self.user_socket
        # Connected is not enough: a refused subscription keeps the socket open (user_stream).
        return (
            socket is not None
            and socket.status.state is ConnectionState.CONNECTED
            and self.user_stream.subscribed
        )

    @property
    def keeps_orders_across_restarts(self) -> bool:
        return True

    def set_listener(self, listener: VenueListener) -> None:
        self._listener = listener

    def bad_input_counts(self) -> dict[str, int]:
        """What the user stream refused or could not read, by kind."""
        return self.user_stream.bad_input.counts()

    async def start(self) -> None:
        """Run the user socket in the background (it reconnects on its own, forever)."""
        if self.user_socket is None or self._socket_task is not None:
            return
        self._socket_task = asyncio.create_task(
            self.user_socket.run(), name=f"{self._name}-user-socket"
        )

    async def stop(self) -> None:
        socket, task = self.user_socket, self._socket_task
        self._socket_task = None
        if socket is not None:
            await socket.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ UserOrderListener

    def on_user_orders(self, event: UserOrdersEvent) -> None:
        listener = self._listener
        if listener is None:
            return
        listener.on_order_updates(event.orders)

    def on_stream_reset(self, reason: str) -> None:
        log.info("%s: user stream reset: %s", self._name, reason)
        if self._listener is not None:
            self._listener.on_stream_reset(reason)

    # ------------------------------------------------------------------ orders

    async def place(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        """Create one order. A retry after an unknown outcome must reuse ``client_order_id``:
        the exchange then answers with the original order instead of placing a second one."""
        try:
            return await self._rest.create_order(spec, client_order_id)
        except ValueError as error:  # the spec cannot be expressed on the wire; nothing sent
            return OrderRejected("INVALID_ORDER_SPEC", str(error), "")
        except CoinbaseError as error:  # raised only before sending (no key configured)
            return OrderRejected(error.code or "UNAUTHENTICATED", error.message, "")

    async def cancel(self, order_ids: Sequence[str]) -> list[CancelResult]:
        if not order_ids:
            return []
        try:
            return await self._rest.cancel_orders(order_ids)
        except CoinbaseError as error:  # raised only before sending (no key configured)
            reason = error.code or type(error).__name__
            return [CancelResult(order_id, False, reason) for order_id in dict.fromkeys(order_ids)]

    # ------------------------------------------------------------------ reads

    async def list_open_orders(
        self, product_ids: Sequence[str] | None = None
    ) -> list[ExchangeOrder]:
        return await self._rest.list_open_orders(product_ids)

    async def list_orders_since(self, since: datetime | None) -> list[ExchangeOrder]:
        return await self._rest.list_orders(start_date=since)

    async def get_order(self, order_id: str) -> ExchangeOrder:
        try:
            return await self._rest.get_order(order_id)
        except NotFoundError as error:  # the port speaks venue-neutral errors
            raise OrderNotFound(order_id) from error

    async def list_fills(
        self, *, since: datetime | None = None, order_ids: Sequence[str] | None = None
    ) -> list[Fill]:
        return await self._rest.list_fills(order_ids=order_ids, start_sequence_timestamp=since)

    async def balances(self) -> list[Balance]:
        return await self._rest.list_accounts()

    async def products(self, product_ids: Sequence[str]) -> list[Product]:
        return await self._rest.list_products(product_ids)

    def add_products(self, products: Sequence[Product]) -> None:
        """Coinbase knows its own products: nothing to hand over."""
