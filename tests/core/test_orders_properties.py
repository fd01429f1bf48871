"""Properties of the order manager under random histories (hypothesis).

1. Fills: whatever mix of replays, reorders, gaps, stream resets and restarts the cumulative
   updates arrive in, the journal holds each fill exactly once: the sum of an order's journaled
   fills equals the venue's cumulative filled size, value and fees of the most advanced report
   applied so far, and after a reconcile equals the venue's own figures.
2. The state machine: random orders, outcomes, fills, cancels, expiries, stale reports,
   resets and restarts never produce an illegal transition in the journal, never leave a
   terminal state, never create a second exchange order for one client_order_id.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from core.clock import ManualClock
from core.journal import Journal
from core.model import (
    ExchangeOrder,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Side,
)
from core.order_state import OrderState, can_reopen, is_legal_transition
from core.orders import OrderManager
from tests.doubles.fake_venue import FakeVenue, PlaceScript
from tests.doubles.gate import StubGate
from tests.doubles.sleeps import Sleeps

D = Decimal


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A throwaway directory, in RAM when the machine has one (many examples, many files)."""
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base) as name:
        yield Path(name)


def intent(size: Decimal) -> OrderIntent:
    spec = OrderSpec("BTC-USD", Side.BUY, OrderType.LIMIT, base_size=size, limit_price=D(100))
    return OrderIntent(spec=spec, source=IntentSource.STRATEGY)


class Harness:
    """An order manager over a fake venue and a journal file it can 'crash' and restart."""

    def __init__(self, directory: Path) -> None:
        self.clock = ManualClock()
        self.path = directory / "journal-test.sqlite3"
        self.venue = FakeVenue(self.clock)
        self.loop = asyncio.new_event_loop()
        self.ids = (f"c{n}" for n in itertools.count(1))
        self.journal = Journal.open(self.path, clock=self.clock)
        self.manager = self._new_manager()

    def _new_manager(self) -> OrderManager:
        manager = OrderManager(
            self.venue,
            self.journal,
            StubGate(),
            clock=self.clock,
            id_factory=lambda: next(self.ids),
            sleep=Sleeps(),
        )
        self.venue.set_listener(manager)
        return manager

    def run(self, coroutine: object) -> object:
        return self.loop.run_until_complete(coroutine)  # type: ignore[arg-type]

    def restart(self) -> None:
        self.run(self.manager.aclose())
        self.journal.close()
        self.journal = Journal.open(self.path, clock=self.clock)
        self.manager = self._new_manager()
        self.manager.restore()

    def close(self) -> None:
        self.run(self.manager.aclose())
        self.journal.close()
        self.loop.close()


def figures(order: ExchangeOrder) -> tuple[Decimal, Decimal, Decimal]:
    return order.filled_size, order.filled_value, order.total_fees


def journaled(journal: Journal, coid: str) -> tuple[Decimal, Decimal, Decimal]:
    totals = journal.fill_totals(coid)
    return totals.size, totals.value, totals.fees


# --------------------------------------------------------------------------- 1. fill sums

fill_steps = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=500),  # size in 0.001 units
        st.integers(min_value=1, max_value=2_000_000),  # price in cents
        st.integers(min_value=0, max_value=999),  # fee in cents
    ),
    min_size=1,
    max_size=8,
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.integers(min_value=0, max_value=8)),
        st.tuples(st.just("restart"), st.just(0)),
        st.tuples(st.just("reconcile"), st.just(0)),
    ),
    max_size=25,
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=fill_steps, plan=actions)
def test_journaled_fills_always_sum_to_the_most_advanced_report(
    steps: list[tuple[int, int, int]], plan: list[tuple[str, int]]
) -> None:
    with scratch_dir() as directory:
        harness = Harness(directory)
        try:
            total = sum((D(size) / 1000 for size, _, _ in steps), D(0))
            harness.venue.streaming = False  # every report is delivered by the plan below
            harness.run(harness.manager.submit(intent(total)))
            order_id = harness.venue.order_id_for("c1")
            for size, cents, fee in steps:
                harness.venue.fill(order_id, D(size) / 1000, D(cents) / 100, D(fee) / 100)
            reports = harness.venue.history(order_id)
            applied = D(0)  # the most advanced cumulative size applied so far
            expected = (D(0), D(0), D(0))
            for action, index in plan:
                if action == "deliver":
                    report = reports[min(index, len(reports) - 1)]
                    harness.manager.on_order_update(report)
                    if report.filled_size > applied:
                        applied, expected = report.filled_size, figures(report)
                elif action == "restart":
                    harness.restart()
                else:
                    harness.manager.on_stream_reset("test")
                    harness.run(harness.manager.reconcile())
                    applied, expected = reports[-1].filled_size, figures(reports[-1])
                assert journaled(harness.journal, "c1") == expected
                known = harness.manager.get("c1")  # None once FILLED and restarted
                assert known is None or known.filled_size == expected[0]
            harness.run(harness.manager.reconcile())
            assert journaled(harness.journal, "c1") == figures(reports[-1])
            final = harness.journal.find_order(client_order_id="c1")
            assert final is not None and final.state is OrderState.FILLED
        finally:
            harness.close()


# --------------------------------------------------------------------------- 2. state machine


class OrderLifeMachine(RuleBasedStateMachine):
    """Random lives of a handful of orders, checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self._scratch = scratch_dir()
        self.harness = Harness(self._scratch.__enter__())
        self.terminal: dict[str, OrderState] = {}

    @initialize()
    def start(self) -> None:
        self.harness.run(self.harness.manager.reconcile())

    def _working(self) -> list[ExchangeOrder]:
        return [o for o in self.harness.venue.all_orders if o.status.is_open]

    @rule(
        size=st.integers(min_value=1, max_value=5),
        script=st.sampled_from(list(PlaceScript)),
    )
    def submit(self, size: int, script: PlaceScript) -> None:
        self.harness.venue.script(script)
        self.harness.run(self.harness.manager.submit(intent(D(size))))
        self.harness.run(self.harness.manager.wait_background())

    @precondition(lambda self: bool(self._working()))
    @rule(data=st.data(), fraction=st.integers(min_value=1, max_value=4))
    def fill(self, data: st.DataObject, fraction: int) -> None:
        target = data.draw(st.sampled_from(self._working()))
        assert target.base_size is not None and target.leaves_quantity is not None
        size = min(target.leaves_quantity, target.base_size * fraction / 4)
        self.harness.venue.fill(target.order_id, size, D("100.01"), D("0.03"))

    @precondition(lambda self: bool(self._working()))
    @rule(data=st.data(), expire=st.booleans())
    def finish(self, data: st.DataObject, expire: bool) -> None:
        target = data.draw(st.sampled_from(self._working()))
        if expire:
            self.harness.venue.expire(target.order_id)
        else:
            self.harness.run(self.harness.manager.cancel([target.client_order_id]))

    @precondition(lambda self: bool(self.harness.venue.all_orders))
    @rule(data=st.data())
    def replay_old_report(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.harness.venue.all_orders))
        old = data.draw(st.sampled_from(self.harness.venue.history(target.order_id)))
        self.harness.manager.on_order_update(old)

    @rule()
    def toggle_stream(self) -> None:
        # Like the user channel: a disconnect, and a reconnect, each reset the stream.
        self.harness.venue.streaming = not self.harness.venue.streaming
        self.harness.manager.on_stream_reset(
            "stream up" if self.harness.venue.streaming else "down"
        )

    @rule()
    def reconcile(self) -> None:
        self.harness.run(self.harness.manager.reconcile())

    @rule()
    def cancel_all(self) -> None:
        self.harness.run(self.harness.manager.cancel_all())

    @rule()
    def restart(self) -> None:
        self.harness.restart()

    @rule(seconds=st.sampled_from([1.0, 30.0, 90.0]))
    def time_passes(self, seconds: float) -> None:
        self.harness.clock.advance(seconds)

    @invariant()
    def one_exchange_order_per_client_order_id(self) -> None:
        coids = [o.client_order_id for o in self.harness.venue.all_orders]
        assert len(coids) == len(set(coids))

    @invariant()
    def journal_history_is_legal_and_terminal_is_final(self) -> None:
        journal = self.harness.journal
        for order in self.harness.manager.orders():
            if order.state is OrderState.DENIED:
                continue
            states = [h.state for h in journal.order_history(order.client_order_id)]
            for previous, current in itertools.pairwise(states):
                # The table's transitions, or the venue re-opening an order we had closed
                # (a late or replayed report: issue 9 §1, the venue is right).
                legal = is_legal_transition(previous, current) or can_reopen(previous)
                assert previous == current or legal, states
            if order.state.is_terminal and can_reopen(order.state):
                continue  # a closed order the venue may yet report again
            if order.client_order_id in self.terminal:
                assert order.state is self.terminal[order.client_order_id]
            elif order.state.is_terminal:
                self.terminal[order.client_order_id] = order.state

    @invariant()
    def fills_never_exceed_the_venue_and_match_memory(self) -> None:
        venue, journal = self.harness.venue, self.harness.journal
        for order in self.harness.manager.orders():
            if order.order_id is None:
                continue
            exchange = venue.order(order.order_id)
            size, value, fees = journaled(journal, order.client_order_id)
            assert size <= exchange.filled_size
            assert (order.filled_size, order.filled_value, order.total_fees) == (
                size,
                value,
                fees,
            )

    @invariant()
    def after_a_complete_reconcile_fills_equal_the_venue(self) -> None:
        manager = self.harness.manager
        if manager.reconciling or not self.harness.venue.streaming:
            return
        for order in manager.orders():
            if order.order_id is not None:
                exchange = self.harness.venue.order(order.order_id)
                assert journaled(self.harness.journal, order.client_order_id) == figures(exchange)

    def teardown(self) -> None:
        self.harness.close()
        self._scratch.__exit__(None, None, None)


OrderLifeMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOrderLife = OrderLifeMachine.TestCase
