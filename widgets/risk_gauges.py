"""Risk gauges: one bar per limit with its usage and headroom, coloured by how close it is.

Green below :data:`WARN_AT` of the limit, yellow up to :data:`ALERT_AT`, red above, and red
reversed at or over the limit. A usage that is not known (a position without a mark, a book
that is not live) is "—" with an empty grey bar, never a reassuring 0.

The gauges change with every snapshot (marks move exposures, data ages tick). Drawn with
Textual's Line API (docs/design.md §5): each gauge is one line held as (text, style) spans,
and a snapshot repaints only the lines whose spans changed, from cached strips, without a
relayout. Every snapshot is drawn as it comes (none held back), so the gauges agree with the
other panels of the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from textual.geometry import Size

from core.snapshot import GaugeView
from widgets.format import UNKNOWN, format_number
from widgets.line_cache import Line, SpanLinesWidget

WARN_AT = 0.6
ALERT_AT = 0.85
LABEL_WIDTH = 15
MIN_BAR = 6
BAR_STEP = 0.02
_BAR_FULL = "█"
_BAR_PARTIALS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
_LABELS = {
    "order_rate": "order rate",
    "open_orders": "open orders",
    "position": "position",
    "gross_exposure": "gross exposure",
    "daily_loss": "daily loss",
    "drawdown": "drawdown",
    "data_age": "data age",
}


@dataclass(frozen=True, slots=True)
class GaugeLine:
    """The texts of one gauge and its level ("ok" | "warn" | "alert" | "over" | "unknown")."""

    label: str
    fraction: float | None
    usage: str  # "25%" | "—"
    headroom: str  # "48,750.00 USD left" | "12.00 USD over" | "—"
    level: str


def gauge_level(fraction: float | None) -> str:
    if fraction is None:
        return "unknown"
    if fraction >= 1.0:
        return "over"
    if fraction >= ALERT_AT:
        return "alert"
    if fraction >= WARN_AT:
        return "warn"
    return "ok"


def _amount(value: Decimal | None, unit: str) -> str:
    if unit == "s":
        # Whole seconds: a data age jitters by tenths with every update, and the gauge is
        # about the distance to a limit of several seconds, not the jitter.
        return format_number(value, 0)
    if unit.startswith("orders"):
        return format_number(value, 0)
    return format_number(value, 2)


def _unit(unit: str) -> str:
    # "orders/1s" is a rate window: the headroom is counted in orders.
    return "orders" if unit.startswith("orders") else unit


def gauge_line(gauge: GaugeView) -> GaugeLine:
    """How ``gauge`` reads as text: label, share of the limit used, and what is left."""
    label = _LABELS.get(gauge.name, gauge.name.replace("_", " "))
    if gauge.subject:
        label = f"{label} {gauge.subject.split('-')[0]}"
    fraction = gauge.fraction
    unit = _unit(gauge.unit)
    if gauge.used is None or fraction is None:
        usage = headroom = UNKNOWN
    else:
        usage = f"{fraction * 100:.0f}%"
        if gauge.used > gauge.limit:
            headroom = f"{_amount(gauge.used - gauge.limit, gauge.unit)} {unit} over"
        else:
            headroom = f"{_amount(gauge.limit - gauge.used, gauge.unit)} {unit} left"
    return GaugeLine(label, fraction, usage, headroom, gauge_level(fraction))


def gauge_bar(fraction: float | None, width: int) -> str:
    """A bar ``width`` cells wide filled to ``fraction`` (clamped to 0..1), padded with dots.

    The fill moves in steps of :data:`BAR_STEP` of the limit, so a usage that wobbles a
    little does not repaint the panel at every snapshot.
    """
    if fraction is None:
        return "·" * width
    stepped = round(min(1.0, max(0.0, fraction)) / BAR_STEP) * BAR_STEP
    eighths = round(stepped * width * 8)
    full, partial = divmod(eighths, 8)
    bar = _BAR_FULL * full + _BAR_PARTIALS[partial]
    return bar + "·" * (width - len(bar))


_LEVEL_STYLES = {
    "ok": "green",
    "warn": "yellow",
    "alert": "bold red",
    "over": "bold reverse red",
    "unknown": "dim",
}
# The Rich style names the lines use (the palette is built from them once per style change).
STYLE_NAMES = (*_LEVEL_STYLES.values(),)


def gauge_lines(lines: Sequence[GaugeLine], width: int) -> tuple[Line, ...]:
    """The panel's lines ``width`` cells wide: label, bar, usage, headroom per gauge.

    The usage and headroom columns are as wide as their widest text; the bar takes the rest.
    """
    if not lines:
        return (((f"limits {UNKNOWN}", "dim"),),)
    usage_width = max(4, *(len(line.usage) for line in lines))
    headroom_width = max(len(line.headroom) for line in lines)
    bar_width = max(MIN_BAR, width - LABEL_WIDTH - usage_width - headroom_width - 2)
    return tuple(
        (
            (f"{line.label[: LABEL_WIDTH - 1]:<{LABEL_WIDTH}}", ""),
            (gauge_bar(line.fraction, bar_width), _LEVEL_STYLES[line.level]),
            (f" {line.usage:>{usage_width}}", "" if line.level != "unknown" else "dim"),
            (f" {line.headroom:>{headroom_width}}", "dim"),
        )
        for line in lines
    )


class RiskGauges(SpanLinesWidget):
    """One line per limit. Feed it with :meth:`update_gauges`."""

    STYLE_NAMES = STYLE_NAMES

    DEFAULT_CSS = """
    RiskGauges {
        height: auto;
        min-height: 4;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.border_title = "Risk limits"
        self._gauges: tuple[GaugeView, ...] | None = None
        self._lines: tuple[GaugeLine, ...] = ()

    @property
    def lines(self) -> tuple[GaugeLine, ...]:
        return self._lines

    def update_gauges(self, gauges: Sequence[GaugeView]) -> bool:
        """Show ``gauges``; returns whether a line's text or colour changed (and so repaints).

        Only the lines that changed are repainted.
        """
        gauges = tuple(gauges)
        if gauges == self._gauges:
            return False
        self._gauges = gauges
        lines = tuple(gauge_line(gauge) for gauge in gauges)
        first = not self._buffer.lines
        drawn = self._buffer.lines
        count_changed = len(lines) != len(self._lines) or first
        self._lines = lines
        if count_changed:
            # The height follows the number of gauges (when it is auto).
            self.refresh(layout=True)
        self._buffer.rebuild(self, force_full=first)
        return self._buffer.lines != drawn

    # -- rendering -----------------------------------------------------------------------

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(self._lines))

    def _build_lines(self, size: Size) -> tuple[Line, ...]:
        return gauge_lines(self._lines, size.width)
