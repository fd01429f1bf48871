"""The event log in full: every kept event with its whole text, wrapped, newest at the bottom.

The log on the main screen gives each event one line, cut with "…" when it is wider than the
panel; this modal (``e`` on the main screen) shows the same events without cutting anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static

from core.snapshot import EventView
from cryptoj_tui.screens.backdrop import DimmedModalScreen
from cryptoj_tui.screens.confirm import KILL_IN_SIGHT
from widgets.event_log import LEVEL_STYLES
from widgets.format import format_time_of_day


def full_text(events: Sequence[EventView]) -> Text:
    """Every event as "HH:MM:SS  text", wrapped (never cut), oldest first."""
    text = Text()
    for index, event in enumerate(events):
        if index:
            text.append("\n")
        text.append(format_time_of_day(event.time), style="dim")
        text.append("  ")
        text.append(event.text, style=LEVEL_STYLES.get(event.level, ""))
    return text


class EventTextScreen(DimmedModalScreen[None]):
    """The whole event log, wrapped. ``escape`` or ``e`` closes it."""

    DEFAULT_CSS = """
    EventTextScreen {
        align: center middle;
        background: $background 60%;
    }
    EventTextScreen > Vertical {
        width: 100%;
        height: 1fr;
        border: round $accent;
        border-title-color: $accent;
        border-subtitle-color: $text-muted;
        background: $surface;
        padding: 0 1;
    }
    EventTextScreen #event-scroll { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="events.close"),
        KILL_IN_SIGHT,
        Binding("e", "close", "Close", show=False, id="events.close_e"),
    ]

    def __init__(self, events: Sequence[EventView]) -> None:
        super().__init__()
        self.events = tuple(events)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"Events ({len(self.events)}), full text"
            box.border_subtitle = "↑↓ pgup pgdn scroll · escape closes"
            with VerticalScroll(id="event-scroll"):
                yield Static(full_text(self.events) if self.events else "no events yet", id="text")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        scroll = self.query_one("#event-scroll", VerticalScroll)
        scroll.focus()
        self.call_after_refresh(scroll.scroll_end, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
