"""The status bar: mode badge, trading state, connection health, product, UTC clock, loop lag.

One line at the top of the screen, drawn with Textual's Line API. It is rebuilt from plain
values on every snapshot pull but only repaints when the text it would show changed, and then
from one cached strip (no Rich text to measure and wrap at every tick). LIVE is drawn white on
red and bold so a trader cannot mistake real money for the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip

from core.snapshot import (
    ConnectionState,
    ConnectionView,
    Mode,
    StrategyView,
    TradingState,
    TradingView,
)
from widgets.format import format_age, format_lag_ms, format_utc_clock
from widgets.line_cache import FramedLinesWidget

# A connected stream that has been silent this long is shown as a warning.
SILENCE_WARNING_S = 5.0

KNOWN_MODES = ("demo", "paper", "live", "replay")

# The cause is on the banner in full; the bar keeps a short version so the rest still fits.
CAUSE_WIDTH = 40

# (text, component class suffix) pieces of the bar.
Part = tuple[str, str]


def mode_badge(mode: Mode) -> Part:
    """The badge for ``mode``: its upper-case name and the style that goes with it."""
    name = mode.lower()
    style = name if name in KNOWN_MODES else "unknown"
    return (f" {mode.upper()} ", style)


def connection_part(connection: ConnectionView) -> Part:
    """E.g. ("market ● 0.2s", "ok") or ("user ⟳ reconnecting #3", "warn")."""
    name = connection.name
    state = connection.state
    if state is ConnectionState.CONNECTED:
        age = connection.last_message_age_s
        silent = age is not None and age >= SILENCE_WARNING_S
        return (f"{name} ● {format_age(age)}", "warn" if silent else "ok")
    if state is ConnectionState.RECONNECTING:
        return (f"{name} ⟳ reconnecting #{connection.attempt}", "warn")
    if state is ConnectionState.CONNECTING:
        return (f"{name} … connecting", "warn")
    if state is ConnectionState.SUBSCRIBING:
        return (f"{name} … subscribing", "warn")
    if state is ConnectionState.STOPPED:
        return (f"{name} ✕ stopped", "error")
    return (f"{name} ○ idle", "dim")


def trading_part(trading: TradingView) -> Part:
    """E.g. ("ACTIVE", "ok"), ("REDUCING: daily loss 2,010.00 >= …", "warn"), ("HALTED: …", "error")."""
    state = trading.state
    if state == TradingState.ACTIVE:
        return ("RECONCILING", "warn") if trading.reconciling else ("ACTIVE", "ok")
    cause = trading.cause
    if len(cause) > CAUSE_WIDTH:
        cause = cause[: CAUSE_WIDTH - 1] + "…"
    return (f"{state}: {cause}", "error" if state == TradingState.HALTED else "warn")


def strategy_part(strategy: StrategyView) -> Part:
    """E.g. ("strategy market_maker ▶", "ok") or ("strategy trend ⏸ paused", "warn")."""
    if strategy.paused:
        return (f"strategy {strategy.name} ⏸ paused", "warn")
    return (f"strategy {strategy.name} ▶", "ok")


def status_parts(
    *,
    mode: Mode,
    product_id: str,
    connections: Sequence[ConnectionView],
    wall_time: float | None,
    loop_lag_ms: float | None,
    engine_error: str | None = None,
    trading: TradingView | None = None,
    strategy: StrategyView | None = None,
) -> tuple[tuple[Part, ...], tuple[Part, ...]]:
    """The bar's left-aligned and right-aligned pieces."""
    left: list[Part] = [mode_badge(mode), (" ", "dim")]
    if trading is not None:
        left.extend((trading_part(trading), ("  ", "dim")))
    for connection in connections:
        left.extend((connection_part(connection), ("  ", "dim")))
    left.append((product_id, "product"))
    if strategy is not None:
        left.extend((("  ", "dim"), strategy_part(strategy)))
    if engine_error is not None:
        left.extend((("  ", "dim"), (f"engine ✕ {engine_error}", "error")))
    right: tuple[Part, ...] = (
        (f"{format_utc_clock(wall_time)}  ", "dim"),
        ("lag ", "dim"),
        (format_lag_ms(loop_lag_ms), "lag"),
        (" ", "dim"),
    )
    return tuple(left), right


class StatusBar(FramedLinesWidget):
    """The top line of the console."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-bar--demo",
        "status-bar--paper",
        "status-bar--live",
        "status-bar--replay",
        "status-bar--unknown",
        "status-bar--ok",
        "status-bar--warn",
        "status-bar--error",
        "status-bar--dim",
        "status-bar--product",
        "status-bar--lag",
    }

    DEFAULT_CSS = """
    StatusBar {
        dock: top;
        height: 1;
        width: 1fr;
        background: $panel;
        color: $text;
    }
    StatusBar > .status-bar--demo { background: $primary; color: $text; text-style: bold; }
    StatusBar > .status-bar--paper { background: $secondary; color: $text; text-style: bold; }
    StatusBar > .status-bar--live { background: red; color: white; text-style: bold; }
    StatusBar > .status-bar--replay { background: $accent; color: $text; text-style: bold; }
    StatusBar > .status-bar--unknown { background: $warning; color: $text; text-style: bold; }
    StatusBar > .status-bar--ok { color: $success; }
    StatusBar > .status-bar--warn { color: $warning; }
    StatusBar > .status-bar--error { color: $error; text-style: bold; }
    StatusBar > .status-bar--dim { color: $text-muted; }
    StatusBar > .status-bar--product { color: $text; text-style: bold; }
    StatusBar > .status-bar--lag { color: $text; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._left: tuple[Part, ...] = ()
        self._right: tuple[Part, ...] = ()
        self._styles: dict[str, Style] = {}
        self._width = 0
        # The drawn line and what it was drawn from (parts and width).
        self._strip: tuple[tuple[tuple[Part, ...], tuple[Part, ...], int], Strip] | None = None

    @property
    def left_text(self) -> str:
        return "".join(text for text, _ in self._left)

    @property
    def right_text(self) -> str:
        return "".join(text for text, _ in self._right)

    @property
    def text(self) -> str:
        """Everything the bar says, as plain text (without the alignment padding)."""
        return f"{self.left_text} | {self.right_text}"

    def style_of(self, fragment: str) -> str | None:
        """The component class suffix the piece containing ``fragment`` is drawn with."""
        for text, style in (*self._left, *self._right):
            if fragment in text:
                return style
        return None

    def update_status(
        self,
        *,
        mode: Mode,
        product_id: str,
        connections: Sequence[ConnectionView],
        wall_time: float | None,
        loop_lag_ms: float | None,
        engine_error: str | None = None,
        trading: TradingView | None = None,
        strategy: StrategyView | None = None,
    ) -> bool:
        """Show these values; returns whether the bar's text changed (and so repaints)."""
        left, right = status_parts(
            mode=mode,
            product_id=product_id,
            connections=connections,
            wall_time=wall_time,
            loop_lag_ms=loop_lag_ms,
            engine_error=engine_error,
            trading=trading,
            strategy=strategy,
        )
        if left == self._left and right == self._right:
            return False
        self._left, self._right = left, right
        self.refresh(Region(0, 0, max(0, self.size.width), 1))
        return True

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strip = None

    def _base_style(self) -> Style:
        # The bar's own colours; ``rich_style`` walks every ancestor, so it is asked once.
        base = self._styles.get("")
        if base is None:
            base = self._styles[""] = self.rich_style
        return base

    def _style(self, name: str) -> Style:
        # Looking a component style up walks the CSS; the bar redraws at every pull.
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self._base_style() + self.get_component_rich_style(
                f"status-bar--{name}"
            )
        return style

    def line_parts(self, width: int) -> tuple[Part, ...]:
        """The pieces drawn on a bar ``width`` cells wide, the padding gap included."""
        left = self._left
        used = sum(len(piece) for piece, _ in left)
        right = self._right
        gap = width - used - sum(len(piece) for piece, _ in right)
        if gap < 1:
            # Too narrow: the clock goes first, the loop lag stays if it fits.
            right = right[1:]
            gap = width - used - sum(len(piece) for piece, _ in right)
        if gap < 1:
            return left  # the left side (mode, health, product) matters most
        return (*left, (" " * gap, "dim"), *right)

    def before_paint(self) -> None:
        # Read once per paint: asking a widget its size walks the screen's map.
        self._width = self.size.width

    def render_line(self, y: int) -> Strip:
        width = self._width
        key = (self._left, self._right, width)
        if y == 0 and self._strip is not None and self._strip[0] == key:
            return self._strip[1]
        base = self._base_style()
        if y != 0:
            return Strip.blank(width, base)
        strip = Strip(
            [Segment(piece, self._style(style)) for piece, style in self.line_parts(width)]
        ).adjust_cell_length(width, base)
        self._strip = (key, strip)
        return strip
