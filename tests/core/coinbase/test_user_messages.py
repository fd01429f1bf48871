"""The user channel: cumulative per-order updates decoded into ExchangeOrder values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from core.coinbase.user_messages import UserMessageError, decode_user_frame, decode_user_order
from core.model import ExchangeOrderStatus, Side


def user_order(**overrides: Any) -> dict[str, Any]:
    """A user-channel order shaped like Coinbase's (fields from docs/coinbase-protocol.md §3.3)."""
    order: dict[str, Any] = {
        "order_id": "11111-000000-000000",
        "client_order_id": "0000-00000-000000",
        "cumulative_quantity": "0.5",
        "leaves_quantity": "0.5",
        "avg_price": "68000.5",
        "total_fees": "12.3",
        "status": "OPEN",
        "product_id": "BTC-USD",
        "creation_time": "2026-04-07T14:30:01.123456789Z",
        "order_side": "BUY",
        "order_type": "Limit",
        "time_in_force": "GOOD_UNTIL_CANCELLED",
        "filled_value": "34000.25",
        "number_of_fills": "2",
        "limit_price": "68001.00",
        "cancel_reason": "",
        "reject_reason": "",
    }
    order.update(overrides)
    return order


def frame(events: list[Any], channel: str = "user", sequence_num: int = 4) -> bytes:
    return orjson.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": "2026-04-07T14:30:01.456789Z",
            "sequence_num": sequence_num,
            "events": events,
        }
    )


def test_snapshot_and_update_events() -> None:
    decoded = decode_user_frame(
        frame(
            [
                {"type": "snapshot", "orders": [user_order()], "positions": {}},
                {"type": "update", "orders": [user_order(status="FILLED")]},
            ]
        )
    )
    assert decoded.channel == "user" and decoded.sequence_num == 4
    snapshot, update = decoded.events
    assert snapshot.is_snapshot and not update.is_snapshot
    order = snapshot.orders[0]
    assert order.side is Side.BUY
    assert order.status is ExchangeOrderStatus.OPEN
    assert order.order_type == "LIMIT"
    assert order.filled_size == Decimal("0.5")
    assert order.average_filled_price == Decimal("68000.5")
    assert order.total_fees == Decimal("12.3")
    assert order.number_of_fills == 2
    assert order.limit_price == Decimal("68001.00")
    assert order.stop_price is None
    assert order.reject_reason is None
    assert order.created_time == datetime(2026, 4, 7, 14, 30, 1, 123456, tzinfo=UTC)
    assert update.orders[0].status is ExchangeOrderStatus.FILLED


def test_title_case_order_types() -> None:
    assert decode_user_order(user_order(order_type="Stop Limit")).order_type == "STOP_LIMIT"
    assert decode_user_order(user_order(order_type="Market")).order_type == "MARKET"


def test_unknown_status_maps_to_unknown() -> None:
    order = decode_user_order(user_order(status="SOMETHING_NEW"))
    assert order.status is ExchangeOrderStatus.UNKNOWN


def test_other_channels_keep_their_sequence_number() -> None:
    decoded = decode_user_frame(
        frame([{"current_time": "x"}], channel="heartbeats", sequence_num=9)
    )
    assert (decoded.channel, decoded.sequence_num, decoded.events) == ("heartbeats", 9, ())


def test_error_message() -> None:
    decoded = decode_user_frame(b'{"type":"error","message":"authentication failure"}')
    assert decoded.error_message == "authentication failure"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"{not json", "malformed_json"),
        (b"[1]", "malformed_json"),
        (b'{"sequence_num": 1}', "missing_field"),
        (b'{"channel": "user"}', "missing_field"),
        (b'{"channel": "user", "sequence_num": true}', "missing_field"),
        (b'{"channel": "user", "sequence_num": 1}', "missing_field"),
    ],
)
def test_bad_frames_are_named(raw: bytes, kind: str) -> None:
    with pytest.raises(UserMessageError) as caught:
        decode_user_frame(raw)
    assert caught.value.kind == kind


GOOD = user_order(order_id="good-1")


@pytest.mark.parametrize(
    ("events", "kind"),
    [
        (["x", {"type": "update", "orders": [GOOD]}], "bad_event"),
        (
            [{"type": "weird", "orders": [user_order()]}, {"type": "update", "orders": [GOOD]}],
            "bad_event",
        ),
        ([{"type": "update", "orders": {}}, {"type": "update", "orders": [GOOD]}], "bad_event"),
        ([{"type": "update", "orders": ["x", GOOD]}], "bad_order"),
        ([{"type": "update", "orders": [user_order(order_id=""), GOOD]}], "bad_order"),
        ([{"type": "update", "orders": [user_order(order_side="UP"), GOOD]}], "bad_order"),
        ([{"type": "update", "orders": [user_order(avg_price="abc"), GOOD]}], "bad_number"),
        (
            [{"type": "update", "orders": [user_order(total_fees="-1"), GOOD]}],
            "fill_not_finite_positive",
        ),
        (
            [{"type": "update", "orders": [user_order(avg_price="NaN"), GOOD]}],
            "fill_not_finite_positive",
        ),
        (
            [{"type": "update", "orders": [user_order(cumulative_quantity="1e400"), GOOD]}],
            "fill_not_finite_positive",
        ),
        ([{"type": "update", "orders": [user_order(limit_price="-5"), GOOD]}], "bad_number"),
    ],
)
def test_one_bad_event_or_order_costs_only_itself(events: list[Any], kind: str) -> None:
    decoded = decode_user_frame(frame(events))
    delivered = [order.order_id for event in decoded.events for order in event.orders]
    assert delivered == ["good-1"]
    assert [refusal[0] for refusal in decoded.all_refusals()] == [kind]


@pytest.mark.parametrize(
    ("overrides", "field", "value"),
    [
        ({"number_of_fills": "x"}, "number_of_fills", 0),
        ({"reject_reason": 7}, "reject_reason", "7"),
        ({"reject_reason": {"code": 1}}, "reject_reason", None),
        ({"cancel_reason": ["x"]}, "cancel_reason", None),
        ({"time_in_force": 3}, "time_in_force", "3"),
        ({"order_type": 12}, "order_type", "12"),
    ],
)
def test_a_bad_informational_field_costs_only_that_field(
    overrides: dict[str, Any], field: str, value: object
) -> None:
    order = decode_user_order(user_order(**overrides))
    assert getattr(order, field) == value
    assert order.filled_size == Decimal("0.5")


@pytest.mark.parametrize(
    ("wire", "mapped"),
    [
        ("Limit", "LIMIT"),
        ("Market", "MARKET"),
        ("StopLimit", "STOP_LIMIT"),
        ("Stop Limit", "STOP_LIMIT"),
        ("STOP_LIMIT", "STOP_LIMIT"),
        ("Stop", "STOP"),
        ("Bracket", "BRACKET"),
        ("Trailing Stop", "TRAILING_STOP"),
    ],
)
def test_order_types_are_mapped_and_unknown_ones_kept(wire: str, mapped: str) -> None:
    assert decode_user_order(user_order(order_type=wire)).order_type == mapped


@pytest.mark.parametrize(
    ("wire", "expected"),
    [("true", True), ("True", True), (True, True), ("false", False), (None, False), ("x", False)],
)
def test_post_only_is_kept_whether_text_or_boolean(wire: object, expected: bool) -> None:
    assert decode_user_order(user_order(post_only=wire)).post_only is expected


def test_optional_fields_may_be_missing() -> None:
    minimal = {"order_id": "o", "order_side": "SELL", "status": "OPEN", "product_id": "ETH-USD"}
    order = decode_user_order(minimal)
    assert order.side is Side.SELL
    assert order.filled_size == 0 and order.leaves_quantity is None and order.created_time is None
    assert decode_user_order({**minimal, "creation_time": "garbage"}).created_time is None
