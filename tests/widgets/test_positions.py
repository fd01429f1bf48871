"""The positions panel: size, entry, mark and P&L per product; "—" when not known; drawn with
the Line API, repainting only the lines whose text changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from textual.strip import Strip

from core.snapshot import PositionView
from tests.widgets.helpers import HostApp, RecordsPaintedLines, count_layout_passes, screen_lines
from widgets.positions import (
    NO_POSITIONS,
    POSITIONS_UNKNOWN,
    PositionsPanel,
    fitted_columns,
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
ETH_FLAT = PositionView("ETH-USD", D("0"), None, D("3500.10"), D("0"), D("12.5"), D(0))


class PaintedPositions(RecordsPaintedLines, PositionsPanel):
    """The panel, recording the lines it is asked to paint."""


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


# What the panel showed when it was a Static re-rendering its whole text (the same inputs).
DRAWN_100 = [
    "╭─ Positions ──────────────────────────────────────────────────────────────────────────────────────╮",
    "│product    size  avg entry       mark  unrl P&L  rlzd P&L                                         │",
    "│BTC-USD  0.4125  63,800.00  64,243.50   +182.94      0.00                                         │",
    "│SOL-USD    -2.5     145.10          —         —     -3.40                                         │",
    "│ETH-USD       0          —   3,500.10      0.00    +12.50                                         │",
    "╰───────────────────────────────────────────────────────────────── equity 125,000.00 · day +12.30 ─╯",
]
DRAWN_50 = [
    "╭─ Positions ────────────────────────────────────╮",
    "│product    size  unrl P&L                       │",
    "│BTC-USD  0.4125   +182.94                       │",
    "│SOL-USD    -2.5         —                       │",
    "╰──────────────── equity 125,000.00 · day -3.00 ─╯",
]
DRAWN_UNKNOWN = [
    "╭─ Positions ──────────────────────────────────────────────────────────────────────────────────────╮",
    "│positions — (account not loaded yet)                                                              │",
    "│                                                                                                  │",
    "╰─────────────────────────────────────────────────────────────────────────────── equity — · day — ─╯",
]
DRAWN_EMPTY = [
    "╭─ Positions ──────────────────────────────────────────────────────────────────────────────────────╮",
    "│no positions                                                                                      │",
    "│                                                                                                  │",
    "╰───────────────────────────────────────────────────────────────────────── equity 0.00 · day 0.00 ─╯",
]


@pytest.mark.parametrize(
    ("width", "positions", "equity", "daily_pnl", "drawn"),
    [
        (100, [BTC, SOL_NO_MARK, ETH_FLAT], D("125000"), D("12.3"), DRAWN_100),
        (50, [BTC, SOL_NO_MARK], D("125000"), D("-3"), DRAWN_50),
        (100, None, D(0), D(0), DRAWN_UNKNOWN),
        (100, [], D(0), D(0), DRAWN_EMPTY),
    ],
    ids=["wide", "compact", "unknown-account", "no-positions"],
)
async def test_draws_the_text_the_static_panel_drew(
    host: Callable[..., HostApp],
    width: int,
    positions: list[PositionView] | None,
    equity: Decimal,
    daily_pnl: Decimal,
    drawn: list[str],
) -> None:
    """The Line-API panel shows, character for character, what the Static one showed; what is
    not known is "—" (never 0), and an unknown account shows none of the figures passed."""
    panel = PositionsPanel()
    app = host(panel)
    async with app.run_test(size=(width, 8)) as pilot:
        await pilot.pause()
        assert panel.update_positions(positions, equity=equity, daily_pnl=daily_pnl)
        await pilot.pause()
        assert screen_lines(app)[: len(drawn)] == drawn
        # The panel's height follows its lines: nothing below the border.
        assert screen_lines(app)[len(drawn)].strip() == ""


async def test_the_same_input_repaints_no_line(host: Callable[..., HostApp]) -> None:
    panel = PaintedPositions()
    async with host(panel).run_test(size=(100, 8)) as pilot:
        await pilot.pause()
        panel.update_positions([BTC, SOL_NO_MARK], equity=D(100), daily_pnl=None)
        await pilot.pause()
        assert panel.painted
        panel.painted.clear()
        assert not panel.update_positions([BTC, SOL_NO_MARK], equity=D(100), daily_pnl=None)
        await pilot.pause()
        await pilot.pause()
        assert panel.painted == []


async def test_a_changed_value_repaints_only_its_line(host: Callable[..., HostApp]) -> None:
    panel = PaintedPositions()
    app = host(panel)
    async with app.run_test(size=(100, 8)) as pilot:
        await pilot.pause()
        panel.update_positions([BTC, SOL_NO_MARK], equity=D(100), daily_pnl=D(1))
        await pilot.pause()
        panel.painted.clear()
        # BTC's mark moves (same widths): its line, the second row (y = 1 is BTC), only.
        moved = PositionView(
            "BTC-USD", BTC.size, BTC.avg_entry, D("64300.00"), D("206.25"), D(0), D("1.2")
        )
        assert panel.update_positions([moved, SOL_NO_MARK], equity=D(100), daily_pnl=D(1))
        await pilot.pause()
        assert set(panel.painted) == {1}
        assert "64,300.00" in screen_lines(app)[2]
        # Equity and day P&L only: the bottom border (the subtitle) changes, no content line.
        panel.painted.clear()
        assert panel.update_positions([moved, SOL_NO_MARK], equity=D(101), daily_pnl=D(2))
        await pilot.pause()
        assert panel.painted == []
        assert "equity 101.00 · day +2.00" in screen_lines(app)[4]


async def test_an_unknown_account_reads_dash_never_zero(host: Callable[..., HostApp]) -> None:
    panel = PositionsPanel()
    app = host(panel)
    async with app.run_test(size=(100, 8)) as pilot:
        await pilot.pause()
        # Even if a caller passes figures along, an unknown account shows none of them.
        assert panel.update_positions(None, equity=D(0), daily_pnl=D(0))
        await pilot.pause()
        assert panel.text_lines == [POSITIONS_UNKNOWN]
        assert panel.border_subtitle == "equity — · day —"
        assert "0" not in "".join(screen_lines(app))
        # Known and empty is a fact, shown as such; back to unknown is drawn again.
        assert panel.update_positions([], equity=D(0), daily_pnl=D(0))
        assert panel.text_lines == [NO_POSITIONS]
        assert panel.border_subtitle == "equity 0.00 · day 0.00"
        assert panel.update_positions(None, equity=None, daily_pnl=None)
        await pilot.pause()
        assert panel.text_lines == [POSITIONS_UNKNOWN]
        assert "positions — (account not loaded yet)" in screen_lines(app)[1]


async def test_rows_added_and_removed_resize_the_panel(host: Callable[..., HostApp]) -> None:
    panel = PositionsPanel()
    app = host(panel)
    async with app.run_test(size=(100, 10)) as pilot:
        await pilot.pause()
        panel.update_positions([BTC, SOL_NO_MARK, ETH_FLAT], equity=None, daily_pnl=None)
        await pilot.pause()
        assert panel.size.height == 4
        assert "ETH-USD" in screen_lines(app)[4]
        panel.update_positions([BTC], equity=None, daily_pnl=None)
        await pilot.pause()
        # min-height 4 with the border: two content lines, titles and BTC.
        assert panel.size.height == 2
        assert not any("SOL-USD" in line or "ETH-USD" in line for line in screen_lines(app))


def test_columns_that_do_not_fit_are_dropped_whole() -> None:
    big = PositionView(
        "BTC-USD", D("12.41250001"), D("63800"), D("64243.5"), D("5505.47"), D("-1234.56"), D(0)
    )
    rows = [position_cells(big), position_cells(SOL_NO_MARK)]
    assert fitted_columns(rows, 100)[0] == (
        "product",
        "size",
        "avg entry",
        "mark",
        "unrl P&L",
        "rlzd P&L",
    )
    assert fitted_columns(rows, 40)[0] == ("product", "size", "unrl P&L")
    # 60 is not compact, but the six columns need 64 cells: realized P&L goes first.
    columns, widths = fitted_columns(rows, 60)
    assert columns == ("product", "size", "avg entry", "mark", "unrl P&L")
    assert sum(widths) + 2 * (len(widths) - 1) <= 60
    assert fitted_columns(rows, 20)[0] == ("product", "size")


async def test_panel_compacts_when_narrow(host: Callable[..., HostApp]) -> None:
    narrow = PositionsPanel()
    app = host(narrow)
    async with app.run_test(size=(40, 8)) as pilot:
        await pilot.pause()
        assert narrow.compact
        narrow.update_positions([BTC], equity=None, daily_pnl=None)
        await pilot.pause()
        assert narrow.columns == ("product", "size", "unrl P&L")
        assert screen_lines(app)[1].split() == ["│product", "size", "unrl", "P&L", "│"]


async def test_the_frame_after_a_layout_shows_the_columns_of_its_width() -> None:
    """Positions given before the first layout (width 0, so compact): Textual paints the frame
    after the layout before the panel's Resize event arrives. That frame already shows every
    column the width has room for (the mark among them)."""
    panel = PaintedPositions()
    titles: list[str] = []
    render_line = panel.render_line

    def recorded(y: int) -> Strip:
        strip = render_line(y)
        if y == 0:
            titles.append(strip.text)
        return strip

    panel.render_line = recorded  # type: ignore[method-assign]

    class FedOnMount(HostApp):
        def on_mount(self) -> None:  # as CryptoJApp does: before the screen's first layout
            panel.update_positions([BTC], equity=D("1000"), daily_pnl=D(0))

    async with FedOnMount(panel).run_test(size=(100, 10)) as pilot:
        await pilot.pause()
    assert titles, "the titles were never painted"
    assert all("mark" in title for title in titles), titles


async def test_a_message_wider_than_the_panel_wraps(host: Callable[..., HostApp]) -> None:
    """Nothing cut off: "account not loaded yet" wraps onto a second line, never "…"."""
    panel = PositionsPanel()
    app = host(panel)
    async with app.run_test(size=(36, 8)) as pilot:
        await pilot.pause()
        panel.update_positions(None, equity=None, daily_pnl=None)
        await pilot.pause()
        assert screen_lines(app)[1:3] == [
            "│positions — (account not loaded   │",
            "│yet)                              │",
        ]


async def test_reserved_rows_keep_the_height_as_the_account_arrives(
    host: Callable[..., HostApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row reserved per configured product: the panel is as tall while the account is not
    known (and with no positions) as with every row, so the account's arrival lays nothing
    out; only rows beyond the reserve make it grow."""
    panel = PositionsPanel(reserved_rows=3)
    app = host(panel)
    async with app.run_test(size=(100, 10)) as pilot:
        panel.update_positions(None, equity=None, daily_pnl=None)
        await pilot.pause()
        assert panel.size.height == 4  # the titles and three rows
        assert POSITIONS_UNKNOWN in screen_lines(app)[1]
        region = panel.region
        passes = count_layout_passes(monkeypatch)
        for positions in ([BTC, SOL_NO_MARK, ETH_FLAT], [], [BTC], None, [BTC, ETH_FLAT]):
            panel.update_positions(positions, equity=D(1), daily_pnl=D(0))
            await pilot.pause()
            shown = "\n".join(screen_lines(app))
            for position in positions or ():
                assert position.product_id in shown
        assert passes == []
        assert panel.region == region
        # A fourth position does not fit the reserve: the panel grows to show it.
        fourth = replace(BTC, product_id="DOGE-USD")
        panel.update_positions([BTC, SOL_NO_MARK, ETH_FLAT, fourth], equity=None, daily_pnl=None)
        await pilot.pause()
        assert passes
        assert panel.size.height == 5
        assert "DOGE-USD" in screen_lines(app)[5]
