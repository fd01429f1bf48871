"""A short run of scripts/bench_sim.py: the sim in its own process streams level2 at the
target rate while orders flow in over REST. The test suite checks that nothing is lost (no
sequence gap, every order acknowledged, changes merged into fewer level messages) and prints
the figures; the rates are held to their floors only with ``--benchmark-enable`` (``make bench``;
the full benchmark with its verdict is the script), because a shared CI box makes any rate
floor a coin toss.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from core.config import SimSettings
from core.sim.launcher import start_sim_process
from tests.performance.bench_mode import benchmarks_enabled, floor_verdict, hold_to_targets

RATE = 5000.0
ORDERS_PER_S = 50.0
# (benchmark run, test-suite run)
SECONDS = (2.0, 1.0)


def _bench_module() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_sim.py"
    spec = importlib.util.spec_from_file_location("bench_sim", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_level2_stream_and_orders_together(request: pytest.FixtureRequest) -> None:
    measuring = benchmarks_enabled(request.config)
    seconds = SECONDS[0] if measuring else SECONDS[1]
    bench = _bench_module()
    with start_sim_process(SimSettings(seed=11, rate=RATE)) as sim:
        result = asyncio.run(
            bench.measure(
                sim.endpoints, seconds=seconds, orders_per_s=ORDERS_PER_S, sim_pid=sim.pid
            )
        )
        assert sim.alive
    print("\n" + result.report())
    assert result.gaps == 0
    assert result.orders_sent > 0
    assert result.orders_acked == result.orders_sent
    assert result.updates > 0
    assert result.sim_levels_sent < result.sim_book_changes  # changes did merge in flushes
    assert not sim.alive, "stopped with the context manager"
    if measuring:
        # The agents aim at updates on the wire, so only a starved sim process falls short.
        orders_floor, updates_floor = seconds * ORDERS_PER_S * 0.9, RATE * 0.6
        orders = floor_verdict("orders sent", result.orders_sent, orders_floor, "orders")
        updates = floor_verdict("level2 updates", result.updates_per_s, updates_floor, "per s")
        print(f"{orders}\n{updates}")
        hold_to_targets(orders, updates)


def test_server_alone_pushes_5000_distinct_updates_per_s_to_each_client(
    request: pytest.FixtureRequest,
) -> None:
    measuring = benchmarks_enabled(request.config)
    seconds = SECONDS[0] if measuring else SECONDS[1]
    bench = _bench_module()
    received, cpu = asyncio.run(bench.measure_wire(updates_per_s=RATE, seconds=seconds, clients=3))
    print(f"\nwire only: {received:,.0f} level updates/s per client, {cpu:.0%} of one core")
    assert received > 0
    if measuring:
        wire = floor_verdict("wire updates per client", received, RATE * 0.5, "per s")
        print(wire)
        hold_to_targets(wire)
