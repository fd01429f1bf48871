"""The positions panel: size, average entry, mark, unrealized and realized P&L per product.

Drawn with Textual's Line API (docs/design.md §5): each line (the column titles, one row per
position, or the wrapped line saying there are none) is held as (text, style) spans; a frame
whose snapshot moved a mark rebuilds the lines and repaints only those whose spans changed, from
cached strips, without a relayout. Every snapshot is drawn as it comes, none held back, so the
marks agree with the ladder in every frame.

The panel's height does not move when the account arrives: it is given at construction how
many rows to reserve (one per configured product: the engine holds one position per product),
and it is that tall from its first layout on, whether it shows "account not loaded yet", "no
positions" or the rows. A layout of the whole screen (10-25 ms on a 2-core machine, the
engine's loop stalled meanwhile) is asked for only when the lines outgrow that room.

The border's subtitle carries equity and the day's P&L. A value that is not known (no mark
yet, so no unrealized P&L) is "—", never 0; before the account is known at all (offline,
loading) the panel says so rather than "no positions". Below :data:`COMPACT_WIDTH` cells only
product, size and unrealized P&L are shown; columns that still do not fit are dropped whole
(:data:`DROP_ORDER`), never cut mid-number.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from decimal import Decimal

from textual.geometry import Region, Size

from core.snapshot import PositionView
from widgets.format import UNKNOWN, format_decimal
from widgets.line_cache import Line, Span, SpanLinesWidget

COMPACT_WIDTH = 60
COLUMNS = ("product", "size", "avg entry", "mark", "unrl P&L", "rlzd P&L")
COMPACT_COLUMNS = ("product", "size", "unrl P&L")
# Which columns go first when even the chosen ones do not fit (product and size never go).
DROP_ORDER = ("rlzd P&L", "avg entry", "mark", "unrl P&L")
PRICE_DECIMALS = 2
NO_POSITIONS = "no positions"
# Before the account is known (offline, still loading): not "no positions", which is a fact.
POSITIONS_UNKNOWN = f"positions {UNKNOWN} (account not loaded yet)"
# The Rich style names the lines use (the palette is built from them once per style change).
STYLE_NAMES = ("bold", "green", "red", "dim")
# The columns drawn dim on a flat position (size 0: what is held is nothing).
_DIMMED_WHEN_FLAT = frozenset({"size", "avg entry", "mark"})


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


def fitted_columns(
    rows: Sequence[tuple[str, ...]], width: int
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The columns shown ``width`` cells wide and each one's width.

    Compact below :data:`COMPACT_WIDTH`; then, while the table is wider than ``width``, whole
    columns are dropped in :data:`DROP_ORDER` (a number cut short reads as another number).
    """
    columns = list(COMPACT_COLUMNS if width < COMPACT_WIDTH else COLUMNS)

    def widths() -> list[int]:
        return [
            max(len(column), *(len(row[COLUMNS.index(column)]) for row in rows))
            for column in columns
        ]

    column_widths = widths()
    for dropped in DROP_ORDER:
        # Each column after the first is two spaces and its cells.
        if sum(column_widths) + 2 * (len(columns) - 1) <= width:
            break
        if dropped in columns:
            columns.remove(dropped)
            column_widths = widths()
    return tuple(columns), tuple(column_widths)


def position_lines(
    rows: Sequence[tuple[str, ...]], flat: Sequence[bool], *, known: bool, width: int
) -> tuple[Line, ...]:
    """The panel's lines ``width`` cells wide: titles, then one line per row.

    ``known`` False: the account is not known, a line says so (wrapped, never cut off).
    """
    if not known or not rows:
        message = POSITIONS_UNKNOWN if not known else NO_POSITIONS
        wrapped = textwrap.wrap(message, width) if width > 0 else [message]
        return tuple(((text, ""),) for text in wrapped)
    columns, widths = fitted_columns(rows, width)
    picks = [COLUMNS.index(column) for column in columns]
    header: list[Span] = [
        (column.ljust(size) if index == 0 else "  " + column.rjust(size), "bold")
        for index, (column, size) in enumerate(zip(columns, widths, strict=True))
    ]
    lines: list[Line] = [tuple(header)]
    for row, is_flat in zip(rows, flat, strict=True):
        spans: list[Span] = []
        for index, (column, pick, size) in enumerate(zip(columns, picks, widths, strict=True)):
            cell = row[pick]
            if index == 0:
                spans.append((cell.ljust(size), "bold"))
                continue
            style = _pnl_style(cell) if column.endswith("P&L") else ""
            if is_flat and column in _DIMMED_WHEN_FLAT:
                style = "dim"
            spans.append(("  " + cell.rjust(size), style))
        lines.append(tuple(spans))
    return tuple(lines)


class PositionsPanel(SpanLinesWidget):
    """Positions and P&L. Feed it with :meth:`update_positions`."""

    STYLE_NAMES = STYLE_NAMES

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
        self, *, name: str | None = None, id: str | None = None, reserved_rows: int = 0
    ) -> None:
        """``reserved_rows``: how many position rows the panel's height holds from the start
        (the configured products), so their arrival needs no layout pass."""
        # Set first: Widget.__init__ refreshes, and refresh reads it.
        self._quiet_refresh = False
        super().__init__(name=name, id=id)
        # Content lines the height holds: the column titles and the reserved rows.
        self._reserved_lines = 1 + reserved_rows if reserved_rows > 0 else 0
        # The content height the last layout was given (None before the first one).
        self._laid_out_lines: int | None = None
        self.border_title = "Positions"
        self._summary = summary_text(None, None)
        self.border_subtitle = self._summary
        self._rows: tuple[tuple[str, ...], ...] = ()
        self._flat: tuple[bool, ...] = ()
        self.known = True
        # What is drawn: rows, flat flags, subtitle, known (None before the first update).
        self._drawn: tuple[object, ...] | None = None

    @property
    def rows(self) -> tuple[tuple[str, ...], ...]:
        """The full texts of every row (all columns, whatever the width shows)."""
        return self._rows

    @property
    def lines(self) -> tuple[Line, ...]:
        """The drawn lines as spans, top to bottom."""
        return self._buffer.lines

    @property
    def compact(self) -> bool:
        return self.size.width < COMPACT_WIDTH

    @property
    def columns(self) -> tuple[str, ...]:
        """The column titles shown at the current width."""
        return fitted_columns(self._rows, self.size.width)[0] if self._rows else ()

    def update_positions(
        self,
        positions: Sequence[PositionView] | None,
        *,
        equity: Decimal | None,
        daily_pnl: Decimal | None,
    ) -> bool:
        """Show ``positions``; returns whether anything shown changed (and so repaints).

        ``positions`` None: the account is not known yet, so every figure is "—". Only the
        lines whose text changed are repainted; the subtitle repaints the bottom border only.
        """
        known = positions is not None
        if positions is None:
            positions, equity, daily_pnl = (), None, None
        rows = tuple(position_cells(position) for position in positions)
        flat = tuple(position.size == 0 for position in positions)
        summary = summary_text(equity, daily_pnl)
        drawn = (rows, flat, summary, known)
        if drawn == self._drawn:
            return False
        first = self._drawn is None
        self._drawn = drawn
        self._rows, self._flat, self.known = rows, flat, known
        if summary != self._summary:
            self._set_summary(summary)
        self._buffer.rebuild(self, force_full=first)
        laid_out = self._laid_out_lines
        if laid_out is not None and self._content_lines(len(self._buffer.lines)) != laid_out:
            # Only when the lines outgrow (or no longer fill) the room the height holds. Not
            # before the first layout, which measures the panel anyway (a request made then
            # would cost a second layout pass), nor when the screen fixes the panel's height
            # (its content height is never asked for).
            self.refresh(layout=True)
        return True

    @property
    def reserved_lines(self) -> int:
        """The content lines the panel's height holds whatever it shows."""
        return self._reserved_lines

    def _content_lines(self, line_count: int) -> int:
        return max(line_count, self._reserved_lines)

    # -- rendering -----------------------------------------------------------------------

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        lines = position_lines(self._rows, self._flat, known=self.known, width=width)
        self._laid_out_lines = self._content_lines(len(lines))
        return self._laid_out_lines

    def _set_summary(self, summary: str) -> None:
        """Set the border subtitle, repainting the bottom border line only (the setter would
        repaint the whole panel)."""
        self._summary = summary
        self._quiet_refresh = True
        try:
            self.border_subtitle = summary
        finally:
            self._quiet_refresh = False
        size = self.size
        # Content coordinates: the line below the content is the bottom border.
        self.refresh(Region(-1, size.height, size.width + 2, 1))

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> PositionsPanel:
        if self._quiet_refresh:
            return self
        super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)
        return self

    def _build_lines(self, size: Size) -> tuple[Line, ...]:
        return position_lines(self._rows, self._flat, known=self.known, width=size.width)
