"""The dimmed main screen behind a dialog, tinted at the cost of a dictionary look-up.

A dialog (the order ticket, a confirmation, the help) is a modal screen with a translucent
background: the main screen shows through it, dimmed, and keeps streaming. Textual draws that
backdrop by rendering the whole main screen and blending each of its segments' two colours with
the tint, again at every frame the main screen changes under the dialog (every frame of a
moving book): 25-55 ms of the loop the engine shares, at 10 frames a second, for as long as the
dialog is open (docs/design.md §5).

The main screen holds a few dozen distinct styles, and a style tinted with a colour is always
the same style: :class:`DimmedBackdrop` tints each once and looks it up afterwards, which
draws, segment for segment, what Textual's ``BackgroundScreen`` draws.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.renderables.background_screen import BackgroundScreen
from textual.screen import ModalScreen, ScreenResultType

# Tinted styles by (style, tint): a screen holds a few dozen styles, the themes a few tints.
# Past this many the memo starts over (a style per price would be a bug elsewhere; the memo
# must not grow with it).
MEMO_LIMIT = 4096
_tinted: dict[tuple[Style | None, Color], Style] = {}


class DimmedBackdrop(BackgroundScreen):
    """Textual's ``BackgroundScreen`` (a screen drawn under a translucent one), each style
    tinted once."""

    @classmethod
    def process_segments(cls, segments: Iterable[Segment], color: Color) -> Iterable[Segment]:
        if color.a == 0:  # Textual's special case (a transparent tint): styles cleared only
            yield from super().process_segments(segments, color)
            return
        tinted = _tinted
        for segment in segments:
            text, style, control = segment
            if control:
                yield segment
                continue
            key = (style, color)
            new_style = tinted.get(key)
            if new_style is None:
                # Textual's own tinting of this one segment gives the tinted style.
                (done,) = super().process_segments((Segment(" ", style),), color)
                new_style = done.style or Style()
                if len(tinted) >= MEMO_LIMIT:
                    tinted.clear()
                tinted[key] = new_style
            yield Segment(text, new_style)


class DimmedModalScreen(ModalScreen[ScreenResultType]):
    """A modal screen whose translucent background draws the screen beneath with
    :class:`DimmedBackdrop` (what Textual draws, without the per-segment colour blending)."""

    def render(self) -> RenderableType:
        renderable = super().render()
        if type(renderable) is BackgroundScreen:
            return DimmedBackdrop(renderable.screen, renderable.color)
        return renderable
