"""An inventory-aware market maker: one post-only bid and one post-only ask around mid.

Pricing (``quote_plan``): half spread ``h = mid * half_spread_bps / 10_000``; inventory ratio
``q = inventory / max_inventory`` clamped to [-1, 1]; both quotes shift by
``-q * inventory_skew * h``. Long inventory therefore lowers both prices: the bid moves away from
mid (buy less eagerly) and the ask moves toward it (sell more eagerly), and short inventory does
the opposite. With the default skew of 1 a full inventory puts the ask on mid and the bid a whole
spread below it. Prices are snapped to the tick passively (bids down, asks up) and kept off the
far touch, so a post-only quote is never rejected for crossing. A side whose fill would take the
inventory beyond ``max_inventory`` is not quoted (its working quote is cancelled at once).

Requoting: a working quote whose price is no longer the desired one is replaced when it is
``requote_s`` old, or at once when the mid has moved more than ``requote_mid_fraction`` (0.5)
of the half spread since it was priced (the quote is being run over). A quote at the desired
price is left alone, which keeps its place in the queue. Replacement is cancel first, place only
once the old quote has left the open orders, so there is never more than one working quote per
side, and a side places at most once per ``PLACE_FLOOR_S`` (a quote rejected for crossing is
retried, but not in a tight loop). Refused quotes (denied by the gate, e.g. while HALTED) back off
exponentially up to 30 s. No market (the book is not LIVE or one-sided) pulls both quotes.

Inventory is what this strategy's own fills added since it started, not the account's balance;
on spot, an ask with negative inventory sells base the account already holds, and the risk gate's
balance check denies it if there is none.

In the demo (BTC-USD around 68,000, tick 0.01, size increment 1e-8, defaults from
``MarketMakerSettings``): the half spread is about 34 USD, so the bid rests near 67,966 and the ask
near 68,034, 0.001 BTC each (about 68 USD notional, well inside the default risk limits). The
simulated market's spread is far tighter, so quotes fill when the price swings about 34 USD; each
fill moves both quotes 3.4 USD against the inventory, and after ten net fills on one side
(0.01 BTC) that side stops until the other side trades. Quotes are refreshed at most once a second
unless the mid moves more than about 17 USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.config import MarketMakerSettings
from core.model import IntentSource, OrderIntent, OrderSpec, OrderType, Product, Side, TimeInForce
from core.strategy.base import (
    BookTop,
    EndedOrder,
    StrategyBase,
    SubmitBackoff,
    TrackedOrder,
    bps,
    to_decimal,
)

PLACE_FLOOR_S = 0.25
"""Least time between two placements on one side (capped by ``requote_s``)."""

_ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class MarketMakerParams:
    product_id: str
    order_size: Decimal
    half_spread_bps: Decimal
    max_inventory: Decimal
    requote_s: float
    # Requote at once when the mid moved more than this fraction of the half spread.
    requote_mid_fraction: Decimal = Decimal("0.5")
    # How far a full inventory shifts both quotes, in half spreads.
    inventory_skew: Decimal = _ONE

    def __post_init__(self) -> None:
        if self.order_size <= 0 or self.half_spread_bps <= 0 or self.max_inventory <= 0:
            raise ValueError("order size, half spread and max inventory must be positive")
        if self.order_size > self.max_inventory:
            raise ValueError(
                f"the order size ({self.order_size}) exceeds the max inventory "
                f"({self.max_inventory}): no quote could ever be placed"
            )
        if self.requote_s <= 0 or self.requote_mid_fraction <= 0 or self.inventory_skew < 0:
            raise ValueError("requote interval and fraction must be positive, skew not negative")

    @classmethod
    def from_settings(cls, product_id: str, settings: MarketMakerSettings) -> MarketMakerParams:
        return cls(
            product_id=product_id,
            order_size=settings.order_size,
            half_spread_bps=settings.half_spread_bps,
            max_inventory=settings.max_inventory,
            requote_s=settings.requote_s,
        )


@dataclass(frozen=True, slots=True)
class Quote:
    side: Side
    price: Decimal
    size: Decimal


@dataclass(frozen=True, slots=True)
class QuotePlan:
    """The quotes wanted right now; a side is None when it must not be quoted."""

    mid: Decimal
    half_spread: Decimal  # in quote currency
    bid: Quote | None
    ask: Quote | None

    def quote(self, side: Side) -> Quote | None:
        return self.bid if side is Side.BUY else self.ask


def quote_plan(
    top: BookTop, product: Product, inventory: Decimal, params: MarketMakerParams
) -> QuotePlan | None:
    """The bid and ask to quote for ``top`` and ``inventory``; None without a two-sided book."""
    if not top.two_sided or top.best_bid is None or top.best_ask is None:
        return None
    best_bid = to_decimal(top.best_bid)
    best_ask = to_decimal(top.best_ask)
    mid = (best_bid + best_ask) / 2
    half = mid * bps(params.half_spread_bps)
    ratio = max(-_ONE, min(_ONE, inventory / params.max_inventory))
    shift = -ratio * params.inventory_skew * half
    tick = product.price_increment
    # Post-only: a bid at or above the best ask (an ask at or below the best bid) would be
    # rejected by the exchange, so never quote through the far touch.
    bid_price = min(product.snap_price(mid - half + shift, Side.BUY), best_ask - tick)
    ask_price = max(product.snap_price(mid + half + shift, Side.SELL), best_bid + tick)
    size = product.round_size_down(params.order_size)
    bid = ask = None
    if _quotable(product, size, bid_price) and inventory + size <= params.max_inventory:
        bid = Quote(Side.BUY, bid_price, size)
    if _quotable(product, size, ask_price) and inventory - size >= -params.max_inventory:
        ask = Quote(Side.SELL, ask_price, size)
    return QuotePlan(mid=mid, half_spread=half, bid=bid, ask=ask)


def _quotable(product: Product, size: Decimal, price: Decimal) -> bool:
    return (
        price > 0
        and product.base_min_size <= size <= product.base_max_size
        and size * price >= product.quote_min_size
    )


class MarketMaker(StrategyBase):
    """Quotes both sides of one product, leaning against its own inventory."""

    def __init__(self, params: MarketMakerParams, *, strategy_id: str = "market_maker") -> None:
        super().__init__(strategy_id, params)
        self.params = params
        self._place_floor_s = min(PLACE_FLOOR_S, params.requote_s)
        self._last_placed: dict[Side, float] = {Side.BUY: float("-inf"), Side.SELL: float("-inf")}
        self._backoff = {Side.BUY: SubmitBackoff(), Side.SELL: SubmitBackoff()}

    def _evaluate(self, now: float) -> None:
        ctx = self.ctx
        product = ctx.product(self.product_id)
        top = ctx.book(self.product_id)
        plan = quote_plan(top, product, self.inventory, self.params) if product else None
        if plan is None:
            # No trustworthy market to price from: quotes resting on it are a free option
            # for everyone else.
            self._cancel(self._orders.all(), now)
            return
        for side in Side:
            self._manage_side(side, plan, now)

    def _manage_side(self, side: Side, plan: QuotePlan, now: float) -> None:
        wanted = plan.quote(side)
        orders = self._orders.on_side(side)
        ours = [o for o in orders if not o.orphan]  # orphans are cancelled on every tick
        if not ours:
            # Place only on an empty side (an orphan still rests until its cancel is done),
            # so a side never holds two working quotes.
            if not orders and wanted is not None and self._may_place(side, now):
                self._place(wanted, plan.mid, now)
            return
        working = ours[0]
        if working.cancel_requested_at is not None:
            self._cancel([working], now)  # re-sent only if the first request went unanswered
            return
        if wanted is None:
            self._cancel([working], now)  # the inventory cap (or product limits) stop this side now
            return
        if working.limit_price != wanted.price and self._due_for_requote(working, plan, now):
            self._cancel([working], now)

    def _due_for_requote(self, working: TrackedOrder, plan: QuotePlan, now: float) -> bool:
        if now - working.submitted_at >= self.params.requote_s or working.reference_mid is None:
            return True
        moved = abs(plan.mid - working.reference_mid)
        return moved > self.params.requote_mid_fraction * plan.half_spread

    def _may_place(self, side: Side, now: float) -> bool:
        return (
            self._backoff[side].ready(now) and now - self._last_placed[side] >= self._place_floor_s
        )

    def _place(self, quote: Quote, mid: Decimal, now: float) -> None:
        spec = OrderSpec(
            product_id=self.product_id,
            side=quote.side,
            order_type=OrderType.LIMIT,
            base_size=quote.size,
            limit_price=quote.price,
            time_in_force=TimeInForce.GTC,
            post_only=True,
        )
        tag = self._orders.new_tag("bid" if quote.side is Side.BUY else "ask")
        intent = OrderIntent(
            spec=spec, source=IntentSource.STRATEGY, strategy_id=self.strategy_id, note=tag
        )
        order = TrackedOrder(
            tag=tag,
            side=quote.side,
            limit_price=quote.price,
            submitted_at=now,
            reference_mid=mid,
        )
        self._submit(intent, order)
        self._last_placed[quote.side] = now

    def _on_order_ended(self, ended: EndedOrder, now: float) -> None:
        if not ended.order.orphan:
            self._backoff[ended.order.side].record(ended, now)
