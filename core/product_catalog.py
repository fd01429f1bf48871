"""The spot products the client knows without asking an exchange, with Coinbase's increments
and limits.

The engine uses them where no exchange is at hand (replaying a recording); the simulated
exchange lists the same products so the demo and the replay agree. Figures follow Coinbase's
spot products (BTC-USD as in ``docs/coinbase-protocol.md``).
"""

from __future__ import annotations

from decimal import Decimal

from core.model import Product

__all__ = ["default_products", "make_usd_product"]

_CENT = Decimal("0.01")
_SATOSHI = Decimal("0.00000001")


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


def default_products() -> tuple[Product, ...]:
    """BTC-USD, ETH-USD and SOL-USD."""
    return (
        make_usd_product(
            "BTC", base_increment=_SATOSHI, base_min_size=_SATOSHI, base_max_size=Decimal(3400)
        ),
        make_usd_product(
            "ETH", base_increment=_SATOSHI, base_min_size=_SATOSHI, base_max_size=Decimal(28000)
        ),
        make_usd_product(
            "SOL",
            base_increment=Decimal("0.001"),
            base_min_size=Decimal("0.001"),
            base_max_size=Decimal(300000),
        ),
    )
