"""Assemble a running simulated exchange from its settings (``SimSettings`` or the
``SimOptions`` the demo's child gets from the console): engine, agents, server.

``build_exchange`` makes the seeded engine with the demo user's account; ``run_sim`` starts
the server, reports its endpoints once and serves until ``stop`` is set. The settings
machinery (``core.config``, pydantic) is not imported here: the demo's child runs this
without it (core/sim/options.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from core.clock import Clock, SystemClock
from core.sim.exchange import SimExchange
from core.sim.faults import FaultPlan
from core.sim.jwt_verify import KeyAlgorithm
from core.sim.options import SimStartSettings
from core.sim.server import DEMO_USER_ID, SimEndpoints, SimServer

if TYPE_CHECKING:
    from core.sim.agents import MarketAgents

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
    settings: SimStartSettings,
    *,
    clock: Clock | None = None,
    faults: FaultPlan | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
) -> SimServer:
    """Engine + bootstrapped market agents + server (not started yet)."""
    server, agents = _unbuilt_server(
        settings, clock=clock or SystemClock(), faults=faults, key_algorithm=key_algorithm
    )
    agents.bootstrap()
    return server


def _unbuilt_server(
    settings: SimStartSettings,
    *,
    clock: Clock,
    faults: FaultPlan | None,
    key_algorithm: KeyAlgorithm,
) -> tuple[SimServer, MarketAgents]:
    """The server and its market agents, the books and the candle history not built yet."""
    from core.sim.agents import MarketAgents

    exchange = build_exchange(settings.seed, clock)
    agents = MarketAgents(exchange, seed=settings.seed, rate=settings.rate)
    server = SimServer(
        exchange,
        agents,
        clock=clock,
        host=settings.host,
        port=settings.port,
        tls=settings.tls,
        faults=faults,
        demo_key_algorithm=key_algorithm,
        seed=settings.seed,
    )
    return server, agents


class SimListenError(RuntimeError):
    """The simulated exchange cannot listen where it was told; the message is one line."""


async def run_sim(
    settings: SimStartSettings,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[SimEndpoints], None],
    on_built: Callable[[], None] | None = None,
    faults: FaultPlan | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
) -> None:
    """Serve until ``stop`` is set; ``on_ready`` gets the endpoints once listening, and
    ``on_built`` is called once the market is built, before the first request is served.

    The market (the agents' books, the candle history) and what the first requests need (the
    JWT verifier's library) are built AFTER ``on_ready``: whoever waits for the handshake (the
    console's demo) goes on at once, and builds its engine while this builds the market. It is
    all done in one go, without giving the event loop a turn, so no request (queued on the
    listening socket meanwhile) is served before the books are complete: a client that
    subscribes at once gets the full book and its sequence numbers from the start.
    """
    server, agents = _unbuilt_server(
        settings, clock=SystemClock(), faults=faults, key_algorithm=key_algorithm
    )
    try:
        endpoints = await server.start()
    except OSError as exc:  # the port is taken, the address is not this machine's, ...
        from core.local_resources import listen_error_message

        await server.stop()
        raise SimListenError(listen_error_message(settings.host, settings.port, exc)) from exc
    try:
        on_ready(endpoints)
        # No await from here to stop.wait(): see the docstring.
        agents.bootstrap()
        server.verifier.load()
        if on_built is not None:
            on_built()
        await stop.wait()
    finally:
        await server.stop()
