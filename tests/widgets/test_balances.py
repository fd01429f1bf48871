"""The balances panel: "balances —" before the first load, "—" for unknown, version-gated."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from core.snapshot import BalanceView
from tests.widgets.helpers import HostApp
from widgets.balances import LOADING, BalancesPanel, balance_rows


def test_balance_rows_format_by_currency() -> None:
    rows = balance_rows(
        [
            BalanceView("USD", Decimal("25000"), Decimal("1250.5")),
            BalanceView("BTC", Decimal("0.4125"), Decimal("0")),
            BalanceView("SOL", Decimal("12"), None),
        ]
    )
    assert rows == [
        ("USD", "25,000.00", "1,250.50", "26,250.50"),
        ("BTC", "0.41250000", "0.00000000", "0.41250000"),
        ("SOL", "12.00000000", "—", "—"),
    ]


async def test_panel_loading_then_table(host: Callable[..., HostApp]) -> None:
    panel = BalancesPanel()
    async with host(panel).run_test(size=(60, 10)) as pilot:
        assert panel.rows is None
        assert panel.update_balances(None, 0)
        assert not panel.update_balances(None, 0)
        await pilot.pause()
        assert str(panel.render()) == LOADING
        balances = [BalanceView("USD", Decimal("10"), Decimal("0"))]
        assert panel.update_balances(balances, 1)
        assert not panel.update_balances(balances, 1)  # same version: no rebuild
        await pilot.pause()
        assert panel.rows == [("USD", "10.00", "0.00", "10.00")]
        assert panel.update_balances([BalanceView("USD", Decimal("11"), Decimal("0"))], 2)
        assert panel.rows == [("USD", "11.00", "0.00", "11.00")]
        # Balances can become unknown again (e.g. after a reconnect): back to loading.
        assert panel.update_balances(None, 3)
        assert panel.rows is None
