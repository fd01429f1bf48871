"""Risk gauges: one bar per limit with its usage and headroom, coloured by how close it is.

Green below :data:`WARN_AT` of the limit, yellow up to :data:`ALERT_AT`, red above, and red
reversed at or over the limit. A usage that is not known (a position without a mark, a book
that is not live) is "—" with an empty grey bar, never a reassuring 0.

The gauges change with every snapshot (marks move exposures, data ages tick), so each line
is turned into text first and the panel repaints only when the text changed, and, while no
gauge changes colour, at most every ``min_interval_s``: a colour change (a limit coming
close) is drawn at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from rich.text import Text
from textual.widgets import Static

from core.snapshot import GaugeView
from widgets.format import UNKNOWN, format_number

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


class RiskGauges(Static):
    """One line per limit. Feed it with :meth:`update_gauges`."""

    DEFAULT_CSS = """
    RiskGauges {
        height: auto;
        min-height: 4;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(
        self, *, min_interval_s: float = 0.5, name: str | None = None, id: str | None = None
    ) -> None:
        super().__init__("", name=name, id=id)
        self.border_title = "Risk limits"
        self.min_interval_s = min_interval_s
        self._drawn_at: float | None = None
        self._lines: tuple[GaugeLine, ...] = ()
        # What is on screen: the plain text and each line's level (its colour).
        self._drawn: tuple[str, tuple[str, ...]] | None = None
        self._line_count = -1

    @property
    def lines(self) -> tuple[GaugeLine, ...]:
        return self._lines

    def update_gauges(self, gauges: Sequence[GaugeView], *, now: float | None = None) -> bool:
        """Show ``gauges``; returns whether the panel changed (and so repaints).

        ``now`` (monotonic seconds) enables the rate limit for changes of numbers only.
        """
        lines = tuple(gauge_line(gauge) for gauge in gauges)
        drawn = self._drawn
        if (
            now is not None
            and drawn is not None
            and self._drawn_at is not None
            and now - self._drawn_at < self.min_interval_s
            and tuple(line.level for line in lines) == drawn[1]
        ):
            return False
        self._lines = lines
        if self._draw():
            self._drawn_at = now
            return True
        return False

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> bool:
        text = self._text(self.size.width)
        drawn = (text.plain, tuple(line.level for line in self._lines))
        if drawn == self._drawn:
            return False
        self._drawn = drawn
        # Same number of lines: same height, so the new text needs no layout pass.
        self.update(text, layout=len(self._lines) != self._line_count)
        self._line_count = len(self._lines)
        return True

    def _text(self, width: int) -> Text:
        if not self._lines:
            return Text(f"limits {UNKNOWN}", style="dim")
        usage_width = max(4, *(len(line.usage) for line in self._lines))
        headroom_width = max(len(line.headroom) for line in self._lines)
        bar_width = max(MIN_BAR, width - LABEL_WIDTH - usage_width - headroom_width - 2)
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, line in enumerate(self._lines):
            if index:
                text.append("\n")
            style = _LEVEL_STYLES[line.level]
            text.append(f"{line.label[: LABEL_WIDTH - 1]:<{LABEL_WIDTH}}")
            text.append(gauge_bar(line.fraction, bar_width), style=style)
            text.append(
                f" {line.usage:>{usage_width}}", style="" if line.level != "unknown" else "dim"
            )
            text.append(f" {line.headroom:>{headroom_width}}", style="dim")
        return text
