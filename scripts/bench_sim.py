"""Benchmark the simulated exchange: a level2 stream to one client while orders flow in.

The sim runs in its own process (``core.sim.launcher``), so it has one core to itself as it
would beside the console; this process is the client. It subscribes to ``level2`` for every
product, places ``--orders-per-s`` small resting limit orders over REST (each with a fresh
JWT, like a real client) and prints:

- level2 updates/s received (price levels inside ``update`` events, snapshots excluded) against
  ``--rate``, which the sim's market agents read as exactly that: level updates per second on
  the wire across the default products (the bench's own orders add their few on top),
- the engine's raw book changes behind them (a level changed twice within one flush is sent
  once, so the agents make more raw changes than the wire carries),
- sequence gaps seen (must be 0),
- orders/s acknowledged and the order round-trip latency p50 / p99,
- the sim process's CPU use (share of one core),
- a verdict: the target is met when the received rate reaches ``--rate``, every order sent was
  acknowledged and no gap was seen (the exit code is 1 otherwise).

Run: ``python scripts/bench_sim.py --rate 5000 --orders-per-s 50 --seconds 10``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import orjson
import websockets
from cryptography.hazmat.primitives import serialization

from core.config import SimSettings
from core.sim.launcher import start_sim_process
from core.sim.server import API_PREFIX, SimEndpoints

PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD")


@dataclass
class BenchResult:
    seconds: float
    updates: int = 0
    messages: int = 0
    gaps: int = 0
    orders_sent: int = 0
    orders_acked: int = 0
    latencies_s: list[float] = field(default_factory=list)
    sim_cpu_share: float | None = None
    sim_book_changes: int = 0  # level changes the engine reported while level2 was watched
    sim_levels_sent: int = 0  # level updates the server put on the wire after batching

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.seconds

    @property
    def changes_per_update(self) -> float:
        """Raw engine book changes per level update sent (>1: changes merged in a flush)."""
        return self.sim_book_changes / self.sim_levels_sent if self.sim_levels_sent else 0.0

    @property
    def orders_per_s(self) -> float:
        return self.orders_acked / self.seconds

    def meets(self, rate: float, orders_per_s: float) -> bool:
        """The level2 rate reached ``rate``, every order got its answer (at about the asked
        pace) and the stream had no gap."""
        return (
            self.updates_per_s >= rate
            and self.orders_acked == self.orders_sent
            and self.orders_per_s >= orders_per_s * 0.95
            and self.gaps == 0
        )

    def latency_ms(self, quantile: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        index = min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))
        return ordered[index] * 1000

    def report(self) -> str:
        cpu = f"{self.sim_cpu_share:.0%} of one core" if self.sim_cpu_share is not None else "n/a"
        return "\n".join(
            [
                f"duration            {self.seconds:.1f} s",
                f"engine book changes {self.sim_book_changes / self.seconds:,.0f}/s"
                f" (batched per product per flush into {self.sim_levels_sent / self.seconds:,.0f}"
                f" level updates/s on the wire, {self.changes_per_update:.2f} changes each)",
                f"level2 updates/s    {self.updates_per_s:,.0f} received"
                f" ({self.messages:,} messages, {self.gaps} gaps)",
                f"orders/s acked      {self.orders_per_s:.1f} ({self.orders_acked}/{self.orders_sent})",
                f"order latency       p50 {self.latency_ms(0.5):.1f} ms, p99 {self.latency_ms(0.99):.1f} ms"
                f" (mean {statistics.fmean(self.latencies_s) * 1000 if self.latencies_s else float('nan'):.1f} ms)",
                f"sim process CPU     {cpu}",
            ]
        )


class _Signer:
    def __init__(self, endpoints: SimEndpoints) -> None:
        self.key_name = endpoints.credentials.key_name
        self.key: Any = serialization.load_pem_private_key(
            endpoints.credentials.private_key.encode(), password=None
        )
        self.host = endpoints.rest_host

    def header(self, method: str, path: str) -> dict[str, str]:
        now = int(time.time())
        token = jwt.encode(
            {
                "sub": self.key_name,
                "iss": "cdp",
                "nbf": now,
                "exp": now + 120,
                "uri": f"{method} {self.host}{path}",
            },
            self.key,
            algorithm="ES256",
            headers={"kid": self.key_name, "nonce": uuid.uuid4().hex},
        )
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            parts = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks  # utime + stime


async def _stream(
    endpoints: SimEndpoints, result: BenchResult, ready: asyncio.Event, stop: asyncio.Event
) -> None:
    async with websockets.connect(endpoints.ws_market_url, max_size=None, compression=None) as ws:
        await ws.send(
            orjson.dumps(
                {"type": "subscribe", "channel": "level2", "product_ids": list(PRODUCTS)}
            ).decode()
        )
        last = -1
        snapshots = 0
        counting = False
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            message = orjson.loads(frame)
            sequence = message["sequence_num"]
            if sequence != last + 1:
                result.gaps += 1
            last = sequence
            if message["channel"] != "l2_data":
                continue
            for event in message["events"]:
                if event["type"] == "snapshot":
                    snapshots += 1
                    if snapshots == len(PRODUCTS):
                        counting = True
                        ready.set()
                elif counting:
                    result.updates += len(event["updates"])
                    result.messages += 1


async def _orders(
    endpoints: SimEndpoints, result: BenchResult, per_s: float, stop: asyncio.Event
) -> None:
    signer = _Signer(endpoints)
    path = f"{API_PREFIX}/orders"
    interval = 1.0 / per_s
    pending: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=endpoints.rest_url, timeout=10) as client:

        async def place(index: int) -> None:
            body = {
                "client_order_id": str(uuid.uuid4()),
                "product_id": "SOL-USD",
                "side": "BUY",
                "order_configuration": {
                    "limit_limit_gtc": {
                        "base_size": "0.01",
                        "limit_price": f"{100 + index % 10}.00",
                    }
                },
            }
            started = time.perf_counter()
            response = await client.post(
                path, content=orjson.dumps(body), headers=signer.header("POST", path)
            )
            if response.status_code == 200 and response.json().get("success"):
                result.orders_acked += 1
                result.latencies_s.append(time.perf_counter() - started)

        next_at = time.perf_counter()
        index = 0
        while not stop.is_set():
            task = asyncio.create_task(place(index))
            pending.add(task)
            task.add_done_callback(pending.discard)
            result.orders_sent += 1
            index += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if pending:
            await asyncio.wait(pending, timeout=10)


async def _sim_stats(endpoints: SimEndpoints) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        stats: dict[str, int] = (await client.get(f"{endpoints.rest_url}/sim/stats")).json()
        return stats


async def measure(
    endpoints: SimEndpoints, *, seconds: float, orders_per_s: float, sim_pid: int | None = None
) -> BenchResult:
    """Stream level2 and place orders for ``seconds``; return what was achieved."""
    result = BenchResult(seconds=seconds)
    ready, stop = asyncio.Event(), asyncio.Event()
    stream = asyncio.create_task(_stream(endpoints, result, ready, stop))
    await asyncio.wait_for(ready.wait(), 30)
    cpu_before = _cpu_seconds(sim_pid) if sim_pid else None
    stats_before = await _sim_stats(endpoints)
    started = time.perf_counter()
    orders = asyncio.create_task(_orders(endpoints, result, orders_per_s, stop))
    await asyncio.sleep(seconds)
    stop.set()
    result.seconds = time.perf_counter() - started
    cpu_after = _cpu_seconds(sim_pid) if sim_pid else None
    stats_after = await _sim_stats(endpoints)
    result.sim_book_changes = stats_after["book_changes"] - stats_before["book_changes"]
    result.sim_levels_sent = stats_after["l2_levels_sent"] - stats_before["l2_levels_sent"]
    await asyncio.gather(stream, orders)
    if cpu_before is not None and cpu_after is not None:
        result.sim_cpu_share = (cpu_after - cpu_before) / result.seconds
    return result


async def measure_wire(
    *, updates_per_s: float, seconds: float, clients: int = 1
) -> tuple[float, float]:
    """Server-only capacity, in ONE process and so on one core: synthetic distinct level
    changes go straight into an in-process SimServer every 20 ms (no agents), and
    ``clients`` level2 clients in the same process count what arrives.

    Returns (level updates/s received per client, CPU share of one core used by everything).
    """
    from decimal import Decimal

    from core.clock import SystemClock
    from core.model import Side
    from core.sim.runner import build_exchange
    from core.sim.server import SimServer

    clock = SystemClock()
    server = SimServer(build_exchange(1, clock), None, clock=clock)
    endpoints = await server.start()
    results = [BenchResult(seconds=seconds) for _ in range(clients)]
    readies = [asyncio.Event() for _ in range(clients)]
    stop = asyncio.Event()
    streams = [
        asyncio.create_task(_stream(endpoints, result, ready, stop))
        for result, ready in zip(results, readies, strict=True)
    ]
    await asyncio.gather(*(ready.wait() for ready in readies))
    per_flush = max(1, round(updates_per_s * 0.02))
    cpu_before = time.process_time()
    started = time.perf_counter()
    tick = 0
    while time.perf_counter() - started < seconds:
        now = datetime.now(UTC)
        for level in range(per_flush):
            price = Decimal(60000 + (tick * per_flush + level) % 5000)
            side = Side.BUY if level % 2 else Side.SELL
            server.on_book_change("BTC-USD", side, price, Decimal(level % 7), now)
        server.flush()
        tick += 1
        await asyncio.sleep(max(0.0, started + tick * 0.02 - time.perf_counter()))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.2)  # let the last flushes arrive
    cpu = (time.process_time() - cpu_before) / elapsed
    stop.set()
    await asyncio.gather(*streams)
    await server.stop()
    return sum(r.updates for r in results) / clients / elapsed, cpu


def run(*, rate: float, orders_per_s: float, seconds: float, seed: int = 7) -> BenchResult:
    """Start the sim in a child process, measure, stop it."""
    with start_sim_process(SimSettings(seed=seed, rate=rate)) as sim:
        return asyncio.run(
            measure(sim.endpoints, seconds=seconds, orders_per_s=orders_per_s, sim_pid=sim.pid)
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=5000.0, help="target level2 updates/s")
    parser.add_argument("--orders-per-s", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--wire-clients",
        type=int,
        default=1,
        help="also measure the server alone with synthetic updates to N clients (0: skip)",
    )
    args = parser.parse_args()
    result = run(
        rate=args.rate, orders_per_s=args.orders_per_s, seconds=args.seconds, seed=args.seed
    )
    print(f"target              {args.rate:,.0f} level2 updates/s, {args.orders_per_s:g} orders/s")
    print(result.report())
    met = result.meets(args.rate, args.orders_per_s)
    print(f"target met          {'yes' if met else 'NO'}")
    if args.wire_clients:
        received, cpu = asyncio.run(
            measure_wire(updates_per_s=args.rate, seconds=args.seconds, clients=args.wire_clients)
        )
        print(
            f"wire only           {received:,.0f} distinct level updates/s to each of"
            f" {args.wire_clients} client(s); server + clients in one process used"
            f" {cpu:.0%} of one core"
        )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
