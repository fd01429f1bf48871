"""The dimmed main screen behind a dialog: drawn as Textual draws it, each style tinted once.

Textual blended both colours of every segment of the main screen at every frame the book moved
under an open dialog (25-55 ms a frame). The snapshots of the dialogs (tests/tui/
test_snapshots.py) show the same pixels as before; here the backdrop is compared with
Textual's segment for segment, and a second frame of the same screen tints nothing again.
"""

from __future__ import annotations

import pytest
from rich.segment import Segment
from textual.color import Color
from textual.renderables.background_screen import BackgroundScreen

from cryptoj_tui.app import CryptoJApp
from cryptoj_tui.screens import backdrop
from cryptoj_tui.screens.backdrop import DimmedBackdrop, DimmedModalScreen
from cryptoj_tui.screens.help import HelpScreen
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory, wait_until


def drawn(renderable: BackgroundScreen, app: CryptoJApp) -> list[Segment]:
    console = app.console
    return list(console.render(renderable, console.options))


@pytest.mark.parametrize("tint", [Color(0, 0, 0, 0.5), Color(10, 20, 30, 0.6), Color(0, 0, 0, 0)])
async def test_the_backdrop_draws_what_textual_draws(
    make_app: AppFactory, engine: FakeEngine, tint: Color
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.main_screen.ladder.book is not None)
        await pilot.pause()
        screen = app.main_screen
        for _ in range(3):  # the book moves between frames: new lines, same few styles
            expected = drawn(BackgroundScreen(screen, tint), app)
            assert drawn(DimmedBackdrop(screen, tint), app) == expected
            engine.step()
            app.pull_snapshot()
            await pilot.pause()


async def test_a_second_frame_tints_no_style_again(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    tinted: list[object] = []
    process = BackgroundScreen.process_segments.__func__  # type: ignore[attr-defined]

    def counted(cls: type[BackgroundScreen], segments: list[Segment], color: Color) -> object:
        tinted.append(color)
        return process(cls, segments, color)

    monkeypatch.setattr(BackgroundScreen, "process_segments", classmethod(counted))
    monkeypatch.setattr(backdrop, "_tinted", {})
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.main_screen.ladder.book is not None)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, DimmedModalScreen)
        tint = app.screen.styles.background
        assert 0 < tint.a < 1  # translucent: the main screen shows through
        drawn(DimmedBackdrop(app.main_screen, tint), app)
        first = len(tinted)
        assert 0 < first < 200  # once per style (a screen holds a few dozen), not per segment
        drawn(DimmedBackdrop(app.main_screen, tint), app)
        assert len(tinted) == first
