"""What the engine's event log says about fills and cancels, on the simulated exchange: prices
on the product's tick and money in cents; a cancel confirmed with what left the book."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from core.clock import ManualClock
from core.engine import Engine
from core.model import OrderSpec, OrderType, Side
from core.sim.exchange import SimExchange
from core.sim.server import SimServer
from tests.integration.engine_harness import eventually, limit_spec, running_engine

BTC = "BTC-USD"


def texts(engine: object) -> list[str]:
    return [event.text for event in engine.snapshot().events]  # type: ignore[attr-defined]


def resting_at_exchange(engine: Engine, client_order_id: str) -> bool:
    order = engine.orders.get(client_order_id)
    return order is not None and order.order_id is not None


async def test_fills_show_the_tick_and_cents_and_a_cancel_is_confirmed(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> None:
    async with running_engine(sim_server, sim_exchange, sim_clock, tmp_path) as run:
        engine = run.engine
        # An odd size makes a fee with many digits (size x price x rate).
        await run.submit(OrderSpec(BTC, Side.BUY, OrderType.MARKET, base_size=Decimal("0.0123")))
        await eventually(lambda: any(text.startswith("FILL BUY") for text in texts(engine)))
        fills = [text for text in texts(engine) if text.startswith("FILL BUY")]
        pattern = r"FILL BUY 0\.0123 BTC-USD @ (\d+\.\d{2}) \(fee (\d+\.\d{2})\)"
        for fill in fills:
            assert re.fullmatch(pattern, fill), fill

        resting = await run.submit(limit_spec(BTC, Side.BUY, "0.01", "67500.00"))
        await eventually(lambda: resting_at_exchange(engine, resting.client_order_id))
        await engine.cancel([resting.client_order_id])
        await eventually(lambda: any(text.startswith("cancelled") for text in texts(engine)))
        [cancelled] = [text for text in texts(engine) if text.startswith("cancelled")]
        assert cancelled == "cancelled BUY 0.01 BTC-USD LIMIT @ 67500.00"
