"""Property tests for the risk gate: whatever the book, the holdings and the limits,

* an allowed order that does not shrink a position leaves the position and the gross exposure
  within their limits (valued at the order's price: limit, or the touch for market orders);
* an allowed reduce-only order, or any allowed order while REDUCING, never grows |position|
  and never crosses zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from core.model import IntentSource, OrderIntent, OrderSpec, OrderType, Side
from core.trading_state import TradingState
from tests.core.test_risk import Harness, Quote, make_harness

D = Decimal
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)


@dataclass(frozen=True)
class Scenario:
    btc_held: Decimal
    eth_held: Decimal
    btc_mid: Decimal
    eth_mid: Decimal
    spread_bps: int
    max_position: Decimal
    max_gross: Decimal
    product_id: str
    side: Side
    market: bool
    size: Decimal
    offset_bps: int
    reduce_only: bool
    reducing: bool


scenarios = st.builds(
    Scenario,
    btc_held=st.decimals(min_value=D(0), max_value=D("1.5"), places=4),
    eth_held=st.decimals(min_value=D(0), max_value=D(30), places=2),
    btc_mid=st.decimals(min_value=D(40000), max_value=D(60000), places=0),
    eth_mid=st.decimals(min_value=D(2000), max_value=D(4000), places=0),
    spread_bps=st.integers(min_value=1, max_value=20),
    max_position=st.decimals(min_value=D(5000), max_value=D(80000), places=0),
    max_gross=st.decimals(min_value=D(10000), max_value=D(150000), places=0),
    product_id=st.sampled_from(("BTC-USD", "ETH-USD")),
    side=st.sampled_from(Side),
    market=st.booleans(),
    size=st.decimals(min_value=D("0.001"), max_value=D(1), places=3),  # x SCALE of the product
    offset_bps=st.integers(min_value=-300, max_value=300),
    reduce_only=st.sampled_from((False, False, True)),
    reducing=st.sampled_from((False, False, True)),
)
SCALE = {"BTC-USD": D(1), "ETH-USD": D(20)}  # order sizes up to ~50000 USD either way


def _setup(s: Scenario) -> tuple[Harness, OrderIntent, Decimal, Decimal]:
    """The harness, the order, the price it is valued at and its signed base size."""
    size = s.size * SCALE[s.product_id]
    h = make_harness(
        max_position_notional=s.max_position,
        max_gross_exposure=s.max_gross,
        max_order_notional=D(10_000_000),
        price_band_bps=D(400),
        daily_loss_limit=D(10_000_000),  # the seeded holdings' cost is the harness's mid
    )
    half = {"BTC-USD": s.btc_mid, "ETH-USD": s.eth_mid}
    for product_id, mid in half.items():
        spread = mid * s.spread_bps / D(20000)
        h.market.quotes[product_id] = Quote(float(mid - spread), float(mid + spread))
    h.balances("100000000", btc=str(s.btc_held), eth=str(s.eth_held))
    h.mark_all()
    if s.reducing:
        h.state.set(TradingState.REDUCING, "property test", "user")
    mid = half[s.product_id]
    if s.market:
        touch = (
            h.market.best_ask(s.product_id)
            if s.side is Side.BUY
            else h.market.best_bid(s.product_id)
        )
        assert touch is not None
        price = D(repr(touch))
        spec = OrderSpec(s.product_id, s.side, OrderType.MARKET, base_size=size)
    else:
        price = (mid * (1 + D(s.offset_bps) / 10000)).quantize(D("0.01"))
        spec = OrderSpec(s.product_id, s.side, OrderType.LIMIT, base_size=size, limit_price=price)
    intent = OrderIntent(spec, IntentSource.STRATEGY, reduce_only=s.reduce_only)
    return h, intent, price, size if s.side is Side.BUY else -size


def _shrinks(position: Decimal, delta: Decimal) -> bool:
    after = position + delta
    return abs(after) < abs(position) and (after == 0 or (after > 0) == (position > 0))


@PROPERTY_SETTINGS
@given(scenarios)
def test_allowed_orders_never_breach_position_or_gross_limits(s: Scenario) -> None:
    h, intent, price, delta = _setup(s)
    position = h.portfolio.size(s.product_id)
    denial = h.check(intent)
    event(denial.reason.value if denial is not None else "allowed")
    if denial is not None or _shrinks(position, delta):
        return
    event("allowed and not shrinking")
    value = abs(position + delta) * price
    assert value <= s.max_position
    others = sum(
        (abs(h.portfolio.size(p)) * (h.portfolio.position(p).mark or D(0)))
        for p in ("BTC-USD", "ETH-USD")
        if p != s.product_id
    )
    assert others + value <= s.max_gross


@PROPERTY_SETTINGS
@given(scenarios)
def test_reduce_only_and_reducing_never_grow_a_position(s: Scenario) -> None:
    h, intent, _, delta = _setup(s)
    position = h.portfolio.size(s.product_id)
    if h.check(intent) is None and (s.reduce_only or s.reducing):
        event("allowed under reduce-only or REDUCING")
        assert _shrinks(position, delta)
