"""The mid price chart: caption figures, the plot and its price axis, the book's mid as the
last point, and repaints limited to the lines that changed."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from textual.geometry import Region, Size
from textual.strip import Strip

from core.snapshot import BookStatus, BookView
from tests.widgets.helpers import HostApp
from widgets.price_chart import PriceChart, chart_caption, chart_lines, chart_points, resample


def book(bid: float = 100.0, ask: float = 101.0, status: BookStatus = BookStatus.LIVE) -> BookView:
    return BookView("BTC-USD", status, 1, bids=((bid, 1.0),), asks=((ask, 1.0),))


class CountingChart(PriceChart):
    """Records the regions it asks to repaint."""

    def __init__(self) -> None:
        self.refreshed: list[Region] = []
        super().__init__()

    def refresh(self, *regions: Region, **options: object) -> PriceChart:
        self.refreshed.extend(regions)
        return super().refresh(*regions, **options)  # type: ignore[arg-type]


def test_caption() -> None:
    assert chart_caption((), 2) == "mid —"
    assert chart_caption((100.0, 102.5, 99.25), 2) == "mid 99.25  high 102.50  low 99.25"


def test_the_last_point_is_the_live_books_mid() -> None:
    assert chart_points((99.0, 99.5), book(100.0, 101.0)) == (99.0, 99.5, 100.5)
    # A stale book's mid is no price: the chart ends with the last sampled one.
    assert chart_points((99.0,), book(status=BookStatus.STALE)) == (99.0,)
    assert chart_points((99.0,), None) == (99.0,)


def test_resample_keeps_the_newest_point_and_the_count() -> None:
    assert resample((1.0, 2.0, 3.0), 5) == (1.0, 2.0, 3.0)
    assert resample(tuple(float(n) for n in range(10)), 3) == (2.0, 5.0, 9.0)
    assert resample((1.0,), 0) == ()


def test_plot_has_a_price_axis_with_high_middle_and_low() -> None:
    lines = chart_lines((100.0, 110.0, 120.0), width=30, height=7, price_decimals=2)
    assert lines[0].text == "mid 120.00  high 120.00  low 100.00"
    plot = lines[1:]
    assert [line.axis for line in plot] == ["┤ 120.00", "│", "┤ 110.00", "│", "│", "┤ 100.00"]
    # The newest point is at the right edge and at the top; the oldest at the bottom.
    assert plot[0].text.endswith("█") and plot[0].text[-3] == " "
    assert plot[-1].text.endswith("▁██") or plot[-1].text.endswith("███")
    assert all(len(line.text) + len(line.axis) <= 30 for line in plot)


def test_flat_and_empty_windows() -> None:
    flat = chart_lines((5.0, 5.0), width=20, height=5, price_decimals=1)
    assert len({line.text.strip() for line in flat[1:]}) <= 2  # half-way up, no division by 0
    empty = chart_lines((), width=20, height=5, price_decimals=2)
    assert empty[0].text == "mid —"
    assert all(line.text == "" for line in empty[1:])


@given(
    st.lists(st.floats(min_value=1, max_value=1e6, allow_nan=False), min_size=1, max_size=300),
    st.integers(min_value=12, max_value=120),
    st.integers(min_value=2, max_value=12),
)
def test_every_line_fits_and_the_highest_point_reaches_the_top(
    points: list[float], width: int, height: int
) -> None:
    lines = chart_lines(points, width=width, height=height, price_decimals=2)
    assert len(lines) == height
    plot = lines[1:]
    axis_width = max(len(line.axis) for line in plot)
    for line in plot:
        # The plot and the axis share the width (a too narrow chart keeps only the axis).
        assert len(line.text) == max(0, width - axis_width)
    if plot[0].text and max(points) > min(points):
        shown = resample(points, len(plot[0].text))
        if max(shown) == max(points):
            assert "█" in plot[0].text  # the window's high reaches the top line
        if len(plot) > 1:
            assert plot[-1].text.strip(" ▁▂▃▄▅▆▇█") == ""
            assert " " not in plot[-1].text.lstrip()  # every column has a foot


async def test_chart_updates_only_on_change(host: Callable[..., HostApp]) -> None:
    chart = PriceChart()
    mids = (100.0, 101.0, 100.5)
    async with host(chart).run_test(size=(40, 9)) as pilot:
        assert chart.update_chart(mids, book(100.0, 101.0))
        assert not chart.update_chart(mids, book(100.0, 101.0))
        assert not chart.update_chart(tuple(mids), book(100.0, 101.0))  # equal, other tuple
        assert chart.update_chart(mids, book(100.0, 102.0))  # the book's mid moved
        await pilot.pause()
        assert chart.points == (*mids, 101.0)
        assert chart.caption == "mid 101.00  high 101.00  low 100.00"
        assert chart.render_line(0).text.startswith(chart.caption)


async def test_only_changed_lines_are_repainted(host: Callable[..., HostApp]) -> None:
    chart = CountingChart()
    async with host(chart).run_test(size=(40, 9)) as pilot:
        history = (100.0, 110.0, 105.0)
        chart.update_chart(history, book(100.0, 101.0))
        await pilot.pause()
        chart.refreshed.clear()
        # The mid moves within the window: the caption and the lines of the last column.
        chart.update_chart(history, book(101.0, 102.0))
        assert Region(0, 0, 38, 1) in chart.refreshed
        assert len(chart.refreshed) < len(chart.lines)
        chart.refreshed.clear()
        chart.update_chart(history, book(101.0, 102.0))
        assert chart.refreshed == []


class PaintedChart(PriceChart):
    """Records every line it paints: (its size then, y, the text)."""

    def __init__(self) -> None:
        self.painted: list[tuple[Size, int, str]] = []
        super().__init__()

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        self.painted.append((self.size, y, strip.text))
        return strip


async def test_every_frame_paints_the_points_at_the_size_it_is_painted(
    host: Callable[..., HostApp],
) -> None:
    """Points given before the first layout, then a resize: Textual paints the frame after a
    layout before the chart's Resize event arrives. Every line painted at a size must be the
    one a settled chart shows at that size (never blank or built for the old size)."""
    chart = PaintedChart()
    chart.update_chart((100.0, 110.0, 105.0), book(100.0, 101.0))  # not laid out yet
    async with host(chart).run_test(size=(40, 9)) as pilot:
        await pilot.pause()
        await pilot.resize_terminal(60, 9)
        await pilot.pause()
        await pilot.pause()
    assert {size.width for size, _, _ in chart.painted} == {38, 58}  # inside the border
    shown: dict[tuple[Size, int], set[str]] = {}
    for size, y, text in chart.painted:
        shown.setdefault((size, y), set()).add(text)
        if y == 0:
            assert text.startswith("mid 100.50  high 110.00  low 100.00"), (size, text)
    assert all(len(texts) == 1 for texts in shown.values()), shown
