"""The kill switch's confirmation (issue 9 §2): from the user stream when it is up and in
sync, otherwise from a listing; the two batches of 100 leave together; a failed batch is
retried alone.

Unit tests over the in-memory ``FakeVenue`` (a real ``OrderManager`` and ``Journal``), built
as in tests/core/test_emergency.py. The engine-level proof over loopback against the
simulated exchange is tests/integration/test_kill_switch_confirmation.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.config import RiskSettings
from core.emergency import KillPhase
from core.journal import Journal
from core.model import ExchangeOrder, ExchangeOrderStatus
from core.venue import CancelResult
from tests.core.test_emergency import HeldVenue, Parts, build, rest_orders, risk_kinds

STREAM = "the user stream"
LISTING = "a listing"
# Short enough that a confirmation that never comes costs the test little real time.
QUICK = RiskSettings(kill_max_verify_rounds=4, kill_stream_confirm_s=0.05)


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Iterator[Journal]:
    """A real journal on a fresh file, closed after the test."""
    opened = Journal.open(tmp_path / "journal-paper.sqlite3", clock=clock)
    yield opened
    opened.close()


class WatchedVenue(HeldVenue):
    """Records the kill's phase at each open-orders listing, and can misbehave on cancel:
    lose the stream update of some orders, lie about them, or reset the stream."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.parts: Parts | None = None
        self.phases_at_listing: list[KillPhase] = []
        self.silent: set[str] = set()  # order ids whose stream updates are lost
        self.lying: set[str] = set()  # order ids reported CANCELLED while still open (once)
        self.stuck: set[str] = set()  # order ids whose cancel is answered yes, and not done
        self.reset_on_cancel = False

    async def list_open_orders(
        self, product_ids: Sequence[str] | None = None
    ) -> list[ExchangeOrder]:
        assert self.parts is not None
        self.phases_at_listing.append(self.parts.manager.progress.phase)
        return await super().list_open_orders(product_ids)

    def _publish(self, order_id: str) -> None:
        if order_id not in self.silent:
            super()._publish(order_id)

    async def cancel(self, order_ids: Sequence[str]) -> list[CancelResult]:
        ids = list(order_ids)
        lies = [i for i in ids if i in self.lying]
        stuck = [i for i in ids if i in self.stuck]
        self.lying.difference_update(lies)
        self.stuck.difference_update(stuck)
        results = await super().cancel([i for i in ids if i not in lies and i not in stuck])
        for order_id in lies:  # the stream says cancelled; the exchange keeps it open
            if self._listener is not None:
                reported = replace(self.order(order_id), status=ExchangeOrderStatus.CANCELLED)
                self._listener.on_order_update(reported)
        if self.reset_on_cancel and self._listener is not None:
            self._listener.on_stream_reset("sequence gap")
        return results + [CancelResult(i, True, None) for i in [*lies, *stuck]]


def watched(journal: Journal, clock: ManualClock, settings: RiskSettings = QUICK) -> Parts:
    parts = build(journal, clock, settings=settings)
    venue = WatchedVenue(clock)
    venue.set_listener(parts.orders)
    venue.parts = parts
    parts.orders._venue = venue
    parts.manager._venue = venue
    parts.venue = venue
    return parts


def venue_of(parts: Parts) -> WatchedVenue:
    assert isinstance(parts.venue, WatchedVenue)
    return parts.venue


async def in_sync(parts: Parts, count: int) -> list[str]:
    """``count`` resting orders and a completed reconciliation (the stream is in sync)."""
    coids = await rest_orders(parts, count)
    report = await parts.orders.reconcile()
    assert report.complete and not parts.orders.reconciling
    if isinstance(parts.venue, WatchedVenue):
        parts.venue.phases_at_listing.clear()  # the reconciliation's listing is not the kill's
    return coids


class TestStreamConfirmation:
    async def test_the_stream_confirms_flat_before_any_listing_and_a_listing_audits_it(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = watched(journal, clock)
        await in_sync(parts, 5)
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE and progress.confirmed_by == STREAM
        # The only listing is the audit, made once the stream had confirmed.
        assert venue_of(parts).phases_at_listing == [KillPhase.DONE]
        assert parts.venue.open_orders_now() == []
        assert parts.orders.count_working() == 0
        assert "kill_switch_reopened" not in risk_kinds(journal)

    @pytest.mark.parametrize("fault", ["never reconciled", "reset during the cancels", "down"])
    async def test_a_stream_out_of_sync_is_not_trusted(
        self, journal: Journal, clock: ManualClock, fault: str
    ) -> None:
        parts = watched(journal, clock)
        if fault == "never reconciled":
            await rest_orders(parts, 5)  # the order manager still reconciling: not in sync
        else:
            await in_sync(parts, 5)
        if fault == "reset during the cancels":
            venue_of(parts).reset_on_cancel = True  # the updates came, but one may be missing
        if fault == "down":
            parts.venue.streaming = False
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE and progress.confirmed_by == LISTING
        assert venue_of(parts).phases_at_listing[0] is KillPhase.CANCELLING
        assert parts.venue.open_orders_now() == []

    async def test_when_a_terminal_update_never_arrives_the_listing_decides(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = watched(journal, clock)
        coids = await in_sync(parts, 5)
        lost = parts.venue.order_id_for(coids[2])
        venue_of(parts).silent.add(lost)  # cancelled at the exchange; its update is lost
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE and progress.confirmed_by == LISTING
        assert venue_of(parts).phases_at_listing[0] is KillPhase.CANCELLING
        assert parts.venue.open_orders_now() == []

    async def test_an_order_still_open_without_an_update_keeps_the_kill_sweeping(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        """Its cancel is answered yes but it stays open and the stream says nothing: the
        stream cannot confirm the first round; a listing shows it open and it is cancelled
        again (then the stream, in sync, may confirm that round)."""
        parts = watched(journal, clock)
        coids = await in_sync(parts, 5)
        stuck = parts.venue.order_id_for(coids[0])
        venue_of(parts).stuck.add(stuck)
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE
        assert venue_of(parts).phases_at_listing[0] is KillPhase.CANCELLING
        assert progress.rounds >= 2 and [stuck] in parts.venue.cancel_calls[1:]
        assert parts.venue.order(stuck).status is ExchangeOrderStatus.CANCELLED
        assert parts.venue.open_orders_now() == []
        assert "kill_switch_reopened" not in risk_kinds(journal)

    async def test_an_audit_that_contradicts_the_stream_sweeps_on_until_a_listing_shows_none(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = watched(journal, clock)
        coids = await in_sync(parts, 5)
        liar = parts.venue.order_id_for(coids[1])
        venue_of(parts).lying.add(liar)  # the stream says CANCELLED; the venue keeps it open
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE and progress.confirmed_by == LISTING
        assert "kill_switch_reopened" in risk_kinds(journal)
        assert parts.venue.order(liar).status is ExchangeOrderStatus.CANCELLED
        assert parts.venue.open_orders_now() == []


class GatedVenue(HeldVenue):
    """Holds every cancel request until ``together`` of them are in flight (bounded)."""

    def __init__(self, clock: ManualClock, together: int) -> None:
        super().__init__(clock)
        self.together = together
        self.in_flight = 0
        self.most_in_flight = 0
        self._all_there = asyncio.Event()

    async def cancel(self, order_ids: Sequence[str]) -> list[CancelResult]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= self.together:
            self._all_there.set()
        try:
            # Sent one after the other, the first request would wait here in vain (1 s, well
            # inside the kill's 5 s call timeout, so the test then fails instead of hanging).
            async with asyncio.timeout(1):
                await self._all_there.wait()
        except TimeoutError:
            pass
        finally:
            self.in_flight -= 1
        return await super().cancel(order_ids)


class TestBatches:
    async def test_both_batches_of_100_are_in_flight_together(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = build(journal, clock, settings=QUICK)
        venue = GatedVenue(clock, together=2)
        venue.set_listener(parts.orders)
        parts.orders._venue = venue
        parts.manager._venue = venue
        parts.venue = venue
        await rest_orders(parts, 200)
        progress = await asyncio.wait_for(parts.manager.kill("ctrl+k", "user"), 30)
        assert progress.phase is KillPhase.DONE
        assert venue.most_in_flight == 2
        assert [len(ids) for ids in venue.cancel_calls[:2]] == [100, 100]
        assert venue.open_orders_now() == []

    async def test_a_failed_batch_is_retried_alone(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        """The stream is down (so nothing but the listing says what was cancelled): the next
        round asks again for the failed batch's orders only, not for the accepted ones."""
        parts = build(journal, clock, settings=QUICK)
        parts.venue.streaming = False
        await rest_orders(parts, 200)
        parts.venue.failing_cancels = 1  # the first request of the two fails
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE and progress.confirmed_by == LISTING
        failed, accepted = parts.venue.cancel_calls[:2]
        assert len(failed) == len(accepted) == 100
        retried = [order_id for call in parts.venue.cancel_calls[2:] for order_id in call]
        assert sorted(retried) == sorted(failed)
        assert parts.venue.open_orders_now() == []


@dataclass(frozen=True)
class Faults:
    """What goes wrong during one kill: per order index, its update lost, its cancel stuck
    (answered yes, not done) or a lying stream (reports CANCELLED, the order stays open)."""

    count: int
    lost: frozenset[int]
    stuck: frozenset[int]
    lying: frozenset[int]
    reconciled: bool
    reset: bool


@st.composite
def kill_faults(draw: st.DrawFn) -> Faults:
    count = draw(st.integers(1, 8))
    index = st.integers(0, count - 1)
    return Faults(
        count,
        draw(st.frozensets(index, max_size=2)),
        draw(st.frozensets(index, max_size=2)),
        draw(st.frozensets(index, max_size=2)),
        draw(st.booleans()),
        draw(st.booleans()),
    )


async def _kill_under(faults: Faults, journal: Journal, clock: ManualClock) -> None:
    parts = watched(journal, clock)
    venue = venue_of(parts)
    if faults.reconciled:
        coids = await in_sync(parts, faults.count)
    else:
        coids = await rest_orders(parts, faults.count)  # still reconciling: not in sync
    ids = [venue.order_id_for(coid) for coid in coids]
    # One fault per order: stuck wins over lying (it gets no update at all), lying over lost
    # (a lie is delivered whatever happens to the real updates).
    stuck = faults.stuck
    lying = faults.lying - stuck
    lost = faults.lost - stuck - lying
    venue.silent.update(ids[i] for i in lost)
    venue.stuck.update(ids[i] for i in stuck)
    venue.lying.update(ids[i] for i in lying)
    venue.reset_on_cancel = faults.reset
    progress = await asyncio.wait_for(parts.manager.kill("ctrl+k", "user"), 30)
    # Whatever went wrong, DONE means the venue is flat.
    assert progress.phase is KillPhase.DONE
    assert venue.open_orders_now() == []
    in_sync_at_kill = faults.reconciled and not faults.reset
    silent_or_stuck = bool(lost or stuck)
    if not in_sync_at_kill or silent_or_stuck:
        # The stream could not confirm the first round: a listing was made while sweeping.
        assert venue.phases_at_listing[0] is KillPhase.CANCELLING
    stream_lied = in_sync_at_kill and not silent_or_stuck and bool(lying)
    if stream_lied:  # it confirmed flat wrongly; the audit caught it and a listing ended it
        assert "kill_switch_reopened" in risk_kinds(journal)
        assert progress.confirmed_by == LISTING
    if progress.confirmed_by == STREAM:
        assert "kill_switch_reopened" not in risk_kinds(journal)
        assert venue.phases_at_listing[-1] is KillPhase.DONE  # the audit


@settings(max_examples=40, deadline=None, derandomize=True)
@given(faults=kill_faults())
def test_done_always_means_flat_and_the_stream_confirms_only_what_it_saw(faults: Faults) -> None:
    with TemporaryDirectory() as folder:
        clock = ManualClock()
        journal = Journal.open(Path(folder) / "journal-paper.sqlite3", clock=clock)
        try:
            asyncio.run(_kill_under(faults, journal, clock))
        finally:
            journal.close()
