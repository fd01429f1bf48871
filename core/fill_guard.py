"""Impossible fills are refused before anything books them.

A fill is money and a journaled fill is permanent, so what the venue reports is checked first
(docs/coinbase-protocol.md §6):

* its numbers: a price and a size that are finite and positive, a fee finite and not
  negative, all within ``MAX_AMOUNT``. ``Decimal("1e400")`` is a *finite* Decimal, yet no
  float holds it and quantizing it to an increment raises ``InvalidOperation`` far from here
  (in a fill listener), so "finite" here means "a sane amount", not ``Decimal.is_finite``;
* its cumulative size: an order's fills never add up past the order's size (5 BTC reported
  filled on a 0.001 BTC order is a venue bug or a hostile proxy, never a position).

The checks are pure; refusals are counted in ``core.bad_input.REFUSED_EXCHANGE_DATA`` (kinds
below), whose listeners put a line in the engine's event list. Called from the decoders (REST
fills and orders, user-channel orders) and from the order manager where fills are derived.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Final

from core.bad_input import REFUSED_EXCHANGE_DATA

if TYPE_CHECKING:
    from core.model import ExchangeOrder
    from core.order_state import ManagedOrder

# Far beyond any real price, size or fee (a trillion BTC, a quadrillion dollars), and small
# enough that quantizing to an 1e-12 increment stays within Decimal's default 28 digits.
MAX_AMOUNT: Final = Decimal("1e15")
ZERO: Final = Decimal(0)

# Kinds counted in REFUSED_EXCHANGE_DATA.
FILL_NOT_SANE: Final = "fill_not_finite_positive"
FILL_PAST_ORDER_SIZE: Final = "fill_past_order_size"


def amount_problem(value: object, name: str, *, zero_ok: bool) -> str | None:
    """Why ``value`` is not a usable amount (None if it is one). ``zero_ok`` for fees and
    cumulative figures; prices and fill sizes must be positive."""
    if not isinstance(value, Decimal):
        return f"{name} is not a decimal: {value!r}"
    try:
        if not value.is_finite():
            return f"{name} is not finite: {value}"
        if value < 0 or (value == 0 and not zero_ok):
            return f"{name} must be {'>= 0' if zero_ok else 'positive'}: {value}"
        if value > MAX_AMOUNT:
            return f"{name} is beyond any real amount: {value:.3e}"
    except InvalidOperation:  # a signalling NaN compares by raising
        return f"{name} is not a number: {value!r}"
    return None


def fill_problem(price: Decimal, size: Decimal, fee: Decimal) -> str | None:
    """Why a single fill's numbers are impossible (None if they are fine)."""
    return (
        amount_problem(price, "price", zero_ok=False)
        or amount_problem(size, "size", zero_ok=False)
        or amount_problem(fee, "fee", zero_ok=True)
    )


def cumulative_problem(order_size: Decimal | None, cumulative: Decimal) -> str | None:
    """Why a cumulative filled size is impossible for an order of ``order_size`` (None: fine,
    or the size is not known, as for a quote-sized market order)."""
    problem = amount_problem(cumulative, "filled size", zero_ok=True)
    if problem is not None:
        return problem
    if order_size is not None and cumulative > order_size:
        return f"filled size {cumulative} is past the order size {order_size}"
    return None


def refuse_impossible_fill(order: ManagedOrder, update: ExchangeOrder) -> bool:
    """True (refused, counted, announced) if the fill ``update`` implies for ``order`` is
    impossible: past the order's size, or at a price or size that is not sane.

    The order manager's one call, before it derives and journals a fill; a refused report is
    ignored as a whole (nothing journaled, the order left as it was).
    """
    what = f"order {order.client_order_id} ({order.product_id})"
    size = order.intent.spec.base_size
    kind = FILL_NOT_SANE
    problem = amount_problem(update.filled_size, "filled size", zero_ok=True)
    if problem is None and size is not None and update.filled_size > size:
        kind = FILL_PAST_ORDER_SIZE
        problem = f"filled size {update.filled_size} is past the order size {size}"
    if problem is None:
        delta = update.filled_size - order.filled_size
        value = update.filled_value or update.average_filled_price * update.filled_size
        price = (value - order.filled_value) / delta if delta > 0 else ZERO
        problem = fill_problem(price, delta, max(update.total_fees - order.total_fees, ZERO))
    if problem is None:
        return False
    REFUSED_EXCHANGE_DATA.refuse(kind, f"{what}: fill refused, {problem}")
    return True
