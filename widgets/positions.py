"""The positions panel: size, average entry, mark, unrealized and realized P&L per product.

Positions move with fills and marks (a few times a second at most), so a small Rich table in a
``Static`` is enough; it is rebuilt only when the texts it would show change. The border's
subtitle carries equity and the day's P&L. A value that is not known (no mark yet, so no
unrealized P&L) is "—", never 0; before the account is known at all (offline, loading) the
panel says so rather than "no positions". Below :data:`COMPACT_WIDTH` cells only product, size and
unrealized P&L are shown.

Marks move the unrealized P&L at every snapshot; a Rich table costs milliseconds to draw on
the loop the engine shares, so while only marks move the panel redraws at most every
``min_interval_s``. A change of size or of the rows is drawn at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.text import Text
from textual.app import RenderResult
from textual.widgets import Static

from core.snapshot import PositionView
from widgets.format import UNKNOWN, format_decimal

COMPACT_WIDTH = 60
COLUMNS = ("product", "size", "avg entry", "mark", "unrl P&L", "rlzd P&L")
COMPACT_COLUMNS = ("product", "size", "unrl P&L")
PRICE_DECIMALS = 2
NO_POSITIONS = "no positions"
# Before the account is known (offline, still loading): not "no positions", which is a fact.
POSITIONS_UNKNOWN = f"positions {UNKNOWN} (account not loaded yet)"


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

    def __init__(
        self, *, min_interval_s: float = 0.5, name: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(NO_POSITIONS, name=name, id=id)
        self.min_interval_s = min_interval_s
        self._drawn_at: float | None = None
        self.border_title = "Positions"
        self.border_subtitle = summary_text(None, None)
        self._rows: tuple[tuple[str, ...], ...] = ()
        self._flat: tuple[bool, ...] = ()
        self._compact: bool | None = None
        self._drawn: tuple[tuple[tuple[str, ...], ...], tuple[bool, ...], str, bool] | None = None
        self._drawn_rows = -1
        self.known = True

    @property
    def rows(self) -> tuple[tuple[str, ...], ...]:
        """The full texts of every row (all columns, whatever the width shows)."""
        return self._rows

    @property
    def compact(self) -> bool:
        return self.size.width < COMPACT_WIDTH

    def update_positions(
        self,
        positions: Sequence[PositionView] | None,
        *,
        equity: Decimal | None,
        daily_pnl: Decimal | None,
        now: float | None = None,
    ) -> bool:
        """Show ``positions``; returns whether the panel changed (and so repaints).

        ``now`` (monotonic seconds) enables the rate limit for mark-only changes.
        ``positions`` None: the account is not known yet, so every figure is "—".
        """
        known = positions is not None
        if positions is None:
            positions, equity, daily_pnl = (), None, None
        rows = tuple(position_cells(position) for position in positions)
        flat = tuple(position.size == 0 for position in positions)
        summary = summary_text(equity, daily_pnl)
        if not known:
            rows, flat = (), (True,)  # "no rows" and "unknown" must not compare equal
        key = (rows, flat, summary, self.compact)
        if key == self._drawn:
            return False
        # Product and size in each row: what is held. Only marks moved if these did not.
        same_holdings = (
            self._drawn is not None
            and known == self.known
            and [row[:2] for row in rows] == [row[:2] for row in self._rows]
        )
        if (
            same_holdings
            and now is not None
            and self._drawn_at is not None
            and now - self._drawn_at < self.min_interval_s
        ):
            return False
        self._drawn = key
        self._drawn_at = now
        self.known = known
        self._rows, self._flat = rows, flat
        self.border_subtitle = summary
        self._draw()
        return True

    def on_resize(self) -> None:
        if self._drawn is not None and self._drawn[3] != self.compact:
            rows, flat, summary, _ = self._drawn
            self._drawn = (rows, flat, summary, self.compact)
            self._draw()

    def render(self) -> RenderResult:
        # Textual paints the frame that follows a layout at once, before on_resize: text drawn
        # for the old width (compact before the first layout) would hide the marks for that
        # frame. Draw the rows for the width being painted; on_resize then keeps it.
        drawn = self._drawn
        if self.known and self._rows and drawn is not None and drawn[3] != self.compact:
            return self._text()
        return super().render()

    def _draw(self) -> None:
        # The panel's height follows its row count: only a new count needs a layout pass
        # (a layout of the whole screen costs far more than repainting this panel).
        layout = len(self._rows) != self._drawn_rows
        self._drawn_rows = len(self._rows)
        if not self.known:
            self.update(POSITIONS_UNKNOWN, layout=layout)
            return
        if not self._rows:
            self.update(NO_POSITIONS, layout=layout)
            return
        self.update(self._text(), layout=layout)

    @property
    def columns(self) -> tuple[str, ...]:
        """The column titles shown at the current width."""
        return COMPACT_COLUMNS if self.compact else COLUMNS

    def _text(self) -> Text:
        # Plain aligned text rather than a Rich Table: a table measures every cell on every
        # draw, several times the cost of the same lines written out.
        columns = self.columns
        picks = [COLUMNS.index(column) for column in columns]
        widths = [
            max(len(column), *(len(row[pick]) for row in self._rows))
            for column, pick in zip(columns, picks, strict=True)
        ]
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, (column, width) in enumerate(zip(columns, widths, strict=True)):
            text.append(column.ljust(width) if index == 0 else "  " + column.rjust(width), "bold")
        for row, flat in zip(self._rows, self._flat, strict=True):
            text.append("\n")
            for index, (pick, width) in enumerate(zip(picks, widths, strict=True)):
                cell = row[pick]
                style = _pnl_style(cell) if COLUMNS[pick].endswith("P&L") else ""
                if flat and pick in (1, 2, 3):
                    style = "dim"
                if index == 0:
                    text.append(cell.ljust(width), "bold")
                else:
                    text.append("  " + cell.rjust(width), style)
        return text
