"""The open orders table: product, side, type, price, stop, size, filled, status; rows selectable.

A ``DataTable`` costs a full repaint per change, which is fine at the rate orders change
(1-4 Hz) but not per snapshot pull, so it is rebuilt only when ``orders_version`` moves. The
cursor stays on the same order (by id) across rebuilds so a trader's selection does not jump.

Rows coming and going lay nothing out again: the screen gives the table its size (a share of
its row), and a new number of rows changes only what scrolls inside it. Textual would lay the
whole screen out at every such change (its virtual size is a layout reactive), 10-25 ms of the
engine's loop at the first order, a fill, a cancel; here only the table and its scrollbar are
repainted, and a layout is asked for only when the scrollbar appears or goes.

Nothing is cut: each column has a priority, and when the table is too narrow for all of them
whole columns are dropped, least important first (never a header cut to ``ty`` or ``statu``).
The border's subtitle names what is hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Self

from rich.text import Text
from textual import events
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from core.model import ExchangeOrder, Side
from widgets.format import UNKNOWN
from widgets.line_cache import KeptLines

COLUMNS = ("product", "side", "type", "price", "stop", "size", "filled", "status")
# Which columns go first when the table is narrow (lowest kept longest): what the order does
# (side, price, size) before where it stands (status, filled) and which product it is.
PRIORITY: dict[str, int] = {
    "side": 0,
    "price": 1,
    "size": 2,
    "product": 3,
    "type": 4,
    "stop": 5,
    "status": 6,
    "filled": 7,
}
CELL_PADDING = 1  # DataTable's default: one cell each side of every column
# Room kept for the vertical scrollbar (when rows overflow), so one appearing never cuts the
# last column.
SCROLLBAR_ROOM = 1


def _plain(value: object) -> str:
    return UNKNOWN if value is None else str(value)


def order_cells(order: ExchangeOrder) -> tuple[str, ...]:
    """The texts of one order's row, in :data:`COLUMNS` order."""
    price = order.limit_price
    size = order.base_size if order.base_size is not None else order.quote_size
    stop = order.stop_price
    return (
        order.product_id,
        order.side.value,
        order.order_type,
        _plain(None if price is None else format(price, ",f")),
        "" if stop is None else format(stop, ",f"),
        _plain(None if size is None else format(size, ",f")),
        format(order.filled_size, "f"),
        order.status.value + (" (cancelling)" if order.pending_cancel else ""),
    )


def columns_that_fit(rows: Sequence[Sequence[str]], width: int) -> tuple[str, ...]:
    """The columns to show in ``width`` cells: by priority while they fit, in table order.

    A column is as wide as its longest text (title or cell) plus its padding. The stop column
    is left out when no order has a stop price.
    """
    needed: dict[str, int] = {}
    for index, column in enumerate(COLUMNS):
        longest = max([len(column), *(len(row[index]) for row in rows)])
        needed[column] = longest + 2 * CELL_PADDING
    has_stop = any(row[COLUMNS.index("stop")] for row in rows)
    chosen: set[str] = set()
    used = 0
    for column in sorted(COLUMNS, key=PRIORITY.__getitem__):
        if column == "stop" and not has_stop:
            continue
        if used + needed[column] > width:
            break  # lower priorities stay hidden too: the order of dropping is fixed
        chosen.add(column)
        used += needed[column]
    return tuple(column for column in COLUMNS if column in chosen)


def hidden_note(hidden: Sequence[str], width: int) -> str:
    """The border's note of what is hidden, short enough for the border (never cut itself)."""
    if not hidden:
        return ""
    room = width - 6  # the corners and the title's margins
    for note in (
        f"hidden: {', '.join(hidden)} (widen to see)",
        f"hidden: {', '.join(hidden)}",
        f"{len(hidden)} columns hidden",
    ):
        if len(note) <= room:
            return note
    return ""


class OpenOrdersTable(KeptLines, DataTable[str | Text]):
    """The user's open orders. Feed it with :meth:`update_orders`."""

    DEFAULT_CSS = """
    OpenOrdersTable {
        height: 1fr;
        scrollbar-size-vertical: 1;  /* SCROLLBAR_ROOM: the room the columns leave it */
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
    }
    OpenOrdersTable:focus { border: round $accent; }
    """

    # True while the table measures its rows (see _update_dimensions).
    _measuring_rows = False

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(
            name=name, id=id, cursor_type="row", zebra_stripes=False, cell_padding=CELL_PADDING
        )
        self.border_title = "Open orders"
        self._version: int | None = None
        self._orders: tuple[ExchangeOrder, ...] = ()
        self._shown_columns: tuple[str, ...] = ()

    @property
    def shown_columns(self) -> tuple[str, ...]:
        """The column titles shown at the current width."""
        return self._shown_columns

    @property
    def hidden_columns(self) -> tuple[str, ...]:
        rows = [order_cells(order) for order in self._orders]
        has_stop = any(row[COLUMNS.index("stop")] for row in rows)
        return tuple(
            column
            for column in COLUMNS
            if column not in self._shown_columns and (column != "stop" or has_stop)
        )

    def on_mount(self) -> None:
        self._rebuild()

    def on_resize(self, event: events.Resize) -> None:
        self._rebuild()

    @property
    def orders(self) -> tuple[ExchangeOrder, ...]:
        return self._orders

    @property
    def selected_order(self) -> ExchangeOrder | None:
        """The order under the cursor (what cancel-selected will act on)."""
        if not self._orders or not 0 <= self.cursor_row < len(self._orders):
            return None
        return self._orders[self.cursor_row]

    def update_orders(self, orders: Sequence[ExchangeOrder], version: int) -> bool:
        """Show ``orders``; returns whether anything shown changed. No work when ``version``
        is already shown, nor when a new version holds the same orders (the engine moves it
        at a reconcile or a fill of another process's order too): a rebuild repaints the
        whole table, 2-4 ms of the loop."""
        if version == self._version:
            return False
        self._version = version
        orders = tuple(orders)
        if orders == self._orders:
            return False
        selected = self.selected_order
        self._orders = orders
        self._rebuild(selected)
        return True

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # DataTable measures its rows here and sets its virtual (scrollable) size, which asks
        # for a layout of the whole screen. The table's own size is the screen's to give
        # (not auto): the new virtual size moves only the scrollbar, updated here; a
        # scrollbar appearing or going changes the content's width, and asks for its layout
        # itself (show_vertical_scrollbar is a layout reactive, set outside this guard).
        if self.styles.auto_dimensions:
            super()._update_dimensions(new_rows)
            return
        before = self.virtual_size
        self._measuring_rows = True
        try:
            super()._update_dimensions(new_rows)
        finally:
            self._measuring_rows = False
        if self.virtual_size != before:
            self._scroll_update(self.virtual_size)
            self.refresh()

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._measuring_rows:
            layout = False  # see _update_dimensions
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _available_width(self) -> int:
        # Inside the border and any scrollbar shown; room for one kept when none is.
        scrollbar = 0 if self.show_vertical_scrollbar else SCROLLBAR_ROOM
        return max(0, self.scrollable_content_region.width - scrollbar)

    def _rebuild(self, selected: ExchangeOrder | None = None) -> None:
        if not self.is_attached:
            return
        if selected is None:
            selected = self.selected_order
        rows = [order_cells(order) for order in self._orders]
        columns = columns_that_fit(rows, self._available_width())
        if columns != self._shown_columns or not self.columns:
            self.clear(columns=True)
            for column in columns:
                self.add_column(column, key=column)
            self._shown_columns = columns
        else:
            self.clear()
        picks = [COLUMNS.index(column) for column in columns]
        side_index = COLUMNS.index("side")
        for order, cells in zip(self._orders, rows, strict=True):
            style = "green" if order.side is Side.BUY else "red"
            row: list[str | Text] = [
                Text(cells[pick], style=style) if pick == side_index else cells[pick]
                for pick in picks
            ]
            self.add_row(*row, key=order.order_id)
        self.border_subtitle = hidden_note(self.hidden_columns, self.size.width)
        if selected is not None:
            for index, order in enumerate(self._orders):
                if order.order_id == selected.order_id:
                    self.move_cursor(row=index, animate=False)
                    break
