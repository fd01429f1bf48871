"""The order book ladder: order of levels, cumulative sizes, STALE banner, "—", and that an
update repaints only the lines that changed."""

from __future__ import annotations

from collections.abc import Callable

from textual.geometry import Region, Size
from textual.strip import Strip

from core.snapshot import BookStatus, BookView
from tests.widgets.helpers import HostApp
from widgets.order_book import (
    OWN_ORDER_MARKER,
    LadderColumns,
    LadderRow,
    OrderBookLadder,
    RowKind,
    build_ladder_rows,
    depth_bar,
    levels_per_side,
)

BIDS = ((99.0, 1.0), (98.0, 2.0), (97.0, 3.0), (96.0, 4.0))
ASKS = ((101.0, 0.5), (102.0, 1.5), (103.0, 2.5), (104.0, 3.5))


def book(
    *,
    version: int = 1,
    bids: tuple[tuple[float, float], ...] = BIDS,
    asks: tuple[tuple[float, float], ...] = ASKS,
    status: BookStatus = BookStatus.LIVE,
    reason: str | None = None,
    product_id: str = "BTC-USD",
    resyncs: int = 0,
) -> BookView:
    return BookView(
        product_id=product_id,
        status=status,
        version=version,
        bids=bids,
        asks=asks,
        status_reason=reason,
        resyncs=resyncs,
        price_decimals=2,
        size_decimals=4,
    )


class CountingLadder(OrderBookLadder):
    """A ladder that records which lines it renders and which regions it refreshes."""

    def __init__(self) -> None:
        self.rendered: list[int] = []
        self.refreshed: list[Region] = []
        super().__init__(max_levels=20)

    def render_line(self, y: int) -> Strip:
        self.rendered.append(y)
        return super().render_line(y)

    def refresh(self, *regions: Region, **options: bool) -> CountingLadder:
        self.refreshed.extend(regions)
        super().refresh(*regions, **options)
        return self


def kinds(rows: tuple[LadderRow, ...]) -> list[RowKind]:
    return [row.kind for row in rows]


def line_texts(ladder: OrderBookLadder) -> list[str]:
    return [ladder.render_line(y).text for y in range(len(ladder.rows))]


# -- layout (pure) ------------------------------------------------------------------------


def test_layout_puts_asks_above_bids_with_cumulative_sizes() -> None:
    rows = build_ladder_rows(book(), height=11, width=60, max_levels=20)
    # 11 lines: header, status, 4 asks, spread, 4 bids.
    assert (
        kinds(rows)
        == [RowKind.HEADER, RowKind.STATUS]
        + [RowKind.ASK] * 4
        + [RowKind.SPREAD]
        + [RowKind.BID] * 4
    )
    asks = [row for row in rows if row.kind is RowKind.ASK]
    bids = [row for row in rows if row.kind is RowKind.BID]
    # Asks descend to the best ask, just above the spread; bids descend from the best bid.
    assert [row.price for row in asks] == [104.0, 103.0, 102.0, 101.0]
    assert [row.total for row in asks] == [8.0, 4.5, 2.0, 0.5]
    assert [row.price for row in bids] == [99.0, 98.0, 97.0, 96.0]
    assert [row.total for row in bids] == [1.0, 3.0, 6.0, 10.0]
    spread = rows[6]
    assert (spread.price, spread.size) == (100.0, 2.0)  # mid and spread


def test_layout_shows_only_as_many_levels_as_fit() -> None:
    assert levels_per_side(height=9, max_levels=20) == 3
    assert levels_per_side(height=200, max_levels=20) == 20
    assert levels_per_side(height=2, max_levels=20) == 1
    rows = build_ladder_rows(book(), height=9, width=60, max_levels=20)
    assert [row.price for row in rows if row.kind is RowKind.ASK] == [103.0, 102.0, 101.0]
    assert [row.price for row in rows if row.kind is RowKind.BID] == [99.0, 98.0, 97.0]


def test_layout_pads_a_thin_side_so_the_spread_stays_put() -> None:
    rows = build_ladder_rows(book(asks=((101.0, 1.0),)), height=11, width=60, max_levels=20)
    assert kinds(rows)[2:7] == [RowKind.BLANK] * 3 + [RowKind.ASK, RowKind.SPREAD]


def test_depth_bars_grow_with_cumulative_size() -> None:
    rows = build_ladder_rows(book(), height=11, width=60, max_levels=20)
    bids = [row.bar_eighths for row in rows if row.kind is RowKind.BID]
    assert bids == sorted(bids)
    assert bids[0] > 0
    # The deepest cumulative (10) against a scale of 10 fills the whole bar column.
    assert bids[-1] == LadderColumns.for_width(60).bar * 8
    assert depth_bar(8 * 2 + 4) == "██▌"
    assert depth_bar(-3) == ""


def test_own_order_prices_are_marked() -> None:
    rows = build_ladder_rows(
        book(), height=11, width=60, max_levels=20, own_order_prices=frozenset({98.0, 103.0})
    )
    assert sorted(row.price for row in rows if row.own_order and row.price) == [98.0, 103.0]


def test_columns_share_a_narrow_width() -> None:
    wide, narrow = LadderColumns.for_width(56), LadderColumns.for_width(40)
    assert (wide.price, wide.bar) == (12, 15)
    assert narrow.price < wide.price
    assert narrow.price + narrow.size + narrow.total + narrow.bar + 5 == 40


# -- the widget ---------------------------------------------------------------------------


async def test_ladder_renders_prices_sizes_and_totals(host: Callable[..., HostApp]) -> None:
    ladder = OrderBookLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        assert ladder.update_book(book())
        await pilot.pause()
        texts = line_texts(ladder)
        # The border takes two lines: 11 content lines remain.
        assert len(ladder.rows) == 11
        assert "price" in texts[0] and "total" in texts[0]
        assert "BTC-USD · synced" in texts[1] and "LIVE" not in texts[1]
        assert texts[2].split()[:3] == ["104.00", "3.5000", "8.0000"]
        assert texts[5].split()[:3] == ["101.00", "0.5000", "0.5000"]
        assert "spread 2.00" in texts[6] and "mid 100.000" in texts[6]
        assert texts[10].split()[:3] == ["96.00", "4.0000", "10.0000"]


async def test_ladder_shows_stale_with_its_reason(host: Callable[..., HostApp]) -> None:
    ladder = OrderBookLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book())
        ladder.update_book(
            book(version=2, status=BookStatus.STALE, reason="sequence gap", resyncs=2)
        )
        await pilot.pause()
        banner = line_texts(ladder)[1]
        assert "STALE" in banner and "sequence gap" in banner and "resync #2" in banner
        assert all(row.dim for row in ladder.rows if row.kind in (RowKind.ASK, RowKind.BID))


async def test_ladder_shows_syncing_and_unknown_values(host: Callable[..., HostApp]) -> None:
    ladder = OrderBookLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book(bids=(), asks=(), status=BookStatus.SYNCING))
        await pilot.pause()
        texts = line_texts(ladder)
        assert "SYNCING" in texts[1] and "waiting for the first snapshot" in texts[1]
        ask_line = texts[5]  # the best-ask line, just above the spread
        assert ask_line.split()[:3] == ["—", "—", "—"]
        assert "spread —" in texts[6] and "mid —" in texts[6]
        assert texts[7].split()[:3] == ["—", "—", "—"]
        assert "0.00" not in "".join(texts)


async def test_ladder_before_any_book_says_it_is_waiting(host: Callable[..., HostApp]) -> None:
    ladder = OrderBookLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        await pilot.pause()
        assert ladder.book is None
        assert "waiting for the first book" in line_texts(ladder)[1]


async def test_same_version_is_skipped(host: Callable[..., HostApp]) -> None:
    ladder = CountingLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        assert ladder.update_book(book(version=5))
        await pilot.pause()
        ladder.rendered.clear()
        ladder.refreshed.clear()
        assert not ladder.update_book(book(version=5))
        await pilot.pause()
        assert ladder.rendered == []
        assert ladder.refreshed == []


async def test_one_changed_level_repaints_one_line(host: Callable[..., HostApp]) -> None:
    ladder = CountingLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book(version=1))
        await pilot.pause()
        ladder.rendered.clear()
        ladder.refreshed.clear()
        # The deepest bid shrinks a little: its size and total change, nothing else does
        # (the bar scale stays at 10, so no other bar moves).
        deeper = (*BIDS[:3], (96.0, 3.5))
        assert ladder.update_book(book(version=2, bids=deeper))
        await pilot.pause()
        assert ladder.refreshed == [Region(0, 10, 60 - 2, 1)]
        assert sorted(set(ladder.rendered)) == [10]
        assert ladder.render_line(10).text.split()[:3] == ["96.00", "3.5000", "9.5000"]


async def test_a_change_at_the_best_ask_repaints_only_the_asks(
    host: Callable[..., HostApp],
) -> None:
    ladder = CountingLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book(version=1))
        await pilot.pause()
        ladder.rendered.clear()
        ladder.refreshed.clear()
        # Best ask 0.5 -> 0.75: every ask total moves (they accumulate from the best ask);
        # prices are the same, so the spread line and the bids stay as they are.
        ladder.update_book(book(version=2, asks=((101.0, 0.75), *ASKS[1:])))
        await pilot.pause()
        assert ladder.refreshed == [Region(0, 2, 58, 4)]
        assert sorted(set(ladder.rendered)) == [2, 3, 4, 5]


async def test_product_switch_repaints_everything(host: Callable[..., HostApp]) -> None:
    ladder = CountingLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book(version=1))
        await pilot.pause()
        ladder.rendered.clear()
        ladder.update_book(book(version=1, product_id="ETH-USD"))
        await pilot.pause()
        assert sorted(set(ladder.rendered)) == list(range(11))
        assert ladder.book is not None and ladder.book.product_id == "ETH-USD"


async def test_own_order_marker_is_drawn(host: Callable[..., HostApp]) -> None:
    ladder = CountingLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book())
        await pilot.pause()
        ladder.refreshed.clear()
        ladder.set_own_order_prices(frozenset({98.0}))
        ladder.set_own_order_prices(frozenset({98.0}))  # unchanged: no second refresh
        await pilot.pause()
        assert ladder.own_order_prices == frozenset({98.0})
        assert ladder.refreshed == [Region(0, 8, 58, 1)]
        assert ladder.render_line(8).text.startswith(OWN_ORDER_MARKER)
        assert not ladder.render_line(7).text.startswith(OWN_ORDER_MARKER)


async def test_crossing_the_bar_scale_repaints_every_bar(host: Callable[..., HostApp]) -> None:
    ladder = CountingLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book(version=1))
        await pilot.pause()
        ladder.refreshed.clear()
        # Total depth 10 -> 10.25 moves the scale from 10 to 20: every bar halves.
        ladder.update_book(book(version=2, bids=(*BIDS[:3], (96.0, 4.25))))
        await pilot.pause()
        assert ladder.refreshed == [Region(0, 2, 58, 4), Region(0, 7, 58, 4)]


async def test_both_sides_are_marked_for_the_same_frame(host: Callable[..., HostApp]) -> None:
    ladder = CountingLadder()
    async with host(ladder).run_test(size=(60, 13)) as pilot:
        ladder.update_book(book(version=1))
        await pilot.pause()
        ladder.refreshed.clear()
        # Both best prices move: best ask, spread and best bid lines form one run (5..7), all
        # marked by this one update (a ladder drawn half from each book can show it crossed).
        ladder.update_book(
            book(version=2, asks=((100.5, 0.5), *ASKS[1:]), bids=((99.5, 1.0), *BIDS[1:]))
        )
        assert ladder.refreshed == [Region(0, 5, 58, 3)]
        await pilot.pause()
        lines = [ladder.render_line(y).text for y in range(5, 8)]
        assert "100.50" in lines[0] and "99.50" in lines[2]
        assert "mid 100.000" in lines[1]


async def test_resize_relayouts_to_the_new_height(host: Callable[..., HostApp]) -> None:
    ladder = OrderBookLadder()
    app = host(ladder)
    async with app.run_test(size=(60, 13)) as pilot:
        ladder.update_book(book())
        await pilot.pause()
        assert len(ladder.rows) == 11
        await pilot.resize_terminal(60, 9)
        await pilot.pause()
        assert len(ladder.rows) == 7  # header, status, 2 asks, spread, 2 bids
        assert ladder.render_line(20).text.strip() == ""  # beyond the rows: blank


class PaintedLadder(OrderBookLadder):
    """Records every line it paints: (its size then, y, the text)."""

    def __init__(self) -> None:
        self.painted: list[tuple[Size, int, str]] = []
        super().__init__()

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        self.painted.append((self.size, y, strip.text))
        return strip


async def test_every_frame_paints_the_book_at_the_size_it_is_painted(
    host: Callable[..., HostApp],
) -> None:
    """A book given before the first layout, then a resize: Textual paints the frame after a
    layout before the ladder's Resize event arrives. Every line painted at a size must be the
    one a settled ladder shows at that size (never the one level a side of the unlaid-out
    ladder, nor rows built for the old size)."""
    ladder = PaintedLadder()
    ladder.update_book(book())  # not laid out yet
    async with host(ladder).run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        await pilot.resize_terminal(80, 12)
        await pilot.pause()
        await pilot.pause()
    sizes = sorted({size for size, _, _ in ladder.painted}, key=lambda size: size.width)
    assert [size.width for size in sizes] == [58, 78]  # inside the border
    shown: dict[tuple[Size, int], set[str]] = {}
    for size, y, text in ladder.painted:
        shown.setdefault((size, y), set()).add(text)
    assert all(len(texts) == 1 for texts in shown.values()), shown
    # All four levels a side in the very first frame at the first size.
    first = {text for size, _, text in ladder.painted if size == sizes[0]}
    assert any("104.00" in text for text in first) and any("96.00" in text for text in first)
