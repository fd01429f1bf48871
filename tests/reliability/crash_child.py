"""The engine process that the crash-recovery loop kills: ``python -m tests.reliability.crash_child``.

It runs a demo-mode ``Engine`` (no strategy) against a simulated exchange in another process,
with its journal in ``--data-dir``; a restart reuses the same journal. The first line on stdin
is the sim launcher's handshake JSON (it carries the demo key, so it is never put on the
command line, where any process could read it). Once the engine has reconciled and its books
are LIVE it says ``{"event": "ready"}`` on stdout and then obeys one JSON command a line on
stdin:

- ``{"op": "submit", "product_id", "side", "size", "price"}``: a GTC limit order through
  ``Engine.submit``; answered ``{"event": "submitted", "client_order_id", "order_id", "state"}``.
- ``{"op": "stop"}``: a clean stop.

``--crash-at`` makes the process SIGKILL itself at one point of the NEXT submitted order's
life (a real ``kill -9``, nothing is flushed or closed):

- ``before_send``: the intent is journaled, the request has not left;
- ``after_send``: the exchange has created the order, its answer is never read;
- ``after_ack``: the answer is applied and journaled;
- ``between_fills``: the order's first fill is journaled, later fills happen while it is dead
  (the parent trades against the resting order). Before dying it says
  ``{"event": "filled", "client_order_id", "order_id"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from core.clock import SystemClock
from core.engine import Engine
from core.model import IntentSource, OrderIntent, OrderSpec, OrderType, Side, TimeInForce
from core.orders import FillEvent, OrderEvent
from core.sim.server import SimEndpoints
from tests.integration.engine_harness import build_engine, endpoints_of, eventually, proof_settings

CRASH_POINTS = ("before_send", "after_send", "after_ack", "between_fills")
JOURNAL_NAME = "journal-demo.sqlite3"
QUIET_BOOK_RESYNC_S = 2.0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _say(message: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class _DieOnFirstFill:
    """An order listener: SIGKILL right after the watched order's first fill is journaled
    (the order manager journals a fill before it tells its listeners)."""

    def __init__(self) -> None:
        self.client_order_id: str | None = None

    def on_order_event(self, event: OrderEvent) -> None:
        return None

    def on_fill(self, event: FillEvent) -> None:
        if event.client_order_id == self.client_order_id:
            _say(
                {
                    "event": "filled",
                    "client_order_id": event.client_order_id,
                    "order_id": event.fill.order_id,
                }
            )
            _die()


def _install_send_hook(engine: Engine, crash_at: str) -> None:
    """Wrap the venue's ``place`` so the process dies just before or just after the send."""
    venue = engine.venue
    place = venue.place

    async def place_then_die(spec: OrderSpec, client_order_id: str) -> Any:
        if crash_at == "before_send":
            _die()
        await place(spec, client_order_id)
        _die()

    venue.place = place_then_die  # type: ignore[method-assign]


def _gate_allows(engine: Engine, intent: OrderIntent) -> bool:
    return engine.preview(intent) is None


def _spec(command: Mapping[str, Any]) -> OrderSpec:
    return OrderSpec(
        product_id=command["product_id"],
        side=Side(command["side"]),
        order_type=OrderType.LIMIT,
        base_size=Decimal(command["size"]),
        limit_price=Decimal(command["price"]),
        time_in_force=TimeInForce.GTC,
    )


async def _run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sim = SimEndpoints.from_handshake(json.loads(await reader.readline()))
    data_dir = Path(args.data_dir)
    settings = proof_settings(data_dir, products=tuple(args.products.split(",")))
    # The loop's market is all but idle: a quiet book is resynced this often, which keeps it
    # younger than the risk gate's stale-data limit (5 s) and the orders allowed.
    market = settings.market.model_copy(update={"stale_after_s": QUIET_BOOK_RESYNC_S})
    settings = settings.model_copy(update={"market": market})
    engine = build_engine(settings, endpoints_of(sim), SystemClock(), data_dir / JOURNAL_NAME)
    # How old an order the exchange does not have must be before it is given up (10 s in
    # the engine): shortened so the loop sees a restored order settle without waiting long.
    engine.orders._not_found_settle_s = args.not_found_settle_s
    crash_at: str | None = args.crash_at
    watcher = _DieOnFirstFill()
    if crash_at in ("before_send", "after_send"):
        _install_send_hook(engine, crash_at)
    elif crash_at == "between_fills":
        engine.orders.add_listener(watcher)
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(engine.started.wait(), 30)
    await eventually(lambda: all(engine.prices.mid(p) for p in engine.products), 30)
    _say({"event": "ready"})
    while line := await reader.readline():
        command = json.loads(line)
        if command["op"] == "stop":
            break
        intent = OrderIntent(_spec(command), IntentSource.MANUAL, note="crash")
        # Between two resyncs of the quiet book the gate may briefly refuse (no mark, stale
        # data): wait until it would take the order, so the crash point is reached.
        await eventually(partial(_gate_allows, engine, intent), 15)
        order = await engine.submit(intent)
        if crash_at == "after_ack":
            _die()
        watcher.client_order_id = order.client_order_id
        _say(
            {
                "event": "submitted",
                "client_order_id": order.client_order_id,
                "order_id": order.order_id,
                "state": order.state.value,
            }
        )
    await engine.stop()
    await task
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crash-child")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--products", default="BTC-USD")
    parser.add_argument("--crash-at", choices=CRASH_POINTS, default=None)
    parser.add_argument("--not-found-settle-s", type=float, default=10.0)
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
