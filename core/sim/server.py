"""The simulated exchange's network face: Coinbase Advanced Trade REST + WebSocket over aiohttp.

REST lives under ``/api/v3/brokerage`` (protocol reference §2), WebSocket at ``/ws`` (market)
and ``/ws/user`` (user); both sockets accept every channel (§3). The engine calls this
server synchronously (``SimListener``) as books change and orders fill; the server batches
those calls and, on every ``flush()``, serializes each product's events ONCE and splices each
connection's own ``sequence_num`` into the encoded envelope (``wire.EncodedMessage``).

A background task steps the market agents every ``tick_s`` with the real elapsed time (by
the injected clock), expires GTD orders and flushes; heartbeats go out every second.

Slow clients: each connection has a bounded send queue (``max_queue_messages``). A client
that lets it overflow is closed with code 1011 (and its TCP connection aborted if even the
close cannot be written within 2 s), so one stuck reader never stalls the others.
A connection that subscribes to nothing within ``subscribe_timeout_s`` (5 s, like Coinbase)
is closed with code 1008 (policy violation).

Besides Coinbase's API, ``GET /sim/stats`` (no auth, outside the API prefix) returns the
server's counters for benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

import orjson
from aiohttp import WSMsgType, web

from core.clock import Clock
from core.config import Credentials
from core.model import ExchangeOrderStatus, Product, Side, decimal_str
from core.sim import wire
from core.sim.faults import FaultInjector, FaultPlan, RestFaultKind, WsFaultKind
from core.sim.jwt_verify import DemoKey, JwtVerifier, KeyAlgorithm
from core.sim.tls import TlsMaterial, generate_self_signed
from core.sim.types import (
    SimAccount,
    SimCancelResult,
    SimCandle,
    SimFill,
    SimListener,
    SimOrder,
    SimOrderRequest,
    SimOrderResult,
    SimTicker,
    SimTrade,
)

log = logging.getLogger(__name__)

_USER_ID: Final = web.RequestKey("user_id", str)
_LOSE_RESPONSE: Final = web.RequestKey("lose_response", bool)

API_PREFIX: Final = "/api/v3/brokerage"
DEMO_USER_ID: Final = "demo-user"
MAX_CANCEL_IDS: Final = 100
MAX_CANDLES: Final = 350
GRANULARITY_S: Final = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600,
    "TWO_HOUR": 7200,
    "SIX_HOUR": 21600,
    "ONE_DAY": 86400,
}
# Channels whose subscribe message must carry a valid JWT.
AUTH_CHANNELS: Final = frozenset({"user", "futures_balance_summary"})
# Channels that are about products and need product_ids to subscribe.
PRODUCT_CHANNELS: Final = frozenset(
    {"level2", "ticker", "ticker_batch", "market_trades", "candles"}
)
KNOWN_CHANNELS: Final = PRODUCT_CHANNELS | AUTH_CHANNELS | {"heartbeats", "status"}
WS_CANDLE_GRANULARITY_S: Final = 300  # the candles channel pushes 5-minute buckets
TICKER_BATCH_INTERVAL_S: Final = 5.0
MAX_STEP_S: Final = 0.1  # the longest market step the background loop takes at once
_CLOSE_WRITE_TIMEOUT_S: Final = 2.0
_MALFORMED_FRAME: Final = '{"channel":"l2_data","client_id":"","sequence_num":'  # cut short
_HTML_429: Final = (
    "<html><head><title>429 Too Many Requests</title></head><body><center>"
    "<h1>429 Too Many Requests</h1></center><hr><center>cloudflare</center></body></html>"
)


class ExchangeApi(Protocol):
    """What the server needs of ``core.sim.exchange.SimExchange`` (the engine's contract)."""

    @property
    def products(self) -> Mapping[str, Product]: ...

    def add_listener(self, listener: SimListener) -> None: ...

    def accounts(self, user_id: str) -> list[SimAccount]: ...

    def fee_rates(self, user_id: str) -> tuple[Decimal, Decimal]: ...

    def create_order(self, user_id: str, request: SimOrderRequest) -> SimOrderResult: ...

    def cancel_orders(self, user_id: str, order_ids: Sequence[str]) -> list[SimCancelResult]: ...

    def get_order(self, user_id: str, order_id: str) -> SimOrder | None: ...

    def list_orders(
        self,
        user_id: str,
        *,
        product_ids: Sequence[str] | None = None,
        statuses: Sequence[ExchangeOrderStatus] | None = None,
        order_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SimOrder]: ...

    def list_fills(
        self,
        user_id: str,
        *,
        order_ids: Sequence[str] | None = None,
        product_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SimFill]: ...

    def book_levels(
        self, product_id: str, depth: int | None = None
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]: ...

    def recent_trades(self, product_id: str, limit: int) -> list[SimTrade]: ...

    def candles(
        self, product_id: str, start: int, end: int, granularity_s: int
    ) -> list[SimCandle]: ...

    def ticker(self, product_id: str) -> SimTicker: ...

    def expire_orders(self) -> None: ...


class AgentsApi(Protocol):
    """What the server needs of ``core.sim.agents.MarketAgents``."""

    def step(self, dt: float) -> None: ...


@dataclass(frozen=True, slots=True)
class SimEndpoints:
    """Where a running sim listens and the demo key that opens it."""

    rest_url: str  # e.g. http://127.0.0.1:8123 (no /api/v3/brokerage, like exchange.rest_url)
    ws_market_url: str
    ws_user_url: str
    credentials: Credentials
    user_id: str = DEMO_USER_ID
    ca_cert_path: Path | None = None  # the self-signed certificate to trust, with --tls

    @property
    def rest_host(self) -> str:
        """``host:port``, as the JWT ``uri`` claim and the official SDK's base_url want it."""
        return self.rest_url.split("://", 1)[1]

    def to_handshake(self) -> dict[str, Any]:
        """The launcher's one-line JSON handshake (carries the demo key to the parent)."""
        return {
            "rest_url": self.rest_url,
            "ws_market_url": self.ws_market_url,
            "ws_user_url": self.ws_user_url,
            "key_name": self.credentials.key_name,
            "private_key": self.credentials.private_key,
            "user_id": self.user_id,
            "ca_cert_path": str(self.ca_cert_path) if self.ca_cert_path else None,
        }

    @classmethod
    def from_handshake(cls, data: Mapping[str, Any]) -> SimEndpoints:
        ca = data.get("ca_cert_path")
        return cls(
            rest_url=str(data["rest_url"]),
            ws_market_url=str(data["ws_market_url"]),
            ws_user_url=str(data["ws_user_url"]),
            credentials=Credentials(str(data["key_name"]), str(data["private_key"])),
            user_id=str(data.get("user_id") or DEMO_USER_ID),
            ca_cert_path=Path(ca) if ca else None,
        )


class _ApiError(Exception):
    """A client mistake, answered with Coinbase's error body."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class _Connection:
    """One WebSocket client: its subscriptions, its sequence counter and its send queue."""

    _ids = itertools.count(1)

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, max_queue: int) -> None:
        self.id = next(self._ids)
        self.ws = ws
        self.request = request
        self.max_queue = max_queue
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()
        self.sequence = 0
        self.subscriptions: dict[str, set[str]] = {}
        self.user_id: str | None = None
        self.ever_subscribed = False
        self.closing = False
        self.pending_skip = 0
        self.pending_malformed = 0
        self.writer: asyncio.Task[None] | None = None

    def next_sequence(self) -> int:
        number = self.sequence
        self.sequence += 1
        return number


class SimServer:
    """Serves a ``SimExchange`` as Coinbase Advanced Trade on loopback (``start``/``stop``)."""

    def __init__(
        self,
        exchange: ExchangeApi,
        agents: AgentsApi | None,
        *,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        faults: FaultPlan | None = None,
        demo_key_algorithm: KeyAlgorithm = "ES256",
        seed: int = 0,
        demo_user_id: str = DEMO_USER_ID,
        subscribe_timeout_s: float = 5.0,
        heartbeat_interval_s: float = 1.0,
        tick_s: float = 0.025,
        max_queue_messages: int = 4096,
    ) -> None:
        self.exchange = exchange
        self.agents = agents
        # USDC aliases, as on Coinbase: BTC-USDC is listed with ``alias`` BTC-USD, and a
        # market-channel subscription to it is answered with BTC-USD's data, keyed BTC-USD.
        self.aliases: dict[str, str] = {
            f"{product_id[:-4]}-USDC": product_id
            for product_id in exchange.products
            if product_id.endswith("-USD")
        }
        self.clock = clock
        self.host = host
        self.port = port
        self.tls = tls
        self.demo_key = DemoKey.derive(seed, demo_key_algorithm)
        self.demo_user_id = demo_user_id
        self.verifier = JwtVerifier(clock)
        self.verifier.register(self.demo_key, demo_user_id)
        self.faults = FaultInjector(faults, seed=seed, clock=clock)
        self.faults.attach(self)
        self.subscribe_timeout_s = subscribe_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.tick_s = tick_s
        self.max_queue_messages = max_queue_messages
        self.endpoints: SimEndpoints | None = None
        self.tls_material: TlsMaterial | None = None
        self.started_at = datetime.fromtimestamp(clock.time(), tz=UTC)
        # Counters for benchmarks and tests: book changes seen while someone watched level2,
        # level updates put on the wire after batching, messages written, slow clients cut.
        self.stats: dict[str, int] = dict.fromkeys(
            ("book_changes", "l2_levels_sent", "messages_sent", "slow_client_closes"), 0
        )

        self._connections: set[_Connection] = set()
        self._product_subs: dict[tuple[str, str], set[_Connection]] = {}
        self._channel_subs: dict[str, set[_Connection]] = {}
        self._user_subs: dict[str, set[_Connection]] = {}
        self._pending_book: dict[str, dict[tuple[Side, Decimal], tuple[Decimal, datetime]]] = {}
        self._pending_trades: dict[str, list[SimTrade]] = {}
        self._pending_orders: dict[str, dict[str, SimOrder]] = {}
        self._ticker_batch_sent: dict[str, Decimal] = {}
        self._heartbeat_counter = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        exchange.add_listener(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> SimEndpoints:
        """Listen (port 0 = a free port) and start the market loop; return the endpoints."""
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        ssl_context = None
        if self.tls:
            self.tls_material = generate_self_signed(self.clock)
            ssl_context = self.tls_material.server_context()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        address = self._runner.addresses[0]
        port = int(address[1])
        self.port = port
        http, ws = ("https", "wss") if self.tls else ("http", "ws")
        self.endpoints = SimEndpoints(
            rest_url=f"{http}://{self.host}:{port}",
            ws_market_url=f"{ws}://{self.host}:{port}/ws",
            ws_user_url=f"{ws}://{self.host}:{port}/ws/user",
            credentials=self.demo_key.credentials,
            user_id=self.demo_user_id,
            ca_cert_path=self.tls_material.cert_path if self.tls_material else None,
        )
        self._tasks = [
            asyncio.create_task(self._market_loop(), name="sim-market-loop"),
            asyncio.create_task(self._periodic_loop(), name="sim-periodic-loop"),
        ]
        log.info("simulated exchange listening on %s", self.endpoints.rest_url)
        return self.endpoints

    async def stop(self) -> None:
        """Close every socket with 1001 Going Away (as a restart does) and stop listening."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        closes = [
            self._close(conn, 1001, "server shutting down") for conn in list(self._connections)
        ]
        if closes:
            await asyncio.gather(*closes, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tls_material is not None:
            self.tls_material.remove()
            self.tls_material = None

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ market loop

    def advance_market(self, dt: float) -> None:
        """Step the agents by ``dt`` seconds, expire GTD orders and flush the events."""
        # One flush per step: the agents' rate counts the distinct levels a step changes,
        # which is exactly what this flush sends (each level once, at its latest size).
        if self.agents is not None and dt > 0:
            self.agents.step(dt)
        self.exchange.expire_orders()
        self.flush()

    async def _market_loop(self) -> None:
        last = self.clock.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            now = self.clock.monotonic()
            # Capped: if a step ever takes longer than real time, the market slows down
            # instead of spiralling into ever bigger steps that starve REST and heartbeats.
            dt, last = min(now - last, MAX_STEP_S), now
            try:
                self.advance_market(dt)
            except Exception:
                # A bug in one step must not silence the market for good: log and go on.
                log.exception("market step failed")

    async def _periodic_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_batch = loop.time() + TICKER_BATCH_INTERVAL_S
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            try:
                self.send_heartbeats()
                self.send_candles()
                if loop.time() >= next_batch:
                    next_batch = loop.time() + TICKER_BATCH_INTERVAL_S
                    self.send_ticker_batch()
            except Exception:
                log.exception("periodic send failed")

    # ------------------------------------------------------------------ engine listener

    def on_book_change(
        self, product_id: str, side: Side, price: Decimal, new_size: Decimal, time: datetime
    ) -> None:
        if ("level2", product_id) not in self._product_subs:
            return
        self.stats["book_changes"] += 1
        levels = self._pending_book.get(product_id)
        if levels is None:
            levels = self._pending_book[product_id] = {}
        levels[(side, price)] = (new_size, time)

    def on_trade(self, trade: SimTrade) -> None:
        self._pending_trades.setdefault(trade.product_id, []).append(trade)

    def on_order_update(self, order: SimOrder) -> None:
        if order.user_id not in self._user_subs:
            return
        # Updates are cumulative, so the latest state of each order per flush is enough.
        self._pending_orders.setdefault(order.user_id, {})[order.order_id] = order

    def on_fill(self, fill: SimFill) -> None:
        """Fills reach clients through REST /fills and the cumulative user channel."""

    # ------------------------------------------------------------------ flushing

    def _timestamp(self) -> str:
        return wire.rfc3339(datetime.fromtimestamp(self.clock.time(), tz=UTC))

    def flush(self) -> None:
        """Encode what changed since the last flush, once per product, and queue it."""
        stamp = self._timestamp()
        if self._pending_book:
            pending, self._pending_book = self._pending_book, {}
            for product_id, levels in pending.items():
                subscribers = self._product_subs.get(("level2", product_id))
                if not subscribers:
                    continue
                updates = [
                    {
                        "side": wire.l2_side(side),
                        "event_time": wire.rfc3339(moment),
                        "price_level": decimal_str(price),
                        "new_quantity": decimal_str(size) if size else "0",
                    }
                    for (side, price), (size, moment) in levels.items()
                ]
                self.stats["l2_levels_sent"] += len(updates)
                event = {"type": "update", "product_id": product_id, "updates": updates}
                self._broadcast(subscribers, wire.encode_envelope("l2_data", stamp, [event]))
        if self._pending_trades:
            trades, self._pending_trades = self._pending_trades, {}
            for product_id, product_trades in trades.items():
                self._send_trades(product_id, product_trades, stamp)
        if self._pending_orders:
            orders, self._pending_orders = self._pending_orders, {}
            for user_id, by_id in orders.items():
                self._send_user_orders(user_id, list(by_id.values()), stamp)

    def _send_trades(self, product_id: str, trades: list[SimTrade], stamp: str) -> None:
        subscribers = self._product_subs.get(("market_trades", product_id))
        if subscribers:
            event = {
                "type": "update",
                "trades": [wire.encode_trade(trade) for trade in reversed(trades)],
            }
            self._broadcast(subscribers, wire.encode_envelope("market_trades", stamp, [event]))
        subscribers = self._product_subs.get(("ticker", product_id))
        if subscribers:
            ticker = wire.encode_ticker(self.exchange.ticker(product_id))
            event = {"type": "update", "tickers": [ticker]}
            self._broadcast(subscribers, wire.encode_envelope("ticker", stamp, [event]))

    def _send_user_orders(self, user_id: str, orders: list[SimOrder], stamp: str) -> None:
        connections = self._user_subs.get(user_id)
        if not connections:
            return
        encoded: dict[str, dict[str, Any]] = {o.order_id: wire.encode_user_order(o) for o in orders}
        shared: wire.EncodedMessage | None = None
        for conn in list(connections):
            products = conn.subscriptions.get("user", set())
            if products:  # a product filter: this connection gets its own subset
                chosen = [encoded[o.order_id] for o in orders if o.product_id in products]
                if chosen:
                    self._deliver(
                        conn, wire.encode_envelope("user", stamp, [_user_event("update", chosen)])
                    )
                continue
            if shared is None:
                event = _user_event("update", list(encoded.values()))
                shared = wire.encode_envelope("user", stamp, [event])
            self._deliver(conn, shared)

    def send_heartbeats(self) -> None:
        subscribers = self._channel_subs.get("heartbeats")
        self._heartbeat_counter += 1
        if not subscribers:
            return
        now = datetime.fromtimestamp(self.clock.time(), tz=UTC)
        event = {
            "current_time": now.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"),
            "heartbeat_counter": self._heartbeat_counter,  # an integer, as production sends
        }
        self._broadcast(subscribers, wire.encode_envelope("heartbeats", self._timestamp(), [event]))

    def _current_candles(self, product_id: str, buckets: int) -> list[SimCandle]:
        now = int(self.clock.time())
        start = now - now % WS_CANDLE_GRANULARITY_S - WS_CANDLE_GRANULARITY_S * (buckets - 1)
        return self.exchange.candles(product_id, start, now, WS_CANDLE_GRANULARITY_S)

    def send_candles(self) -> None:
        """Push the current 5-minute candle of every product someone watches (every second)."""
        stamp = self._timestamp()
        for (channel, product_id), subscribers in list(self._product_subs.items()):
            if channel != "candles" or not subscribers:
                continue
            candles = self._current_candles(product_id, 1)[:1]
            if candles:
                event = {
                    "type": "update",
                    "candles": [wire.encode_candle(c, product_id) for c in candles],
                }
                self._broadcast(subscribers, wire.encode_envelope("candles", stamp, [event]))

    def send_ticker_batch(self) -> None:
        """Send ticker_batch where the price moved since the last batch (every 5 s)."""
        stamp = self._timestamp()
        for (channel, product_id), subscribers in list(self._product_subs.items()):
            if channel != "ticker_batch" or not subscribers:
                continue
            ticker = self.exchange.ticker(product_id)
            if self._ticker_batch_sent.get(product_id) == ticker.price:
                continue
            self._ticker_batch_sent[product_id] = ticker.price
            event = {"type": "update", "tickers": [wire.encode_ticker(ticker, batch=True)]}
            self._broadcast(subscribers, wire.encode_envelope("ticker_batch", stamp, [event]))

    # ------------------------------------------------------------------ delivery

    def _broadcast(self, connections: Iterable[_Connection], message: wire.EncodedMessage) -> None:
        for conn in list(connections):
            self._deliver(conn, message)

    def _deliver(self, conn: _Connection, message: wire.EncodedMessage) -> None:
        """Queue one data message on one connection, applying faults and the slow-client rule."""
        if conn.closing:
            return
        faults = self.faults
        if faults.ws_active:
            fault = faults.ws_fault()
            if fault is not None:
                kind = fault.kind
                if kind is WsFaultKind.DROP:
                    self._abort(conn)
                    return
                if kind is WsFaultKind.CLOSE_1001:
                    self._spawn(self._close(conn, 1001, "going away"))
                    return
                if kind is WsFaultKind.SKIP:
                    conn.pending_skip += fault.skip
                elif kind is WsFaultKind.MALFORMED:
                    conn.pending_malformed += 1
        if faults.is_silent:
            conn.sequence += 1  # the message is lost, and so is its number
            return
        if conn.pending_skip:
            conn.sequence += conn.pending_skip
            conn.pending_skip = 0
        if conn.pending_malformed:
            conn.pending_malformed -= 1
            self._enqueue(conn, _MALFORMED_FRAME)
        self._enqueue(conn, message.with_sequence(conn.next_sequence()))

    def _send_raw(self, conn: _Connection, body: dict[str, Any]) -> None:
        """A message outside the sequence (``type: error``)."""
        self._enqueue(conn, orjson.dumps(body).decode())

    def _enqueue(self, conn: _Connection, text: str) -> None:
        if conn.closing:
            return
        if len(conn.queue) >= conn.max_queue:
            self.stats["slow_client_closes"] += 1
            log.warning(
                "websocket client %s too slow (%d queued): closing 1011", conn.id, len(conn.queue)
            )
            conn.queue.clear()
            self._spawn(self._close(conn, 1011, "slow consumer"))
            return
        conn.queue.append(text)
        conn.wake.set()

    async def _writer(self, conn: _Connection) -> None:
        ws = conn.ws
        try:
            while not conn.closing:
                await conn.wake.wait()
                conn.wake.clear()
                while conn.queue and not conn.closing:
                    await ws.send_str(conn.queue.popleft())
                    self.stats["messages_sent"] += 1
        except (ConnectionError, RuntimeError):
            self._abort(conn)

    def _abort(self, conn: _Connection) -> None:
        """Drop the TCP connection without a close frame."""
        conn.closing = True
        conn.queue.clear()
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    async def _close(self, conn: _Connection, code: int, reason: str) -> None:
        if conn.closing and conn.ws.closed:
            return
        conn.closing = True
        conn.queue.clear()
        conn.wake.set()
        try:
            await asyncio.wait_for(
                conn.ws.close(code=code, message=reason.encode()), _CLOSE_WRITE_TIMEOUT_S
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            self._abort(conn)

    # WsFaultTarget: the one-shot faults act on every open connection.

    def drop_websockets(self) -> int:
        connections = list(self._connections)
        for conn in connections:
            self._abort(conn)
        return len(connections)

    def close_websockets(self, code: int) -> int:
        connections = list(self._connections)
        for conn in connections:
            self._spawn(self._close(conn, code, "going away" if code == 1001 else "closed"))
        return len(connections)

    def skip_sequence(self, count: int) -> int:
        for conn in self._connections:
            conn.pending_skip += count
        return len(self._connections)

    def send_malformed(self) -> int:
        for conn in self._connections:
            self._enqueue(conn, _MALFORMED_FRAME)
        return len(self._connections)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------ WebSocket handling

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1024 * 1024, autoping=True)
        await ws.prepare(request)
        conn = _Connection(ws, request, self.max_queue_messages)
        self._connections.add(conn)
        conn.writer = asyncio.create_task(self._writer(conn), name=f"sim-ws-writer-{conn.id}")
        deadline = asyncio.get_running_loop().call_later(
            self.subscribe_timeout_s, self._close_if_idle, conn
        )
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_client_message(conn, message.data)
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            deadline.cancel()
            conn.closing = True
            conn.wake.set()
            self._forget(conn)
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer
        return ws

    def _close_if_idle(self, conn: _Connection) -> None:
        if not conn.ever_subscribed and not conn.closing:
            self._spawn(self._close(conn, 1008, "no subscription within the time limit"))

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        for channel, products in conn.subscriptions.items():
            self._unindex(conn, channel, products)
        conn.subscriptions.clear()

    def _index(self, conn: _Connection, channel: str, products: Iterable[str]) -> None:
        if channel in PRODUCT_CHANNELS:
            for product_id in products:
                self._product_subs.setdefault((channel, product_id), set()).add(conn)
        elif channel == "user":
            if conn.user_id is not None:
                self._user_subs.setdefault(conn.user_id, set()).add(conn)
        else:
            self._channel_subs.setdefault(channel, set()).add(conn)

    def _unindex(self, conn: _Connection, channel: str, products: Iterable[str]) -> None:
        def discard(index: dict[Any, set[_Connection]], key: Any) -> None:
            members = index.get(key)
            if members is not None:
                members.discard(conn)
                if not members:
                    del index[key]

        if channel in PRODUCT_CHANNELS:
            for product_id in products:
                discard(self._product_subs, (channel, product_id))
        elif channel == "user":
            if conn.user_id is not None:
                discard(self._user_subs, conn.user_id)
        else:
            discard(self._channel_subs, channel)

    def _on_client_message(self, conn: _Connection, data: str | bytes) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._send_raw(conn, {"type": "error", "message": "malformed message"})
            return
        if not isinstance(message, dict):
            self._send_raw(conn, {"type": "error", "message": "malformed message"})
            return
        kind = message.get("type")
        channel = message.get("channel")
        product_ids = message.get("product_ids") or []
        if kind not in ("subscribe", "unsubscribe"):
            self._send_raw(conn, {"type": "error", "message": f"unknown message type {kind!r}"})
            return
        # Coinbase answers an unknown channel name with the same words as a bad JWT (issue #92).
        if not isinstance(channel, str) or channel not in KNOWN_CHANNELS:
            self._send_raw(conn, {"type": "error", "message": "authentication failure"})
            return
        if not isinstance(product_ids, list) or not all(isinstance(p, str) for p in product_ids):
            self._send_raw(
                conn, {"type": "error", "message": "product_ids must be a list of strings"}
            )
            return
        if channel in PRODUCT_CHANNELS:
            # The alias's data is its target's: subscribe to the target (deduplicated).
            product_ids = list(dict.fromkeys(self.aliases.get(p, p) for p in product_ids))
        unknown = [p for p in product_ids if p not in self.exchange.products]
        if unknown:
            self._send_raw(
                conn,
                {
                    "type": "error",
                    "message": "Failed to subscribe",
                    "reason": f"{unknown[0]} is not a valid product",
                },
            )
            return
        if kind == "subscribe":
            self._subscribe(conn, channel, product_ids, message.get("jwt"))
        else:
            self._unsubscribe(conn, channel, product_ids)

    def _subscribe(
        self, conn: _Connection, channel: str, product_ids: list[str], token: object
    ) -> None:
        # Coinbase checks a JWT on ANY channel that carries one (and requires it on the
        # authenticated ones): a bad one is refused with this frame, the socket left open.
        if channel in AUTH_CHANNELS or token is not None:
            user_id = self.verifier.verify_ws(token)
            if user_id is None or (conn.user_id is not None and conn.user_id != user_id):
                self._send_raw(conn, {"type": "error", "message": "authentication failure"})
                return
            if channel in AUTH_CHANNELS:
                conn.user_id = user_id
        if channel in PRODUCT_CHANNELS and not product_ids:
            self._send_raw(conn, {"type": "error", "message": f"{channel} requires product_ids"})
            return
        conn.ever_subscribed = True
        current = conn.subscriptions.setdefault(channel, set())
        if channel == "user" and not product_ids:
            current.clear()  # no filter: every product
        current.update(product_ids)
        self._index(conn, channel, product_ids)
        self._send_subscriptions(conn)
        self._send_snapshots(conn, channel, product_ids)

    def _unsubscribe(self, conn: _Connection, channel: str, product_ids: list[str]) -> None:
        current = conn.subscriptions.get(channel)
        if current is not None:
            removed = set(product_ids) & current if product_ids else set(current)
            if channel in PRODUCT_CHANNELS:
                self._unindex(conn, channel, removed)
                current -= removed
                if not current:
                    del conn.subscriptions[channel]
            elif not product_ids or not current - removed:
                self._unindex(conn, channel, current)
                del conn.subscriptions[channel]
            else:
                current -= removed
        self._send_subscriptions(conn)

    def _send_subscriptions(self, conn: _Connection) -> None:
        current = {channel: sorted(products) for channel, products in conn.subscriptions.items()}
        event = {"subscriptions": current}
        self._deliver(conn, wire.encode_envelope("subscriptions", self._timestamp(), [event]))

    def _send_snapshots(self, conn: _Connection, channel: str, product_ids: list[str]) -> None:
        stamp = self._timestamp()
        exchange = self.exchange
        events: list[tuple[str, dict[str, Any]]] = []
        if channel == "level2":
            for product_id in product_ids:
                bids, asks = exchange.book_levels(product_id)
                updates = [
                    {
                        "side": "bid",
                        "event_time": stamp,
                        "price_level": decimal_str(p),
                        "new_quantity": decimal_str(s),
                    }
                    for p, s in bids
                ]
                updates += [
                    {
                        "side": "offer",
                        "event_time": stamp,
                        "price_level": decimal_str(p),
                        "new_quantity": decimal_str(s),
                    }
                    for p, s in asks
                ]
                event = {"type": "snapshot", "product_id": product_id, "updates": updates}
                events.append(("l2_data", event))
        elif channel in ("ticker", "ticker_batch"):
            for product_id in product_ids:
                ticker = wire.encode_ticker(
                    exchange.ticker(product_id), batch=channel == "ticker_batch"
                )
                events.append((channel, {"type": "snapshot", "tickers": [ticker]}))
        elif channel == "market_trades":
            for product_id in product_ids:
                trades = [wire.encode_trade(t) for t in exchange.recent_trades(product_id, 50)]
                events.append((channel, {"type": "snapshot", "trades": trades}))
        elif channel == "candles":
            for product_id in product_ids:
                candles = [
                    wire.encode_candle(c, product_id) for c in self._current_candles(product_id, 24)
                ]
                events.append((channel, {"type": "snapshot", "candles": candles}))
        elif channel == "status":
            chosen = product_ids or sorted(exchange.products)
            products = [_status_product(exchange.products[p]) for p in chosen]
            events.append((channel, {"type": "snapshot", "products": products}))
        elif channel == "user" and conn.user_id is not None:
            open_orders = [
                o
                for o in exchange.list_orders(conn.user_id)
                if o.status.is_open and (not product_ids or o.product_id in product_ids)
            ]
            orders = [wire.encode_user_order(o) for o in open_orders]
            events.append((channel, _user_event("snapshot", orders)))
        for name, event in events:
            self._deliver(conn, wire.encode_envelope(name, stamp, [event]))

    # ------------------------------------------------------------------ REST plumbing

    def _add_routes(self, app: web.Application) -> None:
        p = API_PREFIX
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "/ws", self._ws_handler),
            ("GET", "/ws/user", self._ws_handler),
            ("GET", "/sim/stats", self._sim_stats),
            ("GET", f"{p}/time", self._time),
            ("GET", f"{p}/key_permissions", self._key_permissions),
            ("GET", f"{p}/accounts", self._list_accounts),
            ("GET", f"{p}/accounts/{{account_uuid}}", self._get_account),
            ("GET", f"{p}/products", self._list_products),
            ("GET", f"{p}/products/{{product_id}}", self._get_product),
            ("GET", f"{p}/products/{{product_id}}/candles", self._candles),
            ("GET", f"{p}/products/{{product_id}}/ticker", self._market_trades),
            ("GET", f"{p}/product_book", self._product_book),
            ("GET", f"{p}/best_bid_ask", self._best_bid_ask),
            ("GET", f"{p}/market/products", self._list_products),
            ("GET", f"{p}/market/products/{{product_id}}", self._get_product),
            ("GET", f"{p}/market/products/{{product_id}}/candles", self._candles),
            ("GET", f"{p}/market/products/{{product_id}}/ticker", self._market_trades),
            ("GET", f"{p}/market/product_book", self._product_book),
            ("POST", f"{p}/orders", self._create_order),
            ("POST", f"{p}/orders/preview", self._preview_order),
            ("POST", f"{p}/orders/batch_cancel", self._batch_cancel),
            ("GET", f"{p}/orders/historical/batch", self._list_orders),
            ("GET", f"{p}/orders/historical/fills", self._list_fills),
            ("GET", f"{p}/orders/historical/{{order_id}}", self._get_order),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)

    @staticmethod
    def _is_public(path: str) -> bool:
        return path == f"{API_PREFIX}/time" or path.startswith(f"{API_PREFIX}/market/")

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            path = request.path
            if path.startswith(API_PREFIX):
                is_order = request.method == "POST" and path == f"{API_PREFIX}/orders"
                fault = self.faults.rest_fault(is_order=is_order)
                if fault is not None:
                    if fault.kind is RestFaultKind.TOO_MANY_REQUESTS:
                        return web.Response(status=429, text=_HTML_429, content_type="text/html")
                    if fault.kind is RestFaultKind.SERVER_ERROR:
                        body = wire.error_body("INTERNAL", "internal server error")
                        return _json(body, 500)
                    if fault.kind is RestFaultKind.DELAY:
                        # Read the body first: the client may hang up during the delay, and
                        # a slow exchange still acts on a request it has received.
                        await request.read()
                        await asyncio.sleep(fault.delay_s)
                    else:
                        request[_LOSE_RESPONSE] = True
                if not self._is_public(path):
                    user_id = self._authenticate(request)
                    if user_id is None:
                        return web.Response(status=401, text="Unauthorized")
                    request[_USER_ID] = user_id
            return await handler(request)
        except _ApiError as error:
            return _json(wire.error_body(error.error, error.message), error.status)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("bug in the simulated exchange: %s %s", request.method, request.path)
            return _json(wire.error_body("INTERNAL", "internal server error"), 500)

    def _authenticate(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.verifier.verify_rest(token.strip(), request.method, request.host, request.path)

    @staticmethod
    async def _json_body(request: web.Request) -> object:
        raw = await request.read()
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise _ApiError(400, "INVALID_ARGUMENT", "request body is not valid JSON") from None

    def _product(self, product_id: str) -> Product:
        product = self.exchange.products.get(product_id)
        if product is None:
            raise _ApiError(404, "NOT_FOUND", f"ProductID {product_id} could not be found")
        return product

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), tz=UTC)

    # ------------------------------------------------------------------ REST: public and account

    async def _sim_stats(self, request: web.Request) -> web.Response:
        """Not Coinbase: the sim's own counters, for benchmarks (outside the API prefix)."""
        return _json({**self.stats, "connections": len(self._connections)})

    async def _time(self, request: web.Request) -> web.Response:
        now = self.clock.time()
        return _json(
            {
                "iso": wire.rfc3339(datetime.fromtimestamp(now, tz=UTC)),
                "epochSeconds": str(int(now)),
                "epochMillis": str(int(now * 1000)),
            }
        )

    async def _key_permissions(self, request: web.Request) -> web.Response:
        return _json(
            {
                "can_view": True,
                "can_trade": True,
                "can_transfer": False,
                "portfolio_uuid": wire.PORTFOLIO_UUID,
                "portfolio_type": "DEFAULT",
            }
        )

    async def _list_accounts(self, request: web.Request) -> web.Response:
        accounts = self.exchange.accounts(request[_USER_ID])
        limit = _int_param(request, "limit", 49, 1, 250)
        page, has_next, cursor = _paginate(accounts, limit, request.query.get("cursor", ""))
        return _json(
            {
                "accounts": [wire.encode_account(a, self.started_at) for a in page],
                "has_next": has_next,
                "cursor": cursor,
                "size": len(page),
            }
        )

    async def _get_account(self, request: web.Request) -> web.Response:
        account_uuid = request.match_info["account_uuid"]
        for account in self.exchange.accounts(request[_USER_ID]):
            if account.uuid == account_uuid:
                return _json({"account": wire.encode_account(account, self.started_at)})
        raise _ApiError(404, "NOT_FOUND", "account not found")

    async def _list_products(self, request: web.Request) -> web.Response:
        wanted = _list_param(request, "product_ids")
        product_type = request.query.get("product_type", "")
        # Aliases are listed when asked for by id (the unfiltered list stays the tradable set).
        ids = sorted(self.exchange.products) + [a for a in sorted(self.aliases) if a in wanted]
        products = [pid for pid in ids if not wanted or pid in wanted]
        if product_type and product_type != "SPOT":
            products = []
        offset = _int_param(request, "offset", 0, 0, 1_000_000)
        limit = _int_param(request, "limit", len(products) or 1, 1, 10_000)
        chosen = products[offset : offset + limit]
        body = [self._encode_product(pid) for pid in chosen]
        return _json({"products": body, "num_products": len(body)})

    async def _get_product(self, request: web.Request) -> web.Response:
        product_id = request.match_info["product_id"]
        if product_id not in self.aliases:
            self._product(product_id)
        return _json(self._encode_product(product_id))

    def _encode_product(self, product_id: str) -> dict[str, Any]:
        """A product as ``/products`` shows it, with Coinbase's alias fields."""
        target = self.aliases.get(product_id)
        if target is None:
            product = self.exchange.products[product_id]
            alias_to = [a for a, t in sorted(self.aliases.items()) if t == product_id]
            return wire.encode_product(product, self.exchange.ticker(product_id), alias_to=alias_to)
        product = dataclasses.replace(
            self.exchange.products[target], product_id=product_id, quote_currency="USDC"
        )
        return wire.encode_product(product, self.exchange.ticker(target), alias=target)

    async def _product_book(self, request: web.Request) -> web.Response:
        product_id = request.query.get("product_id", "")
        if not product_id:
            raise _ApiError(400, "INVALID_ARGUMENT", "product_id is required")
        self._product(product_id)
        limit = _int_param(request, "limit", 0, 0, 100_000) or None
        bids, asks = self.exchange.book_levels(product_id, limit)
        trades = self.exchange.recent_trades(product_id, 1)
        last = trades[0].price if trades else None
        return _json(wire.encode_product_book(product_id, bids, asks, self._now(), last))

    async def _best_bid_ask(self, request: web.Request) -> web.Response:
        wanted = _list_param(request, "product_ids") or sorted(self.exchange.products)
        books = []
        for product_id in wanted:
            self._product(product_id)
            bids, asks = self.exchange.book_levels(product_id, 1)
            books.append(wire.encode_pricebook(product_id, bids, asks, self._now()))
        return _json({"pricebooks": books})

    async def _candles(self, request: web.Request) -> web.Response:
        product_id = request.match_info["product_id"]
        self._product(product_id)
        start = _int_param(request, "start", None, 0, 10**11)
        end = _int_param(request, "end", None, 0, 10**11)
        granularity_name = request.query.get("granularity", "")
        granularity = GRANULARITY_S.get(granularity_name)
        if granularity is None:
            raise _ApiError(
                400, "INVALID_ARGUMENT", f"granularity must be one of {', '.join(GRANULARITY_S)}"
            )
        if start is None or end is None or end < start:
            raise _ApiError(
                400, "INVALID_ARGUMENT", "start and end (unix seconds, end >= start) are required"
            )
        if (end - start) // granularity > MAX_CANDLES:
            raise _ApiError(
                400,
                "INVALID_ARGUMENT",
                f"number of candles requested should be less than {MAX_CANDLES}",
            )
        candles = self.exchange.candles(product_id, start, end, granularity)
        limit = _int_param(request, "limit", MAX_CANDLES, 1, MAX_CANDLES)
        return _json({"candles": [wire.encode_candle(c) for c in candles[:limit]]})

    async def _market_trades(self, request: web.Request) -> web.Response:
        product_id = request.match_info["product_id"]
        self._product(product_id)
        limit = _int_param(request, "limit", 100, 1, 1000)
        trades = self.exchange.recent_trades(product_id, limit)
        ticker = self.exchange.ticker(product_id)
        return _json(
            {
                "trades": [wire.encode_trade(t, rest=True) for t in trades],
                "best_bid": decimal_str(ticker.best_bid),
                "best_ask": decimal_str(ticker.best_ask),
            }
        )

    # ------------------------------------------------------------------ REST: orders

    async def _create_order(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        parsed = wire.parse_order_request(body)
        if isinstance(parsed, wire.OrderRequestError):
            return _json(parsed.create_response(body), parsed.http_status)
        result = self.exchange.create_order(request[_USER_ID], parsed)
        self.flush()
        if request.get(_LOSE_RESPONSE):
            # The order exists; the client will never hear about it (a timeout, a cut cable).
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError
        return _json(wire.create_order_response(result, parsed))

    async def _preview_order(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        parsed = wire.parse_order_request(
            body, require_client_order_id=False, fallback_client_order_id=str(uuid.uuid4())
        )
        if isinstance(parsed, wire.OrderRequestError):
            if parsed.http_status != 200:
                return _json(parsed.create_response(body), parsed.http_status)
            return _json(self._preview_body(None, [parsed.preview_failure_reason or parsed.error]))
        return _json(self._preview_body(parsed, self._preview_errors(request[_USER_ID], parsed)))

    def _preview_errors(self, user_id: str, request: SimOrderRequest) -> list[str]:
        product = self.exchange.products.get(request.product_id)
        if product is None:
            return ["PREVIEW_INVALID_PRODUCT_ID"]
        errors: list[str] = []
        size = request.base_size
        if size is not None:
            if not product.is_size_on_increment(size):
                errors.append("PREVIEW_INVALID_SIZE_PRECISION")
            if size < product.base_min_size:
                errors.append("PREVIEW_INVALID_BASE_SIZE_TOO_SMALL")
            if size > product.base_max_size:
                errors.append("PREVIEW_INVALID_BASE_SIZE_TOO_LARGE")
        for price in (request.limit_price, request.stop_price):
            if price is not None and not product.is_price_on_tick(price):
                errors.append("PREVIEW_INVALID_PRICE_PRECISION")
                break
        if request.quote_size is not None and request.quote_size < product.quote_min_size:
            errors.append("PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL")
        estimate = self._estimate(request)
        if estimate is not None:
            balances = {a.currency: a.available for a in self.exchange.accounts(user_id)}
            _maker, taker = self.exchange.fee_rates(user_id)
            value = estimate[1]
            if request.side is Side.BUY:
                needed, currency = value * (1 + taker), product.quote_currency
            else:
                needed, currency = estimate[0], product.base_currency
            if needed > balances.get(currency, Decimal(0)):
                errors.append("PREVIEW_INSUFFICIENT_FUND")
        return errors

    def _estimate(self, request: SimOrderRequest) -> tuple[Decimal, Decimal] | None:
        """(base, quote value) the order would trade or commit at the current book."""
        if request.product_id not in self.exchange.products:
            return None
        bids, asks = self.exchange.book_levels(request.product_id)
        levels = asks if request.side is Side.BUY else bids
        if request.config_kind == "market_market_ioc":
            base_left = request.base_size
            quote_left = request.quote_size
            base = value = Decimal(0)
            for price, size in levels:
                take = size
                if base_left is not None:
                    take = min(size, base_left - base)
                elif quote_left is not None:
                    take = min(size, (quote_left - value) / price)
                if take <= 0:
                    break
                base += take
                value += take * price
            return base, value
        if request.base_size is None or request.limit_price is None:
            return None
        return request.base_size, request.base_size * request.limit_price

    def _preview_body(self, request: SimOrderRequest | None, errors: list[str]) -> dict[str, Any]:
        best_bid = best_ask = ""
        base = value = commission = Decimal(0)
        if request is not None and request.product_id in self.exchange.products:
            ticker = self.exchange.ticker(request.product_id)
            best_bid, best_ask = decimal_str(ticker.best_bid), decimal_str(ticker.best_ask)
            estimate = self._estimate(request)
            if estimate is not None:
                base, value = estimate
                maker, taker = self.exchange.fee_rates(self.demo_user_id)
                rate = maker if request.post_only else taker
                commission = value * rate
        total = (
            value + commission
            if request is None or request.side is Side.BUY
            else value - commission
        )
        return {
            "order_total": decimal_str(total),
            "commission_total": decimal_str(commission),
            "errs": errors,
            "warning": [],
            "quote_size": decimal_str(value),
            "base_size": decimal_str(base),
            "best_bid": best_bid,
            "best_ask": best_ask,
            "is_max": False,
            "order_margin_total": "0",
            "leverage": "1",
            "long_leverage": "1",
            "short_leverage": "1",
            "slippage": "0",
            "preview_id": str(uuid.uuid4()),
            "average_filled_price": decimal_str(value / base) if base else "0",
        }

    async def _batch_cancel(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        order_ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(order_ids, list) or not all(isinstance(i, str) for i in order_ids):
            raise _ApiError(400, "INVALID_ARGUMENT", "order_ids must be a list of order ids")
        if len(order_ids) > MAX_CANCEL_IDS:
            message = f"Too many orderIDs entered, limit is {MAX_CANCEL_IDS}"
            return _json(wire.error_body("InvalidArgument", message), 400)
        results = self.exchange.cancel_orders(request[_USER_ID], order_ids)
        self.flush()
        return _json(
            {
                "results": [
                    {
                        "success": r.success,
                        "failure_reason": r.failure_reason,
                        "order_id": r.order_id,
                    }
                    for r in results
                ]
            }
        )

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self.exchange.get_order(request[_USER_ID], request.match_info["order_id"])
        if order is None:
            raise _ApiError(404, "NOT_FOUND", "order with this orderID was not found")
        return _json({"order": wire.encode_order(order)})

    async def _list_orders(self, request: web.Request) -> web.Response:
        statuses: list[ExchangeOrderStatus] = []
        for text in _list_param(request, "order_status"):
            try:
                statuses.append(ExchangeOrderStatus(text))
            except ValueError:
                raise _ApiError(400, "INVALID_ARGUMENT", f"unknown order_status {text!r}") from None
        orders = self.exchange.list_orders(
            request[_USER_ID],
            product_ids=_list_param(request, "product_ids") or None,
            statuses=statuses or None,
            order_ids=_list_param(request, "order_ids") or None,
            start=_time_param(request, "start_date"),
            end=_time_param(request, "end_date"),
        )
        sides = _list_param(request, "order_side")
        types = _list_param(request, "order_types")
        if sides:
            orders = [o for o in orders if o.side.value in sides]
        if types:
            orders = [o for o in orders if o.order_type in types]
        limit = _int_param(request, "limit", 100, 1, 1000)
        page, has_next, cursor = _paginate(orders, limit, request.query.get("cursor", ""))
        return _json(
            {
                "orders": [wire.encode_order(o) for o in page],
                "sequence": "0",
                "has_next": has_next,
                "cursor": cursor,
            }
        )

    async def _list_fills(self, request: web.Request) -> web.Response:
        fills = self.exchange.list_fills(
            request[_USER_ID],
            order_ids=_list_param(request, "order_ids") or None,
            product_ids=_list_param(request, "product_ids") or None,
            start=_time_param(request, "start_sequence_timestamp"),
            end=_time_param(request, "end_sequence_timestamp"),
        )
        trade_ids = _list_param(request, "trade_ids")
        if trade_ids:
            fills = [f for f in fills if f.trade_id in trade_ids]
        limit = _int_param(request, "limit", 100, 1, 1000)
        page, _, cursor = _paginate(fills, limit, request.query.get("cursor", ""))
        user_id = request[_USER_ID]
        body = [
            wire.encode_fill(f, size_in_quote=self._quote_sized(user_id, f.order_id)) for f in page
        ]
        return _json({"fills": body, "cursor": cursor})

    def _quote_sized(self, user_id: str, order_id: str) -> bool:
        """A market order sized in quote currency: its fills are reported in quote too."""
        order = self.exchange.get_order(user_id, order_id)
        return order is not None and order.quote_size is not None


# ---------------------------------------------------------------------- helpers


def _user_event(kind: str, orders: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": kind,
        "orders": orders,
        "positions": {"perpetual_futures_positions": [], "expiring_futures_positions": []},
    }


def _status_product(product: Product) -> dict[str, Any]:
    return {
        "product_type": "SPOT",
        "id": product.product_id,
        "base_currency": product.base_currency,
        "quote_currency": product.quote_currency,
        "base_increment": decimal_str(product.base_increment),
        "quote_increment": decimal_str(product.quote_increment),
        "display_name": product.product_id,
        "status": product.status,
        "status_message": "",
        "min_market_funds": decimal_str(product.quote_min_size),
    }


def _list_param(request: web.Request, name: str) -> list[str]:
    """A repeated query key (``?a=1&a=2``); ``name[]`` is accepted too."""
    values = request.query.getall(name, []) + request.query.getall(f"{name}[]", [])
    return [v for v in values if v]


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    text = request.query.get(name, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _ApiError(400, "INVALID_ARGUMENT", f"{name} {text!r} is not an integer") from None
    if not low <= value <= high:
        raise _ApiError(400, "INVALID_ARGUMENT", f"{name} must be between {low} and {high}")
    return value


def _time_param(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name, "")
    if not text:
        return None
    try:
        return wire.parse_rfc3339(text)
    except ValueError:
        raise _ApiError(
            400, "INVALID_ARGUMENT", f"{name} {text!r} is not an RFC 3339 time"
        ) from None


def _paginate(items: Sequence[Any], limit: int, cursor: str) -> tuple[list[Any], bool, str]:
    """A page of ``items`` after ``cursor`` (an opaque offset); the next cursor or ""."""
    try:
        offset = int(cursor) if cursor else 0
    except ValueError:
        raise _ApiError(400, "INVALID_ARGUMENT", f"cursor {cursor!r} is not valid") from None
    if offset < 0:
        raise _ApiError(400, "INVALID_ARGUMENT", f"cursor {cursor!r} is not valid")
    page = list(items[offset : offset + limit])
    has_next = offset + limit < len(items)
    return page, has_next, str(offset + limit) if has_next else ""
