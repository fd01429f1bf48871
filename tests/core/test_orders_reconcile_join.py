"""``OrderManager.reconcile`` runs one at a time: a call while one runs joins it. Two that
overlap would apply one's listing, made before the other's changes, after them (in the
kill switch benchmark: the engine's tick reconciled alongside a RESUME, and its listing
re-opened an order the user stream had just reported cancelled by the next kill)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.journal import Journal
from core.model import ExchangeOrder
from core.orders import OrderManager
from tests.core.test_orders import buy
from tests.doubles.fake_venue import FakeVenue
from tests.doubles.gate import StubGate
from tests.doubles.sleeps import Sleeps, loop_until


class CountingVenue(FakeVenue):
    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.since_calls = 0

    async def list_orders_since(self, since: datetime | None) -> list[ExchangeOrder]:
        self.since_calls += 1
        return await super().list_orders_since(since)


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal-paper.sqlite3", clock=clock)
    yield opened
    opened.close()


async def test_a_reconcile_asked_while_one_runs_joins_it(
    journal: Journal, clock: ManualClock
) -> None:
    venue = CountingVenue(clock)
    manager = OrderManager(venue, journal, StubGate(), clock=clock, sleep=Sleeps(clock))
    venue.set_listener(manager)
    await manager.submit(buy())
    release = asyncio.Event()
    venue.hold_next_list = release  # the first reconciliation waits on its listing
    first = asyncio.create_task(manager.reconcile())
    await loop_until(venue.list_held.is_set)
    second = asyncio.create_task(manager.reconcile())  # e.g. the engine's tick
    await asyncio.sleep(0)
    release.set()
    first_report, second_report = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert second_report is first_report
    assert venue.since_calls == 1  # one listing, not two applied one after the other
    assert not manager.reconciling
    # Once it has finished, the next call reconciles afresh.
    await manager.reconcile()
    assert venue.since_calls == 2


async def test_a_joiner_that_is_cancelled_does_not_cancel_the_reconciliation(
    journal: Journal, clock: ManualClock
) -> None:
    venue = CountingVenue(clock)
    manager = OrderManager(venue, journal, StubGate(), clock=clock, sleep=Sleeps(clock))
    venue.set_listener(manager)
    release = asyncio.Event()
    venue.hold_next_list = release
    first = asyncio.create_task(manager.reconcile())
    await loop_until(venue.list_held.is_set)
    joiner = asyncio.create_task(manager.reconcile())
    await asyncio.sleep(0)
    joiner.cancel()
    release.set()
    report = await asyncio.wait_for(first, 10)
    assert report.complete and not manager.reconciling
    assert joiner.cancelled()
