"""The proof of issue 9 §1-3: a stateful property test of ``OrderManager`` +
``EmergencyManager`` + ``RiskGate`` + ``Portfolio`` against a hostile venue.

The venue (``HostileVenue``, over the in-memory ``FakeVenue``) times POSTs out after
accepting them, lets POSTs land late (within ``unknown_order_absent_s`` of their send: the
plausibility assumption the window encodes), and holds its stream updates back to deliver
them later, reordered, duplicated or never; listings fail at random. Rules: orders (one at a
time, or a burst sent at once), fills (part or whole), stream delivery, how many POSTs land
late, late landings, kills (run to completion), automatic HALT triggers, and restarts (a new
manager rebuilt from the same journal).

The gate is wired as the engine wires it (working orders counted through
``working_orders_of(orders.open_orders())``) with limits small enough to bind within a few
orders: the account starts with ``START_BTC`` (the portfolio takes it as its balance, plus the
journaled fills, at every build), orders are sized a few at a time up to the limits, and the
rules fill them, land late POSTs and restart around them.

Invariants:
- every order the venue holds open that we sent is known to us as open (counted by the gate
  through ``open_orders()``, covered by the kill);
- after a kill completes the venue holds no open order;
- each venue fill is booked once: the journal never holds more than the venue filled, and
  the portfolio's position equals the start plus the journaled fills;
- no limit is exceeded counting working orders, judged from the venue's truth and the
  configured limits alone (not the gate's arithmetic): open orders at the venue plus POSTs
  still on their way are at most ``max_open_orders``; the position the venue filled plus every
  open or arriving buy (or minus every sell), valued at the lowest price any order here is
  sent at, is within the position and the gross exposure limits. Breaking the gate on
  purpose (not counting working orders, not counting those without an exchange id, letting
  the open-order count reach one past its limit) makes the machine find a counterexample in
  a few steps (tried by hand; ``--hypothesis-show-statistics`` shows how often each limit
  refused an order).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from core.clock import ManualClock
from core.config import RiskSettings
from core.emergency import EmergencyManager, KillPhase, KillProgress
from core.journal import Journal
from core.model import (
    Balance,
    ExchangeOrder,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Product,
    Side,
)
from core.order_state import ManagedOrder
from core.orders import OrderManager
from core.portfolio import Portfolio
from core.risk import (
    RiskGate,
    TradingStateMachine,
    TriggerName,
    TrippedTrigger,
    working_orders_of,
)
from core.trading_state import TradingState
from core.venue import CreateOrderOutcome, OrderOutcomeUnknown
from tests.core.test_risk import make_product
from tests.doubles.fake_venue import FakeVenue, VenueDown

D = Decimal
PRODUCT = "BTC-USD"
WINDOW_S = 60.0
MID = D(100)
# Inside the gate's 200 bps band around the mid; at least the venue's 1 USD minimum notional.
BUY_PRICES = (D(98), D(99))
SELL_PRICES = (D(101), D(102))
LOWEST_PRICE = min(BUY_PRICES + SELL_PRICES)
SIZES = (D("0.011"), D("0.02"), D("0.03"))
START_BTC = D("0.1")  # 9.80 at the lowest price: a few orders from the limits below
START_USD = D(100_000)
MAX_POSITION = D(14)
MAX_GROSS = D(16)
MAX_OPEN = 4


class Sleeps:
    """Instant sleeps that move the manual clock on (the window and backoffs are reached)."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    async def __call__(self, delay: float) -> None:
        self._clock.advance(min(delay, 5.0))
        await asyncio.sleep(0)


class HostileVenue(FakeVenue):
    def __init__(self, clock: ManualClock, rng: random.Random) -> None:
        super().__init__(clock)
        self._rng = rng
        self._clock_ref = clock
        self.held_updates: list[ExchangeOrder] = []
        self.late: list[tuple[OrderSpec, str, float]] = []
        self.list_failure_rate = 0.0
        self.late_rate = 0.2  # share of POSTs (re-sends too) that time out and land later

    def _publish(self, order_id: str) -> None:
        # Every update is held back; ``deliver`` sends them late, reordered, twice or never.
        self.held_updates.append(self._orders[order_id].order)

    def deliver(self, *, shuffle: bool, duplicate: bool, drop: bool) -> None:
        updates = list(self.held_updates)
        self.held_updates.clear()
        if shuffle:
            self._rng.shuffle(updates)
        if duplicate:
            updates = updates + updates[: len(updates) // 2]
        if drop and updates:
            updates.pop(self._rng.randrange(len(updates)))
        for update in updates:
            if self._listener is not None:
                self._listener.on_order_update(update)

    async def place(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        if client_order_id not in self._by_client_id and self._rng.random() < self.late_rate:
            self.place_calls.append((spec, client_order_id))
            self.late.append((spec, client_order_id, self._clock_ref.time()))
            return OrderOutcomeUnknown("timed out (lands later)")
        return await super().place(spec, client_order_id)

    def land_late(self) -> None:
        """POSTs on their way land now; those older than the window never will."""
        now = self._clock_ref.time()
        for spec, coid, sent in self.late:
            if now - sent < WINDOW_S and coid not in self._by_client_id:
                self._late = [(spec, coid)]
                self.land_late_orders()
        self.late.clear()

    def known_client_ids(self) -> set[str]:
        return set(self._by_client_id)

    def _maybe_fail(self) -> None:
        super()._maybe_fail()
        if self._rng.random() < self.list_failure_rate:
            raise VenueDown("HTTP 503 storm")


class Market:
    def mid(self, product_id: str) -> float | None:
        return 100.0

    def best_bid(self, product_id: str) -> float | None:
        return 99.9

    def best_ask(self, product_id: str) -> float | None:
        return 100.1

    def data_age_s(self, product_id: str) -> float | None:
        return 0.0


class SafetyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = TemporaryDirectory()
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.rng = random.Random(0)
        self.venue = HostileVenue(self.clock, self.rng)
        self.journal = Journal.open(Path(self._tmp.name) / "journal.sqlite3", clock=self.clock)
        self.products: dict[str, Product] = {PRODUCT: make_product(PRODUCT)}
        self.risk = RiskSettings(
            unknown_order_absent_s=WINDOW_S,
            max_orders_per_s=1000,
            max_open_orders=MAX_OPEN,
            max_position_notional=MAX_POSITION,
            max_gross_exposure=MAX_GROSS,
            kill_call_timeout_s=5.0,
        )
        self.ids = (f"c{n}" for n in itertools.count(1))
        self.killed_flat = True
        self._build()

    def _net_booked(self) -> Decimal:
        return sum(
            (r.fill.size if r.fill.side is Side.BUY else -r.fill.size)
            for r in self.journal.fills(limit=100_000)
        ) or D(0)

    def _build(self) -> None:
        self.net_at_build = self._net_booked()
        self.state = TradingStateMachine(self.journal, clock=self.clock)
        self.portfolio = Portfolio(clock=self.clock, product_ids=(PRODUCT,))
        self.portfolio.track(PRODUCT)
        # What the account holds as this process starts: the start plus what it journaled.
        self.portfolio.set_balances(
            [
                Balance("USD", START_USD, D(0)),
                Balance("BTC", START_BTC + self.net_at_build, D(0)),
            ]
        )
        self.portfolio.mark(PRODUCT, MID)
        self.gate = RiskGate(
            self.risk,
            state=self.state,
            portfolio=self.portfolio,
            market=Market(),
            products=self.products,
            open_orders=lambda: len(self.orders.open_orders()),
            reconciling=lambda: False,
            clock=self.clock,
            working_orders=lambda: working_orders_of(self.orders.open_orders()),
        )
        sleeps = Sleeps(self.clock)
        self.orders = OrderManager(
            self.venue,
            self.journal,
            self.gate,
            clock=self.clock,
            id_factory=lambda: next(self.ids),
            sleep=sleeps,
            not_found_settle_s=WINDOW_S,
        )
        self.venue.set_listener(self.orders)
        self.orders.add_listener(self.portfolio)
        self.emergency = EmergencyManager(
            state=self.state,
            orders=self.orders,
            venue=self.venue,
            journal=self.journal,
            settings=self.risk,
            products=lambda: self.products,
            prices=Market(),
            clock=self.clock,
            sleep=sleeps,
            product_ids=(PRODUCT,),
        )

    def run(self, coroutine: object) -> object:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, 60))  # type: ignore[arg-type]

    def teardown(self) -> None:
        self.run(self.orders.aclose())
        self.loop.close()
        self.journal.close()
        self._tmp.cleanup()

    # ----------------------------------------------------------------- rules

    @rule(
        side=st.sampled_from([Side.BUY, Side.SELL]),
        level=st.sampled_from([0, 1]),
        size=st.sampled_from(SIZES),
    )
    def submit(self, side: Side, level: int, size: Decimal) -> None:
        """An order sized to reach the limits within a few (the gate must refuse the one
        that, with what is working, would pass them)."""
        if self.state.state is not TradingState.ACTIVE:
            self.state.set(TradingState.ACTIVE, "test resumes", "user")
        price = (BUY_PRICES if side is Side.BUY else SELL_PRICES)[level]
        spec = OrderSpec(PRODUCT, side, OrderType.LIMIT, base_size=size, limit_price=price)
        order = self.run(self.orders.submit(OrderIntent(spec, IntentSource.MANUAL)))
        assert isinstance(order, ManagedOrder)
        # What the gate decided, for --hypothesis-show-statistics (the limits must bind).
        event(f"submit: {order.denial.reason if order.denial else order.state}")

    @rule(
        side=st.sampled_from([Side.BUY, Side.SELL]),
        size=st.sampled_from(SIZES),
        count=st.integers(2, 3),
    )
    def burst(self, side: Side, size: Decimal, count: int) -> None:
        """Several orders at once, as a strategy sends its quotes: each is checked while the
        others are in flight (SUBMITTED, no exchange id yet) or of unknown outcome."""
        if self.state.state is not TradingState.ACTIVE:
            self.state.set(TradingState.ACTIVE, "test resumes", "user")
        price = BUY_PRICES[0] if side is Side.BUY else SELL_PRICES[0]
        spec = OrderSpec(PRODUCT, side, OrderType.LIMIT, base_size=size, limit_price=price)

        async def send() -> list[ManagedOrder]:
            return await asyncio.gather(
                *(self.orders.submit(OrderIntent(spec, IntentSource.MANUAL)) for _ in range(count))
            )

        for order in self.run(send()):  # type: ignore[union-attr]
            event(f"burst: {order.denial.reason if order.denial else order.state}")

    @rule(shuffle=st.booleans(), duplicate=st.booleans(), drop=st.booleans())
    def stream(self, shuffle: bool, duplicate: bool, drop: bool) -> None:
        self.venue.deliver(shuffle=shuffle, duplicate=duplicate, drop=drop)

    @rule()
    def late_posts_land(self) -> None:
        self.venue.land_late()

    @rule(seconds=st.sampled_from([1.0, 10.0, 30.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.run(asyncio.sleep(0))

    @rule(data=st.data(), whole=st.booleans())
    def a_fill(self, data: st.DataObject, whole: bool) -> None:
        open_now = self.venue.open_orders_now()
        if not open_now:
            return
        order = data.draw(st.sampled_from(open_now))
        left = (order.base_size or D(0)) - order.filled_size
        size = left if whole else (left / 2).quantize(D("0.00000001"))
        if size > 0:
            self.venue.fill(order.order_id, size, order.limit_price or MID)

    @rule(rate=st.sampled_from([0.0, 0.3, 0.7]))
    def listings_flaky(self, rate: float) -> None:
        self.venue.list_failure_rate = rate

    @rule(rate=st.sampled_from([0.0, 0.2, 0.9]))
    def posts_late(self, rate: float) -> None:
        """How many POSTs time out and land later: at 0.9 an order stays UNKNOWN (its
        re-sends late too) while the next ones are checked against the limits."""
        self.venue.late_rate = rate

    @rule()
    def reconcile(self) -> None:
        self.run(self.orders.reconcile())

    @rule(trigger=st.booleans())
    def kill(self, trigger: bool) -> None:
        async def press() -> KillProgress:
            if trigger and self.state.state is not TradingState.HALTED:  # a limit trigger
                self.emergency.act_on(
                    [TrippedTrigger(TriggerName.DAILY_LOSS, "loss limit", TradingState.HALTED)]
                )
                task = self.emergency._kill_task
                assert task is not None
            else:
                task = self.emergency.kill("kill", "user")
            while not task.done():  # the stream keeps delivering, hostile as ever
                self.venue.deliver(shuffle=True, duplicate=True, drop=False)
                await asyncio.sleep(0)
            return await task

        progress = self.run(press())
        assert isinstance(progress, KillProgress) and progress.phase is KillPhase.DONE
        # After a kill completes the venue holds no open order.
        assert self.venue.open_orders_now() == []
        self.venue.list_failure_rate = 0.0

    @rule()
    def restart(self) -> None:
        self.run(self.orders.aclose())
        self.venue.held_updates.clear()  # the old process's socket is gone
        self._build()
        self.orders.restore()
        self.venue.list_failure_rate = 0.0
        self.run(self.orders.reconcile())

    # ----------------------------------------------------------------- invariants

    @invariant()
    def every_order_the_venue_holds_open_is_known_and_counted(self) -> None:
        ours_open = {o.client_order_id for o in self.orders.open_orders()}
        for order in self.venue.open_orders_now():
            assert order.client_order_id in ours_open, (order, ours_open)

    @invariant()
    def each_venue_fill_is_booked_once(self) -> None:
        booked: dict[str, Decimal] = {}
        net = D(0)
        for record in self.journal.fills(limit=100_000):
            booked[record.fill.order_id] = booked.get(record.fill.order_id, D(0)) + record.fill.size
            net += record.fill.size if record.fill.side is Side.BUY else -record.fill.size
        for order_id, size in booked.items():
            assert size <= self.venue.order(order_id).filled_size
        # The portfolio holds the start plus exactly the fills journaled.
        assert self.portfolio.size(PRODUCT) == START_BTC + net

    @invariant()
    def no_limit_is_exceeded_counting_working_orders(self) -> None:
        """From the venue's truth and the configured limits only: every open order and every
        POST still on its way may fill (the worst case on each side)."""
        now = self.clock.time()
        position = START_BTC
        for order in self.venue.all_orders:
            signed = order.filled_size if order.side is Side.BUY else -order.filled_size
            position += signed
        buys = sells = D(0)
        count = 0
        for order in self.venue.open_orders_now():
            left = (order.base_size or D(0)) - order.filled_size
            buys += left if order.side is Side.BUY else 0
            sells += left if order.side is Side.SELL else 0
            count += 1
        arriving = {
            coid: spec
            for spec, coid, sent in self.venue.late
            if now - sent < WINDOW_S and coid not in self.venue.known_client_ids()
        }
        for spec in arriving.values():
            size = spec.base_size or D(0)
            buys += size if spec.side is Side.BUY else 0
            sells += size if spec.side is Side.SELL else 0
            count += 1
        assert count <= MAX_OPEN, f"{count} open or arriving > max_open_orders {MAX_OPEN}"
        worst = max(abs(position + buys), abs(position - sells))
        # The gate values a growing order at its own price, never below LOWEST_PRICE.
        value = worst * LOWEST_PRICE
        assert value <= MAX_POSITION, (
            f"worst case {worst} BTC (position {position}, buys {buys}, sells {sells}) is "
            f"{value} > position limit {MAX_POSITION}"
        )
        assert value <= MAX_GROSS, f"worst case {value} > gross exposure limit {MAX_GROSS}"


SafetyMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSafety = SafetyMachine.TestCase
