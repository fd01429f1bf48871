"""The order ticket: a modal to buy or sell the selected product.

Type (market, limit, stop-limit), size, price, stop, time in force (with an end time for GTD)
and post-only. Every change is checked by ``core.ticket`` (one message under each bad field)
and, once the fields are good, by the risk gate's ``preview`` (the gate's decision is shown
before anything is sent; the preview does not spend the order-rate budget). Enter sends; in
LIVE a confirmation names the order and its notional first. The screen returns the
``OrderIntent``; the App submits it, so nothing here waits on the network.

The kill switch is an App priority binding, so ctrl+k works here too, even with the size
field focused (where ctrl+k would otherwise delete to the end of the line).

One ticket serves every order: ``prepare`` turns it into a fresh ticket for a side, a product
and a price (every field back to its start value), so the App can build and compose it once,
at idle after start-up, and show it within a frame of ``b`` or ``s`` instead of composing its
dozen widgets (and their styles) while the trader waits. Built ahead, it is mounted a part at a
time, so the engine sharing the loop is never held for long (see
``OrderTicketScreen.mount_composed_widgets``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from textual.app import ComposeResult, ScreenStackError
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.css.stylesheet import Stylesheet
from textual.widget import MountError, Widget
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static
from textual.widgets._footer import FooterKey
from textual.widgets._select import SelectCurrent, SelectOverlay
from textual.widgets.input import Selection

from core.denials import Denial
from core.model import OrderIntent, OrderType, Product, Side, TimeInForce, decimal_str
from core.snapshot import Mode
from core.ticket import (
    TicketCheck,
    TicketEntry,
    TicketField,
    check_ticket,
    describe_spec,
    manual_intent,
    parse_number,
)
from cryptoj_tui.screens.backdrop import DimmedModalScreen
from cryptoj_tui.screens.confirm import KILL_IN_SIGHT, YES, ConfirmScreen, yes_no
from cryptoj_tui.screens.in_order_input import InOrderInput
from widgets.format import format_number

Preview = Callable[[OrderIntent], Denial | None]

TYPE_OPTIONS: tuple[tuple[str, OrderType], ...] = (
    ("market", OrderType.MARKET),
    ("limit", OrderType.LIMIT),
    ("stop-limit", OrderType.STOP_LIMIT),
)
TIME_IN_FORCE_OPTIONS: tuple[tuple[str, TimeInForce], ...] = (
    ("GTC  good until cancelled", TimeInForce.GTC),
    ("GTD  good until a time", TimeInForce.GTD),
    ("IOC  immediate or cancel", TimeInForce.IOC),
    ("FOK  fill or kill", TimeInForce.FOK),
)
# The widget id of each field (its error line is "<id>-error").
FIELD_IDS: dict[TicketField, str] = {
    TicketField.TYPE: "type",
    TicketField.SIZE: "size",
    TicketField.PRICE: "price",
    TicketField.STOP: "stop",
    TicketField.TIME_IN_FORCE: "tif",
    TicketField.END_TIME: "end",
    TicketField.POST_ONLY: "post-only",
}


# The fields' rows, by widget id (each is "<id>-row").
ROW_IDS: tuple[str, ...] = ("type", "size", "price", "stop", "tif", "end", "post-only")


def hidden_rows(order_type: OrderType, time_in_force: TimeInForce) -> frozenset[str]:
    """The rows (widget ids) that do not apply to an order of this type and time in force."""
    market = order_type is OrderType.MARKET
    hidden: set[str] = set()
    if market:
        # A market order is IOC and takes liquidity by definition: time in force and
        # post-only do not apply, so they are not shown (and post-only is switched off).
        hidden.update(("price", "tif", "post-only"))
    if order_type is not OrderType.STOP_LIMIT:
        hidden.add("stop")
    if market or time_in_force is not TimeInForce.GTD:
        hidden.add("end")
    return frozenset(hidden)


# The numeric fields, each with its parsed value shown beside it ("= 0.5 BTC"), so a typed
# "0,5" is seen as 0.5 before anything is sent.
NUMERIC_FIELD_IDS: tuple[str, ...] = ("size", "price", "stop")


class TicketInput(InOrderInput, inherit_bindings=False):
    """An Input without its own ctrl+k (delete to the end of the line), whose editing keys act
    in the order typed (see cryptoj_tui/screens/in_order_input.py).

    ctrl+k is the kill switch, an App priority binding that acts first anyway; without the
    Input's binding in the way, the ticket's footer shows "^k KILL" while a field is focused.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        binding
        for binding in Input.BINDINGS
        if not (isinstance(binding, Binding) and binding.key == "ctrl+k")
    ]


class TicketSelect(Select[Any]):
    """A Select that shrugs off being closed while it mounts.

    The App builds its ticket at idle, off screen (see ``prepare``); if the App quits in the
    same moment, Textual's Select sets its start value while its own parts are being removed
    and fails on the missing label. Nothing is shown then, so there is nothing to update.
    """

    def _watch_value(self, value: Any) -> None:
        with contextlib.suppress(NoMatches):
            super()._watch_value(value)


class OnOffCheckbox(Checkbox):
    """A checkbox whose off state reads off: "[x] on" against "[ ] off", not a colour change.

    Textual's Checkbox draws the same ``X`` in both states (only its colour changes), so an
    unchecked post-only looked checked and "maker only" orders went out as takers.
    """

    def __init__(self, on_text: str, off_text: str, **options: object) -> None:
        super().__init__(on_text, **options)  # type: ignore[arg-type]
        self.on_text = on_text
        self.off_text = off_text

    def render(self) -> Content:
        style = self.get_visual_style("toggle--label")
        if self.value:
            return Content.assemble(("[x] on ", "bold $success"), (f" {self.on_text}", style))
        return Content.assemble(("[ ] off", "$text-muted"), (f" {self.off_text}", style))

    def get_content_width(self, container: object, viewport: object) -> int:
        return 8 + max(len(self.on_text), len(self.off_text))

    def watch_value(self) -> None:
        self.refresh()


# The ticket's widget classes (and those Textual's Select and Footer compose inside them), in
# the order they first appear. Textual parses a class's CSS when its first widget is
# registered, 2-7 ms each (Button's the longest), which would land on top of mounting that
# widget's part: the main screen has them parsed a class a turn while the engine connects
# (parse_ticket_styles), and a ticket built ahead parses what is still missing the same way
# before it mounts its parts (see OrderTicketScreen.mount_composed_widgets).
STYLED_CLASSES: tuple[type[Widget], ...] = (
    Horizontal,
    Label,
    TicketSelect,
    SelectCurrent,
    SelectOverlay,
    TicketInput,
    OnOffCheckbox,
    Button,
    Footer,
    FooterKey,
)


def parse_default_css(stylesheet: Stylesheet, widget_class: type[Widget]) -> bool:
    """Add ``widget_class``'s default CSS (its own and its bases') to ``stylesheet`` and parse
    it, as registering its first widget would; returns whether there was any to parse.

    Registering that widget later finds the same text under the same name and adds nothing.
    """
    # Textual's own list of a widget's default CSS, which reads only the class (textual is
    # pinned in pyproject.toml; tests/tui/test_ticket_built_in_steps.py checks the outcome).
    bare = widget_class.__new__(widget_class)
    added = False
    for location, css, tie_breaker, scope in bare._get_default_css():
        if not stylesheet.has_source(*location):
            stylesheet.add_source(
                css, read_from=location, is_default_css=True, tie_breaker=tie_breaker, scope=scope
            )
            added = True
    if added:
        stylesheet.parse()
    return added


async def parse_ticket_styles(stylesheet: Stylesheet) -> None:
    """Parse the default CSS of the ticket and its widgets, a class a turn of the loop (the
    engine's callbacks run between two), so that building the ticket parses none."""
    classes: tuple[type[Widget], ...] = (OrderTicketScreen, *STYLED_CLASSES)
    for widget_class in classes:
        if parse_default_css(stylesheet, widget_class):
            await asyncio.sleep(0)


class OrderTicketScreen(DimmedModalScreen[OrderIntent | None]):
    """Buy or sell ``product``. Dismissed with the intent to submit, or None."""

    DEFAULT_CSS = """
    OrderTicketScreen {
        align: center middle;
        background: $background 50%;
    }
    OrderTicketScreen > #ticket {
        width: 76;
        max-width: 98%;
        height: auto;
        max-height: 100%;
        border: thick $success;
        border-title-color: $success;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        background: $surface;
        padding: 0 1;
    }
    OrderTicketScreen.-sell > #ticket { border: thick $error; border-title-color: $error; }
    OrderTicketScreen.-live > #ticket { border-subtitle-color: white; border-subtitle-background: red; }
    OrderTicketScreen .row { height: 1; margin-top: 1; }
    OrderTicketScreen.-short .row { margin-top: 0; }
    OrderTicketScreen .row > Label { width: 15; color: $text-muted; }
    OrderTicketScreen .row > Input, OrderTicketScreen .row > Select { width: 1fr; }
    OrderTicketScreen .row > .parsed { width: 26; padding-left: 1; color: $text; }
    OrderTicketScreen #post-only { border: none; height: 1; padding: 0; background: $surface; }
    OrderTicketScreen .error { height: auto; color: $error; padding-left: 15; display: none; }
    OrderTicketScreen .error.-shown { display: block; }
    OrderTicketScreen .-hidden { display: none; }
    OrderTicketScreen #gate { height: auto; margin-top: 1; }
    OrderTicketScreen #gate.-allowed { color: $success; }
    OrderTicketScreen #gate.-denied { color: $error; text-style: bold; }
    OrderTicketScreen #buttons { height: 1; margin-top: 1; align: right middle; }
    OrderTicketScreen #buttons Button { margin-left: 2; }
    """

    # The size field takes the keys from the first frame (not the type select, the first
    # focusable widget): keys typed while the ticket opened are replayed into focus.
    AUTO_FOCUS = "#size"

    # Below 30 lines the ticket drops its blank lines so it fits an 80x24 terminal.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # noqa: RUF012

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close ticket", id="ticket.cancel"),
        KILL_IN_SIGHT,
        Binding("ctrl+s", "submit", "Send order", id="ticket.submit"),
    ]

    def __init__(
        self,
        side: Side,
        product: Product,
        *,
        mode: Mode,
        preview: Preview,
        now: Callable[[], float],
        price: Decimal | None = None,
        size: str = "",
        order_type: OrderType = OrderType.LIMIT,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__(classes="-live" if mode == Mode.LIVE else "")
        self.mode = mode
        self._preview = preview
        self._now = now
        self._cursor_blink = cursor_blink
        self._mounted = False
        # A ticket built ahead: what makes the parts compose leaves to mount_composed_widgets.
        self._parts_to_mount: list[Callable[[], Sequence[Widget]]] = []
        self.prepare(side, product, price=price, size=size, order_type=order_type)

    def prepare(
        self,
        side: Side,
        product: Product,
        *,
        price: Decimal | None = None,
        size: str = "",
        order_type: OrderType = OrderType.LIMIT,
    ) -> None:
        """Make this a fresh ticket for ``side`` and ``product``: every field back to its
        start value (nothing typed into an earlier order survives), the size field focused."""
        self.side = side
        self.product = product
        self._initial_price = "" if price is None else format(price, "f")
        self._initial_size = size
        self._initial_type = order_type
        self.check: TicketCheck | None = None
        self.denial: Denial | None = None
        self.gate_text = ""
        self.set_class(side is Side.SELL, "-sell")
        self.set_class(side is Side.BUY, "-buy")
        if self._mounted:  # else compose and on_mount show it
            self._show_fresh_fields()

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self in self.app.screen_stack:  # to be shown now: every part at once
            box = Vertical(*(w for make in self._part_makers() for w in make()), id="ticket")
        else:  # built ahead, off screen: the parts are made and mounted one by one (below)
            box = Vertical(id="ticket")
            self._parts_to_mount = self._part_makers()
        box.border_title = f"{self.side.value} {self.product.product_id}"
        box.border_subtitle = f" {self.mode.upper()} "
        yield box
        if not self._parts_to_mount:
            yield self._footer()

    async def mount_composed_widgets(self, widgets: list[Widget]) -> None:
        """Mount what ``compose`` made; a ticket built ahead makes and mounts its parts one
        by one.

        Built ahead, the ticket is composed while the book streams, on the loop the engine
        shares (docs/design.md §5). Its dozens of widgets made and mounted at once kept that
        loop busy for 30-80 ms in one go (and all their first steps were ready in the same
        turn of the loop); one part (a row) at a time, each turn does a few milliseconds of
        it and the engine's callbacks run in between. Nothing is drawn meanwhile (the ticket
        is not on screen), and the screen's own ``on_mount`` (the fresh fields, the focus)
        comes after the last part.
        """
        await super().mount_composed_widgets(widgets)
        makers, self._parts_to_mount = self._parts_to_mount, []
        if not makers:
            return
        box = self.query_one("#ticket", Vertical)
        await parse_ticket_styles(self.app.stylesheet)  # nothing left, once the App did it
        # Torn down while built (the App quitting: its screens gone, this one closing):
        # nothing is shown, so the rest is not mounted.
        with contextlib.suppress(ScreenStackError, MountError):
            for make in makers:
                if not box.is_attached or self._closing or box._closing:
                    return
                await box.mount_all(make())
            if self.is_attached and not self._closing:
                await self.mount(self._footer())

    def _footer(self) -> Footer:
        # This screen's keys, not the main screen's (whose footer would show beneath).
        return Footer(show_command_palette=False)

    def _part_makers(self) -> list[Callable[[], Sequence[Widget]]]:
        """What makes the ticket's parts, top to bottom: each field's row and error line,
        the gate line, the buttons."""
        quote = self._quote
        return [
            lambda: self._row(
                "type",
                TicketSelect(
                    TYPE_OPTIONS,
                    value=self._initial_type,
                    allow_blank=False,
                    compact=True,
                    id="type",
                ),
            ),
            lambda: self._row(
                "size",
                self._input("size", self._initial_size, f"{self.product.base_currency}, e.g. 0.01"),
            ),
            lambda: self._row(
                "price", self._input("price", self._initial_price, f"limit price in {quote}")
            ),
            lambda: self._row("stop", self._input("stop", "", f"stop price in {quote} (triggers)")),
            lambda: self._row(
                "time in force",
                TicketSelect(
                    TIME_IN_FORCE_OPTIONS,
                    value=TimeInForce.GTC,
                    allow_blank=False,
                    compact=True,
                    id="tif",
                ),
            ),
            lambda: self._row("end time", self._input("end", "", "30m, 2h, 1d or ISO time")),
            lambda: self._row(
                "post-only",
                OnOffCheckbox(
                    "maker only: never takes", "may take liquidity (taker fee)", id="post-only"
                ),
            ),
            lambda: (Static("", id="gate"),),
            lambda: (
                Horizontal(
                    Button(
                        f"{self.side.value.capitalize()} (enter)",
                        id="submit",
                        variant="success" if self.side is Side.BUY else "error",
                        compact=True,
                    ),
                    Button("Cancel (esc)", id="cancel", compact=True),
                    id="buttons",
                ),
            ),
        ]

    @property
    def _quote(self) -> str:
        return self.product.quote_currency

    def _input(self, widget_id: str, value: str, placeholder: str) -> Input:
        return TicketInput(value=value, placeholder=placeholder, id=widget_id, compact=True)

    def _row(self, label: str, widget: Widget) -> tuple[Widget, Widget]:
        """A field's row (its label, the field, its parsed value if numeric) and its error
        line."""
        widget_id = widget.id or ""
        parsed = (
            [Static("", classes="parsed", id=f"{widget_id}-parsed")]
            if widget_id in NUMERIC_FIELD_IDS
            else []
        )
        # Shown or hidden from the start as on_mount would set it (a change of class there
        # restyles the row: milliseconds of the loop, for a ticket built ahead).
        hidden = widget_id in hidden_rows(self._initial_type, TimeInForce.GTC)
        classes = "row -hidden" if hidden else "row"
        row = Horizontal(Label(label), widget, *parsed, classes=classes, id=f"{widget_id}-row")
        return row, Static("", classes="error", id=f"{widget_id}-error")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self._cursor_blink
        self._mounted = True
        try:
            self._show_fresh_fields()
        except NoMatches:
            # Built ahead and torn down by a quit in the same moment: nothing to show.
            self._mounted = False

    def _show_fresh_fields(self) -> None:
        """The fields, titles and button of the order ``prepare`` set up, checked."""
        box = self.query_one("#ticket", Vertical)
        box.border_title = f"{self.side.value} {self.product.product_id}"
        box.border_subtitle = f" {self.mode.upper()} "
        button = self.query_one("#submit", Button)
        button.label = f"{self.side.value.capitalize()} (enter)"
        button.variant = "success" if self.side is Side.BUY else "error"
        fields = {
            "size": (self._initial_size, f"{self.product.base_currency}, e.g. 0.01"),
            "price": (self._initial_price, f"limit price in {self._quote}"),
            "stop": ("", f"stop price in {self._quote} (triggers)"),
            "end": ("", "30m, 2h, 1d or ISO time"),
        }
        # Set quietly: one check below instead of one per field.
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            for widget_id, (value, placeholder) in fields.items():
                field = self.query_one(f"#{widget_id}", Input)
                field.placeholder = placeholder
                field.value = value
                field.selection = Selection.cursor(len(value))
            self.query_one("#type", Select).value = self._initial_type
            self.query_one("#tif", Select).value = TimeInForce.GTC
            self.query_one("#post-only", Checkbox).value = False
        self._sync_visibility()
        self.revalidate()
        self.query_one("#size", Input).focus()

    # -- reading the fields ------------------------------------------------------------------

    @property
    def order_type(self) -> OrderType:
        value = self.query_one("#type", Select).value
        return value if isinstance(value, OrderType) else OrderType.LIMIT

    @property
    def time_in_force(self) -> TimeInForce:
        value = self.query_one("#tif", Select).value
        return value if isinstance(value, TimeInForce) else TimeInForce.GTC

    def entry(self) -> TicketEntry:
        """What the fields say now."""
        return TicketEntry(
            side=self.side,
            order_type=self.order_type,
            size=self.query_one("#size", Input).value,
            price=self.query_one("#price", Input).value,
            stop_price=self.query_one("#stop", Input).value,
            time_in_force=self.time_in_force,
            end_time=self.query_one("#end", Input).value,
            post_only=self.query_one("#post-only", Checkbox).value,
        )

    def field_error(self, field: TicketField) -> str:
        """The message shown under ``field`` ("" when none)."""
        return str(self.query_one(f"#{FIELD_IDS[field]}-error", Static).content)

    def parsed_text(self, widget_id: str) -> str:
        """What is shown beside a numeric field: its value as read ("= 0.5 BTC") or ""."""
        return str(self.query_one(f"#{widget_id}-parsed", Static).content)

    # -- checking ----------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._recheck()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._recheck(visibility=True)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._recheck()

    def _recheck(self, *, visibility: bool = False) -> None:
        """Check again after a field changed. A change before on_mount (a field's start
        value) is checked by on_mount itself; one that arrives while the screen is torn
        down (the App quitting just as the ticket was built ahead) finds no fields."""
        if not self._mounted:
            return
        try:
            if visibility:
                self._sync_visibility()
            self.revalidate()
        except NoMatches:
            self._mounted = False

    def _sync_visibility(self) -> None:
        hidden = hidden_rows(self.order_type, self.time_in_force)
        for widget_id in ROW_IDS:
            self.query_one(f"#{widget_id}-row").set_class(widget_id in hidden, "-hidden")
        if self.order_type is OrderType.MARKET:
            self.query_one("#post-only", Checkbox).value = False

    def revalidate(self) -> TicketCheck:
        """Check the fields, then ask the gate; show both. Returns the fields' check."""
        check = check_ticket(self.entry(), self.product, now=self._now())
        self.check = check
        self._show_parsed_values()
        for field, widget_id in FIELD_IDS.items():
            message = check.problem(field)
            error = self.query_one(f"#{widget_id}-error", Static)
            error.update("" if message is None else f"{field.value}: {message}")
            error.set_class(message is not None, "-shown")
        self.denial = None
        gate = self.query_one("#gate", Static)
        if check.spec is None:
            self.gate_text = "gate: — (fix the fields above)"
            gate.set_classes("")
        else:
            intent = manual_intent(check.spec)
            try:
                self.denial = self._preview(intent)
            except Exception as error:  # the ticket stays usable whatever the engine does
                self.denial = None
                self.gate_text = f"gate: not available ({type(error).__name__}: {error})"
                gate.set_classes("-denied")
            else:
                notional = self._notional(check)
                if self.denial is None:
                    self.gate_text = f"gate: ALLOWED · {notional}"
                    gate.set_classes("-allowed")
                else:
                    self.gate_text = f"gate: DENIED {self.denial}"
                    gate.set_classes("-denied")
        gate.update(self.gate_text)
        return check

    def _show_parsed_values(self) -> None:
        units = {
            "size": self.product.base_currency,
            "price": self._quote,
            "stop": self._quote,
        }
        for widget_id in NUMERIC_FIELD_IDS:
            value = parse_number(self.query_one(f"#{widget_id}", Input).value)
            shown = "" if value is None else f"= {decimal_str(value)} {units[widget_id]}"
            self.query_one(f"#{widget_id}-parsed", Static).update(shown)

    def _notional(self, check: TicketCheck) -> str:
        spec = check.spec
        assert spec is not None
        price = spec.limit_price
        if price is None and self._initial_price:
            price = Decimal(self._initial_price)
        if price is None or spec.base_size is None:
            return f"notional — {self._quote}"
        approx = "≈ " if spec.order_type is OrderType.MARKET else ""
        return f"notional {approx}{format_number(spec.base_size * price, 2)} {self._quote}"

    # -- sending -----------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        """Send the order if the fields are good and the gate allows it (LIVE asks first)."""
        check = self.revalidate()
        if check.spec is None:
            first = check.problems[0].field
            self.query_one(f"#{FIELD_IDS[first]}").focus()
            return
        if self.denial is not None:
            self.notify(
                str(self.denial), title="The risk gate refuses this order", severity="error"
            )
            return
        intent = manual_intent(check.spec)
        if self.mode != Mode.LIVE:
            self.dismiss(intent)
            return

        def confirmed(answer: str | None) -> None:
            if answer == YES:
                self.dismiss(intent)

        self.app.push_screen(
            ConfirmScreen(
                "LIVE order: real money",
                f"Send {describe_spec(check.spec)} to Coinbase?\n{self._notional(check)}",
                yes_no("Send", "Back"),
                danger=True,
            ),
            confirmed,
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
