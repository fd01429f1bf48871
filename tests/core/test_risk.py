"""Tests for core.risk: the pre-trade gate, the trading state machine, gauges and triggers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.clock import ManualClock
from core.config import RiskSettings
from core.denials import Denial, DenialReason
from core.feed_state import BookStatus
from core.market import BookHealth
from core.model import (
    Balance,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Product,
    Side,
    StopDirection,
    TimeInForce,
)
from core.portfolio import Portfolio
from core.risk import (
    AutomaticTriggers,
    GaugeName,
    LimitGauge,
    RiskGate,
    TradingStateMachine,
    TriggerName,
    WorkingOrder,
)
from core.trading_state import TradingState, TradingStateChange

D = Decimal

# ---------------------------------------------------------------------------- test doubles


class MemoryStateStore:
    """An in-memory TradingStateStore that keeps every change it was asked to save."""

    def __init__(self, fail: bool = False) -> None:
        self.saved: list[TradingStateChange] = []
        self.fail = fail

    def load_trading_state(self) -> TradingStateChange | None:
        return self.saved[-1] if self.saved else None

    def save_trading_state(self, change: TradingStateChange, *, durable: bool = True) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saved.append(change)


@dataclass
class Quote:
    bid: float | None
    ask: float | None
    age: float | None = 0.5
    last_price: float | None = None  # a mid from elsewhere when one side is missing
    # The visible book beyond the touch, best first; None: one deep level at each touch.
    bids: list[tuple[float, float]] | None = None
    asks: list[tuple[float, float]] | None = None


DEEP = 1_000_000.0  # the size at the touch when a test gives no levels


class FakeMarket:
    """A MarketView over a dict of quotes per product."""

    def __init__(self, quotes: dict[str, Quote]) -> None:
        self.quotes = quotes

    def mid(self, product_id: str) -> float | None:
        quote = self.quotes.get(product_id)
        if quote is None:
            return None
        if quote.bid is None or quote.ask is None:
            return quote.last_price
        return (quote.bid + quote.ask) / 2

    def best_bid(self, product_id: str) -> float | None:
        quote = self.quotes.get(product_id)
        return None if quote is None else quote.bid

    def best_ask(self, product_id: str) -> float | None:
        quote = self.quotes.get(product_id)
        return None if quote is None else quote.ask

    def data_age_s(self, product_id: str) -> float | None:
        quote = self.quotes.get(product_id)
        return None if quote is None else quote.age

    def levels(self, product_id: str, side: Side) -> list[tuple[float, float]]:
        quote = self.quotes.get(product_id)
        if quote is None:
            return []
        if side is Side.BUY:
            if quote.asks is not None:
                return quote.asks
            return [] if quote.ask is None else [(quote.ask, DEEP)]
        if quote.bids is not None:
            return quote.bids
        return [] if quote.bid is None else [(quote.bid, DEEP)]


def make_product(product_id: str = "BTC-USD", **changes: Any) -> Product:
    base, quote = product_id.split("-")
    product = Product(
        product_id=product_id,
        base_currency=base,
        quote_currency=quote,
        base_increment=D("0.00000001"),
        quote_increment=D("0.01"),
        price_increment=D("0.01"),
        base_min_size=D("0.00000001"),
        base_max_size=D("3400"),
        quote_min_size=D("1"),
        quote_max_size=D("150000000"),
    )
    return replace(product, **changes)


@dataclass
class Harness:
    """A gate wired to test doubles the test can change."""

    gate: RiskGate
    portfolio: Portfolio
    market: FakeMarket
    state: TradingStateMachine
    store: MemoryStateStore
    clock: ManualClock
    products: dict[str, Product]
    settings: RiskSettings
    open_orders: int = 0
    reconciling: bool = False
    reserved: dict[str, Decimal] = field(default_factory=dict)
    working: list[WorkingOrder] = field(default_factory=list)

    def check(self, intent: OrderIntent) -> Denial | None:
        return self.gate.check(intent)

    def balances(self, usd: str, btc: str = "0", eth: str = "0") -> None:
        self.portfolio.set_balances(
            [
                Balance("USD", D(usd), D(0)),
                Balance("BTC", D(btc), D(0)),
                Balance("ETH", D(eth), D(0)),
            ]
        )

    def mark_all(self) -> None:
        for product_id in self.products:
            mid = self.market.mid(product_id)
            self.portfolio.mark(product_id, None if mid is None else D(repr(mid)))


DEFAULT_RISK = {
    "max_order_notional": D("25000"),
    "max_position_notional": D("50000"),
    "max_gross_exposure": D("60000"),
    "price_band_bps": D("200"),
    "max_open_orders": 200,
    "max_orders_per_s": 10.0,
    "stale_market_data_s": 5.0,
    "daily_loss_limit": D("2000"),
    "max_drawdown": D("5000"),
}


def make_harness(
    *, use_reserved: bool = False, use_working: bool = False, **overrides: Any
) -> Harness:
    """BTC-USD at 49990/50010 (mid 50000), ETH-USD at 2999/3001 (mid 3000); we hold
    100000 USD and 0.5 BTC (position 25000 USD) and nothing else; everything fresh."""
    settings = RiskSettings(**{**DEFAULT_RISK, **overrides})
    clock = ManualClock()
    store = MemoryStateStore()
    state = TradingStateMachine(store, clock=clock)
    portfolio = Portfolio(clock=clock, product_ids=["BTC-USD", "ETH-USD"])
    market = FakeMarket({"BTC-USD": Quote(49990.0, 50010.0), "ETH-USD": Quote(2999.0, 3001.0)})
    products = {"BTC-USD": make_product("BTC-USD"), "ETH-USD": make_product("ETH-USD")}
    holder: dict[str, Harness] = {}

    def reserved(currency: str) -> Decimal:
        return holder["h"].reserved.get(currency, D(0))

    gate = RiskGate(
        settings,
        state=state,
        portfolio=portfolio,
        market=market,
        products=products,
        open_orders=lambda: holder["h"].open_orders,
        reconciling=lambda: holder["h"].reconciling,
        clock=clock,
        reserved=reserved if use_reserved else None,
        working_orders=(lambda: holder["h"].working) if use_working else None,
    )
    harness = Harness(gate, portfolio, market, state, store, clock, products, settings)
    holder["h"] = harness
    harness.balances("100000", btc="0.5")
    harness.mark_all()
    return harness


def limit(
    side: Side,
    size: str,
    price: str,
    product_id: str = "BTC-USD",
    *,
    reduce_only: bool = False,
    **spec: Any,
) -> OrderIntent:
    return OrderIntent(
        OrderSpec(
            product_id,
            side,
            OrderType.LIMIT,
            base_size=D(size),
            limit_price=D(price),
            **spec,
        ),
        IntentSource.MANUAL,
        reduce_only=reduce_only,
    )


def market_order(
    side: Side,
    *,
    base: str | None = None,
    quote: str | None = None,
    product_id: str = "BTC-USD",
    reduce_only: bool = False,
) -> OrderIntent:
    return OrderIntent(
        OrderSpec(
            product_id,
            side,
            OrderType.MARKET,
            base_size=None if base is None else D(base),
            quote_size=None if quote is None else D(quote),
        ),
        IntentSource.STRATEGY,
        reduce_only=reduce_only,
    )


BUY, SELL = Side.BUY, Side.SELL
OK_BUY = limit(BUY, "0.1", "50000.00")  # 5000 USD, well inside every limit


@pytest.fixture
def h() -> Harness:
    """The default harness (see make_harness)."""
    return make_harness()


# ---------------------------------------------------------------------------- every reason


def _halt(h: Harness) -> OrderIntent:
    h.state.set(TradingState.HALTED, "kill switch", "user")
    return OK_BUY


def _reconciling(h: Harness) -> OrderIntent:
    h.reconciling = True
    return OK_BUY


def _untradable(h: Harness) -> OrderIntent:
    h.products["BTC-USD"] = make_product(trading_disabled=True)
    return OK_BUY


def _below_min(h: Harness) -> OrderIntent:
    h.products["BTC-USD"] = make_product(base_min_size=D("0.001"))
    return limit(BUY, "0.0005", "50000.00")


def _above_max(h: Harness) -> OrderIntent:
    h.products["BTC-USD"] = make_product(base_max_size=D("0.05"))
    return OK_BUY


def _stale(h: Harness) -> OrderIntent:
    h.market.quotes["BTC-USD"].age = 5.5
    return OK_BUY


def _no_price(h: Harness) -> OrderIntent:
    h.market.quotes["BTC-USD"].ask = None
    h.market.quotes["BTC-USD"].last_price = 50000.0  # a view may know a mid without an ask
    return market_order(BUY, base="0.1")


def _thin_book(h: Harness) -> OrderIntent:
    h.market.quotes["BTC-USD"].asks = [(50010.0, 0.05), (50020.0, 0.04)]
    return market_order(BUY, base="0.1")


def _reducing(h: Harness) -> OrderIntent:
    h.state.set(TradingState.REDUCING, "drawdown", "trigger:drawdown")
    return OK_BUY


def _daily_loss(h: Harness) -> OrderIntent:
    h.portfolio.mark("BTC-USD", D("45000"))  # 0.5 BTC bought at 50000: -2500 today
    return limit(BUY, "1", "3000.00", "ETH-USD")


def _gross(h: Harness) -> OrderIntent:
    h.balances("100000", btc="0.5", eth="10")  # 25000 + 30000 = 55000 gross
    h.mark_all()
    return limit(BUY, "2", "3000.00", "ETH-USD")  # +6000 -> 61000 > 60000


def _balance(h: Harness) -> OrderIntent:
    h.balances("5000", btc="0.5")
    return OK_BUY  # 5000 + fees > 5000


def _open_orders(h: Harness) -> OrderIntent:
    h.open_orders = 200
    return OK_BUY


def _rate(h: Harness) -> OrderIntent:
    for _ in range(10):
        assert h.check(OK_BUY) is None
    return OK_BUY


CASES: list[tuple[DenialReason, Callable[[Harness], OrderIntent], str]] = [
    (DenialReason.TRADING_HALTED, _halt, "HALTED (kill switch)"),
    (DenialReason.RECONCILING, _reconciling, "reconciling"),
    (DenialReason.UNKNOWN_PRODUCT, lambda h: limit(BUY, "1", "1.00", "DOGE-USD"), "DOGE-USD"),
    (DenialReason.PRODUCT_NOT_TRADABLE, _untradable, "trading disabled"),
    (DenialReason.INVALID_ORDER, lambda h: limit(BUY, "0", "50000.00"), "positive"),
    (DenialReason.PRICE_PRECISION, lambda h: limit(BUY, "0.1", "50000.005"), "tick 0.01"),
    (DenialReason.SIZE_PRECISION, lambda h: limit(BUY, "0.000000001", "50000.00"), "0.00000001"),
    (DenialReason.SIZE_BELOW_MIN, _below_min, "0.0005 < min 0.001"),
    (DenialReason.SIZE_ABOVE_MAX, _above_max, "0.1 > max 0.05"),
    (DenialReason.STALE_MARKET_DATA, _stale, "5.5s old > limit 5s"),
    (DenialReason.NO_MARKET_PRICE, _no_price, "no best ask"),
    (
        DenialReason.INSUFFICIENT_BOOK_DEPTH,
        _thin_book,
        "market BUY of 0.1 BTC: the visible asks of BTC-USD cannot fill it",
    ),
    (DenialReason.REDUCING_ONLY, _reducing, "REDUCING (drawdown)"),
    (
        DenialReason.REDUCE_ONLY_WOULD_INCREASE,
        lambda h: limit(SELL, "0.6", "50000.00", reduce_only=True),
        "position 0.5 would leave -0.1",
    ),
    (DenialReason.NOTIONAL_BELOW_MIN, lambda h: limit(BUY, "0.00001", "50000.00"), "0.50 < "),
    (
        DenialReason.NOTIONAL_ABOVE_MAX,
        lambda h: limit(BUY, "0.6", "50000.00"),
        "30,000.00 > max per order 25,000.00",
    ),
    (DenialReason.PRICE_BAND, lambda h: limit(BUY, "0.1", "51500.00"), "300 bps from mid"),
    (DenialReason.DAILY_LOSS_LIMIT, _daily_loss, "-2,500.00"),
    (
        DenialReason.POSITION_LIMIT,
        lambda h: limit(BUY, "0.499", "50100.00"),  # 0.999 BTC at the limit price
        "position after the order 50,049.90 > limit 50,000.00",
    ),
    (DenialReason.GROSS_EXPOSURE_LIMIT, _gross, "61,000.00 > limit 60,000.00"),
    (DenialReason.INSUFFICIENT_BALANCE, _balance, "needs 5060 USD with fees, free 5000"),
    (DenialReason.MAX_OPEN_ORDERS, _open_orders, "200 open orders, limit 200"),
    (DenialReason.ORDER_RATE, _rate, "10 orders in the last 1s"),
]


def test_the_cases_cover_every_denial_reason() -> None:
    assert {reason for reason, _, _ in CASES} == set(DenialReason)


@pytest.mark.parametrize(("reason", "setup", "detail"), CASES, ids=[c[0].value for c in CASES])
def test_each_denial_reason(
    h: Harness, reason: DenialReason, setup: Callable[[Harness], OrderIntent], detail: str
) -> None:
    intent = setup(h)
    denial = h.check(intent)
    assert denial is not None, f"expected {reason}"
    assert denial.reason is reason, str(denial)
    assert detail in denial.detail
    assert "\n" not in denial.detail


def test_the_default_order_is_allowed(h: Harness) -> None:
    assert h.check(OK_BUY) is None
    assert h.check(limit(SELL, "0.1", "50000.00")) is None
    assert h.check(market_order(BUY, quote="100.00")) is None


def test_position_limit_counts_the_existing_position() -> None:
    h = make_harness(max_position_notional=D("40000"))
    assert h.check(limit(BUY, "0.3", "50000.00")) is None  # 0.8 BTC = 40000: at the limit
    denial = h.check(limit(BUY, "0.31", "50000.00"))  # 0.81 BTC = 40500
    assert denial is not None and denial.reason is DenialReason.POSITION_LIMIT


# ---------------------------------------------------------------------------- invalid orders


INVALID: list[tuple[OrderSpec, str]] = [
    (OrderSpec("BTC-USD", BUY, OrderType.LIMIT, limit_price=D(50000)), "exactly one"),
    (
        OrderSpec("BTC-USD", BUY, OrderType.MARKET, base_size=D(1), quote_size=D(1)),
        "exactly one",
    ),
    (OrderSpec("BTC-USD", BUY, OrderType.MARKET, base_size=D("-1")), "positive"),
    (
        OrderSpec("BTC-USD", BUY, OrderType.MARKET, base_size=D(1), limit_price=D(1)),
        "no limit or stop",
    ),
    (
        OrderSpec("BTC-USD", BUY, OrderType.MARKET, base_size=D(1), post_only=True),
        "cannot be post-only",
    ),
    (
        OrderSpec("BTC-USD", BUY, OrderType.LIMIT, quote_size=D(100), limit_price=D(50000)),
        "market orders only",
    ),
    (OrderSpec("BTC-USD", BUY, OrderType.LIMIT, base_size=D("0.1")), "positive limit price"),
    (
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.LIMIT,
            base_size=D("0.1"),
            limit_price=D(50000),
            time_in_force=TimeInForce.GTD,
        ),
        "end time goes with",
    ),
    (
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.LIMIT,
            base_size=D("0.1"),
            limit_price=D(50000),
            time_in_force=TimeInForce.GTD,
            end_time=datetime(2025, 12, 31, tzinfo=UTC),
        ),
        "in the past",
    ),
    (
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.LIMIT,
            base_size=D("0.1"),
            limit_price=D(50000),
            time_in_force=TimeInForce.IOC,
            post_only=True,
        ),
        "post-only: cannot be",
    ),
    (
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.STOP_LIMIT,
            base_size=D("0.1"),
            limit_price=D(50000),
            stop_direction=StopDirection.UP,
        ),
        "positive stop price",
    ),
    (
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.STOP_LIMIT,
            base_size=D("0.1"),
            limit_price=D(50000),
            stop_price=D(49900),
        ),
        "stop direction",
    ),
    (
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.STOP_LIMIT,
            base_size=D("0.1"),
            limit_price=D(50000),
            stop_price=D(49900),
            stop_direction=StopDirection.UP,
            time_in_force=TimeInForce.FOK,
        ),
        "stop-limit order is GOOD_UNTIL_CANCELLED or GOOD_UNTIL_DATE_TIME, not",
    ),
    (
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.LIMIT,
            base_size=D("0.1"),
            limit_price=D(50000),
            stop_price=D(49900),
        ),
        "no stop price",
    ),
    (  # allowed here once, then the encoder raised after the journal write (issue 12)
        OrderSpec(
            "BTC-USD",
            SELL,
            OrderType.STOP_LIMIT,
            base_size=D("0.1"),
            limit_price=D(49000),
            stop_price=D(49900),
            stop_direction=StopDirection.DOWN,
            post_only=True,
        ),
        "stop-limit order cannot be post-only",
    ),
]


@pytest.mark.parametrize(("spec", "problem"), INVALID, ids=[p for _, p in INVALID])
def test_invalid_fields_are_named(h: Harness, spec: OrderSpec, problem: str) -> None:
    denial = h.check(OrderIntent(spec, IntentSource.MANUAL))
    assert denial is not None and denial.reason is DenialReason.INVALID_ORDER
    assert problem in denial.detail


def test_product_flags_restrict_order_types(h: Harness) -> None:
    h.products["BTC-USD"] = make_product(limit_only=True)
    denial = h.check(market_order(BUY, base="0.1"))
    assert denial is not None and "limit orders only" in denial.detail
    assert h.check(OK_BUY) is None
    h.products["BTC-USD"] = make_product(post_only=True)
    denial = h.check(OK_BUY)
    assert denial is not None and "post-only orders only" in denial.detail
    assert h.check(limit(BUY, "0.1", "49000.00", post_only=True)) is None


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"status": "delisted"}, "status delisted"),
        ({"cancel_only": True}, "cancel only"),
        ({"auction_mode": True}, "auction mode"),
    ],
)
def test_untradable_products_say_why(h: Harness, changes: dict[str, Any], text: str) -> None:
    h.products["BTC-USD"] = make_product(**changes)
    denial = h.check(OK_BUY)
    assert denial is not None and denial.reason is DenialReason.PRODUCT_NOT_TRADABLE
    assert text in denial.detail


def test_gtd_order_with_a_future_end_time_is_allowed(h: Harness) -> None:
    end = datetime.fromtimestamp(h.clock.time(), tz=UTC) + timedelta(hours=1)
    intent = limit(BUY, "0.1", "50000.00", time_in_force=TimeInForce.GTD, end_time=end)
    assert h.check(intent) is None


def test_precision_of_stop_price_and_quote_size(h: Harness) -> None:
    stop = OrderIntent(
        OrderSpec(
            "BTC-USD",
            BUY,
            OrderType.STOP_LIMIT,
            base_size=D("0.1"),
            limit_price=D("50100.00"),
            stop_price=D("50000.001"),
            stop_direction=StopDirection.UP,
        ),
        IntentSource.MANUAL,
    )
    denial = h.check(stop)
    assert denial is not None and denial.reason is DenialReason.PRICE_PRECISION
    assert "stop price 50000.001" in denial.detail
    denial = h.check(market_order(BUY, quote="100.005"))
    assert denial is not None and denial.reason is DenialReason.SIZE_PRECISION
    assert "quote size 100.005" in denial.detail


# ---------------------------------------------------------------------------- order of checks


def test_checks_run_in_the_documented_order(h: Harness) -> None:
    """One order breaks every rule; fixing them one at a time reveals the next reason."""
    h.state.set(TradingState.REDUCING, "test", "user")
    h.reconciling = True
    h.products["BTC-USD"] = make_product(base_max_size=D("10"), quote_min_size=D("1000000"))
    h.market.quotes["BTC-USD"] = Quote(None, None, None)
    spec = OrderSpec("BTC-USD", BUY, OrderType.LIMIT, limit_price=D("50000.001"))
    seen: list[DenialReason] = []

    def next_reason() -> DenialReason:
        denial = h.check(OrderIntent(spec, IntentSource.MANUAL, reduce_only=True))
        assert denial is not None
        seen.append(denial.reason)
        return denial.reason

    h.state.set(TradingState.HALTED, "test", "user")
    assert next_reason() is DenialReason.TRADING_HALTED
    h.state.set(TradingState.REDUCING, "resume for the test", "user")
    assert next_reason() is DenialReason.RECONCILING
    h.reconciling = False
    spec = replace(spec, product_id="XYZ-USD")
    assert next_reason() is DenialReason.UNKNOWN_PRODUCT
    spec = replace(spec, product_id="BTC-USD")
    assert next_reason() is DenialReason.INVALID_ORDER
    spec = replace(spec, base_size=D("20.000000001"))
    assert next_reason() is DenialReason.PRICE_PRECISION
    spec = replace(spec, limit_price=D("51500.00"))
    assert next_reason() is DenialReason.SIZE_PRECISION
    spec = replace(spec, base_size=D("20"))
    assert next_reason() is DenialReason.SIZE_ABOVE_MAX
    spec = replace(spec, base_size=D("0.6"))
    assert next_reason() is DenialReason.STALE_MARKET_DATA
    h.market.quotes["BTC-USD"] = Quote(None, None, 0.1)
    assert next_reason() is DenialReason.NO_MARKET_PRICE
    h.market.quotes["BTC-USD"] = Quote(49990.0, 50010.0, 0.1)
    assert next_reason() is DenialReason.REDUCING_ONLY
    h.state.set(TradingState.ACTIVE, "resume for the test", "user")
    assert next_reason() is DenialReason.REDUCE_ONLY_WOULD_INCREASE
    spec = replace(spec, side=SELL)  # 0.6 > 0.5 held: still grows the (short) side
    assert next_reason() is DenialReason.REDUCE_ONLY_WOULD_INCREASE
    spec = replace(spec, base_size=D("0.4"))
    assert next_reason() is DenialReason.NOTIONAL_BELOW_MIN
    h.products["BTC-USD"] = make_product(quote_max_size=D("20000"))
    assert next_reason() is DenialReason.NOTIONAL_ABOVE_MAX
    h.products["BTC-USD"] = make_product()
    assert next_reason() is DenialReason.PRICE_BAND
    spec = replace(spec, limit_price=D("50000.00"))
    h.portfolio.set_balances([Balance("USD", D(1000), D(0)), Balance("BTC", D("0.3"), D("0.2"))])
    assert next_reason() is DenialReason.INSUFFICIENT_BALANCE
    h.portfolio.set_balances([Balance("USD", D(1000), D(0)), Balance("BTC", D("0.5"), D(0))])
    h.open_orders = 500
    assert next_reason() is DenialReason.MAX_OPEN_ORDERS
    assert len(seen) == len(set(seen)) + 1  # every reason once, REDUCE_ONLY twice


def test_exposure_checks_come_after_the_band_and_before_the_balance(h: Harness) -> None:
    h.balances("10", btc="0.5")  # no money at all
    h.portfolio.mark("BTC-USD", D("45000"))  # and the day lost 2500
    denial = h.check(limit(BUY, "0.1", "51500.00"))
    assert denial is not None and denial.reason is DenialReason.PRICE_BAND
    denial = h.check(limit(BUY, "0.1", "50000.00"))
    assert denial is not None and denial.reason is DenialReason.DAILY_LOSS_LIMIT


def test_denials_do_not_count_in_the_rate_window(h: Harness) -> None:
    h.open_orders = 200
    for _ in range(50):
        denial = h.check(OK_BUY)
        assert denial is not None and denial.reason is DenialReason.MAX_OPEN_ORDERS
    h.open_orders = 0
    for _ in range(10):
        assert h.check(OK_BUY) is None


# ---------------------------------------------------------------------------- states


def test_halted_denies_everything_but_the_reduce_only_flatten(h: Harness) -> None:
    h.state.set(TradingState.HALTED, "kill switch (ctrl+k)", "user")
    flatten_spec = OrderSpec(
        "BTC-USD", SELL, OrderType.LIMIT, base_size=D("0.5"), limit_price=D(49500)
    )
    flatten = OrderIntent(flatten_spec, IntentSource.FLATTEN, reduce_only=True)
    manual_reduce_only = OrderIntent(flatten_spec, IntentSource.MANUAL, reduce_only=True)
    flatten_not_reduce_only = OrderIntent(flatten_spec, IntentSource.FLATTEN)
    for intent in (
        OK_BUY,
        manual_reduce_only,
        flatten_not_reduce_only,
        limit(BUY, "1", "1.00", "NOPE-USD"),
    ):
        denial = h.check(intent)
        assert denial is not None and denial.reason is DenialReason.TRADING_HALTED
        assert "kill switch (ctrl+k)" in denial.detail
    assert h.check(flatten) is None
    growing = OrderIntent(
        OrderSpec("BTC-USD", BUY, OrderType.LIMIT, base_size=D("0.1"), limit_price=D(50000)),
        IntentSource.FLATTEN,
        reduce_only=True,
    )
    denial = h.check(growing)
    assert denial is not None and denial.reason is DenialReason.REDUCE_ONLY_WOULD_INCREASE


def test_reducing_allows_only_orders_that_shrink_the_position(h: Harness) -> None:
    h.state.set(TradingState.REDUCING, "daily loss", "trigger:daily_loss")
    assert h.check(limit(SELL, "0.2", "50000.00")) is None
    assert h.check(limit(SELL, "0.5", "50000.00")) is None  # to flat exactly
    assert h.check(market_order(SELL, base="0.5")) is None
    for intent in (
        limit(SELL, "0.50000001", "50000.00"),  # crosses zero: opens a short
        limit(BUY, "0.1", "50000.00"),
        limit(BUY, "1", "3000.00", "ETH-USD"),  # flat: nothing to reduce
        limit(SELL, "1", "3000.00", "ETH-USD"),
    ):
        denial = h.check(intent)
        assert denial is not None and denial.reason is DenialReason.REDUCING_ONLY, intent


def test_reduce_only_never_increases(h: Harness) -> None:
    assert h.check(limit(SELL, "0.3", "50000.00", reduce_only=True)) is None
    assert h.check(market_order(SELL, base="0.5", reduce_only=True)) is None
    for intent in (
        limit(BUY, "0.1", "50000.00", reduce_only=True),
        limit(SELL, "0.51", "50000.00", reduce_only=True),
        limit(SELL, "1", "3000.00", "ETH-USD", reduce_only=True),
    ):
        denial = h.check(intent)
        assert denial is not None
        assert denial.reason is DenialReason.REDUCE_ONLY_WOULD_INCREASE, intent


def test_shrinking_orders_pass_the_exposure_and_loss_limits() -> None:
    h = make_harness(max_position_notional=D("10000"), max_gross_exposure=D("10000"))
    h.portfolio.mark("BTC-USD", D("45000"))  # daily loss 2500 > 2000
    h.market.quotes["BTC-USD"] = Quote(44990.0, 45010.0)
    for reason_order in (limit(BUY, "0.01", "45000.00"),):
        denial = h.check(reason_order)
        assert denial is not None and denial.reason is DenialReason.DAILY_LOSS_LIMIT
    assert h.check(limit(SELL, "0.2", "45000.00")) is None


# ---------------------------------------------------------------------------- valuation


def test_market_orders_are_valued_at_the_touch() -> None:
    h = make_harness(max_order_notional=D("5000.5"))
    # A buy pays the ask (50010): 0.1 BTC = 5001.00 > 5000.50; at the mid it would pass.
    denial = h.check(market_order(BUY, base="0.1"))
    assert denial is not None and denial.reason is DenialReason.NOTIONAL_ABOVE_MAX
    assert "5,001.00" in denial.detail
    # A sell receives the bid (49990): 4999.00.
    assert h.check(market_order(SELL, base="0.1")) is None


def test_quote_sized_market_order_is_converted_at_the_touch() -> None:
    h = make_harness(max_position_notional=D("30000"))
    # 5001 USD at the ask 50010 = 0.1 BTC -> 0.6 BTC; valued at 50010 = 30006 > 30000.
    denial = h.check(market_order(BUY, quote="5001.00"))
    assert denial is not None and denial.reason is DenialReason.POSITION_LIMIT
    assert "30,006.00" in denial.detail
    assert h.check(market_order(BUY, quote="4990.00")) is None


def test_market_sell_without_a_bid_has_no_price(h: Harness) -> None:
    h.market.quotes["BTC-USD"].bid = None
    denial = h.check(market_order(SELL, base="0.1"))
    assert denial is not None and denial.reason is DenialReason.NO_MARKET_PRICE
    assert "no mid" in denial.detail  # without a bid there is no mid either


def test_price_band_for_market_orders_and_stops() -> None:
    h = make_harness(price_band_bps=D("10"))
    h.market.quotes["BTC-USD"] = Quote(49900.0, 50100.0)  # ask 20 bps above the mid
    denial = h.check(market_order(BUY, base="0.01"))
    assert denial is not None and denial.reason is DenialReason.PRICE_BAND
    assert "20 bps from mid" in denial.detail

    def stop(limit_price: str, stop_price: str) -> OrderIntent:
        spec = OrderSpec(
            "BTC-USD",
            SELL,
            OrderType.STOP_LIMIT,
            base_size=D("0.1"),
            limit_price=D(limit_price),
            stop_price=D(stop_price),
            stop_direction=StopDirection.DOWN,
        )
        return OrderIntent(spec, IntentSource.MANUAL)

    # A stop 10% below the market is fine; its limit is judged against the stop.
    assert h.check(stop("44990.00", "45000.00")) is None
    denial = h.check(stop("44000.00", "45000.00"))
    assert denial is not None and denial.reason is DenialReason.PRICE_BAND
    assert "from stop 45,000" in denial.detail


def test_venue_max_notional(h: Harness) -> None:
    h.products["BTC-USD"] = make_product(quote_max_size=D("1000"))
    denial = h.check(OK_BUY)
    assert denial is not None and denial.reason is DenialReason.NOTIONAL_ABOVE_MAX
    assert "venue max 1,000.00" in denial.detail


def test_stale_when_there_is_no_book(h: Harness) -> None:
    h.market.quotes["BTC-USD"].age = None
    denial = h.check(OK_BUY)
    assert denial is not None and denial.reason is DenialReason.STALE_MARKET_DATA
    assert "no live order book" in denial.detail


def test_gross_exposure_unknown_denies_increasing_orders(h: Harness) -> None:
    h.portfolio.mark("BTC-USD", None)
    denial = h.check(limit(BUY, "1", "3000.00", "ETH-USD"))
    assert denial is not None and denial.reason is DenialReason.GROSS_EXPOSURE_LIMIT
    assert "unknown" in denial.detail


# ---------------------------------------------------------------------------- balances


def test_buys_leave_room_for_fees(h: Harness) -> None:
    h.balances("5060", btc="0.5")  # 5000 + 1.2% = 5060 exactly
    assert h.check(OK_BUY) is None
    h.balances("5059.99", btc="0.5")
    denial = h.check(OK_BUY)
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BALANCE


def test_sells_need_free_base(h: Harness) -> None:
    h.portfolio.set_balances([Balance("USD", D(0), D(0)), Balance("BTC", D("0.3"), D("0.2"))])
    assert h.check(limit(SELL, "0.3", "50000.00")) is None
    denial = h.check(limit(SELL, "0.31", "50000.00"))
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BALANCE
    assert "needs 0.31 BTC, free 0.3 (0.2 held by open orders)" in denial.detail


def test_reserved_callable_replaces_the_venue_hold() -> None:
    h = make_harness(use_reserved=True)
    h.portfolio.set_balances([Balance("USD", D(1000), D(9000)), Balance("BTC", D(0), D(0))])
    # The venue says 9000 is on hold, but our own open orders hold only 4000.
    h.reserved["USD"] = D(4000)
    assert h.check(OK_BUY) is None  # 10000 - 4000 >= 5060
    h.reserved["USD"] = D(5000)
    denial = h.check(OK_BUY)
    assert denial is not None and "5000 held by open orders" in denial.detail


def test_no_balances_yet_denies() -> None:
    clock = ManualClock()
    store = MemoryStateStore()
    market = FakeMarket({"BTC-USD": Quote(49990.0, 50010.0)})
    gate = RiskGate(
        RiskSettings(),
        state=TradingStateMachine(store, clock=clock),
        portfolio=Portfolio(clock=clock),
        market=market,
        products={"BTC-USD": make_product()},
        open_orders=lambda: 0,
        reconciling=lambda: False,
        clock=clock,
    )
    denial = gate.check(OK_BUY)
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BALANCE
    assert "not known" in denial.detail


def test_negative_fee_allowance_is_refused() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="fee_allowance_rate"):
        RiskGate(
            RiskSettings(),
            state=TradingStateMachine(MemoryStateStore(), clock=clock),
            portfolio=Portfolio(clock=clock),
            market=FakeMarket({}),
            products={},
            open_orders=lambda: 0,
            reconciling=lambda: False,
            clock=clock,
            fee_allowance_rate=D("-0.01"),
        )


# ---------------------------------------------------------------------------- rate window


def test_rate_is_a_sliding_window_on_the_monotonic_clock() -> None:
    h = make_harness(max_orders_per_s=2.0)
    assert h.check(OK_BUY) is None  # t=0
    h.clock.advance(0.5)
    assert h.check(OK_BUY) is None  # t=0.5
    h.clock.advance(0.25)
    denial = h.check(OK_BUY)  # t=0.75: two in the last second
    assert denial is not None and denial.reason is DenialReason.ORDER_RATE
    assert "limit 2/s" in denial.detail
    h.clock.advance(0.25)
    assert h.check(OK_BUY) is None  # t=1.0: the t=0 order left the window
    denial = h.check(OK_BUY)  # 0.5 and 1.0 are inside
    assert denial is not None and denial.reason is DenialReason.ORDER_RATE
    h.clock.advance(0.5)
    assert h.check(OK_BUY) is None  # t=1.5


def test_rate_below_one_per_second() -> None:
    h = make_harness(max_orders_per_s=0.5)
    assert h.check(OK_BUY) is None
    h.clock.advance(1.9)
    denial = h.check(OK_BUY)
    assert denial is not None and denial.reason is DenialReason.ORDER_RATE
    h.clock.advance(0.1)
    assert h.check(OK_BUY) is None


# ---------------------------------------------------------------------------- gauges


def _gauges(h: Harness) -> dict[GaugeName, LimitGauge]:
    gauges = h.gate.gauges()
    assert len(gauges) == len(GaugeName)
    return {gauge.name: gauge for gauge in gauges}


def test_gauges_report_usage_headroom_and_fraction(h: Harness) -> None:
    h.balances("100000", btc="0.5", eth="2")
    h.mark_all()
    h.open_orders = 50
    for _ in range(3):
        assert h.check(OK_BUY) is None
    h.market.quotes["ETH-USD"].age = 1.25
    h.portfolio.mark("BTC-USD", D("49000"))  # -500 on 0.5 BTC
    gauges = _gauges(h)

    rate = gauges[GaugeName.ORDER_RATE]
    assert (rate.used, rate.limit, rate.unit) == (D(3), D(10), "orders/1s")
    assert rate.headroom == D(7) and rate.fraction == pytest.approx(0.3)

    assert gauges[GaugeName.OPEN_ORDERS].used == D(50)
    assert gauges[GaugeName.OPEN_ORDERS].fraction == pytest.approx(0.25)

    position = gauges[GaugeName.POSITION]
    assert (position.used, position.subject) == (D("24500.00"), "BTC-USD")
    assert position.headroom == D("25500.00")

    gross = gauges[GaugeName.GROSS_EXPOSURE]
    assert gross.used == D("24500.00") + D("6000.0")
    assert gauges[GaugeName.DAILY_LOSS].used == D("500.00")
    assert gauges[GaugeName.DRAWDOWN].used == D("500.00")

    age = gauges[GaugeName.DATA_AGE]
    assert (age.used, age.subject, age.limit) == (D("1.250"), "ETH-USD", D("5.0"))


def test_rate_gauge_forgets_old_orders(h: Harness) -> None:
    assert h.check(OK_BUY) is None
    h.clock.advance(1.0)
    assert _gauges(h)[GaugeName.ORDER_RATE].used == D(0)


def test_gauges_show_unknown_as_none(h: Harness) -> None:
    h.portfolio.mark("BTC-USD", None)
    h.market.quotes["ETH-USD"].age = None
    gauges = _gauges(h)
    for name in (GaugeName.POSITION, GaugeName.DATA_AGE):
        assert gauges[name].used is None
        assert gauges[name].headroom is None and gauges[name].fraction is None
    assert gauges[GaugeName.POSITION].subject == "BTC-USD"
    assert gauges[GaugeName.DATA_AGE].subject == "ETH-USD"
    assert gauges[GaugeName.GROSS_EXPOSURE].used is None
    assert gauges[GaugeName.DAILY_LOSS].used is None
    assert gauges[GaugeName.DRAWDOWN].used is None


def test_daily_loss_gauge_is_zero_on_a_winning_day(h: Harness) -> None:
    h.portfolio.mark("BTC-USD", D("51000"))
    assert _gauges(h)[GaugeName.DAILY_LOSS].used == D(0)


def test_data_age_gauge_without_products() -> None:
    clock = ManualClock()
    gate = RiskGate(
        RiskSettings(),
        state=TradingStateMachine(MemoryStateStore(), clock=clock),
        portfolio=Portfolio(clock=clock),
        market=FakeMarket({}),
        products={},
        open_orders=lambda: 0,
        reconciling=lambda: False,
        clock=clock,
    )
    gauges = {gauge.name: gauge for gauge in gate.gauges()}
    assert gauges[GaugeName.DATA_AGE].used is None
    assert gauges[GaugeName.POSITION].used == D(0)
    assert gauges[GaugeName.POSITION].subject is None


# ---------------------------------------------------------------------------- state machine


def test_first_start_is_active_and_recorded() -> None:
    clock = ManualClock()
    store = MemoryStateStore()
    machine = TradingStateMachine(store, clock=clock)
    assert machine.state is TradingState.ACTIVE
    assert store.saved == [machine.last_change]
    assert machine.last_change.source == "startup"
    assert machine.last_change.at == clock.time()


def test_state_survives_a_restart_with_the_same_store() -> None:
    clock = ManualClock()
    store = MemoryStateStore()
    first = TradingStateMachine(store, clock=clock)
    clock.advance(10)
    change = first.set(TradingState.HALTED, "kill switch (ctrl+k)", "user")
    assert (change.state, change.cause, change.source, change.at) == (
        TradingState.HALTED,
        "kill switch (ctrl+k)",
        "user",
        clock.time(),
    )
    restarted = TradingStateMachine(store, clock=clock)
    assert restarted.state is TradingState.HALTED
    assert restarted.last_change == change
    assert len(store.saved) == 2  # the restart did not write an ACTIVE over the HALT


def test_every_set_is_journaled_with_cause_and_source() -> None:
    store = MemoryStateStore()
    machine = TradingStateMachine(store, clock=ManualClock())
    machine.set(TradingState.HALTED, "drawdown 5100 > 5000", "trigger:drawdown")
    machine.set(TradingState.HALTED, "kill switch (ctrl+k)", "user")
    machine.set(TradingState.ACTIVE, "resume confirmed", "user")
    assert [(c.state, c.source) for c in store.saved[1:]] == [
        (TradingState.HALTED, "trigger:drawdown"),
        (TradingState.HALTED, "user"),
        (TradingState.ACTIVE, "user"),
    ]
    assert machine.version == 3


def test_tightening_applies_even_if_the_store_fails() -> None:
    store = MemoryStateStore()
    machine = TradingStateMachine(store, clock=ManualClock())
    store.fail = True
    with pytest.raises(OSError):
        machine.set(TradingState.HALTED, "kill switch", "user")
    assert machine.state is TradingState.HALTED


def test_loosening_applies_only_once_stored() -> None:
    store = MemoryStateStore()
    machine = TradingStateMachine(store, clock=ManualClock())
    machine.set(TradingState.HALTED, "kill switch", "user")
    store.fail = True
    with pytest.raises(OSError):
        machine.set(TradingState.ACTIVE, "resume", "user")
    assert machine.state is TradingState.HALTED


def test_a_change_needs_a_cause_and_a_source() -> None:
    machine = TradingStateMachine(MemoryStateStore(), clock=ManualClock())
    with pytest.raises(ValueError, match="cause and a source"):
        machine.set(TradingState.HALTED, "", "user")
    with pytest.raises(ValueError, match="cause and a source"):
        machine.set(TradingState.HALTED, "why", "")
    assert machine.state is TradingState.ACTIVE


# ---------------------------------------------------------------------------- triggers


def _live(since: float = 0.0) -> BookHealth:
    return BookHealth(BookStatus.LIVE, None, since, since, 0)


def _evaluate(
    h: Harness,
    *,
    health: dict[str, BookHealth] | None = None,
    user_down_since: float | None = None,
    rejects: tuple[float, ...] = (),
    now: float = 100.0,
) -> dict[TriggerName, Any]:
    triggers = AutomaticTriggers(h.settings)
    tripped = triggers.evaluate(
        h.portfolio,
        health if health is not None else {"BTC-USD": _live(), "ETH-USD": _live()},
        user_stream_down_since=user_down_since,
        reject_times=rejects,
        now=now,
    )
    return {trigger.name: trigger for trigger in tripped}


def test_no_trigger_when_all_is_well(h: Harness) -> None:
    assert _evaluate(h) == {}


def test_daily_loss_trigger_asks_for_reducing(h: Harness) -> None:
    h.portfolio.mark("BTC-USD", D("46000"))  # -2000: at the limit
    tripped = _evaluate(h)
    trigger = tripped[TriggerName.DAILY_LOSS]
    assert trigger.state is TradingState.REDUCING
    assert trigger.cause == "daily loss 2,000.00 >= limit 2,000.00"
    assert trigger.source == "trigger:daily_loss"
    assert TriggerName.DRAWDOWN not in tripped


def test_drawdown_trigger_halts() -> None:
    h = make_harness(daily_loss_limit=D("100000"))
    h.portfolio.mark("BTC-USD", D("60000"))  # +5000 peak
    h.portfolio.mark("BTC-USD", D("50000"))  # back to 0: 5000 from the peak
    trigger = _evaluate(h)[TriggerName.DRAWDOWN]
    assert trigger.state is TradingState.HALTED
    assert trigger.cause == "drawdown 5,000.00 from peak >= limit 5,000.00"


def test_market_data_trigger_needs_the_outage_to_last(h: Harness) -> None:
    stale = BookHealth(BookStatus.STALE, "sequence gap", 80.0, 70.0, 1)
    assert _evaluate(h, health={"BTC-USD": stale}, now=110.0) == {}  # 30s: not past
    trigger = _evaluate(h, health={"BTC-USD": stale}, now=111.0)[TriggerName.MARKET_DATA_STALE]
    assert trigger.state is TradingState.HALTED
    assert trigger.cause == "BTC-USD market data STALE for 31s > 30s: sequence gap"
    syncing = BookHealth(BookStatus.SYNCING, None, 0.0, None, 0)
    assert TriggerName.MARKET_DATA_STALE in _evaluate(h, health={"ETH-USD": syncing})


def test_user_stream_trigger(h: Harness) -> None:
    assert _evaluate(h, user_down_since=70.0, now=100.0) == {}
    trigger = _evaluate(h, user_down_since=69.0, now=100.0)[TriggerName.USER_STREAM_DOWN]
    assert trigger.cause == "user stream down for 31s > 30s"
    assert trigger.state is TradingState.HALTED


def test_reject_storm_counts_only_the_window(h: Harness) -> None:
    old = tuple(float(t) for t in range(80, 90))  # 10 rejects, all older than 10 s
    assert _evaluate(h, rejects=old, now=100.0) == {}
    recent = tuple(90.5 + t * 0.5 for t in range(10))
    trigger = _evaluate(h, rejects=recent, now=100.0)[TriggerName.REJECT_STORM]
    assert trigger.cause == "10 rejects in the last 10s >= 10"
    assert trigger.state is TradingState.HALTED
