"""Market agents: a believable live market on the simulated exchange, with no network.

Per product a fair value follows a seeded random walk (log-price, slowly pulled back to the
start price) whose volatility switches between a calm and a burst regime. One market maker
quotes a ladder of hundreds of levels a side around the fair value: it re-quotes the levels
near the top often and the deep ones rarely, so the ladder follows the fair value the way a
real book does. Takers trade through it with market orders and marketable IOC limits of varied
size, leaning towards the fair value (so stale quotes get picked off) with now and then a sweep.

Agents use the exchange's public API under their own user ids, so every book change, trade and
fill reaches the listeners exactly as a user's would.

``rate`` is what a level2 subscriber sees: about ``rate`` price-level updates per second across
all products, on the wire. The server flushes once per ``step`` and sends each changed level
once per flush (its latest size), so two changes of one level within a step are ONE update: a
re-quote at an unchanged price (cancel + new order) changes its level twice, a taker walking a
level changes it once per fill. ``step(dt)`` therefore counts the DISTINCT (product, side,
price) levels it changed and stops at about ``rate * dt`` of them; the raw engine changes are
more (~1.1x of them at 400/s, ~1.65x at 5,000/s). To keep that overhead (and so the CPU per update) down, the maker
re-quotes each ladder slot at most once per step: a pick that was already re-quoted moves
on to the next deeper slot, so a busy step refreshes more of the ladder instead of churning
the same top levels, as a real maker's quote refresh does. Same seed and same calls => same
market.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.model import ExchangeOrderStatus, Side
from core.sim.exchange import SimExchange
from core.sim.types import SimCandle, SimFill, SimOrder, SimOrderRequest, SimTrade

__all__ = ["MAKER_USER_ID", "TAKER_USER_ID", "MarketAgents"]

MAKER_USER_ID = "agent-market-maker"
TAKER_USER_ID = "agent-taker"

_SECONDS_PER_YEAR = 365.0 * 86_400.0
_CALM_VOLATILITY = 0.5  # annualised, a quiet crypto day
_BURST_VOLATILITY = 3.0
_MEAN_BURST_GAP_S = 120.0  # calm spells last ~2 min on average ...
_MEAN_BURST_LENGTH_S = 15.0  # ... and bursts ~15 s
_REVERSION_PER_S = 1.0 / 21_600.0  # fair value drifts back to its start over hours, not minutes
_SLICE_S = 0.05  # the fair value moves in steps of at most this much time
_TOP_INDEX_MEAN = 6.0  # most re-quotes hit the first dozen levels
_DEEP_REQUOTE_SHARE = 0.12  # the rest pick any level
# Share of actions that take liquidity: ~1 trade per 8 level2 updates (~600 trades/s at
# 5,000 updates/s, ~25/s at 400), so a busy book is mostly re-quoting, as real ones are.
_TAKER_SHARE = 0.12
# Raw engine book changes a step may spend per level update it owes. Normally ~1.3-2 are
# needed; the cap only bites when a step asks for more distinct levels than the books can
# offer (a huge rate on a thin ladder), so such a step ends short instead of spinning.
_MAX_CHANGES_PER_UPDATE = 6.0


@dataclass(slots=True)
class _Ladder:
    """The market maker's quotes on one side: order id and price (ticks) per ladder index."""

    order_ids: list[str | None]
    ticks: list[int]


@dataclass(slots=True)
class _ProductState:
    """What the agents know and keep about one product."""

    product_id: str
    tick: Decimal
    lot: Decimal
    tick_size: float
    lot_size: float
    start_log_price: float
    log_price: float
    offsets: list[int]  # distance of ladder index i from the fair value, in ticks
    quote_size: float  # typical base size of one quote near the top
    bids: _Ladder
    asks: _Ladder

    @property
    def fair_ticks(self) -> int:
        return round(math.exp(self.log_price) / self.tick_size)


class _AgentListener:
    """Counts book changes and the distinct levels they touched since ``touched`` was last
    cleared (so ``step`` can meet its rate in wire updates), and notices the maker's filled
    quotes (so their ladder slots are refilled first, as a real maker replenishes a sweep)."""

    def __init__(self) -> None:
        self.book_changes = 0
        self.touched: set[tuple[str, Side, Decimal]] = set()
        self.filled_quotes: list[str] = []

    def on_book_change(
        self, product_id: str, side: Side, price: Decimal, new_size: Decimal, time: datetime
    ) -> None:
        self.book_changes += 1
        self.touched.add((product_id, side, price))

    def on_trade(self, trade: SimTrade) -> None:
        return None

    def on_order_update(self, order: SimOrder) -> None:
        if order.status is ExchangeOrderStatus.FILLED and order.user_id == MAKER_USER_ID:
            self.filled_quotes.append(order.order_id)

    def on_fill(self, fill: SimFill) -> None:
        return None


class MarketAgents:
    """Market maker and takers for every product of ``exchange``."""

    def __init__(
        self,
        exchange: SimExchange,
        *,
        seed: int,
        rate: float,
        levels: int = 300,
        depth_fraction: float = 0.015,
    ) -> None:
        if levels < 2:
            raise ValueError("the ladder needs at least 2 levels a side")
        self.rate = rate
        self._exchange = exchange
        self._rng = random.Random(seed)
        self._levels = levels
        self._counter = _AgentListener()
        exchange.add_listener(self._counter)
        # order id -> (product state, side, ladder index) of every live quote
        self._slots: dict[str, tuple[_ProductState, Side, int]] = {}
        self._refills: deque[tuple[_ProductState, Side, int]] = deque()
        # Ladder slots re-quoted in the current step, as (product, side, index).
        self._requoted: set[tuple[str, Side, int]] = set()
        self._level_updates = 0
        self._debt = 0.0  # level updates owed to the rate, carried between steps
        self._burst = False
        self._sequence = 0
        self._bootstrapped = False
        self._states: list[_ProductState] = []
        balances: dict[str, Decimal] = {}
        for product_id, product in exchange.products.items():
            start = float(exchange.last_price(product_id))
            tick_size = float(product.price_increment)
            self._states.append(
                _ProductState(
                    product_id=product_id,
                    tick=product.price_increment,
                    lot=product.base_increment,
                    tick_size=tick_size,
                    lot_size=float(product.base_increment),
                    start_log_price=math.log(start),
                    log_price=math.log(start),
                    offsets=_ladder_offsets(levels, start * depth_fraction / tick_size),
                    quote_size=3_000.0 / start,  # ~3,000 quote per level near the top
                    bids=_Ladder([None] * levels, [0] * levels),
                    asks=_Ladder([None] * levels, [0] * levels),
                )
            )
            # Large enough that hours of one-sided flow cannot drain them.
            balances[product.base_currency] = Decimal(round(2e9 / start))
            balances[product.quote_currency] = Decimal(2_000_000_000)
        for user_id in (MAKER_USER_ID, TAKER_USER_ID):
            exchange.open_account(user_id, balances)
            # Agents trade on a zero-fee tier so their balances do not bleed away in long demos.
            exchange.set_fee_rates(user_id, Decimal(0), Decimal(0))

    @property
    def book_changes(self) -> int:
        """Book changes the exchange reported since the agents were created (all sources)."""
        return self._counter.book_changes

    @property
    def level_updates(self) -> int:
        """Distinct levels changed, counted once per step: the level2 updates that a client
        subscribed to every product received, when the server flushes after each step."""
        return self._level_updates

    def bootstrap(self, *, history_minutes: int = 24 * 60) -> None:
        """Fill each book with the full ladder (``levels`` quotes a side) around its start
        price, and give each product ``history_minutes`` of one-minute candles that end at it."""
        for state in self._states:
            if history_minutes > 0:
                self._exchange.seed_candles(state.product_id, self._history(state, history_minutes))
            for index in range(self._levels):
                self._requote(state, Side.BUY, index)
                self._requote(state, Side.SELL, index)
        self._bootstrapped = True

    def _history(self, state: _ProductState, minutes: int) -> list[SimCandle]:
        """A calm random walk run backwards from the start price, one candle per minute."""
        rng = self._rng
        tick = state.tick
        sub_sigma = _CALM_VOLATILITY * math.sqrt(10.0 / _SECONDS_PER_YEAR)  # 10 s sub-steps
        now_minute = int(self._exchange.clock.time()) // 60 * 60
        close = math.exp(state.start_log_price)
        candles: list[SimCandle] = []
        for age in range(1, minutes + 1):
            path = [close]
            for _ in range(6):
                path.append(path[-1] * math.exp(sub_sigma * rng.gauss(0.0, 1.0)))
            # Walking backwards: the path runs from this minute's close to its open.
            volume = state.quote_size * 20.0 * math.exp(rng.gauss(0.0, 0.6))
            candles.append(
                SimCandle(
                    start=now_minute - 60 * age,
                    low=_to_tick(min(path), state.tick_size, tick),
                    high=_to_tick(max(path), state.tick_size, tick),
                    open=_to_tick(path[-1], state.tick_size, tick),
                    close=_to_tick(path[0], state.tick_size, tick),
                    volume=state.lot * max(1, round(volume / state.lot_size)),
                )
            )
            close = path[-1]
        return candles

    def step(self, dt: float) -> None:
        """Advance the market by ``dt`` seconds: about ``rate * dt`` distinct price levels
        changed in total (what one flush after this step puts on the wire)."""
        if dt <= 0:
            return
        if not self._bootstrapped:
            self.bootstrap()
        counter = self._counter
        touched = counter.touched
        touched.clear()
        self._requoted.clear()
        slices = max(1, math.ceil(dt / _SLICE_S))
        slice_dt = dt / slices
        for _ in range(slices):
            self._move_fair_values(slice_dt)
            owed = self.rate * slice_dt
            self._debt += owed
            budget = counter.book_changes + _MAX_CHANGES_PER_UPDATE * owed + 8
            idle = 0
            while self._debt > 0 and idle < 8 and counter.book_changes < budget:
                changes, levels = counter.book_changes, len(touched)
                self._act()
                made = counter.book_changes - changes
                # Only levels not yet changed in this step are new on the wire.
                self._debt -= len(touched) - levels
                # An action that changed nothing (e.g. a refused order) still costs a little,
                # so a market that cannot move cannot spin here.
                if made == 0:
                    idle += 1
                    self._debt -= 0.5
                else:
                    idle = 0
            # A shortfall (a stuck or exhausted market) is forgiven, not carried: catching
            # it up later would turn into a burst; an overshoot is carried to keep the mean.
            self._debt = min(self._debt, 0.0)
        self._level_updates += len(touched)

    # -- the fair value ----------------------------------------------------------------------

    def _move_fair_values(self, dt: float) -> None:
        rng = self._rng
        # Regime switching: a Poisson clock flips between calm and burst.
        flip_rate = 1.0 / (_MEAN_BURST_LENGTH_S if self._burst else _MEAN_BURST_GAP_S)
        if rng.random() < 1.0 - math.exp(-flip_rate * dt):
            self._burst = not self._burst
        volatility = _BURST_VOLATILITY if self._burst else _CALM_VOLATILITY
        sigma = volatility * math.sqrt(dt / _SECONDS_PER_YEAR)
        for state in self._states:
            pull = (state.start_log_price - state.log_price) * _REVERSION_PER_S * dt
            state.log_price += pull + sigma * rng.gauss(0.0, 1.0)

    # -- actions -----------------------------------------------------------------------------

    def _act(self) -> None:
        rng = self._rng
        self._collect_filled_quotes()
        if self._refills:
            state, side, index = self._refills.popleft()
            self._requote(state, side, index)
            return
        state = self._states[rng.randrange(len(self._states))]
        if rng.random() < _TAKER_SHARE:
            self._take(state)
            return
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        if rng.random() < _DEEP_REQUOTE_SHARE:
            index = rng.randrange(self._levels)
        else:
            index = min(self._levels - 1, int(rng.expovariate(1.0 / _TOP_INDEX_MEAN)))
        self._requote(state, side, self._unrequoted_index(state, side, index))

    def _unrequoted_index(self, state: _ProductState, side: Side, index: int) -> int:
        """``index``, or the next deeper slot not re-quoted yet in this step (a slot changed
        twice in a step reaches the wire once, so a second re-quote would be wasted work)."""
        requoted = self._requoted
        product_id = state.product_id
        for candidate in range(index, self._levels):
            key = (product_id, side, candidate)
            if key not in requoted:
                requoted.add(key)
                return candidate
        return index  # the whole ladder below was refreshed this step: re-quote it again

    def _requote(self, state: _ProductState, side: Side, index: int) -> None:
        """Move one ladder quote to its target price around the fair value, with a new size."""
        exchange = self._exchange
        ladder = state.bids if side is Side.BUY else state.asks
        old_id = ladder.order_ids[index]
        if old_id is not None:
            exchange.cancel_orders(MAKER_USER_ID, [old_id])
            ladder.order_ids[index] = None
            self._slots.pop(old_id, None)
        offset = state.offsets[index]
        fair = state.fair_ticks
        ticks = fair - offset if side is Side.BUY else fair + offset
        ticks = self._keep_passive(state, side, ticks)
        if ticks <= 0:
            return
        depth_factor = 1.0 + index / 40.0
        size = state.quote_size * depth_factor * math.exp(self._rng.gauss(0.0, 0.7))
        lots = max(1, round(size / state.lot_size))
        result = exchange.create_order(
            MAKER_USER_ID,
            SimOrderRequest(
                client_order_id=self._next_client_id("mm"),
                product_id=state.product_id,
                side=side,
                config_kind="limit_limit_gtc",
                base_size=state.lot * lots,
                limit_price=state.tick * ticks,
                post_only=True,
            ),
        )
        if result.success and result.order is not None:
            order_id = result.order.order_id
            ladder.order_ids[index] = order_id
            ladder.ticks[index] = ticks
            self._slots[order_id] = (state, side, index)
            self._collect_filled_quotes()  # never our own new quote: it is post-only

    def _collect_filled_quotes(self) -> None:
        """Empty the slots of quotes that takers filled and queue them for a refill."""
        filled = self._counter.filled_quotes
        if not filled:
            return
        for order_id in filled:
            slot = self._slots.pop(order_id, None)
            if slot is None:
                continue
            state, side, index = slot
            ladder = state.bids if side is Side.BUY else state.asks
            if ladder.order_ids[index] == order_id:
                ladder.order_ids[index] = None
                self._refills.append(slot)
        filled.clear()

    def _keep_passive(self, state: _ProductState, side: Side, ticks: int) -> int:
        """Pull our own stale quotes that the new price would cross; stay behind anyone else's."""
        bid, ask = self._exchange.best_bid_ask(state.product_id)
        opposite_best = ask if side is Side.BUY else bid
        if opposite_best is None:
            return ticks
        best_ticks = int(opposite_best / state.tick)
        crosses = ticks >= best_ticks if side is Side.BUY else ticks <= best_ticks
        if not crosses:
            return ticks
        other = state.asks if side is Side.BUY else state.bids
        other_side = side.opposite
        stale = [
            order_id
            for order_id, quote_ticks in zip(other.order_ids, other.ticks, strict=True)
            if order_id is not None
            and (quote_ticks <= ticks if side is Side.BUY else quote_ticks >= ticks)
        ]
        if stale:
            self._exchange.cancel_orders(MAKER_USER_ID, stale)
            for position, order_id in enumerate(other.order_ids):
                if order_id in stale:
                    other.order_ids[position] = None
                    self._slots.pop(order_id, None)
                    self._refills.append((state, other_side, position))
        bid, ask = self._exchange.best_bid_ask(state.product_id)
        opposite_best = ask if side is Side.BUY else bid
        if opposite_best is None:
            return ticks
        best_ticks = int(opposite_best / state.tick)
        if side is Side.BUY:
            return min(ticks, best_ticks - 1)
        return max(ticks, best_ticks + 1)

    def _take(self, state: _ProductState) -> None:
        """One taker order: market or marketable IOC limit, leaning towards the fair value."""
        rng = self._rng
        bid, ask = self._exchange.best_bid_ask(state.product_id)
        fair = state.fair_ticks
        if ask is not None and fair > int(ask / state.tick):
            side = Side.BUY if rng.random() < 0.85 else Side.SELL
        elif bid is not None and fair < int(bid / state.tick):
            side = Side.SELL if rng.random() < 0.85 else Side.BUY
        else:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
        size = state.quote_size * 0.4 * math.exp(rng.gauss(0.0, 1.0))
        if rng.random() < 0.03:  # now and then someone sweeps several levels
            size *= 25.0
        lots = max(1, round(size / state.lot_size))
        if rng.random() < 0.6:
            request = SimOrderRequest(
                client_order_id=self._next_client_id("tk"),
                product_id=state.product_id,
                side=side,
                config_kind="market_market_ioc",
                base_size=state.lot * lots,
            )
        else:
            reach = state.offsets[min(self._levels - 1, rng.randrange(4))]
            ticks = fair + reach if side is Side.BUY else max(1, fair - reach)
            request = SimOrderRequest(
                client_order_id=self._next_client_id("tk"),
                product_id=state.product_id,
                side=side,
                config_kind="sor_limit_ioc",
                base_size=state.lot * lots,
                limit_price=state.tick * ticks,
            )
        self._exchange.create_order(TAKER_USER_ID, request)

    def _next_client_id(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}-{self._sequence}"


def _to_tick(price: float, tick_size: float, tick: Decimal) -> Decimal:
    return tick * max(1, round(price / tick_size))


def _ladder_offsets(levels: int, span_ticks: float) -> list[int]:
    """Strictly increasing distances from the fair value: dense at the top, sparse deep down.

    Level i sits ``1 + i`` ticks out plus a quadratic share of the rest of the span, so the
    first levels are a tick or two apart and the deepest ones spread to ``span_ticks``.
    """
    extra = max(0.0, span_ticks - levels)
    return [1 + i + int(extra * (i / (levels - 1)) ** 2) for i in range(levels)]
