"""Hostile input: realistic frames from the simulated exchange's wire encoder, mutated.

The seeds are what ``core.sim.wire`` puts on the wire for a seeded exchange with the test
ladder and a few of the demo user's orders and fills: level2 snapshots and updates, trades,
tickers, candles, heartbeats, subscription acks, error messages, user-channel order updates and
the REST answers. Hypothesis mutates them (byte flips, truncation, inserted bytes, deleted
fields, renamed keys, values swapped for other types, huge numbers, NaN / inf / negative
strings, unicode) and drives the real consumers:

- ``MarketDataService.on_frame``: nothing escapes, no internal error is counted (that would be
  a bug reached), every LIVE book is uncrossed with only valid levels, every non-LIVE book is
  empty, stored trades and tickers hold finite numbers, and every rejected frame is counted;
- ``UserStream.on_frame``: nothing escapes, an unreadable frame is counted and makes the
  listener reconcile, every order handed on is well typed with finite, non-negative amounts;
- the REST decoders (``core.coinbase.rest_decode``): ``DecodeError`` or a well-typed value.

Runs are derandomized, so the same examples run every time (``CRYPTOJ_FUZZ_EXAMPLES`` sets
how many per test; 120 by default).
"""

from __future__ import annotations

import copy
import json
import math
import os
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.book import BookSide, L2Book
from core.clock import ManualClock
from core.coinbase import rest_decode
from core.coinbase.errors import DecodeError
from core.coinbase.market_messages import (
    BadInputKind,
    BadMessage,
    ErrorMessage,
    decode_market_message,
)
from core.coinbase.user_messages import UserMessageError, UserOrdersEvent, decode_user_frame
from core.feed_state import BookStatus
from core.market import MarketDataService
from core.model import Side, decimal_str
from core.sim import wire
from core.sim.exchange import SimExchange
from core.sim.runner import build_exchange
from core.sim.server import DEMO_USER_ID
from core.sim.types import SimOrderRequest
from core.user_stream import UserStream
from tests.integration.loopback import seed_liquidity

PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD")
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STAMP = wire.rfc3339(datetime.fromtimestamp(START, tz=UTC))

# A short run in CI; CRYPTOJ_FUZZ_EXAMPLES=5000 for a long hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("CRYPTOJ_FUZZ_EXAMPLES", "120")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- the seed corpus


@dataclass
class Corpus:
    """Realistic payloads, as JSON trees (mutated, then serialized)."""

    snapshots: list[dict[str, Any]]  # one l2_data snapshot frame per product
    market: list[dict[str, Any]]  # market socket frames after the snapshots
    user: list[dict[str, Any]]  # user socket frames
    rest: list[tuple[str, dict[str, Any], Callable[[rest_decode.JsonObject], object]]] = field(
        default_factory=list
    )


def _frame(channel: str, events: list[dict[str, Any]], seq: int = 0) -> dict[str, Any]:
    tree: dict[str, Any] = orjson.loads(
        wire.encode_envelope(channel, STAMP, events).with_sequence(seq)
    )
    return tree


def _l2_update(side: str, price: str, size: str) -> dict[str, str]:
    return {"side": side, "event_time": STAMP, "price_level": price, "new_quantity": size}


def build_corpus() -> Corpus:
    clock = ManualClock(START)
    exchange: SimExchange = build_exchange(7, clock)
    seed_liquidity(exchange)
    resting = exchange.create_order(
        DEMO_USER_ID,
        SimOrderRequest(
            "fuzz-rest",
            "BTC-USD",
            Side.BUY,
            "limit_limit_gtc",
            Decimal("0.1"),
            None,
            Decimal("67000"),
        ),
    )
    clock.advance(1)
    taker_request = SimOrderRequest(
        "fuzz-take", "BTC-USD", Side.BUY, "market_market_ioc", base_size=Decimal("0.6")
    )
    taker = exchange.create_order(DEMO_USER_ID, taker_request)
    refused_request = SimOrderRequest(
        "fuzz-refused",
        "BTC-USD",
        Side.BUY,
        "limit_limit_gtc",
        Decimal("100"),
        None,
        Decimal("60000"),
    )
    refused = exchange.create_order(DEMO_USER_ID, refused_request)
    assert resting.success and taker.success and not refused.success
    orders = exchange.list_orders(DEMO_USER_ID)
    fills = exchange.list_fills(DEMO_USER_ID)
    assert fills and len(orders) >= 2

    snapshots = []
    for product_id in PRODUCTS:
        bids, asks = exchange.book_levels(product_id)
        updates = [_l2_update("bid", decimal_str(p), decimal_str(s)) for p, s in bids]
        updates += [_l2_update("offer", decimal_str(p), decimal_str(s)) for p, s in asks]
        event = {"type": "snapshot", "product_id": product_id, "updates": updates}
        snapshots.append(_frame("l2_data", [event]))
    trades = [wire.encode_trade(t) for t in exchange.recent_trades("BTC-USD", 5)]
    candles = [
        wire.encode_candle(c, "BTC-USD")
        for c in exchange.candles("BTC-USD", int(START) - 600, int(START) + 600, 60)
    ]
    assert trades and candles
    market = [
        _frame(
            "l2_data",
            [
                {
                    "type": "update",
                    "product_id": "BTC-USD",
                    "updates": [
                        _l2_update("bid", "67990.00", "0.75"),
                        _l2_update("offer", "68020.00", "0"),
                        _l2_update("offer", "68025.00", "1.5"),
                    ],
                },
                {
                    "type": "update",
                    "product_id": "ETH-USD",
                    "updates": [_l2_update("bid", "3499.50", "2")],
                },
            ],
        ),
        _frame("market_trades", [{"type": "update", "trades": trades}]),
        _frame("market_trades", [{"type": "snapshot", "trades": trades}]),
        _frame(
            "ticker",
            [{"type": "update", "tickers": [wire.encode_ticker(exchange.ticker("BTC-USD"))]}],
        ),
        _frame("candles", [{"type": "update", "candles": candles}]),
        _frame("heartbeats", [{"current_time": STAMP, "heartbeat_counter": "12"}]),
        _frame("subscriptions", [{"subscriptions": {"level2": list(PRODUCTS)}}]),
        {"type": "error", "message": "authentication failure"},
    ]
    user_orders = [wire.encode_user_order(order) for order in orders]
    user = [
        _frame("subscriptions", [{"subscriptions": {"user": [], "heartbeats": []}}]),
        _frame("user", [{"type": "snapshot", "orders": user_orders[:1]}]),
        _frame("user", [{"type": "update", "orders": user_orders}]),
        _frame("heartbeats", [{"current_time": STAMP, "heartbeat_counter": 7}]),
        {"type": "error", "message": "authentication failure"},
    ]
    created_at = datetime.fromtimestamp(START, tz=UTC)
    product = exchange.products["BTC-USD"]
    bids, asks = exchange.book_levels("BTC-USD")
    rest: list[tuple[str, dict[str, Any], Callable[[rest_decode.JsonObject], object]]] = [
        ("time", {"iso": STAMP, "epochSeconds": str(int(START)), "epochMillis": "1767225600000"}, rest_decode.decode_server_time),
        ("product", wire.encode_product(product, exchange.ticker("BTC-USD")), rest_decode.decode_product),
        ("products", {"products": [wire.encode_product(product, None)], "num_products": 1}, rest_decode.decode_products),
        ("book", wire.encode_product_book("BTC-USD", bids, asks, created_at, Decimal("68010")), rest_decode.decode_product_book),
        ("candles", {"candles": candles}, partial(rest_decode.decode_candles, product_id="BTC-USD")),
        ("accounts", {"accounts": [wire.encode_account(a, created_at) for a in exchange.accounts(DEMO_USER_ID)], "has_next": False, "cursor": "", "size": 4}, rest_decode.decode_accounts_page),
        ("permissions", {"can_view": True, "can_trade": True, "can_transfer": False, "portfolio_uuid": wire.PORTFOLIO_UUID, "portfolio_type": "DEFAULT"}, rest_decode.decode_key_permissions),
        ("order", {"order": wire.encode_order(orders[0])}, rest_decode.decode_get_order),
        ("orders", {"orders": [wire.encode_order(o) for o in orders], "has_next": True, "cursor": "c1", "sequence": "0"}, rest_decode.decode_orders_page),
        ("fills", {"fills": [wire.encode_fill(f) for f in fills], "cursor": ""}, rest_decode.decode_fills_page),
        ("cancel", {"results": [{"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": orders[0].order_id}, {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": str(uuid.UUID(int=1))}]}, rest_decode.decode_cancel_results),
        ("create ok", wire.create_order_response(taker, taker_request), partial(rest_decode.decode_create_order, client_order_id="fuzz-take", product_id="BTC-USD", side=Side.BUY)),
        ("create refused", wire.create_order_response(refused, refused_request), partial(rest_decode.decode_create_order, client_order_id="fuzz-refused", product_id="BTC-USD", side=Side.BUY)),
    ]  # fmt: skip
    return Corpus(snapshots, market, user, rest)


CORPUS = build_corpus()

# --------------------------------------------------------------------------- mutations

JUNK: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, -0.0, 10**30, 1e308, -1e308, "", " ", "abc", "0", "-5", "-0",
    "1e400", "-1e400", "1e-400", "NaN", "nan", "Infinity", "-Infinity", "inf", "0x10", "1_000",
    "１２３", "\u202e123", "💥", "\x00", "9" * 400, "9" * 5000, "-" + "9" * 400, [], {}, [1, 2],
    {"a": 1}, "bid", "offer", "ask", "BUY", "SELL", "snapshot", "update", "l2_data", "user",
    "BTC-USD", "DOGE-USD", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00",
)  # fmt: skip
junk_values = st.one_of(
    st.sampled_from(JUNK),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
)

Path = tuple[str | int, ...]


def _paths(tree: Any, prefix: Path = ()) -> list[Path]:
    """Every node under the root (dict keys and list indices), the root excluded."""
    found: list[Path] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.append((*prefix, key))
            found += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found.append((*prefix, index))
            found += _paths(value, (*prefix, index))
    return found


def _parent(tree: Any, path: Path) -> Any:
    node = tree
    for step in path[:-1]:
        node = node[step]
    return node


def dumps(tree: Any) -> bytes:
    """JSON bytes for a mutated tree (stdlib json: integers beyond 64 bits are JSON too)."""
    return json.dumps(tree, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


@st.composite
def mutated_tree(draw: st.DrawFn, seed: dict[str, Any]) -> Any:
    tree: Any = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(tree)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(tree, path), path[-1]
        kind = draw(st.sampled_from(("delete", "replace", "replace", "rename", "duplicate")))
        if kind == "delete":
            del parent[last]
        elif kind == "replace":
            parent[last] = draw(junk_values)
        elif kind == "rename" and isinstance(parent, dict):
            parent[str(last)[:-1] or "_"] = parent.pop(last)
        elif kind == "duplicate" and isinstance(parent, list) and isinstance(last, int):
            parent.insert(last, copy.deepcopy(parent[last]))
    return tree


@st.composite
def mutated_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    data = bytearray(raw)
    kind = draw(st.sampled_from(("flip", "truncate", "insert", "none")))
    if kind == "none" or not data:
        return bytes(data)
    index = draw(st.integers(min_value=0, max_value=len(data) - 1))
    if kind == "flip":
        data[index] ^= 1 << draw(st.integers(min_value=0, max_value=7))
    elif kind == "truncate":
        del data[index:]
    else:
        data[index:index] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@st.composite
def hostile_frame(draw: st.DrawFn, seeds: Sequence[dict[str, Any]], seq: int) -> str | bytes:
    """A seed with ``sequence_num`` = ``seq``, then mutated structurally and/or byte-wise.
    Text when it is valid UTF-8 (a text WebSocket frame), bytes otherwise."""
    seed = dict(draw(st.sampled_from(list(seeds))))
    if "sequence_num" in seed:
        seed["sequence_num"] = seq
    tree = draw(mutated_tree(seed)) if draw(st.booleans()) else seed
    raw = draw(mutated_bytes(dumps(tree)))
    if draw(st.booleans()):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return raw


# --------------------------------------------------------------------------- invariants


def assert_book_sound(book: L2Book, state: BookStatus) -> None:
    """LIVE: uncrossed, every level a positive finite price with a positive finite size.
    Anything else: empty (a book that is not trusted is never kept around)."""
    bids_count, asks_count = book.depth
    if state is not BookStatus.LIVE:
        assert (bids_count, asks_count) == (0, 0), f"{book.product_id} {state} holds levels"
        return
    bids, asks = book.top(max(bids_count, asks_count))
    assert (len(bids), len(asks)) == (bids_count, asks_count)
    for price, size in (*bids, *asks):
        assert 0 < price < math.inf and 0 < size < math.inf, (price, size)
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert not book.is_crossed()
    if bids and asks:
        assert bids[0][0] < asks[0][0]


def _finite(value: float | None, *, positive: bool = False) -> bool:
    if value is None:
        return True
    return math.isfinite(value) and (value > 0 if positive else True)


def assert_market_sound(service: MarketDataService) -> None:
    assert service.bad_input.count(BadInputKind.INTERNAL_ERROR) == 0, service.bad_input.counts()
    for product_id in PRODUCTS:
        assert_book_sound(service.book(product_id), service.health(product_id).state)
        for trade in service.trades(product_id):
            assert trade.product_id == product_id
            assert _finite(trade.price, positive=True) and _finite(trade.size)
            assert trade.size >= 0
        for ticker in service.tickers(product_id):
            assert _finite(ticker.price, positive=True)
            for value in (
                ticker.best_bid,
                ticker.best_ask,
                ticker.best_bid_quantity,
                ticker.best_ask_quantity,
                ticker.volume_24h,
                ticker.price_percent_change_24h,
            ):
                assert _finite(value), ticker
        for candle in service.candles(product_id):
            assert all(_finite(v) for v in (candle.open, candle.high, candle.low, candle.close)), (
                candle
            )


def assert_well_typed(value: object, path: str = "") -> None:
    """Every field of a decoded dataclass holds what its annotation says; Decimals and floats
    are finite (``Product.quote_max_size`` may be +Infinity: "no maximum")."""
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            assert_well_typed(item, f"{path}[{index}]")
        return
    if not is_dataclass(value) or isinstance(value, type):
        return
    hints = typing.get_type_hints(type(value))
    for item in fields(value):
        where = f"{path}.{item.name}"
        actual = getattr(value, item.name)
        expected = hints[item.name]
        assert _matches(actual, expected), f"{where} = {actual!r} is not {expected}"
        if isinstance(actual, Decimal) and item.name != "quote_max_size":
            assert actual.is_finite(), where
        if isinstance(actual, float):
            assert math.isfinite(actual), where
        assert_well_typed(actual, where)


def _matches(value: object, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, origin)
    if origin is not None:
        return isinstance(value, origin)
    if annotation is float:
        return isinstance(value, float | int) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # a TypeVar or similar: nothing to check


# --------------------------------------------------------------------------- market socket


class RecordingControl:
    """A ``ConnectionControl`` that records what the sink asked for."""

    name = "fuzz"

    def __init__(self) -> None:
        self.reconnects: list[str] = []
        self.resubscribes: list[tuple[str, tuple[str, ...]]] = []

    def request_reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)

    def request_resubscribe(self, channel: str, product_ids: Sequence[str]) -> None:
        self.resubscribes.append((channel, tuple(product_ids)))


def live_market() -> tuple[MarketDataService, RecordingControl]:
    """A service whose three books are LIVE from the corpus snapshots (sequence 0..2)."""
    service = MarketDataService(PRODUCTS, clock=ManualClock(START))
    control = RecordingControl()
    service.on_connected(control)
    for seq, snapshot in enumerate(CORPUS.snapshots):
        service.on_frame(orjson.dumps({**snapshot, "sequence_num": seq}))
    assert all(service.health(p).state is BookStatus.LIVE for p in PRODUCTS)
    return service, control


@given(data=st.data())
@FUZZ
def test_market_on_frame_survives_mutated_frames(data: st.DataObject) -> None:
    service, _control = live_market()
    fed = service.stats.messages
    count = data.draw(st.integers(min_value=1, max_value=6))
    for seq in range(3, 3 + count):
        frame = data.draw(hostile_frame(CORPUS.market, seq))
        bad_before = service.bad_input.total
        service.on_frame(frame)
        fed += 1
        assert service.stats.messages == fed
        if isinstance(decode_market_message(frame), BadMessage | ErrorMessage):
            assert service.bad_input.total > bad_before, frame
        assert_market_sound(service)


@given(data=st.data())
@FUZZ
def test_market_snapshots_survive_mutation(data: st.DataObject) -> None:
    """Mutated snapshots land on fresh connections: a book goes LIVE only when it is sound."""
    service = MarketDataService(PRODUCTS, clock=ManualClock(START))
    service.on_connected(RecordingControl())
    for seq in range(data.draw(st.integers(min_value=1, max_value=4))):
        service.on_frame(data.draw(hostile_frame(CORPUS.snapshots, seq)))
        assert_market_sound(service)


def test_the_unmutated_corpus_is_accepted() -> None:
    """The seeds themselves are good frames: the fuzzing starts from what the wire carries."""
    service, control = live_market()
    for seq, frame in enumerate(CORPUS.market[:-1], start=3):
        service.on_frame(orjson.dumps({**frame, "sequence_num": seq}))
    assert service.bad_input.total == 0
    assert control.reconnects == [] and control.resubscribes == []
    assert service.book("BTC-USD").size_at(BookSide.ASK, 68025.0) == 1.5
    assert service.book("BTC-USD").size_at(BookSide.ASK, 68020.0) == 0.0
    assert service.trades("BTC-USD") and service.ticker("BTC-USD") is not None
    assert service.candles("BTC-USD")
    assert_market_sound(service)


def test_deeply_nested_frame_is_bad_input_not_an_internal_error() -> None:
    """msgspec raises RecursionError (not DecodeError) on very deep nesting, even inside a field
    it would skip; it must be classified like any other malformed frame."""
    service, control = live_market()
    depth = 100_000
    frame = (
        '{"channel":"heartbeats","sequence_num":3,"junk":'
        + "[" * depth
        + "]" * depth
        + ',"events":[{"heartbeat_counter":"1"}]}'
    )
    service.on_frame(frame)
    assert service.bad_input.count(BadInputKind.MALFORMED_JSON) == 1
    assert service.bad_input.count(BadInputKind.INTERNAL_ERROR) == 0
    assert all(service.health(p).state is BookStatus.LIVE for p in PRODUCTS)
    assert control.reconnects == []


def test_ticker_with_nan_strings_is_rejected() -> None:
    """strict=False turns "nan" into a float; a ticker must not carry NaN into the service."""
    tickers = [{"product_id": "BTC-USD", "price": "68000", "best_bid": "nan", "best_ask": "inf"}]
    service, _ = live_market()
    service.on_frame(orjson.dumps(_frame("ticker", [{"type": "update", "tickers": tickers}], 3)))
    assert service.ticker("BTC-USD") is None
    assert service.bad_input.total == 1


# --------------------------------------------------------------------------- user socket


class RecordingListener:
    """The user stream's listener: records events and reconcile requests."""

    def __init__(self) -> None:
        self.events: list[UserOrdersEvent] = []
        self.resets: list[str] = []

    def on_user_orders(self, event: UserOrdersEvent) -> None:
        self.events.append(event)

    def on_stream_reset(self, reason: str) -> None:
        self.resets.append(reason)


def assert_user_order_sound(event: UserOrdersEvent) -> None:
    assert_well_typed(event)
    for order in event.orders:
        assert order.order_id and order.product_id
        for amount in (
            order.filled_size,
            order.average_filled_price,
            order.filled_value,
            order.total_fees,
            order.limit_price,
            order.stop_price,
            order.leaves_quantity,
        ):
            assert amount is None or (amount.is_finite() and amount >= 0), order
        assert order.number_of_fills >= 0, order


@given(data=st.data())
@FUZZ
def test_user_stream_survives_mutated_frames(data: st.DataObject) -> None:
    listener = RecordingListener()
    stream = UserStream(listener, clock=ManualClock(START))
    control = RecordingControl()
    stream.on_connected(control)
    count = data.draw(st.integers(min_value=1, max_value=5))
    for seq in range(count):
        frame = data.draw(hostile_frame(CORPUS.user, seq))
        bad_before, resets_before = stream.bad_input.total, len(listener.resets)
        stream.on_frame(frame)
        assert stream.messages == seq + 1
        try:
            decoded = decode_user_frame(frame)
        except UserMessageError:
            assert stream.bad_input.total == bad_before + 1
            assert len(listener.resets) == resets_before + 1
        else:
            # Each order or event left out is counted; the rest of the frame is delivered.
            assert stream.bad_input.total >= bad_before + len(decoded.all_refusals())
        for event in listener.events:
            assert_user_order_sound(event)


def test_the_unmutated_user_corpus_is_accepted() -> None:
    listener = RecordingListener()
    stream = UserStream(listener, clock=ManualClock(START))
    stream.on_connected(RecordingControl())
    for seq, frame in enumerate(CORPUS.user[:-1]):
        stream.on_frame(orjson.dumps({**frame, "sequence_num": seq}))
    assert stream.bad_input.total == 0 and listener.resets == []
    assert [len(event.orders) for event in listener.events] == [
        1,
        len(CORPUS.user[2]["events"][0]["orders"]),
    ]
    for event in listener.events:
        assert_user_order_sound(event)


# --------------------------------------------------------------------------- REST


@given(data=st.data())
@FUZZ
def test_rest_decoders_raise_only_decode_error(data: st.DataObject) -> None:
    name, seed, decode = data.draw(st.sampled_from(CORPUS.rest))
    tree = data.draw(mutated_tree(seed)) if data.draw(st.booleans()) else seed
    body = data.draw(mutated_bytes(dumps(tree)))
    try:
        decoded = decode(rest_decode.parse_json_object(body, name))
    except DecodeError as error:
        assert str(error)  # names what is wrong
        return
    assert_well_typed(decoded, name)


def test_the_unmutated_rest_corpus_decodes() -> None:
    for name, seed, decode in CORPUS.rest:
        decoded = decode(rest_decode.parse_json_object(orjson.dumps(seed), name))
        assert_well_typed(decoded, name)
    assert isinstance(CORPUS.rest[-1][2](CORPUS.rest[-1][1]), rest_decode.OrderRejected), (
        "the refused order decodes as a rejection"
    )


def test_error_bodies_of_any_shape_decode() -> None:
    for body, content_type in (
        (b"<html><title>429 Too Many Requests</title></html>", "text/html"),
        (b"Unauthorized", "text/plain"),
        (b'{"errors":[{"id":"rate_limit_exceeded","message":"Too many requests"}]}', None),
        (b'{"error":"NOT_FOUND","message":' + b'"x' * 1000 + b'"}', "application/json"),
        (b"\xff\xfe\x00garbage", None),
        (b"", None),
        (b"[1,2,3]", "application/json"),
    ):
        error = rest_decode.decode_error_body(body, content_type)
        assert error.message and len(error.message) <= 201
        assert "\n" not in error.message


def test_an_infinite_server_time_is_refused() -> None:
    """float() of a huge but finite decimal is inf: an infinite clock offset would crash the
    JWT signer later, so the decoder refuses it."""
    for field_name in ("epochSeconds", "epochMillis"):
        try:
            rest_decode.decode_server_time({field_name: "9" * 400})
        except DecodeError as error:
            assert field_name in str(error)
        else:  # pragma: no cover - the assertion message is the point
            raise AssertionError(f"{field_name}: no DecodeError")


# --------------------------------------------------------------------------- found by fuzzing
# Each of these crashed a decoder or let a wrong value through before it was fixed.


def test_invalid_utf8_in_a_binary_frame_is_bad_input() -> None:
    """msgspec raises UnicodeDecodeError (not DecodeError) for a string that is not UTF-8."""
    service, control = live_market()
    frame = orjson.dumps({**CORPUS.market[0], "sequence_num": 3}).replace(b'"l2_data"', b'"\x80l2"')
    service.on_frame(frame)
    assert service.bad_input.count(BadInputKind.MALFORMED_JSON) == 1
    assert service.bad_input.count(BadInputKind.INTERNAL_ERROR) == 0
    assert all(service.health(p).state is BookStatus.LIVE for p in PRODUCTS)
    assert control.reconnects == []


def _user_frame(**order_fields: object) -> bytes:
    orders = [{**CORPUS.user[1]["events"][0]["orders"][0], **order_fields}]
    return orjson.dumps(_frame("user", [{"type": "update", "orders": orders}], 1))


@pytest.mark.parametrize(
    "order_fields",
    [
        {"time_in_force": {"x": 5}},
        {"reject_reason": {"code": "X"}},
        {"reject_reason": 17},
        {"cancel_reason": True},
        {"order_type": ["Limit"]},
        {"number_of_fills": "-1"},
        {"number_of_fills": True},
        {"number_of_fills": "1.5"},
    ],
)
def test_an_informational_field_of_the_wrong_type_costs_only_that_field(
    order_fields: dict[str, object],
) -> None:
    listener = RecordingListener()
    stream = UserStream(listener, clock=ManualClock(START))
    stream.on_connected(RecordingControl())
    stream.on_frame(_user_frame(**order_fields))
    assert stream.bad_input.counts() == {}
    assert listener.resets == []
    (order,) = listener.events[0].orders
    assert_user_order_sound(listener.events[0])
    assert order.order_id == CORPUS.user[1]["events"][0]["orders"][0]["order_id"]


@pytest.mark.parametrize(
    ("order_fields", "kind"),
    [
        ({"client_order_id": ["a"]}, "bad_order"),
        ({"order_side": "SIDEWAYS"}, "bad_order"),
        ({"cumulative_quantity": "1e400"}, "fill_not_finite_positive"),
        ({"total_fees": "-0.5"}, "fill_not_finite_positive"),
        ({"avg_price": "Infinity"}, "fill_not_finite_positive"),
    ],
)
def test_an_untrustworthy_order_costs_only_that_order(
    order_fields: dict[str, object], kind: str
) -> None:
    listener = RecordingListener()
    stream = UserStream(listener, clock=ManualClock(START))
    stream.on_connected(RecordingControl())
    stream.on_frame(_user_frame(**order_fields))
    assert stream.bad_input.counts() == {kind: 1}
    # The frame is delivered without that order; no stream reset for one bad order.
    assert [event.orders for event in listener.events] == [()]
    assert listener.resets == []


def test_user_order_optional_text_may_be_empty() -> None:
    listener = RecordingListener()
    stream = UserStream(listener, clock=ManualClock(START))
    stream.on_connected(RecordingControl())
    stream.on_frame(_user_frame(time_in_force="", reject_reason=None, cancel_reason=""))
    (order,) = listener.events[0].orders
    assert (order.time_in_force, order.reject_reason, order.cancel_reason) == (None, None, None)


def test_a_candle_beyond_float_range_is_refused() -> None:
    candle = {**CORPUS.rest[4][1]["candles"][0], "high": "9" * 400}
    with pytest.raises(DecodeError, match="'high' is out of range"):
        rest_decode.decode_candles({"candles": [candle]}, "BTC-USD")


# --------------------------------------------------------------------------- impossible data
# Issue 10: values a real exchange never sends (fills past their order, 1e400, negative or
# non-finite balances, zero increments, off-increment book levels, sequence numbers going
# backwards). Whatever comes in, nothing impossible comes out.

HOSTILE_AMOUNTS: tuple[str, ...] = (
    "1e400", "-1e400", "1E+999999", "1e-400", "0", "-0", "-1", "-1000000", "NaN", "sNaN",
    "Infinity", "-Infinity", "9" * 400, "0." + "0" * 39 + "1", "1e15", "1000000000000001",
    "0.00000001", "68000.12345678901234567890123456789012345678",
)  # fmt: skip
hostile_amounts = st.one_of(
    st.sampled_from(HOSTILE_AMOUNTS),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
)

# Amount fields per REST seed: where a hostile number goes.
_AMOUNT_FIELDS: dict[str, tuple[tuple[str | int, ...], ...]] = {
    "fills": (("price",), ("size",), ("commission",)),
    "orders": (
        ("filled_size",),
        ("average_filled_price",),
        ("filled_value",),
        ("total_fees",),
        ("order_configuration", "*", "base_size"),
    ),
    "accounts": (("available_balance", "value"), ("hold", "value")),
    "products": (("base_increment",), ("quote_increment",), ("price_increment",)),
}
_ITEMS_KEY = {"fills": "fills", "orders": "orders", "accounts": "accounts", "products": "products"}


def _set_path(tree: dict[str, Any], path: tuple[str | int, ...], value: object) -> None:
    node: Any = tree
    for key in path[:-1]:
        if key == "*":
            node = next(iter(node.values()))
            continue
        node = node[key]
    node[path[-1]] = value


def _sane(value: Decimal | None, *, zero_ok: bool = True) -> bool:
    from core.fill_guard import amount_problem

    return value is None or amount_problem(value, "x", zero_ok=zero_ok) is None


@given(data=st.data())
@FUZZ
def test_rest_decoding_never_lets_an_impossible_amount_through(data: st.DataObject) -> None:
    from core.fill_guard import fill_problem

    name = data.draw(st.sampled_from(sorted(_AMOUNT_FIELDS)))
    seed = next(tree for seed_name, tree, _ in CORPUS.rest if seed_name == name)
    decode = next(d for seed_name, _, d in CORPUS.rest if seed_name == name)
    tree = copy.deepcopy(seed)
    items = tree[_ITEMS_KEY[name]]
    for item in items:
        if data.draw(st.booleans()):
            _set_path(
                item, data.draw(st.sampled_from(_AMOUNT_FIELDS[name])), data.draw(hostile_amounts)
            )
        if name == "fills":
            item["size_in_quote"] = data.draw(st.sampled_from([True, False, "true", "false"]))
    try:
        decoded: Any = decode(tree)
    except DecodeError:
        return  # refused: nothing comes out
    assert_well_typed(decoded, name)
    if name == "products":
        for product in decoded:
            for inc in (product.base_increment, product.quote_increment, product.price_increment):
                assert _sane(inc, zero_ok=False), product
        return
    for item in decoded.items:
        if name == "fills":
            assert fill_problem(item.price, item.size, item.commission) is None, item
        elif name == "orders":
            for amount in (
                item.filled_size,
                item.average_filled_price,
                item.filled_value,
                item.total_fees,
            ):
                assert _sane(amount), item
            assert item.base_size is None or item.filled_size <= item.base_size, item
        else:
            assert _sane(item.available) and _sane(item.hold), item


@given(data=st.data())
@FUZZ
def test_the_user_stream_never_hands_on_an_impossible_amount(data: st.DataObject) -> None:
    listener = RecordingListener()
    stream = UserStream(listener, clock=ManualClock(START))
    stream.on_connected(RecordingControl())
    orders = copy.deepcopy(CORPUS.user[2]["events"][0]["orders"])
    for order in orders:
        for key in (
            "cumulative_quantity",
            "avg_price",
            "filled_value",
            "total_fees",
            "leaves_quantity",
        ):
            if data.draw(st.booleans()):
                order[key] = data.draw(hostile_amounts)
        order["order_type"] = data.draw(
            st.sampled_from(["Limit", "StopLimit", "Stop Limit", "Stop", "Bracket", "Twap", 7])
        )
        order["post_only"] = data.draw(st.sampled_from(["true", "false", True, None, "x"]))
    stream.on_frame(orjson.dumps(_frame("user", [{"type": "update", "orders": orders}], 0)))
    assert listener.resets == []  # bad orders cost themselves, never the stream
    delivered = [o for event in listener.events for o in event.orders]
    assert len(delivered) + stream.bad_input.total == len(orders)
    for event in listener.events:
        assert_user_order_sound(event)
        for order in event.orders:
            for amount in (
                order.filled_size,
                order.average_filled_price,
                order.filled_value,
                order.total_fees,
            ):
                assert _sane(amount), order


def _l2_update_frame(seq: int, product_id: str, price: str, size: str) -> bytes:
    side = "bid" if Decimal(price) < 68000 else "offer"
    event = {"type": "update", "product_id": product_id, "updates": [_l2_update(side, price, size)]}
    return orjson.dumps(_frame("l2_data", [event], seq))


@given(steps=st.lists(st.integers(min_value=-6, max_value=3), min_size=1, max_size=25))
@FUZZ
def test_sequence_numbers_in_any_order_never_leave_a_wrong_live_book(steps: list[int]) -> None:
    """Any walk of sequence numbers (repeats, gaps, going backwards): the books stay sound,
    and after a backwards step no book is LIVE until a fresh snapshot arrives."""
    service, control = live_market()
    seq = len(CORPUS.snapshots) - 1
    for step in steps:
        seq = max(seq + step, 0)
        restarts = service.stats.restarts
        service.on_frame(_l2_update_frame(seq, "BTC-USD", "67900.00", "0.5"))
        if service.stats.restarts > restarts:
            assert all(service.health(p).state is not BookStatus.LIVE for p in PRODUCTS)
            assert control.reconnects and "backwards" in control.reconnects[-1]
        assert_market_sound(service)


@given(data=st.data())
@FUZZ
def test_books_with_known_increments_hold_only_levels_on_them(data: st.DataObject) -> None:
    exchange = build_exchange(7, ManualClock(START))
    service, _control = live_market()
    service.configure_products(dict(exchange.products))
    for seq in range(3, 3 + data.draw(st.integers(min_value=1, max_value=8))):
        whole = data.draw(st.integers(min_value=67000, max_value=69000))
        decimals = data.draw(st.text(alphabet="0123456789", min_size=1, max_size=40))
        size = data.draw(st.sampled_from(["0", "0.5", "1.25", "0.00000001", "0.000000001", "2e-9"]))
        service.on_frame(_l2_update_frame(seq, "BTC-USD", f"{whole}.{decimals}", size))
        assert_market_sound(service)
        if service.health("BTC-USD").state is BookStatus.LIVE:
            bids, asks = service.book("BTC-USD").top(10_000)
            for price, level_size in (*bids, *asks):
                cents = price * 100
                assert abs(cents - round(cents)) < 1e-3, price
                sats = level_size * 1e8
                assert abs(sats - round(sats)) < 1e-3, level_size
