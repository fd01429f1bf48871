"""The simulated exchange's REST handlers: Coinbase Advanced Trade under ``/api/v3/brokerage``.

Authentication (a JWT per request), Coinbase's error bodies, the fault plan's REST faults,
and one handler per endpoint (docs/coinbase-protocol.md). Besides Coinbase's API,
``GET /sim/stats`` (no auth, outside the API prefix) returns the server's counters for
benchmarks. ``RestHandlers`` is a part of ``core.sim.server.SimServer``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import orjson
from aiohttp import web

from core.clock import Clock
from core.model import ExchangeOrderStatus, Product, Side, decimal_str
from core.sim import wire
from core.sim.exchange_api import ExchangeApi
from core.sim.faults import FaultInjector, RestFaultKind
from core.sim.jwt_verify import JwtVerifier
from core.sim.types import (
    SimOrderRequest,
)
from core.sim.ws_hub import _Connection

log = logging.getLogger(__name__)

_USER_ID: Final = web.RequestKey("user_id", str)
_LOSE_RESPONSE: Final = web.RequestKey("lose_response", bool)

API_PREFIX: Final = "/api/v3/brokerage"
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
_HTML_429: Final = (
    "<html><head><title>429 Too Many Requests</title></head><body><center>"
    "<h1>429 Too Many Requests</h1></center><hr><center>cloudflare</center></body></html>"
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


class RestHandlers:
    """The REST half of ``SimServer`` (state and lifecycle live in the server)."""

    exchange: ExchangeApi
    clock: Clock
    verifier: JwtVerifier
    faults: FaultInjector
    aliases: dict[str, str]
    started_at: datetime
    stats: dict[str, int]
    demo_user_id: str
    _connections: set[_Connection]

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        raise NotImplementedError  # SimServer's

    def flush(self) -> None:
        raise NotImplementedError  # the WebSocket hub's

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError  # the WebSocket hub's

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
            trickle_s: float | None = None
            if path.startswith(API_PREFIX):
                is_order = request.method == "POST" and path == f"{API_PREFIX}/orders"
                fault = self.faults.rest_fault(is_order=is_order)
                if fault is not None:
                    if fault.kind is RestFaultKind.TOO_MANY_REQUESTS:
                        return web.Response(status=429, text=_HTML_429, content_type="text/html")
                    if fault.kind is RestFaultKind.SERVER_ERROR:
                        body = wire.error_body("INTERNAL", "internal server error")
                        return _json(body, 500)
                    if fault.kind in (RestFaultKind.DELAY, RestFaultKind.LATE_ORDER):
                        # Read the body first: the client may hang up during the delay, and
                        # a slow exchange still acts on a request it has received (aiohttp
                        # runs a handler to its end when the client hangs up). A late POST
                        # /orders is created only now: it lands after the client gave up.
                        await request.read()
                        await asyncio.sleep(fault.delay_s)
                    elif fault.kind is RestFaultKind.TRICKLE:
                        trickle_s = fault.delay_s
                    else:
                        request[_LOSE_RESPONSE] = True
                if not self._is_public(path):
                    user_id = self._authenticate(request)
                    if user_id is None:
                        return web.Response(status=401, text="Unauthorized")
                    request[_USER_ID] = user_id
            response = await handler(request)
            if trickle_s is not None and isinstance(response, web.Response):
                return await self._trickle(request, response, trickle_s)
            return response
        except _ApiError as error:
            return _json(wire.error_body(error.error, error.message), error.status)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("bug in the simulated exchange: %s %s", request.method, request.path)
            return _json(wire.error_body("INTERNAL", "internal server error"), 500)

    async def _trickle(
        self, request: web.Request, answer: web.Response, interval_s: float
    ) -> web.StreamResponse:
        """Send ``answer`` one byte every ``interval_s`` (a congested link or a hostile proxy).

        The request was carried out; only its answer crawls. Each byte resets a client's
        per-read timeout, so only a total deadline per call ends the wait. Streamed through
        aiohttp's ``StreamResponse``; stops when the client hangs up."""
        body = answer.body
        if not isinstance(body, bytes):
            return answer
        stream = web.StreamResponse(status=answer.status)
        stream.content_type = answer.content_type
        stream.content_length = len(body)  # declared in full: the client waits for all of it
        try:
            await stream.prepare(request)
            for index in range(len(body)):
                await asyncio.sleep(interval_s)
                await stream.write(body[index : index + 1])
                self.faults.trickled_bytes += 1
            await stream.write_eof()
        except ConnectionError:  # the client gave up (its deadline): nobody is reading
            log.debug("trickled answer to %s %s cut by the client", request.method, request.path)
        return stream

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
