"""MarketDataService listeners: new trades and applied book changes reach subscribers; a
gap counts as a resync of every live book."""

from __future__ import annotations

from typing import Any

from core.clock import ManualClock
from core.coinbase.market_messages import BadInputKind
from core.feed_state import BookStatus
from core.market import MarketDataService
from core.model import Trade
from tests.core.test_market import Frames, RecordingControl


def trade(trade_id: str, price: str = "100.00") -> dict[str, Any]:
    return {
        "trade_id": trade_id,
        "product_id": "BTC-USD",
        "price": price,
        "size": "0.5",
        "side": "BUY",
        "time": "2026-01-01T00:00:00Z",
    }


def make_service() -> tuple[MarketDataService, Frames, RecordingControl]:
    service = MarketDataService(["BTC-USD"], clock=ManualClock())
    control = RecordingControl()
    service.on_connected(control)
    return service, Frames(), control


def test_trade_listener_hears_new_prints_but_not_the_snapshot_history() -> None:
    service, frames, _ = make_service()
    heard: list[Trade] = []
    service.add_trade_listener(heard.append)
    service.on_frame(
        frames.channel("market_trades", [{"type": "snapshot", "trades": [trade("1")]}])
    )
    assert heard == []
    service.on_frame(
        frames.channel("market_trades", [{"type": "update", "trades": [trade("3"), trade("2")]}])
    )
    assert [t.trade_id for t in heard] == ["2", "3"]  # oldest first


def test_book_listener_hears_applied_events_only() -> None:
    service, frames, _ = make_service()
    heard: list[str] = []
    service.add_book_listener(heard.append)
    service.on_frame(frames.update("BTC-USD", ("bid", "99.00", "1")))  # not LIVE yet: ignored
    assert heard == []
    service.on_frame(frames.snapshot("BTC-USD", [("99.00", "1")], [("101.00", "1")]))
    service.on_frame(frames.update("BTC-USD", ("bid", "99.50", "2")))
    assert heard == ["BTC-USD", "BTC-USD"]


def test_a_failing_listener_is_counted_and_does_not_stop_the_feed() -> None:
    service, frames, _ = make_service()

    def broken(_: str) -> None:
        raise RuntimeError("listener bug")

    service.add_book_listener(broken)
    service.on_frame(frames.snapshot("BTC-USD", [("99.00", "1")], [("101.00", "1")]))
    assert service.health("BTC-USD").state is BookStatus.LIVE
    assert service.bad_input.count(BadInputKind.INTERNAL_ERROR) == 1


def test_a_sequence_gap_counts_as_a_resync_of_each_live_book() -> None:
    service, frames, control = make_service()
    service.on_frame(frames.snapshot("BTC-USD", [("99.00", "1")], [("101.00", "1")]))
    frames.seq += 5
    service.on_frame(frames.heartbeat(1))
    health = service.health("BTC-USD")
    assert health.state is BookStatus.STALE and health.resyncs == 1
    assert service.stats.resyncs == 1 and control.reconnects


def test_a_snapshot_that_never_comes_is_asked_for_again() -> None:
    clock = ManualClock()
    service = MarketDataService(["BTC-USD"], clock=clock, stale_after_s=5)
    control = RecordingControl()
    service.on_connected(control)
    clock.advance(4)
    service.check_staleness()
    assert control.resubscribes == []
    clock.advance(2)
    service.check_staleness()
    assert control.resubscribes == [("level2", ("BTC-USD",))]
    assert service.health("BTC-USD").state is BookStatus.STALE


def test_no_resubscribe_while_disconnected() -> None:
    clock = ManualClock()
    service = MarketDataService(["BTC-USD"], clock=clock, stale_after_s=5)
    control = RecordingControl()
    service.on_connected(control)
    service.on_disconnected("gone")
    clock.advance(60)
    service.check_staleness()
    assert control.resubscribes == []
