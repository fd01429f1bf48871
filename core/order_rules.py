"""The one set of rules for a valid order's shape, as Coinbase Advanced Trade applies them.

Which fields each order type takes, which time-in-force and post-only combinations it allows,
stop fields, end times, increments, minimum and maximum sizes and notional. The order ticket,
the risk gate, the paper venue and the REST encoder all ask this module, so they cannot
disagree (they did: a post-only GTC stop-limit was allowed by the gate, refused by the ticket
and by paper, and raised in the encoder after a durable journal write).

Each rule that fails gives one ``OrderProblem``: the field it concerns (named as the ticket
shows it), a machine reason (callers map it to their own codes: the paper venue to Coinbase's
failure codes, the gate to a named denial) and a message for a person. Nothing here raises on
absurd input (a NaN, an infinite or a 40-digit number is a problem, not an exception).

What is NOT here: anything that depends on the market or the account (last trade versus a
stop, post-only crossing, liquidity, funds, price band, exposure). The simulated exchange
keeps its own copy of these rules on purpose, because it plays Coinbase; a property test
(tests/core/test_order_rules.py) checks that the two accept and refuse the same orders.

The rules (see docs/coinbase-protocol.md for the order configurations):

* MARKET: exactly one of base_size and quote_size; no limit price, stop, post-only or end
  time (spot market orders are always IOC on Coinbase, so the time in force is not checked);
  refused on a limit-only product.
* LIMIT: sized in base only; a positive limit price; no stop fields; any time in force;
  post-only only with GTC or GTD (FOK has its own Coinbase code).
* STOP_LIMIT: sized in base only; positive limit and stop prices and a stop direction; GTC or
  GTD; never post-only (Coinbase's stop-limit configurations have no post_only field).
* GTD and only GTD carries an end time, in the future when ``now`` is given.
* A post-only product takes post-only limit orders only.
* With a product: base size on the base increment and within [base_min_size, base_max_size];
  quote size on the quote increment and within [quote_min_size, quote_max_size]; limit and
  stop prices on the tick; a limit's notional (price x size) within the quote limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from core.model import OrderSpec, OrderType, Product, TimeInForce, decimal_str

__all__ = [
    "OrderProblem",
    "ProblemField",
    "ProblemReason",
    "combination_problems",
    "first_problem",
    "order_problems",
    "price_problems",
    "shape_problems",
    "size_problems",
]

_IMMEDIATE = frozenset({TimeInForce.IOC, TimeInForce.FOK})
_RESTING = frozenset({TimeInForce.GTC, TimeInForce.GTD})


class ProblemField(StrEnum):
    """The field a problem concerns, named as the order ticket shows it."""

    TYPE = "type"
    SIZE = "size"
    PRICE = "price"
    STOP = "stop"
    TIME_IN_FORCE = "time in force"
    END_TIME = "end time"
    POST_ONLY = "post-only"


class ProblemReason(StrEnum):
    """Why a field is refused; callers map these to their own codes."""

    SIZE_MISSING = "size_missing"  # neither or both of base and quote size
    QUOTE_SIZE_NOT_MARKET = "quote_size_not_market"
    SIZE_NOT_POSITIVE = "size_not_positive"
    SIZE_PRECISION = "size_precision"
    QUOTE_SIZE_PRECISION = "quote_size_precision"
    SIZE_TOO_SMALL = "size_too_small"
    SIZE_TOO_LARGE = "size_too_large"
    QUOTE_SIZE_TOO_SMALL = "quote_size_too_small"  # quote size, or a limit's notional
    QUOTE_SIZE_TOO_LARGE = "quote_size_too_large"
    PRICE_MISSING = "price_missing"  # missing, not positive or not finite
    PRICE_NOT_ALLOWED = "price_not_allowed"
    PRICE_PRECISION = "price_precision"
    STOP_MISSING = "stop_missing"  # stop price missing / not positive, or no direction
    STOP_NOT_ALLOWED = "stop_not_allowed"
    STOP_PRECISION = "stop_precision"
    TIME_IN_FORCE_NOT_ALLOWED = "time_in_force_not_allowed"
    END_TIME_MISSING = "end_time_missing"
    END_TIME_NOT_ALLOWED = "end_time_not_allowed"
    END_TIME_IN_PAST = "end_time_in_past"
    POST_ONLY_NOT_ALLOWED = "post_only_not_allowed"
    POST_ONLY_WITH_FOK = "post_only_with_fok"
    POST_ONLY_REQUIRED = "post_only_required"
    LIMIT_ONLY_PRODUCT = "limit_only_product"


@dataclass(frozen=True, slots=True)
class OrderProblem:
    field: ProblemField
    reason: ProblemReason
    message: str

    def __str__(self) -> str:
        return f"{self.field.value}: {self.message}"


def order_problems(
    spec: OrderSpec, product: Product | None = None, *, now: float | None = None
) -> list[OrderProblem]:
    """Every rule ``spec`` breaks, in field order; empty when Coinbase would take its shape.

    ``product`` adds the increment, size and notional rules; ``now`` (epoch seconds) checks
    that a GTD end time is in the future.
    """
    problems = shape_problems(spec, product, now=now)
    if product is None:
        return problems
    if spec.base_size is not None:
        problems += size_problems(spec.base_size, product)
    if spec.quote_size is not None and spec.order_type is OrderType.MARKET:
        problems += _quote_size_problems(spec.quote_size, product)
    if spec.order_type is not OrderType.MARKET and spec.limit_price is not None:
        problems += price_problems(spec.limit_price, product, ProblemField.PRICE)
    if spec.order_type is OrderType.STOP_LIMIT and spec.stop_price is not None:
        problems += price_problems(spec.stop_price, product, ProblemField.STOP)
    problems += _notional_problems(spec, product)
    return problems


def first_problem(
    spec: OrderSpec, product: Product | None = None, *, now: float | None = None
) -> OrderProblem | None:
    problems = order_problems(spec, product, now=now)
    return problems[0] if problems else None


def shape_problems(
    spec: OrderSpec, product: Product | None = None, *, now: float | None = None
) -> list[OrderProblem]:
    """The rules that need no increments: which fields each type takes and combinations."""
    problems: list[OrderProblem] = []
    add = problems.append
    order_type = spec.order_type
    base_size, quote_size = spec.base_size, spec.quote_size
    if order_type is OrderType.MARKET:
        if (base_size is None) == (quote_size is None):
            add(
                _p(
                    ProblemField.SIZE,
                    ProblemReason.SIZE_MISSING,
                    "give exactly one of base size and quote size",
                )
            )
    elif quote_size is not None:
        add(
            _p(
                ProblemField.SIZE,
                ProblemReason.QUOTE_SIZE_NOT_MARKET,
                "quote size is for market orders only",
            )
        )
    elif base_size is None:
        add(
            _p(
                ProblemField.SIZE,
                ProblemReason.SIZE_MISSING,
                "give exactly one of base size and quote size",
            )
        )
    for size in (base_size, quote_size):
        if size is not None and not _positive(size):
            add(_p(ProblemField.SIZE, ProblemReason.SIZE_NOT_POSITIVE, "must be positive"))
    problems += combination_problems(spec, product)
    if order_type is not OrderType.MARKET and (
        spec.limit_price is None or not _positive(spec.limit_price)
    ):
        add(
            _p(
                ProblemField.PRICE,
                ProblemReason.PRICE_MISSING,
                "a positive limit price is required",
            )
        )
    if order_type is OrderType.STOP_LIMIT:
        if spec.stop_price is None or not _positive(spec.stop_price):
            add(
                _p(
                    ProblemField.STOP,
                    ProblemReason.STOP_MISSING,
                    "a positive stop price is required",
                )
            )
        elif spec.stop_direction is None:
            add(_p(ProblemField.STOP, ProblemReason.STOP_MISSING, "a stop direction is required"))
    problems += _end_time_problems(spec, now)
    return sorted(problems, key=lambda problem: _FIELD_ORDER[problem.field])


def combination_problems(spec: OrderSpec, product: Product | None = None) -> list[OrderProblem]:
    """Type, time in force, post-only and stop fields that do not go together."""
    problems: list[OrderProblem] = []
    add = problems.append
    order_type = spec.order_type
    tif = spec.time_in_force
    has_stop = spec.stop_price is not None or spec.stop_direction is not None
    if order_type is OrderType.MARKET:
        if spec.limit_price is not None:
            add(
                _p(
                    ProblemField.PRICE,
                    ProblemReason.PRICE_NOT_ALLOWED,
                    "a market order takes no limit or stop price",
                )
            )
        if has_stop:
            add(
                _p(
                    ProblemField.STOP,
                    ProblemReason.STOP_NOT_ALLOWED,
                    "a market order takes no limit or stop price",
                )
            )
        if spec.post_only:
            add(
                _p(
                    ProblemField.POST_ONLY,
                    ProblemReason.POST_ONLY_NOT_ALLOWED,
                    "a market order cannot be post-only",
                )
            )
        if product is not None and product.limit_only:
            add(
                _p(
                    ProblemField.TYPE,
                    ProblemReason.LIMIT_ONLY_PRODUCT,
                    f"{product.product_id} accepts limit orders only",
                )
            )
        elif product is not None and product.post_only:
            add(
                _p(
                    ProblemField.TYPE,
                    ProblemReason.POST_ONLY_REQUIRED,
                    f"{product.product_id} accepts post-only orders only",
                )
            )
        return problems
    if order_type is OrderType.STOP_LIMIT:
        if tif not in _RESTING:
            add(
                _p(
                    ProblemField.TIME_IN_FORCE,
                    ProblemReason.TIME_IN_FORCE_NOT_ALLOWED,
                    f"a stop-limit order is {TimeInForce.GTC.value} or {TimeInForce.GTD.value}, not {tif.value}",
                )
            )
        if spec.post_only:
            add(
                _p(
                    ProblemField.POST_ONLY,
                    ProblemReason.POST_ONLY_NOT_ALLOWED,
                    "a stop-limit order cannot be post-only",
                )
            )
        elif product is not None and product.post_only:
            add(
                _p(
                    ProblemField.TYPE,
                    ProblemReason.POST_ONLY_REQUIRED,
                    f"{product.product_id} accepts post-only orders only",
                )
            )
        return problems
    if has_stop:
        add(
            _p(
                ProblemField.STOP,
                ProblemReason.STOP_NOT_ALLOWED,
                "a limit order takes no stop price or direction",
            )
        )
    if spec.post_only and tif is TimeInForce.FOK:
        add(_p(ProblemField.POST_ONLY, ProblemReason.POST_ONLY_WITH_FOK, f"cannot be {tif.value}"))
    elif spec.post_only and tif in _IMMEDIATE:
        add(
            _p(
                ProblemField.POST_ONLY,
                ProblemReason.POST_ONLY_NOT_ALLOWED,
                f"cannot be {tif.value}",
            )
        )
    elif not spec.post_only and product is not None and product.post_only:
        add(
            _p(
                ProblemField.POST_ONLY,
                ProblemReason.POST_ONLY_REQUIRED,
                f"{product.product_id} accepts post-only orders only",
            )
        )
    return problems


def size_problems(size: Decimal, product: Product) -> list[OrderProblem]:
    """A base size against the product's minimum or maximum, then its increment."""
    if not _positive(size):
        return []  # reported by shape_problems
    problems: list[OrderProblem] = []
    if size < product.base_min_size:
        problems.append(
            _p(
                ProblemField.SIZE,
                ProblemReason.SIZE_TOO_SMALL,
                f"{_shown(size)} is below the minimum {decimal_str(product.base_min_size)}",
            )
        )
    elif size > product.base_max_size:
        problems.append(
            _p(
                ProblemField.SIZE,
                ProblemReason.SIZE_TOO_LARGE,
                f"{_shown(size)} is above the maximum {decimal_str(product.base_max_size)}",
            )
        )
    if not _on_step(size, product.base_increment):
        problems.append(
            _p(
                ProblemField.SIZE,
                ProblemReason.SIZE_PRECISION,
                f"not a multiple of the increment {decimal_str(product.base_increment)}",
            )
        )
    return problems


def price_problems(price: Decimal, product: Product, field: ProblemField) -> list[OrderProblem]:
    """A limit (``PRICE``) or stop (``STOP``) price against the product's tick."""
    if not _positive(price) or _on_step(price, product.price_increment):
        return []
    reason = (
        ProblemReason.STOP_PRECISION
        if field is ProblemField.STOP
        else ProblemReason.PRICE_PRECISION
    )
    return [_p(field, reason, f"not a multiple of the tick {decimal_str(product.price_increment)}")]


def _quote_size_problems(size: Decimal, product: Product) -> list[OrderProblem]:
    if not _positive(size):
        return []
    if not _on_step(size, product.quote_increment):
        return [
            _p(
                ProblemField.SIZE,
                ProblemReason.QUOTE_SIZE_PRECISION,
                f"quote size not a multiple of {decimal_str(product.quote_increment)}",
            )
        ]
    if size < product.quote_min_size:
        return [
            _p(
                ProblemField.SIZE,
                ProblemReason.QUOTE_SIZE_TOO_SMALL,
                f"quote size {_shown(size)} is below the minimum {decimal_str(product.quote_min_size)}",
            )
        ]
    if size > product.quote_max_size:
        return [
            _p(
                ProblemField.SIZE,
                ProblemReason.QUOTE_SIZE_TOO_LARGE,
                f"quote size {_shown(size)} is above the maximum {decimal_str(product.quote_max_size)}",
            )
        ]
    return []


def _notional_problems(spec: OrderSpec, product: Product) -> list[OrderProblem]:
    """A limit's value (limit price x base size) within the product's quote limits."""
    price, size = spec.limit_price, spec.base_size
    if spec.order_type is OrderType.MARKET or price is None or size is None:
        return []
    if not (_positive(price) and _positive(size)):
        return []
    notional = price * size
    if notional < product.quote_min_size:
        return [
            _p(
                ProblemField.SIZE,
                ProblemReason.QUOTE_SIZE_TOO_SMALL,
                f"order value {_shown(notional)} is below the minimum {decimal_str(product.quote_min_size)}",
            )
        ]
    if notional > product.quote_max_size:
        return [
            _p(
                ProblemField.SIZE,
                ProblemReason.QUOTE_SIZE_TOO_LARGE,
                f"order value {_shown(notional)} is above the maximum {decimal_str(product.quote_max_size)}",
            )
        ]
    return []


def _end_time_problems(spec: OrderSpec, now: float | None) -> list[OrderProblem]:
    gtd = spec.time_in_force is TimeInForce.GTD and spec.order_type is not OrderType.MARKET
    if spec.end_time is None:
        if gtd:
            return [
                _p(
                    ProblemField.END_TIME,
                    ProblemReason.END_TIME_MISSING,
                    f"an end time goes with {TimeInForce.GTD.value}, and only with it",
                )
            ]
        return []
    if not gtd:
        return [
            _p(
                ProblemField.END_TIME,
                ProblemReason.END_TIME_NOT_ALLOWED,
                f"an end time goes with {TimeInForce.GTD.value}, and only with it",
            )
        ]
    if now is not None and spec.end_time.timestamp() <= now:
        return [
            _p(
                ProblemField.END_TIME,
                ProblemReason.END_TIME_IN_PAST,
                f"{spec.end_time.isoformat()} is in the past",
            )
        ]
    return []


_FIELD_ORDER = {field: index for index, field in enumerate(ProblemField)}


def _p(field: ProblemField, reason: ProblemReason, message: str) -> OrderProblem:
    return OrderProblem(field, reason, message)


def _positive(value: Decimal) -> bool:
    return value.is_finite() and value > 0


def _on_step(value: Decimal, step: Decimal) -> bool:
    """Is ``value`` a finite multiple of ``step``? False, not an exception, for absurd values."""
    if not value.is_finite() or not step.is_finite() or step <= 0:
        return False
    try:
        return value % step == 0
    except InvalidOperation:  # the quotient has more digits than the context: not on a step
        return False


def _shown(value: Decimal) -> str:
    """A number for a message: plain when short, scientific when it would be a wall of digits."""
    plain = decimal_str(value)
    return plain if len(plain) <= 24 else f"{value:.6E}"
