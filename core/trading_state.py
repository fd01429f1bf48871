"""The trading state: whether new orders may be sent at all.

ACTIVE: every order the gate allows. REDUCING: only orders that shrink a position.
HALTED: no new orders; cancels are always allowed. The state is persisted (it survives a
restart) and every change records its cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class KillPhase(StrEnum):
    """Where the kill switch's cancel sequence is (``core/emergency.py`` runs it). Here, next to
    the state the kill latches, so the UI's views can name it without the emergency machinery."""

    IDLE = "IDLE"
    CANCELLING = "CANCELLING"  # sweeping until flat; ``KillProgress.waiting`` says on what
    DONE = "DONE"  # the venue is flat for us (stream or listing) and none is of unknown outcome
    FAILED = "FAILED"  # kept for readers of older journals; the sweep no longer gives up


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def strictness(self) -> int:
        """0 ACTIVE < 1 REDUCING < 2 HALTED: a move to a stricter state is never delayed."""
        return _STRICTNESS[self]


_STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class TradingStateChange:
    state: TradingState
    cause: str  # human text: "kill switch (ctrl+k)", "daily loss 512.30 > limit 500.00", ...
    source: str  # "user" | "trigger:<name>" | "startup"
    at: float  # wall-clock seconds
