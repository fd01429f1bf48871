"""Assemble a running simulated exchange from ``SimSettings``: engine, agents, server.

``build_exchange`` makes the seeded engine with the demo user's account; ``run_sim`` starts
the server, reports its endpoints once and serves until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from core.clock import Clock, SystemClock
from core.config import SimSettings
from core.local_resources import listen_error_message
from core.sim.exchange import SimExchange
from core.sim.faults import FaultPlan
from core.sim.jwt_verify import KeyAlgorithm
from core.sim.server import DEMO_USER_ID, SimEndpoints, SimServer

# What the demo user starts with (``cryptoj sim`` prints it). About 66,500 USD of coins:
# inside the default risk limits (50,000 per product, 100,000 gross), so the demo can buy.
DEMO_BALANCES: Final = {
    "USD": Decimal(100_000),
    "BTC": Decimal("0.5"),
    "ETH": Decimal(5),
    "SOL": Decimal(100),
}


def describe_balances() -> str:
    return ", ".join(f"{amount:,} {currency}" for currency, amount in DEMO_BALANCES.items())


def build_exchange(seed: int, clock: Clock) -> SimExchange:
    """A seeded engine listing the default products, with the demo user's account open."""
    exchange = SimExchange(clock=clock, seed=seed)
    exchange.open_account(DEMO_USER_ID, DEMO_BALANCES)
    return exchange


def build_server(
    settings: SimSettings,
    *,
    clock: Clock | None = None,
    faults: FaultPlan | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
) -> SimServer:
    """Engine + bootstrapped market agents + server (not started yet)."""
    from core.sim.agents import MarketAgents

    used_clock = clock or SystemClock()
    exchange = build_exchange(settings.seed, used_clock)
    agents = MarketAgents(exchange, seed=settings.seed, rate=settings.rate)
    agents.bootstrap()
    return SimServer(
        exchange,
        agents,
        clock=used_clock,
        host=settings.host,
        port=settings.port,
        tls=settings.tls,
        faults=faults,
        demo_key_algorithm=key_algorithm,
        seed=settings.seed,
    )


class SimListenError(RuntimeError):
    """The simulated exchange cannot listen where it was told; the message is one line."""


async def run_sim(
    settings: SimSettings,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[SimEndpoints], None],
    faults: FaultPlan | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
) -> None:
    """Serve until ``stop`` is set; ``on_ready`` gets the endpoints once listening."""
    server = build_server(settings, faults=faults, key_algorithm=key_algorithm)
    try:
        endpoints = await server.start()
    except OSError as exc:  # the port is taken, the address is not this machine's, ...
        await server.stop()
        raise SimListenError(listen_error_message(settings.host, settings.port, exc)) from exc
    try:
        on_ready(endpoints)
        await stop.wait()
    finally:
        await server.stop()
