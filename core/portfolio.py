"""The portfolio: positions, cash and P&L, driven by our fills and the venue's balances.

Accounting rules (all money in the quote currency, all ``Decimal``):

* A position is a signed base size per product. Its *cost* is the signed quote amount paid
  for the part still open; the average entry is ``cost / size`` (shown, never used to book
  P&L). Keeping the cost instead of the average makes ``realized + unrealized`` equal the
  cash-flow P&L exactly: the only rounded number (the cost share a partial close removes)
  is subtracted from the cost and booked into realized P&L as the very same value.
* A fill that grows the position adds to the cost. A fill against it closes the smaller of
  the two sizes, books ``closed proceeds - closed cost`` as realized P&L, and if it crosses
  zero the rest opens a new position at the fill price (the average entry resets).
* Fees (each fill's commission, in quote) are paid from cash and subtracted from realized
  P&L, so realized P&L is net of fees.
* Unrealized P&L is ``size x mark - cost`` with the mark (the mid) the engine feeds in. It is
  ``None`` while a non-flat position has no mark (unknown is never shown as 0); a flat
  position's unrealized P&L is exactly 0.
* Equity is quote cash + the value of every position at its mark; ``None`` before the first
  balances or while a non-flat position has no mark.

Balances from the venue (``set_balances``) are the truth about what we hold. Cash becomes the
quote currency's total (available + hold). For every *tracked* product (given to the
constructor or traded since) the position becomes the base currency's total. A difference
from what our fills explain is an *external* change (a deposit, a withdrawal, a trade we did
not see): it moves the position but is not trading P&L. Added holdings take the current mark
as their cost (or, with no mark yet, the first price seen: the next mark or fill), so they
count for limits, equity and flatten from the moment CryptoJ sees them, and their P&L counts
from then on. Removed holdings leave at the mark (their open P&L is realized, so a withdrawal
is not a loss), or at cost with no mark. Balances of currencies with no tracked product are
kept as ``other_balances`` and are not part of equity.

Balances and fills are layered by time (``set_balances(..., as_of=)``, the time the balances
were asked for): the venue's answer holds every fill executed before it. A fill executed later
is added on top of it; a fill executed before it whose update arrives after it is booked once,
replacing the external change the balances had booked for it (at the same price, so no P&L
appears or disappears). Each fill is therefore counted once, whatever arrives first.

Positions are kept once per base asset: the first tracked product of a base quoted in the
portfolio's currency (or the first one) holds it, and another product on that base
(BTC-USDC next to BTC-USD) is an alias that reads the same size but adds no exposure or
equity, so the asset is counted once.

P&L survives restarts through ``PnlMemory`` (the journal's key/value table): the day's P&L,
the total and its peak are carried into the next process, and holdings re-adopted from
balances take the last journaled mark as their cost, so a price move while the process was
down is part of the day.

Peak equity and drawdown measure *trading* results, not deposits and withdrawals: the
drawdown is the fall of total P&L from its peak, and the peak equity is ``equity +
drawdown`` (the equity we would have at the P&L peak with today's capital). A withdrawal
therefore never looks like a drawdown, and a deposit never raises the bar.

The daily P&L is the change of total P&L since the last day boundary (``day_boundary_utc_hour``
on the injected clock). It rolls lazily, on the first read or change after the boundary. A
position without any mark at the boundary starts its day at its first mark.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.clock import Clock
from core.model import Balance, Fill, Side

log = logging.getLogger(__name__)

_ZERO = Decimal(0)
# The cost share removed by a partial close is rounded to this quantum. Fixed decimal places
# keep later sums exact under the default 28-digit context for any realistic amount.
_COST_QUANTUM = Decimal("1e-12")
_SECONDS_PER_DAY = 86_400
# Fills already applied, remembered by (order_id, trade_id) so a replayed fill is ignored
# even if an upstream dedupe missed it. Bounded: replays come soon after the original.
_REMEMBERED_FILLS = 10_000
# How long applied fills are kept to layer over balances asked for before they executed.
_FILL_MEMORY_S = 300.0
# External additions remembered per asset (each refresh that found more adds one).
_EXTERNAL_PARTS = 16


class FillEventLike(Protocol):
    """What the portfolio reads from ``core.orders.FillEvent``."""

    @property
    def fill(self) -> Fill: ...


@dataclass(frozen=True, slots=True)
class Position:
    """One product's position, as a value (a snapshot of the portfolio's numbers)."""

    product_id: str
    size: Decimal  # signed base size: > 0 long, < 0 short
    avg_entry: Decimal | None  # None when flat or while the cost is not known yet
    realized_pnl: Decimal  # net of fees
    fees: Decimal  # total commission paid (quote)
    mark: Decimal | None
    unrealized_pnl: Decimal | None  # None while non-flat without a mark; 0 when flat

    @property
    def notional(self) -> Decimal | None:
        """Signed value at the mark."""
        if not self.size:
            return _ZERO
        return None if self.mark is None else self.size * self.mark

    @property
    def total_pnl(self) -> Decimal | None:
        if self.unrealized_pnl is None:
            return None
        return self.realized_pnl + self.unrealized_pnl


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


class _Holding:
    """The mutable accounting state of one product."""

    __slots__ = (
        "cost",
        "day_start_pnl",
        "external",
        "fees",
        "last_mark",
        "mark",
        "product_id",
        "realized",
        "restored_mark",
        "size",
        "unpriced",
    )

    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        self.size = _ZERO
        self.cost = _ZERO  # signed cost of the priced part (size - unpriced)
        # Signed size whose cost is not known yet (holdings seen in balances before any
        # price). Non-zero only while there has never been a mark or fill to price it.
        self.unpriced = _ZERO
        self.realized = _ZERO  # net of fees
        self.fees = _ZERO
        self.mark: Decimal | None = None
        self.last_mark: Decimal | None = None  # survives a mark going away (day baseline)
        # The mark journaled by the previous process: holdings re-adopted from balances before
        # any mark take it as their cost, so the price move while we were down counts.
        self.restored_mark: Decimal | None = None
        # What balances added as external, in parts of (signed size, price; None: unpriced)
        # all of one sign, newest last: a fill those balances already held replaces its
        # part when its update arrives late.
        self.external: list[tuple[Decimal, Decimal | None]] = []
        # Total P&L at the start of the trading day; None until known (see module doc).
        self.day_start_pnl: Decimal | None = _ZERO

    def total_pnl(self, mark: Decimal | None) -> Decimal | None:
        if not self.size:
            return self.realized
        if mark is None or self.unpriced:
            return None
        return self.realized + self.size * mark - self.cost

    def exposure(self) -> Decimal | None:
        if not self.size:
            return _ZERO
        return None if self.mark is None else abs(self.size * self.mark)

    def price_unpriced(self, price: Decimal) -> None:
        if self.unpriced:
            self.cost += self.unpriced * price
            self.unpriced = _ZERO

    def apply_fill(self, signed_size: Decimal, price: Decimal, fee: Decimal) -> None:
        self.price_unpriced(price)
        self.fees += fee
        self.realized -= fee
        size = self.size
        if not size or (size > 0) == (signed_size > 0):
            self.cost += signed_size * price
            self.size = size + signed_size
            return
        held = abs(size)
        closing = min(abs(signed_size), held)
        closing_signed = closing if size > 0 else -closing
        self._close(closing_signed, price)
        opening = signed_size + closing_signed  # what is left of the fill after the close
        if opening:
            self.cost = opening * price
            self.size = opening

    def _close(self, closing_signed: Decimal, price: Decimal | None) -> None:
        """Take ``closing_signed`` (same sign as the position) off at ``price``.

        ``price`` None: the size left at cost (no P&L is booked).
        """
        held = abs(self.size)
        if abs(closing_signed) == held:
            removed = self.cost
        else:
            removed = (self.cost * abs(closing_signed) / held).quantize(_COST_QUANTUM)
        if price is not None:
            self.realized += closing_signed * price - removed
        self.cost -= removed
        self.size -= closing_signed
        if not self.size:
            self.cost = _ZERO

    def undo_external(self, signed: Decimal) -> bool:
        """Take back ``signed`` of what balances added as external, exactly as it was added
        (a fill the balances already held arrives: it replaces that part). False when the
        balances added nothing of that sign to take back."""
        parts = self.external
        if not signed or sum((size for size, _ in parts), _ZERO) * _sign(signed) < abs(signed):
            return False
        left = signed
        while left:
            size, price = parts[-1]
            take = left if abs(left) <= abs(size) else size
            if price is None:
                self.unpriced -= take
            else:
                self.cost -= take * price
            self.size -= take
            left -= take
            if take == size:
                parts.pop()
            else:
                parts[-1] = (size - take, price)
        if not self.size:
            self.cost = _ZERO
            self.unpriced = _ZERO
        return True

    def adjust_external(self, target: Decimal) -> None:
        """Move the size to ``target`` without trading P&L (see the module doc)."""
        restored_mark, self.restored_mark = self.restored_mark, None  # first balances only
        size = self.size
        if target == size:
            return
        if size and (_sign(target) != _sign(size) or abs(target) < abs(size)):
            keep = target if _sign(target) == _sign(size) else _ZERO
            self._remove_external(size - keep)
            self.external.clear()
            size = self.size
        added = target - size
        if added:
            price = self.mark if self.mark is not None else restored_mark
            if price is not None:
                self.cost += added * price
            else:
                self.unpriced += added
            self.size = target
            if self.external and _sign(self.external[-1][0]) != _sign(added):
                self.external.clear()
            self.external.append((added, price))
            del self.external[:-_EXTERNAL_PARTS]

    def _remove_external(self, removed: Decimal) -> None:
        # Unpriced size has no cost and no mark (a mark prices it at once): it goes first.
        from_unpriced = removed if abs(removed) <= abs(self.unpriced) else self.unpriced
        self.unpriced -= from_unpriced
        self.size -= from_unpriced
        rest = removed - from_unpriced
        if rest:
            # With a mark the value leaves at the market (its open P&L is realized, so a
            # withdrawal is not a loss); without one it leaves at cost.
            self._close(rest, self.mark)


class Portfolio:
    """Positions, cash and P&L. Implements ``core.orders.OrderListener`` (it reads fills)."""

    def __init__(
        self,
        *,
        clock: Clock,
        day_boundary_utc_hour: int = 0,
        quote_currency: str = "USD",
        product_ids: Iterable[str] = (),
    ) -> None:
        if not 0 <= day_boundary_utc_hour <= 23:
            raise ValueError(f"day_boundary_utc_hour must be 0..23, got {day_boundary_utc_hour}")
        self._clock = clock
        self._boundary_s = day_boundary_utc_hour * 3600
        self._quote = quote_currency
        self._quote_suffix = "-" + quote_currency
        self._holdings: dict[str, _Holding] = {}
        # One holding per base asset: a second product on the same base (BTC-USDC next to
        # BTC-USD) is an alias of the first, so the BTC balance is counted once.
        self._primary_by_base: dict[str, str] = {}
        self._alias: dict[str, str] = {}
        # Fills applied recently, (trade time, product, signed size, cash change), to layer
        # them over balances that were asked for before they happened.
        self._recent_fills: deque[tuple[float, str, Decimal, Decimal]] = deque(
            maxlen=_REMEMBERED_FILLS
        )
        self._balances_as_of: float | None = None
        # Products quoted in our currency first: they are the primaries.
        for product_id in sorted(product_ids, key=lambda p: not p.endswith("-" + quote_currency)):
            self._holding(product_id)
        self._cash: Decimal | None = None
        self._holds: dict[str, Decimal] = {}
        self._balances_version = 0
        self._other_balances: tuple[Balance, ...] = ()
        self._seen_fills: set[tuple[str, str]] = set()
        self._seen_order: deque[tuple[str, str]] = deque()
        self._day = self._day_index()
        # P&L from before this process (restored from the journal, see ``PnlMemory``): the
        # total since trading began and, for the day it was saved on, that day's part.
        self._carried_total = _ZERO
        self._carried_daily = _ZERO
        self._peak_pnl = _ZERO
        self._total_pnl: Decimal | None = _ZERO
        self._gross: Decimal | None = _ZERO
        self._version = 0
        self.ignored_fills = 0  # fills of products quoted in another currency

    # ------------------------------------------------------------------ inputs

    def track(self, product_id: str) -> None:
        """Follow a product (its base balance becomes its position on ``set_balances``)."""
        if product_id not in self._holdings and product_id not in self._alias:
            self._holding(product_id)
            self._changed()

    def set_balances(self, balances: Sequence[Balance], *, as_of: float | None = None) -> None:
        """Take fresh balances from the venue (all of them: a missing currency holds 0).

        ``as_of`` (wall-clock seconds): when the balances were asked for. The venue's answer
        holds every fill executed before it, so fills applied here with a later trade time
        are layered on top (the answer does not hold them yet), and a fill executed before it
        whose update arrives later is not booked a second time (``on_fill``). Fills without
        a trade time count as executed when they arrive. Without ``as_of``, pass balances
        fetched after every fill the venue reported before them was applied (e.g. right after
        a reconcile); an older list would undo those fills as "external".
        """
        self._roll_day()
        by_currency = {balance.currency: balance for balance in balances}
        quote = by_currency.get(self._quote)
        cash = quote.total if quote is not None else _ZERO
        self._holds = {balance.currency: balance.hold for balance in balances}
        self._balances_version += 1
        late: dict[str, Decimal] = {}
        if as_of is not None:
            recent = self._recent_fills
            while recent and recent[0][0] < as_of - _FILL_MEMORY_S:
                recent.popleft()
            for at, product_id, signed, cash_change in recent:
                if at > as_of:  # executed after the venue answered: not in these balances
                    late[product_id] = late.get(product_id, _ZERO) + signed
                    cash += cash_change
        self._balances_as_of = as_of
        self._cash = cash
        tracked_bases: set[str] = set()
        for holding in self._holdings.values():
            base = holding.product_id.split("-", 1)[0]
            tracked_bases.add(base)
            held = by_currency.get(base)
            total = held.total if held is not None else _ZERO
            holding.adjust_external(total + late.get(holding.product_id, _ZERO))
        self._other_balances = tuple(
            balance
            for balance in balances
            if balance.currency != self._quote and balance.currency not in tracked_bases
        )
        self._changed()

    def on_fill(self, event: FillEventLike) -> None:
        fill = event.fill
        if not fill.product_id.endswith(self._quote_suffix):
            # Cash in another currency cannot be booked here; a wrong-currency P&L would be
            # worse than none.
            self.ignored_fills += 1
            log.warning(
                "fill %s of %s ignored: the portfolio is kept in %s",
                fill.trade_id,
                fill.product_id,
                self._quote,
            )
            return
        key = (fill.order_id, fill.trade_id)
        if key in self._seen_fills:
            return
        self._remember(key)
        self._roll_day()
        signed = fill.size if fill.side is Side.BUY else -fill.size
        holding = self._holding(fill.product_id)
        if holding.day_start_pnl is None:
            # The day began without a price for this position: the fill's price is the first
            # one seen since, so the day starts from it (before the fill itself counts).
            holding.price_unpriced(fill.price)
            holding.day_start_pnl = holding.total_pnl(fill.price)
        cash_change = -(signed * fill.price + fill.commission)
        executed = (
            fill.trade_time.timestamp() if fill.trade_time is not None else self._clock.time()
        )
        as_of = self._balances_as_of
        if as_of is not None and executed <= as_of:
            # The last balances already held this fill (its update came after them), cash
            # included: they booked it as an external change at the mark; book it as the fill
            # it is, once. Exactly when that change can be taken back; otherwise (the
            # balances netted it with other changes) the size stays what they said.
            size_in_balances = holding.size
            if holding.undo_external(signed):
                holding.apply_fill(signed, fill.price, fill.commission)
            else:
                holding.apply_fill(signed, fill.price, fill.commission)
                holding.adjust_external(size_in_balances)
        else:
            holding.apply_fill(signed, fill.price, fill.commission)
            if self._cash is not None:
                self._cash += cash_change
            self._recent_fills.append((executed, holding.product_id, signed, cash_change))
        self._changed()

    def on_order_event(self, event: object) -> None:
        """Order state changes move no money; only fills do."""

    def mark(self, product_id: str, price: Decimal | None) -> None:
        """Set the mark (mid) of a product; ``None`` when it is not known (no live book).

        The mark of an alias (a second product on an asset) is not used: the asset is
        valued once, at its primary product's mark."""
        if product_id in self._alias:
            return
        holding = self._holdings.get(product_id)
        if holding is None:
            holding = self._holding(product_id)
        elif holding.mark == price:
            return
        self._roll_day()
        holding.mark = price
        if price is not None:
            holding.last_mark = price
            holding.price_unpriced(price)
            if holding.day_start_pnl is None:
                holding.day_start_pnl = holding.total_pnl(price)
        self._changed()

    # ------------------------------------------------------------------ reading

    @property
    def version(self) -> int:
        return self._version

    @property
    def quote_currency(self) -> str:
        return self._quote

    @property
    def cash(self) -> Decimal | None:
        """Quote currency total (available + hold) after our fills; None before balances."""
        return self._cash

    @property
    def balances_version(self) -> int:
        """Counts ``set_balances`` calls (the gate notes what its orders held at each)."""
        return self._balances_version

    def mark_price(self, product_id: str) -> Decimal | None:
        """The product's current mark (mid), None when not known."""
        holding = self._holdings.get(product_id)
        return None if holding is None else holding.mark

    def hold(self, currency: str) -> Decimal:
        """What the venue held for open orders in ``currency`` at the last balances."""
        return self._holds.get(currency, _ZERO)

    @property
    def other_balances(self) -> tuple[Balance, ...]:
        """Balances of currencies no tracked product trades (not part of equity)."""
        return self._other_balances

    def size(self, product_id: str) -> Decimal:
        """Signed base size (the gate's fast path: no allocation); an alias's is its
        asset's."""
        holding = self._holdings.get(self._alias.get(product_id, product_id))
        return _ZERO if holding is None else holding.size

    def exposure(self, product_id: str) -> Decimal | None:
        """``|size x mark|``: 0 when flat, None when non-flat without a mark. An alias has
        none of its own (its asset's is counted on the primary product)."""
        if product_id in self._alias:
            return _ZERO
        holding = self._holdings.get(product_id)
        return _ZERO if holding is None else holding.exposure()

    def position(self, product_id: str) -> Position:
        holding = self._holdings.get(self._alias.get(product_id, product_id))
        if holding is None:
            return Position(product_id, _ZERO, None, _ZERO, _ZERO, None, _ZERO)
        position = _position(holding)
        if holding.product_id != product_id:
            position = dataclasses.replace(position, product_id=product_id)
        return position

    def positions(self) -> list[Position]:
        """One position per asset (aliases are not listed: their asset is)."""
        return [_position(self._holdings[key]) for key in sorted(self._holdings)]

    def primary_product(self, product_id: str) -> str:
        """The product that holds ``product_id``'s asset (itself unless an alias)."""
        return self._alias.get(product_id, product_id)

    @property
    def total_pnl(self) -> Decimal | None:
        """Realized (net of fees) + unrealized P&L since trading began (restored P&L of
        earlier processes included)."""
        return self._total_pnl

    @property
    def realized_pnl(self) -> Decimal:
        return sum((holding.realized for holding in self._holdings.values()), _ZERO)

    @property
    def fees(self) -> Decimal:
        return sum((holding.fees for holding in self._holdings.values()), _ZERO)

    @property
    def unrealized_pnl(self) -> Decimal | None:
        total = _ZERO
        for holding in self._holdings.values():
            if not holding.size:
                continue
            pnl = holding.total_pnl(holding.mark)
            if pnl is None:
                return None
            total += pnl - holding.realized
        return total

    @property
    def equity(self) -> Decimal | None:
        if self._cash is None:
            return None
        equity = self._cash
        for holding in self._holdings.values():
            if holding.size:
                if holding.mark is None:
                    return None
                equity += holding.size * holding.mark
        return equity

    @property
    def drawdown(self) -> Decimal | None:
        """How far total P&L is below its peak (>= 0); None while P&L is unknown."""
        if self._total_pnl is None:
            return None
        return self._peak_pnl - self._total_pnl

    @property
    def peak_equity(self) -> Decimal | None:
        equity = self.equity
        drawdown = self.drawdown
        if equity is None or drawdown is None:
            return None
        return equity + drawdown

    @property
    def gross_exposure(self) -> Decimal | None:
        """Sum of ``|size x mark|``; None while a non-flat position has no mark."""
        return self._gross

    @property
    def day_start_equity(self) -> Decimal | None:
        """Equity at the start of the trading day, as today's P&L explains it."""
        equity = self.equity
        daily = self.daily_pnl
        return None if equity is None or daily is None else equity - daily

    def checkpoint(self) -> PnlCheckpoint | None:
        """The P&L figures a restart must continue from; None while P&L is not known."""
        daily = self.daily_pnl
        total = self._total_pnl
        if daily is None or total is None:
            return None
        return PnlCheckpoint(
            day=self._day,
            daily_pnl=daily,
            total_pnl=total,
            peak_pnl=self._peak_pnl,
            day_start_equity=self.day_start_equity,
            peak_equity=self.peak_equity,
            marks=tuple(
                (product_id, holding.mark)
                for product_id, holding in sorted(self._holdings.items())
                if holding.mark is not None and holding.size
            ),
        )

    def restore(self, checkpoint: PnlCheckpoint) -> None:
        """Continue from a checkpoint of an earlier process (call before trading starts).

        Holdings re-adopted from balances after a restart take the mark as their cost, so
        their P&L counts from then on; the checkpoint carries everything before. A checkpoint
        of an earlier day carries no daily P&L (the day it measured is over).
        """
        self._roll_day()
        session_total = self._session_total()
        self._carried_total = checkpoint.total_pnl
        self._carried_daily = checkpoint.daily_pnl if checkpoint.day == self._day else _ZERO
        self._peak_pnl = max(checkpoint.peak_pnl, self._peak_pnl)
        for product_id, mark in checkpoint.marks:
            holding = self._holdings.get(product_id)
            if holding is not None and holding.mark is None and not holding.size:
                holding.restored_mark = mark
        if session_total is not None:
            self._peak_pnl = max(self._peak_pnl, checkpoint.total_pnl + session_total)
        self._changed()

    @property
    def daily_pnl(self) -> Decimal | None:
        """Total P&L change since the last day boundary; None while not known."""
        self._roll_day()
        daily = self._carried_daily
        for holding in self._holdings.values():
            now = holding.total_pnl(holding.mark)
            if now is None or holding.day_start_pnl is None:
                return None
            daily += now - holding.day_start_pnl
        return daily

    # ------------------------------------------------------------------ internals

    def _holding(self, product_id: str) -> _Holding:
        holding = self._holdings.get(self._alias.get(product_id, product_id))
        if holding is None:
            base = product_id.split("-", 1)[0]
            primary = self._primary_by_base.get(base)
            if primary is not None:
                self._alias[product_id] = primary
                log.info(
                    "%s shares its base with %s: one position for %s", product_id, primary, base
                )
                return self._holdings[primary]
            self._primary_by_base[base] = product_id
            holding = self._holdings[product_id] = _Holding(product_id)
        return holding

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen_fills.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > _REMEMBERED_FILLS:
            self._seen_fills.discard(self._seen_order.popleft())

    def _day_index(self) -> int:
        return int((self._clock.time() - self._boundary_s) // _SECONDS_PER_DAY)

    def _roll_day(self) -> None:
        day = self._day_index()
        if day == self._day:
            return
        self._day = day
        self._carried_daily = _ZERO
        for holding in self._holdings.values():
            # With the mark gone at the boundary, the last known mark is the best estimate.
            mark = holding.mark if holding.mark is not None else holding.last_mark
            holding.day_start_pnl = holding.total_pnl(mark)
        self._version += 1

    def _session_total(self) -> Decimal | None:
        total: Decimal | None = _ZERO
        for holding in self._holdings.values():
            pnl = holding.total_pnl(holding.mark)
            total = None if pnl is None or total is None else total + pnl
        return total

    def _changed(self) -> None:
        total = self._session_total()
        gross: Decimal | None = _ZERO
        for holding in self._holdings.values():
            exposure = holding.exposure()
            gross = None if exposure is None or gross is None else gross + exposure
        if total is not None:
            total += self._carried_total
        self._total_pnl = total
        self._gross = gross
        if total is not None and total > self._peak_pnl:
            self._peak_pnl = total
        self._version += 1


# ---------------------------------------------------------------------------- persistence


@dataclass(frozen=True, slots=True)
class PnlCheckpoint:
    """What the daily-loss and drawdown limits need to survive a restart (issue 9 §3)."""

    day: int  # trading day index (days since the epoch, shifted by the day boundary)
    daily_pnl: Decimal
    total_pnl: Decimal
    peak_pnl: Decimal
    day_start_equity: Decimal | None  # for the record: equity - daily P&L when saved
    peak_equity: Decimal | None
    # The marks of the positions held when saved: what the next process prices them at when
    # it re-adopts them from balances, so a move while it was down is in today's P&L.
    marks: tuple[tuple[str, Decimal], ...] = ()

    def encode(self) -> str:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return json.dumps(
            {
                "day": self.day,
                "daily_pnl": str(self.daily_pnl),
                "total_pnl": str(self.total_pnl),
                "peak_pnl": str(self.peak_pnl),
                "day_start_equity": text(self.day_start_equity),
                "peak_equity": text(self.peak_equity),
                "marks": {product_id: str(mark) for product_id, mark in self.marks},
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str) -> PnlCheckpoint:
        """Raises ValueError, with what is wrong, for anything but an encoded checkpoint."""
        try:
            raw = json.loads(text)

            def optional(key: str) -> Decimal | None:
                value = raw.get(key)
                return None if value is None else Decimal(value)

            checkpoint = cls(
                day=int(raw["day"]),
                daily_pnl=Decimal(raw["daily_pnl"]),
                total_pnl=Decimal(raw["total_pnl"]),
                peak_pnl=Decimal(raw["peak_pnl"]),
                day_start_equity=optional("day_start_equity"),
                peak_equity=optional("peak_equity"),
                marks=tuple(
                    (str(product_id), Decimal(mark))
                    for product_id, mark in sorted(raw.get("marks", {}).items())
                ),
            )
        except (ValueError, TypeError, KeyError, ArithmeticError, AttributeError) as exc:
            raise ValueError(f"not a P&L checkpoint ({type(exc).__name__}: {exc})") from exc
        if not all(
            value.is_finite()
            for value in (
                checkpoint.daily_pnl,
                checkpoint.total_pnl,
                checkpoint.peak_pnl,
                *(mark for _, mark in checkpoint.marks),
            )
        ):
            raise ValueError("not a P&L checkpoint (a figure is not finite)")
        return checkpoint


class KeyValueStore(Protocol):
    """Where the checkpoint lives (``core.journal.Journal``'s key/value table)."""

    def get_value(self, key: str) -> str | None: ...

    def set_value(self, key: str, value: str) -> None: ...


KEY_PNL_CHECKPOINT = "risk.pnl_checkpoint"


class PnlMemory:
    """Keeps the portfolio's P&L checkpoint in the journal and restores it at start.

    Saved when the figures change, at most once per ``min_interval_s`` (the marks move many
    times a second; one second of price move is what a crash can lose), and at once when
    ``force`` is given (after a fill, at shutdown). A journal that cannot be written is
    logged, never raised: the limits keep working in memory.
    """

    def __init__(
        self,
        portfolio: Portfolio,
        store: KeyValueStore,
        *,
        clock: Clock,
        min_interval_s: float = 1.0,
    ) -> None:
        self._portfolio = portfolio
        self._store = store
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._saved: PnlCheckpoint | None = None
        self._saved_at = float("-inf")

    def restore(self) -> str | None:
        """Restore the last checkpoint; a line for the event log saying what was restored
        (None when the journal has none: a first start)."""
        text = self._store.get_value(KEY_PNL_CHECKPOINT)
        if text is None:
            return None
        try:
            checkpoint = PnlCheckpoint.decode(text)
        except ValueError as exc:
            log.error("P&L checkpoint unreadable: %s", exc)
            return f"P&L checkpoint unreadable ({exc}): daily P&L and peak start at 0"
        self._portfolio.restore(checkpoint)
        self._saved = checkpoint
        daily = self._portfolio.daily_pnl
        return (
            f"restored P&L: today {'unknown' if daily is None else f'{daily:,.2f}'}, total "
            f"{checkpoint.total_pnl:,.2f}, peak {checkpoint.peak_pnl:,.2f}"
        )

    def save(self, *, force: bool = False) -> bool:
        """Journal the checkpoint if it changed (and is due); True if it was written."""
        now = self._clock.monotonic()
        if not force and now - self._saved_at < self._min_interval_s:
            return False
        checkpoint = self._portfolio.checkpoint()
        if checkpoint is None or _same_figures(checkpoint, self._saved):
            return False
        try:
            self._store.set_value(KEY_PNL_CHECKPOINT, checkpoint.encode())
        except Exception:  # a full disk must not stop trading's limits, which live in memory
            log.exception("could not journal the P&L checkpoint")
            return False
        self._saved = checkpoint
        self._saved_at = now
        return True


def _same_figures(a: PnlCheckpoint, b: PnlCheckpoint | None) -> bool:
    return (
        b is not None
        and a.day == b.day
        and a.daily_pnl == b.daily_pnl
        and a.total_pnl == b.total_pnl
        and a.peak_pnl == b.peak_pnl
        and a.marks == b.marks
    )


def _position(holding: _Holding) -> Position:
    size = holding.size
    avg_entry = holding.cost / size if size and not holding.unpriced else None
    total = holding.total_pnl(holding.mark)
    unrealized = None if total is None else total - holding.realized
    return Position(
        holding.product_id,
        size,
        avg_entry,
        holding.realized,
        holding.fees,
        holding.mark,
        unrealized,
    )
