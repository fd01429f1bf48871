"""Headless mode (``core.headless.run_headless``) against the simulated exchange.

The subprocess test runs it as the CLI will: an engine in a child process (market maker
strategy on) against the sim in another child process, JSON lines on its stdout, SIGTERM to
stop; the open orders must then be cancelled AT THE EXCHANGE and the exit code be 0. The
in-process tests cover the same path with a real signal sent to this process.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.clock import ManualClock, SystemClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.rest import CoinbaseRestClient
from core.config import SimSettings
from core.headless import run_headless
from core.model import IntentSource, OrderIntent, Side
from core.order_state import OrderState
from core.sim.exchange import SimExchange
from core.sim.launcher import SimProcess, astart_sim_process
from core.sim.server import SimServer
from tests.integration.engine_harness import (
    REPO_ROOT,
    build_engine,
    child_command,
    child_env,
    endpoints_of,
    eventually,
    limit_spec,
    place_resting,
    proof_settings,
)

WAIT_S = 30.0


@pytest.fixture
async def sim_process() -> AsyncIterator[SimProcess]:
    """The simulated exchange in a child process (market agents on, loopback, seeded)."""
    sim = await astart_sim_process(SimSettings(seed=5))
    try:
        yield sim
    finally:
        await sim.astop()


@pytest.fixture
async def sim_rest(sim_process: SimProcess) -> AsyncIterator[CoinbaseRestClient]:
    """A REST client with the demo key: the test's own view of the exchange."""
    endpoints = sim_process.endpoints
    clock = SystemClock()
    signer = JwtSigner(endpoints.credentials, clock, rest_host_from_url(endpoints.rest_url))
    async with CoinbaseRestClient(
        endpoints.rest_url, signer, clock=clock, private_rate_per_s=30, public_rate_per_s=10
    ) as rest:
        yield rest


class Lines:
    """The child's stdout as parsed JSON lines, read on demand."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.seen: list[dict[str, Any]] = []

    async def until(self, wanted: Any, wait_s: float = WAIT_S) -> dict[str, Any]:
        """Read lines until one satisfies ``wanted`` (or fail after ``wait_s``)."""
        async with asyncio.timeout(wait_s):
            for line in self.seen:
                if wanted(line):
                    return line
            while True:
                record = await self._next()
                if record is None:
                    raise AssertionError(f"output ended; last lines: {self.seen[-5:]}")
                if wanted(record):
                    return record

    async def rest(self) -> None:
        while await self._next() is not None:
            pass

    async def _next(self) -> dict[str, Any] | None:
        assert self._process.stdout is not None
        raw = await self._process.stdout.readline()
        if not raw:
            return None
        record: dict[str, Any] = json.loads(raw)
        self.seen.append(record)
        return record


async def test_headless_child_reports_json_and_cancels_on_sigterm(
    sim_process: SimProcess, sim_rest: CoinbaseRestClient, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        *child_command("headless", tmp_path, "--strategy", "market_maker"),
        cwd=REPO_ROOT,
        env=child_env(sim_process.endpoints),
        stdout=asyncio.subprocess.PIPE,
    )
    lines = Lines(process)
    try:
        start = await lines.until(lambda r: r["kind"] == "start")
        assert start["mode"] == "demo" and start["pid"] == process.pid
        # The market maker quotes through the engine: its orders are reported as they go.
        quote = await lines.until(
            lambda r: r["kind"] == "order" and r["state"] == "ACCEPTED" and r["strategy_id"]
        )
        assert quote["product_id"] == "BTC-USD" and quote["order_id"]
        # An order placed elsewhere (here: by the test) is adopted and reported as external.
        book = await sim_rest.get_product_book("ETH-USD", limit=1)
        price = (book.bids[0][0] * Decimal("0.99")).quantize(Decimal("0.01"))
        placed = await sim_rest.create_order(
            limit_spec("ETH-USD", Side.BUY, "0.01", str(price)), "external-from-test"
        )
        assert getattr(placed, "placed", None) is not None, placed
        await lines.until(lambda r: r["kind"] == "order" and r["external"] is True)
        assert await sim_rest.list_open_orders()
        process.send_signal(signal.SIGTERM)
        await lines.until(lambda r: r["kind"] == "stopping" and r["signal"] == "SIGTERM")
        exit_cancel = await lines.until(lambda r: r["kind"] == "exit_cancel")
        assert exit_cancel["confirmed"] is True and exit_cancel["still_open"] == 0
        await lines.until(lambda r: r["kind"] == "stop" and r["exit_code"] == 0)
        await lines.rest()
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert await sim_rest.list_open_orders() == []
    kinds = {record["kind"] for record in lines.seen}
    assert {"start", "trading_state", "connection", "book", "order", "log", "stop"} <= kinds
    assert all(isinstance(r["ts"], str) and r["ts"].endswith("+00:00") for r in lines.seen)
    text = json.dumps(lines.seen)
    credentials = sim_process.endpoints.credentials
    assert credentials.private_key not in text and credentials.key_name not in text


async def test_in_process_signal_cancels_open_orders_and_exits_0(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> None:
    assert sim_server.endpoints is not None
    engine = build_engine(
        proof_settings(tmp_path, headless={"cancel_open_orders_on_exit": True}),
        endpoints_of(sim_server.endpoints),
        sim_clock,
        tmp_path / "journal-demo.sqlite3",
    )
    out = io.StringIO()
    task = asyncio.create_task(
        run_headless(engine, out=out, stop_signals=(signal.SIGUSR2,), clock=sim_clock)
    )
    await asyncio.wait_for(engine.started.wait(), WAIT_S)
    await eventually(lambda: all(engine.prices.mid(p) for p in engine.products))
    placed = await place_resting(engine, 6)
    user = sim_server.endpoints.user_id
    assert len(sim_exchange.list_orders(user, statuses=["OPEN"])) == 6
    os.kill(os.getpid(), signal.SIGUSR2)
    assert await asyncio.wait_for(task, WAIT_S) == 0
    assert sim_exchange.list_orders(user, statuses=["OPEN"]) == []
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    accepted = {
        r["client_order_id"] for r in records if r["kind"] == "order" and r["state"] == "ACCEPTED"
    }
    assert {o.client_order_id for o in placed} <= accepted
    cancelled = {
        r["client_order_id"]
        for r in records
        if r["kind"] == "order" and r["state"] == OrderState.CANCELED.value
    }
    assert {o.client_order_id for o in placed} <= cancelled
    assert [r["kind"] for r in records][-1] == "stop"
    assert records[0]["ts"] == "2026-01-01T00:00:00.000+00:00"


async def test_in_process_exit_without_cancelling_leaves_orders(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> None:
    assert sim_server.endpoints is not None
    engine = build_engine(
        proof_settings(tmp_path, headless={"cancel_open_orders_on_exit": False}),
        endpoints_of(sim_server.endpoints),
        sim_clock,
        tmp_path / "journal-demo.sqlite3",
    )
    out = io.StringIO()
    task = asyncio.create_task(run_headless(engine, out=out, stop_signals=(signal.SIGUSR2,)))
    await asyncio.wait_for(engine.started.wait(), WAIT_S)
    await eventually(lambda: all(engine.prices.mid(p) for p in engine.products))
    far_off = limit_spec("BTC-USD", Side.BUY, "0.001", "1000")
    denied = await engine.submit(OrderIntent(far_off, IntentSource.MANUAL))
    assert denied.state is OrderState.DENIED
    await place_resting(engine, 3)
    os.kill(os.getpid(), signal.SIGUSR2)
    assert await asyncio.wait_for(task, WAIT_S) == 0
    assert len(sim_exchange.list_orders(sim_server.endpoints.user_id, statuses=["OPEN"])) == 3
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    [denial] = [r for r in records if r["kind"] == "denial"]
    assert denial["reason"] == "PRICE_BAND" and denial["client_order_id"] == denied.client_order_id
    assert not any(r["kind"] == "exit_cancel" for r in records)


async def test_stop_signal_exits_within_the_bound_while_rest_hangs(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> None:
    """Issue 9 §2: SIGTERM keeps its meaning (cancel, then exit), and the process exits within
    a bound even when every REST request hangs."""
    assert sim_server.endpoints is not None
    engine = build_engine(
        proof_settings(tmp_path, headless={"cancel_open_orders_on_exit": True}),
        endpoints_of(sim_server.endpoints),
        sim_clock,
        tmp_path / "journal-demo.sqlite3",
    )
    out = io.StringIO()
    task = asyncio.create_task(
        run_headless(engine, out=out, stop_signals=(signal.SIGUSR2,), exit_timeout_s=1.0)
    )
    await asyncio.wait_for(engine.started.wait(), WAIT_S)
    await eventually(lambda: all(engine.prices.mid(p) for p in engine.products))
    await place_resting(engine, 2)
    # Every REST answer held 8 s (past each bound below; short, so the teardown is quick).
    sim_server.faults.next_rest("delay", 10_000, delay_s=8)
    os.kill(os.getpid(), signal.SIGUSR2)
    # Bounded: the exit cancel (1 s), the engine's stop (1 s), its cancellation (1 s).
    assert await asyncio.wait_for(task, WAIT_S) == 1
    sim_server.faults.clear()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    [exit_cancel] = [r for r in records if r["kind"] == "exit_cancel"]
    assert exit_cancel["confirmed"] is False
    assert records[-1] == {**records[-1], "kind": "stop", "exit_code": 1}
