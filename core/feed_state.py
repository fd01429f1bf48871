"""How a data feed is doing: a WebSocket connection's state and status, and an order book's status.

One definition each, used by the connection (``core/coinbase/ws.py``), the market data
service (``core/market.py``) and the views the UI reads (``core/snapshot.py``). A leaf module,
so the UI can name these states without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ConnectionState(StrEnum):
    IDLE = "IDLE"  # constructed, run() not called yet
    CONNECTING = "CONNECTING"  # TCP/TLS + WebSocket handshake in progress
    SUBSCRIBING = "SUBSCRIBING"  # socket open, subscribe messages being sent
    CONNECTED = "CONNECTED"  # subscribed; frames flow to the sink
    RECONNECTING = "RECONNECTING"  # waiting out the backoff delay after a loss or failure
    STOPPED = "STOPPED"  # stop() was called, or run() returned


class BookStatus(StrEnum):
    SYNCING = "SYNCING"  # waiting for the first snapshot on this connection
    LIVE = "LIVE"
    STALE = "STALE"  # a fault was seen; waiting for a fresh snapshot to rebuild from


@dataclass(frozen=True, slots=True)
class WsStatus:
    """A snapshot of one connection's health, for the UI and for logs."""

    name: str
    url: str
    state: ConnectionState
    attempt: int  # consecutive failed connection attempts (0 while healthy)
    connected_since: float | None  # clock.monotonic() when subscribed; None when not connected
    last_message_at: float | None  # clock.monotonic() of the last frame received, on any socket
    messages_received: int
    reconnects: int  # connections established after the first one
    last_error: str | None  # why the last connection ended or attempt failed (not stop())
    sink_errors: int = 0  # exceptions the sink raised (each one swallowed and counted)

    def age_of_last_message(self, now_monotonic: float) -> float | None:
        """Seconds since the last frame, or None if no frame has arrived yet."""
        if self.last_message_at is None:
            return None
        return max(0.0, now_monotonic - self.last_message_at)
