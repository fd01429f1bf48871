"""Tests for core.portfolio: positions, P&L net of fees, equity, drawdown, daily P&L."""

from __future__ import annotations

from decimal import Decimal

import pytest

import core.portfolio as portfolio_module
from core.clock import ManualClock
from core.model import Balance, Fill, Side
from core.orders import FillEvent
from core.portfolio import Portfolio

D = Decimal
BTC = "BTC-USD"
ETH = "ETH-USD"
_trade_ids = iter(range(1, 10**9))


def fill(
    side: Side,
    size: str,
    price: str,
    fee: str = "0",
    product_id: str = BTC,
    *,
    trade_id: str | None = None,
    order_id: str = "o-1",
) -> FillEvent:
    return FillEvent(
        Fill(
            trade_id=trade_id if trade_id is not None else f"t-{next(_trade_ids)}",
            order_id=order_id,
            product_id=product_id,
            side=side,
            price=D(price),
            size=D(size),
            commission=D(fee),
        ),
        client_order_id="c-1",
        external=False,
    )


BUY, SELL = Side.BUY, Side.SELL


@pytest.fixture
def pf(clock: ManualClock) -> Portfolio:
    """A USD portfolio tracking BTC-USD and ETH-USD with 10000 USD and nothing else."""
    portfolio = Portfolio(clock=clock, product_ids=[BTC, ETH])
    portfolio.set_balances([Balance("USD", D(10000), D(0))])
    return portfolio


# ---------------------------------------------------------------------------- fills


def test_buy_then_partial_sell_realizes_net_of_fees(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "2", "100", fee="1"))
    pf.on_fill(fill(SELL, "0.5", "110", fee="0.5"))
    position = pf.position(BTC)
    assert position.size == D("1.5")
    assert position.avg_entry == D(100)
    assert position.realized_pnl == D("5") - D("1.5")  # 0.5 x (110 - 100) - fees
    assert position.fees == D("1.5")
    assert pf.cash == D(10000) - D(200) - D(1) + D(55) - D("0.5")


def test_adding_to_a_position_weights_the_average(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.on_fill(fill(BUY, "3", "120"))
    assert pf.position(BTC).avg_entry == D(115)
    assert pf.position(BTC).realized_pnl == 0


def test_crossing_zero_resets_the_average_entry(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.on_fill(fill(SELL, "3", "130"))
    position = pf.position(BTC)
    assert position.size == D(-2)
    assert position.avg_entry == D(130)
    assert position.realized_pnl == D(30)  # only the closed 1 realizes
    pf.mark(BTC, D(120))
    assert pf.position(BTC).unrealized_pnl == D(20)  # short 2 from 130, mark 120


def test_short_position_profit_when_price_falls(pf: Portfolio) -> None:
    pf.on_fill(fill(SELL, "2", "100"))
    pf.on_fill(fill(BUY, "1", "90", fee="0.1"))
    position = pf.position(BTC)
    assert position.size == D(-1) and position.avg_entry == D(100)
    assert position.realized_pnl == D("9.9")


def test_closing_to_flat_clears_the_average(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.on_fill(fill(SELL, "1", "90"))
    position = pf.position(BTC)
    assert position.size == 0 and position.avg_entry is None
    assert position.realized_pnl == D(-10)
    assert position.unrealized_pnl == 0  # flat: known to be 0 with or without a mark
    assert position.notional == 0
    assert pf.unrealized_pnl == 0


def test_partial_closes_keep_realized_plus_unrealized_exact(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "3", "100"))
    pf.on_fill(fill(BUY, "1", "101"))  # avg 100.25
    pf.on_fill(fill(SELL, "1", "102"))  # removes a third of the cost: not a finite decimal
    pf.mark(BTC, D("99.5"))
    position = pf.position(BTC)
    assert position.total_pnl == -D(300) - D(101) + D(102) + D(3) * D("99.5")


def test_duplicate_fill_is_applied_once(pf: Portfolio) -> None:
    event = fill(BUY, "1", "100", trade_id="same")
    pf.on_fill(event)
    version = pf.version
    pf.on_fill(event)
    assert pf.position(BTC).size == 1
    assert pf.version == version


def test_remembered_fills_are_bounded(pf: Portfolio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portfolio_module, "_REMEMBERED_FILLS", 2)
    first = fill(BUY, "1", "100", trade_id="a")
    for event in (first, fill(BUY, "1", "100", trade_id="b"), fill(BUY, "1", "100")):
        pf.on_fill(event)
    pf.on_fill(first)  # forgotten after two newer ones: applied again
    assert pf.position(BTC).size == 4


def test_fill_in_another_quote_currency_is_ignored(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100", product_id="BTC-EUR"))
    assert pf.ignored_fills == 1
    assert pf.position("BTC-EUR").size == 0
    assert pf.cash == D(10000)


def test_fills_before_any_balance_leave_cash_unknown(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock)
    portfolio.on_fill(fill(BUY, "1", "100"))
    portfolio.mark(BTC, D(100))
    assert portfolio.cash is None and portfolio.equity is None
    assert portfolio.position(BTC).size == 1  # the product is tracked from its first fill


def test_order_events_change_nothing(pf: Portfolio) -> None:
    version = pf.version
    pf.on_order_event(object())
    assert pf.version == version


# ---------------------------------------------------------------------------- marks


def test_unrealized_is_none_without_a_mark(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    assert pf.position(BTC).unrealized_pnl is None
    assert pf.position(BTC).total_pnl is None
    assert pf.position(BTC).notional is None
    assert pf.equity is None and pf.gross_exposure is None and pf.unrealized_pnl is None
    pf.mark(BTC, D(105))
    assert pf.position(BTC).unrealized_pnl == D(5)
    assert pf.equity == D(9900) + D(105)
    pf.mark(BTC, None)
    assert pf.position(BTC).unrealized_pnl is None


def test_equity_and_gross_exposure(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.on_fill(fill(SELL, "2", "50", product_id=ETH))
    pf.mark(BTC, D(110))
    pf.mark(ETH, D(40))
    assert pf.equity == D(10000) - D(100) + D(100) + D(110) - D(80)
    assert pf.gross_exposure == D(110) + D(80)
    assert pf.exposure(ETH) == D(80)
    assert pf.exposure("XRP-USD") == 0
    assert pf.unrealized_pnl == D(10) + D(20)
    assert pf.realized_pnl == 0 and pf.fees == 0


def test_marking_the_same_price_is_not_a_change(pf: Portfolio) -> None:
    pf.mark(BTC, D(100))
    version = pf.version
    pf.mark(BTC, D(100))
    assert pf.version == version
    pf.mark(BTC, D(101))
    assert pf.version == version + 1


def test_marking_an_untracked_product_tracks_it(pf: Portfolio) -> None:
    pf.mark("SOL-USD", D(20))
    assert [p.product_id for p in pf.positions()] == [BTC, ETH, "SOL-USD"]
    assert pf.position("SOL-USD").mark == D(20)


def test_position_of_an_unknown_product_is_flat(pf: Portfolio) -> None:
    position = pf.position("XRP-USD")
    assert position.size == 0 and position.avg_entry is None and position.mark is None
    assert position.unrealized_pnl == 0 and pf.size("XRP-USD") == 0


# ---------------------------------------------------------------------------- balances


def test_balances_seed_positions_of_tracked_products_only(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock, product_ids=[BTC])
    portfolio.set_balances(
        [
            Balance("USD", D(900), D(100)),
            Balance("BTC", D("0.4"), D("0.1")),
            Balance("DOGE", D(1000), D(0)),
        ]
    )
    assert portfolio.cash == D(1000)  # available + hold
    assert portfolio.hold("USD") == D(100) and portfolio.hold("BTC") == D("0.1")
    assert portfolio.hold("ETH") == 0
    assert portfolio.size(BTC) == D("0.5")
    assert [b.currency for b in portfolio.other_balances] == ["DOGE"]
    # Its cost is not known until a price is seen: average and P&L are unknown, not 0.
    position = portfolio.position(BTC)
    assert position.avg_entry is None and position.unrealized_pnl is None
    portfolio.mark(BTC, D(50000))
    position = portfolio.position(BTC)
    assert position.avg_entry == D(50000) and position.unrealized_pnl == 0
    assert portfolio.equity == D(1000) + D(25000)
    assert portfolio.total_pnl == 0


def test_balances_with_a_mark_price_the_holding_at_once(pf: Portfolio) -> None:
    pf.mark(BTC, D(200))
    pf.set_balances([Balance("USD", D(10000), D(0)), Balance("BTC", D(2), D(0))])
    assert pf.position(BTC).avg_entry == D(200)
    assert pf.total_pnl == 0


def test_unpriced_holding_is_priced_by_the_first_fill(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock, product_ids=[BTC])
    portfolio.set_balances([Balance("USD", D(0), D(0)), Balance("BTC", D(1), D(0))])
    portfolio.on_fill(fill(SELL, "0.5", "100"))
    position = portfolio.position(BTC)
    assert position.realized_pnl == 0  # the held half was valued at the first price seen
    assert position.avg_entry == D(100)


def test_external_increase_blends_into_the_average(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.mark(BTC, D(130))
    pf.set_balances([Balance("USD", D(9900), D(0)), Balance("BTC", D(2), D(0))])
    position = pf.position(BTC)
    assert position.size == 2 and position.avg_entry == D(115)
    assert position.unrealized_pnl == D(30)  # the deposit added no P&L


def test_withdrawal_at_the_mark_is_not_a_loss(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "2", "100"))
    pf.mark(BTC, D(150))
    before = pf.total_pnl
    pf.set_balances([Balance("USD", D(9800), D(0)), Balance("BTC", D("0.5"), D(0))])
    assert pf.total_pnl == before == D(100)
    position = pf.position(BTC)
    assert position.size == D("0.5") and position.avg_entry == D(100)
    assert position.realized_pnl == D(75)  # the 1.5 that left took its open P&L with it
    assert pf.drawdown == 0


def test_withdrawal_without_a_mark_leaves_at_cost(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "3", "100"))
    pf.set_balances([Balance("USD", D(9700), D(0)), Balance("BTC", D(1), D(0))])
    position = pf.position(BTC)
    assert position.size == 1 and position.realized_pnl == 0
    assert position.avg_entry == D(100)
    pf.set_balances([Balance("USD", D(9700), D(0))])  # BTC gone entirely
    assert pf.size(BTC) == 0 and pf.position(BTC).realized_pnl == 0


def test_unpriced_holding_leaves_first(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock, product_ids=[BTC])
    portfolio.set_balances([Balance("USD", D(0), D(0)), Balance("BTC", D(2), D(0))])
    portfolio.set_balances([Balance("USD", D(0), D(0)), Balance("BTC", D(1), D(0))])
    portfolio.mark(BTC, D(10))
    assert portfolio.position(BTC).avg_entry == D(10)
    assert portfolio.total_pnl == 0


def test_balance_replaces_a_short_the_venue_does_not_have(pf: Portfolio) -> None:
    pf.on_fill(fill(SELL, "1", "100"))
    pf.mark(BTC, D(100))
    pf.set_balances([Balance("USD", D(10100), D(0)), Balance("BTC", D(2), D(0))])
    position = pf.position(BTC)
    assert position.size == 2 and position.avg_entry == D(100)
    assert pf.total_pnl == 0


def test_same_balances_do_not_move_positions(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.set_balances([Balance("USD", D(9900), D(0)), Balance("BTC", D(1), D(0))])
    assert pf.position(BTC).avg_entry == D(100)


def test_track_adds_a_product_once(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock)
    portfolio.track(BTC)
    version = portfolio.version
    portfolio.track(BTC)
    assert portfolio.version == version
    portfolio.set_balances([Balance("BTC", D(1), D(0))])
    assert portfolio.size(BTC) == 1 and portfolio.cash == 0


def test_bad_day_boundary_is_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match=r"0\.\.23"):
        Portfolio(clock=clock, day_boundary_utc_hour=24)


# ---------------------------------------------------------------------------- peak, drawdown


def test_drawdown_from_the_pnl_peak(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.mark(BTC, D(100))
    assert pf.drawdown == 0 and pf.peak_equity == pf.equity == D(10000)
    pf.mark(BTC, D(130))
    pf.mark(BTC, D(110))
    assert pf.drawdown == D(20)
    assert pf.peak_equity == D(10030)
    pf.mark(BTC, None)
    assert pf.drawdown is None and pf.peak_equity is None


def test_deposits_do_not_move_the_drawdown(pf: Portfolio) -> None:
    pf.on_fill(fill(BUY, "1", "100"))
    pf.mark(BTC, D(90))
    assert pf.drawdown == D(10)
    pf.set_balances([Balance("USD", D(50000), D(0)), Balance("BTC", D(1), D(0))])
    assert pf.drawdown == D(10)
    assert pf.peak_equity == D(50000) + D(90) + D(10)


# ---------------------------------------------------------------------------- daily P&L


def test_daily_pnl_resets_at_the_boundary(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock, day_boundary_utc_hour=8, product_ids=[BTC])
    portfolio.set_balances([Balance("USD", D(1000), D(0))])
    clock.advance(3600)  # 01:00
    portfolio.on_fill(fill(BUY, "1", "100", fee="1"))
    portfolio.mark(BTC, D(104))
    assert portfolio.daily_pnl == D(3)
    clock.advance(7 * 3600 - 1)  # 07:59:59: same trading day
    assert portfolio.daily_pnl == D(3)
    version = portfolio.version
    clock.advance(1)  # 08:00: a new day starts from here
    assert portfolio.daily_pnl == 0
    assert portfolio.version == version + 1
    portfolio.mark(BTC, D(100))
    assert portfolio.daily_pnl == D(-4)
    assert portfolio.total_pnl == D(-1)


def test_day_without_a_mark_at_the_boundary_uses_the_last_mark(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock, product_ids=[BTC])
    portfolio.set_balances([Balance("USD", D(1000), D(0))])
    portfolio.on_fill(fill(BUY, "1", "100"))
    portfolio.mark(BTC, D(110))
    portfolio.mark(BTC, None)  # book lost before midnight
    clock.advance(86_400)
    assert portfolio.daily_pnl is None  # no mark now
    portfolio.mark(BTC, D(115))
    assert portfolio.daily_pnl == D(5)  # from the last mark seen, 110


def test_day_starts_at_the_first_price_when_none_was_ever_seen(clock: ManualClock) -> None:
    portfolio = Portfolio(clock=clock, product_ids=[BTC, ETH])
    portfolio.set_balances([Balance("USD", D(0), D(0)), Balance("BTC", D(2), D(0))])
    portfolio.set_balances(
        [Balance("USD", D(0), D(0)), Balance("BTC", D(2), D(0)), Balance("ETH", D(1), D(0))]
    )
    clock.advance(86_400)
    assert portfolio.daily_pnl is None
    portfolio.mark(BTC, D(10))  # BTC's day starts here
    portfolio.on_fill(fill(SELL, "1", "20", product_id=ETH))  # ETH's day starts at 20
    portfolio.mark(BTC, D(12))
    assert portfolio.daily_pnl == D(4)
    assert portfolio.position(ETH).realized_pnl == 0


def test_versions_bump_on_every_change(pf: Portfolio) -> None:
    versions = [pf.version]
    pf.on_fill(fill(BUY, "1", "100"))
    versions.append(pf.version)
    pf.mark(BTC, D(100))
    versions.append(pf.version)
    pf.set_balances([Balance("USD", D(9900), D(0)), Balance("BTC", D(1), D(0))])
    versions.append(pf.version)
    assert versions == sorted(set(versions))
    assert pf.quote_currency == "USD"
