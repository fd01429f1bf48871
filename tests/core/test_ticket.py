"""core.ticket (the order ticket's fields into an OrderSpec, one message per field) and the
risk gate's ``preview`` (the gate's decision the ticket shows, not counted in the rate)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.denials import DenialReason
from core.model import (
    IntentSource,
    OrderIntent,
    OrderType,
    Product,
    Side,
    StopDirection,
    TimeInForce,
)
from core.risk import GaugeName
from core.ticket import (
    MAX_NUMBER_LENGTH,
    FieldProblem,
    TicketEntry,
    TicketField,
    check_ticket,
    describe_spec,
    manual_intent,
    parse_number,
)
from core.trading_state import TradingState
from tests.core.test_risk import make_harness

D = Decimal
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z

BTC = Product(
    product_id="BTC-USD",
    base_currency="BTC",
    quote_currency="USD",
    base_increment=D("0.00000001"),
    quote_increment=D("0.01"),
    price_increment=D("0.01"),
    base_min_size=D("0.00000001"),
    base_max_size=D("3400"),
    quote_min_size=D("1"),
    quote_max_size=D("150000000"),
)


def entry(**changes: object) -> TicketEntry:
    """A good limit buy of 0.01 BTC at 64,000.00 GTC, with ``changes``."""
    base = TicketEntry(side=Side.BUY, order_type=OrderType.LIMIT, size="0.01", price="64000.00")
    return replace(base, **changes)  # type: ignore[arg-type]


def problems(ticket: TicketEntry, product: Product = BTC) -> list[str]:
    return [str(problem) for problem in check_ticket(ticket, product, now=NOW).problems]


# ---------------------------------------------------------------------------- good tickets


def test_limit_ticket_becomes_a_spec() -> None:
    check = check_ticket(entry(), BTC, now=NOW)
    assert check.ok and check.problems == ()
    spec = check.spec
    assert spec is not None
    assert (spec.product_id, spec.side, spec.order_type) == ("BTC-USD", Side.BUY, OrderType.LIMIT)
    assert spec.base_size == D("0.01") and spec.limit_price == D("64000.00")
    assert spec.time_in_force is TimeInForce.GTC and not spec.post_only
    assert spec.stop_price is None and spec.stop_direction is None and spec.end_time is None


def test_market_ticket_is_ioc_and_ignores_price_fields() -> None:
    check = check_ticket(
        entry(order_type=OrderType.MARKET, price="nonsense", stop_price="x"), BTC, now=NOW
    )
    spec = check.spec
    assert spec is not None
    assert spec.order_type is OrderType.MARKET and spec.time_in_force is TimeInForce.IOC
    assert spec.limit_price is None and spec.stop_price is None


@pytest.mark.parametrize(
    ("side", "direction"), [(Side.BUY, StopDirection.UP), (Side.SELL, StopDirection.DOWN)]
)
def test_stop_limit_direction_follows_the_side(side: Side, direction: StopDirection) -> None:
    check = check_ticket(
        entry(side=side, order_type=OrderType.STOP_LIMIT, stop_price="63990,5"), BTC, now=NOW
    )
    spec = check.spec
    assert spec is not None
    assert spec.stop_price == D("63990.5") and spec.stop_direction is direction


@pytest.mark.parametrize(
    ("typed", "end"),
    [
        ("30m", datetime(2026, 1, 1, 0, 30, tzinfo=UTC)),
        ("2H", datetime(2026, 1, 1, 2, 0, tzinfo=UTC)),
        ("1.5 h", datetime(2026, 1, 1, 1, 30, tzinfo=UTC)),
        ("1d", datetime(2026, 1, 2, tzinfo=UTC)),
        ("90s", datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)),
        ("2026-01-01T12:00:00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("2026-01-01T13:00:00+01:00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ],
)
def test_gtd_end_time_as_duration_or_iso(typed: str, end: datetime) -> None:
    check = check_ticket(entry(time_in_force=TimeInForce.GTD, end_time=typed), BTC, now=NOW)
    assert check.spec is not None and check.spec.end_time == end


def test_end_time_is_ignored_unless_gtd() -> None:
    check = check_ticket(entry(end_time="garbage"), BTC, now=NOW)
    assert check.spec is not None and check.spec.end_time is None


def test_post_only_limit_and_number_spellings() -> None:
    check = check_ticket(entry(size=" 1000 ", price="1250,50", post_only=True), BTC, now=NOW)
    assert check.spec is not None
    assert check.spec.base_size == D("1000") and check.spec.limit_price == D("1250.50")
    assert check.spec.post_only


# ---------------------------------------------------------------------------- one message per field


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": "0.000000001"}, "size: 0.000000001 is below the minimum 0.00000001"),
        ({"size": "5000"}, "size: 5000 is above the maximum 3400"),
        ({"size": "0.123456789"}, "size: not a multiple of the increment 0.00000001"),
        ({"size": ""}, "size: required"),
        ({"size": "  "}, "size: required"),
        ({"size": "abc"}, "size: 'abc' is not a number"),
        ({"size": "nan"}, "size: 'nan' is not a number"),
        ({"size": "inf"}, "size: 'inf' is not a number"),
        ({"size": "0"}, "size: must be more than 0"),
        ({"size": "-1"}, "size: must be more than 0"),
        ({"price": "64000.005"}, "price: not a multiple of the tick 0.01"),
        ({"price": ""}, "price: required"),
        (
            {"price": "1.2.3"},
            "price: '1.2.3': one decimal mark only (. or ,), no thousands separators",
        ),
        ({"price": "1e3"}, "price: '1e3' is not a number"),
        (
            {"order_type": OrderType.STOP_LIMIT, "stop_price": "1.001"},
            "stop: not a multiple of the tick 0.01",
        ),
        ({"order_type": OrderType.STOP_LIMIT}, "stop: required"),
        (
            {
                "order_type": OrderType.STOP_LIMIT,
                "stop_price": "1",
                "time_in_force": TimeInForce.IOC,
            },
            "time in force: a stop-limit order is GOOD_UNTIL_CANCELLED or GOOD_UNTIL_DATE_TIME, "
            "not IMMEDIATE_OR_CANCEL",
        ),
        (
            {"order_type": OrderType.STOP_LIMIT, "stop_price": "1", "post_only": True},
            "post-only: a stop-limit order cannot be post-only",
        ),
        (
            {"order_type": OrderType.MARKET, "post_only": True},
            "post-only: a market order cannot be post-only",
        ),
        (
            {"post_only": True, "time_in_force": TimeInForce.FOK},
            "post-only: cannot be FILL_OR_KILL",
        ),
        (
            {"time_in_force": TimeInForce.GTD},
            "end time: required for GOOD_UNTIL_DATE_TIME (e.g. 30m, 2h, 1d)",
        ),
        (
            {"time_in_force": TimeInForce.GTD, "end_time": "soon"},
            "end time: 'soon' is not a duration (30m, 2h) or an ISO time",
        ),
        (
            {"time_in_force": TimeInForce.GTD, "end_time": "2025-12-31T23:00:00Z"},
            "end time: must be in the future",
        ),
        ({"time_in_force": TimeInForce.GTD, "end_time": "0s"}, "end time: must be in the future"),
    ],
)
def test_each_bad_field_has_its_message(changes: dict[str, object], message: str) -> None:
    check = check_ticket(entry(**changes), BTC, now=NOW)
    assert check.spec is None and not check.ok
    assert [str(problem) for problem in check.problems] == [message]


def test_product_rules_name_the_field() -> None:
    limit_only = replace(BTC, limit_only=True)
    assert problems(entry(order_type=OrderType.MARKET), limit_only) == [
        "type: BTC-USD accepts limit orders only"
    ]
    post_only = replace(BTC, post_only=True)
    assert problems(entry(), post_only) == ["post-only: BTC-USD accepts post-only orders only"]
    assert problems(entry(post_only=True), post_only) == []


def test_several_fields_each_get_one_message_in_field_order() -> None:
    check = check_ticket(
        entry(
            order_type=OrderType.STOP_LIMIT,
            size="x",
            price="1.001",
            stop_price="",
            time_in_force=TimeInForce.FOK,
            post_only=True,
        ),
        BTC,
        now=NOW,
    )
    assert [problem.field for problem in check.problems] == [
        TicketField.SIZE,
        TicketField.PRICE,
        TicketField.STOP,
        TicketField.TIME_IN_FORCE,
        TicketField.POST_ONLY,
    ]
    assert check.problem(TicketField.SIZE) == "'x' is not a number"
    assert check.problem(TicketField.END_TIME) is None


def test_field_problem_text() -> None:
    assert str(FieldProblem(TicketField.SIZE, "required")) == "size: required"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", D(1)),
        (" 0.5 ", D("0.5")),
        ("0,5", D("0.5")),  # a comma is the decimal mark, never grouping
        ("0,01", D("0.01")),
        (",5", D("0.5")),
        ("5.", D(5)),
        ("1,000", D("1.000")),
        ("", None),
        ("x", None),
        (" 1,000.25 ", None),  # grouping + decimal mark: refused, not guessed
        ("1.000,25", None),
        ("1,000,000", None),
        ("1_000", None),
        ("1 000", None),
        ("1e3", None),  # no exponents: a trader does not type them on purpose
        ("0x10", None),
        ("NaN", None),
        ("Infinity", None),
    ],
)
def test_parse_number(text: str, value: Decimal | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("typed", ["0,5", "0,01", "1,5"])
def test_a_comma_size_is_never_read_as_a_bigger_number(typed: str) -> None:
    check = check_ticket(entry(size=typed), BTC, now=NOW)
    assert check.spec is not None and check.spec.base_size is not None
    assert check.spec.base_size == D(typed.replace(",", "."))
    assert check.spec.base_size < 2


@pytest.mark.parametrize("typed", ["1,000.5", "1.000,5", "1 000", "1_000", "1,000,000"])
def test_grouping_separators_are_refused_with_a_message(typed: str) -> None:
    check = check_ticket(entry(size=typed), BTC, now=NOW)
    assert check.spec is None
    assert check.problem(TicketField.SIZE) == (
        f"{typed!r}: one decimal mark only (. or ,), no thousands separators"
    )


@given(st.text(alphabet="0123456789.,_ e+-", max_size=12))
def test_parse_number_reads_at_most_one_mark_and_never_more_than_the_digits(text: str) -> None:
    value = parse_number(text)
    if value is None:
        return
    cleaned = text.strip()
    assert sum(cleaned.count(mark) for mark in ".,") <= 1
    assert value == Decimal(cleaned.replace(",", "."))


def test_parse_number_refuses_a_novel() -> None:
    assert parse_number("1" * (MAX_NUMBER_LENGTH + 1)) is None
    assert parse_number("1" * MAX_NUMBER_LENGTH) is not None


# ---------------------------------------------------------------------------- helpers


def test_manual_intent_and_description() -> None:
    spec = check_ticket(
        entry(time_in_force=TimeInForce.GTD, end_time="1h", post_only=True), BTC, now=NOW
    ).spec
    assert spec is not None
    intent = manual_intent(spec)
    assert intent.source is IntentSource.MANUAL and not intent.reduce_only
    assert intent.spec is spec
    assert describe_spec(spec) == (
        "BUY 0.01 BTC-USD LIMIT @ 64000.00 GOOD_UNTIL_DATE_TIME until 2026-01-01 01:00:00 UTC "
        "post-only"
    )
    stop = check_ticket(
        entry(side=Side.SELL, order_type=OrderType.STOP_LIMIT, stop_price="63000"), BTC, now=NOW
    ).spec
    assert stop is not None
    assert describe_spec(stop) == (
        "SELL 0.01 BTC-USD STOP_LIMIT stop 63000 @ 64000.00 GOOD_UNTIL_CANCELLED"
    )
    market = check_ticket(entry(order_type=OrderType.MARKET), BTC, now=NOW).spec
    assert market is not None
    assert describe_spec(market) == "BUY 0.01 BTC-USD MARKET"
    assert describe_spec(replace(market, base_size=None, quote_size=D(5))) == (
        "BUY ? BTC-USD MARKET"
    )


# ---------------------------------------------------------------------------- RiskGate.preview


def ticket_intent(size: str = "0.01", price: str = "50000.00") -> OrderIntent:
    spec = check_ticket(entry(size=size, price=price), BTC, now=NOW).spec
    assert spec is not None
    return manual_intent(spec)


def test_preview_answers_like_check_without_spending_the_rate() -> None:
    harness = make_harness(max_orders_per_s=2.0)
    intent = ticket_intent()
    for _ in range(10):
        assert harness.gate.preview(intent) is None
    rate = {gauge.name: gauge for gauge in harness.gate.gauges()}[GaugeName.ORDER_RATE]
    assert rate.used == D(0)
    # Two real orders use the budget; the preview now says what check would say.
    assert harness.check(intent) is None
    assert harness.check(intent) is None
    previewed = harness.gate.preview(intent)
    checked = harness.check(intent)
    assert previewed is not None and checked is not None
    assert previewed.reason is checked.reason is DenialReason.ORDER_RATE


def test_preview_shows_the_same_denials_as_check() -> None:
    harness = make_harness()
    far = ticket_intent(price="60000.00")  # 20% from the 50,000 mid: fat finger
    previewed = harness.gate.preview(far)
    assert previewed is not None and previewed.reason is DenialReason.PRICE_BAND
    assert previewed == harness.check(far)
    harness.state.set(TradingState.HALTED, "kill switch", "user")
    halted = harness.gate.preview(ticket_intent())
    assert halted is not None and halted.reason is DenialReason.TRADING_HALTED
