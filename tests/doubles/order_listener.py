"""An ``OrderListener`` that keeps every order event and fill the order manager emits."""

from __future__ import annotations

from core.order_state import OrderState
from core.orders import FillEvent, OrderEvent


class OrderRecorder:
    """Records the order manager's events and fills, in order."""

    def __init__(self) -> None:
        self.events: list[OrderEvent] = []
        self.fills: list[FillEvent] = []

    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)

    def on_fill(self, event: FillEvent) -> None:
        self.fills.append(event)

    def states(self, coid: str) -> list[OrderState]:
        """Every state ``coid`` was reported in, oldest first."""
        return [e.order.state for e in self.events if e.order.client_order_id == coid]
