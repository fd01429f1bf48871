"""When the user stream counts as up: only once the exchange accepted the ``user``
subscription on the current socket (docs/coinbase-protocol.md §3.1), and a socket on which
that never shows (acknowledgement and snapshot lost, heartbeats flowing) is reconnected rather
than trusted or waited on forever."""

from __future__ import annotations

import orjson

from core.clock import ManualClock
from core.user_stream import CONFIRM_TIMEOUT_S, UserStream
from tests.core.coinbase.test_real_payloads import Control, Listener


def frame(channel: str, sequence_num: int, events: list[object]) -> bytes:
    return orjson.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": "2026-12-06T12:00:00Z",
            "sequence_num": sequence_num,
            "events": events,
        }
    )


def heartbeat(sequence_num: int) -> bytes:
    return frame(
        "heartbeats",
        sequence_num,
        [{"current_time": "2026-12-06 12:00:00 +0000 UTC", "heartbeat_counter": sequence_num}],
    )


def ack(sequence_num: int, channels: dict[str, list[str]]) -> bytes:
    return frame("subscriptions", sequence_num, [{"subscriptions": channels}])


def connected() -> tuple[UserStream, Listener, Control, ManualClock]:
    clock = ManualClock()
    listener, control = Listener(), Control()
    user = UserStream(listener, clock=clock)
    user.on_connected(control)
    return user, listener, control, clock


def test_an_acknowledgement_listing_user_confirms_the_subscription() -> None:
    user, _, control, _ = connected()
    user.on_frame(ack(0, {"heartbeats": [], "user": []}))
    assert user.subscribed and control.reconnects == []


def test_an_acknowledgement_without_user_does_not() -> None:
    user, _, _, _ = connected()
    user.on_frame(ack(0, {"heartbeats": []}))  # the user subscription was refused
    assert not user.subscribed


def test_heartbeats_alone_past_the_timeout_reconnect_once_per_timeout() -> None:
    user, listener, control, clock = connected()
    user.on_frame(heartbeat(0))
    clock.advance(CONFIRM_TIMEOUT_S - 1)
    user.on_frame(heartbeat(1))
    assert control.reconnects == [] and not user.subscribed
    clock.advance(1)
    user.on_frame(heartbeat(2))
    assert len(control.reconnects) == 1 and "not confirmed" in control.reconnects[0]
    assert listener.resets and "not confirmed" in listener.resets[-1]
    user.on_frame(heartbeat(3))  # the same timeout: no second request
    assert len(control.reconnects) == 1


def test_a_confirmed_stream_is_never_reconnected_for_quiet() -> None:
    user, _, control, clock = connected()
    user.on_frame(ack(0, {"user": []}))
    clock.advance(CONFIRM_TIMEOUT_S * 10)
    user.on_frame(heartbeat(1))
    assert user.subscribed and control.reconnects == []


def test_a_new_socket_must_be_confirmed_again() -> None:
    user, _, control, clock = connected()
    user.on_frame(ack(0, {"user": []}))
    user.on_connected(control)
    assert not user.subscribed
    clock.advance(CONFIRM_TIMEOUT_S)
    user.on_frame(heartbeat(0))
    assert len(control.reconnects) == 1
