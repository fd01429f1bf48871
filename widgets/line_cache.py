"""What the Line-API widgets (ladder, chart, tape, status line, positions, risk gauges) share:
the palette of their component styles, computed once, the runs of lines that changed between
two frames, so a frame repaints those and nothing else, and lines held as (text, style) spans
(docs/design.md §5)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

LineT = TypeVar("LineT")


def component_palette(widget: Widget, prefix: str) -> dict[str, Style]:
    """The widget's base style (``"base"``) and base + each component class, keyed by the class
    name without ``prefix``. Compute it once per style change: ``rich_style`` walks every
    ancestor, so asking for it per line would cost more than rendering the line."""
    base = widget.rich_style
    palette = {"base": base}
    for name in widget.COMPONENT_CLASSES:
        palette[name.removeprefix(prefix)] = base + widget.get_component_rich_style(name)
    return palette


Span = tuple[str, str]
"""A piece of a line: its text and its style's name in the widget's palette ("" = the base)."""

ELLIPSIS = "…"


def named_palette(widget: Widget, names: Sequence[str]) -> dict[str, Style]:
    """The widget's base style (``""``) and base + each Rich style name in ``names``, plus
    ``"pad"``: the base's background alone, what Textual pads a text line with (so a panel
    drawn from spans looks exactly as the same text in a ``Static``)."""
    base = widget.rich_style
    palette = {"": base, "pad": Style(bgcolor=base.bgcolor)}
    for name in names:
        palette[name] = base + Style.parse(name) if name else base
    return palette


def spans_strip(spans: Sequence[Span], palette: Mapping[str, Style], width: int) -> Strip:
    """One line of spans, ``width`` cells: padded, or cut with "…" when it does not fit."""
    segments: list[Segment] = []
    room = width
    for text, style in spans:
        if not text:
            continue
        length = cell_len(text)
        if length > room:
            # Cut here: the last cell is the ellipsis, in the style of what it replaces.
            kept = Strip([Segment(text, palette[style])]).crop(0, max(0, room - 1))
            segments.extend(kept)
            if room > 0:
                segments.append(Segment(ELLIPSIS, palette[style]))
            return Strip(segments, width)
        segments.append(Segment(text, palette[style]))
        room -= length
    if room:
        segments.append(Segment(" " * room, palette["pad"]))
    return Strip(segments, width)


def changed_runs(old: Sequence[object], new: Sequence[object]) -> list[tuple[int, int]]:
    """(first line, line count) of each run of consecutive lines that differ (equal lengths)."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for y, (before, after) in enumerate(zip(old, new, strict=True)):
        if before != after:
            if start is None:
                start = y
        elif start is not None:
            runs.append((start, y - start))
            start = None
    if start is not None:
        runs.append((start, len(new) - start))
    return runs


class LineBuffer(Generic[LineT]):
    """A Line-API widget's lines as data, the size they were built for, and each line's
    rendered strip (reused while the line is unchanged)."""

    def __init__(self, build: Callable[[Size], tuple[LineT, ...]]) -> None:
        self._build = build
        self.lines: tuple[LineT, ...] = ()
        self.strips: dict[int, tuple[LineT, Strip]] = {}
        self.size = Size(0, 0)

    def fit(self, size: Size) -> None:
        """Rebuild for the size being painted if a layout changed it since the last build.

        Call it from the widget's ``render_lines`` (once per paint); ``render_line`` then
        reads the width from :attr:`size`.

        Textual paints the frame that follows a layout at once, before the widget's Resize
        event is handled: lines built for the old size (none before the first layout) would
        leave the widget blank or clipped in that frame. The data is the one last given, so
        the frame stays one moment with the other panels."""
        if size != self.size:
            self.strips.clear()
            self.lines = self._build(size)
            self.size = size

    def rebuild(self, widget: Widget, *, force_full: bool = False) -> None:
        """Rebuild from the widget's data and ask it to repaint what changed: everything if
        the size or the line count moved, else one region per run of changed lines."""
        size = widget.size
        old, new = self.lines, self._build(size)
        self.lines = new
        if force_full or len(old) != len(new) or size != self.size:
            self.size = size
            widget.refresh()
            return
        for start, count in changed_runs(old, new):
            widget.refresh(Region(0, start, size.width, count))

    def strip(self, y: int, render: Callable[[LineT], Strip]) -> Strip | None:
        """Line ``y``'s strip (cached while the line is unchanged); None past the last line."""
        if y >= len(self.lines):
            return None
        line = self.lines[y]
        cached = self.strips.get(y)
        if cached is not None and cached[0] == line:
            return cached[1]
        strip = render(line)
        self.strips[y] = (line, strip)
        return strip
