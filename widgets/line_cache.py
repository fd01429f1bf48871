"""What the Line-API widgets (ladder, chart, tape, status line) share: the palette of their
component styles, computed once, and the runs of lines that changed between two frames, so a
frame repaints those and nothing else (docs/design.md §5)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from textual.widget import Widget


def component_palette(widget: Widget, prefix: str) -> dict[str, Style]:
    """The widget's base style (``"base"``) and base + each component class, keyed by the class
    name without ``prefix``. Compute it once per style change: ``rich_style`` walks every
    ancestor, so asking for it per line would cost more than rendering the line."""
    base = widget.rich_style
    palette = {"base": base}
    for name in widget.COMPONENT_CLASSES:
        palette[name.removeprefix(prefix)] = base + widget.get_component_rich_style(name)
    return palette


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
