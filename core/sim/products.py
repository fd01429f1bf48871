"""The products the simulated exchange lists by default, with Coinbase's increments and limits.

Figures follow Coinbase's spot products (BTC-USD as in the protocol reference §4); start prices
are round numbers near recent market levels so the demo looks familiar.
"""

from __future__ import annotations

from decimal import Decimal

from core.model import Product
from core.sim.types import SimProductSpec

__all__ = ["default_product_specs", "make_usd_product"]

_CENT = Decimal("0.01")


def make_usd_product(
    base: str,
    *,
    base_increment: Decimal,
    base_min_size: Decimal,
    base_max_size: Decimal,
    price_increment: Decimal = _CENT,
    quote_min_size: Decimal = Decimal(1),
    quote_max_size: Decimal = Decimal(150_000_000),
) -> Product:
    """A spot product quoted in USD, online and tradable."""
    return Product(
        product_id=f"{base}-USD",
        base_currency=base,
        quote_currency="USD",
        base_increment=base_increment,
        quote_increment=_CENT,
        price_increment=price_increment,
        base_min_size=base_min_size,
        base_max_size=base_max_size,
        quote_min_size=quote_min_size,
        quote_max_size=quote_max_size,
    )


def default_product_specs() -> tuple[SimProductSpec, ...]:
    """BTC-USD, ETH-USD and SOL-USD with their start prices."""
    satoshi = Decimal("0.00000001")
    return (
        SimProductSpec(
            make_usd_product(
                "BTC",
                base_increment=satoshi,
                base_min_size=satoshi,
                base_max_size=Decimal(3400),
            ),
            start_price=Decimal("68000.00"),
        ),
        SimProductSpec(
            make_usd_product(
                "ETH",
                base_increment=satoshi,
                base_min_size=satoshi,
                base_max_size=Decimal(28000),
            ),
            start_price=Decimal("3500.00"),
        ),
        SimProductSpec(
            make_usd_product(
                "SOL",
                base_increment=Decimal("0.001"),
                base_min_size=Decimal("0.001"),
                base_max_size=Decimal(300000),
            ),
            start_price=Decimal("150.00"),
        ),
    )
