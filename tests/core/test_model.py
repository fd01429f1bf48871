"""Value types: precision helpers and status classification."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.model import (
    Balance,
    ExchangeOrderStatus,
    Product,
    Side,
    decimal_str,
    is_multiple,
    quantize_to_step,
)


@pytest.fixture
def btc_usd() -> Product:
    """BTC-USD with Coinbase's real increments and limits."""
    return Product(
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


def test_size_rounds_down_to_the_increment(btc_usd: Product) -> None:
    assert btc_usd.round_size_down(Decimal("0.123456789")) == Decimal("0.12345678")
    assert btc_usd.is_size_on_increment(Decimal("0.12345678"))
    assert not btc_usd.is_size_on_increment(Decimal("0.123456789"))


def test_prices_snap_passively(btc_usd: Product) -> None:
    assert btc_usd.snap_price(Decimal("68000.019"), Side.BUY) == Decimal("68000.01")
    assert btc_usd.snap_price(Decimal("68000.011"), Side.SELL) == Decimal("68000.02")
    assert btc_usd.is_price_on_tick(Decimal("68000.01"))
    assert not btc_usd.is_price_on_tick(Decimal("68000.015"))


def test_tradable_flags(btc_usd: Product) -> None:
    from dataclasses import replace

    assert btc_usd.tradable
    assert not replace(btc_usd, cancel_only=True).tradable
    assert not replace(btc_usd, status="offline").tradable


def test_quantize_rejects_a_non_positive_step() -> None:
    with pytest.raises(ValueError, match="positive"):
        quantize_to_step(Decimal(1), Decimal(0), "ROUND_DOWN")
    assert not is_multiple(Decimal(1), Decimal(0))


def test_decimal_str_never_uses_an_exponent() -> None:
    assert decimal_str(Decimal("1E-8")) == "0.00000001"
    assert decimal_str(Decimal("6.8E+4")) == "68000"


def test_open_statuses_include_pending_and_queued() -> None:
    swept = {status for status in ExchangeOrderStatus if status.is_open}
    assert swept == {
        ExchangeOrderStatus.PENDING,
        ExchangeOrderStatus.OPEN,
        ExchangeOrderStatus.QUEUED,
        ExchangeOrderStatus.CANCEL_QUEUED,
        ExchangeOrderStatus.EDIT_QUEUED,
    }


def test_side_opposite_and_balance_total() -> None:
    assert Side.BUY.opposite is Side.SELL and Side.SELL.opposite is Side.BUY
    assert Balance("USD", Decimal("10"), Decimal("2.5")).total == Decimal("12.5")
