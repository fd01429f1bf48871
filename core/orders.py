"""The order manager: every order's life, from intent to a terminal state.

Outbound: risk gate -> the intent and its client_order_id journaled (before the request
leaves) -> ``venue.place`` -> ACCEPTED / REJECTED / UNKNOWN. An UNKNOWN outcome (timeout, 5xx,
dropped connection) is resolved by looking for the client_order_id at the venue and, if it is
not there, by sending the SAME request with the SAME client_order_id again (the exchange
deduplicates on it) - never by a new id, which is how duplicate orders are made.

Inbound: the venue reports each order's CUMULATIVE state (filled size, value and fees so far).
A fill is the difference between the new cumulative figures and the ones already known; its
journal key is (order_id, cumulative filled size after it), so replays after a reconnect or a
restart are journaled once and emitted once. Orders we did not place are adopted as external.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from core.clock import Clock
from core.denials import Denial
from core.fill_guard import refuse_impossible_fill
from core.journal_records import DuplicateRecord, FillRecord, JournalError
from core.model import (
    ExchangeOrder,
    Fill,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    TimeInForce,
    decimal_str,
)
from core.order_state import (
    STILL_OPEN_STATES,
    ManagedOrder,
    OrderState,
    can_reopen,
    is_legal_transition,
    state_for_exchange_order,
)
from core.venue import (
    CancelResult,
    CreateOrderOutcome,
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
)

if TYPE_CHECKING:
    from core.venue import Venue

log = logging.getLogger(__name__)
_S = OrderState

ZERO = Decimal(0)
CANCEL_BATCH_SIZE = 100  # the exchange refuses more ids per cancel request
DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
DUPLICATE_CANCEL_REQUEST = "DUPLICATE_CANCEL_REQUEST"
JOURNAL_WRITE_FAILED = "JOURNAL_WRITE_FAILED"
NOT_AT_VENUE = "NOT_AT_VENUE"
# Cancel refusals that mean the order is no longer open (Coinbase's failure reasons).
CANCEL_REFUSED_NOT_OPEN = frozenset(
    {"UNKNOWN_CANCEL_ORDER", "ORDER_NOT_FOUND", "INVALID_CANCEL_REQUEST"}
)
KEY_LAST_RECONCILE = "last_reconcile_at"


@dataclass(frozen=True, slots=True)
class OrderEvent:
    order: ManagedOrder  # a copy, safe to keep
    previous: OrderState | None
    cause: str


@dataclass(frozen=True, slots=True)
class FillEvent:
    fill: Fill
    client_order_id: str
    external: bool


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    updated: int = 0  # orders whose state or fills changed
    adopted: int = 0  # orders placed elsewhere, now tracked as external
    fills_recovered: int = 0  # fills derived during reconciliation (missed by the stream)
    unknown_resolved: int = 0
    still_unknown: int = 0
    errors: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every question got a trustworthy answer (else the manager stays reconciling)."""
        return not self.errors


class OrderJournal(Protocol):
    """What the order manager needs of the journal (``core/journal.py`` implements it)."""

    def batch(self) -> AbstractContextManager[None]: ...

    def record_intent(
        self,
        client_order_id: str,
        intent: OrderIntent,
        *,
        external: bool = False,
        created_at: float | None = None,
    ) -> None: ...

    def record_order_state(self, order: ManagedOrder, cause: str) -> None: ...

    def record_denial(
        self, client_order_id: str | None, intent: OrderIntent, denial: Denial
    ) -> None: ...

    def record_fill(self, record: FillRecord) -> bool: ...

    def load_orders(self) -> list[ManagedOrder]: ...

    def find_order(
        self, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> ManagedOrder | None: ...

    def get_value(self, key: str) -> str | None: ...

    def set_value(self, key: str, value: str) -> None: ...


class OrderListener(Protocol):
    def on_order_event(self, event: OrderEvent) -> None: ...

    def on_fill(self, event: FillEvent) -> None: ...


class PreTradeCheck(Protocol):
    def check(self, intent: OrderIntent) -> Denial | None: ...

    def check_resend(self, intent: OrderIntent, client_order_id: str) -> Denial | None:
        """The gate again for an order we are about to send a second time (same id): the
        state or the limits may have moved since it was first allowed."""
        ...


def new_client_order_id() -> str:
    return str(uuid.uuid4())


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --------------------------------------------------------------------------- the manager


class OrderManager:
    """Implements ``core.venue.VenueListener``. Runs on the engine's event loop."""

    def __init__(
        self,
        venue: Venue,
        journal: OrderJournal,
        gate: PreTradeCheck,
        *,
        clock: Clock,
        id_factory: Callable[[], str] = new_client_order_id,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        resolve_attempts: int = 5,
        resolve_first_delay_s: float = 0.5,
        resolve_max_delay_s: float = 8.0,
        resend_window_s: float = 60.0,
        not_found_settle_s: float = 60.0,
        lookback_margin_s: float = 120.0,
        max_terminal_in_memory: int = 2000,
        call_timeout_s: float = 15.0,
    ) -> None:
        self._venue = venue
        self._journal = journal
        self._gate = gate
        self._clock = clock
        self._new_id = id_factory
        self._sleep = sleep
        self._resolve_attempts = resolve_attempts
        self._resolve_first_delay_s = resolve_first_delay_s
        self._resolve_max_delay_s = resolve_max_delay_s
        self._resend_window_s = resend_window_s
        # How long after the last send a lookup by client_order_id must keep finding nothing
        # before an UNKNOWN order is closed: longer than any plausible late arrival of the
        # POST (Coinbase once accepted an order 14 s after our 10 s timeout). Until then it
        # stays UNKNOWN: shown, counted by the gate, covered by the kill switch.
        self._not_found_settle_s = not_found_settle_s
        self._lookback_margin_s = lookback_margin_s
        self._max_terminal = max_terminal_in_memory
        # A bound on each cancel request of our own, whatever the transport's timeouts.
        self._call_timeout_s = call_timeout_s

        self._orders: dict[str, ManagedOrder] = {}
        self._by_order_id: dict[str, str] = {}
        self._terminal: deque[str] = deque()
        self._listeners: list[OrderListener] = []
        self._restored_ids: set[str] = set()  # never re-sent: their intent predates the restart
        self._deferred_cancels: set[str] = set()  # cancel asked before the exchange id was known
        self._resolve_locks: dict[str, asyncio.Lock] = {}
        self._resolvers: dict[str, asyncio.Task[None]] = {}
        self._exists_at_venue: set[str] = set()  # answered "duplicate client_order_id"
        self._last_sent: dict[str, float] = {}  # client_order_id -> when its POST last left
        self._verifiers: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # Orders whose latest state the journal refused (a full disk): written again by the
        # next reconcile, which stays incomplete until they are (see ``_rejournal``).
        self._unjournaled: dict[str, ManagedOrder] = {}
        self._reconciling = True  # until the first reconcile after start
        self._reconcile_running: asyncio.Future[ReconcileReport] | None = None
        self._reset_generation = 0
        # Orders written inside the journal batch of ``on_order_updates`` (None outside it).
        self._batch_written: list[ManagedOrder] | None = None
        self._batch_write_failed = False
        self._fills_emitted = 0
        self.version = 0

    # ----------------------------------------------------------------- reads

    @property
    def reconciling(self) -> bool:
        return self._reconciling

    @property
    def stream_generation(self) -> int:
        """Counts the stream resets (and journal failures) so far: while it stays the same
        and ``reconciling`` is False, no venue update has been missed since it was read."""
        return self._reset_generation

    def add_listener(self, listener: OrderListener) -> None:
        self._listeners.append(listener)

    def orders(self) -> list[ManagedOrder]:
        return [order.copy() for order in self._orders.values()]

    def open_orders(self) -> list[ManagedOrder]:
        return [order.copy() for order in self._orders.values() if order.is_open]

    def state_of_venue_order(self, order_id: str) -> OrderState | None:
        """Our state of the order with this exchange id (None: not one we track)."""
        coid = self._by_order_id.get(order_id)
        order = self._orders.get(coid) if coid is not None else None
        return order.state if order is not None else None

    def get(self, client_order_id: str) -> ManagedOrder | None:
        order = self._orders.get(client_order_id)
        return None if order is None else order.copy()

    # ----------------------------------------------------------------- restart

    def restore(self) -> int:
        """Load the orders the journal has as not finished. Call before ``reconcile()``.

        An order journaled as INITIALIZED or SUBMITTED may have left before the crash: it
        becomes UNKNOWN and reconciliation looks for it. It is never re-sent (the trader's
        intent is from before the restart); if the venue does not have it, it is closed.
        """
        restored = self._journal.load_orders()
        for order in restored:
            self._remember(order)
            # The previous process sent it at the latest when it last journaled it.
            self._last_sent[order.client_order_id] = order.updated_at
            # UNKNOWN too: an order left UNKNOWN by an earlier run (a lost answer, or a
            # restore before another crash) is just as much an intent from before the restart.
            if order.state in (_S.INITIALIZED, _S.SUBMITTED, _S.UNKNOWN):
                self._restored_ids.add(order.client_order_id)
            if order.state in (_S.INITIALIZED, _S.SUBMITTED):
                self._transition(order, _S.UNKNOWN, "restart: the request may have left")
        self._reconciling = True
        self._bump()
        return len(restored)

    def close_left_over(self, cause: str) -> list[ManagedOrder]:
        """Close every order restored open as CANCELED (a venue that starts empty, paper:
        they cannot be anywhere). Returns the orders closed."""
        closed: list[ManagedOrder] = []
        for order in list(self._orders.values()):
            if order.state.is_terminal:
                continue
            if order.state is _S.INITIALIZED:
                self._transition(order, _S.UNKNOWN, cause)
            if self._transition(order, _S.CANCELED, cause):
                closed.append(order.copy())
        self._restored_ids.clear()
        return closed

    # ----------------------------------------------------------------- submit

    async def submit(self, intent: OrderIntent) -> ManagedOrder:
        """Gate, journal, send. Never raises for venue trouble: the outcome is in the state."""
        now = self._clock.time()
        order = ManagedOrder(
            client_order_id=self._new_id(),
            intent=intent,
            state=_S.INITIALIZED,
            created_at=now,
            updated_at=now,
        )
        denial = self._gate.check(intent)
        if denial is not None:
            self._deny(order, denial)
            return order.copy()
        if not self._journal_intent(order):
            return order.copy()
        self._remember(order)
        self._transition(order, _S.SUBMITTED, f"sent to {self._venue.name}")
        outcome = await self._place(order)
        self._apply_place_outcome(order, outcome)
        if order.state is _S.UNKNOWN:
            self._start_resolver(order)
        await self._flush_deferred_cancels()
        return order.copy()

    def _deny(self, order: ManagedOrder, denial: Denial) -> None:
        # Denied intents never reach the intents table: nothing was, or ever will be, sent.
        try:
            self._journal.record_denial(order.client_order_id, order.intent, denial)
        except Exception as exc:
            self._on_journal_failure("record a denial", exc)
        order.state = _S.DENIED
        order.denial = denial
        self._remember(order)
        self._retire(order)
        self._bump()
        self._emit_order(order, _S.INITIALIZED, f"denied: {denial}")

    def _journal_intent(self, order: ManagedOrder) -> bool:
        """Write-ahead: no journal row, no request."""
        try:
            self._journal.record_intent(
                order.client_order_id, order.intent, created_at=order.created_at
            )
        except Exception as exc:
            self._on_journal_failure("record an intent", exc)
            order.state = _S.REJECTED
            order.reject_code = JOURNAL_WRITE_FAILED
            order.reject_message = f"not sent: the journal could not record it ({exc})"
            self._remember(order)
            self._retire(order)
            self._bump()
            self._emit_order(order, _S.INITIALIZED, order.reject_message)
            return False
        return True

    async def _place(self, order: ManagedOrder) -> CreateOrderOutcome:
        self._last_sent[order.client_order_id] = self._clock.time()
        try:
            return await self._venue.place(order.intent.spec, order.client_order_id)
        except Exception as exc:  # a venue bug or a transport error: the order may exist
            log.warning("place %s raised %r: outcome unknown", order.client_order_id, exc)
            return OrderOutcomeUnknown(f"place raised {type(exc).__name__}: {exc}")

    def _apply_place_outcome(self, order: ManagedOrder, outcome: CreateOrderOutcome) -> None:
        awaiting = order.state in (_S.SUBMITTED, _S.UNKNOWN)
        if isinstance(outcome, OrderAccepted):
            self._on_accepted(order, outcome, awaiting=awaiting)
        elif not awaiting:
            # The stream already told us more than this answer can (e.g. it was filled).
            log.info("place answer for %s arrived in %s: kept", order.client_order_id, order.state)
        elif isinstance(outcome, OrderRejected):
            self._on_rejected(order, outcome)
        else:
            self._transition(order, _S.UNKNOWN, f"outcome unknown: {outcome.reason}")

    def _on_accepted(self, order: ManagedOrder, outcome: OrderAccepted, *, awaiting: bool) -> None:
        placed = outcome.placed
        if placed.product_id != order.product_id or placed.side != order.intent.spec.side:
            log.error(
                "venue answered %s for %s with %s %s: differs from the intent",
                placed.order_id,
                order.client_order_id,
                placed.side,
                placed.product_id,
            )
        # Not awaiting: the stream got there first and already taught us the id and state.
        self._learn_order_id(order, placed.order_id)
        if awaiting:
            self._transition(order, _S.ACCEPTED, f"accepted by {self._venue.name}")
        elif order.state is _S.REJECTED and order.reject_code == NOT_AT_VENUE:
            self._reopen(order, _S.ACCEPTED, "a late answer: accepted", verify=True)

    def _on_rejected(self, order: ManagedOrder, outcome: OrderRejected) -> None:
        codes = {outcome.code, outcome.new_order_failure_reason, outcome.preview_failure_reason}
        if DUPLICATE_CLIENT_ORDER_ID in codes:
            # The exchange already has an order with this id: ours. Find it, never re-id, and
            # never close it as absent because a listing lags.
            self._exists_at_venue.add(order.client_order_id)
            self._transition(order, _S.UNKNOWN, "duplicate client_order_id: the order exists")
            return
        order.reject_code = outcome.new_order_failure_reason or outcome.code
        order.reject_message = outcome.message or outcome.details
        self._transition(order, _S.REJECTED, f"rejected: {order.reject_code}")

    # ----------------------------------------------------------------- UNKNOWN resolution

    def _start_resolver(self, order: ManagedOrder) -> None:
        running = self._resolvers.get(order.client_order_id)
        if running is not None and not running.done():
            return
        for coid in [c for c, task in self._resolvers.items() if task.done()]:
            del self._resolvers[coid]
        task = asyncio.get_running_loop().create_task(self._resolve_in_background(order))
        self._resolvers[order.client_order_id] = task

    async def _resolve_in_background(self, order: ManagedOrder) -> None:
        # Until it is resolved: an order that may be live is never given up on. After
        # ``resolve_attempts`` the trader is told, and the lookups go on at the longest pause.
        delay = self._resolve_first_delay_s
        attempts = 0
        while order.state is _S.UNKNOWN:
            await self._sleep(delay)
            delay = min(delay * 2, self._resolve_max_delay_s)
            attempts += 1
            if await self._resolve_once(order, None):
                return
            if attempts == self._resolve_attempts:
                self._note(order, f"still unknown after {attempts} lookups; still looking")

    async def _resolve_once(
        self, order: ManagedOrder, listed: Mapping[str, ExchangeOrder] | None
    ) -> bool:
        """One attempt to settle an UNKNOWN order. True once it is no longer UNKNOWN."""
        lock = self._resolve_locks.setdefault(order.client_order_id, asyncio.Lock())
        async with lock:
            if order.state is not _S.UNKNOWN:
                return True
            if listed is None:
                listed = await self._list_for_lookup(order)
            if listed is None:  # the venue gave no trustworthy answer
                return False
            found = listed.get(order.client_order_id)
            if found is not None:
                self._apply_update(order, found, "found at the venue", authoritative=True)
            else:
                await self._settle_not_found(order)
        resolved = order.state is not _S.UNKNOWN
        if resolved:
            await self._flush_deferred_cancels()
        return resolved

    async def _list_for_lookup(self, order: ManagedOrder) -> dict[str, ExchangeOrder] | None:
        since = _utc(order.created_at - self._lookback_margin_s)
        try:
            recent = await self._venue.list_orders_since(since)
            still_open = await self._venue.list_open_orders()
        except Exception as exc:
            log.info("lookup of %s failed: %r", order.client_order_id, exc)
            return None
        return _by_client_order_id(_merge_listings(recent, still_open))

    async def _settle_not_found(self, order: ManagedOrder) -> None:
        """The venue answered and has no order with this id."""
        now = self._clock.time()
        age = now - order.created_at
        since_sent = now - self._last_sent.get(order.client_order_id, order.created_at)
        # Never re-sent: an intent from before a restart, or one whose cancel was asked for
        # while its outcome was unknown (the kill switch, the trader, the strategy): sending it
        # now would place an order that nobody wants any more, e.g. while trading is HALTED.
        coid = order.client_order_id
        if coid in self._exists_at_venue:
            return  # the venue said it has it: the listings lag; keep looking
        may_resend = coid not in self._restored_ids and coid not in self._deferred_cancels
        if may_resend and age <= self._resend_window_s:
            # A re-send passes the gate again (HALTED or REDUCING since, a limit reached): if
            # refused it is not re-sent and stays UNKNOWN until the window proves it absent.
            may_resend = self._gate.check_resend(order.intent, coid) is None
        if may_resend and age <= self._resend_window_s:
            self._transition(order, _S.SUBMITTED, "not at the venue: re-sent, same client_order_id")
            self._apply_place_outcome(order, await self._place(order))
        elif since_sent >= self._not_found_settle_s:
            # Absent at a lookup made longer after the last send than a POST can arrive late.
            # Should the venue report it all the same, ``_apply_update`` re-opens it.
            order.reject_code = NOT_AT_VENUE
            order.reject_message = "the venue has no such order; it was not re-sent"
            self._transition(
                order, _S.REJECTED, f"{NOT_AT_VENUE}: not found {since_sent:.0f}s after sending"
            )

    # ----------------------------------------------------------------- venue updates

    def on_order_update(self, order: ExchangeOrder) -> None:
        """The latest cumulative state of one order (VenueListener)."""
        managed = self._match(order)
        if managed is None:
            managed = self._adopt_external(order)
            if managed is None:
                return
        self._apply_update(managed, order, f"venue: {order.status.value}", authoritative=False)

    def on_order_updates(self, updates: Sequence[ExchangeOrder]) -> None:
        """Reports that arrived together (one user-channel message), in order (VenueListener).

        The reports that only move known orders' states (a batch cancel's hundred CANCELLED)
        are journaled in one commit: a commit costs about 0.15 ms, and the kill switch's
        confirmation waits for these very updates (200 of them took 30 ms one by one). A
        report that brings a fill or an order we do not know is applied on its own, exactly
        as ``on_order_update`` does, so a fill is only emitted once its record is committed.
        If the batch's commit fails, every order written in it is written again by the next
        reconcile (``_rejournal``), as a failed single write would be."""
        quiet: list[tuple[ManagedOrder, ExchangeOrder]] = []
        for update in updates:
            managed = self._match(update)
            if managed is not None and update.filled_size <= managed.filled_size:
                quiet.append((managed, update))
                continue
            self._apply_in_one_commit(quiet)  # what came before, first: order is kept
            quiet = []
            self.on_order_update(update)
        self._apply_in_one_commit(quiet)

    def _apply_reports(self, reports: Sequence[tuple[ManagedOrder, ExchangeOrder]]) -> None:
        for managed, update in reports:
            self._apply_update(
                managed, update, f"venue: {update.status.value}", authoritative=False
            )

    def _apply_in_one_commit(self, reports: Sequence[tuple[ManagedOrder, ExchangeOrder]]) -> None:
        if len(reports) < 2:
            self._apply_reports(reports)
            return
        written: list[ManagedOrder] = []
        self._batch_written = written
        failed = False
        try:
            with self._journal.batch():
                self._apply_reports(reports)
        except JournalError as exc:  # the commit failed: none of the batch reached the file
            failed = True
            self._on_journal_failure(f"record {len(written)} order update(s)", exc)
        finally:
            self._batch_written = None
        if failed or self._batch_write_failed:
            # A write that failed inside may have made SQLite roll the whole batch back (a
            # full disk): the ones that "succeeded" before it are not on file either.
            self._batch_write_failed = False
            for order in written:
                self._unjournaled[order.client_order_id] = order

    def on_stream_reset(self, reason: str) -> None:
        """Updates may have been missed: block trading until ``reconcile()`` completes."""
        log.info("order stream reset: %s", reason)
        self._reset_generation += 1
        self._reconciling = True
        self._bump()

    def _match(self, update: ExchangeOrder) -> ManagedOrder | None:
        coid = self._by_order_id.get(update.order_id)
        if coid is not None:
            return self._orders[coid]
        candidate = self._orders.get(update.client_order_id) if update.client_order_id else None
        if candidate is not None and candidate.order_id in (None, update.order_id):
            return candidate
        return self._load_from_journal(update)

    def _load_from_journal(self, update: ExchangeOrder) -> ManagedOrder | None:
        # An order we finished with and dropped from memory (or knew before a restart): a late
        # or replayed update must find its fills, or it would be taken for a new order.
        try:
            known = self._journal.find_order(
                order_id=update.order_id, client_order_id=update.client_order_id or None
            )
        except Exception as exc:
            self._on_journal_failure("look an order up", exc)
            return None
        if known is None or known.order_id not in (None, update.order_id):
            return None
        self._remember(known)
        if known.state.is_terminal:
            self._retire(known)
        return known

    def _adopt_external(self, update: ExchangeOrder) -> ManagedOrder | None:
        coid = update.client_order_id or f"external:{update.order_id}"
        if coid in self._orders:  # an id clash with an order we know: keep them apart
            coid = f"external:{update.order_id}"
        created = update.created_time.timestamp() if update.created_time else self._clock.time()
        order = ManagedOrder(
            client_order_id=coid,
            intent=_external_intent(update),
            state=_S.INITIALIZED,
            external=True,
            order_id=update.order_id,
            created_at=created,
            updated_at=self._clock.time(),
        )
        try:
            self._journal_external_intent(order)
        except Exception as exc:
            self._on_journal_failure("adopt an external order", exc)
            return None
        self._remember(order)
        log.info("adopted external order %s (%s)", update.order_id, coid)
        return order

    def _journal_external_intent(self, order: ManagedOrder) -> None:

        try:
            self._journal.record_intent(
                order.client_order_id, order.intent, external=True, created_at=order.created_at
            )
        except DuplicateRecord:
            # Its client_order_id belongs to another order in the journal: key it by venue id.
            order.client_order_id = f"external:{order.order_id}"
            self._journal.record_intent(
                order.client_order_id, order.intent, external=True, created_at=order.created_at
            )

    def _apply_update(
        self,
        order: ManagedOrder,
        update: ExchangeOrder,
        cause: str,
        *,
        authoritative: bool,
        asked_after_cancel: bool = False,
    ) -> bool:
        """Fold one cumulative report into the order. True if anything changed."""
        if update.filled_size < order.filled_size:
            return False  # an older report replayed: nothing in it is news
        learned = self._learn_order_id(order, update.order_id)
        filled = False
        if update.filled_size > order.filled_size:
            if refuse_impossible_fill(order, update):  # docs/coinbase-protocol.md: never booked
                return learned
            filled = self._record_fill(order, update)
            if not filled:
                return learned  # journal trouble: reconciliation will derive it again
        target = state_for_exchange_order(update)
        stale_open = not asked_after_cancel and target in STILL_OPEN_STATES
        if order.state is _S.PENDING_CANCEL and stale_open:
            # An "open" report after our cancel request left may predate the request (a stale
            # listing, a reordered stream update): keep PENDING_CANCEL until the venue reports
            # the order finished or answers that it refused the cancel.
            target = None
        if target is not None and target is not order.state:
            if target is _S.REJECTED:
                order.reject_code = update.reject_reason or "FAILED"
                order.reject_message = update.reject_reason
            if order.state.is_terminal:
                changed = self._reopen(order, target, cause, verify=not authoritative)
                return changed or learned or filled
            return self._transition(order, target, cause) or learned or filled
        if learned:
            self._persist(order, "exchange order id learned")
        return learned or filled

    def _reopen(self, order: ManagedOrder, target: OrderState, cause: str, *, verify: bool) -> bool:
        """The venue reports an order we had closed (NOT_AT_VENUE, or cancelled, or expired):
        the venue is right. An order that may be live is never left out of ``open_orders()``,
        the gate's counts or the kill switch, whatever our own history of it says."""
        previous = order.state
        if not can_reopen(previous):
            return False
        log.warning(
            "order %s: the venue reports %s after we had it %s: re-opened (%s)",
            order.client_order_id,
            target,
            previous,
            cause,
        )
        if not target.is_terminal:
            order.reject_code = order.reject_message = None
            with contextlib.suppress(ValueError):
                self._terminal.remove(order.client_order_id)
        order.state = target
        order.updated_at = self._clock.time()
        self._persist(order, f"re-opened by the venue: {cause}")
        self._bump()
        self._emit_order(order, previous, f"re-opened by the venue: {cause}")
        if target.is_terminal:
            self._retire(order)
        elif verify:
            # A stream update may be an old one arriving late: ask the venue for the order.
            self._spawn_verify(order)
        return True

    def _spawn_verify(self, order: ManagedOrder) -> None:
        running = self._verifiers.get(order.client_order_id)
        if running is not None and not running.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._verify(order))
        self._verifiers[order.client_order_id] = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _verify(self, order: ManagedOrder) -> None:
        """Read one re-opened order back from the venue until it answers."""
        delay = self._resolve_first_delay_s
        while not order.state.is_terminal and order.order_id is not None:
            await self._sleep(delay)
            delay = min(delay * 2, self._resolve_max_delay_s)
            try:
                update = await self._venue.get_order(order.order_id)
            except Exception as exc:
                log.info("verify %s: %r", order.client_order_id, exc)
                continue
            # Asked after any cancel of ours was answered: an "open" now is current.
            self._apply_update(
                order, update, "verified at the venue", authoritative=True, asked_after_cancel=True
            )
            return

    def _learn_order_id(self, order: ManagedOrder, order_id: str) -> bool:
        if not order_id or order.order_id == order_id:
            return False
        if order.order_id is not None:
            log.error(
                "order %s: venue id %s != %s", order.client_order_id, order_id, order.order_id
            )
            return False
        order.order_id = order_id
        self._by_order_id[order_id] = order.client_order_id
        if order.client_order_id in self._deferred_cancels:
            self._spawn_flush_deferred_cancels()
        return True

    def _record_fill(self, order: ManagedOrder, update: ExchangeOrder) -> bool:
        """Derive, journal (once) and emit the fill between known and reported cumulatives."""

        size = update.filled_size - order.filled_size
        cumulative_value = _cumulative_value(update)
        value = cumulative_value - order.filled_value
        fees = update.total_fees - order.total_fees
        fill = Fill(
            trade_id=f"{update.order_id}:{decimal_str(update.filled_size.normalize())}",
            order_id=update.order_id,
            product_id=order.product_id,
            side=order.intent.spec.side,
            price=value / size,
            size=size,
            commission=fees,
            trade_time=_utc(self._clock.time()),
        )
        record = FillRecord(
            client_order_id=order.client_order_id,
            fill=fill,
            value=value,
            cumulative_size=update.filled_size,
            trade_id=None,
            external=order.external,
        )
        try:
            is_new = self._journal.record_fill(record)
        except Exception as exc:
            self._on_journal_failure("record a fill", exc)
            return False
        order.filled_size = update.filled_size
        order.filled_value = cumulative_value
        order.total_fees = update.total_fees
        order.updated_at = self._clock.time()
        self._bump()
        if is_new:
            self._fills_emitted += 1
            self._emit_fill(FillEvent(fill, order.client_order_id, order.external))
        return True

    # ----------------------------------------------------------------- cancel

    async def cancel(self, client_order_ids: Sequence[str]) -> int:
        """Cancel our orders (never gated). Returns how many cancels were asked for.

        An order whose exchange id is not known yet (SUBMITTED, UNKNOWN) is cancelled as soon
        as it is: the request is remembered, not dropped.
        """
        targets: list[ManagedOrder] = []
        deferred = 0
        for coid in client_order_ids:
            order = self._orders.get(coid)
            if order is None or order.state.is_terminal:
                continue
            if order.order_id is None:
                self._deferred_cancels.add(coid)
                deferred += 1
            else:
                targets.append(order)
        return await self._cancel_orders(targets, "cancel requested") + deferred

    async def cancel_all(
        self,
        product_ids: Sequence[str] | None = None,
        *,
        list_first: bool = True,
        listed: Sequence[ExchangeOrder] | None = None,
        resend_acknowledged: bool = True,
    ) -> int:
        """Cancel every open order the venue lists for ``product_ids`` (ours and external,
        PENDING/QUEUED too, and ones we had closed) and every working order we know. Returns
        how many cancels were asked for.

        ``listed`` is a listing the caller just made (the kill switch's verification), used
        instead of listing again; ``list_first=False`` cancels only what we know, at once (the
        kill switch's first round, which lists afterwards to verify).
        ``resend_acknowledged=False`` (``listed`` answered since our cancels were accepted):
        an order whose cancel the venue accepted (PENDING_CANCEL) and that ``listed`` does
        not show open is not asked again; only the refused, failed or still listed ones are.
        """
        products = set(product_ids) if product_ids else None
        targets: dict[str, ManagedOrder] = {}
        untracked: list[str] = []
        if listed is None:
            listed = await self._list_open_for_cancel(product_ids) if list_first else []
        for update in listed:
            if products and update.product_id not in products:
                continue
            order = self._match(update) or self._adopt_external(update)
            if order is None:  # the journal could not adopt it: it is cancelled all the same
                untracked.append(update.order_id)
                continue
            self._apply_update(order, update, "listed open", authoritative=True)
            if order.order_id is None:
                untracked.append(update.order_id)
            elif order.state.is_terminal:  # a terminal we cannot re-open (FILLED): it is listed
                untracked.append(order.order_id)
            else:
                targets[order.order_id] = order
        deferred = 0
        for order in self._orders.values():
            if order.state.is_terminal or (products and order.product_id not in products):
                continue
            if (
                not resend_acknowledged
                and order.state is _S.PENDING_CANCEL
                and order.order_id not in targets
            ):
                continue  # accepted, and no longer listed open: nothing to ask again
            if order.order_id is None:
                self._deferred_cancels.add(order.client_order_id)
                deferred += 1
            else:
                targets.setdefault(order.order_id, order)
        sent = await self._cancel_orders(list(targets.values()), "cancel all", untracked)
        return sent + deferred

    def verify_unlisted(self, listed_open: Sequence[ExchangeOrder]) -> int:
        """After a listing of every open order (the kill switch's last one): ask the venue
        about each order we hold open that it did not list (its confirmation may be lost)."""
        listed = {o.order_id for o in listed_open}
        count = 0
        for order in list(self._orders.values()):
            if order.is_open and order.order_id is not None and order.order_id not in listed:
                self._spawn_verify(order)
                count += 1
        return count

    def look_for_unknown(self) -> None:
        """Make sure every order of unknown outcome is being looked for (restored ones are
        otherwise looked for at the next reconciliation only)."""
        for order in self._orders.values():
            if order.state is _S.UNKNOWN:
                self._start_resolver(order)

    def count_working(self, product_ids: Sequence[str] | None = None) -> int:
        """How many orders with an exchange id are still open (no copies: polled often)."""
        products = set(product_ids) if product_ids else None
        return sum(
            1
            for o in self._orders.values()
            if o.is_open and o.order_id is not None and (not products or o.product_id in products)
        )

    def unresolved(self) -> list[ManagedOrder]:
        """Orders that may be at the venue without our knowing their exchange id (SUBMITTED,
        UNKNOWN): a cancel cannot reach them yet, so the kill switch waits for them."""
        return [
            order.copy()
            for order in self._orders.values()
            if order.is_open and order.order_id is None
        ]

    async def _list_open_for_cancel(self, product_ids: Sequence[str] | None) -> list[ExchangeOrder]:
        try:
            return await self._venue.list_open_orders(product_ids)
        except Exception as exc:  # cancel what we know; the caller lists again
            log.warning("cancel all: listing open orders failed: %r", exc)
            return []

    async def _cancel_orders(
        self, orders: Iterable[ManagedOrder], cause: str, untracked: Sequence[str] = ()
    ) -> int:
        before: dict[str, OrderState] = {}
        by_order_id: dict[str, ManagedOrder] = {}
        for order in orders:
            assert order.order_id is not None
            before[order.client_order_id] = order.state
            by_order_id[order.order_id] = order
        marked: list[ManagedOrder] = []
        for order in by_order_id.values():
            marking = order.state is not _S.PENDING_CANCEL
            if marking and self._transition(order, _S.PENDING_CANCEL, cause, persist=False):
                marked.append(order)
        ids = list(dict.fromkeys([*by_order_id, *untracked]))
        batches = [
            ids[start : start + CANCEL_BATCH_SIZE]
            for start in range(0, len(ids), CANCEL_BATCH_SIZE)
        ]
        # Every batch at once: cancelling N hundred orders (the kill switch) then takes one
        # round trip, not one per batch. ``_send_cancels`` never raises. The cancels leave
        # BEFORE anything is written to disk: a full disk or a journal waiting on a reader
        # must not hold a cancel back.
        answers = await asyncio.gather(*(self._send_cancels(b) for b in batches))
        self._persist_many([o for o in marked if o.state is _S.PENDING_CANCEL], cause)
        for results in answers:
            for result in results:
                refused = by_order_id.get(result.order_id)
                if refused is not None and not result.success:
                    self._cancel_refused(refused, before, result.failure_reason or "refused")
        return len(ids)

    def _persist_many(self, orders: Sequence[ManagedOrder], cause: str) -> None:
        if not orders:
            return
        try:
            with self._journal.batch():  # one commit for the lot
                for order in orders:
                    self._journal.record_order_state(order, cause)
        except Exception as exc:
            for order in orders:  # the batch is one transaction: none of them was written
                self._unjournaled[order.client_order_id] = order
            self._on_journal_failure(f"record {len(orders)} cancel request(s)", exc)
        else:
            for order in orders:
                self._unjournaled.pop(order.client_order_id, None)

    async def _send_cancels(self, order_ids: list[str]) -> list[CancelResult]:
        try:
            async with asyncio.timeout(self._call_timeout_s):
                return await self._venue.cancel(order_ids)
        except Exception as exc:  # a timeout included: the cancel may or may not have landed
            log.warning("cancel of %d orders failed: %r", len(order_ids), exc)
            return [
                CancelResult(order_id, False, f"request failed: {exc!r}") for order_id in order_ids
            ]

    def _cancel_refused(
        self, order: ManagedOrder, before: Mapping[str, OrderState], reason: str
    ) -> None:
        if reason == DUPLICATE_CANCEL_REQUEST or order.state is not _S.PENDING_CANCEL:
            return  # already being cancelled, or the venue has moved it on meanwhile
        if reason in CANCEL_REFUSED_NOT_OPEN:
            # Already finished at the venue (cancelled by an earlier request, filled): not
            # open again. Ask the venue what became of it.
            self._spawn_verify(order)
            return
        previous = before.get(order.client_order_id, _S.ACCEPTED)
        if not previous.is_working or previous is _S.PENDING_CANCEL:
            previous = _S.PARTIALLY_FILLED if order.filled_size > 0 else _S.ACCEPTED
        self._transition(order, previous, f"cancel refused: {reason}")

    async def _flush_deferred_cancels(self) -> None:
        ready: list[ManagedOrder] = []
        for coid in list(self._deferred_cancels):
            order = self._orders.get(coid)
            if order is None or order.state.is_terminal:
                self._deferred_cancels.discard(coid)
            elif order.order_id is not None:
                self._deferred_cancels.discard(coid)
                ready.append(order)
        if ready:
            await self._cancel_orders(ready, "cancel requested before the order id was known")

    # ----------------------------------------------------------------- reconcile

    async def reconcile(self) -> ReconcileReport:
        """Bring every order we know (and every open one we don't) in line with the venue.

        One at a time: a call while one runs joins it (its report). Two overlapping would
        apply a listing made before the other's changes after them: the engine's tick,
        started while a RESUME's reconciliation ran, listed orders open, and its listing
        re-opened an order the user stream had just reported cancelled by the next kill.
        A reset during the running one leaves ``reconciling`` set, so another follows."""
        running = self._reconcile_running
        if running is not None:
            return await asyncio.shield(running)
        done: asyncio.Future[ReconcileReport] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_consume_outcome)
        self._reconcile_running = done
        try:
            report = await self._reconcile_once()
        except asyncio.CancelledError:
            done.cancel()
            raise
        except BaseException as exc:
            done.set_exception(exc)
            raise
        finally:
            self._reconcile_running = None
        done.set_result(report)
        return report

    async def _reconcile_once(self) -> ReconcileReport:
        generation = self._reset_generation
        self._reconciling = True
        fills_before = self._fills_emitted
        since = self._reconcile_since()
        try:
            recent = await self._venue.list_orders_since(_utc(since))
            still_open = await self._venue.list_open_orders()
        except Exception as exc:
            log.warning("reconcile: listing orders failed: %r", exc)
            return ReconcileReport(errors=(f"list orders: {exc}",))
        listed = _merge_listings(recent, still_open)
        unknown_before = [o for o in self._orders.values() if o.state is _S.UNKNOWN]
        updated, adopted = self._reconcile_listed(listed.values())
        errors: list[str] = []
        updated += await self._reconcile_unlisted(listed, errors)
        await self._reconcile_unknown(_by_client_order_id(listed))
        resolved = sum(o.state is not _S.UNKNOWN for o in unknown_before)
        still_unknown = sum(o.state is _S.UNKNOWN for o in self._orders.values())
        await self._flush_deferred_cancels()
        self._rejournal()
        self._note_reconciled()
        report = ReconcileReport(
            updated=updated,
            adopted=adopted,
            fills_recovered=self._fills_emitted - fills_before,
            unknown_resolved=resolved,
            still_unknown=still_unknown,
            errors=tuple(errors),
        )
        if report.complete and generation == self._reset_generation:
            self._reconciling = False
        self._bump()
        log.info("reconciled: %s", report)
        return report

    def _reconcile_since(self) -> float:
        """Far enough back to see every order we still track and anything since last time."""
        candidates = [o.created_at for o in self._orders.values() if not o.state.is_terminal]
        try:
            last = self._journal.get_value(KEY_LAST_RECONCILE)
        except Exception as exc:
            self._on_journal_failure("read the last reconcile time", exc)
            last = None
        candidates.append(float(last) if last is not None else self._clock.time())
        return min(candidates) - self._lookback_margin_s

    def _reconcile_listed(self, listed: Iterable[ExchangeOrder]) -> tuple[int, int]:
        updated = adopted = 0
        for update in listed:
            order = self._match(update)
            if order is None:
                order = self._adopt_external(update)
                if order is None:
                    continue
                adopted += 1
            if self._apply_update(order, update, "reconcile", authoritative=True):
                updated += 1
        return updated, adopted

    async def _reconcile_unlisted(
        self, listed: Mapping[str, ExchangeOrder], errors: list[str]
    ) -> int:
        updated = 0
        for order in list(self._orders.values()):
            if order.state.is_terminal or order.order_id is None or order.order_id in listed:
                continue
            try:
                update = await self._venue.get_order(order.order_id)
            except Exception as exc:
                errors.append(f"get order {order.order_id}: {exc}")
                continue
            if self._apply_update(order, update, "reconcile", authoritative=True):
                updated += 1
        return updated

    async def _reconcile_unknown(self, listed: Mapping[str, ExchangeOrder]) -> None:
        for order in [o for o in self._orders.values() if o.state is _S.UNKNOWN]:
            await self._resolve_once(order, listed)
            if order.state is _S.UNKNOWN:
                # Not at the venue and too young to give up on (e.g. restored after a crash):
                # keep looking in the background, or it would stay UNKNOWN (blocking resume)
                # until something else happens to trigger a reconciliation.
                self._start_resolver(order)

    def _rejournal(self) -> None:
        """Write again every state the journal refused. An order that finished while the
        disk was full (a fill or cancel during the kill switch's sweep) is finished in memory
        and will never change again, so nothing else would ever rewrite it: the journal would
        keep it ACCEPTED for good, and a restart would restore it as open. A failure here
        starts a new reset generation, so this reconcile does not end ``reconciling``."""
        for order in list(self._unjournaled.values()):
            self._persist(order, f"{order.state} (written again after a journal failure)")

    def _note_reconciled(self) -> None:
        try:
            self._journal.set_value(KEY_LAST_RECONCILE, repr(self._clock.time()))
        except Exception as exc:
            self._on_journal_failure("note the reconcile time", exc)

    # ----------------------------------------------------------------- background tasks

    def _spawn_flush_deferred_cancels(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the loop (a restore): the next async step flushes them
            return
        task = loop.create_task(self._flush_deferred_cancels())
        self._background.add(task)  # a strong reference until done: the loop keeps weak ones
        task.add_done_callback(self._background.discard)

    async def wait_background(self) -> None:
        """Wait for the UNKNOWN resolvers and deferred cancels running now (tests, shutdown)."""
        while True:
            pending = [t for t in (*self._resolvers.values(), *self._background) if not t.done()]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the background work (the journal stays open: the engine owns it)."""
        tasks = [t for t in (*self._resolvers.values(), *self._background) if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ----------------------------------------------------------------- state changes

    def _transition(
        self, order: ManagedOrder, target: OrderState, cause: str, *, persist: bool = True
    ) -> bool:
        previous = order.state
        if not is_legal_transition(previous, target):
            log.warning(
                "order %s: illegal transition %s -> %s (%s) ignored",
                order.client_order_id,
                previous,
                target,
                cause,
            )
            return False
        order.state = target
        order.updated_at = self._clock.time()
        if persist:
            self._persist(order, cause)
        self._bump()
        self._emit_order(order, previous, cause)
        if target.is_terminal:
            self._retire(order)
        return True

    def _note(self, order: ManagedOrder, cause: str) -> None:
        """Say something about an order without changing its state (journal and listeners)."""
        order.updated_at = self._clock.time()
        self._persist(order, cause)
        self._bump()
        self._emit_order(order, order.state, cause)

    def _persist(self, order: ManagedOrder, cause: str) -> None:
        try:
            self._journal.record_order_state(order, cause)
        except Exception as exc:
            self._unjournaled[order.client_order_id] = order
            self._batch_write_failed = self._batch_written is not None
            self._on_journal_failure(f"record {order.state} of {order.client_order_id}", exc)
        else:
            self._unjournaled.pop(order.client_order_id, None)
            if self._batch_written is not None:  # on file once the batch commits
                self._batch_written.append(order)

    def _on_journal_failure(self, what: str, exc: BaseException) -> None:
        # Without the journal nothing is safe to send: block trading through `reconciling`
        # (the gate denies while it is True) until a reconcile succeeds.
        log.error("journal: could not %s: %r", what, exc)
        self._reset_generation += 1
        self._reconciling = True

    def _remember(self, order: ManagedOrder) -> None:
        self._orders[order.client_order_id] = order
        if order.order_id is not None:
            self._by_order_id[order.order_id] = order.client_order_id

    def _retire(self, order: ManagedOrder) -> None:
        """Keep a bounded number of finished orders in memory; the journal keeps them all."""
        self._terminal.append(order.client_order_id)
        self._restored_ids.discard(order.client_order_id)
        self._resolve_locks.pop(order.client_order_id, None)
        while len(self._terminal) > self._max_terminal:
            oldest = self._orders.pop(self._terminal.popleft(), None)
            if oldest is not None and oldest.order_id is not None:
                self._by_order_id.pop(oldest.order_id, None)

    def _bump(self) -> None:
        self.version += 1

    def _emit_order(self, order: ManagedOrder, previous: OrderState | None, cause: str) -> None:
        event = OrderEvent(order.copy(), previous, cause)
        for listener in self._listeners:
            try:
                listener.on_order_event(event)
            except Exception:
                log.exception("order listener %r failed", listener)

    def _emit_fill(self, event: FillEvent) -> None:
        for listener in self._listeners:
            try:
                listener.on_fill(event)
            except Exception:
                log.exception("fill listener %r failed", listener)


# --------------------------------------------------------------------------- helpers


def _consume_outcome(future: asyncio.Future[ReconcileReport]) -> None:
    """A reconciliation's failure is raised to its caller; joiners may be gone: no warning."""
    if not future.cancelled():
        future.exception()


def _cumulative_value(update: ExchangeOrder) -> Decimal:
    """The order's filled quote value so far (from the average price if the venue omits it)."""
    if update.filled_value > 0 or update.filled_size == 0:
        return update.filled_value
    return update.average_filled_price * update.filled_size


def _merge_listings(*listings: Iterable[ExchangeOrder]) -> dict[str, ExchangeOrder]:
    """By exchange id; of two reports of one order keep the one that knows more fills."""
    merged: dict[str, ExchangeOrder] = {}
    for listing in listings:
        for order in listing:
            known = merged.get(order.order_id)
            if known is None or order.filled_size >= known.filled_size:
                merged[order.order_id] = order
    return merged


def _by_client_order_id(listed: Mapping[str, ExchangeOrder]) -> dict[str, ExchangeOrder]:
    return {o.client_order_id: o for o in listed.values() if o.client_order_id}


def _external_intent(update: ExchangeOrder) -> OrderIntent:
    """What an order placed elsewhere must have asked for (as far as the venue tells)."""
    try:
        order_type = OrderType(update.order_type)
    except ValueError:
        order_type = OrderType.LIMIT if update.limit_price is not None else OrderType.MARKET
    try:
        time_in_force = TimeInForce(update.time_in_force or TimeInForce.GTC.value)
    except ValueError:
        time_in_force = TimeInForce.GTC
    spec = OrderSpec(
        product_id=update.product_id,
        side=update.side,
        order_type=order_type,
        base_size=update.base_size,
        quote_size=update.quote_size,
        limit_price=update.limit_price,
        stop_price=update.stop_price,
        time_in_force=time_in_force,
        post_only=update.post_only,
    )
    return OrderIntent(spec=spec, source=IntentSource.MANUAL, note="external")
