"""SVG snapshots of the console at 160x48 and 80x24 (stored in the top-level snapshots/).

Deterministic by construction: the fake engine has a fixed seed and a manual clock (so the
wall clock, data ages and the measured loop lag never move), animations are off, and nothing
on the screen blinks (the App is built with ``cursor_blink=False``). The pull timer keeps firing, but it pulls the same snapshot every time.
Update with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Select

from core.denials import Denial, DenialReason
from core.model import OrderType
from core.snapshot import BookStatus, ConnectionState, EngineSnapshot
from cryptoj_tui.app import CryptoJApp
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory, wait_until

SIZES = [pytest.param((160, 48), id="160x48"), pytest.param((80, 24), id="80x24")]


async def settled(pilot: Pilot[Any]) -> None:
    """Wait until the App has pulled and measured at least once (the lag reads a number)."""
    app = pilot.app
    assert isinstance(app, CryptoJApp)
    await wait_until(pilot, lambda: app.loop_lag_ms is not None)
    # The status line shows the measured lag (a dialog opened next keeps the main
    # screen's last painted frame behind it).
    await wait_until(pilot, lambda: "lag 0.0 ms" in app.main_screen.status_bar.text)
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
        await settled(pilot)  # the status line behind the dialog too

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


ACCOUNT_GAUGES = ("position", "gross_exposure", "daily_loss", "drawdown")


def _unknown_account(engine: FakeEngine) -> None:
    """The engine's snapshots as with --paper/--live offline: nothing of the account known."""
    taken = engine.snapshot

    def snapshot(product_id: str | None = None) -> EngineSnapshot:
        shown = taken(product_id)
        return replace(
            shown,
            balances=None,
            positions=None,
            equity=None,
            daily_pnl=None,
            gauges=tuple(
                replace(gauge, used=None) if gauge.name in ACCOUNT_GAUGES else gauge
                for gauge in shown.gauges
            ),
        )

    engine.snapshot = snapshot  # type: ignore[method-assign]


@pytest.mark.parametrize("size", SIZES)
def test_unknown_account_shows_dashes(
    snap_compare: Any, make_app: AppFactory, engine: FakeEngine, size: tuple[int, int]
) -> None:
    """Offline paper: positions, day P&L, balances and the account's gauges read "—"."""
    _unknown_account(engine)
    assert snap_compare(make_app(mode="paper"), terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES)
def test_order_ticket_decimal_comma(
    snap_compare: Any, make_app: AppFactory, size: tuple[int, int]
) -> None:
    """A sell ticket with "0,5" typed: the parsed value "= 0.5 BTC" beside the size."""

    async def type_comma(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("s")
        await pilot.pause()
        for key in "0,5":
            await pilot.press(key)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=type_comma)


@pytest.mark.parametrize("size", SIZES)
def test_order_ticket_market(
    snap_compare: Any, make_app: AppFactory, size: tuple[int, int]
) -> None:
    """A market ticket: no price, no time in force, no post-only."""

    async def market(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("b")
        await pilot.pause()
        ticket = pilot.app.screen
        ticket.query_one("#type", Select).value = OrderType.MARKET
        for key in "0.01":
            await pilot.press(key)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=market)


@pytest.mark.parametrize("size", SIZES)
def test_order_ticket_denied_reason_wraps(
    snap_compare: Any, make_app: AppFactory, engine: FakeEngine, size: tuple[int, int]
) -> None:
    """A denial's whole reason, with the limit, wrapped in the ticket."""
    engine.deny_with = Denial(
        DenialReason.NOTIONAL_ABOVE_MAX,
        "notional 6,424,300.00 USD > max per order 50,000.00 USD",
    )

    async def big(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("b")
        await pilot.pause()
        for key in "100":
            await pilot.press(key)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=big)


@pytest.mark.parametrize("size", SIZES)
def test_quit_live_dialog(snap_compare: Any, make_app: AppFactory, size: tuple[int, int]) -> None:
    """Quitting LIVE with open orders: three whole buttons and the dialog's own footer."""

    async def quit_live(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("q")
        await pilot.pause()
        await pilot.pause()
        await settled(pilot)  # the status line behind the dialog too

    assert snap_compare(make_app(mode="live"), terminal_size=size, run_before=quit_live)


@pytest.mark.parametrize("size", SIZES)
def test_flatten_dialog(snap_compare: Any, make_app: AppFactory, size: tuple[int, int]) -> None:
    """The flatten dialog lists what it will sell, per product, with the notional."""

    async def flatten(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("F")
        await pilot.pause()
        await pilot.pause()
        await settled(pilot)  # the status line behind the dialog too

    assert snap_compare(make_app(), terminal_size=size, run_before=flatten)


@pytest.mark.parametrize("size", SIZES)
def test_event_log_in_full(
    snap_compare: Any, make_app: AppFactory, engine: FakeEngine, size: tuple[int, int]
) -> None:
    """e: the event log with every line's whole text, wrapped."""
    engine.add_event(
        "warning",
        "cannot reach api.coinbase.com ([Errno -2] Name or service not known); retrying every "
        "2 s, nothing can trade until it answers",
    )

    async def open_events(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("e")
        await pilot.pause()
        await pilot.pause()
        await settled(pilot)  # the status line behind the dialog too

    assert snap_compare(make_app(), terminal_size=size, run_before=open_events)


@pytest.mark.parametrize("size", SIZES)
def test_hidden_panels(snap_compare: Any, make_app: AppFactory, size: tuple[int, int]) -> None:
    """v: balances, risk limits and the chart in a modal (what a narrow terminal hides)."""

    async def open_more(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("v")
        await pilot.pause()
        await pilot.pause()
        await settled(pilot)  # the status line behind the dialog too

    assert snap_compare(make_app(), terminal_size=size, run_before=open_more)


@pytest.mark.parametrize("size", SIZES)
def test_open_orders_with_a_stop_limit(
    snap_compare: Any, make_app: AppFactory, engine: FakeEngine, size: tuple[int, int]
) -> None:
    """A stop-limit's stop price in the orders table; narrow: whole columns dropped."""
    orders = list(engine.snapshot("BTC-USD").open_orders)
    orders[0] = replace(orders[0], order_type="STOP_LIMIT", stop_price=Decimal("64100"))
    engine.set_open_orders(orders)
    assert snap_compare(make_app(), terminal_size=size, run_before=settled)
