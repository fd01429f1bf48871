"""The balances panel: currency, available, hold and total for each account.

Balances change a few times a minute, so a small Rich table in a ``Static`` is plenty; it is
rebuilt only when the snapshot's ``balances_version`` moves. Before the first load the panel
says "balances — (not loaded yet)"; a value that is not known is "—", never 0.

Where the screen gives the panel its height (the main screen: a share of its row), new rows
change nothing of the screen's layout, and none is asked for: a layout of the whole screen
costs 10-25 ms of the engine's loop. Only a panel as tall as its rows (``height: auto``, as in
the narrow terminal's "more panels" view) asks for one when the number of rows changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from textual.widgets import Static

from core.snapshot import BalanceView
from widgets.format import currency_decimals, format_decimal
from widgets.line_cache import KeptLines

LOADING = "balances — (not loaded yet)"


def balance_rows(balances: Sequence[BalanceView]) -> list[tuple[str, str, str, str]]:
    """(currency, available, hold, total) texts, in the order given."""
    rows = []
    for balance in balances:
        places = currency_decimals(balance.currency)
        rows.append(
            (
                balance.currency,
                format_decimal(balance.available, places),
                format_decimal(balance.hold, places),
                format_decimal(balance.total, places),
            )
        )
    return rows


class BalancesPanel(KeptLines, Static):
    """Account balances. Feed it with :meth:`update_balances`."""

    DEFAULT_CSS = """
    BalancesPanel {
        height: auto;
        max-height: 12;
        min-height: 4;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(LOADING, name=name, id=id)
        self.border_title = "Balances"
        self._version: int | None = None
        self._rows: list[tuple[str, str, str, str]] | None = None
        self._shown_rows = -1  # rows drawn (-1: the loading line)

    @property
    def rows(self) -> list[tuple[str, str, str, str]] | None:
        """The texts shown, or None while loading."""
        return self._rows

    def update_balances(self, balances: Sequence[BalanceView] | None, version: int) -> bool:
        """Show ``balances`` (None: not loaded yet); no work when ``version`` is already shown."""
        if balances is None:
            if self._rows is None and self._version is not None:
                return False
            self._version = version
            self._rows = None
            self.update(LOADING, layout=self._height_follows_rows and self._shown_rows != -1)
            self._shown_rows = -1
            return True
        if self._rows is not None and version == self._version:
            return False
        self._version = version
        self._rows = balance_rows(balances)
        table = Table(box=None, expand=False, pad_edge=False, padding=(0, 1))
        table.add_column("asset", style="bold", no_wrap=True)
        for title in ("available", "hold", "total"):
            table.add_column(title, justify="right", no_wrap=True)
        for row in self._rows:
            table.add_row(*row)
        # New figures in as many rows keep the panel's height: no layout pass (a layout of the
        # whole screen at every fill or released hold, the kill switch's among them).
        self.update(table, layout=self._height_follows_rows and len(self._rows) != self._shown_rows)
        self._shown_rows = len(self._rows)
        return True

    @property
    def _height_follows_rows(self) -> bool:
        """Whether the panel is as tall as its rows (``height: auto``): only then does a new
        number of rows move anything on the screen."""
        height = self.styles.height
        return height is None or height.is_auto
