"""Why the risk gate refused an order: a named reason the UI shows and the journal keeps."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DenialReason(StrEnum):
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    PRODUCT_NOT_TRADABLE = "PRODUCT_NOT_TRADABLE"
    INVALID_ORDER = "INVALID_ORDER"  # a field is missing or contradictory
    PRICE_PRECISION = "PRICE_PRECISION"
    SIZE_PRECISION = "SIZE_PRECISION"
    SIZE_BELOW_MIN = "SIZE_BELOW_MIN"
    SIZE_ABOVE_MAX = "SIZE_ABOVE_MAX"
    NOTIONAL_BELOW_MIN = "NOTIONAL_BELOW_MIN"
    NOTIONAL_ABOVE_MAX = "NOTIONAL_ABOVE_MAX"  # max notional per order
    POSITION_LIMIT = "POSITION_LIMIT"  # max position per product
    GROSS_EXPOSURE_LIMIT = "GROSS_EXPOSURE_LIMIT"
    PRICE_BAND = "PRICE_BAND"  # fat finger: too far from mid
    NO_MARKET_PRICE = "NO_MARKET_PRICE"  # no mid to check the band or value a market order
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    ORDER_RATE = "ORDER_RATE"  # denied, never queued
    STALE_MARKET_DATA = "STALE_MARKET_DATA"
    RECONCILING = "RECONCILING"
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"  # state REDUCING and the order would not shrink a position
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    # A market order larger than the visible book on its side: it cannot be valued, and the
    # venue would walk it into whatever arrives.
    INSUFFICIENT_BOOK_DEPTH = "INSUFFICIENT_BOOK_DEPTH"


@dataclass(frozen=True, slots=True)
class Denial:
    reason: DenialReason
    detail: str  # one line for the trader: what was asked, what the limit is

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"
