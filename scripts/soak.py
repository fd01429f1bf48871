"""The long soak: the engine trading on the simulated exchange under faults for N minutes,
then (optionally) many kill -9 / restart cycles.

The soak is ``tests/reliability/soak.py`` run for ``--minutes`` of real time instead of the
CI's fixed episodes: a seeded stream of one-shot faults (WebSocket drops, 1001 closes,
sequence gaps, silences past the watchdog, malformed frames, 429 / 500 / slow REST answers,
orders accepted with the response lost, order POSTs that reach the exchange after the
client's deadline, answers trickled one byte at a time) and kill switch presses (alone, in a
REST 500/429 storm, with journal writes failing, with an order POST arriving late, with
trickling answers), each followed by a checkpoint where every invariant is checked against
the exchange. ``--faults`` adds random faults between checkpoints (the sim's ``--faults``
syntax, e.g. ``late_order=3@0.05,trickle=0.4@0.01``). ``--crash-cycles N`` then runs the
crash-recovery loop (``tests/reliability/crash_recovery.py``) with N seeded crash points.

It prints the tables (faults injected by kind, resyncs, recoveries, reconnects, orders, fills,
orders the gate refused by reason, each invariant with its checks and PASS/FAIL: no order at
the exchange unknown to the engine, zero open after each completed kill, fills booked once,
limits held counting working orders, ...) and exits 1 if any invariant failed.

Run: ``python scripts/soak.py --minutes 30 --seed 7`` (or ``make soak``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

# The soak lives with the reliability tests; the script reuses it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.sim.faults import FaultPlan
from tests.reliability.crash_recovery import CrashConfig, run_crash_loop
from tests.reliability.soak import SoakConfig, run_soak


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="real minutes of soak")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--faults",
        default="",
        help="random faults between checkpoints, e.g. ws_drop=0.002,rest_500=0.02,trickle=0.4@0.01",
    )
    parser.add_argument("--crash-cycles", type=int, default=0, help="kill -9 cycles afterwards")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the journals here")
    parser.add_argument("--log-level", default="ERROR")
    return parser


async def _main(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="cryptoj-soak-"))
    background = FaultPlan.parse(args.faults) if args.faults else None
    config = SoakConfig(seed=args.seed, real_minutes=args.minutes, background=background)
    report = await run_soak(config, data_dir / "soak")
    print(report.table(), flush=True)
    ok = report.ok
    if args.crash_cycles > 0:
        crash_config = CrashConfig.random(args.seed, args.crash_cycles)
        crashes = await run_crash_loop(crash_config, data_dir / "crash")
        print()
        print(crashes.table(), flush=True)
        ok = ok and crashes.ok
    print(f"\njournals kept in {data_dir}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.faults:
            FaultPlan.parse(args.faults)
    except ValueError as error:
        print(f"soak.py: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
