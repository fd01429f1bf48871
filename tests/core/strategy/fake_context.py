"""A ``StrategyContext`` double: the test decides when orders appear, fill and cancel.

It stands in for the engine with simple value types (no order manager, no portfolio), so the
strategy tests depend only on the contract in ``core.strategy.base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from core.clock import ManualClock
from core.model import Fill, LiquidityIndicator, OrderIntent, Product, Side
from core.strategy.base import BookTop, FillEventView, Strategy

BTC_USD = Product(
    product_id="BTC-USD",
    base_currency="BTC",
    quote_currency="USD",
    base_increment=Decimal("0.00000001"),
    quote_increment=Decimal("0.01"),
    price_increment=Decimal("0.01"),
    base_min_size=Decimal("0.00000001"),
    base_max_size=Decimal("3400"),
    quote_min_size=Decimal("1"),
    quote_max_size=Decimal("150000000"),
)


@dataclass(frozen=True, slots=True)
class FakeOrder:
    """What ``ManagedOrder`` shows a strategy: its id and the intent it came from."""

    client_order_id: str
    intent: OrderIntent
    remaining: Decimal


@dataclass(frozen=True, slots=True)
class FakePosition:
    size: Decimal


@dataclass(frozen=True, slots=True)
class FakeFillEvent:
    fill: Fill
    client_order_id: str
    external: bool = False


@dataclass
class FakeContext:
    """Records what a strategy emits.

    ``visible`` False makes submitted orders stay out of ``open_orders`` (an order the gate
    denied, or one the engine has not recorded yet); ``appear`` brings them in. Cancels are only
    requested; ``confirm_cancels`` makes the venue honour them.
    """

    clock: ManualClock
    products: dict[str, Product] = field(default_factory=lambda: {"BTC-USD": BTC_USD})
    top: BookTop = field(default_factory=lambda: BookTop(67999.99, 68000.01))
    visible: bool = True
    position_size: Decimal = Decimal(0)
    submitted: list[OrderIntent] = field(default_factory=list)
    cancel_requests: list[str] = field(default_factory=list)
    open: dict[str, FakeOrder] = field(default_factory=dict)
    hidden: list[FakeOrder] = field(default_factory=list)
    _next_id: int = 0

    # -- StrategyContext

    def submit(self, intent: OrderIntent) -> None:
        self._next_id += 1
        size = intent.spec.base_size or Decimal(0)
        order = FakeOrder(f"c{self._next_id}", intent, size)
        self.submitted.append(intent)
        if self.visible:
            self.open[order.client_order_id] = order
        else:
            self.hidden.append(order)

    def cancel(self, client_order_ids: Sequence[str]) -> None:
        self.cancel_requests.extend(client_order_ids)

    def open_orders(self, strategy_id: str) -> list[FakeOrder]:
        return [o for o in self.open.values() if o.intent.strategy_id == strategy_id]

    def position(self, product_id: str) -> FakePosition:
        return FakePosition(self.position_size if product_id == "BTC-USD" else Decimal(0))

    def book(self, product_id: str) -> BookTop:
        return self.top if product_id in self.products else BookTop()

    def product(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    # -- test controls

    def set_book(self, best_bid: float | None, best_ask: float | None) -> None:
        self.top = BookTop(best_bid, best_ask)

    def appear(self) -> None:
        """Orders held back by ``visible=False`` show up in ``open_orders`` now."""
        for order in self.hidden:
            self.open[order.client_order_id] = order
        self.hidden.clear()

    def add_open(self, order: FakeOrder) -> None:
        self.open[order.client_order_id] = order

    def confirm_cancels(self) -> list[str]:
        """The venue cancels every order asked for; returns the ids that were open."""
        done = [cid for cid in self.cancel_requests if self.open.pop(cid, None) is not None]
        self.cancel_requests.clear()
        return done

    def end(self, client_order_id: str) -> None:
        """The order ends without a fill (rejected, or an IOC that found nothing)."""
        del self.open[client_order_id]

    def working(self, side: Side) -> list[FakeOrder]:
        return [o for o in self.open.values() if o.intent.spec.side is side]

    def only_working(self, side: Side) -> FakeOrder:
        orders = self.working(side)
        assert len(orders) == 1, f"expected one working {side} order, found {orders}"
        return orders[0]

    def fill(
        self,
        strategy: Strategy,
        client_order_id: str,
        size: Decimal | None = None,
        *,
        keep_open: bool = False,
    ) -> None:
        """Fill ``size`` (default: all that remains) at the order's limit and tell the strategy.

        Like the real order manager, the order leaves the open orders before the fill is
        delivered when it is done, unless ``keep_open`` (an IOC whose end is not yet known).
        """
        order = self.open[client_order_id]
        spec = order.intent.spec
        filled = order.remaining if size is None else size
        remaining = order.remaining - filled
        if remaining > 0 or keep_open:
            self.open[client_order_id] = FakeOrder(client_order_id, order.intent, remaining)
        else:
            del self.open[client_order_id]
        self.position_size += filled if spec.side is Side.BUY else -filled
        event: FillEventView = FakeFillEvent(
            fill=Fill(
                trade_id=f"t-{client_order_id}-{remaining}",
                order_id=f"o-{client_order_id}",
                product_id=spec.product_id,
                side=spec.side,
                price=spec.limit_price or Decimal(0),
                size=filled,
                commission=Decimal(0),
                liquidity=LiquidityIndicator.MAKER,
            ),
            client_order_id=client_order_id,
        )
        strategy.on_fill(event)
