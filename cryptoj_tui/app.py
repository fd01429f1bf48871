"""The CryptoJ console App.

The App is handed an engine (anything that satisfies :class:`ConsoleEngine`): the real one in
``cryptoj_tui.console``, a fake in the tests. It runs ``engine.run()`` as a worker that does
not take the App down when it fails (a crashed engine is shown, not hidden by a vanished
screen), and pulls ``engine.snapshot(selected)`` on a timer. The engine never waits for the UI.

The same timer measures event-loop lag: how late each tick fires compared with when it was
due. The UI shares the loop with the engine, so this number is the engine's latency budget
being eaten by someone.

Trading keys open modals (order ticket, confirmations) whose answers the App turns into engine
commands, run as workers so a slow venue never freezes the keyboard. The kill switch is a
priority App binding: it fires on every screen, inside modals, with an Input focused, and it
calls ``engine.kill()`` synchronously (HALTED is latched before the handler returns), then
shows the banner at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from core.clock import Clock
from core.denials import Denial
from core.emergency import RESUME_CONFIRMATION, FlattenResult, ResumeRefused
from core.model import OrderIntent, Product, Side
from core.order_state import ManagedOrder
from core.orders import ReconcileReport
from core.snapshot import BookStatus, EngineSnapshot, EventLevel, EventView, Mode
from core.ticket import describe_spec
from cryptoj_tui.console_text import describe_order, flatten_preview, screenshot_dir
from cryptoj_tui.heap import (
    CHECK_EVERY_S,
    SETTLE_S,
    collect_if_due,
    free_lines_without_the_collector,
    freeze_settled_heap,
    freeze_startup_heap,
    restore_thresholds,
    take_over_collections,
)
from cryptoj_tui.screens.confirm import YES, Choice, ConfirmScreen, yes_no
from cryptoj_tui.screens.event_text import EventTextScreen
from cryptoj_tui.screens.help import HelpRow, HelpScreen, help_rows
from cryptoj_tui.screens.hidden_panels import HiddenPanelsScreen
from cryptoj_tui.screens.main import MainScreen
from cryptoj_tui.screens.order_ticket import OrderTicketScreen
from cryptoj_tui.screens.typed_confirm import TypedConfirmScreen

log = logging.getLogger(__name__)

# How long quitting waits for engine.stop() (and, in LIVE, the cancels) before leaving anyway.
STOP_TIMEOUT_S = 5.0
KILL_CAUSE = "kill switch (keyboard)"
# The kill switch's keys (the App's priority bindings below): latched as the key arrives.
KILL_KEYS = frozenset({"ctrl+k", "f12"})
# The interpreter's thread switch interval while the console runs: the longest a kill key
# read on the terminal's thread waits for the loop's thread to let it latch HALTED.
KEY_READER_SWITCH_S = 0.001
# Nobody has typed or clicked for this long: the screen is redrawn at the idle rate only (a
# console left open all day must not keep a core busy); any key or click restores the full
# rate at once. The kill switch never waits for a frame either way (see post_message).
IDLE_AFTER_S = 15.0
IDLE_REFRESH_HZ = 2.0
USER_INPUT = (events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp)
# Keys that act at once even while a ticket opens: the kill switch and quitting.
KEYS_NEVER_HELD = KILL_KEYS | {"ctrl+c"}
# The longest keys are held for a ticket that is opening (then they go wherever focus is).
TICKET_KEY_HOLD_S = 3.0
# The order ticket is built and composed this long after the first live book is shown (at
# idle, not in the frames that bring the first prices), then reused for every order.
TICKET_PREBUILD_DELAY_S = 0.5
TICKET_SCREEN = "order-ticket"
# Turns of the event loop the engine gets to send its first requests before the first paint.
ENGINE_HEAD_START_TURNS = 4
# Until the first live book, the App looks for it this often (then only at the frame rate),
# for this long at most (offline, no book comes: the frame rate is enough then).
FIRST_PRICES_POLL_S = 0.02
FIRST_PRICES_POLL_FOR_S = 10.0
# Modals the kill switch closes: an order being drafted is moot once trading is HALTED.
_CLOSED_BY_KILL = (OrderTicketScreen, ConfirmScreen, TypedConfirmScreen)
# What to do with open orders when quitting LIVE.
QUIT_CANCEL = "cancel"
QUIT_LEAVE = "leave"
QUIT_STAY = "stay"

T = TypeVar("T")


class ConsoleEngine(Protocol):
    """What the console needs from an engine (``core.engine.Engine`` is the real one).

    Commands that talk to the venue are coroutines the App runs as workers, never awaited in
    a key handler. ``kill`` is synchronous: it latches HALTED inside the call and schedules
    the cancels, so the key that pulls it waits on nothing.
    """

    async def run(self) -> None:
        """Run until :meth:`stop` is called."""
        ...

    async def stop(self) -> None: ...

    def snapshot(self, product_id: str) -> EngineSnapshot:
        """Everything the screen shows for ``product_id``, now. Cheap: called ~10 times a second."""
        ...

    async def submit(self, intent: OrderIntent) -> ManagedOrder:
        """Through the gate to the venue; a refusal comes back as a DENIED order."""
        ...

    async def cancel(self, client_order_ids: Sequence[str]) -> int: ...

    async def cancel_all(self, product_ids: Sequence[str] | None = None) -> int: ...

    def kill(self, cause: str = ..., source: str = ...) -> asyncio.Task[Any]:
        """Latch HALTED now; the returned task cancels every open order."""
        ...

    def halt_now(self, cause: str = ..., source: str = ...) -> None:
        """Latch HALTED at once; safe from any thread. ``kill`` must follow on the loop."""
        ...

    async def flatten(self, *, confirmed: bool) -> FlattenResult: ...

    async def resume(self, confirmation: str) -> ReconcileReport:
        """Back to ACTIVE; raises ``core.emergency.ResumeRefused`` with the reason if not."""
        ...

    def pause_strategy(self) -> None: ...

    def resume_strategy(self) -> None: ...

    def preview(self, intent: OrderIntent) -> Denial | None:
        """The gate's decision for ``intent`` now, without counting it in the order rate."""
        ...

    def product(self, product_id: str) -> Product | None:
        """Increments and limits of ``product_id`` (None until loaded from the venue)."""
        ...


class CryptoJApp(App[None]):
    """The trading console."""

    TITLE = "CryptoJ"
    CSS_PATH = "app.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        # The kill switch: priority, so neither a modal nor a focused Input can swallow it.
        Binding(
            "ctrl+k",
            "kill",
            "KILL",
            tooltip="Kill switch: HALT trading and cancel every open order (no confirmation)",
            priority=True,
            id="app.kill",
        ),
        Binding(
            "f12",
            "kill",
            "KILL",
            tooltip="Kill switch: HALT trading and cancel every open order (no confirmation)",
            show=False,
            priority=True,
            id="app.kill_spare",
        ),
        Binding("question_mark", "help", "Keys", tooltip="Show every key", id="app.help"),
        Binding("q", "quit", "Quit", tooltip="Stop the engine and quit", id="app.quit"),
        # Replaces Textual's "press ctrl+q to quit" hint: in a terminal, ctrl+c means quit.
        Binding(
            "ctrl+c",
            "quit",
            "Quit",
            tooltip="Stop the engine and quit",
            show=False,
            priority=True,
            id="app.quit_ctrl_c",
        ),
    ]

    def __init__(
        self,
        engine: ConsoleEngine,
        *,
        mode: Mode,
        products: Sequence[str],
        clock: Clock,
        refresh_hz: float = 10.0,
        idle_refresh_hz: float = IDLE_REFRESH_HZ,
        cursor_blink: bool = True,
    ) -> None:
        if not products:
            raise ValueError("the console needs at least one product")
        if refresh_hz <= 0 or idle_refresh_hz <= 0:
            raise ValueError(
                f"refresh_hz and idle_refresh_hz must be positive, got {refresh_hz}, "
                f"{idle_refresh_hz}"
            )
        super().__init__()
        self.engine = engine
        self.mode = Mode(mode)
        self.products: tuple[str, ...] = tuple(products)
        self.clock = clock
        self.refresh_interval = 1.0 / refresh_hz
        self.idle_interval = max(self.refresh_interval, 1.0 / idle_refresh_hz)
        self._last_input = clock.monotonic()
        self._last_pull: float | None = None
        self.cursor_blink = cursor_blink
        self._selected_index = 0
        self._main_screen: MainScreen | None = None
        self._engine_worker: Worker[None] | None = None
        self._pull_timer: Timer | None = None
        self._first_prices_timer: Timer | None = None
        self._last_tick: float | None = None
        self._quitting = False
        # Whether a live book has been shown (the start-up is over: heap, ticket, first prices).
        self._first_book_shown = False
        # The collector's thresholds before the console took its collections over.
        self._gc_thresholds: tuple[int, int, int] | None = None
        self._switch_interval: float | None = None  # the interpreter's, while the console runs
        self.loop_lag_ms: float | None = None
        self.engine_error: str | None = None
        self.last_snapshot: EngineSnapshot | None = None
        self._snapshot_error: str | None = None
        # The running kill sequence (kept so it is not garbage collected mid-way).
        self.kill_task: asyncio.Task[Any] | None = None
        # The ticket being opened and the keys typed meanwhile (see action_order_ticket).
        self._opening_ticket: OrderTicketScreen | None = None
        self._keys_for_ticket: list[events.Key] = []
        # Held keys re-posted to the ticket and not handled yet (ids): keys of the same burst
        # still queued behind them are re-posted after them, so none overtakes another.
        self._replayed_keys: set[int] = set()
        # The ticket built ahead and reused (see prebuild_ticket).
        self._ticket: OrderTicketScreen | None = None
        # ids of kill key events latched on arrival, not yet handled (see post_message).
        self._kill_keys_latched: set[int] = set()
        self.last_order: ManagedOrder | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def selected_product(self) -> str:
        return self.products[self._selected_index]

    @property
    def main_screen(self) -> MainScreen:
        if self._main_screen is None:
            self._main_screen = MainScreen(self.products)
        return self._main_screen

    @property
    def is_live(self) -> bool:
        return self.mode is Mode.LIVE

    def get_default_screen(self) -> Screen[None]:
        return self.main_screen

    # -- lifecycle -------------------------------------------------------------------------

    async def on_load(self) -> None:
        # The engine starts connecting before the screen is composed and first painted, so
        # its round trips to the venue overlap that work instead of queueing behind it.
        self._engine_worker = self.run_worker(
            self.engine.run(),
            name="engine",
            group="engine",
            description="engine.run()",
            exit_on_error=False,
        )
        # A few turns of the loop for it to send its first requests (its tasks start on the
        # next turns; composing the screen does not give the loop back until it is done).
        for _ in range(ENGINE_HEAD_START_TURNS):
            await asyncio.sleep(0)

    def on_mount(self) -> None:
        self._pull_timer = self.set_interval(
            self.refresh_interval, self.pull_tick, name="snapshot-pull"
        )
        self._deliver_kill_keys_first()
        self.pull_snapshot()
        if not self._first_book_shown:  # no live book yet: watch for the first one closely
            self._first_prices_timer = self.set_interval(
                FIRST_PRICES_POLL_S,
                self._poll_first_prices,
                name="first-prices",
                repeat=round(FIRST_PRICES_POLL_FOR_S / FIRST_PRICES_POLL_S),
            )

    def _poll_first_prices(self) -> None:
        """Until the first live book is shown: show it the moment it is there, not up to a
        whole refresh interval later (start-up is measured to the first prices)."""
        timer = self._first_prices_timer
        if self._first_book_shown or self._quitting:  # a live book was shown
            if timer is not None:
                timer.stop()
            return
        try:
            live = self.engine.snapshot(self.selected_product).book.status is BookStatus.LIVE
        except Exception:  # pull_snapshot reports it on the next frame
            return
        if live:
            self.pull_snapshot()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._engine_worker or self._quitting:
            return
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self._report_engine_problem(f"{type(error).__name__}: {error}")
        elif event.state is WorkerState.SUCCESS:
            self._report_engine_problem("engine stopped")

    def _report_engine_problem(self, message: str) -> None:
        self.engine_error = message
        self.log_event(EventLevel.ERROR, message)
        self.pull_snapshot()

    def _event_time(self) -> float:
        snapshot = self.last_snapshot
        return snapshot.wall_time if snapshot is not None else self.clock.time()

    def log_event(self, level: EventLevel, text: str) -> None:
        """Write one of the App's own lines into the event log (the engine writes its own)."""
        self.main_screen.log_event(EventView(self._event_time(), level, text))

    # -- snapshot pulling ------------------------------------------------------------------

    def pull_tick(self) -> None:
        """One timer tick: measure how late it fired (the loop lag), then pull a snapshot."""
        now = self.clock.monotonic()
        if self._last_tick is not None:
            late_by = now - self._last_tick - self.refresh_interval
            self.loop_lag_ms = max(0.0, late_by) * 1000.0
        self._last_tick = now
        if self.idle and self._last_pull is not None and now - self._last_pull < self.idle_interval:
            return  # idle: every idle_interval only
        self.pull_snapshot()

    @property
    def idle(self) -> bool:
        """Whether nobody has typed or clicked for IDLE_AFTER_S (frames at the idle rate)."""
        return self.clock.monotonic() - self._last_input >= IDLE_AFTER_S

    def pull_snapshot(self) -> EngineSnapshot | None:
        """Take one snapshot of the selected product and show all of it. Never raises.

        Every panel gets its part of this one snapshot in this call, so the frame Textual
        paints next shows one moment (see MainScreen.show_snapshot).
        """
        try:
            snapshot = self.engine.snapshot(self.selected_product)
        except Exception as error:  # the UI stays up whatever the engine does
            message = f"snapshot failed: {type(error).__name__}: {error}"
            if message != self._snapshot_error:
                self._snapshot_error = message
                self.log_event(EventLevel.ERROR, message)
            return None
        self._snapshot_error = None
        self.last_snapshot = snapshot
        self._last_pull = self.clock.monotonic()
        if not self._first_book_shown and snapshot.book.status is BookStatus.LIVE:
            self._first_book_shown = True
            self.call_after_refresh(self._manage_heap)
            self.set_timer(TICKET_PREBUILD_DELAY_S, self.prebuild_ticket)
        self.main_screen.show_snapshot(
            snapshot,
            # The mode the console was started in is the one the trader must see.
            mode=self.mode,
            product_id=self.selected_product,
            loop_lag_ms=self.loop_lag_ms,
            engine_error=self.engine_error,
        )
        return snapshot

    def _manage_heap(self) -> None:
        """Freeze the start-up heap and run the old-generation collections between frames
        from now on (short, and never inside a frame: see cryptoj_tui.heap)."""
        freeze_startup_heap()
        free_lines_without_the_collector()
        if self._gc_thresholds is None:
            self._gc_thresholds = take_over_collections()
            self.set_interval(CHECK_EVERY_S, collect_if_due, name="collections")
            self.set_timer(SETTLE_S, freeze_settled_heap, name="freeze settled heap")

    def on_unmount(self) -> None:
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        if self._gc_thresholds is not None:
            restore_thresholds(self._gc_thresholds)
            self._gc_thresholds = None

    # -- the kill switch -------------------------------------------------------------------

    def _deliver_kill_keys_first(self) -> None:
        """Latch a kill key the moment the terminal driver reads it, on the driver's thread.

        Textual reads the terminal on a thread of its own and sends every event to the loop
        as a coroutine (``run_coroutine_threadsafe``), which runs once the loop is free: after
        the frame it may be painting, a garbage collection, a burst of market data. A kill
        key instead latches HALTED right there (``engine.halt_now``: the gate refuses the next
        order from that moment, whatever the loop is doing), then goes to the loop as one
        plain callback, at the head of its next pass, where :meth:`post_message` pulls the
        kill switch itself (the sweep, the journal, the banner). Every other event keeps the
        driver's own path.
        """
        driver = self._driver
        if driver is None:
            return
        loop = asyncio.get_running_loop()
        send = driver.send_message
        halt_now = self.engine.halt_now

        def send_message(message: Message) -> None:
            if isinstance(message, events.Key) and message.key in KILL_KEYS:
                try:
                    halt_now(KILL_CAUSE, "user")
                except Exception:  # the loop's kill() below still latches, and reports it
                    log.exception("latching HALTED on the key's arrival failed")
                loop.call_soon_threadsafe(self.post_message, message)
            else:
                send(message)

        driver.send_message = send_message  # type: ignore[method-assign]
        # The reader thread needs the interpreter to run that latch. While the loop paints a
        # frame it holds it, and Python hands it over only every switch interval (5 ms by
        # default): a shorter one bounds the key's wait. The console has few threads (the
        # terminal's reader and writer, both mostly asleep), so the switches cost ~nothing.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, KEY_READER_SWITCH_S))

    def post_message(self, message: Message) -> bool:
        """Queue ``message``; a kill key latches HALTED here, before it waits in the queue.

        Keys reach the App through its message queue, behind whatever is queued or running
        (a frame being painted, a worker's message). The kill switch must not wait for any
        of that: the key is latched as it is posted, on the event loop, and when its turn
        in the queue comes it only closes the tickets and shows the banner (see on_event).
        """
        if (
            isinstance(message, events.Key)
            and message.key in KILL_KEYS
            and threading.get_ident() == self._thread_id
            and self._latch_kill()
        ):
            self._kill_keys_latched.add(id(message))
        return super().post_message(message)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, USER_INPUT):
            self._last_input = self.clock.monotonic()  # back to the full frame rate
        if isinstance(event, events.Key):
            if not self._screen_stacks.get(self._current_mode):
                return  # quitting, its screens gone: a key still queued has nowhere to go
            if id(event) in self._kill_keys_latched:
                # Latched on arrival (post_message): the rest of the kill, not a second one.
                self._kill_keys_latched.discard(id(event))
                event.stop()
                self._show_kill()
                return
            if self._opening_ticket is not None and event.key not in KEYS_NEVER_HELD:
                self._keys_for_ticket.append(event)  # typed into the ticket once it is up
                event.stop()
                return
            if id(event) in self._replayed_keys:
                self._replayed_keys.discard(id(event))  # a held key, now in its turn
            elif self._replayed_keys and event.key not in KEYS_NEVER_HELD:
                # Typed while the ticket opened, but queued behind the held keys' replay:
                # it goes after them, in the order it was typed.
                event.stop()
                self._post_to_ticket([event])
                return
        await super().on_event(event)

    def _latch_kill(self) -> bool:
        """Pull the kill switch (HALTED is latched inside ``engine.kill``); False if it failed."""
        try:
            self.kill_task = self.engine.kill(KILL_CAUSE, "user")
        except Exception as error:  # must be seen: the trader believes trading stopped
            self.log_event(EventLevel.ERROR, f"KILL SWITCH FAILED: {type(error).__name__}: {error}")
            self.notify(str(error), title="Kill switch failed", severity="error", timeout=30)
            return False
        return True

    def action_kill(self) -> None:
        """HALT now (latched inside ``engine.kill``), close any ticket, show the banner."""
        if self._latch_kill():
            self._show_kill()

    def _show_kill(self) -> None:
        """After the latch: close any ticket or confirmation, show HALTED at once."""
        # Keys held for a ticket being opened are moot once trading is HALTED.
        self._opening_ticket = None
        self._keys_for_ticket = []
        while isinstance(self.screen, _CLOSED_BY_KILL):
            self.screen.dismiss(None)
        self.pull_snapshot()

    # -- orders ----------------------------------------------------------------------------

    def action_order_ticket(self, side: str) -> None:
        """Open the buy (``"BUY"``) or sell (``"SELL"``) ticket for the selected product."""
        product_id = self.selected_product
        product = self.engine.product(product_id)
        if product is None:
            self.notify(f"{product_id}: product details are not loaded yet", severity="warning")
            return
        order_side = Side(side)
        ticket = self._ticket
        if ticket is not None and ticket not in self.screen_stack:
            ticket.prepare(order_side, product, price=self._touch(order_side))
        else:  # not built yet (or, impossibly, already open): a fresh one
            ticket = self._new_ticket(order_side, product)
        # Keys typed before the ticket can take them (it composes and focuses its size field
        # over a few frames) are kept and typed into it once it is up: "b" then "0.02" at
        # once must leave 0.02 in the size, not select product 2 on the main screen.
        self._opening_ticket = ticket
        self._keys_for_ticket = []
        mounted = self.push_screen(ticket, self._submit_from_ticket)

        async def when_shown() -> None:
            try:
                await mounted
            finally:
                # After the frame that shows it (its focus is set by then), even if it failed.
                ticket.call_after_refresh(self._replay_keys_for_ticket, ticket)

        self.run_worker(when_shown(), group="ticket", exit_on_error=False)
        # Never held for long: whatever happens to the ticket, the keyboard comes back.
        self.set_timer(TICKET_KEY_HOLD_S, lambda: self._replay_keys_for_ticket(ticket, force=True))

    def _new_ticket(self, side: Side, product: Product) -> OrderTicketScreen:
        return OrderTicketScreen(
            side,
            product,
            mode=self.mode,
            preview=self.engine.preview,
            now=self.clock.time,
            price=self._touch(side),
            cursor_blink=self.cursor_blink,
        )

    def prebuild_ticket(self) -> None:
        """Build and compose the order ticket now, off screen, for ``b``/``s`` to show at once.

        Composing it (a dozen widgets, two selects, their styles) on the key took 0.1-1 s
        while the trader waited; built here, at idle after start-up, and reused for every
        order (``OrderTicketScreen.prepare`` makes it fresh), only showing it is left.
        Tried again later while the selected product's details are not loaded.
        """
        stack = self.screen_stack
        if self._ticket is not None or self._quitting or not stack:  # not while closing
            return
        product = self.engine.product(self.selected_product)
        if product is None or stack[-1] is not self.main_screen:  # later, at idle
            self.set_timer(TICKET_PREBUILD_DELAY_S, self.prebuild_ticket)
            return
        ticket = self._ticket = self._new_ticket(Side.BUY, product)
        self.install_screen(ticket, TICKET_SCREEN)
        # What push_screen does first for a screen that is not running (start its message
        # pump: compose, mount, styles), without pushing it. textual (pinned in
        # pyproject.toml) has no public call for this; tests/tui/test_app.py checks it.
        self._get_screen(TICKET_SCREEN)

    def _replay_keys_for_ticket(self, ticket: OrderTicketScreen, *, force: bool = False) -> None:
        """Hand the keys held while ``ticket`` was opening to it (to its focused field)."""
        if self._opening_ticket is not ticket:
            return
        focused = self.focused
        if (
            not force
            and self.screen is ticket
            and (focused is None or focused.screen is not ticket)
        ):
            # Its field takes focus a moment after it is shown: the keys wait for that.
            ticket.call_after_refresh(self._replay_keys_for_ticket, ticket)
            return
        keys, self._keys_for_ticket = self._keys_for_ticket, []
        self._opening_ticket = None
        self._post_to_ticket(keys)

    def _post_to_ticket(self, keys: Sequence[events.Key]) -> None:
        """Queue ``keys`` again, now for the open ticket (its focused field takes them)."""
        for key in keys:
            replay = events.Key(key.key, key.character)
            replay.set_sender(self)
            self._replayed_keys.add(id(replay))
            self.post_message(replay)

    def _touch(self, side: Side) -> Decimal | None:
        """The passive price to start a ticket from: the best bid to buy, the best ask to sell."""
        snapshot = self.last_snapshot
        if snapshot is None or snapshot.book.product_id != self.selected_product:
            return None
        book = snapshot.book
        price = book.best_bid if side is Side.BUY else book.best_ask
        return None if price is None else Decimal(f"{price:.{book.price_decimals}f}")

    def _submit_from_ticket(self, intent: OrderIntent | None) -> None:
        if intent is not None:
            self.submit_order(intent)

    def submit_order(self, intent: OrderIntent) -> Worker[ManagedOrder | None]:
        """Submit in the background; the outcome goes to the event log."""
        described = describe_spec(intent.spec)

        def done(order: ManagedOrder) -> None:
            self.last_order = order
            if order.denial is not None:
                self.notify(str(order.denial), title="Order denied", severity="error")
            else:
                self.log_event(EventLevel.INFO, f"sent {described}: {order.state.value}")

        return self._command(f"submit {described}", self.engine.submit(intent), done)

    def action_cancel_selected(self) -> None:
        order = self.main_screen.selected_order
        if order is None:
            self.notify("no open order selected", severity="warning")
            return
        self.log_event(EventLevel.INFO, f"cancel {describe_order(order)}: request sent")
        self._command("cancel", self.engine.cancel([order.client_order_id]))

    def action_cancel_all(self) -> None:
        product_id = self.selected_product

        def done(count: int) -> None:
            self.log_event(EventLevel.INFO, f"cancel all {product_id}: {count} cancel(s) sent")

        self._command(f"cancel all {product_id}", self.engine.cancel_all([product_id]), done)

    # -- emergency -------------------------------------------------------------------------

    def action_flatten(self) -> None:
        """Ask, then flatten every position (reduce-only, price-protected IOC orders)."""

        def answered(answer: str | None) -> None:
            if answer != YES:
                return
            self.log_event(EventLevel.WARNING, "flatten confirmed: selling what is held")
            self._command("flatten", self.engine.flatten(confirmed=True), self._flattened)

        self.push_screen(
            ConfirmScreen(
                "Flatten",
                "Sell what is held of every traded product now, with reduce-only, "
                "price-protected immediate-or-cancel orders sized from fresh balances?\n\n"
                + flatten_preview(self.last_snapshot),
                yes_no("Flatten", "Keep positions"),
                danger=True,
            ),
            answered,
        )

    def _flattened(self, result: FlattenResult) -> None:
        skipped = "; ".join(result.skipped) or "none"
        denied = [order for order in result.orders if order.denial is not None]
        sent = len(result.orders) - len(denied)
        self.log_event(
            EventLevel.ERROR if denied else EventLevel.INFO,
            f"flatten: {sent} order(s) sent, {len(denied)} denied; skipped: {skipped}",
        )
        if denied:
            # The positions are still there: the trader must see it, not just scroll to it.
            self.notify(
                "; ".join(str(order.denial) for order in denied),
                title=f"Flatten: {len(denied)} order(s) denied",
                severity="error",
                timeout=15,
            )

    def action_resume(self) -> None:
        """Ask for the typed confirmation, then resume (the engine reconciles first)."""
        if self._nothing_to_resume():
            return

        def answered(typed: str | None) -> None:
            if typed is None:
                return
            self._command("resume", self._resume(typed))

        self.push_screen(
            TypedConfirmScreen(
                "Resume trading",
                "Trading goes back to ACTIVE only after a clean reconciliation with the venue. "
                f"Type {RESUME_CONFIRMATION} to resume.",
                RESUME_CONFIRMATION,
                cursor_blink=self.cursor_blink,
            ),
            answered,
        )

    async def _resume(self, typed: str) -> ReconcileReport | None:
        try:
            report = await self.engine.resume(typed)
        except ResumeRefused as refused:
            self.log_event(EventLevel.ERROR, f"resume refused: {refused}")
            self.notify(str(refused), title="Resume refused", severity="error")
            return None
        self.log_event(EventLevel.INFO, "trading resumed")
        self.pull_snapshot()
        return report

    def action_toggle_strategy(self) -> None:
        snapshot = self.last_snapshot
        strategy = None if snapshot is None else snapshot.strategy
        if strategy is None:
            self.notify("no strategy is running", severity="warning")
            return
        if strategy.paused:
            self.engine.resume_strategy()
        else:
            self.engine.pause_strategy()
        self.pull_snapshot()

    def _command(
        self,
        what: str,
        command: Awaitable[T],
        on_done: Callable[[T], None] | None = None,
    ) -> Worker[T | None]:
        """Run an engine command as a worker; failures are shown, never raised into the App."""

        async def run() -> T | None:
            try:
                result = await command
            except Exception as error:  # a failing command is reported, the console stays
                self.log_event(EventLevel.ERROR, f"{what} failed: {type(error).__name__}: {error}")
                self.notify(
                    f"{type(error).__name__}: {error}", title=f"{what} failed", severity="error"
                )
                return None
            if on_done is not None:
                on_done(result)
            self.pull_snapshot()
            return result

        return self.run_worker(run(), group="commands", description=what, exit_on_error=False)

    # -- products and help -----------------------------------------------------------------

    def action_select_product(self, index: int) -> None:
        """Select the product at ``index`` (0-based); out-of-range numbers are ignored."""
        if 0 <= index < len(self.products) and index != self._selected_index:
            self._selected_index = index
            self.pull_snapshot()

    def action_next_product(self) -> None:
        self.action_select_product((self._selected_index + 1) % len(self.products))

    def action_previous_product(self) -> None:
        self.action_select_product((self._selected_index - 1) % len(self.products))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
        else:
            self.push_screen(HelpScreen(self.help_rows()))

    def help_rows(self) -> list[HelpRow]:
        """The help's lines, from the App's and the main screen's bindings."""
        return help_rows([*self.BINDINGS, *MainScreen.BINDINGS], self.get_key_display)

    # -- full views: the event log in full, the panels a narrow terminal hides --------------

    def _nothing_to_resume(self) -> bool:
        snapshot = self.last_snapshot
        trading = None if snapshot is None else snapshot.trading
        if trading is not None and trading.state == "ACTIVE":
            self.notify("trading is ACTIVE: there is nothing to resume", severity="information")
            return True
        return False

    def action_show_help_panel(self) -> None:
        """Textual's keys side panel squeezes the layout: our help (a modal) instead."""
        self.action_help()

    def save_console_svg(self) -> Path | None:
        """Save an SVG of the screen under the data directory and say where."""
        directory = screenshot_dir(self.engine)
        name = f"cryptoj-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.svg"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            saved = Path(self.save_screenshot(name, str(directory)))
        except OSError as error:
            self.notify(f"{directory}: {error}", title="Screenshot not saved", severity="error")
            return None
        self.notify(str(saved), title="Screenshot saved")
        return saved

    def action_show_events(self) -> None:
        """Every kept event with its whole text (the log's lines may end in "…")."""
        if isinstance(self.screen, EventTextScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(EventTextScreen(tuple(self.main_screen.events.events)))

    def action_show_hidden_panels(self) -> None:
        """Balances, risk limits and the chart, which a narrow terminal has no room for."""
        if isinstance(self.screen, HiddenPanelsScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HiddenPanelsScreen(lambda: self.last_snapshot))

    # -- quitting --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop the engine (bounded wait), then leave. LIVE with open orders asks first."""
        if self._quitting:
            return
        snapshot = self.last_snapshot
        open_orders = 0 if snapshot is None else len(snapshot.open_orders)
        if self.is_live and open_orders:
            if isinstance(self.screen, ConfirmScreen):
                return  # already asking

            async def answered(answer: str | None) -> None:
                if answer == QUIT_CANCEL:
                    await self._leave(cancel_open_orders=True)
                elif answer == QUIT_LEAVE:
                    await self._leave(cancel_open_orders=False)

            self.push_screen(
                ConfirmScreen(
                    "Quit LIVE",
                    f"{open_orders} order(s) are open at Coinbase. What should happen to them?",
                    (
                        Choice(QUIT_CANCEL, "Cancel all, then quit", "c", "error"),
                        Choice(QUIT_LEAVE, "Leave them open, quit", "l", "warning"),
                        Choice(QUIT_STAY, "Stay", "s", "primary"),
                    ),
                    safe=QUIT_STAY,
                    danger=True,
                ),
                answered,
            )
            return
        await self._leave(cancel_open_orders=False)

    async def _leave(self, *, cancel_open_orders: bool) -> None:
        self._quitting = True
        if self._pull_timer is not None:
            self._pull_timer.stop()
        if cancel_open_orders:
            try:
                await asyncio.wait_for(self.engine.cancel_all(None), STOP_TIMEOUT_S)
            except Exception as error:  # quitting goes on; the log says what was left
                self.log.error(f"cancel all on quit failed: {error!r}")
        try:
            await asyncio.wait_for(self.engine.stop(), STOP_TIMEOUT_S)
        except Exception as error:  # quitting must not be blocked by a failing stop()
            self.log.error(f"engine.stop() failed: {error!r}")
        self.exit()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        # Textual's own "Keys" (a side panel that squeezes the layout) and "Screenshot" (into
        # ~/Downloads, failing when that does not exist) are replaced by ours.
        for command in super().get_system_commands(screen):
            if command.title not in ("Keys", "Screenshot"):
                yield command
        yield SystemCommand("Keys", "Show every key binding", self.action_help)
        yield SystemCommand(
            "Screenshot", "Save an SVG of the screen in the data directory", self.save_console_svg
        )
        yield SystemCommand(
            "Events in full", "The event log with every line's whole text", self.action_show_events
        )
        yield SystemCommand(
            "Kill switch", "HALT trading and cancel every open order", self.action_kill
        )
        yield SystemCommand(
            "Flatten", "Sell what is held, reduce-only (asks first)", self.action_flatten
        )
        yield SystemCommand(
            "Resume trading", "Back to ACTIVE after a halt (type RESUME)", self.action_resume
        )
        yield SystemCommand(
            "Cancel all orders of the product",
            "Cancel every open order of the selected product",
            self.action_cancel_all,
        )
        yield SystemCommand(
            "Pause / resume strategy", "Toggle the automated strategy", self.action_toggle_strategy
        )
        for index, product_id in enumerate(self.products):
            yield SystemCommand(
                f"Product {product_id}",
                f"Show {product_id} (key {index + 1})" if index < 9 else f"Show {product_id}",
                lambda index=index: self.action_select_product(index),
            )
