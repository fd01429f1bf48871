"""The trades tape: recent public trades, newest on top, buys green and sells red.

Drawn with the Line API. A new trade shifts every line down, so all its lines (not its border)
are refreshed when the tape's version changes, but each trade's line is rendered once and then
reused from a cache keyed by its trade id (only the lines of new trades cost anything).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.filter import LineFilter
from textual.geometry import Region
from textual.strip import Strip

from core.model import Side, Trade
from core.snapshot import TapeView
from widgets.format import format_number_to_width, format_time_of_day
from widgets.line_cache import FramedLinesWidget, component_palette
from widgets.truecolor import without_ansi_mapping

_TIME_WIDTH = 8


class TradesTape(FramedLinesWidget):
    """Recent trades of the selected product. Feed it with :meth:`update_tape`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "trades-tape--header",
        "trades-tape--buy",
        "trades-tape--sell",
        "trades-tape--time",
        "trades-tape--empty",
    }

    DEFAULT_CSS = """
    TradesTape {
        height: 1fr;
        min-width: 24;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    TradesTape > .trades-tape--header { color: $text-muted; text-style: bold; }
    TradesTape > .trades-tape--buy { color: $success-lighten-1; }
    TradesTape > .trades-tape--sell { color: $error-lighten-1; }
    TradesTape > .trades-tape--time { color: $text-muted; }
    TradesTape > .trades-tape--empty { color: $text-muted; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.border_title = "Trades"
        self._tape: TapeView | None = None
        self._price_decimals = 2
        self._size_decimals = 8
        self._lines: dict[str, Strip] = {}
        self._width = 0
        self._palette: dict[str, Style] | None = None
        self._header: tuple[int, Strip] | None = None

    @property
    def tape(self) -> TapeView | None:
        return self._tape

    @property
    def trades(self) -> tuple[Trade, ...]:
        return self._tape.trades if self._tape is not None else ()

    def update_tape(self, tape: TapeView, *, price_decimals: int, size_decimals: int) -> bool:
        """Show ``tape``; returns False (no work) when its version is already shown."""
        shown = self._tape
        if (
            shown is not None
            and shown.version == tape.version
            and shown.product_id == tape.product_id
        ):
            return False
        if (
            shown is not None
            and shown.product_id == tape.product_id
            and _same_trades(shown.trades, tape.trades)
        ):
            # A coarse version (e.g. one counter for the whole market) moved, not the tape.
            self._tape = tape
            return False
        if (
            shown is None
            or shown.product_id != tape.product_id
            or (price_decimals, size_decimals) != (self._price_decimals, self._size_decimals)
        ):
            self._lines.clear()
        self._tape = tape
        self._price_decimals = price_decimals
        self._size_decimals = size_decimals
        # Keep only the lines that can still be on screen: the cache stays bounded.
        visible = {trade.trade_id for trade in tape.trades[: max(0, self.size.height)]}
        self._lines = {key: line for key, line in self._lines.items() if key in visible}
        # Every line shifts down, the border does not: refresh the content only.
        size = self.size
        self.refresh(Region(0, 0, size.width, size.height))
        return True

    def get_line_filters(self) -> Sequence[LineFilter]:
        # Every colour here comes from the theme's CSS variables: see widgets.truecolor.
        return without_ansi_mapping(super().get_line_filters())

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()
        self._header = None
        self._palette = None

    def _styles(self) -> dict[str, Style]:
        """Base style + each component class, computed once (``rich_style`` walks ancestors)."""
        if self._palette is None:
            self._palette = component_palette(self, "trades-tape--")
        return self._palette

    def on_resize(self) -> None:
        self._lines.clear()

    def _columns(self, width: int) -> tuple[int, int]:
        usable = max(0, width - _TIME_WIDTH - 2)
        price = min(12, max(6, usable // 2))
        return price, max(0, usable - price)

    def before_paint(self) -> None:
        # Read once per paint, not per line: asking a widget its size walks the screen's map.
        self._width = self.size.width

    def render_line(self, y: int) -> Strip:
        width = self._width
        styles = self._styles()
        base = styles["base"]
        price_width, size_width = self._columns(width)
        if y == 0:
            if self._header is None or self._header[0] != width:
                header = f"{'time':<{_TIME_WIDTH}} {'price':>{price_width}} {'size':>{size_width}}"
                strip = Strip([Segment(header, styles["header"])]).adjust_cell_length(width, base)
                self._header = (width, strip)
            return self._header[1]
        trades = self.trades
        index = y - 1
        if index >= len(trades):
            if index == 0:
                empty = Segment("no trades yet", styles["empty"])
                return Strip([empty]).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        trade = trades[index]
        line = self._lines.get(trade.trade_id)
        if line is None or line.cell_length != width:
            line = self._render_trade(trade, width, price_width, size_width)
            self._lines[trade.trade_id] = line
        return line

    def _render_trade(self, trade: Trade, width: int, price_width: int, size_width: int) -> Strip:
        styles = self._styles()
        base = styles["base"]
        side_style = styles["buy" if trade.side is Side.BUY else "sell"]
        price = format_number_to_width(trade.price, self._price_decimals, price_width)
        size = format_number_to_width(trade.size, self._size_decimals, size_width)
        segments = [
            Segment(f"{format_time_of_day(trade.time):<{_TIME_WIDTH}}", styles["time"]),
            Segment(" ", base),
            Segment(f"{price:>{price_width}}", side_style),
            Segment(" ", base),
            Segment(f"{size:>{size_width}}", side_style),
        ]
        return Strip(segments).adjust_cell_length(width, base)


def _same_trades(shown: tuple[Trade, ...], new: tuple[Trade, ...]) -> bool:
    """Whether two newest-first tapes show the same trades (same length, same newest)."""
    if len(shown) != len(new):
        return False
    return not shown or shown[0].trade_id == new[0].trade_id
