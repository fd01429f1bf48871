"""Keyboard trading on the fake engine, asserting on what the ENGINE did (the fake records
every call): place and cancel orders, the kill switch from inside the order ticket with the
size field focused, flatten with its confirmation, resume with the typed word, products."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, Static

from core.clock import ManualClock
from core.denials import Denial, DenialReason
from core.emergency import FlattenResult, ResumeRefused
from core.model import OrderType, Side, TimeInForce
from core.orders import ReconcileReport
from core.ticket import TicketField
from cryptoj_tui.app import KILL_CAUSE, CryptoJApp
from cryptoj_tui.screens.confirm import ConfirmScreen
from cryptoj_tui.screens.event_text import EventTextScreen, full_text
from cryptoj_tui.screens.hidden_panels import HiddenPanelsScreen
from cryptoj_tui.screens.main import MainScreen
from cryptoj_tui.screens.order_ticket import OrderTicketScreen
from cryptoj_tui.screens.typed_confirm import TypedConfirmScreen
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory, wait_until


async def type_text(pilot: Pilot[Any], text: str) -> None:
    for character in text:
        await pilot.press(character)


async def open_ticket(pilot: Pilot[Any], key: str = "b") -> OrderTicketScreen:
    await pilot.press(key)
    await pilot.pause()
    ticket = pilot.app.screen
    assert isinstance(ticket, OrderTicketScreen)
    return ticket


def texts(app: CryptoJApp) -> list[str]:
    return list(app.main_screen.events.texts)


async def test_buy_ticket_places_a_limit_order_at_the_bid(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        best_bid = engine.book("BTC-USD").best_bid
        ticket = await open_ticket(pilot)
        assert ticket.side is Side.BUY and ticket.product.product_id == "BTC-USD"
        assert isinstance(app.focused, Input) and app.focused.id == "size"
        await type_text(pilot, "0.01")
        await pilot.pause()
        assert ticket.gate_text == "gate: ALLOWED · notional 642.43 USD"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(engine.open_orders) == 4)
        [intent] = engine.submitted
        spec = intent.spec
        assert (spec.product_id, spec.side, spec.order_type) == (
            "BTC-USD",
            Side.BUY,
            OrderType.LIMIT,
        )
        assert spec.base_size == Decimal("0.01")
        assert spec.limit_price == Decimal(f"{best_bid:.2f}")
        assert isinstance(app.screen, MainScreen)
        await wait_until(pilot, lambda: app.main_screen.orders.row_count == 4)
        assert any(text.startswith("sent BUY 0.01 BTC-USD LIMIT") for text in texts(app))


async def test_cancel_the_selected_order(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        orders = app.main_screen.orders
        orders.move_cursor(row=1)
        selected = orders.selected_order
        assert selected is not None and selected.client_order_id == "fake-client-2"
        await pilot.press("c")
        await wait_until(pilot, lambda: len(engine.open_orders) == 2)
        assert engine.cancelled == ["fake-client-2"]
        assert "fake-client-2" not in {order.client_order_id for order in engine.open_orders}
        await wait_until(pilot, lambda: orders.row_count == 2)


async def test_cancel_with_no_order_selected_sends_nothing(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    engine.set_open_orders([])
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert engine.cancelled == []


async def test_cancel_all_cancels_only_the_selected_product(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("C")
        await wait_until(pilot, lambda: len(engine.open_orders) == 1)
        assert engine.cancel_all_calls == [("BTC-USD",)]
        assert [order.product_id for order in engine.open_orders] == ["ETH-USD"]


async def test_kill_from_inside_the_ticket_with_the_size_field_focused(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await open_ticket(pilot)
        await type_text(pilot, "0.05")
        size = app.focused
        assert isinstance(size, Input) and size.id == "size" and size.cursor_position == 4
        size.cursor_position = 1  # ctrl+k in an Input deletes to the end of the line...
        await pilot.press("ctrl+k")
        # ...but the kill switch is a priority binding: the engine is HALTED, the text intact.
        assert engine.trading_state == "HALTED"
        assert engine.kill_calls == [("kill switch (keyboard)", "user")]
        assert size.value == "0.05"
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)  # the ticket is closed
        banner = app.main_screen.banner
        assert banner.text is not None and banner.text.startswith("⛔ HALTED: kill switch")
        await wait_until(pilot, lambda: not engine.open_orders)
        assert engine.submitted == []
        app.pull_snapshot()
        assert "no open orders" in (banner.text or "")


async def test_kill_latches_before_the_handler_returns(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.action_kill()
        assert engine.trading_state == "HALTED"
        assert app.main_screen.banner.level == "halted"  # shown in the same call
        assert app.kill_task is not None
        await app.kill_task
        assert engine.open_orders == ()


@pytest.mark.parametrize("key", ["ctrl+k", "f12"])
async def test_kill_keys_work_over_every_screen(
    make_app: AppFactory, engine: FakeEngine, key: str
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")  # the help screen
        await pilot.pause()
        await pilot.press(key)
        assert engine.trading_state == "HALTED"
        assert len(engine.kill_calls) == 1


async def test_after_a_kill_the_ticket_shows_the_denial_and_sends_nothing(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+k")
        await pilot.pause()
        ticket = await open_ticket(pilot, "s")
        await type_text(pilot, "0.01")
        await pilot.pause()
        assert ticket.denial is not None and ticket.denial.reason is DenialReason.TRADING_HALTED
        assert ticket.gate_text.startswith("gate: DENIED TRADING_HALTED")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is ticket  # still open: nothing was sent
        assert engine.submitted == []


async def test_ticket_shows_one_message_per_bad_field(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        ticket = await open_ticket(pilot)
        await type_text(pilot, "0.000000001")
        ticket.query_one("#price", Input).value = "64000.005"
        await pilot.pause()
        assert ticket.field_error(TicketField.SIZE) == (
            "size: 0.000000001 is below the minimum 0.00000001"
        )
        assert ticket.field_error(TicketField.PRICE) == "price: not a multiple of the tick 0.01"
        assert ticket.field_error(TicketField.STOP) == ""
        assert ticket.gate_text == "gate: — (fix the fields above)"
        ticket.query_one("#price", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is ticket
        assert app.focused is ticket.query_one("#size", Input)  # the first bad field
        assert engine.submitted == [] and engine.previewed == []


async def test_market_and_stop_limit_tickets(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ticket = await open_ticket(pilot, "s")
        ticket.query_one("#type", Select).value = OrderType.STOP_LIMIT
        await pilot.pause()
        assert ticket.query_one("#stop-row").display
        assert ticket.field_error(TicketField.STOP) == "stop: required"
        ticket.query_one("#type", Select).value = OrderType.MARKET
        ticket.query_one("#size", Input).value = "0.1"
        await pilot.pause()
        assert not ticket.query_one("#price-row").display
        # A market order is IOC and a taker: time in force and post-only are not offered.
        assert not ticket.query_one("#tif-row").display
        assert not ticket.query_one("#post-only-row").display
        assert ticket.gate_text.startswith("gate: ALLOWED · notional ≈")
        ticket.action_submit()
        await wait_until(pilot, lambda: engine.position_size("BTC-USD") == Decimal("0.3125"))
        [intent] = engine.submitted
        assert intent.spec.order_type is OrderType.MARKET
        assert intent.spec.time_in_force is TimeInForce.IOC


@pytest.mark.parametrize(
    ("typed", "size", "shown"),
    [
        ("0,5", Decimal("0.5"), "= 0.5 BTC"),
        ("0,01", Decimal("0.01"), "= 0.01 BTC"),
        ("0.25", Decimal("0.25"), "= 0.25 BTC"),
    ],
)
async def test_a_decimal_comma_is_the_decimal_mark_and_the_value_is_shown(
    make_app: AppFactory, engine: FakeEngine, typed: str, size: Decimal, shown: str
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ticket = await open_ticket(pilot)
        await type_text(pilot, typed)
        await pilot.pause()
        assert ticket.parsed_text("size") == shown
        assert ticket.parsed_text("price").startswith("= ") and "USD" in ticket.parsed_text("price")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(engine.submitted) == 1)
        [intent] = engine.submitted
        assert intent.spec.base_size == size  # never 5 or 1 for "0,5" or "0,01"


@pytest.mark.parametrize("typed", ["1,000.5", "1.000,5", "1 000", "1_000", "0,0,1"])
async def test_grouping_separators_are_refused_in_the_ticket(
    make_app: AppFactory, engine: FakeEngine, typed: str
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ticket = await open_ticket(pilot)
        await type_text(pilot, typed)
        await pilot.pause()
        assert ticket.parsed_text("size") == ""  # nothing read, so nothing shown
        assert "no thousands separators" in ticket.field_error(TicketField.SIZE)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is ticket and engine.submitted == []


async def test_a_comma_price_and_stop_show_their_values(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ticket = await open_ticket(pilot)
        ticket.query_one("#type", Select).value = OrderType.STOP_LIMIT
        ticket.query_one("#price", Input).value = "64000,5"
        ticket.query_one("#stop", Input).value = "63990,25"
        await pilot.pause()
        assert ticket.parsed_text("price") == "= 64000.5 USD"
        assert ticket.parsed_text("stop") == "= 63990.25 USD"
        ticket.query_one("#stop", Input).value = "abc"
        await pilot.pause()
        assert ticket.parsed_text("stop") == ""


async def test_post_only_reads_off_when_off(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ticket = await open_ticket(pilot)
        box = ticket.query_one("#post-only")
        assert "[ ] off" in str(box.render()) and "[x]" not in str(box.render())
        box.value = True  # type: ignore[attr-defined]
        await pilot.pause()
        assert "[x] on" in str(box.render())
        await type_text(pilot, "0.01")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(engine.submitted) == 1)
        assert engine.submitted[0].spec.post_only


async def test_a_denial_shows_its_whole_reason_with_the_limit(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    reason = "notional 6,424,300.00 USD > max per order 50,000.00 USD (per-order limit)"
    engine.deny_with = Denial(DenialReason.NOTIONAL_ABOVE_MAX, reason)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ticket = await open_ticket(pilot)
        await type_text(pilot, "100")
        await pilot.pause()
        gate = ticket.query_one("#gate")
        assert gate.size.height >= 2  # wrapped, not cut
        assert gate.region.bottom <= ticket.query_one("#ticket").region.bottom
        lines = [gate.render_line(y).text.strip() for y in range(gate.size.height)]
        assert "50,000.00 USD (per-order limit)" in " ".join(lines)


async def test_gtd_shows_the_end_time_field(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        ticket = await open_ticket(pilot)
        assert not ticket.query_one("#end-row").display
        ticket.query_one("#tif", Select).value = TimeInForce.GTD
        await pilot.pause()
        assert ticket.query_one("#end-row").display
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_gate_denial_from_the_engine_blocks_the_order(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    engine.deny_with = Denial(DenialReason.PRICE_BAND, "price 70,000 is 900 bps from mid")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        ticket = await open_ticket(pilot)
        await type_text(pilot, "0.01")
        await pilot.press("enter")
        await pilot.pause()
        assert ticket.gate_text == "gate: DENIED PRICE_BAND: price 70,000 is 900 bps from mid"
        assert app.screen is ticket and engine.submitted == []


async def test_a_submit_denied_by_the_engine_is_reported(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        intent = _intent_for(app, "0.02")
        engine.deny_with = Denial(DenialReason.ORDER_RATE, "10 orders in the last 1s")
        worker = app.submit_order(intent)
        await worker.wait()
        assert app.last_order is not None and app.last_order.denial == engine.deny_with
        await wait_until(pilot, lambda: any("DENIED" in text for text in texts(app)))


def _intent_for(app: CryptoJApp, size: str) -> Any:
    from core.ticket import TicketEntry, check_ticket, manual_intent

    product = app.engine.product("BTC-USD")
    assert product is not None
    spec = check_ticket(
        TicketEntry(Side.BUY, OrderType.LIMIT, size, price="64000.00"), product, now=0.0
    ).spec
    assert spec is not None
    return manual_intent(spec)


async def test_live_ticket_asks_before_sending(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app(mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        ticket = await open_ticket(pilot)
        await type_text(pilot, "0.01")
        await pilot.press("enter")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "Send BUY 0.01 BTC-USD LIMIT" in confirm.question
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is ticket and engine.submitted == []
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: len(engine.submitted) == 1)
        assert isinstance(app.screen, MainScreen)


async def test_flatten_needs_its_confirmation(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("F")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # the focused answer is the safe one
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and engine.flatten_calls == 0
        await pilot.press("F")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert engine.flatten_calls == 0
        await pilot.press("F")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: engine.flatten_calls == 1)
        await wait_until(pilot, lambda: engine.position_size("BTC-USD") == 0)
        assert engine.position_size("ETH-USD") == 0
        assert all(intent.reduce_only for intent in engine.submitted)
        await wait_until(
            pilot, lambda: "flatten: 2 order(s) sent, 0 denied; skipped: none" in texts(app)
        )


async def test_resume_needs_the_typed_word(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+k")
        await wait_until(pilot, lambda: not engine.open_orders)
        await pilot.press("R")
        await pilot.pause()
        typed = app.screen
        assert isinstance(typed, TypedConfirmScreen)
        await type_text(pilot, "resume")
        await pilot.press("enter")
        await pilot.pause()
        assert "type RESUME exactly" in typed.error
        assert app.screen is typed
        assert engine.resume_calls == []
        await pilot.press("escape")
        await pilot.pause()
        assert engine.trading_state == "HALTED"
        await pilot.press("R")
        await pilot.pause()
        await type_text(pilot, "RESUME")
        await pilot.press("enter")
        await wait_until(pilot, lambda: engine.trading_state == "ACTIVE")
        assert engine.resume_calls == ["RESUME"]
        await wait_until(pilot, lambda: app.main_screen.banner.text is None)


class RefusingResume(FakeEngine):
    """resume() refuses, like an engine whose reconciliation is not clean."""

    async def resume(self, confirmation: str) -> ReconcileReport:
        self.resume_calls.append(confirmation)
        raise ResumeRefused("reconciliation is not clean (1 order(s) still unknown)")


async def test_a_refused_resume_says_why(make_app: AppFactory, clock: ManualClock) -> None:
    engine = RefusingResume(clock=clock)
    app = make_app(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+k")
        await pilot.press("R")
        await pilot.pause()
        await type_text(pilot, "RESUME")
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("resume refused" in text for text in texts(app)))
        assert engine.trading_state == "HALTED"


class FailingCancel(FakeEngine):
    """cancel() fails like a venue that is down."""

    async def cancel(self, client_order_ids: Any) -> int:
        raise ConnectionError("venue unreachable")


async def test_a_failing_command_is_reported_and_the_app_stays(
    make_app: AppFactory, clock: ManualClock
) -> None:
    app = make_app(engine=FailingCancel(clock=clock))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await wait_until(
            pilot,
            lambda: "cancel failed: ConnectionError: venue unreachable" in texts(app),
        )
        assert app.is_running


async def test_switching_product_then_buying_uses_that_product(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")
        await pilot.pause()
        ticket = await open_ticket(pilot)
        assert ticket.product.product_id == "ETH-USD"
        await type_text(pilot, "0.5")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(engine.submitted) == 1)
        assert engine.submitted[0].spec.product_id == "ETH-USD"
        assert engine.submitted[0].spec.limit_price == Decimal(
            f"{engine.book('ETH-USD').best_bid:.2f}"
        )


async def test_unknown_product_details_keep_the_ticket_closed(
    make_app: AppFactory, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "product", lambda product_id: None)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_strategy_pause_and_resume(make_app: AppFactory, clock: ManualClock) -> None:
    engine = FakeEngine(clock=clock, strategy="market_maker")
    app = make_app(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        assert engine.strategy_calls == ["pause"]
        assert "strategy market_maker ⏸ paused" in app.main_screen.status_bar.text
        await pilot.press("t")
        await pilot.pause()
        assert engine.strategy_calls == ["pause", "resume"]
        await pilot.press("ctrl+k")  # the kill switch pauses the strategy too
        await pilot.pause()
        assert "⏸ paused" in app.main_screen.status_bar.text


async def test_no_strategy_no_call(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        assert engine.strategy_calls == []


async def test_quitting_live_with_open_orders_asks_what_to_do(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app(mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("s")  # stay
        await pilot.pause()
        assert app.is_running and engine.stop_calls == 0
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("c")  # cancel all, then quit
        await wait_until(pilot, lambda: app.return_code is not None)
    assert engine.cancel_all_calls == [None]
    assert engine.stop_calls == 1


async def test_quitting_live_leaving_orders_open(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app(mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("l")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert engine.cancel_all_calls == [] and engine.stop_calls == 1


async def test_palette_offers_the_less_common_actions(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        commands = {command.title: command for command in app.get_system_commands(app.screen)}
        assert {"Kill switch", "Flatten", "Resume trading", "Pause / resume strategy"} <= set(
            commands
        )
        commands["Cancel all orders of the product"].callback()
        await wait_until(pilot, lambda: engine.cancel_all_calls == [("BTC-USD",)])
        commands["Kill switch"].callback()
        assert engine.trading_state == "HALTED"


class DenyingFlatten(FakeEngine):
    """flatten() whose orders the gate refuses (e.g. over the per-order notional)."""

    async def flatten(self, *, confirmed: bool) -> FlattenResult:
        result = await super().flatten(confirmed=confirmed)
        denial = Denial(DenialReason.NOTIONAL_ABOVE_MAX, "notional 134,000.00 > max 25,000.00")
        return FlattenResult(
            tuple(replace(order, denial=denial) for order in result.orders), result.skipped
        )


async def test_a_denied_flatten_is_not_reported_as_done(
    make_app: AppFactory, clock: ManualClock
) -> None:
    engine = DenyingFlatten(clock=clock)
    app = make_app(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("F")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(
            pilot, lambda: "flatten: 0 order(s) sent, 2 denied; skipped: none" in texts(app)
        )


# ---------------------------------------------------------------------------- no surprises


async def test_resume_while_active_says_there_is_nothing_to_resume(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)  # no RESUME dialog
        assert any("nothing to resume" in str(n.message) for n in app._notifications)


async def test_flatten_dialog_lists_what_it_will_sell(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("F")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        # The fake engine holds 0.4125 BTC and 3.5 ETH (SOL flat: not listed).
        assert "BTC-USD: sell 0.4125  ≈ " in dialog.question
        assert "ETH-USD: sell 3.5  ≈ " in dialog.question
        assert "SOL-USD" not in dialog.question
        assert "total ≈ " in dialog.question
        await pilot.press("n")


async def test_a_cancel_names_the_order(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        order = app.main_screen.orders.selected_order
        assert order is not None and order.limit_price is not None
        await pilot.press("c")
        await wait_until(pilot, lambda: bool(engine.cancelled))
        said = [text for text in texts(app) if text.startswith("cancel ")]
        assert said[-1].startswith(
            f"cancel {order.side.value} {order.base_size} {order.product_id} LIMIT @ "
        )
        assert f"{order.limit_price:,f}" in said[-1]


async def test_the_palette_has_one_keys_entry_and_a_screenshot_that_saves(
    make_app: AppFactory, engine: FakeEngine, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"  # does not exist yet, like a fresh ~/Downloads
    engine.settings = SimpleNamespace(storage=SimpleNamespace(data_dir=data_dir))  # type: ignore[attr-defined]
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert titles.count("Keys") == 1 and titles.count("Screenshot") == 1
        saved = app.save_console_svg()
        assert saved is not None and saved.parent == data_dir / "screenshots"
        assert saved.read_text().startswith("<svg")
        await pilot.pause()
        assert any(str(saved) in str(n.message) for n in app._notifications)


async def test_the_event_log_opens_in_full(make_app: AppFactory, engine: FakeEngine) -> None:
    long_text = "cannot reach api.coinbase.com " + "x" * 150 + " END"
    engine.add_event("warning", long_text)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert long_text in texts(app)
        await pilot.press("e")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EventTextScreen)
        shown = screen.query_one("#text", Static)
        assert long_text in str(full_text(screen.events))
        lines = [shown.render_line(y).text.rstrip() for y in range(shown.size.height)]
        assert any(line.endswith("END") for line in lines)  # wrapped, the end is on screen
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_narrow_terminals_say_what_is_hidden_and_show_it(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(106, 30)) as pilot:
        await pilot.pause()
        hint = app.main_screen.query_one("#hidden-hint", Static)
        assert hint.display and "press v" in str(hint.content)
        assert not app.main_screen.gauges.display
        await pilot.press("v")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HiddenPanelsScreen)
        assert screen.gauges.lines and screen.balances.rows
        await pilot.press("escape")
        await pilot.pause()
    wide = make_app()
    async with wide.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert not wide.main_screen.query_one("#hidden-hint", Static).display


@pytest.mark.parametrize("size", [(80, 24), (106, 30), (160, 48)])
async def test_the_live_quit_dialog_never_cuts_a_button(
    make_app: AppFactory, size: tuple[int, int]
) -> None:
    app = make_app(mode="live")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        box = dialog.query_one("#choices").region
        for button in dialog.query(Button):
            label = str(button.label)
            assert button.region.width >= len(label)  # the whole label fits
            assert box.contains_region(button.region)
        # Only the dialog's keys in the footer, not the main screen's (b Buy, s Sell...).
        footer_keys = {binding.action for _, binding, *_ in dialog.active_bindings.values()}
        assert "app.order_ticket('BUY')" not in footer_keys


def press_in_the_terminal(app: CryptoJApp, key: str, character: str | None) -> None:
    """``key`` as the terminal driver's reader hands it over (``driver.send_message``)."""
    driver = app._driver
    assert driver is not None
    event = events.Key(key, character)
    event.set_sender(app)
    driver.send_message(event)


def press_kill_in_the_terminal(app: CryptoJApp) -> None:
    press_in_the_terminal(app, "ctrl+k", None)


async def test_a_kill_key_from_the_terminal_latches_on_arrival(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    """The driver's reader latches HALTED as it hands the key over (``halt_now``, before the
    loop runs anything); the kill itself (sweep, banner) runs at the head of the very next
    loop pass as a plain callback, not a pass later behind whatever that pass runs."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        press_kill_in_the_terminal(app)
        assert engine.trading_state == "HALTED"  # latched before the loop ran
        assert engine.halt_now_calls == [(KILL_CAUSE, "user")]
        assert engine.kill_calls == []  # the rest is the loop's
        await asyncio.sleep(0)  # one loop pass
        assert len(engine.kill_calls) == 1
        await pilot.pause()
        assert app.main_screen.banner.level == "halted"
        assert len(engine.kill_calls) == 1  # the key's binding did not pull it again


async def test_a_failed_latch_on_arrival_still_kills_on_the_loop(
    make_app: AppFactory, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the reader's latch raises, the key still reaches the loop, which pulls the kill."""

    def broken_halt_now(cause: str = "", source: str = "") -> None:
        raise RuntimeError("latch broken")

    monkeypatch.setattr(engine, "halt_now", broken_halt_now)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        press_kill_in_the_terminal(app)
        await pilot.pause()
        assert engine.trading_state == "HALTED"
        assert len(engine.kill_calls) == 1


async def test_other_keys_from_the_terminal_keep_the_driver_path(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        press_in_the_terminal(app, "question_mark", "?")
        await wait_until(pilot, lambda: app.screen is not app.main_screen)
        assert engine.trading_state == "ACTIVE"
