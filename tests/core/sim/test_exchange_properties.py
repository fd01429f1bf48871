"""Properties of SimExchange under random order flow (hypothesis).

After every operation of a random sequence of limit / IOC / FOK / GTD / post-only / market /
stop-limit orders, cancels and clock moves:
- every currency's total over all users (fee account included) is what was deposited;
- no balance is negative, and each user's hold equals what their open orders still hold;
- the book is never crossed, each level is the sum of its resting orders, and each resting
  order is an OPEN order with exactly its unfilled size on the book;
- replaying the listener's book changes gives exactly the book (what level2 clients rebuild).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.model import ExchangeOrderStatus, Side, StopDirection
from core.sim.exchange import FEE_USER_ID, SimExchange
from core.sim.types import SimFill, SimOrder, SimOrderRequest, SimTrade

D = Decimal
BTC = "BTC-USD"
USERS = ("u0", "u1", "u2")
LIQUIDITY = "lp"  # seeds each example's book so random orders meet resting ones
DEPOSIT = {"USD": D(1_000_000), "BTC": D(12)}


class BookReplay:
    """A listener that rebuilds the aggregated book from on_book_change alone."""

    def __init__(self) -> None:
        self.levels: dict[tuple[Side, Decimal], Decimal] = {}

    def on_book_change(
        self, product_id: str, side: Side, price: Decimal, new_size: Decimal, time: datetime
    ) -> None:
        assert product_id == BTC
        if new_size == 0:
            self.levels.pop((side, price), None)
        else:
            self.levels[(side, price)] = new_size

    def on_trade(self, trade: SimTrade) -> None:
        assert trade.size > 0

    def on_order_update(self, order: SimOrder) -> None:
        assert order.filled_size >= 0

    def on_fill(self, fill: SimFill) -> None:
        assert fill.commission >= 0


users = st.sampled_from(USERS)
sides = st.sampled_from([Side.BUY, Side.SELL])
# Prices on a coarse grid around the start price so orders meet often.
prices = st.integers(min_value=-8, max_value=8).map(
    lambda k: D(68_000 + 25 * k).quantize(D("0.01"))
)
sizes = st.integers(min_value=1, max_value=150).map(lambda n: D(n) / 100)

limit_ops = st.tuples(
    st.just("limit"),
    users,
    sides,
    sizes,
    prices,
    st.sampled_from(
        [
            "limit_limit_gtc",
            "limit_limit_gtc",
            "sor_limit_ioc",
            "limit_limit_fok",
            "limit_limit_gtd",
        ]
    ),
    st.booleans(),
)
market_ops = st.tuples(
    st.just("market"),
    users,
    sides,
    st.booleans(),  # by quote?
    st.integers(min_value=1, max_value=120),
)
stop_ops = st.tuples(
    st.just("stop"),
    users,
    sides,
    sizes,
    st.integers(min_value=1, max_value=8),  # stop distance from last trade, in 25s
    st.integers(min_value=-2, max_value=2),  # limit offset from the stop, in 25s
)
cancel_ops = st.tuples(st.just("cancel"), users, st.integers(min_value=0, max_value=20))
clock_ops = st.tuples(st.just("clock"), st.integers(min_value=1, max_value=90))
operations = st.lists(
    st.one_of(limit_ops, limit_ops, market_ops, market_ops, stop_ops, cancel_ops, clock_ops),
    min_size=6,
    max_size=60,
)


def apply(exchange: SimExchange, clock: ManualClock, op: tuple[Any, ...], n: int) -> None:
    kind = op[0]
    cid = f"p{n}"
    if kind == "limit":
        _, user, side, size, price, config, post_only = op
        end = None
        if config == "limit_limit_gtd":
            end = datetime.fromtimestamp(clock.time(), tz=UTC) + timedelta(seconds=60)
        exchange.create_order(
            user,
            SimOrderRequest(
                cid,
                BTC,
                side,
                config,
                base_size=size,
                limit_price=price,
                post_only=post_only and config in ("limit_limit_gtc", "limit_limit_gtd"),
                end_time=end,
            ),
        )
    elif kind == "market":
        _, user, side, by_quote, amount = op
        if by_quote:
            request = SimOrderRequest(
                cid, BTC, side, "market_market_ioc", quote_size=D(amount * 500)
            )
        else:
            request = SimOrderRequest(
                cid, BTC, side, "market_market_ioc", base_size=D(amount) / 100
            )
        exchange.create_order(user, request)
    elif kind == "stop":
        _, user, side, size, distance, offset = op
        last = exchange.last_price(BTC)
        direction = StopDirection.UP if side is Side.BUY else StopDirection.DOWN
        step = 25 if side is Side.BUY else -25
        stop = last + step * distance
        exchange.create_order(
            user,
            SimOrderRequest(
                cid,
                BTC,
                side,
                "stop_limit_stop_limit_gtc",
                base_size=size,
                limit_price=stop + 25 * offset,
                stop_price=stop,
                stop_direction=direction,
            ),
        )
    elif kind == "cancel":
        _, user, index = op
        orders = exchange.list_orders(user)
        if orders:
            exchange.cancel_orders(user, [orders[index % len(orders)].order_id])
    else:
        clock.advance(op[1])
        exchange.expire_orders()


def seed_book(exchange: SimExchange) -> None:
    """Eight levels a side, 25 apart, around 68,000."""
    for level in range(1, 9):
        for side, price in ((Side.BUY, 68_000 - 25 * level), (Side.SELL, 68_000 + 25 * level)):
            result = exchange.create_order(
                LIQUIDITY,
                SimOrderRequest(
                    f"seed-{side}-{level}",
                    BTC,
                    side,
                    "limit_limit_gtc",
                    base_size=D("0.5"),
                    limit_price=D(price),
                ),
            )
            assert result.success


def check_invariants(exchange: SimExchange, replay: BookReplay) -> None:
    for currency, amount in DEPOSIT.items():
        assert exchange.total_balance(currency) == amount * (len(USERS) + 1)

    for user in (*USERS, LIQUIDITY, FEE_USER_ID):
        held: dict[str, Decimal] = {}
        for order in exchange.list_orders(user, statuses=[ExchangeOrderStatus.OPEN]):
            currency = "USD" if order.side is Side.BUY else "BTC"
            held[currency] = held.get(currency, D(0)) + order.outstanding_hold_amount
        for account in exchange.accounts(user):
            assert account.available >= 0, (user, account)
            assert account.hold >= 0, (user, account)
            assert account.hold == held.get(account.currency, D(0)), (user, account)
        for order in exchange.list_orders(user):
            if not order.status.is_open:
                assert order.outstanding_hold_amount == 0

    book = exchange.book(BTC)
    assert not book.is_crossed()
    lot, tick = exchange.products[BTC].base_increment, exchange.products[BTC].price_increment
    open_orders = {
        o.order_id: o
        for user in (*USERS, LIQUIDITY)
        for o in exchange.list_orders(user, statuses=[ExchangeOrderStatus.OPEN])
    }
    for side in (book.bids, book.asks):
        sums: dict[int, int] = {}
        for ticks, order_id, lots in side.orders():
            sums[ticks] = sums.get(ticks, 0) + lots
            order = open_orders[order_id]
            assert order.side is side.side
            assert order.limit_price == tick * ticks
            assert order.base_size is not None
            assert order.base_size - order.filled_size == lot * lots
        assert dict(side.levels()) == sums

    bids, asks = exchange.book_levels(BTC)
    rebuilt = {(Side.BUY, p): s for p, s in bids} | {(Side.SELL, p): s for p, s in asks}
    assert replay.levels == rebuilt


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=operations)
def test_random_order_flow_keeps_every_invariant(ops: list[tuple[Any, ...]]) -> None:
    clock = ManualClock()
    exchange = SimExchange(clock=clock, seed=5)
    replay = BookReplay()
    exchange.add_listener(replay)
    for user in (*USERS, LIQUIDITY):
        exchange.open_account(user, DEPOSIT)
    seed_book(exchange)
    check_invariants(exchange, replay)
    for n, op in enumerate(ops):
        apply(exchange, clock, op, n)
        check_invariants(exchange, replay)
