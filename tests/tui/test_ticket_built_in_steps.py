"""The order ticket built ahead (off screen, while the book streams) gives the loop back to the
engine between its parts; a ticket composed to be shown at once is whole in its first frame.

The loop is shared with the engine (issue 11: loop lag max <= 20 ms). Mounting the ticket's
dozens of widgets at once held it 30-80 ms; here each turn of the loop registers one part (a
row) at most. Counted in turns of the loop, not in time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from textual.app import App
from textual.css.stylesheet import Stylesheet
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import Footer

import cryptoj_tui.app
from cryptoj_tui.app import CryptoJApp
from cryptoj_tui.screens.order_ticket import ROW_IDS, OrderTicketScreen
from tests.tui.helpers import AppFactory, wait_until


class Turns:
    """Counts the turns of the loop, and what each turn registered of the ticket and parsed
    of the stylesheet."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.turn = 0
        self.registered: Counter[int] = Counter()  # turn -> ticket widgets registered
        self.registered_at: dict[str, int] = {}  # widget id -> turn
        self.parsed: set[int] = set()  # turns in which the stylesheet was parsed
        self.screen_turn: int | None = None  # when the ticket screen itself was registered
        register = App._register
        parse = Stylesheet.parse
        turns = self

        def counted_register(
            app: App[Any], parent: DOMNode, *widgets: Widget, **options: Any
        ) -> list[Widget]:
            result = register(app, parent, *widgets, **options)
            for widget in widgets:
                if isinstance(widget, OrderTicketScreen) and turns.screen_turn is None:
                    turns.screen_turn = turns.turn
                if isinstance(widget, OrderTicketScreen) or in_ticket(parent):
                    turns.registered[turns.turn] += 1
                    if widget.id:
                        turns.registered_at[widget.id] = turns.turn
            return result

        def counted_parse(stylesheet: Stylesheet) -> None:
            turns.parsed.add(turns.turn)
            parse(stylesheet)

        monkeypatch.setattr(App, "_register", counted_register)
        monkeypatch.setattr(Stylesheet, "parse", counted_parse)

    async def tick(self) -> None:
        """Run as a task: one step per turn of the loop."""
        while True:
            self.turn += 1
            await asyncio.sleep(0)


def in_ticket(node: DOMNode | None) -> bool:
    while node is not None:
        if isinstance(node, OrderTicketScreen):
            return True
        node = node.parent
    return False


async def test_the_ticket_built_ahead_is_mounted_a_part_a_turn(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = Turns(monkeypatch)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        ticker = asyncio.create_task(turns.tick())
        try:
            await wait_until(pilot, lambda: app._ticket is not None and app._ticket._mounted)
        finally:
            ticker.cancel()
        ticket = app._ticket
        assert ticket is not None
        # Whole once built: every field's row, the buttons and the footer.
        for widget_id in ROW_IDS:
            assert ticket.query(f"#{widget_id}-row")
        assert ticket.query("#submit") and ticket.query("#cancel")
        assert ticket.query(Footer)
        # Spread over many turns, a part at a time (a row with its label, field, parsed
        # value and error line; a select's own parts come in later turns).
        assert len(turns.registered) >= 10
        assert max(turns.registered.values()) <= 6, turns.registered
        # Their styles were parsed ahead, while the engine connected (the main screen has
        # that done after its first frame): building the ticket parsed none.
        assert turns.screen_turn is not None
        assert not {turn for turn in turns.parsed if turn >= turns.screen_turn}
        # And it opens at once, focused, as a ticket built in one go does.
        await pilot.press("b")
        await wait_until(pilot, lambda: app.screen is ticket)
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")


async def test_a_ticket_opened_before_it_was_built_ahead_is_whole_at_once(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shown now (``b`` before the App built one ahead): all its parts are mounted together,
    so no frame shows a part of the ticket."""
    monkeypatch.setattr(cryptoj_tui.app, "TICKET_PREBUILD_DELAY_S", 3600.0)
    turns = Turns(monkeypatch)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert isinstance(app, CryptoJApp) and app._ticket is None
        ticker = asyncio.create_task(turns.tick())
        try:
            await pilot.press("b")
            ticket = app.screen
            assert isinstance(ticket, OrderTicketScreen)
            await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")
        finally:
            ticker.cancel()
        assert turns.turn > 1
        # The box's parts are its children from the start: all mounted in one turn, the
        # box's first (as Textual mounts any composed container's children).
        parts = {turns.registered_at[f"{widget_id}-row"] for widget_id in ROW_IDS}
        parts.add(turns.registered_at["buttons"])
        assert parts == {turns.registered_at["ticket"] + 1}
