"""What a strategy is, what it may touch, and the bookkeeping every built-in strategy shares.

A strategy never talks to a venue. It reads the market, its own orders and the position through
a ``StrategyContext`` the engine gives it, and it *emits intents* through ``ctx.submit``: the
engine sends every one of them through the same risk gate as a keyboard order, then the journal,
then the venue. Cancels go through ``ctx.cancel`` (never gated, as for every source).

Callbacks are synchronous and must be quick: they run on the engine's event loop.

Contract with the engine (the context's implementation), which the strategies rely on:

* ``ctx.submit(intent)`` returns at once; the order appears in ``ctx.open_orders(strategy_id)``
  from the moment the order manager records it (SUBMITTED, set in the first event-loop step of
  ``OrderManager.submit``) until it is terminal: ``OrderManager.open_orders()`` filtered by
  ``intent.strategy_id``. Open includes PENDING_CANCEL and UNKNOWN, so a strategy never
  mistakes an order in doubt for a missing one.
* Because ``submit`` gives no id back, each intent carries a unique tag in ``intent.note``
  and the strategy's id in ``intent.strategy_id``; ``OwnOrders`` matches the open orders back
  to what was sent. An intent that never shows up within ``VISIBILITY_GRACE_S`` ended before it
  was seen (denied by the gate, rejected, or filled at once).
* ``on_fill`` is called only for fills of this strategy's orders (the engine routes by the
  order's ``intent.strategy_id``). Strategies count their own inventory from these fills, not
  from the account's balances: the demo account already holds BTC that is not the
  strategy's to trade.
* ``book(product_id)`` is empty (all ``None``) while the book is not LIVE, so a strategy
  never quotes off a stale or resyncing book.
* ``on_timer(now)`` is called periodically (about 1-2 Hz) with ``now = ctx.clock.monotonic()``.

Pausing: ``pause()`` cancels the strategy's own working orders and it emits no new order until
``resume()``. A trader who presses "pause" means "stop quoting now", and a paused strategy with
quotes still resting would keep trading. While paused it keeps cancelling any of its orders that
surface late (a submission already in flight when it was paused); a strategy may keep watching
the market (the trend follower keeps sampling) so it can resume without a warm-up.
``on_stop()`` also cancels: "stopped" with orders still open is one of the complaints CryptoJ is
designed against. Neither pause nor stop touches the position; flattening is the trader's
(confirmed) decision.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from core.clock import Clock
from core.model import Fill, OrderIntent, Product, Side, Trade

_log = logging.getLogger(__name__)

VISIBILITY_GRACE_S = 2.0
"""How long a submitted intent may stay out of ``open_orders`` before it counts as ended.

The order manager records an order in the first event-loop step of its submission, so a
correct engine shows it within milliseconds; two seconds leaves room for a loaded loop while
still retrying a denied quote promptly."""

CANCEL_RETRY_S = 3.0
"""Send a cancel again if the order is still open this long after the last request."""


@dataclass(frozen=True, slots=True)
class BookTop:
    """The top of one product's book as floats (market data stays float outside the edges)."""

    best_bid: float | None = None
    best_ask: float | None = None

    @property
    def mid(self) -> float | None:
        if self.best_bid is None or self.best_ask is None:
            return None
        return (self.best_bid + self.best_ask) / 2.0

    @property
    def two_sided(self) -> bool:
        """Both sides present and not crossed: a book worth pricing from."""
        return (
            self.best_bid is not None
            and self.best_ask is not None
            and 0.0 < self.best_bid < self.best_ask
        )


# ------------------------------------------------------------------ what strategies read
# Read-only views of the order manager's and the portfolio's types (``core.orders.ManagedOrder``,
# ``core.orders.FillEvent``, ``core.portfolio.Position``). Declaring only what a strategy reads
# keeps strategies testable with small stand-ins, and the real dataclasses satisfy these
# protocols structurally.


class OwnOrderView(Protocol):
    """One of the strategy's non-terminal orders, as ``core.orders.ManagedOrder`` exposes it."""

    @property
    def client_order_id(self) -> str: ...

    @property
    def intent(self) -> OrderIntent: ...


class FillEventView(Protocol):
    """A fill of one of the strategy's orders, as ``core.orders.FillEvent`` exposes it."""

    @property
    def fill(self) -> Fill: ...

    @property
    def client_order_id(self) -> str: ...

    @property
    def external(self) -> bool: ...


class PositionView(Protocol):
    """The account's position in one product, as ``core.portfolio.Position`` exposes it."""

    @property
    def size(self) -> Decimal:
        """Signed base size (positive long)."""
        ...


class StrategyContext(Protocol):
    """Everything a strategy may use; implemented by the engine."""

    @property
    def clock(self) -> Clock: ...

    def submit(self, intent: OrderIntent) -> None:
        """Schedule the intent for the risk gate and the venue; returns at once."""
        ...

    def cancel(self, client_order_ids: Sequence[str]) -> None:
        """Schedule cancels (never gated); returns at once."""
        ...

    def open_orders(self, strategy_id: str) -> Sequence[OwnOrderView]:
        """This strategy's non-terminal orders (see the module docstring for what counts)."""
        ...

    def position(self, product_id: str) -> PositionView: ...

    def book(self, product_id: str) -> BookTop:
        """Top of the book; empty while the book is not LIVE."""
        ...

    def product(self, product_id: str) -> Product | None:
        """Increments and limits of a product; None if the venue has not listed it (yet)."""
        ...


class Strategy(Protocol):
    """An automated strategy the engine drives. The human can always override it."""

    @property
    def strategy_id(self) -> str: ...

    @property
    def paused(self) -> bool: ...

    def on_start(self, ctx: StrategyContext) -> None: ...

    def on_stop(self) -> None:
        """Cancel own working orders and stop reacting; the position is left as it is."""
        ...

    def on_book(self, product_id: str) -> None:
        """The book of ``product_id`` changed."""
        ...

    def on_trade(self, trade: Trade) -> None:
        """A public trade printed in any subscribed product."""
        ...

    def on_fill(self, event: FillEventView) -> None:
        """One of this strategy's orders filled (partly or fully)."""
        ...

    def on_timer(self, now: float) -> None:
        """Periodic tick; ``now`` is ``ctx.clock.monotonic()``."""
        ...

    def pause(self) -> None:
        """Cancel own working orders; emit nothing until ``resume``."""
        ...

    def resume(self) -> None: ...

    def parameters(self) -> Mapping[str, str]:
        """Name -> value of every parameter, for display and the journal."""
        ...


# ------------------------------------------------------------------ own-order bookkeeping


@dataclass(slots=True)
class TrackedOrder:
    """An order the strategy sent (or found open under its id), followed until it ends."""

    tag: str  # the intent's note: how an open order is matched back to what was sent
    side: Side
    limit_price: Decimal | None
    submitted_at: float  # monotonic
    reference_mid: Decimal | None = None  # the mid the price was derived from
    client_order_id: str | None = None  # known once the order shows in open_orders
    cancel_requested_at: float | None = None
    filled: bool = False  # at least one fill seen for it
    orphan: bool = False  # open under our id but not sent by this run (e.g. before a restart)


@dataclass(frozen=True, slots=True)
class EndedOrder:
    """A tracked order that left ``open_orders``; ``seen`` False means it never appeared."""

    order: TrackedOrder
    seen: bool

    @property
    def refused(self) -> bool:
        """Ended with no fill and no cancel from us: denied, rejected, or an IOC that missed."""
        return not self.order.filled and self.order.cancel_requested_at is None


class OwnOrders:
    """The strategy's orders still in flight, known only through ``ctx.open_orders``.

    ``submit`` returns no id, so each intent carries a unique tag in its note. ``sync`` binds
    tags to client order ids as orders appear, drops orders that ended, and adopts open orders
    under this strategy's id that no tag explains (orphans, e.g. quotes left by a previous
    run) so the strategy can cancel them.
    """

    def __init__(self, strategy_id: str, *, grace_s: float = VISIBILITY_GRACE_S) -> None:
        self._strategy_id = strategy_id
        self._grace_s = grace_s
        self._orders: list[TrackedOrder] = []
        self._sequence = 0

    def new_tag(self, label: str) -> str:
        """A note no tracked order carries (a restart may leave orphans with old tags)."""
        in_use = {order.tag for order in self._orders}
        while True:
            self._sequence += 1
            tag = f"{self._strategy_id} {label} #{self._sequence}"
            if tag not in in_use:
                return tag

    def add(self, order: TrackedOrder) -> None:
        self._orders.append(order)

    def sync(self, open_orders: Sequence[OwnOrderView], now: float) -> list[EndedOrder]:
        """Match the open orders to what was sent; return the orders that ended since."""
        mine = [o for o in open_orders if o.intent.strategy_id == self._strategy_id]
        open_ids = {o.client_order_id for o in mine}
        bound_ids = {o.client_order_id for o in self._orders if o.client_order_id is not None}
        unbound = [o for o in mine if o.client_order_id not in bound_ids]
        ended: list[EndedOrder] = []
        kept: list[TrackedOrder] = []
        for tracked in self._orders:
            if tracked.client_order_id is None:
                match = next((o for o in unbound if o.intent.note == tracked.tag), None)
                if match is not None:
                    unbound.remove(match)
                    tracked.client_order_id = match.client_order_id
                elif now - tracked.submitted_at >= self._grace_s:
                    ended.append(EndedOrder(tracked, seen=False))
                    continue
            elif tracked.client_order_id not in open_ids:
                ended.append(EndedOrder(tracked, seen=True))
                continue
            kept.append(tracked)
        # Whatever is left is open under our id but explained by no submission of this run
        # (a previous run's quote, or one that surfaced after its grace ran out): adopt it so
        # the strategy cancels it rather than quoting twice.
        kept.extend(_orphan(o, now) for o in unbound)
        self._orders = kept
        return ended

    def all(self) -> list[TrackedOrder]:
        return list(self._orders)

    def on_side(self, side: Side) -> list[TrackedOrder]:
        """Every tracked order on ``side``, orphans included (they still rest at the venue)."""
        return [o for o in self._orders if o.side is side]

    def orphans(self) -> list[TrackedOrder]:
        return [o for o in self._orders if o.orphan]

    def note_fill(self, client_order_id: str, side: Side) -> None:
        """Mark the order a fill belongs to.

        A quick fill can end an order before any ``sync`` saw it, leaving its tag unbound. The
        fill's id is then bound to the one unbound order of that side (built-ins never have
        more than one in flight per side), so it counts as filled rather than refused.
        """
        order = next((o for o in self._orders if o.client_order_id == client_order_id), None)
        if order is None:
            pending = [o for o in self._orders if o.client_order_id is None and o.side is side]
            if len(pending) != 1:
                return
            order = pending[0]
            order.client_order_id = client_order_id
        order.filled = True

    def cancels_due(self, orders: Sequence[TrackedOrder], now: float) -> list[str]:
        """Client ids of ``orders`` to cancel now: known ids not asked for recently."""
        due: list[str] = []
        for order in orders:
            if order.client_order_id is None:
                continue  # not visible yet: cancelled once it shows up
            asked = order.cancel_requested_at
            if asked is None or now - asked >= CANCEL_RETRY_S:
                order.cancel_requested_at = now
                due.append(order.client_order_id)
        return due

    def __len__(self) -> int:
        return len(self._orders)


def _orphan(order: OwnOrderView, now: float) -> TrackedOrder:
    spec = order.intent.spec
    return TrackedOrder(
        tag=order.intent.note,
        side=spec.side,
        limit_price=spec.limit_price,
        submitted_at=now,
        client_order_id=order.client_order_id,
        orphan=True,
    )


class SubmitBackoff:
    """Spaces out retries after orders that were refused (see ``EndedOrder.refused``).

    Such an order was denied by the gate (HALTED, stale data, order rate...), rejected by the
    exchange, or was an IOC that found nothing; retrying at full speed would only fill the
    journal with denials. Each consecutive refusal doubles the wait, up to ``cap_s``; an order
    that filled or that we cancelled resets it.
    """

    def __init__(self, *, base_s: float = 1.0, cap_s: float = 30.0) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._failures = 0
        self._not_before = float("-inf")

    def record(self, ended: EndedOrder, now: float) -> None:
        if not ended.refused:
            self._failures = 0
            self._not_before = float("-inf")
            return
        self._failures += 1
        wait = min(self._base_s * 2 ** (self._failures - 1), self._cap_s)
        self._not_before = now + wait

    def ready(self, now: float) -> bool:
        return now >= self._not_before


# ------------------------------------------------------------------ the shared base class


class InventoryStore(Protocol):
    """Where a strategy's inventory survives restarts (the journal's key/value table)."""

    def get_value(self, key: str) -> str | None: ...

    def set_value(self, key: str, value: str) -> None: ...


class StrategyParams(Protocol):
    """A strategy's parameters: a frozen dataclass with at least the product it trades."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def product_id(self) -> str: ...


class StrategyBase:
    """Lifecycle, pause/resume, own-order tracking and inventory shared by the built-ins.

    Subclasses implement ``_evaluate(now)`` (decide and emit) and may override the hooks.
    Inventory is the net base size this strategy's own fills added (see the module docstring).
    """

    def __init__(self, strategy_id: str, params: StrategyParams) -> None:
        self._strategy_id = strategy_id
        self._params = params
        self._product_id = params.product_id
        self._ctx: StrategyContext | None = None
        self._stopped = False
        self._paused = False
        self._orders = OwnOrders(strategy_id)
        self._inventory = Decimal(0)
        self._inventory_store: InventoryStore | None = None

    # -- Strategy protocol

    @property
    def strategy_id(self) -> str:
        return self._strategy_id

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def product_id(self) -> str:
        return self._product_id

    @property
    def inventory(self) -> Decimal:
        """Net base size bought minus sold by this strategy's own fills since it started."""
        return self._inventory

    @property
    def running(self) -> bool:
        """Started and not stopped: the only state in which it may emit orders."""
        return self._ctx is not None and not self._stopped

    def on_start(self, ctx: StrategyContext) -> None:
        self._ctx = ctx
        self._stopped = False
        now = ctx.clock.monotonic()
        self._sync(now)
        # Orders left under our id by a previous run are not ours to keep: cancel them before
        # quoting, so there is never more than one working order per side.
        self._cancel(self._orders.orphans(), now)
        _log.info("strategy %s started: %s", self._strategy_id, dict(self.parameters()))

    def on_stop(self) -> None:
        """Cancel own orders and emit nothing more.

        The context is kept: a submission still in flight has no id to cancel yet, so any
        later callback (the engine may keep ticking a stopped strategy) cancels it once it shows.
        """
        if self._ctx is None or self._stopped:
            return
        self._stopped = True
        self._cleanup(self._ctx.clock.monotonic())
        _log.info("strategy %s stopped", self._strategy_id)

    def on_book(self, product_id: str) -> None:
        if self._ctx is not None and product_id == self._product_id:
            self._tick(self._ctx.clock.monotonic())

    def on_trade(self, trade: Trade) -> None:
        """No built-in strategy trades on prints; the hook is there for strategies that do."""

    def on_fill(self, event: FillEventView) -> None:
        fill = event.fill
        if event.external or fill.product_id != self._product_id:
            return  # not this strategy's: the engine should not route it here at all
        # Counted even when paused or stopped: a fill that raced the cancel is still ours.
        self._inventory += fill.size if fill.side is Side.BUY else -fill.size
        self._save_inventory()
        self._orders.note_fill(event.client_order_id, fill.side)
        if self._ctx is not None:
            self._tick(self._ctx.clock.monotonic())

    def on_timer(self, now: float) -> None:
        if self._ctx is not None:
            self._tick(now)

    def pause(self) -> None:
        if self._paused:
            return
        self._paused = True
        if self._ctx is not None:
            self._cleanup(self._ctx.clock.monotonic())
        _log.info("strategy %s paused", self._strategy_id)

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        _log.info("strategy %s resumed", self._strategy_id)
        if self._ctx is not None:
            self._tick(self._ctx.clock.monotonic())

    def parameters(self) -> Mapping[str, str]:
        params = self._params
        return {f.name: str(getattr(params, f.name)) for f in fields(params)}

    # -- inventory persistence (issue 9 §3: a restart must not forget what was bought)

    @property
    def inventory_key(self) -> str:
        return f"strategy.{self._strategy_id}.inventory"

    def attach_inventory_store(self, store: InventoryStore) -> str | None:
        """Restore the inventory journaled by an earlier run and journal it on every own
        fill from now on. Returns a line for the event log when something was restored or
        could not be."""
        self._inventory_store = store
        text = store.get_value(self.inventory_key)
        if text is None:
            return None
        try:
            restored = Decimal(text)
        except ArithmeticError:
            restored = Decimal("NaN")
        if not restored.is_finite():
            _log.error("strategy %s: journaled inventory %r unreadable", self._strategy_id, text)
            return f"strategy {self._strategy_id}: journaled inventory {text!r} unreadable; 0"
        self._inventory = restored
        return f"strategy {self._strategy_id}: inventory {restored} restored from the journal"

    def _save_inventory(self) -> None:
        store = self._inventory_store
        if store is None:
            return
        try:
            store.set_value(self.inventory_key, str(self._inventory))
        except Exception:  # the journal failing must not stop the strategy's bookkeeping
            _log.exception("strategy %s: could not journal the inventory", self._strategy_id)

    # -- for subclasses

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise RuntimeError(f"strategy {self._strategy_id} has not been started")
        return self._ctx

    def _tick(self, now: float) -> None:
        if self._paused or self._stopped:
            self._cleanup(now)
            return
        self._sync(now)
        self._cancel(self._orders.orphans(), now)
        self._evaluate(now)

    def _cleanup(self, now: float) -> None:
        """Cancel every own order, including one in flight when paused that surfaces now."""
        self._sync(now)
        self._cancel(self._orders.all(), now)

    def _sync(self, now: float) -> None:
        for ended in self._orders.sync(self.ctx.open_orders(self._strategy_id), now):
            self._on_order_ended(ended, now)

    def _cancel(self, orders: Sequence[TrackedOrder], now: float) -> None:
        ids = self._orders.cancels_due(orders, now)
        if ids:
            self.ctx.cancel(ids)

    def _submit(self, intent: OrderIntent, order: TrackedOrder) -> None:
        self._orders.add(order)
        self.ctx.submit(intent)

    def _evaluate(self, now: float) -> None:
        """Decide and emit; called on book changes, fills and timer ticks while running."""
        raise NotImplementedError

    def _on_order_ended(self, ended: EndedOrder, now: float) -> None:
        """A tracked order left ``open_orders`` (or never appeared)."""


def bps(value: Decimal) -> Decimal:
    """Basis points as a fraction."""
    return value / Decimal(10_000)


def to_decimal(price: float) -> Decimal:
    """A float price from the book as the Decimal it was printed as (shortest repr)."""
    return Decimal(repr(price))
