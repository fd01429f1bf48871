"""The user socket's sink: our own orders as Coinbase reports them on the ``user`` channel.

It checks the connection's ``sequence_num`` and hands each decoded event to a listener (the
order book of our own orders, later the order manager). Anything that makes the stream
untrustworthy (a sequence gap, garbage, a disconnect) is reported as ``on_stream_reset`` so
the listener reconciles through REST instead of trusting a partial picture.

The stream counts as up (``subscribed``) only once the exchange accepted the ``user``
subscription on the current socket: a ``subscriptions`` acknowledgement that lists it, or a
``user`` frame. Coinbase answers a refused subscription (a bad or skewed JWT) with
``{"type":"error","message":"authentication failure"}`` and keeps the socket open with
heartbeats, so "connected" alone says nothing. Such an error makes the stream down: the
socket is dropped as a failed attempt (backoff, fresh tokens) and the listener reconciles.
A socket on which neither comes within ``CONFIRM_TIMEOUT_S`` (the acknowledgement and the
snapshot lost, while heartbeats keep it looking alive) is reconnected: waiting for an order
update to prove the subscription could wait forever while trading is halted.

One untrustworthy order or event in a frame costs only itself (counted per kind; an
impossible fill also in ``core.bad_input.REFUSED_EXCHANGE_DATA``); the rest is delivered.
"""

from __future__ import annotations

import logging
from typing import Protocol

from core.bad_input import REFUSED_EXCHANGE_DATA, BadInputCounter
from core.clock import Clock
from core.coinbase.sequence import SequenceTracker, SequenceVerdict
from core.coinbase.stream import ConnectionControl, RefusableConnection
from core.coinbase.user_messages import UserMessageError, UserOrdersEvent, decode_user_frame
from core.fill_guard import FILL_NOT_SANE

log = logging.getLogger(__name__)

# How long a socket may go without the user subscription confirmed before it is reconnected.
CONFIRM_TIMEOUT_S = 10.0


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
        # A user frame arrived on the current socket (the subscription was accepted).
        self.subscribed = False
        self.last_refusal: str | None = None
        self._clock = clock
        self._connected_at = clock.monotonic()

    def on_connected(self, control: ConnectionControl) -> None:
        self._control = control
        self.subscribed = False
        self._connected_at = self._clock.monotonic()
        self._sequence.reset()

    def on_disconnected(self, reason: str) -> None:
        self.subscribed = False
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
            self._on_refused(decoded.error_message)
            return
        for kind, detail in decoded.all_refusals():
            self.bad_input.record(kind, detail)
            if kind == FILL_NOT_SANE:
                REFUSED_EXCHANGE_DATA.refuse(kind, f"user channel: {detail}")
        verdict = self._sequence.observe(decoded.sequence_num)
        if verdict is SequenceVerdict.DUPLICATE_OR_STALE:
            return
        if verdict is SequenceVerdict.GAP or verdict is SequenceVerdict.RESTARTED:
            gap = self._sequence.last_gap
            reason = (
                f"user stream sequence gap ({gap.missing if gap else '?'} missing)"
                if verdict is SequenceVerdict.GAP
                else "user stream sequence went backwards (a new stream)"
            )
            if self._control is not None:
                self._control.request_reconnect(reason)
            self._listener.on_stream_reset(reason)
            return
        if decoded.channel == "user" or "user" in decoded.subscribed_channels:
            self.subscribed = True
        elif not self.subscribed:
            self._reconnect_if_unconfirmed()
        for event in decoded.events:
            self._listener.on_user_orders(event)

    def _reconnect_if_unconfirmed(self) -> None:
        waited = self._clock.monotonic() - self._connected_at
        if waited < CONFIRM_TIMEOUT_S or self._control is None:
            return
        self._connected_at = self._clock.monotonic()  # one request per timeout
        reason = f"user subscription not confirmed after {waited:.0f} s"
        self._control.request_reconnect(reason)
        self._listener.on_stream_reset(reason)

    def _on_refused(self, message: str) -> None:
        """The exchange refused our subscription: the stream is down until a new socket is
        subscribed (see the module docstring)."""
        self.error_messages += 1
        self.bad_input.record("error_message", message)
        self.subscribed = False
        self.last_refusal = message
        control = self._control
        if isinstance(control, RefusableConnection):
            control.report_refused(message)
        elif control is not None:
            control.request_reconnect(f"subscription refused: {message}")
        self._listener.on_stream_reset(f"user subscription refused: {message}")
