"""CoinbaseWebSocket against a scripted WebSocket server over real loopback sockets.

Time: the connection reads ages from an injected clock. Most tests use a ManualClock that never
moves, so the silence watchdog stays quiet unless a test moves the clock; backoff waits go
through a fake sleep that records the delay and returns (or blocks, to hold the loop still).
"""

from __future__ import annotations

import asyncio
import http
import itertools
import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import pytest
from websockets.exceptions import InvalidURI

from core.clock import ManualClock, SystemClock
from core.coinbase.stream import ConnectionControl, Subscription
from core.coinbase.ws import (
    SINK_ERROR_LOG_INTERVAL_S,
    CoinbaseWebSocket,
    ConnectionState,
    WsStatus,
)
from tests.core.coinbase.ws_server import ScriptedWsServer, ServerSide, unused_port

SUBSCRIPTIONS = (
    Subscription("level2", ("BTC-USD", "ETH-USD")),
    Subscription("market_trades", ("BTC-USD",)),
)
WAIT_S = 5.0


class SinkProbe:
    """A FrameSink that records every call and lets a test await a condition on them."""

    def __init__(self) -> None:
        self.frames: list[str | bytes] = []
        self.events: list[str] = []
        self.controls: list[ConnectionControl] = []
        self.disconnect_reasons: list[str] = []
        # Runs inside on_frame after the frame is recorded; may raise or call the control.
        self.frame_hook: Callable[[str | bytes], None] | None = None
        self.raise_on_connected = False
        self._changed = asyncio.Event()

    def on_connected(self, control: ConnectionControl) -> None:
        self.controls.append(control)
        self.events.append("connected")
        self._changed.set()
        if self.raise_on_connected:
            raise RuntimeError("sink bug in on_connected")

    def on_frame(self, frame: str | bytes) -> None:
        self.frames.append(frame)
        self.events.append("frame")
        self._changed.set()
        if self.frame_hook is not None:
            self.frame_hook(frame)

    def on_disconnected(self, reason: str) -> None:
        self.disconnect_reasons.append(reason)
        self.events.append("disconnected")
        self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], wait_s: float = WAIT_S) -> None:
        async with asyncio.timeout(wait_s):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


class FakeSleep:
    """Stands in for asyncio.sleep: records each delay, returns at once, or after ``block_after``
    calls never returns (so the connection loop holds still until the test stops it)."""

    def __init__(self, block_after: int | None = None) -> None:
        self.delays: list[float] = []
        self._block_after = block_after
        self._called = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self._called.set()
        if self._block_after is not None and len(self.delays) >= self._block_after:
            await asyncio.Event().wait()
        await asyncio.sleep(0)

    async def wait_calls(self, count: int, wait_s: float = WAIT_S) -> None:
        async with asyncio.timeout(wait_s):
            while len(self.delays) < count:
                self._called.clear()
                await self._called.wait()


class StartWs(Protocol):
    def __call__(
        self, url: str, sink: SinkProbe, **options: Any
    ) -> tuple[CoinbaseWebSocket, asyncio.Task[None]]: ...


def counting_tokens() -> Callable[[], str]:
    """A token factory whose every token is new: jwt-1, jwt-2, ..."""
    counter = itertools.count(1)
    return lambda: f"jwt-{next(counter)}"


async def accept_subscribed(server: ScriptedWsServer, count: int = 3) -> ServerSide:
    """The next connection, after its ``count`` subscribe messages arrived."""
    side = await server.accept()
    await side.receive_json(count)
    return side


@pytest.fixture
async def server() -> AsyncIterator[ScriptedWsServer]:
    """A scripted WebSocket server on 127.0.0.1 (plain ws://), closed after the test."""
    async with ScriptedWsServer() as running:
        yield running


@pytest.fixture
async def start_ws() -> AsyncIterator[StartWs]:
    """A factory: builds a CoinbaseWebSocket (ManualClock, seeded rng, fast-failing FakeSleep
    unless overridden), starts ``run()`` in a task, and stops every one after the test."""
    started: list[tuple[CoinbaseWebSocket, asyncio.Task[None]]] = []

    def start(
        url: str, sink: SinkProbe, **options: Any
    ) -> tuple[CoinbaseWebSocket, asyncio.Task[None]]:
        options.setdefault("clock", ManualClock())
        options.setdefault("rng", random.Random(7))
        options.setdefault("sleep", FakeSleep(block_after=1))
        subscriptions = options.pop("subscriptions", SUBSCRIPTIONS)
        ws = CoinbaseWebSocket("test", url, subscriptions, sink, **options)
        task = asyncio.create_task(ws.run())
        started.append((ws, task))
        return ws, task

    yield start
    for ws, task in started:
        async with asyncio.timeout(WAIT_S):
            await ws.stop()
            await task


# ---------------------------------------------------------------- subscribing


async def test_sends_one_subscribe_per_channel_adds_heartbeats_and_a_fresh_jwt_each(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    sink = SinkProbe()
    ws, _ = start_ws(server.url, sink, token_factory=counting_tokens())
    side = await server.accept()
    messages = await side.receive_json(3)
    assert messages == [
        {
            "type": "subscribe",
            "channel": "level2",
            "product_ids": ["BTC-USD", "ETH-USD"],
            "jwt": "jwt-1",
        },
        {
            "type": "subscribe",
            "channel": "market_trades",
            "product_ids": ["BTC-USD"],
            "jwt": "jwt-2",
        },
        {"type": "subscribe", "channel": "heartbeats", "product_ids": [], "jwt": "jwt-3"},
    ]
    assert await ws.wait_connected(WAIT_S)
    assert ws.status.state is ConnectionState.CONNECTED
    assert sink.controls == [ws]
    # Subscribed within the deadline: the clock never moved and nothing was reported late.
    assert ws.status.last_error is None


async def test_without_token_factory_sends_no_jwt_and_keeps_a_callers_heartbeats(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    subscriptions = (Subscription("heartbeats"), Subscription("ticker", ("BTC-USD",)))
    ws, _ = start_ws(server.url, SinkProbe(), subscriptions=subscriptions)
    side = await server.accept()
    messages = await side.receive_json(2)
    assert messages == [
        {"type": "subscribe", "channel": "heartbeats", "product_ids": []},
        {"type": "subscribe", "channel": "ticker", "product_ids": ["BTC-USD"]},
    ]
    assert ws.subscriptions == subscriptions
    assert await ws.wait_connected(WAIT_S)
    assert side.inbox.empty()  # heartbeats was not subscribed twice


async def test_subscribing_too_slowly_drops_the_socket_and_retries(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    clock = ManualClock()

    def slow_token() -> str:
        clock.advance(3.0)  # a signer that takes 3 s per token
        return "jwt"

    sink = SinkProbe()
    sleep = FakeSleep(block_after=1)
    ws, _ = start_ws(server.url, sink, clock=clock, token_factory=slow_token, sleep=sleep)
    side = await server.accept()
    await side.wait_closed()
    await sleep.wait_calls(1)
    assert ws.status.last_error == "SubscribeDeadlineExceeded: subscribing took 6.0 s (limit 5.0 s)"
    assert ws.status.attempt == 1
    assert sink.events == []  # the sink never saw a connection


async def test_a_failing_token_factory_counts_as_a_failed_attempt(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    def broken_signer() -> str:
        raise RuntimeError("key cannot sign")

    sleep = FakeSleep(block_after=2)
    ws, _ = start_ws(server.url, SinkProbe(), token_factory=broken_signer, sleep=sleep)
    await sleep.wait_calls(2)
    assert ws.status.last_error == "RuntimeError: key cannot sign"
    assert ws.status.attempt == 2
    assert server.retry_counters() == ["0", "1"]


# ---------------------------------------------------------------- frames


async def test_frames_reach_the_sink_unchanged_and_in_order(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    sink = SinkProbe()
    ws, _ = start_ws(server.url, sink)
    side = await accept_subscribed(server)
    sent: list[str | bytes] = [
        '{"channel":"subscriptions","sequence_num":0}',
        '{ "channel" : "l2_data",  "sequence_num": 1, "note": "spacing kept" }',
        '{"channel":"ticker","sequence_num":2,"text":"é ✓ \\u00e9"}',
        b'{"binary":true}',
    ]
    for frame in sent:
        await side.send(frame)
    await sink.wait_until(lambda: len(sink.frames) == len(sent))
    assert sink.frames == sent
    assert [type(frame) for frame in sink.frames] == [str, str, str, bytes]
    assert sink.events == ["connected", "frame", "frame", "frame", "frame"]
    status = ws.status
    assert status.messages_received == 4
    assert status.last_message_at == 0.0
    assert status.connected_since == 0.0


async def test_a_five_mib_frame_is_accepted(server: ScriptedWsServer, start_ws: StartWs) -> None:
    sink = SinkProbe()
    start_ws(server.url, sink)
    side = await accept_subscribed(server)
    big = '{"channel":"l2_data","events":["' + "x" * (5 * 1024 * 1024) + '"]}'
    await side.send(big)
    await sink.wait_until(lambda: len(sink.frames) == 1)
    assert sink.frames[0] == big


async def test_a_frame_over_the_size_limit_closes_with_1009_and_reconnects(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    sink = SinkProbe()
    start_ws(server.url, sink, max_message_bytes=1024 * 1024, sleep=FakeSleep())
    side = await accept_subscribed(server)
    await side.send("y" * (2 * 1024 * 1024))
    await accept_subscribed(server)
    await sink.wait_until(lambda: sink.events.count("connected") == 2)
    assert sink.frames == []
    assert sink.disconnect_reasons[0].startswith("closed by the client with code 1009")


async def test_a_raising_sink_is_counted_and_rate_limited_in_the_log_but_the_loop_goes_on(
    server: ScriptedWsServer, start_ws: StartWs, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    sink = SinkProbe()

    def explode_on_boom(frame: str | bytes) -> None:
        if frame == "boom":
            raise ValueError("sink bug")

    sink.frame_hook = explode_on_boom
    ws, _ = start_ws(server.url, sink, clock=clock)
    side = await accept_subscribed(server)
    caplog.set_level(logging.ERROR, logger="core.coinbase.ws")
    for frame in ("a", "boom", "boom", "boom", "b"):
        await side.send(frame)
    await sink.wait_until(lambda: len(sink.frames) == 5)
    assert ws.status.sink_errors == 3
    assert len(caplog.records) == 1  # the first error is logged, the next two are only counted
    assert caplog.records[0].exc_info is not None

    clock.advance(SINK_ERROR_LOG_INTERVAL_S)
    await side.send("boom")
    await side.send("c")
    await sink.wait_until(lambda: len(sink.frames) == 7)
    assert len(caplog.records) == 2
    assert "2 more sink errors" in caplog.records[1].getMessage()
    assert sink.frames[-1] == "c"
    assert sink.events.count("connected") == 1  # the same socket carried on


async def test_a_sink_raising_in_on_connected_does_not_stop_the_frames(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    sink = SinkProbe()
    sink.raise_on_connected = True
    ws, _ = start_ws(server.url, sink)
    side = await accept_subscribed(server)
    await side.send("after")
    await sink.wait_until(lambda: sink.frames == ["after"])
    assert ws.status.sink_errors == 1


# ---------------------------------------------------------------- reconnecting


@pytest.mark.parametrize(
    ("ending", "expected_reason"),
    [
        ("close-1000", "closed by the server with code 1000: bye"),
        ("close-1001", "closed by the server with code 1001: bye"),
        ("close-1011", "closed by the server with code 1011: bye"),
        ("tcp-drop", "connection lost without a close frame"),
    ],
)
async def test_reconnects_and_resubscribes_after_the_server_ends_the_connection(
    server: ScriptedWsServer, start_ws: StartWs, ending: str, expected_reason: str
) -> None:
    sink = SinkProbe()
    ws, _ = start_ws(server.url, sink, token_factory=counting_tokens(), sleep=FakeSleep())
    first = await server.accept()
    first_subscribes = await first.receive_json(3)
    await first.send('{"channel":"heartbeats","sequence_num":0}')
    await sink.wait_until(lambda: len(sink.frames) == 1)

    if ending == "tcp-drop":
        first.drop()
    else:
        await first.close(int(ending.removeprefix("close-")), "bye")

    second = await server.accept()
    second_subscribes = await second.receive_json(3)
    assert [m["channel"] for m in second_subscribes] == ["level2", "market_trades", "heartbeats"]
    first_tokens = {m["jwt"] for m in first_subscribes}
    second_tokens = {m["jwt"] for m in second_subscribes}
    assert len(second_tokens) == 3 and first_tokens.isdisjoint(second_tokens)

    await sink.wait_until(lambda: sink.events.count("connected") == 2)
    assert sink.events == ["connected", "frame", "disconnected", "connected"]
    assert sink.disconnect_reasons == [expected_reason]
    status = ws.status
    assert status.reconnects == 1
    assert status.last_error == expected_reason
    # The first socket lived 0 s on the manual clock: not healthy, so it counts as a failure.
    assert server.retry_counters() == ["0", "1"]


async def test_backoff_doubles_with_full_jitter_up_to_the_cap_and_never_gives_up(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    server.reject_with = http.HTTPStatus.SERVICE_UNAVAILABLE
    sleep = FakeSleep(block_after=9)
    ws, _ = start_ws(
        server.url,
        SinkProbe(),
        sleep=sleep,
        rng=random.Random(42),
        reconnect_initial_s=0.25,
        reconnect_max_s=2.0,
    )
    await sleep.wait_calls(9)

    ceilings = [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    for delay, ceiling in zip(sleep.delays, ceilings, strict=True):
        assert 0.0 <= delay <= ceiling
    reference = random.Random(42)
    assert sleep.delays == [reference.uniform(0.0, ceiling) for ceiling in ceilings]
    assert len(set(sleep.delays)) == len(sleep.delays)  # jittered, not a fixed schedule

    status = ws.status
    assert status.state is ConnectionState.RECONNECTING
    assert status.attempt == 9
    assert status.last_error is not None and "503" in status.last_error
    assert server.retry_counters() == [str(n) for n in range(9)]


def test_backoff_delay_stays_within_the_full_jitter_bounds() -> None:
    ws = CoinbaseWebSocket(
        "bounds",
        "ws://127.0.0.1:1",
        (),
        SinkProbe(),
        clock=ManualClock(),
        rng=random.Random(1),
        reconnect_initial_s=0.25,
        reconnect_max_s=30.0,
    )
    assert ws.backoff_delay(0) == 0.0
    for attempt in range(1, 15):
        ceiling = min(30.0, 0.25 * 2 ** (attempt - 1))
        samples = [ws.backoff_delay(attempt) for _ in range(200)]
        assert all(0.0 <= sample <= ceiling for sample in samples)
        assert max(samples) > 0.9 * ceiling and min(samples) < 0.1 * ceiling
    assert 0.0 <= ws.backoff_delay(100_000) <= 30.0  # days of outage do not overflow


async def test_a_healthy_connection_resets_the_backoff(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    clock = ManualClock()
    sleep = FakeSleep()
    sink = SinkProbe()
    ws, _ = start_ws(server.url, sink, clock=clock, sleep=sleep, stable_after_s=5.0)

    # Two sockets die at once, without data: two failed attempts, two backoff waits.
    for _ in range(2):
        side = await accept_subscribed(server)
        await side.close(1011, "flaky")
    # The third one carries data for 5 s: healthy.
    third = await accept_subscribed(server)
    await sink.wait_until(lambda: sink.events.count("connected") == 3)
    await third.send("data")
    await sink.wait_until(lambda: len(sink.frames) == 1)
    clock.advance(5.0)
    await third.close(1001, "server restart")
    # So the fourth connects at once (no wait) with a zero retry counter.
    fourth = await accept_subscribed(server)
    assert len(sleep.delays) == 2
    assert server.retry_counters() == ["0", "1", "2", "0"]
    await sink.wait_until(lambda: sink.events.count("connected") == 4)
    assert ws.status.attempt == 0
    # A socket that dies without data after that is a failure again.
    await fourth.close(1011, "flaky")
    await accept_subscribed(server)
    assert len(sleep.delays) == 3 and sleep.delays[2] <= 0.25
    assert server.retry_counters()[-1] == "1"


async def test_silence_watchdog_drops_a_quiet_socket_and_reconnects(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    sink = SinkProbe()
    start_ws(server.url, sink, clock=SystemClock(), silence_timeout_s=0.2, sleep=FakeSleep())
    first = await accept_subscribed(server)
    await first.send("one frame, then nothing")
    await first.wait_closed()
    assert first.close_code == 1000
    assert first.close_reason is not None
    assert first.close_reason.endswith("(silence watchdog)")
    await accept_subscribed(server)
    await sink.wait_until(lambda: sink.events.count("connected") == 2)
    assert sink.disconnect_reasons[0].startswith("no message for ")
    assert sink.disconnect_reasons[0].endswith(" s (silence watchdog)")


async def test_silence_is_measured_on_the_injected_clock(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    clock = ManualClock()
    sink = SinkProbe()
    start_ws(server.url, sink, clock=clock, silence_timeout_s=0.2, sleep=FakeSleep())
    first = await accept_subscribed(server)
    await first.send("frame")
    await sink.wait_until(lambda: len(sink.frames) == 1)
    assert sink.disconnect_reasons == []
    clock.advance(0.5)
    await first.wait_closed()
    await accept_subscribed(server)
    await sink.wait_until(lambda: len(sink.disconnect_reasons) == 1)
    assert sink.disconnect_reasons == ["no message for 0.5 s (silence watchdog)"]


async def test_a_socket_that_never_sends_is_dropped_by_the_watchdog(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    clock = ManualClock()
    sink = SinkProbe()
    ws, _ = start_ws(server.url, sink, clock=clock, silence_timeout_s=0.2, sleep=FakeSleep())
    first = await accept_subscribed(server)
    assert await ws.wait_connected(WAIT_S)
    clock.advance(0.3)
    await first.wait_closed()
    await sink.wait_until(lambda: len(sink.disconnect_reasons) == 1)
    assert sink.disconnect_reasons == ["no message for 0.3 s (silence watchdog)"]
    assert sink.frames == []


# ---------------------------------------------------------------- control from the sink


async def test_request_reconnect_closes_the_socket_with_the_reason_and_reconnects(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    sink = SinkProbe()

    def reconnect_on_gap(frame: str | bytes) -> None:
        if frame == "gap":
            sink.controls[-1].request_reconnect("sequence gap 7 -> 9")

    sink.frame_hook = reconnect_on_gap
    ws, _ = start_ws(server.url, sink, sleep=FakeSleep())
    first = await accept_subscribed(server)
    await first.send("gap")
    await first.wait_closed()
    assert first.close_code == 1000
    assert first.close_reason == "reconnect requested: sequence gap 7 -> 9"
    await accept_subscribed(server)
    await sink.wait_until(lambda: sink.events.count("connected") == 2)
    assert sink.disconnect_reasons == ["reconnect requested: sequence gap 7 -> 9"]
    assert ws.status.reconnects == 1


async def test_a_long_reconnect_reason_is_cut_to_fit_a_close_frame(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    ws, _ = start_ws(server.url, SinkProbe(), sleep=FakeSleep())
    first = await accept_subscribed(server)
    assert await ws.wait_connected(WAIT_S)
    ws.request_reconnect("é" * 200)  # 400 bytes of UTF-8
    ws.request_reconnect("second request while closing")  # ignored: already closing
    await first.wait_closed()
    assert first.close_reason is not None
    assert len(first.close_reason.encode()) <= 120
    assert first.close_reason.startswith("reconnect requested: éé")
    await accept_subscribed(server)


async def test_request_reconnect_without_a_socket_does_nothing(
    server: ScriptedWsServer,
) -> None:
    ws = CoinbaseWebSocket("idle", server.url, SUBSCRIPTIONS, SinkProbe(), clock=ManualClock())
    ws.request_reconnect("nothing to drop")
    ws.request_resubscribe("level2", ["BTC-USD"])
    assert ws.status.state is ConnectionState.IDLE
    assert server.requests == []


async def test_request_resubscribe_sends_unsubscribe_then_subscribe_with_fresh_tokens(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    sink = SinkProbe()
    ws, _ = start_ws(server.url, sink, token_factory=counting_tokens())
    side = await accept_subscribed(server)
    assert await ws.wait_connected(WAIT_S)
    ws.request_resubscribe("level2", ["BTC-USD"])
    assert await side.receive_json(2) == [
        {"type": "unsubscribe", "channel": "level2", "product_ids": ["BTC-USD"], "jwt": "jwt-4"},
        {"type": "subscribe", "channel": "level2", "product_ids": ["BTC-USD"], "jwt": "jwt-5"},
    ]
    await side.send("snapshot")
    await sink.wait_until(lambda: sink.frames == ["snapshot"])
    assert sink.events.count("connected") == 1  # same socket


async def test_a_resubscribe_whose_token_fails_reconnects_instead(
    server: ScriptedWsServer, start_ws: StartWs
) -> None:
    calls = itertools.count(1)

    def signer_that_breaks_after_three() -> str:
        if next(calls) > 3:
            raise RuntimeError("signer broke")
        return "jwt"

    sink = SinkProbe()
    ws, _ = start_ws(
        server.url, sink, token_factory=signer_that_breaks_after_three, sleep=FakeSleep(1)
    )
    first = await accept_subscribed(server)
    assert await ws.wait_connected(WAIT_S)
    ws.request_resubscribe("level2", ["BTC-USD"])
    await first.wait_closed()
    assert first.inbox.empty()
    await sink.wait_until(lambda: len(sink.disconnect_reasons) == 1)
    assert sink.disconnect_reasons == ["resubscribe level2 failed: signer broke"]


async def test_a_resubscribe_racing_a_close_is_dropped_quietly(
    server: ScriptedWsServer, start_ws: StartWs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.coinbase.ws")
    ws, _ = start_ws(server.url, SinkProbe(), sleep=FakeSleep())
    first = await accept_subscribed(server)
    assert await ws.wait_connected(WAIT_S)
    ws.request_reconnect("gap")
    ws.request_resubscribe("level2", ["BTC-USD"])  # the close goes out first
    await first.wait_closed()
    await accept_subscribed(server)
    assert first.inbox.empty()  # no unsubscribe reached the old socket
    # The resubscribe task failed when the old socket finished closing, many loop turns
    # before the new socket's handshake could complete.
    assert any("lost with the socket" in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------- stopping


async def test_stop_while_connected_closes_the_socket_and_ends_run(
    server: ScriptedWsServer,
) -> None:
    sink = SinkProbe()
    ws = CoinbaseWebSocket("stop", server.url, SUBSCRIPTIONS, sink, clock=ManualClock())
    task = asyncio.create_task(ws.run())
    side = await accept_subscribed(server)
    assert await ws.wait_connected(WAIT_S)
    async with asyncio.timeout(WAIT_S):
        await ws.stop()
    assert task.done() and task.exception() is None
    await side.wait_closed()
    assert side.close_code == 1000
    assert sink.disconnect_reasons == ["stopped"]
    status = ws.status
    assert status.state is ConnectionState.STOPPED
    assert status.connected_since is None
    assert status.last_error is None  # stopping is not an error
    assert not await ws.wait_connected(0)


async def test_stop_during_a_backoff_wait_ends_run(server: ScriptedWsServer) -> None:
    server.reject_with = http.HTTPStatus.BAD_GATEWAY
    sleep = FakeSleep(block_after=1)
    ws = CoinbaseWebSocket(
        "stop", server.url, SUBSCRIPTIONS, SinkProbe(), clock=ManualClock(), sleep=sleep
    )
    task = asyncio.create_task(ws.run())
    await sleep.wait_calls(1)
    waiting = ws.status
    assert waiting.state is ConnectionState.RECONNECTING
    async with asyncio.timeout(WAIT_S):
        await ws.stop()
    assert task.done()
    stopped = ws.status
    assert stopped.state is ConnectionState.STOPPED


async def test_stop_during_a_hanging_handshake_ends_run() -> None:
    accepted = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.set()

    tcp = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        ws = CoinbaseWebSocket(
            "stop", f"ws://127.0.0.1:{port}", SUBSCRIPTIONS, SinkProbe(), clock=ManualClock()
        )
        task = asyncio.create_task(ws.run())
        async with asyncio.timeout(WAIT_S):
            await accepted.wait()
        connecting = ws.status
        assert connecting.state is ConnectionState.CONNECTING
        async with asyncio.timeout(WAIT_S):  # far below the 10 s open timeout
            await ws.stop()
        assert task.done() and task.exception() is None
        stopped = ws.status
        assert stopped.state is ConnectionState.STOPPED
    finally:
        for writer in writers:
            writer.close()
        tcp.close()
        await tcp.wait_closed()


async def test_stop_before_run_makes_run_return_at_once(server: ScriptedWsServer) -> None:
    ws = CoinbaseWebSocket("stop", server.url, SUBSCRIPTIONS, SinkProbe(), clock=ManualClock())
    await ws.stop()
    async with asyncio.timeout(WAIT_S):
        await ws.run()
    assert ws.status.state is ConnectionState.STOPPED
    assert server.requests == []


async def test_run_twice_at_once_is_refused(server: ScriptedWsServer, start_ws: StartWs) -> None:
    ws, _ = start_ws(server.url, SinkProbe())
    await accept_subscribed(server)
    with pytest.raises(RuntimeError, match="already running"):
        await ws.run()


async def test_wait_connected_is_false_when_nothing_answers() -> None:
    sleep = FakeSleep(block_after=1)
    ws = CoinbaseWebSocket(
        "down",
        f"ws://127.0.0.1:{unused_port()}",
        SUBSCRIPTIONS,
        SinkProbe(),
        clock=ManualClock(),
        sleep=sleep,
    )
    task = asyncio.create_task(ws.run())
    try:
        assert not await ws.wait_connected(0.05)
        await sleep.wait_calls(1)
        assert ws.status.attempt == 1
        last_error = ws.status.last_error
        assert last_error is not None and "Connect" in last_error  # ConnectionRefusedError
    finally:
        await ws.stop()
        await task


# ---------------------------------------------------------------- TLS, validation, status


@pytest.fixture
def tls_contexts() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    """(server context, client context) from a throwaway CA that signed a 127.0.0.1 cert."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    yield server_context, client_context


async def test_connects_over_tls_with_the_given_ssl_context(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext], start_ws: StartWs
) -> None:
    server_context, client_context = tls_contexts
    async with ScriptedWsServer(ssl_context=server_context) as tls_server:
        assert tls_server.url.startswith("wss://")
        sink = SinkProbe()
        ws, _ = start_ws(tls_server.url, sink, ssl_context=client_context)
        side = await accept_subscribed(tls_server)
        await side.send("over tls")
        await sink.wait_until(lambda: sink.frames == ["over tls"])
        await ws.stop()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"silence_timeout_s": 0}, ValueError),
        ({"subscribe_deadline_s": -1}, ValueError),
        ({"reconnect_initial_s": 0}, ValueError),
        ({"reconnect_initial_s": 5, "reconnect_max_s": 1}, ValueError),
        ({"max_message_bytes": 0}, ValueError),
        ({"url": "http://example.com"}, InvalidURI),
        ({"subscriptions": (Subscription(""),)}, ValueError),
    ],
)
def test_bad_construction_is_refused(options: dict[str, Any], error: type[Exception]) -> None:
    url = options.pop("url", "wss://advanced-trade-ws.coinbase.com")
    subscriptions = options.pop("subscriptions", SUBSCRIPTIONS)
    with pytest.raises(error):
        CoinbaseWebSocket("bad", url, subscriptions, SinkProbe(), clock=ManualClock(), **options)


def test_status_reports_identity_and_age_of_last_message() -> None:
    ws = CoinbaseWebSocket(
        "market", "wss://advanced-trade-ws.coinbase.com", (), SinkProbe(), clock=ManualClock()
    )
    status = ws.status
    assert (status.name, status.url, status.state) == (
        "market",
        "wss://advanced-trade-ws.coinbase.com",
        ConnectionState.IDLE,
    )
    assert ws.name == "market"
    assert ws.subscriptions == (Subscription("heartbeats"),)
    assert status.age_of_last_message(100.0) is None
    seen = WsStatus("m", "u", ConnectionState.CONNECTED, 0, 1.0, 10.0, 5, 0, None)
    assert seen.age_of_last_message(12.5) == 2.5
    assert seen.age_of_last_message(9.0) == 0.0  # never negative
