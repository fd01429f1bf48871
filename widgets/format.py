"""Text formatting of numbers, ages and times for the console's panels.

One place decides how a value looks, so every panel shows the same price the same way.
An unknown value (``None``) is shown as an em dash, never as 0: a trader must be able to tell
"nothing" from "not known yet".
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

UNKNOWN = "—"

# Quote currencies that are shown with cents; everything else is a crypto asset shown to 8 places.
FIAT_LIKE_CURRENCIES = frozenset({"USD", "USDC", "USDT", "EUR", "GBP"})


def format_number(value: float | Decimal | None, decimals: int) -> str:
    """``value`` with thousands separators and exactly ``decimals`` places; "—" when unknown."""
    if value is None:
        return UNKNOWN
    if isinstance(value, float) and not math.isfinite(value):
        return UNKNOWN
    places = max(0, decimals)
    return f"{value:,.{places}f}"


def format_number_to_width(value: float | Decimal | None, decimals: int, width: int) -> str:
    """Like :func:`format_number`, dropping decimal places until the text fits in ``width``.

    A narrow column keeps the integer part whole: digits before the point carry the magnitude,
    so when even zero places do not fit, the text is returned as it is (the caller crops it).
    """
    text = format_number(value, decimals)
    places = decimals
    while len(text) > width and places > 0:
        places -= 1
        text = format_number(value, places)
    return text


def format_decimal(value: Decimal | None, decimals: int) -> str:
    """A Decimal amount (balances, order sizes) with fixed places; "—" when unknown."""
    return format_number(value, decimals)


def currency_decimals(currency: str) -> int:
    """How many places a balance in ``currency`` is shown with."""
    return 2 if currency.upper() in FIAT_LIKE_CURRENCIES else 8


def format_age(seconds: float | None) -> str:
    """A data age, short: "0.2s", "12s", "3m05s", "2h07m"; "—" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return UNKNOWN
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}m{secs:02d}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


def format_lag_ms(milliseconds: float | None) -> str:
    """Event-loop lag: "0.4 ms", "12 ms"; "—" before the first measurement."""
    if milliseconds is None or not math.isfinite(milliseconds):
        return UNKNOWN
    milliseconds = max(0.0, milliseconds)
    if milliseconds < 10:
        return f"{milliseconds:.1f} ms"
    return f"{milliseconds:,.0f} ms"


def format_utc_clock(wall_time: float | None) -> str:
    """A wall-clock instant as "2026-01-01 00:00:00 UTC"; "—" when unknown."""
    if wall_time is None or not math.isfinite(wall_time):
        return UNKNOWN
    return datetime.fromtimestamp(wall_time, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_time_of_day(moment: datetime | float | None) -> str:
    """The UTC time of day of an event or trade, "HH:MM:SS"; "—" when unknown."""
    if moment is None:
        return UNKNOWN
    if isinstance(moment, datetime):
        as_utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
        return as_utc.strftime("%H:%M:%S")
    if not math.isfinite(moment):
        return UNKNOWN
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%H:%M:%S")


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is >= ``value`` (a stable scale for depth bars).

    A scale that only moves in coarse steps keeps every bar still while one level changes a
    little, so the ladder repaints just the row that changed.
    """
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    base = 10.0**exponent
    for step in (1.0, 2.0, 5.0, 10.0):
        candidate = step * base
        # Guard against float error right at a boundary (e.g. 3 * 0.1).
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10.0 * base  # pragma: no cover - the loop always returns
