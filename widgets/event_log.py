"""The event log: fills, denials with their reason, disconnects, engine errors; newest last.

A ``RichLog`` with a line cap, so memory stays bounded however long the console runs.
The engine's snapshot carries its recent events (oldest first) and a counter
``events_version`` that grows by one per event; the log writes only the events it has not
seen. The App also writes its own events here (e.g. an engine crash).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual.widgets import RichLog

from core.snapshot import EventView
from widgets.format import format_time_of_day

MAX_LINES = 500

LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}


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


class EventLog(RichLog, can_focus=False):
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

    def __init__(
        self, *, max_lines: int = MAX_LINES, name: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(max_lines=max_lines, wrap=False, markup=False, name=name, id=id)
        self.border_title = "Events"
        self._seen_version = 0
        # The plain texts written, bounded like the log itself (what tests and the UI read).
        self.texts: deque[str] = deque(maxlen=max_lines)

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
        self.write(event_line(event))
