"""A stand-in for the risk gate: allows every order until a test sets ``denial``."""

from __future__ import annotations

from core.denials import Denial
from core.model import OrderIntent


class StubGate:
    """The order manager's pre-trade check, not the real ``RiskGate``: it answers ``denial``
    (None = allow) and remembers every intent it was asked about."""

    def __init__(self) -> None:
        self.denial: Denial | None = None
        self.seen: list[OrderIntent] = []

    def check(self, intent: OrderIntent) -> Denial | None:
        self.seen.append(intent)
        return self.denial

    def check_resend(self, intent: OrderIntent, client_order_id: str) -> Denial | None:
        self.seen.append(intent)
        return self.denial
