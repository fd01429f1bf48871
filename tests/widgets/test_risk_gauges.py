"""Risk gauges: one bar per limit, usage and headroom, coloured by threshold, "—" unknown."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from rich.text import Text

from core.snapshot import GaugeView
from tests.widgets.helpers import HostApp
from widgets.risk_gauges import RiskGauges, gauge_bar, gauge_level, gauge_line

D = Decimal


def shown(gauges: RiskGauges) -> str:
    """The plain text the panel shows."""
    text = gauges.content
    assert isinstance(text, Text)
    return text.plain


@pytest.mark.parametrize(
    ("fraction", "level"),
    [
        (None, "unknown"),
        (0.0, "ok"),
        (0.59, "ok"),
        (0.6, "warn"),
        (0.85, "alert"),
        (1.0, "over"),
        (1.7, "over"),
    ],
)
def test_gauge_level(fraction: float | None, level: str) -> None:
    assert gauge_level(fraction) == level


def test_gauge_bar() -> None:
    assert gauge_bar(None, 4) == "····"
    assert gauge_bar(0.0, 4) == "····"
    assert gauge_bar(0.5, 4) == "██··"
    assert gauge_bar(0.53125, 4) == "██▏·"  # 0.54 of 32 eighths
    assert gauge_bar(0.541, 100) == gauge_bar(0.549, 100)  # one 2% step: same bar
    assert gauge_bar(2.0, 4) == "████"  # clamped


def test_gauge_lines() -> None:
    position = gauge_line(GaugeView("position", D("26500.44"), D("50000"), "USD", "BTC-USD"))
    assert position.label == "position BTC"
    assert position.usage == "53%"
    assert position.headroom == "23,499.56 USD left"
    assert position.level == "ok"
    rate = gauge_line(GaugeView("order_rate", D(9), D(10), "orders/1s"))
    assert (rate.label, rate.usage, rate.headroom, rate.level) == (
        "order rate",
        "90%",
        "1 orders left",
        "alert",
    )
    over = gauge_line(GaugeView("daily_loss", D("2100"), D("2000"), "USD"))
    assert (over.headroom, over.level) == ("100.00 USD over", "over")
    age = gauge_line(GaugeView("data_age", None, D(5), "s", "ETH-USD"))
    assert (age.label, age.usage, age.headroom, age.level) == ("data age ETH", "—", "—", "unknown")
    other = gauge_line(GaugeView("custom_limit", D("1.25"), D(5), "s"))
    assert other.label == "custom limit" and other.headroom == "4 s left"


async def test_panel_repaints_only_when_a_text_changes(host: Callable[..., HostApp]) -> None:
    gauges = RiskGauges()
    async with host(gauges).run_test(size=(70, 9)) as pilot:
        await pilot.pause()
        first = [GaugeView("data_age", D("0.201"), D(5), "s", "BTC-USD")]
        assert gauges.update_gauges(first)
        # 0.204 s shows as 0.2 s as well: nothing to repaint.
        assert not gauges.update_gauges([GaugeView("data_age", D("0.204"), D(5), "s", "BTC-USD")])
        assert gauges.update_gauges([GaugeView("data_age", D("4.5"), D(5), "s", "BTC-USD")])
        await pilot.pause()
        assert gauges.lines[0].level == "alert"
        rendered = shown(gauges)
        assert "data age BTC" in rendered and "90%" in rendered and "0 s left" in rendered
        assert gauges.update_gauges([])
        assert shown(gauges) == "limits —"


async def test_number_changes_are_rate_limited_colour_changes_are_not(
    host: Callable[..., HostApp],
) -> None:
    gauges = RiskGauges(min_interval_s=0.5)
    async with host(gauges).run_test(size=(70, 9)):
        assert gauges.update_gauges([GaugeView("open_orders", D(10), D(200), "orders")], now=1.0)
        assert not gauges.update_gauges(
            [GaugeView("open_orders", D(20), D(200), "orders")], now=1.1
        )
        assert gauges.lines[0].usage == "5%"
        assert gauges.update_gauges([GaugeView("open_orders", D(20), D(200), "orders")], now=1.6)
        assert gauges.lines[0].usage == "10%"
        # Close to the limit: a new colour, drawn at once.
        assert gauges.update_gauges([GaugeView("open_orders", D(190), D(200), "orders")], now=1.7)
        assert gauges.lines[0].level == "alert"
