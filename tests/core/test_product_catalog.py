"""The product catalogue the engine uses without an exchange, and the simulated exchange's
listing built on it: both must describe the same products with the same increments, or a
replay would round orders differently from the demo."""

from __future__ import annotations

from decimal import Decimal

from core.product_catalog import default_products, make_usd_product
from core.sim.products import default_product_specs


def test_the_sim_lists_exactly_the_catalogue() -> None:
    assert tuple(spec.product for spec in default_product_specs()) == default_products()


def test_every_listed_product_has_a_positive_start_price_on_its_tick() -> None:
    for spec in default_product_specs():
        assert spec.start_price > 0
        assert spec.start_price % spec.product.price_increment == 0


def test_a_usd_product_is_quoted_in_cents() -> None:
    product = make_usd_product(
        "DOGE", base_increment=Decimal("1"), base_min_size=Decimal("1"), base_max_size=Decimal(10)
    )
    assert product.product_id == "DOGE-USD"
    assert product.quote_currency == "USD"
    assert product.quote_increment == Decimal("0.01")
    assert product.price_increment == Decimal("0.01")
