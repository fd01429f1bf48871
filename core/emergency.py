"""The kill switch, flatten, resume, and the automatic triggers that pull the switch.

Kill (one key, no confirmation): latch HALTED at once (in memory first, so the gate refuses
the very next order; journaled once the cancels have left), then, in the background, cancel
every order we hold open (batches of at most 100, sent at once by the order manager) and
confirm the venue flat: from the user stream when it is up and in sync (every cancelled
order reported finished, no update missed; one listing then audits it), otherwise from a
listing that shows no open order (PENDING and QUEUED included). Until then it sweeps again,
cancelling what the venue lists, with growing pauses; each round is visible in
``KillProgress``. The state stays HALTED.

Flatten (a second, confirmed action): reduce-only, price-protected IOC orders sized from
FRESH balances (fetched now, after the cancels released the holds), one per product held.
A flatten is marked started in the journal before the first order and finished after the
last; one started and never finished (the process died) is reported at start-up and never
re-sent.

Resume (a typed confirmation in the UI): only after a reconciliation that resolved every
order; then ACTIVE.

Automatic triggers (daily loss, drawdown, stale market data, user stream down, reject storm)
are evaluated by ``core.risk.AutomaticTriggers``; this module acts on them: HALTED means the
kill sequence, REDUCING means only orders that shrink a position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Protocol

from core.clock import Clock
from core.config import RiskSettings
from core.denials import DenialReason
from core.model import (
    Balance,
    ExchangeOrder,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Product,
    Side,
    TimeInForce,
)
from core.order_state import ManagedOrder, OrderState
from core.orders import FillEvent, OrderEvent, OrderManager, ReconcileReport
from core.risk import TradingStateMachine, TrippedTrigger
from core.trading_state import KillPhase, TradingState
from core.venue import Venue

log = logging.getLogger(__name__)

RESUME_CONFIRMATION = "RESUME"
# A flatten of one product sends at most this many orders (each under the notional limit).
MAX_FLATTEN_ORDERS_PER_PRODUCT = 50
# While waiting for the user stream to confirm the cancels, look at the stream's state at
# least this often (a reset changes no order, so nothing else would wake the wait).
STREAM_SYNC_CHECK_S = 0.02
FLATTEN_RATE_RETRIES = 20
FLATTEN_SETTLE_POLL_S = 0.05
FLATTEN_SETTLE_STEPS = 100  # 5 s for IOC orders to report how much they sold


def _unsold(orders: Sequence[ManagedOrder]) -> list[str]:
    """One line per flatten order that did not sell everything it was sent for, with why."""
    lines: list[str] = []
    for order in orders:
        size = order.intent.spec.base_size or Decimal(0)
        left = size - order.filled_size
        if left <= 0:
            continue
        if order.denial is not None:
            why = f"denied: {order.denial}"
        elif order.state is OrderState.REJECTED:
            why = f"rejected: {order.reject_code} {order.reject_message or ''}".rstrip()
        elif order.state.is_terminal:
            why = f"{order.state.value}: no buyer at or above {order.intent.spec.limit_price}"
        else:
            why = f"still {order.state.value} at the venue"
        lines.append(f"{order.product_id}: {left} not sold ({why})")
    return lines


def _brief(exc: BaseException) -> str:
    return repr(exc) if str(exc) else type(exc).__name__


class EmergencyJournal(Protocol):
    """What the emergency manager writes (implemented by ``core.journal.Journal``)."""

    def record_risk_event(self, kind: str, detail: str) -> None: ...

    def record_flatten_started(self, flatten_id: str, detail: str) -> None: ...

    def record_flatten_finished(self, flatten_id: str, detail: str) -> None: ...

    def unfinished_flatten(self) -> str | None:
        """The id of a flatten started and never finished, if any."""
        ...

    def sync(self) -> None:
        """Make every committed write durable."""
        ...


class PriceSource(Protocol):
    def best_bid(self, product_id: str) -> float | None: ...

    def best_ask(self, product_id: str) -> float | None: ...


@dataclass(frozen=True, slots=True)
class KillProgress:
    phase: KillPhase = KillPhase.IDLE
    cause: str = ""
    started_at: float | None = None  # monotonic
    halted_at: float | None = None  # monotonic: when HALTED was latched
    finished_at: float | None = None  # monotonic: when zero open orders was confirmed
    rounds: int = 0
    cancels_sent: int = 0
    still_open: int | None = None  # after the last listing; None before the first
    error: str | None = None
    waiting: str | None = None  # what the sweep is waiting for (errors, open, unknown orders)
    confirmed_by: str | None = None  # what confirmed it DONE: "the user stream" or "a listing"


@dataclass(frozen=True, slots=True)
class FlattenResult:
    orders: tuple[ManagedOrder, ...]
    skipped: tuple[str, ...]  # one line per product not flattened, with why


class _WakeOnOrderChange:
    """An order listener that sets an event on every order change or fill."""

    def __init__(self, changed: asyncio.Event) -> None:
        self._changed = changed

    def on_order_event(self, event: OrderEvent) -> None:
        self._changed.set()

    def on_fill(self, event: FillEvent) -> None:
        self._changed.set()


class ResumeRefused(RuntimeError):
    """Resume was refused; the message says why (shown to the trader as is)."""


class EmergencyManager:
    def __init__(
        self,
        *,
        state: TradingStateMachine,
        orders: OrderManager,
        venue: Venue,
        journal: EmergencyJournal,
        settings: RiskSettings,
        products: Callable[[], Mapping[str, Product]],
        prices: PriceSource,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        breached_limits: Callable[[], Sequence[str]] = tuple,
        product_ids: Sequence[str] | None = None,
        on_halt: Callable[[], None] | None = None,
        on_balances: Callable[[list[Balance]], None] | None = None,
    ) -> None:
        self._breached_limits = breached_limits  # RiskGate.breached_limits: blocks a resume
        self._state = state
        self._orders = orders
        self._venue = venue
        self._journal = journal
        self._settings = settings
        self._products = products
        self._prices = prices
        self._clock = clock
        self._sleep = sleep
        self.progress = KillProgress()
        self._kill_task: asyncio.Task[KillProgress] | None = None
        # The products whose orders the kill cancels (None: every product the venue lists).
        self._product_ids = tuple(product_ids) if product_ids else None
        self._on_halt = on_halt  # pauses the strategies: every HALT, automatic or by key
        self._on_balances = on_balances  # fresh balances for the gate (flatten)
        self._last_waiting: str | None = None
        # When the kill key latched HALTED off the event loop (halt_now), for the kill that
        # follows on the loop: its KillProgress says when trading really stopped.
        self._halted_early_at: float | None = None
        # Every pull of the kill switch (any thread): a resume that saw one during its
        # reconciliation gives up, trading stays HALTED.
        self._kill_pulls = 0
        self.flatten_in_progress = False
        # Set on every order change: wakes the kill's wait for the user stream's confirmations.
        self._order_changes = asyncio.Event()
        orders.add_listener(_WakeOnOrderChange(self._order_changes))

    # ------------------------------------------------------------------ kill

    def kill(self, cause: str, source: str = "user") -> asyncio.Task[KillProgress]:
        """Latch HALTED now and start the sweep. Returns the sweep's task.

        Safe to call again while a sweep runs (the running one is returned); safe to call
        when already HALTED (cancels are swept again: a second press means "make sure").
        Never raises for the journal: the latch is in memory and the cancels leave before
        anything is written to disk (a full disk, a checkpoint waiting on a reader).
        """
        started = self._clock.monotonic()
        self._kill_pulls += 1
        if self._state.state is not TradingState.HALTED:
            self._state.latch(TradingState.HALTED, cause, source)
        halted = self._clock.monotonic()
        halted_early, self._halted_early_at = self._halted_early_at, None
        if halted_early is not None and self._state.state is TradingState.HALTED:
            started = halted = halted_early  # the key latched it before the loop got here
        self._pause_strategies()
        if self._kill_task is not None and not self._kill_task.done():
            return self._kill_task
        self.progress = KillProgress(
            phase=KillPhase.CANCELLING, cause=cause, started_at=started, halted_at=halted
        )
        self._kill_task = asyncio.create_task(self._sweep(cause, source), name="kill-sweep")
        return self._kill_task

    def halt_now(self, cause: str, source: str = "user") -> None:
        """Latch HALTED at once, from any thread; ``kill`` must follow on the event loop.

        The terminal's key reader calls this the moment it reads the kill key, so the gate
        refuses the next order even while the loop is busy (painting a frame, collecting
        garbage); the sweep, the strategies' pause and the journal follow with ``kill``. Only
        the trading state is touched here: it alone is guarded for other threads.
        """
        self._kill_pulls += 1
        if self._state.state is TradingState.HALTED:
            return
        self._state.latch(TradingState.HALTED, cause, source)
        self._halted_early_at = self._clock.monotonic()

    def resume_sweep(self, cause: str) -> asyncio.Task[KillProgress] | None:
        """At start-up in HALTED: sweep again (orders may still be open at the venue)."""
        if self._state.state is not TradingState.HALTED:
            return None
        return self.kill(cause, "startup")

    def _pause_strategies(self) -> None:
        if self._on_halt is None:
            return
        try:
            self._on_halt()
        except Exception:  # pausing a strategy must never stop the kill
            log.exception("pausing the strategies on HALT failed")

    async def _sweep(self, cause: str, source: str) -> KillProgress:
        """Cancel, confirm, repeat with backoff, until the venue is flat for our products and
        no order of unknown outcome is left (a POST that may yet land). Every venue call is
        bounded; errors and timeouts are retried, never the end of the sweep.

        Flat is confirmed (docs/design.md, the kill switch) by the user stream when it is up
        and in sync: every order we hold open, and every one the last listing showed, has
        reported a terminal state, with no update missed meanwhile; then one listing audits
        it. Otherwise, or if the stream does not confirm in time, by a listing that shows
        no open order. The listing stays the authority whenever the stream is down, out of
        sync, contradicted by an audit, or an order's outcome is unknown."""
        settings = self._settings
        pause = settings.kill_first_pause_s
        listed: list[ExchangeOrder] = []  # round 1 cancels what we know, without listing
        listing_fresh = False  # ``listed`` answered after the cancels it could contradict
        trust_stream = True  # until an audit listing contradicts the stream
        durable = False
        round_number = 0
        while True:
            round_number += 1
            problems: list[str] = []
            generation = self._orders.stream_generation
            sent = 0
            try:
                async with asyncio.timeout(settings.kill_call_timeout_s):
                    sent = await self._orders.cancel_all(
                        self._product_ids,
                        list_first=False,
                        listed=listed,
                        resend_acknowledged=not listing_fresh,
                    )
            except Exception as exc:  # a timeout or an error: sweep again
                problems.append(f"cancel requests failed ({_brief(exc)})")
            self.progress = replace(
                self.progress,
                rounds=round_number,
                cancels_sent=self.progress.cancels_sent + sent,
            )
            if not durable:  # after the first cancels left, never before
                durable = self._make_halt_durable(cause, source)
            if trust_stream and await self._stream_confirms_flat(generation, listed):
                self._finish("the user stream")
                contradicted = await self._audit_listing()
                if contradicted is None:
                    return self.progress
                # The venue lists open what the stream reported finished: from now on only a
                # listing ends this sweep; cancel what it shows at once.
                trust_stream = False
                listed, listing_fresh = contradicted, True
                self.progress = replace(
                    self.progress,
                    phase=KillPhase.CANCELLING,
                    finished_at=None,
                    confirmed_by=None,
                    still_open=len(contradicted),
                )
                continue
            fresh: list[ExchangeOrder] | None = None
            try:
                async with asyncio.timeout(settings.kill_call_timeout_s):
                    fresh = await self._venue.list_open_orders(self._product_ids)
            except Exception as exc:
                problems.append(f"listing open orders failed ({_brief(exc)})")
            listing_fresh = fresh is not None
            if fresh is not None:
                listed = self._ours(fresh)
            unresolved = self._orders.unresolved()
            if unresolved:
                self._orders.look_for_unknown()
            if fresh is not None and not listed and not unresolved:
                self._orders.verify_unlisted(fresh)
                self._finish("a listing")
                return self.progress
            if fresh is not None and listed:
                problems.append(f"{len(listed)} order(s) still listed open")
            if unresolved:
                problems.append(
                    f"{len(unresolved)} order(s) of unknown outcome (cancelled once found, "
                    "or closed when proven absent)"
                )
            waiting = "; ".join(problems)
            self.progress = replace(
                self.progress,
                still_open=len(listed) if fresh is not None else self.progress.still_open,
                waiting=waiting,
            )
            if waiting != self._last_waiting:
                self._last_waiting = waiting
                self._record("kill_switch_waiting", f"round {round_number}: {waiting}")
            if round_number == settings.kill_max_verify_rounds:
                self._record(
                    "kill_switch_slow",
                    f"not flat after {round_number} rounds ({waiting}); still sweeping",
                )
            # Cancels are asynchronous at the exchange (CANCEL_QUEUED) and errors may be a
            # passing storm: a moment, longer each round, then sweep again.
            await self._sleep(pause)
            pause = min(pause * 2, settings.kill_max_pause_s)

    def _finish(self, confirmed_by: str) -> None:
        self.progress = replace(
            self.progress,
            phase=KillPhase.DONE,
            still_open=0,
            waiting=None,
            confirmed_by=confirmed_by,
            finished_at=self._clock.monotonic(),
        )
        self._record("kill_switch_done", self._describe_done())

    def _ours(self, listed: Sequence[ExchangeOrder]) -> list[ExchangeOrder]:
        if not self._product_ids:
            return list(listed)
        products = set(self._product_ids)
        return [order for order in listed if order.product_id in products]

    def _stream_in_sync(self, generation: int) -> bool:
        """The user stream is up and has missed nothing since ``generation`` was read (no
        reset, gap or journal failure; the last reconciliation completed)."""
        return (
            self._venue.stream_connected
            and not self._orders.reconciling
            and self._orders.stream_generation == generation
        )

    def _flat_by_stream(self, listed: Sequence[ExchangeOrder]) -> bool:
        """Every order we hold open for our products, and every one ``listed`` showed open,
        has a terminal state from the venue; none is of unknown outcome."""
        if self._orders.count_working(self._product_ids) or self._orders.unresolved():
            return False
        for order in listed:
            state = self._orders.state_of_venue_order(order.order_id)
            if state is None or not state.is_terminal:
                return False  # untracked (its cancel went by id alone) or still working
        return True

    async def _stream_confirms_flat(self, generation: int, listed: Sequence[ExchangeOrder]) -> bool:
        """Wait (bounded by ``kill_stream_confirm_s``) for the user stream to report every
        cancelled order finished. False at once when the stream cannot be the authority
        (down, out of sync, an order of unknown outcome), or when the wait runs out."""
        if not self._stream_in_sync(generation) or self._orders.unresolved():
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.kill_stream_confirm_s
        while True:
            if not self._stream_in_sync(generation):
                return False
            if self._flat_by_stream(listed):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # Woken by every order change; a stream reset changes no order, so look again
            # at least every STREAM_SYNC_CHECK_S.
            self._order_changes.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, STREAM_SYNC_CHECK_S)):
                    await self._order_changes.wait()

    async def _audit_listing(self) -> list[ExchangeOrder] | None:
        """After the stream confirmed flat: one listing to check it. Returns what it shows
        open for our products when that is anything (the sweep goes on), else None."""
        try:
            async with asyncio.timeout(self._settings.kill_call_timeout_s):
                fresh = await self._venue.list_open_orders(self._product_ids)
        except Exception as exc:  # the stream's confirmation stands; say so
            self._record(
                "kill_switch_audit",
                f"the listing after the user stream's confirmation failed ({_brief(exc)}); "
                "the stream's confirmation stands",
            )
            return None
        still_open = self._ours(fresh)
        if not still_open:
            return None
        self._record(
            "kill_switch_reopened",
            f"the user stream reported every order finished but the venue lists "
            f"{len(still_open)} open; sweeping on until a listing shows none",
        )
        return still_open

    def _make_halt_durable(self, cause: str, source: str) -> bool:
        try:
            self._state.persist(durable=True)
        except Exception:  # a full disk must not stop the sweep; the latch is in memory
            log.exception("could not make the HALTED latch durable")
            self._record("kill_switch", f"{cause} (source {source}); NOT durable")
            return False
        self._record("kill_switch", f"{cause} (source {source})")
        return True

    def _describe_done(self) -> str:
        progress = self.progress
        took = (progress.finished_at or 0.0) - (progress.started_at or 0.0)
        return (
            f"no open orders after {progress.rounds} round(s), "
            f"{progress.cancels_sent} cancel(s) sent, {took * 1000:.0f} ms "
            f"(confirmed by {progress.confirmed_by})"
        )

    # ------------------------------------------------------------------ flatten

    async def flatten(self, *, confirmed: bool) -> FlattenResult:
        """Sell what is held of every traded product, reduce-only and price-protected.

        Works degraded (issue 9 §4): sizes from balances fetched now (handed to the gate too,
        so a cancelled order's stale hold does not refuse the sells); with the user stream
        down, a REST reconciliation clears the RECONCILING block first; orders are paced
        under the order-rate limit instead of being refused by it; every unit not sold is
        reported with why (``FlattenResult.skipped``, the journal, the engine's event log)."""
        if not confirmed:
            raise ValueError("flatten needs the trader's confirmation")
        if self.flatten_in_progress:
            return FlattenResult((), ("a flatten is already running",))
        self.flatten_in_progress = True
        flatten_id = f"flatten-{int(self._clock.time() * 1000)}"
        try:
            fresh = await self._venue.balances()
            if self._on_balances is not None:
                self._on_balances(fresh)
            balances = {b.currency: b for b in fresh}
            if self._orders.reconciling:
                await self._orders.reconcile()  # over REST: the stream is not needed
            self._journal.record_flatten_started(flatten_id, "sizes from fresh balances")
            orders: list[ManagedOrder] = []
            skipped: list[str] = []
            pace = 1.0 / self._settings.max_orders_per_s
            for product in self._products().values():
                intents, why = self._flatten_intents(product, balances)
                if why:
                    skipped.append(why)
                for intent in intents:
                    order = await self._submit_paced(intent, pace)
                    orders.append(order)
            finished = await self._await_finished(orders)
            skipped.extend(_unsold(finished))
            summary = f"{len(orders)} order(s); skipped: {'; '.join(skipped) or 'none'}"
            self._journal.record_flatten_finished(flatten_id, summary)
            self._record("flatten", summary)
            return FlattenResult(tuple(finished), tuple(skipped))
        finally:
            self.flatten_in_progress = False

    async def _submit_paced(self, intent: OrderIntent, pace: float) -> ManagedOrder:
        """Submit under the order-rate limit: wait a slot and try again when it refuses."""
        order = await self._orders.submit(intent)
        for _ in range(FLATTEN_RATE_RETRIES):
            if order.denial is None or order.denial.reason is not DenialReason.ORDER_RATE:
                break
            await self._sleep(pace)
            order = await self._orders.submit(intent)
        await self._sleep(pace)
        return order

    async def _await_finished(self, orders: Sequence[ManagedOrder]) -> list[ManagedOrder]:
        """The flatten orders once finished (IOC: at once at the venue; the stream or the
        place answer tells), bounded: an order still working is reported as such."""
        for _ in range(FLATTEN_SETTLE_STEPS):
            current = [self._orders.get(o.client_order_id) or o for o in orders]
            if all(o.state.is_terminal for o in current):
                return current
            await self._sleep(FLATTEN_SETTLE_POLL_S)
        return [self._orders.get(o.client_order_id) or o for o in orders]

    def _flatten_intents(
        self, product: Product, balances: Mapping[str, Balance]
    ) -> tuple[list[OrderIntent], str | None]:
        """The sells that flatten one product, each within the per-order notional limit."""
        held = balances.get(product.base_currency)
        if held is None or held.available <= 0:
            return [], None
        size = product.round_size_down(held.available)
        if size < product.base_min_size or size <= 0:
            return [], f"{product.product_id}: {held.available} is below the minimum size"
        bid = self._prices.best_bid(product.product_id)
        if bid is None:
            return [], f"{product.product_id}: no bid to price against"
        slippage = self._settings.flatten_slippage_bps / Decimal(10_000)
        floor = product.snap_price(Decimal(str(bid)) * (1 - slippage), Side.SELL)
        if size * floor < product.quote_min_size:
            return [], f"{product.product_id}: {size} is worth less than the minimum order"
        # The gate caps every order's notional, flatten's too: split into orders under it.
        chunk = product.round_size_down(self._settings.max_order_notional / floor)
        chunk = min(chunk, product.base_max_size)
        if chunk < product.base_min_size:
            return [], f"{product.product_id}: one increment is over the per-order limit"
        sizes: list[Decimal] = []
        remaining = size
        while remaining > 0 and len(sizes) < MAX_FLATTEN_ORDERS_PER_PRODUCT:
            piece = min(chunk, remaining)
            sizes.append(piece)
            remaining -= piece
        why = None
        if remaining > 0:
            why = f"{product.product_id}: {remaining} left after {len(sizes)} orders; flatten again"
        intents = [
            OrderIntent(
                OrderSpec(
                    product_id=product.product_id,
                    side=Side.SELL,
                    order_type=OrderType.LIMIT,
                    base_size=piece,
                    limit_price=floor,
                    time_in_force=TimeInForce.IOC,
                ),
                IntentSource.FLATTEN,
                reduce_only=True,
                note="flatten",
            )
            for piece in sizes
        ]
        return intents, why

    # ------------------------------------------------------------------ resume

    async def resume(self, confirmation: str) -> ReconcileReport:
        """Back to ACTIVE, only with the typed confirmation and after a clean reconciliation."""
        if confirmation.strip() != RESUME_CONFIRMATION:
            raise ResumeRefused(f"type {RESUME_CONFIRMATION} to resume trading")
        if self._kill_task is not None and not self._kill_task.done():
            raise ResumeRefused("the kill switch is still cancelling orders")
        if breached := self._breached_limits():
            raise ResumeRefused(f"still past a limit: {'; '.join(breached)}")
        pulls = self._kill_pulls
        report = await self._orders.reconcile()
        if self._kill_pulls != pulls:
            raise ResumeRefused(
                "the kill switch was pulled while reconciling for the resume; trading stays HALTED"
            )
        # ``complete`` only says every listing answered; an order whose outcome is still
        # unknown may yet be working at the exchange, so it blocks the resume too.
        if not report.complete or report.still_unknown:
            raise ResumeRefused(
                f"reconciliation is not clean ({report.still_unknown} order(s) still unknown); "
                "trading stays HALTED"
            )
        self._state.set(TradingState.ACTIVE, "resumed by the trader after reconciliation", "user")
        self.progress = KillProgress()
        self._record("resume", "trading ACTIVE after a clean reconciliation")
        return report

    # ------------------------------------------------------------------ triggers

    def act_on(self, tripped: Sequence[TrippedTrigger]) -> None:
        """Apply the strictest tripped trigger that is stricter than the current state."""
        current = self._state.state.strictness
        worst = max(tripped, key=lambda t: t.state.strictness, default=None)
        if worst is None or worst.state.strictness <= current:
            return
        if worst.state is TradingState.HALTED:
            self.kill(worst.cause, worst.source)
            return
        try:
            # Tightened only if still stricter: the kill key may have latched HALTED on the
            # terminal's thread since ``current`` was read.
            if self._state.tighten(worst.state, worst.cause, worst.source) is None:
                return
        except Exception:  # tighter states apply in memory even when the store fails
            log.exception("could not store %s", worst.state)
        self._record(f"trigger:{worst.name.value}", worst.cause)

    def check_unfinished_flatten(self) -> str | None:
        """At start-up: a flatten that was interrupted is reported, never re-sent."""
        flatten_id = self._journal.unfinished_flatten()
        if flatten_id is None:
            return None
        message = (
            f"a flatten ({flatten_id}) was interrupted when the process stopped; it is NOT "
            "re-sent: check positions and flatten again if needed"
        )
        self._journal.record_flatten_finished(flatten_id, "interrupted; not re-sent")
        self._record("flatten_interrupted", message)
        return message

    def _record(self, kind: str, detail: str) -> None:
        try:
            self._journal.record_risk_event(kind, detail)
        except Exception:  # the journal failing must not stop the kill switch
            log.exception("could not journal %s: %s", kind, detail)
