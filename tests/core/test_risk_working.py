"""The gate counts what is working (issue 9 §3): every order of ours that may still trade is
assumed to fill, per product and per side, for the position, gross exposure, free balance and
open-order limits; market orders are valued by walking the visible book; a re-send is gated.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.denials import DenialReason
from core.model import Balance, OrderIntent, Side
from core.order_state import ManagedOrder, OrderState
from core.risk import DEFAULT_FEE_ALLOWANCE_RATE, GaugeName, WorkingOrder, working_orders_of
from core.trading_state import TradingState
from tests.core.test_risk import BUY, SELL, Harness, limit, make_harness, market_order

D = Decimal
FEE = 1 + DEFAULT_FEE_ALLOWANCE_RATE
_ids = itertools.count()


def working(
    side: Side,
    size: str | Decimal,
    price: str | Decimal | None,
    product_id: str = "BTC-USD",
    *,
    quote: str | None = None,
) -> WorkingOrder:
    return WorkingOrder(
        f"w{next(_ids)}",
        product_id,
        side,
        None if quote is not None else D(size),
        None if quote is None else D(quote),
        None if price is None else D(price),
    )


def submit(h: Harness, intent: OrderIntent) -> DenialReason | None:
    """What the order manager does: gate, and an allowed order starts working (resting)."""
    denial = h.check(intent)
    if denial is not None:
        return denial.reason
    spec = intent.spec
    h.working.append(
        WorkingOrder(
            f"w{next(_ids)}",
            spec.product_id,
            spec.side,
            spec.base_size,
            spec.quote_size,
            spec.limit_price,
        )
    )
    return None


def flat_harness(**overrides: object) -> Harness:
    """No BTC held, 200000 USD; the gross limit out of the way unless a test sets it."""
    h = make_harness(use_working=True, **{"max_gross_exposure": D("1000000"), **overrides})
    h.balances("200000", btc="0")
    h.mark_all()
    return h


# ---------------------------------------------------------------------------- position


def test_four_resting_buys_of_24k_do_not_all_pass_a_50k_position_limit() -> None:
    """The reproduction from issue 9: each alone is inside the limit, together 96k."""
    h = flat_harness()
    buy_24k = limit(BUY, "0.48", "50000.00")
    outcomes = [submit(h, buy_24k) for _ in range(4)]
    assert outcomes[:2] == [None, None]  # 24k, then 48k if both fill
    assert outcomes[2:] == [DenialReason.POSITION_LIMIT, DenialReason.POSITION_LIMIT]
    denial = h.check(buy_24k)
    assert denial is not None
    assert "0.96 on working buys" in denial.detail


def test_unknown_and_pending_cancel_orders_count_like_working_ones() -> None:
    """The view of the order manager keeps every open state, with what is left to fill."""
    h = flat_harness()

    def order(state: OrderState, size: str, filled: str = "0") -> ManagedOrder:
        return ManagedOrder(
            client_order_id=f"m{next(_ids)}",
            intent=limit(BUY, size, "50000.00"),
            state=state,
            filled_size=D(filled),
            filled_value=D(filled) * 50000,
            created_at=0.0,
            updated_at=0.0,
        )

    orders = [
        order(OrderState.UNKNOWN, "0.3"),
        order(OrderState.PENDING_CANCEL, "0.3"),
        order(OrderState.PARTIALLY_FILLED, "0.5", filled="0.2"),  # 0.3 left
    ]
    h.working = working_orders_of(o for o in orders if o.is_open)
    assert [w.remaining_size for w in h.working] == [D("0.3"), D("0.3"), D("0.3")]
    # 0.9 working + 0.1 = 1.0 BTC = 50000: at the limit, allowed; a tick more is not.
    assert h.check(limit(BUY, "0.1", "50000.00")) is None
    denial = h.check(limit(BUY, "0.11", "50000.00"))
    assert denial is not None and denial.reason is DenialReason.POSITION_LIMIT


def test_unknown_and_pending_cancel_orders_count_toward_the_open_order_limit() -> None:
    """The engine counts ``open_orders()``: every order that may still be at the venue."""
    h = flat_harness(max_open_orders=2)
    states = [OrderState.UNKNOWN, OrderState.PENDING_CANCEL]
    orders = [
        ManagedOrder(
            client_order_id=f"m{n}",
            intent=limit(BUY, "0.01", "50000.00"),
            state=state,
            created_at=0.0,
            updated_at=0.0,
        )
        for n, state in enumerate(states)
    ]
    h.open_orders = sum(1 for order in orders if order.is_open)
    denial = h.check(limit(BUY, "0.01", "50000.00"))
    assert denial is not None and denial.reason is DenialReason.MAX_OPEN_ORDERS


def test_working_buys_do_not_block_a_sell_and_working_sells_do_not_block_a_buy() -> None:
    """Per side: the worst case of a buy is every buy filling, not the sells."""
    h = make_harness(use_working=True, max_gross_exposure=D("1000000"))  # 0.5 BTC held
    h.working = [working(BUY, "0.49", "50000.00")]  # 0.99 BTC if it fills
    assert h.check(limit(SELL, "0.2", "50000.00")) is None
    h.working = [working(SELL, "0.5", "50000.00")]
    assert h.check(limit(BUY, "0.4", "50000.00")) is None


def test_a_sell_behind_working_sells_that_cover_the_position_does_not_reduce() -> None:
    h = make_harness(use_working=True)  # 0.5 BTC held
    h.working = [working(SELL, "0.45", "50000.00")]
    reduce_only = limit(SELL, "0.1", "50000.00", reduce_only=True)
    denial = h.check(reduce_only)
    assert denial is not None and denial.reason is DenialReason.REDUCE_ONLY_WOULD_INCREASE
    assert "0.45 on working sells would leave -0.05" in denial.detail
    assert h.check(limit(SELL, "0.05", "50000.00", reduce_only=True)) is None
    h.state.set(TradingState.REDUCING, "daily loss", "trigger:daily_loss")
    denial = h.check(limit(SELL, "0.1", "50000.00"))
    assert denial is not None and denial.reason is DenialReason.REDUCING_ONLY


def test_a_working_short_side_is_not_a_free_pass_for_a_sell() -> None:
    """Selling more than held, with sells already working, grows the short side."""
    h = make_harness(
        use_working=True, max_position_notional=D("30000"), max_order_notional=D("50000")
    )
    h.balances("100000", btc="2")  # enough base to sell, so only the limit can refuse
    h.mark_all()
    h.working = [working(SELL, "2", "50000.00")]  # flat if it fills
    denial = h.check(limit(SELL, "0.7", "50000.00"))  # -0.7 BTC = 35000 > 30000
    assert denial is not None and denial.reason is DenialReason.POSITION_LIMIT


# ---------------------------------------------------------------------------- gross


def test_gross_exposure_counts_working_orders_on_other_products() -> None:
    h = make_harness(use_working=True)  # 25000 BTC held; gross limit 60000
    h.working = [working(BUY, "10", "3000.00", "ETH-USD")]  # +30000 of ETH if it fills
    assert h.check(limit(BUY, "0.09", "50000.00")) is None  # 59500
    denial = h.check(limit(BUY, "0.11", "50000.00"))  # 60500
    assert denial is not None and denial.reason is DenialReason.GROSS_EXPOSURE_LIMIT
    assert "every working order 60,500.00 > limit 60,000.00" in denial.detail


def test_a_working_market_order_without_any_price_blocks_new_risk() -> None:
    h = make_harness(use_working=True)
    h.market.quotes["ETH-USD"].bid = None
    h.market.quotes["ETH-USD"].ask = None
    h.portfolio.mark("ETH-USD", None)
    h.working = [working(BUY, "1", None, "ETH-USD")]
    denial = h.check(limit(BUY, "0.01", "50000.00"))
    assert denial is not None and denial.reason is DenialReason.GROSS_EXPOSURE_LIMIT
    assert "has no price" in denial.detail


# ---------------------------------------------------------------------------- balance


def test_free_balance_reserves_orders_sent_since_the_last_refresh() -> None:
    h = flat_harness(max_position_notional=D("1000000"), max_order_notional=D("1000000"))
    h.balances("50000", btc="0")  # the refresh: nothing held yet
    assert submit(h, limit(BUY, "0.5", "50000.00")) is None  # 25300 with fees
    denial = h.check(limit(BUY, "0.5", "50000.00"))
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BALANCE
    assert h.check(limit(BUY, "0.48", "50000.00")) is None  # 24288 of 24700 free


def test_a_refresh_that_includes_our_hold_does_not_count_it_twice() -> None:
    h = flat_harness(max_position_notional=D("1000000"), max_order_notional=D("1000000"))
    h.balances("50000", btc="0")
    assert submit(h, limit(BUY, "0.5", "50000.00")) is None
    held = D("0.5") * 50000 * FEE
    h.portfolio.set_balances([Balance("USD", D(50000) - held, held), Balance("BTC", D(0), D(0))])
    assert h.check(limit(BUY, "0.48", "50000.00")) is None
    denial = h.check(limit(BUY, "0.49", "50000.00"))  # 24794 > 24700 free
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BALANCE
    assert "free 24700" in denial.detail


def test_a_hold_our_orders_do_not_explain_is_still_reserved() -> None:
    """An order placed elsewhere (the web UI) holds funds we do not see as working."""
    h = flat_harness(max_position_notional=D("1000000"), max_order_notional=D("1000000"))
    h.portfolio.set_balances([Balance("USD", D(40000), D(10000)), Balance("BTC", D(0), D(0))])
    assert submit(h, limit(BUY, "0.5", "50000.00")) is None  # 25300; 14700 left
    denial = h.check(limit(BUY, "0.3", "50000.00"))  # 15180 > 14700
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BALANCE
    assert "free 14700" in denial.detail


def test_working_sells_reserve_the_base_they_sell() -> None:
    h = make_harness(use_working=True)  # 0.5 BTC
    h.working = [working(SELL, "0.3", "50100.00")]
    assert h.check(limit(SELL, "0.2", "50000.00")) is None
    denial = h.check(limit(SELL, "0.21", "50000.00"))
    assert denial is not None
    assert denial.reason in (
        DenialReason.INSUFFICIENT_BALANCE,
        DenialReason.POSITION_LIMIT,
    )


order_steps = st.lists(
    st.tuples(
        st.sampled_from((BUY, SELL)),
        st.decimals(min_value=D("0.01"), max_value=D("0.6"), places=2),
        st.integers(min_value=-150, max_value=150),  # bps from mid
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(order_steps)
def test_whatever_rests_the_worst_case_stays_inside_every_limit(
    steps: list[tuple[Side, Decimal, int]],
) -> None:
    """However many orders rest at once, if all buys fill (or all sells fill) the position,
    the gross exposure and the balances stay within the limits."""
    h = make_harness(use_working=True)  # 100000 USD, 0.5 BTC, limits 50k / 60k gross
    for side, size, offset in steps:
        price = (D(50000) * (1 + D(offset) / 10_000)).quantize(D("0.01"))
        submit(h, limit(side, str(size), str(price)))
    buys = [w for w in h.working if w.side is BUY]
    sells = [w for w in h.working if w.side is SELL]
    long_size = D("0.5") + sum((w.remaining_size or D(0) for w in buys), D(0))
    short_size = D("0.5") - sum((w.remaining_size or D(0) for w in sells), D(0))
    # Each allowed buy valued the worst long position at its own price; the cheapest of
    # them therefore bounds the whole.
    cheapest = min((w.price or D(0) for w in buys), default=D(50000))
    assert long_size * cheapest <= D(50000)
    spent = sum(((w.remaining_size or D(0)) * (w.price or D(0)) * FEE for w in buys), D(0))
    assert spent <= D(100000)
    assert short_size >= 0  # never sells base we do not hold (spot)


# ---------------------------------------------------------------------------- market walk


def test_a_market_buy_is_valued_by_walking_the_book_not_at_the_touch() -> None:
    """Issue 9: a 0.45 BTC market buy valued at the touch (22.5k, cap 25k) filled 27.8k."""
    h = make_harness(use_working=True, price_band_bps=D("1000"))
    h.market.quotes["BTC-USD"].asks = [(50010.0, 0.1), (60000.0, 0.1), (65000.0, 1.0)]
    denial = h.check(market_order(BUY, base="0.45"))
    assert denial is not None and denial.reason is DenialReason.NOTIONAL_ABOVE_MAX
    assert "notional 27,251.00 > max per order 25,000.00" in denial.detail


def test_a_market_order_whose_walk_leaves_the_band_is_refused() -> None:
    h = make_harness(use_working=True)  # band 200 bps around 50000
    h.market.quotes["BTC-USD"].asks = [(50010.0, 0.1), (51500.0, 0.1)]
    denial = h.check(market_order(BUY, base="0.15"))
    assert denial is not None and denial.reason is DenialReason.PRICE_BAND
    assert "51,500" in denial.detail
    assert h.check(market_order(BUY, base="0.1")) is None  # the first level alone is fine
    h.market.quotes["BTC-USD"].bids = [(49990.0, 0.1), (48500.0, 1.0)]
    denial = h.check(market_order(SELL, base="0.2"))
    assert denial is not None and denial.reason is DenialReason.PRICE_BAND


def test_a_market_order_larger_than_the_visible_book_is_refused() -> None:
    h = make_harness(use_working=True)
    h.market.quotes["BTC-USD"].asks = [(50010.0, 0.1), (50020.0, 0.1)]
    assert h.check(market_order(BUY, base="0.2")) is None
    denial = h.check(market_order(BUY, base="0.2001"))
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BOOK_DEPTH
    denial = h.check(market_order(BUY, quote="10003.01"))  # 0.1 x 50010 + 0.1 x 50020 = 10003
    assert denial is not None and denial.reason is DenialReason.INSUFFICIENT_BOOK_DEPTH
    assert h.check(market_order(BUY, quote="10003.00")) is None


levels = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=300),  # bps above 50000
        st.decimals(min_value=D("0.001"), max_value=D("0.5"), places=3),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(levels, st.decimals(min_value=D("0.001"), max_value=D("1.5"), places=3))
def test_an_allowed_market_buy_fits_the_cap_and_band_whatever_the_book(
    book: list[tuple[int, Decimal]], size: Decimal
) -> None:
    h = make_harness(use_working=True, max_order_notional=D("20000"))
    asks: list[tuple[float, float]] = []
    price = 50010.0
    for step, level_size in sorted(book):
        price = max(price, 50010.0 + step * 5.0)
        asks.append((price, float(level_size)))
    h.market.quotes["BTC-USD"].asks = asks
    denial = h.check(market_order(BUY, base=str(size)))
    # What the venue would do: walk the asks.
    left, cost, worst = size, D(0), D(0)
    for ask_price, ask_size in asks:
        take = min(left, D(repr(ask_size)))
        if take > 0:
            cost += take * D(repr(ask_price))
            worst = D(repr(ask_price))
            left -= take
    if denial is None:
        assert left == 0
        assert cost <= D(20000)
        assert worst <= D(50000) * D("1.02")
    elif left > 0:
        assert denial.reason is DenialReason.INSUFFICIENT_BOOK_DEPTH


# ---------------------------------------------------------------------------- re-send


def test_a_resend_is_checked_against_the_state_now() -> None:
    h = flat_harness()
    first = limit(BUY, "0.48", "50000.00")
    assert submit(h, first) is None
    resent = h.working[-1]
    # The re-sent order is not counted twice (itself as working, and again as new).
    assert h.gate.check_resend(first, resent.client_order_id) is None
    h.state.set(TradingState.REDUCING, "daily loss", "trigger:daily_loss")
    denial = h.gate.check_resend(first, resent.client_order_id)
    assert denial is not None and denial.reason is DenialReason.REDUCING_ONLY
    h.state.set(TradingState.HALTED, "kill switch", "user")
    denial = h.gate.check_resend(first, resent.client_order_id)
    assert denial is not None and denial.reason is DenialReason.TRADING_HALTED


def test_a_resend_still_counts_the_other_working_orders() -> None:
    h = flat_harness()
    buy = limit(BUY, "0.48", "50000.00")
    assert submit(h, buy) is None
    assert submit(h, buy) is None
    h.working.append(working(BUY, "0.48", "50000.00"))  # a third one, say placed by hand
    denial = h.gate.check_resend(buy, h.working[0].client_order_id)
    assert denial is not None and denial.reason is DenialReason.POSITION_LIMIT


# ---------------------------------------------------------------------------- gauges


def test_the_gauges_show_the_worst_case_with_working_orders() -> None:
    h = make_harness(use_working=True)  # 0.5 BTC = 25000
    h.working = [working(BUY, "0.3", "50000.00"), working(BUY, "2", "3000.00", "ETH-USD")]
    gauges = {gauge.name: gauge for gauge in h.gate.gauges()}
    assert gauges[GaugeName.POSITION].used == D(40000)  # 0.8 BTC at the 50000 mark
    assert gauges[GaugeName.POSITION].subject == "BTC-USD"
    assert gauges[GaugeName.GROSS_EXPOSURE].used == D(46000)  # + 2 ETH at 3000
