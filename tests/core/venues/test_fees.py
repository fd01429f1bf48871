"""The fee schedule: Coinbase's tiers by 30-day volume, flat paper rates, trailing volume."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from core.config import PaperSettings
from core.fees import (
    COINBASE_ADVANCED_TIERS,
    FeeRates,
    FeeSchedule,
    FeeTier,
    TrailingVolume,
)
from core.model import LiquidityIndicator

D = Decimal


@pytest.mark.parametrize(
    ("volume", "tier", "maker", "taker"),
    [
        ("0", "Intro 1", "0.006", "0.012"),
        ("999.99", "Intro 1", "0.006", "0.012"),
        ("1000", "Intro 2", "0.0035", "0.0075"),
        ("10000", "Advanced 1", "0.0025", "0.004"),
        ("75000", "Advanced 2", "0.0015", "0.0025"),
        ("100000", "Advanced 3", "0.001", "0.002"),
        ("500000000", "VIP 5", "0", "0.0005"),
    ],
)
def test_coinbase_tier_is_the_highest_the_volume_reaches(
    volume: str, tier: str, maker: str, taker: str
) -> None:
    schedule = FeeSchedule.coinbase_advanced()
    chosen = schedule.tier_for(D(volume))
    assert chosen.name == tier
    assert schedule.rates_for(D(volume)) == FeeRates(maker=D(maker), taker=D(taker))


def test_coinbase_tiers_get_cheaper_as_volume_grows() -> None:
    tiers = FeeSchedule.coinbase_advanced().tiers
    assert tiers == tuple(sorted(COINBASE_ADVANCED_TIERS, key=lambda t: t.min_volume))
    for lower, higher in itertools.pairwise(tiers):
        assert higher.rates.maker <= lower.rates.maker
        assert higher.rates.taker <= lower.rates.taker
        assert higher.rates.maker <= higher.rates.taker


def test_paper_settings_give_a_flat_schedule() -> None:
    settings = PaperSettings(maker_fee_rate=D("0.001"), taker_fee_rate=D("0.002"))
    schedule = FeeSchedule.from_paper_settings(settings)
    for volume in ("0", "5000", "1000000000"):
        assert schedule.rates_for(D(volume)) == FeeRates(D("0.001"), D("0.002"))


def test_fee_is_charged_on_notional_by_liquidity_side() -> None:
    rates = FeeRates(maker=D("0.004"), taker=D("0.006"))
    assert rates.fee(D("1000"), LiquidityIndicator.MAKER) == D("4.000")
    assert rates.fee(D("1000"), LiquidityIndicator.TAKER) == D("6.000")
    # Unknown liquidity is charged as the worse (taker) rate, never as the cheaper one.
    assert rates.fee(D("1000"), LiquidityIndicator.UNKNOWN) == D("6.000")
    assert rates.worst == D("0.006")


def test_schedules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="negative"):
        FeeRates(maker=D("-0.001"), taker=D("0.001"))
    with pytest.raises(ValueError, match="at least one"):
        FeeSchedule([])
    rates = FeeRates(D("0.001"), D("0.002"))
    with pytest.raises(ValueError, match="start at volume 0"):
        FeeSchedule([FeeTier("a", D("10"), rates)])
    with pytest.raises(ValueError, match="same volume"):
        FeeSchedule([FeeTier("a", D("0"), rates), FeeTier("b", D("0"), rates)])


def test_trailing_volume_forgets_what_left_the_window() -> None:
    volume = TrailingVolume(window_s=100.0)
    volume.add(0.0, D("10"))
    volume.add(50.0, D("5"))
    assert volume.total(60.0) == D("15")
    assert volume.total(100.0) == D("5")  # the first entry is exactly window old: gone
    assert volume.total(151.0) == D("0")
    with pytest.raises(ValueError, match="positive"):
        TrailingVolume(window_s=0)
