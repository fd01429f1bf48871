"""The soak: the whole engine trading on the simulated exchange while everything goes wrong.

An in-process ``SimServer`` (real loopback sockets, the same code path as the demo) serves a
seeded ``SimExchange`` whose market agents are stepped by this runner, and an ``Engine`` in
demo mode runs the built-in market maker against it. Both share a ``ManualClock`` that the
runner moves one ``step_s`` per tick, so the market, the watchdogs, the JWT windows and the
strategy's timers all run on one simulated time, faster than real time.

The run is a seeded list of episodes. Each one trades for a random while, then injects ONE
fault through the sim's ``FaultInjector`` (a WebSocket drop, a 1001 close, a sequence gap, a
silence past the engine's watchdog, a malformed frame, a 429, a 500, a REST answer slower
than the client's timeout, an order accepted with its response lost, an order POST that
reaches the sim after the client's deadline, an answer trickled one byte at a time) or
presses the kill switch (alone, or in a REST 500/429 storm, with journal writes failing, with
an order POST arriving late, with answers trickling), trades on for ``settle_s`` while the
engine copes, and ends at a checkpoint: faults
off and the strategy paused, the engine must come back on its own while the market moves on
(books LIVE, user stream up, reconciled, no order in flight) within ``recovery_timeout_s``.
Then, with the market frozen so that the sim's state stands still, every invariant is checked
against the exchange's own state:

- each book equals the sim's (``book_levels``) after the resyncs the fault caused;
- every order the sim holds is known to the engine and the other way round, states agreeing;
- no intent produced two orders;
- every fill the sim made is in the journal exactly once;
- positions and balances equal the sim's (the portfolio's, and the journal's fills summed);
- after each kill (the switch, or an automatic trigger), the sim lists no open order of ours
  within ``kill_bound_s`` (real seconds), no order request leaves while HALTED, and none is
  open when the trader resumes;
- when a kill reports DONE, the sim holds zero open orders of ours at that moment (a late
  POST included: the sweep must have waited for it);
- at every tick, the limits hold counting working orders, judged from the sim's own books:
  our open orders there number at most ``max_open_orders``, and the strategy product's
  worst case (the sim's balance plus every open buy's remaining size) valued at the lowest
  price any buy was sent at is within ``max_position_notional`` (see ``check_limits_held``).

The optional ``background`` FaultPlan adds random faults between checkpoints (the long run).
``run_soak`` returns a ``SoakReport``; ``SoakReport.table()`` is what the test and
``scripts/soak.py`` print.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from core.clock import ManualClock
from core.config import MarketMakerSettings, Settings, load_settings
from core.emergency import KillPhase, KillProgress, ResumeRefused
from core.engine import Engine
from core.model import ExchangeOrderStatus, OrderSpec, Side
from core.sim.agents import TAKER_USER_ID, MarketAgents
from core.sim.exchange import SimExchange
from core.sim.faults import FaultPlan
from core.sim.runner import build_exchange
from core.sim.server import SimServer
from core.sim.types import SimOrderRequest
from core.trading_state import TradingState
from core.venue import CreateOrderOutcome
from tests.integration.engine_harness import PROOF_RISK, UNTHROTTLED_RATE_PER_S, endpoints_of
from tests.reliability.invariants import (
    JournalView,
    VenueFill,
    VenueOrder,
    WorkingAtVenue,
    check_fills_once,
    check_ledger,
    check_limits_held,
    check_one_order_per_intent,
    check_orders_known_both_ways,
    ledger_from_fills,
    read_journal,
)

log = logging.getLogger(__name__)

# The one-shot faults an episode can inject (names as in the sim's FaultPlan syntax).
FAULT_KINDS: tuple[str, ...] = (
    "ws_drop",
    "ws_close_1001",
    "seq_skip",
    "silence",
    "malformed",
    "rest_429",
    "rest_500",
    "rest_delay",
    "lose_order_response",
    "late_order",  # the next order POST reaches the sim after the client's deadline
    "trickle",  # the next REST answer comes one byte at a time (the total deadline cuts it)
    # Issue 9 §2: the kill switch under faults (episodes of their own, see ``_episode``).
    "kill_in_rest_storm",  # REST answers 500 and 429 in bursts while the kill sweeps
    "kill_journal_failing",  # every journal write fails (a full disk) while the kill sweeps
    "kill_late_order",  # the kill is pressed while an order POST is held at the sim
    "kill_trickle",  # the kill's REST answers trickle one byte at a time
)
KILL = "kill"
KILL_FAULTS: tuple[str, ...] = (
    "kill_in_rest_storm",
    "kill_journal_failing",
    "kill_late_order",
    "kill_trickle",
)
REST_STORM_BURST = 6  # failed REST answers of each kind in a storm
KILL_TRICKLES = 2  # trickled REST answers during a kill

INVARIANTS: tuple[str, ...] = (
    "book equals the sim's after resync",
    "sim orders known to the engine and back",
    "no intent produced two orders",
    "every sim fill journaled exactly once",
    "positions and balances equal the sim's",
    "kill: none sent, none open past the bound",
    "kill done: zero open at the sim",
    "limits held counting working orders",
)
(
    BOOK_EQUAL,
    ORDERS_KNOWN,
    ONE_ORDER_PER_INTENT,
    FILLS_ONCE,
    POSITIONS,
    KILL_FLAT,
    KILL_DONE_FLAT,
    LIMITS_HELD,
) = INVARIANTS

_OPEN = (
    ExchangeOrderStatus.PENDING,
    ExchangeOrderStatus.OPEN,
    ExchangeOrderStatus.QUEUED,
    ExchangeOrderStatus.CANCEL_QUEUED,
)


@dataclass(frozen=True)
class SoakConfig:
    """How long, how hard, and with which seed."""

    seed: int = 7
    episodes: int = 16  # at least one of each fault kind, plus kills (see ``schedule``)
    kills: int = 1  # plain presses; the four kill_* episodes press it too
    real_minutes: float | None = None  # the long run: episodes until this much real time
    products: tuple[str, ...] = ("BTC-USD", "ETH-USD")
    strategy_product: str = "BTC-USD"
    # Tighter than the demo's default (5 bps) so the quotes trade often in a short run.
    half_spread_bps: Decimal = Decimal("1.5")
    requote_s: float = 0.5
    rate: float = 150.0  # level2 updates per simulated second (the market agents' rate)
    step_s: float = 0.1  # simulated seconds per tick
    tick_pause_s: float = 0.01  # real seconds yielded to the engine per tick
    trade_s: tuple[float, float] = (1.5, 4.0)  # simulated trading before each fault
    settle_s: float = 4.0  # simulated time the engine copes with the fault before a check
    fault_use_s: float = 15.0  # at most this long (simulated) for a REST fault to be used
    watchdog_s: float = 2.0  # the engine's WebSocket silence timeout (simulated seconds)
    stale_after_s: float = 3.0  # the engine's book staleness / snapshot deadline (simulated)
    silence_s: float = 3.0  # how long a silence fault lasts: past the watchdog
    request_timeout_s: float = 1.5  # the engine's REST read timeout (real seconds)
    request_deadline_s: float = 1.2  # the engine's total deadline per REST call (real s)
    rest_delay_s: float = 2.0  # a slow REST answer: past the timeout
    late_order_s: float = 1.5  # a late order POST lands this long (real s): past the deadline
    trickle_s: float = 0.3  # real seconds between two bytes of a trickled answer
    # Limits tight enough to bind (the soak checks them from the sim's books): open orders,
    # and the strategy product's position, its start plus this many quotes' worth.
    unknown_absent_s: float = 30.0
    max_open_orders: int = 2
    position_headroom_quotes: int = 1
    kill_bound_s: float = 5.0  # real seconds from the kill press to no open order at the sim
    kill_hold_s: float = 1.5  # simulated time HALTED before resuming (nothing may appear)
    recovery_timeout_s: float = 20.0  # real seconds a checkpoint waits for the engine
    background: FaultPlan | None = None  # random faults between checkpoints (long run)

    def schedule(self) -> list[str]:
        """The seeded order of episodes: every fault kind at least once, kills among them."""
        rng = random.Random(f"{self.seed}:schedule")
        faults = self.episodes - self.kills
        kinds = [FAULT_KINDS[i % len(FAULT_KINDS)] for i in range(faults)]
        plan = kinds + [KILL] * self.kills
        rng.shuffle(plan)
        return plan


@dataclass
class InvariantTally:
    checks: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.checks - len(self.failures)


@dataclass
class SoakReport:
    """What happened and what held."""

    seed: int
    episodes: int = 0
    scheduled: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    automatic_halts: int = 0
    resume_refusals: int = 0
    resyncs: int = 0
    reconnects: int = 0
    recoveries: int = 0
    max_recovery_s: float = 0.0
    max_kill_flat_s: float = 0.0
    orders: int = 0
    fills: int = 0
    # Quotes the soak had the market take because none had filled yet (see
    # ``_hit_a_quote_if_none_filled``).
    quotes_hit: int = 0
    journal_fills: int = 0
    unknown_outcomes: int = 0
    # Exchange input refused or unreadable during the run, by source and kind (see
    # Engine.refused_input_counts): market.<kind>, user.<kind>, exchange.<kind>.
    refused_inputs: Counter[str] = field(default_factory=Counter)
    # Orders the gate refused, by reason (the limits binding shows here).
    denials: Counter[str] = field(default_factory=Counter)
    simulated_s: float = 0.0
    real_s: float = 0.0
    invariants: dict[str, InvariantTally] = field(
        default_factory=lambda: {name: InvariantTally() for name in INVARIANTS}
    )

    @property
    def ok(self) -> bool:
        return all(not tally.failures for tally in self.invariants.values())

    def failures(self) -> list[str]:
        return [f"{name}: {text}" for name, t in self.invariants.items() for text in t.failures]

    def table(self) -> str:
        lines = [
            f"soak seed {self.seed}: {self.episodes} episodes, {self.simulated_s:.0f} s "
            f"simulated in {self.real_s:.1f} s real",
            "",
            f"{'fault injected':<32}{'count':>8}",
        ]
        kinds = sorted((set(self.injected) | set(self.scheduled)) - {KILL})
        lines += [f"  {kind:<30}{self.injected.get(kind, 0):>8}" for kind in kinds]
        lines += [
            "",
            f"{'figure':<32}{'value':>8}",
            f"  {'kill presses':<30}{self.kills:>8}",
            f"  {'automatic halts':<30}{self.automatic_halts:>8}",
            f"  {'resume refused (retried)':<30}{self.resume_refusals:>8}",
            f"  {'book resyncs':<30}{self.resyncs:>8}",
            f"  {'reconnects':<30}{self.reconnects:>8}",
            f"  {'recoveries':<30}{self.recoveries:>8}",
            f"  {'max checkpoint wait (real s)':<30}{self.max_recovery_s:>8.2f}",
            f"  {'max kill to flat (real s)':<30}{self.max_kill_flat_s:>8.2f}",
            f"  {'orders at the sim':<30}{self.orders:>8}",
            f"  {'fills at the sim':<30}{self.fills:>8}",
            f"  {'journaled fills':<30}{self.journal_fills:>8}",
            f"  {'quotes hit (none had filled)':<30}{self.quotes_hit:>8}",
            f"  {'unknown outcomes met':<30}{self.unknown_outcomes:>8}",
            "",
            f"{'input refused (source.kind)':<32}{'count':>8}",
        ]
        refused = sorted(self.refused_inputs.items())
        lines += [f"  {kind:<30}{count:>8}" for kind, count in refused] or ["  (none)"]
        lines += ["", f"{'orders refused by the gate':<32}{'count':>8}"]
        denied = sorted(self.denials.items())
        lines += [f"  {reason:<30}{count:>8}" for reason, count in denied] or ["  (none)"]
        lines += [
            "",
            f"{'invariant':<48}{'checks':>8}{'passed':>8}  result",
        ]
        for name, tally in self.invariants.items():
            verdict = "PASS" if not tally.failures and tally.checks else "FAIL"
            lines.append(f"  {name:<46}{tally.checks:>8}{tally.passed:>8}  {verdict}")
        for failure in self.failures()[:20]:
            lines.append(f"  ! {failure}")
        return "\n".join(lines)


def soak_settings(
    config: SoakConfig, data_dir: Path, risk: dict[str, Any] | None = None
) -> Settings:
    """An engine tuned for the soak: fast reconnects, short timeouts, the market maker on."""
    overrides: dict[str, Any] = {
        # A book waiting for a lost snapshot is resubscribed after this long (simulated s).
        "market": {"products": list(config.products), "stale_after_s": config.stale_after_s},
        "risk": {
            **PROOF_RISK,
            "max_open_orders": config.max_open_orders,
            # An order of unknown outcome is proven absent after this long (simulated): still
            # past a late POST's landing (``late_order_s`` real is well under it), shorter
            # than the default 60 s so a checkpoint does not wait a minute for a 500.
            "unknown_order_absent_s": config.unknown_absent_s,
            **(risk or {}),
        },
        "storage": {"data_dir": str(data_dir)},
        "exchange": {
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.2,
            "request_timeout_s": config.request_timeout_s,
            "request_deadline_s": config.request_deadline_s,
            "connect_timeout_s": 1.0,
            "ws_silence_timeout_s": config.watchdog_s,
        },
        "strategy": {
            "name": "market_maker",
            "product_id": config.strategy_product,
            "market_maker": {
                "half_spread_bps": str(config.half_spread_bps),
                "requote_s": config.requote_s,
            },
        },
    }
    settings = load_settings(None, overrides=overrides, environ={"HOME": "/nonexistent-home"})
    # The sim does not throttle: lift the client's pacing, as the engine proofs do.
    exchange = settings.exchange.model_copy(
        update={"private_rate_per_s": UNTHROTTLED_RATE_PER_S, "public_rate_per_s": 5000.0}
    )
    return settings.model_copy(update={"exchange": exchange})


class Soak:
    """One soak run (``await Soak(config, data_dir).run()``)."""

    def __init__(self, config: SoakConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.clock = ManualClock()
        self.exchange: SimExchange = build_exchange(config.seed, self.clock)
        self.agents = MarketAgents(self.exchange, seed=config.seed, rate=config.rate)
        self.agents.bootstrap(history_minutes=30)
        # No agents handed to the server: this runner steps them, so the market moves only
        # when the simulated clock does, never twice for one clock move.
        self.server = SimServer(
            self.exchange,
            None,
            clock=self.clock,
            seed=config.seed,
            heartbeat_interval_s=0.1,
            subscribe_timeout_s=2.0,
        )
        self.report = SoakReport(seed=config.seed)
        # What the demo account starts with, read from the sim (the journal's fills must
        # explain every change from here).
        self._start_balances: dict[str, Decimal] = {}
        self.journal_file = data_dir / "journal-demo.sqlite3"
        self.engine: Engine | None = None
        self._rng = random.Random(f"{config.seed}:moments")
        self._user = ""
        self._filled = False  # whether our user has had a fill at the sim (see _hit_a_quote...)
        self._halted_since: float | None = None  # set while trading is not ACTIVE
        self._halt_seen_at = 0.0  # real time the automatic halt was noticed
        self._sent_while_halted: list[str] = []  # client order ids (see _spy_on_sends)
        self._settings: Settings | None = None
        self._kills_checked: set[int] = set()  # kill tasks whose DONE was checked
        self._lowest_buy_price: Decimal | None = None  # of the buys sent so far

    # ------------------------------------------------------------------ the run

    async def run(self) -> SoakReport:
        started = time.perf_counter()
        endpoints = await self.server.start()
        self._user = endpoints.user_id
        self._start_balances = self._sim_totals()
        settings = soak_settings(
            self.config, self.data_dir, {"max_position_notional": self._position_limit()}
        )
        self._settings = settings
        engine = Engine(
            settings,
            endpoints_of(endpoints),
            clock=self.clock,
            mode="demo",
            journal_file=self.journal_file,
        )
        self.engine = engine
        # The exchange-data registry is process-wide: count only what this run refused.
        refused_before = Counter(engine.refused_input_counts())
        self._spy_on_sends(engine)
        task = asyncio.create_task(engine.run(), name="soak-engine")
        try:
            await self._wait(
                lambda: engine.started.is_set() and self._healthy(), "start-up", moving=True
            )
            await self._episodes(started)
            await self._checkpoint("final")
        finally:
            await engine.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
            await self.server.stop()
            self._figures()
            refused = Counter(engine.refused_input_counts())
            refused.subtract(refused_before)
            self.report.refused_inputs = +refused  # keeps the positive counts only
            self.report.real_s = time.perf_counter() - started
        return self.report

    async def _episodes(self, started: float) -> None:
        config = self.config
        plan = config.schedule()
        deadline = None if config.real_minutes is None else started + config.real_minutes * 60
        index = 0
        while True:
            if deadline is None:
                if index >= len(plan):
                    return
                kind = plan[index]
            else:
                if time.perf_counter() >= deadline:
                    return
                kind = plan[index % len(plan)]
            index += 1
            self.report.episodes += 1
            self.report.scheduled[kind] += 1
            await self._episode(kind)

    async def _episode(self, kind: str) -> None:
        config = self.config
        self._background(on=True)
        self._strategy(on=True)
        await self._trade(self._rng.uniform(*config.trade_s))
        if kind == KILL:
            await self._kill_episode()
        elif kind in KILL_FAULTS:
            await self._kill_under_fault(kind)
        else:
            injected = sum(self.server.faults.injected.values())
            self._inject(kind)
            # A REST fault waits for the next request (a lost response for the next order):
            # trade on until it has been used, then give the engine time to cope.
            for _ in range(round(config.fault_use_s / config.step_s)):
                if sum(self.server.faults.injected.values()) > injected:
                    break
                await self._tick()
            await self._trade(config.settle_s)
        self._background(on=False)
        await self._checkpoint(kind)

    def _hit_a_quote_if_none_filled(self) -> bool:
        """Until the strategy has a fill, the market takes one of its quotes once in each
        trading stretch: a taker IOC at the quote's price, sized to clear the book down to it
        (whether it did).

        The agents hit the tight quotes on their own most runs, but on a loaded machine the
        engine re-quotes late and a short run could end with no fill at all, leaving the
        fills-once and ledger invariants checked against nothing."""
        if self._filled or self.exchange.list_fills(self._user):
            self._filled = True  # fills are never taken back: no need to list them again
            return True
        product = self.config.strategy_product
        quotes = self.exchange.list_orders(self._user, product_ids=[product], statuses=_OPEN)
        quote = next((o for o in quotes if o.limit_price is not None and o.base_size), None)
        if quote is None or quote.limit_price is None:
            return False
        bids, asks = self.exchange.book_levels(product)
        buying = quote.side is Side.BUY
        limit = quote.limit_price
        levels = bids if buying else asks
        ahead = sum(
            (size for price, size in levels if (price >= limit if buying else price <= limit)),
            Decimal(0),
        )
        self.exchange.create_order(
            TAKER_USER_ID,
            SimOrderRequest(
                client_order_id=f"soak-hit-{uuid.uuid4()}",
                product_id=product,
                side=Side.SELL if buying else Side.BUY,
                config_kind="sor_limit_ioc",
                base_size=ahead,
                limit_price=limit,
            ),
        )
        self.report.quotes_hit += 1
        self.server.flush()
        return True

    # ------------------------------------------------------------------ market and time

    async def _tick(self, step_s: float | None = None) -> None:
        step = self.config.step_s if step_s is None else step_s
        if step > 0:
            self.clock.advance(step)
            self.agents.step(step)
            self.report.simulated_s += step
        self.server.flush()
        await asyncio.sleep(self.config.tick_pause_s)
        self._watch_halts()
        self._check_limits()

    async def _trade(self, simulated_s: float) -> None:
        ticks = max(1, round(simulated_s / self.config.step_s))
        hit = False
        for tick in range(ticks):
            await self._tick()
            # The second half of a stretch: the agents had their chance to fill a quote.
            if not hit and tick >= ticks // 2:
                hit = self._hit_a_quote_if_none_filled()

    async def _wait(self, condition: Callable[[], bool], what: str, *, moving: bool) -> float:
        """Real seconds until ``condition()`` holds. ``moving``: the market and the clock go
        on meanwhile (recovery happens in a live market, and the engine's watchdogs run on
        the clock); else both are frozen, so the sim's state stands still to compare with."""
        begun = time.perf_counter()
        deadline = begun + self.config.recovery_timeout_s
        while not condition():
            if time.perf_counter() > deadline:
                raise SoakStuck(f"{what}: not reached in {self.config.recovery_timeout_s:.0f} s")
            if moving:
                await self._tick()
            else:
                self.server.flush()
                await asyncio.sleep(0.02)
                self._watch_halts()
        return time.perf_counter() - begun

    # ------------------------------------------------------------------ faults

    def _inject(self, kind: str) -> None:
        faults = self.server.faults
        config = self.config
        if kind == "ws_drop":
            faults.drop_websockets()
        elif kind == "ws_close_1001":
            faults.close_websockets(1001)
        elif kind == "seq_skip":
            faults.skip_sequence(self._rng.randint(1, 3))
        elif kind == "silence":
            faults.silence(config.silence_s)
        elif kind == "malformed":
            faults.send_malformed()
        elif kind == "rest_429":
            faults.next_rest(429)
        elif kind == "rest_500":
            faults.next_rest(500)
        elif kind == "rest_delay":
            faults.next_rest("delay", delay_s=config.rest_delay_s)
        elif kind == "lose_order_response":
            faults.next_rest("lose_order_response")
        elif kind == "late_order":
            faults.next_rest("late_order", delay_s=config.late_order_s)
        elif kind == "trickle":
            faults.next_rest("trickle", delay_s=config.trickle_s)
        else:  # pragma: no cover - the schedule only holds known kinds
            raise ValueError(kind)

    def _background(self, *, on: bool) -> None:
        plan = self.config.background
        if plan is not None:
            self.server.faults.plan = plan if on else FaultPlan()

    def _strategy(self, *, on: bool) -> None:
        engine = self._engine
        if engine.strategy is None:
            return
        if on and engine.strategy.paused and engine.trading_state.state is TradingState.ACTIVE:
            engine.resume_strategy()
        elif not on and not engine.strategy.paused:
            engine.pause_strategy()

    # ------------------------------------------------------------------ the kill switch

    async def _kill_episode(self) -> None:
        engine = self._engine
        self.report.kills += 1
        pressed = time.perf_counter()
        engine.kill("soak: kill switch pressed", "user")
        self._halted_since = self.clock.time()
        await self._hold_halted(pressed, "kill")

    async def _kill_under_fault(self, kind: str) -> None:
        """Press the kill switch while REST fails in bursts, or while no journal write can
        succeed: the sweep must still leave the sim with no open order within the bound."""
        engine = self._engine
        faults = self.server.faults
        config = self.config
        self.report.injected[kind] += 1
        restore: list[tuple[object, str, object]] = []
        if kind == "kill_in_rest_storm":
            faults.next_rest(500, REST_STORM_BURST)
            faults.next_rest(429, REST_STORM_BURST)
        elif kind == "kill_late_order":
            # Trade until the strategy's next order POST is held at the sim, then press: the
            # sweep must wait for it to land and cancel it.
            late = faults.injected["rest_late_order"]
            faults.next_rest("late_order", delay_s=config.late_order_s)
            for _ in range(round(config.fault_use_s / config.step_s)):
                if faults.injected["rest_late_order"] > late:
                    break
                await self._tick()
        elif kind == "kill_trickle":
            faults.next_rest("trickle", KILL_TRICKLES, delay_s=config.trickle_s)
        else:
            journal = engine.journal

            def disk_full(*args: object, **kwargs: object) -> None:
                raise OSError(28, "No space left on device")

            for name in ("record_order_state", "save_trading_state", "record_risk_event"):
                restore.append((journal, name, getattr(journal, name)))
                setattr(journal, name, disk_full)
        pressed = time.perf_counter()
        try:
            engine.kill(f"soak: kill switch pressed ({kind})", "user")
            self._halted_since = self.clock.time()
            await self._hold_halted(pressed, kind, resume=False)
        finally:
            for owner, name, original in restore:
                setattr(owner, name, original)
        if kind == "kill_journal_failing":  # the latch is journaled once the disk is back
            engine.trading_state.persist()
        await self._resume()

    async def _hold_halted(self, pressed: float, what: str, *, resume: bool = True) -> None:
        """Trade on while HALTED: the sim must list no open order of ours within the bound
        (an order already on its way when the switch was pressed may still show up, and
        must be cancelled), no order may be sent, and none may be open at the resume."""
        tally = self.report.invariants[KILL_FLAT]
        tally.checks += 1
        failures = len(tally.failures)
        bound = self.config.kill_bound_s
        if what in ("kill_trickle", "kill_late_order"):
            # A trickled call holds the sweep until its deadline; a late POST lands late.
            bound += self.config.request_deadline_s * KILL_TRICKLES + self.config.late_order_s
        while self._sim_open_orders():
            if time.perf_counter() - pressed > bound:
                open_ids = [o.client_order_id for o in self._sim_open_orders()]
                tally.failures.append(f"{what}: {len(open_ids)} open after {bound} s: {open_ids}")
                break
            await self._tick()
        else:
            flat_s = time.perf_counter() - pressed
            self.report.max_kill_flat_s = max(self.report.max_kill_flat_s, flat_s)
        for _ in range(max(1, round(self.config.kill_hold_s / self.config.step_s))):
            await self._tick()
        if self._sim_open_orders() and len(tally.failures) == failures:
            open_ids = [o.client_order_id for o in self._sim_open_orders()]
            tally.failures.append(f"{what}: {open_ids} open at the sim when resuming")
        if resume:
            await self._resume()
        if self._sent_while_halted:
            tally.failures.append(f"{what}: sent while HALTED: {self._sent_while_halted}")
            self._sent_while_halted = []

    def _check_kill_done(self, task: asyncio.Task[KillProgress]) -> None:
        """A kill that says DONE leaves zero open orders of ours at the sim, now (HALTED
        pauses the strategy, so nothing new can appear; a late POST must have been waited
        for)."""
        if task.cancelled() or task.exception() is not None:
            return
        if id(task) in self._kills_checked:
            return
        self._kills_checked.add(id(task))
        tally = self.report.invariants[KILL_DONE_FLAT]
        tally.checks += 1
        progress = task.result()
        open_now = self._sim_open_orders()
        if progress.phase is not KillPhase.DONE:
            tally.failures.append(f"kill ended {progress.phase}: {progress.waiting}")
        elif open_now:
            ids = [o.client_order_id for o in open_now]
            tally.failures.append(f"kill said DONE with {len(ids)} open at the sim: {ids}")

    def _spy_on_sends(self, engine: Engine) -> None:
        """Note every order request that leaves while trading is HALTED (the kill switch
        promises there is none). The real ``place`` is still what runs."""
        venue = engine.venue
        place = venue.place

        async def noted_place(spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
            if engine.trading_state.state is TradingState.HALTED:
                self._sent_while_halted.append(client_order_id)
            if spec.side is Side.BUY and spec.product_id == self.config.strategy_product:
                # The lowest price any buy was sent at (the limits check values at it).
                price = spec.limit_price
                low = self._lowest_buy_price
                if price is not None and (low is None or price < low):
                    self._lowest_buy_price = price
            return await place(spec, client_order_id)

        venue.place = noted_place  # type: ignore[method-assign]

    async def _resume(self) -> None:
        engine = self._engine
        task = engine.emergency._kill_task
        if task is not None:
            # The sweep may wait for an order of unknown outcome to be found or proven
            # absent (simulated time): the market and the clock move on meanwhile.
            await self._wait(task.done, "the kill sweep done", moving=True)
            self._check_kill_done(task)
        deadline = time.perf_counter() + self.config.recovery_timeout_s
        while True:
            try:
                await engine.resume("RESUME")
                break
            except ResumeRefused as refused:
                self.report.resume_refusals += 1
                if time.perf_counter() > deadline:
                    # Stuck HALTED is a failure of the kill switch's contract (a clean
                    # reconciliation must be reachable), not a reason to stop the soak.
                    self.report.invariants[KILL_FLAT].failures.append(f"resume refused: {refused}")
                    return
                # Time moves: an order left UNKNOWN by the faults settles with its age.
                await self._tick()
        self._halted_since = None

    def _watch_halts(self) -> None:
        """An automatic trigger may halt (or reduce) trading too: count it; the checkpoint
        checks the kill switch's promise from this moment and resumes."""
        engine = self.engine
        if engine is None or self._halted_since is not None:
            return
        if engine.trading_state.state is not TradingState.ACTIVE:
            self.report.automatic_halts += 1
            self._halted_since = self.clock.time()
            self._halt_seen_at = time.perf_counter()
            log.warning("soak: automatic halt: %s", engine.trading_state.last_change.cause)

    # ------------------------------------------------------------------ limits

    def _position_limit(self) -> Decimal:
        """The strategy product's position limit: what the account holds at the start plus
        ``position_headroom_quotes`` quotes, valued at the start's best ask (binds soon)."""
        config = self.config
        product_id = config.strategy_product
        base = product_id.split("-")[0]
        held = self._sim_totals().get(base, Decimal(0))
        _bids, asks = self.exchange.book_levels(product_id, 1)
        quote = MarketMakerSettings().order_size
        return ((held + quote * config.position_headroom_quotes) * asks[0][0]).quantize(Decimal(1))

    def _check_limits(self) -> None:
        if self._settings is None or not self._user:
            return
        tally = self.report.invariants[LIMITS_HELD]
        tally.checks += 1
        problems = self._limit_problems()
        if problems and len(tally.failures) < 20:
            tally.failures.append("; ".join(problems))

    def _limit_problems(self) -> list[str]:
        """The limits, judged from the sim's books (not the gate's own arithmetic; see
        ``check_limits_held``): our orders open at the sim, the sim's balance, and the lowest
        price any buy was sent at (noted as it left, see ``_spy_on_sends``)."""
        assert self._settings is not None
        risk = self._settings.risk
        product_id = self.config.strategy_product
        working = [
            WorkingAtVenue(o.product_id, o.side.value, (o.base_size or Decimal(0)) - o.filled_size)
            for o in self._sim_open_orders()
        ]
        return check_limits_held(
            working,
            product_id=product_id,
            held=self._sim_totals().get(product_id.split("-")[0], Decimal(0)),
            lowest_buy_price=self._lowest_buy_price,
            max_open_orders=risk.max_open_orders,
            max_position=risk.max_position_notional,
        )

    # ------------------------------------------------------------------ checkpoints

    async def _checkpoint(self, after: str) -> None:
        """Faults off, strategy paused, market frozen: wait for the engine to recover on its
        own, then check every invariant against the sim."""
        self.server.faults.clear()
        self._background(on=False)
        self._strategy(on=False)
        engine = self._engine
        try:
            took = await self._wait(self._healthy, f"recovery after {after}", moving=True)
            if self._halted_since is not None:  # an automatic halt: flat, then resume
                if self._engine.trading_state.state is TradingState.HALTED:
                    await self._hold_halted(self._halt_seen_at, f"automatic halt ({after})")
                else:
                    await self._resume()
                took += await self._wait(
                    self._healthy, f"recovery after resume ({after})", moving=True
                )
            # Moving: a cancel refused by a fault is retried by the strategy on its clock.
            took += await self._wait(
                self._orders_settled, f"orders settled after {after}", moving=True
            )
        except SoakStuck as stuck:
            self.report.invariants[ORDERS_KNOWN].failures.append(f"{stuck}; {self._describe()}")
            self.report.invariants[ORDERS_KNOWN].checks += 1
            return
        if after != "final":
            self.report.recoveries += 1
            self.report.max_recovery_s = max(self.report.max_recovery_s, took)
        await self._check_books(after)
        await self._check_positions(after)
        self._check_orders_and_fills(after)
        log.info("soak checkpoint after %s: %s", after, engine.trading_state.state)

    def _describe(self) -> str:
        """The engine's open orders and the sim's, for a failure message."""
        engine = self._engine
        ours = [
            f"{o.client_order_id[:8]}/{o.order_id}/{o.state}" for o in engine.orders.open_orders()
        ]
        theirs = [
            f"{o.client_order_id[:8]}/{o.order_id}/{o.status}" for o in self._sim_open_orders()
        ]
        return (
            f"engine open {ours}, sim open {theirs}, reconciling {engine.orders.reconciling}, "
            f"user stream {engine.venue.stream_connected}, trading {engine.trading_state.state}"
        )

    def _healthy(self) -> bool:
        engine = self._engine
        if not engine.venue.stream_connected or engine.orders.reconciling:
            return False
        return all(engine.prices.mid(p) is not None for p in engine.products)

    def _orders_settled(self) -> bool:
        """Our open orders agree with the sim's and nothing is in flight (strategy paused)."""
        engine = self._engine
        ours = engine.orders.open_orders()
        if any(o.order_id is None for o in ours):
            return False
        sim_open = {o.order_id for o in self._sim_open_orders()}
        return {o.order_id for o in ours} == sim_open and not sim_open

    async def _check_books(self, after: str) -> None:
        tally = self.report.invariants[BOOK_EQUAL]
        engine = self._engine
        for product_id in engine.products:
            tally.checks += 1
            try:
                await self._wait(partial(self._book_equal, product_id), "book", moving=False)
            except SoakStuck:
                tally.failures.append(f"after {after}: {self._book_difference(product_id)}")

    def _book_equal(self, product_id: str) -> bool:
        return self._book_difference(product_id) is None

    def _book_difference(self, product_id: str) -> str | None:
        book = self._engine.market.book(product_id)
        bids, asks = book.top(1_000_000)
        sim_bids, sim_asks = self.exchange.book_levels(product_id)
        for side, ours, theirs in (("bids", bids, sim_bids), ("asks", asks, sim_asks)):
            expected = [(float(p), float(s)) for p, s in theirs]
            if ours != expected:
                first = next(
                    (
                        i
                        for i, pair in enumerate(zip(ours, expected, strict=False))
                        if pair[0] != pair[1]
                    ),
                    min(len(ours), len(expected)),
                )
                return (
                    f"{product_id} {side}: {len(ours)} levels vs the sim's {len(expected)}; "
                    f"first difference at level {first}"
                )
        return None

    async def _check_positions(self, after: str) -> None:
        tally = self.report.invariants[POSITIONS]
        tally.checks += 1
        # Balances are refreshed on fills and every few simulated seconds: move time on (the
        # market stays frozen) until the engine's view is the sim's.
        problems: list[str] = []

        def agrees() -> bool:
            problems[:] = self._position_problems()
            return not problems

        deadline = time.perf_counter() + self.config.recovery_timeout_s
        while not agrees() and time.perf_counter() < deadline:
            self.clock.advance(0.5)
            self.server.flush()
            await asyncio.sleep(0.05)
        totals = self._sim_totals()
        journal_problems = check_ledger(
            ledger_from_fills(self._start_balances, read_journal(self.journal_file).fills),
            totals,
        )
        problems += [f"journal fills: {p}" for p in journal_problems]
        if problems:
            tally.failures.append(f"after {after}: {'; '.join(problems[:4])}")

    def _position_problems(self) -> list[str]:
        engine = self._engine
        totals = self._sim_totals()
        problems: list[str] = []
        accounts = {a.currency: (a.available, a.hold) for a in self.exchange.accounts(self._user)}
        views = engine.snapshot().balances or ()
        seen = {v.currency: (v.available, v.hold) for v in views}
        if seen != accounts:
            problems.append(f"balances {seen} != sim {accounts}")
        for product_id in engine.products:
            base = product_id.split("-")[0]
            size = engine.portfolio.size(product_id)
            if size != totals.get(base, Decimal(0)):
                problems.append(f"{product_id} position {size} != sim {totals.get(base)}")
        cash = engine.portfolio.cash
        if cash != totals.get("USD"):
            problems.append(f"cash {cash} != sim {totals.get('USD')}")
        return problems

    def _check_orders_and_fills(self, after: str) -> None:
        journal = read_journal(self.journal_file)
        orders = self._venue_orders()
        fills = self._venue_fills()
        for name, problems in (
            (ORDERS_KNOWN, check_orders_known_both_ways(journal, orders)),
            (ONE_ORDER_PER_INTENT, check_one_order_per_intent(journal, orders)),
            (FILLS_ONCE, check_fills_once(journal, orders, fills)),
        ):
            tally = self.report.invariants[name]
            tally.checks += 1
            if problems:
                tally.failures.append(f"after {after}: {'; '.join(problems[:4])}")
        self._count(journal, orders, fills)

    # ------------------------------------------------------------------ the sim's truth

    def _sim_open_orders(self) -> list[Any]:
        return self.exchange.list_orders(self._user, statuses=_OPEN)

    def _sim_totals(self) -> dict[str, Decimal]:
        return {a.currency: a.available + a.hold for a in self.exchange.accounts(self._user)}

    def _venue_orders(self) -> list[VenueOrder]:
        return [
            VenueOrder(
                o.order_id,
                o.client_order_id,
                o.product_id,
                o.status,
                o.filled_size,
                o.filled_value,
                o.total_fees,
            )
            for o in self.exchange.list_orders(self._user)
        ]

    def _venue_fills(self) -> list[VenueFill]:
        return [
            VenueFill(f.order_id, f.size, f.price * f.size, f.commission)
            for f in self.exchange.list_fills(self._user)
        ]

    # ------------------------------------------------------------------ figures

    def _count(
        self, journal: JournalView, orders: list[VenueOrder], fills: list[VenueFill]
    ) -> None:
        self.report.orders = len(orders)
        self.report.fills = len(fills)
        self.report.journal_fills = len(journal.fills)

    def _figures(self) -> None:
        engine = self.engine
        report = self.report
        own = {kind: report.injected[kind] for kind in KILL_FAULTS if report.injected[kind]}
        report.injected = Counter(
            {_fault_name(k): v for k, v in self.server.faults.injected.items() if v}
        )
        report.injected.update(own)  # the kill-under-fault episodes, counted by the soak
        if engine is None:
            return
        report.resyncs = engine.market.stats.resyncs
        statuses = engine._socket_statuses()
        report.reconnects = sum(s.reconnects for s in statuses)
        with contextlib.suppress(Exception):
            db = read_journal(self.journal_file)
            report.unknown_outcomes = _count_unknown(self.journal_file)
            report.denials = _count_denials(self.journal_file)
            report.journal_fills = len(db.fills)

    @property
    def _engine(self) -> Engine:
        assert self.engine is not None
        return self.engine


class SoakStuck(AssertionError):
    """The engine did not get back to health (or agreement) within the recovery timeout."""


def _fault_name(key: str) -> str:
    """The injector's counter keys, in the FaultPlan's words."""
    return {
        "close_1001": "ws_close_1001",
        "rest_429": "rest_429",
        "rest_500": "rest_500",
        "rest_delay": "rest_delay",
        "rest_lose_order_response": "lose_order_response",
        "rest_late_order": "late_order",
        "rest_trickle": "trickle",
    }.get(key, key)


def _count_unknown(journal_file: Path) -> int:
    """Orders whose send outcome was unknown at some point (a lost answer, a timeout)."""
    db = sqlite3.connect(f"file:{journal_file}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT COUNT(DISTINCT client_order_id) FROM order_states WHERE state = 'UNKNOWN'"
        ).fetchone()
        return int(row[0])
    finally:
        db.close()


def _count_denials(journal_file: Path) -> Counter[str]:
    """Orders the gate refused, by reason."""
    db = sqlite3.connect(f"file:{journal_file}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT reason, COUNT(*) FROM denials GROUP BY reason").fetchall()
        return Counter({str(reason): int(count) for reason, count in rows})
    finally:
        db.close()


async def run_soak(config: SoakConfig, data_dir: Path) -> SoakReport:
    """Run one soak with its journal in ``data_dir`` (created if needed)."""
    return await Soak(config, data_dir).run()
