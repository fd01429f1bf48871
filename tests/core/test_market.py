"""Tests for core.market.MarketDataService: frames in, books and health out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from core.book import BookDepth
from core.clock import ManualClock
from core.coinbase.market_messages import BadInputKind, HeartbeatMessage
from core.feed_state import BookStatus
from core.market import MarketDataService
from core.model import Side


class RecordingControl:
    """A ConnectionControl that records what the service asked for."""

    name = "test-socket"

    def __init__(self) -> None:
        self.reconnects: list[str] = []
        self.resubscribes: list[tuple[str, tuple[str, ...]]] = []

    def request_reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)

    def request_resubscribe(self, channel: str, product_ids: Sequence[str]) -> None:
        self.resubscribes.append((channel, tuple(product_ids)))


class Frames:
    """Builds Coinbase market frames with one sequence counter, like one connection."""

    def __init__(self) -> None:
        self.seq = -1

    def _envelope(self, channel: str, events: list[Any], seq: int | None) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return orjson.dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": "2026-01-01T00:00:00.000000Z",
                "sequence_num": seq,
                "events": events,
            }
        )

    def snapshot(
        self,
        product: str,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
        seq: int | None = None,
    ) -> bytes:
        updates = [_level("bid", p, s) for p, s in bids] + [_level("offer", p, s) for p, s in asks]
        return self._envelope(
            "l2_data", [{"type": "snapshot", "product_id": product, "updates": updates}], seq
        )

    def update(self, product: str, *levels: tuple[str, str, str], seq: int | None = None) -> bytes:
        updates = [_level(side, price, size) for side, price, size in levels]
        return self._envelope(
            "l2_data", [{"type": "update", "product_id": product, "updates": updates}], seq
        )

    def heartbeat(self, counter: int, seq: int | None = None) -> bytes:
        return self._envelope("heartbeats", [{"heartbeat_counter": str(counter)}], seq)

    def channel(self, channel: str, events: list[Any], seq: int | None = None) -> bytes:
        return self._envelope(channel, events, seq)


def _level(side: str, price: str, size: str) -> dict[str, str]:
    return {
        "side": side,
        "event_time": "2026-01-01T00:00:00Z",
        "price_level": price,
        "new_quantity": size,
    }


BTC_BIDS = [("100.00", "1"), ("99.00", "2")]
BTC_ASKS = [("101.00", "1"), ("102.00", "2")]


@pytest.fixture
def control() -> RecordingControl:
    """A connection control that records reconnect/resubscribe requests."""
    return RecordingControl()


@pytest.fixture
def frames() -> Frames:
    """A frame builder with a fresh sequence counter."""
    return Frames()


@pytest.fixture
def service(clock: ManualClock, control: RecordingControl) -> MarketDataService:
    """A service for BTC-USD and ETH-USD, already connected, with small buffers."""
    svc = MarketDataService(
        ["BTC-USD", "ETH-USD"], clock=clock, trades_buffer=3, candles_buffer=2, tickers_buffer=2
    )
    svc.on_connected(control)
    return svc


@pytest.fixture
def live(service: MarketDataService, frames: Frames) -> MarketDataService:
    """The service with a subscriptions ack and snapshots for both products: both LIVE."""
    service.on_frame(
        frames.channel("subscriptions", [{"subscriptions": {"level2": ["BTC-USD", "ETH-USD"]}}])
    )
    service.on_frame(frames.snapshot("BTC-USD", BTC_BIDS, BTC_ASKS))
    service.on_frame(frames.snapshot("ETH-USD", [("10.00", "5")], [("11.00", "5")]))
    assert service.health("BTC-USD").state is BookStatus.LIVE
    assert service.health("ETH-USD").state is BookStatus.LIVE
    return service


def test_starts_syncing_and_a_snapshot_makes_it_live(
    service: MarketDataService, frames: Frames, clock: ManualClock
) -> None:
    health = service.health("BTC-USD")
    assert health.state is BookStatus.SYNCING
    assert health.last_update_at is None
    assert service.product_ids == ("BTC-USD", "ETH-USD")
    clock.advance(2.0)
    v0 = service.version
    service.on_frame(frames.snapshot("BTC-USD", BTC_BIDS, BTC_ASKS))
    health = service.health("BTC-USD")
    assert health.state is BookStatus.LIVE
    assert health.reason is None
    assert health.since == 2.0
    assert health.last_update_at == 2.0
    assert service.book("BTC-USD").best_bid() == (100.0, 1.0)
    assert service.version > v0
    assert service.stats.messages == 1
    assert service.stats.l2_updates == 4


def test_updates_apply_and_update_health(
    live: MarketDataService, frames: Frames, clock: ManualClock
) -> None:
    clock.advance(1.0)
    v0 = live.version
    live.on_frame(frames.update("BTC-USD", ("bid", "100.50", "3"), ("offer", "101.00", "0")))
    book = live.book("BTC-USD")
    assert book.best_bid() == (100.5, 3.0)
    assert book.best_ask() == (102.0, 2.0)
    assert live.version > v0
    assert live.health("BTC-USD").last_update_at == 1.0
    clock.advance(1.0)
    # No new update: the time of the last one stays.
    assert live.health("BTC-USD").last_update_at == 1.0


def test_updates_before_the_snapshot_are_ignored(
    service: MarketDataService, frames: Frames
) -> None:
    service.on_frame(frames.update("BTC-USD", ("bid", "100", "1")))
    assert service.book("BTC-USD").depth == BookDepth(0, 0)
    assert service.health("BTC-USD").state is BookStatus.SYNCING


def test_sequence_gap_drops_every_book_and_reconnects(
    live: MarketDataService, frames: Frames, control: RecordingControl
) -> None:
    frames.seq += 5  # five messages lost
    live.on_frame(frames.update("BTC-USD", ("bid", "100.5", "1")))
    for product in ("BTC-USD", "ETH-USD"):
        health = live.health(product)
        assert health.state is BookStatus.STALE
        assert health.reason is not None and "sequence gap" in health.reason
        assert live.book(product).depth == BookDepth(0, 0)
    assert live.stats.gaps == 1
    assert len(control.reconnects) == 1 and "expected 3, got 8" in control.reconnects[0]
    # Updates are ignored until a snapshot; a snapshot (never merged) makes it LIVE again.
    live.on_frame(frames.update("BTC-USD", ("bid", "100.7", "1")))
    assert live.book("BTC-USD").depth == BookDepth(0, 0)
    live.on_frame(frames.snapshot("BTC-USD", [("90.00", "1")], [("91.00", "1")]))
    assert live.health("BTC-USD").state is BookStatus.LIVE
    assert live.book("BTC-USD").top(5) == ([(90.0, 1.0)], [(91.0, 1.0)])
    assert live.health("ETH-USD").state is BookStatus.STALE


def test_a_snapshot_in_the_gap_frame_is_used(live: MarketDataService, frames: Frames) -> None:
    frames.seq += 3
    live.on_frame(frames.snapshot("ETH-USD", [("9.00", "1")], [("12.00", "1")]))
    assert live.health("ETH-USD").state is BookStatus.LIVE
    assert live.health("BTC-USD").state is BookStatus.STALE


def test_duplicate_or_stale_sequence_is_ignored(live: MarketDataService, frames: Frames) -> None:
    before = live.book("BTC-USD").top(5)
    live.on_frame(frames.update("BTC-USD", ("bid", "100.5", "1"), seq=frames.seq))
    assert live.book("BTC-USD").top(5) == before
    assert live.stats.duplicates == 1
    assert live.health("BTC-USD").state is BookStatus.LIVE
    # A duplicate heartbeat is ignored the same way.
    live.on_frame(frames.heartbeat(1, seq=frames.seq))
    assert live.stats.duplicates == 2


def test_a_sequence_going_backwards_is_a_new_stream_and_resyncs(
    live: MarketDataService, frames: Frames, control: RecordingControl
) -> None:
    for _ in range(20):
        live.on_frame(frames.heartbeat(1))
    # The numbering starts over below the last number: new data, not duplicates.
    frames.seq = -1
    live.on_frame(frames.update("BTC-USD", ("bid", "100.50", "1")))
    assert live.stats.restarts == 1 and live.stats.duplicates == 0
    for product in ("BTC-USD", "ETH-USD"):
        health = live.health(product)
        assert health.state is BookStatus.STALE
        assert health.reason is not None and "backwards" in health.reason
    assert control.reconnects and "new stream" in control.reconnects[-1]
    # The new stream's snapshot rebuilds the book, and its updates are applied, not dropped.
    live.on_frame(frames.snapshot("BTC-USD", BTC_BIDS, BTC_ASKS))
    live.on_frame(frames.update("BTC-USD", ("bid", "100.50", "3")))
    assert live.health("BTC-USD").state is BookStatus.LIVE
    assert live.book("BTC-USD").top(1)[0] == [(100.5, 3.0)]


def test_crossed_update_resyncs_only_that_product(
    live: MarketDataService, frames: Frames, control: RecordingControl
) -> None:
    live.on_frame(frames.update("BTC-USD", ("bid", "101.50", "1")))
    health = live.health("BTC-USD")
    assert health.state is BookStatus.STALE
    assert health.reason == "crossed book"
    assert health.resyncs == 1
    assert live.book("BTC-USD").depth == BookDepth(0, 0)
    assert control.resubscribes == [("level2", ("BTC-USD",))]
    assert live.stats.crossed == 1 and live.stats.resyncs == 1
    assert live.health("ETH-USD").state is BookStatus.LIVE
    assert control.reconnects == []


def test_crossed_snapshot_is_not_trusted(live: MarketDataService, frames: Frames) -> None:
    live.on_frame(frames.snapshot("ETH-USD", [("12.00", "1")], [("11.00", "1")]))
    health = live.health("ETH-USD")
    assert health.state is BookStatus.STALE
    assert health.reason == "crossed snapshot"


def test_bad_update_resyncs_that_product_and_keeps_counting(
    live: MarketDataService, frames: Frames, control: RecordingControl
) -> None:
    live.on_frame(frames.update("ETH-USD", ("bid", "10.5", "1"), ("offer", "11.5", "-3")))
    assert live.bad_input.count(BadInputKind.NEGATIVE_NUMBER) == 1
    health = live.health("ETH-USD")
    assert health.state is BookStatus.STALE
    assert health.reason is not None and "negative_number" in health.reason
    assert live.book("ETH-USD").depth == BookDepth(0, 0)
    assert control.resubscribes == [("level2", ("ETH-USD",))]
    # The bad frame's sequence number was counted: the next frame is not a gap.
    live.on_frame(frames.update("BTC-USD", ("bid", "100.5", "1")))
    assert live.stats.gaps == 0
    assert live.book("BTC-USD").best_bid() == (100.5, 1.0)


def test_bad_l2_frame_without_a_product_resyncs_every_live_book(
    live: MarketDataService, frames: Frames, control: RecordingControl
) -> None:
    live.on_frame(frames.channel("l2_data", [{"type": "update", "updates": []}]))
    assert live.bad_input.count(BadInputKind.MISSING_FIELD) == 1
    assert {p for _, (p,) in control.resubscribes} == {"BTC-USD", "ETH-USD"}
    assert live.health("BTC-USD").state is BookStatus.STALE


def test_malformed_frame_is_counted_and_its_lost_number_is_a_gap(
    live: MarketDataService, frames: Frames, control: RecordingControl
) -> None:
    live.on_frame(b'{"channel":"l2_data","sequence_num":')
    frames.seq += 1  # that frame carried a number nobody could read
    assert live.bad_input.count(BadInputKind.MALFORMED_JSON) == 1
    assert live.health("BTC-USD").state is BookStatus.LIVE
    live.on_frame(frames.update("BTC-USD", ("bid", "100.5", "1")))
    assert live.stats.gaps == 1
    assert control.reconnects


def test_unknown_channel_and_product_are_counted(live: MarketDataService, frames: Frames) -> None:
    live.on_frame(frames.channel("rfq_matches", [{"type": "snapshot", "matches": []}]))
    live.on_frame(frames.update("DOGE-USD", ("bid", "1", "1")))
    live.on_frame(frames.snapshot("DOGE-USD", [("1", "1")], [("2", "1")]))
    assert live.bad_input.count(BadInputKind.UNKNOWN_CHANNEL) == 1
    assert live.bad_input.count(BadInputKind.UNKNOWN_PRODUCT) == 2
    assert live.stats.gaps == 0


def test_exchange_error_requests_a_reconnect(
    live: MarketDataService, control: RecordingControl
) -> None:
    live.on_frame(b'{"type":"error","message":"authentication failure"}')
    assert live.bad_input.count(BadInputKind.SERVER_ERROR) == 1
    assert control.reconnects == ["exchange error: authentication failure"]


def test_disconnect_drops_every_book(live: MarketDataService) -> None:
    live.on_disconnected("silence for 5.0s")
    for product in live.product_ids:
        health = live.health(product)
        assert health.state is BookStatus.STALE
        assert health.reason == "disconnected: silence for 5.0s"
        assert live.book(product).depth == BookDepth(0, 0)


def test_reconnect_restarts_sequence_and_waits_for_snapshots(
    live: MarketDataService, control: RecordingControl
) -> None:
    live.on_connected(control)
    assert live.health("BTC-USD").state is BookStatus.SYNCING
    fresh = Frames()  # the new connection numbers from 0 again
    live.on_frame(fresh.snapshot("BTC-USD", BTC_BIDS, BTC_ASKS))
    assert live.stats.gaps == 0
    assert live.health("BTC-USD").state is BookStatus.LIVE


def test_watchdog_resyncs_a_silent_book(
    live: MarketDataService, frames: Frames, clock: ManualClock, control: RecordingControl
) -> None:
    clock.advance(6.0)
    live.on_frame(frames.update("BTC-USD", ("bid", "100.5", "1")))
    live.check_staleness()  # observes BTC's update at t=6
    clock.advance(5.0)
    live.check_staleness()  # ETH silent for 11 s > 10 s; BTC only 5 s
    assert live.health("ETH-USD").state is BookStatus.STALE
    assert live.health("ETH-USD").reason == "no update for 11.0s"
    assert live.health("BTC-USD").state is BookStatus.LIVE
    assert control.resubscribes == [("level2", ("ETH-USD",))]
    clock.advance(5.5)
    live.check_staleness()
    assert live.health("BTC-USD").state is BookStatus.STALE


def test_heartbeat_jumps_are_counted_and_reset_on_connect(
    live: MarketDataService,
    frames: Frames,
    control: RecordingControl,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live.on_frame(frames.heartbeat(10))
    live.on_frame(frames.heartbeat(11))
    assert live.stats.heartbeat_jumps == 0
    live.on_frame(frames.heartbeat(14))
    assert live.stats.heartbeat_jumps == 1
    assert "heartbeat counter jumped from 11 to 14" in caplog.text
    live.on_connected(control)
    live.on_frame(Frames().heartbeat(500))
    assert live.stats.heartbeat_jumps == 1


def test_tickers_trades_and_candles(live: MarketDataService, frames: Frames) -> None:
    def ticker(price: str) -> dict[str, Any]:
        return {"type": "update", "tickers": [{"product_id": "BTC-USD", "price": price}]}

    assert live.ticker("BTC-USD") is None
    for price in ("1", "2", "3"):
        live.on_frame(frames.channel("ticker", [ticker(price)]))
    latest = live.ticker("BTC-USD")
    assert latest is not None and latest.price == 3.0
    assert [t.price for t in live.tickers("BTC-USD")] == [2.0, 3.0]  # buffer of 2

    def trade(trade_id: str, second: int) -> dict[str, str]:
        return {
            "trade_id": trade_id,
            "product_id": "BTC-USD",
            "price": "100",
            "size": "0.1",
            "side": "SELL",
            "time": f"2026-01-01T00:00:{second:02d}Z",
        }

    # Snapshot arrives newest first; the tape is kept oldest first.
    live.on_frame(
        frames.channel(
            "market_trades", [{"type": "snapshot", "trades": [trade("2", 2), trade("1", 1)]}]
        )
    )
    live.on_frame(
        frames.channel(
            "market_trades", [{"type": "update", "trades": [trade("3", 3), trade("4", 4)]}]
        )
    )
    assert [t.trade_id for t in live.trades("BTC-USD")] == ["2", "3", "4"]  # buffer of 3
    assert live.trades("BTC-USD")[0].side is Side.SELL
    # A new snapshot (after a resubscribe) replaces the tape instead of duplicating it.
    live.on_frame(
        frames.channel("market_trades", [{"type": "snapshot", "trades": [trade("4", 4)]}])
    )
    assert [t.trade_id for t in live.trades("BTC-USD")] == ["4"]

    def candle(start: int, close: str) -> dict[str, str]:
        return {
            "start": str(start),
            "open": "1",
            "high": "5",
            "low": "1",
            "close": close,
            "volume": "1",
            "product_id": "BTC-USD",
        }

    live.on_frame(
        frames.channel(
            "candles", [{"type": "snapshot", "candles": [candle(300, "2"), candle(0, "1")]}]
        )
    )
    live.on_frame(frames.channel("candles", [{"type": "update", "candles": [candle(300, "3")]}]))
    live.on_frame(
        frames.channel("candles", [{"type": "update", "candles": [candle(0, "9")]}])
    )  # older: ignored
    assert [(c.start, c.close) for c in live.candles("BTC-USD")] == [(0, 1.0), (300, 3.0)]
    live.on_frame(frames.channel("candles", [{"type": "update", "candles": [candle(600, "4")]}]))
    assert [c.start for c in live.candles("BTC-USD")] == [300, 600]  # buffer of 2

    # Data for products nobody subscribed is counted, not stored.
    live.on_frame(
        frames.channel("ticker", [{"tickers": [{"product_id": "XRP-USD", "price": "1"}]}])
    )
    assert live.bad_input.count(BadInputKind.UNKNOWN_PRODUCT) == 1
    assert live.stats.gaps == 0


def test_a_bug_in_a_handler_never_escapes(
    live: MarketDataService,
    frames: Frames,
    control: RecordingControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(message: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(live._handlers, HeartbeatMessage, broken)
    live.on_frame(frames.heartbeat(1))
    assert live.bad_input.count(BadInputKind.INTERNAL_ERROR) == 1
    # What the failed frame did is unknown: no book stays in use.
    health = live.health("BTC-USD")
    assert health.state is BookStatus.STALE
    assert health.reason == "internal error: RuntimeError('boom')"
    assert live.book("BTC-USD").depth == BookDepth(0, 0)
    assert control.reconnects == ["internal error: RuntimeError('boom')"]


def test_unknown_product_lookups_raise_key_error(service: MarketDataService) -> None:
    with pytest.raises(KeyError):
        service.book("NOPE-USD")


def test_duplicates_on_every_channel_are_ignored(live: MarketDataService, frames: Frames) -> None:
    old = frames.seq  # the last number again
    trade = {"trade_id": "1", "product_id": "BTC-USD", "price": "1", "size": "1", "side": "BUY"}
    candle = {
        "start": "0",
        "open": "1",
        "high": "1",
        "low": "1",
        "close": "1",
        "volume": "1",
        "product_id": "BTC-USD",
    }
    live.on_frame(
        frames.channel("ticker", [{"tickers": [{"product_id": "BTC-USD", "price": "1"}]}], seq=old)
    )
    live.on_frame(frames.channel("market_trades", [{"trades": [trade]}], seq=old))
    live.on_frame(frames.channel("candles", [{"candles": [candle]}], seq=old))
    live.on_frame(frames.channel("subscriptions", [{"subscriptions": {}}], seq=old))
    live.on_frame(frames.update("BTC-USD", ("bid", "1", "-1"), seq=old))  # bad and stale
    assert live.stats.duplicates == 5
    assert live.ticker("BTC-USD") is None
    assert live.trades("BTC-USD") == ()
    assert live.candles("BTC-USD") == ()
    assert live.health("BTC-USD").state is BookStatus.LIVE


def test_unknown_products_in_trades_and_candles(live: MarketDataService, frames: Frames) -> None:
    trade = {"trade_id": "1", "product_id": "XRP-USD", "price": "1", "size": "1", "side": "BUY"}
    candle = {
        "start": "0",
        "open": "1",
        "high": "1",
        "low": "1",
        "close": "1",
        "volume": "1",
        "product_id": "XRP-USD",
    }
    live.on_frame(frames.channel("market_trades", [{"type": "snapshot", "trades": [trade]}]))
    live.on_frame(frames.channel("candles", [{"candles": [candle]}]))
    assert live.bad_input.count(BadInputKind.UNKNOWN_PRODUCT) == 2


def test_works_without_a_connection_control(clock: ManualClock, frames: Frames) -> None:
    """Frames pushed by something that never called on_connected (a test, a tool)."""
    svc = MarketDataService(["BTC-USD"], clock=clock)
    svc.on_frame(frames.snapshot("BTC-USD", BTC_BIDS, BTC_ASKS))
    svc.on_frame(frames.update("BTC-USD", ("bid", "150", "1")))  # crossed
    assert svc.health("BTC-USD").reason == "crossed book"
    frames.seq += 2
    svc.on_frame(frames.snapshot("BTC-USD", BTC_BIDS, BTC_ASKS))  # a gap, then a snapshot
    svc.on_frame(b'{"type":"error","message":"nope"}')
    assert svc.stats.gaps == 1
    assert svc.health("BTC-USD").state is BookStatus.LIVE


def test_invalid_levels_that_got_past_the_decoder_still_resync(
    live: MarketDataService, control: RecordingControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: the book itself rejects impossible levels (the decoder already does)."""
    import core.market
    from core.coinbase.market_messages import L2Event, L2Message, L2Update

    def fake_decode(frame: str | bytes) -> L2Message:
        bad = L2Update(side="bid", price=-1.0, size=1.0)  # constructing does not validate
        if frame == b"snapshot":
            return L2Message(sequence_num=4, events=[L2Event("snapshot", "ETH-USD", [bad])])
        return L2Message(sequence_num=3, events=[L2Event("update", "ETH-USD", [bad])])

    monkeypatch.setattr(core.market, "decode_wire", fake_decode)
    live.on_frame(b"update")
    assert live.health("ETH-USD").reason == "bad update: ETH-USD: invalid bid price -1.0"
    live.on_frame(b"snapshot")
    reason = live.health("ETH-USD").reason
    assert reason is not None and reason.startswith("bad snapshot")
    assert control.resubscribes == [("level2", ("ETH-USD",))] * 2


def test_sequence_tracker() -> None:
    from core.coinbase.sequence import SequenceGap, SequenceTracker, SequenceVerdict

    tracker = SequenceTracker()
    assert tracker.last is None
    assert tracker.observe(5) is SequenceVerdict.OK  # the first number is the baseline
    assert tracker.observe(6) is SequenceVerdict.OK
    assert tracker.observe(6) is SequenceVerdict.DUPLICATE_OR_STALE
    assert tracker.observe(2) is SequenceVerdict.RESTARTED  # backwards: a new stream
    assert tracker.last_restart == (6, 2) and tracker.restarts == 1
    assert tracker.observe(3) is SequenceVerdict.OK  # counting from the new baseline
    assert tracker.observe(4) is SequenceVerdict.OK
    assert tracker.observe(5) is SequenceVerdict.OK
    assert tracker.observe(6) is SequenceVerdict.OK
    assert tracker.observe(10) is SequenceVerdict.GAP
    assert tracker.last_gap == SequenceGap(expected=7, received=10)
    assert tracker.last_gap.missing == 3
    assert tracker.observe(11) is SequenceVerdict.OK  # counting resumed after the gap
    assert tracker.gaps == 1 and tracker.last == 11
    assert tracker.next_expected == 12
    tracker.reset()
    assert tracker.last is None
    assert tracker.observe(0) is SequenceVerdict.OK
    assert tracker.observe_heartbeat(100) is True
    assert tracker.observe_heartbeat(101) is True
    assert tracker.observe_heartbeat(103) is False
    assert tracker.heartbeat_jumps == 1


def test_last_update_at_never_claims_fresher_data_than_it_has(
    live: MarketDataService, frames: Frames, clock: ManualClock
) -> None:
    """The hot path reads the clock once per observation: for the first update after a
    health() call. Later updates before the next look keep that (older) time."""
    live.health("BTC-USD")
    clock.advance(1.0)
    live.on_frame(frames.update("BTC-USD", ("bid", "99.5", "1")))
    clock.advance(1.0)
    live.on_frame(frames.update("BTC-USD", ("bid", "99.6", "1")))
    assert live.health("BTC-USD").last_update_at == 1.0  # conservative: at most one look old
    clock.advance(1.0)
    live.on_frame(frames.update("BTC-USD", ("bid", "99.7", "1")))
    assert live.health("BTC-USD").last_update_at == 3.0
