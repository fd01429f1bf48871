"""The crash-recovery loop: kill -9 the engine at chosen points of an order's life, restart it
on the same journal, and check that reconciliation arrives at the exchange's state.

The simulated exchange runs in its own process (``start_sim_process``) and outlives every
engine; its market agents are all but idle (``rate`` near zero), so the only trading is ours
and the book stays where the test priced its orders. Each cycle starts the engine process
(``tests.reliability.crash_child``) with one crash point, waits until the restarted engine has
reconciled, checks every invariant against the exchange's own answers over REST, and then
drives one order to the crash point:

- ``before_send`` / ``after_send`` / ``after_ack``: a passive limit buy far below the market;
- ``between_fills``: a two-lot limit buy at the top of the book, which this loop then sells
  into one lot at a time (market orders under the same demo key): the first fill kills the
  engine, the second lands while it is dead.

Checked after every restart (``invariants``): every order at the exchange is known to the
engine and the other way round (states agreeing), no intent produced two orders, every fill is
journaled exactly once, and the journal's fills explain the account's balances exactly. And
per crash point: the order killed before its send is never sent (not by the restart either);
the ones killed after it are found and adopted with their exchange id; the one killed between
fills has both fills, once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.clock import SystemClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.rest import CoinbaseRestClient
from core.config import SimSettings
from core.model import OrderSpec, OrderType, Side
from core.sim.launcher import SimProcess, astart_sim_process
from core.sim.server import SimEndpoints
from tests.reliability.crash_child import CRASH_POINTS, JOURNAL_NAME
from tests.reliability.invariants import (
    JournalView,
    VenueFill,
    VenueOrder,
    check_fills_once,
    check_ledger,
    check_one_order_per_intent,
    check_orders_known_both_ways,
    ledger_from_fills,
    read_journal,
)

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCT = "BTC-USD"
LOT = Decimal("0.001")  # one fill of the between-fills order
# The engine gives up on an order the exchange does not have once it is this old (10 s by
# default; shortened here so a restored order settles within a few seconds of the restart).
NOT_FOUND_SETTLE_S = 5.0


@dataclass(frozen=True)
class CrashConfig:
    seed: int = 11
    cycles: tuple[str, ...] = CRASH_POINTS  # the crash point of each cycle, in order
    ready_timeout_s: float = 45.0  # real seconds for a restarted engine to reconcile
    agree_timeout_s: float = 20.0  # real seconds for the journal to agree with the exchange

    @classmethod
    def random(cls, seed: int, cycles: int) -> CrashConfig:
        """``cycles`` seeded crash points (the long run)."""
        rng = random.Random(f"{seed}:crashes")
        return cls(seed=seed, cycles=tuple(rng.choice(CRASH_POINTS) for _ in range(cycles)))


@dataclass
class CrashReport:
    kills: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    orders: int = 0
    fills: int = 0
    real_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def table(self) -> str:
        lines = [f"crash recovery: {self.restarts} restarts in {self.real_s:.1f} s real", ""]
        lines += [f"  kill -9 {point:<22}{self.kills.get(point, 0):>8}" for point in CRASH_POINTS]
        lines += [
            f"  {'orders at the sim':<30}{self.orders:>8}",
            f"  {'fills at the sim':<30}{self.fills:>8}",
            f"  {'checks after restarts':<30}{self.checks:>8}",
            f"  {'passed':<30}{self.checks - len(self.failures):>8}  "
            + ("PASS" if self.ok and self.checks else "FAIL"),
        ]
        lines += [f"  ! {failure}" for failure in self.failures[:20]]
        return "\n".join(lines)


class EngineProcess:
    """One run of ``crash_child``: its stdin for commands, its stdout for answers."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls, sim: SimEndpoints, data_dir: Path, crash_at: str | None, log: Path
    ) -> EngineProcess:
        command = [
            sys.executable,
            "-m",
            "tests.reliability.crash_child",
            "--data-dir",
            str(data_dir),
            "--products",
            PRODUCT,
            "--not-found-settle-s",
            str(NOT_FOUND_SETTLE_S),
        ]
        if crash_at is not None:
            command += ["--crash-at", crash_at]
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=REPO_ROOT,
            )
        child = cls(process)
        await child.send(sim.to_handshake())
        return child

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def expect(self, event: str, timeout_s: float) -> dict[str, Any]:
        """The next message, which must be ``event`` (EOF or another event fails)."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            code = await self.process.wait()
            raise AssertionError(f"engine process ended ({code}) before {event!r}")
        message: dict[str, Any] = json.loads(line)
        if message.get("event") != event:
            raise AssertionError(f"expected {event!r}, got {message}")
        return message

    async def killed(self, timeout_s: float = 15.0) -> bool:
        """Wait for the process to end; True if it died of SIGKILL (its own kill -9)."""
        code = await asyncio.wait_for(self.process.wait(), timeout_s)
        return code == -9

    async def stop(self) -> int:
        with contextlib.suppress(ConnectionError):
            await self.send({"op": "stop"})
        try:
            return await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


class CrashLoop:
    """Runs the cycles of one ``CrashConfig`` against one simulated exchange process."""

    def __init__(self, config: CrashConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.journal_file = data_dir / JOURNAL_NAME
        self.log = data_dir / "engine.log"
        self.report = CrashReport()
        self._sim: SimProcess | None = None
        self._rest: CoinbaseRestClient | None = None
        self._expect: dict[str, str] = {}  # client_order_id -> what its crash point promises
        self._start_balances: dict[str, Decimal] = {}  # the account before any trading

    async def run(self) -> CrashReport:
        started = time.perf_counter()
        # Near zero: the agents' ladder stays put, so only our orders trade (with each other).
        settings = SimSettings(seed=self.config.seed, rate=0.001)
        self._sim = await astart_sim_process(settings)
        sim = self._sim.endpoints
        clock = SystemClock()
        signer = JwtSigner(sim.credentials, clock, rest_host_from_url(sim.rest_url))
        self._rest = CoinbaseRestClient(sim.rest_url, signer, clock=clock)
        try:
            _, _, self._start_balances = await self._venue()
            for point in self.config.cycles:
                await self._cycle(sim, point)
            engine = await self._restart(sim, None)
            if await engine.stop() != 0:
                self.report.failures.append(f"clean stop failed; see {self.log}")
        finally:
            await self._rest.aclose()
            await self._sim.astop()
            self.report.real_s = time.perf_counter() - started
        return self.report

    async def _restart(self, sim: SimEndpoints, crash_at: str | None) -> EngineProcess:
        engine = await EngineProcess.start(sim, self.data_dir, crash_at, self.log)
        await engine.expect("ready", self.config.ready_timeout_s)
        self.report.restarts += 1
        await self._verify(f"restart {self.report.restarts}")
        return engine

    async def _cycle(self, sim: SimEndpoints, point: str) -> None:
        engine = await self._restart(sim, point)
        log.info("crash cycle %d: %s", self.report.restarts, point)
        bid, ask = await self._touch()
        if point == "between_fills":
            price = bid + Decimal("0.01") if bid + Decimal("0.01") < ask else bid
            # Two lots: both fills end it, so no remainder outbids a later cycle's order.
            await engine.send(_order(Side.BUY, LOT * 2, price))
            placed = await engine.expect("submitted", 30)
            self._expect[placed["client_order_id"]] = point
            await self._take(LOT)  # the first fill: the engine journals it and dies
            await engine.expect("filled", 30)
            died = await engine.killed()
            await self._take(LOT)  # the second, while the engine is dead
        else:
            await engine.send(_order(Side.BUY, LOT, (bid * Decimal("0.99")).quantize(bid)))
            died = await engine.killed()
            self._expect[self._newest_intent()] = point
        if not died:
            self.report.failures.append(f"{point}: the engine did not die of its kill -9")
        self.report.kills[point] += 1

    # ------------------------------------------------------------------ the exchange's truth

    async def _touch(self) -> tuple[Decimal, Decimal]:
        assert self._rest is not None
        book = await self._rest.get_product_book(PRODUCT, limit=1)
        return Decimal(str(book.bids[0][0])), Decimal(str(book.asks[0][0]))

    async def _take(self, size: Decimal) -> None:
        """Sell ``size`` at market under the demo key: it trades with our resting bid."""
        assert self._rest is not None
        spec = OrderSpec(PRODUCT, Side.SELL, OrderType.MARKET, base_size=size)
        outcome = await self._rest.create_order(spec, str(uuid.uuid4()))
        assert type(outcome).__name__ == "OrderAccepted", outcome

    async def _venue(self) -> tuple[list[VenueOrder], list[VenueFill], dict[str, Decimal]]:
        assert self._rest is not None
        orders = [
            VenueOrder(
                o.order_id,
                o.client_order_id,
                o.product_id,
                o.status,
                o.filled_size,
                o.filled_value,
                o.total_fees,
            )
            for o in await self._rest.list_orders()
        ]
        fills = [
            VenueFill(f.order_id, f.size, f.price * f.size, f.commission)
            for f in await self._rest.list_fills()
        ]
        totals = {b.currency: b.available + b.hold for b in await self._rest.list_accounts()}
        return orders, fills, totals

    # ------------------------------------------------------------------ checks

    async def _verify(self, when: str) -> None:
        """Poll until the journal agrees with the exchange (the restarted engine reconciles
        and settles in the background), then record the result."""
        self.report.checks += 1
        deadline = time.perf_counter() + self.config.agree_timeout_s
        while True:
            problems = await self._problems()
            if not problems:
                return
            if time.perf_counter() > deadline:
                self.report.failures.append(f"{when}: {'; '.join(problems[:5])}")
                return
            await asyncio.sleep(0.25)

    async def _problems(self) -> list[str]:
        journal = read_journal(self.journal_file)
        orders, fills, totals = await self._venue()
        self.report.orders, self.report.fills = len(orders), len(fills)
        problems = check_orders_known_both_ways(journal, orders)
        problems += check_one_order_per_intent(journal, orders)
        problems += check_fills_once(journal, orders, fills)
        expected = ledger_from_fills(self._start_balances, journal.fills)
        problems += [f"ledger: {p}" for p in check_ledger(expected, totals)]
        problems += self._promises(journal, orders)
        return problems

    def _promises(self, journal: JournalView, orders: list[VenueOrder]) -> list[str]:
        """What each crash point promises about its own order."""
        problems: list[str] = []
        at_venue = {o.client_order_id: o for o in orders}
        for client_order_id, point in self._expect.items():
            known = journal.orders.get(client_order_id)
            venue = at_venue.get(client_order_id)
            if known is None:
                problems.append(f"{point}: intent {client_order_id} lost from the journal")
            elif point == "before_send":
                if venue is not None:
                    problems.append(f"before_send: {client_order_id} reached the exchange")
                elif known.state != "REJECTED":
                    problems.append(f"before_send: {client_order_id} still {known.state}")
            elif venue is None:
                problems.append(f"{point}: {client_order_id} is not at the exchange")
            elif known.order_id != venue.order_id:
                problems.append(f"{point}: {client_order_id} not adopted with its exchange id")
            elif point == "between_fills":
                rows = [f for f in journal.fills if f.client_order_id == client_order_id]
                if sum((f.size for f in rows), Decimal(0)) != LOT * 2 or len(rows) != 2:
                    problems.append(f"between_fills: journal has {rows}, want two fills")
        return problems

    def _newest_intent(self) -> str:
        journal = read_journal(self.journal_file)
        ours = [o for o in journal.orders.values() if not o.external]
        return max(ours, key=lambda o: o.created_at).client_order_id


def _order(side: Side, size: Decimal, price: Decimal) -> dict[str, Any]:
    return {
        "op": "submit",
        "product_id": PRODUCT,
        "side": side.value,
        "size": str(size),
        "price": str(price),
    }


async def run_crash_loop(config: CrashConfig, data_dir: Path | None = None) -> CrashReport:
    """Run the crash cycles with the journal in ``data_dir`` (a fresh temp dir by default)."""
    directory = data_dir or Path(tempfile.mkdtemp(prefix="cryptoj-crash-"))
    directory.mkdir(parents=True, exist_ok=True)
    return await CrashLoop(config, directory).run()
