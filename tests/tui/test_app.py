"""The App on the fake engine: product switching, help, quit, a failing engine, loop lag."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual import events
from textual.app import SystemCommand
from textual.css.query import NoMatches
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from core.clock import ManualClock
from core.model import Side
from core.snapshot import EngineSnapshot
from cryptoj_tui.app import CryptoJApp
from cryptoj_tui.screens.help import HelpScreen
from cryptoj_tui.screens.main import KeysFooter, MainScreen
from cryptoj_tui.screens.order_ticket import OrderTicketScreen
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory, wait_until
from widgets.order_book import RowKind


def main_screen(app: CryptoJApp) -> MainScreen:
    screen = app.screen
    assert isinstance(screen, MainScreen)
    return screen


def shown_product(app: CryptoJApp) -> str:
    book = app.main_screen.ladder.book
    assert book is not None
    return book.product_id


async def test_first_frame_shows_the_selected_product(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = main_screen(app)
        assert shown_product(app) == "BTC-USD"
        assert screen.tape.tape is not None and screen.tape.tape.product_id == "BTC-USD"
        assert screen.balances.rows is not None and screen.balances.rows[0][0] == "USD"
        assert screen.orders.row_count == 3
        assert "demo session started" in screen.events.texts
        assert "BTC-USD" in screen.status_bar.text
        assert "2026-01-01 00:00:00 UTC" in screen.status_bar.text


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["p"], "ETH-USD"),
        (["tab"], "ETH-USD"),
        (["p", "p", "p"], "BTC-USD"),  # wraps around
        (["P"], "SOL-USD"),
        (["shift+tab"], "SOL-USD"),
        (["3"], "SOL-USD"),
        (["3", "1"], "BTC-USD"),
        (["9"], "BTC-USD"),  # no 9th product: ignored
    ],
)
async def test_product_keys(make_app: AppFactory, keys: list[str], expected: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*keys)
        await pilot.pause()
        assert app.selected_product == expected
        assert shown_product(app) == expected
        screen = main_screen(app)
        assert screen.tape.tape is not None and screen.tape.tape.product_id == expected
        assert expected in screen.status_bar.text


async def test_switching_product_changes_the_ladder_levels(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        btc_best_bid = engine.book("BTC-USD").best_bid
        await pilot.press("p")
        await pilot.pause()
        ladder = app.main_screen.ladder
        eth = engine.book("ETH-USD")
        bid_prices = [row.price for row in ladder.rows if row.kind is RowKind.BID]
        assert bid_prices[0] == eth.best_bid != btc_best_bid
        assert bid_prices == [price for price, _ in eth.bids[: len(bid_prices)]]
        # The ETH order from the fake's open orders is marked on its level.
        assert ladder.own_order_prices == {eth.bids[2][0]}


async def test_new_engine_data_reaches_the_ladder_on_the_next_pull(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        engine.set_level_size("BTC-USD", Side.BUY, 0, 12.5)
        app.pull_tick()
        await pilot.pause()
        best_bid = next(row for row in app.main_screen.ladder.rows if row.kind is RowKind.BID)
        assert best_bid.size == 12.5


async def test_help_opens_lists_every_binding_and_closes(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        listed = {binding_id for row in help_screen.rows for binding_id in row.binding_ids}
        declared = {
            binding.id
            for binding in [*MainScreen.BINDINGS, *CryptoJApp.BINDINGS]
            if not isinstance(binding, tuple) and binding.id
        }
        assert declared <= listed
        assert any(row.keys == "p / tab" for row in help_screen.rows)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("question_mark")
        await pilot.press("question_mark")  # ? toggles it closed too
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_stops_the_engine_and_exits(
    make_app: AppFactory, engine: FakeEngine, key: str
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: engine.running)
        await pilot.press(key)
        await pilot.pause()
    assert engine.stop_calls == 1
    assert app.return_code == 0
    assert not engine.running


async def test_engine_that_crashes_does_not_kill_the_app(
    make_app: AppFactory, clock: ManualClock
) -> None:
    broken = FakeEngine(clock=clock, run_error=RuntimeError("venue unreachable"))
    app = make_app(engine=broken)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.engine_error is not None)
        app.pull_tick()
        await pilot.pause()
        screen = main_screen(app)
        assert app.is_running
        assert app.engine_error == "RuntimeError: venue unreachable"
        assert "RuntimeError: venue unreachable" in screen.events.texts
        assert "engine ✕ RuntimeError: venue unreachable" in screen.status_bar.text
        # The screen keeps working after the crash.
        await pilot.press("p")
        await pilot.pause()
        assert shown_product(app) == "ETH-USD"


async def test_engine_failing_later_is_reported(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: engine.running)
        engine.fail(ConnectionError("socket closed"))
        await wait_until(pilot, lambda: app.engine_error is not None)
        assert app.engine_error == "ConnectionError: socket closed"
        assert app.is_running


async def test_engine_run_returning_is_reported(make_app: AppFactory, engine: FakeEngine) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: engine.running)
        await engine.stop()
        await wait_until(pilot, lambda: app.engine_error is not None)
        assert app.engine_error == "engine stopped"


class FlakySnapshots(FakeEngine):
    """Raises from snapshot() while ``broken`` is set."""

    broken = False

    def snapshot(self, product_id: str) -> EngineSnapshot:
        if self.broken:
            raise KeyError(product_id)
        return super().snapshot(product_id)


async def test_failing_snapshot_is_logged_once_and_the_app_survives(
    make_app: AppFactory, clock: ManualClock
) -> None:
    flaky = FlakySnapshots(clock=clock)
    app = make_app(engine=flaky)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        flaky.broken = True
        assert app.pull_snapshot() is None
        assert app.pull_snapshot() is None
        await pilot.pause()
        errors = [text for text in main_screen(app).events.texts if "snapshot failed" in text]
        assert errors == ["snapshot failed: KeyError: 'BTC-USD'"]
        flaky.broken = False
        assert app.pull_snapshot() is not None
        assert app.is_running


async def test_loop_lag_is_how_late_the_pull_timer_fires(
    make_app: AppFactory, clock: ManualClock
) -> None:
    # One pull every 100 s: the real timer never fires during the test; ticks are driven here.
    app = make_app(refresh_hz=0.01)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.loop_lag_ms is None  # nothing measured yet: the bar says "—"
        assert "lag —" in main_screen(app).status_bar.text
        app.pull_tick()
        clock.advance(100.25)  # due after 100 s, fired after 100.25 s: 250 ms late
        app.pull_tick()
        assert app.loop_lag_ms == pytest.approx(250.0)
        # One tick, one moment: the status line gets the lag with the rest of the snapshot.
        assert "lag 250 ms" in main_screen(app).status_bar.text
        clock.advance(99.0)  # early (a skipped tick realigns): never negative
        app.pull_tick()
        assert app.loop_lag_ms == 0.0


def test_constructor_validates_its_arguments(engine: FakeEngine, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="at least one product"):
        CryptoJApp(engine, mode="demo", products=(), clock=clock)
    with pytest.raises(ValueError, match="refresh_hz"):
        CryptoJApp(engine, mode="demo", products=("BTC-USD",), clock=clock, refresh_hz=0)
    with pytest.raises(ValueError, match="idle_refresh_hz"):
        CryptoJApp(engine, mode="demo", products=("BTC-USD",), clock=clock, idle_refresh_hz=0)


async def test_command_palette_offers_products_and_help(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        commands = list(app.get_system_commands(app.screen))
        titles = [command.title for command in commands if isinstance(command, SystemCommand)]
        assert {"Keys", "Product BTC-USD", "Product SOL-USD"} <= set(titles)
        pick_sol = next(c for c in commands if c.title == "Product SOL-USD")
        pick_sol.callback()
        await pilot.pause()
        assert shown_product(app) == "SOL-USD"


async def test_stop_that_hangs_does_not_block_quitting(
    make_app: AppFactory, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    class HangingStop(FakeEngine):
        async def stop(self) -> None:
            await asyncio.Event().wait()

    monkeypatch.setattr("cryptoj_tui.app.STOP_TIMEOUT_S", 0.05)
    app = make_app(engine=HangingStop(clock=clock))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0


@pytest.mark.parametrize(("size", "shown"), [((160, 48), True), ((80, 24), False)])
async def test_small_terminal_hides_chart_and_balances(
    make_app: AppFactory, size: tuple[int, int], shown: bool
) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = main_screen(app)
        assert screen.chart.display is shown
        assert screen.balances.display is shown
        assert screen.ladder.display and screen.tape.display and screen.orders.display
        # The ladder always has room for several levels on each side (the trading banner's
        # row is always kept, so that a kill never relayouts the screen).
        asks = [row for row in screen.ladder.rows if row.kind is RowKind.ASK]
        assert len(asks) >= (15 if shown else 5)


def type_at_once(app: CryptoJApp, *keys: tuple[str, str]) -> None:
    """Queue key events as a terminal delivers a burst: all before the first is handled."""
    for key, character in keys:
        event = events.Key(key, character)
        event.set_sender(app)
        app.post_message(event)


async def test_keys_typed_while_the_ticket_opens_land_in_it(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        # "b" then "0.02" in one burst: none of it may reach the main screen ("2" would pick
        # the second product) or be lost while the ticket composes.
        type_at_once(app, ("b", "b"), ("0", "0"), ("full_stop", "."), ("0", "0"), ("2", "2"))
        await wait_until(pilot, lambda: isinstance(app.screen, OrderTicketScreen))
        ticket = app.screen

        def size_field() -> str | None:
            try:
                return ticket.query_one("#size", Input).value
            except NoMatches:  # still composing
                return None

        await wait_until(pilot, lambda: size_field() == "0.02")
        assert app.selected_product == "BTC-USD"
        assert isinstance(app.focused, Input) and app.focused.id == "size"
        # Once the ticket is up, keys go straight to it.
        await pilot.press("5")
        assert ticket.query_one("#size", Input).value == "0.025"


async def test_escape_typed_while_the_ticket_opens_closes_it(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        pushed: list[object] = []
        push_screen = app.push_screen

        def recording_push(screen: Any, *args: Any, **kwargs: Any) -> Any:
            pushed.append(screen)
            return push_screen(screen, *args, **kwargs)

        app.push_screen = recording_push  # type: ignore[method-assign]
        type_at_once(app, ("s", "s"), ("1", "1"), ("escape", "\x1b"))
        await wait_until(pilot, lambda: bool(pushed) and isinstance(app.screen, MainScreen))
        await pilot.pause()
        assert isinstance(pushed[0], OrderTicketScreen)
        assert isinstance(app.screen, MainScreen)
        assert app.selected_product == "BTC-USD"  # the "1" went to the ticket, not here


async def test_kill_typed_while_the_ticket_opens_is_not_held(
    make_app: AppFactory, engine: FakeEngine
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        type_at_once(app, ("b", "b"), ("ctrl+k", ""))
        # Latched as it arrived, before the ticket or any frame: not held with the ticket keys.
        assert len(engine.kill_calls) == 1
        assert app.engine.snapshot("BTC-USD").trading.state == "HALTED"  # type: ignore[union-attr]
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause()
        assert len(engine.kill_calls) == 1  # the binding did not pull it a second time


async def test_idle_console_redraws_at_the_idle_rate_until_a_key(
    make_app: AppFactory, engine: FakeEngine, clock: ManualClock
) -> None:
    # Ticks are driven here (the real timer would fire every 100 s).
    app = make_app(refresh_hz=0.01, idle_refresh_hz=2.0)
    app.refresh_interval, app.idle_interval = 0.1, 0.5  # what the ticks below simulate
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        pulls: list[float] = []
        pull = app.pull_snapshot

        def counting_pull() -> EngineSnapshot | None:
            pulls.append(clock.monotonic())
            return pull()

        app.pull_snapshot = counting_pull  # type: ignore[method-assign]
        for _ in range(10):  # busy: every tick draws
            clock.advance(0.1)
            app.pull_tick()
        assert len(pulls) == 10
        clock.advance(60.0)  # nobody typed for a minute
        pulls.clear()
        for _ in range(20):  # 2 s of ticks at the idle rate of 2 Hz: 4 or 5 frames
            clock.advance(0.1)
            app.pull_tick()
        assert 4 <= len(pulls) <= 5
        assert app.idle
        await pilot.press("question_mark")  # any key: the full rate again
        await pilot.press("escape")
        assert not app.idle
        pulls.clear()
        for _ in range(5):
            clock.advance(0.1)
            app.pull_tick()
        assert len(pulls) == 5


async def test_the_footer_shows_its_keys_from_the_first_layout_without_a_rebuild(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual's footer is empty until the screen's bindings are first refreshed, then
    rebuilds (a layout pass of its own while the first prices come in). This one builds its
    keys with the screen and is never rebuilt while they stay the same."""
    rebuilds: list[KeysFooter] = []
    recompose = KeysFooter.recompose

    async def counted_recompose(footer: KeysFooter) -> None:
        rebuilds.append(footer)
        await recompose(footer)

    monkeypatch.setattr(KeysFooter, "recompose", counted_recompose)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        footer = app.main_screen.query_one(KeysFooter)
        assert len(footer.children) > 0  # built with the screen, before any bindings refresh
        for _ in range(5):  # focus, screen resume, idle: the bindings refreshes of start-up
            await pilot.pause()
        assert "Buy" in [key.description for key in footer.query(FooterKey)]
        assert rebuilds == []


async def test_the_footer_is_not_rebuilt_when_its_keys_stay_the_same(
    make_app: AppFactory,
) -> None:
    """Focus moving to the orders table refreshes the screen's bindings; the keys the footer
    shows do not change, so it keeps its key widgets (a rebuild relayouts the whole screen)."""
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        footer = app.main_screen.query_one(KeysFooter)
        await wait_until(pilot, lambda: len(footer.children) > 0)
        keys = list(footer.children)
        app.main_screen.set_focus(None)
        await pilot.pause()
        app.main_screen.set_focus(app.main_screen.orders)
        await pilot.pause()
        await pilot.pause()
        assert list(footer.children) == keys
        # Keys that do change (a dialog's own) are still shown: the help screen's footer.
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen is not app.main_screen
