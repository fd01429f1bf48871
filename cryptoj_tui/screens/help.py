"""The help screen: every key binding with what it does, generated from the bindings.

Nothing here is written by hand per key, so a binding added later (order entry, kill switch)
shows up in the help without anyone remembering to document it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static

from cryptoj_tui.screens.backdrop import DimmedModalScreen
from cryptoj_tui.screens.confirm import KILL_IN_SIGHT


@dataclass(frozen=True, slots=True)
class HelpRow:
    """One line of the help: the keys (e.g. "tab / p"), what they do, the binding id(s)."""

    keys: str
    description: str
    binding_ids: tuple[str, ...]


def help_rows(
    bindings: Iterable[BindingType], key_display: Callable[[Binding], str]
) -> list[HelpRow]:
    """One row per description, keys joined in the order they were bound.

    Bindings that share a description (e.g. "1" ... "9", "pick product by number") are one
    row, so the help stays short.
    """
    grouped: dict[str, tuple[list[str], list[str]]] = {}
    for binding in Binding.make_bindings(bindings):
        # The tooltip is the longer wording, when a binding has one (the footer shows the short).
        description = binding.tooltip or binding.description
        if not description:
            continue
        keys, ids = grouped.setdefault(description, ([], []))
        shown = key_display(binding)
        if shown not in keys:
            keys.append(shown)
        if binding.id and binding.id not in ids:
            ids.append(binding.id)
    return [
        HelpRow(_join_keys(keys), description, tuple(ids))
        for description, (keys, ids) in grouped.items()
    ]


def _join_keys(keys: list[str]) -> str:
    # A run of keys doing the same thing ("1" ... "9") reads better as a range.
    if len(keys) > 3:
        return f"{keys[0]} … {keys[-1]}"
    return " / ".join(keys)


class HelpScreen(DimmedModalScreen[None]):
    """A modal table of the keys. ``escape`` or ``?`` closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen > Vertical {
        width: 72;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        border-title-color: $accent;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #help-scroll { height: auto; max-height: 1fr; }
    HelpScreen Static.hint { color: $text-muted; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close help", id="help.close"),
        KILL_IN_SIGHT,
        Binding("question_mark", "close", "Close help", show=False, id="help.close_question"),
    ]

    def __init__(self, rows: Sequence[HelpRow]) -> None:
        super().__init__()
        self.rows = tuple(rows)

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=False, show_header=True, header_style="bold")
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action")
        for row in self.rows:
            table.add_row(row.keys, row.description)
        with Vertical() as box:
            box.border_title = "Keys"
            # Scrolls when the terminal is too short for every key (80x24).
            with VerticalScroll(id="help-scroll"):
                yield Static(table, id="help-table")
            yield Static(
                "ctrl+p opens the command palette for less common actions. escape closes this.",
                classes="hint",
            )
        # This screen's keys, not the main screen's (whose footer would show beneath).
        yield Footer(show_command_palette=False)

    def action_close(self) -> None:
        self.dismiss(None)
