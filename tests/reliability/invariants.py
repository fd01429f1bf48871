"""What must hold between the engine's records and the exchange's own, whatever went wrong.

Shared by the soak (an in-process ``SimExchange``) and the crash-recovery loop (a simulated
exchange in a child process, read over REST): both turn their truth into ``VenueOrder`` /
``VenueFill`` lists and the engine's journal into a ``JournalView`` (read through its own
SQLite connection, as a restarted process would see it), then ask the checks below. Each
check returns the problems it found, one line each; an empty list is a pass.

The journal derives fills from the venue's cumulative order figures, so one journaled fill
may cover several of the venue's fills (two trades between two updates), never the reverse:
"every fill the venue made is in the journal exactly once" is checked as equal sums per order
(size, value, fees) with no more journal rows than venue fills.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from core.model import ExchangeOrderStatus

ZERO = Decimal(0)

# The journal's state for each status the venue can report of an order that exists there.
_WORKING_STATES = frozenset({"ACCEPTED", "PARTIALLY_FILLED", "PENDING_CANCEL"})
_STATES_FOR_STATUS: Mapping[ExchangeOrderStatus, frozenset[str]] = {
    ExchangeOrderStatus.PENDING: _WORKING_STATES,
    ExchangeOrderStatus.OPEN: _WORKING_STATES,
    ExchangeOrderStatus.QUEUED: _WORKING_STATES,
    ExchangeOrderStatus.CANCEL_QUEUED: _WORKING_STATES,
    ExchangeOrderStatus.FILLED: frozenset({"FILLED"}),
    ExchangeOrderStatus.CANCELLED: frozenset({"CANCELED"}),
    ExchangeOrderStatus.EXPIRED: frozenset({"EXPIRED"}),
    ExchangeOrderStatus.FAILED: frozenset({"REJECTED"}),
}
# Journal states that say "this order never reached the venue".
_NEVER_SENT = frozenset({"DENIED", "REJECTED"})
# Journal states that must not survive a quiet moment: the outcome is still open.
_UNRESOLVED = frozenset({"INITIALIZED", "SUBMITTED", "UNKNOWN"})


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order as the exchange itself has it."""

    order_id: str
    client_order_id: str
    product_id: str
    status: ExchangeOrderStatus
    filled_size: Decimal
    filled_value: Decimal
    total_fees: Decimal


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One of the exchange's fills of our orders."""

    order_id: str
    size: Decimal
    value: Decimal
    commission: Decimal


@dataclass(frozen=True, slots=True)
class JournalOrder:
    client_order_id: str
    order_id: str | None
    state: str
    external: bool
    reject_code: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class JournalFill:
    client_order_id: str
    order_id: str
    product_id: str
    side: str
    size: Decimal
    value: Decimal
    commission: Decimal


@dataclass(frozen=True, slots=True)
class JournalView:
    """Everything the journal says about orders and fills (denials are not orders)."""

    orders: Mapping[str, JournalOrder]  # by client_order_id
    fills: tuple[JournalFill, ...]

    def by_order_id(self) -> dict[str, JournalOrder]:
        return {o.order_id: o for o in self.orders.values() if o.order_id}


def read_journal(path: Path) -> JournalView:
    """The journal's orders and fills, read-only through a connection of our own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            """SELECT i.client_order_id, i.external, i.created_at, c.order_id, c.state,
            c.reject_code FROM intents i JOIN current_orders c USING (client_order_id)"""
        ).fetchall()
        orders = {
            row["client_order_id"]: JournalOrder(
                client_order_id=row["client_order_id"],
                order_id=row["order_id"],
                state=row["state"],
                external=bool(row["external"]),
                reject_code=row["reject_code"],
                created_at=float(row["created_at"]),
            )
            for row in rows
        }
        fills = tuple(
            JournalFill(
                client_order_id=row["client_order_id"],
                order_id=row["order_id"],
                product_id=row["product_id"],
                side=row["side"],
                size=Decimal(row["size"]),
                value=Decimal(row["value"]),
                commission=Decimal(row["commission"]),
            )
            for row in db.execute("SELECT * FROM fills ORDER BY id")
        )
    finally:
        db.close()
    return JournalView(orders, fills)


def _journal_match(journal: JournalView, order: VenueOrder) -> JournalOrder | None:
    by_id = journal.by_order_id().get(order.order_id)
    if by_id is not None:
        return by_id
    return journal.orders.get(order.client_order_id) or journal.orders.get(
        f"external:{order.order_id}"
    )


def check_orders_known_both_ways(
    journal: JournalView, venue_orders: Sequence[VenueOrder]
) -> list[str]:
    """Every venue order is in the journal with an agreeing state; every journaled order the
    engine believes was placed is at the venue, and none it believes unsent is there."""
    problems: list[str] = []
    by_client_id: dict[str, list[VenueOrder]] = defaultdict(list)
    for order in venue_orders:
        by_client_id[order.client_order_id].append(order)
        known = _journal_match(journal, order)
        if known is None:
            problems.append(
                f"venue order {order.order_id} ({order.client_order_id}, {order.status}) "
                "is unknown to the engine"
            )
            continue
        if known.order_id not in (None, order.order_id):
            problems.append(
                f"{known.client_order_id}: engine has venue id {known.order_id}, "
                f"the venue {order.order_id}"
            )
        allowed = _STATES_FOR_STATUS.get(order.status)
        if allowed is not None and known.state not in allowed:
            problems.append(
                f"{known.client_order_id}: engine says {known.state}, venue says {order.status}"
            )
    venue_ids = {o.order_id for o in venue_orders}
    for known in journal.orders.values():
        if known.state in _UNRESOLVED:
            problems.append(f"{known.client_order_id}: still {known.state} when all is quiet")
            continue
        at_venue = (known.order_id in venue_ids) or bool(by_client_id.get(known.client_order_id))
        if known.state in _NEVER_SENT:
            if at_venue and known.state == "DENIED":
                problems.append(f"{known.client_order_id}: DENIED yet at the venue")
            elif at_venue and known.reject_code != "FAILED":
                problems.append(
                    f"{known.client_order_id}: REJECTED ({known.reject_code}) yet at the venue"
                )
        elif not at_venue:
            problems.append(
                f"{known.client_order_id}: engine says {known.state} ({known.order_id}), "
                "the venue has no such order"
            )
    return problems


def check_one_order_per_intent(
    journal: JournalView, venue_orders: Sequence[VenueOrder]
) -> list[str]:
    """No client_order_id (one intent) produced two orders at the venue."""
    counts = Counter(o.client_order_id for o in venue_orders)
    problems = [
        f"intent {client_order_id} produced {count} orders at the venue"
        for client_order_id, count in counts.items()
        if count > 1
    ]
    journal_ids = Counter(o.order_id for o in journal.orders.values() if o.order_id)
    problems += [
        f"venue order {oid} is journaled {n} times" for oid, n in journal_ids.items() if n > 1
    ]
    return problems


def check_fills_once(
    journal: JournalView, venue_orders: Sequence[VenueOrder], venue_fills: Sequence[VenueFill]
) -> list[str]:
    """Every fill the venue made is in the journal exactly once (see the module docstring)."""
    problems: list[str] = []
    venue_by_order: dict[str, list[VenueFill]] = defaultdict(list)
    for fill in venue_fills:
        venue_by_order[fill.order_id].append(fill)
    journal_by_order: dict[str, list[JournalFill]] = defaultdict(list)
    for row in journal.fills:
        journal_by_order[row.order_id].append(row)
    orders = {o.order_id: o for o in venue_orders}
    for order_id in sorted(set(venue_by_order) | set(journal_by_order) | _filled(orders)):
        made = venue_by_order.get(order_id, [])
        journaled = journal_by_order.get(order_id, [])
        venue_totals = _totals((f.size, f.value, f.commission) for f in made)
        journal_totals = _totals((f.size, f.value, f.commission) for f in journaled)
        order = orders.get(order_id)
        if order is not None:
            cumulative = (order.filled_size, order.filled_value, order.total_fees)
            if venue_totals != cumulative:  # the venue's own books must add up first
                problems.append(f"{order_id}: venue fills {venue_totals} != order {cumulative}")
        elif journaled:
            problems.append(f"{order_id}: {len(journaled)} journaled fill(s), no such order")
        if journal_totals != venue_totals:
            problems.append(
                f"{order_id}: journal (size, value, fees) {journal_totals} != venue {venue_totals}"
            )
        if len(journaled) > len(made):
            problems.append(f"{order_id}: {len(journaled)} journal rows for {len(made)} fills")
    return problems


def _filled(orders: Mapping[str, VenueOrder]) -> set[str]:
    return {oid for oid, order in orders.items() if order.filled_size > 0}


def _totals(items: Iterable[tuple[Decimal, Decimal, Decimal]]) -> tuple[Decimal, ...]:
    size = value = fees = ZERO
    for a, b, c in items:
        size, value, fees = size + a, value + b, fees + c
    return (size.normalize(), value.normalize(), fees.normalize())


@dataclass(frozen=True, slots=True)
class WorkingAtVenue:
    """One of our orders open at the venue: what it may still trade."""

    product_id: str
    side: str  # "BUY" or "SELL"
    remaining: Decimal


def check_limits_held(
    working: Sequence[WorkingAtVenue],
    *,
    product_id: str,
    held: Decimal,
    lowest_buy_price: Decimal | None,
    max_open_orders: int,
    max_position: Decimal,
) -> list[str]:
    """The limits hold counting working orders, judged from the venue's books alone: at most
    ``max_open_orders`` open, and ``product_id``'s position if every open buy fills (``held``
    plus their remaining sizes) valued at ``lowest_buy_price`` (the lowest price of any buy
    of ours: the gate valued each growing buy at its own price, never lower, and a fill moves
    size from the order to the balance, which keeps the sum) within ``max_position``. Sells
    only shrink a long position (the soak starts long and the gate refuses selling more than
    is held), so the long side is the worst case."""
    problems: list[str] = []
    if len(working) > max_open_orders:
        problems.append(f"{len(working)} open at the venue > limit {max_open_orders}")
    if lowest_buy_price is None:
        return problems
    buys = sum(
        (w.remaining for w in working if w.product_id == product_id and w.side == "BUY"), ZERO
    )
    worst = (held + buys) * lowest_buy_price
    if worst > max_position:
        problems.append(
            f"{product_id} worst case {worst:.2f} (held {held}, open buys {buys}) > limit "
            f"{max_position}"
        )
    return problems


def ledger_from_fills(
    start: Mapping[str, Decimal], fills: Iterable[JournalFill], quote: str = "USD"
) -> dict[str, Decimal]:
    """What the account must hold if these journaled fills are all its trading."""
    held = defaultdict(lambda: ZERO, start)
    for fill in fills:
        base = fill.product_id.split("-")[0]
        if fill.side == "BUY":
            held[base] += fill.size
            held[quote] -= fill.value + fill.commission
        else:
            held[base] -= fill.size
            held[quote] += fill.value - fill.commission
    return dict(held)


def check_ledger(expected: Mapping[str, Decimal], actual: Mapping[str, Decimal]) -> list[str]:
    """Totals per currency (available + hold) agree exactly."""
    return [
        f"{currency}: expected {expected.get(currency, ZERO)}, venue holds "
        f"{actual.get(currency, ZERO)}"
        for currency in sorted(set(expected) | set(actual))
        if expected.get(currency, ZERO) != actual.get(currency, ZERO)
    ]
