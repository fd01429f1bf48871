"""``OrderManager.on_order_updates``: the updates of one user-channel message (a batch
cancel's hundred CANCELLED) are journaled in one commit, with nothing lost or reordered: a
fill among them is booked once and in order, and a batch whose commit fails is written
again by the next reconciliation (the kill switch waits on these updates: issue 9 §2)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.journal import Journal
from core.journal_records import JournalError
from core.model import ExchangeOrder, ExchangeOrderStatus
from core.order_state import OrderState
from core.orders import OrderManager
from tests.core.test_orders import buy, history
from tests.doubles.fake_venue import FakeVenue
from tests.doubles.gate import StubGate
from tests.doubles.order_listener import OrderRecorder
from tests.doubles.sleeps import Sleeps

D = Decimal
CANCELLED = ExchangeOrderStatus.CANCELLED


@pytest.fixture
def venue(clock: ManualClock) -> FakeVenue:
    return FakeVenue(clock)


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal-paper.sqlite3", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def recorder() -> OrderRecorder:
    return OrderRecorder()


@pytest.fixture
def manager(
    venue: FakeVenue, journal: Journal, clock: ManualClock, recorder: OrderRecorder
) -> OrderManager:
    """An order manager on the fake venue (its listener) and a real journal, recorded."""
    made = OrderManager(venue, journal, StubGate(), clock=clock, sleep=Sleeps(clock))
    venue.set_listener(made)
    made.add_listener(recorder)
    return made


async def resting(manager: OrderManager, venue: FakeVenue, count: int) -> list[str]:
    """``count`` accepted orders; from then on the venue's updates are handed over by the
    test (one message), not delivered one by one."""
    coids = []
    for _ in range(count):
        order = await manager.submit(buy())
        assert order.state is OrderState.ACCEPTED
        coids.append(order.client_order_id)
    venue.streaming = False
    return coids


def cancelled_at_venue(venue: FakeVenue, coids: list[str]) -> list[ExchangeOrder]:
    return [venue.set_status(venue.order_id_for(coid), CANCELLED) for coid in coids]


class CountingBatches:
    """Wraps ``Journal.batch`` to count the batches (each one commit)."""

    def __init__(self, journal: Journal) -> None:
        self.real = journal.batch
        self.count = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.count += 1
        with self.real():
            yield


async def test_a_messages_state_updates_are_journaled_in_one_commit(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    coids = await resting(manager, venue, 3)
    batches = CountingBatches(journal)
    journal.batch = batches  # type: ignore[method-assign]
    manager.on_order_updates(cancelled_at_venue(venue, coids))
    assert batches.count == 1
    for coid in coids:
        assert manager.get(coid).state is OrderState.CANCELED  # type: ignore[union-attr]
        assert history(journal, coid)[-1] is OrderState.CANCELED


async def test_a_fill_among_them_is_booked_once_and_in_order(
    manager: OrderManager, venue: FakeVenue, journal: Journal, recorder: OrderRecorder
) -> None:
    first, second, third = await resting(manager, venue, 3)
    first_id = venue.order_id_for(first)
    filled = venue.fill(first_id, D("0.4"), D("100"))
    message = [
        venue.set_status(venue.order_id_for(second), CANCELLED),
        filled,  # a fill between two state-only updates
        venue.set_status(first_id, CANCELLED),  # the same order, after its fill
        venue.set_status(venue.order_id_for(third), CANCELLED),
    ]
    manager.on_order_updates(message)
    [fill] = journal.fills(first)
    assert fill.fill.size == D("0.4")
    assert [f.client_order_id for f in recorder.fills] == [first]
    done = manager.get(first)
    assert done is not None and done.state is OrderState.CANCELED
    assert done.filled_size == D("0.4")
    assert history(journal, first)[-1] is OrderState.CANCELED
    for coid in (second, third):
        assert history(journal, coid)[-1] is OrderState.CANCELED
    # The same message again (a replay after a reconnect) books nothing more.
    manager.on_order_updates(message)
    assert len(journal.fills(first)) == 1 and len(recorder.fills) == 1


class LostCommit:
    """A ``Journal.batch`` whose commit fails (a full disk): nothing in it reaches the file."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        db = self.journal._db
        db.execute("BEGIN IMMEDIATE")
        self.journal._batching = True
        try:
            yield
        finally:
            self.journal._batching = False
            db.execute("ROLLBACK")
        raise JournalError("disk full: the batch's commit failed")


async def test_a_batch_whose_commit_fails_is_written_again_by_the_next_reconcile(
    manager: OrderManager, venue: FakeVenue, journal: Journal, recorder: OrderRecorder
) -> None:
    """A fill in the same message is applied on its own: it is on file (it was emitted),
    whatever happens to the batch around it."""
    filler, *coids = await resting(manager, venue, 5)
    assert (await manager.reconcile()).complete
    journal.batch = LostCommit(journal)  # type: ignore[method-assign]
    message = cancelled_at_venue(venue, coids[:2])
    message.append(venue.fill(venue.order_id_for(filler), D("0.4"), D("100")))
    message.extend(cancelled_at_venue(venue, coids[2:]))
    manager.on_order_updates(message)
    assert [f.client_order_id for f in recorder.fills] == [filler]
    assert len(journal.fills(filler)) == 1
    for coid in coids:  # applied in memory, lost on file; trading blocked until rewritten
        assert manager.get(coid).state is OrderState.CANCELED  # type: ignore[union-attr]
        assert history(journal, coid)[-1] is OrderState.ACCEPTED
    assert manager.reconciling
    del journal.batch  # the disk has room again
    report = await manager.reconcile()
    assert report.complete and not manager.reconciling
    for coid in coids:
        assert history(journal, coid)[-1] is OrderState.CANCELED
