"""Balances and fills layered by time, and one position per asset (issue 9 §5).

The venue's balances hold every fill executed before they were asked for; a fill's stream
update may arrive before or after them. Whatever the order, each fill is booked once: a
snapshot that already holds a fill whose update is late does not book it twice, and a fill
executed after the snapshot was asked for is layered on top of it. Two products on one base
(BTC-USD and BTC-USDC) share one BTC position; equity counts each asset once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.model import Balance, Fill, Side
from core.portfolio import Portfolio

D = Decimal
_ids = itertools.count(1)
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the ManualClock's start


@dataclass(frozen=True)
class FillEvent:
    fill: Fill


def fill_at(at: float, side: Side, size: str, price: str, fee: str = "0") -> FillEvent:
    n = next(_ids)
    return FillEvent(
        Fill(
            f"t{n}",
            f"o{n}",
            "BTC-USD",
            side,
            D(price),
            D(size),
            D(fee),
            trade_time=datetime.fromtimestamp(at, tz=UTC),
        )
    )


def balances(usd: str, btc: str) -> list[Balance]:
    return [Balance("USD", D(usd), D(0)), Balance("BTC", D(btc), D(0))]


def fresh(clock: ManualClock) -> Portfolio:
    portfolio = Portfolio(clock=clock, product_ids=["BTC-USD"])
    portfolio.set_balances(balances("100000", "0"), as_of=T0)
    portfolio.mark("BTC-USD", D(50000))
    return portfolio


def test_a_snapshot_holding_a_late_fill_does_not_book_it_twice() -> None:
    clock = ManualClock()
    portfolio = fresh(clock)
    bought = fill_at(T0 + 1, Side.BUY, "1", "50000", fee="10")
    clock.advance(2)
    # Asked for at T0 + 2: the venue already holds the fill; its update is still on its way.
    portfolio.set_balances(balances("49990", "1"), as_of=T0 + 2)
    assert portfolio.size("BTC-USD") == 1
    clock.advance(1)
    portfolio.on_fill(bought)
    assert portfolio.size("BTC-USD") == 1
    assert portfolio.cash == D(49990)
    position = portfolio.position("BTC-USD")
    assert position.avg_entry == D(50000)
    assert position.fees == D(10)
    portfolio.mark("BTC-USD", D(50500))
    assert portfolio.total_pnl == D(490)  # +500 on the BTC, -10 of fee: not twice either
    assert portfolio.equity == D(49990) + D(50500)


def test_two_snapshots_before_the_late_update_still_book_it_once() -> None:
    clock = ManualClock()
    portfolio = fresh(clock)
    bought = fill_at(T0 + 1, Side.BUY, "1", "50000")
    portfolio.set_balances(balances("50000", "1"), as_of=T0 + 2)
    portfolio.set_balances(balances("50000", "1"), as_of=T0 + 7)
    portfolio.on_fill(bought)
    assert portfolio.size("BTC-USD") == 1
    assert portfolio.cash == D(50000)


def test_a_fill_executed_after_the_snapshot_was_asked_for_is_layered_on_it() -> None:
    clock = ManualClock()
    portfolio = fresh(clock)
    asked_at = T0 + 1
    portfolio.on_fill(fill_at(T0 + 2, Side.BUY, "1", "50000"))  # arrives before the answer
    portfolio.set_balances(balances("100000", "0"), as_of=asked_at)  # does not hold it yet
    assert portfolio.size("BTC-USD") == 1
    assert portfolio.cash == D(50000)
    assert portfolio.total_pnl == 0  # no phantom withdrawal and re-deposit


def test_a_deposit_and_a_later_fill_are_both_kept() -> None:
    clock = ManualClock()
    portfolio = fresh(clock)
    portfolio.set_balances(balances("100000", "1"), as_of=T0 + 5)  # 1 BTC deposited
    portfolio.on_fill(fill_at(T0 + 6, Side.BUY, "1", "50000"))  # after the snapshot
    assert portfolio.size("BTC-USD") == 2


def test_a_snapshot_that_nets_a_buy_and_a_sell_still_books_each_once() -> None:
    clock = ManualClock()
    portfolio = fresh(clock)
    portfolio.set_balances(balances("100000", "1"), as_of=T0 + 1)
    bought = fill_at(T0 + 2, Side.BUY, "1", "50000")
    sold = fill_at(T0 + 3, Side.SELL, "1", "50100")
    portfolio.set_balances(balances("100100", "1"), as_of=T0 + 4)  # both held, net 0 BTC
    portfolio.on_fill(bought)
    assert portfolio.size("BTC-USD") == 1
    portfolio.on_fill(sold)
    assert portfolio.size("BTC-USD") == 1
    assert portfolio.cash == D(100100)


# ---------------------------------------------------------------------------- per asset


def test_two_products_on_one_base_share_one_position_and_equity_counts_it_once() -> None:
    """Issue 9: BTC-USD and BTC-USDC each took the whole BTC (equity 110k instead of 60k)."""
    clock = ManualClock()
    portfolio = Portfolio(clock=clock, product_ids=["BTC-USDC", "BTC-USD"])
    portfolio.set_balances(
        [Balance("USD", D(10000), D(0)), Balance("BTC", D(1), D(0)), Balance("USDC", D(5), D(0))]
    )
    portfolio.mark("BTC-USD", D(50000))
    portfolio.mark("BTC-USDC", D(50010))  # another currency's price: not the asset's mark
    assert portfolio.equity == D(60000)
    assert portfolio.gross_exposure == D(50000)
    assert [p.product_id for p in portfolio.positions()] == ["BTC-USD"]
    assert portfolio.size("BTC-USDC") == 1  # the asset's size, for reduce/shrink decisions
    assert portfolio.exposure("BTC-USDC") == 0  # counted once, on BTC-USD
    assert portfolio.position("BTC-USDC").product_id == "BTC-USDC"
    assert portfolio.primary_product("BTC-USDC") == "BTC-USD"
    assert [b.currency for b in portfolio.other_balances] == ["USDC"]


def test_a_product_tracked_later_on_a_held_base_joins_its_asset() -> None:
    clock = ManualClock()
    portfolio = Portfolio(clock=clock, product_ids=["BTC-USD"])
    portfolio.track("BTC-EUR")
    portfolio.set_balances([Balance("USD", D(10000), D(0)), Balance("BTC", D(1), D(0))])
    portfolio.mark("BTC-USD", D(50000))
    assert portfolio.equity == D(60000)
    assert len(portfolio.positions()) == 1


# ---------------------------------------------------------------------------- property


@dataclass(frozen=True)
class VenueFill:
    executed: int  # seconds after T0
    delay: int  # until its update arrives
    side: Side
    size: Decimal
    price: Decimal


venue_fills = st.lists(
    st.builds(
        VenueFill,
        executed=st.integers(min_value=1, max_value=40),
        delay=st.integers(min_value=0, max_value=20),
        side=st.sampled_from(Side),
        size=st.decimals(min_value=D("0.01"), max_value=D(1), places=2),
        price=st.decimals(min_value=D(49000), max_value=D(51000), places=0),
    ),
    max_size=8,
)
snapshot_times = st.lists(
    st.tuples(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=3)),
    max_size=6,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(venue_fills, snapshot_times)
def test_every_fill_is_booked_once_whatever_arrives_first(
    fills: list[VenueFill], snapshots: list[tuple[int, int]]
) -> None:
    """The venue executes fills; their updates arrive late; balances are asked for and
    answered in between. After every event the size and cash are the best knowledge: every
    fill the venue held at the last snapshot or whose update arrived, each exactly once."""
    clock = ManualClock()
    portfolio = Portfolio(clock=clock, product_ids=["BTC-USD"])
    start_usd, start_btc = D(100000), D(2)
    portfolio.set_balances(balances(str(start_usd), str(start_btc)), as_of=T0)
    portfolio.mark("BTC-USD", D(50000))
    events: list[tuple[float, int, object]] = [
        (fill.executed + fill.delay + 0.5, 1, fill) for fill in fills
    ]
    ask = 0.0
    for at, answer_delay in sorted(snapshots):
        ask = max(ask, float(at))
        events.append((ask + answer_delay + 0.25, 0, ask))
        ask += answer_delay + 0.25  # one refresh at a time, as the engine does
    events.sort(key=lambda e: (e[0], e[1]))
    arrived: set[int] = set()
    last_as_of = -1.0
    for when, kind, what in events:
        if T0 + when > clock.time():
            clock.advance(T0 + when - clock.time())
        if kind == 1:
            assert isinstance(what, VenueFill)
            arrived.add(id(what))
            portfolio.on_fill(
                fill_at(T0 + what.executed, what.side, str(what.size), str(what.price))
            )
        else:
            assert isinstance(what, float)
            held = [f for f in fills if f.executed <= what]
            usd = start_usd - sum((_cash(f) for f in held), D(0))
            btc = start_btc + sum((_signed(f) for f in held), D(0))
            portfolio.set_balances(balances(str(usd), str(btc)), as_of=T0 + what)
            last_as_of = what
        known = [f for f in fills if id(f) in arrived or f.executed <= last_as_of]
        assert portfolio.size("BTC-USD") == start_btc + sum((_signed(f) for f in known), D(0))
        assert portfolio.cash == start_usd - sum((_cash(f) for f in known), D(0))


def _signed(fill: VenueFill) -> Decimal:
    return fill.size if fill.side is Side.BUY else -fill.size


def _cash(fill: VenueFill) -> Decimal:
    return _signed(fill) * fill.price
