"""``EmergencyManager``: kill switch, flatten, resume and the automatic triggers' actions.

Unit tests: a real ``OrderManager`` and ``Journal`` (SQLite in a temp dir) over the in-memory
``FakeVenue``, a manual clock and an instant, recorded sleep. The engine-level proofs against
the simulated exchange are in tests/integration/test_engine_trading.py. The last class covers
``Journal.batch``, which the kill switch's cancel path relies on for its speed.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.config import RiskSettings
from core.denials import Denial, DenialReason
from core.emergency import (
    RESUME_CONFIRMATION,
    EmergencyManager,
    KillPhase,
    ResumeRefused,
)
from core.journal import Journal
from core.journal_records import FillRecord, JournalError
from core.model import (
    Balance,
    ExchangeOrderStatus,
    Fill,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Product,
    Side,
    TimeInForce,
)
from core.order_state import OrderState
from core.orders import OrderManager
from core.risk import TradingStateMachine, TriggerName, TrippedTrigger
from core.trading_state import TradingState
from core.venue import CreateOrderOutcome, OrderAccepted
from tests.core.test_risk import make_product
from tests.doubles.fake_venue import FakeVenue
from tests.doubles.gate import StubGate
from tests.doubles.sleeps import Sleeps, loop_until

D = Decimal


class RateGate:
    """Allows ``per_window`` orders, then denies ORDER_RATE until the sleep moves on."""

    def __init__(self, per_window: int) -> None:
        self.per_window = per_window
        self.used = 0
        self.denied = 0

    def check_resend(self, intent: OrderIntent, client_order_id: str) -> Denial | None:
        return self.check(intent)

    def check(self, intent: OrderIntent) -> Denial | None:
        if self.used >= self.per_window:
            self.denied += 1
            self.used = 0  # the next window (the flatten waits one pace before retrying)
            return Denial(DenialReason.ORDER_RATE, "10 orders/s")
        self.used += 1
        return None


class ReconcilingGate:
    """Denies RECONCILING while the order manager is reconciling, as the engine's does."""

    def __init__(self, orders: OrderManager) -> None:
        self._orders = orders

    def check_resend(self, intent: OrderIntent, client_order_id: str) -> Denial | None:
        return self.check(intent)

    def check(self, intent: OrderIntent) -> Denial | None:
        if self._orders.reconciling:
            return Denial(DenialReason.RECONCILING, "reconciling")
        return None


class HeldVenue(FakeVenue):
    """The fake venue, with balances the test sets (what flatten sizes from)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.held: list[Balance] = []
        self.balance_calls = 0
        self.ioc_fill_ratio = D(1)

    async def balances(self) -> list[Balance]:
        self.balance_calls += 1
        return list(self.held)

    async def place(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        """IOC orders trade at once: filled up to ``ioc_fill_ratio`` of their size, the rest
        cancelled (a thin book)."""
        outcome = await super().place(spec, client_order_id)
        if isinstance(outcome, OrderAccepted) and spec.time_in_force is TimeInForce.IOC:
            order_id = outcome.placed.order_id
            size = (spec.base_size or D(0)) * self.ioc_fill_ratio
            if size > 0:
                self.fill(order_id, size, spec.limit_price or D(0))
            if self.order(order_id).status is not ExchangeOrderStatus.FILLED:
                self.set_status(order_id, ExchangeOrderStatus.CANCELLED)
        return outcome


@dataclass
class Prices:
    """Best bids by product (None: no bid)."""

    bids: dict[str, float | None] = field(default_factory=dict)

    def best_bid(self, product_id: str) -> float | None:
        return self.bids.get(product_id)

    def best_ask(self, product_id: str) -> float | None:
        return None


class FailingJournal:
    """A journal whose risk events cannot be written (a full disk)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def record_risk_event(self, kind: str, detail: str) -> None:
        raise OSError("disk full")

    def sync(self) -> None:
        raise OSError("disk full")

    def record_flatten_started(self, flatten_id: str, detail: str) -> None:
        self._journal.record_flatten_started(flatten_id, detail)

    def record_flatten_finished(self, flatten_id: str, detail: str) -> None:
        self._journal.record_flatten_finished(flatten_id, detail)

    def unfinished_flatten(self) -> str | None:
        return self._journal.unfinished_flatten()


@dataclass
class Parts:
    manager: EmergencyManager
    orders: OrderManager
    venue: HeldVenue
    journal: Journal
    state: TradingStateMachine
    prices: Prices
    sleeps: Sleeps
    products: dict[str, Product]
    clock: ManualClock


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Iterator[Journal]:
    """A real journal on a fresh file, closed after the test."""
    opened = Journal.open(tmp_path / "journal-paper.sqlite3", clock=clock)
    yield opened
    opened.close()


def build(journal: Journal, clock: ManualClock, *, settings: RiskSettings | None = None) -> Parts:
    venue = HeldVenue(clock)
    ids = (f"coid-{n}" for n in itertools.count(1))
    orders = OrderManager(
        venue, journal, StubGate(), clock=clock, id_factory=lambda: next(ids), sleep=Sleeps()
    )
    venue.set_listener(orders)
    state = TradingStateMachine(journal, clock=clock)
    prices = Prices({"BTC-USD": 50_000.0, "ETH-USD": 3_000.0})
    products = {"BTC-USD": make_product("BTC-USD"), "ETH-USD": make_product("ETH-USD")}
    sleeps = Sleeps()
    manager = EmergencyManager(
        state=state,
        orders=orders,
        venue=venue,
        journal=journal,
        settings=settings or RiskSettings(kill_max_verify_rounds=4),
        products=lambda: products,
        prices=prices,
        clock=clock,
        sleep=sleeps,
    )
    return Parts(manager, orders, venue, journal, state, prices, sleeps, products, clock)


@pytest.fixture
def parts(journal: Journal, clock: ManualClock) -> Parts:
    """An emergency manager over a real order manager and journal and the fake venue (at
    most 4 verification rounds), BTC-USD bid 50000 and ETH-USD bid 3000."""
    return build(journal, clock)


def limit_buy(product_id: str = "BTC-USD", price: str = "49000") -> OrderIntent:
    spec = OrderSpec(
        product_id, Side.BUY, OrderType.LIMIT, base_size=D("0.1"), limit_price=D(price)
    )
    return OrderIntent(spec, IntentSource.MANUAL)


async def rest_orders(parts: Parts, count: int) -> list[str]:
    placed = [await parts.orders.submit(limit_buy()) for _ in range(count)]
    assert all(o.state is OrderState.ACCEPTED for o in placed)
    return [o.client_order_id for o in placed]


def state_of(parts: Parts) -> TradingState:
    """The trading state now (a call, so the type checker does not pin it between asserts)."""
    return parts.state.state


def risk_kinds(journal: Journal) -> list[str]:
    return [event.kind for event in journal.risk_events()]


class StuckJournal(FailingJournal):
    """A journal whose every write fails (a full disk), the trading state's included."""

    def save_trading_state(self, change: object, *, durable: bool = True) -> None:
        raise OSError("disk full")

    def load_trading_state(self) -> None:
        return None


class TestKill:
    async def test_latches_halted_before_any_cancel_and_cancels_everything(
        self, parts: Parts
    ) -> None:
        coids = await rest_orders(parts, 3)
        task = parts.manager.kill("ctrl+k", "user")
        # Latched in memory at once; nothing on disk yet and nothing cancelled yet.
        assert parts.state.state is TradingState.HALTED
        assert parts.manager.progress.phase is KillPhase.CANCELLING
        assert parts.venue.cancel_calls == []
        progress = await task
        assert progress.phase is KillPhase.DONE and progress.still_open == 0
        assert progress.rounds == 1 and progress.cancels_sent == 3
        assert progress.finished_at is not None and progress.halted_at is not None
        assert all(
            parts.venue.order(parts.venue.order_id_for(c)).status is ExchangeOrderStatus.CANCELLED
            for c in coids
        )
        # Durable once the cancels had left.
        assert parts.journal.load_trading_state().state is TradingState.HALTED  # type: ignore[union-attr]
        assert risk_kinds(parts.journal) == ["kill_switch", "kill_switch_done"]
        assert parts.state.last_change.source == "user"

    async def test_second_press_while_running_returns_the_same_sequence(self, parts: Parts) -> None:
        await rest_orders(parts, 1)
        first = parts.manager.kill("first", "user")
        assert parts.manager.kill("second", "user") is first
        await first
        halts = [c for c in parts.journal.trading_state_history() if c.state is TradingState.HALTED]
        assert len(halts) == 1  # already HALTED: not set again

    async def test_press_when_halted_sweeps_again(self, parts: Parts) -> None:
        await parts.manager.kill("first", "user")
        # An order that reached the venue anyway (e.g. placed elsewhere): a second press
        # sweeps it. (The gate here allows everything; the engine's refuses when HALTED.)
        [coid] = await rest_orders(parts, 1)
        progress = await parts.manager.kill("make sure", "user")
        assert progress.phase is KillPhase.DONE and progress.cancels_sent == 1
        assert parts.orders.get(coid).state is OrderState.CANCELED  # type: ignore[union-attr]

    async def test_queued_cancels_are_swept_until_they_complete_and_it_says_why(
        self, parts: Parts
    ) -> None:
        await rest_orders(parts, 2)
        parts.venue.cancel_queues = True  # cancels are queued and do not complete
        task = parts.manager.kill("ctrl+k", "user")
        # It never gives up: past kill_max_verify_rounds it is still sweeping.
        await loop_until(lambda: len(parts.sleeps.delays) >= 8)
        progress = parts.manager.progress
        assert progress.phase is KillPhase.CANCELLING and progress.still_open == 2
        assert progress.waiting is not None and "2 order(s) still listed open" in progress.waiting
        # Growing pauses between rounds, capped.
        assert parts.sleeps.delays[:7] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
        assert "kill_switch_waiting" in risk_kinds(parts.journal)
        assert "kill_switch_slow" in risk_kinds(parts.journal)
        parts.venue.cancel_queues = False
        for order in parts.venue.all_orders:  # the exchange works its queue off at last
            if order.status is ExchangeOrderStatus.CANCEL_QUEUED:
                parts.venue.set_status(order.order_id, ExchangeOrderStatus.CANCELLED)
        done = await task
        assert done.phase is KillPhase.DONE and done.waiting is None
        assert parts.state.state is TradingState.HALTED

    async def test_listing_errors_are_retried_until_the_venue_answers_flat(
        self, parts: Parts
    ) -> None:
        """Issue 9 §2: one failed listing used to end the kill as FAILED with orders open."""
        await rest_orders(parts, 3)
        parts.venue.failing_lists = 25  # a long 5xx/429 storm on every listing
        parts.venue.failing_cancels = 3  # and the first cancel requests fail too
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE and progress.error is None
        assert parts.venue.open_orders_now() == []
        kinds = risk_kinds(parts.journal)
        assert kinds[-1] == "kill_switch_done" and "kill_switch_waiting" in kinds
        waits = [e.detail for e in parts.journal.risk_events() if e.kind == "kill_switch_waiting"]
        assert any("listing open orders failed" in w for w in waits)

    async def test_a_hung_venue_call_is_abandoned_and_retried(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = build(journal, clock, settings=RiskSettings(kill_call_timeout_s=0.01))
        await rest_orders(parts, 2)
        parts.venue.hang_lists = 2  # the next two listings never answer
        progress = await asyncio.wait_for(parts.manager.kill("ctrl+k", "user"), 30)
        assert progress.phase is KillPhase.DONE
        assert parts.venue.open_orders_now() == []

    async def test_every_order_the_venue_lists_is_cancelled_not_only_ours(
        self, parts: Parts
    ) -> None:
        """Issue 9 §1: an order we had closed (NOT_AT_VENUE) but the venue holds open."""
        [coid] = await rest_orders(parts, 1)
        order_id = parts.venue.order_id_for(coid)
        internal = parts.orders._orders[coid]
        internal.state = OrderState.REJECTED  # what the old code concluded from one listing
        parts.orders._by_order_id.pop(order_id)
        internal.order_id = None
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE
        assert parts.venue.order(order_id).status is ExchangeOrderStatus.CANCELLED
        assert parts.orders.get(coid).state is OrderState.CANCELED  # type: ignore[union-attr]

    async def test_a_late_post_is_found_and_cancelled_before_the_kill_is_done(
        self, parts: Parts
    ) -> None:
        """Issue 9 §1: the POST timed out; the exchange accepts it 14 s later. The kill
        waits for the order of unknown outcome and cancels it once it shows up."""
        parts.venue.streaming = False
        parts.venue.late_accepts = 1  # the next POST times out and lands later
        order = await parts.orders.submit(limit_buy())
        assert order.state is OrderState.UNKNOWN
        task = parts.manager.kill("ctrl+k", "user")
        await loop_until(lambda: len(parts.sleeps.delays) >= 4)
        progress = parts.manager.progress
        assert progress.phase is KillPhase.CANCELLING
        assert progress.waiting is not None and "unknown outcome" in progress.waiting
        assert parts.venue.land_late_orders() == 1  # the exchange accepts it now
        done = await task
        assert done.phase is KillPhase.DONE
        assert parts.venue.open_orders_now() == []
        await parts.orders.wait_background()  # the venue is asked what became of it
        found = parts.orders.get(order.client_order_id)
        assert found is not None and found.state is OrderState.CANCELED

    async def test_a_journal_that_cannot_record_does_not_stop_the_kill(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = build(journal, clock)
        parts.manager._journal = FailingJournal(journal)  # the risk events cannot be written
        await rest_orders(parts, 2)
        progress = await parts.manager.kill("ctrl+k", "user")
        assert progress.phase is KillPhase.DONE
        assert parts.state.state is TradingState.HALTED

    async def test_a_full_disk_neither_delays_nor_prevents_the_cancels(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        """Issue 9 §2: the HALTED write and every order-state write fail; the cancels go
        out all the same, and the automatic path does not raise either."""
        parts = build(journal, clock)
        await rest_orders(parts, 3)
        stuck = StuckJournal(journal)
        parts.state._store = stuck  # type: ignore[assignment]
        parts.manager._journal = stuck
        parts.orders._journal.record_order_state = _disk_full  # type: ignore[method-assign]
        parts.manager.act_on([TrippedTrigger(TriggerName.DAILY_LOSS, "loss", TradingState.HALTED)])
        assert parts.state.state is TradingState.HALTED
        task = parts.manager._kill_task
        assert task is not None
        progress = await task
        assert progress.phase is KillPhase.DONE
        assert parts.venue.open_orders_now() == []

    async def test_every_halt_pauses_the_strategies(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = build(journal, clock)
        paused: list[str] = []
        parts.manager._on_halt = lambda: paused.append("paused")
        parts.manager.act_on([TrippedTrigger(TriggerName.DRAWDOWN, "dd", TradingState.HALTED)])
        await parts.manager._kill_task  # type: ignore[misc]
        assert paused == ["paused"]
        parts.manager.kill("ctrl+k", "user")
        await parts.manager._kill_task  # type: ignore[misc]
        assert paused == ["paused", "paused"]

    async def test_a_restart_in_halted_sweeps_again(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = build(journal, clock)
        await rest_orders(parts, 2)
        parts.state.set(TradingState.HALTED, "before the restart", "user")
        again = build(journal, clock)
        again.venue.adopt_from(parts.venue)  # the same exchange, still holding both orders
        assert again.orders.restore() == 2
        task = again.manager.resume_sweep("restart in HALTED")
        assert task is not None
        progress = await task
        assert progress.phase is KillPhase.DONE
        assert again.venue.open_orders_now() == []


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError("disk full")


class TestFlatten:
    async def test_needs_confirmation(self, parts: Parts) -> None:
        with pytest.raises(ValueError, match="confirmation"):
            await parts.manager.flatten(confirmed=False)
        assert parts.venue.balance_calls == 0

    async def test_sells_fresh_balances_reduce_only_ioc_price_protected(self, parts: Parts) -> None:
        parts.venue.held = [
            Balance("USD", D(1000), D(0)),
            Balance("BTC", D("0.123456789"), D(0)),  # rounded down to the increment
            Balance("ETH", D(2), D(0)),
        ]
        result = await parts.manager.flatten(confirmed=True)
        assert parts.venue.balance_calls == 1
        assert result.skipped == ()
        by_product = {o.product_id: o for o in result.orders}
        btc = by_product["BTC-USD"].intent
        assert btc.reduce_only and btc.source is IntentSource.FLATTEN
        assert btc.spec.side is Side.SELL and btc.spec.time_in_force is TimeInForce.IOC
        assert btc.spec.base_size == D("0.12345678")
        # 100 bps under the bid by default, snapped up to the tick (a sell stays protected).
        assert btc.spec.limit_price == D("49500.00")
        assert by_product["ETH-USD"].intent.spec.limit_price == D("2970.00")
        [marker] = parts.journal.flattens()
        assert marker.finished_at is not None and marker.outcome == "2 order(s); skipped: none"
        assert risk_kinds(parts.journal) == ["flatten"]

    async def test_splits_a_large_holding_under_the_per_order_notional_limit(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = build(journal, clock, settings=RiskSettings(max_order_notional=D(20_000)))
        parts.venue.held = [Balance("USD", D(0), D(0)), Balance("BTC", D(1), D(0))]
        result = await parts.manager.flatten(confirmed=True)
        sizes = [o.intent.spec.base_size for o in result.orders if o.product_id == "BTC-USD"]
        # 49,500 a coin at the protected price: 20,000 buys 0.40404040 of it per order.
        assert sizes == [D("0.40404040"), D("0.40404040"), D("0.19191920")]
        assert sum(sizes) == D(1)
        assert all(size * D("49500.00") <= D(20_000) for size in sizes if size is not None)

    async def test_skips_what_cannot_be_sold_and_says_why(self, parts: Parts) -> None:
        parts.products["SOL-USD"] = make_product("SOL-USD", base_min_size=D("0.01"))
        parts.products["DOGE-USD"] = make_product("DOGE-USD")
        parts.products["ADA-USD"] = make_product("ADA-USD")
        parts.prices.bids |= {"SOL-USD": 150.0, "DOGE-USD": None, "ADA-USD": 0.5}
        parts.venue.held = [
            Balance("SOL", D("0.001"), D(0)),  # below the minimum size
            Balance("DOGE", D(100), D(0)),  # no bid to price against
            Balance("ADA", D(1), D(0)),  # worth less than the minimum order
            Balance("BTC", D(0), D(0)),  # nothing held: not even mentioned
        ]
        result = await parts.manager.flatten(confirmed=True)
        assert result.orders == ()
        assert len(result.skipped) == 3
        assert any("SOL-USD" in s and "minimum size" in s for s in result.skipped)
        assert any("DOGE-USD" in s and "no bid" in s for s in result.skipped)
        assert any("ADA-USD" in s and "minimum order" in s for s in result.skipped)

    async def test_every_unit_not_sold_is_reported_with_why(self, parts: Parts) -> None:
        """Issue 9 §4: 0.371 of 0.5 BTC stayed unsold while ``skipped`` was empty."""
        parts.venue.held = [Balance("BTC", D("0.5"), D(0))]
        parts.venue.ioc_fill_ratio = D("0.258")  # a thin book: 0.129 sold, the rest cancelled
        result = await parts.manager.flatten(confirmed=True)
        [line] = result.skipped
        assert line.startswith("BTC-USD: 0.371") and "not sold" in line and "CANCELED" in line
        [marker] = parts.journal.flattens()
        assert "0.371" in (marker.outcome or "")

    async def test_paced_under_the_order_rate_limit_not_refused(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        parts = build(journal, clock, settings=RiskSettings(max_order_notional=D(1_000)))
        gate = RateGate(per_window=2)
        parts.orders._gate = gate
        parts.venue.held = [Balance("BTC", D("0.1"), D(0))]  # 5 orders under 1,000 each
        result = await parts.manager.flatten(confirmed=True)
        assert result.skipped == ()
        assert sum(o.filled_size for o in result.orders) == D("0.1")
        assert gate.denied > 0  # the limit was hit, and waited out

    async def test_works_over_rest_while_the_stream_is_down(self, parts: Parts) -> None:
        await parts.orders.reconcile()
        parts.orders.on_stream_reset("user stream lost")  # RECONCILING until REST answers
        gate = ReconcilingGate(parts.orders)
        parts.orders._gate = gate
        parts.venue.held = [Balance("BTC", D("0.1"), D(0))]
        result = await parts.manager.flatten(confirmed=True)
        assert result.skipped == () and len(result.orders) == 1
        assert result.orders[0].state is OrderState.FILLED

    async def test_a_second_flatten_while_one_runs_is_refused(self, parts: Parts) -> None:
        parts.manager.flatten_in_progress = True
        result = await parts.manager.flatten(confirmed=True)
        assert result.orders == () and result.skipped == ("a flatten is already running",)

    async def test_an_interrupted_flatten_is_reported_once_and_never_resent(
        self, parts: Parts
    ) -> None:
        assert parts.manager.check_unfinished_flatten() is None
        parts.journal.record_flatten_started("flatten-1", "sizes from fresh balances")
        message = parts.manager.check_unfinished_flatten()
        assert message is not None and "NOT re-sent" in message and "flatten-1" in message
        assert parts.manager.check_unfinished_flatten() is None
        [marker] = parts.journal.flattens()
        assert marker.outcome == "interrupted; not re-sent"
        assert parts.venue.place_calls == []


class TestResume:
    async def test_needs_the_typed_word(self, parts: Parts) -> None:
        await parts.manager.kill("ctrl+k", "user")
        with pytest.raises(ResumeRefused, match=RESUME_CONFIRMATION):
            await parts.manager.resume("yes")
        assert parts.state.state is TradingState.HALTED

    async def test_refused_while_the_kill_switch_is_cancelling(self, parts: Parts) -> None:
        await rest_orders(parts, 1)
        task = parts.manager.kill("ctrl+k", "user")
        with pytest.raises(ResumeRefused, match="still cancelling"):
            await parts.manager.resume(RESUME_CONFIRMATION)
        await task

    async def test_refused_when_the_venue_cannot_be_listed(self, parts: Parts) -> None:
        await parts.manager.kill("ctrl+k", "user")
        parts.venue.failing_lists = 1
        with pytest.raises(ResumeRefused, match="not clean"):
            await parts.manager.resume(RESUME_CONFIRMATION)
        assert parts.state.state is TradingState.HALTED

    async def test_refused_while_an_order_is_unknown(
        self, journal: Journal, clock: ManualClock
    ) -> None:
        # An intent journaled by a run that died before sending it: UNKNOWN after restore,
        # and for 60 s (``unknown_order_absent_s``) its POST may still land at the venue.
        journal.record_intent("lost", limit_buy())
        parts = build(journal, clock)
        parts.orders.restore()
        kill = parts.manager.kill("ctrl+k", "user")
        await loop_until(lambda: parts.manager.progress.rounds >= 2)
        # The kill waits for it (it may yet land): not done, and resume is refused.
        assert parts.manager.progress.phase is KillPhase.CANCELLING
        with pytest.raises(ResumeRefused, match="still cancelling"):
            await parts.manager.resume(RESUME_CONFIRMATION)
        clock.advance(61)
        assert (await kill).phase is KillPhase.DONE
        report = await parts.manager.resume(RESUME_CONFIRMATION)
        assert report.still_unknown == 0
        assert state_of(parts) is TradingState.ACTIVE
        lost = parts.orders.get("lost")
        assert lost is not None and lost.state is OrderState.REJECTED

    async def test_clean_reconcile_goes_active_and_clears_the_kill(self, parts: Parts) -> None:
        await parts.manager.kill("ctrl+k", "user")
        report = await parts.manager.resume(f"  {RESUME_CONFIRMATION} ")
        assert report.complete
        assert parts.state.state is TradingState.ACTIVE
        assert parts.manager.progress.phase is KillPhase.IDLE
        assert risk_kinds(parts.journal)[-1] == "resume"


def tripped(name: TriggerName, state: TradingState) -> TrippedTrigger:
    return TrippedTrigger(name, f"{name.value} tripped", state)


class TestTriggers:
    async def test_nothing_tripped_changes_nothing(self, parts: Parts) -> None:
        parts.manager.act_on([])
        assert parts.state.state is TradingState.ACTIVE

    async def test_reducing_trigger_sets_reducing_and_records_why(self, parts: Parts) -> None:
        parts.manager.act_on([tripped(TriggerName.DAILY_LOSS, TradingState.REDUCING)])
        assert parts.state.state is TradingState.REDUCING
        assert parts.state.last_change.source == "trigger:daily_loss"
        [event] = parts.journal.risk_events()
        assert (event.kind, event.detail) == ("trigger:daily_loss", "daily_loss tripped")
        # Tripped again: no stricter state asked for, nothing recorded twice.
        parts.manager.act_on([tripped(TriggerName.DAILY_LOSS, TradingState.REDUCING)])
        assert len(parts.journal.risk_events()) == 1

    async def test_the_strictest_trigger_wins_and_halts_with_the_kill_sequence(
        self, parts: Parts
    ) -> None:
        await rest_orders(parts, 2)
        parts.manager.act_on(
            [
                tripped(TriggerName.DAILY_LOSS, TradingState.REDUCING),
                tripped(TriggerName.REJECT_STORM, TradingState.HALTED),
            ]
        )
        assert parts.state.state is TradingState.HALTED
        assert parts.state.last_change.source == "trigger:reject_storm"
        task = parts.manager._kill_task
        assert task is not None
        progress = await task
        assert progress.phase is KillPhase.DONE and progress.cancels_sent == 2
        assert progress.cause == "reject_storm tripped"

    async def test_a_looser_trigger_never_loosens_the_state(self, parts: Parts) -> None:
        await parts.manager.kill("ctrl+k", "user")
        parts.manager.act_on([tripped(TriggerName.DAILY_LOSS, TradingState.REDUCING)])
        assert parts.state.state is TradingState.HALTED


class TestJournalBatch:
    """``Journal.batch``: the kill switch journals hundreds of PENDING_CANCEL states with one
    commit (a commit each costs ~0.2 ms, too much for the 100 ms budget)."""

    @staticmethod
    def committed_kinds(journal: Journal) -> list[str]:
        """What another connection (a restarted process) sees: committed rows only."""
        with sqlite3.connect(journal.path) as reader:
            return [row[0] for row in reader.execute("SELECT kind FROM risk_events ORDER BY id")]

    def test_writes_inside_are_committed_together_and_nested_batches_join(
        self, journal: Journal
    ) -> None:
        with journal.batch():
            journal.record_risk_event("a", "1")
            with journal.batch():
                journal.record_risk_event("b", "2")
            assert self.committed_kinds(journal) == []
            assert risk_kinds(journal) == ["a", "b"]  # the writer sees its own
        assert self.committed_kinds(journal) == ["a", "b"]

    def test_a_failing_write_is_undone_alone(self, journal: Journal, clock: ManualClock) -> None:
        journal.record_intent("coid-1", limit_buy())
        fill = Fill("t-1", "o-1", "BTC-USD", Side.BUY, D("49000"), D("0.1"), D("1"))
        record = FillRecord("coid-1", fill, D("4900"), D("0.1"), None, external=False)
        with journal.batch():
            journal.record_risk_event("before", "")
            assert journal.record_fill(record) is True
            assert journal.record_fill(record) is False  # the replay: undone alone
            journal.record_risk_event("after", "")
        assert self.committed_kinds(journal) == ["before", "after"]
        assert len(journal.fills("coid-1")) == 1

    def test_a_durable_write_inside_commits_the_batch_first(self, journal: Journal) -> None:
        with journal.batch():
            journal.record_risk_event("a", "")
            journal.record_intent("coid-1", limit_buy())  # durable: on disk on its own
            assert self.committed_kinds(journal) == ["a"]
            journal.record_risk_event("b", "")
            assert self.committed_kinds(journal) == ["a"]
        assert self.committed_kinds(journal) == ["a", "b"]
        assert journal.find_order(client_order_id="coid-1") is not None

    def test_without_a_transaction_of_its_own_each_write_reports_its_failure(
        self, journal: Journal
    ) -> None:
        journal._db.execute("BEGIN")  # someone else's transaction is open on the connection
        try:
            with journal.batch(), pytest.raises(JournalError):
                journal.record_risk_event("a", "")
        finally:
            journal._db.execute("ROLLBACK")
        journal.record_risk_event("b", "")
        assert self.committed_kinds(journal) == ["b"]
