"""The open orders table: the columns, rebuilt only on a new version, selection kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from textual.strip import Strip

from core.model import ExchangeOrder, ExchangeOrderStatus, Side
from tests.widgets.helpers import HostApp, count_layout_passes, make_order, screen_lines
from widgets.open_orders import COLUMNS, OpenOrdersTable, columns_that_fit, order_cells


def test_order_cells() -> None:
    order = make_order(1, side=Side.SELL, price="64250.5", size="0.5000")
    assert order_cells(order) == (
        "BTC-USD",
        "SELL",
        "LIMIT",
        "64,250.5",
        "",
        "0.5000",
        "0.1000",
        "OPEN",
    )
    assert len(order_cells(order)) == len(COLUMNS)
    market = make_order(2, price=None)
    assert order_cells(market)[3] == "—"


async def test_rows_follow_versions_and_keep_the_selection(
    host: Callable[..., HostApp],
) -> None:
    table = OpenOrdersTable()
    orders = [make_order(1), make_order(2), make_order(3)]
    async with host(table).run_test(size=(90, 10)) as pilot:
        assert table.update_orders(orders, 1)
        await pilot.pause()
        assert table.row_count == 3
        assert not table.update_orders([], 1)  # same version: nothing happens
        assert table.row_count == 3
        table.focus()
        await pilot.press("down")
        assert table.selected_order is not None
        assert table.selected_order.order_id == "order-2"
        # A new version with order-1 gone: the cursor stays on order-2 (now the first row).
        cancelling = make_order(2, status=ExchangeOrderStatus.CANCEL_QUEUED)
        assert table.update_orders([cancelling, make_order(3)], 2)
        await pilot.pause()
        assert table.row_count == 2
        assert table.selected_order is not None
        assert table.selected_order.order_id == "order-2"
        assert table.get_row_at(0)[-1] == "CANCEL_QUEUED"
        assert table.update_orders([], 3)
        assert table.selected_order is None


def stop_limit(number: int) -> object:
    return replace(
        make_order(number, price="64000.00"),
        order_type="STOP_LIMIT",
        stop_price=Decimal("63990.50"),
    )


def test_a_stop_limit_shows_its_stop_price() -> None:
    cells = order_cells(stop_limit(1))  # type: ignore[arg-type]
    assert cells[COLUMNS.index("stop")] == "63,990.50"
    assert cells[COLUMNS.index("type")] == "STOP_LIMIT"


@pytest.mark.parametrize("width", range(0, 90))
def test_narrow_widths_drop_whole_columns_by_priority(width: int) -> None:
    rows = [order_cells(stop_limit(1)), order_cells(make_order(2))]  # type: ignore[arg-type]
    shown = columns_that_fit(rows, width)
    needed = {
        column: max(len(column), *(len(row[COLUMNS.index(column)]) for row in rows)) + 2
        for column in COLUMNS
    }
    assert sum(needed[column] for column in shown) <= width  # every shown column is whole
    order = ["side", "price", "size", "product", "type", "stop", "status", "filled"]
    assert list(shown) == [c for c in COLUMNS if c in order[: len(shown)]]  # a priority prefix


def test_the_stop_column_is_left_out_when_no_order_has_a_stop() -> None:
    assert "stop" not in columns_that_fit([order_cells(make_order(1))], 200)
    assert "stop" in columns_that_fit([order_cells(stop_limit(1))], 200)  # type: ignore[arg-type]


@pytest.mark.parametrize("width", [30, 45, 60, 80, 120])
async def test_no_header_is_ever_cut(host: Callable[..., HostApp], width: int) -> None:
    table = OpenOrdersTable()
    orders = [stop_limit(1), make_order(2, status=ExchangeOrderStatus.CANCEL_QUEUED)]
    async with host(table).run_test(size=(width, 10)) as pilot:
        table.update_orders(orders, 1)  # type: ignore[arg-type]
        await pilot.pause()
        header = table.render_line(0).text
        for column in table.shown_columns:
            assert f" {column} " in f"{header} "  # whole titles only
        total = sum(column.get_render_width(table) for column in table.ordered_columns)
        assert total <= table.scrollable_content_region.width
        if table.hidden_columns:
            note = table.border_subtitle
            assert note.startswith("hidden: ") or note.endswith("columns hidden")
            assert len(note) <= width - 6
        else:
            assert table.border_subtitle == ""
        if width >= 120:
            assert table.shown_columns == COLUMNS


def sized_orders(count: int) -> list[ExchangeOrder]:
    """``count`` orders told apart by their size: order n is n.5 BTC."""
    return [make_order(number, size=f"{number}.5000") for number in range(count)]


async def test_orders_coming_and_going_lay_nothing_out(
    host: Callable[..., HostApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first order, fills, cancels: the table's size is the screen's, so rows coming and
    going change only what is inside it, and the screen is never laid out again (a layout
    pass stalls the engine's loop 10-25 ms)."""
    table = OpenOrdersTable()
    app = host(table)
    async with app.run_test(size=(90, 10)) as pilot:
        await pilot.pause()
        region = table.region
        passes = count_layout_passes(monkeypatch)
        # 10 lines: the border, the column titles and room for 7 orders.
        for version, count in enumerate([1, 3, 7, 2, 0, 5], start=1):
            assert table.update_orders(sized_orders(count), version)
            await pilot.pause()
            assert table.row_count == count
            shown = "\n".join(screen_lines(app))
            assert all(f"{number}.5000" in shown for number in range(count))
            assert f"{count}.5000" not in shown
        assert passes == []
        assert table.region == region
        assert not table.show_vertical_scrollbar


async def test_more_orders_than_rows_scroll_inside_the_table(
    host: Callable[..., HostApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders that do not fit are reached by scrolling the table (a scrollbar says so); the
    table keeps its size, and new figures in as many rows lay nothing out."""
    table = OpenOrdersTable()
    app = host(table)
    async with app.run_test(size=(90, 10)) as pilot:
        await pilot.pause()
        region = table.region
        assert table.update_orders(sized_orders(20), 1)
        await pilot.pause()
        assert table.show_vertical_scrollbar
        assert table.region == region
        table.focus()
        table.move_cursor(row=19, animate=False)
        await pilot.pause()
        assert any("19.5000" in line for line in screen_lines(app))
        passes = count_layout_passes(monkeypatch)
        filled = [replace(order, filled_size=Decimal("0.2500")) for order in sized_orders(20)]
        assert table.update_orders(filled, 2)
        await pilot.pause()
        assert passes == []
        assert table.row_count == 20
        assert table.get_row_at(19)[-2] == "0.2500"
        # Every shown column is whole beside the scrollbar (nothing cut).
        total = sum(column.get_render_width(table) for column in table.ordered_columns)
        assert total <= table.scrollable_content_region.width


class PaintCounting(OpenOrdersTable):
    """Counts the lines Textual asks it to paint."""

    painted = 0

    def render_line(self, y: int) -> Strip:
        self.painted += 1
        return super().render_line(y)


async def test_a_new_version_of_the_same_orders_repaints_nothing(
    host: Callable[..., HostApp],
) -> None:
    """The engine moves the orders' version at a reconcile too: the same orders are not
    rebuilt (a rebuild repaints the whole table), and a changed one is."""
    table = PaintCounting()
    async with host(table).run_test(size=(90, 10)) as pilot:
        assert table.update_orders(sized_orders(2), 1)
        await pilot.pause()
        assert table.painted
        table.painted = 0
        assert not table.update_orders(sized_orders(2), 2)
        await pilot.pause()
        await pilot.pause()
        assert table.painted == 0
        assert not table.update_orders(sized_orders(2), 2)  # the version is taken as shown
        filled = [replace(order, filled_size=Decimal("0.2500")) for order in sized_orders(2)]
        assert table.update_orders(filled, 3)
        await pilot.pause()
        assert table.painted
        assert table.get_row_at(0)[-2] == "0.2500"
