"""Decoding of the authenticated ``user`` channel (and the envelope bits the user socket needs).

The user channel reports each order cumulatively: every update carries the order's totals so
far (``cumulative_quantity``, ``avg_price``, ``total_fees``), never a single fill, and it has
no trade ids. The order manager derives fills as deltas between updates; this module only
turns frames into ``ExchangeOrder`` values. Titles differ from REST: ``order_side`` instead of
``side`` and title-case ``order_type`` ("Limit", "Stop Limit").

Not a hot path (a handful of messages per second): plain ``orjson`` into dicts, checked
field by field so a bad order is reported with the field that is wrong.

What one bad value costs (docs/coinbase-protocol.md §3.3): the least that keeps the
rest trustworthy. An unknown order type or a non-text ``reject_reason`` costs that field; an
unknown side, an impossible number (``1e400``, a negative fee) costs that order; an unknown
event type costs that event. The rest of the frame is delivered and the stream is not reset;
what was dropped comes back in ``refused`` so the caller counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from core.coinbase.errors import DecodeError
from core.coinbase.rest_decode import parse_rfc3339
from core.fill_guard import FILL_NOT_SANE, amount_problem
from core.model import ExchangeOrder, ExchangeOrderStatus, Side

ZERO = Decimal(0)
# Keyed by the lower-case name without spaces or underscores: the channel has sent "Limit",
# "Stop Limit", "StopLimit", "Stop" and "Bracket"; anything new is kept, upper-cased.
_ORDER_TYPES = {
    "limit": "LIMIT",
    "market": "MARKET",
    "stoplimit": "STOP_LIMIT",
    "stop": "STOP",
    "bracket": "BRACKET",
}
# Cumulative money figures: an impossible one is an impossible fill (counted as such).
_FILL_FIELDS = frozenset({"cumulative_quantity", "avg_price", "filled_value", "total_fees"})
# (kind, detail) of something dropped from a frame.
Refusal = tuple[str, str]


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
    # Orders left out because they could not be trusted (each costs only itself).
    refused: tuple[Refusal, ...] = ()


@dataclass(frozen=True, slots=True)
class UserFrame:
    """A decoded frame from the user socket. ``channel`` is the received channel name."""

    channel: str
    sequence_num: int
    events: tuple[UserOrdersEvent, ...] = ()
    error_message: str | None = None
    # The channels a ``subscriptions`` acknowledgement lists (what the exchange accepted).
    subscribed_channels: tuple[str, ...] = ()
    # Events left out (an unknown event type); their orders are not delivered.
    refused: tuple[Refusal, ...] = ()

    def all_refusals(self) -> tuple[Refusal, ...]:
        """Everything dropped from this frame: whole events and single orders."""
        return self.refused + tuple(r for event in self.events for r in event.refused)


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
    if channel == "subscriptions":
        return UserFrame(channel, sequence_num, subscribed_channels=_acknowledged(message))
    if channel != "user":
        return UserFrame(channel, sequence_num)
    events = message.get("events")
    if not isinstance(events, list):
        raise UserMessageError("missing_field", "events")
    decoded: list[UserOrdersEvent] = []
    refused: list[Refusal] = []
    for event in events:
        try:
            decoded.append(_decode_event(event))
        except UserMessageError as exc:
            refused.append((exc.kind, str(exc)))
    return UserFrame(channel, sequence_num, tuple(decoded), refused=tuple(refused))


def _acknowledged(message: dict[str, Any]) -> tuple[str, ...]:
    """The channel names a subscriptions acknowledgement lists; () if it is not readable."""
    events = message.get("events")
    if not isinstance(events, list):
        return ()
    channels: list[str] = []
    for event in events:
        subscriptions = event.get("subscriptions") if isinstance(event, dict) else None
        if isinstance(subscriptions, dict):
            channels.extend(name for name in subscriptions if isinstance(name, str))
    return tuple(channels)


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
    decoded: list[ExchangeOrder] = []
    refused: list[Refusal] = []
    for raw in orders:
        try:
            decoded.append(decode_user_order(raw))
        except UserMessageError as exc:
            refused.append((exc.kind, str(exc)))
    return UserOrdersEvent(kind == "snapshot", tuple(decoded), tuple(refused))


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
    order_type = _text_field(raw, "order_type") or ""
    filled = _decimal(raw, "cumulative_quantity") or ZERO
    return ExchangeOrder(
        order_id=order_id,
        client_order_id=_optional_str(raw, "client_order_id") or "",
        product_id=_required_str(raw, "product_id"),
        side=side,
        status=status,
        order_type=_order_type(order_type),
        time_in_force=_text_field(raw, "time_in_force"),
        limit_price=_decimal(raw, "limit_price"),
        stop_price=_decimal(raw, "stop_price"),
        filled_size=filled,
        average_filled_price=_decimal(raw, "avg_price") or ZERO,
        filled_value=_decimal(raw, "filled_value") or ZERO,
        total_fees=_decimal(raw, "total_fees") or ZERO,
        number_of_fills=_int(raw, "number_of_fills"),
        leaves_quantity=_decimal(raw, "leaves_quantity"),
        created_time=_datetime(raw.get("creation_time")),
        reject_reason=_text_field(raw, "reject_reason"),
        cancel_reason=_text_field(raw, "cancel_reason"),
        post_only=_flag(raw.get("post_only")),
    )


def _order_type(text: str) -> str:
    if not text:
        return ""
    key = text.lower().replace(" ", "").replace("_", "")
    return _ORDER_TYPES.get(key, text.upper().replace(" ", "_"))


def _flag(value: object) -> bool:
    """``post_only`` arrives as "true"/"false" text (or a JSON boolean); anything else: false."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def _text_field(raw: dict[str, Any], key: str) -> str | None:
    """An informational text field: a value of another type costs this field, not the order
    (a numeric ``reject_reason`` has been seen)."""
    value = raw.get(key)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


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
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UserMessageError("bad_number", f"{key}={value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UserMessageError("bad_number", f"{key}={value!r}") from None
    problem = amount_problem(number, key, zero_ok=True)
    if problem is not None:
        kind = FILL_NOT_SANE if key in _FILL_FIELDS else "bad_number"
        raise UserMessageError(kind, problem)
    return number


def _int(raw: dict[str, Any], key: str) -> int:
    """A count that is informational only: an unreadable one costs the field (0)."""
    value = raw.get(key, 0)
    if isinstance(value, bool):
        return 0
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(number, 0)


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value, "creation_time")
    except DecodeError:
        return None
