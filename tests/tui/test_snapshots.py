"""SVG snapshots of the console at 160x48 and 80x24 (stored in the top-level snapshots/).

Deterministic by construction: the fake engine has a fixed seed and a manual clock (so the
wall clock, data ages and the measured loop lag never move), animations are off, and nothing
on the screen blinks (the App is built with ``cursor_blink=False``). The pull timer keeps firing, but it pulls the same snapshot every time.
Update with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from core.snapshot import BookStatus, ConnectionState
from cryptoj_tui.app import CryptoJApp
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory, wait_until

SIZES = [pytest.param((160, 48), id="160x48"), pytest.param((80, 24), id="80x24")]


async def settled(pilot: Pilot[Any]) -> None:
    """Wait until the App has pulled and measured at least once (the lag reads a number)."""
    app = pilot.app
    assert isinstance(app, CryptoJApp)
    await wait_until(pilot, lambda: app.loop_lag_ms is not None)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_demo(snap_compare: Any, make_app: AppFactory, size: tuple[int, int]) -> None:
    """The demo main screen: book, chart, tape, balances, orders, events, footer."""
    assert snap_compare(make_app(), terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES)
def test_stale_book_live_mode(
    snap_compare: Any, make_app: AppFactory, engine: FakeEngine, size: tuple[int, int]
) -> None:
    """LIVE badge, a reconnecting user stream, and a STALE book with its reason."""
    engine.set_book_status("BTC-USD", BookStatus.STALE, "sequence gap 1041 -> 1043")
    engine.set_connection("user", ConnectionState.RECONNECTING, attempt=3)
    assert snap_compare(make_app(mode="live"), terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare: Any, make_app: AppFactory, size: tuple[int, int]) -> None:
    """The help screen over the main screen, listing every key."""

    async def open_help(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SIZES)
def test_order_ticket(snap_compare: Any, make_app: AppFactory, size: tuple[int, int]) -> None:
    """The buy ticket over the main screen: a limit order at the bid, the gate allows it."""

    async def open_ticket(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("b")
        await pilot.pause()
        for key in "0.0100":
            await pilot.press(key)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=open_ticket)


@pytest.mark.parametrize("size", SIZES)
def test_halted_state(
    snap_compare: Any, make_app: AppFactory, engine: FakeEngine, size: tuple[int, int]
) -> None:
    """After the kill switch: HALTED in the status line and the banner, orders cancelled."""

    async def kill(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: not engine.open_orders)
        app = pilot.app
        assert isinstance(app, CryptoJApp)
        app.pull_snapshot()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=kill)
