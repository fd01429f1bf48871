"""SimExchange: order lifecycles, fees and holds, every rejection code, cancel, events, data."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.clock import ManualClock
from core.model import ExchangeOrderStatus, Side, StopDirection
from core.sim.exchange import FEE_USER_ID, SimExchange
from core.sim.products import default_product_specs, make_usd_product
from core.sim.types import (
    SimCandle,
    SimFill,
    SimOrder,
    SimOrderRequest,
    SimOrderResult,
    SimProductSpec,
    SimTrade,
)

D = Decimal
BTC = "BTC-USD"
OPEN = ExchangeOrderStatus.OPEN
FILLED = ExchangeOrderStatus.FILLED
CANCELLED = ExchangeOrderStatus.CANCELLED
EXPIRED = ExchangeOrderStatus.EXPIRED
START_USD = D(1_000_000)
START_BTC = D(10)


class Recorder:
    """A SimListener that records every call as a tuple, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_book_change(
        self, product_id: str, side: Side, price: Decimal, new_size: Decimal, time: datetime
    ) -> None:
        self.events.append(("book", product_id, side, price, new_size))

    def on_trade(self, trade: SimTrade) -> None:
        self.events.append(("trade", trade.price, trade.size, trade.side))

    def on_order_update(self, order: SimOrder) -> None:
        self.events.append(("order", order.user_id, order.status, order.filled_size))

    def on_fill(self, fill: SimFill) -> None:
        self.events.append(("fill", fill.user_id, fill.price, fill.size, fill.liquidity))

    def kinds(self) -> list[str]:
        return [event[0] for event in self.events]


@pytest.fixture
def exchange(clock: ManualClock) -> SimExchange:
    """An exchange with the default products and users alice, bob and carol, each holding
    1,000,000 USD and 10 BTC."""
    exchange = SimExchange(clock=clock, seed=42)
    for user in ("alice", "bob", "carol"):
        exchange.open_account(user, {"USD": START_USD, "BTC": START_BTC})
    return exchange


@pytest.fixture
def recorder(exchange: SimExchange) -> Recorder:
    """A listener attached to the exchange."""
    recorder = Recorder()
    exchange.add_listener(recorder)
    return recorder


_ids = iter(range(10**9))


def limit(
    side: Side, size: str, price: str, *, kind: str = "limit_limit_gtc", **extra: Any
) -> SimOrderRequest:
    return SimOrderRequest(
        client_order_id=f"c{next(_ids)}",
        product_id=extra.pop("product_id", BTC),
        side=side,
        config_kind=kind,
        base_size=D(size),
        limit_price=D(price),
        **extra,
    )


def market(side: Side, *, base: str | None = None, quote: str | None = None) -> SimOrderRequest:
    return SimOrderRequest(
        client_order_id=f"c{next(_ids)}",
        product_id=BTC,
        side=side,
        config_kind="market_market_ioc",
        base_size=None if base is None else D(base),
        quote_size=None if quote is None else D(quote),
    )


def place(exchange: SimExchange, user: str, request: SimOrderRequest) -> SimOrder:
    result = exchange.create_order(user, request)
    assert result.success, result
    assert result.order is not None
    return result.order


def wallet(exchange: SimExchange, user: str, currency: str) -> tuple[Decimal, Decimal]:
    for account in exchange.accounts(user):
        if account.currency == currency:
            return account.available, account.hold
    return D(0), D(0)


def assert_conserved(exchange: SimExchange, users: int = 3) -> None:
    assert exchange.total_balance("USD") == START_USD * users
    assert exchange.total_balance("BTC") == START_BTC * users


# -- limit orders, fees and holds ------------------------------------------------------------


def test_resting_buy_holds_price_size_and_worst_fee(
    exchange: SimExchange, recorder: Recorder
) -> None:
    order = place(exchange, "alice", limit(Side.BUY, "0.5", "60000.00"))

    assert order.status is OPEN
    assert order.order_type == "LIMIT"
    assert order.time_in_force == "GOOD_UNTIL_CANCELLED"
    hold = D("60000.00") * D("0.5") * D("1.006")
    assert order.outstanding_hold_amount == hold
    assert wallet(exchange, "alice", "USD") == (START_USD - hold, hold)
    assert exchange.book_levels(BTC) == ([(D("60000.00"), D("0.5"))], [])
    assert recorder.events == [
        ("order", "alice", OPEN, D(0)),
        ("book", BTC, Side.BUY, D("60000.00"), D("0.5")),
    ]


def test_resting_sell_holds_base(exchange: SimExchange) -> None:
    place(exchange, "alice", limit(Side.SELL, "1.25", "70000.00"))
    assert wallet(exchange, "alice", "BTC") == (START_BTC - D("1.25"), D("1.25"))


def test_cross_fills_at_maker_price_with_maker_and_taker_fees(
    exchange: SimExchange, recorder: Recorder
) -> None:
    maker = place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    recorder.events.clear()

    taker = place(exchange, "bob", limit(Side.BUY, "1", "68100.00"))

    assert maker.status is FILLED and taker.status is FILLED
    assert maker.total_fees == D("272.00") and taker.total_fees == D("408.00")
    assert taker.average_filled_price == D("68000.00")
    assert taker.filled_value == D("68000.00")
    assert taker.completion_percentage == 100
    assert taker.leaves_quantity == 0
    # bob paid the maker's price plus 0.6 %, and the rest of his hold came back.
    assert wallet(exchange, "bob", "USD") == (START_USD - D(68000) - D(408), D(0))
    assert wallet(exchange, "bob", "BTC") == (START_BTC + 1, D(0))
    assert wallet(exchange, "alice", "USD") == (START_USD + D(68000) - D(272), D(0))
    assert wallet(exchange, "alice", "BTC") == (START_BTC - 1, D(0))
    assert wallet(exchange, FEE_USER_ID, "USD") == (D(680), D(0))
    assert_conserved(exchange)
    assert recorder.events == [
        ("order", "bob", OPEN, D(0)),
        ("book", BTC, Side.SELL, D("68000.00"), D(0)),
        ("trade", D("68000.00"), D(1), Side.BUY),
        ("fill", "alice", D("68000.00"), D(1), "MAKER"),
        ("order", "alice", FILLED, D(1)),
        ("fill", "bob", D("68000.00"), D(1), "TAKER"),
        ("order", "bob", FILLED, D(1)),
    ]
    fills = exchange.list_fills("bob")
    assert len(fills) == 1 and fills[0].commission == D("408.00")
    assert fills[0].trade_id == exchange.recent_trades(BTC, 1)[0].trade_id


def test_partial_fill_rests_the_remainder(exchange: SimExchange, recorder: Recorder) -> None:
    place(exchange, "alice", limit(Side.SELL, "0.3", "68000.00"))
    recorder.events.clear()

    order = place(exchange, "bob", limit(Side.BUY, "1", "68000.00"))

    assert order.status is OPEN
    assert order.filled_size == D("0.3")
    assert order.leaves_quantity == D("0.7")
    assert order.completion_percentage == 30
    assert exchange.book_levels(BTC) == ([(D("68000.00"), D("0.7"))], [])
    remaining_hold = D("68000.00") * D("0.7") * D("1.006")
    assert order.outstanding_hold_amount == remaining_hold
    assert wallet(exchange, "bob", "USD")[1] == remaining_hold
    assert recorder.events[-1] == ("book", BTC, Side.BUY, D("68000.00"), D("0.7"))


def test_price_then_time_priority(exchange: SimExchange) -> None:
    first = place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    second = place(exchange, "carol", limit(Side.SELL, "1", "68000.00"))
    better = place(exchange, "carol", limit(Side.SELL, "1", "67999.00"))

    place(exchange, "bob", limit(Side.BUY, "1.5", "68000.00"))

    assert better.status is FILLED
    assert first.filled_size == D("0.5") and first.status is OPEN
    assert second.filled_size == 0
    assert [t.price for t in exchange.recent_trades(BTC, 10)] == [
        D("68000.00"),
        D("67999.00"),
    ]


def test_taker_walks_levels_and_buy_hold_refunds_price_improvement(
    exchange: SimExchange,
) -> None:
    place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    place(exchange, "alice", limit(Side.SELL, "1", "68050.00"))

    order = place(exchange, "bob", limit(Side.BUY, "2", "68100.00"))

    cost = D("68000.00") + D("68050.00")
    assert order.status is FILLED and order.number_of_fills == 2
    assert order.average_filled_price == cost / 2
    assert wallet(exchange, "bob", "USD") == (START_USD - cost * D("1.006"), D(0))
    assert_conserved(exchange)


def test_self_trade_is_allowed(exchange: SimExchange) -> None:
    place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    order = place(exchange, "alice", limit(Side.BUY, "1", "68000.00"))
    assert order.status is FILLED
    assert wallet(exchange, "alice", "BTC") == (START_BTC, D(0))
    assert_conserved(exchange)


def test_per_user_fee_tier(exchange: SimExchange) -> None:
    exchange.set_fee_rates("bob", D(0), D("0.001"))
    assert exchange.fee_rates("bob") == (D(0), D("0.001"))
    assert exchange.fee_rates("alice") == (D("0.004"), D("0.006"))
    place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    order = place(exchange, "bob", limit(Side.BUY, "1", "68000.00"))
    assert order.total_fees == D("68.000")


# -- market orders ---------------------------------------------------------------------------


def test_market_buy_by_base_walks_the_book(exchange: SimExchange) -> None:
    place(exchange, "alice", limit(Side.SELL, "0.5", "68000.00"))
    place(exchange, "alice", limit(Side.SELL, "0.5", "68010.00"))

    order = place(exchange, "bob", market(Side.BUY, base="0.75"))

    assert order.order_type == "MARKET" and order.time_in_force == "IMMEDIATE_OR_CANCEL"
    assert order.status is FILLED
    notional = D("68000.00") * D("0.5") + D("68010.00") * D("0.25")
    assert order.filled_value == notional
    assert wallet(exchange, "bob", "USD") == (START_USD - notional * D("1.006"), D(0))
    assert_conserved(exchange)


def test_market_buy_by_quote_spends_at_most_quote_incl_fees(exchange: SimExchange) -> None:
    place(exchange, "alice", limit(Side.SELL, "0.5", "68000.00"))
    place(exchange, "alice", limit(Side.SELL, "0.5", "68001.00"))

    order = place(exchange, "bob", market(Side.BUY, quote="50000.00"))

    spent = order.filled_value + order.total_fees
    assert order.status is FILLED
    assert spent <= D("50000.00")
    # Not one more satoshi at 68001 would have fitted into what is left.
    assert D("50000.00") - spent < D("68001.00") * D("0.00000001") * D("1.006")
    assert order.filled_size == D("0.73090526")
    assert wallet(exchange, "bob", "USD") == (START_USD - spent, D(0))
    assert order.leaves_quantity == 0
    assert order.completion_percentage > D("99.99")
    assert_conserved(exchange)


def test_market_sell_by_base_and_by_quote(exchange: SimExchange) -> None:
    place(exchange, "alice", limit(Side.BUY, "1", "68000.00"))
    place(exchange, "alice", limit(Side.BUY, "1", "67000.00"))

    by_base = place(exchange, "bob", market(Side.SELL, base="0.5"))
    by_quote = place(exchange, "carol", market(Side.SELL, quote="68000.00"))

    assert by_base.status is FILLED and by_base.filled_size == D("0.5")
    assert wallet(exchange, "bob", "USD")[0] == START_USD + D(34000) * D("0.994")
    # carol sells until her gross proceeds would pass 68,000: the 0.5 left at 68,000, then
    # as many satoshis at 67,000 as the remaining 34,000 allows.
    assert by_quote.status is FILLED
    assert by_quote.filled_value <= D("68000.00")
    assert D("68000.00") - by_quote.filled_value < D("67000.00") * D("0.00000001")
    assert wallet(exchange, "carol", "BTC") == (START_BTC - by_quote.filled_size, D(0))
    assert_conserved(exchange)


def test_market_order_without_liquidity_is_rejected(exchange: SimExchange) -> None:
    result = exchange.create_order("bob", market(Side.BUY, base="0.1"))
    assert_rejected(result, "INVALID_NO_LIQUIDITY", "PREVIEW_INVALID_NO_LIQUIDITY")


def test_market_order_that_empties_the_book_is_cancelled_with_its_fills(
    exchange: SimExchange,
) -> None:
    place(exchange, "alice", limit(Side.SELL, "0.2", "68000.00"))
    order = place(exchange, "bob", market(Side.BUY, base="1"))
    assert order.status is CANCELLED
    assert order.filled_size == D("0.2")
    assert order.cancel_reason
    assert order.outstanding_hold_amount == 0
    assert wallet(exchange, "bob", "USD")[1] == 0
    assert_conserved(exchange)


def test_market_order_protection_cancels_what_lies_beyond_ten_percent(
    exchange: SimExchange,
) -> None:
    """Coinbase's market-order protection: no fill further than 10% from the touch."""
    place(exchange, "alice", limit(Side.SELL, "0.2", "60000.00"))
    place(exchange, "alice", limit(Side.SELL, "0.3", "66000.00"))  # exactly 10%: allowed
    place(exchange, "alice", limit(Side.SELL, "1", "66000.01"))  # beyond it
    order = place(exchange, "bob", market(Side.BUY, base="1"))
    assert order.status is CANCELLED
    assert order.filled_size == D("0.5")
    assert "protection" in (order.cancel_reason or "")
    assert order.outstanding_hold_amount == 0
    assert exchange.best_bid_ask(BTC)[1] == D("66000.01")  # the far ask was not touched
    place(exchange, "carol", limit(Side.BUY, "0.1", "50000.00"))
    place(exchange, "carol", limit(Side.BUY, "1", "44999.99"))  # beyond 10% below 50000
    sell = place(exchange, "bob", market(Side.SELL, quote="20000.00"))
    assert sell.status is CANCELLED and sell.filled_size == D("0.1")
    assert_conserved(exchange)


def test_market_protection_is_configurable(clock: ManualClock) -> None:
    exchange = SimExchange(clock=clock, seed=1, market_protection=D("0.5"))
    exchange.open_account("alice", {"USD": START_USD, "BTC": START_BTC})
    exchange.open_account("bob", {"USD": START_USD, "BTC": START_BTC})
    place(exchange, "alice", limit(Side.SELL, "0.2", "60000.00"))
    place(exchange, "alice", limit(Side.SELL, "1", "80000.00"))
    order = place(exchange, "bob", market(Side.BUY, base="1"))
    assert order.status is FILLED


def test_market_buy_by_quote_too_small_for_one_increment_is_cancelled(
    exchange: SimExchange,
) -> None:
    product = make_usd_product("BIG", base_increment=D(1), base_min_size=D(1), base_max_size=D(10))
    exchange = SimExchange(clock=ManualClock(), seed=1, products=[SimProductSpec(product, D(100))])
    exchange.open_account("u", {"USD": D(1000), "BIG": D(5)})
    place(exchange, "u", limit(Side.SELL, "1", "100.00", product_id="BIG-USD"))
    request = replace(market(Side.BUY, quote="50.00"), product_id="BIG-USD")
    order = place(exchange, "u", request)
    assert order.status is CANCELLED and order.filled_size == 0
    assert wallet(exchange, "u", "USD") == (D(1000), D(0))


# -- IOC, FOK, post-only ---------------------------------------------------------------------


def test_ioc_fills_what_it_can_and_cancels_the_rest(
    exchange: SimExchange, recorder: Recorder
) -> None:
    place(exchange, "alice", limit(Side.SELL, "0.4", "68000.00"))
    place(exchange, "alice", limit(Side.SELL, "1", "68200.00"))
    recorder.events.clear()

    order = place(exchange, "bob", limit(Side.BUY, "1", "68100.00", kind="sor_limit_ioc"))

    assert order.time_in_force == "IMMEDIATE_OR_CANCEL"
    assert order.status is CANCELLED
    assert order.filled_size == D("0.4")
    assert exchange.book_levels(BTC)[0] == []  # nothing rests
    assert recorder.events[-1] == ("order", "bob", CANCELLED, D("0.4"))
    assert wallet(exchange, "bob", "USD")[1] == 0


def test_ioc_without_a_match_is_cancelled_unfilled(exchange: SimExchange) -> None:
    order = place(exchange, "bob", limit(Side.BUY, "1", "68100.00", kind="sor_limit_ioc"))
    assert order.status is CANCELLED and order.filled_size == 0
    assert wallet(exchange, "bob", "USD") == (START_USD, D(0))


def test_fok_fills_completely_or_not_at_all(exchange: SimExchange, recorder: Recorder) -> None:
    place(exchange, "alice", limit(Side.SELL, "0.4", "68000.00"))
    place(exchange, "alice", limit(Side.SELL, "0.4", "68100.00"))
    recorder.events.clear()

    killed = place(exchange, "bob", limit(Side.BUY, "1", "68100.00", kind="limit_limit_fok"))

    assert killed.time_in_force == "FILL_OR_KILL"
    assert killed.status is CANCELLED and killed.number_of_fills == 0
    assert [kind for kind in recorder.kinds()] == ["order", "order"]  # no book change, no trade
    assert wallet(exchange, "bob", "USD") == (START_USD, D(0))

    filled = place(exchange, "bob", limit(Side.BUY, "0.8", "68100.00", kind="limit_limit_fok"))
    assert filled.status is FILLED and filled.number_of_fills == 2


def test_post_only_rests_when_passive_and_is_rejected_when_crossing(
    exchange: SimExchange,
) -> None:
    place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    passive = place(exchange, "bob", limit(Side.BUY, "1", "67999.99", post_only=True))
    assert passive.status is OPEN and passive.post_only

    result = exchange.create_order("bob", limit(Side.BUY, "1", "68000.00", post_only=True))

    assert_rejected(
        result, "INVALID_LIMIT_PRICE_POST_ONLY", "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"
    )
    assert exchange.list_orders("bob") == [passive]


# -- stop-limit ------------------------------------------------------------------------------


def test_stop_up_waits_then_triggers_on_a_trade_at_the_stop(
    exchange: SimExchange, recorder: Recorder
) -> None:
    stop = place(
        exchange,
        "carol",
        limit(
            Side.BUY,
            "0.2",
            "68200.00",
            kind="stop_limit_stop_limit_gtc",
            stop_price=D("68100.00"),
            stop_direction=StopDirection.UP,
        ),
    )
    assert stop.order_type == "STOP_LIMIT"
    assert (stop.status, stop.trigger_status) == (OPEN, "STOP_PENDING")
    hold = D("68200.00") * D("0.2") * D("1.006")
    assert wallet(exchange, "carol", "USD")[1] == hold
    assert exchange.book_levels(BTC) == ([], [])  # a pending stop is not in the book

    place(exchange, "alice", limit(Side.SELL, "0.5", "68050.00"))
    place(exchange, "bob", limit(Side.BUY, "0.1", "68050.00"))  # prints below the stop
    assert stop.trigger_status == "STOP_PENDING"

    place(exchange, "alice", limit(Side.SELL, "0.5", "68100.00"))
    recorder.events.clear()
    place(exchange, "bob", limit(Side.BUY, "0.5", "68100.00"))  # sweeps 68050 then 68100

    assert stop.trigger_status == "STOP_TRIGGERED"
    assert stop.status is FILLED
    assert stop.average_filled_price == D("68100.00")
    assert ("order", "carol", OPEN, D(0)) in recorder.events  # the trigger was reported
    assert wallet(exchange, "carol", "USD") == (
        START_USD - D("68100.00") * D("0.2") * D("1.006"),
        D(0),
    )
    assert_conserved(exchange)


def test_stop_down_triggers_and_rests_as_a_limit(exchange: SimExchange) -> None:
    stop = place(
        exchange,
        "carol",
        limit(
            Side.SELL,
            "0.3",
            "67800.00",
            kind="stop_limit_stop_limit_gtc",
            stop_price=D("67900.00"),
            stop_direction=StopDirection.DOWN,
        ),
    )
    assert wallet(exchange, "carol", "BTC")[1] == D("0.3")
    place(exchange, "alice", limit(Side.BUY, "0.1", "67900.00"))
    place(exchange, "bob", market(Side.SELL, base="0.1"))

    assert (stop.status, stop.trigger_status) == (OPEN, "STOP_TRIGGERED")
    assert exchange.book_levels(BTC) == ([], [(D("67800.00"), D("0.3"))])


def test_a_triggered_stop_can_trigger_the_next(exchange: SimExchange) -> None:
    first = place(
        exchange,
        "carol",
        limit(
            Side.BUY,
            "0.1",
            "68300.00",
            kind="stop_limit_stop_limit_gtc",
            stop_price=D("68100.00"),
            stop_direction=StopDirection.UP,
        ),
    )
    second = place(
        exchange,
        "carol",
        limit(
            Side.BUY,
            "0.1",
            "68300.00",
            kind="stop_limit_stop_limit_gtc",
            stop_price=D("68200.00"),
            stop_direction=StopDirection.UP,
        ),
    )
    place(exchange, "alice", limit(Side.SELL, "0.1", "68100.00"))
    place(exchange, "alice", limit(Side.SELL, "0.1", "68200.00"))
    place(exchange, "alice", limit(Side.SELL, "0.1", "68250.00"))
    place(exchange, "bob", limit(Side.BUY, "0.1", "68100.00"))  # prints 68100: first fires

    assert first.status is FILLED and first.average_filled_price == D("68200.00")
    assert second.status is FILLED and second.average_filled_price == D("68250.00")


def test_cancel_a_pending_stop_releases_its_hold(exchange: SimExchange) -> None:
    stop = place(
        exchange,
        "carol",
        limit(
            Side.SELL,
            "1",
            "67000.00",
            kind="stop_limit_stop_limit_gtc",
            stop_price=D("67500.00"),
            stop_direction=StopDirection.DOWN,
        ),
    )
    [result] = exchange.cancel_orders("carol", [stop.order_id])
    assert result.success and stop.status is CANCELLED
    assert wallet(exchange, "carol", "BTC") == (START_BTC, D(0))
    place(exchange, "alice", limit(Side.BUY, "0.1", "67400.00"))
    place(exchange, "bob", market(Side.SELL, base="0.1"))
    assert stop.trigger_status == "STOP_PENDING" and stop.status is CANCELLED


# -- GTD expiry ------------------------------------------------------------------------------


def test_gtd_order_expires_when_the_clock_reaches_end_time(
    exchange: SimExchange, clock: ManualClock, recorder: Recorder
) -> None:
    end = datetime.fromtimestamp(clock.time(), tz=UTC) + timedelta(seconds=60)
    order = place(
        exchange, "alice", limit(Side.BUY, "1", "60000.00", kind="limit_limit_gtd", end_time=end)
    )
    assert order.time_in_force == "GOOD_UNTIL_DATE_TIME" and order.end_time == end

    clock.advance(59)
    exchange.expire_orders()
    assert order.status is OPEN

    clock.advance(1)
    recorder.events.clear()
    exchange.expire_orders()

    assert order.status is EXPIRED
    assert wallet(exchange, "alice", "USD") == (START_USD, D(0))
    assert recorder.events == [
        ("book", BTC, Side.BUY, D("60000.00"), D(0)),
        ("order", "alice", EXPIRED, D(0)),
    ]
    [result] = exchange.cancel_orders("alice", [order.order_id])
    assert (result.success, result.failure_reason) == (False, "INVALID_CANCEL_REQUEST")


def test_expired_gtd_never_fills_even_before_expire_orders_runs(
    exchange: SimExchange, clock: ManualClock
) -> None:
    naive_end = datetime.fromtimestamp(clock.time() + 10, tz=UTC).replace(tzinfo=None)
    order = place(
        exchange,
        "alice",
        limit(Side.SELL, "1", "68000.00", kind="limit_limit_gtd", end_time=naive_end),
    )
    assert order.end_time is not None and order.end_time.tzinfo is UTC  # naive means UTC
    clock.advance(10)
    taker = place(exchange, "bob", limit(Side.BUY, "1", "68000.00"))
    assert order.status is EXPIRED and taker.status is OPEN and taker.filled_size == 0


def test_gtd_stop_limit_expires_while_pending(exchange: SimExchange, clock: ManualClock) -> None:
    end = datetime.fromtimestamp(clock.time() + 5, tz=UTC)
    stop = place(
        exchange,
        "alice",
        limit(
            Side.BUY,
            "1",
            "69000.00",
            kind="stop_limit_stop_limit_gtd",
            stop_price=D("68500.00"),
            stop_direction=StopDirection.UP,
            end_time=end,
        ),
    )
    clock.advance(6)
    exchange.expire_orders()
    assert stop.status is EXPIRED
    assert wallet(exchange, "alice", "USD") == (START_USD, D(0))


# -- rejections ------------------------------------------------------------------------------


def assert_rejected(result: SimOrderResult, error: str, preview: str) -> None:
    assert not result.success
    assert result.order is None
    assert result.error == error
    assert result.new_order_failure_reason == error
    assert result.preview_failure_reason == preview
    assert result.message and result.error_details


def _req(**fields: Any) -> SimOrderRequest:
    base: dict[str, Any] = {
        "client_order_id": f"r{next(_ids)}",
        "product_id": BTC,
        "side": Side.BUY,
        "config_kind": "limit_limit_gtc",
        "base_size": D("0.01"),
        "limit_price": D("60000.00"),
    }
    base.update(fields)
    return SimOrderRequest(**base)


_FAR = datetime(2030, 1, 1, tzinfo=UTC)
_PAST = datetime(2020, 1, 1, tzinfo=UTC)
_STOP = {
    "config_kind": "stop_limit_stop_limit_gtc",
    "stop_price": D("69000.00"),
    "stop_direction": StopDirection.UP,
    "limit_price": D("69100.00"),
}
_U = "UNKNOWN_FAILURE_REASON"

REJECTIONS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown product", {"product_id": "DOGE-EUR"}, "INVALID_PRODUCT_ID", "PREVIEW_INVALID_PRODUCT_ID"),
    ("unknown config", {"config_kind": "twap_limit_gtd"}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("quote_size on limit", {"quote_size": D(100)}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("limit without size", {"base_size": None}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("market with both sizes", {"config_kind": "market_market_ioc", "limit_price": None, "quote_size": D(10)}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("market with a price", {"config_kind": "market_market_ioc"}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("stop fields on a limit", {"stop_price": D(1)}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("end_time on GTC", {"end_time": _FAR}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("post_only on IOC", {"config_kind": "sor_limit_ioc", "post_only": True}, "UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG"),
    ("post_only on FOK", {"config_kind": "limit_limit_fok", "post_only": True}, "POST_ONLY_NOT_ALLOWED_WITH_FOK", "PREVIEW_POST_ONLY_NOT_ALLOWED_WITH_FOK"),
    ("invalid side", {"side": "SIDEWAYS"}, "INVALID_SIDE", "PREVIEW_INVALID_SIDE"),
    ("size precision", {"base_size": D("0.000000001")}, "INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION"),
    ("absurd size", {"base_size": D("1E+40")}, "INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION"),
    ("NaN size", {"base_size": D("NaN")}, "INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION"),
    ("quote precision", {"config_kind": "market_market_ioc", "limit_price": None, "base_size": None, "quote_size": D("10.001")}, "INVALID_SIZE_PRECISION", "PREVIEW_INVALID_QUOTE_SIZE_PRECISION"),
    ("no limit price", {"limit_price": None}, "INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE"),
    ("zero limit price", {"limit_price": D(0)}, "INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE"),
    ("negative limit price", {"limit_price": D("-1.00")}, "INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE"),
    ("price precision", {"limit_price": D("60000.001")}, "INVALID_PRICE_PRECISION", "PREVIEW_INVALID_PRICE_PRECISION"),
    ("stop without price", {**_STOP, "stop_price": None}, _U, "PREVIEW_INVALID_STOP_PRICE"),
    ("stop without direction", {**_STOP, "stop_direction": None}, _U, "PREVIEW_INVALID_STOP_PRICE"),
    ("negative stop", {**_STOP, "stop_price": D(-5)}, _U, "PREVIEW_INVALID_STOP_PRICE"),
    ("stop precision", {**_STOP, "stop_price": D("69000.005")}, "INVALID_PRICE_PRECISION", "PREVIEW_INVALID_STOP_PRICE_PRECISION"),
    ("stop up below last", {**_STOP, "stop_price": D("67000.00")}, _U, "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE"),
    ("stop down above last", {**_STOP, "stop_direction": StopDirection.DOWN}, _U, "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE"),
    ("GTD without end", {"config_kind": "limit_limit_gtd"}, "GTD_ORDERS_MUST_HAVE_END_TIME", "PREVIEW_GTD_ORDERS_MUST_HAVE_END_TIME"),
    ("GTD end in the past", {"config_kind": "limit_limit_gtd", "end_time": _PAST}, "END_TIME_IS_IN_THE_PAST", "PREVIEW_END_TIME_IS_IN_THE_PAST"),
    ("base too small", {"base_size": D(0)}, _U, "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"),
    ("base too large", {"base_size": D(3401), "limit_price": D("1.00")}, _U, "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE"),
    ("notional too small", {"base_size": D("0.00001")}, _U, "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
    ("notional too large", {"base_size": D(3000)}, _U, "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE"),
    ("quote too small", {"config_kind": "market_market_ioc", "limit_price": None, "base_size": None, "quote_size": D("0.99")}, _U, "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
    ("quote too large", {"config_kind": "market_market_ioc", "limit_price": None, "base_size": None, "quote_size": D(150_000_001)}, _U, "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE"),
    ("insufficient quote", {"base_size": D(17), "limit_price": D("60000.00")}, "INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND"),
    ("insufficient base", {"side": Side.SELL, "base_size": D(11), "limit_price": D("90000.00")}, "INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "error", "preview"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejection_codes(
    exchange: SimExchange, fields: dict[str, Any], error: str, preview: str
) -> None:
    before = exchange.accounts("alice")

    result = exchange.create_order("alice", _req(**fields))

    assert_rejected(result, error, preview)
    assert exchange.accounts("alice") == before
    assert exchange.list_orders("alice") == []


def test_untradable_product_is_rejected(exchange: SimExchange) -> None:
    exchange.update_product(replace(exchange.products[BTC], trading_disabled=True))
    assert_rejected(
        exchange.create_order("alice", _req()), "UNTRADABLE_PRODUCT", "PREVIEW_UNTRADABLE_PRODUCT"
    )


def test_funds_count_holds_of_open_orders(exchange: SimExchange) -> None:
    place(exchange, "alice", limit(Side.SELL, "6", "90000.00"))
    result = exchange.create_order("alice", limit(Side.SELL, "5", "90000.00"))
    assert_rejected(result, "INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND")


def test_market_buy_by_base_needs_funds_for_the_walk(exchange: SimExchange) -> None:
    exchange.open_account("poor", {"USD": D(1000)})
    place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    result = exchange.create_order("poor", market(Side.BUY, base="0.1"))
    assert_rejected(result, "INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND")
    assert "6840.8" in result.message  # 0.1 x 68,000 x 1.006


# -- idempotency and cancel ------------------------------------------------------------------


def test_repeated_client_order_id_returns_the_original_and_creates_nothing(
    exchange: SimExchange, recorder: Recorder
) -> None:
    request = limit(Side.BUY, "1", "60000.00")
    first = place(exchange, "alice", request)
    recorder.events.clear()
    balances = exchange.accounts("alice")

    again = exchange.create_order("alice", replace(request, base_size=D(2)))

    assert again.success and again.order is first
    assert recorder.events == []
    assert exchange.accounts("alice") == balances
    assert exchange.book_levels(BTC)[0] == [(D("60000.00"), D(1))]
    # The same client_order_id from another user is a different order.
    other = place(exchange, "bob", request)
    assert other.order_id != first.order_id


def test_rejected_request_can_be_retried_with_the_same_client_order_id(
    exchange: SimExchange,
) -> None:
    request = limit(Side.BUY, "1", "60000.00", post_only=True)
    place(exchange, "bob", limit(Side.SELL, "1", "59000.00"))
    assert not exchange.create_order("alice", request).success
    exchange.cancel_orders("bob", [o.order_id for o in exchange.list_orders("bob")])
    assert exchange.create_order("alice", request).success


def test_cancel_open_order_releases_hold_and_reports(
    exchange: SimExchange, recorder: Recorder
) -> None:
    order = place(exchange, "alice", limit(Side.BUY, "1", "60000.00"))
    recorder.events.clear()

    [result] = exchange.cancel_orders("alice", [order.order_id])

    assert (result.order_id, result.success, result.failure_reason) == (
        order.order_id,
        True,
        "UNKNOWN_CANCEL_FAILURE_REASON",
    )
    assert order.status is CANCELLED and order.cancel_reason
    assert order.leaves_quantity == 0
    assert wallet(exchange, "alice", "USD") == (START_USD, D(0))
    assert recorder.events == [
        ("book", BTC, Side.BUY, D("60000.00"), D(0)),
        ("order", "alice", CANCELLED, D(0)),
    ]


def test_cancel_partially_filled_order_keeps_its_fills(exchange: SimExchange) -> None:
    order = place(exchange, "alice", limit(Side.BUY, "1", "68000.00"))
    place(exchange, "bob", market(Side.SELL, base="0.25"))
    exchange.cancel_orders("alice", [order.order_id])
    assert order.status is CANCELLED and order.filled_size == D("0.25")
    assert wallet(exchange, "alice", "USD")[1] == 0
    assert_conserved(exchange)


def test_cancel_failures(exchange: SimExchange) -> None:
    mine = place(exchange, "alice", limit(Side.BUY, "1", "60000.00"))
    done = place(exchange, "alice", limit(Side.BUY, "1", "60000.00", kind="sor_limit_ioc"))
    theirs = place(exchange, "bob", limit(Side.BUY, "1", "60000.00"))

    results = exchange.cancel_orders(
        "alice", ["nope", done.order_id, theirs.order_id, mine.order_id, mine.order_id]
    )

    assert [(r.success, r.failure_reason) for r in results] == [
        (False, "UNKNOWN_CANCEL_ORDER"),
        (False, "INVALID_CANCEL_REQUEST"),
        (False, "UNKNOWN_CANCEL_ORDER"),  # another user's order is unknown to alice
        (True, "UNKNOWN_CANCEL_FAILURE_REASON"),
        (False, "DUPLICATE_CANCEL_REQUEST"),
    ]
    assert theirs.status is OPEN
    assert exchange.cancel_orders("stranger", ["x"])[0].failure_reason == "UNKNOWN_CANCEL_ORDER"


# -- queries ---------------------------------------------------------------------------------


def test_list_orders_newest_first_with_filters(exchange: SimExchange, clock: ManualClock) -> None:
    first = place(exchange, "alice", limit(Side.BUY, "1", "60000.00"))
    clock.advance(10)
    eth = place(exchange, "alice", limit(Side.BUY, "1", "3000.00", product_id="ETH-USD"))
    clock.advance(10)
    third = place(exchange, "alice", limit(Side.BUY, "1", "60000.00"))
    exchange.cancel_orders("alice", [third.order_id])

    assert exchange.list_orders("alice") == [third, eth, first]
    assert exchange.list_orders("alice", product_ids=["ETH-USD"]) == [eth]
    assert exchange.list_orders("alice", statuses=[OPEN]) == [eth, first]
    assert exchange.list_orders("alice", statuses=["CANCELLED"]) == [third]
    assert exchange.list_orders("alice", order_ids=[first.order_id]) == [first]
    assert exchange.list_orders("alice", start=eth.created_time) == [third, eth]
    assert exchange.list_orders("alice", end=eth.created_time) == [eth, first]
    assert exchange.get_order("alice", eth.order_id) is eth
    assert exchange.get_order("bob", eth.order_id) is None
    assert exchange.list_orders("nobody") == []


def test_list_fills_newest_first_with_filters(exchange: SimExchange, clock: ManualClock) -> None:
    place(exchange, "alice", limit(Side.SELL, "1", "68000.00"))
    a = place(exchange, "bob", limit(Side.BUY, "0.5", "68000.00"))
    clock.advance(30)
    b = place(exchange, "bob", limit(Side.BUY, "0.5", "68000.00"))

    fills = exchange.list_fills("bob")
    assert [f.order_id for f in fills] == [b.order_id, a.order_id]
    assert {f.liquidity for f in fills} == {"TAKER"}
    assert [f.order_id for f in exchange.list_fills("bob", order_ids=[a.order_id])] == [a.order_id]
    assert exchange.list_fills("bob", product_ids=["ETH-USD"]) == []
    assert len(exchange.list_fills("bob", start=fills[0].trade_time)) == 1
    assert len(exchange.list_fills("bob", end=fills[1].trade_time)) == 1
    assert len(exchange.list_fills("alice")) == 2
    assert len({f.entry_id for f in exchange.list_fills("alice") + fills}) == 4


def test_book_levels_depth_and_best_bid_ask(exchange: SimExchange) -> None:
    for price in ("67000.00", "67500.00", "66000.00"):
        place(exchange, "alice", limit(Side.BUY, "0.1", price))
    place(exchange, "bob", limit(Side.BUY, "0.2", "67500.00"))
    place(exchange, "bob", limit(Side.SELL, "0.3", "68000.00"))

    bids, asks = exchange.book_levels(BTC, depth=2)

    assert bids == [(D("67500.00"), D("0.3")), (D("67000.00"), D("0.1"))]
    assert asks == [(D("68000.00"), D("0.3"))]
    assert exchange.best_bid_ask(BTC) == (D("67500.00"), D("68000.00"))
    assert exchange.best_bid_ask("ETH-USD") == (None, None)
    assert not exchange.book(BTC).is_crossed()


def test_trades_candles_and_ticker(exchange: SimExchange, clock: ManualClock) -> None:
    start = int(clock.time())
    assert exchange.ticker(BTC).price == D("68000.00")  # start price before any trade
    place(exchange, "alice", limit(Side.SELL, "5", "68000.00"))
    place(exchange, "alice", limit(Side.SELL, "5", "69000.00"))
    place(exchange, "bob", market(Side.BUY, base="1"))  # 68000 in minute 0
    clock.advance(61)
    place(exchange, "bob", market(Side.BUY, base="4.5"))  # 68000 x4 then 69000 x0.5, minute 1
    clock.advance(120)
    place(exchange, "bob", limit(Side.BUY, "0.1", "68900.00"))
    place(exchange, "carol", market(Side.SELL, base="0.1"))  # 68900 in minute 3

    trades = exchange.recent_trades(BTC, 2)
    assert [(t.price, t.size, t.side) for t in trades] == [
        (D("68900.00"), D("0.1"), Side.SELL),
        (D("69000.00"), D("0.5"), Side.BUY),
    ]
    assert exchange.recent_trades(BTC, 0) == []

    minutes = exchange.candles(BTC, start, start + 600, 60)
    assert [c.start for c in minutes] == [start + 180, start + 60, start]
    assert minutes[1].open == D("68000.00") and minutes[1].close == D("69000.00")
    assert minutes[1].high == D("69000.00") and minutes[1].volume == D("4.5")
    five = exchange.candles(BTC, start, start + 600, 300)
    assert len(five) == 1
    assert (five[0].open, five[0].high, five[0].low, five[0].close, five[0].volume) == (
        D("68000.00"),
        D("69000.00"),
        D("68000.00"),
        D("68900.00"),
        D("5.6"),
    )
    assert exchange.candles(BTC, start + 3600, start + 7200, 60) == []
    with pytest.raises(ValueError):
        exchange.candles(BTC, start, start + 60, 61)

    ticker = exchange.ticker(BTC)
    assert ticker.price == D("68900.00")
    assert ticker.volume_24h == D("5.6")
    assert (ticker.low_24h, ticker.high_24h) == (D("68000.00"), D("69000.00"))
    assert ticker.price_percent_chg_24h == (D(900) * 100 / D(68000))
    assert (ticker.best_ask, ticker.best_ask_quantity) == (D("69000.00"), D("4.5"))
    assert (ticker.best_bid, ticker.best_bid_quantity) == (D(0), D(0))
    assert exchange.products[BTC].price == D("68900.00")

    clock.advance(86_400)  # a day later the window is empty again
    quiet = exchange.ticker(BTC)
    assert quiet.volume_24h == 0 and quiet.price_percent_chg_24h == 0


def test_products_mapping_and_defaults() -> None:
    specs = default_product_specs()
    exchange = SimExchange(clock=ManualClock(), seed=0)
    assert (
        list(exchange.products)
        == ["BTC-USD", "ETH-USD", "SOL-USD"]
        == [s.product.product_id for s in specs]
    )
    assert len(exchange.products) == 3
    btc = exchange.products[BTC]
    assert (btc.base_increment, btc.price_increment, btc.base_min_size) == (
        D("0.00000001"),
        D("0.01"),
        D("0.00000001"),
    )
    assert (btc.base_max_size, btc.quote_min_size, btc.quote_max_size) == (
        D(3400),
        D(1),
        D(150_000_000),
    )
    assert exchange.products["SOL-USD"].base_increment == D("0.001")
    assert [exchange.last_price(p) for p in exchange.products] == [
        D("68000.00"),
        D("3500.00"),
        D("150.00"),
    ]


def test_history_is_bounded_per_user(clock: ManualClock) -> None:
    exchange = SimExchange(clock=clock, seed=1, history_limit=3)
    exchange.open_account("u", {"USD": D(10**6)})
    orders = [
        place(exchange, "u", limit(Side.BUY, "0.01", "60000.00", kind="sor_limit_ioc"))
        for _ in range(5)
    ]
    resting = place(exchange, "u", limit(Side.BUY, "0.01", "60000.00"))
    kept = exchange.list_orders("u")
    assert kept == [resting, orders[4], orders[3], orders[2]]  # open orders are always kept
    # A forgotten order's client_order_id is free again.
    again = exchange.create_order(
        "u", replace(limit(Side.BUY, "0.01", "60000.00"), client_order_id=orders[0].client_order_id)
    )
    assert again.order is not None and again.order is not orders[0]


def test_remove_listener_stops_events(exchange: SimExchange, recorder: Recorder) -> None:
    exchange.remove_listener(recorder)
    place(exchange, "alice", limit(Side.BUY, "1", "60000.00"))
    assert recorder.events == []


def test_same_seed_same_ids(clock: ManualClock) -> None:
    def run() -> list[str]:
        exchange = SimExchange(clock=ManualClock(), seed=9)
        exchange.open_account("u", {"USD": D(10**6), "BTC": D(1)})
        place(exchange, "u", limit(Side.SELL, "0.5", "68000.00"))
        place(exchange, "u", market(Side.BUY, base="0.5"))
        return [o.order_id for o in exchange.list_orders("u")] + [
            f.entry_id for f in exchange.list_fills("u")
        ]

    assert run() == run()


def test_seeded_history_and_candle_retention(clock: ManualClock) -> None:
    exchange = SimExchange(clock=clock, seed=1, candle_minutes=3)
    exchange.open_account("u", {"USD": D(10**6), "BTC": D(1)})
    now = int(clock.time())
    old = [SimCandle(now - 60 * k, D(1), D(3), D(2), D(2), D(1)) for k in range(1, 4)]
    exchange.seed_candles(BTC, old)
    assert [c.start for c in exchange.candles(BTC, 0, now, 60)] == [now - 60, now - 120, now - 180]
    with pytest.raises(ValueError):
        exchange.seed_candles(BTC, [SimCandle(now, D(1), D(1), D(1), D(1), D(1))])
    with pytest.raises(ValueError):
        exchange.seed_candles(BTC, [SimCandle(now - 61, D(1), D(1), D(1), D(1), D(1))])

    place(exchange, "u", limit(Side.SELL, "0.1", "68000.00"))
    place(exchange, "u", market(Side.BUY, base="0.1"))  # a real candle; the oldest drops out

    assert [c.start for c in exchange.candles(BTC, 0, now, 60)] == [now, now - 60, now - 120]
    assert exchange.ticker(BTC).volume_24h == D(2) + D("0.1")
    assert exchange.clock is clock
