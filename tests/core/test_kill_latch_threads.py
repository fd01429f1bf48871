"""The kill key latches HALTED on the terminal's thread (``EmergencyManager.halt_now``), while
the event loop may be doing anything: these tests put that latch at the worst moments of the
loop's own state changes and check it is never lost.

- a resume storing ACTIVE when the latch lands: the latch stands;
- a trigger tightening to REDUCING just after the latch: HALTED is not loosened;
- a latch during the resume's reconciliation: the resume is refused;
- many latches from threads racing a loop that resumes again and again: after every latch
  that returned, the state is HALTED until a resume that began after it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest

from core.clock import ManualClock
from core.emergency import RESUME_CONFIRMATION, ResumeRefused
from core.journal import Journal
from core.risk import TradingStateMachine, TriggerName, TrippedTrigger
from core.trading_state import TradingState, TradingStateChange
from tests.core.test_emergency import Parts, build, journal  # noqa: F401 - the fixture
from tests.core.test_risk import MemoryStateStore


def on_another_thread(action: object) -> None:
    """Run ``action`` on a real thread and wait for it (as the terminal's reader would)."""
    assert callable(action)
    thread = threading.Thread(target=action, name="terminal-reader")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()


class LatchWhileStoring(MemoryStateStore):
    """A store that, while saving the change it is told to, lets another thread latch HALTED:
    the latch lands between a looser change's store and its switch."""

    def __init__(self) -> None:
        super().__init__()
        self.machine: TradingStateMachine | None = None
        self.latch_on: TradingState | None = None

    def save_trading_state(self, change: TradingStateChange, *, durable: bool = True) -> None:
        super().save_trading_state(change, durable=durable)
        machine = self.machine
        if machine is not None and change.state is self.latch_on:
            self.latch_on = None
            on_another_thread(
                lambda: machine.latch(TradingState.HALTED, "kill switch (keyboard)", "user")
            )


def test_a_resume_overtaken_by_a_latch_while_it_stores_leaves_the_latch_standing() -> None:
    store = LatchWhileStoring()
    machine = TradingStateMachine(store, clock=ManualClock())
    store.machine = machine
    machine.set(TradingState.HALTED, "daily loss", "trigger:daily_loss")
    store.latch_on = TradingState.ACTIVE
    machine.set(TradingState.ACTIVE, "resumed", "user")
    assert machine.state is TradingState.HALTED
    assert machine.last_change.cause == "kill switch (keyboard)"


def test_without_a_latch_the_resume_applies() -> None:
    store = LatchWhileStoring()
    machine = TradingStateMachine(store, clock=ManualClock())
    machine.set(TradingState.HALTED, "daily loss", "trigger:daily_loss")
    machine.set(TradingState.ACTIVE, "resumed", "user")
    assert machine.state is TradingState.ACTIVE


def test_tighten_never_loosens_and_stores_only_what_it_applied() -> None:
    store = MemoryStateStore()
    machine = TradingStateMachine(store, clock=ManualClock())
    on_another_thread(lambda: machine.latch(TradingState.HALTED, "kill switch", "user"))
    assert machine.tighten(TradingState.REDUCING, "daily loss", "trigger:daily_loss") is None
    assert machine.state is TradingState.HALTED
    assert [change.state for change in store.saved] == [TradingState.ACTIVE]  # first start
    fresh = TradingStateMachine(MemoryStateStore(), clock=ManualClock())
    change = fresh.tighten(TradingState.REDUCING, "daily loss", "trigger:daily_loss")
    assert change is not None and fresh.state is TradingState.REDUCING


class KeyPressedWhileRead(list[TrippedTrigger]):
    """Tripped triggers that, as the manager reads them (after it read the current state), let
    the kill key latch HALTED on another thread: the worst moment for a trigger's REDUCING."""

    def __init__(self, parts: Parts, triggers: list[TrippedTrigger]) -> None:
        super().__init__(triggers)
        self.parts = parts

    def __iter__(self) -> Iterator[TrippedTrigger]:
        manager = self.parts.manager
        if self.parts.state.state is not TradingState.HALTED:
            on_another_thread(lambda: manager.halt_now("kill switch (keyboard)"))
        return super().__iter__()


async def test_a_trigger_racing_the_key_does_not_loosen_halted(parts: Parts) -> None:
    reducing = TrippedTrigger(TriggerName.DAILY_LOSS, "daily loss tripped", TradingState.REDUCING)
    parts.manager.act_on(KeyPressedWhileRead(parts, [reducing]))
    assert parts.state.state is TradingState.HALTED
    assert parts.state.last_change.cause == "kill switch (keyboard)"
    assert parts.journal.risk_events() == []  # nothing tightened, nothing recorded
    await parts.manager.kill("kill switch (keyboard)", "user")


async def test_halt_now_latches_at_once_and_the_kill_that_follows_keeps_its_time(
    parts: Parts, clock: ManualClock
) -> None:
    on_another_thread(lambda: parts.manager.halt_now("kill switch (keyboard)"))
    latched_at = clock.monotonic()
    assert parts.state.state is TradingState.HALTED
    assert parts.manager._kill_task is None  # the sweep is the loop's, after
    clock.advance(0.25)  # the loop was busy for a while
    progress = await parts.manager.kill("kill switch (keyboard)", "user")
    assert progress.halted_at == progress.started_at == latched_at
    stored = parts.journal.load_trading_state()
    assert stored is not None and stored.state is TradingState.HALTED
    # A second pull, already HALTED: a fresh sweep, timed from its own start.
    clock.advance(1)
    again = await parts.manager.kill("kill switch (keyboard)", "user")
    assert again.halted_at == clock.monotonic()


async def test_a_latch_during_the_resumes_reconciliation_refuses_the_resume(
    parts: Parts,
) -> None:
    await parts.manager.kill("kill switch (keyboard)", "user")
    reconcile = parts.orders.reconcile

    async def reconcile_while_the_key_is_pressed() -> object:
        on_another_thread(lambda: parts.manager.halt_now("kill switch (keyboard)"))
        return await reconcile()

    parts.orders.reconcile = reconcile_while_the_key_is_pressed  # type: ignore[method-assign]
    with pytest.raises(ResumeRefused, match="kill switch was pulled"):
        await parts.manager.resume(RESUME_CONFIRMATION)
    assert parts.state.state is TradingState.HALTED


@pytest.fixture
def parts(journal: Journal, clock: ManualClock) -> Parts:  # noqa: F811 - the fixture above
    """The emergency manager over a real journal, a fake venue and a manual clock."""
    return build(journal, clock)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Threads take turns every microsecond instead of every 5 ms: races show up in a test."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_latches_racing_resumes_are_never_lost() -> None:
    """A reader thread latches HALTED again and again while the loop's thread resumes again
    and again, threads switching every microsecond. A latch that lands once the resume has
    begun storing ACTIVE must win: a resume that ends ACTIVE saw at most one latch finish
    after its store began (that one may have switched before it counted itself)."""
    latches_done = 0
    at_store: list[int] = []

    class CountingStore(MemoryStateStore):
        def save_trading_state(self, change: TradingStateChange, *, durable: bool = True) -> None:
            if change.state is TradingState.ACTIVE:
                at_store.append(latches_done)
                time.sleep(0)  # a real store lets go of the interpreter while it writes
            super().save_trading_state(change, durable=durable)

    machine = TradingStateMachine(CountingStore(), clock=ManualClock())
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        nonlocal latches_done
        while not stop.is_set():
            machine.latch(TradingState.HALTED, "kill switch (keyboard)", "user")
            latches_done += 1

    thread = threading.Thread(target=reader, name="terminal-reader")
    thread.start()
    try:
        for _ in range(5_000):
            machine.set(TradingState.ACTIVE, "resumed", "user")
            after = latches_done
            if machine.state is TradingState.ACTIVE and after > at_store[-1] + 1:
                problems.append(f"resume won over {after - at_store[-1]} latches")
    finally:
        stop.set()
        thread.join(10)
    assert problems == []
    assert latches_done > 1000  # the threads really did interleave
