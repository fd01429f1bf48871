"""The order ticket is built at idle after start-up and reused (issue 11: it shows within a
frame of ``b``): built off screen, fresh for every order, and no keystroke lost or reordered
while it opens."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from textual import events
from textual.widgets import Checkbox, Input, Select, Static

from core.model import OrderType, Side, TimeInForce
from cryptoj_tui.app import CryptoJApp
from cryptoj_tui.screens.main import MainScreen
from cryptoj_tui.screens.order_ticket import OrderTicketScreen
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory, wait_until


def post_keys(app: CryptoJApp, *keys: tuple[str, str]) -> None:
    """Queue key events as a terminal delivers a burst: all before the first is handled."""
    for key, character in keys:
        event = events.Key(key, character)
        event.set_sender(app)
        app.post_message(event)


async def built_ahead(pilot: Any) -> OrderTicketScreen:
    """Wait until the App has built and composed its ticket (off screen)."""
    app = pilot.app
    assert isinstance(app, CryptoJApp)
    # Every part mounted (a ticket built ahead mounts a part per turn; on_mount comes last).
    await wait_until(pilot, lambda: app._ticket is not None and app._ticket._mounted)
    ticket = app._ticket
    assert ticket is not None
    return ticket


def field(ticket: OrderTicketScreen, widget_id: str) -> str:
    return ticket.query_one(f"#{widget_id}", Input).value


async def test_the_ticket_is_built_off_screen_after_start_up(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        ticket = await built_ahead(pilot)
        await pilot.pause()
        # Composed, yet never shown: the trader still sees the main screen.
        assert isinstance(app.screen, MainScreen)
        assert ticket not in app.screen_stack
        await pilot.press("b")
        await wait_until(pilot, lambda: app.screen is ticket)
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")


async def test_a_burst_lands_in_the_ticket_built_ahead(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        ticket = await built_ahead(pilot)
        post_keys(app, ("b", "b"), ("0", "0"), ("full_stop", "."), ("0", "0"), ("2", "2"))
        await wait_until(pilot, lambda: app.screen is ticket and field(ticket, "size") == "0.02")
        assert app.selected_product == "BTC-USD"  # "2" did not pick the second product
        await pilot.press("5")
        assert field(ticket, "size") == "0.025"


async def test_keys_queued_behind_the_replay_keep_their_order(make_app: AppFactory) -> None:
    """A key typed while the ticket opened but still queued when the held keys are replayed
    must not overtake them ("0.0" held, "2" queued: the size reads 0.02, not 20.0)."""
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        ticket = await built_ahead(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")
        post_keys(app, ("2", "2"))  # queued first ...
        held = []
        for key, character in (("0", "0"), ("full_stop", "."), ("0", "0")):
            held.append(events.Key(key, character))
        app._post_to_ticket(held)  # ... the held keys replayed behind it
        await wait_until(pilot, lambda: field(ticket, "size") == "0.02")
        await pilot.pause()
        assert field(ticket, "size") == "0.02"


async def test_every_order_starts_from_a_fresh_ticket(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    """What was typed, chosen or shown for one order never carries into the next."""
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        ticket = await built_ahead(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")
        for key in "1e400":  # a bad size: an error line shows
            await pilot.press(key)
        ticket.query_one("#type", Select).value = OrderType.STOP_LIMIT
        ticket.query_one("#tif", Select).value = TimeInForce.GTD
        ticket.query_one("#post-only", Checkbox).value = True
        ticket.query_one("#stop", Input).value = "1"
        await pilot.pause()
        assert ticket.query(".error.-shown")  # the bad size is called out
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("2")  # ETH-USD
        await pilot.pause()
        await pilot.press("s")
        await wait_until(pilot, lambda: app.screen is ticket)
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")
        best_ask = engine.book("ETH-USD").best_ask
        assert (ticket.side, ticket.product.product_id) == (Side.SELL, "ETH-USD")
        assert ticket.has_class("-sell") and not ticket.has_class("-buy")
        assert ticket.query_one("#ticket").border_title == "SELL ETH-USD"
        assert field(ticket, "size") == "" and field(ticket, "stop") == ""
        assert field(ticket, "end") == ""
        assert Decimal(field(ticket, "price")) == Decimal(f"{best_ask:.2f}")
        assert ticket.order_type is OrderType.LIMIT
        assert ticket.time_in_force is TimeInForce.GTC
        assert ticket.query_one("#post-only", Checkbox).value is False
        assert "ETH" in ticket.query_one("#size", Input).placeholder
        # Only what a new ticket says too: the size is still to be typed.
        assert [str(line.content) for line in ticket.query(".error.-shown").results(Static)] == [
            "size: required"
        ]
        assert ticket.query_one("#stop-row").has_class("-hidden")
        assert ticket.gate_text == "gate: — (fix the fields above)"
        for key in "0.5":
            await pilot.press(key)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(engine.submitted) == 1)
        spec = engine.submitted[0].spec
        assert (spec.product_id, spec.side, spec.order_type) == (
            "ETH-USD",
            Side.SELL,
            OrderType.LIMIT,
        )
        assert spec.base_size == Decimal("0.5") and not spec.post_only
        assert spec.time_in_force is TimeInForce.GTC


@pytest.mark.parametrize("delay_s", [0.0, 0.001, 0.005, 0.01, 0.02, 0.05])
async def test_quitting_as_the_ticket_is_built_raises_nothing(
    make_app: AppFactory, delay_s: float
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        app.prebuild_ticket()
        await asyncio.sleep(delay_s)
    assert app.return_code in (None, 0)


async def test_a_build_timer_firing_as_the_app_closes_does_nothing(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        app._ticket = None
    app.prebuild_ticket()  # no screen left: nothing is built, nothing raises
    assert app._ticket is None


@pytest.mark.parametrize("opened_first", [True, False], ids=["ticket-open", "while-opening"])
async def test_a_burst_across_fields_lands_in_each_field(
    make_app: AppFactory, opened_first: bool
) -> None:
    """A trader types size, tab, price, all at once: every key lands in the field it was
    typed for. Tab moved focus only once it had bubbled up to the App, and the keys behind it
    went to the size field: "0.001<tab>7" read as size 0.0017 and the price unchanged, an
    order of the wrong size at the wrong price."""
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        ticket = await built_ahead(pilot)
        if opened_first:
            await pilot.press("b")
            await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")
        else:
            post_keys(app, ("b", "b"))
        price_before = field(ticket, "price") if opened_first else None
        post_keys(
            app,
            ("0", "0"),
            ("full_stop", "."),
            ("0", "0"),
            ("1", "1"),
            ("tab", "\t"),
            ("end", None),
            *[("backspace", "\x7f")] * 12,
            ("6", "6"),
            ("5", "5"),
            ("0", "0"),
            ("0", "0"),
            ("0", "0"),
        )
        await wait_until(pilot, lambda: field(ticket, "price") == "65000")
        await pilot.pause()
        assert field(ticket, "size") == "0.01"
        assert field(ticket, "price") == "65000"
        assert price_before != "65000"
        assert app.focused is not None and app.focused.id == "price"


async def test_enter_then_tab_on_post_only_toggles_it_and_sends_nothing(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    """Enter on the post-only checkbox and tab, typed at once: post-only is switched on and
    focus moves to the Buy button; nothing is sent. (With tab as an App priority binding, the
    enter still bubbling up from the checkbox was bound against the Buy button and sent.)"""
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        ticket = await built_ahead(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "size")
        await pilot.press("0", "full_stop", "0", "1")
        post_only = ticket.query_one("#post-only", Checkbox)
        post_only.focus()
        await pilot.pause()
        post_keys(app, ("enter", "\r"), ("tab", "\t"))
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "submit")
        for _ in range(5):
            await pilot.pause()
        assert post_only.value is True
        assert app.screen is ticket
        assert engine.submitted == []
