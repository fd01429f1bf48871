"""What the Line-API widgets (ladder, chart, tape, status line, positions, risk gauges) share:
the palette of their component styles, computed once, the runs of lines that changed between
two frames, so a frame repaints those and nothing else, and lines held as (text, style) spans
(docs/design.md §5)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, Self, TypeVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

LineT = TypeVar("LineT")

if TYPE_CHECKING:
    _WidgetMixinBase = Widget
else:
    _WidgetMixinBase = object


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


class FramePainter:
    """Paints a Line-API widget's content lines inside its border and padding itself.

    Textual turns each repainted line into the widget's full-width line (border, padding,
    the line filters) through a general path that costs several times what the line itself
    costs; on a fast book the ladder, the tape and the chart repaint dozens of lines a frame.
    The gutter does not change from one line to the next, so this painter takes it once from
    lines Textual painted and puts each changed content line between the same two pieces.
    Only the lines marked dirty (the widget's ``refresh``) are asked of the widget again;
    border rows (titles, subtitles) are Textual's, asked again when refreshed too.

    It never guesses: at each calibration (first paint, a refresh of the whole widget, which
    is what Textual does on a change of style or title, a new size or new line filters) it
    paints the first and the last content lines the fast way and Textual's way and compares
    them segment by segment; on any difference (a tint, an opacity, an outline, a Textual
    that paints otherwise) it stands aside and Textual paints every line.
    """

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._sides: tuple[Strip, Strip] | None = None  # None: Textual paints everything
        self._gutter = (0, 0, 0, 0)  # top, right, bottom, left
        self._filters: tuple[LineFilter, ...] = ()
        self._background: Color | None = None
        # Painted content lines by widget row: (the widget's content strip, the full line).
        self._lines: dict[int, tuple[Strip, Strip]] = {}
        self._borders: dict[int, Strip] = {}  # border rows Textual painted, by widget row
        # Lines to ask for again, in content rows (a border row is outside 0..height).
        self._dirty: set[int] = set()
        self._all_dirty = True

    @property
    def active(self) -> bool:
        """Whether content lines are painted here (the last calibration matched Textual)."""
        return self._sides is not None

    def mark_dirty(self, regions: Sequence[Region]) -> None:
        """The widget was refreshed: these content regions changed. A refresh of the whole
        widget (no regions) is what Textual does on any change of style, title or size too:
        calibrate again, the gutter may look different now."""
        if not regions:
            self.invalidate()
            return
        for region in regions:
            self._dirty.update(region.line_range)

    def invalidate(self) -> None:
        """Calibrate again at the next paint (the widget's style changed)."""
        self._key = None
        self._lines.clear()
        self._borders.clear()
        self._all_dirty = True

    def render_lines(
        self,
        widget: Widget,
        crop: Region,
        textual_render_lines: Callable[[Region], list[Strip]],
    ) -> list[Strip]:
        """The widget's lines in ``crop``; ``textual_render_lines`` is Textual's own
        ``Widget.render_lines`` (the widget's ``super().render_lines``)."""
        size = widget.outer_size
        filters = tuple(widget.get_line_filters())
        key = (size, filters)
        if key != self._key:
            self._key = key
            self._calibrate(widget, size, filters, textual_render_lines)
        sides = self._sides
        if sides is None:
            return textual_render_lines(crop)
        top, _, bottom, _ = self._gutter
        height = size.height
        width = size.width
        lines = crop.line_range
        strips: dict[int, Strip] = {}
        dirty, all_dirty, painted = self._dirty, self._all_dirty, self._lines
        # Border rows are Textual's, asked again only when something on them was refreshed.
        borders = self._borders
        for start, end in ((0, top), (height - bottom, height)):
            first, last = max(start, lines.start), min(end, lines.stop)
            rows = range(first, last)
            if not rows:
                continue
            if all_dirty or any(y not in borders or (y - top) in dirty for y in rows):
                region = Region(0, first, width, last - first)
                borders.update(zip(rows, textual_render_lines(region), strict=True))
            strips.update((y, borders[y]) for y in rows)
        left, right = sides
        render_line = widget.render_line
        for y in lines:
            if y in strips:
                continue
            cached = painted.get(y)
            if cached is not None and not all_dirty and (y - top) not in dirty:
                strips[y] = cached[1]
            else:
                strips[y] = self._content_line(y, render_line(y - top), left, right)
                dirty.discard(y - top)
        if lines.start == 0 and lines.stop >= height:
            self._all_dirty = False
            dirty.clear()
        result = [strips[y] for y in lines]
        if crop.column_span != (0, width):
            x1, x2 = crop.column_span
            result = [strip.crop(x1, x2) for strip in result]
        return result

    def _content_line(self, y: int, content: Strip, left: Strip, right: Strip) -> Strip:
        cached = self._lines.get(y)
        if cached is not None and cached[0] is content:
            return cached[1]
        line = content
        background = self._background
        assert background is not None
        for line_filter in self._filters:
            line = line.apply_filter(line_filter, background)
        painted = Strip(
            [*left, *line, *right], left.cell_length + line.cell_length + right.cell_length
        )
        self._lines[y] = (content, painted)
        return painted

    def _calibrate(
        self,
        widget: Widget,
        size: Size,
        filters: tuple[LineFilter, ...],
        textual_render_lines: Callable[[Region], list[Strip]],
    ) -> None:
        self._sides = None
        self._lines.clear()
        self._borders.clear()
        self._dirty.clear()
        self._all_dirty = True
        gutter = widget.styles.gutter
        top, right, bottom, left = gutter.top, gutter.right, gutter.bottom, gutter.left
        self._gutter = (top, right, bottom, left)
        self._filters = filters
        self._background = widget.background_colors[1]
        width, height = size
        content_width = width - left - right
        if content_width <= 0 or height - top - bottom <= 0:
            return
        # Textual paints the border rows and the first and last content lines (the gutter
        # of a content line is the same on every line: two samples show how it looks).
        first, last = top, height - bottom - 1
        head = textual_render_lines(Region(0, 0, width, top + 1))
        tail = textual_render_lines(Region(0, last, width, bottom + 1))
        painted = dict(zip(range(first + 1), head, strict=True))
        painted.update(zip(range(last, height), tail, strict=True))
        self._borders.update((y, painted[y]) for y in range(top))
        self._borders.update((y, painted[y]) for y in range(height - bottom, height))
        sides: tuple[Strip, Strip] | None = None
        for y in sorted({first, last}):
            line = painted[y]
            these = (line.crop(0, left), line.crop(width - right, width))
            if sides is None:
                sides = these
            elif these != sides:
                return
            content = widget.render_line(y - top)
            if content.cell_length != content_width:
                return
            if self._content_line(y, content, *sides) != line:
                return  # Textual paints this widget otherwise: let it paint
        self._sides = sides
        self._all_dirty = False


def no_scrolling(widget: Widget) -> bool:
    """Whether ``widget`` never scrolls (both overflows hidden): its virtual size then
    changes nothing on screen."""
    styles = widget.styles
    return bool(styles.overflow_x == "hidden" and styles.overflow_y == "hidden")


class OneLayoutPass(_WidgetMixinBase):
    """Mixin (before the Widget base) for a widget that never scrolls: a change of its size
    costs the screen one layout pass, not two."""

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        # Textual asks for a second layout pass of the whole screen whenever a widget's
        # virtual (scrollable) size changed in a layout pass, for its scrollbars. A widget that
        # never scrolls has none: the pass it was just given holds (docs/design.md §5).
        if no_scrolling(self):
            layout = False
        return super()._size_updated(size, virtual_size, container_size, layout=layout)


class FramedLinesWidget(OneLayoutPass, Widget):
    """A Line-API widget whose content lines a :class:`FramePainter` paints.

    Subclasses implement ``render_line`` as usual and may bring their lines up to date for
    the size being painted in :meth:`before_paint` (called once per paint).
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        # First: Widget.__init__ refreshes, and refresh marks the painter's lines dirty.
        self._painter = FramePainter()
        super().__init__(name=name, id=id, classes=classes)

    def before_paint(self) -> None:
        """Bring the lines up to date for the size being painted (once per paint)."""

    def render_lines(self, crop: Region) -> list[Strip]:
        self.before_paint()
        return self._painter.render_lines(self, crop, super().render_lines)

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if repaint:
            self._painter.mark_dirty(regions)
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._painter.invalidate()


Line = tuple[Span, ...]
"""A line of a spans panel: its pieces, left to right."""


class SpanLinesWidget(FramedLinesWidget):
    """A panel drawn from lines of spans (positions, risk gauges): the lines are built for the
    size being painted (``_build_lines``), held in a :class:`LineBuffer`, and each line's
    strip is made once with the panel's palette of ``STYLE_NAMES``."""

    STYLE_NAMES: Sequence[str] = ()

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._buffer: LineBuffer[Line] = LineBuffer(self._build_lines)
        self._palette: dict[str, Style] | None = None

    @property
    def text_lines(self) -> list[str]:
        """The drawn lines as plain text (before any cut to the width)."""
        return ["".join(text for text, _ in line) for line in self._buffer.lines]

    def _build_lines(self, size: Size) -> tuple[Line, ...]:
        """The panel's lines for ``size`` (subclasses)."""
        raise NotImplementedError

    def on_resize(self) -> None:
        self._buffer.strips.clear()
        self._buffer.rebuild(self, force_full=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._buffer.strips.clear()
        self._palette = None

    def _styles(self) -> dict[str, Style]:
        if self._palette is None:
            self._palette = named_palette(self, self.STYLE_NAMES)
        return self._palette

    def before_paint(self) -> None:
        # Built for the size being painted (the frame after a layout comes before on_resize),
        # once per paint: asking a widget its size walks the screen's map.
        self._buffer.fit(self.size)

    def render_line(self, y: int) -> Strip:
        width = self._buffer.size.width
        palette = self._styles()
        strip = self._buffer.strip(y, lambda line: spans_strip(line, palette, width))
        return strip if strip is not None else Strip.blank(width, palette[""])


class KeptLines(OneLayoutPass):
    """Mixin (first base) for a widget that changes now and then (balances, banner, orders,
    event log, the layout containers): while nothing asked it to repaint, its painted lines
    are handed back as they are.

    Textual asks every widget under the frame's changed area for its lines, changed or not,
    and even unchanged lines cost it a pass over the widget's styles and line filters; a fast
    book dirties nearly the whole screen at every frame. Anything that changes what the widget
    shows goes through ``refresh`` (content, titles, cursor) or restyles it; the size, the
    scroll position and the line filters are part of the key.

    Not a Widget itself: Textual takes a widget's default CSS and component classes from its
    first Widget base, which must stay the Textual class it extends.
    """

    _kept: tuple[tuple[object, ...], list[Strip]] | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        key = (crop, self.outer_size, self.scroll_offset, tuple(self.get_line_filters()))
        kept = self._kept
        if kept is not None and kept[0] == key:
            return list(kept[1])
        strips = super().render_lines(crop)
        self._kept = (key, strips)
        return list(strips)

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if repaint:
            self._kept = None
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._kept = None
