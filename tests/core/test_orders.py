"""The order manager against an in-memory exchange and a real journal on disk."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.denials import Denial, DenialReason
from core.journal import Journal
from core.journal_records import JournalError
from core.model import (
    ExchangeOrder,
    ExchangeOrderStatus,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    PlacedOrder,
    Side,
)
from core.order_state import LEGAL_TRANSITIONS, ManagedOrder, OrderState, state_for_exchange_order
from core.orders import JOURNAL_WRITE_FAILED, NOT_AT_VENUE, FillEvent, OrderEvent, OrderManager
from core.venue import CreateOrderOutcome, OrderAccepted
from tests.doubles.fake_venue import FakeVenue, PlaceScript
from tests.doubles.gate import StubGate
from tests.doubles.order_listener import OrderRecorder
from tests.doubles.sleeps import Sleeps

S = OrderState
D = Decimal


async def until(condition: Callable[[], bool], steps: int = 100_000) -> None:
    """Let the loop run until ``condition`` holds (bounded by loop steps, not by time)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


@pytest.fixture
def venue(clock: ManualClock) -> FakeVenue:
    """An in-memory exchange whose orders rest until the test fills or cancels them."""
    return FakeVenue(clock)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The journal file of this test."""
    return tmp_path / "journal-paper.sqlite3"


@pytest.fixture
def journal(db_path: Path, clock: ManualClock) -> Iterator[Journal]:
    """A real journal on a fresh file, closed after the test."""
    opened = Journal.open(db_path, clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def gate() -> StubGate:
    """A gate that allows every order until a test sets ``gate.denial``."""
    return StubGate()


@pytest.fixture
def sleeps(clock: ManualClock) -> Sleeps:
    """The manager's sleep: instant, moving the clock on, with the requested delays recorded."""
    return Sleeps(clock)


@pytest.fixture
def recorder() -> OrderRecorder:
    """A listener recording every order event and fill event."""
    return OrderRecorder()


def _ids() -> Iterator[str]:
    return (f"coid-{n}" for n in itertools.count(1))


@pytest.fixture
def manager(
    venue: FakeVenue,
    journal: Journal,
    gate: StubGate,
    clock: ManualClock,
    sleeps: Sleeps,
    recorder: OrderRecorder,
) -> OrderManager:
    """An order manager wired to the fake venue (as its listener), the journal and the gate,
    with predictable client_order_ids coid-1, coid-2, ... and a recorder listening."""
    ids = _ids()
    made = OrderManager(
        venue, journal, gate, clock=clock, id_factory=lambda: next(ids), sleep=sleeps
    )
    venue.set_listener(made)
    made.add_listener(recorder)
    return made


def buy(size: str = "1", price: str = "100", product: str = "BTC-USD") -> OrderIntent:
    spec = OrderSpec(product, Side.BUY, OrderType.LIMIT, base_size=D(size), limit_price=D(price))
    return OrderIntent(spec=spec, source=IntentSource.MANUAL)


def history(journal: Journal, coid: str) -> list[OrderState]:
    return [h.state for h in journal.order_history(coid)]


def assert_fills_match_venue(journal: Journal, venue: FakeVenue, coid: str) -> None:
    totals = journal.fill_totals(coid)
    exchange = venue.order(venue.order_id_for(coid))
    assert (totals.size, totals.value, totals.fees) == (
        exchange.filled_size,
        exchange.filled_value,
        exchange.total_fees,
    )


# --------------------------------------------------------------------------- submit


async def test_accepted_order_is_journaled_before_it_is_sent(
    manager: OrderManager, venue: FakeVenue, journal: Journal, recorder: OrderRecorder
) -> None:
    seen_in_journal: list[OrderState | None] = []

    def check_journal(coid: str) -> None:
        found = journal.find_order(client_order_id=coid)
        seen_in_journal.append(None if found is None else found.state)

    venue.before_place = check_journal
    order = await manager.submit(buy())
    assert seen_in_journal == [S.SUBMITTED]
    assert order.state is S.ACCEPTED and order.order_id == venue.order_id_for("coid-1")
    assert history(journal, "coid-1") == [S.INITIALIZED, S.SUBMITTED, S.ACCEPTED]
    assert recorder.states("coid-1") == [S.SUBMITTED, S.ACCEPTED]
    assert [o.client_order_id for o in manager.open_orders()] == ["coid-1"]
    assert manager.version > 0


async def test_denied_order_is_never_sent_and_its_denial_is_kept(
    manager: OrderManager,
    venue: FakeVenue,
    journal: Journal,
    gate: StubGate,
    recorder: OrderRecorder,
) -> None:
    gate.denial = Denial(DenialReason.MAX_OPEN_ORDERS, "20 open, limit 20")
    order = await manager.submit(buy())
    assert order.state is S.DENIED and order.denial == gate.denial
    assert venue.place_calls == []
    assert journal.find_order(client_order_id="coid-1") is None  # no intent: nothing sent
    [denial] = journal.denials()
    assert denial.denial == gate.denial and denial.client_order_id == "coid-1"
    [event] = recorder.events
    assert event.previous is S.INITIALIZED and "MAX_OPEN_ORDERS" in event.cause
    assert manager.open_orders() == []
    assert manager.get("coid-1") is not None


async def test_rejected_order_keeps_code_and_message(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    venue.script(PlaceScript.REJECT)
    order = await manager.submit(buy())
    assert order.state is S.REJECTED
    assert (order.reject_code, order.reject_message) == ("INSUFFICIENT_FUND", "not enough funds")
    stored = journal.find_order(client_order_id="coid-1")
    assert stored is not None and stored.reject_code == "INSUFFICIENT_FUND"
    assert manager.open_orders() == []


async def test_no_journal_no_send(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    journal.close()
    order = await manager.submit(buy())
    assert order.state is S.REJECTED and order.reject_code == JOURNAL_WRITE_FAILED
    assert venue.place_calls == []
    assert manager.reconciling  # trading blocked until a reconcile succeeds


async def test_stream_update_before_the_place_answer_is_not_applied_twice(
    manager: OrderManager, journal: Journal
) -> None:
    # The fake venue publishes the new order on the stream before place() returns.
    await manager.submit(buy())
    assert history(journal, "coid-1").count(S.ACCEPTED) == 1


async def test_fill_reported_before_the_place_answer_is_kept(
    manager: OrderManager, venue: FakeVenue, recorder: OrderRecorder
) -> None:
    original = venue.place

    async def place_then_fill(spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        outcome = await original(spec, client_order_id)
        venue.fill(venue.order_id_for(client_order_id), D(1), D(100))
        return outcome

    venue.place = place_then_fill  # type: ignore[method-assign]
    order = await manager.submit(buy())
    assert order.state is S.FILLED
    assert len(recorder.fills) == 1


# --------------------------------------------------------------------------- UNKNOWN


async def test_unknown_found_at_the_venue_is_adopted_without_a_second_send(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    venue.streaming = False  # the stream does not help: only the lookup can find it
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
    order = await manager.submit(buy())
    assert order.state is S.UNKNOWN and order.order_id is None
    await manager.wait_background()
    resolved = manager.get("coid-1")
    assert resolved is not None and resolved.state is S.ACCEPTED
    assert resolved.order_id == venue.order_id_for("coid-1")
    assert [coid for _, coid in venue.place_calls] == ["coid-1"]
    assert history(journal, "coid-1")[-2:] == [S.UNKNOWN, S.ACCEPTED]


async def test_unknown_not_at_the_venue_is_resent_with_the_same_id(
    manager: OrderManager, venue: FakeVenue, sleeps: Sleeps
) -> None:
    venue.script(PlaceScript.ERROR_BEFORE_ACCEPT)
    await manager.submit(buy())
    await manager.wait_background()
    assert [coid for _, coid in venue.place_calls] == ["coid-1", "coid-1"]
    assert len(venue.orders_for("coid-1")) == 1
    resolved = manager.get("coid-1")
    assert resolved is not None and resolved.state is S.ACCEPTED
    assert sleeps.delays == [0.5]


async def test_resend_of_an_order_the_lists_missed_returns_the_original(
    manager: OrderManager, venue: FakeVenue
) -> None:
    venue.streaming = False
    venue.hide_from_lists.add("coid-1")  # the order exists, but the listings lag
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
    await manager.submit(buy())
    await manager.wait_background()
    assert [coid for _, coid in venue.place_calls] == ["coid-1", "coid-1"]
    [only] = venue.orders_for("coid-1")
    resolved = manager.get("coid-1")
    assert resolved is not None and resolved.state is S.ACCEPTED
    assert resolved.order_id == only.order_id


async def test_duplicate_id_answer_means_the_order_exists(
    manager: OrderManager, venue: FakeVenue, sleeps: Sleeps
) -> None:
    venue.streaming = False
    venue.duplicate_rejects = True
    venue.hide_from_lists.add("coid-1")
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
    await manager.submit(buy())
    # The resolver keeps looking (never closing an order the venue said it has), well past
    # the window that would prove an absent order absent.
    await until(lambda: len(sleeps.delays) >= 20)
    still = manager.get("coid-1")
    assert still is not None and still.state is S.UNKNOWN  # never REJECTED for a duplicate
    assert len(venue.orders_for("coid-1")) == 1
    venue.hide_from_lists.clear()
    report = await manager.reconcile()
    assert report.unknown_resolved == 1 and report.still_unknown == 0
    resolved = manager.get("coid-1")
    assert resolved is not None and resolved.state is S.ACCEPTED


async def test_unknown_keeps_being_looked_for_while_the_venue_cannot_answer(
    manager: OrderManager, venue: FakeVenue, sleeps: Sleeps, recorder: OrderRecorder
) -> None:
    """Issue 9 §1: an order whose outcome is unknown is never given up on while the venue
    cannot say; the trader is told after the first few lookups; it stays open (counted,
    cancellable) and is found once the venue answers."""
    venue.streaming = False
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
    venue.failing_lists = 30
    await manager.submit(buy())
    await until(lambda: len(sleeps.delays) >= 10)
    assert sleeps.delays[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    order = manager.get("coid-1")
    assert order is not None and order.state is S.UNKNOWN
    assert any("still unknown after 5 lookups" in e.cause for e in recorder.events)
    assert [o.client_order_id for o in manager.open_orders()] == ["coid-1"]
    await manager.wait_background()
    found = manager.get("coid-1")
    assert found is not None and found.state is S.ACCEPTED
    assert len(venue.place_calls) == 1


async def test_place_that_raises_is_an_unknown_outcome(
    manager: OrderManager, venue: FakeVenue
) -> None:
    venue.script(PlaceScript.RAISE)
    order = await manager.submit(buy())
    assert order.state is S.UNKNOWN
    await manager.wait_background()
    resolved = manager.get("coid-1")
    assert resolved is not None and resolved.state is S.ACCEPTED
    assert len(venue.orders_for("coid-1")) == 1


async def test_unknown_resolved_by_the_stream_stops_the_resolver(
    manager: OrderManager, venue: FakeVenue, sleeps: Sleeps
) -> None:
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)  # the stream reports the new order
    order = await manager.submit(buy())
    assert order.state is S.ACCEPTED
    await manager.wait_background()
    assert sleeps.delays == []
    assert len(venue.place_calls) == 1


async def test_old_unknown_not_at_the_venue_is_closed_not_resent(
    manager: OrderManager, venue: FakeVenue, clock: ManualClock
) -> None:
    venue.streaming = False
    venue.script(PlaceScript.ERROR_BEFORE_ACCEPT)
    # Lookups fail for 71.5 s of pauses (0.5 + 1 + 2 + 4 + 8 x 8): past the re-send window,
    # the trader's intent is stale; past the absence window, the next lookup settles it.
    venue.failing_lists = 12
    await manager.submit(buy())
    await manager.wait_background()
    assert venue.failing_lists == 0
    order = manager.get("coid-1")
    assert order is not None and order.state is S.REJECTED and order.reject_code == NOT_AT_VENUE
    assert len(venue.place_calls) == 1


# --------------------------------------------------------------------------- fills


async def test_partial_fills_are_derived_from_cumulative_updates(
    manager: OrderManager, venue: FakeVenue, journal: Journal, recorder: OrderRecorder
) -> None:
    order = await manager.submit(buy(size="1"))
    assert order.order_id is not None
    venue.fill(order.order_id, D("0.2"), D("100"), D("0.10"))
    venue.fill(order.order_id, D("0.3"), D("101"), D("0.15"))
    current = manager.get("coid-1")
    assert current is not None and current.state is S.PARTIALLY_FILLED
    assert [(f.fill.size, f.fill.price, f.fill.commission) for f in recorder.fills] == [
        (D("0.2"), D("100"), D("0.10")),
        (D("0.3"), D("101"), D("0.15")),
    ]
    venue.fill(order.order_id, D("0.5"), D("102"))
    done = manager.get("coid-1")
    assert done is not None and done.state is S.FILLED
    assert done.average_price == D("101.3")
    assert_fills_match_venue(journal, venue, "coid-1")
    assert not recorder.fills[0].external and recorder.fills[0].client_order_id == "coid-1"
    assert recorder.states("coid-1")[-1] is S.FILLED  # the FILLED event follows the last fill
    assert manager.open_orders() == []


async def test_replayed_and_stale_updates_add_no_fill(
    manager: OrderManager, venue: FakeVenue, journal: Journal, recorder: OrderRecorder
) -> None:
    order = await manager.submit(buy(size="1"))
    assert order.order_id is not None
    venue.fill(order.order_id, D("0.4"), D("100"), D("0.2"))
    venue.fill(order.order_id, D("0.6"), D("99"), D("0.3"))
    for update in venue.history(order.order_id) * 2:  # a reconnect replays everything, twice
        manager.on_order_update(update)
    assert len(recorder.fills) == 2
    assert len(journal.fills("coid-1")) == 2
    assert_fills_match_venue(journal, venue, "coid-1")
    current = manager.get("coid-1")
    assert current is not None and current.state is S.FILLED


async def test_missing_filled_value_falls_back_to_the_average_price(
    manager: OrderManager, venue: FakeVenue, recorder: OrderRecorder
) -> None:
    order = await manager.submit(buy(size="1"))
    assert order.order_id is not None
    update = ExchangeOrder(
        order_id=order.order_id,
        client_order_id="coid-1",
        product_id="BTC-USD",
        side=Side.BUY,
        status=ExchangeOrderStatus.OPEN,
        order_type="LIMIT",
        filled_size=D("0.5"),
        average_filled_price=D("100"),
    )
    manager.on_order_update(update)
    [fill] = recorder.fills
    assert (fill.fill.size, fill.fill.price) == (D("0.5"), D("100"))


async def test_a_fill_the_journal_cannot_take_is_recovered_by_reconcile(
    manager: OrderManager,
    venue: FakeVenue,
    journal: Journal,
    recorder: OrderRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order = await manager.submit(buy(size="1"))
    await manager.reconcile()
    assert order.order_id is not None
    real = journal.record_fill

    def disk_full(record: object) -> bool:
        raise JournalError("disk full")

    monkeypatch.setattr(journal, "record_fill", disk_full)
    venue.fill(order.order_id, D("0.5"), D("100"))
    assert recorder.fills == [] and manager.reconciling
    monkeypatch.setattr(journal, "record_fill", real)
    report = await manager.reconcile()
    assert report.fills_recovered == 1 and not manager.reconciling
    assert_fills_match_venue(journal, venue, "coid-1")


# --------------------------------------------------------------------------- states


@pytest.mark.parametrize(
    ("status", "filled", "pending_cancel", "expected"),
    [
        (ExchangeOrderStatus.PENDING, "0", False, S.ACCEPTED),
        (ExchangeOrderStatus.QUEUED, "0", False, S.ACCEPTED),
        (ExchangeOrderStatus.OPEN, "0", False, S.ACCEPTED),
        (ExchangeOrderStatus.OPEN, "0.1", False, S.PARTIALLY_FILLED),
        (ExchangeOrderStatus.OPEN, "0", True, S.PENDING_CANCEL),
        (ExchangeOrderStatus.EDIT_QUEUED, "0", False, S.ACCEPTED),
        (ExchangeOrderStatus.CANCEL_QUEUED, "0", False, S.PENDING_CANCEL),
        (ExchangeOrderStatus.FILLED, "1", False, S.FILLED),
        (ExchangeOrderStatus.CANCELLED, "0", False, S.CANCELED),
        (ExchangeOrderStatus.EXPIRED, "0", False, S.EXPIRED),
        (ExchangeOrderStatus.FAILED, "0", False, S.REJECTED),
        (ExchangeOrderStatus.UNKNOWN, "0", False, None),
    ],
)
def test_exchange_status_maps_to_our_state(
    status: ExchangeOrderStatus, filled: str, pending_cancel: bool, expected: OrderState | None
) -> None:
    update = ExchangeOrder(
        order_id="x",
        client_order_id="c",
        product_id="BTC-USD",
        side=Side.BUY,
        status=status,
        order_type="LIMIT",
        filled_size=D(filled),
        pending_cancel=pending_cancel,
    )
    assert state_for_exchange_order(update) is expected


def test_terminal_states_have_no_way_out_and_working_states_are_cancelable() -> None:
    for state in OrderState:
        assert (LEGAL_TRANSITIONS[state] == frozenset()) == state.is_terminal
    assert {s for s in OrderState if s.is_working} == {
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
        S.PENDING_CANCEL,
    }


async def test_failed_and_expired_orders(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    first = await manager.submit(buy())
    second = await manager.submit(buy())
    assert first.order_id is not None and second.order_id is not None
    venue.fail(first.order_id, "INVALID_LIMIT_PRICE_POST_ONLY")
    venue.expire(second.order_id)
    failed, expired = manager.get("coid-1"), manager.get("coid-2")
    assert failed is not None and failed.state is S.REJECTED
    assert failed.reject_code == "INVALID_LIMIT_PRICE_POST_ONLY"
    assert expired is not None and expired.state is S.EXPIRED
    assert history(journal, "coid-2")[-1] is S.EXPIRED


async def test_illegal_transition_is_logged_and_ignored(
    manager: OrderManager, caplog: pytest.LogCaptureFixture
) -> None:
    order = await manager.submit(buy())
    internal = manager._orders["coid-1"]
    with caplog.at_level(logging.WARNING, logger="core.orders"):
        assert not manager._transition(internal, S.INITIALIZED, "a bug")
    assert order.state is S.ACCEPTED and internal.state is S.ACCEPTED
    assert "illegal transition ACCEPTED -> INITIALIZED" in caplog.text


async def test_a_late_open_report_reopens_a_cancelled_order_until_the_venue_is_asked(
    manager: OrderManager, venue: FakeVenue, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 §1: what the venue reports about an order we sent re-opens it, whatever our
    state; a stream report that was only late is then corrected by asking the venue."""
    order = await manager.submit(buy())
    assert order.order_id is not None
    venue.set_status(order.order_id, ExchangeOrderStatus.CANCELLED)
    venue.streaming = False
    with caplog.at_level(logging.WARNING, logger="core.orders"):
        manager.on_order_update(  # a bogus late report, the venue has it cancelled
            dataclasses.replace(venue.orders_for("coid-1")[0], status=ExchangeOrderStatus.OPEN)
        )
    reopened = manager.get("coid-1")
    assert reopened is not None and reopened.state is S.ACCEPTED
    assert [o.client_order_id for o in manager.open_orders()] == ["coid-1"]
    assert "re-opened" in caplog.text and "illegal transition" not in caplog.text
    await manager.wait_background()
    closed = manager.get("coid-1")
    assert closed is not None and closed.state is S.CANCELED


async def test_unknown_exchange_status_keeps_our_state(
    manager: OrderManager, venue: FakeVenue
) -> None:
    order = await manager.submit(buy())
    assert order.order_id is not None
    version = manager.version
    venue.set_status(order.order_id, ExchangeOrderStatus.UNKNOWN)
    current = manager.get("coid-1")
    assert current is not None and current.state is S.ACCEPTED
    assert manager.version == version


async def test_a_failing_listener_does_not_stop_the_others(
    manager: OrderManager, venue: FakeVenue, recorder: OrderRecorder
) -> None:
    class Broken:
        def on_order_event(self, event: OrderEvent) -> None:
            raise RuntimeError("bug")

        def on_fill(self, event: FillEvent) -> None:
            raise RuntimeError("bug")

    manager.add_listener(Broken())
    order = await manager.submit(buy())
    assert order.order_id is not None
    venue.fill(order.order_id, D(1), D(100))
    assert len(recorder.fills) == 1
    assert recorder.states("coid-1")[-1] is S.FILLED


# --------------------------------------------------------------------------- external


async def test_order_placed_elsewhere_is_adopted_as_external(
    manager: OrderManager, venue: FakeVenue, journal: Journal, recorder: OrderRecorder
) -> None:
    external = venue.add_external("ETH-USD", Side.SELL, D("2"), D("3000"), client_order_id="web-1")
    venue.fill(external.order_id, D("0.5"), D("3000"), D("1.5"))
    [adopted] = manager.orders()
    assert adopted.external and adopted.client_order_id == "web-1"
    assert adopted.intent.source is IntentSource.MANUAL and adopted.intent.note == "external"
    assert adopted.intent.spec.side is Side.SELL and adopted.intent.spec.base_size == D("2")
    assert adopted.state is S.PARTIALLY_FILLED
    [fill] = recorder.fills
    assert fill.external and fill.fill.size == D("0.5")
    stored = journal.find_order(order_id=external.order_id)
    assert stored is not None and stored.external
    assert_fills_match_venue(journal, venue, "web-1")


async def test_external_order_without_a_client_id_gets_a_stable_key(
    manager: OrderManager, venue: FakeVenue
) -> None:
    external = venue.add_external("BTC-USD", Side.BUY, D("1"), D("90"))
    venue.set_status(external.order_id, ExchangeOrderStatus.CANCELLED)
    [adopted] = manager.orders()
    assert adopted.client_order_id == f"external:{external.order_id}"
    assert adopted.state is S.CANCELED


async def test_external_order_whose_client_id_clashes_with_ours(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    ours = await manager.submit(buy())
    clash = venue.add_external("BTC-USD", Side.BUY, D("1"), D("90"), client_order_id="coid-1")
    coids = {o.client_order_id for o in manager.orders()}
    assert coids == {"coid-1", f"external:{clash.order_id}"}
    assert manager.get("coid-1") is not None
    assert manager.get("coid-1").order_id == ours.order_id  # type: ignore[union-attr]


# --------------------------------------------------------------------------- cancel


async def test_cancel_goes_through_pending_cancel_to_canceled(
    manager: OrderManager, venue: FakeVenue, gate: StubGate, recorder: OrderRecorder
) -> None:
    await manager.submit(buy())
    gate.denial = Denial(DenialReason.TRADING_HALTED, "halted")  # cancels are never gated
    assert await manager.cancel(["coid-1", "nope"]) == 1
    assert recorder.states("coid-1")[-2:] == [S.PENDING_CANCEL, S.CANCELED]
    assert len(gate.seen) == 1
    assert await manager.cancel(["coid-1"]) == 0  # already finished


async def test_pending_cancel_holds_until_the_venue_confirms(
    manager: OrderManager, venue: FakeVenue
) -> None:
    venue.cancel_queues = True
    order = await manager.submit(buy())
    assert order.order_id is not None
    stale_open = venue.order(order.order_id)
    await manager.cancel(["coid-1"])
    manager.on_order_update(stale_open)  # a report sent before the venue saw the cancel
    current = manager.get("coid-1")
    assert current is not None and current.state is S.PENDING_CANCEL
    venue.set_status(order.order_id, ExchangeOrderStatus.CANCELLED)
    current = manager.get("coid-1")
    assert current is not None and current.state is S.CANCELED


async def test_cancel_refused_as_not_open_asks_the_venue_what_became_of_it(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    order = await manager.submit(buy(size="1"))
    assert order.order_id is not None
    venue.fill(order.order_id, D("0.5"), D("100"))
    venue.streaming = False
    venue.fill(order.order_id, D("0.5"), D("100"))  # filled while the stream was down
    await manager.cancel(["coid-1"])
    # Refused as no longer open: never back to "working" on that word; the venue is asked.
    current = manager.get("coid-1")
    assert current is not None and current.state is S.PENDING_CANCEL
    await manager.wait_background()
    current = manager.get("coid-1")
    assert current is not None and current.state is S.FILLED
    assert_fills_match_venue(journal, venue, "coid-1")


async def test_cancel_request_that_fails_reverts(
    manager: OrderManager, venue: FakeVenue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await manager.submit(buy())

    async def down(order_ids: object) -> object:
        raise ConnectionError("reset")

    monkeypatch.setattr(venue, "cancel", down)
    assert await manager.cancel(["coid-1"]) == 1
    current = manager.get("coid-1")
    assert current is not None and current.state is S.ACCEPTED


async def test_cancel_before_the_order_id_is_known_is_sent_once_it_is(
    manager: OrderManager, venue: FakeVenue, sleeps: Sleeps
) -> None:
    venue.streaming = False
    venue.failing_lists = 10_000
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
    await manager.submit(buy())
    await until(lambda: len(sleeps.delays) >= 5)  # lookups all failed: still UNKNOWN
    assert await manager.cancel(["coid-1"]) == 1
    assert venue.cancel_calls == []
    venue.failing_lists = 0
    await manager.wait_background()  # the resolver finds it; the cancel follows
    assert venue.cancel_calls == [[venue.order_id_for("coid-1")]]
    current = manager.get("coid-1")
    assert current is not None and current.state is S.PENDING_CANCEL


async def test_cancel_all_sweeps_every_open_order_in_batches_of_100(
    manager: OrderManager, venue: FakeVenue
) -> None:
    for n in range(150):
        await manager.submit(buy(price=str(100 + n)))
    for status in (ExchangeOrderStatus.PENDING, ExchangeOrderStatus.QUEUED):
        venue.initial_status = status
        for _ in range(25):
            await manager.submit(buy())
    venue.streaming = False  # the venue knows 50 more that we have never heard of
    for n in range(50):
        venue.add_external("ETH-USD", Side.SELL, D("1"), D(3000 + n), client_order_id=f"w{n}")
    venue.streaming = True
    asked = await manager.cancel_all()
    assert asked == 250
    assert [len(batch) for batch in venue.cancel_calls] == [100, 100, 50]
    assert not any(o.status.is_open for o in venue.all_orders)
    assert all(o.state is S.CANCELED for o in manager.orders())
    assert sum(o.external for o in manager.orders()) == 50


async def test_cancel_all_for_one_product_when_listing_fails(
    manager: OrderManager, venue: FakeVenue
) -> None:
    await manager.submit(buy(product="BTC-USD"))
    await manager.submit(buy(product="ETH-USD"))
    venue.failing_lists = 1
    assert await manager.cancel_all(["ETH-USD"]) == 1
    states = {o.product_id: o.state for o in manager.orders()}
    assert states == {"BTC-USD": S.ACCEPTED, "ETH-USD": S.CANCELED}


async def test_cancel_all_remembers_orders_without_an_id(
    manager: OrderManager, venue: FakeVenue
) -> None:
    venue.streaming = False
    venue.failing_lists = 5
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
    await manager.submit(buy())
    await manager.wait_background()
    venue.streaming = True
    # the listing now shows it: cancel_all learns its id from the listing and cancels it
    assert await manager.cancel_all() == 1
    assert not venue.all_orders[0].status.is_open


# --------------------------------------------------------------------------- reconcile


async def test_stream_reset_blocks_until_a_reconcile_completes(
    manager: OrderManager, venue: FakeVenue
) -> None:
    assert manager.reconciling  # from the start
    report = await manager.reconcile()
    assert report.complete and not manager.reconciling
    manager.on_stream_reset("gap")
    assert manager.reconciling
    venue.failing_lists = 1
    failed = await manager.reconcile()
    assert not failed.complete and manager.reconciling
    await manager.reconcile()
    assert not manager.reconciling


async def test_a_reset_during_reconcile_keeps_reconciling(
    manager: OrderManager, venue: FakeVenue
) -> None:
    original = venue.list_open_orders

    async def reset_midway(product_ids: object = None) -> list[ExchangeOrder]:
        manager.on_stream_reset("reconnect")
        return await original()

    venue.list_open_orders = reset_midway  # type: ignore[method-assign]
    await manager.reconcile()
    assert manager.reconciling


async def test_reconcile_recovers_missed_fills_and_adopts_unknown_orders(
    manager: OrderManager, venue: FakeVenue, journal: Journal, recorder: OrderRecorder
) -> None:
    order = await manager.submit(buy(size="1"))
    assert order.order_id is not None
    venue.streaming = False
    venue.fill(order.order_id, D("0.25"), D("100"), D("0.05"))
    venue.fill(order.order_id, D("0.25"), D("98"), D("0.05"))
    venue.add_external("ETH-USD", Side.BUY, D("1"), D("10"), client_order_id="w1")
    report = await manager.reconcile()
    assert (report.updated, report.adopted, report.fills_recovered) == (2, 1, 1)
    [recovered] = recorder.fills
    assert recovered.fill.size == D("0.5") and recovered.fill.price == D("99")
    assert_fills_match_venue(journal, venue, "coid-1")
    again = await manager.reconcile()
    assert (again.updated, again.adopted, again.fills_recovered) == (0, 0, 0)


async def test_reconcile_asks_for_orders_the_listings_miss(
    manager: OrderManager, venue: FakeVenue, journal: Journal
) -> None:
    order = await manager.submit(buy())
    assert order.order_id is not None
    venue.streaming = False
    venue.hide_from_lists.add("coid-1")
    venue.fill(order.order_id, D(1), D(100))
    report = await manager.reconcile()
    assert venue.get_calls == [order.order_id]
    assert report.updated == 1 and report.fills_recovered == 1
    current = manager.get("coid-1")
    assert current is not None and current.state is S.FILLED


async def test_reconcile_with_a_failing_get_order_stays_reconciling(
    manager: OrderManager, venue: FakeVenue
) -> None:
    await manager.submit(buy())
    venue.hide_from_lists.add("coid-1")  # so reconcile must ask for it by id

    async def get_fails(order_id: str) -> ExchangeOrder:
        raise ConnectionError("502")

    venue.get_order = get_fails  # type: ignore[method-assign]
    report = await manager.reconcile()
    assert not report.complete and "get order" in report.errors[0]
    assert manager.reconciling


# --------------------------------------------------------------------------- restart


async def test_restart_from_the_journal_recovers_a_fill_made_while_down(
    manager: OrderManager,
    venue: FakeVenue,
    journal: Journal,
    db_path: Path,
    clock: ManualClock,
    gate: StubGate,
) -> None:
    order = await manager.submit(buy(size="1"))
    assert order.order_id is not None
    venue.fill(order.order_id, D("0.4"), D("100"), D("0.1"))
    journal.close()  # the process dies ...
    venue.streaming = False
    clock.advance(30)
    venue.fill(order.order_id, D("0.6"), D("101"), D("0.2"))  # ... and the rest fills meanwhile

    reopened = Journal.open(db_path, clock=clock)
    try:
        restarted = OrderManager(venue, reopened, gate, clock=clock)
        recorder = OrderRecorder()
        restarted.add_listener(recorder)
        venue.set_listener(restarted)
        assert restarted.restore() == 1
        [known] = restarted.orders()
        assert known.filled_size == D("0.4") and known.state is S.PARTIALLY_FILLED
        assert restarted.reconciling
        report = await restarted.reconcile()
        assert report.fills_recovered == 1 and not restarted.reconciling
        [fill] = recorder.fills
        assert (fill.fill.size, fill.fill.price, fill.fill.commission) == (
            D("0.6"),
            D("101"),
            D("0.2"),
        )
        assert_fills_match_venue(reopened, venue, "coid-1")
        # the stream comes back and replays the whole history: nothing new
        venue.streaming = True
        for update in venue.history(order.order_id):
            restarted.on_order_update(update)
        assert len(recorder.fills) == 1
        assert_fills_match_venue(reopened, venue, "coid-1")
    finally:
        reopened.close()


def _crashed_mid_send(journal: Journal, clock: ManualClock, coid: str, state: OrderState) -> None:
    """Journal what a crash between "intent recorded" and the send's answer leaves behind."""
    journal.record_intent(coid, buy())
    if state is S.SUBMITTED:
        order = ManagedOrder(
            client_order_id=coid,
            intent=buy(),
            state=S.SUBMITTED,
            created_at=clock.time(),
            updated_at=clock.time(),
        )
        journal.record_order_state(order, "sent")


@pytest.mark.parametrize("state", [S.INITIALIZED, S.SUBMITTED])
async def test_restart_after_a_crash_mid_send_finds_the_order(
    venue: FakeVenue, journal: Journal, gate: StubGate, clock: ManualClock, state: OrderState
) -> None:
    _crashed_mid_send(journal, clock, "c-sent", state)
    _crashed_mid_send(journal, clock, "c-lost", state)
    venue.streaming = False
    await venue.place(buy().spec, "c-sent")  # that one did reach the exchange
    venue.place_calls.clear()
    clock.advance(5)
    restarted = OrderManager(venue, journal, gate, clock=clock)
    venue.set_listener(restarted)
    assert restarted.restore() == 2
    assert {o.state for o in restarted.orders()} == {S.UNKNOWN}
    early = await restarted.reconcile()
    assert (early.unknown_resolved, early.still_unknown) == (1, 1)  # too soon to conclude
    clock.advance(50)
    still = await restarted.reconcile()  # 55 s after the send: a late POST may yet land
    assert (still.unknown_resolved, still.still_unknown) == (0, 1)
    clock.advance(10)
    late = await restarted.reconcile()
    assert (late.unknown_resolved, late.still_unknown) == (1, 0)
    sent, lost = restarted.get("c-sent"), restarted.get("c-lost")
    assert sent is not None and sent.state is S.ACCEPTED
    assert lost is not None and lost.state is S.REJECTED and lost.reject_code == NOT_AT_VENUE
    assert venue.place_calls == []  # nothing from before the restart is ever re-sent


async def test_finished_orders_leave_memory_but_not_the_journal(
    venue: FakeVenue, journal: Journal, gate: StubGate, clock: ManualClock
) -> None:
    small = OrderManager(venue, journal, gate, clock=clock, max_terminal_in_memory=1)
    venue.set_listener(small)
    recorder = OrderRecorder()
    small.add_listener(recorder)
    first = await small.submit(buy())
    assert first.order_id is not None
    venue.fill(first.order_id, D(1), D(100))
    second = await small.submit(buy())
    assert second.order_id is not None
    venue.set_status(second.order_id, ExchangeOrderStatus.CANCELLED)
    assert [o.client_order_id for o in small.orders()] == [second.client_order_id]
    for update in venue.history(first.order_id):  # a late replay of the evicted order
        small.on_order_update(update)
    assert len(recorder.fills) == 1
    assert not any(o.external for o in small.orders())
    await small.aclose()


# --------------------------------------------------------------------------- trouble


async def test_a_dead_journal_blocks_trading_but_never_crashes_the_manager(
    manager: OrderManager, venue: FakeVenue, journal: Journal, gate: StubGate
) -> None:
    order = await manager.submit(buy())
    assert order.order_id is not None
    await manager.reconcile()
    journal.close()
    venue.set_status(order.order_id, ExchangeOrderStatus.CANCELLED)  # state write fails
    current = manager.get("coid-1")
    assert current is not None and current.state is S.CANCELED and manager.reconciling
    venue.add_external("BTC-USD", Side.BUY, D(1), D(1))  # cannot be journaled: not adopted
    assert len(manager.orders()) == 1
    report = await manager.reconcile()
    assert report.adopted == 0 and manager.reconciling
    gate.denial = Denial(DenialReason.RECONCILING, "reconciling")
    denied = await manager.submit(buy())
    assert denied.state is S.DENIED


async def test_answers_that_contradict_what_we_know_are_logged(
    manager: OrderManager, venue: FakeVenue, caplog: pytest.LogCaptureFixture
) -> None:
    async def odd_answer(spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        venue.add_external("BTC-USD", Side.BUY, D(1), D(100), client_order_id=client_order_id)
        return OrderAccepted(PlacedOrder("other-id", client_order_id, "ETH-USD", Side.SELL))

    venue.place = odd_answer  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="core.orders"):
        order = await manager.submit(buy())
    assert order.state is S.ACCEPTED and order.order_id == venue.order_id_for("coid-1")
    assert "differs from the intent" in caplog.text
    assert "venue id other-id" in caplog.text


async def test_external_orders_of_unusual_types_are_still_adopted(
    manager: OrderManager,
) -> None:
    manager.on_order_update(
        ExchangeOrder(
            order_id="ex-9",
            client_order_id="",
            product_id="BTC-USD",
            side=Side.SELL,
            status=ExchangeOrderStatus.OPEN,
            order_type="BRACKET",
            time_in_force="SOMETHING_NEW",
        )
    )
    [adopted] = manager.orders()
    assert adopted.intent.spec.order_type is OrderType.MARKET
    assert adopted.intent.spec.time_in_force.value == "GOOD_UNTIL_CANCELLED"


async def test_external_order_reusing_an_id_the_journal_knows(
    manager: OrderManager, venue: FakeVenue, journal: Journal, gate: StubGate, clock: ManualClock
) -> None:
    order = await manager.submit(buy())
    assert order.order_id is not None
    venue.fill(order.order_id, D(1), D(100))
    restarted = OrderManager(venue, journal, gate, clock=clock)
    venue.set_listener(restarted)
    assert restarted.restore() == 0  # finished orders are not loaded
    clash = venue.add_external("BTC-USD", Side.BUY, D(2), D(90), client_order_id="coid-1")
    [adopted] = restarted.orders()
    assert adopted.client_order_id == f"external:{clash.order_id}" and adopted.external


async def test_second_cancel_while_one_is_queued_keeps_pending_cancel(
    manager: OrderManager, venue: FakeVenue
) -> None:
    venue.cancel_queues = True
    await manager.submit(buy())
    await manager.cancel(["coid-1"])
    assert await manager.cancel(["coid-1"]) == 1
    assert venue.cancel_calls[-1] == [venue.order_id_for("coid-1")]
    current = manager.get("coid-1")
    assert current is not None and current.state is S.PENDING_CANCEL


async def test_resolver_and_reconcile_never_resend_twice(
    manager: OrderManager, venue: FakeVenue
) -> None:
    venue.streaming = False
    venue.script(PlaceScript.ERROR_BEFORE_ACCEPT)
    release = asyncio.Event()
    venue.hold_next_list = release  # the resolver's lookup will hang until released
    await manager.submit(buy())
    await venue.list_held.wait()
    reconciling = asyncio.create_task(manager.reconcile())
    await asyncio.sleep(0)  # reconcile runs until it waits for the resolver's lock
    release.set()
    report = await reconciling
    await manager.wait_background()
    assert [coid for _, coid in venue.place_calls] == ["coid-1", "coid-1"]
    assert report.unknown_resolved == 1
    assert len(venue.orders_for("coid-1")) == 1


async def test_aclose_stops_a_waiting_resolver(
    venue: FakeVenue, journal: Journal, gate: StubGate, clock: ManualClock
) -> None:
    forever = asyncio.Event()

    async def long_sleep(delay: float) -> None:
        await forever.wait()

    manager = OrderManager(venue, journal, gate, clock=clock, sleep=long_sleep)
    venue.script(PlaceScript.ERROR_BEFORE_ACCEPT)
    order = await manager.submit(buy())
    await manager.aclose()
    assert order.state is S.UNKNOWN
    await manager.wait_background()  # nothing left running
    assert len(venue.place_calls) == 1


def test_deferred_cancel_waits_for_the_loop_when_learned_off_it(
    venue: FakeVenue, journal: Journal, gate: StubGate, clock: ManualClock
) -> None:
    loop = asyncio.new_event_loop()
    try:
        manager = OrderManager(venue, journal, gate, clock=clock, resolve_attempts=0)
        venue.streaming = False
        venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
        order = loop.run_until_complete(manager.submit(buy()))
        loop.run_until_complete(manager.cancel([order.client_order_id]))
        exchange = venue.order(venue.order_id_for(order.client_order_id))
        manager.on_order_update(exchange)  # handled with no loop running: nothing spawned
        assert venue.cancel_calls == []
        current = manager.get(order.client_order_id)
        assert current is not None and current.state is S.ACCEPTED
        loop.run_until_complete(manager.reconcile())
        assert venue.cancel_calls == [[exchange.order_id]]
        loop.run_until_complete(manager.aclose())
    finally:
        loop.close()


def test_listings_merge_keeps_the_report_that_knows_more() -> None:
    from core.orders import _merge_listings

    base = ExchangeOrder(
        order_id="x",
        client_order_id="c",
        product_id="BTC-USD",
        side=Side.BUY,
        status=ExchangeOrderStatus.OPEN,
        order_type="LIMIT",
    )
    later = ExchangeOrder(**{**{k: getattr(base, k) for k in base.__slots__}, "filled_size": D(1)})
    assert _merge_listings([later], [base])["x"] is later
    assert _merge_listings([base], [later])["x"] is later


async def test_cancel_all_defers_orders_it_cannot_see_yet(
    manager: OrderManager, venue: FakeVenue, sleeps: Sleeps
) -> None:
    venue.streaming = False
    venue.script(PlaceScript.TIMEOUT_AFTER_ACCEPT)
    venue.failing_lists = 10_000  # the resolver's lookups and the cancel-all listing fail
    await manager.submit(buy())
    await until(lambda: len(sleeps.delays) >= 5)
    assert await manager.cancel_all() == 1  # remembered, sent once the id is known
    assert venue.cancel_calls == []
    venue.failing_lists = 0
    await manager.wait_background()
    assert venue.cancel_calls == [[venue.order_id_for("coid-1")]]


async def test_an_unknown_order_is_not_re_sent_once_the_gate_refuses(
    manager: OrderManager, venue: FakeVenue, gate: StubGate
) -> None:
    """Trading HALTED (or a limit reached) while the outcome was unknown: the re-send would
    place an order nobody may place now. It stays UNKNOWN until proven absent."""
    venue.streaming = False
    venue.script(PlaceScript.ERROR_BEFORE_ACCEPT)
    order = await manager.submit(buy())
    assert order.state is S.UNKNOWN
    gate.denial = Denial(DenialReason.TRADING_HALTED, "HALTED")
    await manager.wait_background()
    assert [coid for _, coid in venue.place_calls] == ["coid-1"]  # never re-sent
    closed = manager.get("coid-1")
    assert closed is not None and closed.state is S.REJECTED and closed.reject_code == NOT_AT_VENUE


async def test_states_the_journal_could_not_take_are_written_by_the_next_reconcile(
    manager: OrderManager,
    venue: FakeVenue,
    journal: Journal,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The soak's kill_journal_failing: a cancel sweep while no state write succeeds; the venue
    # fills one order and cancels the other. Memory has them finished, the journal still says
    # ACCEPTED; nothing about them changes afterwards, so nothing would ever write them again
    # and a restart would take both for open orders.
    filled = await manager.submit(buy(price="100"))
    cancelled = await manager.submit(buy(price="99"))
    await manager.reconcile()
    assert filled.order_id is not None and cancelled.order_id is not None

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    real = journal.record_order_state
    monkeypatch.setattr(journal, "record_order_state", disk_full)
    venue.fill(filled.order_id, D("1"), D("100"))
    await manager.cancel_all()
    assert manager.get("coid-1").state is S.FILLED  # type: ignore[union-attr]
    assert manager.get("coid-2").state is S.CANCELED  # type: ignore[union-attr]
    assert manager.reconciling
    assert history(journal, "coid-1")[-1] is S.ACCEPTED  # the disk lost these
    await manager.reconcile()  # the disk still full: the journal is not in line yet
    assert manager.reconciling

    monkeypatch.setattr(journal, "record_order_state", real)
    report = await manager.reconcile()
    assert report.complete and not manager.reconciling
    assert history(journal, "coid-1")[-1] is S.FILLED
    assert history(journal, "coid-2")[-1] is S.CANCELED
    restarted = OrderManager(venue, journal, StubGate(), clock=clock)
    restarted.restore()
    assert restarted.open_orders() == []
