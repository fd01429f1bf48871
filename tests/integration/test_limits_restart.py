"""The daily-loss limit survives a restart of the engine (issue 9 §3), end to end: an engine
trades on the in-process sim and loses money, stops; a new engine on the same journal loses
about as much again, and the daily-loss trigger trips on the total, although the second
session alone stays inside the limit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from core.clock import ManualClock
from core.model import OrderSpec, OrderType, Side
from core.order_state import OrderState
from core.sim.exchange import SimExchange
from core.sim.server import SimServer
from core.trading_state import TradingState
from tests.integration.engine_harness import (
    EngineRun,
    eventually,
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
