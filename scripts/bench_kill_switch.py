"""Benchmark the kill switch: 200 open orders on the simulated exchange, then kill.

The sim runs in its own process (``core.sim.launcher``, market agents on, loopback), as it
does beside the console in the demo; this process runs the ``Engine`` on the system clock.
Each round places the orders through ``Engine.submit`` (spread over BTC-USD, ETH-USD and
SOL-USD, passive), presses the kill switch, checks through the exchange's REST listing that
none is open, and resumes. It prints, p50 / p95 / p99 / max over the rounds:

- latch: from the ``kill()`` call until the risk gate refuses an order (target < 1 ms),
  and that time less the durable (fsync) write of the HALTED state (the in-memory latch),
- confirmed: ``KillProgress.finished_at - started_at``: both batches of 100 cancels sent at
  once, and the venue confirmed flat, by the user stream (every cancelled order reported
  finished, nothing missed) or, when the stream cannot confirm, by a listing of zero open
  orders (target p50 <= 60 ms on a 2-core machine, issue 9 §2). Which one confirmed each
  round is counted,
- task: until the kill's task returned: after a stream confirmation it also makes the one
  listing that audits it (docs/design.md, the kill switch).

Run: ``python scripts/bench_kill_switch.py --rounds 20 --orders 200``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import statistics
import sys
import tempfile
from pathlib import Path

# The engine harness lives with the integration tests; the script reuses it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import SystemClock
from core.config import SimSettings
from core.sim.launcher import astart_sim_process
from tests.integration.engine_harness import (
    KillTiming,
    build_engine,
    endpoints_of,
    eventually,
    proof_settings,
    timed_kill,
)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (enough for tens of rounds)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(name: str, values: list[float], unit: float, label: str, target: float | None) -> str:
    p50 = statistics.median(values)
    p95 = percentile(values, 0.95)
    p99 = percentile(values, 0.99)
    line = (
        f"{name:<11} p50 {p50 * unit:8.3f} {label}   p95 {p95 * unit:8.3f} {label}   "
        f"p99 {p99 * unit:8.3f} {label}   max {max(values) * unit:8.3f} {label}"
    )
    if target is None:
        return line
    verdict = "within" if p50 <= target else "OVER"
    return f"{line}   ({verdict} the {target * unit:g} {label} target)"


async def bench(rounds: int, orders: int, seed: int) -> list[KillTiming]:
    clock = SystemClock()
    sim = await astart_sim_process(SimSettings(seed=seed))
    try:
        with tempfile.TemporaryDirectory(prefix="cryptoj-bench-kill-") as data_dir:
            settings = proof_settings(Path(data_dir), risk={"stale_market_data_s": 3600})
            engine = build_engine(
                settings,
                endpoints_of(sim.endpoints),
                clock,
                Path(data_dir) / "journal-demo.sqlite3",
            )
            task = asyncio.create_task(engine.run())
            try:
                await asyncio.wait_for(engine.started.wait(), 30)
                await eventually(
                    lambda: all(engine.prices.best_bid(p) is not None for p in engine.products),
                    30,
                )
                timings = []
                for number in range(1, rounds + 1):
                    timing = await timed_kill(engine, orders)
                    timings.append(timing)
                    print(
                        f"round {number:3d}: latch {timing.latch_s * 1e6:7.0f} us "
                        f"(durable write {timing.durable_write_s * 1e6:7.0f} us), "
                        f"confirmed {timing.confirm_s * 1e3:6.1f} ms by {timing.confirmed_by} "
                        f"(task {timing.task_s * 1e3:6.1f} ms), "
                        f"{timing.rounds} round(s), {timing.cancels_sent} cancels",
                        flush=True,
                    )
                return timings
            finally:
                await engine.stop()
                await task
    finally:
        await sim.astop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the engine's event log is not the report
    timings = asyncio.run(bench(args.rounds, args.orders, args.seed))
    print(f"\nkill switch with {args.orders} open orders, {len(timings)} rounds:")
    print(summary("latch", [t.latch_s for t in timings], 1e3, "ms", 1e-3))
    in_memory = [t.latch_s - t.durable_write_s for t in timings]
    print(summary("- in memory", in_memory, 1e3, "ms", 1e-3))
    print(summary("confirmed", [t.confirm_s for t in timings], 1e3, "ms", 0.060))
    print(summary("task", [t.task_s for t in timings], 1e3, "ms", None))
    by = collections.Counter(str(t.confirmed_by) for t in timings)
    print("confirmed by: " + ", ".join(f"{name} {count}" for name, count in sorted(by.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
