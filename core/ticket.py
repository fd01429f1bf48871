"""The order ticket's text fields turned into an ``OrderSpec``, one message per bad field.

The console's ticket hands over what the trader typed (sizes and prices as text) and picked
(side, type, time in force, post-only). This module, UI-free, decides whether that is an order
the product accepts as far as its own rules go: numbers that parse (a comma is a decimal mark,
never grouping), sizes within the product's minimum and maximum and on its increment, prices
on the tick, and the combinations Coinbase allows (no post-only market order, stop-limits only GTC or GTD, an end time only with GTD).
Each problem names its field, so the ticket can show it under that field:
"size: 0.000000001 is below the minimum 0.00000001", "price: not a multiple of the tick 0.01".

Everything that depends on the market or the account (notional limits, price band, balance,
trading state) is the risk gate's business; the ticket shows its ``preview`` next.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TypeAlias

from core.model import (
    IntentSource,
    OrderIntent,
    OrderSpec,
    OrderType,
    Product,
    Side,
    StopDirection,
    TimeInForce,
    decimal_str,
)
from core.order_rules import ProblemField, combination_problems, price_problems, size_problems

# Longer than any real price or size; refusing more keeps a pasted novel out of Decimal().
MAX_NUMBER_LENGTH = 40
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# The ticket's fields are the fields the order rules name (the prefix of each message).
TicketField = ProblemField


# How a field parser reports its problem: (field, message).
_Note: TypeAlias = "Callable[[TicketField, str], None]"


@dataclass(frozen=True, slots=True)
class TicketEntry:
    """What the trader typed and picked. Numbers are text, exactly as typed.

    ``end_time`` (GTD only): a duration from now ("90s", "30m", "2h", "1d") or an ISO 8601
    time (UTC when it has no offset). Fields a type does not use (a market order's prices)
    are ignored.
    """

    side: Side
    order_type: OrderType
    size: str
    price: str = ""
    stop_price: str = ""
    time_in_force: TimeInForce = TimeInForce.GTC
    end_time: str = ""
    post_only: bool = False


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: TicketField
    message: str

    def __str__(self) -> str:
        return f"{self.field.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class TicketCheck:
    """The outcome: a spec when every field is good, else the problems (one per field)."""

    spec: OrderSpec | None
    problems: tuple[FieldProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.spec is not None

    def problem(self, field: TicketField) -> str | None:
        """The message for ``field`` (without the field's name), if it has one."""
        for problem in self.problems:
            if problem.field is field:
                return problem.message
        return None


def check_ticket(entry: TicketEntry, product: Product, *, now: float) -> TicketCheck:
    """Parse and validate ``entry`` against ``product``; ``now`` is wall-clock seconds (GTD)."""
    problems: dict[TicketField, str] = {}

    def note(field: TicketField, message: str) -> None:
        problems.setdefault(field, message)  # the first problem of a field is the one shown

    order_type = entry.order_type
    size = _size(entry.size, product, note)
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: StopDirection | None = None
    time_in_force = entry.time_in_force
    end_time: datetime | None = None

    if order_type is OrderType.MARKET:
        # Spot market orders are always IOC on Coinbase; the ticket's choice does not apply.
        time_in_force = TimeInForce.IOC
    else:
        limit_price = _price(entry.price, TicketField.PRICE, product, note)
        if order_type is OrderType.STOP_LIMIT:
            stop_price = _price(entry.stop_price, TicketField.STOP, product, note)
            # A buy stop waits for the price to rise to it, a sell stop (a stop-loss) for it
            # to fall: the direction follows from the side.
            stop_direction = StopDirection.UP if entry.side is Side.BUY else StopDirection.DOWN
        if time_in_force is TimeInForce.GTD:
            end_time = _end_time(entry.end_time, now, note)
    # Which type, time in force and post-only go together: the shared rules (core/order_rules.py).
    shape = OrderSpec(
        product_id=product.product_id,
        side=entry.side,
        order_type=order_type,
        stop_direction=stop_direction,
        time_in_force=time_in_force,
        post_only=entry.post_only,
    )
    for problem in combination_problems(shape, product):
        note(problem.field, problem.message)

    if problems:
        ordered = tuple(
            FieldProblem(field, problems[field]) for field in TicketField if field in problems
        )
        return TicketCheck(None, ordered)
    spec = OrderSpec(
        product_id=product.product_id,
        side=entry.side,
        order_type=order_type,
        base_size=size,
        limit_price=limit_price,
        stop_price=stop_price,
        stop_direction=stop_direction,
        time_in_force=time_in_force,
        post_only=entry.post_only,
        end_time=end_time,
    )
    return TicketCheck(spec)


def manual_intent(spec: OrderSpec) -> OrderIntent:
    """The trader's order from the keyboard, as the engine takes it."""
    return OrderIntent(spec, IntentSource.MANUAL, note="order ticket")


def describe_spec(spec: OrderSpec) -> str:
    """One line for confirmations: "BUY 0.01 BTC-USD LIMIT @ 64000.00 GOOD_UNTIL_CANCELLED"."""
    size = decimal_str(spec.base_size) if spec.base_size is not None else "?"
    parts = [spec.side.value, size, spec.product_id, spec.order_type.value]
    if spec.stop_price is not None:
        parts.append(f"stop {decimal_str(spec.stop_price)}")
    if spec.limit_price is not None:
        parts.append(f"@ {decimal_str(spec.limit_price)}")
    if spec.order_type is not OrderType.MARKET:
        parts.append(spec.time_in_force.value)
    if spec.end_time is not None:
        parts.append(f"until {spec.end_time.strftime('%Y-%m-%d %H:%M:%S UTC')}")
    if spec.post_only:
        parts.append("post-only")
    return " ".join(parts)


# ---------------------------------------------------------------------------- fields


# What a trader may type as a number: digits with at most one decimal mark, which may be a
# point or a comma ("0.5" or "0,5"). No grouping separators, no exponent: "0,5" read as 5 (the
# comma taken for a thousands separator) once sent an order ten times too big.
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)$")
_SEPARATORS = frozenset(",._ '")


def read_number(text: str) -> Decimal | str:
    """A finite decimal from what a trader types, or why it is not one (a message).

    A comma is read as the decimal mark ("0,5" is 0.5), never as grouping: "1,000.25",
    "1.000,25", "1 000" and "1_000" are refused with a message rather than guessed at.
    """
    cleaned = text.strip()
    shown = repr(cleaned[:MAX_NUMBER_LENGTH])
    if not cleaned:
        return "required"
    if len(cleaned) > MAX_NUMBER_LENGTH:
        return f"{shown}... is not a number (more than {MAX_NUMBER_LENGTH} characters)"
    if _PLAIN_NUMBER.match(cleaned) is None:
        has_digits = any(char.isdigit() for char in cleaned)
        if has_digits and any(char in _SEPARATORS for char in cleaned):
            return f"{shown}: one decimal mark only (. or ,), no thousands separators"
        return f"{shown} is not a number"
    try:
        value = Decimal(cleaned.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        return f"{shown} is not a number"
    return value


def parse_number(text: str) -> Decimal | None:
    """``read_number``'s value, or None when the text is not a number."""
    value = read_number(text)
    return value if isinstance(value, Decimal) else None


def _shown(value: Decimal) -> str:
    """A number for a message: plain when short, scientific when it would be a wall of digits."""
    plain = decimal_str(value)
    return plain if len(plain) <= 24 else f"{value:.6E}"


def _number(text: str, field: TicketField, note: _Note) -> Decimal | None:
    value = read_number(text)
    if isinstance(value, str):
        note(field, value)
        return None
    if value <= 0:
        note(field, "must be more than 0")
        return None
    return value


def _size(text: str, product: Product, note: _Note) -> Decimal | None:
    size = _number(text, TicketField.SIZE, note)
    if size is None:
        return None
    problems = size_problems(size, product)
    for problem in problems:
        note(TicketField.SIZE, problem.message)
    return None if problems else size


def _price(text: str, field: TicketField, product: Product, note: _Note) -> Decimal | None:
    price = _number(text, field, note)
    if price is None:
        return None
    problems = price_problems(price, product, field)
    for problem in problems:
        note(field, problem.message)
    return None if problems else price


def _end_time(text: str, now: float, note: _Note) -> datetime | None:
    cleaned = text.strip()
    if not cleaned:
        note(TicketField.END_TIME, "required for GOOD_UNTIL_DATE_TIME (e.g. 30m, 2h, 1d)")
        return None
    match = _DURATION.match(cleaned.lower())
    try:
        if match is not None:
            seconds = float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]
            end = datetime.fromtimestamp(now, tz=UTC) + timedelta(seconds=seconds)
        else:
            try:
                end = datetime.fromisoformat(cleaned)
            except ValueError:
                note(
                    TicketField.END_TIME, f"{cleaned!r} is not a duration (30m, 2h) or an ISO time"
                )
                return None
            end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        end_timestamp = end.timestamp()
    except (OverflowError, ValueError):
        note(TicketField.END_TIME, f"{cleaned[:40]!r} is out of the range of dates")
        return None
    if end_timestamp <= now:
        note(TicketField.END_TIME, "must be in the future")
        return None
    return end


__all__ = [
    "MAX_NUMBER_LENGTH",
    "FieldProblem",
    "TicketCheck",
    "TicketEntry",
    "TicketField",
    "check_ticket",
    "describe_spec",
    "manual_intent",
    "parse_number",
    "read_number",
]
