"""The console on the REAL engine against the simulated exchange, in-process over loopback.

The keys go through the whole path: the order ticket, the risk gate's preview, the order
manager, the Coinbase client over HTTP, the sim's matching engine, the user channel back. The
test asserts on the engine and on the exchange itself (what the sim lists as open).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from core.clock import ManualClock
from core.config import load_settings
from core.engine import Engine, ExchangeEndpoints
from core.model import ExchangeOrderStatus
from core.order_state import OrderState
from core.sim.exchange import SimExchange
from core.sim.runner import build_exchange
from core.sim.server import DEMO_USER_ID, SimServer
from core.snapshot import BookStatus
from core.trading_state import TradingState
from cryptoj_tui.app import ConsoleEngine, CryptoJApp
from cryptoj_tui.screens.order_ticket import OrderTicketScreen
from tests.integration.loopback import seed_liquidity

SEED = 42
OPEN = [ExchangeOrderStatus.OPEN, ExchangeOrderStatus.PENDING, ExchangeOrderStatus.QUEUED]


@pytest.fixture
def sim_clock() -> ManualClock:
    """One manual clock for the exchange, the engine and the App (JWT windows agree)."""
    return ManualClock()


@pytest.fixture
def exchange(sim_clock: ManualClock) -> SimExchange:
    """A seeded exchange with the demo account and a fixed market-maker ladder
    (BTC-USD 67,990.00 / 68,010.00)."""
    sim = build_exchange(SEED, sim_clock)
    seed_liquidity(sim)
    return sim


@pytest.fixture
async def server(exchange: SimExchange, sim_clock: ManualClock) -> AsyncIterator[SimServer]:
    """The sim serving REST + WebSocket on 127.0.0.1:<free port>, no market agents."""
    sim = SimServer(
        exchange,
        None,
        clock=sim_clock,
        seed=SEED,
        subscribe_timeout_s=0.5,
        heartbeat_interval_s=0.1,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def engine(server: SimServer, sim_clock: ManualClock, tmp_path: Path) -> Engine:
    """The real Engine (demo mode) pointed at the sim, journal in a temp dir. Not started:
    the App starts it."""
    endpoints = server.endpoints
    assert endpoints is not None
    settings = load_settings(
        None,
        environ={
            "HOME": str(tmp_path),
            "CRYPTOJ_MARKET__PRODUCTS": '["BTC-USD","ETH-USD"]',
            "CRYPTOJ_STORAGE__DATA_DIR": str(tmp_path),
        },
    )
    return Engine(
        settings,
        ExchangeEndpoints(
            endpoints.rest_url,
            endpoints.ws_market_url,
            endpoints.ws_user_url,
            endpoints.credentials,
        ),
        clock=sim_clock,
        mode="demo",
        journal_file=tmp_path / "journal-demo.sqlite3",
    )


async def until(pilot: Pilot[Any], condition: Any, seconds: float = 10.0) -> None:
    """Let the App and the engine run until ``condition()`` holds (fails after ``seconds``)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")


def trading_state(engine: Engine) -> TradingState:
    return engine.trading_state.state


def open_at_sim(exchange: SimExchange) -> list[str]:
    return [order.order_id for order in exchange.list_orders(DEMO_USER_ID, statuses=OPEN)]


async def test_place_cancel_kill_and_resume_on_the_real_engine(
    engine: Engine, exchange: SimExchange, sim_clock: ManualClock
) -> None:
    console: ConsoleEngine = engine  # the real engine satisfies the console's protocol
    app = CryptoJApp(
        console, mode="demo", products=engine.products, clock=sim_clock, cursor_blink=False
    )
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, engine.started.is_set)
        await until(pilot, lambda: engine.snapshot("BTC-USD").book.status is BookStatus.LIVE)
        await until(pilot, lambda: engine.snapshot("BTC-USD").balances is not None)
        app.pull_snapshot()

        # Place: s, a size, enter. The ticket starts at the best ask (a sell of some of the
        # demo account's BTC).
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, OrderTicketScreen))
        ticket = app.screen
        assert isinstance(ticket, OrderTicketScreen)
        assert ticket.query_one("#price", Input).value == "68010.00"
        for key in "0.001":
            await pilot.press(key)
        await pilot.pause()
        assert ticket.gate_text == "gate: ALLOWED · notional 68.01 USD", ticket.gate_text
        await pilot.press("enter")
        await until(pilot, lambda: len(open_at_sim(exchange)) == 1)
        [order] = engine.orders.open_orders()
        assert order.state is OrderState.ACCEPTED
        assert order.intent.spec.base_size == Decimal("0.001")
        assert order.intent.spec.limit_price == Decimal("68010.00")

        # Cancel: the order is selected in the table; c cancels it at the exchange.
        await until(pilot, lambda: app.main_screen.orders.row_count == 1)
        await pilot.press("c")
        await until(pilot, lambda: not open_at_sim(exchange) and not engine.orders.open_orders())

        # Two resting orders, then the kill switch from inside a ticket with size focused.
        for _ in range(2):
            app.submit_order(order.intent)
        await until(pilot, lambda: len(open_at_sim(exchange)) == 2)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, OrderTicketScreen))
        assert isinstance(app.focused, Input) and app.focused.id == "size"
        await pilot.press("ctrl+k")
        assert engine.trading_state.state is TradingState.HALTED  # latched at once
        assert app.kill_task is not None
        progress = await asyncio.wait_for(asyncio.shield(app.kill_task), 10)
        assert progress.phase.value == "DONE"
        assert open_at_sim(exchange) == []
        preview = engine.preview(order.intent)
        assert preview is not None and preview.reason.value == "TRADING_HALTED"

        # Resume with the typed word: a clean reconciliation, then ACTIVE.
        await pilot.pause()
        await pilot.press("R")
        await pilot.pause()
        for key in "RESUME":
            await pilot.press(key)
        await pilot.press("enter")
        await until(pilot, lambda: trading_state(engine) is TradingState.ACTIVE)
        assert engine.preview(order.intent) is None
