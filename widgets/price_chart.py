"""A chart of recent mid prices with a price axis, drawn with Textual's Line API.

The first line is a caption (the mid now, the high and the low of the window); below it an
area chart of the mids, oldest on the left, newest at the right edge, one column per sample
(or, with more samples than columns, the last sample of each column's share), drawn with the
eighth-block characters so a column's height moves in eighths of a line. The axis on the
right labels the top line with the window's high, the bottom one with its low and the middle
one with the price half-way.

The last point of the chart is the mid of the same book the ladder shows in that frame (the
engine samples the history a few times a second; the book moves in between), so the caption,
the ladder's spread line and the positions' marks agree. A redraw builds each line as one
string and repaints only the lines whose text changed, from cached strips, without a relayout:
a frame that moves the mid costs a few short lines, not a widget tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.filter import LineFilter
from textual.geometry import Size
from textual.strip import Strip

from core.snapshot import BookStatus, BookView
from widgets.format import UNKNOWN, format_number
from widgets.line_cache import FramedLinesWidget, LineBuffer, component_palette
from widgets.truecolor import without_ansi_mapping

# " ▁▂▃▄▅▆▇█": index = eighths of the cell that are filled.
_EIGHTHS = " ▁▂▃▄▅▆▇█"
AXIS_TICK = "┤"
AXIS_LINE = "│"


def chart_caption(mids: Sequence[float], price_decimals: int) -> str:
    """ "mid 50,010.00  high 50,020.00  low 49,990.00" ("mid —" with no data)."""
    if not mids:
        return f"mid {UNKNOWN}"
    last = format_number(mids[-1], price_decimals)
    high = format_number(max(mids), price_decimals)
    low = format_number(min(mids), price_decimals)
    return f"mid {last}  high {high}  low {low}"


def chart_points(history: Sequence[float], book: BookView | None) -> tuple[float, ...]:
    """The mids to draw: the sampled history, then the mid of ``book`` (the one on screen).

    The book's mid is added only while the book is LIVE (a stale book's mid is not a price).
    """
    live_mid = book.mid if book is not None and book.status is BookStatus.LIVE else None
    if live_mid is None:
        return tuple(history)
    return (*history, live_mid)


def resample(points: Sequence[float], columns: int) -> tuple[float, ...]:
    """At most ``columns`` points: each column's share of ``points`` gives its last one."""
    count = len(points)
    if columns <= 0:
        return ()
    if count <= columns:
        return tuple(points)
    return tuple(points[((column + 1) * count) // columns - 1] for column in range(columns))


@dataclass(frozen=True, slots=True)
class ChartLine:
    """One line of the chart as data; equal lines render identically (the repaint key)."""

    kind: str  # "caption" | "plot"
    text: str
    axis: str = ""
    rising: bool = True


def chart_lines(
    points: Sequence[float], *, width: int, height: int, price_decimals: int
) -> tuple[ChartLine, ...]:
    """The chart ``width`` x ``height`` cells: a caption line, then the plot with its axis."""
    if height <= 0 or width <= 0:
        return ()
    lines = [ChartLine("caption", chart_caption(points, price_decimals))]
    rows = height - 1
    if rows <= 0:
        return tuple(lines)
    if not points:
        lines.extend(ChartLine("plot", "") for _ in range(rows))
        return tuple(lines)
    high, low = max(points), min(points)
    labels = {0: high, rows - 1: low}
    if rows >= 5:
        labels[(rows - 1) // 2] = (high + low) / 2
    texts = {row: format_number(price, price_decimals) for row, price in labels.items()}
    axis_width = max(len(text) for text in texts.values()) + 2  # tick, space, label
    plot_width = max(0, width - axis_width)
    shown = resample(points, plot_width)
    span = high - low
    total = rows * 8
    # Eighths filled in each column (a flat window is drawn half-way up).
    heights = [
        total // 2 if span <= 0 else max(1, round((point - low) / span * total)) for point in shown
    ]
    pad = " " * (plot_width - len(shown))
    rising = not shown or shown[-1] >= shown[0]
    for row in range(rows):
        floor = (rows - 1 - row) * 8
        cells = "".join(_EIGHTHS[min(8, max(0, filled - floor))] for filled in heights)
        label = texts.get(row)
        axis = f"{AXIS_TICK} {label}" if label is not None else AXIS_LINE
        lines.append(ChartLine("plot", pad + cells, axis, rising))
    return tuple(lines)


class PriceChart(FramedLinesWidget):
    """Recent mids of the selected product. Feed it with :meth:`update_chart`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "price-chart--caption",
        "price-chart--up",
        "price-chart--down",
        "price-chart--axis",
    }

    DEFAULT_CSS = """
    PriceChart {
        height: 9;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    PriceChart > .price-chart--caption { color: $text-muted; }
    PriceChart > .price-chart--up { color: $success; }
    PriceChart > .price-chart--down { color: $error; }
    PriceChart > .price-chart--axis { color: $text-muted; }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "Mid"
        self._points: tuple[float, ...] = ()
        self._price_decimals = 2
        self._buffer: LineBuffer[ChartLine] = LineBuffer(self._build_lines)
        self._palette: dict[str, Style] | None = None

    @property
    def points(self) -> tuple[float, ...]:
        """The mids drawn, oldest first (the last one is the shown book's mid)."""
        return self._points

    @property
    def lines(self) -> tuple[ChartLine, ...]:
        """The chart's lines as data, top to bottom."""
        return self._buffer.lines

    @property
    def caption(self) -> str:
        return chart_caption(self._points, self._price_decimals)

    def update_chart(self, history: Sequence[float], book: BookView | None) -> bool:
        """Show ``history`` (oldest first) ending with ``book``'s mid; whether anything changed."""
        decimals = book.price_decimals if book is not None else self._price_decimals
        points = chart_points(history, book)
        if points == self._points and decimals == self._price_decimals:
            return False
        self._points = points
        self._price_decimals = decimals
        self._relayout()
        return True

    def update_mids(self, mids: tuple[float, ...], price_decimals: int) -> bool:
        """Show exactly ``mids`` (no book): for callers without one."""
        if mids == self._points and price_decimals == self._price_decimals:
            return False
        self._points = mids
        self._price_decimals = price_decimals
        self._relayout()
        return True

    # -- rendering -----------------------------------------------------------------------

    def on_resize(self) -> None:
        self._buffer.strips.clear()
        self._relayout(force_full=True)

    def get_line_filters(self) -> Sequence[LineFilter]:
        # Every colour here comes from the theme's CSS variables: see widgets.truecolor.
        return without_ansi_mapping(super().get_line_filters())

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._buffer.strips.clear()
        self._palette = None

    def _styles(self) -> dict[str, Style]:
        if self._palette is None:
            self._palette = component_palette(self, "price-chart--")
        return self._palette

    def _build_lines(self, size: Size) -> tuple[ChartLine, ...]:
        return chart_lines(
            self._points,
            width=size.width,
            height=size.height,
            price_decimals=self._price_decimals,
        )

    def _relayout(self, *, force_full: bool = False) -> None:
        self._buffer.rebuild(self, force_full=force_full)

    def before_paint(self) -> None:
        # Built for the size being painted (the frame after a layout comes before on_resize),
        # once per paint: asking a widget its size walks the screen's map.
        self._buffer.fit(self.size)

    def render_line(self, y: int) -> Strip:
        strip = self._buffer.strip(y, self._render_line)
        if strip is None:
            return Strip.blank(self._buffer.size.width, self._styles()["base"])
        return strip

    def _render_line(self, line: ChartLine) -> Strip:
        width = self._buffer.size.width
        styles = self._styles()
        if line.kind == "caption":
            segments = [Segment(line.text, styles["caption"])]
        else:
            segments = [
                Segment(line.text, styles["up" if line.rising else "down"]),
                Segment(line.axis, styles["axis"]),
            ]
        return Strip(segments).adjust_cell_length(width, styles["base"])


__all__ = [
    "ChartLine",
    "PriceChart",
    "chart_caption",
    "chart_lines",
    "chart_points",
    "resample",
]
