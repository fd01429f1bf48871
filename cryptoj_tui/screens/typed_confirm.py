"""A confirmation that must be typed: resuming trading after a halt ("RESUME").

A key press can be an accident; typing a word cannot. The screen is dismissed with the typed
word only when it matches exactly, None on escape. Whoever acts on it may check again (the
engine's resume does).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Input, Static

from cryptoj_tui.screens.backdrop import DimmedModalScreen
from cryptoj_tui.screens.confirm import KILL_IN_SIGHT
from cryptoj_tui.screens.in_order_input import InOrderInput


class TypedConfirmScreen(DimmedModalScreen[str | None]):
    """Ask the trader to type ``word``; dismissed with it, or None on escape."""

    DEFAULT_CSS = """
    TypedConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    TypedConfirmScreen > Vertical {
        width: 72;
        max-width: 95%;
        height: auto;
        border: thick $warning;
        border-title-color: $warning;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    TypedConfirmScreen #question { margin: 1 0; }
    TypedConfirmScreen #typed-error { color: $error; height: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="typed_confirm.cancel"),
        KILL_IN_SIGHT,
    ]

    def __init__(self, title: str, question: str, word: str, *, cursor_blink: bool = True) -> None:
        super().__init__()
        if not word:
            raise ValueError("the word to type must not be empty")
        self.title_text = title
        self.question = question
        self.word = word
        self.cursor_blink = cursor_blink

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.question, id="question")
            yield InOrderInput(
                placeholder=f"type {self.word} and press enter",
                id="typed",
                compact=True,
            )
            yield Static("", id="typed-error")
        # This screen's keys, not the main screen's (whose footer would show beneath).
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        typed = self.query_one("#typed", Input)
        typed.cursor_blink = self.cursor_blink
        typed.focus()

    @property
    def error(self) -> str:
        return str(self.query_one("#typed-error", Static).content)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip() == self.word:
            self.dismiss(self.word)
            return
        self.query_one("#typed-error", Static).update(
            f"type {self.word} exactly (capitals), or press escape to cancel"
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
