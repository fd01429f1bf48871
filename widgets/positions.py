"""The positions panel: size, average entry, mark, unrealized and realized P&L per product.

Positions move with fills and marks (a few times a second at most), so a small Rich table in a
``Static`` is enough; it is rebuilt only when the texts it would show change. The border's
subtitle carries equity and the day's P&L. A value that is not known (no mark yet, so no
unrealized P&L) is "—", never 0. Below :data:`COMPACT_WIDTH` cells only product, size and
unrealized P&L are shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from core.snapshot import PositionView
from widgets.format import UNKNOWN, format_decimal

COMPACT_WIDTH = 60
COLUMNS = ("product", "size", "avg entry", "mark", "unrl P&L", "rlzd P&L")
COMPACT_COLUMNS = ("product", "size", "unrl P&L")
PRICE_DECIMALS = 2
NO_POSITIONS = "no positions"


def format_size(size: Decimal) -> str:
    """A base size as plain digits without trailing zeros ("0.4125", "-3", "0")."""
    if size == 0:
        return "0"
    text = format(size.normalize(), ",f")
    return text


def format_pnl(value: Decimal | None) -> str:
    """P&L with a sign ("+12.30", "-4.10", "0.00"); "—" when not known."""
    if value is None:
        return UNKNOWN
    text = format_decimal(value, PRICE_DECIMALS)
    return f"+{text}" if value > 0 else text


def position_cells(position: PositionView) -> tuple[str, ...]:
    """The texts of one position's row, in :data:`COLUMNS` order."""
    return (
        position.product_id,
        format_size(position.size),
        format_decimal(position.avg_entry, PRICE_DECIMALS),
        format_decimal(position.mark, PRICE_DECIMALS),
        format_pnl(position.unrealized_pnl),
        format_pnl(position.realized_pnl),
    )


def summary_text(equity: Decimal | None, daily_pnl: Decimal | None) -> str:
    """ "equity 125,000.00 · day +12.30" ("—" for what is not known)."""
    return f"equity {format_decimal(equity, PRICE_DECIMALS)} · day {format_pnl(daily_pnl)}"


def _pnl_style(text: str) -> str:
    if text.startswith("+"):
        return "green"
    if text.startswith("-"):
        return "red"
    return ""


class PositionsPanel(Static):
    """Positions and P&L. Feed it with :meth:`update_positions`."""

    DEFAULT_CSS = """
    PositionsPanel {
        height: auto;
        min-height: 4;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        padding: 0;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(NO_POSITIONS, name=name, id=id)
        self.border_title = "Positions"
        self.border_subtitle = summary_text(None, None)
        self._rows: tuple[tuple[str, ...], ...] = ()
        self._flat: tuple[bool, ...] = ()
        self._compact: bool | None = None
        self._drawn: tuple[object, ...] | None = None

    @property
    def rows(self) -> tuple[tuple[str, ...], ...]:
        """The full texts of every row (all columns, whatever the width shows)."""
        return self._rows

    @property
    def compact(self) -> bool:
        return self.size.width < COMPACT_WIDTH

    def update_positions(
        self,
        positions: Sequence[PositionView],
        *,
        equity: Decimal | None,
        daily_pnl: Decimal | None,
    ) -> bool:
        """Show ``positions``; returns whether the panel changed (and so repaints)."""
        rows = tuple(position_cells(position) for position in positions)
        flat = tuple(position.size == 0 for position in positions)
        summary = summary_text(equity, daily_pnl)
        key = (rows, flat, summary, self.compact)
        if key == self._drawn:
            return False
        self._drawn = key
        self._rows, self._flat = rows, flat
        self.border_subtitle = summary
        self._draw()
        return True

    def on_resize(self) -> None:
        if self._drawn is not None and self._drawn[3] != self.compact:
            self._drawn = (*self._drawn[:3], self.compact)
            self._draw()

    def _draw(self) -> None:
        if not self._rows:
            self.update(NO_POSITIONS)
            return
        compact = self.compact
        columns = COMPACT_COLUMNS if compact else COLUMNS
        picks = [COLUMNS.index(column) for column in columns]
        table = Table(box=None, expand=False, pad_edge=False, padding=(0, 1))
        for index, column in enumerate(columns):
            table.add_column(
                column, justify="left" if index == 0 else "right", no_wrap=True, style=None
            )
        for row, flat in zip(self._rows, self._flat, strict=True):
            cells: list[Text] = []
            for pick in picks:
                text = row[pick]
                style = _pnl_style(text) if COLUMNS[pick].endswith("P&L") else ""
                if flat and pick in (1, 2, 3):
                    style = "dim"
                cells.append(Text(text, style=style))
            cells[0].stylize("bold")
            table.add_row(*cells)
        self.update(table)
