"""MarketAgents: a deep, live, uncrossed, deterministic market at the requested update rate
(level updates on the wire: distinct levels changed per step, as the server sends them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from core.clock import ManualClock
from core.model import Side
from core.sim.agents import MAKER_USER_ID, TAKER_USER_ID, MarketAgents
from core.sim.exchange import SimExchange
from core.sim.types import SimFill, SimOrder, SimTrade

D = Decimal


class EventLog:
    """A listener that keeps every event as a plain tuple (for comparing whole runs), and
    batches book changes per level the way the server does between two flushes."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.book_changes = 0
        self.level_updates = 0  # what a level2 client of every product got, flush by flush
        self._pending: set[tuple[str, Side, Decimal]] = set()

    def flush(self) -> None:
        """Like ``SimServer.flush``: each level changed since the last flush is sent once."""
        self.level_updates += len(self._pending)
        self._pending.clear()

    def on_book_change(
        self, product_id: str, side: Side, price: Decimal, new_size: Decimal, time: datetime
    ) -> None:
        self.book_changes += 1
        self._pending.add((product_id, side, price))
        self.events.append(("book", product_id, side, price, new_size))

    def on_trade(self, trade: SimTrade) -> None:
        self.events.append(("trade", trade.trade_id, trade.price, trade.size, trade.side))

    def on_order_update(self, order: SimOrder) -> None:
        self.events.append(("order", order.order_id, order.status, order.filled_size))

    def on_fill(self, fill: SimFill) -> None:
        self.events.append(("fill", fill.entry_id, fill.price, fill.size))


def make_market(
    *, seed: int = 11, rate: float = 1_000.0, levels: int = 60
) -> tuple[ManualClock, SimExchange, MarketAgents, EventLog]:
    clock = ManualClock()
    exchange = SimExchange(clock=clock, seed=seed)
    log = EventLog()
    exchange.add_listener(log)
    agents = MarketAgents(exchange, seed=seed, rate=rate, levels=levels)
    return clock, exchange, agents, log


def run(
    clock: ManualClock,
    agents: MarketAgents,
    seconds: float,
    dt: float = 0.1,
    log: EventLog | None = None,
) -> None:
    """Step the market like the server's loop does; flush ``log`` after every step."""
    if log is not None:
        log.flush()  # what came before (e.g. the bootstrap) is not part of this run
        log.level_updates = 0
    for _ in range(round(seconds / dt)):
        clock.advance(dt)
        agents.step(dt)
        if log is not None:
            log.flush()


@pytest.fixture
def market() -> tuple[ManualClock, SimExchange, MarketAgents, EventLog]:
    """A bootstrapped market (60 levels a side per product) at 1,000 book changes/s."""
    clock, exchange, agents, log = make_market()
    agents.bootstrap()
    return clock, exchange, agents, log


def test_bootstrap_builds_a_ladder_around_each_start_price() -> None:
    _, exchange, agents, log = make_market(levels=300)
    agents.bootstrap()
    for product_id in exchange.products:
        bids, asks = exchange.book_levels(product_id)
        start = exchange.last_price(product_id)
        assert len(bids) == 300 and len(asks) == 300
        assert bids[0][0] < start < asks[0][0]
        assert asks[0][0] - bids[0][0] <= 2 * exchange.products[product_id].price_increment
        assert bids[-1][0] < start * D("0.99") and asks[-1][0] > start * D("1.01")
        assert not exchange.book(product_id).is_crossed()
    assert log.book_changes == 300 * 2 * 3
    assert not any(event[0] == "trade" for event in log.events)


def test_rate_is_level_updates_on_the_wire_not_raw_book_changes(
    market: tuple[ManualClock, SimExchange, MarketAgents, EventLog],
) -> None:
    clock, _, agents, log = market
    before = agents.level_updates
    run(clock, agents, 2.0, log=log)
    assert 1_980 <= log.level_updates <= 2_020  # 1,000/s for 2 s, give or take one action
    assert agents.level_updates - before == log.level_updates

    agents.rate = 100.0
    run(clock, agents, 3.0, dt=0.25, log=log)
    assert 295 <= log.level_updates <= 305
    assert agents.book_changes == log.book_changes


def test_busy_market_meets_its_rate_at_the_servers_flush_interval() -> None:
    clock, _, agents, log = make_market(rate=5_000.0, levels=300)
    agents.bootstrap(history_minutes=0)
    changes = log.book_changes
    run(clock, agents, 1.0, dt=0.025, log=log)
    assert 4_950 <= log.level_updates <= 5_050
    # Levels changed twice in a flush merge, so the agents make more raw changes than that;
    # re-quoting each ladder slot at most once a step keeps the excess (and the CPU) down
    # (re-quoting the same top slots again would need ~2.4 changes per update).
    assert 1.0 < (log.book_changes - changes) / log.level_updates < 2.0


def test_a_step_the_books_cannot_satisfy_ends_and_its_shortfall_is_not_carried() -> None:
    clock, _, agents, log = make_market(rate=20_000.0, levels=3)
    agents.bootstrap(history_minutes=0)
    changes = log.book_changes
    run(clock, agents, 0.05, dt=0.05, log=log)
    made = log.book_changes - changes
    assert log.level_updates < 1_000  # 18 quotes cannot change 1,000 levels in one step ...
    assert made <= 6 * 1_000 + 8 + 50  # ... and the step stops at its work cap (+ one action)

    agents.rate = 100.0
    run(clock, agents, 0.05, dt=0.05, log=log)
    assert log.level_updates <= 10  # ~5 owed: the earlier shortfall did not come due


def test_same_seed_same_market_different_seed_different_market() -> None:
    def events(seed: int) -> list[tuple[Any, ...]]:
        clock, _, agents, log = make_market(seed=seed, levels=30)
        agents.bootstrap()
        run(clock, agents, 1.0)
        return log.events

    first = events(3)
    assert first == events(3)
    assert first != events(4)
    assert any(event[0] == "trade" for event in first)


def test_market_stays_deep_uncrossed_and_trades_both_ways(
    market: tuple[ManualClock, SimExchange, MarketAgents, EventLog],
) -> None:
    clock, exchange, agents, _ = market
    for _ in range(8):  # 8 simulated seconds, ~8,000 updates: trades both ways, seeded
        run(clock, agents, 1.0)
        for product_id in exchange.products:
            bids, asks = exchange.book_levels(product_id)
            assert not exchange.book(product_id).is_crossed()
            assert len(bids) >= 20 and len(asks) >= 20
    for product_id in exchange.products:
        trades = exchange.recent_trades(product_id, 1_000)
        assert {trade.side for trade in trades} == {Side.BUY, Side.SELL}
        start = float(exchange.products[product_id].price or 0)
        assert start > 0


def test_price_follows_a_random_walk_that_stays_plausible(
    market: tuple[ManualClock, SimExchange, MarketAgents, EventLog],
) -> None:
    clock, exchange, agents, _ = market
    agents.rate = 300.0  # the walk does not depend on the rate; a calm market keeps this fast
    starts = {p: exchange.last_price(p) for p in exchange.products}
    run(clock, agents, 30.0, dt=0.5)
    moved = [exchange.last_price(p) != starts[p] for p in exchange.products]
    assert any(moved)
    for product_id, start in starts.items():
        assert abs(exchange.last_price(product_id) / start - 1) < D("0.05")


def test_agents_do_not_run_out_of_money(
    market: tuple[ManualClock, SimExchange, MarketAgents, EventLog],
) -> None:
    clock, exchange, agents, _ = market
    run(clock, agents, 10.0)
    for user in (MAKER_USER_ID, TAKER_USER_ID):
        for account in exchange.accounts(user):
            assert account.available > 0
        assert exchange.fee_rates(user) == (D(0), D(0))


def test_step_bootstraps_on_first_use_and_ignores_empty_steps() -> None:
    clock, exchange, agents, log = make_market(levels=10)
    agents.step(0)
    assert log.book_changes == 0
    clock.advance(0.1)
    agents.step(0.1)
    assert log.book_changes >= 10 * 2 * 3
    assert all(exchange.book_levels(p)[0] for p in exchange.products)


def test_a_ladder_needs_two_levels() -> None:
    exchange = SimExchange(clock=ManualClock(), seed=0)
    with pytest.raises(ValueError):
        MarketAgents(exchange, seed=0, rate=10, levels=1)


def test_bootstrap_gives_each_product_a_day_of_candles_ending_at_its_start_price(
    market: tuple[ManualClock, SimExchange, MarketAgents, EventLog],
) -> None:
    clock, exchange, _, _ = market
    now = int(clock.time())
    for product_id in exchange.products:
        minutes = exchange.candles(product_id, now - 86_400, now, 60)
        assert len(minutes) == 24 * 60
        assert minutes[0].start == now - 60 and minutes[0].close == exchange.last_price(product_id)
        for newer, older in pairwise(minutes):
            assert older.close == newer.open  # one continuous path
            assert newer.low <= min(newer.open, newer.close) <= max(newer.open, newer.close)
            assert max(newer.open, newer.close) <= newer.high
            assert newer.volume > 0
        ticker = exchange.ticker(product_id)
        assert ticker.volume_24h > 0 and ticker.low_24h < ticker.high_24h


def test_bootstrap_without_history() -> None:
    clock, exchange, agents, _ = make_market(levels=5)
    agents.bootstrap(history_minutes=0)
    now = int(clock.time())
    assert exchange.candles("BTC-USD", now - 86_400, now, 60) == []
