"""A small chart of recent mid prices: a caption (last, high, low) over Textual's Sparkline.

It redraws only when the mid history changed (the engine hands the same tuple back while
nothing moved, so the identity check makes the common case free), and at most every
``min_interval_s`` while the same product is shown: a sparkline repaint costs several
milliseconds (the costliest line of a frame), and a chart of the last minutes says nothing
more at 10 Hz than at 1 Hz.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from widgets.format import UNKNOWN, format_number


def chart_caption(mids: Sequence[float], price_decimals: int) -> str:
    """ "last 50,010.00  high 50,020.00  low 49,990.00" ("—" with no data)."""
    if not mids:
        return f"mid {UNKNOWN}"
    last = format_number(mids[-1], price_decimals)
    high = format_number(max(mids), price_decimals)
    low = format_number(min(mids), price_decimals)
    return f"mid {last}  high {high}  low {low}"


class PriceChart(Vertical):
    """Recent mids of the selected product. Feed it with :meth:`update_mids`."""

    DEFAULT_CSS = """
    PriceChart {
        height: 9;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    PriceChart > Label { width: 1fr; color: $text-muted; }
    PriceChart > Sparkline { height: 1fr; }
    PriceChart > Sparkline > .sparkline--max-color { color: $success; }
    PriceChart > Sparkline > .sparkline--min-color { color: $error; }
    """

    def __init__(
        self, *, min_interval_s: float = 1.0, name: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(name=name, id=id)
        self.border_title = "Mid"
        self.min_interval_s = min_interval_s
        self._drawn_at: float | None = None
        self._mids: tuple[float, ...] = ()
        self._price_decimals = 2
        self._caption = Label(chart_caption((), 2))
        self._sparkline = Sparkline(())

    @property
    def mids(self) -> tuple[float, ...]:
        return self._mids

    def compose(self) -> ComposeResult:
        yield self._caption
        yield self._sparkline

    def update_mids(
        self, mids: tuple[float, ...], price_decimals: int, *, now: float | None = None
    ) -> bool:
        """Show ``mids`` (oldest first); returns whether the chart was redrawn.

        ``now`` (monotonic seconds) enables the rate limit; pass None to draw regardless
        (e.g. right after the product changed).
        """
        if (mids is self._mids or mids == self._mids) and price_decimals == self._price_decimals:
            return False
        if (
            now is not None
            and self._drawn_at is not None
            and now - self._drawn_at < self.min_interval_s
        ):
            return False
        self._drawn_at = now
        self._mids = mids
        self._price_decimals = price_decimals
        self._caption.update(chart_caption(mids, price_decimals), layout=False)
        # The sparkline needs a range to draw; a flat line is still a line.
        self._sparkline.data = list(mids)
        return True
