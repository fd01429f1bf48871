"""The event log: fills, denials with their reason, disconnects, engine errors; newest last.

A ``RichLog`` with a line cap, so memory stays bounded however long the console runs.
The engine's snapshot carries its recent events (oldest first) and a counter
``events_version`` that grows by one per event; the log writes only the events it has not
seen. The App also writes its own events here (e.g. an engine crash).

A line wider than the log ends in "…"; the full text of every kept event is in
:attr:`EventLog.events`, which the console opens in a modal (``e``). After a resize the log
shows its newest lines again.

Every write grows the log's virtual size, which Textual treats as a layout change of the
whole screen (every panel repainted: tens of milliseconds on the loop the engine shares, and
the kill switch writes an event). The log's box never changes size, so a write only updates
its scrollbar and repaints the log; a layout pass is asked for only when a scrollbar appears
or goes (that changes the room inside the box).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual import events as textual_events
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog

from core.snapshot import EventLevel, EventView
from widgets.format import format_time_of_day
from widgets.line_cache import KeptLines

MAX_LINES = 500

LEVEL_STYLES = {EventLevel.INFO: "", EventLevel.WARNING: "yellow", EventLevel.ERROR: "bold red"}


def event_line(event: EventView) -> Text:
    """One event as a styled line: "HH:MM:SS  text"."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(format_time_of_day(event.time), style="dim")
    line.append("  ")
    line.append(event.text, style=LEVEL_STYLES.get(event.level, ""))
    return line


def unseen_events(
    events: Sequence[EventView], version: int, seen_version: int
) -> Sequence[EventView]:
    """The events of ``events`` (oldest first) that came after ``seen_version``."""
    new_count = version - seen_version
    if new_count <= 0:
        return ()
    return events[-new_count:] if new_count < len(events) else events


class EventLog(KeptLines, RichLog, can_focus=False):
    """The bounded event log. Feed it with :meth:`update_events` and :meth:`add_event`."""

    DEFAULT_CSS = """
    EventLog {
        height: 8;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    """

    # As in Widget, but without layout=True: see the module docstring and the watcher.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def __init__(
        self, *, max_lines: int = MAX_LINES, name: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(max_lines=max_lines, wrap=False, markup=False, name=name, id=id)
        self.border_title = "Events"
        self.border_subtitle = "e: full text"
        self._seen_version = 0
        # The plain texts written, bounded like the log itself (what tests and the UI read).
        self.texts: deque[str] = deque(maxlen=max_lines)
        # The events themselves, for the full-text view (a line here may end in "…").
        self.events: deque[EventView] = deque(maxlen=max_lines)

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        if not self.is_mounted:
            return
        width, height = self.scrollable_content_region.size
        if (old.width > width) != (new.width > width) or (old.height > height) != (
            new.height > height
        ):
            self.refresh(layout=True)  # a scrollbar comes or goes: the inside changes size
        else:
            self._scroll_update(new)
            self.refresh()

    @property
    def seen_version(self) -> int:
        return self._seen_version

    def update_events(self, events: Sequence[EventView], version: int) -> int:
        """Write the events not yet shown; returns how many were written."""
        fresh = unseen_events(events, version, self._seen_version)
        self._seen_version = max(self._seen_version, version)
        for event in fresh:
            self.add_event(event)
        return len(fresh)

    def add_event(self, event: EventView) -> None:
        """Write one event (from the engine or from the App itself)."""
        self.texts.append(event.text)
        self.events.append(event)
        self.write(event_line(event))

    def on_resize(self, event: textual_events.Resize) -> None:
        # The newest lines are what matters: a resize must not leave the log showing old ones.
        self.call_after_refresh(self.scroll_end, animate=False, immediate=True)
