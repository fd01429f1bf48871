"""Trading fees: Coinbase Advanced Trade's maker/taker model and its volume tiers.

Coinbase charges a rate on each fill's notional (price x size, in the quote currency): the
maker rate when the fill was against our resting order, the taker rate when our order took
liquidity. The rates come from the account's pricing tier, chosen by the trailing 30-day USD
volume and fixed when an order is PLACED (not by the tier a fill would move it into).

``COINBASE_ADVANCED_TIERS`` is the published spot schedule as we know it (help.coinbase.com,
"Coinbase Advanced fees"). Coinbase revises it from time to time; the account's real tier is
``GET /transaction_summary`` (``fee_tier``), so treat this table as the paper venue's model,
not as the truth about a live account. The paper venue's default is a flat schedule with the
rates of ``settings.paper`` (``FeeSchedule.flat``), which is what a new account pays.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from core.config import PaperSettings
from core.model import LiquidityIndicator

THIRTY_DAYS_S: Final = 30 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class FeeRates:
    """Maker and taker rates as fractions (0.004 = 0.40 %)."""

    maker: Decimal
    taker: Decimal

    def __post_init__(self) -> None:
        if self.maker < 0 or self.taker < 0:
            raise ValueError(f"fee rates cannot be negative: {self.maker}, {self.taker}")

    @property
    def worst(self) -> Decimal:
        """The higher of the two: what a hold must cover when either may apply."""
        return max(self.maker, self.taker)

    def rate(self, liquidity: LiquidityIndicator) -> Decimal:
        """The rate for a fill; an unknown liquidity side is charged as taker (the worse one)."""
        return self.maker if liquidity is LiquidityIndicator.MAKER else self.taker

    def fee(self, notional: Decimal, liquidity: LiquidityIndicator) -> Decimal:
        """The commission on one fill, unrounded (Coinbase reports fees at full precision)."""
        return notional * self.rate(liquidity)


@dataclass(frozen=True, slots=True)
class FeeTier:
    """One pricing tier: it applies from ``min_volume`` (inclusive) of 30-day USD volume."""

    name: str
    min_volume: Decimal
    rates: FeeRates


def _tier(name: str, min_volume: str, taker_pct: str, maker_pct: str) -> FeeTier:
    hundred = Decimal(100)
    return FeeTier(
        name,
        Decimal(min_volume),
        FeeRates(maker=Decimal(maker_pct) / hundred, taker=Decimal(taker_pct) / hundred),
    )


# Spot, non-stable pairs. The first five tiers agree across every copy of the table we have
# seen; the top tiers differ between copies, so they are the least certain rows.
COINBASE_ADVANCED_TIERS: Final[tuple[FeeTier, ...]] = (
    _tier("Intro 1", "0", "1.20", "0.60"),
    _tier("Intro 2", "1000", "0.75", "0.35"),
    _tier("Advanced 1", "10000", "0.40", "0.25"),
    _tier("Advanced 2", "50000", "0.25", "0.15"),
    _tier("Advanced 3", "100000", "0.20", "0.10"),
    _tier("VIP 1", "1000000", "0.18", "0.08"),
    _tier("VIP 2", "15000000", "0.16", "0.06"),
    _tier("VIP 3", "75000000", "0.12", "0.03"),
    _tier("VIP 4", "250000000", "0.08", "0.00"),
    _tier("VIP 5", "400000000", "0.05", "0.00"),
)


class FeeSchedule:
    """Tiers by 30-day volume; ``tier_for(volume)`` is the highest tier the volume reaches."""

    def __init__(self, tiers: Sequence[FeeTier]) -> None:
        if not tiers:
            raise ValueError("a fee schedule needs at least one tier")
        ordered = sorted(tiers, key=lambda tier: tier.min_volume)
        if ordered[0].min_volume != 0:
            raise ValueError("the lowest fee tier must start at volume 0")
        if len({tier.min_volume for tier in ordered}) != len(ordered):
            raise ValueError("two fee tiers start at the same volume")
        self._tiers = tuple(ordered)

    @classmethod
    def flat(cls, rates: FeeRates, name: str = "flat") -> FeeSchedule:
        """One tier for every volume."""
        return cls([FeeTier(name, Decimal(0), rates)])

    @classmethod
    def coinbase_advanced(cls) -> FeeSchedule:
        return cls(COINBASE_ADVANCED_TIERS)

    @classmethod
    def from_paper_settings(cls, settings: PaperSettings) -> FeeSchedule:
        """The configured paper rates at every volume (``paper.maker_fee_rate`` / taker)."""
        rates = FeeRates(maker=settings.maker_fee_rate, taker=settings.taker_fee_rate)
        return cls.flat(rates, name="paper")

    @property
    def tiers(self) -> tuple[FeeTier, ...]:
        return self._tiers

    def tier_for(self, volume_30d: Decimal) -> FeeTier:
        chosen = self._tiers[0]
        for tier in self._tiers:
            if volume_30d < tier.min_volume:
                break
            chosen = tier
        return chosen

    def rates_for(self, volume_30d: Decimal) -> FeeRates:
        return self.tier_for(volume_30d).rates


class TrailingVolume:
    """Traded notional over a trailing window (30 days by default), for picking the tier.

    Timestamps are wall-clock seconds and must not go backwards between ``add`` calls by more
    than the window, which a Clock guarantees in practice.
    """

    def __init__(self, window_s: float = THIRTY_DAYS_S) -> None:
        if window_s <= 0:
            raise ValueError("the volume window must be positive")
        self._window_s = window_s
        self._entries: deque[tuple[float, Decimal]] = deque()
        self._total = Decimal(0)

    def add(self, at: float, notional: Decimal) -> None:
        self._entries.append((at, notional))
        self._total += notional

    def total(self, now: float) -> Decimal:
        cutoff = now - self._window_s
        entries = self._entries
        while entries and entries[0][0] <= cutoff:
            _, notional = entries.popleft()
            self._total -= notional
        return self._total
