"""The open orders table: product, side, type, price, size, filled, status; rows selectable.

A ``DataTable`` costs a full repaint per change, which is fine at the rate orders change
(1-4 Hz) but not per snapshot pull, so it is rebuilt only when ``orders_version`` moves. The
cursor stays on the same order (by id) across rebuilds so a trader's selection does not jump.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from core.model import ExchangeOrder, Side
from widgets.format import UNKNOWN

COLUMNS = ("product", "side", "type", "price", "size", "filled", "status")


def _plain(value: object) -> str:
    return UNKNOWN if value is None else str(value)


def order_cells(order: ExchangeOrder) -> tuple[str, ...]:
    """The texts of one order's row, in :data:`COLUMNS` order."""
    price = order.limit_price
    size = order.base_size if order.base_size is not None else order.quote_size
    return (
        order.product_id,
        order.side.value,
        order.order_type,
        _plain(None if price is None else format(price, ",f")),
        _plain(None if size is None else format(size, ",f")),
        format(order.filled_size, "f"),
        order.status.value + (" (cancelling)" if order.pending_cancel else ""),
    )


class OpenOrdersTable(DataTable[str | Text]):
    """The user's open orders. Feed it with :meth:`update_orders`."""

    DEFAULT_CSS = """
    OpenOrdersTable {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    OpenOrdersTable:focus { border: round $accent; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id, cursor_type="row", zebra_stripes=False)
        self.border_title = "Open orders"
        self._version: int | None = None
        self._orders: tuple[ExchangeOrder, ...] = ()

    def _ensure_columns(self) -> None:
        # Added on first use rather than on mount: the App may hand over orders before the
        # table is mounted (measuring a column needs the running app, not the mount).
        if not self.columns:
            for column in COLUMNS:
                self.add_column(column, key=column)

    def on_mount(self) -> None:
        self._ensure_columns()

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
        """Show ``orders``; no work when ``version`` is already shown."""
        if version == self._version:
            return False
        self._ensure_columns()
        selected = self.selected_order
        self._version = version
        self._orders = tuple(orders)
        self.clear()
        for order in self._orders:
            cells = list(order_cells(order))
            style = "green" if order.side is Side.BUY else "red"
            row: list[str | Text] = [cells[0], Text(cells[1], style=style), *cells[2:]]
            self.add_row(*row, key=order.order_id)
        if selected is not None:
            for index, order in enumerate(self._orders):
                if order.order_id == selected.order_id:
                    self.move_cursor(row=index, animate=False)
                    break
        return True
