"""A ``VenueListener`` that keeps every order update and stream reset a venue reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.model import ExchangeOrder


@dataclass
class VenueRecorder:
    """Records what a venue tells its listener, in order."""

    updates: list[ExchangeOrder] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)

    def on_order_update(self, order: ExchangeOrder) -> None:
        self.updates.append(order)

    def on_order_updates(self, orders: Sequence[ExchangeOrder]) -> None:
        for order in orders:
            self.on_order_update(order)

    def on_stream_reset(self, reason: str) -> None:
        self.resets.append(reason)

    def of(self, order_id: str) -> list[ExchangeOrder]:
        """Every update of ``order_id``, oldest first."""
        return [update for update in self.updates if update.order_id == order_id]

    def last(self, order_id: str) -> ExchangeOrder:
        """The newest update of ``order_id`` (fails if there is none)."""
        return self.of(order_id)[-1]

    def latest(self, order_id: str) -> ExchangeOrder | None:
        """The newest update of ``order_id``, or None when it has none yet."""
        updates = self.of(order_id)
        return updates[-1] if updates else None
