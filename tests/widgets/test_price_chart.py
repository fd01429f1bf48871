"""The mid price chart: caption figures, and no work when the history did not change."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Label, Sparkline

from tests.widgets.helpers import HostApp
from widgets.price_chart import PriceChart, chart_caption


def test_caption() -> None:
    assert chart_caption((), 2) == "mid —"
    assert chart_caption((100.0, 102.5, 99.25), 2) == "mid 99.25  high 102.50  low 99.25"


async def test_chart_updates_only_on_change(host: Callable[..., HostApp]) -> None:
    chart = PriceChart()
    mids = (100.0, 101.0, 100.5)
    async with host(chart).run_test(size=(40, 9)) as pilot:
        assert chart.update_mids(mids, 2)
        assert not chart.update_mids(mids, 2)
        assert not chart.update_mids(tuple(mids), 2)  # equal content, other tuple
        assert chart.update_mids(mids, 3)  # other decimals: caption changes
        await pilot.pause()
        assert chart.mids == mids
        assert list(chart.query_one(Sparkline).data or []) == list(mids)
        assert str(chart.query_one(Label).render()) == "mid 100.500  high 101.000  low 100.000"


async def test_chart_redraws_at_most_every_min_interval(host: Callable[..., HostApp]) -> None:
    chart = PriceChart(min_interval_s=0.5)
    async with host(chart).run_test(size=(40, 9)):
        assert chart.update_mids((1.0,), 2, now=10.0)
        assert not chart.update_mids((1.0, 2.0), 2, now=10.3)  # too soon
        assert chart.mids == (1.0,)
        assert chart.update_mids((1.0, 2.0), 2, now=10.5)
        assert chart.update_mids((3.0,), 2, now=10.6) is False
        assert chart.update_mids((3.0,), 2)  # no time given (product switch): drawn now
        assert chart.mids == (3.0,)
