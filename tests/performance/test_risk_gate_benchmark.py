"""How long RiskGate.check takes per order (budget: 20 µs on this machine).

Run with ``--benchmark-enable`` for figures; without it each benchmark runs once and only the
outcome is checked. The gate is wired to an in-memory portfolio with two products and a
market view that answers from a dict, so what is measured is the gate itself.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from core.config import RiskSettings
from core.denials import Denial, DenialReason
from core.model import Balance, IntentSource, OrderIntent, OrderSpec, OrderType, Side
from core.portfolio import Portfolio
from core.risk import RiskGate, TradingStateMachine
from tests.core.test_risk import FakeMarket, MemoryStateStore, Quote, make_product
from tests.performance.bench_mode import hold_to_targets, verdict

D = Decimal
BUDGET_S = 20e-6


class TickingClock:
    """A clock whose monotonic time moves 1 s per read, so the rate limit never binds."""

    def __init__(self) -> None:
        self._mono = 0.0

    def time(self) -> float:
        return 1_767_225_600.0

    def monotonic(self) -> float:
        self._mono += 1.0
        return self._mono


@pytest.fixture
def gate() -> RiskGate:
    """A gate with default limits, 100000 USD and 0.5 BTC held, BTC at 49990/50010."""
    clock = TickingClock()
    portfolio = Portfolio(clock=clock, product_ids=["BTC-USD", "ETH-USD"])
    portfolio.set_balances(
        [
            Balance("USD", D(100000), D(0)),
            Balance("BTC", D("0.5"), D(0)),
            Balance("ETH", D(0), D(0)),
        ]
    )
    portfolio.mark("BTC-USD", D(50000))
    portfolio.mark("ETH-USD", D(3000))
    market = FakeMarket({"BTC-USD": Quote(49990.0, 50010.0), "ETH-USD": Quote(2999.0, 3001.0)})
    return RiskGate(
        RiskSettings(),
        state=TradingStateMachine(MemoryStateStore(), clock=clock),
        portfolio=portfolio,
        market=market,
        products={"BTC-USD": make_product("BTC-USD"), "ETH-USD": make_product("ETH-USD")},
        open_orders=lambda: 3,
        reconciling=lambda: False,
        clock=clock,
    )


def _limit(size: str, price: str) -> OrderIntent:
    spec = OrderSpec("BTC-USD", Side.BUY, OrderType.LIMIT, base_size=D(size), limit_price=D(price))
    return OrderIntent(spec, IntentSource.STRATEGY)


def _within_budget(benchmark: BenchmarkFixture) -> None:
    if benchmark.disabled or benchmark.stats is None:
        return
    # The fastest round is what the code costs; the median includes other helpers' load.
    best = verdict("gate check (best)", benchmark.stats.stats.min * 1e6, BUDGET_S * 1e6, "us")
    print(best)
    hold_to_targets(best)


def test_allowed_limit_order(benchmark: BenchmarkFixture, gate: RiskGate) -> None:
    intent = _limit("0.1", "50000.00")  # passes every check, the rate included
    assert benchmark(gate.check, intent) is None
    _within_budget(benchmark)


def test_denied_limit_order(benchmark: BenchmarkFixture, gate: RiskGate) -> None:
    # Denied late in the chain (position limit: 0.5 + 0.49 BTC at 51000 > 50000 USD), so
    # nearly every check runs and the detail text is built.
    intent = _limit("0.49", "51000.00")
    denial = benchmark(gate.check, intent)
    assert isinstance(denial, Denial) and denial.reason is DenialReason.POSITION_LIMIT
    _within_budget(benchmark)


def test_allowed_market_order(benchmark: BenchmarkFixture, gate: RiskGate) -> None:
    spec = OrderSpec("BTC-USD", Side.SELL, OrderType.MARKET, base_size=D("0.1"))
    assert benchmark(gate.check, OrderIntent(spec, IntentSource.MANUAL)) is None
    _within_budget(benchmark)
