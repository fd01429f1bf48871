"""The simulated exchange's WebSocket hub: subscriptions, snapshots and the fan-out of updates.

The engine calls the server synchronously (``SimListener``) as books change and orders fill;
the hub batches those calls and, on every ``flush()``, serializes each product's events ONCE
and splices each connection's own ``sequence_num`` into the encoded envelope
(``wire.EncodedMessage``).

Slow clients: each connection has a bounded send queue (``max_queue_messages``). A client
that lets it overflow is closed with code 1011 (and its TCP connection aborted if even the
close cannot be written within 2 s), so one stuck reader never stalls the others.
A connection that subscribes to nothing within ``subscribe_timeout_s`` (5 s, like Coinbase)
is closed with code 1008 (policy violation).

``WebSocketHub`` is a part of ``core.sim.server.SimServer`` (which holds the state it uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import orjson
from aiohttp import WSMsgType, web

from core.clock import Clock
from core.model import Product, Side, decimal_str
from core.sim import wire
from core.sim.exchange_api import ExchangeApi
from core.sim.faults import FaultInjector, WsFaultKind
from core.sim.jwt_verify import JwtVerifier
from core.sim.types import (
    SimCandle,
    SimFill,
    SimOrder,
    SimTrade,
)

log = logging.getLogger(__name__)

# Channels whose subscribe message must carry a valid JWT.
AUTH_CHANNELS: Final = frozenset({"user", "futures_balance_summary"})
# Channels that are about products and need product_ids to subscribe.
PRODUCT_CHANNELS: Final = frozenset(
    {"level2", "ticker", "ticker_batch", "market_trades", "candles"}
)
KNOWN_CHANNELS: Final = PRODUCT_CHANNELS | AUTH_CHANNELS | {"heartbeats", "status"}
WS_CANDLE_GRANULARITY_S: Final = 300  # the candles channel pushes 5-minute buckets
_CLOSE_WRITE_TIMEOUT_S: Final = 2.0
_MALFORMED_FRAME: Final = '{"channel":"l2_data","client_id":"","sequence_num":'  # cut short


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


class WebSocketHub:
    """The WebSocket half of ``SimServer`` (state and lifecycle live in the server)."""

    exchange: ExchangeApi
    clock: Clock
    verifier: JwtVerifier
    faults: FaultInjector
    aliases: dict[str, str]
    subscribe_timeout_s: float
    max_queue_messages: int
    stats: dict[str, int]
    _connections: set[_Connection]
    _product_subs: dict[tuple[str, str], set[_Connection]]
    _channel_subs: dict[str, set[_Connection]]
    _user_subs: dict[str, set[_Connection]]
    _pending_book: dict[str, dict[tuple[Side, Decimal], tuple[Decimal, datetime]]]
    _pending_trades: dict[str, list[SimTrade]]
    _pending_orders: dict[str, dict[str, SimOrder]]
    _ticker_batch_sent: dict[str, Decimal]
    _heartbeat_counter: int

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        raise NotImplementedError  # SimServer's

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
