"""What the simulated exchange's network face needs of the exchange and of its market agents.

The contracts shared by the server's lifecycle (``core.sim.server``), its WebSocket hub
(``core.sim.ws_hub``) and its REST handlers (``core.sim.rest_api``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from core.model import ExchangeOrderStatus, Product
from core.sim.types import (
    SimAccount,
    SimCancelResult,
    SimCandle,
    SimFill,
    SimListener,
    SimOrder,
    SimOrderRequest,
    SimOrderResult,
    SimTicker,
    SimTrade,
)


class ExchangeApi(Protocol):
    """What the server needs of ``core.sim.exchange.SimExchange`` (the engine's contract)."""

    @property
    def products(self) -> Mapping[str, Product]: ...

    def add_listener(self, listener: SimListener) -> None: ...

    def accounts(self, user_id: str) -> list[SimAccount]: ...

    def fee_rates(self, user_id: str) -> tuple[Decimal, Decimal]: ...

    def create_order(self, user_id: str, request: SimOrderRequest) -> SimOrderResult: ...

    def cancel_orders(self, user_id: str, order_ids: Sequence[str]) -> list[SimCancelResult]: ...

    def get_order(self, user_id: str, order_id: str) -> SimOrder | None: ...

    def list_orders(
        self,
        user_id: str,
        *,
        product_ids: Sequence[str] | None = None,
        statuses: Sequence[ExchangeOrderStatus] | None = None,
        order_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SimOrder]: ...

    def list_fills(
        self,
        user_id: str,
        *,
        order_ids: Sequence[str] | None = None,
        product_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SimFill]: ...

    def book_levels(
        self, product_id: str, depth: int | None = None
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]: ...

    def recent_trades(self, product_id: str, limit: int) -> list[SimTrade]: ...

    def candles(
        self, product_id: str, start: int, end: int, granularity_s: int
    ) -> list[SimCandle]: ...

    def ticker(self, product_id: str) -> SimTicker: ...

    def expire_orders(self) -> None: ...


class AgentsApi(Protocol):
    """What the server needs of ``core.sim.agents.MarketAgents``."""

    def step(self, dt: float) -> None: ...
