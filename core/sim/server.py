"""The simulated exchange's network face: Coinbase Advanced Trade REST + WebSocket over aiohttp.

REST lives under ``/api/v3/brokerage`` (docs/coinbase-protocol.md), WebSocket at ``/ws``
(market) and ``/ws/user`` (user); both sockets accept every channel. This module is the
server's lifecycle (start, stop, the background market loop); the WebSocket fan-out is
``core.sim.ws_hub`` and the REST endpoints are ``core.sim.rest_api``.

A background task steps the market agents every ``tick_s`` with the real elapsed time (by
the injected clock), expires GTD orders and flushes; heartbeats go out every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from core.clock import Clock
from core.model import Side
from core.sim.endpoints import DEMO_USER_ID, SimEndpoints
from core.sim.exchange_api import AgentsApi, ExchangeApi
from core.sim.faults import FaultInjector, FaultPlan
from core.sim.jwt_verify import DemoKey, JwtVerifier, KeyAlgorithm
from core.sim.rest_api import API_PREFIX, RestHandlers
from core.sim.types import (
    SimOrder,
    SimTrade,
)
from core.sim.ws_hub import WebSocketHub, _Connection

if TYPE_CHECKING:
    from core.sim.tls import TlsMaterial

__all__ = [
    "API_PREFIX",
    "DEMO_USER_ID",
    "AgentsApi",
    "ExchangeApi",
    "SimEndpoints",
    "SimServer",
]

log = logging.getLogger(__name__)

TICKER_BATCH_INTERVAL_S: Final = 5.0
MAX_STEP_S: Final = 0.1  # the longest market step the background loop takes at once


class SimServer(WebSocketHub, RestHandlers):
    """Serves a ``SimExchange`` as Coinbase Advanced Trade on loopback (``start``/``stop``)."""

    def __init__(
        self,
        exchange: ExchangeApi,
        agents: AgentsApi | None,
        *,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        faults: FaultPlan | None = None,
        demo_key_algorithm: KeyAlgorithm = "ES256",
        seed: int = 0,
        demo_user_id: str = DEMO_USER_ID,
        subscribe_timeout_s: float = 5.0,
        heartbeat_interval_s: float = 1.0,
        tick_s: float = 0.025,
        max_queue_messages: int = 4096,
    ) -> None:
        self.exchange = exchange
        self.agents = agents
        # USDC aliases, as on Coinbase: BTC-USDC is listed with ``alias`` BTC-USD, and a
        # market-channel subscription to it is answered with BTC-USD's data, keyed BTC-USD.
        self.aliases: dict[str, str] = {
            f"{product_id[:-4]}-USDC": product_id
            for product_id in exchange.products
            if product_id.endswith("-USD")
        }
        self.clock = clock
        self.host = host
        self.port = port
        self.tls = tls
        self.demo_key = DemoKey.derive(seed, demo_key_algorithm)
        self.demo_user_id = demo_user_id
        self.verifier = JwtVerifier(clock)
        self.verifier.register(self.demo_key, demo_user_id)
        self.faults = FaultInjector(faults, seed=seed, clock=clock)
        self.faults.attach(self)
        self.subscribe_timeout_s = subscribe_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.tick_s = tick_s
        self.max_queue_messages = max_queue_messages
        self.endpoints: SimEndpoints | None = None
        self.tls_material: TlsMaterial | None = None
        self.started_at = datetime.fromtimestamp(clock.time(), tz=UTC)
        # Counters for benchmarks and tests: book changes seen while someone watched level2,
        # level updates put on the wire after batching, messages written, slow clients cut.
        self.stats: dict[str, int] = dict.fromkeys(
            ("book_changes", "l2_levels_sent", "messages_sent", "slow_client_closes"), 0
        )

        self._connections: set[_Connection] = set()
        self._product_subs: dict[tuple[str, str], set[_Connection]] = {}
        self._channel_subs: dict[str, set[_Connection]] = {}
        self._user_subs: dict[str, set[_Connection]] = {}
        self._pending_book: dict[str, dict[tuple[Side, Decimal], tuple[Decimal, datetime]]] = {}
        self._pending_trades: dict[str, list[SimTrade]] = {}
        self._pending_orders: dict[str, dict[str, SimOrder]] = {}
        self._ticker_batch_sent: dict[str, Decimal] = {}
        self._heartbeat_counter = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        exchange.add_listener(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> SimEndpoints:
        """Listen (port 0 = a free port) and start the market loop; return the endpoints."""
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        ssl_context = None
        if self.tls:
            # Only with --tls: the certificate builder (cryptography.x509) is a noticeable
            # part of the child's boot, which the demo waits for (docs/design.md, start-up).
            from core.sim.tls import generate_self_signed

            self.tls_material = generate_self_signed(self.clock)
            ssl_context = self.tls_material.server_context()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        address = self._runner.addresses[0]
        port = int(address[1])
        self.port = port
        http, ws = ("https", "wss") if self.tls else ("http", "ws")
        self.endpoints = SimEndpoints(
            rest_url=f"{http}://{self.host}:{port}",
            ws_market_url=f"{ws}://{self.host}:{port}/ws",
            ws_user_url=f"{ws}://{self.host}:{port}/ws/user",
            key_name=self.demo_key.key_name,
            private_key=self.demo_key.private_key,
            user_id=self.demo_user_id,
            ca_cert_path=self.tls_material.cert_path if self.tls_material else None,
        )
        self._tasks = [
            asyncio.create_task(self._market_loop(), name="sim-market-loop"),
            asyncio.create_task(self._periodic_loop(), name="sim-periodic-loop"),
        ]
        log.info("simulated exchange listening on %s", self.endpoints.rest_url)
        return self.endpoints

    async def stop(self) -> None:
        """Close every socket with 1001 Going Away (as a restart does) and stop listening."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        closes = [
            self._close(conn, 1001, "server shutting down") for conn in list(self._connections)
        ]
        if closes:
            await asyncio.gather(*closes, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tls_material is not None:
            self.tls_material.remove()
            self.tls_material = None

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ market loop

    def advance_market(self, dt: float) -> None:
        """Step the agents by ``dt`` seconds, expire GTD orders and flush the events."""
        # One flush per step: the agents' rate counts the distinct levels a step changes,
        # which is exactly what this flush sends (each level once, at its latest size).
        if self.agents is not None and dt > 0:
            self.agents.step(dt)
        self.exchange.expire_orders()
        self.flush()

    async def _market_loop(self) -> None:
        last = self.clock.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            now = self.clock.monotonic()
            # Capped: if a step ever takes longer than real time, the market slows down
            # instead of spiralling into ever bigger steps that starve REST and heartbeats.
            dt, last = min(now - last, MAX_STEP_S), now
            try:
                self.advance_market(dt)
            except Exception:
                # A bug in one step must not silence the market for good: log and go on.
                log.exception("market step failed")

    async def _periodic_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_batch = loop.time() + TICKER_BATCH_INTERVAL_S
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            try:
                self.send_heartbeats()
                self.send_candles()
                if loop.time() >= next_batch:
                    next_batch = loop.time() + TICKER_BATCH_INTERVAL_S
                    self.send_ticker_batch()
            except Exception:
                log.exception("periodic send failed")
