"""The inventory-aware market maker against a fake context and a manual clock.

Book 67,999.99 / 68,000.01 (mid 68,000.00), half spread 5 bps = 34.00 USD, size 0.001 BTC,
max inventory 0.01 BTC, requote every 1 s: the flat quotes are 67,966.00 / 68,034.00.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from core.clock import ManualClock
from core.config import MarketMakerSettings
from core.model import (
    Fill,
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
    Trade,
)
from core.strategy.base import (
    CANCEL_RETRY_S,
    VISIBILITY_GRACE_S,
    BookTop,
    OwnOrders,
    TrackedOrder,
)
from core.strategy.market_maker import MarketMaker, MarketMakerParams, quote_plan
from tests.core.strategy.fake_context import BTC_USD, FakeContext, FakeFillEvent, FakeOrder

PARAMS = MarketMakerParams(
    product_id="BTC-USD",
    order_size=Decimal("0.001"),
    half_spread_bps=Decimal(5),
    max_inventory=Decimal("0.01"),
    requote_s=1.0,
)
MID_BOOK = BookTop(67999.99, 68000.01)
D = Decimal


@pytest.fixture
def ctx(clock: ManualClock) -> FakeContext:
    """A fake engine around BTC-USD with the book at 67,999.99 / 68,000.01."""
    return FakeContext(clock=clock)


def start(ctx: FakeContext, params: MarketMakerParams = PARAMS) -> MarketMaker:
    maker = MarketMaker(params)
    maker.on_start(ctx)
    maker.on_book("BTC-USD")
    return maker


def price(ctx: FakeContext, side: Side) -> Decimal | None:
    return ctx.only_working(side).intent.spec.limit_price


def tick(ctx: FakeContext, maker: MarketMaker, seconds: float = 0.0) -> None:
    ctx.clock.advance(seconds)
    maker.on_timer(ctx.clock.monotonic())


# ----------------------------------------------------------------------------- pricing


def test_quotes_a_post_only_bid_and_ask_around_mid(ctx: FakeContext) -> None:
    start(ctx)
    assert len(ctx.submitted) == 2
    bid = ctx.only_working(Side.BUY).intent
    ask = ctx.only_working(Side.SELL).intent
    assert bid.spec == OrderSpec(
        product_id="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        base_size=D("0.001"),
        limit_price=D("67966.00"),
        time_in_force=TimeInForce.GTC,
        post_only=True,
    )
    assert ask.spec.limit_price == D("68034.00")
    assert ask.spec.post_only and ask.spec.time_in_force is TimeInForce.GTC
    for intent in (bid, ask):
        assert intent.source is IntentSource.STRATEGY
        assert intent.strategy_id == "market_maker"
    assert bid.note != ask.note


def test_prices_snap_to_the_tick_away_from_mid(ctx: FakeContext) -> None:
    ctx.set_book(68000.00, 68000.01)  # mid 68,000.005, half spread 34.0000025
    start(ctx)
    assert price(ctx, Side.BUY) == D("67966.00")  # 67,966.0049975 floored
    assert price(ctx, Side.SELL) == D("68034.01")  # 68,034.0050025 ceiled


@pytest.mark.parametrize(
    ("inventory", "bid", "ask"),
    [
        (D(0), D("67966.00"), D("68034.00")),
        (D("0.005"), D("67949.00"), D("68017.00")),  # long half the cap: both 17 lower
        (D("-0.005"), D("67983.00"), D("68051.00")),  # short half the cap: both 17 higher
    ],
)
def test_quotes_lean_against_inventory(inventory: Decimal, bid: Decimal, ask: Decimal) -> None:
    plan = quote_plan(MID_BOOK, BTC_USD, inventory, PARAMS)
    assert plan is not None and plan.bid is not None and plan.ask is not None
    assert (plan.bid.price, plan.ask.price) == (bid, ask)


def test_side_that_would_exceed_the_inventory_cap_is_not_quoted() -> None:
    long_cap = quote_plan(MID_BOOK, BTC_USD, D("0.0095"), PARAMS)
    assert long_cap is not None and long_cap.bid is None and long_cap.ask is not None
    full = quote_plan(MID_BOOK, BTC_USD, D("0.01"), PARAMS)
    assert full is not None and full.bid is None
    assert full.ask is not None and full.ask.price == D("68000.00")  # full skew: ask on mid
    short = quote_plan(MID_BOOK, BTC_USD, D("-0.01"), PARAMS)
    assert short is not None and short.ask is None
    assert short.bid is not None and short.bid.price == D("68000.00")


def test_a_strong_skew_never_quotes_through_the_far_touch() -> None:
    params = replace(PARAMS, inventory_skew=D(3))
    plan = quote_plan(MID_BOOK, BTC_USD, D("-0.01"), params)  # bid pushed 68 USD above mid
    assert plan is not None and plan.bid is not None
    assert plan.bid.price == D("68000.00")  # one tick under the best ask: still post-only
    plan = quote_plan(MID_BOOK, BTC_USD, D("0.01"), params)
    assert plan is not None and plan.ask is not None
    assert plan.ask.price == D("68000.00")  # one tick over the best bid


def test_no_plan_without_a_two_sided_book() -> None:
    assert quote_plan(BookTop(None, 68000.01), BTC_USD, D(0), PARAMS) is None
    assert quote_plan(BookTop(68000.02, 68000.01), BTC_USD, D(0), PARAMS) is None  # crossed


def test_sizes_below_the_product_minimum_are_not_quoted() -> None:
    product = replace(BTC_USD, quote_min_size=D(100))  # 0.001 BTC is only 68 USD
    plan = quote_plan(MID_BOOK, product, D(0), PARAMS)
    assert plan is not None and plan.bid is None and plan.ask is None


# ----------------------------------------------------------------------------- inventory


def test_fill_moves_both_replacement_quotes_against_the_inventory(ctx: FakeContext) -> None:
    maker = start(ctx)
    old_ask = ctx.only_working(Side.SELL).client_order_id
    ctx.fill(maker, ctx.only_working(Side.BUY).client_order_id)
    assert maker.inventory == D("0.001")
    assert ctx.working(Side.BUY) == []  # no new bid before the placement floor

    tick(ctx, maker, 0.25)
    assert price(ctx, Side.BUY) == D("67962.60")  # skewed 3.40 lower (q = 0.1)
    assert ctx.cancel_requests == []  # the ask is not a second old yet

    tick(ctx, maker, 0.75)
    assert ctx.cancel_requests == [old_ask]
    ctx.confirm_cancels()
    maker.on_book("BTC-USD")
    assert price(ctx, Side.SELL) == D("68030.60")


def test_reaching_the_cap_cancels_the_working_bid_at_once(ctx: FakeContext) -> None:
    maker = start(ctx, replace(PARAMS, max_inventory=D("0.001")))
    bid = ctx.only_working(Side.BUY).client_order_id
    ctx.fill(maker, bid, D("0.0005"))  # partly filled: 0.0005 more would exceed 0.001
    assert ctx.cancel_requests == [bid]
    ctx.confirm_cancels()
    tick(ctx, maker, 5.0)
    assert ctx.working(Side.BUY) == []
    assert len(ctx.working(Side.SELL)) == 1


def test_fills_of_other_products_or_external_orders_do_not_count(ctx: FakeContext) -> None:
    maker = start(ctx)
    bid = ctx.only_working(Side.BUY)
    spec = bid.intent.spec
    eth_fill = Fill("t1", "o1", "ETH-USD", Side.BUY, D(3000), D("0.001"), D(0))
    maker.on_fill(FakeFillEvent(eth_fill, bid.client_order_id))
    btc_fill = Fill("t2", "o2", "BTC-USD", Side.BUY, spec.limit_price or D(0), D("0.001"), D(0))
    maker.on_fill(FakeFillEvent(btc_fill, "someone-else", external=True))
    assert maker.inventory == 0


# ----------------------------------------------------------------------------- requoting


def test_small_mid_moves_wait_for_the_requote_interval(ctx: FakeContext) -> None:
    maker = start(ctx)
    first = {o.client_order_id for o in ctx.open.values()}
    ctx.set_book(68001.99, 68002.01)  # mid +2 USD: under half the half spread (17)
    tick(ctx, maker, 0.5)
    maker.on_book("BTC-USD")
    assert ctx.cancel_requests == []

    tick(ctx, maker, 0.5)
    assert set(ctx.cancel_requests) == first
    maker.on_book("BTC-USD")
    assert len(ctx.submitted) == 2  # cancel first, replace only once the old quote has gone
    ctx.confirm_cancels()
    maker.on_book("BTC-USD")
    assert price(ctx, Side.BUY) == D("67967.99")
    assert price(ctx, Side.SELL) == D("68036.01")
    assert len(ctx.submitted) == 4


def test_a_large_mid_move_requotes_at_once(ctx: FakeContext) -> None:
    maker = start(ctx)
    first = {o.client_order_id for o in ctx.open.values()}
    ctx.clock.advance(0.1)
    ctx.set_book(68019.99, 68020.01)  # mid +20 USD: more than 17
    maker.on_book("BTC-USD")
    assert set(ctx.cancel_requests) == first


def test_a_quote_at_the_wanted_price_keeps_its_place(ctx: FakeContext) -> None:
    maker = start(ctx)
    for _ in range(5):
        tick(ctx, maker, 2.0)
        maker.on_book("BTC-USD")
    assert ctx.cancel_requests == []
    assert len(ctx.submitted) == 2


def test_unanswered_cancel_is_sent_again(ctx: FakeContext) -> None:
    maker = start(ctx)
    ids = sorted(o.client_order_id for o in ctx.open.values())
    ctx.set_book(68049.99, 68050.01)
    maker.on_book("BTC-USD")
    assert sorted(ctx.cancel_requests) == ids
    tick(ctx, maker, CANCEL_RETRY_S / 2)
    assert len(ctx.cancel_requests) == 2
    tick(ctx, maker, CANCEL_RETRY_S / 2)
    assert sorted(ctx.cancel_requests) == sorted(ids * 2)
    assert len(ctx.submitted) == 2


# ----------------------------------------------------------------------------- one quote per side


def test_no_second_quote_while_the_first_is_not_visible_yet(ctx: FakeContext) -> None:
    ctx.visible = False
    maker = start(ctx)
    tick(ctx, maker, VISIBILITY_GRACE_S / 2)
    maker.on_book("BTC-USD")
    assert len(ctx.submitted) == 2
    ctx.appear()
    tick(ctx, maker, 0.1)
    assert len(ctx.submitted) == 2
    assert ctx.cancel_requests == []
    assert len(ctx.working(Side.BUY)) == len(ctx.working(Side.SELL)) == 1


def test_refused_quotes_are_retried_with_growing_backoff(ctx: FakeContext) -> None:
    ctx.visible = False  # every intent is denied: it never shows up
    maker = start(ctx)
    tick(ctx, maker, VISIBILITY_GRACE_S)  # t=2: both ended unseen; next try in 1 s
    assert len(ctx.submitted) == 2
    tick(ctx, maker, 1.0)  # t=3
    assert len(ctx.submitted) == 4
    tick(ctx, maker, VISIBILITY_GRACE_S)  # t=5: refused again; next try in 2 s
    tick(ctx, maker, 1.0)  # t=6
    assert len(ctx.submitted) == 4
    tick(ctx, maker, 1.0)  # t=7
    assert len(ctx.submitted) == 6


def test_order_that_surfaces_after_its_grace_is_cancelled_before_requoting(
    ctx: FakeContext,
) -> None:
    ctx.visible = False
    maker = start(ctx)
    late = [o.client_order_id for o in ctx.hidden]
    tick(ctx, maker, VISIBILITY_GRACE_S)
    ctx.visible = True
    ctx.appear()
    tick(ctx, maker, 1.0)  # backoff over, but the late orders still rest
    assert sorted(ctx.cancel_requests) == sorted(late)
    assert len(ctx.submitted) == 2
    ctx.confirm_cancels()
    tick(ctx, maker, 0.0)
    assert len(ctx.submitted) == 4
    assert len(ctx.working(Side.BUY)) == len(ctx.working(Side.SELL)) == 1


def test_start_cancels_quotes_left_by_a_previous_run(ctx: FakeContext) -> None:
    left = OrderIntent(
        spec=OrderSpec("BTC-USD", Side.BUY, OrderType.LIMIT, D("0.001"), limit_price=D(60000)),
        source=IntentSource.STRATEGY,
        strategy_id="market_maker",
        note="market_maker bid #1",
    )
    someone_else = replace(left, strategy_id="trend", note="trend buy #1")
    ctx.add_open(FakeOrder("old", left, D("0.001")))
    ctx.add_open(FakeOrder("theirs", someone_else, D("0.001")))
    maker = start(ctx)
    assert ctx.cancel_requests == ["old"]
    assert [i.spec.side for i in ctx.submitted] == [Side.SELL]  # bid side still busy
    ctx.confirm_cancels()
    maker.on_book("BTC-USD")
    bid = [o for o in ctx.working(Side.BUY) if o.intent.strategy_id == "market_maker"]
    assert len(bid) == 1 and bid[0].intent.spec.limit_price == D("67966.00")
    assert "theirs" in ctx.open


# ----------------------------------------------------------------------------- pause, stop


def test_pause_cancels_own_quotes_and_emits_nothing(ctx: FakeContext) -> None:
    maker = start(ctx)
    ids = sorted(o.client_order_id for o in ctx.open.values())
    maker.pause()
    assert maker.paused
    assert sorted(ctx.cancel_requests) == ids
    ctx.confirm_cancels()
    for _ in range(5):
        ctx.set_book(67000.00 + ctx.clock.monotonic(), 67000.02 + ctx.clock.monotonic())
        maker.on_book("BTC-USD")
        tick(ctx, maker, 1.0)
    assert len(ctx.submitted) == 2
    assert ctx.open == {}
    maker.pause()  # pausing twice changes nothing
    assert ctx.cancel_requests == []


def test_resume_quotes_again_at_current_prices(ctx: FakeContext) -> None:
    maker = start(ctx)
    maker.pause()
    ctx.confirm_cancels()
    ctx.set_book(68099.99, 68100.01)
    tick(ctx, maker, 3.0)
    maker.resume()
    assert not maker.paused
    assert price(ctx, Side.BUY) == D("68065.95")  # 68,100 - 34.05
    assert price(ctx, Side.SELL) == D("68134.05")
    maker.resume()  # resuming twice places nothing more
    assert len(ctx.submitted) == 4


def test_an_order_surfacing_while_paused_is_cancelled(ctx: FakeContext) -> None:
    ctx.visible = False
    maker = start(ctx)
    maker.pause()
    assert ctx.cancel_requests == []  # nothing visible to cancel yet
    ctx.appear()
    tick(ctx, maker, 0.1)
    assert sorted(ctx.cancel_requests) == ["c1", "c2"]


def test_paused_before_start_quotes_nothing_until_resumed(ctx: FakeContext) -> None:
    maker = MarketMaker(PARAMS)
    maker.pause()
    maker.resume()
    maker.pause()
    maker.on_start(ctx)
    maker.on_book("BTC-USD")
    assert ctx.submitted == []
    maker.resume()
    assert len(ctx.submitted) == 2


def test_no_market_pulls_both_quotes(ctx: FakeContext) -> None:
    maker = start(ctx)
    ids = sorted(o.client_order_id for o in ctx.open.values())
    ctx.set_book(None, 68000.01)
    maker.on_book("BTC-USD")
    assert sorted(ctx.cancel_requests) == ids
    ctx.confirm_cancels()
    tick(ctx, maker, 5.0)
    assert len(ctx.submitted) == 2


def test_unknown_product_quotes_nothing(ctx: FakeContext) -> None:
    ctx.products = {}
    ctx.set_book(67999.99, 68000.01)
    maker = start(ctx)
    ctx.products = {"ETH-USD": BTC_USD}  # the book is there, the product listing is not
    maker.on_timer(1.0)
    assert ctx.submitted == []


def test_stop_cancels_and_stops_quoting(ctx: FakeContext) -> None:
    maker = start(ctx)
    ids = sorted(o.client_order_id for o in ctx.open.values())
    maker.on_stop()
    assert not maker.running
    assert sorted(ctx.cancel_requests) == ids
    ctx.confirm_cancels()
    maker.on_book("BTC-USD")
    tick(ctx, maker, 10.0)
    maker.on_stop()  # stopping twice is harmless
    maker.resume()
    assert len(ctx.submitted) == 2
    assert ctx.cancel_requests == []


def test_an_order_surfacing_after_stop_is_cancelled(ctx: FakeContext) -> None:
    ctx.visible = False
    maker = start(ctx)
    maker.on_stop()
    assert ctx.cancel_requests == []  # nothing has an id yet
    ctx.appear()
    tick(ctx, maker, 0.5)
    assert sorted(ctx.cancel_requests) == ["c1", "c2"]
    assert len(ctx.submitted) == 2


def test_a_strategy_must_be_started_before_it_has_a_context() -> None:
    maker = MarketMaker(PARAMS)
    maker.on_stop()  # stopping what never started is harmless
    maker.on_timer(1.0)
    maker.on_fill(
        FakeFillEvent(Fill("t", "o", "BTC-USD", Side.SELL, D(68000), D("0.001"), D(0)), "c1")
    )
    assert maker.inventory == D("-0.001")
    assert not maker.running
    with pytest.raises(RuntimeError, match="not been started"):
        _ = maker.ctx


def test_other_products_books_are_ignored(ctx: FakeContext) -> None:
    maker = MarketMaker(PARAMS)
    maker.on_start(ctx)
    maker.on_book("ETH-USD")
    assert ctx.submitted == []
    maker.on_trade(Trade("1", "BTC-USD", 68000.0, 0.1, Side.BUY, None))
    assert ctx.submitted == []


# ----------------------------------------------------------------------------- parameters


def test_parameters_come_from_settings_and_are_shown() -> None:
    params = MarketMakerParams.from_settings("BTC-USD", MarketMakerSettings())
    assert params == replace(PARAMS, requote_s=1.0)
    shown = MarketMaker(params).parameters()
    assert shown["half_spread_bps"] == "5"
    assert shown["max_inventory"] == "0.01"
    assert shown["product_id"] == "BTC-USD"


@pytest.mark.parametrize(
    "change",
    [
        {"order_size": D("0.02")},  # larger than the inventory cap
        {"order_size": D(0)},
        {"requote_mid_fraction": D(0)},
        {"inventory_skew": D(-1)},
        {"requote_s": 0.0},
    ],
)
def test_inconsistent_parameters_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        replace(PARAMS, **change)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bookkeeping


def _intent(side: Side, note: str, strategy_id: str = "market_maker") -> OrderIntent:
    spec = OrderSpec("BTC-USD", side, OrderType.LIMIT, D("0.001"), limit_price=D(68000))
    return OrderIntent(spec, IntentSource.STRATEGY, strategy_id=strategy_id, note=note)


def test_new_tags_skip_those_of_orders_still_open() -> None:
    orders = OwnOrders("market_maker")
    orders.sync([FakeOrder("old", _intent(Side.BUY, "market_maker bid #1"), D(1))], now=0.0)
    assert orders.new_tag("bid") == "market_maker bid #2"  # #1 belongs to the orphan


def test_a_fill_binds_to_the_only_unseen_order_of_its_side() -> None:
    orders = OwnOrders("market_maker")
    first = TrackedOrder("a", Side.BUY, D(1), submitted_at=0.0)
    orders.add(first)
    orders.note_fill("c9", Side.SELL)  # no unseen sell: nothing to bind
    assert first.client_order_id is None
    orders.add(TrackedOrder("b", Side.BUY, D(1), submitted_at=0.0))
    orders.note_fill("c9", Side.BUY)  # two candidates: ambiguous, bind none
    assert first.client_order_id is None and not first.filled
    [ended, _] = orders.sync([], now=VISIBILITY_GRACE_S)
    assert ended.refused and not ended.seen
