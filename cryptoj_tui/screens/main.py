"""The main screen: status bar, trading banner, book ladder, chart, tape, balances, orders,
positions, events and risk gauges, with the trading keys.

The screen does not know the engine. The App hands it each pulled :class:`EngineSnapshot`
(:meth:`MainScreen.show_snapshot`), and the screen gives every panel its part of that one
snapshot at once; a panel whose part did not change (same version) does nothing. The App
reaches the panels only through the screen (:meth:`MainScreen.log_event`,
:attr:`MainScreen.selected_order`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.model import ExchangeOrder
from core.snapshot import EngineSnapshot, EventView, Mode
from cryptoj_tui.screens.hidden_panels import HIDDEN_WHEN_NARROW
from cryptoj_tui.screens.order_ticket import parse_ticket_styles
from widgets.balances import BalancesPanel
from widgets.event_log import EventLog
from widgets.line_cache import KeptLines
from widgets.open_orders import OpenOrdersTable
from widgets.order_book import OrderBookLadder
from widgets.positions import PositionsPanel
from widgets.price_chart import PriceChart
from widgets.risk_gauges import RiskGauges
from widgets.status_bar import StatusBar
from widgets.trades_tape import TradesTape
from widgets.trading_banner import TradingBanner

PICK_PRODUCT = "Pick product by number"


class Row(KeptLines, Horizontal):
    """A horizontal container that hands back its painted lines while nothing changed them
    (Textual repaints every widget under a frame's changed area, and a fast book changes
    nearly the whole screen at every frame)."""


class Column(KeptLines, Vertical):
    """A vertical container, kept like :class:`Row`."""


class KeysFooter(KeptLines, Footer):
    """The footer, kept like :class:`Row` (its keys change with the screen, not the market).

    Textual's footer rebuilds its keys (a layout of the whole screen) whenever the screen's
    bindings are refreshed, e.g. when focus moves, even when the keys it shows stay the same
    (a focused table brings only hidden ones). This one rebuilds only when they changed.
    """

    _shown_keys: tuple[tuple[str, str, str, bool, str], ...] | None = None

    def compose(self) -> ComposeResult:
        # Textual's footer stays empty until the screen's bindings are first refreshed, then
        # builds its keys in a layout pass of its own: a few frames after the first book was
        # drawn, a stall of 10-20 ms while the first prices come in. Built here, its keys are
        # laid out with the rest of the screen in its first layout pass.
        if not self._bindings_ready:
            self._shown_keys = shown_keys(self.screen)
            self.set_reactive(Footer._bindings_ready, True)
        yield from super().compose()

    def bindings_changed(self, screen: Screen[object]) -> None:
        shown = shown_keys(screen)
        if shown == self._shown_keys:
            return
        self._shown_keys = shown
        super().bindings_changed(screen)


def shown_keys(screen: Screen[object]) -> tuple[tuple[str, str, str, bool, str], ...]:
    """What a footer shows of ``screen``'s bindings (each key, its label, whether enabled)."""
    return tuple(
        (key, binding.key, binding.description, enabled, tooltip)
        for key, (_, binding, enabled, tooltip) in screen.active_bindings.items()
        if binding.show
    )


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

    def __init__(self, products: Sequence[str] = ()) -> None:
        """``products``: the configured products. The positions panel's height holds a row
        for each from the start, so the account's arrival (or a first fill) lays nothing out
        again."""
        super().__init__()
        self.status_bar = StatusBar(id="status")
        self.banner = TradingBanner(id="banner")
        self.ladder = OrderBookLadder(id="ladder")
        self.chart = PriceChart(id="chart")
        self.tape = TradesTape(id="tape")
        self.balances = BalancesPanel(id="balances")
        self.orders = OpenOrdersTable(id="orders")
        self.positions = PositionsPanel(id="positions", reserved_rows=len(products))
        self.events = EventLog(id="events")
        self.gauges = RiskGauges(id="gauges")
        self._orders_key: tuple[str, int] | None = None
        # What the positions panel last got: it formats its cells only when this moved.
        self._positions_key: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield self.status_bar
        yield self.banner
        with Row(id="body"):
            yield self.ladder
            with Column(id="right"):
                with Row(id="market-row"):
                    yield self.chart
                    yield self.tape
                with Row(id="account-row"):
                    yield self.balances
                    yield self.orders
                yield self.positions
        # Shown below 120 columns only (app.tcss): what is hidden and how to see it.
        yield Static(
            f"hidden at this width: {HIDDEN_WHEN_NARROW} · press v to see them",
            id="hidden-hint",
        )
        with Row(id="bottom-row"):
            yield self.events
            yield self.gauges
        # ctrl+p (the palette) is in the help; the footer's room goes to the trading keys.
        yield KeysFooter(show_command_palette=False)

    def on_mount(self) -> None:
        # After the first frame, while the engine connects: the order ticket's styles, parsed
        # now a class a turn, are not parsed while the book streams (the App builds the
        # ticket ahead once the first book is shown; see order_ticket.parse_ticket_styles).
        self.call_after_refresh(self._parse_ticket_styles)

    def _parse_ticket_styles(self) -> None:
        self.run_worker(
            parse_ticket_styles(self.app.stylesheet),
            name="ticket styles",
            group="styles",
            exit_on_error=False,
        )

    # -- what the App asks of the screen ------------------------------------------------------

    @property
    def selected_order(self) -> ExchangeOrder | None:
        """The open order highlighted in the orders table (None if there is none)."""
        return self.orders.selected_order

    def log_event(self, event: EventView) -> None:
        """Add one of the App's own lines to the event log (the engine's come by snapshot)."""
        self.events.add_event(event)

    def show_snapshot(
        self,
        snapshot: EngineSnapshot,
        *,
        mode: Mode,
        product_id: str,
        loop_lag_ms: float | None,
        engine_error: str | None,
    ) -> None:
        """Give every panel its part of ``snapshot``, now: one frame shows one moment.

        All panels are handed the same snapshot in one call, so the next frame Textual paints
        shows the ladder, the spread line, the chart's mid, the positions' marks and the
        status line from one engine version (none is drawn over several frames or rate-limited
        to an older snapshot). Each frame is kept cheap instead: a panel whose part did not
        change does nothing, and the busy panels (ladder, tape, chart) are Line-API widgets
        that repaint only their changed lines from cached strips, without a relayout.
        """
        book = snapshot.book
        self.ladder.update_book(book)
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
        self.tape.update_tape(
            snapshot.tape, price_decimals=book.price_decimals, size_decimals=book.size_decimals
        )
        self.events.update_events(snapshot.events, snapshot.events_version)
        self.chart.update_chart(snapshot.mid_history, book)
        positions_key = (
            snapshot.positions_version,
            snapshot.positions,
            snapshot.equity,
            snapshot.daily_pnl,
        )
        if positions_key != self._positions_key:
            self._positions_key = positions_key
            self.positions.update_positions(
                snapshot.positions, equity=snapshot.equity, daily_pnl=snapshot.daily_pnl
            )
        self.balances.update_balances(snapshot.balances, snapshot.balances_version)
        self.orders.update_orders(snapshot.open_orders, snapshot.orders_version)
        self.gauges.update_gauges(snapshot.gauges)
