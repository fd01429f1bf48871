"""The order book ladder: asks above the spread, bids below, drawn with Textual's Line API.

The book is the busiest panel (10-20 updates a second) and shares the event loop with the
engine, so it never re-renders what did not change. Each update is turned into a list of
:class:`LadderRow` values (plain data, cheap to compare); rows equal to the previous update's
keep their cached :class:`Strip` and are not repainted, and only the changed rows are refreshed
(``refresh(Region)`` per run of changed lines). Depth bars are scaled to a coarse 1-2-5 step so
a small change at one level does not move every bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.filter import LineFilter
from textual.geometry import Size
from textual.strip import Strip

from core.snapshot import BookStatus, BookView
from widgets.format import format_number, format_number_to_width, nice_ceiling
from widgets.line_cache import FramedLinesWidget, LineBuffer, component_palette
from widgets.truecolor import without_ansi_mapping

# Rows that are not levels: column titles, status/banner, spread.
FIXED_ROWS = 3
OWN_ORDER_MARKER = "◆"
_BAR_FULL = "█"
_BAR_PARTIALS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")


class RowKind(StrEnum):
    HEADER = "header"
    STATUS = "status"  # product and book state; a banner while the book is not LIVE
    ASK = "ask"
    SPREAD = "spread"
    BID = "bid"
    BLANK = "blank"  # padding when a side has fewer levels than rows


@dataclass(frozen=True, slots=True)
class LadderRow:
    """What one line of the ladder shows. Equal rows render identically (the diff key)."""

    kind: RowKind
    price: float | None = None
    size: float | None = None
    total: float | None = None
    bar_eighths: int = 0
    own_order: bool = False
    dim: bool = False
    text: str = ""


@dataclass(frozen=True, slots=True)
class LadderColumns:
    """Cell widths of the level columns for one widget width."""

    price: int
    size: int
    total: int
    bar: int

    @classmethod
    def for_width(cls, width: int) -> LadderColumns:
        return _columns_for_width(width)


@lru_cache(maxsize=16)
def _columns_for_width(width: int) -> LadderColumns:
    # marker + 4 separating spaces; the three number columns share what is left with the bar.
    usable = max(0, width - 5)
    column = min(12, max(7, (usable - 4) // 3))
    return LadderColumns(price=column, size=column, total=column, bar=max(0, usable - 3 * column))


def levels_per_side(height: int, max_levels: int) -> int:
    """How many levels each side gets in a ladder ``height`` lines tall."""
    return max(1, min(max_levels, (height - FIXED_ROWS) // 2))


def build_ladder_rows(
    book: BookView | None,
    *,
    height: int,
    width: int,
    max_levels: int,
    own_order_prices: frozenset[float] = frozenset(),
) -> tuple[LadderRow, ...]:
    """Lay the book out as ladder lines: header, status, asks (deepest first), spread, bids."""
    depth = levels_per_side(height, max_levels)
    columns = LadderColumns.for_width(width)
    rows: list[LadderRow] = [LadderRow(RowKind.HEADER)]
    if book is None:
        rows.append(LadderRow(RowKind.STATUS, text="waiting for the first book…", dim=True))
        asks: tuple[tuple[float, float], ...] = ()
        bids: tuple[tuple[float, float], ...] = ()
        dim = True
    else:
        rows.append(_status_row(book))
        asks = book.asks[:depth]
        bids = book.bids[:depth]
        dim = book.status is not BookStatus.LIVE

    ask_totals = _running_totals(asks)
    bid_totals = _running_totals(bids)
    deepest = max(ask_totals[-1] if ask_totals else 0.0, bid_totals[-1] if bid_totals else 0.0)
    scale = nice_ceiling(deepest)

    def level_row(kind: RowKind, price: float, size: float, total: float) -> LadderRow:
        eighths = round(total / scale * columns.bar * 8) if columns.bar else 0
        return LadderRow(
            kind,
            price=price,
            size=size,
            total=total,
            bar_eighths=eighths,
            own_order=price in own_order_prices,
            dim=dim,
        )

    ask_rows = [
        level_row(RowKind.ASK, price, size, total)
        for (price, size), total in zip(asks, ask_totals, strict=True)
    ]
    if not ask_rows:
        ask_rows = [LadderRow(RowKind.ASK, dim=dim)]  # prices unknown: "—"
    rows.extend(LadderRow(RowKind.BLANK) for _ in range(depth - len(ask_rows)))
    rows.extend(reversed(ask_rows))  # deepest on top, best ask just above the spread

    if book is None:
        rows.append(LadderRow(RowKind.SPREAD, dim=True))
    else:
        rows.append(LadderRow(RowKind.SPREAD, price=book.mid, size=book.spread, dim=dim))

    bid_rows = [
        level_row(RowKind.BID, price, size, total)
        for (price, size), total in zip(bids, bid_totals, strict=True)
    ]
    if not bid_rows:
        bid_rows = [LadderRow(RowKind.BID, dim=dim)]
    rows.extend(bid_rows)
    rows.extend(LadderRow(RowKind.BLANK) for _ in range(depth - len(bid_rows)))
    return tuple(rows)


def _running_totals(levels: tuple[tuple[float, float], ...]) -> list[float]:
    totals: list[float] = []
    running = 0.0
    for _, size in levels:
        running += size
        totals.append(running)
    return totals


def _status_row(book: BookView) -> LadderRow:
    if book.status is BookStatus.LIVE:
        # "synced", not the state's name: "LIVE" here read like LIVE (real money) mode in
        # DEMO and REPLAY. A reason on a synced book is a note (e.g. "replay finished").
        suffix = f" · resyncs {book.resyncs}" if book.resyncs else ""
        note = f" · {book.status_reason}" if book.status_reason else ""
        return LadderRow(RowKind.STATUS, text=f"{book.product_id} · synced{suffix}{note}")
    reason = book.status_reason or (
        "waiting for the first snapshot" if book.status is BookStatus.SYNCING else "resyncing"
    )
    # The product is in the status bar already; the banner spends its width on the reason.
    resync = f" (resync #{book.resyncs})" if book.resyncs else ""
    return LadderRow(RowKind.STATUS, text=f"⚠ {book.status.value}{resync}: {reason}", dim=True)


def depth_bar(eighths: int) -> str:
    """A horizontal bar ``eighths``/8 cells long, using the partial block characters."""
    full, partial = divmod(max(0, eighths), 8)
    return _BAR_FULL * full + _BAR_PARTIALS[partial]


class OrderBookLadder(FramedLinesWidget):
    """The order book ladder. Feed it with :meth:`update_book`; it repaints only changed rows."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "order-book--header",
        "order-book--status",
        "order-book--banner",
        "order-book--ask",
        "order-book--bid",
        "order-book--ask-bar",
        "order-book--bid-bar",
        "order-book--size",
        "order-book--total",
        "order-book--spread",
        "order-book--own",
        "order-book--stale",
    }

    DEFAULT_CSS = """
    OrderBookLadder {
        height: 1fr;
        min-width: 36;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0;
    }
    OrderBookLadder > .order-book--header { color: $text-muted; text-style: bold; }
    OrderBookLadder > .order-book--status { color: $text-muted; }
    OrderBookLadder > .order-book--banner { color: $text; background: $warning-darken-2; text-style: bold; }
    OrderBookLadder > .order-book--ask { color: $error-lighten-1; }
    OrderBookLadder > .order-book--bid { color: $success-lighten-1; }
    OrderBookLadder > .order-book--ask-bar { color: $error 45%; }
    OrderBookLadder > .order-book--bid-bar { color: $success 45%; }
    OrderBookLadder > .order-book--size { color: $text; }
    OrderBookLadder > .order-book--total { color: $text-muted; }
    OrderBookLadder > .order-book--spread { color: $text; background: $boost; text-style: bold; }
    OrderBookLadder > .order-book--own { color: $accent; text-style: bold; }
    OrderBookLadder > .order-book--stale { color: $text-disabled; }
    """

    def __init__(
        self,
        *,
        max_levels: int = 20,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.max_levels = max_levels
        self.border_title = "Order book"
        self._book: BookView | None = None
        self._own_order_prices: frozenset[float] = frozenset()
        self._buffer: LineBuffer[LadderRow] = LineBuffer(self._build_rows)
        self._palette: dict[str, Style] | None = None

    # -- public API ----------------------------------------------------------------------

    @property
    def book(self) -> BookView | None:
        """The book currently shown."""
        return self._book

    @property
    def rows(self) -> tuple[LadderRow, ...]:
        """The ladder's lines as data, top to bottom (what tests and later features read)."""
        return self._buffer.lines

    @property
    def own_order_prices(self) -> frozenset[float]:
        return self._own_order_prices

    def update_book(self, book: BookView) -> bool:
        """Show ``book``. Returns False (and does nothing) when it is what is already shown.

        Every changed line is marked for the next frame at once, asks and bids alike: a
        ladder drawn half from one book and half from the next can show a crossed book.
        """
        shown = self._book
        if (
            shown is not None
            and shown.version == book.version
            and shown.product_id == book.product_id
            and shown.status is book.status
            and shown.status_reason == book.status_reason
            and shown.resyncs == book.resyncs
        ):
            return False
        self._book = book
        # Another product has other decimals: no cached line can be reused.
        switched = shown is None or shown.product_id != book.product_id
        if switched:
            self._buffer.strips.clear()
        self._relayout(force_full=switched)
        return True

    def set_own_order_prices(self, prices: frozenset[float]) -> None:
        """Mark the levels where the user has resting orders (the hook for order entry)."""
        if prices == self._own_order_prices:
            return
        self._own_order_prices = prices
        self._relayout()

    # -- rendering -----------------------------------------------------------------------

    def on_resize(self) -> None:
        self._buffer.strips.clear()
        self._relayout(force_full=True)

    def get_line_filters(self) -> Sequence[LineFilter]:
        # Every colour here comes from the theme's CSS variables: see widgets.truecolor.
        return without_ansi_mapping(super().get_line_filters())

    def notify_style_update(self) -> None:
        # A theme or CSS change restyles every line: drop the cached strips and styles.
        super().notify_style_update()
        self._buffer.strips.clear()
        self._palette = None

    def _styles(self) -> dict[str, Style]:
        """The widget's base style combined with each component class, computed once.

        ``rich_style`` walks every ancestor; asking for it per line would cost more than
        rendering the line.
        """
        if self._palette is None:
            self._palette = component_palette(self, "order-book--")
        return self._palette

    def _build_rows(self, size: Size) -> tuple[LadderRow, ...]:
        return build_ladder_rows(
            self._book,
            height=size.height,
            width=size.width,
            max_levels=self.max_levels,
            own_order_prices=self._own_order_prices,
        )

    def _relayout(self, *, force_full: bool = False) -> None:
        self._buffer.rebuild(self, force_full=force_full)

    def before_paint(self) -> None:
        # Built for the size being painted (the frame after a layout comes before on_resize),
        # once per paint: asking a widget its size walks the screen's map.
        self._buffer.fit(self.size)

    def render_line(self, y: int) -> Strip:
        width = self._buffer.size.width
        strip = self._buffer.strip(y, lambda row: self._render_row(row, width))
        return strip if strip is not None else Strip.blank(width, self._styles()["base"])

    def _render_row(self, row: LadderRow, width: int) -> Strip:
        styles = self._styles()
        base = styles["base"]
        columns = LadderColumns.for_width(width)
        book = self._book
        price_decimals = book.price_decimals if book is not None else 2
        size_decimals = book.size_decimals if book is not None else 8
        segments: list[Segment]

        if row.kind is RowKind.HEADER:
            depth = " depth" if columns.bar >= len("depth") else ""
            text = (
                f"  {'price':>{columns.price}} {'size':>{columns.size}} "
                f"{'total':>{columns.total}}{depth}"
            )
            segments = [Segment(text, styles["header"])]
        elif row.kind is RowKind.STATUS:
            style = styles["banner"] if row.dim else styles["status"]
            text = f" {row.text}"
            if len(text) > width:
                text = text[: max(0, width - 1)] + "…"
            return Strip([Segment(text, style)]).adjust_cell_length(width, style)
        elif row.kind is RowKind.SPREAD:
            mid = format_number(row.price, price_decimals + 1)
            spread = format_number(row.size, price_decimals)
            bps = (
                f" ({row.size / row.price * 10_000:.2f} bps)"
                if row.size is not None and row.price
                else ""
            )
            style = styles["spread"]
            segments = [Segment(f" spread {spread}{bps}  mid {mid}", style)]
            return Strip(segments).adjust_cell_length(width, style)
        elif row.kind is RowKind.BLANK:
            return Strip.blank(width, base)
        else:
            return self._render_level(row, width, columns, size_decimals, price_decimals)
        return Strip(segments).adjust_cell_length(width, base)

    def _render_level(
        self,
        row: LadderRow,
        width: int,
        columns: LadderColumns,
        size_decimals: int,
        price_decimals: int,
    ) -> Strip:
        """A price level's line: the busiest lines of the screen (most of them change at every
        frame of a fast book), so built as one strip of known length with no measuring."""
        styles = self._styles()
        base = styles["base"]
        side = "ask" if row.kind is RowKind.ASK else "bid"
        stale = row.dim
        price_text = format_number_to_width(row.price, price_decimals, columns.price)
        size_text = format_number_to_width(row.size, size_decimals, columns.size)
        total_text = format_number_to_width(row.total, size_decimals, columns.total)
        bar = depth_bar(row.bar_eighths)[: columns.bar]
        gap = Segment(" ", base)
        texts = (
            f"{price_text:>{columns.price}}",
            f"{size_text:>{columns.size}}",
            f"{total_text:>{columns.total}}",
        )
        segments = [
            Segment(OWN_ORDER_MARKER if row.own_order else " ", styles["own"]),
            gap,
            Segment(texts[0], styles["stale" if stale else side]),
            gap,
            Segment(texts[1], styles["stale" if stale else "size"]),
            gap,
            Segment(texts[2], styles["stale" if stale else "total"]),
            gap,
            Segment(bar, styles[f"{side}-bar"]),
        ]
        # Every character here is one cell wide (digits, separators, "—", "◆", blocks).
        length = 5 + len(texts[0]) + len(texts[1]) + len(texts[2]) + len(bar)
        if length > width:
            return Strip(segments, length).crop(0, width)
        if length < width:
            segments.append(Segment(" " * (width - length), base))
        return Strip(segments, width)


__all__ = [
    "OWN_ORDER_MARKER",
    "LadderColumns",
    "LadderRow",
    "OrderBookLadder",
    "RowKind",
    "build_ladder_rows",
    "depth_bar",
    "levels_per_side",
]
