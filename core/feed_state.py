"""How a data feed is doing: a WebSocket connection's state and an order book's status.

One definition each, used by the connection (``core/coinbase/ws.py``), the market data
service (``core/market.py``) and the views the UI reads (``core/snapshot.py``). A leaf module,
so the UI can name these states without importing the engine.
"""

from __future__ import annotations

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
