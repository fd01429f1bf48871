"""The positions panel: size, entry, mark and P&L per product; "—" when not known."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from rich.text import Text
from textual.app import RenderResult

from core.snapshot import PositionView
from tests.widgets.helpers import HostApp
from widgets.positions import (
    NO_POSITIONS,
    POSITIONS_UNKNOWN,
    PositionsPanel,
    format_pnl,
    format_size,
    position_cells,
    summary_text,
)

D = Decimal

BTC = PositionView(
    "BTC-USD", D("0.41250000"), D("63800.00"), D("64243.50"), D("182.94"), D("0"), D("1.2")
)
SOL_NO_MARK = PositionView("SOL-USD", D("-2.5"), D("145.10"), None, None, D("-3.40"), D(0))


def headers(panel: PositionsPanel) -> list[str]:
    """The column titles the panel shows (its first line, split on spaces between titles)."""
    shown = panel.content
    assert isinstance(shown, Text)
    first = shown.plain.splitlines()[0]
    assert all(title in first for title in panel.columns)
    return list(panel.columns)


@pytest.mark.parametrize(
    ("size", "text"),
    [(D("0.41250000"), "0.4125"), (D("-2.500"), "-2.5"), (D("0E-8"), "0"), (D("1200"), "1,200")],
)
def test_format_size(size: Decimal, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(D("12.3"), "+12.30"), (D("-4.1"), "-4.10"), (D(0), "0.00"), (None, "—")],
)
def test_format_pnl(value: Decimal | None, text: str) -> None:
    assert format_pnl(value) == text


def test_cells_show_dashes_for_what_is_not_known() -> None:
    assert position_cells(BTC) == ("BTC-USD", "0.4125", "63,800.00", "64,243.50", "+182.94", "0.00")
    assert position_cells(SOL_NO_MARK) == ("SOL-USD", "-2.5", "145.10", "—", "—", "-3.40")
    assert summary_text(None, None) == "equity — · day —"
    assert summary_text(D("1234.5"), D("-3")) == "equity 1,234.50 · day -3.00"


async def test_panel_redraws_only_on_change_and_compacts_when_narrow(
    host: Callable[..., HostApp],
) -> None:
    panel = PositionsPanel()
    async with host(panel).run_test(size=(100, 8)) as pilot:
        await pilot.pause()
        assert not panel.compact
        assert panel.update_positions([BTC, SOL_NO_MARK], equity=D(100), daily_pnl=None)
        assert not panel.update_positions([BTC, SOL_NO_MARK], equity=D(100), daily_pnl=None)
        assert panel.rows[1][4] == "—"
        assert panel.border_subtitle == "equity 100.00 · day —"
        await pilot.pause()
        assert headers(panel) == ["product", "size", "avg entry", "mark", "unrl P&L", "rlzd P&L"]
        assert panel.update_positions([], equity=None, daily_pnl=None)
        assert str(panel.content) == NO_POSITIONS

    narrow = PositionsPanel()
    async with host(narrow).run_test(size=(40, 8)) as pilot:
        await pilot.pause()
        assert narrow.compact
        narrow.update_positions([BTC], equity=None, daily_pnl=None)
        await pilot.pause()
        assert headers(narrow) == ["product", "size", "unrl P&L"]


async def test_mark_only_changes_are_rate_limited(host: Callable[..., HostApp]) -> None:
    panel = PositionsPanel(min_interval_s=0.5)
    async with host(panel).run_test(size=(100, 8)):
        assert panel.update_positions([BTC], equity=None, daily_pnl=None, now=10.0)
        moved = PositionView(
            "BTC-USD", BTC.size, BTC.avg_entry, D("64300.00"), D("206.25"), D(0), D(0)
        )
        assert not panel.update_positions([moved], equity=None, daily_pnl=None, now=10.2)
        assert panel.rows[0][3] == "64,243.50"  # still the drawn mark
        assert panel.update_positions([moved], equity=None, daily_pnl=None, now=10.6)
        assert panel.rows[0][3] == "64,300.00"
        # A fill (the size changed) is drawn at once, whatever the time.
        bigger = PositionView("BTC-USD", D("1"), BTC.avg_entry, D("64300.00"), D("500"), D(0), D(0))
        assert panel.update_positions([bigger], equity=None, daily_pnl=None, now=10.7)
        assert panel.rows[0][1] == "1"


async def test_an_unknown_account_reads_dash_never_zero(host: Callable[..., HostApp]) -> None:
    panel = PositionsPanel()
    async with host(panel).run_test(size=(100, 8)) as pilot:
        await pilot.pause()
        # Even if a caller passes figures along, an unknown account shows none of them.
        assert panel.update_positions(None, equity=D(0), daily_pnl=D(0))
        await pilot.pause()
        assert str(panel.content) == POSITIONS_UNKNOWN
        assert panel.border_subtitle == "equity — · day —"
        assert "0" not in str(panel.content) and "0.00" not in str(panel.border_subtitle)
        # Known and empty is a fact, shown as such; back to unknown is drawn again.
        assert panel.update_positions([], equity=D(0), daily_pnl=D(0))
        assert str(panel.content) == NO_POSITIONS
        assert panel.border_subtitle == "equity 0.00 · day 0.00"
        assert panel.update_positions(None, equity=None, daily_pnl=None, now=1.0)
        assert str(panel.content) == POSITIONS_UNKNOWN


class PaintedPositions(PositionsPanel):
    """Records what every render draws: (the width then, the text)."""

    def __init__(self) -> None:
        self.painted: list[tuple[int, str]] = []
        super().__init__()

    def render(self) -> RenderResult:
        result = super().render()
        text = result.plain if isinstance(result, Text) else str(getattr(result, "plain", ""))
        self.painted.append((self.size.width, text))
        return result


async def test_the_frame_after_a_layout_shows_the_columns_of_its_width() -> None:
    """Positions given before the first layout (width 0, so compact): Textual paints the frame
    after the layout before the panel's Resize event arrives. That frame already shows every
    column the width has room for (the mark among them)."""
    panel = PaintedPositions()

    class FedOnMount(HostApp):
        def on_mount(self) -> None:  # as CryptoJApp does: before the screen's first layout
            panel.update_positions([BTC], equity=D("1000"), daily_pnl=D(0))

    async with FedOnMount(panel).run_test(size=(100, 10)) as pilot:
        await pilot.pause()
    painted = [text for width, text in panel.painted if width > 0]
    assert painted, panel.painted
    assert all("mark" in text for text in painted), painted
