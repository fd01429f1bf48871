"""Limits survive restarts and block RESUME while breached (issue 9 §3).

A "restart" here is what ``core/engine.py`` does at start: a new ``Portfolio`` over the same
journal file, ``PnlMemory.restore()`` before anything else, holdings re-adopted from the
venue's balances, then marks. The loss before the restart and the loss after it add up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.config import RiskSettings
from core.denials import DenialReason
from core.emergency import RESUME_CONFIRMATION, EmergencyManager, ResumeRefused
from core.journal import Journal
from core.model import Balance, Fill, Side
from core.orders import OrderManager
from core.portfolio import KEY_PNL_CHECKPOINT, PnlCheckpoint, PnlMemory, Portfolio
from core.risk import AutomaticTriggers, RiskGate, TradingStateMachine, TriggerName
from core.trading_state import TradingState
from tests.core.test_emergency import HeldVenue, Prices
from tests.core.test_risk import FakeMarket, Quote, limit, make_product
from tests.doubles.gate import StubGate
from tests.doubles.sleeps import Sleeps

D = Decimal
LIMITS = RiskSettings(daily_loss_limit=D(2000), max_drawdown=D(5000))
_trades = itertools.count(1)


@dataclass(frozen=True)
class FillEvent:
    fill: Fill


def fill(side: Side, size: str, price: str, when: datetime | None = None) -> FillEvent:
    n = next(_trades)
    return FillEvent(
        Fill(f"t{n}", f"o{n}", "BTC-USD", side, D(price), D(size), D(0), trade_time=when)
    )


@dataclass
class Session:
    """One engine process's risk parts over a journal file."""

    journal: Journal
    portfolio: Portfolio
    memory: PnlMemory
    gate: RiskGate
    state: TradingStateMachine
    market: FakeMarket
    restored: str | None

    def mark(self, price: str) -> None:
        self.market.quotes["BTC-USD"] = Quote(float(price) - 5, float(price) + 5)
        self.portfolio.mark("BTC-USD", D(price))
        self.memory.save()

    def tripped(self) -> set[TriggerName]:
        found = AutomaticTriggers(LIMITS).evaluate(
            self.portfolio, {}, user_stream_down_since=None, reject_times=(), now=0.0
        )
        return {trigger.name for trigger in found}


def start_session(path: Path, clock: ManualClock, *, btc: str) -> Session:
    journal = Journal.open(path, clock=clock)
    portfolio = Portfolio(clock=clock, product_ids=["BTC-USD"])
    memory = PnlMemory(portfolio, journal, clock=clock)
    restored = memory.restore()  # the engine restores before anything else
    state = TradingStateMachine(journal, clock=clock)
    market = FakeMarket({"BTC-USD": Quote(49995.0, 50005.0)})
    gate = RiskGate(
        LIMITS,
        state=state,
        portfolio=portfolio,
        market=market,
        products={"BTC-USD": make_product("BTC-USD")},
        open_orders=lambda: 0,
        reconciling=lambda: False,
        clock=clock,
        working_orders=lambda: (),
    )
    portfolio.set_balances([Balance("USD", D(100000), D(0)), Balance("BTC", D(btc), D(0))])
    return Session(journal, portfolio, memory, gate, state, market, restored)


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    clock.advance(12 * 3600)  # midday
    return clock


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "journal-demo.sqlite3"


def lose_1500_then_restart(path: Path, clock: ManualClock) -> Session:
    first = start_session(path, clock, btc="0")
    first.portfolio.on_fill(fill(Side.BUY, "1", "50000"))
    first.mark("48500")  # -1500 today
    assert first.portfolio.daily_pnl == D(-1500)
    clock.advance(5)
    first.memory.save(force=True)
    first.journal.close()  # the process ends (or dies after the last save)
    return start_session(path, clock, btc="1")


def test_a_loss_before_a_restart_counts_toward_the_daily_limit_after_it(
    path: Path, clock: ManualClock
) -> None:
    second = lose_1500_then_restart(path, clock)
    assert second.restored is not None and "today -1,500.00" in second.restored
    second.mark("48500")
    assert second.portfolio.daily_pnl == D(-1500)
    assert second.tripped() == set()
    second.mark("47900")  # 600 more: 2100 in total today, over the 2000 limit
    assert second.portfolio.daily_pnl == D(-2100)
    assert TriggerName.DAILY_LOSS in second.tripped()
    denial = second.gate.check(limit(Side.BUY, "0.01", "47900.00"))
    assert denial is not None and denial.reason is DenialReason.DAILY_LOSS_LIMIT
    # The drawdown, too, is measured from the peak before the restart.
    assert second.portfolio.drawdown == D(2100)
    assert second.portfolio.peak_equity == second.portfolio.equity + D(2100)  # type: ignore[operator]
    assert second.portfolio.day_start_equity == second.portfolio.equity + D(2100)  # type: ignore[operator]


def test_the_checkpoint_follows_the_loss_and_a_third_start_still_sees_it(
    path: Path, clock: ManualClock
) -> None:
    second = lose_1500_then_restart(path, clock)
    second.mark("48000")  # it fell 500 while we were down: that is today's loss too
    assert second.portfolio.daily_pnl == D(-2000)
    clock.advance(2)
    second.mark("47900")  # due again: saved
    second.journal.close()
    third = start_session(path, clock, btc="1")
    third.mark("47900")
    assert third.portfolio.daily_pnl == D(-2100)
    assert TriggerName.DAILY_LOSS in third.tripped()


def test_a_checkpoint_of_an_earlier_day_carries_the_peak_but_not_the_day(
    path: Path, clock: ManualClock
) -> None:
    first = start_session(path, clock, btc="0")
    first.portfolio.on_fill(fill(Side.BUY, "1", "50000"))
    first.mark("47000")  # -3000: the day and the drawdown
    first.memory.save(force=True)
    first.journal.close()
    clock.advance(24 * 3600)
    second = start_session(path, clock, btc="1")
    second.mark("47000")
    assert second.portfolio.daily_pnl == 0
    assert second.portfolio.drawdown == D(3000)
    second.mark("46000")
    assert second.portfolio.drawdown == D(4000)
    assert second.portfolio.daily_pnl == D(-1000)


def test_an_unreadable_checkpoint_is_reported_and_trading_starts_from_zero(
    path: Path, clock: ManualClock
) -> None:
    journal = Journal.open(path, clock=clock)
    journal.set_value(KEY_PNL_CHECKPOINT, '{"day": "x"}')
    journal.close()
    session = start_session(path, clock, btc="0")
    assert session.restored is not None and "unreadable" in session.restored
    assert session.portfolio.daily_pnl == 0


def test_a_journal_that_cannot_be_written_does_not_stop_the_portfolio(clock: ManualClock) -> None:
    class Broken:
        def get_value(self, key: str) -> str | None:
            return None

        def set_value(self, key: str, value: str) -> None:
            raise OSError("disk full")

    portfolio = Portfolio(clock=clock, product_ids=["BTC-USD"])
    memory = PnlMemory(portfolio, Broken(), clock=clock)
    portfolio.set_balances([Balance("USD", D(1000), D(0))])
    portfolio.on_fill(fill(Side.BUY, "0.01", "50000"))
    portfolio.mark("BTC-USD", D(49000))
    assert memory.save(force=True) is False
    assert portfolio.daily_pnl == D(-10)


money = st.decimals(min_value=D(-(10**9)), max_value=D(10**9), places=8)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.integers(min_value=0, max_value=10**6), money, money, money, st.none() | money)
def test_a_checkpoint_reads_back_exactly(
    day: int, daily: Decimal, total: Decimal, peak: Decimal, equity: Decimal | None
) -> None:
    checkpoint = PnlCheckpoint(day, daily, total, peak, equity, equity, (("BTC-USD", total),))
    assert PnlCheckpoint.decode(checkpoint.encode()) == checkpoint


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"day": 1}',
        '{"day":1,"daily_pnl":"NaN","total_pnl":"0","peak_pnl":"0"}',
        '{"day":1,"daily_pnl":"x","total_pnl":"0","peak_pnl":"0"}',
    ],
)
def test_a_damaged_checkpoint_is_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a P&L checkpoint"):
        PnlCheckpoint.decode(text)


# ---------------------------------------------------------------------------- resume


async def test_resume_is_refused_while_the_daily_loss_is_past_the_limit(
    path: Path, clock: ManualClock
) -> None:
    second = lose_1500_then_restart(path, clock)
    second.mark("47900")  # -2100 today
    venue = HeldVenue(clock)
    ids = (f"coid-{n}" for n in itertools.count(1))
    orders = OrderManager(
        venue, second.journal, StubGate(), clock=clock, id_factory=lambda: next(ids)
    )
    venue.set_listener(orders)
    manager = EmergencyManager(
        state=second.state,
        orders=orders,
        venue=venue,
        journal=second.journal,
        settings=LIMITS,
        products=lambda: {"BTC-USD": make_product("BTC-USD")},
        prices=Prices({"BTC-USD": 47_900.0}),
        clock=clock,
        sleep=Sleeps(),
        breached_limits=second.gate.breached_limits,
    )
    manager.act_on(
        AutomaticTriggers(LIMITS).evaluate(
            second.portfolio, {}, user_stream_down_since=None, reject_times=(), now=0.0
        )
    )
    assert second.state.state is TradingState.REDUCING
    with pytest.raises(ResumeRefused, match=r"daily loss 2,100.00 >= limit 2,000.00"):
        await manager.resume(RESUME_CONFIRMATION)
    assert second.state.state is TradingState.REDUCING
    second.mark("48800")  # back to -1200 today: within the limit
    await manager.resume(RESUME_CONFIRMATION)
    assert second.state.state is TradingState.ACTIVE


def test_breached_limits_names_the_drawdown_too(path: Path, clock: ManualClock) -> None:
    session = start_session(path, clock, btc="0")
    session.portfolio.on_fill(fill(Side.BUY, "1", "50000"))
    session.mark("44000")
    breached = session.gate.breached_limits()
    assert len(breached) == 2
    assert breached[0].startswith("daily loss 6,000.00 >= limit 2,000.00")
    assert breached[1].startswith("drawdown 6,000.00 from peak >= limit 5,000.00")
    session.mark("50000")
    assert session.gate.breached_limits() == []
