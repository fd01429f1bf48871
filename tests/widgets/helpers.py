"""Helpers for widget tests: a tiny host App that mounts one widget at a fixed size, a
counter of the screen's layout passes, and sample trades and orders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Size
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from core.model import ExchangeOrder, ExchangeOrderStatus, Side, Trade


def screen_lines(app: App[Any]) -> list[str]:
    """The text of every line of the app's screen as it would be painted now."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def count_layout_passes(monkeypatch: pytest.MonkeyPatch) -> list[Screen[Any]]:
    """Every layout pass of any screen from now on (the screen laid out, once per pass).

    Textual lays a screen out in ``Screen._refresh_layout``, whatever asked for it (a widget's
    ``refresh(layout=True)``, a layout reactive, a scroll); it is what the frame profiler
    (scripts/profile_console_frames.py) times as "layout pass".
    """
    passes: list[Screen[Any]] = []
    refresh_layout = Screen._refresh_layout

    def counted(screen: Screen[Any], size: Size | None = None, scroll: bool = False) -> None:
        passes.append(screen)
        refresh_layout(screen, size, scroll)

    monkeypatch.setattr(Screen, "_refresh_layout", counted)
    return passes


class RecordsPaintedLines:
    """Mixin (first base) for a Line-API panel: records the content lines Textual asks it to
    paint (their y), frame after frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.painted: list[int] = []
        super().__init__(*args, **kwargs)

    def render_line(self, y: int) -> Strip:
        self.painted.append(y)
        return super().render_line(y)  # type: ignore[misc]


class HostApp(App[None]):
    """Mounts a single widget filling the screen (so its size is the terminal size)."""

    CSS = """
    Screen { layout: vertical; }
    """

    def __init__(self, widget: Widget) -> None:
        super().__init__()
        self.widget = widget
        self.animation_level = "none"

    def compose(self) -> ComposeResult:
        yield self.widget


def make_trade(number: int, side: Side, price: float = 100.0, size: float = 1.5) -> Trade:
    """A public trade at 2026-01-01T00:00:<number>Z."""
    return Trade(
        trade_id=str(number),
        product_id="BTC-USD",
        price=price,
        size=size,
        side=side,
        time=datetime(2026, 1, 1, 0, 0, number % 60, tzinfo=UTC),
    )


def make_order(
    number: int,
    *,
    side: Side = Side.BUY,
    price: str | None = "100.00",
    size: str = "0.5000",
    status: ExchangeOrderStatus = ExchangeOrderStatus.OPEN,
    product_id: str = "BTC-USD",
) -> ExchangeOrder:
    """A LIMIT order with id ``order-<number>``."""
    return ExchangeOrder(
        order_id=f"order-{number}",
        client_order_id=f"client-{number}",
        product_id=product_id,
        side=side,
        status=status,
        order_type="LIMIT",
        base_size=Decimal(size),
        limit_price=None if price is None else Decimal(price),
        filled_size=Decimal("0.1000"),
    )
