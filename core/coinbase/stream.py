"""The contract between a WebSocket connection and whoever consumes its frames.

The connection (``core.coinbase.ws.CoinbaseWebSocket``) owns the socket: connecting,
subscribing, the silence watchdog, reconnecting. It does not parse data messages. It hands
every frame, unchanged, to a ``FrameSink`` (the market data service, the user-stream handler,
a recorder), which decodes it, checks ``sequence_num`` (one counter per connection) and, when
it finds the stream untrustworthy, asks the connection through ``ConnectionControl`` to
resubscribe a channel or to reconnect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscribe message: one channel, any number of products (empty for heartbeats/user)."""

    channel: str
    product_ids: tuple[str, ...] = ()


class ConnectionControl(Protocol):
    """What a sink may ask of the connection that feeds it. Both calls return at once."""

    @property
    def name(self) -> str: ...

    def request_reconnect(self, reason: str) -> None:
        """Drop the socket and connect again (the sink saw a sequence gap or garbage)."""
        ...

    def request_resubscribe(self, channel: str, product_ids: Sequence[str]) -> None:
        """Unsubscribe and subscribe again, so the server sends a fresh snapshot."""
        ...


@runtime_checkable
class RefusableConnection(ConnectionControl, Protocol):
    """A connection that can be told the server refused a subscription on it."""

    def report_refused(self, reason: str) -> None:
        """The server refused a subscription (``{"type":"error"}``, e.g. "authentication
        failure") but keeps the socket open with heartbeats: the stream is down. Drop the
        socket and count it as a FAILED attempt, so the next one waits out the backoff and
        subscribes with fresh tokens."""
        ...


class FrameSink(Protocol):
    def on_connected(self, control: ConnectionControl) -> None:
        """A new socket is up and its subscriptions were sent: sequence numbers restart."""
        ...

    def on_frame(self, frame: str | bytes) -> None:
        """One WebSocket message, exactly as received. Must not raise, must not block."""
        ...

    def on_disconnected(self, reason: str) -> None:
        """The socket is gone; everything derived from it is now suspect."""
        ...
