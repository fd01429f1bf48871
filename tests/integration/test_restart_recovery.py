"""Restart after kill -9: no order lost, none doubled, every fill journaled exactly once.

The engine runs in a CHILD process (``engine_harness`` role ``orders``) against the
simulated exchange in another child process (market agents trading), both on loopback. The
engine child is killed with SIGKILL at a chosen point of an order's life:

- before the request leaves (the intent is journaled, nothing was sent),
- after the request reached the exchange but before its answer was read,
- after the answer was applied and journaled,
- between two fills of a resting order (the test watches the journal, then kills).

A new engine then starts on the same journal (in this process, on the system clock) and
must arrive at the exchange's state, which the test reads through the exchange's own REST
API: each intent is at most ONE order at the exchange, and its journaled fills add up to the
exchange's cumulative figures.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from core.clock import SystemClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.rest import CoinbaseRestClient
from core.config import SimSettings
from core.engine import Engine
from core.model import ExchangeOrder, ExchangeOrderStatus, OrderSpec, OrderType, Side
from core.order_state import OrderState
from core.orders import NOT_AT_VENUE
from core.sim.launcher import SimProcess, astart_sim_process
from core.venue import OrderAccepted
from tests.integration.engine_harness import (
    REPO_ROOT,
    CrashPoint,
    build_engine,
    child_command,
    child_env,
    endpoints_of,
    eventually,
    proof_settings,
)

WAIT_S = 30.0
PRODUCT = "BTC-USD"
JOURNAL = "journal-demo.sqlite3"
_STATE_OF_STATUS = {
    ExchangeOrderStatus.OPEN: OrderState.ACCEPTED,
    ExchangeOrderStatus.FILLED: OrderState.FILLED,
    ExchangeOrderStatus.CANCELLED: OrderState.CANCELED,
}


@pytest.fixture
async def sim_process() -> AsyncIterator[SimProcess]:
    """The simulated exchange in a child process with its market agents (seeded, calm)."""
    sim = await astart_sim_process(SimSettings(seed=9, rate=200))
    try:
        yield sim
    finally:
        await sim.astop()


@pytest.fixture
async def exchange(sim_process: SimProcess) -> AsyncIterator[CoinbaseRestClient]:
    """The test's own REST client with the demo key: the exchange's truth."""
    endpoints = sim_process.endpoints
    clock = SystemClock()
    signer = JwtSigner(endpoints.credentials, clock, rest_host_from_url(endpoints.rest_url))
    async with CoinbaseRestClient(
        endpoints.rest_url, signer, clock=clock, private_rate_per_s=30, public_rate_per_s=10
    ) as rest:
        yield rest


class EngineChild:
    """The engine child process: submit through stdin, read its answers, kill it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, sim: SimProcess, data_dir: Path, *extra: str) -> EngineChild:
        process = await asyncio.create_subprocess_exec(
            *child_command("orders", data_dir, "--products", PRODUCT, *extra),
            cwd=REPO_ROOT,
            env=child_env(sim.endpoints),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = cls(process)
        ready = await child.answer()
        assert ready is not None and ready["event"] == "ready", ready
        return child

    async def submit(self, size: str, price: Decimal) -> None:
        assert self.process.stdin is not None
        command = {"op": "submit", "product_id": PRODUCT, "side": "BUY"}
        command |= {"size": size, "price": str(price)}
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def answer(self) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), WAIT_S)
        return json.loads(raw) if raw else None

    async def died_of_sigkill(self) -> bool:
        return await asyncio.wait_for(self.process.wait(), WAIT_S) == -signal.SIGKILL

    async def kill(self) -> None:
        self.process.kill()
        await self.process.wait()


def journal_rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the journal as a restarted process would (its own connection)."""
    with sqlite3.connect(data_dir / JOURNAL) as db:
        return db.execute(sql).fetchall()


async def passive_bid(exchange: CoinbaseRestClient, ticks_below: int) -> Decimal:
    """A bid far enough under the best bid (0.6 % at 40,000 ticks) that the agents' random walk
    does not reach it during a test (500 ticks, $5, was reached on a busy machine), yet inside
    the gate's price band (2 %)."""
    book = await exchange.get_product_book(PRODUCT, limit=1)
    return book.bids[0][0] - Decimal("0.01") * ticks_below


async def top_bid(exchange: CoinbaseRestClient) -> Decimal:
    """A bid in the middle of the spread: the best bid, alone at its price."""
    book = await exchange.get_product_book(PRODUCT, limit=1)
    bid, ask = book.bids[0][0], book.asks[0][0]
    middle = ((bid + ask) / 2).quantize(Decimal("0.01"))
    return middle if bid < middle < ask else bid


async def at_exchange(exchange: CoinbaseRestClient, client_order_id: str) -> list[ExchangeOrder]:
    return [o for o in await exchange.list_orders() if o.client_order_id == client_order_id]


async def restarted(sim: SimProcess, data_dir: Path) -> tuple[Engine, asyncio.Task[None]]:
    """A new engine on the same journal, run until it has reconciled (trading allowed)."""
    engine = build_engine(
        proof_settings(data_dir, products=(PRODUCT,)),
        endpoints_of(sim.endpoints),
        SystemClock(),
        data_dir / JOURNAL,
    )
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(engine.started.wait(), WAIT_S)
    return engine, task


def reconciled(engine: Engine) -> bool:
    return not engine.orders.reconciling


async def stop(engine: Engine, task: asyncio.Task[None]) -> None:
    await engine.stop()
    await asyncio.wait_for(task, WAIT_S)


async def assert_matches_exchange(
    engine: Engine, exchange: CoinbaseRestClient, client_order_id: str
) -> ExchangeOrder:
    """One order at the exchange for the intent, same state, fills journaled exactly once."""
    [listed] = await at_exchange(exchange, client_order_id)
    order = engine.orders.get(client_order_id)
    assert order is not None and order.order_id == listed.order_id
    if listed.status in _STATE_OF_STATUS and listed.filled_size == 0:
        assert order.state is _STATE_OF_STATUS[listed.status]
    totals = engine.journal.fill_totals(client_order_id)
    assert (totals.size, totals.fees) == (listed.filled_size, listed.total_fees)
    assert totals.value == listed.filled_value
    fills = await exchange.list_fills(order_ids=[listed.order_id])
    assert sum((f.size for f in fills), Decimal(0)) == totals.size
    keys = [r.cumulative_size for r in engine.journal.fills(client_order_id)]
    assert len(keys) == len(set(keys))
    return listed


async def test_killed_before_the_request_left(
    sim_process: SimProcess, exchange: CoinbaseRestClient, tmp_path: Path
) -> None:
    # The child's clock lags 75 s, so its last send is already further back than the window
    # a late POST is given to land (``unknown_order_absent_s``, 60 s) when the new engine
    # looks for it.
    child = await EngineChild.start(
        sim_process, tmp_path, "--crash-at", CrashPoint.BEFORE_SEND, "--clock-lag-s", "75"
    )
    await child.submit("0.001", await passive_bid(exchange, 40_000))
    assert await child.died_of_sigkill()
    [(client_order_id, state)] = journal_rows(
        tmp_path, "SELECT client_order_id, state FROM current_orders"
    )
    # Journaled (intent, then SUBMITTED) and killed before the request went out.
    assert state == OrderState.SUBMITTED.value
    assert await at_exchange(exchange, client_order_id) == []
    engine, task = await restarted(sim_process, tmp_path)
    try:
        order = engine.orders.get(client_order_id)
        assert order is not None and order.state is OrderState.REJECTED
        assert order.reject_code == NOT_AT_VENUE
        assert await at_exchange(exchange, client_order_id) == []  # never re-sent
        assert OrderState.UNKNOWN in [
            r.state for r in engine.journal.order_history(client_order_id)
        ]
    finally:
        await stop(engine, task)


async def test_killed_after_the_request_reached_the_exchange(
    sim_process: SimProcess, exchange: CoinbaseRestClient, tmp_path: Path
) -> None:
    child = await EngineChild.start(sim_process, tmp_path, "--crash-at", CrashPoint.AFTER_SEND)
    await child.submit("0.001", await passive_bid(exchange, 40_000))
    assert await child.died_of_sigkill()
    [(client_order_id, state)] = journal_rows(
        tmp_path, "SELECT client_order_id, state FROM current_orders"
    )
    assert state == OrderState.SUBMITTED.value  # the answer was never read
    assert len(await at_exchange(exchange, client_order_id)) == 1
    engine, task = await restarted(sim_process, tmp_path)
    try:
        listed = await assert_matches_exchange(engine, exchange, client_order_id)
        assert listed.status is ExchangeOrderStatus.OPEN
        assert engine.orders.get(client_order_id).state is OrderState.ACCEPTED  # type: ignore[union-attr]
        assert len(await at_exchange(exchange, client_order_id)) == 1  # not doubled
    finally:
        await stop(engine, task)


async def test_killed_after_the_answer_was_journaled(
    sim_process: SimProcess, exchange: CoinbaseRestClient, tmp_path: Path
) -> None:
    child = await EngineChild.start(sim_process, tmp_path, "--crash-at", CrashPoint.AFTER_ACK)
    await child.submit("0.001", await passive_bid(exchange, 40_000))
    assert await child.died_of_sigkill()
    [(client_order_id, order_id, state)] = journal_rows(
        tmp_path, "SELECT client_order_id, order_id, state FROM current_orders"
    )
    assert state == OrderState.ACCEPTED.value and order_id
    # Cancelled while the engine was down: the restart must notice.
    assert (await exchange.cancel_orders([order_id]))[0].success
    engine, task = await restarted(sim_process, tmp_path)
    try:
        listed = await assert_matches_exchange(engine, exchange, client_order_id)
        assert listed.status is ExchangeOrderStatus.CANCELLED
        assert engine.orders.get(client_order_id).state is OrderState.CANCELED  # type: ignore[union-attr]
    finally:
        await stop(engine, task)


async def sell_into_our_bid(exchange: CoinbaseRestClient, size: str) -> None:
    """A market sell by the demo user (self-trades are allowed at the sim): it hits the best
    bid first, which is ours (one tick above the agents' best bid)."""
    spec = OrderSpec(PRODUCT, Side.SELL, OrderType.MARKET, base_size=Decimal(size))
    outcome = await exchange.create_order(spec, str(uuid.uuid4()))
    assert isinstance(outcome, OrderAccepted), outcome


async def test_killed_between_fills(
    sim_process: SimProcess, exchange: CoinbaseRestClient, tmp_path: Path
) -> None:
    child = await EngineChild.start(sim_process, tmp_path)
    await child.submit("0.5", await top_bid(exchange))
    submitted = await child.answer()
    # The sim's agents may hit a bid inside the spread before the answer (a busy machine
    # widens that window): a partial fill is as good a starting point as none.
    assert submitted is not None, submitted
    assert submitted["state"] in {"ACCEPTED", "PARTIALLY_FILLED"}, submitted
    client_order_id, order_id = submitted["client_order_id"], submitted["order_id"]

    def fills_journaled() -> int:
        return len(our_fills())

    def our_fills() -> list[tuple[Any, ...]]:
        # The market sells below are the same user's: the engine adopts them as external.
        return journal_rows(
            tmp_path, f"SELECT size FROM fills WHERE client_order_id = '{client_order_id}'"
        )

    await sell_into_our_bid(exchange, "0.1")
    await eventually(lambda: fills_journaled() >= 1, WAIT_S)
    await child.kill()
    journaled_at_kill = our_fills()
    filled_at_kill = sum(Decimal(size) for (size,) in journaled_at_kill)
    assert 0 < filled_at_kill < Decimal("0.5")
    await sell_into_our_bid(exchange, "0.15")  # more fills while no engine is running
    assert (await exchange.get_order(order_id)).filled_size > filled_at_kill
    await exchange.cancel_orders([order_id])  # freeze the order's figures for the comparison
    for _ in range(2):  # a second restart replays everything again: nothing new is journaled
        engine, task = await restarted(sim_process, tmp_path)
        try:
            await eventually(partial(reconciled, engine))
            listed = await assert_matches_exchange(engine, exchange, client_order_id)
            assert listed.filled_size > filled_at_kill
            assert listed.status is ExchangeOrderStatus.CANCELLED
            order = engine.orders.get(client_order_id)
            assert order is not None and order.state is OrderState.CANCELED
            assert order.filled_size == listed.filled_size
        finally:
            await stop(engine, task)
    assert len(await at_exchange(exchange, client_order_id)) == 1
