"""Decoding of market-data WebSocket frames. The ONLY place market-channel JSON is parsed.

Two paths:

* The fast path (every well-formed frame): one ``msgspec.json.Decoder`` over a tagged union on
  the envelope's ``channel`` field decodes straight into typed Structs. ``strict=False`` turns
  the wire's decimal strings ("68900.00") into floats in C; ``Meta`` constraints reject
  non-positive prices, negative sizes, NaN and infinities in C too; fields we do not declare
  (``event_time``, ``client_id``, ...) are skipped without being materialised. ``l2_data``
  frames come back as the Structs themselves (``L2Message``): no per-update copy on the hot
  path. Other channels are converted to ``core.model`` types (they are not hot).
* The slow path (anything the fast path rejects): ``orjson.loads`` and a walk that classifies
  the problem (``BadInputKind``), recovering ``sequence_num`` and the product ids where it can,
  so the caller can keep counting sequence numbers and mark only the affected products stale.

``decode_market_message`` never raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

import msgspec
import orjson

from core.model import Candle, Side, Ticker, Trade

# msgspec constraints are checked in C. ``gt=0`` also rejects NaN (every comparison with NaN
# is false); ``lt`` must be finite in msgspec, so "finite" is spelled as below a huge bound.
_FINITE_BOUND = 1e300
WirePrice = Annotated[float, msgspec.Meta(gt=0.0, lt=_FINITE_BOUND)]
WireSize = Annotated[float, msgspec.Meta(ge=0.0, lt=_FINITE_BOUND)]
# A finite number of either sign ("nan" and "inf" strings would otherwise become floats).
WireFinite = Annotated[float, msgspec.Meta(gt=-_FINITE_BOUND, lt=_FINITE_BOUND)]


class BadInputKind(StrEnum):
    """What was wrong with a frame (or, for the last three, with what it said)."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_CHANNEL = "unknown_channel"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"  # a field of the wrong JSON type or with an unexpected value
    NON_NUMERIC = "non_numeric"  # a price/size that is not a finite decimal number
    NEGATIVE_NUMBER = "negative_number"  # a negative size or a price <= 0
    BAD_SIDE = "bad_side"
    INVALID = "invalid"  # rejected by the decoder for a reason none of the above names
    # A level2 price or size with more decimals than the product's increment allows (or in
    # exponent notation): recorded by the market data service where increments are known.
    TOO_PRECISE = "too_precise"
    # Recorded by the market data service, not by the decoder:
    SERVER_ERROR = "server_error"  # a {"type":"error"} message from the exchange
    UNKNOWN_PRODUCT = "unknown_product"  # data for a product nobody subscribed
    INTERNAL_ERROR = "internal_error"  # a bug while handling a frame (never raised out)


# ------------------------------------------------------------------------------- level2


class L2Update(msgspec.Struct, frozen=True, gc=False):
    """One absolute level update. ``side`` is "bid", "offer" (or the older "ask")."""

    side: Literal["bid", "offer", "ask"]
    price: WirePrice = msgspec.field(name="price_level")
    size: WireSize = msgspec.field(name="new_quantity")


class L2Event(msgspec.Struct, frozen=True, gc=False):
    type: Literal["snapshot", "update"]
    product_id: str
    updates: list[L2Update]

    @property
    def is_snapshot(self) -> bool:
        return self.type == "snapshot"


# gc=False: these hold only scalars and lists built by the decoder, never a cycle, so the
# garbage collector need not track the millions of them a busy feed allocates.
class L2Message(msgspec.Struct, frozen=True, gc=False, tag_field="channel", tag="l2_data"):
    sequence_num: int
    events: list[L2Event]


# ------------------------------------------------------------------------ other channels


@dataclass(frozen=True, slots=True)
class TickerMessage:
    sequence_num: int
    tickers: tuple[Ticker, ...]


@dataclass(frozen=True, slots=True)
class MarketTradesMessage:
    sequence_num: int
    trades: tuple[Trade, ...]
    # The first market_trades event on a subscription is a snapshot of recent trades.
    is_snapshot: bool


@dataclass(frozen=True, slots=True)
class CandlesMessage:
    sequence_num: int
    candles: tuple[Candle, ...]
    is_snapshot: bool


@dataclass(frozen=True, slots=True)
class HeartbeatMessage:
    sequence_num: int
    counter: int


@dataclass(frozen=True, slots=True)
class SubscriptionsMessage:
    sequence_num: int
    subscriptions: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class IgnoredMessage:
    """A real channel whose content CryptoJ does not use (``status``,
    ``futures_balance_summary``): only its ``sequence_num`` counts. Not bad input."""

    sequence_num: int
    channel: str


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """``{"type":"error","message":...}`` from the exchange (no channel, no sequence_num)."""

    message: str
    sequence_num: int | None = None


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A frame the decoder could not accept, and what it could recover from it."""

    kind: BadInputKind
    detail: str
    channel: str | None = None
    sequence_num: int | None = None
    # Products the frame was about: for l2_data exactly the books that just missed an update.
    product_ids: tuple[str, ...] = ()


MarketMessage: TypeAlias = (
    L2Message
    | TickerMessage
    | MarketTradesMessage
    | CandlesMessage
    | HeartbeatMessage
    | SubscriptionsMessage
    | IgnoredMessage
    | ErrorMessage
    | BadMessage
)


# --------------------------------------------------------------- wire structs (fast path)


class _WireTicker(msgspec.Struct):
    product_id: str
    price: WirePrice
    best_bid: WireSize | None = None
    best_ask: WireSize | None = None
    best_bid_quantity: WireSize | None = None
    best_ask_quantity: WireSize | None = None
    volume_24_h: WireSize | None = None
    price_percent_chg_24_h: WireFinite | None = None


class _WireTickerEvent(msgspec.Struct):
    tickers: list[_WireTicker]
    type: str = ""


class _TickerFrame(msgspec.Struct, tag_field="channel", tag="ticker"):
    sequence_num: int
    events: list[_WireTickerEvent]


class _TickerBatchFrame(_TickerFrame, tag="ticker_batch"):
    pass


class _WireTrade(msgspec.Struct):
    trade_id: str | int
    product_id: str
    price: WirePrice
    size: WireSize
    side: Literal["BUY", "SELL"]
    time: datetime | None = None


class _WireTradesEvent(msgspec.Struct):
    trades: list[_WireTrade]
    type: str = ""


class _MarketTradesFrame(msgspec.Struct, tag_field="channel", tag="market_trades"):
    sequence_num: int
    events: list[_WireTradesEvent]


class _WireCandle(msgspec.Struct):
    start: int
    open: WirePrice
    high: WirePrice
    low: WirePrice
    close: WirePrice
    volume: WireSize
    product_id: str = ""


class _WireCandlesEvent(msgspec.Struct):
    candles: list[_WireCandle]
    type: str = ""


class _CandlesFrame(msgspec.Struct, tag_field="channel", tag="candles"):
    sequence_num: int
    events: list[_WireCandlesEvent]


class _WireHeartbeatEvent(msgspec.Struct):
    heartbeat_counter: int  # the wire sends it as a string or an int; strict=False takes both


class _HeartbeatsFrame(msgspec.Struct, tag_field="channel", tag="heartbeats"):
    sequence_num: int
    events: list[_WireHeartbeatEvent]


class _WireSubscriptionsEvent(msgspec.Struct):
    subscriptions: dict[str, list[str]]


class _SubscriptionsFrame(msgspec.Struct, tag_field="channel", tag="subscriptions"):
    sequence_num: int
    events: list[_WireSubscriptionsEvent]


class _StatusFrame(msgspec.Struct, tag_field="channel", tag="status"):
    sequence_num: int  # the product list in its events is not used, so not decoded


class _FuturesBalanceFrame(msgspec.Struct, tag_field="channel", tag="futures_balance_summary"):
    sequence_num: int


_WireFrame: TypeAlias = (
    L2Message
    | _TickerFrame
    | _TickerBatchFrame
    | _MarketTradesFrame
    | _CandlesFrame
    | _HeartbeatsFrame
    | _SubscriptionsFrame
    | _StatusFrame
    | _FuturesBalanceFrame
)

_decoder = msgspec.json.Decoder(_WireFrame, strict=False)


def _ticker_message(frame: _TickerFrame) -> TickerMessage:
    return TickerMessage(
        frame.sequence_num,
        tuple(
            Ticker(
                product_id=t.product_id,
                price=t.price,
                best_bid=t.best_bid,
                best_ask=t.best_ask,
                best_bid_quantity=t.best_bid_quantity,
                best_ask_quantity=t.best_ask_quantity,
                volume_24h=t.volume_24_h,
                price_percent_change_24h=t.price_percent_chg_24_h,
            )
            for event in frame.events
            for t in event.tickers
        ),
    )


def _trades_message(frame: _MarketTradesFrame) -> MarketTradesMessage:
    return MarketTradesMessage(
        frame.sequence_num,
        tuple(
            Trade(
                trade_id=str(t.trade_id),
                product_id=t.product_id,
                price=t.price,
                size=t.size,
                side=Side(t.side),
                time=t.time,
            )
            for event in frame.events
            for t in event.trades
        ),
        is_snapshot=any(event.type == "snapshot" for event in frame.events),
    )


def _candles_message(frame: _CandlesFrame) -> CandlesMessage:
    return CandlesMessage(
        frame.sequence_num,
        tuple(
            Candle(
                start=c.start,
                open=c.open,
                high=c.high,
                low=c.low,
                close=c.close,
                volume=c.volume,
                product_id=c.product_id,
            )
            for event in frame.events
            for c in event.candles
        ),
        is_snapshot=any(event.type == "snapshot" for event in frame.events),
    )


def _heartbeat_message(frame: _HeartbeatsFrame) -> MarketMessage:
    if not frame.events:
        return BadMessage(
            BadInputKind.MISSING_FIELD,
            "heartbeats without an event",
            "heartbeats",
            frame.sequence_num,
        )
    return HeartbeatMessage(frame.sequence_num, frame.events[-1].heartbeat_counter)


def _subscriptions_message(frame: _SubscriptionsFrame) -> SubscriptionsMessage:
    merged: dict[str, tuple[str, ...]] = {}
    for event in frame.events:
        for channel, products in event.subscriptions.items():
            merged[channel] = tuple(products)
    return SubscriptionsMessage(frame.sequence_num, merged)


_CONVERTERS: dict[type[Any], Callable[[Any], MarketMessage]] = {
    _TickerFrame: _ticker_message,
    _TickerBatchFrame: _ticker_message,
    _MarketTradesFrame: _trades_message,
    _CandlesFrame: _candles_message,
    _HeartbeatsFrame: _heartbeat_message,
    _SubscriptionsFrame: _subscriptions_message,
    _StatusFrame: lambda frame: IgnoredMessage(frame.sequence_num, "status"),
    _FuturesBalanceFrame: lambda frame: IgnoredMessage(
        frame.sequence_num, "futures_balance_summary"
    ),
}


def decode_market_message(frame: str | bytes) -> MarketMessage:
    """Decode one raw market-data frame. Never raises: problems come back as ``BadMessage``."""
    try:
        wire = decode_wire(frame)
    except WireDecodeError as exc:
        return classify_rejected(frame, str(exc))
    if type(wire) is L2Message:
        return wire
    return finish_wire(wire)


# The same thing in stages, for the one caller where a Python call per frame matters (the
# market data service's on_frame):
#     try: wire = decode_wire(frame)                     # C, no Python frame
#     except WireDecodeError as exc: message = classify_rejected(frame, str(exc))
#     if type(wire) is not L2Message: message = finish_wire(wire)
WireFrame: TypeAlias = object
"""What ``decode_wire`` returns: an ``L2Message``, or something only ``finish_wire`` reads."""

# ValidationError is a DecodeError. msgspec raises two more for hostile input, which is to be
# classified, not crashed on: RecursionError for JSON nested deeper than the interpreter's
# recursion limit (even inside a field it would skip) and UnicodeDecodeError for a string that
# is not UTF-8 (a binary frame, a replay file).
WireDecodeError = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
decode_wire: Callable[[str | bytes], WireFrame] = _decoder.decode


def finish_wire(wire: WireFrame) -> MarketMessage:
    """Turn a non-level2 result of ``decode_wire`` into its public message type."""
    if type(wire) is L2Message:
        return wire
    return _CONVERTERS[type(wire)](wire)


def classify_rejected(frame: str | bytes, decoder_error: str) -> MarketMessage:
    """Slow path for a frame ``decode_wire`` rejected: say what is wrong with it."""
    return _classify(frame, decoder_error)


# ------------------------------------------------------------------------- slow path


class _Problem(Exception):
    def __init__(self, kind: BadInputKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


_Check = Callable[[dict[str, Any], str], None]


def _classify(frame: str | bytes, decoder_error: str) -> MarketMessage:
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        return BadMessage(BadInputKind.MALFORMED_JSON, str(exc))
    if not isinstance(data, dict):
        return BadMessage(BadInputKind.NOT_AN_OBJECT, f"a JSON {type(data).__name__}")
    sequence_num = data.get("sequence_num")
    if type(sequence_num) is not int:
        sequence_num = None
    channel = data.get("channel")
    if channel is None:
        if data.get("type") == "error":
            return ErrorMessage(str(data.get("message", "")), sequence_num)
        return BadMessage(BadInputKind.MISSING_FIELD, "no channel", None, sequence_num)
    if not isinstance(channel, str) or channel not in _ITEM_CHECKS:
        return BadMessage(BadInputKind.UNKNOWN_CHANNEL, f"channel {channel!r}", None, sequence_num)
    products = _recover_product_ids(data)
    try:
        _check_frame(data, channel)
    except _Problem as problem:
        return BadMessage(problem.kind, problem.detail, channel, sequence_num, products)
    except Exception as exc:  # the walk itself must never take on_frame down
        return BadMessage(BadInputKind.INVALID, repr(exc), channel, sequence_num, products)
    return BadMessage(BadInputKind.INVALID, decoder_error, channel, sequence_num, products)


def _recover_product_ids(data: dict[str, Any]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    events = data.get("events")
    if not isinstance(events, list):
        return ()
    for event in events:
        if not isinstance(event, dict):
            continue
        product_id = event.get("product_id")
        if isinstance(product_id, str):
            found[product_id] = None
        for key in ("tickers", "trades", "candles"):
            items = event.get(key)
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict) and isinstance(item.get("product_id"), str):
                        found[item["product_id"]] = None
    return tuple(found)


def _check_frame(data: dict[str, Any], channel: str) -> None:
    if "sequence_num" not in data:
        raise _Problem(BadInputKind.MISSING_FIELD, "sequence_num")
    if type(data["sequence_num"]) is not int:
        raise _Problem(BadInputKind.WRONG_TYPE, f"sequence_num {data['sequence_num']!r}")
    events = _require(data, "events", list, "frame")
    item_key, check_item = _ITEM_CHECKS[channel]
    for index, event in enumerate(events):
        where = f"events[{index}]"
        if not isinstance(event, dict):
            raise _Problem(BadInputKind.WRONG_TYPE, f"{where} is not an object")
        if channel == "l2_data":
            if event.get("type") not in ("snapshot", "update"):
                raise _Problem(BadInputKind.WRONG_TYPE, f"{where}.type {event.get('type')!r}")
            _require(event, "product_id", str, where)
        if channel == "heartbeats":
            check_item(event, where)
            continue
        if channel == "subscriptions":
            _require(event, "subscriptions", dict, where)
            continue
        if channel in ("status", "futures_balance_summary"):
            continue  # content not used: only the envelope matters
        items = _require(event, item_key, list, where)
        for item_index, item in enumerate(items):
            item_where = f"{where}.{item_key}[{item_index}]"
            if not isinstance(item, dict):
                raise _Problem(BadInputKind.WRONG_TYPE, f"{item_where} is not an object")
            check_item(item, item_where)


def _require(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise _Problem(BadInputKind.MISSING_FIELD, f"{where}.{key}")
    if not isinstance(value, kind):
        raise _Problem(BadInputKind.WRONG_TYPE, f"{where}.{key} {value!r}")
    return value


def _check_number(obj: dict[str, Any], key: str, where: str, *, positive: bool) -> None:
    if obj.get(key) is None:
        raise _Problem(BadInputKind.MISSING_FIELD, f"{where}.{key}")
    _check_optional_number(obj, key, where, positive=positive)


def _check_optional_number(obj: dict[str, Any], key: str, where: str, *, positive: bool) -> None:
    value = obj.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Problem(BadInputKind.NON_NUMERIC, f"{where}.{key} {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise _Problem(BadInputKind.NON_NUMERIC, f"{where}.{key} {value!r}") from None
    if not math.isfinite(number):
        raise _Problem(BadInputKind.NON_NUMERIC, f"{where}.{key} {value!r}")
    if number < 0 or (positive and number == 0):
        raise _Problem(BadInputKind.NEGATIVE_NUMBER, f"{where}.{key} {value!r}")


def _check_l2_update(update: dict[str, Any], where: str) -> None:
    if update.get("side") is None:
        raise _Problem(BadInputKind.MISSING_FIELD, f"{where}.side")
    if update["side"] not in ("bid", "offer", "ask"):
        raise _Problem(BadInputKind.BAD_SIDE, f"{where}.side {update['side']!r}")
    _check_number(update, "price_level", where, positive=True)
    _check_number(update, "new_quantity", where, positive=False)


def _check_ticker(ticker: dict[str, Any], where: str) -> None:
    _require(ticker, "product_id", str, where)
    _check_number(ticker, "price", where, positive=True)
    for key in ("best_bid", "best_ask", "best_bid_quantity", "best_ask_quantity", "volume_24_h"):
        _check_optional_number(ticker, key, where, positive=False)
    value = ticker.get("price_percent_chg_24_h")
    if value is not None and not isinstance(value, int | float):
        try:
            float(value)
        except (TypeError, ValueError):
            raise _Problem(BadInputKind.NON_NUMERIC, f"{where}.price_percent_chg_24_h") from None


def _check_trade(trade: dict[str, Any], where: str) -> None:
    if trade.get("trade_id") is None:
        raise _Problem(BadInputKind.MISSING_FIELD, f"{where}.trade_id")
    _require(trade, "product_id", str, where)
    _check_number(trade, "price", where, positive=True)
    _check_number(trade, "size", where, positive=False)
    if trade.get("side") is None:
        raise _Problem(BadInputKind.MISSING_FIELD, f"{where}.side")
    if trade["side"] not in ("BUY", "SELL"):
        raise _Problem(BadInputKind.BAD_SIDE, f"{where}.side {trade['side']!r}")


def _check_candle(candle: dict[str, Any], where: str) -> None:
    _check_number(candle, "start", where, positive=False)
    for key in ("open", "high", "low", "close"):
        _check_number(candle, key, where, positive=True)
    _check_number(candle, "volume", where, positive=False)


def _check_heartbeat(event: dict[str, Any], where: str) -> None:
    if event.get("heartbeat_counter") is None:
        raise _Problem(BadInputKind.MISSING_FIELD, f"{where}.heartbeat_counter")
    try:
        int(event["heartbeat_counter"])
    except (TypeError, ValueError):
        raise _Problem(
            BadInputKind.NON_NUMERIC, f"{where}.heartbeat_counter {event['heartbeat_counter']!r}"
        ) from None


def _no_items(_item: dict[str, Any], _where: str) -> None:
    """Subscriptions acks have no per-item checks."""


_ITEM_CHECKS: dict[str, tuple[str, _Check]] = {
    "l2_data": ("updates", _check_l2_update),
    "ticker": ("tickers", _check_ticker),
    "ticker_batch": ("tickers", _check_ticker),
    "market_trades": ("trades", _check_trade),
    "candles": ("candles", _check_candle),
    "heartbeats": ("", _check_heartbeat),
    "subscriptions": ("subscriptions", _no_items),
    "status": ("products", _no_items),
    "futures_balance_summary": ("", _no_items),
}


# -------------------------------------------------------------------------- envelope time


class _Envelope(msgspec.Struct):
    timestamp: datetime | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def frame_timestamp(frame: str | bytes) -> float | None:
    """The envelope ``timestamp`` of a frame as epoch seconds (None if absent or unreadable).
    Replay uses it to reproduce the recorded pacing."""
    try:
        envelope = _envelope_decoder.decode(frame)
    except WireDecodeError:
        return None
    return envelope.timestamp.timestamp() if envelope.timestamp is not None else None
