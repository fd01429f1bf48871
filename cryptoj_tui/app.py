"""The CryptoJ console App.

The App is handed an engine (anything that satisfies :class:`ConsoleEngine`): the real one in
``cryptoj_tui.console``, a fake in the tests. It runs ``engine.run()`` as a worker that does
not take the App down when it fails (a crashed engine is shown, not hidden by a vanished
screen), and pulls ``engine.snapshot(selected)`` on a timer. The engine never waits for the UI.

The same timer measures event-loop lag: how late each tick fires compared with when it was
due. The UI shares the loop with the engine, so this number is the engine's latency budget
being eaten by someone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import ClassVar, Protocol

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from core.clock import Clock
from core.snapshot import EngineSnapshot, EventView
from cryptoj_tui.screens.help import HelpRow, HelpScreen, help_rows
from cryptoj_tui.screens.main import MainScreen

# How long quitting waits for engine.stop() before leaving anyway.
STOP_TIMEOUT_S = 5.0


class ConsoleEngine(Protocol):
    """What the console needs from an engine."""

    async def run(self) -> None:
        """Run until :meth:`stop` is called."""
        ...

    async def stop(self) -> None: ...

    def snapshot(self, product_id: str) -> EngineSnapshot:
        """Everything the screen shows for ``product_id``, now. Cheap: called ~10 times a second."""
        ...


class CryptoJApp(App[None]):
    """The trading console."""

    TITLE = "CryptoJ"
    CSS_PATH = "app.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
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
        mode: str,
        products: Sequence[str],
        clock: Clock,
        refresh_hz: float = 10.0,
    ) -> None:
        if not products:
            raise ValueError("the console needs at least one product")
        if refresh_hz <= 0:
            raise ValueError(f"refresh_hz must be positive, got {refresh_hz}")
        super().__init__()
        self.engine = engine
        self.mode = mode
        self.products: tuple[str, ...] = tuple(products)
        self.clock = clock
        self.refresh_interval = 1.0 / refresh_hz
        self._selected_index = 0
        self._main_screen: MainScreen | None = None
        self._engine_worker: Worker[None] | None = None
        self._pull_timer: Timer | None = None
        self._last_tick: float | None = None
        self._quitting = False
        self.loop_lag_ms: float | None = None
        self.engine_error: str | None = None
        self.last_snapshot: EngineSnapshot | None = None
        self._snapshot_error: str | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def selected_product(self) -> str:
        return self.products[self._selected_index]

    @property
    def main_screen(self) -> MainScreen:
        if self._main_screen is None:
            self._main_screen = MainScreen()
        return self._main_screen

    def get_default_screen(self) -> Screen[None]:
        return self.main_screen

    # -- lifecycle -------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._engine_worker = self.run_worker(
            self.engine.run(),
            name="engine",
            group="engine",
            description="engine.run()",
            exit_on_error=False,
        )
        self._pull_timer = self.set_interval(
            self.refresh_interval, self.pull_tick, name="snapshot-pull"
        )
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
        self.main_screen.events.add_event(EventView(self._event_time(), "error", message))
        self.pull_snapshot()

    def _event_time(self) -> float:
        snapshot = self.last_snapshot
        return snapshot.wall_time if snapshot is not None else self.clock.time()

    # -- snapshot pulling ------------------------------------------------------------------

    def pull_tick(self) -> None:
        """One timer tick: measure how late it fired (the loop lag), then pull a snapshot."""
        now = self.clock.monotonic()
        if self._last_tick is not None:
            late_by = now - self._last_tick - self.refresh_interval
            self.loop_lag_ms = max(0.0, late_by) * 1000.0
        self._last_tick = now
        self.pull_snapshot()

    def pull_snapshot(self) -> EngineSnapshot | None:
        """Take a snapshot of the selected product and show it. Never raises."""
        try:
            snapshot = self.engine.snapshot(self.selected_product)
        except Exception as error:  # the UI stays up whatever the engine does
            message = f"snapshot failed: {type(error).__name__}: {error}"
            if message != self._snapshot_error:
                self._snapshot_error = message
                self.main_screen.events.add_event(EventView(self._event_time(), "error", message))
            return None
        self._snapshot_error = None
        self.last_snapshot = snapshot
        self.main_screen.show_snapshot(
            snapshot,
            # The mode the console was started in is the one the trader must see.
            mode=self.mode,
            product_id=self.selected_product,
            loop_lag_ms=self.loop_lag_ms,
            engine_error=self.engine_error,
            now=self.clock.monotonic(),
        )
        return snapshot

    # -- actions ---------------------------------------------------------------------------

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
        return help_rows([*MainScreen.BINDINGS, *self.BINDINGS], self.get_key_display)

    async def action_quit(self) -> None:
        """Stop the engine (bounded wait), then leave."""
        if self._quitting:
            return
        self._quitting = True
        if self._pull_timer is not None:
            self._pull_timer.stop()
        try:
            await asyncio.wait_for(self.engine.stop(), STOP_TIMEOUT_S)
        except Exception as error:  # quitting must not be blocked by a failing stop()
            self.log.error(f"engine.stop() failed: {error!r}")
        self.exit()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Keys", "Show every key binding", self.action_help)
        for index, product_id in enumerate(self.products):
            yield SystemCommand(
                f"Product {product_id}",
                f"Show {product_id} (key {index + 1})" if index < 9 else f"Show {product_id}",
                lambda index=index: self.action_select_product(index),
            )
