"""One Coinbase Advanced Trade WebSocket connection that never gives up.

``CoinbaseWebSocket`` owns a socket to one endpoint (market data or user data): it connects,
sends one subscribe message per channel (always including ``heartbeats``, with a fresh JWT per
message when it has credentials), hands every frame unchanged to a ``FrameSink``, watches for
silence, and reconnects after any close or error with jittered exponential backoff and no retry
cap. It never parses data messages; the sink does, and talks back through ``ConnectionControl``
(``request_reconnect``, ``request_resubscribe``).

Why not the official SDK's client: it gives up after five retries and stops silently on a 1001
close (coinbase-advanced-py #63); see docs/coinbase-protocol.md §3.5.

Everything here runs on the event loop thread. Status fields are plain attributes written by
the loop and read (as a ``WsStatus`` snapshot) by the UI at ~10 Hz; no locks are needed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.uri import parse_uri

from core.clock import Clock
from core.coinbase.rest import is_coinbase_host
from core.coinbase.stream import FrameSink, Subscription
from core.feed_state import ConnectionState, WsStatus

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

HEARTBEATS_CHANNEL = "heartbeats"
RETRY_COUNTER_HEADER = "x-cb-retry-counter"

# At most one log line per this many seconds for a misbehaving sink, so a sink that raises on
# every frame cannot flood the log (and the disk) at thousands of lines per second.
SINK_ERROR_LOG_INTERVAL_S = 10.0
# A WebSocket close reason must fit in a 125-byte control frame together with the 2-byte code.
_MAX_CLOSE_REASON_BYTES = 120

Sleep = Callable[[float], Awaitable[None]]


class SubscribeDeadlineExceeded(Exception):
    """The subscribe messages took longer than Coinbase allows (it drops the socket at 5 s)."""


class CoinbaseWebSocket:
    """A self-healing WebSocket connection feeding one ``FrameSink``; a ``ConnectionControl``.

    ``run()`` loops until ``stop()``. A connection counts as healthy once it has received a
    frame and stayed up for ``stable_after_s``; losing a healthy connection reconnects at once
    and resets the backoff, anything else counts as a failed attempt and waits
    ``uniform(0, min(reconnect_max_s, reconnect_initial_s * 2 ** (attempt - 1)))`` ("full
    jitter"), so many clients restarting together do not reconnect in lockstep.
    """

    def __init__(
        self,
        name: str,
        url: str,
        subscriptions: Sequence[Subscription],
        sink: FrameSink,
        *,
        clock: Clock,
        token_factory: Callable[[], str] | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        silence_timeout_s: float = 5.0,
        reconnect_initial_s: float = 0.25,
        reconnect_max_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        subscribe_deadline_s: float = 5.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
        stable_after_s: float = 5.0,
    ) -> None:
        parse_uri(url)  # raises websockets.exceptions.InvalidURI now rather than in run()
        _refuse_unverified_tls(url, ssl_context)
        if silence_timeout_s <= 0 or subscribe_deadline_s <= 0:
            raise ValueError("silence_timeout_s and subscribe_deadline_s must be positive")
        if reconnect_initial_s <= 0 or reconnect_max_s < reconnect_initial_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        self._name = name
        self._url = url
        self._subscriptions = _with_heartbeats(subscriptions)
        self._sink = sink
        self._clock = clock
        self._token_factory = token_factory
        self._max_message_bytes = max_message_bytes
        self._silence_timeout_s = silence_timeout_s
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._ssl_context = ssl_context
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._subscribe_deadline_s = subscribe_deadline_s
        self._open_timeout_s = open_timeout_s
        self._close_timeout_s = close_timeout_s
        self._stable_after_s = stable_after_s

        # Status, written by the loop, read through ``status``.
        self._state = ConnectionState.IDLE
        self._attempt = 0
        self._refused = False  # the server refused a subscription on the current socket
        self._connected_since: float | None = None
        self._last_message_at: float | None = None
        self._messages_received = 0
        self._reconnects = 0
        self._connections_established = 0
        self._last_error: str | None = None
        self._sink_errors = 0
        self._sink_errors_logged = 0
        self._sink_error_logged_at: float | None = None

        # The live socket (None between connections) and why we are closing it, if we are.
        self._conn: ClientConnection | None = None
        self._drop_reason: str | None = None
        self._frames_on_connection = 0

        self._running = False
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._run_finished = asyncio.Event()
        self._connected = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- public API

    @property
    def name(self) -> str:
        return self._name

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """What every new socket subscribes to (``heartbeats`` included)."""
        return self._subscriptions

    def set_subscriptions(self, subscriptions: Sequence[Subscription]) -> bool:
        """Replace what sockets subscribe to; True if it changed. The live socket keeps its
        subscriptions: call ``request_reconnect`` to apply the new ones now."""
        updated = _with_heartbeats(subscriptions)
        if updated == self._subscriptions:
            return False
        self._subscriptions = updated
        return True

    @property
    def status(self) -> WsStatus:
        return WsStatus(
            name=self._name,
            url=self._url,
            state=self._state,
            attempt=self._attempt,
            connected_since=self._connected_since,
            last_message_at=self._last_message_at,
            messages_received=self._messages_received,
            reconnects=self._reconnects,
            last_error=self._last_error,
            sink_errors=self._sink_errors,
        )

    async def run(self) -> None:
        """Connect, subscribe, pump frames, reconnect; return only after ``stop()``.

        Network errors, server closes (1000 and 1001 included), a silent socket and a raising
        sink never end this loop. Calling ``run()`` after ``stop()`` returns at once.
        """
        if self._running:
            raise RuntimeError(f"{self._name}: run() is already running")
        self._running = True
        self._run_finished.clear()
        delay = 0.0
        try:
            while not self._stopping:
                if delay > 0:
                    self._state = ConnectionState.RECONNECTING
                    logger.info(
                        "%s: reconnecting in %.2f s (attempt %d)", self._name, delay, self._attempt
                    )
                    await self._unless_stopped(self._sleep(delay))
                    if self._stopping:
                        break
                healthy = await self._connect_once()
                if self._stopping:
                    break
                self._attempt = 0 if healthy else self._attempt + 1
                delay = self.backoff_delay(self._attempt)
        finally:
            await self._cancel_background()
            self._state = ConnectionState.STOPPED
            self._connected_since = None
            self._running = False
            self._run_finished.set()

    async def stop(self) -> None:
        """Close the socket and make ``run()`` return; waits until it has."""
        self._stopping = True
        self._stop_requested.set()
        conn = self._conn
        if conn is not None:
            self._drop(conn, "stopped")
        if self._running:
            await self._run_finished.wait()
        self._state = ConnectionState.STOPPED

    def request_reconnect(self, reason: str) -> None:
        """Close the live socket; ``run()`` connects again (a sink saw a gap or garbage)."""
        conn = self._conn
        if conn is None:
            logger.info("%s: reconnect requested (%s) while not connected", self._name, reason)
            return
        self._drop(conn, f"reconnect requested: {reason}")

    def report_refused(self, reason: str) -> None:
        """A subscription was refused on the live socket: drop it as a failed attempt."""
        conn = self._conn
        if conn is None:
            return
        self._refused = True
        self._drop(conn, f"subscription refused: {reason}")

    def request_resubscribe(self, channel: str, product_ids: Sequence[str]) -> None:
        """Send ``unsubscribe`` then ``subscribe`` for one channel, so a fresh snapshot comes.

        Without a subscribed socket there is nothing to do: the next socket subscribes to
        everything anyway.
        """
        conn = self._conn
        if conn is None or self._state is not ConnectionState.CONNECTED:
            logger.info(
                "%s: resubscribe %s requested while %s; the next connection subscribes afresh",
                self._name,
                channel,
                self._state,
            )
            return
        self._spawn(self._resubscribe(conn, Subscription(channel, tuple(product_ids))))

    # A timeout parameter on purpose: callers want a yes/no answer, not a TimeoutError.
    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109
        """True once subscribed (now or within ``timeout`` seconds), else False."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before connection attempt number ``attempt`` (0 = at once)."""
        if attempt <= 0:
            return 0.0
        # Cap the exponent too: 2 ** 10_000 would overflow a float after days of outage.
        ceiling = min(
            self._reconnect_max_s, self._reconnect_initial_s * 2.0 ** min(attempt - 1, 64)
        )
        return self._rng.uniform(0.0, ceiling)

    # ----------------------------------------------------------------- one connection

    async def _connect_once(self) -> bool:
        """Open, subscribe and pump one socket until it ends; True if it was healthy."""
        self._state = ConnectionState.CONNECTING
        self._drop_reason = None
        self._refused = False
        self._frames_on_connection = 0
        announced = False
        healthy = False
        try:
            conn = await self._unless_stopped(self._open())
            if conn is None:  # stop() won the race against the handshake
                return False
            self._conn = conn
            try:
                if self._stopping:  # pragma: no cover - stop() in the tick the handshake ended
                    return False
                self._state = ConnectionState.SUBSCRIBING
                opened_at = self._clock.monotonic()
                await self._subscribe_all(conn, opened_at)
                self._state = ConnectionState.CONNECTED
                connected_at = self._connected_since = self._clock.monotonic()
                self._connections_established += 1
                if self._connections_established > 1:
                    self._reconnects += 1
                self._connected.set()
                logger.info("%s: connected to %s", self._name, self._url)
                announced = True
                self._notify_sink("on_connected", self)
                watchdog = asyncio.create_task(self._watch_silence(conn, connected_at))
                try:
                    await self._pump(conn)
                finally:
                    watchdog.cancel()
                    healthy = self._was_healthy()
            finally:
                self._conn = None
                self._connected.clear()
                self._connected_since = None
                await conn.close()
        except ConnectionClosed as exc:
            reason = self._drop_reason or _describe_close(exc)
        except Exception as exc:
            reason = self._drop_reason or f"{type(exc).__name__}: {exc}"
        if self._stopping:  # our own doing, not an error
            logger.info("%s: stopped (%s)", self._name, reason)
        else:
            self._last_error = reason
            logger.warning("%s: connection ended: %s", self._name, reason)
        if announced:
            self._notify_sink("on_disconnected", reason)
        return healthy

    async def _open(self) -> ClientConnection:
        extra: dict[str, Any] = {}
        if self._ssl_context is not None:
            extra["ssl"] = self._ssl_context
        return await connect(
            self._url,
            additional_headers={RETRY_COUNTER_HEADER: str(self._attempt)},
            # No permessage-deflate. Inflating runs on the event loop thread that also applies
            # the book and paints the UI, and it costs per message; Coinbase's frames are many
            # and small, so compression would buy bandwidth we do not lack with CPU we do.
            # Measured on loopback (both ends in one process, 367-byte l2_data frames): 50k
            # frames/s without, 18k with. Coinbase does not appear to negotiate it anyway.
            compression=None,
            max_size=self._max_message_bytes,
            # The heartbeats channel plus our silence watchdog detect a dead socket sooner
            # than protocol pings (20 s + 20 s), and pings would add a second, slower way for a
            # stalled event loop to kill a healthy connection.
            ping_interval=None,
            open_timeout=self._open_timeout_s,
            close_timeout=self._close_timeout_s,
            **extra,
        )

    async def _subscribe_all(self, conn: ClientConnection, opened_at: float) -> None:
        """Send every subscribe message; Coinbase disconnects a socket not subscribed in 5 s."""
        deadline = self._subscribe_deadline_s
        try:
            async with asyncio.timeout(deadline):
                for subscription in self._subscriptions:
                    await conn.send(self._control_message("subscribe", subscription))
                    # Token signing is synchronous and cannot be interrupted by the timeout
                    # above; the clock check catches a slow signer too.
                    elapsed = self._clock.monotonic() - opened_at
                    if elapsed > deadline:
                        raise SubscribeDeadlineExceeded(
                            f"subscribing took {elapsed:.1f} s (limit {deadline:.1f} s)"
                        )
        except TimeoutError:  # pragma: no cover - needs a peer that stops reading mid-subscribe
            raise SubscribeDeadlineExceeded(
                f"subscribe messages not sent within {deadline:.1f} s"
            ) from None

    async def _pump(self, conn: ClientConnection) -> None:
        """Hand frames to the sink until the socket closes (raises ``ConnectionClosed``)."""
        # The hot loop: locals instead of attribute lookups, no per-frame allocation of ours.
        recv = conn.recv
        on_frame = self._sink.on_frame
        monotonic = self._clock.monotonic
        while True:
            frame = await recv()
            self._last_message_at = monotonic()
            self._messages_received += 1
            self._frames_on_connection += 1
            try:
                on_frame(frame)
            except Exception as exc:
                self._sink_failed("on_frame", exc)

    async def _watch_silence(self, conn: ClientConnection, connected_at: float) -> None:
        """Drop the socket when no frame arrived for ``silence_timeout_s`` (per the clock).

        It polls four times per timeout, so a silent socket is dropped between 1 and 1.25
        timeouts after its last frame.
        """
        period = self._silence_timeout_s / 4
        while True:
            await asyncio.sleep(period)
            last = self._last_message_at
            if last is None or last < connected_at:
                last = connected_at
            silent_for = self._clock.monotonic() - last
            if silent_for >= self._silence_timeout_s:
                self._drop(conn, f"no message for {silent_for:.1f} s (silence watchdog)")
                return

    async def _resubscribe(self, conn: ClientConnection, subscription: Subscription) -> None:
        try:
            await conn.send(self._control_message("unsubscribe", subscription))
            await conn.send(self._control_message("subscribe", subscription))
        except ConnectionClosed:
            # The socket is gone; the reconnect that follows subscribes to everything anyway.
            logger.info("%s: resubscribe %s lost with the socket", self._name, subscription)
            return
        except Exception as exc:
            # Most likely the token factory failed. A sink that asked for a fresh snapshot
            # waits for one; a reconnect is the sure way to get it.
            self._drop(conn, f"resubscribe {subscription.channel} failed: {exc}")
            return
        logger.info(
            "%s: resubscribed %s %s",
            self._name,
            subscription.channel,
            ",".join(subscription.product_ids),
        )

    def _control_message(self, kind: str, subscription: Subscription) -> str:
        message: dict[str, object] = {
            "type": kind,
            "channel": subscription.channel,
            "product_ids": list(subscription.product_ids),
        }
        if self._token_factory is not None:
            # Coinbase asks for a different JWT on every message (they live 2 minutes).
            message["jwt"] = self._token_factory()
        # A text frame: Coinbase reads JSON from text frames.
        return orjson.dumps(message).decode()

    def _was_healthy(self) -> bool:
        since = self._connected_since
        return (
            since is not None
            and not self._refused  # heartbeats on a refused socket are not health
            and self._frames_on_connection > 0
            and self._clock.monotonic() - since >= self._stable_after_s
        )

    # ----------------------------------------------------------------- helpers

    def _drop(self, conn: ClientConnection, reason: str) -> None:
        """Close ``conn`` in the background; ``_pump`` then ends with this reason."""
        if self._drop_reason is not None or conn is not self._conn:
            return  # already closing this socket, or it is an old one
        self._drop_reason = reason
        logger.info("%s: closing the socket: %s", self._name, reason)
        self._spawn(conn.close(1000, _truncate_reason(reason)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_background(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _unless_stopped(self, awaitable: Awaitable[_T]) -> _T | None:
        """Await ``awaitable`` unless ``stop()`` comes first (then cancel it, return None)."""
        work = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait((work, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled():
            return None
        return work.result()

    def _notify_sink(self, method: str, argument: object) -> None:
        try:
            getattr(self._sink, method)(argument)
        except Exception as exc:
            self._sink_failed(method, exc)

    def _sink_failed(self, method: str, exc: Exception) -> None:
        """Count a sink exception; log it unless one was logged in the last few seconds."""
        self._sink_errors += 1
        now = self._clock.monotonic()
        last = self._sink_error_logged_at
        if last is not None and now - last < SINK_ERROR_LOG_INTERVAL_S:
            return
        not_logged = self._sink_errors - self._sink_errors_logged - 1
        self._sink_error_logged_at = now
        self._sink_errors_logged = self._sink_errors
        logger.error(
            "%s: sink.%s raised (%d more sink errors since the last report)",
            self._name,
            method,
            not_logged,
            exc_info=exc,
        )


def _refuse_unverified_tls(url: str, ssl_context: ssl.SSLContext | None) -> None:
    """Coinbase's own hosts only over verified TLS, as the REST client insists too: a context
    that skips certificate or hostname checks would hand the key's tokens to anyone in between."""
    parts = urlsplit(url)
    if not is_coinbase_host(parts.hostname):
        return
    if parts.scheme != "wss":
        raise ValueError(f"{parts.hostname} must be reached over wss, not {parts.scheme}")
    if ssl_context is not None and (
        ssl_context.verify_mode == ssl.CERT_NONE or not ssl_context.check_hostname
    ):
        raise ValueError(f"TLS certificate verification cannot be disabled for {parts.hostname}")


def _with_heartbeats(subscriptions: Sequence[Subscription]) -> tuple[Subscription, ...]:
    """The caller's subscriptions plus ``heartbeats``, which keeps quiet channels open."""
    result = tuple(subscriptions)
    for subscription in result:
        if not subscription.channel:
            raise ValueError("a subscription needs a channel name")
    if not any(s.channel == HEARTBEATS_CHANNEL for s in result):
        result += (Subscription(HEARTBEATS_CHANNEL),)
    return result


def _describe_close(exc: ConnectionClosed) -> str:
    received, sent = exc.rcvd, exc.sent
    if received is None and sent is None:
        return "connection lost without a close frame"
    # Whoever sent the first close frame closed the connection (the other side echoes it).
    if sent is not None and (received is None or exc.rcvd_then_sent is False):
        return _close_text("closed by the client", sent.code, sent.reason)
    assert received is not None
    return _close_text("closed by the server", received.code, received.reason)


def _close_text(who: str, code: int, reason: str) -> str:
    text = f"{who} with code {code}"
    return f"{text}: {reason}" if reason else text


def _truncate_reason(reason: str) -> str:
    encoded = reason.encode()
    if len(encoded) <= _MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
