"""The main screen's panels keep their places while trading: once the first live book is
shown, the account arriving (positions, balances) and orders coming and going lay nothing
out again.

A layout pass of the whole screen costs 10-25 ms of the loop the engine shares with the UI
(issue 11: loop lag max <= 20 ms); each panel is sized when the screen is mounted from what is
known then (a positions row per configured product), and the open orders scroll inside
their table. Counted here as the frame profiler counts them (``Screen._refresh_layout``), with
no clock involved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.geometry import Region

from core.snapshot import BookStatus, EngineSnapshot
from cryptoj_tui.app import CryptoJApp
from cryptoj_tui.screens.main import MainScreen
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory, wait_until
from tests.widgets.helpers import count_layout_passes, screen_lines
from widgets.positions import POSITIONS_UNKNOWN

NOT_LOADED = POSITIONS_UNKNOWN.split(" yet")[0]  # "positions — (account not loaded"


class AccountSwitch:
    """The fake engine's snapshots with the account unknown (as at start-up, before the
    first balances) until :attr:`known` is set."""

    def __init__(self, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.known = False
        taken = engine.snapshot

        def snapshot(product_id: str) -> EngineSnapshot:
            shown = taken(product_id)
            if self.known:
                return shown
            return replace(shown, balances=None, positions=None, equity=None, daily_pnl=None)

        monkeypatch.setattr(engine, "snapshot", snapshot)


def panel_regions(screen: MainScreen) -> dict[str, Region]:
    panels = (
        screen.ladder,
        screen.chart,
        screen.tape,
        screen.balances,
        screen.orders,
        screen.positions,
        screen.events,
        screen.gauges,
    )
    return {str(panel.id): panel.region for panel in panels}


async def shown(app: CryptoJApp, pilot: Any) -> None:
    """Pull now and let the frame be painted."""
    app.pull_snapshot()
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize(
    "size", [(160, 48), (120, 40), (80, 24)], ids=lambda s: "x".join(map(str, s))
)
async def test_the_account_and_orders_arriving_lay_nothing_out(
    make_app: AppFactory,
    engine: FakeEngine,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    account = AccountSwitch(engine, monkeypatch)
    orders = engine.open_orders
    assert len(orders) >= 2
    engine.set_open_orders([])
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = app.main_screen
        await wait_until(
            pilot,
            lambda: screen.ladder.book is not None and screen.ladder.book.status is BookStatus.LIVE,
        )
        await shown(app, pilot)
        assert NOT_LOADED in "\n".join(screen_lines(app))  # wrapped when narrow
        # The orders table's room for rows (its titles take a line): this test adds no more
        # orders than that, so no scrollbar comes (that one does change the inside's width).
        room = screen.orders.scrollable_content_region.height - 1
        placed = orders[: max(1, min(len(orders), room))]
        regions = panel_regions(screen)
        passes = count_layout_passes(monkeypatch)

        account.known = True  # balances and positions arrive
        await shown(app, pilot)
        lines = "\n".join(screen_lines(app))
        for product_id in engine.products:
            assert product_id in lines  # every position row shown, none cut off
        assert NOT_LOADED not in lines
        assert screen.balances.rows is not None
        for count in range(1, len(placed) + 1):  # the first order, then more
            engine.set_open_orders(placed[:count])
            await shown(app, pilot)
            assert screen.orders.row_count == count
        engine.set_open_orders(placed[1:])  # one cancelled
        await shown(app, pilot)
        engine.set_open_orders([])
        await shown(app, pilot)
        assert screen.orders.row_count == 0

        assert passes == []
        assert panel_regions(screen) == regions
