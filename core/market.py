"""The market data service: raw market-data frames in, books / tickers / trades / candles out.

It is the ``FrameSink`` of the market-data connection, and the same ``on_frame`` path is driven
by replay files and by ``bench-book``, so what is measured is what runs live.

Integrity rules (the order book is only worth trading on if it is known to be right):

* ``sequence_num`` is checked per connection (one counter across all channels). A repeat of the
  last number: the frame is ignored. A gap, or a number going backwards (a new stream: see
  ``core.coinbase.sequence``): the whole connection is suspect, so every book is marked STALE,
  dropped, and a reconnect is requested (the new connection sends fresh snapshots).
* A crossed book or an invalid update for one product: that product is STALE, its book dropped,
  and level2 is resubscribed for it alone.
* A disconnect (including the connection's silence watchdog) or a new connection: every book is
  dropped; a new connection puts them in SYNCING until their snapshots arrive.
* A LIVE book without updates for ``stale_after_s`` (``check_staleness``, ~1 Hz) goes STALE;
  a book still without a snapshot that long after connecting is resubscribed.
* A book is never merged: a snapshot replaces it. Until that snapshot arrives, updates for a
  non-LIVE product are ignored. A snapshot makes the product LIVE.
* Malformed input is counted per kind and logged at most once per kind per minute; nothing
  raises out of ``on_frame``.

Once product details are known (``configure_products``, from the products endpoint):

* A configured product the exchange does not list (a typo, ``DOGE-EUR``) or refused (a zero
  increment) is set aside: STALE with a reason naming it, never resubscribed, while the
  others stream normally.
* USD/USDC aliases: Coinbase's market channels answer a ``BTC-USDC`` subscription with the
  ``BTC-USD`` data, keyed ``BTC-USD``. Frames are looked up by that wire key and re-keyed to
  the configured product, so a ``BTC-USDC`` book goes LIVE.
* A level2 price or size that is not a multiple of the product's increment (e.g. 40 decimals
  on a 0.01 tick) is refused: counted, the book resynced. The book checks it (``L2Book.
  set_increments``) where it already looks at a level: prices only when a level is new, sizes
  on every change, a multiply and a modulo each (docs/design.md §5).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from core.bad_input import BadInputCounter
from core.book import BID, DEFAULT_WINDOW, InvalidLevelError, L2Book, OffIncrementError
from core.clock import Clock
from core.coinbase.market_messages import (
    BadInputKind,
    BadMessage,
    CandlesMessage,
    ErrorMessage,
    HeartbeatMessage,
    IgnoredMessage,
    L2Event,
    L2Message,
    MarketMessage,
    MarketTradesMessage,
    SubscriptionsMessage,
    TickerMessage,
    WireDecodeError,
    classify_rejected,
    decode_wire,
    finish_wire,
)
from core.coinbase.sequence import SequenceTracker, SequenceVerdict
from core.coinbase.stream import ConnectionControl
from core.feed_state import BookStatus
from core.model import Candle, Product, Ticker, Trade

_log = logging.getLogger(__name__)

LEVEL2_CHANNEL = "level2"


@dataclass(frozen=True, slots=True)
class BookHealth:
    state: BookStatus
    reason: str | None
    since: float  # monotonic time of the last state change
    # Monotonic time of the last snapshot or of the FIRST update applied since the previous
    # health()/check_staleness() call. A clock read costs ~0.2 us here (a fifth of a frame's
    # budget), so the hot path reads the clock only once per observation period; the value can
    # be older than the real last update by at most that period (UI ~0.1 s, watchdog 1 s),
    # never newer: data age errs on the safe side.
    last_update_at: float | None
    resyncs: int


@dataclass(slots=True)
class MarketStats:
    """Plain counters (cheap to bump on the hot path)."""

    messages: int = 0
    l2_updates: int = 0
    gaps: int = 0
    restarts: int = 0  # sequence numbers that went backwards (a new stream)
    resyncs: int = 0
    duplicates: int = 0
    crossed: int = 0
    heartbeat_jumps: int = 0


_LIVE = BookStatus.LIVE
_Keyed = TypeVar("_Keyed", Ticker, Trade, Candle)
_SEQ_OK = SequenceVerdict.OK


class _ProductFeed:
    """Everything the service keeps for one product."""

    __slots__ = (
        "apply_updates",
        "book",
        "candles",
        "disabled",
        "last_update_at",
        "product_id",
        "reason",
        "resyncs",
        "since",
        "stamp_due",
        "state",
        "tickers",
        "trades",
        "wire_id",
    )

    def __init__(
        self, product_id: str, now: float, trades: int, candles: int, tickers: int, window: int
    ) -> None:
        self.product_id = product_id
        # The product id the market channels key this product's data by (its alias target
        # for a USDC product aliased to USD; itself otherwise).
        self.wire_id = product_id
        # Set aside: the exchange does not list it, or refused it (see configure_products).
        self.disabled = False
        self.book = L2Book(product_id, window=window)
        # Bound once: the book object lives as long as the feed (it is cleared, never replaced).
        self.apply_updates = self.book.apply_updates
        self.state = BookStatus.SYNCING
        self.reason: str | None = "waiting for a connection"
        self.since = now
        self.last_update_at: float | None = None
        # True when the next applied update should record its time (see BookHealth).
        self.stamp_due = True
        self.resyncs = 0
        self.trades: deque[Trade] = deque(maxlen=trades)
        self.candles: deque[Candle] = deque(maxlen=candles)
        self.tickers: deque[Ticker] = deque(maxlen=tickers)


class MarketDataService:
    """Turns market-data frames into per-product books, tickers, trades and candles."""

    def __init__(
        self,
        product_ids: Sequence[str],
        *,
        clock: Clock,
        trades_buffer: int = 1000,
        candles_buffer: int = 500,
        tickers_buffer: int = 500,
        stale_after_s: float = 10.0,
        book_window: int = DEFAULT_WINDOW,
    ) -> None:
        self._clock = clock
        self._monotonic = clock.monotonic
        self._stale_after_s = stale_after_s
        now = clock.monotonic()
        self._feeds: dict[str, _ProductFeed] = {
            product_id: _ProductFeed(
                product_id, now, trades_buffer, candles_buffer, tickers_buffer, book_window
            )
            for product_id in product_ids
        }
        # Feeds by the product id frames carry (see _ProductFeed.wire_id), without the
        # disabled ones; and its LIVE subset, kept by _set_state: one lookup answers both
        # "which feed" and "may its book be updated" on the hot path.
        self._by_wire: dict[str, _ProductFeed] = dict(self._feeds)
        self._live: dict[str, _ProductFeed] = {}
        self._sequence = SequenceTracker()
        self._control: ConnectionControl | None = None
        self._connected = False  # between on_connected and on_disconnected
        self.bad_input = BadInputCounter(clock, _log)
        self.stats = MarketStats()
        # Changes that did not come with a frame (connect, disconnect, watchdog); see version.
        self._changes = 0
        # Who wants to hear about new prints and book changes (the paper venue, strategies).
        self._trade_listeners: list[Callable[[Trade], None]] = []
        self._book_listeners: list[Callable[[str], None]] = []
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            TickerMessage: self._on_tickers,
            MarketTradesMessage: self._on_trades,
            CandlesMessage: self._on_candles,
            HeartbeatMessage: self._on_heartbeat,
            SubscriptionsMessage: self._on_subscriptions,
            IgnoredMessage: self._on_ignored,
            ErrorMessage: self._on_error,
            BadMessage: self._on_bad_message,
        }

    # ----------------------------------------------------------------- FrameSink

    def on_connected(self, control: ConnectionControl) -> None:
        self._control = control
        self._connected = True
        self._sequence.reset()
        for feed in self._feeds.values():
            if not feed.disabled:
                reason = f"connected via {control.name}: awaiting snapshot"
                self._drop(feed, BookStatus.SYNCING, reason)
        self._changes += 1

    def on_disconnected(self, reason: str) -> None:
        self._connected = False
        for feed in self._feeds.values():
            if not feed.disabled:
                self._drop(feed, BookStatus.STALE, f"disconnected: {reason}")
        self._changes += 1

    def on_frame(self, frame: str | bytes) -> None:
        # Performance: this runs for every frame (bench-book measures it). The level2 path is
        # written inline, without a Python call it could avoid: decode in C, sequence check
        # against ``next_expected``, and a clock read only when a reader asked since the last
        # one (``stamp_due``; see BookHealth.last_update_at).
        try:
            stats = self.stats
            stats.messages += 1
            try:
                message = decode_wire(frame)
            except WireDecodeError as exc:
                self._dispatch(classify_rejected(frame, str(exc)))
                return
            if type(message) is not L2Message:
                self._dispatch(finish_wire(message))
                return
            sequence = self._sequence
            seq = message.sequence_num
            if seq == sequence.next_expected:
                sequence.next_expected = seq + 1
            else:
                verdict = sequence.observe(seq)
                if verdict is not _SEQ_OK and not self._on_sequence_fault(verdict):
                    return
            live = self._live
            for event in message.events:
                updates = event.updates
                if event.type == "update":
                    feed = live.get(event.product_id)
                    if feed is None:
                        # Not LIVE (no book to apply to until its next snapshot) or unknown.
                        if event.product_id not in self._by_wire:
                            self.bad_input.record(BadInputKind.UNKNOWN_PRODUCT, event.product_id)
                        continue
                    try:
                        crossed = feed.apply_updates(updates)
                    except InvalidLevelError as exc:
                        self._on_invalid_level(feed, "update", exc)
                        continue
                    if crossed:
                        stats.crossed += 1
                        self._resync(feed, "crossed book")
                        continue
                    if feed.stamp_due:
                        feed.last_update_at = self._monotonic()
                        feed.stamp_due = False
                else:
                    feed = self._by_wire.get(event.product_id)
                    if feed is None:
                        self.bad_input.record(BadInputKind.UNKNOWN_PRODUCT, event.product_id)
                        continue
                    self._apply_snapshot(feed, event)
                stats.l2_updates += len(updates)
            if self._book_listeners:
                self._notify_book(message)
        except Exception as exc:  # a bug must not kill the feed, nor leave a book half-updated
            self._on_internal_error(exc)

    def _on_internal_error(self, exc: Exception) -> None:
        self.bad_input.record(BadInputKind.INTERNAL_ERROR, repr(exc))
        _log.debug("error handling a market frame", exc_info=True)
        # Whatever the frame was doing is unknown: no book is trusted until a fresh snapshot.
        reason = f"internal error: {exc!r}"
        for feed in self._feeds.values():
            if feed.state is _LIVE:
                self._drop(feed, BookStatus.STALE, reason)
        if self._control is not None:
            self._control.request_reconnect(reason)
        self._changes += 1

    def _dispatch(self, message: MarketMessage) -> None:
        self._handlers[type(message)](message)

    # ----------------------------------------------------------------- level2

    def _apply_snapshot(self, feed: _ProductFeed, event: L2Event) -> None:
        updates = event.updates
        bids = [(u.price, u.size) for u in updates if u.side == BID]
        asks = [(u.price, u.size) for u in updates if u.side != BID]
        try:
            feed.book.apply_snapshot(bids, asks)
        except InvalidLevelError as exc:
            self._on_invalid_level(feed, "snapshot", exc)
            return
        if feed.book.is_crossed():
            self.stats.crossed += 1
            self._resync(feed, "crossed snapshot")
            return
        now = self._monotonic()
        self._set_state(feed, BookStatus.LIVE, None, now)
        feed.last_update_at = now
        feed.stamp_due = False

    def _on_sequence_fault(self, verdict: SequenceVerdict) -> bool:
        """Handle a non-OK sequence verdict. True if the frame should still be processed."""
        if verdict is SequenceVerdict.RESTARTED:
            self.stats.restarts += 1
            restart = self._sequence.last_restart
            last, new = restart if restart is not None else (-1, -1)
            reason = f"sequence went backwards ({last} -> {new}): a new stream"
        else:
            gap = self._sequence.last_gap
            if verdict is not SequenceVerdict.GAP or gap is None:
                self.stats.duplicates += 1
                return False
            self.stats.gaps += 1
            reason = f"sequence gap: expected {gap.expected}, got {gap.received}"
        _log.warning("%s; dropping every book", reason)
        for feed in self._by_wire.values():
            if feed.state is _LIVE:
                feed.resyncs += 1  # rebuilt from the snapshot the reconnect brings
                self.stats.resyncs += 1
            self._drop(feed, BookStatus.STALE, reason)
        if self._control is not None:
            self._control.request_reconnect(reason)
        self._changes += 1
        # The frame that revealed the gap is itself valid: a snapshot in it is a fresh book.
        return True

    # ----------------------------------------------------------------- other channels

    def _observe_sequence(self, sequence_num: int) -> bool:
        """Sequence check for non-level2 frames. True if the frame should be processed."""
        verdict = self._sequence.observe(sequence_num)
        return verdict is _SEQ_OK or self._on_sequence_fault(verdict)

    def _on_tickers(self, message: TickerMessage) -> None:
        if not self._observe_sequence(message.sequence_num):
            return
        for ticker in message.tickers:
            feed = self._feed_or_count(ticker.product_id)
            if feed is not None:
                feed.tickers.append(_rekeyed(ticker, feed))
        self._changes += 1

    def _on_trades(self, message: MarketTradesMessage) -> None:
        if not self._observe_sequence(message.sequence_num):
            return
        # Oldest first, whatever order the exchange batched them in.
        trades = sorted(message.trades, key=_trade_order)
        if message.is_snapshot:
            # A (re)subscription resends recent trades: replace the tape, never duplicate it.
            for product_id in {trade.product_id for trade in trades}:
                feed = self._by_wire.get(product_id)
                if feed is not None:
                    feed.trades.clear()
        kept: list[Trade] = []
        for trade in trades:
            feed = self._feed_or_count(trade.product_id)
            if feed is not None:
                trade = _rekeyed(trade, feed)
                feed.trades.append(trade)
                kept.append(trade)
        self._changes += 1
        # Only new prints: a snapshot replays history, which must not fill paper orders.
        if not message.is_snapshot and self._trade_listeners:
            for trade in kept:
                self._notify(self._trade_listeners, trade)

    def _on_candles(self, message: CandlesMessage) -> None:
        if not self._observe_sequence(message.sequence_num):
            return
        for candle in sorted(message.candles, key=lambda c: c.start):
            feed = self._feed_or_count(candle.product_id)
            if feed is None:
                continue
            candle = _rekeyed(candle, feed)
            candles = feed.candles
            if candles and candles[-1].start == candle.start:
                candles[-1] = candle  # the current bucket, pushed again with new values
            elif not candles or candles[-1].start < candle.start:
                candles.append(candle)
        self._changes += 1

    def _on_heartbeat(self, message: HeartbeatMessage) -> None:
        if not self._observe_sequence(message.sequence_num):
            return
        previous = self._sequence.last_heartbeat
        if not self._sequence.observe_heartbeat(message.counter):
            self.stats.heartbeat_jumps += 1
            _log.warning("heartbeat counter jumped from %s to %s", previous, message.counter)

    def _on_subscriptions(self, message: SubscriptionsMessage) -> None:
        if not self._observe_sequence(message.sequence_num):
            return
        _log.debug("subscriptions: %s", dict(message.subscriptions))

    def _on_ignored(self, message: IgnoredMessage) -> None:
        self._observe_sequence(message.sequence_num)

    def _on_error(self, message: ErrorMessage) -> None:
        self.bad_input.record(BadInputKind.SERVER_ERROR, message.message)
        if self._control is not None:
            self._control.request_reconnect(f"exchange error: {message.message}")

    def _on_bad_message(self, message: BadMessage) -> None:
        self.bad_input.record(message.kind, f"{message.channel or '?'}: {message.detail}")
        if message.sequence_num is not None and not self._observe_sequence(message.sequence_num):
            return
        if message.channel != "l2_data":
            return
        # Updates in this frame were not applied: every book it was about is now wrong.
        reason = f"bad l2 message ({message.kind}): {message.detail}"
        product_ids = message.product_ids or tuple(self._by_wire)
        for product_id in product_ids:
            feed = self._by_wire.get(product_id)
            if feed is not None and feed.state is _LIVE:
                self._resync(feed, reason)

    def _on_invalid_level(self, feed: _ProductFeed, what: str, exc: InvalidLevelError) -> None:
        if isinstance(exc, OffIncrementError):
            self.bad_input.record(BadInputKind.TOO_PRECISE, f"l2_data {what}: {exc}")
        self._resync(feed, f"bad {what}: {exc}")

    def _feed_or_count(self, product_id: str) -> _ProductFeed | None:
        feed = self._by_wire.get(product_id)
        if feed is None:
            self.bad_input.record(BadInputKind.UNKNOWN_PRODUCT, product_id)
        return feed

    # ----------------------------------------------------------------- listeners

    def add_trade_listener(self, listener: Callable[[Trade], None]) -> None:
        """Call ``listener`` with every NEW public trade (not the history a subscribe resends)."""
        self._trade_listeners.append(listener)

    def add_book_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(product_id)`` after each applied level2 event (snapshots included)."""
        self._book_listeners.append(listener)

    def _notify_book(self, message: L2Message) -> None:
        for event in message.events:
            feed = self._live.get(event.product_id)
            if feed is not None:
                self._notify(self._book_listeners, feed.product_id)

    def _notify(self, listeners: Sequence[Callable[[Any], None]], argument: Any) -> None:
        for listener in listeners:
            try:
                listener(argument)
            except Exception as exc:  # a listener's bug must not stop market data
                self.bad_input.record(BadInputKind.INTERNAL_ERROR, f"listener: {exc!r}")

    # ----------------------------------------------------------------- state changes

    def _set_state(
        self, feed: _ProductFeed, state: BookStatus, reason: str | None, now: float
    ) -> None:
        if feed.state is not state or feed.reason != reason:
            feed.state = state
            if state is _LIVE:
                self._live[feed.wire_id] = feed
            else:
                self._live.pop(feed.wire_id, None)
            feed.reason = reason
            feed.since = now
            self._changes += 1

    def _drop(self, feed: _ProductFeed, state: BookStatus, reason: str) -> None:
        feed.book.clear()
        self._set_state(feed, state, reason, self._monotonic())

    def _resync(self, feed: _ProductFeed, reason: str) -> None:
        """One product's book is wrong: drop it and ask for a fresh snapshot of it alone."""
        _log.warning("%s: %s; resyncing", feed.product_id, reason)
        self._drop(feed, BookStatus.STALE, reason)
        feed.resyncs += 1
        self.stats.resyncs += 1
        if self._control is not None:
            self._control.request_resubscribe(LEVEL2_CHANNEL, [feed.product_id])

    def check_staleness(self) -> None:
        """Call about once a second: a LIVE book silent for ``stale_after_s`` is resynced, and
        so is a connected book still waiting for its snapshot after that long. A snapshot lost
        on the way (e.g. sent into a silence) would otherwise leave the book SYNCING for good:
        updates are ignored until a snapshot comes, and nothing else would ask for one."""
        now = self._monotonic()
        for feed in self._feeds.values():
            if feed.disabled:
                continue  # set aside by configure_products: nothing to ask for
            if feed.state is not _LIVE:
                waited = now - feed.since
                if self._connected and waited > self._stale_after_s:
                    self._resync(feed, f"no snapshot for {waited:.1f}s")
                continue
            feed.stamp_due = True
            last = feed.last_update_at if feed.last_update_at is not None else feed.since
            if now - last > self._stale_after_s:
                self._resync(feed, f"no update for {now - last:.1f}s")

    # ----------------------------------------------------------------- products

    def configure_products(self, products: Mapping[str, Product]) -> list[str]:
        """Apply what the products endpoint said about the configured products (see the
        module docstring): set aside the ones it does not list, follow aliases, and turn on
        the level2 decimals check. ``products`` holds the usable products by id (refused ones
        absent). Returns one line per product set aside or re-keyed, for the event log."""
        notes: list[str] = []
        for product_id, feed in self._feeds.items():
            product = products.get(product_id)
            if product is None:
                self._set_aside(feed, "not listed by the exchange (or refused): not streamed")
                notes.append(f"{product_id}: {feed.reason}")
                continue
            alias = product.alias
            if alias and alias != product_id:
                if alias in self._feeds:
                    reason = f"same market data as {alias} (its alias): use the {alias} book"
                    self._set_aside(feed, reason)
                    notes.append(f"{product_id}: {reason}")
                    continue
                if feed.wire_id != alias:
                    self._live.pop(feed.wire_id, None)
                    feed.wire_id = alias
                    if feed.state is _LIVE:
                        self._live[alias] = feed
                    notes.append(f"{product_id}: market data arrives keyed {alias} (alias)")
        self._by_wire = {f.wire_id: f for f in self._feeds.values() if not f.disabled}
        self._set_precision([products[pid] for pid in self._feeds if pid in products])
        # Books still waiting were perhaps sent under their alias before it was known.
        for feed in self._by_wire.values():
            if feed.wire_id != feed.product_id and feed.state is not _LIVE and self._connected:
                self._resync(feed, "alias learned: asking for a fresh snapshot")
        self._changes += 1
        return notes

    def _set_aside(self, feed: _ProductFeed, reason: str) -> None:
        feed.disabled = True
        self._drop(feed, BookStatus.STALE, reason)

    def _set_precision(self, products: Sequence[Product]) -> None:
        for product in products:
            feed = self._feeds[product.product_id]
            feed.book.set_increments(product.price_increment, product.base_increment)

    # ----------------------------------------------------------------- reading

    @property
    def version(self) -> int:
        """Bumps whenever anything a reader could see may have changed (the UI skips work when
        it did not). Every frame counts as a change: cheaper on the hot path than deciding."""
        return self.stats.messages + self._changes

    @property
    def product_ids(self) -> tuple[str, ...]:
        return tuple(self._feeds)

    def book(self, product_id: str) -> L2Book:
        return self._feeds[product_id].book

    def health(self, product_id: str) -> BookHealth:
        feed = self._feeds[product_id]
        feed.stamp_due = True
        return BookHealth(feed.state, feed.reason, feed.since, feed.last_update_at, feed.resyncs)

    def trades(self, product_id: str) -> Sequence[Trade]:
        return tuple(self._feeds[product_id].trades)

    def ticker(self, product_id: str) -> Ticker | None:
        tickers = self._feeds[product_id].tickers
        return tickers[-1] if tickers else None

    def tickers(self, product_id: str) -> Sequence[Ticker]:
        return tuple(self._feeds[product_id].tickers)

    def candles(self, product_id: str) -> Sequence[Candle]:
        return tuple(self._feeds[product_id].candles)


def _rekeyed(item: _Keyed, feed: _ProductFeed) -> _Keyed:
    """``item`` under the configured product id when it arrived under an alias."""
    if feed.wire_id == feed.product_id:
        return item
    return dataclasses.replace(item, product_id=feed.product_id)


def _trade_order(trade: Trade) -> tuple[float, str]:
    return (trade.time.timestamp() if trade.time is not None else 0.0, trade.trade_id)
