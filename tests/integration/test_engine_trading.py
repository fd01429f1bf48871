"""The whole engine trading on the simulated exchange over loopback sockets.

Every order goes through ``Engine.submit`` (risk gate -> journal -> REST) and every update
comes back on the user channel, exactly as in the demo and live. What the engine believes
(order states, journaled fills, the portfolio) is compared with the exchange's own truth
(``SimExchange``). The sim and the engine share a ``ManualClock``: GTD expiry and outage
bounds move only when a test moves the clock.

Book (conftest ladder): BTC-USD bids 67990, 67980, ... and asks 68010, 68020, ... with 0.5 BTC
a level; ETH-USD 3499/3501 (5 a level); SOL-USD 149.90/150.10 (50 a level).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from core.clock import ManualClock
from core.denials import DenialReason
from core.emergency import KillPhase, ResumeRefused
from core.journal import Journal
from core.model import (
    ExchangeOrderStatus,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
)
from core.order_state import ManagedOrder, OrderState
from core.sim.exchange import SimExchange
from core.sim.server import SimServer
from core.sim.types import SimOrder
from core.trading_state import TradingState
from tests.integration.engine_harness import (
    EngineRun,
    eventually,
    limit_spec,
    place_resting,
    proof_settings,
    running_engine,
)

D = Decimal
BTC, ETH, SOL = "BTC-USD", "ETH-USD", "SOL-USD"


@pytest.fixture
async def run(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> AsyncIterator[EngineRun]:
    """An engine trading on the in-process sim (shared ManualClock), reconciled and ready.

    Every order that reaches the exchange during the test is checked to have its intent
    journaled before it arrived (see ``IntentBeforeSend``).
    """
    async with running_engine(sim_server, sim_exchange, sim_clock, tmp_path) as engine_run:
        witness = IntentBeforeSend(engine_run.journal_file)
        sim_exchange.add_listener(witness)
        yield engine_run
    sim_exchange.remove_listener(witness)
    late = [coid for coid, journaled in witness.checked.items() if not journaled]
    assert not late, f"orders at the exchange before their intent was journaled: {late}"


class IntentBeforeSend:
    """A sim listener: when an order reaches the exchange, its intent must already be on disk.

    It reads the journal through its own SQLite connection (what a restarted process would
    see), at the moment the exchange creates the order, i.e. after the request arrived.
    """

    def __init__(self, journal_file: Path) -> None:
        self._db = sqlite3.connect(journal_file)
        self.checked: dict[str, bool] = {}

    def on_order_update(self, order: SimOrder) -> None:
        if order.user_id == "market-maker" or order.client_order_id in self.checked:
            return
        row = self._db.execute(
            "SELECT 1 FROM intents WHERE client_order_id = ?", (order.client_order_id,)
        ).fetchone()
        self.checked[order.client_order_id] = row is not None

    def on_book_change(self, *args: Any) -> None: ...

    def on_trade(self, *args: Any) -> None: ...

    def on_fill(self, *args: Any) -> None: ...


async def settled(run: EngineRun, client_order_id: str, state: OrderState) -> ManagedOrder:
    """Wait until the engine's order reaches ``state`` (the user channel flushed meanwhile)."""
    run.sim.server.flush()

    def reached() -> bool:
        order = run.engine.orders.get(client_order_id)
        return order is not None and order.state is state

    await eventually(reached)
    order = run.engine.orders.get(client_order_id)
    assert order is not None
    return order


def journal_states(run: EngineRun, client_order_id: str) -> list[OrderState]:
    return [r.state for r in run.engine.journal.order_history(client_order_id)]


def assert_fills_match_sim(run: EngineRun, order: ManagedOrder) -> None:
    """Journaled fills of the order == the exchange's fills: same total size, value and fees,
    each journaled once (a unique cumulative size per fill)."""
    assert order.order_id is not None
    journaled = run.engine.journal.fills(order.client_order_id)
    at_sim = run.sim.fills_of(order.order_id)
    assert sum(f.fill.size for f in journaled) == sum(f.size for f in at_sim)
    assert sum(f.fill.commission for f in journaled) == sum(f.commission for f in at_sim)
    assert sum(f.value for f in journaled) == sum(f.price * f.size for f in at_sim)
    keys = [f.cumulative_size for f in journaled]
    assert len(keys) == len(set(keys))
    totals = run.engine.journal.fill_totals(order.client_order_id)
    assert (totals.size, totals.fees) == (order.filled_size, order.total_fees)


async def position_matches_sim(run: EngineRun, product_id: str, currency: str) -> None:
    """The portfolio's position converges on the exchange's balance of the base currency."""
    await eventually(
        lambda: run.engine.portfolio.position(product_id).size == run.sim.balance(currency)
    )


class TestOrderTypes:
    async def test_limit_gtc_rests_and_is_journaled_before_it_is_sent(self, run: EngineRun) -> None:
        witness = IntentBeforeSend(run.journal_file)
        run.sim.exchange.add_listener(witness)
        order = await run.submit(limit_spec(BTC, Side.BUY, "0.01", "67500"))
        assert order.state is OrderState.ACCEPTED and order.order_id is not None
        assert witness.checked == {order.client_order_id: True}
        run.sim.exchange.remove_listener(witness)
        [at_sim] = run.sim.by_client_id(order.client_order_id)
        assert at_sim.order_id == order.order_id and at_sim.status is ExchangeOrderStatus.OPEN
        assert journal_states(run, order.client_order_id) == [
            OrderState.INITIALIZED,
            OrderState.SUBMITTED,
            OrderState.ACCEPTED,
        ]
        assert order.client_order_id in {o.client_order_id for o in run.engine.orders.open_orders()}
        await run.engine.cancel([order.client_order_id])
        await settled(run, order.client_order_id, OrderState.CANCELED)
        assert run.sim.order(order.order_id).status is ExchangeOrderStatus.CANCELLED

    @pytest.mark.parametrize(
        ("sizing", "amount"), [("base_size", D("0.01")), ("quote_size", D("1000"))]
    )
    async def test_market_order_fills_once_and_moves_position_and_fees(
        self, run: EngineRun, sizing: str, amount: Decimal
    ) -> None:
        btc_before = run.sim.balance("BTC")
        spec = (
            OrderSpec(BTC, Side.BUY, OrderType.MARKET, base_size=amount)
            if sizing == "base_size"
            else OrderSpec(BTC, Side.BUY, OrderType.MARKET, quote_size=amount)
        )
        order = await run.submit(spec)
        filled = await settled(run, order.client_order_id, OrderState.FILLED)
        assert filled.filled_size > 0 and filled.total_fees > 0
        if sizing == "base_size":
            assert filled.filled_size == amount
        else:
            assert filled.filled_value + filled.total_fees <= amount
        assert_fills_match_sim(run, filled)
        assert run.sim.balance("BTC") == btc_before + filled.filled_size
        await position_matches_sim(run, BTC, "BTC")
        assert run.engine.portfolio.position(BTC).fees == filled.total_fees
        assert journal_states(run, order.client_order_id)[:2] == [
            OrderState.INITIALIZED,
            OrderState.SUBMITTED,
        ]

    async def test_gtd_expires_at_its_end_time(self, run: EngineRun) -> None:
        clock = run.clock
        assert isinstance(clock, ManualClock)
        end = datetime.fromtimestamp(clock.time(), tz=UTC) + timedelta(seconds=60)
        spec = limit_spec(ETH, Side.BUY, "0.5", "3450", time_in_force=TimeInForce.GTD, end_time=end)
        order = await run.submit(spec)
        assert order.state is OrderState.ACCEPTED
        clock.advance(61)
        run.sim.server.advance_market(0)
        expired = await settled(run, order.client_order_id, OrderState.EXPIRED)
        assert expired.filled_size == 0
        assert run.sim.order(expired.order_id or "").status is ExchangeOrderStatus.EXPIRED

    async def test_ioc_takes_what_is_there_and_cancels_the_rest(self, run: EngineRun) -> None:
        # 0.5 BTC rests at 68010 and 0.5 at 68020: an IOC for 0.8 up to 68010 takes 0.5.
        spec = limit_spec(BTC, Side.BUY, "0.8", "68010", time_in_force=TimeInForce.IOC)
        order = await run.submit(spec)
        done = await settled(run, order.client_order_id, OrderState.CANCELED)
        assert done.filled_size == D("0.5")
        assert_fills_match_sim(run, done)
        assert not run.sim.open_orders()

    async def test_fok_fills_whole_or_not_at_all(self, run: EngineRun) -> None:
        too_big = limit_spec(BTC, Side.BUY, "0.8", "68010", time_in_force=TimeInForce.FOK)
        killed = await run.submit(too_big)
        assert killed.order_id is not None
        await eventually(lambda: _state(run, killed.client_order_id).is_terminal)
        nothing = run.engine.orders.get(killed.client_order_id)
        assert nothing is not None and nothing.filled_size == 0
        assert nothing.state in (OrderState.CANCELED, OrderState.EXPIRED)
        assert run.engine.journal.fills(killed.client_order_id) == []

        whole = await run.submit(
            limit_spec(BTC, Side.BUY, "0.8", "68020", time_in_force=TimeInForce.FOK)
        )
        filled = await settled(run, whole.client_order_id, OrderState.FILLED)
        assert filled.filled_size == D("0.8")
        assert_fills_match_sim(run, filled)

    async def test_post_only_crossing_is_rejected_with_the_exchange_code(
        self, run: EngineRun
    ) -> None:
        crossing = await run.submit(limit_spec(BTC, Side.BUY, "0.01", "68010", post_only=True))
        assert crossing.state is OrderState.REJECTED
        assert crossing.reject_code == "INVALID_LIMIT_PRICE_POST_ONLY"
        assert run.engine.journal.order_history(crossing.client_order_id)[-1].state is (
            OrderState.REJECTED
        )
        assert run.sim.by_client_id(crossing.client_order_id) == []
        passive = await run.submit(limit_spec(BTC, Side.BUY, "0.01", "67900", post_only=True))
        assert passive.state is OrderState.ACCEPTED

    async def test_stop_limit_waits_for_the_market_then_trades(self, run: EngineRun) -> None:
        spec = OrderSpec(
            BTC,
            Side.BUY,
            OrderType.STOP_LIMIT,
            base_size=D("0.2"),
            limit_price=D("68100"),
            stop_price=D("68020"),
            stop_direction=StopDirection.UP,
        )
        order = await run.submit(spec)
        assert order.state is OrderState.ACCEPTED
        assert run.engine.journal.fills(order.client_order_id) == []
        # The maker lifts 0.5 at 68010 and 0.2 at 68020: a print at the stop triggers ours.
        run.sim.maker_takes(BTC, Side.BUY, "0.7")
        filled = await settled(run, order.client_order_id, OrderState.FILLED)
        assert filled.filled_size == D("0.2")
        assert filled.average_price is not None and filled.average_price <= D("68100")
        assert_fills_match_sim(run, filled)
        await position_matches_sim(run, BTC, "BTC")


def _state(run: EngineRun, client_order_id: str) -> OrderState:
    order = run.engine.orders.get(client_order_id)
    assert order is not None
    return order.state


class TestPartialFills:
    async def test_several_takers_make_fills_from_cumulative_updates_once(
        self, run: EngineRun
    ) -> None:
        # Our bid at 67995 is the best: each maker sell hits it first.
        order = await run.submit(limit_spec(BTC, Side.BUY, "0.3", "67995"))
        for size in ("0.05", "0.1"):
            run.sim.maker_takes(BTC, Side.SELL, size)
            await eventually(partial(_filled_at_least, run, order.client_order_id, D(size)))
        part_filled = await settled(run, order.client_order_id, OrderState.PARTIALLY_FILLED)
        assert part_filled.filled_size == D("0.15")
        fills_before = len(run.engine.journal.fills(order.client_order_id))
        # A reconnect replays every order's cumulative state: nothing is journaled twice.
        user_socket = run.engine.venue.user_socket  # type: ignore[attr-defined]
        reconnects = user_socket.status.reconnects
        assert run.sim.server.faults.drop_websockets() >= 1
        # The loss is seen through the reconnect count: a healthy socket reconnects at once,
        # faster than a poll of stream_connected can be sure to catch it down.
        await eventually(lambda: user_socket.status.reconnects > reconnects, timeout=5)
        await eventually(lambda: run.engine.venue.stream_connected, timeout=10)
        await eventually(lambda: not run.engine.orders.reconciling)
        assert len(run.engine.journal.fills(order.client_order_id)) == fills_before
        run.sim.maker_takes(BTC, Side.SELL, "0.2")  # 0.15 more fills ours, 0.05 hits 67990
        filled = await settled(run, order.client_order_id, OrderState.FILLED)
        assert filled.filled_size == D("0.3")
        journaled = run.engine.journal.fills(order.client_order_id)
        assert len(journaled) == 3
        assert [f.cumulative_size for f in journaled] == [D("0.05"), D("0.15"), D("0.3")]
        assert_fills_match_sim(run, filled)
        await position_matches_sim(run, BTC, "BTC")


def _filled_at_least(run: EngineRun, client_order_id: str, size: Decimal) -> bool:
    order = run.engine.orders.get(client_order_id)
    return order is not None and order.filled_size >= size


def _terminal(run: EngineRun, client_order_id: str) -> bool:
    return _state(run, client_order_id).is_terminal


def trading_state(run: EngineRun) -> TradingState:
    """The engine's trading state now (a call, so the type checker does not pin it)."""
    return run.engine.trading_state.state


class TestKillSwitch:
    async def test_kill_with_200_open_orders_cancels_all_at_the_exchange(
        self, run: EngineRun
    ) -> None:
        placed = await place_resting(run.engine, 200)
        assert len(run.sim.open_orders()) == 200
        progress = await run.engine.kill("test kill", "user")
        assert progress.phase is KillPhase.DONE and progress.still_open == 0
        assert run.engine.trading_state.state is TradingState.HALTED
        assert run.sim.open_orders() == []
        assert {o.product_id for o in run.sim.orders()} == {BTC, ETH, SOL}
        await eventually(lambda: not run.engine.orders.open_orders())
        for order in placed:
            assert _state(run, order.client_order_id) is OrderState.CANCELED
        denied = await run.submit(limit_spec(BTC, Side.BUY, "0.001", "67500"))
        assert denied.state is OrderState.DENIED and denied.denial is not None
        assert denied.denial.reason is DenialReason.TRADING_HALTED
        kinds = [e.kind for e in run.engine.journal.risk_events()]
        assert "kill_switch" in kinds and "kill_switch_done" in kinds
        assert run.engine.journal.load_trading_state().state is TradingState.HALTED  # type: ignore[union-attr]

    async def test_cancels_still_work_while_halted(self, run: EngineRun) -> None:
        [order] = await place_resting(run.engine, 1)
        run.engine.trading_state.set(TradingState.HALTED, "test", "user")
        await run.engine.cancel([order.client_order_id])
        await settled(run, order.client_order_id, OrderState.CANCELED)
        assert run.sim.open_orders() == []

    async def test_flatten_after_kill_sells_what_is_held_reduce_only(self, run: EngineRun) -> None:
        bought = await run.submit(OrderSpec(ETH, Side.BUY, OrderType.MARKET, base_size=D("1")))
        await settled(run, bought.client_order_id, OrderState.FILLED)
        await place_resting(run.engine, 6)
        await run.engine.kill("before flatten")
        result = await run.engine.flatten(confirmed=True)
        assert {o.product_id for o in result.orders} == {BTC, ETH, SOL}
        for order in result.orders:
            assert order.intent.reduce_only and order.intent.source is IntentSource.FLATTEN
            assert order.intent.spec.time_in_force is TimeInForce.IOC
            assert order.intent.spec.limit_price is not None  # price-protected
            assert order.intent.spec.side is Side.SELL
        for order in result.orders:
            await eventually(partial(_terminal, run, order.client_order_id))
        # Everything held sold into the bids (the ladder is deep enough for the demo account).
        for currency in ("BTC", "ETH", "SOL"):
            assert run.sim.balance(currency) < D("0.001"), currency
        [marker] = run.engine.journal.flattens()
        assert marker.finished_at is not None and marker.started_at <= marker.finished_at
        assert run.engine.trading_state.state is TradingState.HALTED

    async def test_resume_needs_the_typed_word_and_a_clean_reconcile(
        self,
        sim_server: SimServer,
        sim_exchange: SimExchange,
        sim_clock: ManualClock,
        tmp_path: Path,
    ) -> None:
        # An intent journaled by an earlier run that died before sending it: after the
        # restart it is UNKNOWN until the exchange has had time to show it (60 s).
        journal = Journal.open(tmp_path / "journal-demo.sqlite3", clock=sim_clock)
        lost = "lost-before-send"
        journal.record_intent(
            lost, OrderIntent(limit_spec(BTC, Side.BUY, "0.01", "67500"), IntentSource.MANUAL)
        )
        journal.close()
        async with running_engine(sim_server, sim_exchange, sim_clock, tmp_path) as run:
            assert _state(run, lost) is OrderState.UNKNOWN
            kill = run.engine.kill("before resume")
            # The kill waits for the order of unknown outcome: its POST may yet land.
            await eventually(
                lambda: "unknown outcome" in (run.engine.emergency.progress.waiting or "")
            )
            with pytest.raises(ResumeRefused, match="RESUME"):
                await run.engine.resume("resume please")
            with pytest.raises(ResumeRefused, match="still cancelling"):
                await run.engine.resume("RESUME")
            assert run.engine.trading_state.state is TradingState.HALTED
            sim_clock.advance(61)  # the exchange has had its time: the order never arrived
            assert (await asyncio.wait_for(kill, 30)).phase.value == "DONE"
            report = await run.engine.resume("RESUME")
            assert report.complete and report.still_unknown == 0
            assert trading_state(run) is TradingState.ACTIVE
            lost_order = run.engine.orders.get(lost)
            assert lost_order is not None and lost_order.state is OrderState.REJECTED
            assert run.sim.by_client_id(lost) == []  # never re-sent


class TestUnknownOutcome:
    async def test_lost_response_resolves_to_exactly_one_order(self, run: EngineRun) -> None:
        faults = run.sim.server.faults
        # The sim sends the user-channel update before it cuts the connection; silence the
        # sockets so the answer is truly lost and only reconciliation can find the order.
        faults.silence(3600)
        faults.next_rest("lose_order_response")
        order = await run.submit(limit_spec(SOL, Side.BUY, "1", "149"))
        assert order.state is OrderState.UNKNOWN
        assert len(run.sim.by_client_id(order.client_order_id)) == 1  # it did reach the sim
        await eventually(lambda: _state(run, order.client_order_id) is OrderState.ACCEPTED)
        faults.end_silence()
        assert OrderState.UNKNOWN in journal_states(run, order.client_order_id)
        [at_sim] = run.sim.by_client_id(order.client_order_id)
        resolved = run.engine.orders.get(order.client_order_id)
        assert resolved is not None and resolved.order_id == at_sim.order_id
        await run.engine.orders.wait_background()
        assert len(run.sim.by_client_id(order.client_order_id)) == 1


class TestAutomaticTriggers:
    @pytest.fixture
    async def strict(
        self,
        sim_server: SimServer,
        sim_exchange: SimExchange,
        sim_clock: ManualClock,
        tmp_path: Path,
    ) -> AsyncIterator[EngineRun]:
        """An engine whose reject-storm and user-stream bounds are tiny."""
        settings = proof_settings(
            tmp_path,
            risk={"reject_storm_count": 3, "reject_storm_window_s": 60, "user_stream_outage_s": 5},
        )
        async with running_engine(
            sim_server, sim_exchange, sim_clock, tmp_path, settings=settings
        ) as engine_run:
            yield engine_run

    async def test_reject_storm_halts_with_the_cause_journaled(self, strict: EngineRun) -> None:
        for _ in range(3):
            rejected = await strict.submit(
                limit_spec(BTC, Side.BUY, "0.01", "68010", post_only=True)
            )
            assert rejected.state is OrderState.REJECTED
        await eventually(lambda: strict.engine.trading_state.state is TradingState.HALTED)
        assert "rejects" in strict.engine.trading_state.last_change.cause
        assert any("rejects" in e.detail for e in strict.engine.journal.risk_events())

    async def test_user_stream_down_past_its_bound_halts(
        self, strict: EngineRun, sim_server: SimServer
    ) -> None:
        clock = strict.clock
        assert isinstance(clock, ManualClock)
        # The exchange goes away: the user socket cannot reconnect. The bound is 5 s of the
        # (manual) clock; the market-data bound (30 s) is never reached.
        await sim_server.stop()
        await eventually(lambda: not strict.engine.venue.stream_connected)
        for _ in range(15):
            if strict.engine.trading_state.state is TradingState.HALTED:
                break
            clock.advance(1)
            await asyncio.sleep(0.3)  # a maintenance pass (every 0.25 s) sees the new time
        assert strict.engine.trading_state.state is TradingState.HALTED
        cause = strict.engine.trading_state.last_change.cause
        assert cause.startswith("user stream down for"), cause
        assert strict.engine.trading_state.last_change.source == "trigger:user_stream_down"
        assert any(
            e.kind == "kill_switch" and "user stream down" in e.detail
            for e in strict.engine.journal.risk_events()
        )
