"""The shared painting machinery of the panels: the frame painter draws every line exactly as
Textual would (and stands aside when it would not), and kept panels repaint when refreshed."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from core.model import Side
from core.snapshot import (
    BalanceView,
    BookStatus,
    BookView,
    ConnectionState,
    ConnectionView,
    GaugeView,
    Mode,
    PositionView,
    TapeView,
)
from tests.widgets.helpers import HostApp, make_trade, screen_lines
from widgets.balances import BalancesPanel
from widgets.line_cache import FramedLinesWidget
from widgets.order_book import OrderBookLadder
from widgets.positions import PositionsPanel
from widgets.price_chart import PriceChart
from widgets.risk_gauges import RiskGauges
from widgets.status_bar import StatusBar
from widgets.trades_tape import TradesTape

D = Decimal


def book(version: int, shift: float = 0.0) -> BookView:
    bids = tuple((99.0 - i + shift, 1.0 + i * 0.37 + shift) for i in range(12))
    asks = tuple((101.0 + i + shift, 0.5 + i * 0.21) for i in range(12))
    return BookView("BTC-USD", BookStatus.LIVE, version, bids, asks)


def feed_ladder(ladder: OrderBookLadder, step: int) -> None:
    ladder.update_book(book(step + 1, shift=step * 0.5))


def feed_tape(tape: TradesTape, step: int) -> None:
    trades = tuple(
        make_trade(n, Side.BUY if n % 2 else Side.SELL, 100.0 + n) for n in range(step + 5, 0, -1)
    )
    tape.update_tape(TapeView("BTC-USD", step + 1, trades), price_decimals=2, size_decimals=4)


def feed_chart(chart: PriceChart, step: int) -> None:
    chart.update_chart([100.0 + (i % 7) * 0.5 for i in range(step + 20)], book(step + 1))


def feed_positions(panel: PositionsPanel, step: int) -> None:
    mark = D("64000") + step
    btc = PositionView("BTC-USD", D("0.5"), D("63000"), mark, (mark - 63000) / 2, D(0), D(0))
    eth = PositionView("ETH-USD", D("0"), None, D("3500"), D(0), D("-1.5"), D(0))
    panel.update_positions([btc, eth], equity=D("1000") + step, daily_pnl=D(step))


def feed_gauges(gauges: RiskGauges, step: int) -> None:
    gauges.update_gauges(
        [
            GaugeView("order_rate", D(step % 10), D(10), "orders/1s"),
            GaugeView("position", D(1000 * step), D(5000), "USD", "BTC-USD"),
            GaugeView("drawdown", None, D(500), "USD"),
        ]
    )


def feed_status(bar: StatusBar, step: int) -> None:
    bar.update_status(
        mode=Mode.DEMO,
        product_id="BTC-USD",
        connections=(ConnectionView("market", ConnectionState.CONNECTED, last_message_age_s=0.1),),
        wall_time=1_767_225_600.0 + step,
        loop_lag_ms=0.5 * step,
    )


PANELS: list[tuple[Callable[[], FramedLinesWidget], Callable[[Any, int], None]]] = [
    (OrderBookLadder, feed_ladder),
    (TradesTape, feed_tape),
    (PriceChart, feed_chart),
    (PositionsPanel, feed_positions),
    (RiskGauges, feed_gauges),
    (StatusBar, feed_status),
]
IDS = ["ladder", "tape", "chart", "positions", "gauges", "status"]


def textual_lines(widget: Widget) -> list[Strip]:
    """What Textual's own painting gives for the whole widget (no painter)."""
    return Widget.render_lines(widget, widget.outer_size.region)


@pytest.mark.parametrize(("make", "feed"), PANELS, ids=IDS)
async def test_the_painter_draws_every_line_as_textual_does(
    host: Callable[..., HostApp], make: Callable[[], FramedLinesWidget], feed: Callable[..., None]
) -> None:
    """Frame after frame of changing data: each full line the painter hands the compositor
    (border, padding, content, filters) is segment for segment Textual's."""
    widget = make()
    async with host(widget).run_test(size=(64, 16)) as pilot:
        for step in range(6):
            feed(widget, step)
            await pilot.pause()
            painted = widget.render_lines(widget.outer_size.region)
            assert widget._painter.active
            assert painted == textual_lines(widget), f"step {step}"


@pytest.mark.parametrize(("make", "feed"), PANELS, ids=IDS)
async def test_the_painter_stands_aside_when_textual_paints_otherwise(
    host: Callable[..., HostApp], make: Callable[[], FramedLinesWidget], feed: Callable[..., None]
) -> None:
    """A tint changes every painted cell: the painter sees its lines differ at calibration and
    lets Textual paint, so the screen is still exactly Textual's."""
    widget = make()
    app = host(widget)
    async with app.run_test(size=(64, 16)) as pilot:
        feed(widget, 0)
        await pilot.pause()
        before = screen_lines(app)
        widget.styles.tint = "red 40%"
        await pilot.pause()
        feed(widget, 1)
        await pilot.pause()
        painted = widget.render_lines(widget.outer_size.region)
        assert not widget._painter.active
        assert painted == textual_lines(widget)
        assert screen_lines(app) != before  # the new data is on screen


async def test_a_partly_visible_widget_gets_the_columns_asked_for(
    host: Callable[..., HostApp],
) -> None:
    ladder = OrderBookLadder()
    async with host(ladder).run_test(size=(60, 16)) as pilot:
        feed_ladder(ladder, 0)
        await pilot.pause()
        crop = Region(3, 2, 20, 5)
        assert ladder.render_lines(crop) == Widget.render_lines(ladder, crop)


async def test_a_kept_panel_repaints_when_its_data_changes(
    host: Callable[..., HostApp],
) -> None:
    panel = BalancesPanel()
    app = host(panel)
    async with app.run_test(size=(60, 10)) as pilot:
        panel.update_balances([BalanceView("USD", D("1000"), D("0"))], 1)
        await pilot.pause()
        assert any("1,000.00" in line for line in screen_lines(app))
        region = panel.outer_size.region
        assert panel.render_lines(region) == panel.render_lines(region)
        panel.update_balances([BalanceView("USD", D("2500"), D("0"))], 2)
        await pilot.pause()
        shown = screen_lines(app)
        assert any("2,500.00" in line for line in shown)
        assert not any("1,000.00" in line for line in shown)


async def test_a_kept_panel_asks_textual_only_after_a_refresh(
    host: Callable[..., HostApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = BalancesPanel()
    async with host(panel).run_test(size=(60, 10)) as pilot:
        panel.update_balances([BalanceView("USD", D("1000"), D("0"))], 1)
        await pilot.pause()
        asked: list[Region] = []
        textual = Widget.render_lines

        def counted(widget: Widget, crop: Region) -> list[Strip]:
            if widget is panel:
                asked.append(crop)
            return textual(widget, crop)

        monkeypatch.setattr(Widget, "render_lines", counted)
        region = panel.outer_size.region
        first = panel.render_lines(region)
        assert panel.render_lines(region) == first
        assert asked == []  # nothing changed since the last paint: kept lines
        panel.refresh()
        assert panel.render_lines(region) == first
        assert asked == [region]


def grow_positions(panel: PositionsPanel, rows: int) -> None:
    mark = D("64000")
    positions = [
        PositionView(f"P{n}-USD", D("0.5"), D("63000"), mark, D(500), D(0), D(0))
        for n in range(rows)
    ]
    panel.update_positions(positions, equity=D("1000"), daily_pnl=D(0))


def grow_balances(panel: BalancesPanel, rows: int) -> None:
    panel.update_balances(
        [BalanceView(f"C{n}", D("1000"), D("0")) for n in range(rows)], version=rows
    )


@pytest.mark.parametrize(
    ("make", "grow"),
    [(PositionsPanel, grow_positions), (BalancesPanel, grow_balances)],
    ids=["framed lines (positions)", "kept lines (balances)"],
)
async def test_a_panel_that_grows_costs_one_layout_pass_not_two(
    host: Callable[..., HostApp],
    make: Callable[[], Widget],
    grow: Callable[[Any, int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Textual asks for a second layout pass of the whole screen when a widget's virtual size
    changed in one (for its scrollbars); a panel that never scrolls needs only the first."""
    panel = make()
    app = host(panel)
    async with app.run_test(size=(100, 30)) as pilot:
        grow(panel, 1)
        for _ in range(3):
            await pilot.pause()
        height = panel.size.height
        passes: list[int] = []
        layout = type(app.screen)._refresh_layout

        def counted(screen: Any, *args: Any, **kwargs: Any) -> None:
            passes.append(panel.size.height)
            layout(screen, *args, **kwargs)

        monkeypatch.setattr(type(app.screen), "_refresh_layout", counted)
        grow(panel, 4)  # more rows: the panel's height follows, in a layout pass
        for _ in range(5):
            await pilot.pause()
        assert panel.size.height > height
        assert len(passes) == 1
