"""The panels a narrow terminal has no room for (balances, risk limits, chart), in a modal.

Below 120 columns the main screen drops the chart, the balances and the risk gauges to keep
the book, tape, orders and positions readable; a line there says so and names this view's key
(``v``). The panels here are the same widgets, fed from the App's newest snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer

from core.snapshot import EngineSnapshot
from cryptoj_tui.screens.backdrop import DimmedModalScreen
from cryptoj_tui.screens.confirm import KILL_IN_SIGHT
from widgets.balances import BalancesPanel
from widgets.price_chart import PriceChart
from widgets.risk_gauges import RiskGauges

REFRESH_S = 0.5
HIDDEN_WHEN_NARROW = "chart, balances, risk limits"


class HiddenPanelsScreen(DimmedModalScreen[None]):
    """Balances, risk limits and the chart, full width. ``escape`` or ``v`` closes it."""

    DEFAULT_CSS = """
    HiddenPanelsScreen {
        align: center middle;
        background: $background 60%;
    }
    HiddenPanelsScreen > VerticalScroll {
        width: 100%;
        height: 1fr;
        background: $surface;
    }
    HiddenPanelsScreen #more-chart { height: 8; }
    HiddenPanelsScreen #more-balances { height: auto; max-height: 12; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="more.close"),
        KILL_IN_SIGHT,
        Binding("v", "close", "Close", show=False, id="more.close_v"),
    ]

    def __init__(self, latest: Callable[[], EngineSnapshot | None]) -> None:
        super().__init__()
        self._latest = latest
        self.balances = BalancesPanel(id="more-balances")
        self.gauges = RiskGauges(id="more-gauges")
        self.chart = PriceChart(id="more-chart")

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield self.gauges
            yield self.balances
            yield self.chart
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # arrows and page keys scroll
        self.refresh_panels()
        self.set_interval(REFRESH_S, self.refresh_panels)

    def refresh_panels(self) -> None:
        snapshot = self._latest()
        if snapshot is None:
            return
        self.gauges.update_gauges(snapshot.gauges)
        self.balances.update_balances(snapshot.balances, snapshot.balances_version)
        self.chart.update_mids(snapshot.mid_history, snapshot.book.price_decimals)
        self.chart.border_title = f"Mid {snapshot.book.product_id}"

    def action_close(self) -> None:
        self.dismiss(None)
