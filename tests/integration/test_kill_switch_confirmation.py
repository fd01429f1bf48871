"""The kill switch with 200 open orders over loopback against the simulated exchange
(issue 9 §2): the two batch cancels of 100 are in flight together on the REST client's
pool, and the kill ends DONE with the exchange holding no open order of ours, confirmed by
the user stream when it is up and by a listing when it is not.

The engine and the sim share a ``ManualClock`` (tests/integration/engine_harness.py); the
unit tests of the confirmation rule are in tests/core/test_emergency_stream.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web

from core.clock import ManualClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.rest import CoinbaseRestClient
from core.emergency import KillPhase
from core.model import Side
from core.sim.exchange import SimExchange
from core.sim.server import SimServer
from core.sim.types import SimOrderRequest
from core.trading_state import TradingState
from tests.integration.engine_harness import (
    EngineRun,
    eventually,
    place_resting,
    running_engine,
)
from tests.integration.loopback import SEED

OPEN_ORDERS = 200


@pytest.fixture
async def run(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> AsyncIterator[EngineRun]:
    """An engine trading on the in-process sim (shared ManualClock), reconciled and ready."""
    async with running_engine(sim_server, sim_exchange, sim_clock, tmp_path) as engine_run:
        yield engine_run


async def assert_killed_flat(run: EngineRun, confirmed_by: str) -> None:
    progress = await asyncio.wait_for(run.engine.kill("test kill", "user"), 60)
    assert progress.phase is KillPhase.DONE and progress.still_open == 0
    assert progress.confirmed_by == confirmed_by
    assert progress.cancels_sent >= OPEN_ORDERS
    assert run.sim.open_orders() == []  # the exchange's own truth
    await eventually(lambda: not run.engine.orders.open_orders())
    assert run.engine.trading_state.state is TradingState.HALTED
    kinds = [event.kind for event in run.engine.journal.risk_events()]
    assert "kill_switch_done" in kinds and "kill_switch_reopened" not in kinds


async def test_200_orders_killed_and_confirmed_by_the_user_stream(run: EngineRun) -> None:
    await place_resting(run.engine, OPEN_ORDERS)
    assert len(run.sim.open_orders()) == OPEN_ORDERS
    assert run.engine.venue.stream_connected
    await assert_killed_flat(run, "the user stream")


async def test_with_the_user_stream_down_a_listing_confirms(run: EngineRun) -> None:
    await place_resting(run.engine, OPEN_ORDERS)
    assert len(run.sim.open_orders()) == OPEN_ORDERS
    user_socket = run.engine.venue.user_socket
    assert user_socket is not None
    await user_socket.stop()  # type: ignore[attr-defined]
    assert not run.engine.venue.stream_connected
    await assert_killed_flat(run, "a listing")


async def test_the_rest_client_has_both_batch_cancels_in_flight_at_once(
    sim_exchange: SimExchange, sim_clock: ManualClock
) -> None:
    """The sim holds each batch_cancel until two are in flight (bounded): sent one after the
    other, or queued behind one pooled connection, the first would wait in vain."""
    server = SimServer(
        sim_exchange, None, clock=sim_clock, seed=SEED, subscribe_timeout_s=0.5,
        heartbeat_interval_s=0.1,
    )  # fmt: skip
    answer = server._batch_cancel
    in_flight = 0
    most_in_flight = 0
    both_there = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        nonlocal in_flight, most_in_flight
        await request.read()
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        if in_flight >= 2:
            both_there.set()
        try:
            async with asyncio.timeout(2):
                await both_there.wait()
        except TimeoutError:
            pass
        finally:
            in_flight -= 1
        return await answer(request)

    server._batch_cancel = held  # type: ignore[method-assign]  # before start() routes it
    await server.start()
    try:
        endpoints = server.endpoints
        assert endpoints is not None
        ids = []
        for index in range(OPEN_ORDERS):
            placed = sim_exchange.create_order(
                endpoints.user_id,
                SimOrderRequest(
                    str(uuid.uuid4()),
                    "BTC-USD",
                    Side.BUY,
                    "limit_limit_gtc",
                    base_size=Decimal("0.001"),
                    limit_price=Decimal(60_000 - index),
                ),
            )
            assert placed.success and placed.order is not None
            ids.append(placed.order.order_id)
        signer = JwtSigner(endpoints.credentials, sim_clock, rest_host_from_url(endpoints.rest_url))
        async with CoinbaseRestClient(
            endpoints.rest_url, signer, clock=sim_clock, private_rate_per_s=1000
        ) as client:
            results = await asyncio.wait_for(client.cancel_orders(ids), 30)
        assert most_in_flight == 2
        assert [r.order_id for r in results] == ids and all(r.success for r in results)
        still_open = [o for o in sim_exchange.list_orders(endpoints.user_id) if o.status.is_open]
        assert still_open == []
    finally:
        await server.stop()
