"""Real-shaped Coinbase payloads (tests/data/coinbase) with impossible or unusual values: each
is refused or handled as docs/coinbase-protocol.md says, and each refusal is counted by kind."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.bad_input import REFUSED_EXCHANGE_DATA
from core.clock import ManualClock
from core.coinbase.errors import ImpossibleDataError
from core.coinbase.rest_decode import (
    BAD_ORDER,
    BALANCE_NOT_SANE,
    PRODUCT_BAD_INCREMENT,
    decode_accounts_page,
    decode_fills_page,
    decode_orders_page,
    decode_products,
)
from core.coinbase.user_messages import UserOrdersEvent, decode_user_frame
from core.fill_guard import FILL_NOT_SANE, FILL_PAST_ORDER_SIZE
from core.model import Side
from core.user_stream import UserStream

DATA = Path(__file__).resolve().parents[2] / "data" / "coinbase"


def load(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


class Counted:
    """How many refusals of each kind a block of code added to the process registry."""

    def __init__(self) -> None:
        self.before = REFUSED_EXCHANGE_DATA.counts()

    def added(self) -> dict[str, int]:
        after = REFUSED_EXCHANGE_DATA.counts()
        return {k: v - self.before.get(k, 0) for k, v in after.items() if v != self.before.get(k)}


# --------------------------------------------------------------------------- REST


def test_products_with_a_bad_increment_are_refused_by_name_and_the_others_kept() -> None:
    counted = Counted()
    products = decode_products(load("products_zero_increment.json"))
    assert [p.product_id for p in products] == ["BTC-USD"]
    assert counted.added() == {PRODUCT_BAD_INCREMENT: 3}


def test_usdc_alias_fields_are_read() -> None:
    products = {p.product_id: p for p in decode_products(load("products_usdc_alias.json"))}
    assert products["BTC-USDC"].alias == "BTC-USD"
    assert products["BTC-USD"].alias_to == ("BTC-USDC",)
    assert products["ETH-USD"].alias is None and products["ETH-USD"].alias_to == ()


@pytest.mark.parametrize(
    "name", ["accounts_non_finite_balance.json", "accounts_negative_balance.json"]
)
def test_an_impossible_balance_refuses_the_whole_accounts_answer(name: str) -> None:
    counted = Counted()
    with pytest.raises(ImpossibleDataError) as caught:
        decode_accounts_page(load(name))
    assert caught.value.kind == BALANCE_NOT_SANE
    assert counted.added() == {BALANCE_NOT_SANE: 1}


def test_good_balances_decode() -> None:
    page = decode_accounts_page(load("accounts_good.json"))
    usd = next(b for b in page.items if b.currency == "USD")
    assert (usd.available, usd.hold) == (Decimal("100000.00"), Decimal("250.5"))


def test_bad_orders_in_a_page_cost_only_themselves() -> None:
    counted = Counted()
    page = decode_orders_page(load("orders_page_with_bad_orders.json"))
    assert [o.order_id for o in page.items] == ["good-1", "good-2"]
    good_2 = page.items[1]
    # A numeric reject_reason and an unreadable fill count cost only those fields.
    assert good_2.reject_reason == "17" and good_2.number_of_fills == 0
    assert counted.added() == {BAD_ORDER: 1, FILL_PAST_ORDER_SIZE: 1, FILL_NOT_SANE: 1}


def test_quote_sized_fills_are_converted_and_impossible_ones_refused() -> None:
    counted = Counted()
    page = decode_fills_page(load("fills_page_quote_sized_and_impossible.json"))
    fills = {f.trade_id: f for f in page.items}
    assert set(fills) == {"t-base", "t-quote"}
    assert fills["t-base"].size == Decimal("0.001")
    # size_in_quote: 100.00 USD at 68000.00 is 100 / 68000 BTC.
    assert fills["t-quote"].size == Decimal("100.00") / Decimal("68000.00")
    value = fills["t-quote"].size * fills["t-quote"].price
    assert value.quantize(Decimal("0.01")) == Decimal("100.00")
    assert counted.added() == {FILL_NOT_SANE: 3}


# --------------------------------------------------------------------------- user channel


class Listener:
    def __init__(self) -> None:
        self.events: list[UserOrdersEvent] = []
        self.resets: list[str] = []

    def on_user_orders(self, event: UserOrdersEvent) -> None:
        self.events.append(event)

    def on_stream_reset(self, reason: str) -> None:
        self.resets.append(reason)


class Control:
    name = "user"

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.reconnects: list[str] = []

    def request_reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)

    def request_resubscribe(self, channel: str, product_ids: object) -> None:
        raise AssertionError("the user stream never resubscribes")

    def report_refused(self, reason: str) -> None:
        self.refused.append(reason)


def stream() -> tuple[UserStream, Listener, Control]:
    listener, control = Listener(), Control()
    user = UserStream(listener, clock=ManualClock())
    user.on_connected(control)
    return user, listener, control


def test_user_order_types_and_flags_without_refusing_the_frame() -> None:
    user, listener, _ = stream()
    user.on_frame(raw("user_order_types_and_flags.json"))
    (event,) = listener.events
    types = {o.order_id: o.order_type for o in event.orders}
    assert types == {
        "limit-post-only": "LIMIT",
        "stoplimit": "STOP_LIMIT",
        "stop-limit-spaced": "STOP_LIMIT",
        "stop": "STOP",
        "bracket": "BRACKET",
        "twap": "TWAP",
        "numeric-reject": "LIMIT",
    }
    by_id = {o.order_id: o for o in event.orders}
    assert by_id["limit-post-only"].post_only is True
    assert by_id["stop"].post_only is False
    assert by_id["numeric-reject"].reject_reason == "5"
    # The bad side, the negative fee and the unknown event each cost only themselves:
    # counted, no stream reset.
    assert listener.resets == []
    assert user.bad_input.counts() == {"bad_order": 1, FILL_NOT_SANE: 1, "bad_event": 1}


def test_an_impossible_user_fill_is_refused_and_the_good_order_delivered() -> None:
    counted = Counted()
    user, listener, _ = stream()
    user.on_frame(raw("user_impossible_fill.json"))
    (event,) = listener.events
    assert [o.order_id for o in event.orders] == ["fine"]
    assert event.orders[0].side is Side.BUY
    assert listener.resets == []
    assert counted.added() == {FILL_NOT_SANE: 1}


def test_authentication_failure_makes_the_user_stream_down() -> None:
    user, listener, control = stream()
    user.on_frame(
        orjson.dumps({"channel": "user", "sequence_num": 0, "events": [{"type": "snapshot"}]})
    )
    assert user.subscribed
    user.on_frame(raw("user_auth_failure.json"))
    assert not user.subscribed
    assert control.refused == ["authentication failure"]
    assert user.last_refusal == "authentication failure"
    assert any("refused" in reason for reason in listener.resets)


def test_a_connection_without_refusal_support_is_reconnected() -> None:
    listener = Listener()
    user = UserStream(listener, clock=ManualClock())

    class Plain:
        name = "user"

        def __init__(self) -> None:
            self.reconnects: list[str] = []

        def request_reconnect(self, reason: str) -> None:
            self.reconnects.append(reason)

        def request_resubscribe(self, channel: str, product_ids: object) -> None: ...

    plain = Plain()
    user.on_connected(plain)
    user.on_frame(raw("user_auth_failure.json"))
    assert plain.reconnects == ["subscription refused: authentication failure"]


def test_futures_balance_summary_on_the_user_socket_is_not_bad_input() -> None:
    user, listener, _ = stream()
    user.on_frame(raw("user_futures_balance_summary.json"))
    assert user.bad_input.counts() == {} and listener.resets == []


def test_a_user_sequence_going_backwards_reconciles() -> None:
    user, listener, control = stream()
    for seq in range(5):
        user.on_frame(orjson.dumps({"channel": "heartbeats", "sequence_num": seq, "events": []}))
    user.on_frame(orjson.dumps({"channel": "heartbeats", "sequence_num": 4, "events": []}))
    assert listener.resets == []  # a repeat of the last number is a duplicate
    user.on_frame(orjson.dumps({"channel": "heartbeats", "sequence_num": 1, "events": []}))
    assert listener.resets and "backwards" in listener.resets[-1]
    assert control.reconnects


def test_decoded_frame_lists_every_refusal() -> None:
    decoded = decode_user_frame(raw("user_order_types_and_flags.json"))
    kinds = sorted(kind for kind, _ in decoded.all_refusals())
    assert kinds == sorted(["bad_order", FILL_NOT_SANE, "bad_event"])
