"""A reusable confirmation modal: a question, a few answers, one key per answer.

Dismissed with the chosen answer's ``value``, or None on escape. Used for flatten ("Flatten
every position?"), the LIVE order confirmation, and quitting LIVE with open orders (three
answers). The safe answer is focused first, so a stray enter never confirms a flatten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Static

from cryptoj_tui.screens.backdrop import DimmedModalScreen

ButtonVariant = Literal["default", "primary", "success", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer: what the screen returns, the button's label, the key that picks it."""

    value: str
    label: str
    key: str
    variant: ButtonVariant = "default"


YES = "yes"
NO = "no"

# The kill switch is an App priority binding and works over every dialog, but a modal's
# footer shows only the modal's keys: each dialog lists it too, so it is always in sight.
# (The App's priority binding acts first; this one is there to be seen.)
KILL_IN_SIGHT = Binding("ctrl+k", "app.kill", "KILL", tooltip="Kill switch", show=True)


def yes_no(yes_label: str = "Yes", no_label: str = "No") -> tuple[Choice, Choice]:
    """A dangerous "yes" (y) and a safe "no" (n)."""
    return (Choice(YES, yes_label, "y", "error"), Choice(NO, no_label, "n", "primary"))


class ConfirmScreen(DimmedModalScreen[str | None]):
    """Ask ``question``; dismissed with the picked :class:`Choice` value, None on escape."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    ConfirmScreen > Vertical {
        width: 72;
        max-width: 95%;
        height: auto;
        border: thick $warning;
        border-title-color: $warning;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    ConfirmScreen.-danger > Vertical { border: thick $error; border-title-color: $error; }
    ConfirmScreen #question { margin: 1 0; }
    ConfirmScreen #choices { height: auto; align: center middle; }
    ConfirmScreen #choices Button { margin: 0 1; }
    ConfirmScreen.-stacked #choices { layout: vertical; }
    ConfirmScreen.-stacked #choices Button { width: 100%; margin: 0 0 0 0; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm.cancel"),
        KILL_IN_SIGHT,
        Binding("left", "app.focus_previous", "Previous answer", show=False, id="confirm.left"),
        Binding("right", "app.focus_next", "Next answer", show=False, id="confirm.right"),
    ]

    def __init__(
        self,
        title: str,
        question: str,
        choices: Sequence[Choice] = yes_no(),
        *,
        safe: str | None = NO,
        danger: bool = False,
    ) -> None:
        super().__init__(classes="-danger" if danger else None)
        if not choices:
            raise ValueError("a confirmation needs at least one choice")
        self.title_text = title
        self.question = question
        self.choices = tuple(choices)
        values = [choice.value for choice in self.choices]
        self.safe = safe if safe in values else values[-1]

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield Static(self.question, id="question")
            with Horizontal(id="choices"):
                for choice in self.choices:
                    yield Button(
                        f"{choice.label} ({choice.key})",
                        id=f"choice-{choice.value}",
                        variant=choice.variant,
                        compact=True,
                    )
        # The dialog's own keys: the main screen's footer below would offer keys that do
        # nothing while the dialog is open.
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.safe}", Button).focus()
        self.call_after_refresh(self._fit_choices)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_choices)

    def _fit_choices(self) -> None:
        # Never a cut button ("Stay (s"): when the answers do not fit side by side, one a line.
        room = self.query_one("#choices").scrollable_content_region.width
        if room:
            self.set_class(self.choices_width > room, "-stacked")

    @property
    def stacked(self) -> bool:
        return self.has_class("-stacked")

    @property
    def choices_width(self) -> int:
        """Cells the answers need side by side: each label, its padding and its margins."""
        return sum(len(f"{choice.label} ({choice.key})") + 2 + 2 for choice in self.choices)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button_id = event.button.id or ""
        self.dismiss(button_id.removeprefix("choice-"))

    def on_key(self, event: events.Key) -> None:
        for choice in self.choices:
            if event.key == choice.key:
                event.stop()
                self.dismiss(choice.value)
                return

    def action_cancel(self) -> None:
        self.dismiss(None)
