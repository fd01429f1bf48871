"""The paper venue's fill model, driven by a scripted live book and a scripted tape."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.book import L2Book
from core.clock import ManualClock
from core.config import PaperSettings
from core.feed_state import BookStatus
from core.fees import FeeSchedule
from core.market import MarketDataService
from core.model import (
    Balance,
    ExchangeOrder,
    ExchangeOrderStatus,
    LiquidityIndicator,
    OrderSpec,
    OrderType,
    Product,
    Side,
    StopDirection,
    TimeInForce,
    Trade,
)
from core.venue import OrderAccepted, OrderNotFound, OrderRejected, Venue
from core.venues.paper import PRINT_AFTER_BOOK_S, PaperVenue
from tests.doubles.venue_listener import VenueRecorder

D = Decimal
PRODUCT = "BTC-USD"
MAKER = D("0.004")
TAKER = D("0.006")
TEN_PERCENT = D(10)
OPEN = ExchangeOrderStatus.OPEN
FILLED = ExchangeOrderStatus.FILLED
CANCELLED = ExchangeOrderStatus.CANCELLED


def btc_usd(**changes: Any) -> Product:
    fields: dict[str, Any] = {
        "product_id": PRODUCT,
        "base_currency": "BTC",
        "quote_currency": "USD",
        "base_increment": D("0.0001"),
        "quote_increment": D("0.01"),
        "price_increment": D("0.01"),
        "base_min_size": D("0.0001"),
        "base_max_size": D("1000"),
        "quote_min_size": D("1"),
        "quote_max_size": D("10000000"),
    }
    fields.update(changes)
    return Product(**fields)


class ScriptedMarket:
    """A ``PaperMarket`` over real ``L2Book``s whose levels and prints the test dictates."""

    def __init__(self, product_ids: tuple[str, ...] = (PRODUCT,)) -> None:
        self.books = {product_id: L2Book(product_id) for product_id in product_ids}
        self.trade_listeners: list[Callable[[Trade], None]] = []
        self.book_listeners: list[Callable[[str], None]] = []
        self._trade_ids = 0

    def book(self, product_id: str) -> L2Book:
        return self.books[product_id]

    def add_trade_listener(self, listener: Callable[[Trade], None]) -> None:
        self.trade_listeners.append(listener)

    def add_book_listener(self, listener: Callable[[str], None]) -> None:
        self.book_listeners.append(listener)

    def snapshot(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        self.books[PRODUCT].apply_snapshot(bids, asks)
        self._book_changed()

    def set_ask(self, price: float, size: float) -> None:
        self.books[PRODUCT].set_ask(price, size)
        self._book_changed()

    def set_bid(self, price: float, size: float) -> None:
        self.books[PRODUCT].set_bid(price, size)
        self._book_changed()

    def print_trade(self, price: float, size: float, product_id: str = PRODUCT) -> None:
        self._trade_ids += 1
        trade = Trade(str(self._trade_ids), product_id, price, size, Side.SELL, None)
        for listener in self.trade_listeners:
            listener(trade)

    def _book_changed(self) -> None:
        for listener in self.book_listeners:
            listener(PRODUCT)


@dataclass
class Rig:
    venue: PaperVenue
    market: ScriptedMarket
    clock: ManualClock
    listener: VenueRecorder
    sleeps: list[float]

    async def place(self, spec: OrderSpec, client_order_id: str | None = None) -> str:
        """Place an order that must be accepted; return its order id once updates are in."""
        self._count = getattr(self, "_count", 0) + 1
        outcome = await self.venue.place(spec, client_order_id or f"c{self._count}")
        assert isinstance(outcome, OrderAccepted), outcome
        await settle()
        return outcome.placed.order_id

    async def reject(self, spec: OrderSpec) -> OrderRejected:
        outcome = await self.venue.place(spec, f"r-{id(spec)}")
        assert isinstance(outcome, OrderRejected), outcome
        return outcome

    async def balance(self, currency: str) -> Balance:
        by_currency = {balance.currency: balance for balance in await self.venue.balances()}
        return by_currency.get(currency, Balance(currency, D(0), D(0)))


async def settle() -> None:
    """Let the updates scheduled by place/cancel reach the listener (next loop turn)."""
    await asyncio.sleep(0)


def make_rig(
    *,
    queue_position: bool = True,
    latency_ms: float = 50.0,
    balances: dict[str, Decimal] | None = None,
    fee_schedule: FeeSchedule | None = None,
    products: list[Product] | None = None,
    on_sleep: Callable[[], None] | None = None,
    listen: bool = True,
    market_protection_pct: Decimal = TEN_PERCENT,
) -> Rig:
    clock = ManualClock()
    market = ScriptedMarket()
    settings = PaperSettings(
        starting_balances=balances or {"USD": D("100000"), "BTC": D("10")},
        maker_fee_rate=MAKER,
        taker_fee_rate=TAKER,
        latency_ms=latency_ms,
        queue_position=queue_position,
        market_protection_pct=market_protection_pct,
    )
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if on_sleep is not None:
            on_sleep()

    ids = iter(f"order-{n}" for n in range(1, 10_000))
    venue = PaperVenue(
        market,
        products or [btc_usd()],
        settings,
        clock=clock,
        sleep=fake_sleep,
        fee_schedule=fee_schedule,
        id_factory=lambda: next(ids),
    )
    listener = VenueRecorder()
    if listen:
        venue.set_listener(listener)
    return Rig(venue, market, clock, listener, sleeps)


@pytest.fixture
async def rig() -> Rig:
    """A started paper venue (queue position on, 50 ms latency on a manual clock) over a
    book with bids 99/98/97 and asks 100 x 1, 101 x 2, 102 x 5."""
    made = make_rig()
    await made.venue.start()
    made.market.snapshot(
        bids=[(99.0, 1.0), (98.0, 2.0), (97.0, 5.0)],
        asks=[(100.0, 1.0), (101.0, 2.0), (102.0, 5.0)],
    )
    return made


def market(side: Side, base: str | None = None, quote: str | None = None) -> OrderSpec:
    return OrderSpec(
        PRODUCT,
        side,
        OrderType.MARKET,
        base_size=D(base) if base else None,
        quote_size=D(quote) if quote else None,
    )


def limit(
    side: Side,
    base: str,
    price: str,
    tif: TimeInForce = TimeInForce.GTC,
    *,
    post_only: bool = False,
    end_time: datetime | None = None,
) -> OrderSpec:
    return OrderSpec(
        PRODUCT,
        side,
        OrderType.LIMIT,
        base_size=D(base),
        limit_price=D(price),
        time_in_force=tif,
        post_only=post_only,
        end_time=end_time,
    )


def stop_limit(side: Side, base: str, stop: str, price: str, direction: StopDirection) -> OrderSpec:
    return OrderSpec(
        PRODUCT,
        side,
        OrderType.STOP_LIMIT,
        base_size=D(base),
        limit_price=D(price),
        stop_price=D(stop),
        stop_direction=direction,
    )


def fills_of(updates: list[ExchangeOrder]) -> Iterator[tuple[Decimal, Decimal]]:
    """(size, value) of each fill, as deltas between cumulative updates."""
    size = value = D(0)
    for update in updates:
        if update.filled_size > size:
            yield update.filled_size - size, update.filled_value - value
            size, value = update.filled_size, update.filled_value


# ---------------------------------------------------------------------- market orders


async def test_market_buy_walks_levels_at_their_prices(rig: Rig) -> None:
    order_id = await rig.place(market(Side.BUY, base="2.5"))

    final = rig.listener.last(order_id)
    assert final.status is FILLED
    assert final.filled_size == D("2.5")
    assert final.filled_value == D("100") + D("151.5")  # 1 @ 100, 1.5 @ 101
    assert final.average_filled_price == D("251.5") / D("2.5")
    assert final.total_fees == D("251.5") * TAKER
    fills = await rig.venue.list_fills(order_ids=[order_id])
    assert [(f.price, f.size, f.liquidity) for f in fills] == [
        (D("100"), D("1"), LiquidityIndicator.TAKER),
        (D("101"), D("1.5"), LiquidityIndicator.TAKER),
    ]
    usd, btc = await rig.balance("USD"), await rig.balance("BTC")
    assert usd == Balance("USD", D("100000") - D("251.5") * (1 + TAKER), D(0))
    assert btc == Balance("BTC", D("12.5"), D(0))


async def test_market_updates_are_cumulative_like_the_user_channel(rig: Rig) -> None:
    order_id = await rig.place(market(Side.BUY, base="2.5"))

    updates = rig.listener.of(order_id)
    assert [u.status for u in updates] == [OPEN, OPEN, OPEN, FILLED]
    assert [u.filled_size for u in updates] == [D(0), D(1), D("2.5"), D("2.5")]
    assert [u.number_of_fills for u in updates] == [0, 1, 2, 2]
    assert all(u.client_order_id == "c1" and u.order_type == "MARKET" for u in updates)
    assert updates[-1].time_in_force == TimeInForce.IOC.value
    assert list(fills_of(updates)) == [(D(1), D(100)), (D("1.5"), D("151.5"))]


async def test_taken_liquidity_is_not_taken_twice(rig: Rig) -> None:
    await rig.place(market(Side.BUY, base="2.5"))
    second = await rig.place(market(Side.BUY, base="1"))

    # 100 is used up and 0.5 is left at 101: the second order pays up to 102.
    fills = await rig.venue.list_fills(order_ids=[second])
    assert [(f.price, f.size) for f in fills] == [(D("101"), D("0.5")), (D("102"), D("0.5"))]


async def test_book_update_replaces_what_we_consumed(rig: Rig) -> None:
    await rig.place(market(Side.BUY, base="3"))  # takes 100 and 101 entirely
    rig.market.set_ask(101.0, 4.0)  # the exchange says 101 now holds 4: that is the truth
    third = await rig.place(market(Side.BUY, base="2"))

    fills = await rig.venue.list_fills(order_ids=[third])
    # 100 still shows the size we took (no update for it): still consumed.
    assert [(f.price, f.size) for f in fills] == [(D("101"), D("2"))]


async def test_a_flickering_level_does_not_hand_out_the_same_liquidity_twice(rig: Rig) -> None:
    """Issue 10: ten 1 BTC market buys all filled at a level that never held over 1.10."""
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.10), (105.0, 50.0)])
    orders = []
    for _ in range(10):
        orders.append(await rig.place(market(Side.BUY, base="1")))
        # Someone adds 0.05 at 100 and cancels it again: the level moves, nothing is new.
        rig.market.set_ask(100.0, 1.15)
        rig.market.set_ask(100.0, 1.10)
    fills = await rig.venue.list_fills(order_ids=orders)
    assert sum((f.size for f in fills if f.price == D(100)), D(0)) == D("1.10")
    assert sum((f.size for f in fills), D(0)) == D(10)


async def test_a_level_only_refills_by_what_the_book_shows_added(rig: Rig) -> None:
    """The other flicker: 0.05 of the orders we took leaves, then 0.05 of new orders join.
    Only those new orders are ours to take again, never the whole level."""
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.10), (105.0, 50.0)])
    orders = []
    for _ in range(10):
        orders.append(await rig.place(market(Side.BUY, base="1")))
        rig.market.set_ask(100.0, 1.05)
        rig.market.set_ask(100.0, 1.10)
    fills = await rig.venue.list_fills(order_ids=orders)
    at_100 = sum((f.size for f in fills if f.price == D(100)), D(0))
    assert at_100 == D("1.10") + 8 * D("0.05")  # the level, then 0.05 per later refill


async def test_consumption_clears_when_the_level_falls_to_what_we_left(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.5), (105.0, 50.0)])
    await rig.place(market(Side.BUY, base="1"))  # 0.5 left at 100 as far as we know
    rig.market.set_ask(100.0, 0.4)  # at or below what we left: the book is the truth again
    second = await rig.place(market(Side.BUY, base="0.4"))
    assert [(f.price, f.size) for f in await rig.venue.list_fills(order_ids=[second])] == [
        (D(100), D("0.4"))
    ]


async def test_a_level_that_falls_less_keeps_what_we_took(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.5), (105.0, 50.0)])
    await rig.place(market(Side.BUY, base="1"))  # 0.5 left at 100 as far as we know
    rig.market.set_ask(100.0, 0.8)  # above 0.5: the orders we took may still be listed
    second = await rig.place(market(Side.BUY, base="0.2"))
    assert [(f.price, f.size) for f in await rig.venue.list_fills(order_ids=[second])] == [
        (D(105), D("0.2"))  # the fall of 0.7 ate the 0.5 we left first: none left at 100
    ]


async def test_replenishment_beyond_the_shown_size_is_available(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.0), (105.0, 50.0)])
    await rig.place(market(Side.BUY, base="1"))  # all of 100
    rig.market.set_ask(100.0, 1.3)  # 0.3 more than it showed: new orders behind ours
    second = await rig.place(market(Side.BUY, base="1"))
    assert [(f.price, f.size) for f in await rig.venue.list_fills(order_ids=[second])] == [
        (D(100), D("0.3")),
        (D(105), D("0.7")),
    ]


async def test_market_buy_by_quote_spends_at_most_quote_including_fee(rig: Rig) -> None:
    order_id = await rig.place(market(Side.BUY, quote="200"))

    final = rig.listener.last(order_id)
    assert final.status is FILLED
    spent = final.filled_value + final.total_fees
    assert spent <= D("200")
    # 1 @ 100 costs 100.6; what is left buys the most whole 0.0001 increments at 101 + fee.
    assert final.filled_size == D("1.9782")
    assert D("200") - spent < D("101") * D("0.0001") * (1 + TAKER)
    usd = await rig.balance("USD")
    assert usd.available == D("100000") - spent and usd.hold == 0


async def test_market_sells_by_base_and_by_quote(rig: Rig) -> None:
    by_base = await rig.place(market(Side.SELL, base="2"))
    assert [(f.price, f.size) for f in await rig.venue.list_fills(order_ids=[by_base])] == [
        (D("99"), D("1")),
        (D("98"), D("1")),
    ]
    by_quote = await rig.place(market(Side.SELL, quote="196"))
    # Gross proceeds stop before passing 196: the 1 left @ 98, then 98 / 97 = 1.01030...
    # rounded DOWN to the increment @ 97.
    fills = await rig.venue.list_fills(order_ids=[by_quote])
    assert [(f.price, f.size) for f in fills] == [(D("98"), D("1")), (D("97"), D("1.0103"))]
    assert sum(f.price * f.size for f in fills) <= D("196")
    btc = await rig.balance("BTC")
    assert btc == Balance("BTC", D("10") - D("2") - D("2.0103"), D(0))


async def test_market_order_that_empties_the_book_ends_cancelled_with_its_fills(
    rig: Rig,
) -> None:
    order_id = await rig.place(market(Side.BUY, base="10"))

    final = rig.listener.last(order_id)
    assert final.status is CANCELLED
    assert final.filled_size == D("8")
    usd = await rig.balance("USD")
    assert usd.hold == 0  # the unused part of the hold came back


async def test_market_order_without_liquidity_is_rejected(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[])
    rejected = await rig.reject(market(Side.BUY, base="1"))
    assert rejected.code == "INVALID_NO_LIQUIDITY"
    assert rejected.preview_failure_reason == "PREVIEW_INVALID_NO_LIQUIDITY"


async def test_market_buy_by_quote_too_small_for_one_increment_is_rejected(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100000.0, 1.0)])
    rejected = await rig.reject(market(Side.BUY, quote="5"))
    assert rejected.preview_failure_reason == "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"


# ---------------------------------------------------------------------- resting limits


async def test_resting_limit_fills_on_trade_through_capped_at_printed_size(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "2", "98.50"))
    assert rig.listener.last(order_id).status is OPEN

    rig.market.print_trade(99.0, 5.0)  # above our bid: does not reach us
    rig.market.print_trade(98.40, 0.7)  # through our price: fills 0.7 at OUR price
    partial = rig.listener.last(order_id)
    assert partial.status is OPEN
    assert (partial.filled_size, partial.filled_value) == (D("0.7"), D("0.7") * D("98.50"))
    assert partial.leaves_quantity == D("1.3")
    assert partial.total_fees == D("0.7") * D("98.50") * MAKER

    rig.market.print_trade(98.0, 3.0)
    final = rig.listener.last(order_id)
    assert final.status is FILLED and final.filled_size == D("2")
    fills = await rig.venue.list_fills(order_ids=[order_id])
    assert [(f.price, f.size, f.liquidity) for f in fills] == [
        (D("98.50"), D("0.7"), LiquidityIndicator.MAKER),
        (D("98.50"), D("1.3"), LiquidityIndicator.MAKER),
    ]


async def test_print_at_our_price_eats_the_queue_ahead_first(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "1", "98"))  # 2 already bid at 98

    rig.market.print_trade(98.0, 1.5)
    assert rig.listener.last(order_id).filled_size == 0  # 0.5 still ahead of us
    rig.market.print_trade(98.0, 1.0)  # 0.5 to the queue, 0.5 to us
    assert rig.listener.last(order_id).filled_size == D("0.5")
    rig.market.print_trade(98.0, 2.0)  # capped by what we still need
    assert rig.listener.last(order_id).status is FILLED


async def test_queue_shrinks_when_orders_ahead_are_cancelled(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "1", "98"))
    rig.market.set_bid(98.0, 0.25)  # 1.75 of the 2 ahead went away
    rig.clock.advance(PRINT_AFTER_BOOK_S + 1)  # and no print followed: they were cancels

    rig.market.print_trade(98.0, 1.0)
    assert rig.listener.last(order_id).filled_size == D("0.75")


async def test_a_trade_seen_in_the_book_first_does_not_shorten_the_queue_twice(rig: Rig) -> None:
    """Issue 10: the level2 change came before the print and both were taken off the queue,
    so a later print filled us 1.0 while 2.0 was still ahead."""
    rig.market.snapshot(bids=[(99.0, 1.0), (98.0, 3.0)], asks=[(100.0, 1.0)])
    order_id = await rig.place(limit(Side.BUY, "1", "98"))  # 3 ahead of us
    rig.market.set_bid(98.0, 2.0)  # a trade of 1.0 at 98, seen in the book first ...
    rig.market.print_trade(98.0, 1.0)  # ... then printed: 2 are still ahead
    rig.market.print_trade(98.0, 2.0)  # this print is theirs
    assert rig.listener.last(order_id).filled_size == 0
    rig.market.print_trade(98.0, 0.5)
    assert rig.listener.last(order_id).filled_size == D("0.5")


async def test_a_print_first_then_its_book_change_shortens_the_queue_once(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0), (98.0, 3.0)], asks=[(100.0, 1.0)])
    order_id = await rig.place(limit(Side.BUY, "1", "98"))
    rig.market.print_trade(98.0, 1.0)
    rig.market.set_bid(98.0, 2.0)
    rig.market.print_trade(98.0, 2.0)
    assert rig.listener.last(order_id).filled_size == 0
    rig.market.print_trade(98.0, 1.0)
    assert rig.listener.last(order_id).status is FILLED


async def test_without_queue_position_a_print_at_our_price_fills_us() -> None:
    rig = make_rig(queue_position=False)
    await rig.venue.start()
    rig.market.snapshot(bids=[(98.0, 2.0)], asks=[(100.0, 1.0)])
    order_id = await rig.place(limit(Side.BUY, "1", "98"))

    rig.market.print_trade(98.0, 0.4)
    assert rig.listener.last(order_id).filled_size == D("0.4")


async def test_one_print_is_shared_by_our_orders_best_price_first(rig: Rig) -> None:
    lower = await rig.place(limit(Side.BUY, "1", "98.10"))
    higher = await rig.place(limit(Side.BUY, "1", "98.50"))

    rig.market.print_trade(98.0, 1.5)
    assert rig.listener.last(higher).filled_size == D("1")
    assert rig.listener.last(lower).filled_size == D("0.5")


async def test_sell_limit_rests_and_fills_when_a_print_reaches_it(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.SELL, "1", "100.50"))
    btc = await rig.balance("BTC")
    assert btc == Balance("BTC", D("9"), D("1"))

    rig.market.print_trade(100.60, 1.0)
    final = rig.listener.last(order_id)
    assert final.status is FILLED and final.filled_value == D("100.50")
    usd = await rig.balance("USD")
    assert usd.available == D("100000") + D("100.50") * (1 - MAKER)
    assert await rig.balance("BTC") == Balance("BTC", D("9"), D(0))


# ---------------------------------------------------------------------- marketable limits


async def test_marketable_gtc_limit_takes_up_to_its_price_then_rests(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "5", "101"))

    resting = rig.listener.last(order_id)
    assert resting.status is OPEN
    assert (resting.filled_size, resting.filled_value) == (D("3"), D("100") + D("202"))
    assert resting.total_fees == D("302") * TAKER
    open_orders = await rig.venue.list_open_orders([PRODUCT])
    assert [o.order_id for o in open_orders] == [order_id]
    # The rest is a maker order at 101 now: a print through it fills it as maker.
    rig.market.print_trade(100.0, 5.0)
    final = rig.listener.last(order_id)
    assert final.status is FILLED
    assert final.total_fees == D("302") * TAKER + D("202") * MAKER


async def test_ioc_takes_what_it_can_and_cancels_the_rest(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "5", "101", TimeInForce.IOC))

    final = rig.listener.last(order_id)
    assert final.status is CANCELLED and final.filled_size == D("3")
    assert await rig.venue.list_open_orders() == []
    assert (await rig.balance("USD")).hold == 0


async def test_fok_fills_all_or_nothing(rig: Rig) -> None:
    killed = await rig.place(limit(Side.BUY, "5", "101", TimeInForce.FOK))
    assert rig.listener.last(killed).status is CANCELLED
    assert rig.listener.last(killed).filled_size == 0
    assert await rig.venue.list_fills() == []

    filled = await rig.place(limit(Side.BUY, "3", "101", TimeInForce.FOK))
    assert rig.listener.last(filled).status is FILLED
    assert rig.listener.last(filled).filled_size == D("3")


async def test_post_only_that_would_cross_is_rejected_and_one_that_does_not_rests(
    rig: Rig,
) -> None:
    rejected = await rig.reject(limit(Side.BUY, "1", "100", post_only=True))
    assert rejected.code == "INVALID_LIMIT_PRICE_POST_ONLY"
    assert rejected.preview_failure_reason == "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"
    assert (await rig.balance("USD")).hold == 0

    order_id = await rig.place(limit(Side.SELL, "1", "100", post_only=True))
    assert rig.listener.last(order_id).status is OPEN
    assert rig.listener.last(order_id).post_only


# ---------------------------------------------------------------------- stops


async def test_stop_limit_waits_for_a_print_at_its_stop_then_acts_as_a_limit(rig: Rig) -> None:
    rig.market.print_trade(99.5, 0.1)  # last trade 99.5
    order_id = await rig.place(stop_limit(Side.BUY, "2", "100.50", "101", StopDirection.UP))
    assert rig.listener.last(order_id).status is OPEN
    assert rig.listener.last(order_id).order_type == "STOP_LIMIT"

    rig.market.print_trade(100.0, 1.0)  # below the stop: nothing, not even a fill at 100
    assert rig.listener.last(order_id).filled_size == 0
    rig.market.print_trade(100.50, 1.0)  # triggers: takes 1 @ 100 and 1 @ 101 from the book
    final = rig.listener.last(order_id)
    assert final.status is FILLED
    assert final.filled_value == D("201")


async def test_stop_down_sell_triggers_and_rests_what_it_cannot_take(rig: Rig) -> None:
    order_id = await rig.place(stop_limit(Side.SELL, "4", "98.50", "98", StopDirection.DOWN))
    rig.market.print_trade(98.60, 0.1)
    assert rig.listener.last(order_id).filled_size == 0  # above the stop: still waiting
    rig.market.print_trade(98.40, 0.1)

    # Bids 99 x 1 and 98 x 2 reach a 98 limit: 3 fill as taker, 1 rests at 98.
    after = rig.listener.last(order_id)
    assert after.status is OPEN and after.filled_size == D("3")
    rig.market.print_trade(98.0, 5.0)  # the queue at 98 (2) trades first, then us
    assert rig.listener.last(order_id).status is FILLED
    fills = await rig.venue.list_fills(order_ids=[order_id])
    assert [(f.price, f.size, f.liquidity) for f in fills] == [
        (D("99"), D("1"), LiquidityIndicator.TAKER),
        (D("98"), D("2"), LiquidityIndicator.TAKER),
        (D("98"), D("1"), LiquidityIndicator.MAKER),
    ]


async def test_stop_already_reached_is_rejected(rig: Rig) -> None:
    rig.market.print_trade(100.0, 0.1)
    up = await rig.reject(stop_limit(Side.BUY, "1", "99", "101", StopDirection.UP))
    assert up.preview_failure_reason == "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE"
    down = await rig.reject(stop_limit(Side.SELL, "1", "101", "100", StopDirection.DOWN))
    assert down.preview_failure_reason == "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE"


# ---------------------------------------------------------------------- money


async def test_limit_buy_holds_worst_case_and_releases_savings(rig: Rig) -> None:
    await rig.place(limit(Side.BUY, "2", "98.50"))
    hold = D("2") * D("98.50") * (1 + TAKER)
    assert await rig.balance("USD") == Balance("USD", D("100000") - hold, hold)

    rig.market.print_trade(98.0, 2.0)
    # Filled as maker: only notional + maker fee was spent, the rest of the hold came back.
    spent = D("2") * D("98.50") * (1 + MAKER)
    assert await rig.balance("USD") == Balance("USD", D("100000") - spent, D(0))
    assert await rig.balance("BTC") == Balance("BTC", D("12"), D(0))


async def test_insufficient_funds_are_rejected_without_touching_balances() -> None:
    rig = make_rig(balances={"USD": D("150")})
    await rig.venue.start()
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 5.0)])

    rejected = await rig.reject(limit(Side.BUY, "2", "99"))
    assert rejected.code == "INSUFFICIENT_FUND"
    assert rejected.preview_failure_reason == "PREVIEW_INSUFFICIENT_FUND"
    assert (await rig.reject(market(Side.BUY, base="2"))).code == "INSUFFICIENT_FUND"
    assert (await rig.reject(market(Side.SELL, base="1"))).code == "INSUFFICIENT_FUND"
    assert await rig.venue.balances() == [Balance("USD", D("150"), D(0))]
    assert rig.listener.updates == []


async def test_cancel_releases_the_hold_and_reports_cancelled(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "1", "95"))
    rig.sleeps.clear()

    results = await rig.venue.cancel([order_id, order_id, "nope"])
    assert [(r.order_id, r.success, r.failure_reason) for r in results] == [
        (order_id, True, None),
        (order_id, False, "DUPLICATE_CANCEL_REQUEST"),
        ("nope", False, "UNKNOWN_CANCEL_ORDER"),
    ]
    assert rig.sleeps == [0.05]  # a cancel takes the venue's latency too
    await settle()
    final = rig.listener.last(order_id)
    assert final.status is CANCELLED and final.cancel_reason == "User requested cancel"
    assert await rig.balance("USD") == Balance("USD", D("100000"), D(0))
    again = await rig.venue.cancel([order_id])
    assert again[0].failure_reason == "INVALID_CANCEL_REQUEST"
    assert await rig.venue.cancel([]) == []
    rig.market.print_trade(90.0, 5.0)
    assert await rig.venue.list_fills() == []


# ---------------------------------------------------------------------- fees, latency, ids


async def test_fee_tier_follows_trailing_volume_at_placement() -> None:
    rig = make_rig(fee_schedule=FeeSchedule.coinbase_advanced())
    await rig.venue.start()
    rig.market.snapshot(bids=[(99.0, 100.0)], asks=[(100.0, 100.0)])

    first = await rig.place(market(Side.BUY, base="10"))  # 1000 of volume at Intro 1
    assert rig.listener.last(first).total_fees == D("1000") * D("0.012")
    second = await rig.place(market(Side.BUY, base="1"))  # now Intro 2
    assert rig.listener.last(second).total_fees == D("100") * D("0.0075")


async def test_latency_passes_before_the_order_meets_the_book() -> None:
    moves: list[Callable[[], None]] = []
    rig = make_rig(on_sleep=lambda: moves.pop()() if moves else None)
    await rig.venue.start()
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.0), (105.0, 1.0)])
    moves.append(lambda: rig.market.set_ask(100.0, 0.0))  # the ask vanishes meanwhile

    order_id = await rig.place(market(Side.BUY, base="1"))
    assert rig.sleeps == [0.05]
    assert rig.listener.last(order_id).filled_value == D("105")


async def test_updates_arrive_after_place_returns(rig: Rig) -> None:
    outcome = await rig.venue.place(market(Side.BUY, base="1"), "early")
    assert isinstance(outcome, OrderAccepted)
    assert rig.listener.updates == []  # the answer first, then the stream, like Coinbase
    await settle()
    assert rig.listener.last(outcome.placed.order_id).status is FILLED


async def test_same_client_order_id_returns_the_original_order(rig: Rig) -> None:
    first = await rig.venue.place(limit(Side.BUY, "1", "95"), "same")
    second = await rig.venue.place(limit(Side.BUY, "3", "90"), "same")
    assert isinstance(first, OrderAccepted) and isinstance(second, OrderAccepted)
    assert second.placed == first.placed
    assert len(await rig.venue.list_open_orders()) == 1


async def test_concurrent_places_with_one_client_order_id_make_one_order(rig: Rig) -> None:
    outcomes = await asyncio.gather(
        rig.venue.place(limit(Side.BUY, "1", "95"), "twin"),
        rig.venue.place(limit(Side.BUY, "1", "95"), "twin"),
    )
    assert all(isinstance(o, OrderAccepted) for o in outcomes)
    assert len({o.placed.order_id for o in outcomes if isinstance(o, OrderAccepted)}) == 1
    assert len(await rig.venue.list_open_orders()) == 1


# ---------------------------------------------------------------------- validation


END = datetime(2026, 1, 1, 1, tzinfo=UTC)  # an hour after the manual clock's start


@pytest.mark.parametrize(
    ("spec", "code", "preview"),
    [
        (
            OrderSpec("DOGE-USD", Side.BUY, OrderType.MARKET, base_size=D("1")),
            "INVALID_PRODUCT_ID",
            "PREVIEW_INVALID_PRODUCT_ID",
        ),
        (
            OrderSpec(PRODUCT, Side.BUY, OrderType.MARKET),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
        (
            OrderSpec(PRODUCT, Side.BUY, OrderType.MARKET, base_size=D("1"), limit_price=D("1")),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
        (
            OrderSpec(PRODUCT, Side.BUY, OrderType.LIMIT, quote_size=D("10"), limit_price=D("9")),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
        (
            limit(Side.BUY, "1", "95", end_time=END),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
        (
            OrderSpec(
                PRODUCT,
                Side.BUY,
                OrderType.LIMIT,
                base_size=D("1"),
                limit_price=D("95"),
                stop_price=D("96"),
            ),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
        (
            limit(Side.BUY, "1", "95", TimeInForce.FOK, post_only=True),
            "POST_ONLY_NOT_ALLOWED_WITH_FOK",
            "PREVIEW_POST_ONLY_NOT_ALLOWED_WITH_FOK",
        ),
        (
            limit(Side.BUY, "1", "95", TimeInForce.IOC, post_only=True),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
        (
            OrderSpec(
                PRODUCT,
                Side.BUY,
                OrderType.STOP_LIMIT,
                base_size=D("1"),
                limit_price=D("95"),
                stop_price=D("96"),
                stop_direction=StopDirection.UP,
                time_in_force=TimeInForce.IOC,
            ),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
        (
            limit(Side.BUY, "1.00001", "95"),
            "INVALID_SIZE_PRECISION",
            "PREVIEW_INVALID_SIZE_PRECISION",
        ),
        (
            market(Side.BUY, quote="10.001"),
            "INVALID_SIZE_PRECISION",
            "PREVIEW_INVALID_QUOTE_SIZE_PRECISION",
        ),
        (limit(Side.BUY, "1", "0"), "INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE"),
        (
            limit(Side.BUY, "1", "95.001"),
            "INVALID_PRICE_PRECISION",
            "PREVIEW_INVALID_PRICE_PRECISION",
        ),
        (
            OrderSpec(
                PRODUCT,
                Side.BUY,
                OrderType.STOP_LIMIT,
                base_size=D("1"),
                limit_price=D("95"),
                stop_price=D("96"),
            ),
            "UNKNOWN_FAILURE_REASON",
            "PREVIEW_INVALID_STOP_PRICE",
        ),
        (
            stop_limit(Side.BUY, "1", "96.001", "97", StopDirection.UP),
            "INVALID_PRICE_PRECISION",
            "PREVIEW_INVALID_STOP_PRICE_PRECISION",
        ),
        (
            limit(Side.BUY, "1", "95", TimeInForce.GTD),
            "GTD_ORDERS_MUST_HAVE_END_TIME",
            "PREVIEW_GTD_ORDERS_MUST_HAVE_END_TIME",
        ),
        (
            limit(Side.BUY, "1", "95", TimeInForce.GTD, end_time=END - timedelta(hours=2)),
            "END_TIME_IS_IN_THE_PAST",
            "PREVIEW_END_TIME_IS_IN_THE_PAST",
        ),
        (
            limit(Side.BUY, "0.001", "95"),
            "UNKNOWN_FAILURE_REASON",
            "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
        ),
        (
            limit(Side.BUY, "0.00001", "95"),
            "INVALID_SIZE_PRECISION",
            "PREVIEW_INVALID_SIZE_PRECISION",
        ),
        (
            limit(Side.SELL, "1001", "95"),
            "UNKNOWN_FAILURE_REASON",
            "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE",
        ),
        (
            limit(Side.BUY, "999", "99999"),
            "UNKNOWN_FAILURE_REASON",
            "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE",
        ),
        (  # the shared order rules' case (issue 12): stop-limits have no post_only on Coinbase
            replace(stop_limit(Side.SELL, "1", "96", "95", StopDirection.DOWN), post_only=True),
            "UNSUPPORTED_ORDER_CONFIGURATION",
            "PREVIEW_INVALID_ORDER_CONFIG",
        ),
    ],
)
async def test_invalid_orders_are_rejected_with_coinbase_codes(
    rig: Rig, spec: OrderSpec, code: str, preview: str
) -> None:
    rejected = await rig.reject(spec)
    assert (rejected.code, rejected.preview_failure_reason) == (code, preview)
    assert rejected.message
    assert await rig.venue.list_orders_since(None) == []
    assert await rig.balance("USD") == Balance("USD", D("100000"), D(0))


async def test_base_size_below_minimum_is_rejected() -> None:
    rig = make_rig(products=[btc_usd(base_min_size=D("0.01"))])
    await rig.venue.start()
    rejected = await rig.reject(limit(Side.BUY, "0.001", "95000"))
    assert rejected.preview_failure_reason == "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"


async def test_untradable_product_and_empty_client_id_are_rejected() -> None:
    rig = make_rig(products=[btc_usd(cancel_only=True)])
    assert (await rig.reject(limit(Side.BUY, "1", "95"))).code == "UNTRADABLE_PRODUCT"
    outcome = await rig.venue.place(limit(Side.BUY, "1", "95"), "")
    assert isinstance(outcome, OrderRejected) and outcome.code == "INVALID_ARGUMENT"


# ---------------------------------------------------------------------- lifecycle and reads


async def test_gtd_order_expires_at_its_end_time(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "1", "95", TimeInForce.GTD, end_time=END))
    rig.clock.advance(3600)
    rig.market.set_bid(97.0, 4.0)  # any market event checks expiries

    final = rig.listener.last(order_id)
    assert final.status is ExchangeOrderStatus.EXPIRED
    assert await rig.venue.list_open_orders() == []
    assert (await rig.balance("USD")).hold == 0


async def test_reads_filter_like_the_exchange(rig: Rig) -> None:
    resting = await rig.place(limit(Side.BUY, "1", "95"))
    rig.clock.advance(10)
    taken = await rig.place(market(Side.BUY, base="1"))

    assert [o.order_id for o in await rig.venue.list_open_orders(["ETH-USD"])] == []
    since = datetime.fromtimestamp(rig.clock.time(), tz=UTC)
    assert [o.order_id for o in await rig.venue.list_orders_since(since)] == [taken]
    assert [f.order_id for f in await rig.venue.list_fills(since=since)] == [taken]
    later = since + timedelta(seconds=1)
    assert await rig.venue.list_fills(since=later) == []
    assert (await rig.venue.get_order(resting)).status is OPEN
    with pytest.raises(OrderNotFound):
        await rig.venue.get_order("missing")
    assert [p.product_id for p in await rig.venue.products([PRODUCT, "ETH-USD"])] == [PRODUCT]
    assert [p.product_id for p in await rig.venue.products([])] == [PRODUCT]


async def test_port_basics(rig: Rig) -> None:
    venue: Venue = rig.venue
    assert venue.name == "paper" and venue.stream_connected
    await venue.start()  # a second start registers nothing twice
    assert len(rig.market.trade_listeners) == 1 and len(rig.market.book_listeners) == 1
    await venue.stop()


async def test_a_failing_listener_does_not_lose_later_updates(rig: Rig) -> None:
    class Flaky(VenueRecorder):
        def on_order_update(self, order: ExchangeOrder) -> None:
            super().on_order_update(order)
            if len(self.updates) == 1:
                raise RuntimeError("boom")

    flaky = Flaky()
    rig.venue.set_listener(flaky)
    order_id = await rig.place(market(Side.BUY, base="1"))
    assert flaky.last(order_id).status is FILLED


async def test_trades_of_other_products_and_unknown_books_are_ignored(rig: Rig) -> None:
    await rig.place(limit(Side.BUY, "1", "95"))
    rig.market.print_trade(1.0, 100.0, product_id="ETH-USD")
    for listener in rig.market.book_listeners:
        listener("ETH-USD")
    assert await rig.venue.list_fills() == []


async def test_orders_on_a_product_without_market_data_find_no_liquidity() -> None:
    eth = btc_usd(product_id="ETH-USD", base_currency="ETH")
    rig = make_rig(products=[btc_usd(), eth])
    await rig.venue.start()
    rejected = await rig.reject(OrderSpec("ETH-USD", Side.BUY, OrderType.MARKET, base_size=D("1")))
    assert rejected.code == "INVALID_NO_LIQUIDITY"
    order_id = await rig.place(
        OrderSpec("ETH-USD", Side.BUY, OrderType.LIMIT, base_size=D("1"), limit_price=D("10"))
    )
    assert rig.listener.last(order_id).status is OPEN


async def test_post_only_against_an_empty_side_rests(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[])
    order_id = await rig.place(limit(Side.BUY, "1", "150", post_only=True))
    assert rig.listener.last(order_id).status is OPEN


async def test_dust_below_one_increment_is_skipped(rig: Rig) -> None:
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.00005), (101.0, 2.0)])
    await rig.place(market(Side.BUY, base="1"))  # leaves 0.00005 at 100: not one increment
    second = await rig.place(market(Side.BUY, base="1"))
    fills = await rig.venue.list_fills(order_ids=[second])
    assert [(f.price, f.size) for f in fills] == [(D("101"), D("1"))]


async def test_level_changed_without_a_book_callback_still_replaces_consumption(
    rig: Rig,
) -> None:
    await rig.place(market(Side.BUY, base="1"))  # takes all of 100
    rig.market.books[PRODUCT].set_ask(100.0, 3.0)  # no callback: noticed on the next walk
    second = await rig.place(market(Side.BUY, base="2"))
    fills = await rig.venue.list_fills(order_ids=[second])
    assert [(f.price, f.size) for f in fills] == [(D("100"), D("2"))]


async def test_a_print_smaller_than_our_orders_fills_only_the_first(rig: Rig) -> None:
    first = await rig.place(limit(Side.BUY, "1", "98.50"))
    second = await rig.place(limit(Side.BUY, "1", "98.50"))
    rig.market.print_trade(98.0, 1.0)
    assert rig.listener.last(first).status is FILLED
    assert rig.listener.last(second).filled_size == 0


async def test_without_latency_or_listener_orders_still_work() -> None:
    rig = make_rig(latency_ms=0, balances={"USD": D("1000")}, listen=False)
    await rig.venue.start()
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.0)])
    outcome = await rig.venue.place(market(Side.BUY, base="1"), "quiet")
    assert isinstance(outcome, OrderAccepted)
    await settle()
    assert rig.sleeps == []
    # BTC was not among the starting balances: the wallet appears with the first buy.
    assert await rig.balance("BTC") == Balance("BTC", D("1"), D(0))


class ServiceMarket:
    """The real ``MarketDataService`` as the paper venue's market: frames go through its
    decoder and book; after each frame the test calls the listeners the way the service is
    to call them (book listeners with the product id, trade listeners with each new print)."""

    def __init__(self) -> None:
        self.service = MarketDataService([PRODUCT], clock=ManualClock())
        self.trade_listeners: list[Callable[[Trade], None]] = []
        self.book_listeners: list[Callable[[str], None]] = []
        self._seq = -1

    def book(self, product_id: str) -> L2Book:
        return self.service.book(product_id)

    def add_trade_listener(self, listener: Callable[[Trade], None]) -> None:
        self.trade_listeners.append(listener)

    def add_book_listener(self, listener: Callable[[str], None]) -> None:
        self.book_listeners.append(listener)

    def _frame(self, channel: str, event: dict[str, Any]) -> bytes:
        self._seq += 1
        return orjson.dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": "2026-01-01T00:00:00.000000Z",
                "sequence_num": self._seq,
                "events": [event],
            }
        )

    def level2(self, kind: str, *levels: tuple[str, str, str]) -> None:
        updates = [
            {
                "side": side,
                "event_time": "2026-01-01T00:00:00Z",
                "price_level": p,
                "new_quantity": q,
            }
            for side, p, q in levels
        ]
        event = {"type": kind, "product_id": PRODUCT, "updates": updates}
        self.service.on_frame(self._frame("l2_data", event))
        for listener in self.book_listeners:
            listener(PRODUCT)

    def print_trade(self, price: str, size: str) -> None:
        before = len(self.service.trades(PRODUCT))
        trade = {
            "trade_id": str(self._seq + 1),
            "product_id": PRODUCT,
            "price": price,
            "size": size,
            "side": "SELL",
            "time": "2026-01-01T00:00:00Z",
        }
        self.service.on_frame(self._frame("market_trades", {"type": "update", "trades": [trade]}))
        for new in self.service.trades(PRODUCT)[before:]:
            for listener in self.trade_listeners:
                listener(new)


async def test_fills_on_the_real_market_data_service_book() -> None:
    market = ServiceMarket()
    settings = PaperSettings(starting_balances={"USD": D("100000")}, latency_ms=0)
    venue = PaperVenue(market, [btc_usd()], settings, clock=ManualClock())
    listener = VenueRecorder()
    venue.set_listener(listener)
    await venue.start()
    market.level2(
        "snapshot",
        ("bid", "67990.00", "0.5"),
        ("offer", "68010.00", "0.5"),
        ("offer", "68020.00", "0.5"),
    )
    assert market.service.health(PRODUCT).state is BookStatus.LIVE

    resting = await venue.place(limit(Side.BUY, "0.5", "67990.00"), "rest")
    taking = await venue.place(market_order_base("0.6"), "take")
    assert isinstance(resting, OrderAccepted) and isinstance(taking, OrderAccepted)
    await settle()
    taken = listener.last(taking.placed.order_id)
    assert taken.filled_value == D("0.5") * 68010 + D("0.1") * 68020

    # The level we emptied shows 0.7: 0.2 more than the 0.5 it showed, new orders behind it.
    market.level2("update", ("offer", "68010.00", "0.7"))
    again = await venue.place(market_order_base("0.2"), "again")
    assert isinstance(again, OrderAccepted)
    await settle()
    assert listener.last(again.placed.order_id).filled_value == D("0.2") * 68010

    market.print_trade("67990.00", "0.75")  # 0.5 ahead of us at our price, then 0.25 to us
    assert listener.last(resting.placed.order_id).filled_size == D("0.25")


def market_order_base(size: str) -> OrderSpec:
    return OrderSpec(PRODUCT, Side.BUY, OrderType.MARKET, base_size=D(size))


async def test_a_dropped_book_keeps_our_place_in_the_queue(rig: Rig) -> None:
    order_id = await rig.place(limit(Side.BUY, "1", "98"))  # 2 ahead of us
    rig.market.snapshot(bids=[], asks=[])  # the feed dropped the book (disconnect)
    rig.market.snapshot(bids=[(98.0, 3.0)], asks=[(100.0, 1.0)])  # fresh snapshot

    rig.market.print_trade(98.0, 2.0)
    assert rig.listener.last(order_id).filled_size == 0  # still 2 ahead when the feed dropped
    rig.market.print_trade(98.0, 1.0)
    assert rig.listener.last(order_id).filled_size == D("1")


# ---------------------------------------------------------------------- self-trade prevention


async def test_a_market_buy_does_not_trade_through_our_own_ask(rig: Rig) -> None:
    """Issue 10: our own resting ask inside the spread was ignored and the buy paid 100."""
    ask = await rig.place(limit(Side.SELL, "0.4", "99.50"))
    buy = await rig.place(market(Side.BUY, base="1"))

    # Decrement and cancel: our 0.4 ask is cancelled, the buy loses 0.4 without a trade
    # and takes the other 0.6 from the book.
    assert rig.listener.last(ask).status is CANCELLED
    assert rig.listener.last(ask).filled_size == 0
    assert "Self-trade" in (rig.listener.last(ask).cancel_reason or "")
    final = rig.listener.last(buy)
    assert final.status is FILLED and final.filled_size == D("0.6")
    fills = await rig.venue.list_fills(order_ids=[buy, ask])
    assert [(f.order_id, f.price, f.size) for f in fills] == [(buy, D(100), D("0.6"))]
    assert await rig.balance("BTC") == Balance("BTC", D("10.6"), D(0))


async def test_a_larger_own_order_is_decremented_and_the_taker_cancelled(rig: Rig) -> None:
    ask = await rig.place(limit(Side.SELL, "2", "99.50"))
    buy = await rig.place(limit(Side.BUY, "0.5", "101", TimeInForce.IOC))

    assert rig.listener.last(buy).status is CANCELLED
    assert rig.listener.last(buy).filled_size == 0
    resting = rig.listener.last(ask)
    assert resting.status is OPEN and resting.leaves_quantity == D("1.5")
    assert await rig.venue.list_fills() == []
    # The decremented part's hold is back: only 1.5 BTC is still held.
    assert await rig.balance("BTC") == Balance("BTC", D("8.5"), D("1.5"))
    rig.market.print_trade(100.0, 5.0)  # a print through our ask fills what is left, no more
    assert rig.listener.last(ask).status is FILLED
    assert rig.listener.last(ask).filled_size == D("1.5")


async def test_equal_sizes_cancel_both(rig: Rig) -> None:
    bid = await rig.place(limit(Side.BUY, "1", "99.50"))
    sell = await rig.place(market(Side.SELL, base="1"))
    assert rig.listener.last(bid).status is CANCELLED
    assert rig.listener.last(sell).status is CANCELLED
    assert await rig.venue.list_fills() == []
    assert await rig.balance("USD") == Balance("USD", D("100000"), D(0))
    assert await rig.balance("BTC") == Balance("BTC", D("10"), D(0))


async def test_post_only_that_would_cross_our_own_order_is_rejected(rig: Rig) -> None:
    await rig.place(limit(Side.SELL, "1", "99.50"))
    rejected = await rig.reject(limit(Side.BUY, "1", "99.50", post_only=True))
    assert rejected.code == "INVALID_LIMIT_PRICE_POST_ONLY"


# ---------------------------------------------------------------------- market protection


async def test_a_market_order_stops_at_the_protection_limit(rig: Rig) -> None:
    rig.market.snapshot(
        bids=[(99.0, 1.0), (80.0, 50.0)], asks=[(100.0, 1.0), (110.0, 1.0), (110.01, 50.0)]
    )
    buy = await rig.place(market(Side.BUY, base="5"))  # 10% from 100 is 110

    final = rig.listener.last(buy)
    assert final.status is CANCELLED
    assert final.filled_size == D(2)
    assert "protection" in (final.cancel_reason or "")
    assert await rig.balance("USD") == Balance("USD", D("100000") - D(210) * (1 + TAKER), D(0))

    sell = await rig.place(market(Side.SELL, base="5"))  # 10% below 99 is 89.1: not 80
    assert rig.listener.last(sell).filled_size == D(1)
    assert rig.listener.last(sell).status is CANCELLED


async def test_market_protection_is_a_setting() -> None:
    rig = make_rig(latency_ms=0, market_protection_pct=D(50))
    await rig.venue.start()
    rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, 1.0), (140.0, 5.0)])
    buy = await rig.place(market(Side.BUY, base="2"))
    assert rig.listener.last(buy).status is FILLED


# ---------------------------------------------------------------------- properties

_LEVEL_SIZES = st.sampled_from([0.0, 0.3, 0.5, 1.0, 1.05, 1.1, 1.15, 2.0])
_BOOK_OR_BUY = st.one_of(
    st.tuples(st.just("book"), _LEVEL_SIZES),
    st.tuples(st.just("buy"), st.sampled_from([0.1, 0.5, 1.0, 2.0])),
)


@settings(max_examples=150, deadline=None)
@given(start=_LEVEL_SIZES.filter(lambda size: size > 0), steps=st.lists(_BOOK_OR_BUY, max_size=25))
def test_fills_at_a_level_never_exceed_what_the_book_showed_arriving(
    start: float, steps: list[tuple[str, float]]
) -> None:
    """Whatever the book does between our market buys, we never take more at a level than
    its first size plus every rise the book showed: liquidity cannot come from nowhere."""

    async def scenario() -> tuple[Decimal, Decimal]:
        rig = make_rig(latency_ms=0)
        await rig.venue.start()
        rig.market.snapshot(bids=[(99.0, 1.0)], asks=[(100.0, start), (105.0, 1000.0)])
        shown, arrived, orders = start, D(repr(start)), []
        for kind, value in steps:
            if kind == "book":
                arrived += max(D(0), D(repr(value)) - D(repr(shown)))
                shown = value
                rig.market.set_ask(100.0, value)
            else:
                orders.append(await rig.place(market(Side.BUY, base=repr(value))))
        fills = await rig.venue.list_fills(order_ids=orders)
        return sum((f.size for f in fills if f.price == D(100)), D(0)), arrived

    taken, arrived = asyncio.run(scenario())
    assert taken <= arrived
