"""The balances panel: "balances —" before the first load, "—" for unknown, version-gated."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from textual.geometry import Region

from core.snapshot import BalanceView
from tests.widgets.helpers import HostApp, count_layout_passes, screen_lines
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


class LayoutCounting(BalancesPanel):
    """Records every refresh that asks for a layout pass."""

    def __init__(self) -> None:
        self.layouts = 0
        super().__init__()

    def refresh(self, *regions: Region, **options: bool) -> LayoutCounting:
        if options.get("layout"):
            self.layouts += 1
        super().refresh(*regions, **options)
        return self


async def test_new_figures_in_as_many_rows_need_no_layout(host: Callable[..., HostApp]) -> None:
    """A fill or a released hold changes figures, not the number of rows: the panel keeps
    its height, so the screen is not laid out again (a layout repaints every panel)."""
    panel = LayoutCounting()
    app = host(panel)
    async with app.run_test(size=(60, 10)) as pilot:
        panel.update_balances([BalanceView("USD", Decimal("1000"), Decimal("0"))], 1)
        await pilot.pause()
        before = panel.layouts
        panel.update_balances([BalanceView("USD", Decimal("990.5"), Decimal("9.5"))], 2)
        await pilot.pause()
        assert panel.layouts == before
        assert any("990.50" in line for line in screen_lines(app))
        # A new currency is a new row: that does change the height.
        panel.update_balances(
            [
                BalanceView("USD", Decimal("990.5"), Decimal("9.5")),
                BalanceView("BTC", Decimal("0.1"), Decimal("0")),
            ],
            3,
        )
        await pilot.pause()
        assert panel.layouts > before
        assert any("BTC" in line for line in screen_lines(app))


async def test_a_panel_the_screen_sizes_lays_nothing_out_for_new_rows(
    host: Callable[..., HostApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the main screen the panel's height is a share of its row (not its rows): the first
    load, a new currency, or loading again change nothing else on the screen, and no layout
    pass is asked for."""
    panel = BalancesPanel()
    panel.styles.height = "1fr"
    app = host(panel)
    async with app.run_test(size=(60, 10)) as pilot:
        panel.update_balances(None, 0)
        await pilot.pause()
        region = panel.region
        passes = count_layout_passes(monkeypatch)
        usd = BalanceView("USD", Decimal("1000"), Decimal("0"))
        btc = BalanceView("BTC", Decimal("0.1"), Decimal("0"))
        for version, balances in enumerate([[usd], [usd, btc], None, [btc]], start=1):
            panel.update_balances(balances, version)
            await pilot.pause()
            shown = "\n".join(screen_lines(app))
            for balance in balances or ():
                assert balance.currency in shown
            if balances is None:
                assert LOADING in shown
        assert passes == []
        assert panel.region == region
