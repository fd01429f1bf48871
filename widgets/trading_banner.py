"""The trading banner: a full-width line under the status bar whenever trading is not ACTIVE.

HALTED is red and says why, who did it, and where the kill switch's cancel sequence is
("cancelling: round 2, 3 still open", "no open orders (38 ms)", "3 STILL OPEN after 10
rounds: check the venue"), then which keys act next. REDUCING is yellow; reconciling (orders
refused until our picture matches the venue's) is a quieter note. While trading is ACTIVE the
banner is an empty line: it always keeps its one row, so the kill switch changes only its
text and colours, never the screen's layout (a relayout repaints every panel, tens of
milliseconds on the loop the engine shares, right when the trader pulled the switch).
"""

from __future__ import annotations

from typing import ClassVar

from textual.widgets import Static

from core.snapshot import KillPhase, TradingState, TradingView
from widgets.line_cache import KeptLines

# What the trader can do next, shown on the banner (the keys are the main screen's bindings).
HALTED_HINT = "F flatten · R resume"
REDUCING_HINT = "R resume"


def kill_progress_text(trading: TradingView) -> str:
    """The kill switch's cancel sequence in a few words ("" when it is not running)."""
    phase = trading.kill_phase
    if phase == KillPhase.CANCELLING:
        if trading.kill_still_open is None:
            return "cancelling every open order…"
        return f"cancelling: round {trading.kill_rounds}, {trading.kill_still_open} still open"
    if phase == KillPhase.DONE:
        took = "" if trading.kill_took_ms is None else f" ({trading.kill_took_ms:,.0f} ms)"
        return f"no open orders{took}"
    if phase == KillPhase.FAILED:
        still = "?" if trading.kill_still_open is None else str(trading.kill_still_open)
        return f"{still} STILL OPEN after {trading.kill_rounds} rounds: check the venue"
    return ""


def banner_text(trading: TradingView | None) -> tuple[str, str] | None:
    """(text, level) for the banner, level "halted" | "reducing" | "reconciling"; None: hidden."""
    if trading is None:
        return None
    if trading.state == TradingState.HALTED:
        parts = [f"⛔ HALTED: {trading.cause} (by {trading.source})"]
        progress = kill_progress_text(trading)
        if progress:
            parts.append(progress)
        parts.append(HALTED_HINT)
        return " · ".join(parts), "halted"
    if trading.state == TradingState.REDUCING:
        text = f"▼ REDUCING: only orders that shrink a position · {trading.cause} · {REDUCING_HINT}"
        return text, "reducing"
    if trading.reconciling:
        return "⟳ reconciling orders, fills and balances with the venue: orders wait", "reconciling"
    return None


class TradingBanner(KeptLines, Static):
    """One row, empty while trading is ACTIVE. Feed it with :meth:`update_trading`."""

    LEVELS: ClassVar[tuple[str, ...]] = ("halted", "reducing", "reconciling")

    DEFAULT_CSS = """
    TradingBanner {
        height: 1;
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        padding: 0 1;
    }
    TradingBanner.-halted { background: $error; color: $text; text-style: bold; }
    TradingBanner.-reducing { background: $warning; color: $text; text-style: bold; }
    TradingBanner.-reconciling { background: $boost; color: $text-muted; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__("", name=name, id=id)
        self._shown: tuple[str, str] | None = None

    @property
    def text(self) -> str | None:
        """The banner's text, or None while it is hidden."""
        return None if self._shown is None else self._shown[0]

    @property
    def level(self) -> str | None:
        return None if self._shown is None else self._shown[1]

    def update_trading(self, trading: TradingView | None) -> bool:
        """Show the banner for ``trading``; returns whether anything changed."""
        shown = banner_text(trading)
        if shown == self._shown:
            return False
        self._shown = shown
        for level in self.LEVELS:
            self.set_class(shown is not None and shown[1] == level, f"-{level}")
        # One line whatever it says: the text changes without a layout pass.
        self.update("" if shown is None else shown[0], layout=False)
        return True
