"""Property tests for core.portfolio: over random fills, marks and balance refreshes the
accounting identities hold exactly (Decimal, no tolerance):

* equity change == price-move P&L - fees (cash + position value is conserved up to fees);
* realized + unrealized == total P&L computed independently from the cash flows;
* the average entry stays within the prices traded;
* a balance refresh moves holdings without creating or destroying P&L.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.model import Balance, Fill, Side
from core.orders import FillEvent
from core.portfolio import Portfolio

D = Decimal
PRODUCTS = ("BTC-USD", "ETH-USD")
START_CASH = D("1000000")
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)


@dataclass(frozen=True)
class FillStep:
    product_id: str
    side: Side
    size: Decimal
    price: Decimal
    fee: Decimal


@dataclass(frozen=True)
class MarkStep:
    product_id: str
    price: Decimal | None


sizes = st.decimals(min_value=D("0.001"), max_value=D("5"), places=3)
prices = st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)
fees = st.decimals(min_value=D("0"), max_value=D("10"), places=2)
products = st.sampled_from(PRODUCTS)
fill_steps = st.builds(FillStep, products, st.sampled_from(Side), sizes, prices, fees)
mark_steps = st.builds(MarkStep, products, st.none() | prices)
steps = st.lists(st.one_of(fill_steps, fill_steps, mark_steps), min_size=1, max_size=40)
final_marks = st.tuples(prices, prices)


class Ledger:
    """An independent, naive account of the same fills: cash flows per product."""

    def __init__(self) -> None:
        self.size = {p: D(0) for p in PRODUCTS}
        self.flow = {p: D(0) for p in PRODUCTS}  # quote received - paid, fees included
        self.fees = {p: D(0) for p in PRODUCTS}
        self.prices: dict[str, list[Decimal]] = {p: [] for p in PRODUCTS}

    def apply(self, step: FillStep) -> None:
        signed = step.size if step.side is Side.BUY else -step.size
        self.size[step.product_id] += signed
        self.flow[step.product_id] -= signed * step.price + step.fee
        self.fees[step.product_id] += step.fee
        self.prices[step.product_id].append(step.price)

    def pnl(self, product_id: str, mark: Decimal) -> Decimal:
        return self.flow[product_id] + self.size[product_id] * mark


_ids = count()


def _event(step: FillStep) -> FillEvent:
    trade_id = str(next(_ids))
    return FillEvent(
        Fill(
            trade_id, "o-" + trade_id, step.product_id, step.side, step.price, step.size, step.fee
        ),
        client_order_id="c-" + trade_id,
        external=False,
    )


def _run(sequence: list[FillStep | MarkStep]) -> tuple[Portfolio, Ledger]:
    portfolio = Portfolio(clock=ManualClock(), product_ids=PRODUCTS)
    portfolio.set_balances([Balance("USD", START_CASH, D(0))])
    ledger = Ledger()
    for step in sequence:
        if isinstance(step, FillStep):
            portfolio.on_fill(_event(step))
            ledger.apply(step)
        else:
            portfolio.mark(step.product_id, step.price)
    return portfolio, ledger


@PROPERTY_SETTINGS
@given(steps, final_marks)
def test_equity_change_is_price_move_pnl_minus_fees(
    sequence: list[FillStep | MarkStep], marks: tuple[Decimal, Decimal]
) -> None:
    portfolio, ledger = _run(sequence)
    for product_id, mark in zip(PRODUCTS, marks, strict=True):
        portfolio.mark(product_id, mark)
    expected = sum((ledger.pnl(p, m) for p, m in zip(PRODUCTS, marks, strict=True)), D(0))
    assert portfolio.equity is not None
    assert portfolio.equity - START_CASH == expected
    assert portfolio.total_pnl == expected
    assert portfolio.fees == sum(ledger.fees.values(), D(0))
    assert portfolio.daily_pnl == expected  # all on one day
    assert portfolio.drawdown is not None and portfolio.drawdown >= 0


@PROPERTY_SETTINGS
@given(steps, final_marks)
def test_realized_plus_unrealized_is_total_pnl_per_product(
    sequence: list[FillStep | MarkStep], marks: tuple[Decimal, Decimal]
) -> None:
    portfolio, ledger = _run(sequence)
    for product_id, mark in zip(PRODUCTS, marks, strict=True):
        portfolio.mark(product_id, mark)
        position = portfolio.position(product_id)
        assert position.size == ledger.size[product_id]
        assert position.unrealized_pnl is not None
        assert position.realized_pnl + position.unrealized_pnl == ledger.pnl(product_id, mark)
        assert position.fees == ledger.fees[product_id]


@PROPERTY_SETTINGS
@given(steps)
def test_average_entry_stays_within_traded_prices(sequence: list[FillStep | MarkStep]) -> None:
    portfolio = Portfolio(clock=ManualClock(), product_ids=PRODUCTS)
    traded: dict[str, list[Decimal]] = {p: [] for p in PRODUCTS}
    for step in sequence:
        if isinstance(step, MarkStep):
            continue
        portfolio.on_fill(_event(step))
        traded[step.product_id].append(step.price)
        position = portfolio.position(step.product_id)
        if position.size:
            assert position.avg_entry is not None
            low, high = min(traded[step.product_id]), max(traded[step.product_id])
            # The average is a rounded quotient: allow its last of 28 digits.
            slack = high * D("1e-24")
            assert low - slack <= position.avg_entry <= high + slack
        else:
            assert position.avg_entry is None


balance_refreshes = st.lists(
    st.tuples(products, st.decimals(min_value=D("0"), max_value=D("10"), places=3)),
    min_size=1,
    max_size=5,
)


@PROPERTY_SETTINGS
@given(steps, final_marks, balance_refreshes)
def test_balance_refresh_creates_no_pnl(
    sequence: list[FillStep | MarkStep],
    marks: tuple[Decimal, Decimal],
    refreshes: list[tuple[str, Decimal]],
) -> None:
    portfolio, _ = _run(sequence)
    for product_id, mark in zip(PRODUCTS, marks, strict=True):
        portfolio.mark(product_id, mark)
    before = portfolio.total_pnl
    held = {p.split("-")[0]: portfolio.size(p) for p in PRODUCTS}
    for product_id, amount in refreshes:
        held[product_id.split("-")[0]] = amount
        portfolio.set_balances(
            [Balance("USD", START_CASH, D(0))]
            + [Balance(currency, size, D(0)) for currency, size in held.items() if size >= 0]
        )
        assert portfolio.size(product_id) == amount
        assert portfolio.total_pnl == before
        assert portfolio.drawdown is not None
