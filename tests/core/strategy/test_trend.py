"""The moving-average trend follower (and the registry) against a fake context.

Windows: fast 2 s, slow 6 s, sampled once a second; the book is mid +/- 0.01. Buys are capped
at the ask + 10 bps, sells at the bid - 10 bps.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from core.clock import ManualClock
from core.config import ConfigError, StrategySettings
from core.model import IntentSource, OrderIntent, OrderSpec, OrderType, Side, TimeInForce
from core.strategy.market_maker import MarketMaker
from core.strategy.registry import build_strategy
from core.strategy.trend import MovingAverages, Trend, TrendFollower, TrendParams
from tests.core.strategy.fake_context import FakeContext, FakeOrder

PARAMS = TrendParams(
    product_id="BTC-USD",
    fast_window_s=2.0,
    slow_window_s=6.0,
    order_size=Decimal("0.001"),
)
D = Decimal
# Falling for the whole slow window: the first trend seen is DOWN (not a cross).
WARM_DOWN = [68070, 68060, 68050, 68040, 68030, 68020, 68010]
# Then rising: the fast average crosses above the slow one on the third sample (68,090).
RISE = [68030, 68060, 68090]
# Holding long, then falling: it crosses below on the fourth sample (68,000).
FALL = [68120, 68100, 68050, 68000]


@pytest.fixture
def ctx(clock: ManualClock) -> FakeContext:
    """A fake engine around BTC-USD whose book the tests move sample by sample."""
    return FakeContext(clock=clock)


@pytest.fixture
def trend(ctx: FakeContext) -> TrendFollower:
    """A started trend follower with the test windows."""
    strategy = TrendFollower(PARAMS)
    strategy.on_start(ctx)
    return strategy


def trend_of(strategy: TrendFollower) -> Trend | None:
    """The strategy's trend now (a call, so the type checker does not pin it between reads)."""
    return strategy.trend


def feed(ctx: FakeContext, strategy: TrendFollower, mids: list[int], *, books: bool = True) -> None:
    """Per mid: one second, a timer tick, then (``books``) a book update, as the engine does."""
    for mid in mids:
        ctx.set_book(mid - 0.01, mid + 0.01)
        ctx.clock.advance(1.0)
        strategy.on_timer(ctx.clock.monotonic())
        if books:
            strategy.on_book("BTC-USD")


def buy_cap(ask: float) -> Decimal:
    return (D(repr(ask)) * D("1.001")).quantize(D("0.01"), ROUND_FLOOR)


def sell_cap(bid: float) -> Decimal:
    return (D(repr(bid)) * D("0.999")).quantize(D("0.01"), ROUND_CEILING)


def only_order(ctx: FakeContext) -> str:
    assert len(ctx.open) == 1, ctx.open
    return next(iter(ctx.open))


def go_long(ctx: FakeContext, trend: TrendFollower) -> None:
    """Warm up, cross up, and fill the buy."""
    feed(ctx, trend, WARM_DOWN + RISE)
    ctx.fill(trend, only_order(ctx))
    assert trend.inventory == D("0.001")


# ----------------------------------------------------------------------------- signal


def test_no_signal_until_both_windows_are_full(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, [68000, 68100, 68200, 68300, 68400, 68500])  # 5 s of history only
    assert trend_of(trend) is None
    assert ctx.submitted == []
    feed(ctx, trend, [68600])  # 6 s: full
    assert trend_of(trend) is Trend.UP


def test_first_trend_after_warm_up_is_not_a_cross(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, [68000, 68100, 68200, 68300, 68400, 68500, 68600, 68700, 68800])
    assert trend_of(trend) is Trend.UP
    assert trend.target == 0
    assert ctx.submitted == []


def test_buys_the_order_size_on_the_up_cross(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, WARM_DOWN)
    assert trend_of(trend) is Trend.DOWN
    feed(ctx, trend, RISE[:2])
    assert ctx.submitted == []
    feed(ctx, trend, RISE[2:])
    assert trend_of(trend) is Trend.UP and trend.target == D("0.001")
    [intent] = ctx.submitted
    assert intent.source is IntentSource.STRATEGY and intent.strategy_id == "trend"
    spec = intent.spec
    assert (spec.side, spec.order_type, spec.time_in_force) == (
        Side.BUY,
        OrderType.LIMIT,
        TimeInForce.IOC,
    )
    assert spec.base_size == D("0.001")
    assert spec.limit_price == buy_cap(68090.01) == D("68158.10")
    assert D("68090.01") < spec.limit_price <= D("68090.01") * D("1.001")  # marketable, capped


def test_sells_back_to_flat_on_the_down_cross(ctx: FakeContext, trend: TrendFollower) -> None:
    go_long(ctx, trend)
    feed(ctx, trend, FALL[:3])
    assert len(ctx.submitted) == 1
    feed(ctx, trend, FALL[3:])
    assert trend_of(trend) is Trend.DOWN and trend.target == 0
    sell = ctx.submitted[-1].spec
    assert (sell.side, sell.time_in_force, sell.base_size) == (
        Side.SELL,
        TimeInForce.IOC,
        D("0.001"),
    )
    assert sell.limit_price == sell_cap(67999.99) == D("67932.00")
    ctx.fill(trend, only_order(ctx))
    assert trend.inventory == 0
    feed(ctx, trend, [67950, 67900])
    assert len(ctx.submitted) == 2  # flat: nothing more to do


# ----------------------------------------------------------------------------- execution


def test_one_order_in_flight_at_a_time(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, WARM_DOWN + RISE)
    buy = only_order(ctx)
    feed(ctx, trend, [68150, 68200, 68250])  # still UP, the IOC has not ended yet
    assert len(ctx.submitted) == 1
    ctx.fill(trend, buy, D("0.0004"), keep_open=True)
    feed(ctx, trend, [68300])
    assert len(ctx.submitted) == 1
    ctx.end(buy)  # the rest of the IOC expired
    feed(ctx, trend, [68350])
    assert len(ctx.submitted) == 2
    assert ctx.submitted[-1].spec.base_size == D("0.0006")  # only what is missing


def test_an_ioc_that_misses_is_retried_with_backoff(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, WARM_DOWN + RISE)  # t=10: buy
    ctx.end(only_order(ctx))
    feed(ctx, trend, [68150])  # t=11: ended with nothing: wait 1 s
    assert len(ctx.submitted) == 1
    feed(ctx, trend, [68200])  # t=12
    assert len(ctx.submitted) == 2
    ctx.end(only_order(ctx))
    feed(ctx, trend, [68250, 68300])  # t=13 refused again (wait 2 s), t=14 waiting
    assert len(ctx.submitted) == 2
    feed(ctx, trend, [68350])  # t=15
    assert len(ctx.submitted) == 3


def test_an_order_never_seen_counts_as_ended_after_the_grace(
    ctx: FakeContext, trend: TrendFollower
) -> None:
    feed(ctx, trend, WARM_DOWN + RISE, books=False)  # t=10: buy, then no callback sees it
    ctx.end(only_order(ctx))
    feed(ctx, trend, [68150], books=False)  # t=11: might still be on its way
    assert len(ctx.submitted) == 1
    feed(ctx, trend, [68200, 68250], books=False)  # t=12 ended unseen (wait 1 s), t=13 retry
    assert len(ctx.submitted) == 2


def test_never_sells_without_inventory(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, [68000, 68010, 68020, 68030, 68040, 68050, 68060])  # UP, no cross
    feed(ctx, trend, [68000, 67950, 67900, 67850])  # DOWN cross
    assert trend_of(trend) is Trend.DOWN
    assert ctx.submitted == []


def test_sells_no_more_than_the_account_holds(ctx: FakeContext, trend: TrendFollower) -> None:
    go_long(ctx, trend)
    ctx.position_size = D(0)  # the trader sold it by hand meanwhile
    feed(ctx, trend, FALL)
    assert len(ctx.submitted) == 1
    ctx.position_size = D("0.0004")
    feed(ctx, trend, [67950])
    assert ctx.submitted[-1].spec.side is Side.SELL
    assert ctx.submitted[-1].spec.base_size == D("0.0004")


def test_no_order_without_a_market(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, WARM_DOWN + RISE[:2])
    ctx.set_book(None, 68090.01)
    ctx.clock.advance(1.0)
    trend.on_book("BTC-USD")
    trend.on_timer(ctx.clock.monotonic())
    assert trend_of(trend) is Trend.DOWN  # no sample taken without a mid
    assert ctx.submitted == []


def test_a_hole_in_the_data_restarts_the_warm_up(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, WARM_DOWN)
    assert trend_of(trend) is Trend.DOWN
    ctx.clock.advance(5.0)  # longer than the fast window without a sample
    feed(ctx, trend, RISE)
    assert trend_of(trend) is None
    assert ctx.submitted == []


# ----------------------------------------------------------------------------- pause


def test_pause_cancels_the_order_in_flight_and_sends_nothing(
    ctx: FakeContext, trend: TrendFollower
) -> None:
    feed(ctx, trend, WARM_DOWN + RISE)
    buy = only_order(ctx)
    trend.pause()
    assert ctx.cancel_requests == [buy]
    ctx.confirm_cancels()
    feed(ctx, trend, [68150, 68200])
    assert len(ctx.submitted) == 1


def test_a_cross_while_paused_is_acted_on_at_resume(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, WARM_DOWN)
    trend.pause()
    feed(ctx, trend, RISE)
    assert trend.target == D("0.001")  # the trend kept being followed...
    assert ctx.submitted == []  # ...but nothing was sent
    trend.resume()
    [intent] = ctx.submitted
    assert intent.spec.side is Side.BUY


def test_stop_leaves_the_position_and_reacts_no_more(
    ctx: FakeContext, trend: TrendFollower
) -> None:
    feed(ctx, trend, WARM_DOWN + RISE)
    buy = only_order(ctx)
    trend.on_stop()
    assert ctx.cancel_requests == [buy]
    ctx.fill(trend, buy)  # the fill raced the cancel: still counted
    assert trend.inventory == D("0.001")
    ctx.set_book(67000.00, 67000.02)
    trend.on_timer(100.0)
    trend.resume()  # not paused, not running: nothing happens
    assert len(ctx.submitted) == 1


def test_an_order_left_by_a_previous_run_is_cancelled_first(ctx: FakeContext) -> None:
    left = OrderIntent(
        spec=OrderSpec("BTC-USD", Side.BUY, OrderType.LIMIT, D("0.001"), limit_price=D(68100)),
        source=IntentSource.STRATEGY,
        strategy_id="trend",
        note="trend buy #1",
    )
    ctx.add_open(FakeOrder("old", left, D("0.001")))
    strategy = TrendFollower(PARAMS)
    strategy.on_start(ctx)
    assert ctx.cancel_requests == ["old"]
    feed(ctx, strategy, WARM_DOWN + RISE)  # the cross comes while the old order still rests
    assert ctx.submitted == []
    ctx.confirm_cancels()
    feed(ctx, strategy, [68150])
    [intent] = ctx.submitted
    assert intent.spec.side is Side.BUY


# ----------------------------------------------------------------------------- averages, params


def test_moving_averages_cover_their_time_windows() -> None:
    averages = MovingAverages(2.0, 4.0)
    for second, value in enumerate([10.0, 20.0, 30.0, 40.0, 50.0, 60.0], start=1):
        averages.add(float(second), value)
    assert not averages.full(4.0)
    assert averages.full(6.0)
    assert averages.fast(6.0) == 50.0  # samples at 4, 5, 6 s
    assert averages.slow() == 40.0  # samples at 2..6 s


def test_band_ignores_tiny_differences(ctx: FakeContext) -> None:
    strategy = TrendFollower(replace(PARAMS, cross_band_bps=D(50)))  # 0.5 %: ~340 USD
    strategy.on_start(ctx)
    feed(ctx, strategy, WARM_DOWN + RISE)
    assert trend_of(strategy) is None
    assert ctx.submitted == []


@pytest.mark.parametrize(
    "change",
    [
        {"fast_window_s": 6.0},
        {"order_size": D(0)},
        {"price_cap_bps": D(10_000)},
        {"cross_band_bps": D(-1)},
        {"min_order_interval_s": -1.0},
    ],
)
def test_inconsistent_parameters_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        replace(PARAMS, **change)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- registry


def test_registry_builds_each_strategy_by_name() -> None:
    maker = build_strategy(
        StrategySettings(name="market_maker", market_maker={"half_spread_bps": D(8)})  # type: ignore[arg-type]
    )
    assert isinstance(maker, MarketMaker)
    assert maker.strategy_id == "market_maker"
    assert maker.params.half_spread_bps == D(8)
    trend = build_strategy(StrategySettings(name="trend", product_id="ETH-USD"))
    assert isinstance(trend, TrendFollower)
    assert trend.params == TrendParams("ETH-USD", 30.0, 120.0, D("0.001"))
    assert build_strategy(StrategySettings()) is None
    assert build_strategy(StrategySettings(name="none")) is None


@pytest.mark.parametrize(
    ("settings", "keys"),
    [
        (StrategySettings(name="trend", trend={"fast_window_s": 120.0}), "[strategy.trend]"),  # type: ignore[arg-type]
        (
            StrategySettings(name="market_maker", market_maker={"order_size": D(1)}),
            "[strategy.market_maker]",
        ),  # type: ignore[arg-type]
    ],
)
def test_registry_names_the_keys_of_settings_that_do_not_fit(
    settings: StrategySettings, keys: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(keys)):
        build_strategy(settings)


def test_registry_refuses_an_unknown_name() -> None:
    settings = StrategySettings.model_construct(name="scalper")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"strategy\.name"):
        build_strategy(settings)


def test_intents_carry_distinct_notes(ctx: FakeContext, trend: TrendFollower) -> None:
    feed(ctx, trend, WARM_DOWN + RISE)
    ctx.end(only_order(ctx))
    feed(ctx, trend, [68150, 68200])
    notes = [intent.note for intent in ctx.submitted]
    assert len(notes) == 2 and len(set(notes)) == 2
    assert all(isinstance(intent, OrderIntent) for intent in ctx.submitted)
