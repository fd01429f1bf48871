"""Decoding of the authenticated ``user`` channel (and the envelope bits the user socket needs).

The user channel reports each order cumulatively: every update carries the order's totals so
far (``cumulative_quantity``, ``avg_price``, ``total_fees``), never a single fill, and it has
no trade ids. The order manager derives fills as deltas between updates; this module only
turns frames into ``ExchangeOrder`` values. Titles differ from REST: ``order_side`` instead of
``side`` and title-case ``order_type`` ("Limit", "Stop Limit").

Not a hot path (a handful of messages per second): plain ``orjson`` into dicts, checked
field by field so a bad order is reported with the field that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from core.coinbase.errors import DecodeError
from core.coinbase.rest_decode import parse_rfc3339
from core.model import ExchangeOrder, ExchangeOrderStatus, Side

ZERO = Decimal(0)
_ORDER_TYPES = {"limit": "LIMIT", "market": "MARKET", "stop limit": "STOP_LIMIT"}


class UserMessageError(ValueError):
    """A user-channel frame that cannot be trusted. ``kind`` names the problem for counters."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class UserOrdersEvent:
    """One ``user`` event: a snapshot of all open orders, or updates of some orders."""

    is_snapshot: bool
    orders: tuple[ExchangeOrder, ...]


@dataclass(frozen=True, slots=True)
class UserFrame:
    """A decoded frame from the user socket. ``channel`` is the received channel name."""

    channel: str
    sequence_num: int
    events: tuple[UserOrdersEvent, ...] = ()
    error_message: str | None = None


def decode_user_frame(frame: str | bytes) -> UserFrame:
    """Decode one frame from the user socket; raise ``UserMessageError`` on anything bad.

    Frames from other channels (heartbeats, subscriptions) come back with no events, so the
    caller can still check their ``sequence_num``.
    """
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise UserMessageError("malformed_json", str(exc)) from None
    if not isinstance(message, dict):
        raise UserMessageError("malformed_json", "frame is not a JSON object")
    if message.get("type") == "error":
        return UserFrame("error", -1, error_message=str(message.get("message", "")))
    channel = message.get("channel")
    if not isinstance(channel, str):
        raise UserMessageError("missing_field", "channel")
    sequence_num = message.get("sequence_num")
    if not isinstance(sequence_num, int) or isinstance(sequence_num, bool):
        raise UserMessageError("missing_field", "sequence_num")
    if channel != "user":
        return UserFrame(channel, sequence_num)
    events = message.get("events")
    if not isinstance(events, list):
        raise UserMessageError("missing_field", "events")
    return UserFrame(channel, sequence_num, tuple(_decode_event(event) for event in events))


def _decode_event(event: Any) -> UserOrdersEvent:
    if not isinstance(event, dict):
        raise UserMessageError("bad_event", "event is not an object")
    kind = event.get("type")
    if kind not in ("snapshot", "update"):
        raise UserMessageError("bad_event", f"type {kind!r}")
    orders = event.get("orders")
    if orders is None:
        orders = []
    if not isinstance(orders, list):
        raise UserMessageError("bad_event", "orders is not a list")
    return UserOrdersEvent(kind == "snapshot", tuple(decode_user_order(o) for o in orders))


def decode_user_order(raw: Any) -> ExchangeOrder:
    """One order object of the user channel as an ``ExchangeOrder``."""
    if not isinstance(raw, dict):
        raise UserMessageError("bad_order", "order is not an object")
    order_id = _required_str(raw, "order_id")
    side_text = _required_str(raw, "order_side")
    try:
        side = Side(side_text.upper())
    except ValueError:
        raise UserMessageError("bad_order", f"order_side {side_text!r}") from None
    status_text = _required_str(raw, "status")
    try:
        status = ExchangeOrderStatus(status_text)
    except ValueError:
        status = ExchangeOrderStatus.UNKNOWN
    order_type = _optional_str(raw, "order_type") or ""
    filled = _decimal(raw, "cumulative_quantity") or ZERO
    return ExchangeOrder(
        order_id=order_id,
        client_order_id=_optional_str(raw, "client_order_id") or "",
        product_id=_required_str(raw, "product_id"),
        side=side,
        status=status,
        order_type=_ORDER_TYPES.get(order_type.lower(), order_type.upper()),
        time_in_force=_optional_str(raw, "time_in_force"),
        limit_price=_decimal(raw, "limit_price"),
        stop_price=_decimal(raw, "stop_price"),
        filled_size=filled,
        average_filled_price=_decimal(raw, "avg_price") or ZERO,
        filled_value=_decimal(raw, "filled_value") or ZERO,
        total_fees=_decimal(raw, "total_fees") or ZERO,
        number_of_fills=_int(raw, "number_of_fills"),
        leaves_quantity=_decimal(raw, "leaves_quantity"),
        created_time=_datetime(raw.get("creation_time")),
        reject_reason=_optional_str(raw, "reject_reason"),
        cancel_reason=_optional_str(raw, "cancel_reason"),
    )


def _required_str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise UserMessageError("bad_order", f"missing {key}")
    return value


def _optional_str(raw: dict[str, Any], key: str) -> str | None:
    # A number or an object where text belongs means the frame cannot be trusted, and letting
    # it through would hand a non-string to code that formats or compares it as one.
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UserMessageError("bad_order", f"{key} is not a string: {type(value).__name__}")
    return value


def _decimal(raw: dict[str, Any], key: str) -> Decimal | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UserMessageError("bad_number", f"{key}={value!r}") from None
    if not number.is_finite() or number < 0:
        raise UserMessageError("bad_number", f"{key}={value!r}")
    return number


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    try:
        number = int(value or 0)
    except (TypeError, ValueError):
        raise UserMessageError("bad_number", f"{key}={value!r}") from None
    if number < 0 or isinstance(value, bool):
        raise UserMessageError("bad_number", f"{key}={value!r}")
    return number


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value, "creation_time")
    except DecodeError:
        return None
