"""Wire encoding of the simulated exchange: request parsing and Coinbase's JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from core.model import ExchangeOrderStatus, Product, Side, StopDirection
from core.sim import wire
from core.sim.types import (
    SimAccount,
    SimCandle,
    SimFill,
    SimOrder,
    SimOrderRequest,
    SimOrderResult,
    SimTicker,
    SimTrade,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _body(configuration: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "client_order_id": "c-1",
        "product_id": "BTC-USD",
        "side": "BUY",
        "order_configuration": configuration,
        **overrides,
    }


def _order(**overrides: Any) -> SimOrder:
    fields: dict[str, Any] = {
        "order_id": "o-1",
        "client_order_id": "c-1",
        "user_id": "u",
        "product_id": "BTC-USD",
        "side": Side.BUY,
        "config_kind": "limit_limit_gtc",
        "order_type": "LIMIT",
        "time_in_force": "GOOD_UNTIL_CANCELLED",
        "base_size": Decimal("1.00000000"),
        "quote_size": None,
        "limit_price": Decimal("100.00"),
        "stop_price": None,
        "stop_direction": None,
        "post_only": True,
        "end_time": None,
        "created_time": T0,
        "status": ExchangeOrderStatus.OPEN,
        "filled_size": Decimal("0.25"),
        "filled_value": Decimal("25.00"),
        "total_fees": Decimal("0.15"),
        "number_of_fills": 2,
        "last_fill_time": T0,
    }
    fields.update(overrides)
    return SimOrder(**fields)


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("configuration", "expected"),
    [
        (
            {"market_market_ioc": {"quote_size": "10.5"}},
            {"config_kind": "market_market_ioc", "quote_size": Decimal("10.5"), "base_size": None},
        ),
        (
            {"market_market_ioc": {"base_size": "0.1"}},
            {"config_kind": "market_market_ioc", "base_size": Decimal("0.1"), "quote_size": None},
        ),
        (
            {"sor_limit_ioc": {"base_size": "1", "limit_price": "2"}},
            {"config_kind": "sor_limit_ioc", "limit_price": Decimal(2), "post_only": False},
        ),
        (
            {"limit_limit_gtc": {"base_size": "1", "limit_price": "2", "post_only": True}},
            {"config_kind": "limit_limit_gtc", "post_only": True},
        ),
        (
            {"limit_limit_fok": {"base_size": "1", "limit_price": "2", "post_only": True}},
            {"config_kind": "limit_limit_fok", "post_only": False},
        ),
        (
            {
                "limit_limit_gtd": {
                    "base_size": "1",
                    "limit_price": "2",
                    "end_time": "2026-01-02T03:04:05Z",
                }
            },
            {"end_time": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)},
        ),
        (
            {
                "stop_limit_stop_limit_gtd": {
                    "base_size": "1",
                    "limit_price": "2",
                    "stop_price": "3",
                    "stop_direction": "STOP_DIRECTION_STOP_UP",
                    "end_time": "2026-01-02T03:04:05+01:00",
                }
            },
            {
                "stop_price": Decimal(3),
                "stop_direction": StopDirection.UP,
                "end_time": datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC),
            },
        ),
    ],
)
def test_parse_each_configuration(configuration: dict[str, Any], expected: dict[str, Any]) -> None:
    request = wire.parse_order_request(_body(configuration))
    assert isinstance(request, SimOrderRequest)
    assert request.client_order_id == "c-1" and request.side is Side.BUY
    for name, value in expected.items():
        assert getattr(request, name) == value, name


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ("not an object", 400, "INVALID_ARGUMENT"),
        (_body({"limit_limit_gtc": {}}, client_order_id=""), 400, "INVALID_ARGUMENT"),
        (_body({"limit_limit_gtc": {}}, client_order_id="x" * 129), 400, "INVALID_ARGUMENT"),
        (_body({"limit_limit_gtc": {}}, product_id=5), 400, "INVALID_ARGUMENT"),
        (_body({"limit_limit_gtc": {}}, side=None), 400, "INVALID_ARGUMENT"),
        (_body({"limit_limit_gtc": {}}, side="SHORT"), 200, "INVALID_SIDE"),
        (_body({}), 400, "INVALID_ARGUMENT"),
        (_body([]), 400, "INVALID_ARGUMENT"),
        (_body({"a": {}, "b": {}}), 400, "INVALID_ARGUMENT"),
        (_body({"bogus": {}}), 400, "INVALID_ARGUMENT"),
        (_body({"trigger_bracket_gtc": {}}), 200, "UNSUPPORTED_ORDER_CONFIGURATION"),
        (_body({"limit_limit_gtc": "x"}), 400, "INVALID_ARGUMENT"),
        (_body({"limit_limit_gtc": {"base_size": "1"}}), 400, "INVALID_ARGUMENT"),
        (_body({"limit_limit_gtc": {"limit_price": "1"}}), 400, "INVALID_ARGUMENT"),
        (
            _body({"limit_limit_gtc": {"base_size": "1", "limit_price": "1", "quote_size": "1"}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body({"limit_limit_gtc": {"base_size": "1", "limit_price": "1", "post_only": "yes"}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body({"limit_limit_gtc": {"base_size": "1e", "limit_price": "1"}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body({"limit_limit_gtc": {"base_size": "NaN", "limit_price": "1"}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (_body({"limit_limit_gtc": {"base_size": 1, "limit_price": "1"}}), 400, "INVALID_ARGUMENT"),
        (_body({"market_market_ioc": {}}), 400, "INVALID_ARGUMENT"),
        (
            _body({"market_market_ioc": {"base_size": "1", "quote_size": "1"}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body({"stop_limit_stop_limit_gtc": {"base_size": "1", "limit_price": "1"}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body(
                {
                    "stop_limit_stop_limit_gtc": {
                        "base_size": "1",
                        "limit_price": "1",
                        "stop_price": "1",
                        "stop_direction": "UP",
                    }
                }
            ),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body({"limit_limit_gtd": {"base_size": "1", "limit_price": "1"}}),
            200,
            "GTD_ORDERS_MUST_HAVE_END_TIME",
        ),
        (
            _body({"limit_limit_gtd": {"base_size": "1", "limit_price": "1", "end_time": 5}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body({"limit_limit_gtd": {"base_size": "1", "limit_price": "1", "end_time": "soon"}}),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            _body(
                {
                    "limit_limit_gtd": {
                        "base_size": "1",
                        "limit_price": "1",
                        "end_time": "2026-01-02T00:00:00",
                    }
                }
            ),
            400,
            "INVALID_ARGUMENT",
        ),
    ],
)
def test_parse_rejections(body: Any, status: int, error: str) -> None:
    result = wire.parse_order_request(body)
    assert isinstance(result, wire.OrderRequestError)
    assert (result.http_status, result.error) == (status, error)
    response = result.create_response(body)
    if status == 400:
        assert response == {
            "error": error,
            "message": result.message,
            "error_details": result.message,
        }
    else:
        assert response["success"] is False
        assert response["error_response"]["error"] == error
        assert response["error_response"]["new_order_failure_reason"] == error
        assert response["order_configuration"] == body["order_configuration"]


def test_preview_body_needs_no_client_order_id() -> None:
    body = _body({"limit_limit_gtc": {"base_size": "1", "limit_price": "1"}})
    del body["client_order_id"]
    assert isinstance(wire.parse_order_request(body), wire.OrderRequestError)
    request = wire.parse_order_request(
        body, require_client_order_id=False, fallback_client_order_id="gen"
    )
    assert isinstance(request, SimOrderRequest) and request.client_order_id == "gen"


# ----------------------------------------------------------------------------- encoding


def test_create_order_response_success_and_failure() -> None:
    order = _order()
    request = SimOrderRequest(
        "c-1",
        "BTC-USD",
        Side.BUY,
        "limit_limit_gtc",
        base_size=Decimal(1),
        limit_price=Decimal(100),
    )
    ok = wire.create_order_response(SimOrderResult(True, order), request)
    assert ok["success"] is True and ok["order_id"] == "o-1"
    assert ok["success_response"] == {
        "order_id": "o-1",
        "product_id": "BTC-USD",
        "side": "BUY",
        "client_order_id": "c-1",
    }
    assert ok["order_configuration"] == {
        "limit_limit_gtc": {"base_size": "1.00000000", "limit_price": "100.00", "post_only": True}
    }
    failed = wire.create_order_response(
        SimOrderResult(
            False,
            None,
            error="INSUFFICIENT_FUND",
            message="short",
            preview_failure_reason="PREVIEW_INSUFFICIENT_FUND",
        ),
        request,
    )
    assert failed["success"] is False and failed["order_id"] == ""
    assert failed["error_response"] == {
        "error": "INSUFFICIENT_FUND",
        "message": "short",
        "error_details": "short",
        "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND",
        "new_order_failure_reason": "INSUFFICIENT_FUND",
    }
    assert failed["order_configuration"] == {
        "limit_limit_gtc": {"base_size": "1", "limit_price": "100", "post_only": False}
    }


def test_order_configuration_per_kind() -> None:
    common: dict[str, Any] = {
        "base_size": Decimal(1),
        "quote_size": None,
        "limit_price": Decimal(2),
        "stop_price": Decimal(3),
        "stop_direction": StopDirection.DOWN,
        "post_only": False,
        "end_time": datetime(2026, 1, 2, 0, 0, 0, 500, tzinfo=UTC),
    }
    stop = wire.order_configuration("stop_limit_stop_limit_gtd", **common)
    assert stop == {
        "stop_limit_stop_limit_gtd": {
            "base_size": "1",
            "limit_price": "2",
            "stop_price": "3",
            "stop_direction": "STOP_DIRECTION_STOP_DOWN",
            "end_time": "2026-01-02T00:00:00.000500Z",
        }
    }
    quote = wire.order_configuration(
        "market_market_ioc", **{**common, "base_size": None, "quote_size": Decimal(5)}
    )
    assert quote == {"market_market_ioc": {"quote_size": "5"}}
    fok = wire.order_configuration("limit_limit_fok", **common)
    assert fok == {"limit_limit_fok": {"base_size": "1", "limit_price": "2"}}


def test_encode_order() -> None:
    encoded = wire.encode_order(_order())
    assert encoded["status"] == "OPEN" and encoded["settled"] is False
    assert encoded["filled_size"] == "0.25" and encoded["average_filled_price"] == "100"
    assert Decimal(encoded["completion_percentage"]) == 25
    assert encoded["total_value_after_fees"] == "25.15"
    assert encoded["number_of_fills"] == "2"
    assert encoded["created_time"] == "2026-01-01T00:00:00.000000Z"
    assert encoded["last_fill_time"] == "2026-01-01T00:00:00.000000Z"
    assert encoded["pending_cancel"] is False and encoded["size_in_quote"] is False
    sold = wire.encode_order(
        _order(side=Side.SELL, status=ExchangeOrderStatus.CANCEL_QUEUED, last_fill_time=None)
    )
    assert sold["total_value_after_fees"] == "24.85"
    assert sold["pending_cancel"] is True and sold["last_fill_time"] is None
    empty = wire.encode_order(
        _order(filled_size=Decimal("0E-8"), filled_value=Decimal(0), total_fees=Decimal(0))
    )
    assert empty["filled_size"] == "0" and empty["average_filled_price"] == "0"


def test_encode_user_order_is_title_case_and_cumulative() -> None:
    encoded = wire.encode_user_order(_order(order_type="STOP_LIMIT", stop_price=Decimal("90.00")))
    assert encoded["order_type"] == "Stop Limit"
    assert encoded["cumulative_quantity"] == "0.25" and encoded["leaves_quantity"] == "0.75000000"
    assert encoded["avg_price"] == "100" and encoded["total_fees"] == "0.15"
    assert encoded["stop_price"] == "90.00" and encoded["order_side"] == "BUY"
    assert wire.encode_user_order(_order(status=ExchangeOrderStatus.QUEUED))["status"] == "PENDING"
    assert wire.encode_user_order(_order(order_type="MARKET"))["order_type"] == "Market"


def test_encode_fill_account_trade_candle_ticker() -> None:
    fill = SimFill(
        "e",
        "t",
        "o",
        "u",
        "BTC-USD",
        Side.SELL,
        Decimal("10.00"),
        Decimal("0.5"),
        Decimal("0.03"),
        "MAKER",
        T0,
        T0,
    )
    encoded_fill = wire.encode_fill(fill)
    assert encoded_fill["liquidity_indicator"] == "MAKER" and encoded_fill["side"] == "SELL"
    assert encoded_fill["trade_type"] == "FILL" and encoded_fill["commission"] == "0.03"

    account = wire.encode_account(SimAccount("a", "BTC", Decimal(2), Decimal("0.5")), T0)
    assert account["available_balance"] == {"value": "2", "currency": "BTC"}
    assert account["hold"] == {"value": "0.5", "currency": "BTC"}
    assert account["type"] == "ACCOUNT_TYPE_CRYPTO"

    trade = SimTrade("t", "BTC-USD", Decimal("10.00"), Decimal("0.5"), Side.BUY, T0)
    assert wire.encode_trade(trade) == {
        "trade_id": "t",
        "product_id": "BTC-USD",
        "price": "10.00",
        "size": "0.5",
        "side": "BUY",
        "time": "2026-01-01T00:00:00.000000Z",
    }
    assert wire.encode_trade(trade, rest=True)["exchange"] == "COINBASE"

    candle = SimCandle(60, Decimal(1), Decimal(3), Decimal(2), Decimal("2.5"), Decimal(0))
    assert wire.encode_candle(candle) == {
        "start": "60",
        "low": "1",
        "high": "3",
        "open": "2",
        "close": "2.5",
        "volume": "0",
    }
    assert wire.encode_candle(candle, "BTC-USD")["product_id"] == "BTC-USD"

    ticker = SimTicker(
        "BTC-USD",
        Decimal(5),
        Decimal(7),
        Decimal(4),
        Decimal(6),
        Decimal("1.5"),
        Decimal(4),
        Decimal(1),
        Decimal(6),
        Decimal(2),
    )
    encoded_ticker = wire.encode_ticker(ticker)
    assert encoded_ticker["type"] == "ticker" and encoded_ticker["volume_24_h"] == "7"
    assert encoded_ticker["best_ask_quantity"] == "2"


def test_encode_product_and_books() -> None:
    product = Product(
        "BTC-USD",
        "BTC",
        "USD",
        Decimal("0.00000001"),
        Decimal("0.01"),
        Decimal("0.01"),
        Decimal("0.00000001"),
        Decimal(3400),
        Decimal(1),
        Decimal(10**8),
        price=Decimal(5),
    )
    encoded = wire.encode_product(product, None)
    assert encoded["price"] == "5" and encoded["volume_24h"] == ""
    assert encoded["base_increment"] == "0.00000001" and encoded["product_type"] == "SPOT"
    book = wire.encode_product_book(
        "BTC-USD", [(Decimal(99), Decimal(1))], [(Decimal(101), Decimal(2))], T0, Decimal(100)
    )
    assert book["mid_market"] == "100" and book["spread_absolute"] == "2" and book["last"] == "100"
    assert book["spread_bps"] == "200.0000"
    empty = wire.encode_product_book("BTC-USD", [], [], T0, None)
    assert empty["mid_market"] == "" and empty["last"] == ""


def test_envelope_splices_the_sequence_number() -> None:
    message = wire.encode_envelope(
        "l2_data", "2026-01-01T00:00:00.000000Z", [{"type": "update", "updates": []}]
    )
    decoded = orjson.loads(message.with_sequence(17))
    assert decoded == {
        "channel": "l2_data",
        "client_id": "",
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "sequence_num": 17,
        "events": [{"type": "update", "updates": []}],
    }
    assert list(decoded) == ["channel", "client_id", "timestamp", "sequence_num", "events"]
    assert orjson.loads(message.with_sequence(0))["sequence_num"] == 0


def test_times() -> None:
    assert wire.parse_rfc3339("2026-01-01T00:00:00z") == T0
    with pytest.raises(ValueError):
        wire.parse_rfc3339("2026-01-01T00:00:00")
    assert wire.l2_side(Side.BUY) == "bid" and wire.l2_side(Side.SELL) == "offer"
