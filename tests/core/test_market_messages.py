"""Tests for core.coinbase.market_messages: the fast path per channel and every bad-input kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from core.coinbase.market_messages import (
    BadInputKind,
    BadMessage,
    CandlesMessage,
    ErrorMessage,
    HeartbeatMessage,
    L2Message,
    MarketTradesMessage,
    SubscriptionsMessage,
    TickerMessage,
    classify_rejected,
    decode_market_message,
    decode_wire,
    finish_wire,
    frame_timestamp,
)
from core.model import Candle, Side


def frame(channel: str, events: list[Any], seq: int = 7, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": "2026-01-01T00:00:01.500000Z",
            "sequence_num": seq,
            "events": events,
            **extra,
        }
    )


def l2_frame(
    updates: list[dict[str, Any]], *, product: str = "BTC-USD", kind: str = "update"
) -> bytes:
    return frame("l2_data", [{"type": kind, "product_id": product, "updates": updates}])


def level(side: str = "bid", price: Any = "68900.00", size: Any = "2.0") -> dict[str, Any]:
    return {
        "side": side,
        "event_time": "2026-01-01T00:00:01.400000Z",
        "price_level": price,
        "new_quantity": size,
    }


def bad(raw: bytes | str) -> BadMessage:
    message = decode_market_message(raw)
    assert isinstance(message, BadMessage), message
    return message


# ----------------------------------------------------------------------------- fast path


def test_l2_update_decodes_to_floats() -> None:
    message = decode_market_message(
        l2_frame(
            [
                level("bid", "68900.00", "2.0"),
                level("offer", "68901.50", "0"),
                level("ask", "1", "3"),
            ]
        )
    )
    assert isinstance(message, L2Message)
    assert message.sequence_num == 7
    (event,) = message.events
    assert event.product_id == "BTC-USD"
    assert not event.is_snapshot
    assert [(u.side, u.price, u.size) for u in event.updates] == [
        ("bid", 68900.0, 2.0),
        ("offer", 68901.5, 0.0),
        ("ask", 1.0, 3.0),
    ]


def test_l2_snapshot_and_str_frames() -> None:
    message = decode_market_message(l2_frame([level()], kind="snapshot").decode())
    assert isinstance(message, L2Message)
    assert message.events[0].is_snapshot


def test_numbers_may_also_be_json_numbers() -> None:
    message = decode_market_message(l2_frame([level(price=68900.5, size=1)]))
    assert isinstance(message, L2Message)
    assert message.events[0].updates[0].price == 68900.5


def test_ticker_and_ticker_batch() -> None:
    ticker = {
        "type": "ticker",
        "product_id": "BTC-USD",
        "price": "68900.1",
        "volume_24_h": "1234.5",
        "low_24_h": "1",
        "high_24_h": "2",
        "price_percent_chg_24_h": "-1.25",
        "best_bid": "68900.0",
        "best_bid_quantity": "0.5",
        "best_ask": "68900.2",
        "best_ask_quantity": "0.7",
    }
    for channel in ("ticker", "ticker_batch"):
        message = decode_market_message(frame(channel, [{"type": "update", "tickers": [ticker]}]))
        assert isinstance(message, TickerMessage)
        (decoded,) = message.tickers
        assert decoded.product_id == "BTC-USD"
        assert decoded.price == 68900.1
        assert decoded.best_bid == 68900.0
        assert decoded.best_ask_quantity == 0.7
        assert decoded.volume_24h == 1234.5
        assert decoded.price_percent_change_24h == -1.25


def test_market_trades() -> None:
    trades = [
        {
            "trade_id": "11",
            "product_id": "BTC-USD",
            "price": "100.5",
            "size": "0.1",
            "side": "BUY",
            "time": "2026-01-01T00:00:01.123456789Z",
        },
        {
            "trade_id": 12,
            "product_id": "BTC-USD",
            "price": "100.6",
            "size": "0.2",
            "side": "SELL",
            "time": "2026-01-01T00:00:02Z",
        },
    ]
    message = decode_market_message(
        frame("market_trades", [{"type": "snapshot", "trades": trades}])
    )
    assert isinstance(message, MarketTradesMessage)
    assert message.is_snapshot
    first, second = message.trades
    assert (first.trade_id, first.price, first.size, first.side) == ("11", 100.5, 0.1, Side.BUY)
    assert first.time == datetime(2026, 1, 1, 0, 0, 1, 123457, tzinfo=UTC)
    assert (second.trade_id, second.side) == ("12", Side.SELL)


def test_candles() -> None:
    candle = {
        "start": "1767225600",
        "high": "2",
        "low": "0.5",
        "open": "1",
        "close": "1.5",
        "volume": "10",
        "product_id": "BTC-USD",
    }
    message = decode_market_message(frame("candles", [{"type": "update", "candles": [candle]}]))
    assert isinstance(message, CandlesMessage)
    assert not message.is_snapshot
    assert message.candles == (Candle(1767225600, 1.0, 2.0, 0.5, 1.5, 10.0, "BTC-USD"),)


@pytest.mark.parametrize("counter", ["3049", 3049])
def test_heartbeat_counter_string_or_int(counter: Any) -> None:
    message = decode_market_message(
        frame(
            "heartbeats",
            [{"current_time": "2026-01-01 00:00:01 +0000 UTC", "heartbeat_counter": counter}],
        )
    )
    assert message == HeartbeatMessage(sequence_num=7, counter=3049)


def test_subscriptions_ack() -> None:
    message = decode_market_message(
        frame(
            "subscriptions",
            [{"subscriptions": {"level2": ["BTC-USD", "ETH-USD"], "heartbeats": []}}],
            seq=0,
        )
    )
    assert isinstance(message, SubscriptionsMessage)
    assert message.sequence_num == 0
    assert message.subscriptions == {"level2": ("BTC-USD", "ETH-USD"), "heartbeats": ()}


def test_error_message() -> None:
    message = decode_market_message(b'{"type":"error","message":"authentication failure"}')
    assert message == ErrorMessage("authentication failure")


def test_staged_api_matches_the_one_call() -> None:
    raw = frame("heartbeats", [{"heartbeat_counter": 5}])
    assert finish_wire(decode_wire(raw)) == decode_market_message(raw)
    l2 = decode_wire(l2_frame([level()]))
    assert finish_wire(l2) is l2
    assert classify_rejected(b"nope", "x") == decode_market_message(b"nope")


def test_frame_timestamp() -> None:
    assert frame_timestamp(l2_frame([level()])) == pytest.approx(1_767_225_601.5)
    assert frame_timestamp(b'{"channel":"x"}') is None
    assert frame_timestamp(b'{"timestamp":"yesterday"}') is None
    assert frame_timestamp(b"not json") is None


# ----------------------------------------------------------------------------- slow path


def test_malformed_json() -> None:
    message = bad(b'{"channel":"l2_data","sequence_num":')
    assert message.kind is BadInputKind.MALFORMED_JSON
    assert message.sequence_num is None
    assert message.product_ids == ()


def test_not_an_object() -> None:
    assert bad(b"[1,2,3]").kind is BadInputKind.NOT_AN_OBJECT


def test_missing_channel() -> None:
    message = bad(b'{"sequence_num":3,"events":[]}')
    assert message.kind is BadInputKind.MISSING_FIELD
    assert message.sequence_num == 3


def test_unknown_channel_keeps_the_sequence_number() -> None:
    message = bad(frame("rfq_matches", [{"type": "snapshot", "matches": []}], seq=12))
    assert message.kind is BadInputKind.UNKNOWN_CHANNEL
    assert message.sequence_num == 12
    assert bad(b'{"channel":5,"sequence_num":1,"events":[]}').kind is BadInputKind.UNKNOWN_CHANNEL


@pytest.mark.parametrize(
    ("update", "kind"),
    [
        (level(price="abc"), BadInputKind.NON_NUMERIC),
        (level(size="1,5"), BadInputKind.NON_NUMERIC),
        (level(size="nan"), BadInputKind.NON_NUMERIC),
        (level(price="inf"), BadInputKind.NON_NUMERIC),
        (level(price=True), BadInputKind.NON_NUMERIC),
        (level(price=[1]), BadInputKind.NON_NUMERIC),
        (level(price="-68900"), BadInputKind.NEGATIVE_NUMBER),
        (level(price="0"), BadInputKind.NEGATIVE_NUMBER),
        (level(size="-1"), BadInputKind.NEGATIVE_NUMBER),
        (level(side="up"), BadInputKind.BAD_SIDE),
        ({"side": "bid", "new_quantity": "1"}, BadInputKind.MISSING_FIELD),
        ({"side": "bid", "price_level": "1"}, BadInputKind.MISSING_FIELD),
        ({"price_level": "1", "new_quantity": "1"}, BadInputKind.MISSING_FIELD),
        (level(price=None), BadInputKind.MISSING_FIELD),
        ("not an object", BadInputKind.WRONG_TYPE),
    ],
)
def test_bad_l2_update_is_classified_with_its_product(update: Any, kind: BadInputKind) -> None:
    message = bad(l2_frame([level(), update], product="ETH-USD"))
    assert message.kind is kind, message.detail
    assert message.channel == "l2_data"
    assert message.sequence_num == 7
    assert message.product_ids == ("ETH-USD",)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (frame("l2_data", [{"type": "update", "updates": []}]), BadInputKind.MISSING_FIELD),
        (
            frame("l2_data", [{"type": "refresh", "product_id": "X", "updates": []}]),
            BadInputKind.WRONG_TYPE,
        ),
        (frame("l2_data", [{"type": "update", "product_id": "X"}]), BadInputKind.MISSING_FIELD),
        (
            frame("l2_data", [{"type": "update", "product_id": "X", "updates": {}}]),
            BadInputKind.WRONG_TYPE,
        ),
        (frame("l2_data", ["event"]), BadInputKind.WRONG_TYPE),
        (b'{"channel":"l2_data","sequence_num":1}', BadInputKind.MISSING_FIELD),
        (b'{"channel":"l2_data","events":[]}', BadInputKind.MISSING_FIELD),
        (b'{"channel":"l2_data","sequence_num":"one","events":[]}', BadInputKind.WRONG_TYPE),
    ],
)
def test_bad_l2_structure(raw: bytes, kind: BadInputKind) -> None:
    assert bad(raw).kind is kind


def test_l2_frame_for_two_products_names_both() -> None:
    raw = frame(
        "l2_data",
        [
            {"type": "update", "product_id": "BTC-USD", "updates": [level()]},
            {"type": "update", "product_id": "ETH-USD", "updates": [level(size="-2")]},
        ],
    )
    assert bad(raw).product_ids == ("BTC-USD", "ETH-USD")


def ticker(**overrides: Any) -> dict[str, Any]:
    return {"type": "ticker", "product_id": "BTC-USD", "price": "10", **overrides}


def trade(**overrides: Any) -> dict[str, Any]:
    return {
        "trade_id": "1",
        "product_id": "BTC-USD",
        "price": "10",
        "size": "1",
        "side": "BUY",
        "time": "2026-01-01T00:00:00Z",
        **overrides,
    }


def candle(**overrides: Any) -> dict[str, Any]:
    return {
        "start": "1",
        "open": "1",
        "high": "1",
        "low": "1",
        "close": "1",
        "volume": "1",
        "product_id": "BTC-USD",
        **overrides,
    }


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (frame("ticker", [{"tickers": [ticker(price="x")]}]), BadInputKind.NON_NUMERIC),
        (frame("ticker", [{"tickers": [ticker(best_bid="")]}]), BadInputKind.NON_NUMERIC),
        (
            frame("ticker", [{"tickers": [ticker(price_percent_chg_24_h="up")]}]),
            BadInputKind.NON_NUMERIC,
        ),
        (frame("ticker_batch", [{"tickers": [ticker(price="-1")]}]), BadInputKind.NEGATIVE_NUMBER),
        (frame("ticker", [{"tickers": [{"price": "1"}]}]), BadInputKind.MISSING_FIELD),
        (frame("ticker", [{"tickers": ["x"]}]), BadInputKind.WRONG_TYPE),
        (frame("ticker", [{"type": "update"}]), BadInputKind.MISSING_FIELD),
        (frame("market_trades", [{"trades": [trade(side="buy")]}]), BadInputKind.BAD_SIDE),
        (frame("market_trades", [{"trades": [trade(side=None)]}]), BadInputKind.MISSING_FIELD),
        (frame("market_trades", [{"trades": [trade(size="-1")]}]), BadInputKind.NEGATIVE_NUMBER),
        (frame("market_trades", [{"trades": [trade(trade_id=None)]}]), BadInputKind.MISSING_FIELD),
        (frame("candles", [{"candles": [candle(close="zero")]}]), BadInputKind.NON_NUMERIC),
        (frame("candles", [{"candles": [candle(volume=None)]}]), BadInputKind.MISSING_FIELD),
        (frame("heartbeats", [{"heartbeat_counter": "many"}]), BadInputKind.NON_NUMERIC),
        (frame("heartbeats", [{"current_time": "now"}]), BadInputKind.MISSING_FIELD),
        (frame("heartbeats", []), BadInputKind.MISSING_FIELD),
        (frame("subscriptions", [{"subscriptions": []}]), BadInputKind.WRONG_TYPE),
    ],
)
def test_bad_other_channels(raw: bytes, kind: BadInputKind) -> None:
    message = bad(raw)
    assert message.kind is kind, message.detail


def test_recovers_product_ids_from_items() -> None:
    message = bad(frame("market_trades", [{"trades": [trade(product_id="SOL-USD", side="x")]}]))
    assert message.product_ids == ("SOL-USD",)


def test_rejection_nothing_else_explains_is_invalid() -> None:
    # Python's float() accepts underscores; the wire decoder does not.
    message = bad(l2_frame([level(price="1_000")]))
    assert message.kind is BadInputKind.INVALID
    assert message.product_ids == ("BTC-USD",)
