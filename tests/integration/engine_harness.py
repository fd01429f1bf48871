"""Shared helpers for the engine proofs: a whole ``Engine`` trading against the simulated
exchange over loopback sockets, with its journal in a temporary directory.

The in-process variant (``running_engine``) shares one clock with an in-process ``SimServer``:
a ``ManualClock`` for the functional tests (deterministic timestamps, GTD expiry and outage
bounds moved by the test) or a ``SystemClock`` for the benchmarks (latencies are real).

The book is the conftest's fixed market-maker ladder (BTC-USD bids 67990 down and asks 68010
up in steps of 10, 0.5 BTC a level; ETH-USD 3499/3501; SOL-USD 149.90/150.10) and the demo
account holds core.sim.runner.DEMO_BALANCES. ``SimBook.maker_takes`` has the market
maker send a market order, which is how the tests make our resting orders trade.

The module is also the child-process driver of the restart tests (``python -m
tests.integration.engine_harness``, see ``child_main``): an engine in its own process against
a simulated exchange in another, told what to do on stdin and able to SIGKILL itself at a
chosen point of an order's life.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any

from core.clock import Clock, ManualClock, SystemClock
from core.config import Settings, load_settings
from core.denials import DenialReason
from core.emergency import KillPhase
from core.engine import Engine, ExchangeEndpoints
from core.model import (
    ExchangeOrderStatus,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
    quantize_to_step,
)
from core.order_state import ManagedOrder, OrderState
from core.sim.exchange import SimExchange
from core.sim.runner import build_exchange
from core.sim.server import SimEndpoints, SimServer
from core.sim.types import SimOrder, SimOrderRequest

PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD")
MAKER_USER = "market-maker"  # the conftest's liquidity provider
OPEN_STATUSES = (
    ExchangeOrderStatus.PENDING,
    ExchangeOrderStatus.OPEN,
    ExchangeOrderStatus.QUEUED,
    ExchangeOrderStatus.CANCEL_QUEUED,
)
# Risk limits loose enough for the proofs (200 open orders, bursts of submits on a clock that
# does not move); each test tightens what it exercises.
PROOF_RISK: Mapping[str, Any] = {
    "max_open_orders": 1000,
    "max_orders_per_s": 1000,
    "max_order_notional": 200_000,
    "max_position_notional": 500_000,
    "max_gross_exposure": 1_000_000,
}
# The simulated exchange does not throttle: the client's pacing (capped at 30/s by the
# settings' validation, as Coinbase requires) is lifted so 200 orders take well under a second.
UNTHROTTLED_RATE_PER_S = 5000.0


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Yield to the loop until ``condition()`` holds; fail after ``timeout`` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def proof_settings(
    data_dir: Path,
    *,
    products: tuple[str, ...] = PRODUCTS,
    risk: Mapping[str, Any] | None = None,
    headless: Mapping[str, Any] | None = None,
    strategy: Mapping[str, Any] | None = None,
    unthrottled: bool = True,
) -> Settings:
    """Settings for an engine under test: no config file, no environment, a temp data dir."""
    overrides: dict[str, Any] = {
        "market": {"products": list(products)},
        "risk": {**PROOF_RISK, **(risk or {})},
        "storage": {"data_dir": str(data_dir)},
        "exchange": {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2},
    }
    if headless is not None:
        overrides["headless"] = dict(headless)
    if strategy is not None:
        overrides["strategy"] = dict(strategy)
    settings = load_settings(None, overrides=overrides, environ={"HOME": "/nonexistent-home"})
    if not unthrottled:
        return settings
    exchange = settings.exchange.model_copy(
        update={"private_rate_per_s": UNTHROTTLED_RATE_PER_S, "public_rate_per_s": 5000.0}
    )
    return settings.model_copy(update={"exchange": exchange})


def endpoints_of(sim: SimEndpoints) -> ExchangeEndpoints:
    """The engine's view of where the simulated exchange is (and the demo key)."""
    return ExchangeEndpoints(
        sim.rest_url, sim.ws_market_url, sim.ws_user_url, sim.credentials, sim.ca_cert_path
    )


@dataclass
class SimBook:
    """The in-process simulated exchange as the tests see it (its truth, not the engine's)."""

    exchange: SimExchange
    server: SimServer
    user_id: str

    def orders(self, **filters: Any) -> list[SimOrder]:
        return self.exchange.list_orders(self.user_id, **filters)

    def open_orders(self) -> list[SimOrder]:
        return self.orders(statuses=OPEN_STATUSES)

    def by_client_id(self, client_order_id: str) -> list[SimOrder]:
        return [o for o in self.orders() if o.client_order_id == client_order_id]

    def order(self, order_id: str) -> SimOrder:
        found = self.exchange.get_order(self.user_id, order_id)
        assert found is not None, order_id
        return found

    def fills_of(self, order_id: str) -> list[Any]:
        return self.exchange.list_fills(self.user_id, order_ids=[order_id])

    def balance(self, currency: str) -> Decimal:
        for account in self.exchange.accounts(self.user_id):
            if account.currency == currency:
                return Decimal(account.available) + Decimal(account.hold)
        return Decimal(0)

    def maker_takes(self, product_id: str, side: Side, base_size: str) -> None:
        """The market maker sends a market order (it trades with whatever rests), flushed."""
        result = self.exchange.create_order(
            MAKER_USER,
            SimOrderRequest(
                str(uuid.uuid4()),
                product_id,
                side,
                "market_market_ioc",
                base_size=Decimal(base_size),
            ),
        )
        assert result.success, result
        self.server.flush()


@dataclass
class EngineRun:
    """A running engine and the exchange it trades on."""

    engine: Engine
    sim: SimBook
    clock: Clock
    journal_file: Path

    async def submit(self, spec: OrderSpec, **intent: Any) -> Any:
        return await self.engine.submit(OrderIntent(spec, IntentSource.MANUAL, **intent))


def build_engine(
    settings: Settings,
    endpoints: ExchangeEndpoints,
    clock: Clock,
    journal_file: Path,
) -> Engine:
    """A demo-mode engine (REST + both sockets) on ``endpoints`` with its journal at a path."""
    return Engine(settings, endpoints, clock=clock, mode="demo", journal_file=journal_file)


def demo_engine(sim: SimEndpoints, data_dir: Path, products: Sequence[str], clock: Clock) -> Engine:
    """The real demo-mode engine on ``sim``'s endpoints, trading ``products``, with the
    settings' home, the data and the journal in ``data_dir``. Not started."""
    settings = load_settings(
        None,
        environ={
            "HOME": str(data_dir),
            "CRYPTOJ_MARKET__PRODUCTS": json.dumps(list(products)),
            "CRYPTOJ_STORAGE__DATA_DIR": str(data_dir),
        },
    )
    return build_engine(settings, endpoints_of(sim), clock, data_dir / "journal-demo.sqlite3")


@contextlib.asynccontextmanager
async def running_engine(
    server: SimServer,
    exchange: SimExchange,
    clock: Clock,
    data_dir: Path,
    *,
    settings: Settings | None = None,
    wait_started: bool = True,
) -> AsyncIterator[EngineRun]:
    """Run ``Engine.run()`` in a task until the block ends; by default wait until it has
    reconciled and trading is allowed (the engine's own ``started`` event)."""
    assert server.endpoints is not None
    used = settings or proof_settings(data_dir)
    journal_file = data_dir / "journal-demo.sqlite3"
    engine = build_engine(used, endpoints_of(server.endpoints), clock, journal_file)
    task = asyncio.create_task(engine.run(), name="engine-under-test")
    try:
        if wait_started:
            await asyncio.wait_for(engine.started.wait(), 15)
            await eventually(lambda: _books_live(engine))
        yield EngineRun(
            engine, SimBook(exchange, server, server.endpoints.user_id), clock, journal_file
        )
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 15)


def _books_live(engine: Engine) -> bool:
    return all(engine.prices.mid(product_id) is not None for product_id in engine.products)


def limit_spec(
    product_id: str,
    side: Side,
    size: str,
    price: str,
    *,
    time_in_force: TimeInForce = TimeInForce.GTC,
    **extra: Any,
) -> OrderSpec:
    return OrderSpec(
        product_id=product_id,
        side=side,
        order_type=OrderType.LIMIT,
        base_size=Decimal(size),
        limit_price=Decimal(price),
        time_in_force=time_in_force,
        **extra,
    )


@contextlib.asynccontextmanager
async def in_process_sim(clock: Clock, *, seed: int = 42) -> AsyncIterator[SimBook]:
    """A started ``SimServer`` on 127.0.0.1:<free port> with the conftest's fixed ladder and
    no market agents (nothing trades unless a test makes it)."""
    from tests.integration.loopback import seed_liquidity

    exchange = build_exchange(seed, clock)
    seed_liquidity(exchange)
    server = SimServer(
        exchange, None, clock=clock, seed=seed, subscribe_timeout_s=0.5, heartbeat_interval_s=0.1
    )
    await server.start()
    assert server.endpoints is not None
    try:
        yield SimBook(exchange, server, server.endpoints.user_id)
    finally:
        await server.stop()


def resting_ladder(engine: Engine, product_id: str, count: int) -> list[OrderSpec]:
    """``count`` passive limit buys from 1% under the live best bid down, one tick-rounded
    step (0.01% of the bid) apart: inside the price band, each worth about twice the minimum
    order, so hundreds fit in the demo account."""
    product = engine.product_info[product_id]
    bid = engine.prices.best_bid(product_id)
    assert bid is not None, f"{product_id} has no live bid"
    best = Decimal(str(bid))
    top = product.snap_price(best * Decimal("0.99"), Side.BUY)
    step = max(product.price_increment, product.snap_price(best / 10_000, Side.BUY))
    size = max(
        product.base_min_size,
        quantize_to_step(product.quote_min_size * 2 / top, product.base_increment, ROUND_UP),
    )
    return [
        limit_spec(product_id, Side.BUY, str(size), str(top - step * index))
        for index in range(count)
    ]


async def place_resting(engine: Engine, count: int) -> list[ManagedOrder]:
    """``count`` passive limit buys spread evenly over the engine's products, all accepted
    (sent concurrently, as a strategy's quotes would be)."""
    products = engine.products
    specs: list[OrderSpec] = []
    for offset, product_id in enumerate(products):
        share = len(range(offset, count, len(products)))
        specs.extend(resting_ladder(engine, product_id, share))
    placed = await asyncio.gather(
        *(engine.submit(OrderIntent(spec, IntentSource.MANUAL)) for spec in specs)
    )
    assert all(o.state is OrderState.ACCEPTED for o in placed), {o.state for o in placed}
    return list(placed)


@dataclass(frozen=True)
class KillTiming:
    """One kill switch press: seconds from the call until the gate refused an order (of
    which ``durable_write_s`` went on writing the HALTED state to the journal's WAL after the
    in-memory latch; the kill task makes it durable right after), and from the start of the sequence until the exchange
    listed zero open orders."""

    latch_s: float
    durable_write_s: float
    confirm_s: float
    rounds: int
    cancels_sent: int
    confirmed_by: str | None = None  # "the user stream" or "a listing"
    task_s: float = 0.0  # until the kill's task returned (a stream confirmation's audit too)


class _TimedStateStore:
    """Times the trading state's journal write (a probe; the journal does the writing)."""

    def __init__(self, engine: Engine) -> None:
        self._journal = engine.journal
        self.took_s = 0.0

    def save_trading_state(self, change: Any, *, durable: bool = True) -> None:
        started = time.perf_counter()
        self._journal.save_trading_state(change, durable=durable)
        self.took_s += time.perf_counter() - started

    def load_trading_state(self) -> Any:
        return self._journal.load_trading_state()


async def timed_kill(engine: Engine, open_orders: int) -> KillTiming:
    """Place ``open_orders`` resting orders, press the kill switch, check at the exchange
    (its own REST listing) that none is open, then resume (typed confirmation, clean
    reconcile) for the next round."""
    assert engine.rest is not None
    placed = await place_resting(engine, open_orders)
    assert len(await engine.rest.list_open_orders()) == open_orders
    probe = OrderIntent(placed[0].intent.spec, IntentSource.MANUAL)
    store = _TimedStateStore(engine)
    engine.trading_state._store = store  # the probe, for this press only
    try:
        started = time.perf_counter()
        task = engine.kill("kill switch benchmark", "user")
        denial = engine.gate.check(probe)
        latch_s = time.perf_counter() - started
    finally:
        engine.trading_state._store = engine.journal
    assert denial is not None and denial.reason is DenialReason.TRADING_HALTED
    progress = await task
    task_s = time.perf_counter() - started
    assert progress.phase is KillPhase.DONE, progress
    assert await engine.rest.list_open_orders() == []
    assert progress.finished_at is not None and progress.started_at is not None
    await eventually(lambda: not engine.orders.open_orders())
    await engine.resume("RESUME")
    return KillTiming(
        latch_s,
        store.took_s,
        progress.finished_at - progress.started_at,
        progress.rounds,
        progress.cancels_sent,
        progress.confirmed_by,
        task_s,
    )


# --------------------------------------------------------------------------- child process


SIM_HANDSHAKE_ENV = "CRYPTOJ_TEST_SIM"


def child_command(role: str, data_dir: Path, *extra: str) -> list[str]:
    """The command line of a child engine (run it with ``child_env``, cwd the repo root)."""
    return [
        sys.executable,
        "-m",
        "tests.integration.engine_harness",
        role,
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def child_env(sim: SimEndpoints) -> dict[str, str]:
    """The environment of a child engine: ours plus where the sim is."""
    return {**os.environ, SIM_HANDSHAKE_ENV: json.dumps(sim.to_handshake())}


REPO_ROOT = Path(__file__).resolve().parents[2]


class CrashPoint:
    """Where the child engine SIGKILLs itself (``--crash-at``)."""

    BEFORE_SEND = "before_send"  # the intent is journaled, the request has not left
    AFTER_SEND = "after_send"  # the exchange has the order, its answer is never read
    AFTER_ACK = "after_ack"  # the answer is applied and journaled


class LaggingClock:
    """The system clock, ``lag_s`` seconds behind: what the child journals looks that much
    older to a restarted engine (JWTs stay valid: they are dated in the past, not the future)."""

    def __init__(self, lag_s: float) -> None:
        self._lag_s = lag_s

    def time(self) -> float:
        return time.time() - self._lag_s

    def monotonic(self) -> float:
        return time.monotonic()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_crash_hook(engine: Engine, crash_at: str | None) -> None:
    """Wrap the venue's ``place`` so the process dies at ``crash_at`` (a real SIGKILL)."""
    if crash_at not in (CrashPoint.BEFORE_SEND, CrashPoint.AFTER_SEND):
        return
    venue = engine.venue
    place = venue.place

    async def place_then_maybe_die(spec: OrderSpec, client_order_id: str) -> Any:
        if crash_at == CrashPoint.BEFORE_SEND:
            _die()
        # Quiet the user channel first: its update could otherwise overtake the answer and
        # be journaled, and the point is a journal that knows only "SUBMITTED".
        user_socket = getattr(venue, "user_socket", None)
        if user_socket is not None:
            await user_socket.stop()
        outcome = await place(spec, client_order_id)
        _die()
        return outcome  # pragma: no cover - never reached

    venue.place = place_then_maybe_die  # type: ignore[method-assign]


def _spec_from_json(data: Mapping[str, Any]) -> OrderSpec:
    return limit_spec(
        data["product_id"],
        Side(data["side"]),
        data["size"],
        data["price"],
        time_in_force=TimeInForce(data.get("tif", "GOOD_UNTIL_CANCELLED")),
    )


async def _orders_child(args: argparse.Namespace) -> int:
    """An engine that submits what stdin asks for, and may SIGKILL itself (restart tests)."""
    sim = SimEndpoints.from_handshake(json.loads(os.environ[SIM_HANDSHAKE_ENV]))
    settings = proof_settings(Path(args.data_dir), products=tuple(args.products.split(",")))
    clock = LaggingClock(args.clock_lag_s) if args.clock_lag_s else SystemClock()
    engine = build_engine(
        settings, endpoints_of(sim), clock, Path(args.data_dir) / "journal-demo.sqlite3"
    )
    _install_crash_hook(engine, args.crash_at)
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(engine.started.wait(), 30)
    await eventually(lambda: _books_live(engine), 30)
    _say({"event": "ready", "pid": os.getpid()})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["op"] == "submit":
            order = await engine.submit(
                OrderIntent(_spec_from_json(command), IntentSource.MANUAL, note="child")
            )
            if args.crash_at == CrashPoint.AFTER_ACK:
                _die()
            _say(
                {
                    "event": "submitted",
                    "client_order_id": order.client_order_id,
                    "order_id": order.order_id,
                    "state": order.state.value,
                }
            )
        elif command["op"] == "stop":
            break
    await engine.stop()
    await task
    return 0


async def _headless_child(args: argparse.Namespace) -> int:
    """``run_headless`` as the CLI will call it: an engine built for the demo's sim."""
    from core.headless import run_headless

    sim = SimEndpoints.from_handshake(json.loads(os.environ[SIM_HANDSHAKE_ENV]))
    strategy = {"name": args.strategy, "product_id": "BTC-USD"} if args.strategy else None
    settings = proof_settings(
        Path(args.data_dir), products=tuple(args.products.split(",")), strategy=strategy
    )
    engine = build_engine(
        settings, endpoints_of(sim), SystemClock(), Path(args.data_dir) / "journal-demo.sqlite3"
    )
    return await run_headless(engine, out=sys.stdout)


def _say(message: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of the child engines (``python -m tests.integration.engine_harness``):

    - ``orders``: commands on stdin (``{"op": "submit", "product_id", "side", "size",
      "price"}`` / ``{"op": "stop"}``), one JSON answer per line on stdout; ``--crash-at``
      makes it SIGKILL itself at that point of the first submit; ``--clock-lag-s`` runs it on
      a clock that far behind;
    - ``headless``: ``core.headless.run_headless`` on stdout until SIGTERM/SIGINT.

    Both take ``--data-dir`` (the journal) and find the sim in ``$CRYPTOJ_TEST_SIM`` (its
    handshake JSON; the environment, not argv, because it carries the demo key).
    """
    parser = argparse.ArgumentParser(prog="engine-child")
    parser.add_argument("role", choices=("orders", "headless"))
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--products", default=",".join(PRODUCTS))
    parser.add_argument("--crash-at", default=None)
    parser.add_argument("--strategy", default=None)
    parser.add_argument("--clock-lag-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    child = _orders_child if args.role == "orders" else _headless_child
    return asyncio.run(child(args))


def manual_clock() -> ManualClock:
    """The functional tests' clock (2026-01-01T00:00:00Z, moved only by the test)."""
    return ManualClock()


if __name__ == "__main__":
    sys.exit(child_main())
