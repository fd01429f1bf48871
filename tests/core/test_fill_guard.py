"""Impossible fills are refused before anything books them (core.fill_guard), through the
order manager's one call: via the stream and via reconciliation, never journaled, counted,
and announced to the registry's listeners (the engine's event list)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.bad_input import REFUSED_EXCHANGE_DATA
from core.clock import ManualClock
from core.config import load_settings
from core.engine import REFUSAL_EVENT_INTERVAL_S, Engine
from core.fill_guard import (
    FILL_NOT_SANE,
    FILL_PAST_ORDER_SIZE,
    MAX_AMOUNT,
    amount_problem,
    cumulative_problem,
    fill_problem,
)
from core.journal import Journal
from core.model import IntentSource, OrderIntent, OrderSpec, OrderType, Side
from core.orders import OrderManager
from tests.doubles.fake_venue import FakeVenue
from tests.doubles.gate import StubGate
from tests.doubles.order_listener import OrderRecorder

D = Decimal


# --------------------------------------------------------------------------- the checks

sane = st.decimals(min_value=D("0.00000001"), max_value=MAX_AMOUNT, places=8)


@given(price=sane, size=sane, fee=st.decimals(min_value=0, max_value=D(10**9), places=8))
def test_sane_fills_pass(price: Decimal, size: Decimal, fee: Decimal) -> None:
    assert fill_problem(price, size, fee) is None


@given(
    bad=st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).filter(lambda d: not d.is_finite()),
        st.decimals(max_value=D(0), allow_nan=False, allow_infinity=False),
        st.decimals(min_value=MAX_AMOUNT + 1, allow_nan=False, allow_infinity=False),
        st.sampled_from([D("1e400"), D("-1e400"), D("1E+999999"), D("sNaN"), D("-0")]),
    ),
    which=st.sampled_from(["price", "size"]),
)
def test_a_price_or_size_that_is_not_a_sane_positive_amount_is_refused(
    bad: Decimal, which: str
) -> None:
    good = D("1")
    price, size = (bad, good) if which == "price" else (good, bad)
    assert fill_problem(price, size, D(0)) is not None


def test_fees_may_be_zero_but_not_negative() -> None:
    assert fill_problem(D(1), D(1), D(0)) is None
    assert fill_problem(D(1), D(1), D("-0.01")) is not None
    assert amount_problem("12", "x", zero_ok=True) is not None  # not a Decimal at all


def test_cumulative_size_past_the_order_is_refused() -> None:
    assert cumulative_problem(D("0.001"), D("0.001")) is None
    assert cumulative_problem(D("0.001"), D("5")) is not None
    assert cumulative_problem(None, D("5")) is None  # quote-sized: the base size is unknown


# --------------------------------------------------------------------------- order manager


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal-paper.sqlite3", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def refusals() -> Iterator[list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def listener(kind: str, detail: str) -> None:
        seen.append((kind, detail))

    REFUSED_EXCHANGE_DATA.add_listener(listener)
    yield seen
    REFUSED_EXCHANGE_DATA.remove_listener(listener)


async def _setup(
    clock: ManualClock, journal: Journal
) -> tuple[FakeVenue, OrderManager, OrderRecorder, str]:
    venue = FakeVenue(clock)
    manager = OrderManager(venue, journal, StubGate(), clock=clock)
    venue.set_listener(manager)
    recorder = OrderRecorder()
    manager.add_listener(recorder)
    spec = OrderSpec(
        "BTC-USD", Side.BUY, OrderType.LIMIT, base_size=D("0.001"), limit_price=D("60000")
    )
    order = await manager.submit(OrderIntent(spec=spec, source=IntentSource.MANUAL))
    assert order.order_id is not None
    return venue, manager, recorder, order.client_order_id


async def test_a_streamed_fill_past_the_order_size_is_never_booked(
    clock: ManualClock, journal: Journal, refusals: list[tuple[str, str]]
) -> None:
    venue, manager, recorder, coid = await _setup(clock, journal)
    before = REFUSED_EXCHANGE_DATA.count(FILL_PAST_ORDER_SIZE)
    venue.fill(venue.order_id_for(coid), D("5"), D("60000"))  # 5 BTC on a 0.001 BTC order
    assert recorder.fills == []
    assert journal.fill_totals(coid).size == 0
    assert REFUSED_EXCHANGE_DATA.count(FILL_PAST_ORDER_SIZE) == before + 1
    assert [kind for kind, _ in refusals] == [FILL_PAST_ORDER_SIZE]
    assert coid in refusals[0][1] and "past the order size" in refusals[0][1]
    order = manager.get(coid)
    assert order is not None and order.filled_size == 0 and order.is_open


async def test_a_reconciled_fill_past_the_order_size_is_never_booked(
    clock: ManualClock, journal: Journal, refusals: list[tuple[str, str]]
) -> None:
    venue, manager, recorder, coid = await _setup(clock, journal)
    venue.streaming = False  # only REST reconciliation will see it
    venue.fill(venue.order_id_for(coid), D("1000"), D("60000"))
    await manager.reconcile()
    assert recorder.fills == [] and journal.fill_totals(coid).size == 0
    assert [kind for kind, _ in refusals] == [FILL_PAST_ORDER_SIZE]


async def test_a_fill_at_an_impossible_price_is_never_booked(
    clock: ManualClock, journal: Journal, refusals: list[tuple[str, str]]
) -> None:
    venue, _manager, recorder, coid = await _setup(clock, journal)
    venue.fill(venue.order_id_for(coid), D("0.0005"), D("1e400"))
    assert recorder.fills == [] and journal.fill_totals(coid).size == 0
    assert [kind for kind, _ in refusals] == [FILL_NOT_SANE]


async def test_a_possible_fill_after_a_refused_one_is_booked(
    clock: ManualClock, journal: Journal, refusals: list[tuple[str, str]]
) -> None:
    venue, _manager, recorder, coid = await _setup(clock, journal)
    order_id = venue.order_id_for(coid)
    venue.fill(order_id, D("0.0005"), D("60000"))
    assert [f.fill.size for f in recorder.fills] == [D("0.0005")]
    assert journal.fill_totals(coid).size == D("0.0005")
    assert refusals == []


# --------------------------------------------------------------------------- on screen


def _paper_engine(tmp_path: Path, clock: ManualClock, name: str = "journal-paper") -> Engine:
    settings = load_settings(
        None,
        overrides={"mode": "paper", "storage": {"data_dir": str(tmp_path)}},
        environ={"HOME": "/nonexistent-home"},
    )
    return Engine(
        settings,
        None,
        clock=clock,
        mode="paper",
        journal_file=tmp_path / f"{name}.sqlite3",
        market_feed=lambda market: None,
    )


@contextlib.asynccontextmanager
async def _running(engine: Engine) -> AsyncIterator[None]:
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0)  # run() has begun: its listener is registered
    try:
        yield
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 15)


async def test_the_engine_shows_refusals_once_per_kind_per_interval(
    tmp_path: Path, clock: ManualClock
) -> None:
    engine = _paper_engine(tmp_path, clock)
    async with _running(engine):
        for _ in range(3):
            REFUSED_EXCHANGE_DATA.refuse(FILL_PAST_ORDER_SIZE, "order x: 5 past 0.001")
        shown = [e.text for e in engine.snapshot().events if "refused exchange data" in e.text]
        assert shown == [f"refused exchange data ({FILL_PAST_ORDER_SIZE}): order x: 5 past 0.001"]
        clock.advance(REFUSAL_EVENT_INTERVAL_S + 1)
        REFUSED_EXCHANGE_DATA.refuse(FILL_PAST_ORDER_SIZE, "again")
        shown = [e.text for e in engine.snapshot().events if "refused exchange data" in e.text]
        assert len(shown) == 2
        counts = engine.refused_input_counts()
        assert counts[f"exchange.{FILL_PAST_ORDER_SIZE}"] >= 4
        assert not any(key.startswith("user.") for key in counts), "paper has no user stream"


async def test_engines_started_and_stopped_in_turn_leave_no_listener_behind(
    tmp_path: Path, clock: ManualClock
) -> None:
    before = REFUSED_EXCHANGE_DATA.listener_count
    for round_number in range(5):
        engine = _paper_engine(tmp_path, clock, f"journal-{round_number}")
        assert REFUSED_EXCHANGE_DATA.listener_count == before, "built, not running: no listener"
        async with _running(engine):
            assert REFUSED_EXCHANGE_DATA.listener_count == before + 1
            REFUSED_EXCHANGE_DATA.refuse(FILL_NOT_SANE, f"round {round_number}")
            assert any(f"round {round_number}" in e.text for e in engine.snapshot().events)
        assert REFUSED_EXCHANGE_DATA.listener_count == before
        # A stopped engine hears nothing more.
        REFUSED_EXCHANGE_DATA.refuse(FILL_NOT_SANE, f"after round {round_number}")
        assert not any("after round" in e.text for e in engine.snapshot().events)
