"""The console on the REAL engine against the simulated exchange, in-process over loopback.

The last test streams a fast book from the sim in a child process and checks every frame the
App paints. The keys go through the whole path: the order ticket, the risk gate's preview, the order
manager, the Coinbase client over HTTP, the sim's matching engine, the user channel back. The
test asserts on the engine and on the exchange itself (what the sim lists as open).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.segment import ControlType
from textual import events
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Input

from core.clock import ManualClock, SystemClock
from core.config import SimSettings
from core.engine import Engine
from core.model import (
    ExchangeOrderStatus,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Side,
)
from core.order_state import OrderState
from core.sim.exchange import SimExchange
from core.sim.launcher import start_sim_process
from core.sim.runner import build_exchange
from core.sim.server import DEMO_USER_ID, SimServer
from core.snapshot import BookStatus
from core.trading_state import TradingState
from cryptoj_tui.app import ConsoleEngine, CryptoJApp
from cryptoj_tui.screens.order_ticket import OrderTicketScreen
from tests.integration.engine_harness import demo_engine
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
    return demo_engine(endpoints, tmp_path, ["BTC-USD", "ETH-USD"], sim_clock)


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


def console_app(engine: Engine, clock: ManualClock) -> CryptoJApp:
    """The console on the real engine (which satisfies the console's protocol)."""
    console: ConsoleEngine = engine
    app = CryptoJApp(
        console, mode="demo", products=engine.products, clock=clock, cursor_blink=False
    )
    app.animation_level = "none"
    return app


async def until_ready_to_trade(pilot: Pilot[Any], engine: Engine) -> None:
    """Until the engine runs with a live BTC-USD book, its balances and its product details."""
    await until(pilot, engine.started.is_set)
    await until(pilot, lambda: engine.snapshot("BTC-USD").book.status is BookStatus.LIVE)
    await until(pilot, lambda: engine.snapshot("BTC-USD").balances is not None)
    await until(pilot, lambda: engine.product("BTC-USD") is not None)


async def test_place_cancel_kill_and_resume_on_the_real_engine(
    engine: Engine, exchange: SimExchange, sim_clock: ManualClock
) -> None:
    app = console_app(engine, sim_clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await until_ready_to_trade(pilot, engine)
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


async def test_a_kill_key_latches_while_the_loop_is_busy(
    engine: Engine, exchange: SimExchange, sim_clock: ManualClock
) -> None:
    """The kill key is latched on the thread that reads the terminal, not when the event loop
    gets to it: here the loop is held busy (as by a long frame) while a thread hands ctrl+k to
    the driver, and before the loop runs again the engine is HALTED and the gate refuses an
    order. Once the loop runs, the kill switch does the rest: the sweep leaves the venue flat
    and the banner shows HALTED (one kill, not two)."""
    app = console_app(engine, sim_clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await until_ready_to_trade(pilot, engine)
        intent = resting_bid(engine)
        app.submit_order(intent)
        await until(pilot, lambda: len(open_at_sim(exchange)) == 1)
        assert engine.preview(intent) is None  # the gate allows it while ACTIVE
        driver = app._driver
        assert driver is not None
        key = events.Key("ctrl+k", None)
        key.set_sender(app)
        kills: list[object] = []
        kill = engine.kill

        def counted_kill(cause: str = "kill switch", source: str = "user") -> Any:
            kills.append(cause)
            return kill(cause, source)

        engine.kill = counted_kill  # type: ignore[method-assign]
        delivered = threading.Event()

        def terminal_reader() -> None:
            driver.send_message(key)
            delivered.set()

        # The loop is held right here, synchronously, until the reader has delivered the key.
        threading.Thread(target=terminal_reader, name="terminal-reader").start()
        assert delivered.wait(10), "the reader thread did not deliver the key"
        assert engine.trading_state.state is TradingState.HALTED  # latched off the loop
        denial = engine.preview(intent)
        assert denial is not None and denial.reason.value == "TRADING_HALTED"
        assert kills == []  # the sweep waits for the loop
        assert len(open_at_sim(exchange)) == 1

        await until(pilot, lambda: app.kill_task is not None)
        assert app.kill_task is not None
        progress = await asyncio.wait_for(asyncio.shield(app.kill_task), 10)
        assert progress.phase.value == "DONE"
        assert progress.halted_at is not None and progress.started_at == progress.halted_at
        assert open_at_sim(exchange) == []
        assert len(kills) == 1
        await until(pilot, lambda: app.main_screen.banner.level == "halted")
        assert len(kills) == 1  # the key's binding did not pull it a second time
        stored = engine.journal.load_trading_state()
        assert stored is not None and stored.state is TradingState.HALTED  # made durable


def resting_bid(engine: Engine) -> OrderIntent:
    """A small BTC bid well under the touch: it rests, and the gate allows it while ACTIVE."""
    best_bid = engine.prices.best_bid("BTC-USD")
    assert best_bid is not None
    price = (Decimal(str(best_bid)) * Decimal("0.99")).quantize(Decimal("0.01"))
    spec = OrderSpec(
        product_id="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        base_size=Decimal("0.001"),
        limit_price=price,
    )
    return OrderIntent(spec, IntentSource.MANUAL)


class VirtualTerminal:
    """What a terminal shows after the App's frames: each update's segments written at their
    cursor moves into a grid of characters (the headless driver writes nothing)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.cells = [[" "] * width for _ in range(height)]

    def apply(self, update: Any, console: Any) -> None:
        x = y = 0
        for segment in update.__rich_console__(console, console.options):
            if segment.control:
                for control in segment.control:
                    if control[0] is ControlType.CURSOR_MOVE_TO:
                        x, y = control[1], control[2]
                continue
            for character in segment.text:
                if character == "\n":
                    x, y = 0, y + 1
                    continue
                if 0 <= y < self.height and 0 <= x < self.width:
                    self.cells[y][x] = character
                x += 1

    def lines(self, region: Region) -> list[str]:
        return [
            "".join(self.cells[y][region.x : region.right])
            for y in range(region.y, min(region.bottom, self.height))
        ]


NUMBER = re.compile(r"-?\d[\d,]*\.\d+")


def first_number(text: str) -> float | None:
    match = NUMBER.search(text)
    return None if match is None else float(match.group().replace(",", ""))


def check_frame(app: CryptoJApp, terminal: VirtualTerminal) -> tuple[float, float] | None:
    """Assert what the terminal shows now is one moment; the (best bid, best ask) shown.

    The ladder is never crossed; the spread line's spread and mid are those of the best bid
    and ask drawn around it; the chart's mid and the mark of the BTC position are that mid
    (to the cent they are shown with). None while no live book is on screen.
    """
    screen = app.main_screen
    ladder = terminal.lines(screen.ladder.content_region)
    spread_at = next((y for y, line in enumerate(ladder) if line.startswith(" spread")), None)
    if spread_at is None or "synced" not in "".join(ladder[:spread_at]):  # a live book
        return None
    best_ask = first_number(ladder[spread_at - 1])
    best_bid = first_number(ladder[spread_at + 1])
    if best_ask is None or best_bid is None:
        return None
    spread_line = ladder[spread_at]
    assert best_bid < best_ask, "crossed ladder:\n" + "\n".join(ladder)
    spread = first_number(spread_line.split("(")[0])
    mid = first_number(spread_line.split("mid")[1])
    assert spread is not None and mid is not None, spread_line
    assert spread == pytest.approx(best_ask - best_bid, abs=0.006), "\n".join(ladder)
    assert mid == pytest.approx((best_ask + best_bid) / 2, abs=0.0006), "\n".join(ladder)
    caption = terminal.lines(screen.chart.content_region)[0]
    chart_mid = first_number(caption)
    assert chart_mid == pytest.approx(mid, abs=0.0051), f"{caption!r} vs {spread_line!r}"
    for line in terminal.lines(screen.positions.content_region):
        cells = line.split()
        if cells and cells[0] == "BTC-USD" and len(cells) >= 4:
            mark = first_number(cells[3])
            assert mark == pytest.approx(mid, abs=0.0051), f"{line!r} vs {spread_line!r}"
    return best_bid, best_ask


async def test_every_frame_under_a_fast_book_shows_one_moment(tmp_path: Path) -> None:
    """The sim streams 2,000 level2 updates a second; every frame the App paints (read back
    from the updates it sends the terminal) shows an uncrossed ladder whose spread line, chart
    mid and position mark agree."""
    with start_sim_process(SimSettings(seed=7, rate=2000.0)) as sim:
        clock = SystemClock()
        engine = demo_engine(sim.endpoints, tmp_path, ["BTC-USD", "ETH-USD"], clock)
        # Nobody types during the test: without an idle rate equal to the active one the App
        # would drop to IDLE_REFRESH_HZ after IDLE_AFTER_S, and a loaded machine would then
        # need minutes for the frames below.
        app = CryptoJApp(
            engine,
            mode="demo",
            products=engine.products,
            clock=clock,
            refresh_hz=10.0,
            idle_refresh_hz=10.0,
            cursor_blink=False,
        )
        app.animation_level = "none"
        terminal = VirtualTerminal(160, 48)
        shown: list[tuple[float, float]] = []
        display = app._display

        def paint(screen: Any, update: Any) -> None:
            if update is not None and screen is app.main_screen:
                terminal.apply(update, app.console)
                touch = check_frame(app, terminal)
                if touch is not None:
                    shown.append(touch)
            display(screen, update)

        app._display = paint  # type: ignore[method-assign]
        async with app.run_test(size=(160, 48)) as pilot:
            # Bounded by frames: the time is only a guard against a hang (the sim process and
            # the engine share two cores with the rest of the suite). A failed frame check
            # ends the App: stop waiting then, run_test raises it.
            await until(pilot, lambda: len(shown) >= 40 or app.return_code is not None, seconds=180)
        assert len(shown) >= 40
    # The book moved under the frames (the test would prove nothing on a still book).
    assert len(set(shown)) >= 10
