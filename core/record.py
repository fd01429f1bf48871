"""Recording a Coinbase WebSocket feed to a JSONL file: every frame, unchanged, one per line.

The file is what replay mode reads back, so it holds exactly what the socket delivered,
including subscription acks, heartbeats and whatever the server says on a reconnect (where
``sequence_num`` starts again at 0, which is how a reader sees the reconnect). Readers must
split on ``b"\\n"`` only, not on every character ``str.splitlines`` treats as a line break.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import orjson

from core.clock import Clock
from core.coinbase.stream import ConnectionControl, Subscription
from core.coinbase.ws import CoinbaseWebSocket
from core.config import ExchangeSettings

logger = logging.getLogger(__name__)

# Channels a market-data or user socket accepts (docs/coinbase-protocol.md §3.3). A typo such
# as "heartbeat" makes Coinbase answer "authentication failure", so names are checked up front.
KNOWN_CHANNELS = frozenset(
    {
        "level2",
        "market_trades",
        "ticker",
        "ticker_batch",
        "candles",
        "status",
        "heartbeats",
        "user",
        "futures_balance_summary",
    }
)
# Channels that take no product ids.
CHANNELS_WITHOUT_PRODUCTS = frozenset({"heartbeats", "futures_balance_summary"})

DEFAULT_FLUSH_INTERVAL_S = 1.0


def subscriptions_for(channels: Iterable[str], product_ids: Sequence[str]) -> list[Subscription]:
    """One subscription per channel; product ids for the channels that take them."""
    subscriptions = []
    for channel in channels:
        if channel not in KNOWN_CHANNELS:
            known = ", ".join(sorted(KNOWN_CHANNELS))
            raise ValueError(f"unknown channel {channel!r}; known channels: {known}")
        products = () if channel in CHANNELS_WITHOUT_PRODUCTS else tuple(product_ids)
        subscriptions.append(Subscription(channel, products))
    return subscriptions


class RecordingSink:
    """A ``FrameSink`` that appends each frame plus ``\\n`` to a binary file.

    Writes go through the file's own buffer and are flushed every ``flush_interval_s`` (on
    the next frame after that), on every disconnect and by ``flush()``. It never raises into
    the connection: a failed write is kept in ``write_error`` and ends the recording through
    ``on_finished``, as does reaching ``max_messages``.
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        clock: Clock,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_messages: int | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        if max_messages is not None and max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._out = out
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._max_messages = max_messages
        self._on_finished = on_finished
        self._flushed_at = clock.monotonic()
        self._finished = False
        self.messages = 0
        self.bytes_written = 0
        self.rewritten = 0  # frames that held a newline and were written compacted
        self.connections = 0
        self.write_error: OSError | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    def on_connected(self, control: ConnectionControl) -> None:
        self.connections += 1

    def on_frame(self, frame: str | bytes) -> None:
        if self._finished:
            return
        data = frame.encode() if isinstance(frame, str) else frame
        if b"\n" in data:
            data = self._one_line(data)
        try:
            self._out.write(data)
            self._out.write(b"\n")
            now = self._clock.monotonic()
            if now - self._flushed_at >= self._flush_interval_s:
                self._out.flush()
                self._flushed_at = now
        except OSError as exc:
            self.write_error = exc
            logger.error("recording stopped: cannot write: %s", exc)
            self._finish()
            return
        self.messages += 1
        self.bytes_written += len(data) + 1
        if self._max_messages is not None and self.messages >= self._max_messages:
            self._finish()

    def on_disconnected(self, reason: str) -> None:
        self.flush()

    def flush(self) -> None:
        if self.write_error is not None:
            return
        try:
            self._out.flush()
        except OSError as exc:
            self.write_error = exc
            logger.error("recording stopped: cannot write: %s", exc)
            self._finish()
        self._flushed_at = self._clock.monotonic()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._on_finished is not None:
            self._on_finished()

    def _one_line(self, data: bytes) -> bytes:
        """The frame compacted onto one line (Coinbase's JSON is compact: this never happens).

        JSON can only hold a raw newline as whitespace, so re-serializing compactly keeps the
        content. A frame that is not JSON is stored as a JSON string, so the file stays one
        message per line and a replay sees a malformed message, which it was.
        """
        self.rewritten += 1
        try:
            return orjson.dumps(orjson.loads(data))
        except orjson.JSONDecodeError:
            logger.warning("recorded a non-JSON frame with a newline as a JSON string")
            return orjson.dumps(data.decode("utf-8", errors="replace"))


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    messages: int
    bytes_written: int
    reconnects: int
    duration_s: float
    last_error: str | None  # why the last socket ended (None if it never did)
    write_error: str | None  # set when the file could not be written
    # Connection tries that failed since the last one that worked (all of them when none did):
    # offline, "reconnects: 0" alone would hide seven refused tries.
    failed_tries: int = 0
    connected: bool = True  # False when no try ever reached the server

    def describe(self) -> str:
        megabytes = self.bytes_written / 1_000_000
        text = (
            f"recorded {self.messages} messages ({megabytes:.2f} MB) in {self.duration_s:.1f} s; "
        )
        if not self.connected:
            text += f"never connected ({_tries(self.failed_tries)} failed)"
        else:
            text += f"reconnects: {self.reconnects}"
            if self.failed_tries:
                text += f"; {_tries(self.failed_tries)} failed since the last connection"
        if self.last_error is not None:
            text += f"; last connection error: {self.last_error}"
        if self.write_error is not None:
            text += f"; write error: {self.write_error}"
        return text

    @property
    def failed(self) -> bool:
        """The file could not be written, or nothing was recorded because connecting failed."""
        return self.write_error is not None or (self.messages == 0 and self.last_error is not None)


async def record_feed(
    out: BinaryIO,
    *,
    url: str,
    subscriptions: Sequence[Subscription],
    clock: Clock,
    exchange: ExchangeSettings | None = None,
    token_factory: Callable[[], str] | None = None,
    duration_s: float | None = None,
    max_messages: int | None = None,
    stop: asyncio.Event | None = None,
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
) -> RecordingSummary:
    """Record ``url`` into ``out`` until ``duration_s`` passes, ``max_messages`` frames are
    written, ``stop`` is set or the file cannot be written; reconnects in between.

    ``exchange`` supplies the connection's limits (message size, silence timeout, backoff,
    connect timeout); the defaults when None.
    """
    limits = exchange if exchange is not None else ExchangeSettings()
    finished = stop if stop is not None else asyncio.Event()
    sink = RecordingSink(
        out,
        clock=clock,
        flush_interval_s=flush_interval_s,
        max_messages=max_messages,
        on_finished=finished.set,
    )
    connection = CoinbaseWebSocket(
        "record",
        url,
        subscriptions,
        sink,
        clock=clock,
        token_factory=token_factory,
        max_message_bytes=limits.ws_max_message_bytes,
        silence_timeout_s=limits.ws_silence_timeout_s,
        reconnect_initial_s=limits.reconnect_initial_s,
        reconnect_max_s=limits.reconnect_max_s,
        open_timeout_s=limits.connect_timeout_s,
    )
    started_at = clock.monotonic()
    runner = asyncio.create_task(connection.run())
    finish_waiter = asyncio.create_task(finished.wait())
    try:
        # run() only returns after stop(); waiting on it too means a bug in it cannot leave
        # us waiting forever.
        await asyncio.wait(
            (finish_waiter, runner), timeout=duration_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        finish_waiter.cancel()
        await connection.stop()
        await runner
        sink.flush()
    status = connection.status
    return RecordingSummary(
        messages=sink.messages,
        bytes_written=sink.bytes_written,
        reconnects=status.reconnects,
        duration_s=clock.monotonic() - started_at,
        last_error=status.last_error,
        write_error=str(sink.write_error) if sink.write_error is not None else None,
        failed_tries=status.attempt,
        connected=not (sink.messages == 0 and status.reconnects == 0 and status.attempt > 0),
    )


def _tries(count: int) -> str:
    return f"{count} connection {'try' if count == 1 else 'tries'}"
