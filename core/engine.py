"""The engine: wires the Coinbase client, the market data service and our own orders.

One ``Engine`` serves every mode that talks the Coinbase protocol: the demo (against the
built-in simulated exchange over loopback) and live use the same REST client, the same two
WebSocket connections (market: level2 + market_trades + ticker; user: user) and the same
decoding. The UI reads ``snapshot()``; the engine never awaits the UI.

What runs under ``run()``:
- the market socket feeding ``MarketDataService`` (books, trades, tickers, integrity);
- the user socket feeding ``UserStream`` -> our open orders, reconciled through REST whenever
  the stream may have missed something (start, reconnect, sequence gap);
- a maintenance loop (about 2 Hz): book staleness checks, balance refreshes, connection and
  book state changes turned into event-log lines, the mid-price history for the chart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from core.clock import Clock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.errors import CoinbaseError
from core.coinbase.rest import CoinbaseRestClient
from core.coinbase.stream import FrameSink, Subscription
from core.coinbase.user_messages import UserOrdersEvent
from core.coinbase.ws import CoinbaseWebSocket, WsState, WsStatus
from core.config import Credentials, Settings, resolve_credentials
from core.market import BookState, MarketDataService
from core.model import ExchangeOrder, Product
from core.snapshot import (
    BalanceView,
    BookStatus,
    BookView,
    ConnectionState,
    ConnectionView,
    EngineSnapshot,
    EventView,
    TapeView,
)
from core.user_stream import UserStream

log = logging.getLogger(__name__)

BOOK_DEPTH = 25
TAPE_LENGTH = 60
EVENT_LOG_LENGTH = 500
MID_HISTORY_LENGTH = 240
MAINTENANCE_PERIOD_S = 0.5
BALANCE_REFRESH_S = 5.0


@dataclass(frozen=True, slots=True)
class ExchangeEndpoints:
    """Where the exchange is and the key that opens it (real Coinbase or the simulated one)."""

    rest_url: str
    ws_market_url: str
    ws_user_url: str
    credentials: Credentials | None
    ca_cert_path: Path | None = None  # extra certificate to trust (the sim's self-signed one)

    @classmethod
    def from_settings(cls, settings: Settings) -> ExchangeEndpoints:
        return cls(
            rest_url=settings.exchange.rest_url,
            ws_market_url=settings.exchange.ws_market_url,
            ws_user_url=settings.exchange.ws_user_url,
            credentials=resolve_credentials(settings.credentials),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_cert_path is None:
            return None
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(self.ca_cert_path))
        return context


class Engine:
    """Market data, our orders and balances for one exchange connection."""

    def __init__(
        self,
        settings: Settings,
        endpoints: ExchangeEndpoints,
        *,
        clock: Clock,
        mode: str,
    ) -> None:
        self._settings = settings
        self._endpoints = endpoints
        self._clock = clock
        self.mode = mode
        self.products: tuple[str, ...] = tuple(settings.market.products)
        exchange = settings.exchange
        context = endpoints.ssl_context()

        self._signer: JwtSigner | None = None
        if endpoints.credentials is not None:
            self._signer = JwtSigner(
                endpoints.credentials, clock, rest_host_from_url(endpoints.rest_url)
            )
        self.rest = CoinbaseRestClient(
            endpoints.rest_url,
            self._signer,
            clock=clock,
            timeout_s=exchange.request_timeout_s,
            connect_timeout_s=exchange.connect_timeout_s,
            private_rate_per_s=exchange.private_rate_per_s,
            public_rate_per_s=exchange.public_rate_per_s,
            verify=context if context is not None else True,
        )
        self.market = MarketDataService(
            self.products,
            clock=clock,
            trades_buffer=settings.market.trades_buffer,
            candles_buffer=settings.market.candles_buffer,
            tickers_buffer=settings.market.tickers_buffer,
            stale_after_s=settings.market.stale_after_s,
        )
        self._ssl_context = context
        self.market_socket = self._socket(
            "market",
            endpoints.ws_market_url,
            [
                Subscription("level2", self.products),
                Subscription("market_trades", self.products),
                Subscription("ticker", self.products),
            ],
            self.market,
        )
        self.user_stream = UserStream(_OpenOrders(self), clock=clock)
        self.user_socket: CoinbaseWebSocket | None = None
        if endpoints.credentials is not None:
            self.user_socket = self._socket(
                "user", endpoints.ws_user_url, [Subscription("user", ())], self.user_stream
            )

        self._product_info: dict[str, Product] = {}
        self._balances: tuple[BalanceView, ...] | None = None
        self._balances_version = 0
        self._balances_due = True
        self._open_orders: dict[str, ExchangeOrder] = {}
        self._orders_version = 0
        self._orders_need_reconcile = True
        self._events: deque[EventView] = deque(maxlen=EVENT_LOG_LENGTH)
        self._events_version = 0
        self._mid_history: dict[str, deque[float]] = {
            product_id: deque(maxlen=MID_HISTORY_LENGTH) for product_id in self.products
        }
        self._last_connection_states: dict[str, WsState] = {}
        self._last_book_states: dict[str, BookState] = {}
        self._last_balance_refresh = -BALANCE_REFRESH_S
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()

    def _socket(
        self, name: str, url: str, subscriptions: list[Subscription], sink: FrameSink
    ) -> CoinbaseWebSocket:
        exchange = self._settings.exchange
        return CoinbaseWebSocket(
            name,
            url,
            subscriptions,
            sink,
            clock=self._clock,
            token_factory=self._signer.ws_token if self._signer is not None else None,
            max_message_bytes=exchange.ws_max_message_bytes,
            silence_timeout_s=exchange.ws_silence_timeout_s,
            reconnect_initial_s=exchange.reconnect_initial_s,
            reconnect_max_s=exchange.reconnect_max_s,
            ssl_context=self._ssl_context,
        )

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until ``stop()``. Network trouble is reported, never raised."""
        self.add_event("info", f"{self.mode} mode: connecting to {self._endpoints.rest_url}")
        sockets = [self.market_socket]
        if self.user_socket is not None:
            sockets.append(self.user_socket)
        else:
            self.add_event("warning", "no API key: market data only, no balances or orders")
        self._tasks = [asyncio.create_task(socket.run()) for socket in sockets]
        self._tasks.append(asyncio.create_task(self._load_products()))
        try:
            while not self._stopped.is_set():
                await self._maintain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), MAINTENANCE_PERIOD_S)
        finally:
            await self._shutdown()

    async def stop(self) -> None:
        self._stopped.set()

    async def _shutdown(self) -> None:
        await self.market_socket.stop()
        if self.user_socket is not None:
            await self.user_socket.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.rest.aclose()

    # ------------------------------------------------------------------ maintenance

    async def _maintain(self) -> None:
        self.market.check_staleness()
        self._note_connection_changes()
        self._note_book_changes()
        for product_id in self.products:
            mid = self.market.book(product_id).mid()
            if mid is not None:
                self._mid_history[product_id].append(mid)
        if self._signer is None:
            return
        now = self._clock.monotonic()
        if self._orders_need_reconcile and self._user_connected():
            await self._reconcile_open_orders()
        if self._balances_due or now - self._last_balance_refresh >= BALANCE_REFRESH_S:
            await self._refresh_balances()

    def _user_connected(self) -> bool:
        return self.user_socket is not None and self.user_socket.status.state is WsState.CONNECTED

    async def _load_products(self) -> None:
        try:
            products = await self.rest.list_products(self.products)
        except CoinbaseError as exc:
            self.add_event("warning", f"product details unavailable: {exc}")
            return
        self._product_info = {product.product_id: product for product in products}

    async def _refresh_balances(self) -> None:
        self._last_balance_refresh = self._clock.monotonic()
        self._balances_due = False
        try:
            balances = await self.rest.list_accounts()
        except CoinbaseError as exc:
            self.add_event("warning", f"balances not refreshed: {exc}")
            return
        views = tuple(
            BalanceView(balance.currency, balance.available, balance.hold)
            for balance in sorted(balances, key=lambda b: (b.currency != "USD", b.currency))
        )
        if views != self._balances:
            self._balances = views
            self._balances_version += 1

    async def _reconcile_open_orders(self) -> None:
        """Replace our picture of open orders with the exchange's (after any stream doubt)."""
        self._orders_need_reconcile = False
        try:
            orders = await self.rest.list_open_orders()
        except CoinbaseError as exc:
            self._orders_need_reconcile = True
            self.add_event("warning", f"open orders not reconciled: {exc}")
            return
        self._open_orders = {order.order_id: order for order in orders}
        self._orders_version += 1

    def _note_connection_changes(self) -> None:
        for status in self._socket_statuses():
            previous = self._last_connection_states.get(status.name)
            if previous is status.state:
                continue
            self._last_connection_states[status.name] = status.state
            if status.state is WsState.CONNECTED:
                self.add_event("info", f"{status.name} stream connected")
            elif status.state is WsState.RECONNECTING and previous is not None:
                why = f": {status.last_error}" if status.last_error else ""
                self.add_event("warning", f"{status.name} stream lost{why}; reconnecting")

    def _note_book_changes(self) -> None:
        for product_id in self.products:
            health = self.market.health(product_id)
            previous = self._last_book_states.get(product_id)
            if previous is health.state:
                continue
            self._last_book_states[product_id] = health.state
            if health.state is BookState.STALE:
                self.add_event("warning", f"{product_id} book STALE: {health.reason}; resyncing")
            elif health.state is BookState.LIVE and previous is BookState.STALE:
                self.add_event("info", f"{product_id} book rebuilt from a fresh snapshot")

    def add_event(self, level: str, text: str) -> None:
        self._events.append(EventView(self._clock.time(), level, text))
        self._events_version += 1
        log.log(logging.WARNING if level != "info" else logging.INFO, "%s", text)

    # ------------------------------------------------------------------ our orders

    def _apply_user_orders(self, event: UserOrdersEvent) -> None:
        if event.is_snapshot:
            self._open_orders = {}
        for order in event.orders:
            if order.status.is_open:
                self._open_orders[order.order_id] = order
            else:
                self._open_orders.pop(order.order_id, None)
        self._orders_version += 1
        # An order that filled or was cancelled moved money: refresh balances soon.
        self._balances_due = True

    def _stream_reset(self, reason: str) -> None:
        if not self._orders_need_reconcile:
            self.add_event("warning", f"{reason}; reconciling orders with REST")
        self._orders_need_reconcile = True

    # ------------------------------------------------------------------ the UI's view

    def _socket_statuses(self) -> list[WsStatus]:
        statuses = [self.market_socket.status]
        if self.user_socket is not None:
            statuses.append(self.user_socket.status)
        return statuses

    def snapshot(self, product_id: str | None = None) -> EngineSnapshot:
        selected = product_id if product_id in self.products else self.products[0]
        now = self._clock.monotonic()
        return EngineSnapshot(
            mode=self.mode,
            wall_time=self._clock.time(),
            products=self.products,
            selected_product=selected,
            book=self._book_view(selected, now),
            tape=TapeView(
                selected,
                self.market.version,
                tuple(reversed(list(self.market.trades(selected))[-TAPE_LENGTH:])),
            ),
            connections=tuple(_connection_view(s, now) for s in self._socket_statuses()),
            balances=self._balances,
            balances_version=self._balances_version,
            open_orders=tuple(
                sorted(self._open_orders.values(), key=lambda o: (o.product_id, o.order_id))
            ),
            orders_version=self._orders_version,
            events=tuple(self._events),
            events_version=self._events_version,
            mid_history=tuple(self._mid_history[selected]),
        )

    def _book_view(self, product_id: str, now: float) -> BookView:
        book = self.market.book(product_id)
        health = self.market.health(product_id)
        bids, asks = book.top(BOOK_DEPTH)
        info = self._product_info.get(product_id)
        return BookView(
            product_id=product_id,
            status=BookStatus[health.state.name],
            version=book.version,
            bids=tuple(bids),
            asks=tuple(asks),
            status_reason=health.reason,
            last_update_age_s=None
            if health.last_update_at is None
            else max(0.0, now - health.last_update_at),
            resyncs=health.resyncs,
            price_decimals=_decimals(info.price_increment) if info else 2,
            size_decimals=_decimals(info.base_increment) if info else 8,
        )


class _OpenOrders:
    """Adapter: the user stream's listener, forwarding to the engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_user_orders(self, event: UserOrdersEvent) -> None:
        self._engine._apply_user_orders(event)

    def on_stream_reset(self, reason: str) -> None:
        self._engine._stream_reset(reason)


def _connection_view(status: WsStatus, now: float) -> ConnectionView:
    return ConnectionView(
        name=status.name,
        state=ConnectionState[status.state.name],
        attempt=status.attempt,
        last_message_age_s=status.age_of_last_message(now),
        reconnects=status.reconnects,
        last_error=status.last_error,
    )


def _decimals(increment: Decimal) -> int:
    exponent = increment.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 2


__all__: Sequence[str] = ("Engine", "ExchangeEndpoints")
