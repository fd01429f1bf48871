"""The shared order-shape rules: one answer for the ticket, the gate, paper and the encoder,
and the same accept/refuse answer as the simulated exchange's own copy of Coinbase's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.coinbase.rest import order_configuration
from core.model import OrderSpec, OrderType, Side, StopDirection, TimeInForce
from core.order_rules import ProblemField, ProblemReason, order_problems, shape_problems
from core.sim.exchange import SimExchange
from core.sim.products import make_usd_product
from core.sim.types import SimOrderRequest, SimProductSpec
from core.ticket import TicketEntry, TicketField, check_ticket

D = Decimal
PRODUCT = make_usd_product(
    "TST",
    base_increment=D("0.01"),
    base_min_size=D("0.01"),
    base_max_size=D("100"),
    price_increment=D("0.5"),
    quote_min_size=D("1"),
    quote_max_size=D("100000"),
)
START_PRICE = D(100)

# Codes the simulated exchange answers for an order's shape; anything else it answers (stop
# already reached, post-only crossing, no liquidity, funds) comes after every shape check.
SIM_SHAPE_ERRORS = frozenset(
    {
        "UNSUPPORTED_ORDER_CONFIGURATION",
        "INVALID_SIDE",
        "POST_ONLY_NOT_ALLOWED_WITH_FOK",
        "INVALID_SIZE_PRECISION",
        "INVALID_LIMIT_PRICE",
        "INVALID_PRICE_PRECISION",
        "GTD_ORDERS_MUST_HAVE_END_TIME",
        "END_TIME_IS_IN_THE_PAST",
    }
)
SIM_SHAPE_PREVIEWS = frozenset(
    {
        "PREVIEW_INVALID_STOP_PRICE",
        "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL",
        "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE",
        "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
        "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE",
    }
)
_KINDS = {
    (OrderType.LIMIT, TimeInForce.GTC): "limit_limit_gtc",
    (OrderType.LIMIT, TimeInForce.GTD): "limit_limit_gtd",
    (OrderType.LIMIT, TimeInForce.IOC): "sor_limit_ioc",
    (OrderType.LIMIT, TimeInForce.FOK): "limit_limit_fok",
    (OrderType.STOP_LIMIT, TimeInForce.GTC): "stop_limit_stop_limit_gtc",
    (OrderType.STOP_LIMIT, TimeInForce.GTD): "stop_limit_stop_limit_gtd",
    # No such configuration on Coinbase: the sim refuses the kind, as Coinbase would.
    (OrderType.STOP_LIMIT, TimeInForce.IOC): "stop_limit_stop_limit_ioc",
    (OrderType.STOP_LIMIT, TimeInForce.FOK): "stop_limit_stop_limit_fok",
}


def sim_request(spec: OrderSpec) -> SimOrderRequest:
    """The spec as the sim's create-order request, every field carried as given."""
    kind = (
        "market_market_ioc"
        if spec.order_type is OrderType.MARKET
        else _KINDS[(spec.order_type, spec.time_in_force)]
    )
    return SimOrderRequest(
        client_order_id="c",
        product_id=spec.product_id,
        side=spec.side,
        config_kind=kind,
        base_size=spec.base_size,
        quote_size=spec.quote_size,
        limit_price=spec.limit_price,
        stop_price=spec.stop_price,
        stop_direction=spec.stop_direction,
        post_only=spec.post_only,
        end_time=spec.end_time,
    )


def sim_accepts_shape(spec: OrderSpec, clock: ManualClock) -> bool:
    exchange = SimExchange(clock=clock, seed=1, products=[SimProductSpec(PRODUCT, START_PRICE)])
    exchange.open_account("u", {"USD": D(10) ** 12, "TST": D(10) ** 9})
    result = exchange.create_order("u", sim_request(spec))
    if result.success:
        return True
    return (
        result.error not in SIM_SHAPE_ERRORS
        and result.preview_failure_reason not in SIM_SHAPE_PREVIEWS
    )


_sizes = st.one_of(
    st.none(),
    st.sampled_from(
        [D("0.01"), D("0.5"), D("1"), D("100"), D("0.015"), D("0"), D("-1"), D("100.01"), D("1e6")]
    ),
)
_quotes = st.one_of(
    st.none(), st.sampled_from([D("5"), D("50.25"), D("0.5"), D("50.001"), D("0"), D("200000")])
)
_prices = st.one_of(
    st.none(),
    st.sampled_from([D("100"), D("99.5"), D("120"), D("80"), D("100.25"), D("0"), D("-5")]),
)
_NOW = ManualClock().time()
_end_times = st.one_of(
    st.none(),
    st.sampled_from([timedelta(hours=1), timedelta(seconds=0), timedelta(hours=-1)]).map(
        lambda delta: datetime.fromtimestamp(_NOW, tz=UTC) + delta
    ),
)
specs = st.builds(
    OrderSpec,
    product_id=st.just(PRODUCT.product_id),
    side=st.sampled_from(list(Side)),
    order_type=st.sampled_from(list(OrderType)),
    base_size=_sizes,
    quote_size=_quotes,
    limit_price=_prices,
    stop_price=_prices,
    stop_direction=st.one_of(st.none(), st.sampled_from(list(StopDirection))),
    time_in_force=st.sampled_from(list(TimeInForce)),
    post_only=st.booleans(),
    end_time=_end_times,
)


@settings(max_examples=400, deadline=None)
@given(spec=specs)
def test_shared_rules_and_the_sim_accept_and_refuse_the_same_orders(spec: OrderSpec) -> None:
    clock = ManualClock()
    problems = order_problems(spec, PRODUCT, now=clock.time())
    assert (not problems) == sim_accepts_shape(spec, clock), problems


@settings(max_examples=300, deadline=None)
@given(spec=specs)
def test_the_encoder_sends_every_shape_the_rules_allow(spec: OrderSpec) -> None:
    """The encoder raises only on what the rules (and so the gate, first) refuse."""
    if shape_problems(spec):
        with pytest.raises(ValueError, match="order rules"):
            order_configuration(spec)
    else:
        ((kind, fields),) = order_configuration(spec).items()
        assert kind == sim_request(spec).config_kind
        assert fields.get("post_only", False) == spec.post_only


POST_ONLY_STOP_LIMIT_SELL = OrderSpec(
    PRODUCT.product_id,
    Side.SELL,
    OrderType.STOP_LIMIT,
    base_size=D("1"),
    limit_price=D("95"),
    stop_price=D("96"),
    stop_direction=StopDirection.DOWN,
    time_in_force=TimeInForce.GTC,
    post_only=True,
)


def test_a_post_only_stop_limit_is_refused_by_the_rules_and_never_encoded() -> None:
    """The issue's case: the gate allowed it and the encoder raised after the journal write."""
    problems = shape_problems(POST_ONLY_STOP_LIMIT_SELL, PRODUCT)
    assert [(p.field, p.reason) for p in problems] == [
        (ProblemField.POST_ONLY, ProblemReason.POST_ONLY_NOT_ALLOWED)
    ]
    with pytest.raises(ValueError, match="cannot be post-only"):
        order_configuration(POST_ONLY_STOP_LIMIT_SELL)


def test_the_ticket_refuses_a_post_only_stop_limit_with_the_same_message() -> None:
    entry = TicketEntry(
        side=Side.SELL,
        order_type=OrderType.STOP_LIMIT,
        size="1",
        price="95",
        stop_price="96",
        post_only=True,
    )
    check = check_ticket(entry, PRODUCT, now=_NOW)
    assert check.problem(TicketField.POST_ONLY) == "a stop-limit order cannot be post-only"


def test_a_valid_order_of_each_type_has_no_problems() -> None:
    market = OrderSpec(PRODUCT.product_id, Side.BUY, OrderType.MARKET, quote_size=D("50.5"))
    limit = OrderSpec(
        PRODUCT.product_id, Side.BUY, OrderType.LIMIT, base_size=D("0.5"), limit_price=D(99)
    )
    assert order_problems(market, PRODUCT) == []
    assert order_problems(limit, PRODUCT) == []
    assert order_problems(POST_ONLY_STOP_LIMIT_SELL, PRODUCT) != []


def test_absurd_numbers_are_problems_not_exceptions() -> None:
    spec = OrderSpec(
        PRODUCT.product_id,
        Side.BUY,
        OrderType.LIMIT,
        base_size=D("1e400"),
        limit_price=D("NaN"),
    )
    reasons = {problem.reason for problem in order_problems(spec, PRODUCT)}
    assert ProblemReason.PRICE_MISSING in reasons
    assert ProblemReason.SIZE_TOO_LARGE in reasons
