"""The products the simulated exchange lists by default: the client's product catalogue
(``core/product_catalog.py``, plain data) with the prices the simulated market starts at.

Start prices are round numbers near recent market levels so the demo looks familiar.
"""

from __future__ import annotations

from decimal import Decimal

from core.product_catalog import default_products, make_usd_product
from core.sim.types import SimProductSpec

__all__ = ["default_product_specs", "make_usd_product"]

_START_PRICES = {
    "BTC-USD": Decimal("68000.00"),
    "ETH-USD": Decimal("3500.00"),
    "SOL-USD": Decimal("150.00"),
}


def default_product_specs() -> tuple[SimProductSpec, ...]:
    """BTC-USD, ETH-USD and SOL-USD with their start prices."""
    return tuple(
        SimProductSpec(product, start_price=_START_PRICES[product.product_id])
        for product in default_products()
    )
