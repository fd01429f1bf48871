"""The user socket's sink: our own orders as Coinbase reports them on the ``user`` channel.

It checks the connection's ``sequence_num`` and hands each decoded event to a listener (the
order book of our own orders, later the order manager). Anything that makes the stream
untrustworthy (a sequence gap, garbage, a disconnect) is reported as ``on_stream_reset`` so
the listener reconciles through REST instead of trusting a partial picture.
"""

from __future__ import annotations

import logging
from typing import Protocol

from core.bad_input import BadInputCounter
from core.clock import Clock
from core.coinbase.sequence import SequenceTracker, SequenceVerdict
from core.coinbase.stream import ConnectionControl
from core.coinbase.user_messages import UserMessageError, UserOrdersEvent, decode_user_frame

log = logging.getLogger(__name__)


class UserOrderListener(Protocol):
    def on_user_orders(self, event: UserOrdersEvent) -> None:
        """A snapshot of all open orders (``is_snapshot``) or cumulative updates of some."""
        ...

    def on_stream_reset(self, reason: str) -> None:
        """Events may have been missed: reconcile with REST before trusting the stream again."""
        ...


class UserStream:
    """``FrameSink`` for the user socket."""

    def __init__(self, listener: UserOrderListener, *, clock: Clock) -> None:
        self._listener = listener
        self._sequence = SequenceTracker()
        self._control: ConnectionControl | None = None
        self.bad_input = BadInputCounter(clock=clock, logger=log)
        self.messages = 0
        self.error_messages = 0

    def on_connected(self, control: ConnectionControl) -> None:
        self._control = control
        self._sequence.reset()

    def on_disconnected(self, reason: str) -> None:
        self._listener.on_stream_reset(f"user stream lost: {reason}")

    def on_frame(self, frame: str | bytes) -> None:
        self.messages += 1
        try:
            decoded = decode_user_frame(frame)
        except UserMessageError as exc:
            self.bad_input.record(exc.kind, str(exc))
            # A user update we could not read may be a fill we would otherwise miss.
            self._listener.on_stream_reset(f"unreadable user message ({exc.kind})")
            return
        if decoded.error_message is not None:
            self.error_messages += 1
            self.bad_input.record("error_message", decoded.error_message)
            return
        verdict = self._sequence.observe(decoded.sequence_num)
        if verdict is SequenceVerdict.DUPLICATE_OR_STALE:
            return
        if verdict is SequenceVerdict.GAP:
            gap = self._sequence.last_gap
            reason = f"user stream sequence gap ({gap.missing if gap else '?'} missing)"
            if self._control is not None:
                self._control.request_reconnect(reason)
            self._listener.on_stream_reset(reason)
            return
        for event in decoded.events:
            self._listener.on_user_orders(event)
