"""Limits that count what is working and survive restarts (issue 9 §3), end to end on the
in-process sim with the engine's own wiring:

* resting buys count toward the position limit (four of 24k each against 50k: two rest, the
  others are denied, and the venue never holds more than the limit's worth);
* the daily-loss limit survives a restart: an engine loses money and stops; a new engine on
  the same journal loses about as much again, and the daily-loss trigger trips on the total,
  although the second session alone stays inside the limit.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from core.clock import ManualClock
from core.denials import DenialReason
from core.model import OrderSpec, OrderType, Side
from core.order_state import OrderState
from core.sim.exchange import SimExchange
from core.sim.server import SimServer
from core.trading_state import TradingState
from tests.integration.engine_harness import (
    EngineRun,
    eventually,
    limit_spec,
    proof_settings,
    running_engine,
)

D = Decimal
BTC = "BTC-USD"
SIZE = D("0.05")


async def round_trip(run: EngineRun) -> None:
    """Buy and sell SIZE BTC at market: back where it was, poorer by the spread and fees."""
    held = run.engine.portfolio.size(BTC)
    for side in (Side.BUY, Side.SELL):
        order = await run.submit(OrderSpec(BTC, side, OrderType.MARKET, base_size=SIZE))
        assert order.denial is None, order.denial
        run.sim.server.flush()

        def filled(coid: str = order.client_order_id) -> bool:
            found = run.engine.orders.get(coid)
            return found is not None and found.state is OrderState.FILLED

        await eventually(filled)
    await eventually(lambda: run.engine.portfolio.size(BTC) == held)


async def test_a_loss_before_a_restart_counts_toward_the_daily_limit(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> None:
    async with running_engine(sim_server, sim_exchange, sim_clock, tmp_path) as first:
        await round_trip(first)
        daily = first.engine.portfolio.daily_pnl
        assert daily is not None and daily < 0
        first_loss = -daily
    # A limit one and a half times the first loss: the second session alone stays inside it.
    limit = (first_loss * D("1.5")).quantize(D("0.01"))
    settings = proof_settings(tmp_path, risk={"daily_loss_limit": limit})
    async with running_engine(
        sim_server, sim_exchange, sim_clock, tmp_path, settings=settings
    ) as second:
        restored = second.engine.portfolio.daily_pnl
        assert restored == -first_loss
        assert second.engine.trading_state.state is TradingState.ACTIVE
        await round_trip(second)
        await eventually(lambda: second.engine.trading_state.state is TradingState.REDUCING)
        daily = second.engine.portfolio.daily_pnl
        assert daily is not None and -daily >= limit
        assert second.engine.trading_state.last_change.source == "trigger:daily_loss"
        session_loss = -daily - first_loss

        assert session_loss < limit  # without the restored loss nothing would have tripped


async def test_resting_buys_count_toward_the_position_limit(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> None:
    # The demo account already holds some BTC: the limit is what it holds plus 50k.
    async with running_engine(sim_server, sim_exchange, sim_clock, tmp_path) as probe:
        mid = D(repr(probe.engine.prices.mid(BTC)))
        held = probe.engine.portfolio.size(BTC)
    price = (mid * D("0.99")).quantize(D("0.01"))  # rests below the market, inside the band
    size = (D(24000) / price).quantize(D("0.0001"))
    limit = (held * price + D(50000)).quantize(D("0.01"))
    settings = proof_settings(tmp_path, risk={"max_position_notional": limit})
    async with running_engine(
        sim_server, sim_exchange, sim_clock, tmp_path, settings=settings
    ) as run:
        placed = [
            await run.submit(limit_spec(BTC, Side.BUY, str(size), str(price))) for _ in range(4)
        ]
        assert [order.denial is None for order in placed] == [True, True, False, False]
        assert all(
            order.denial.reason is DenialReason.POSITION_LIMIT
            for order in placed[2:]
            if order.denial is not None
        )
        resting = [order for order in run.sim.open_orders() if order.side is Side.BUY]
        assert sum((order.base_size or D(0)) * price for order in resting) <= D(50000)
