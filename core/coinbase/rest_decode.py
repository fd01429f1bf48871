"""Coinbase REST JSON -> ``core.model`` types. The only place REST JSON is interpreted.

Pure functions over already-parsed JSON. Decoding is defensive because the exchange renames,
omits and adds fields over time (docs/coinbase-protocol.md §2): optional fields fall back to a
default, empty strings count as missing, and a value that is present but unusable raises
``DecodeError`` naming the field. Also the small result types that have no home in
``core.model`` because only REST answers produce them.

Impossible data (docs/coinbase-protocol.md §6) is refused, never passed on:
a product whose increment is not positive, a balance that is not a sane non-negative amount
(the whole accounts answer is refused, so the last good balances stay), an order or a fill
with an impossible amount. In a list, one bad product, order or fill costs only itself; each
refusal is counted by kind in ``core.bad_input.REFUSED_EXCHANGE_DATA``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import orjson

from core.bad_input import REFUSED_EXCHANGE_DATA
from core.coinbase.errors import DecodeError, ImpossibleDataError
from core.fill_guard import FILL_NOT_SANE, FILL_PAST_ORDER_SIZE, amount_problem, fill_problem
from core.model import (
    Balance,
    Candle,
    ExchangeOrder,
    ExchangeOrderStatus,
    Fill,
    LiquidityIndicator,
    Page,
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
)

JsonObject = Mapping[str, Any]
T = TypeVar("T")

# Kinds counted in REFUSED_EXCHANGE_DATA by this module (fills use core.fill_guard's kinds).
PRODUCT_BAD_INCREMENT = "product_bad_increment"
BAD_PRODUCT = "bad_product"
BALANCE_NOT_SANE = "balance_not_finite_nonnegative"
BAD_ORDER = "bad_rest_order"
BAD_FILL = "bad_rest_fill"

# Coinbase answers "success" with this placeholder in failure fields; it is not a reason.
UNKNOWN_FAILURE_REASON = "UNKNOWN_FAILURE_REASON"
_MAX_ERROR_TEXT = 200


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class ServerTime:
    epoch_seconds: float
    iso: str


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A REST order book: levels as (price, size), bids best first, asks best first."""

    product_id: str
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    time: datetime | None


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    can_view: bool
    can_trade: bool
    can_transfer: bool
    portfolio_uuid: str
    portfolio_type: str


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What a non-2xx answer said, whatever its format (JSON, plain text or an HTML page)."""

    code: str | None
    message: str
    details: str | None


# --------------------------------------------------------------------------- primitives


def parse_json_object(body: bytes, what: str) -> JsonObject:
    """Parse a 2xx body that must be a JSON object."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise DecodeError(f"{what}: response body is not JSON ({_snippet(body)})") from None
    if not isinstance(data, dict):
        raise DecodeError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _snippet(body: bytes) -> str:
    text = " ".join(body[:_MAX_ERROR_TEXT].decode("utf-8", "replace").split())
    return text or "empty body"


def _obj(data: JsonObject, name: str) -> JsonObject:
    value = data.get(name)
    if not isinstance(value, dict):
        raise DecodeError(f"field '{name}' is missing or not an object")
    return value


def _list(data: JsonObject, name: str, *, required: bool = True) -> list[Any]:
    value = data.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"field '{name}' is missing or not a list")
    return value


def _str(data: JsonObject, name: str, *alternatives: str) -> str:
    """A required non-empty string (first of ``name`` and its older/alternative names)."""
    value = _opt_str(data, name, *alternatives)
    if value is None:
        raise DecodeError(f"field '{name}' is missing or empty")
    return value


def _opt_str(data: JsonObject, name: str, *alternatives: str) -> str | None:
    for key in (name, *alternatives):
        value = data.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise DecodeError(f"field '{key}' is not a string: {type(value).__name__}")
    return None


def _decimal(data: JsonObject, name: str, *alternatives: str) -> Decimal:
    value = _opt_decimal(data, name, *alternatives)
    if value is None:
        raise DecodeError(f"field '{name}' is missing or empty")
    return value


def _opt_decimal(data: JsonObject, name: str, *alternatives: str) -> Decimal | None:
    for key in (name, *alternatives):
        value = data.get(key)
        if value is None or value == "":
            continue
        return _to_decimal(value, key)
    return None


def _to_decimal(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DecodeError(f"field '{name}' is not a decimal: {type(value).__name__}")
    try:
        # str() first: a JSON float must not drag binary noise into the Decimal.
        result = Decimal(str(value))
    except InvalidOperation:
        raise DecodeError(f"field '{name}' is not a decimal: {value!r}") from None
    if not result.is_finite():
        raise DecodeError(f"field '{name}' is not a finite decimal: {value!r}")
    return result


def _float(data: JsonObject, name: str) -> float:
    value = float(_decimal(data, name))
    if not math.isfinite(value):  # a finite Decimal beyond float range becomes inf
        raise DecodeError(f"field '{name}' is out of range: {data.get(name)!r}")
    return value


def _int(data: JsonObject, name: str, default: int | None = None) -> int:
    value = data.get(name)
    if value is None or value == "":
        if default is None:
            raise DecodeError(f"field '{name}' is missing or empty")
        return default
    if isinstance(value, bool):
        raise DecodeError(f"field '{name}' is not an integer: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DecodeError(f"field '{name}' is not an integer: {value!r}") from None


def _bool(data: JsonObject, name: str, default: bool = False) -> bool:
    value = data.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise DecodeError(f"field '{name}' is not a boolean: {value!r}")


_FRACTION = re.compile(r"\.(\d+)")


def parse_rfc3339(text: str, name: str = "time") -> datetime:
    """An RFC3339 timestamp ('Z' or an offset, 0 to 9 fractional digits) as an aware datetime."""
    # datetime keeps microseconds only: trim nanosecond fractions that Coinbase sometimes sends.
    normalized = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text.strip(), count=1)
    if normalized.endswith(("Z", "z")):
        normalized = normalized[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(normalized)
    except ValueError:
        raise DecodeError(f"field '{name}' is not an RFC3339 time: {text!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _opt_time(data: JsonObject, name: str) -> datetime | None:
    text = _opt_str(data, name)
    return None if text is None else parse_rfc3339(text, name)


def _side(data: JsonObject, name: str = "side") -> Side:
    text = _str(data, name)
    try:
        return Side(text.upper())
    except ValueError:
        raise DecodeError(f"field '{name}' is not BUY or SELL: {text!r}") from None


def order_status(text: str | None) -> ExchangeOrderStatus:
    """Map a status string; anything new or missing becomes UNKNOWN instead of failing."""
    try:
        return ExchangeOrderStatus(text or "")
    except ValueError:
        return ExchangeOrderStatus.UNKNOWN


def _page_cursor(data: JsonObject) -> tuple[bool, str]:
    cursor = _opt_str(data, "cursor") or ""
    # /fills has no has_next: a non-empty cursor is the only sign of another page.
    has_next = _bool(data, "has_next", default=bool(cursor))
    return has_next, cursor


# --------------------------------------------------------------------------- errors


def decode_error_body(body: bytes, content_type: str | None) -> ErrorBody:
    """What a non-2xx answer says: JSON ``{error, message, error_details}``, JSON
    ``{errors: [{id, message}]}``, plain text (``Unauthorized``) or an HTML page (429)."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = _text_or_none(first.get("id")) or _text_or_none(first.get("error"))
            message = _text_or_none(first.get("message")) or code or "error"
            return ErrorBody(code, _clip(message), None)
        code = _text_or_none(data.get("error")) or _text_or_none(data.get("code"))
        details = _text_or_none(data.get("error_details"))
        message = _text_or_none(data.get("message")) or details or code or "error"
        return ErrorBody(code, _clip(message), _clip(details) if details else None)
    text = body.decode("utf-8", "replace")
    if "html" in (content_type or "").lower() or text.lstrip()[:1] == "<":
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        summary = title.group(1) if title else "HTML error page"
        return ErrorBody(None, _clip(summary), None)
    return ErrorBody(None, _clip(text) or "empty body", None)


def _text_or_none(value: object) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _clip(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= _MAX_ERROR_TEXT else one_line[:_MAX_ERROR_TEXT] + "…"


# --------------------------------------------------------------------------- public data


def decode_server_time(data: JsonObject) -> ServerTime:
    """``GET /time`` -> ``{"iso", "epochSeconds", "epochMillis"}`` (numbers may be strings)."""
    iso = _opt_str(data, "iso") or ""
    millis = _opt_decimal(data, "epochMillis")
    if millis is not None:
        return ServerTime(_finite_seconds(float(millis) / 1000.0, "epochMillis"), iso)
    seconds = _opt_decimal(data, "epochSeconds")
    if seconds is not None:
        return ServerTime(_finite_seconds(float(seconds), "epochSeconds"), iso)
    if iso:
        return ServerTime(parse_rfc3339(iso, "iso").timestamp(), iso)
    raise DecodeError("field 'epochSeconds' is missing (and no 'epochMillis' or 'iso')")


def _finite_seconds(value: float, name: str) -> float:
    # An infinite offset would reach the JWT signer's int() and crash every request.
    if not math.isfinite(value):
        raise DecodeError(f"field '{name}' is out of range")
    return value


def decode_product(data: JsonObject) -> Product:
    """One product. Raises ``ImpossibleDataError`` for an increment that is not a positive
    sane amount: every size and price of the product would be rounded by it."""
    product_id = _str(data, "product_id")
    base_guess, _, quote_guess = product_id.partition("-")
    quote_increment = _decimal(data, "quote_increment")
    base_increment = _decimal(data, "base_increment")
    price_increment = _opt_decimal(data, "price_increment") or quote_increment
    for name, value in (
        ("base_increment", base_increment),
        ("quote_increment", quote_increment),
        ("price_increment", price_increment),
    ):
        problem = amount_problem(value, name, zero_ok=False)
        if problem is not None:
            raise ImpossibleDataError(PRODUCT_BAD_INCREMENT, f"product {product_id}: {problem}")
    alias_to = data.get("alias_to")
    return Product(
        product_id=product_id,
        base_currency=_opt_str(data, "base_currency_id", "base_display_symbol") or base_guess,
        quote_currency=_opt_str(data, "quote_currency_id", "quote_display_symbol") or quote_guess,
        base_increment=base_increment,
        quote_increment=quote_increment,
        # The price tick: price_increment when present (it can differ from quote_increment).
        price_increment=price_increment,
        base_min_size=_decimal(data, "base_min_size"),
        base_max_size=_decimal(data, "base_max_size"),
        quote_min_size=_opt_decimal(data, "quote_min_size", "min_market_funds") or Decimal(0),
        quote_max_size=_opt_decimal(data, "quote_max_size") or Decimal("Infinity"),
        status=_opt_str(data, "status") or "online",
        trading_disabled=_bool(data, "trading_disabled") or _bool(data, "is_disabled"),
        cancel_only=_bool(data, "cancel_only"),
        limit_only=_bool(data, "limit_only"),
        post_only=_bool(data, "post_only"),
        auction_mode=_bool(data, "auction_mode"),
        price=_opt_decimal(data, "price"),
        alias=_opt_str(data, "alias"),
        alias_to=tuple(a for a in alias_to if isinstance(a, str) and a)
        if isinstance(alias_to, list)
        else (),
    )


def decode_products(data: JsonObject) -> list[Product]:
    """``GET /products`` -> ``{"products": [...], "num_products": N}``; a product that cannot
    be used is left out (counted, logged with its id), the others are kept."""
    return _each(_list(data, "products"), "products[]", decode_product, BAD_PRODUCT)


def _each(
    items: list[Any],
    name: str,
    decode: Callable[[JsonObject], T],
    default_kind: str,
    salvage: Callable[[JsonObject], T | None] | None = None,
) -> list[T]:
    """Decode every item of a list; one that raises ``DecodeError`` is refused (counted under
    its kind) and costs only itself. ``salvage`` may still make something of a refused item
    (what is safe to pass on), which is then kept as well as counted."""
    decoded: list[T] = []
    for item in items:
        try:
            decoded.append(decode(_as_obj(item, name)))
        except DecodeError as exc:
            kind = exc.kind if isinstance(exc, ImpossibleDataError) else default_kind
            kept = salvage(item) if salvage is not None and isinstance(item, dict) else None
            note = "; listed for cancelling only" if kept is not None else ""
            REFUSED_EXCHANGE_DATA.refuse(kind, f"{name} refused: {exc.message}{note}")
            if kept is not None:
                decoded.append(kept)
    return decoded


def _as_obj(item: object, name: str) -> JsonObject:
    if not isinstance(item, dict):
        raise DecodeError(f"field '{name}' holds a {type(item).__name__}, not an object")
    return item


def decode_product_book(data: JsonObject) -> BookSnapshot:
    """``GET /product_book`` -> ``{"pricebook": {"product_id", "bids", "asks", "time"}, ...}``."""
    book = _obj(data, "pricebook")
    return BookSnapshot(
        product_id=_str(book, "product_id"),
        bids=[_level(level, "bids[]") for level in _list(book, "bids", required=False)],
        asks=[_level(level, "asks[]") for level in _list(book, "asks", required=False)],
        time=_opt_time(book, "time"),
    )


def _level(item: object, name: str) -> tuple[Decimal, Decimal]:
    level = _as_obj(item, name)
    return _decimal(level, "price"), _decimal(level, "size")


def decode_candles(data: JsonObject, product_id: str) -> list[Candle]:
    """``GET /products/{id}/candles`` (newest first on the wire) -> candles oldest first."""
    candles = []
    for item in _list(data, "candles"):
        raw = _as_obj(item, "candles[]")
        candles.append(
            Candle(
                start=_int(raw, "start"),
                open=_float(raw, "open"),
                high=_float(raw, "high"),
                low=_float(raw, "low"),
                close=_float(raw, "close"),
                volume=_float(raw, "volume"),
                product_id=product_id,
            )
        )
    candles.sort(key=lambda candle: candle.start)
    return candles


# --------------------------------------------------------------------------- account


def decode_accounts_page(data: JsonObject) -> Page[Balance]:
    """``GET /accounts`` -> one Balance per account (available and hold)."""
    balances = []
    for item in _list(data, "accounts"):
        account = _as_obj(item, "accounts[]")
        available = _obj(account, "available_balance")
        hold = account.get("hold")
        currency = _opt_str(account, "currency") or _str(available, "currency")
        available_value = _balance_amount(available, "value", currency)
        if available_value is None:
            raise DecodeError("field 'value' is missing or empty")
        balance = Balance(
            currency=currency,
            available=available_value,
            hold=(_balance_amount(hold, "value", currency) if isinstance(hold, dict) else None)
            or Decimal(0),
        )
        balances.append(balance)
    has_next, cursor = _page_cursor(data)
    return Page(balances, has_next, cursor)


def _balance_amount(data: JsonObject, name: str, currency: str) -> Decimal | None:
    """A balance figure; an impossible one (1e400, negative) refuses the WHOLE answer, like
    a bad book: a portfolio built on part of the accounts would be wrong in another way."""
    raw = data.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = _to_decimal(raw, name)
    except DecodeError:
        value = None
    problem = (
        amount_problem(value, f"{currency} balance", zero_ok=True)
        if value is not None
        else f"{currency} balance is not a number: {raw!r}"
    )
    if problem is not None:
        REFUSED_EXCHANGE_DATA.refuse(BALANCE_NOT_SANE, f"accounts answer refused: {problem}")
        raise ImpossibleDataError(BALANCE_NOT_SANE, f"accounts answer refused: {problem}")
    return value


def decode_key_permissions(data: JsonObject) -> KeyPermissions:
    return KeyPermissions(
        can_view=_bool(data, "can_view"),
        can_trade=_bool(data, "can_trade"),
        can_transfer=_bool(data, "can_transfer"),
        portfolio_uuid=_opt_str(data, "portfolio_uuid") or "",
        portfolio_type=_opt_str(data, "portfolio_type") or "",
    )


# --------------------------------------------------------------------------- orders


def decode_create_order(
    data: JsonObject, *, client_order_id: str, product_id: str, side: Side
) -> CreateOrderOutcome:
    """A 2xx answer to ``POST /orders``. Decided on ``success`` only: ``failure_reason`` has
    been seen on successful answers (coinbase-advanced-py#49). A body that does not say
    clearly which way it went is an unknown outcome, never a rejection."""
    success = data.get("success")
    if success is True:
        return _accepted(data, client_order_id=client_order_id, product_id=product_id, side=side)
    if success is False:
        return _rejected(data)
    return OrderOutcomeUnknown(f"create-order answer has no boolean 'success' (got {success!r})")


def _accepted(
    data: JsonObject, *, client_order_id: str, product_id: str, side: Side
) -> CreateOrderOutcome:
    response = data.get("success_response")
    body: JsonObject = response if isinstance(response, dict) else {}
    echoed_id = _text_or_none(body.get("client_order_id"))
    if echoed_id is not None and echoed_id != client_order_id:
        return OrderOutcomeUnknown(
            f"success answer names client_order_id {echoed_id!r}, we sent {client_order_id!r}"
        )
    # hummingbot#7211: an order was placed but the answer lacked success_response.order_id;
    # older answers carried it at the top level.
    order_id = _text_or_none(body.get("order_id")) or _text_or_none(data.get("order_id"))
    if order_id is None:
        return OrderOutcomeUnknown("success answer without an order_id")
    try:
        echoed_side = Side(str(body.get("side") or side).upper())
    except ValueError:
        echoed_side = side
    return OrderAccepted(
        PlacedOrder(
            order_id=order_id,
            client_order_id=client_order_id,
            product_id=_text_or_none(body.get("product_id")) or product_id,
            side=echoed_side,
        )
    )


def _rejected(data: JsonObject) -> OrderRejected:
    response = data.get("error_response")
    body: JsonObject = response if isinstance(response, dict) else {}
    error = _reason(body.get("error"))
    new_order = _reason(body.get("new_order_failure_reason"))
    preview = _reason(body.get("preview_failure_reason"))
    # ``error`` is marked deprecated in favour of new_order_failure_reason: read both.
    code = error or new_order or preview or _reason(data.get("failure_reason"))
    message = _text_or_none(body.get("message")) or code or UNKNOWN_FAILURE_REASON
    return OrderRejected(
        code=code or UNKNOWN_FAILURE_REASON,
        message=message,
        details=_text_or_none(body.get("error_details")) or "",
        preview_failure_reason=preview,
        new_order_failure_reason=new_order,
    )


def _reason(value: object) -> str | None:
    text = _text_or_none(value)
    if text is None or (text.startswith("UNKNOWN_") and text.endswith("_REASON")):
        return None
    return text


def decode_cancel_results(data: JsonObject) -> list[CancelResult]:
    """``POST /orders/batch_cancel`` -> ``{"results": [{success, failure_reason, order_id}]}``."""
    results = []
    for item in _list(data, "results"):
        raw = _as_obj(item, "results[]")
        success = _bool(raw, "success")
        results.append(
            CancelResult(
                order_id=_str(raw, "order_id"),
                success=success,
                # The placeholder reason accompanies successes; keep only real reasons.
                failure_reason=None if success else _opt_str(raw, "failure_reason"),
            )
        )
    return results


def decode_order(data: JsonObject) -> ExchangeOrder:
    """One REST order object (the value of ``order`` or an item of ``orders``)."""
    configuration = _order_configuration(data)
    reject_reason = _text_or_none(data.get("reject_reason"))
    if reject_reason == "REJECT_REASON_UNSPECIFIED":
        reject_reason = _text_or_none(data.get("reject_message"))
    else:
        reject_reason = reject_reason or _text_or_none(data.get("reject_message"))
    order_id = _str(data, "order_id")
    base_size = _opt_decimal(configuration, "base_size")
    filled_size = _fill_amount(data, "filled_size", order_id)
    if base_size is not None and filled_size > base_size:
        raise ImpossibleDataError(
            FILL_PAST_ORDER_SIZE,
            f"order {order_id}: filled size {filled_size} is past the order size {base_size}",
        )
    return ExchangeOrder(
        order_id=order_id,
        client_order_id=_opt_str(data, "client_order_id") or "",
        product_id=_str(data, "product_id"),
        side=_side(data),
        status=order_status(_text_or_none(data.get("status"))),
        order_type=_text_or_none(data.get("order_type")) or "UNKNOWN_ORDER_TYPE",
        time_in_force=_text_or_none(data.get("time_in_force")),
        base_size=base_size,
        quote_size=_opt_decimal(configuration, "quote_size"),
        limit_price=_opt_decimal(configuration, "limit_price"),
        stop_price=_opt_decimal(configuration, "stop_price", "stop_trigger_price"),
        post_only=_bool(configuration, "post_only"),
        filled_size=filled_size,
        average_filled_price=_fill_amount(data, "average_filled_price", order_id),
        filled_value=_fill_amount(data, "filled_value", order_id),
        total_fees=_fill_amount(data, "total_fees", order_id),
        number_of_fills=_count(data, "number_of_fills"),
        leaves_quantity=_opt_decimal(data, "leaves_quantity"),
        created_time=_opt_time(data, "created_time"),
        reject_reason=reject_reason,
        cancel_reason=_text_or_none(data.get("cancel_message"))
        or _text_or_none(data.get("cancel_reason")),
        pending_cancel=_bool(data, "pending_cancel"),
    )


def _fill_amount(data: JsonObject, name: str, order_id: str) -> Decimal:
    """A cumulative fill figure of an order (0 when absent); an impossible one refuses it."""
    value = _opt_decimal(data, name) or Decimal(0)
    problem = amount_problem(value, name, zero_ok=True)
    if problem is not None:
        raise ImpossibleDataError(FILL_NOT_SANE, f"order {order_id}: {problem}")
    return value


def _count(data: JsonObject, name: str) -> int:
    """An informational count: an unreadable one costs the field (0), not the order."""
    try:
        return max(_int(data, name, default=0), 0)
    except DecodeError:
        return 0


def _order_configuration(data: JsonObject) -> JsonObject:
    """The fields inside the single ``order_configuration`` entry, whatever its kind."""
    configuration = data.get("order_configuration")
    if not isinstance(configuration, dict):
        return {}
    for value in configuration.values():
        if isinstance(value, dict):
            return value
    return {}


def cancel_only_order(data: JsonObject) -> ExchangeOrder | None:
    """What is safe to pass on of an order refused as impossible or unreadable: its identity
    and open status, so cancel-all and the kill switch still find and cancel it (a refused
    open order left out of a listing stayed open at the venue after a kill said DONE).

    Only an order that still names itself, its product and its side, with an open status;
    None otherwise. Its sizes and prices are kept where each is a sane amount; its fill
    figures are not: they are zero, which the order manager never takes for news (a report
    behind what it holds is ignored; one of an order it does not know books nothing), so
    nothing is ever booked from a refused report."""
    try:
        order_id = _str(data, "order_id")
        product_id = _str(data, "product_id")
        side = _side(data)
        client_order_id = _opt_str(data, "client_order_id") or ""
    except DecodeError:
        return None
    status = order_status(_text_or_none(data.get("status")))
    if not status.is_open:
        return None
    configuration = _order_configuration(data)

    def sane(*names: str) -> Decimal | None:
        try:
            value = _opt_decimal(configuration, *names)
        except DecodeError:
            return None
        if value is None or amount_problem(value, names[0], zero_ok=False) is not None:
            return None
        return value

    return ExchangeOrder(
        order_id=order_id,
        client_order_id=client_order_id,
        product_id=product_id,
        side=side,
        status=status,
        order_type=_text_or_none(data.get("order_type")) or "UNKNOWN_ORDER_TYPE",
        base_size=sane("base_size"),
        quote_size=sane("quote_size"),
        limit_price=sane("limit_price"),
        stop_price=sane("stop_price", "stop_trigger_price"),
    )


def decode_get_order(data: JsonObject) -> ExchangeOrder:
    """``GET /orders/historical/{id}`` -> ``{"order": {...}}``."""
    return decode_order(_obj(data, "order"))


def decode_orders_page(data: JsonObject) -> Page[ExchangeOrder]:
    """``GET /orders/historical/batch`` -> ``{"orders", "has_next", "cursor", "sequence"}``.

    A refused order that is still open keeps its place, for cancelling only (see
    ``cancel_only_order``): refusing its numbers must not hide it from the kill switch."""
    orders = _each(
        _list(data, "orders"), "orders[]", decode_order, BAD_ORDER, salvage=cancel_only_order
    )
    has_next, cursor = _page_cursor(data)
    return Page(orders, has_next, cursor)


def decode_fill(data: JsonObject) -> Fill:
    """One fill. ``size_in_quote: true`` means ``size`` is in quote currency (a quote-sized
    market order): the base size is size / price. Impossible numbers raise
    ``ImpossibleDataError`` (see ``core.fill_guard``)."""
    try:
        liquidity = LiquidityIndicator(_opt_str(data, "liquidity_indicator") or "")
    except ValueError:
        liquidity = LiquidityIndicator.UNKNOWN
    trade_id = _str(data, "trade_id", "entry_id")
    price = _decimal(data, "price")
    size = _decimal(data, "size")
    commission = _opt_decimal(data, "commission") or Decimal(0)
    problem = fill_problem(price, size, commission)
    if problem is not None:
        raise ImpossibleDataError(FILL_NOT_SANE, f"fill {trade_id}: {problem}")
    if _bool(data, "size_in_quote"):
        size = size / price
    return Fill(
        trade_id=trade_id,
        order_id=_str(data, "order_id"),
        product_id=_str(data, "product_id"),
        side=_side(data),
        price=price,
        size=size,
        commission=commission,
        liquidity=liquidity,
        trade_time=_opt_time(data, "trade_time"),
        sequence_timestamp=_opt_time(data, "sequence_timestamp"),
    )


def decode_fills_page(data: JsonObject) -> Page[Fill]:
    """``GET /orders/historical/fills`` -> ``{"fills": [...], "cursor": ""}``."""
    fills = _each(_list(data, "fills"), "fills[]", decode_fill, BAD_FILL)
    has_next, cursor = _page_cursor(data)
    return Page(fills, has_next, cursor)
