"""Coinbase's JSON shapes for the simulated exchange: engine types out, order requests in.

Everything the server puts on the wire is built here, so the shapes can be checked against
docs/coinbase-protocol.md (§2-3) in one place:
REST order / fill / account / product / book objects, the create-order response, the
``user`` channel's order object, and the WebSocket envelope.

The one input direction is ``parse_order_request``: a create/preview body becomes a
``SimOrderRequest`` or an ``OrderRequestError`` that says whether Coinbase answers that
mistake with an HTTP 400 (malformed request) or a 200 with ``success: false`` (a business
rejection the order entry system makes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from core.model import ExchangeOrderStatus, Product, Side, StopDirection, decimal_str
from core.sim.types import (
    ORDER_CONFIG_KINDS,
    SimAccount,
    SimCandle,
    SimFill,
    SimOrder,
    SimOrderRequest,
    SimOrderResult,
    SimTicker,
    SimTrade,
)

JsonObject = dict[str, Any]

PORTFOLIO_UUID: Final = "5f0c3c1e-7d1a-4b2e-9a61-00000000de70"
# Coinbase keys listed in the reference that spot order entry refuses: recognised, so the
# answer is UNSUPPORTED_ORDER_CONFIGURATION rather than a 400 for an unknown field.
_UNSUPPORTED_KINDS: Final = frozenset(
    {
        "market_market_fok",
        "trigger_bracket_gtc",
        "trigger_bracket_gtd",
        "twap_limit_gtd",
        "scaled_limit_gtc",
    }
)
_FIAT: Final = frozenset({"USD", "EUR", "GBP"})
_MAX_CLIENT_ORDER_ID: Final = 128
# The user channel reports order_type in title case, unlike REST.
_USER_ORDER_TYPE: Final = {"MARKET": "Market", "LIMIT": "Limit", "STOP_LIMIT": "Stop Limit"}
# The user channel knows only the six main statuses; queued states show as what they will be.
_USER_STATUS: Final = {
    ExchangeOrderStatus.QUEUED: "PENDING",
    ExchangeOrderStatus.CANCEL_QUEUED: "OPEN",
    ExchangeOrderStatus.EDIT_QUEUED: "OPEN",
}
_ZERO = Decimal(0)


def rfc3339(moment: datetime) -> str:
    """Coinbase's timestamp form: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset); raise ``ValueError`` if it is not one."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def _end_time(moment: datetime | None) -> str:
    """GTD end times echo in whole seconds when they have no fraction, as clients send them."""
    if moment is None:
        return ""
    if moment.microsecond:
        return rfc3339(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dec(value: Decimal | None) -> str:
    return "" if value is None else decimal_str(value)


def _dec0(value: Decimal) -> str:
    # Integral zero-ish values like Decimal("0E-8") must not leak exponent notation.
    return decimal_str(value.normalize()) if value == 0 else decimal_str(value)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderRequestError:
    """Why a create/preview body cannot become an order.

    ``http_status`` 400 means Coinbase rejects the request itself (``INVALID_ARGUMENT``);
    ``http_status`` 200 means a business rejection answered with ``success: false``.
    """

    http_status: int
    error: str
    message: str
    preview_failure_reason: str = ""

    def create_response(self, body: object) -> JsonObject:
        """The body for POST /orders (200 rejections) or the generic error body (400)."""
        if self.http_status != 200:
            return error_body(self.error, self.message)
        raw_config = body.get("order_configuration") if isinstance(body, dict) else None
        return {
            "success": False,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": "",
            "error_response": {
                "error": self.error,
                "message": self.message,
                "error_details": self.message,
                "preview_failure_reason": self.preview_failure_reason,
                "new_order_failure_reason": self.error,
            },
            "order_configuration": raw_config if isinstance(raw_config, dict) else {},
        }


def error_body(error: str, message: str, details: str | None = None) -> JsonObject:
    """Coinbase's generic error body: ``{"error", "message", "error_details"}``."""
    return {"error": error, "message": message, "error_details": details or message}


def _invalid(message: str) -> OrderRequestError:
    return OrderRequestError(400, "INVALID_ARGUMENT", message)


class _Reject(Exception):
    def __init__(self, error: OrderRequestError) -> None:
        super().__init__(error.message)
        self.error = error


def parse_order_request(
    body: object, *, require_client_order_id: bool = True, fallback_client_order_id: str = ""
) -> SimOrderRequest | OrderRequestError:
    """Decode a create-order (or preview) body.

    ``require_client_order_id`` is False for previews, whose body has none; the request then
    carries ``fallback_client_order_id``.
    """
    try:
        return _parse_order_request(body, require_client_order_id, fallback_client_order_id)
    except _Reject as reject:
        return reject.error


def _parse_order_request(
    body: object, require_client_order_id: bool, fallback_client_order_id: str
) -> SimOrderRequest:
    if not isinstance(body, dict):
        raise _Reject(_invalid("request body must be a JSON object"))
    client_order_id = body.get("client_order_id")
    if require_client_order_id or client_order_id is not None:
        if not isinstance(client_order_id, str) or not client_order_id:
            raise _Reject(_invalid("client_order_id is required"))
        if len(client_order_id) > _MAX_CLIENT_ORDER_ID:
            raise _Reject(_invalid(f"client_order_id is longer than {_MAX_CLIENT_ORDER_ID}"))
    else:
        client_order_id = fallback_client_order_id
    product_id = body.get("product_id")
    if not isinstance(product_id, str) or not product_id:
        raise _Reject(_invalid("product_id is required"))
    side_text = body.get("side")
    if not isinstance(side_text, str) or not side_text:
        raise _Reject(_invalid("side is required"))
    if side_text not in ("BUY", "SELL"):
        raise _Reject(OrderRequestError(200, "INVALID_SIDE", f"unknown side {side_text!r}"))
    side = Side(side_text)
    configuration = body.get("order_configuration")
    if not isinstance(configuration, dict) or not configuration:
        raise _Reject(_invalid("order_configuration is required"))
    if len(configuration) > 1:
        raise _Reject(_invalid("order_configuration must hold exactly one configuration"))
    ((kind, fields),) = configuration.items()
    if kind not in ORDER_CONFIG_KINDS:
        if kind in _UNSUPPORTED_KINDS:
            raise _Reject(
                OrderRequestError(
                    200,
                    "UNSUPPORTED_ORDER_CONFIGURATION",
                    f"{kind} is not supported for spot products",
                    "PREVIEW_UNSUPPORTED_ORDER_CONFIGURATION",
                )
            )
        raise _Reject(_invalid(f"unknown order configuration {kind!r}"))
    if not isinstance(fields, dict):
        raise _Reject(_invalid(f"{kind} must be a JSON object"))
    return _request_for_kind(client_order_id, product_id, side, kind, fields)


def _request_for_kind(
    client_order_id: str, product_id: str, side: Side, kind: str, fields: Mapping[str, object]
) -> SimOrderRequest:
    base_size = _decimal_field(fields, "base_size")
    quote_size = _decimal_field(fields, "quote_size")
    limit_price = _decimal_field(fields, "limit_price")
    stop_price = _decimal_field(fields, "stop_price")
    post_only = fields.get("post_only", False)
    if not isinstance(post_only, bool):
        raise _Reject(_invalid("post_only must be true or false"))
    if kind == "market_market_ioc":
        if (base_size is None) == (quote_size is None):
            raise _Reject(_invalid("market_market_ioc needs exactly one of base_size, quote_size"))
        return SimOrderRequest(
            client_order_id, product_id, side, kind, base_size=base_size, quote_size=quote_size
        )
    if quote_size is not None:
        raise _Reject(_invalid(f"{kind} is sized in base_size, not quote_size"))
    if base_size is None:
        raise _Reject(_invalid(f"{kind} requires base_size"))
    if limit_price is None:
        raise _Reject(_invalid(f"{kind} requires limit_price"))
    stop_direction: StopDirection | None = None
    if kind.startswith("stop_limit"):
        if stop_price is None:
            raise _Reject(_invalid(f"{kind} requires stop_price"))
        direction = fields.get("stop_direction")
        if direction not in (StopDirection.UP.value, StopDirection.DOWN.value):
            raise _Reject(
                _invalid(
                    "stop_direction must be STOP_DIRECTION_STOP_UP or STOP_DIRECTION_STOP_DOWN"
                )
            )
        stop_direction = StopDirection(str(direction))
    end_time: datetime | None = None
    if kind.endswith("_gtd"):
        end_text = fields.get("end_time")
        if end_text is None or end_text == "":
            raise _Reject(
                OrderRequestError(
                    200,
                    "GTD_ORDERS_MUST_HAVE_END_TIME",
                    "GTD orders must have an end_time",
                    "PREVIEW_GTD_ORDERS_MUST_HAVE_END_TIME",
                )
            )
        if not isinstance(end_text, str):
            raise _Reject(_invalid("end_time must be an RFC 3339 string"))
        try:
            end_time = parse_rfc3339(end_text)
        except ValueError:
            raise _Reject(_invalid(f"end_time {end_text!r} is not an RFC 3339 time")) from None
    return SimOrderRequest(
        client_order_id,
        product_id,
        side,
        kind,
        base_size=base_size,
        limit_price=limit_price,
        stop_price=stop_price,
        stop_direction=stop_direction,
        post_only=post_only and kind in ("limit_limit_gtc", "limit_limit_gtd"),
        end_time=end_time,
    )


def _decimal_field(fields: Mapping[str, object], name: str) -> Decimal | None:
    raw = fields.get(name)
    if raw is None or raw == "":
        return None
    # Coinbase's JSON takes decimals as strings only; a float would already have lost digits.
    if not isinstance(raw, str):
        raise _Reject(_invalid(f"{name} must be a decimal string"))
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise _Reject(_invalid(f"{name} {raw!r} is not a decimal number")) from None
    if not value.is_finite():
        raise _Reject(_invalid(f"{name} {raw!r} is not a finite number"))
    return value


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------


def order_configuration(
    kind: str,
    *,
    base_size: Decimal | None,
    quote_size: Decimal | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    stop_direction: StopDirection | None,
    post_only: bool,
    end_time: datetime | None,
) -> JsonObject:
    """``{kind: {...}}`` with the fields Coinbase echoes for that configuration."""
    fields: JsonObject
    if kind == "market_market_ioc":
        fields = {"base_size": _dec(base_size)} if base_size is not None else {}
        if quote_size is not None:
            fields["quote_size"] = _dec(quote_size)
    else:
        fields = {"base_size": _dec(base_size), "limit_price": _dec(limit_price)}
        if kind.startswith("stop_limit"):
            fields["stop_price"] = _dec(stop_price)
            fields["stop_direction"] = stop_direction.value if stop_direction else ""
        if kind in ("limit_limit_gtc", "limit_limit_gtd"):
            fields["post_only"] = post_only
        if kind.endswith("_gtd"):
            fields["end_time"] = _end_time(end_time)
    return {kind: fields}


def request_configuration(request: SimOrderRequest) -> JsonObject:
    return order_configuration(
        request.config_kind,
        base_size=request.base_size,
        quote_size=request.quote_size,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        stop_direction=request.stop_direction,
        post_only=request.post_only,
        end_time=request.end_time,
    )


def sim_order_configuration(order: SimOrder) -> JsonObject:
    return order_configuration(
        order.config_kind,
        base_size=order.base_size,
        quote_size=order.quote_size,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        stop_direction=order.stop_direction,
        post_only=order.post_only,
        end_time=order.end_time,
    )


def create_order_response(result: SimOrderResult, request: SimOrderRequest) -> JsonObject:
    """POST /orders answer. Success also carries the legacy top-level ``order_id`` and
    ``failure_reason: UNKNOWN_FAILURE_REASON`` (seen live, issue #49), so clients must decide
    on ``success`` alone."""
    if result.success and result.order is not None:
        order = result.order
        return {
            "success": True,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": order.order_id,
            "success_response": {
                "order_id": order.order_id,
                "product_id": order.product_id,
                "side": order.side.value,
                "client_order_id": order.client_order_id,
            },
            "order_configuration": sim_order_configuration(order),
        }
    return {
        "success": False,
        "failure_reason": "UNKNOWN_FAILURE_REASON",
        "order_id": "",
        "error_response": {
            "error": result.error,
            "message": result.message,
            "error_details": result.error_details or result.message,
            "preview_failure_reason": result.preview_failure_reason,
            "new_order_failure_reason": result.new_order_failure_reason or result.error,
        },
        "order_configuration": request_configuration(request),
    }


def _value_after_fees(order: SimOrder) -> Decimal:
    if order.side is Side.BUY:
        return order.filled_value + order.total_fees
    return order.filled_value - order.total_fees


def encode_order(order: SimOrder) -> JsonObject:
    """The REST order object (GET /orders/historical/{id} and the list)."""
    status = order.status
    return {
        "order_id": order.order_id,
        "product_id": order.product_id,
        "user_id": order.user_id,
        "order_configuration": sim_order_configuration(order),
        "side": order.side.value,
        "client_order_id": order.client_order_id,
        "status": status.value,
        "time_in_force": order.time_in_force,
        "created_time": rfc3339(order.created_time),
        "completion_percentage": _dec0(order.completion_percentage),
        "filled_size": _dec0(order.filled_size),
        "average_filled_price": _dec0(order.average_filled_price),
        "fee": "",
        "number_of_fills": str(order.number_of_fills),
        "filled_value": _dec0(order.filled_value),
        "pending_cancel": status is ExchangeOrderStatus.CANCEL_QUEUED,
        "size_in_quote": order.quote_size is not None,
        "total_fees": _dec0(order.total_fees),
        "size_inclusive_of_fees": False,
        "total_value_after_fees": _dec0(_value_after_fees(order)),
        "trigger_status": order.trigger_status,
        "order_type": order.order_type,
        "reject_reason": order.reject_reason or "REJECT_REASON_UNSPECIFIED",
        "settled": not status.is_open,
        "product_type": "SPOT",
        "reject_message": "",
        "cancel_message": order.cancel_reason,
        "order_placement_source": "RETAIL_ADVANCED",
        "outstanding_hold_amount": _dec0(order.outstanding_hold_amount),
        "is_liquidation": False,
        "last_fill_time": rfc3339(order.last_fill_time) if order.last_fill_time else None,
        "edit_history": [],
        "leverage": "",
        "margin_type": "UNKNOWN_MARGIN_TYPE",
        "retail_portfolio_id": PORTFOLIO_UUID,
        "originating_order_id": "",
        "attached_order_id": "",
    }


def encode_user_order(order: SimOrder) -> JsonObject:
    """The ``user`` channel's order object: cumulative, title-case ``order_type``."""
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "cumulative_quantity": _dec0(order.filled_size),
        "leaves_quantity": _dec0(order.leaves_quantity),
        "avg_price": _dec0(order.average_filled_price),
        "total_fees": _dec0(order.total_fees),
        "status": _USER_STATUS.get(order.status, order.status.value),
        "product_id": order.product_id,
        "product_type": "SPOT",
        "creation_time": rfc3339(order.created_time),
        "order_side": order.side.value,
        "order_type": _USER_ORDER_TYPE.get(order.order_type, order.order_type.title()),
        "time_in_force": order.time_in_force,
        "filled_value": _dec0(order.filled_value),
        "number_of_fills": str(order.number_of_fills),
        "completion_percentage": _dec0(order.completion_percentage),
        "outstanding_hold_amount": _dec0(order.outstanding_hold_amount),
        "total_value_after_fees": _dec0(_value_after_fees(order)),
        "cancel_reason": order.cancel_reason,
        "reject_reason": order.reject_reason,
        "limit_price": _dec(order.limit_price),
        "stop_price": _dec(order.stop_price),
        "post_only": order.post_only,
        "trigger_status": order.trigger_status,
        "end_time": rfc3339(order.end_time) if order.end_time else "",
        "start_time": "",
        "risk_managed_by": "UNKNOWN_RISK_MANAGEMENT_TYPE",
        "contract_expiry_type": "UNKNOWN_CONTRACT_EXPIRY_TYPE",
        "retail_portfolio_id": PORTFOLIO_UUID,
    }


def encode_fill(fill: SimFill, *, size_in_quote: bool = False) -> JsonObject:
    """A ``/fills`` item. Coinbase reports the fills of a quote-sized market order with
    ``size`` in quote currency and ``size_in_quote: true``; ``size_in_quote`` does the same."""
    size = fill.price * fill.size if size_in_quote else fill.size
    return {
        "entry_id": fill.entry_id,
        "trade_id": fill.trade_id,
        "order_id": fill.order_id,
        "trade_time": rfc3339(fill.trade_time),
        "trade_type": "FILL",
        "price": decimal_str(fill.price),
        "size": decimal_str(size),
        "commission": _dec0(fill.commission),
        "product_id": fill.product_id,
        "sequence_timestamp": rfc3339(fill.sequence_timestamp),
        "liquidity_indicator": fill.liquidity,
        "size_in_quote": size_in_quote,
        "user_id": fill.user_id,
        "side": fill.side.value,
        "retail_portfolio_id": PORTFOLIO_UUID,
    }


# --------------------------------------------------------------------------------------------
# Accounts and market data
# --------------------------------------------------------------------------------------------


def encode_account(account: SimAccount, created_at: datetime) -> JsonObject:
    currency = account.currency
    stamp = rfc3339(created_at)
    return {
        "uuid": account.uuid,
        "name": f"{currency} Wallet",
        "currency": currency,
        "available_balance": {"value": _dec0(account.available), "currency": currency},
        "default": True,
        "active": True,
        "created_at": stamp,
        "updated_at": stamp,
        "deleted_at": None,
        "type": "ACCOUNT_TYPE_FIAT" if currency in _FIAT else "ACCOUNT_TYPE_CRYPTO",
        "ready": True,
        "hold": {"value": _dec0(account.hold), "currency": currency},
        "retail_portfolio_id": PORTFOLIO_UUID,
        "platform": "ACCOUNT_PLATFORM_CONSUMER",
    }


def encode_product(
    product: Product,
    ticker: SimTicker | None,
    *,
    alias: str = "",
    alias_to: Sequence[str] = (),
) -> JsonObject:
    """A ``/products`` item. ``alias``: the product whose market data this one shares (a USDC
    product's USD twin); ``alias_to``: the products that share this one's."""
    price = ticker.price if ticker is not None else product.price
    return {
        "product_id": product.product_id,
        "price": _dec(price),
        "price_percentage_change_24h": _dec(ticker.price_percent_chg_24h) if ticker else "",
        "volume_24h": _dec(ticker.volume_24h) if ticker else "",
        "volume_percentage_change_24h": "0",
        "base_increment": decimal_str(product.base_increment),
        "quote_increment": decimal_str(product.quote_increment),
        "quote_min_size": decimal_str(product.quote_min_size),
        "quote_max_size": decimal_str(product.quote_max_size),
        "base_min_size": decimal_str(product.base_min_size),
        "base_max_size": decimal_str(product.base_max_size),
        "base_name": product.base_currency,
        "quote_name": product.quote_currency,
        "watched": False,
        "is_disabled": product.trading_disabled,
        "new": False,
        "status": product.status,
        "cancel_only": product.cancel_only,
        "limit_only": product.limit_only,
        "post_only": product.post_only,
        "trading_disabled": product.trading_disabled,
        "auction_mode": product.auction_mode,
        "product_type": "SPOT",
        "quote_currency_id": product.quote_currency,
        "base_currency_id": product.base_currency,
        "fcm_trading_session_details": None,
        "mid_market_price": "",
        "alias": alias,
        "alias_to": list(alias_to),
        "base_display_symbol": product.base_currency,
        "quote_display_symbol": product.quote_currency,
        "view_only": False,
        "price_increment": decimal_str(product.price_increment),
        "display_name": product.product_id.replace("-", "/"),
        "product_venue": "CBE",
        "approximate_quote_24h_volume": "",
        "new_at": "",
    }


def encode_pricebook(
    product_id: str,
    bids: Sequence[tuple[Decimal, Decimal]],
    asks: Sequence[tuple[Decimal, Decimal]],
    time: datetime,
) -> JsonObject:
    return {
        "product_id": product_id,
        "bids": [{"price": decimal_str(p), "size": decimal_str(s)} for p, s in bids],
        "asks": [{"price": decimal_str(p), "size": decimal_str(s)} for p, s in asks],
        "time": rfc3339(time),
    }


def encode_product_book(
    product_id: str,
    bids: Sequence[tuple[Decimal, Decimal]],
    asks: Sequence[tuple[Decimal, Decimal]],
    time: datetime,
    last: Decimal | None,
) -> JsonObject:
    """GET /product_book: the pricebook plus mid, spread and last trade price."""
    body: JsonObject = {"pricebook": encode_pricebook(product_id, bids, asks, time)}
    body["last"] = _dec(last)
    if bids and asks:
        best_bid, best_ask = bids[0][0], asks[0][0]
        mid = (best_bid + best_ask) / 2
        spread = best_ask - best_bid
        body["mid_market"] = decimal_str(mid)
        body["spread_absolute"] = decimal_str(spread)
        body["spread_bps"] = decimal_str((spread / mid * 10_000).quantize(Decimal("0.0001")))
    else:
        body["mid_market"] = body["spread_absolute"] = body["spread_bps"] = ""
    return body


def encode_candle(candle: SimCandle, product_id: str | None = None) -> JsonObject:
    body: JsonObject = {
        "start": str(candle.start),
        "low": decimal_str(candle.low),
        "high": decimal_str(candle.high),
        "open": decimal_str(candle.open),
        "close": decimal_str(candle.close),
        "volume": _dec0(candle.volume),
    }
    if product_id is not None:
        body["product_id"] = product_id
    return body


def encode_trade(trade: SimTrade, *, rest: bool = False) -> JsonObject:
    body: JsonObject = {
        "trade_id": trade.trade_id,
        "product_id": trade.product_id,
        "price": decimal_str(trade.price),
        "size": decimal_str(trade.size),
        "side": trade.side.value,
        "time": rfc3339(trade.time),
    }
    if rest:
        body["exchange"] = "COINBASE"
    return body


def encode_ticker(ticker: SimTicker, *, batch: bool = False) -> JsonObject:
    """One entry of the ``ticker`` / ``ticker_batch`` channels' ``tickers`` list. Production's
    ``ticker_batch`` entries carry no best bid/ask (``batch``), only ``ticker``'s do."""
    body: JsonObject = {
        "type": "ticker",
        "product_id": ticker.product_id,
        "price": decimal_str(ticker.price),
        "volume_24_h": _dec0(ticker.volume_24h),
        "low_24_h": decimal_str(ticker.low_24h),
        "high_24_h": decimal_str(ticker.high_24h),
        "low_52_w": decimal_str(ticker.low_24h),
        "high_52_w": decimal_str(ticker.high_24h),
        "price_percent_chg_24_h": decimal_str(ticker.price_percent_chg_24h),
    }
    if not batch:
        body["best_bid"] = decimal_str(ticker.best_bid)
        body["best_bid_quantity"] = decimal_str(ticker.best_bid_quantity)
        body["best_ask"] = decimal_str(ticker.best_ask)
        body["best_ask_quantity"] = decimal_str(ticker.best_ask_quantity)
    return body


def l2_side(side: Side) -> str:
    """level2 names the sides ``bid`` and ``offer``."""
    return "bid" if side is Side.BUY else "offer"


# --------------------------------------------------------------------------------------------
# WebSocket envelope
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """A data message serialized once, minus its ``sequence_num``.

    The server sends the same message to many connections, each with its own sequence
    counter: it splices the number between ``prefix`` and ``suffix`` instead of
    serializing the events again per connection.
    """

    prefix: str
    suffix: str

    def with_sequence(self, sequence_num: int) -> str:
        return f"{self.prefix}{sequence_num}{self.suffix}"


def encode_envelope(channel: str, timestamp: str, events: Sequence[JsonObject]) -> EncodedMessage:
    """``{"channel","client_id","timestamp","sequence_num","events"}``, in Coinbase's order."""
    head = orjson.dumps({"channel": channel, "client_id": "", "timestamp": timestamp}).decode()
    tail = orjson.dumps(list(events)).decode()
    return EncodedMessage(f'{head[:-1]},"sequence_num":', f',"events":{tail}}}')
