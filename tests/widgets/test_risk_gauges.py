"""Risk gauges: one bar per limit, usage and headroom, coloured by threshold, "—" unknown;
drawn with the Line API, repainting only the lines whose text or colour changed."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from core.snapshot import GaugeView
from tests.widgets.helpers import HostApp, RecordsPaintedLines, screen_lines
from widgets.risk_gauges import RiskGauges, gauge_bar, gauge_level, gauge_line

D = Decimal

GAUGES = (
    GaugeView("order_rate", D(3), D(10), "orders/1s"),
    GaugeView("open_orders", D(2), D(200), "orders"),
    GaugeView("position", D("26500.44"), D("50000"), "USD", "BTC-USD"),
    GaugeView("gross_exposure", D("45000"), D("50000"), "USD"),
    GaugeView("daily_loss", D("2100"), D("2000"), "USD"),
    GaugeView("drawdown", None, D("5000"), "USD"),
    GaugeView("data_age", D("0.4"), D(5), "s", "ETH-USD"),
)


def shown(gauges: RiskGauges) -> str:
    """The plain text the panel draws."""
    return "\n".join(gauges.text_lines)


class PaintedGauges(RecordsPaintedLines, RiskGauges):
    """The panel, recording the lines it is asked to paint."""


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


# What the panel showed when it was a Static re-rendering its whole text (the same inputs).
DRAWN = [
    "╭─ Risk limits ────────────────────────────────────────────────╮",
    "│ order rate     ██████▎··············  30%      7 orders left │",
    "│ open orders    ·····················   1%    198 orders left │",
    "│ position BTC   ███████████▍·········  53% 23,499.56 USD left │",
    "│ gross exposure ██████████████████▉··  90%  5,000.00 USD left │",
    "│ daily loss     █████████████████████ 105%    100.00 USD over │",
    "│ drawdown       ·····················    —                  — │",
    "│ data age ETH   █▋···················   8%           5 s left │",
    "╰──────────────────────────────────────────────────────────────╯",
]
DRAWN_EMPTY = [
    "╭─ Risk limits ────────────────────────────────────────────────╮",
    "│ limits —                                                     │",
    "│                                                              │",
    "╰──────────────────────────────────────────────────────────────╯",
]


@pytest.mark.parametrize(
    ("gauges", "drawn"), [(GAUGES, DRAWN), ((), DRAWN_EMPTY)], ids=["gauges", "none"]
)
async def test_draws_the_text_the_static_panel_drew(
    host: Callable[..., HostApp], gauges: tuple[GaugeView, ...], drawn: list[str]
) -> None:
    """Character for character what the Static panel showed; an unknown usage is "—" with an
    empty bar, never 0% or full headroom."""
    panel = RiskGauges()
    app = host(panel)
    async with app.run_test(size=(64, 10)) as pilot:
        await pilot.pause()
        panel.update_gauges(gauges)
        await pilot.pause()
        assert screen_lines(app)[: len(drawn)] == drawn
        assert screen_lines(app)[len(drawn)].strip() == ""


async def test_the_same_input_repaints_no_line(host: Callable[..., HostApp]) -> None:
    panel = PaintedGauges()
    async with host(panel).run_test(size=(64, 10)) as pilot:
        await pilot.pause()
        panel.update_gauges(GAUGES)
        await pilot.pause()
        assert panel.painted
        panel.painted.clear()
        assert not panel.update_gauges(GAUGES)
        # A new usage that reads the same (the data age in whole seconds): nothing either.
        aged = (*GAUGES[:-1], GaugeView("data_age", D("0.41"), D(5), "s", "ETH-USD"))
        assert not panel.update_gauges(aged)
        await pilot.pause()
        await pilot.pause()
        assert panel.painted == []


async def test_a_changed_value_repaints_only_its_line(host: Callable[..., HostApp]) -> None:
    panel = PaintedGauges()
    app = host(panel)
    async with app.run_test(size=(64, 10)) as pilot:
        await pilot.pause()
        panel.update_gauges(GAUGES)
        await pilot.pause()
        panel.painted.clear()
        # Two more open orders: the second gauge's line only (same column widths).
        more = (GAUGES[0], GaugeView("open_orders", D(4), D(200), "orders"), *GAUGES[2:])
        assert panel.update_gauges(more)
        await pilot.pause()
        assert set(panel.painted) == {1}
        assert "196 orders left" in screen_lines(app)[2]
        # The order rate climbs into the warning band: its line only, in its new colour.
        panel.painted.clear()
        warn = (GaugeView("order_rate", D("6"), D(10), "orders/1s"), *more[1:])
        assert panel.update_gauges(warn)
        await pilot.pause()
        assert set(panel.painted) == {0}
        assert panel.lines[0].level == "warn"
