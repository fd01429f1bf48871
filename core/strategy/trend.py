"""A moving-average trend follower: long on a fast-over-slow cross, flat on the reverse cross.

Signal: the mid is sampled on each timer tick; the fast and slow averages are plain means of the
samples of the last ``fast_window_s`` / ``slow_window_s`` seconds. Nothing is
decided until the slow window is full, i.e. sampling has run for ``slow_window_s`` without
a gap longer than the fast window (a gap restarts the warm-up, since averages across a hole in
the data describe no market). The trend is UP when fast > slow and DOWN when fast < slow (with an
optional band to ignore tiny differences); the first trend seen after warm-up is not a cross.
An UP cross sets the target to ``order_size`` of base held by this strategy, a DOWN cross
sets it to zero.

Execution: while the strategy's own inventory differs from the target, it sends one marketable
limit IOC order for the difference, priced at the touch +/- ``price_cap_bps`` (10 bps) so a thin
book can never fill it far away, and sends nothing else until that order has ended (one order in
flight at a time, at most one per ``min_order_interval_s``). An IOC that misses leaves the
inventory short of the target and is retried with exponential backoff. Spot: it sells only what
its own fills bought and never more than the account's position holds, so it never goes short.

Pause cancels the order in flight (if any) and sends nothing until resume; sampling continues
and a cross while paused still moves the target, so resume acts on the trend as it is now rather
than on a stale one. Neither pause nor stop sells what the strategy holds.

In the demo (BTC-USD around 68,000, defaults from ``TrendSettings``): the first decision comes
two minutes after start (the 120 s slow window), then each cross of the 30 s average over the 120 s
average buys 0.001 BTC (about 68 USD) with a cap near 68 USD above the ask, and the reverse cross
sells it with a cap near 68 USD below the bid. Each round trip pays the taker fee twice (0.6 % a
side in the simulator), so on the simulated market, which has no lasting trends, expect a small
loss per round trip: the strategy shows the machinery working, it is not an edge.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from core.config import TrendSettings
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


@dataclass(frozen=True, slots=True)
class TrendParams:
    product_id: str
    fast_window_s: float
    slow_window_s: float
    order_size: Decimal
    # Worst price accepted, in bps beyond the touch.
    price_cap_bps: Decimal = Decimal(10)
    # The fast average must differ from the slow one by more than this to change the trend.
    cross_band_bps: Decimal = Decimal(0)
    min_order_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.fast_window_s < self.slow_window_s:
            raise ValueError(
                f"the fast window ({self.fast_window_s} s) must be shorter than the slow "
                f"window ({self.slow_window_s} s)"
            )
        if self.order_size <= 0 or not 0 < self.price_cap_bps < 10_000 or self.cross_band_bps < 0:
            raise ValueError(
                "order size must be positive, the price cap within (0, 10000) bps, "
                "the band not negative"
            )
        if self.min_order_interval_s < 0:
            raise ValueError("the minimum order interval must not be negative")

    @classmethod
    def from_settings(cls, product_id: str, settings: TrendSettings) -> TrendParams:
        return cls(
            product_id=product_id,
            fast_window_s=settings.fast_window_s,
            slow_window_s=settings.slow_window_s,
            order_size=settings.order_size,
        )


class Trend(StrEnum):
    UP = "UP"
    DOWN = "DOWN"


class MovingAverages:
    """Fast and slow time-window means of timestamped samples (timestamps never go back)."""

    def __init__(self, fast_window_s: float, slow_window_s: float) -> None:
        self._fast_s = fast_window_s
        self._slow_s = slow_window_s
        self._samples: deque[tuple[float, float]] = deque()
        self._warm_since: float | None = None

    def add(self, now: float, value: float) -> None:
        if self._samples and now - self._samples[-1][0] > self._fast_s:
            self.reset()  # a hole longer than the fast window: start over
        if self._warm_since is None:
            self._warm_since = now
        self._samples.append((now, value))
        horizon = now - self._slow_s
        while self._samples[0][0] < horizon:
            self._samples.popleft()

    def reset(self) -> None:
        self._samples.clear()
        self._warm_since = None

    def full(self, now: float) -> bool:
        return self._warm_since is not None and now - self._warm_since >= self._slow_s

    def fast(self, now: float) -> float:
        horizon = now - self._fast_s
        return _mean([value for at, value in self._samples if at >= horizon])

    def slow(self) -> float:
        return _mean([value for _, value in self._samples])


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


class TrendFollower(StrategyBase):
    """Holds ``order_size`` of base while the fast average is above the slow one."""

    def __init__(self, params: TrendParams, *, strategy_id: str = "trend") -> None:
        super().__init__(strategy_id, params)
        self.params = params
        self._averages = MovingAverages(params.fast_window_s, params.slow_window_s)
        self._trend: Trend | None = None
        self._target = Decimal(0)
        self._last_order_at = float("-inf")
        self._backoff = SubmitBackoff()

    @property
    def trend(self) -> Trend | None:
        """The current trend; None until both windows are full."""
        return self._trend

    @property
    def target(self) -> Decimal:
        """The inventory the last cross asked for: ``order_size`` or zero."""
        return self._target

    def on_timer(self, now: float) -> None:
        if self.running:
            self._sample(now)
        super().on_timer(now)

    def _sample(self, now: float) -> None:
        mid = self.ctx.book(self.product_id).mid
        if mid is None:
            return  # a hole in the data; too long a hole restarts the warm-up in ``add``
        self._averages.add(now, mid)
        if not self._averages.full(now):
            self._trend = None
            return
        trend = self._classify(self._averages.fast(now), self._averages.slow())
        if trend is None or trend is self._trend:
            return
        if self._trend is not None:  # a cross; the first trend after warm-up is not one
            self._target = self.params.order_size if trend is Trend.UP else Decimal(0)
        self._trend = trend

    def _classify(self, fast: float, slow: float) -> Trend | None:
        band = slow * float(bps(self.params.cross_band_bps))
        if fast > slow + band:
            return Trend.UP
        if fast < slow - band:
            return Trend.DOWN
        return None

    def _evaluate(self, now: float) -> None:
        if len(self._orders) > 0:
            return  # one order in flight at a time
        if not self._backoff.ready(now) or now - self._last_order_at < (
            self.params.min_order_interval_s
        ):
            return
        ctx = self.ctx
        product = ctx.product(self.product_id)
        top = ctx.book(self.product_id)
        if product is None or not top.two_sided:
            return
        gap = self._target - self.inventory
        if gap > 0:
            self._send(Side.BUY, gap, top, product, now)
        elif gap < 0:
            # Spot: sell only what this strategy bought and the account still holds.
            held = max(ctx.position(self.product_id).size, Decimal(0))
            self._send(Side.SELL, min(-gap, held), top, product, now)

    def _send(self, side: Side, size: Decimal, top: BookTop, product: Product, now: float) -> None:
        size = product.round_size_down(size)
        price = _capped_price(side, top, product, self.params.price_cap_bps)
        if (
            not product.base_min_size <= size <= product.base_max_size
            or size * price < product.quote_min_size
        ):
            return
        spec = OrderSpec(
            product_id=self.product_id,
            side=side,
            order_type=OrderType.LIMIT,
            base_size=size,
            limit_price=price,
            time_in_force=TimeInForce.IOC,
        )
        tag = self._orders.new_tag("buy" if side is Side.BUY else "sell")
        intent = OrderIntent(
            spec=spec, source=IntentSource.STRATEGY, strategy_id=self.strategy_id, note=tag
        )
        self._submit(intent, TrackedOrder(tag=tag, side=side, limit_price=price, submitted_at=now))
        self._last_order_at = now

    def _on_order_ended(self, ended: EndedOrder, now: float) -> None:
        if not ended.order.orphan:
            self._backoff.record(ended, now)


def _capped_price(side: Side, top: BookTop, product: Product, cap_bps: Decimal) -> Decimal:
    """A marketable limit: the far touch moved by the cap, snapped to the tick toward it."""
    if side is Side.BUY:
        return product.snap_price(to_decimal(top.best_ask or 0.0) * (1 + bps(cap_bps)), side)
    return product.snap_price(to_decimal(top.best_bid or 0.0) * (1 - bps(cap_bps)), side)
