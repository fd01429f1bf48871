"""The main screen: status bar, trading banner, book ladder, chart, tape, balances, orders,
positions, events and risk gauges, with the trading keys.

The screen does not know the engine. The App hands it each pulled :class:`EngineSnapshot`
(:meth:`MainScreen.show_snapshot`), and the screen gives each panel its part; every panel
decides for itself, from the part's version, whether there is anything to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.snapshot import EngineSnapshot
from cryptoj_tui.screens.hidden_panels import HIDDEN_WHEN_NARROW
from widgets.balances import BalancesPanel
from widgets.event_log import EventLog
from widgets.open_orders import OpenOrdersTable
from widgets.order_book import OrderBookLadder
from widgets.positions import PositionsPanel
from widgets.price_chart import PriceChart
from widgets.risk_gauges import RiskGauges
from widgets.status_bar import StatusBar
from widgets.trades_tape import TradesTape
from widgets.trading_banner import TradingBanner

PICK_PRODUCT = "Pick product by number"


def _product_number_bindings() -> list[BindingType]:
    return [
        Binding(
            str(number),
            f"app.select_product({number - 1})",
            PICK_PRODUCT,
            show=False,
            id=f"product.pick_{number}",
        )
        for number in range(1, 10)
    ]


# The trading keys act on the main screen only: a ticket or a confirmation open on top has
# its own keys. The kill switch is the exception, an App priority binding (see app.py).
TRADING_BINDINGS: list[BindingType] = [
    Binding(
        "b", "app.order_ticket('BUY')", "Buy", tooltip="Buy: open the order ticket", id="trade.buy"
    ),
    Binding(
        "s",
        "app.order_ticket('SELL')",
        "Sell",
        tooltip="Sell: open the order ticket",
        id="trade.sell",
    ),
    Binding(
        "c",
        "app.cancel_selected",
        "Cancel",
        tooltip="Cancel the selected open order",
        id="trade.cancel",
    ),
    Binding(
        "C",
        "app.cancel_all",
        "Cancel all",
        tooltip="Cancel every open order of the selected product",
        show=False,
        id="trade.cancel_all",
    ),
    Binding(
        "F",
        "app.flatten",
        "Flatten",
        tooltip="Flatten: sell what is held, reduce-only and price-protected (asks first)",
        id="trade.flatten",
    ),
    Binding(
        "R",
        "app.resume",
        "Resume",
        tooltip="Resume trading after a halt (type RESUME)",
        show=False,
        id="trade.resume",
    ),
    Binding(
        "t",
        "app.toggle_strategy",
        "Strategy",
        tooltip="Pause / resume the strategy",
        show=False,
        id="trade.strategy",
    ),
]


class MainScreen(Screen[None]):
    """The market and trading screen."""

    # Below 120 columns the chart and the balances are hidden (see app.tcss). Textual types
    # these as plain attributes, so a ClassVar annotation would not type-check.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]  # noqa: RUF012

    # On this screen tab cycles products rather than focus: the only focusable panel is the
    # orders table, so focus traversal would be a no-op anyway.
    BINDINGS: ClassVar[list[BindingType]] = [
        *TRADING_BINDINGS,
        Binding("p", "app.next_product", "Product", tooltip="Next product", id="product.next"),
        Binding("tab", "app.next_product", "Next product", show=False, id="product.next_tab"),
        Binding("P", "app.previous_product", "Previous product", show=False, id="product.previous"),
        Binding(
            "shift+tab",
            "app.previous_product",
            "Previous product",
            show=False,
            id="product.previous_tab",
        ),
        *_product_number_bindings(),
        Binding(
            "e",
            "app.show_events",
            "Events",
            tooltip="The event log in full: every line's whole text",
            show=False,  # named on the log's border; the footer's room is for trading keys
            id="events.full",
        ),
        Binding(
            "v",
            "app.show_hidden_panels",
            "More",
            tooltip="Balances, risk limits and chart (hidden below 120 columns)",
            show=False,  # named by the hint line that narrow terminals show
            id="panels.more",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_bar = StatusBar(id="status")
        self.banner = TradingBanner(id="banner")
        self.ladder = OrderBookLadder(id="ladder")
        self.chart = PriceChart(id="chart")
        self.tape = TradesTape(id="tape")
        self.balances = BalancesPanel(id="balances")
        self.orders = OpenOrdersTable(id="orders")
        self.positions = PositionsPanel(id="positions")
        self.events = EventLog(id="events")
        self.gauges = RiskGauges(id="gauges")
        self._orders_key: tuple[str, int] | None = None
        self._shown_product: str | None = None
        # Set while a product switch is drawn: the rate-limited chart and positions draw at once.
        self._switched = False
        # The status line's own inputs, kept for when its part of the spread comes round.
        self._status: tuple[str, str, float | None, str | None] = ("", "", None, None)
        # What each frame of a spread snapshot shows, in order (see show_snapshot).
        self._parts: tuple[Callable[[EngineSnapshot, float | None], None], ...] = (
            self._show_book,
            self._show_bids,
            self._show_status,
            self._show_tape,
            self._show_chart,
            self._show_account,
        )
        # The newest snapshot (and its ``now``) while a spread is under way, and its next call.
        self._spread: tuple[EngineSnapshot, float | None] | None = None
        self._spread_handle: asyncio.TimerHandle | None = None

    def compose(self) -> ComposeResult:
        yield self.status_bar
        yield self.banner
        with Horizontal(id="body"):
            yield self.ladder
            with Vertical(id="right"):
                with Horizontal(id="market-row"):
                    yield self.chart
                    yield self.tape
                with Horizontal(id="account-row"):
                    yield self.balances
                    yield self.orders
                yield self.positions
        # Shown below 120 columns only (app.tcss): what is hidden and how to see it.
        yield Static(
            f"hidden at this width: {HIDDEN_WHEN_NARROW} · press v to see them",
            id="hidden-hint",
        )
        with Horizontal(id="bottom-row"):
            yield self.events
            yield self.gauges
        # ctrl+p (the palette) is in the help; the footer's room goes to the trading keys.
        yield Footer(show_command_palette=False)

    def show_snapshot(
        self,
        snapshot: EngineSnapshot,
        *,
        mode: str,
        product_id: str,
        loop_lag_ms: float | None,
        engine_error: str | None,
        now: float | None = None,
        spread_s: float | None = None,
    ) -> None:
        """Give each panel its part of ``snapshot`` (panels skip unchanged parts).

        ``now`` (monotonic seconds) lets slow-changing panels rate-limit their repaints.
        ``spread_s`` spreads the work over several frames ``spread_s`` apart: the book's asks
        now, then its bids, the status line and the banner, the tape and the events, the
        chart and the positions, and the balances, the orders and the gauges. Textual
        repaints everything that changed since its last frame in one go, on the loop the
        engine shares, so a part of the screen per frame cuts the longest stall the engine
        sees. None: everything now (after a key, a product switch).
        """
        self._status = (mode, product_id, loop_lag_ms, engine_error)
        switched = snapshot.book.product_id != self._shown_product
        self._shown_product = snapshot.book.product_id
        if spread_s is None or switched:
            # A product switch is drawn whole at once: half a screen of the old one is wrong.
            self._cancel_spread()
            self._switched = switched
            for part in self._parts:
                part(snapshot, now)
            self._switched = False
            return
        self._show_book(snapshot, now, bids_later=True)
        self._spread = (snapshot, now)
        if self._spread_handle is None:
            self._schedule_part(1, spread_s)

    @property
    def spreading(self) -> bool:
        """Whether a snapshot is still being shown part by part (some panels lag behind)."""
        return self._spread is not None

    def _schedule_part(self, index: int, spread_s: float) -> None:
        self._spread_handle = asyncio.get_running_loop().call_later(
            spread_s, self._show_part, index, spread_s
        )

    def _show_part(self, index: int, spread_s: float) -> None:
        self._spread_handle = None
        if self._spread is None or not self.is_attached:
            return
        snapshot, now = self._spread  # the newest pulled: a slow chain never shows old data
        self._parts[index](snapshot, now)
        if index + 1 < len(self._parts):
            self._schedule_part(index + 1, spread_s)
        else:
            self._spread = None

    def _cancel_spread(self) -> None:
        self._spread = None
        if self._spread_handle is not None:
            self._spread_handle.cancel()
            self._spread_handle = None

    def on_unmount(self) -> None:
        self._cancel_spread()

    def _show_book(
        self, snapshot: EngineSnapshot, now: float | None, *, bids_later: bool = False
    ) -> None:
        # Spread, the ladder's asks are drawn now and its bids a frame later: the ladder is
        # the costliest panel to repaint, half of it is a frame's worth.
        book = snapshot.book
        self.ladder.update_book(book, bids_later=bids_later)
        orders_key = (book.product_id, snapshot.orders_version)
        if orders_key != self._orders_key:
            self._orders_key = orders_key
            self.ladder.set_own_order_prices(
                frozenset(
                    float(order.limit_price)
                    for order in snapshot.open_orders
                    if order.product_id == book.product_id
                    and order.limit_price is not None
                    and order.status.is_open
                )
            )

    def _show_status(self, snapshot: EngineSnapshot, now: float | None) -> None:
        mode, product_id, loop_lag_ms, engine_error = self._status
        self.status_bar.update_status(
            mode=mode,
            product_id=product_id,
            connections=snapshot.connections,
            wall_time=snapshot.wall_time,
            loop_lag_ms=loop_lag_ms,
            engine_error=engine_error,
            trading=snapshot.trading,
            strategy=snapshot.strategy,
        )
        self.banner.update_trading(snapshot.trading)

    def _show_bids(self, snapshot: EngineSnapshot, now: float | None) -> None:
        self.ladder.repaint_bids()

    def _show_tape(self, snapshot: EngineSnapshot, now: float | None) -> None:
        book = snapshot.book
        self.tape.update_tape(
            snapshot.tape, price_decimals=book.price_decimals, size_decimals=book.size_decimals
        )
        self.events.update_events(snapshot.events, snapshot.events_version)

    def _show_chart(self, snapshot: EngineSnapshot, now: float | None) -> None:
        # The chart (once a second) is the costliest redraw, and the positions (twice a
        # second) would coincide with the gauges, rate-limited alike: each gets its frame.
        self.chart.update_mids(
            snapshot.mid_history,
            snapshot.book.price_decimals,
            now=None if self._switched else now,
        )
        self.positions.update_positions(
            snapshot.positions,
            equity=snapshot.equity,
            daily_pnl=snapshot.daily_pnl,
            now=None if self._switched else now,
        )

    def _show_account(self, snapshot: EngineSnapshot, now: float | None) -> None:
        self.balances.update_balances(snapshot.balances, snapshot.balances_version)
        self.orders.update_orders(snapshot.open_orders, snapshot.orders_version)
        self.gauges.update_gauges(snapshot.gauges, now=now)
