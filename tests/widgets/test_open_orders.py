"""The open orders table: the columns, rebuilt only on a new version, selection kept."""

from __future__ import annotations

from collections.abc import Callable

from core.model import ExchangeOrderStatus, Side
from tests.widgets.helpers import HostApp, make_order
from widgets.open_orders import COLUMNS, OpenOrdersTable, order_cells


def test_order_cells() -> None:
    order = make_order(1, side=Side.SELL, price="64250.5", size="0.5000")
    assert order_cells(order) == (
        "BTC-USD",
        "SELL",
        "LIMIT",
        "64,250.5",
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
