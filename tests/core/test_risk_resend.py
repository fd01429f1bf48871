"""A re-send passes the gate again (issue 9 §3).

The order manager re-sends an UNKNOWN order the venue proved absent, with the same
client_order_id. Between the first send and the re-send the trading state may have tightened
(a daily-loss trigger: REDUCING; the kill switch: HALTED) or other orders may have used up the
limits: the re-send is a new request and must pass ``RiskGate.check_resend`` (the order itself
is not counted twice). The gate side is proven in tests/core/test_risk_working.py; here the
whole path: a real ``OrderManager`` wired to a real ``RiskGate``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.journal import Journal
from core.model import IntentSource, OrderIntent, OrderSpec, OrderType, Side
from core.order_state import OrderState
from core.orders import OrderManager
from core.risk import working_orders_of
from core.trading_state import TradingState
from tests.core.test_risk import Harness, make_harness
from tests.doubles.fake_venue import FakeVenue, PlaceScript

D = Decimal


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal-paper.sqlite3", clock=ManualClock())
    yield opened
    opened.close()


class TightenWhileWaiting:
    """The manager's sleep: the first wait is where a trigger moves the state. It moves the
    manual clock on by each delay, so the lookups reach the end of the absent-order window."""

    def __init__(self, h: Harness, state: TradingState) -> None:
        self._h = h
        self._state = state

    async def __call__(self, delay: float) -> None:
        if self._h.state.state is not self._state:
            self._h.state.set(self._state, "daily loss 2,100 >= 2,000", "trigger:daily_loss")
        self._h.clock.advance(delay)
        await asyncio.sleep(0)


def wire(h: Harness, journal: Journal, state: TradingState) -> tuple[OrderManager, FakeVenue]:
    venue = FakeVenue(h.clock)
    ids = (f"coid-{n}" for n in itertools.count(1))
    manager = OrderManager(
        venue,
        journal,
        h.gate,
        clock=h.clock,
        id_factory=lambda: next(ids),
        sleep=TightenWhileWaiting(h, state),
    )
    venue.set_listener(manager)
    # The engine's wiring: the gate sees the manager's open orders.
    h.gate._working = lambda: working_orders_of(manager.open_orders())
    return manager, venue


BUY_5K = OrderIntent(
    OrderSpec("BTC-USD", Side.BUY, OrderType.LIMIT, base_size=D("0.1"), limit_price=D("50000")),
    IntentSource.MANUAL,
)


@pytest.mark.parametrize("tightened", [TradingState.REDUCING, TradingState.HALTED])
async def test_an_unknown_order_is_not_resent_once_the_state_refuses_it(
    journal: Journal, tightened: TradingState
) -> None:
    h = make_harness(use_working=True)
    manager, venue = wire(h, journal, tightened)
    venue.script(PlaceScript.ERROR_BEFORE_ACCEPT)  # a 5xx: nothing created, outcome unknown
    first = await manager.submit(BUY_5K)
    assert first.state is OrderState.UNKNOWN
    await manager.wait_background()
    assert [coid for _, coid in venue.place_calls] == ["coid-1"]  # never re-sent
    assert venue.orders_for("coid-1") == []
    order = manager.get("coid-1")
    assert order is not None and order.state is not OrderState.ACCEPTED


async def test_an_unknown_order_is_resent_while_the_gate_allows_it(journal: Journal) -> None:
    """The control: with nothing tightened the re-send goes out (and stays allowed by
    ``check_resend``, which does not count the order twice)."""
    h = make_harness(use_working=True)
    manager, venue = wire(h, journal, TradingState.ACTIVE)
    venue.script(PlaceScript.ERROR_BEFORE_ACCEPT)
    await manager.submit(BUY_5K)
    assert h.gate.check_resend(BUY_5K, "coid-1") is None
    await manager.wait_background()
    assert [coid for _, coid in venue.place_calls] == ["coid-1", "coid-1"]
    order = manager.get("coid-1")
    assert order is not None and order.state is OrderState.ACCEPTED
