"""Line filters for panels whose colours all come from the theme (truecolor already).

Textual runs every freshly rendered line through the App's filters. The first of them,
``ANSIToTruecolor``, maps the 16 ANSI colour names to the theme's colours: work for nothing on
a line styled only from CSS variables, and on the busiest panels (the book, the tape) a
noticeable share of each frame on the loop the engine shares. The other filters (NO_COLOR's
monochrome, the dim filter) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.filter import ANSIToTruecolor, LineFilter


def without_ansi_mapping(filters: Sequence[LineFilter]) -> list[LineFilter]:
    """``filters`` without ``ANSIToTruecolor`` (for lines that use no ANSI colour)."""
    return [line_filter for line_filter in filters if not isinstance(line_filter, ANSIToTruecolor)]
