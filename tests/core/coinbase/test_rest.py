"""CoinbaseRestClient against a scripted exchange (httpx.MockTransport).

Checks what goes on the wire (method, path, repeated query keys, exact JSON bodies, a valid JWT
bound to method + path), how answers are decoded, the create-order outcome rules, the retry
policy (with a fake sleep) and pacing.
"""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest

from core.bad_input import REFUSED_EXCHANGE_DATA
from core.clock import ManualClock
from core.coinbase.auth import JwtSigner
from core.coinbase.errors import (
    AuthenticationError,
    CoinbaseError,
    DecodeError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from core.coinbase.rest import (
    CancelResult,
    CoinbaseRestClient,
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
    build_create_order_body,
    is_coinbase_host,
)
from core.coinbase.rest_decode import (
    decode_error_body,
    decode_fill,
    decode_order,
    decode_product,
    decode_server_time,
    parse_json_object,
    parse_rfc3339,
)
from core.config import Credentials, ExchangeSettings
from core.model import (
    Balance,
    ExchangeOrderStatus,
    LiquidityIndicator,
    OrderSpec,
    OrderType,
    PlacedOrder,
    Side,
    StopDirection,
    TimeInForce,
)
from tests.core.coinbase.scripted import (
    KEY_NAME,
    ClientFactory,
    FakeSleep,
    KeyMaterial,
    RecordedRequest,
    ScriptedExchange,
    decode_token,
    json_response,
)

CLIENT_ORDER_ID = "5d3a6b2e-1f4c-4e8a-9b7d-2c1e0f9a8b7c"
ORDER_ID = "11111-00000-000000"

# --------------------------------------------------------------------------- payloads (§2 shapes)

BTC_USD = {
    "product_id": "BTC-USD",
    "price": "68923.67",
    "price_percentage_change_24h": "-0.28560028286595",
    "volume_24h": "11005.02587005",
    "base_increment": "0.00000001",
    "quote_increment": "0.01",
    "quote_min_size": "1",
    "quote_max_size": "150000000",
    "base_min_size": "0.00000001",
    "base_max_size": "3400",
    "base_name": "Bitcoin",
    "quote_name": "US Dollar",
    "is_disabled": False,
    "status": "online",
    "cancel_only": False,
    "limit_only": False,
    "post_only": False,
    "trading_disabled": False,
    "auction_mode": False,
    "product_type": "SPOT",
    "quote_currency_id": "USD",
    "base_currency_id": "BTC",
    "mid_market_price": "",
    "alias": "",
    "alias_to": ["BTC-USDC"],
    "price_increment": "0.01",
    "display_name": "BTC-USD",
    "product_venue": "CBE",
}
ETH_USD = {
    **BTC_USD,
    "product_id": "ETH-USD",
    "price": "3500.1",
    "base_currency_id": "ETH",
    "base_increment": "0.0001",
    "quote_increment": "0.01",
    "price_increment": "",  # missing tick: falls back to quote_increment
    "status": "offline",
}


def order_payload(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_id": ORDER_ID,
        "product_id": "BTC-USD",
        "user_id": "2222-000000-000000",
        "order_configuration": {
            "limit_limit_gtc": {"base_size": "0.001", "limit_price": "10000.00", "post_only": True}
        },
        "side": "BUY",
        "client_order_id": CLIENT_ORDER_ID,
        "status": "OPEN",
        "time_in_force": "GOOD_UNTIL_CANCELLED",
        "created_time": "2026-01-01T00:00:01.123456Z",
        "completion_percentage": "50",
        "filled_size": "0.0005",
        "average_filled_price": "10000",
        "fee": "",
        "number_of_fills": "2",
        "filled_value": "5",
        "pending_cancel": False,
        "size_in_quote": False,
        "total_fees": "0.03",
        "total_value_after_fees": "5.03",
        "trigger_status": "INVALID_ORDER_TYPE",
        "order_type": "LIMIT",
        "reject_reason": "REJECT_REASON_UNSPECIFIED",
        "settled": False,
        "product_type": "SPOT",
        "reject_message": "",
        "cancel_message": "",
        "order_placement_source": "RETAIL_ADVANCED",
        "outstanding_hold_amount": "5.02",
        "last_fill_time": "2026-01-01T00:00:02Z",
    }
    order.update(overrides)
    return order


def fill_payload(trade_id: str, **overrides: Any) -> dict[str, Any]:
    fill: dict[str, Any] = {
        "entry_id": "e-" + trade_id,
        "trade_id": trade_id,
        "order_id": ORDER_ID,
        "trade_time": "2026-01-01T00:00:02Z",
        "trade_type": "FILL",
        "price": "10000.00",
        "size": "0.00025",
        "commission": "0.015",
        "product_id": "BTC-USD",
        "sequence_timestamp": "2026-01-01T00:00:02.123456789Z",
        "liquidity_indicator": "MAKER",
        "size_in_quote": False,
        "user_id": "3333-333333-3333333",
        "side": "BUY",
        "retail_portfolio_id": "",
    }
    fill.update(overrides)
    return fill


def account_payload(currency: str, available: str, hold: str) -> dict[str, Any]:
    return {
        "uuid": f"uuid-{currency}",
        "name": f"{currency} Wallet",
        "currency": currency,
        "available_balance": {"value": available, "currency": currency},
        "default": True,
        "active": True,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
        "deleted_at": None,
        "type": "ACCOUNT_TYPE_CRYPTO",
        "ready": True,
        "hold": {"value": hold, "currency": currency},
        "retail_portfolio_id": "portfolio-1",
    }


def limit_gtc_spec() -> OrderSpec:
    return OrderSpec(
        "BTC-USD",
        Side.BUY,
        OrderType.LIMIT,
        base_size=Decimal("0.0010"),
        limit_price=Decimal("60000.00"),
        post_only=True,
    )


def create_success(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": True,
        # coinbase-advanced-py#49: a successful answer carrying a failure_reason.
        "failure_reason": "UNKNOWN_FAILURE_REASON",
        "order_id": ORDER_ID,
        "success_response": {
            "order_id": ORDER_ID,
            "product_id": "BTC-USD",
            "side": "BUY",
            "client_order_id": CLIENT_ORDER_ID,
        },
        "order_configuration": {
            "limit_limit_gtc": {"base_size": "0.0010", "limit_price": "60000.00", "post_only": True}
        },
    }
    body.update(overrides)
    return body


def assert_signed(
    recorded: RecordedRequest, key: KeyMaterial, host: str = "api.coinbase.com"
) -> dict[str, Any]:
    """The request carries a JWT that verifies and is bound to its method and bare path."""
    assert recorded.token is not None, "no Authorization header"
    claims = decode_token(recorded.token, key)
    assert claims["uri"] == f"{recorded.method} {host}{recorded.path}"
    assert "?" not in claims["uri"]
    assert claims["sub"] == KEY_NAME
    return claims


# --------------------------------------------------------------------------- public data


async def test_server_time_is_public_and_unsigned(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "GET",
        "/time",
        json_response(
            200,
            {
                "iso": "2026-01-01T00:00:05Z",
                "epochSeconds": "1767225605",
                "epochMillis": "1767225605250",
            },
        ),
    )
    server_time = await client.get_server_time()
    assert server_time.epoch_seconds == pytest.approx(1767225605.25)
    assert server_time.iso == "2026-01-01T00:00:05Z"
    [sent] = exchange.sent("GET", "/time")
    assert sent.token is None


async def test_measure_clock_offset_uses_the_midpoint_and_sets_the_signer(
    client: CoinbaseRestClient,
    exchange: ScriptedExchange,
    clock: ManualClock,
    signer: JwtSigner,
    es256_key: KeyMaterial,
) -> None:
    start = clock.time()

    def slow_answer(request: httpx.Request) -> httpx.Response:
        clock.advance(0.4)  # the round trip takes 0.4 s
        return json_response(200, {"iso": "", "epochSeconds": str(int(start + 30))})

    exchange.on("GET", "/time", slow_answer)
    offset = await client.measure_clock_offset()
    assert offset == pytest.approx(30 - 0.2)
    assert signer.clock_offset_s == pytest.approx(29.8)

    exchange.on("GET", "/accounts", json_response(200, {"accounts": [], "has_next": False}))
    await client.list_accounts()
    claims = decode_token(exchange.sent("GET", "/accounts")[0].token or "", es256_key)
    assert claims["nbf"] == int(clock.time() + 29.8)


async def test_list_products_sends_repeated_keys_and_decodes(
    client: CoinbaseRestClient, exchange: ScriptedExchange, es256_key: KeyMaterial
) -> None:
    exchange.on(
        "GET", "/products", json_response(200, {"products": [BTC_USD, ETH_USD], "num_products": 2})
    )
    products = await client.list_products(["BTC-USD", "ETH-USD"])

    [sent] = exchange.sent("GET", "/products")
    assert sent.query("product_ids") == ["BTC-USD", "ETH-USD"]
    assert "product_ids=BTC-USD&product_ids=ETH-USD" in str(sent.request.url)
    assert_signed(sent, es256_key)

    btc, eth = products
    assert btc.product_id == "BTC-USD"
    assert (btc.base_currency, btc.quote_currency) == ("BTC", "USD")
    assert btc.base_increment == Decimal("0.00000001")
    assert btc.price_increment == Decimal("0.01")
    assert btc.quote_min_size == Decimal(1)
    assert btc.base_max_size == Decimal(3400)
    assert btc.price == Decimal("68923.67")
    assert btc.tradable
    assert eth.price_increment == eth.quote_increment == Decimal("0.01")
    assert not eth.tradable


async def test_market_data_without_a_key_uses_public_mirrors(
    make_client: ClientFactory, exchange: ScriptedExchange
) -> None:
    client = make_client(signer=None)
    exchange.on("GET", "/market/products", json_response(200, {"products": [BTC_USD]}))
    exchange.on("GET", "/market/products/BTC-USD", json_response(200, BTC_USD))
    exchange.on(
        "GET",
        "/market/product_book",
        json_response(
            200, {"pricebook": {"product_id": "BTC-USD", "bids": [], "asks": [], "time": ""}}
        ),
    )
    exchange.on("GET", "/market/products/BTC-USD/candles", json_response(200, {"candles": []}))

    assert [p.product_id for p in await client.list_products()] == ["BTC-USD"]
    assert (await client.get_product("BTC-USD")).product_id == "BTC-USD"
    book = await client.get_product_book("BTC-USD")
    assert book.bids == [] and book.time is None
    assert await client.get_candles("BTC-USD", 0, 60, "ONE_MINUTE") == []

    assert len(exchange.requests) == 4
    assert all(r.token is None for r in exchange.requests)
    assert exchange.requests[0].query("product_ids") == []


async def test_get_product_and_quoted_path(
    client: CoinbaseRestClient, exchange: ScriptedExchange, es256_key: KeyMaterial
) -> None:
    exchange.on("GET", "/products/BTC-USD", json_response(200, BTC_USD))
    product = await client.get_product("BTC-USD")
    assert product.quote_max_size == Decimal(150000000)
    assert_signed(exchange.requests[0], es256_key)
    with pytest.raises(ValueError):
        await client.get_product("")


async def test_product_book(
    client: CoinbaseRestClient, exchange: ScriptedExchange, es256_key: KeyMaterial
) -> None:
    exchange.on(
        "GET",
        "/product_book",
        json_response(
            200,
            {
                "pricebook": {
                    "product_id": "BTC-USD",
                    "bids": [
                        {"price": "68900.00", "size": "1.5"},
                        {"price": "68899.99", "size": "0.2"},
                    ],
                    "asks": [{"price": "68901.00", "size": "0.75"}],
                    "time": "2026-01-01T00:00:00.5Z",
                },
                "last": "68900.5",
                "mid_market": "68900.5",
                "spread_bps": "1.45",
                "spread_absolute": "1.00",
            },
        ),
    )
    book = await client.get_product_book("BTC-USD", limit=5)
    [sent] = exchange.requests
    assert sent.query("product_id") == ["BTC-USD"]
    assert sent.query("limit") == ["5"]
    assert_signed(sent, es256_key)
    assert book.product_id == "BTC-USD"
    assert book.bids == [
        (Decimal("68900.00"), Decimal("1.5")),
        (Decimal("68899.99"), Decimal("0.2")),
    ]
    assert book.asks == [(Decimal("68901.00"), Decimal("0.75"))]
    assert book.time == datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)


async def test_candles_are_returned_oldest_first(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    candles = [
        {"start": "1767225720", "low": "3", "high": "6", "open": "4", "close": "5", "volume": "10"},
        {
            "start": "1767225660",
            "low": "2",
            "high": "5",
            "open": "3",
            "close": "4",
            "volume": "7.5",
        },
        {"start": "1767225600", "low": "1", "high": "4", "open": "2", "close": "3", "volume": "1"},
    ]
    exchange.on("GET", "/products/BTC-USD/candles", json_response(200, {"candles": candles}))
    result = await client.get_candles("BTC-USD", 1767225600, 1767225780, "ONE_MINUTE")
    [sent] = exchange.requests
    assert sent.query("start") == ["1767225600"]
    assert sent.query("end") == ["1767225780"]
    assert sent.query("granularity") == ["ONE_MINUTE"]
    assert [c.start for c in result] == [1767225600, 1767225660, 1767225720]
    assert result[1].volume == 7.5
    assert result[0].product_id == "BTC-USD"
    assert (result[2].open, result[2].high, result[2].low, result[2].close) == (4, 6, 3, 5)


# --------------------------------------------------------------------------- account


async def test_list_accounts_follows_cursors(
    client: CoinbaseRestClient, exchange: ScriptedExchange, es256_key: KeyMaterial
) -> None:
    exchange.on(
        "GET",
        "/accounts",
        json_response(
            200,
            {
                "accounts": [
                    account_payload("BTC", "1.5", "0.25"),
                    account_payload("USD", "1000.00", "0"),
                ],
                "has_next": True,
                "cursor": "page-2",
                "size": 2,
            },
        ),
        json_response(
            200,
            {
                "accounts": [account_payload("ETH", "20", "")],
                "has_next": False,
                "cursor": "",
                "size": 1,
            },
        ),
    )
    balances = await client.list_accounts()
    assert balances == [
        Balance("BTC", Decimal("1.5"), Decimal("0.25")),
        Balance("USD", Decimal("1000.00"), Decimal(0)),
        Balance("ETH", Decimal(20), Decimal(0)),
    ]
    assert balances[0].total == Decimal("1.75")
    first, second = exchange.requests
    assert first.query("limit") == ["250"] and first.query("cursor") == []
    assert second.query("limit") == ["250"] and second.query("cursor") == ["page-2"]
    for sent in (first, second):
        assert_signed(sent, es256_key)
    assert first.token != second.token


async def test_a_repeated_cursor_stops_pagination(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "GET",
        "/accounts",
        json_response(200, {"accounts": [], "has_next": True, "cursor": "same"}),
    )
    with pytest.raises(DecodeError, match="repeated cursor"):
        await client.list_accounts()
    assert len(exchange.requests) == 2


async def test_key_permissions(client: CoinbaseRestClient, exchange: ScriptedExchange) -> None:
    exchange.on(
        "GET",
        "/key_permissions",
        json_response(
            200,
            {
                "can_view": True,
                "can_trade": True,
                "can_transfer": False,
                "portfolio_uuid": "8f3f5c4e-0000-4000-8000-000000000001",
                "portfolio_type": "DEFAULT",
            },
        ),
    )
    permissions = await client.get_key_permissions()
    assert permissions.can_view and permissions.can_trade and not permissions.can_transfer
    assert permissions.portfolio_type == "DEFAULT"
    assert permissions.portfolio_uuid.startswith("8f3f5c4e")


# --------------------------------------------------------------------------- create order

END = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2)))
CONFIG_CASES: list[tuple[str, OrderSpec, dict[str, Any]]] = [
    (
        "market-base",
        OrderSpec("BTC-USD", Side.SELL, OrderType.MARKET, base_size=Decimal("0.0100")),
        {"market_market_ioc": {"base_size": "0.0100"}},
    ),
    (
        "market-quote",
        OrderSpec("BTC-USD", Side.BUY, OrderType.MARKET, quote_size=Decimal("25.50")),
        {"market_market_ioc": {"quote_size": "25.50"}},
    ),
    (
        "limit-gtc-post-only",
        limit_gtc_spec(),
        {"limit_limit_gtc": {"base_size": "0.0010", "limit_price": "60000.00", "post_only": True}},
    ),
    (
        "limit-gtd",
        OrderSpec(
            "BTC-USD",
            Side.SELL,
            OrderType.LIMIT,
            base_size=Decimal("1E-8"),
            limit_price=Decimal("7E+4"),
            time_in_force=TimeInForce.GTD,
            end_time=END,
        ),
        {
            "limit_limit_gtd": {
                "base_size": "0.00000001",
                "limit_price": "70000",
                "end_time": "2026-01-02T01:04:05Z",
                "post_only": False,
            }
        },
    ),
    (
        "limit-ioc",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.LIMIT,
            base_size=Decimal("0.5"),
            limit_price=Decimal("100.10"),
            time_in_force=TimeInForce.IOC,
        ),
        {"sor_limit_ioc": {"base_size": "0.5", "limit_price": "100.10"}},
    ),
    (
        "limit-fok",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.LIMIT,
            base_size=Decimal("0.5"),
            limit_price=Decimal("100.10"),
            time_in_force=TimeInForce.FOK,
        ),
        {"limit_limit_fok": {"base_size": "0.5", "limit_price": "100.10"}},
    ),
    (
        "stop-limit-gtc",
        OrderSpec(
            "BTC-USD",
            Side.SELL,
            OrderType.STOP_LIMIT,
            base_size=Decimal("0.01"),
            limit_price=Decimal("59000"),
            stop_price=Decimal("59500.00"),
            stop_direction=StopDirection.DOWN,
        ),
        {
            "stop_limit_stop_limit_gtc": {
                "base_size": "0.01",
                "limit_price": "59000",
                "stop_price": "59500.00",
                "stop_direction": "STOP_DIRECTION_STOP_DOWN",
            }
        },
    ),
    (
        "stop-limit-gtd",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.STOP_LIMIT,
            base_size=Decimal("0.01"),
            limit_price=Decimal("71000"),
            stop_price=Decimal("70500"),
            stop_direction=StopDirection.UP,
            time_in_force=TimeInForce.GTD,
            end_time=datetime(2026, 5, 31, 9, 59, 59, tzinfo=UTC),
        ),
        {
            "stop_limit_stop_limit_gtd": {
                "base_size": "0.01",
                "limit_price": "71000",
                "stop_price": "70500",
                "stop_direction": "STOP_DIRECTION_STOP_UP",
                "end_time": "2026-05-31T09:59:59Z",
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("spec", "configuration"),
    [(spec, config) for _, spec, config in CONFIG_CASES],
    ids=[name for name, _, _ in CONFIG_CASES],
)
async def test_create_order_body_is_exactly_the_protocol(
    spec: OrderSpec,
    configuration: dict[str, Any],
    client: CoinbaseRestClient,
    exchange: ScriptedExchange,
    es256_key: KeyMaterial,
) -> None:
    exchange.on(
        "POST",
        "/orders",
        json_response(
            200,
            create_success(
                success_response={
                    "order_id": ORDER_ID,
                    "product_id": spec.product_id,
                    "side": spec.side.value,
                    "client_order_id": CLIENT_ORDER_ID,
                }
            ),
        ),
    )
    outcome = await client.create_order(spec, CLIENT_ORDER_ID)
    assert outcome == OrderAccepted(PlacedOrder(ORDER_ID, CLIENT_ORDER_ID, "BTC-USD", spec.side))
    [sent] = exchange.requests
    assert sent.json() == {
        "client_order_id": CLIENT_ORDER_ID,
        "product_id": "BTC-USD",
        "side": spec.side.value,
        "order_configuration": configuration,
    }
    assert sent.request.headers["content-type"] == "application/json"
    # Decimals such as Decimal("1E-8") must go out in plain notation.
    assert b"E-" not in sent.request.content and b"E+" not in sent.request.content
    assert_signed(sent, es256_key)


INVALID_SPECS: list[tuple[str, OrderSpec]] = [
    ("market-no-size", OrderSpec("BTC-USD", Side.BUY, OrderType.MARKET)),
    (
        "market-both-sizes",
        OrderSpec(
            "BTC-USD", Side.BUY, OrderType.MARKET, base_size=Decimal(1), quote_size=Decimal(1)
        ),
    ),
    ("market-zero", OrderSpec("BTC-USD", Side.BUY, OrderType.MARKET, base_size=Decimal(0))),
    ("limit-no-price", OrderSpec("BTC-USD", Side.BUY, OrderType.LIMIT, base_size=Decimal(1))),
    (
        "limit-quote-size",
        OrderSpec(
            "BTC-USD", Side.BUY, OrderType.LIMIT, quote_size=Decimal(1), limit_price=Decimal(1)
        ),
    ),
    (
        "limit-negative-price",
        OrderSpec(
            "BTC-USD", Side.BUY, OrderType.LIMIT, base_size=Decimal(1), limit_price=Decimal(-1)
        ),
    ),
    (
        "limit-nan",
        OrderSpec(
            "BTC-USD", Side.BUY, OrderType.LIMIT, base_size=Decimal("NaN"), limit_price=Decimal(1)
        ),
    ),
    (
        "gtd-without-end",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.LIMIT,
            base_size=Decimal(1),
            limit_price=Decimal(1),
            time_in_force=TimeInForce.GTD,
        ),
    ),
    (
        "gtd-naive-end",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.LIMIT,
            base_size=Decimal(1),
            limit_price=Decimal(1),
            time_in_force=TimeInForce.GTD,
            end_time=datetime(2026, 1, 2),
        ),
    ),
    (
        "ioc-post-only",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.LIMIT,
            base_size=Decimal(1),
            limit_price=Decimal(1),
            time_in_force=TimeInForce.IOC,
            post_only=True,
        ),
    ),
    (
        "stop-without-direction",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.STOP_LIMIT,
            base_size=Decimal(1),
            limit_price=Decimal(1),
            stop_price=Decimal(1),
        ),
    ),
    (
        "stop-post-only",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.STOP_LIMIT,
            base_size=Decimal(1),
            limit_price=Decimal(1),
            stop_price=Decimal(1),
            stop_direction=StopDirection.UP,
            post_only=True,
        ),
    ),
    (
        "stop-ioc",
        OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.STOP_LIMIT,
            base_size=Decimal(1),
            limit_price=Decimal(1),
            stop_price=Decimal(1),
            stop_direction=StopDirection.UP,
            time_in_force=TimeInForce.IOC,
        ),
    ),
]


@pytest.mark.parametrize("spec", [s for _, s in INVALID_SPECS], ids=[n for n, _ in INVALID_SPECS])
async def test_inexpressible_specs_raise_before_sending(
    spec: OrderSpec, client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    with pytest.raises(ValueError):
        await client.create_order(spec, CLIENT_ORDER_ID)
    assert exchange.requests == []


@pytest.mark.parametrize("client_order_id", ["", "x" * 129])
def test_client_order_id_length_is_checked(client_order_id: str) -> None:
    with pytest.raises(ValueError, match="client_order_id"):
        build_create_order_body(limit_gtc_spec(), client_order_id)


async def test_success_decides_even_with_a_failure_reason(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on("POST", "/orders", json_response(200, create_success()))
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert outcome == OrderAccepted(PlacedOrder(ORDER_ID, CLIENT_ORDER_ID, "BTC-USD", Side.BUY))


async def test_success_without_success_response_reads_top_level_order_id(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "POST", "/orders", json_response(200, {"success": True, "order_id": "top-level-id"})
    )
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert outcome == OrderAccepted(
        PlacedOrder("top-level-id", CLIENT_ORDER_ID, "BTC-USD", Side.BUY)
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"success": True, "success_response": {"client_order_id": CLIENT_ORDER_ID}},
            "without an order_id",
        ),
        (
            {
                "success": True,
                "success_response": {"order_id": "x", "client_order_id": "someone-else"},
            },
            "someone-else",
        ),
        ({"order_id": ORDER_ID}, "no boolean 'success'"),
        ({"success": "true", "order_id": ORDER_ID}, "no boolean 'success'"),
    ],
    ids=["no-order-id", "other-client-order-id", "no-success", "success-not-bool"],
)
async def test_unclear_answers_are_unknown_not_rejected(
    body: dict[str, Any], reason: str, client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on("POST", "/orders", json_response(200, body))
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert isinstance(outcome, OrderOutcomeUnknown)
    assert reason in outcome.reason


async def test_success_false_is_rejected_with_the_exchange_codes(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "POST",
        "/orders",
        json_response(
            200,
            {
                "success": False,
                "failure_reason": "UNKNOWN_FAILURE_REASON",
                "order_id": "",
                "error_response": {
                    "error": "INSUFFICIENT_FUND",
                    "message": "Insufficient balance in source account",
                    "error_details": "",
                    "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND",
                    "new_order_failure_reason": "UNKNOWN_FAILURE_REASON",
                },
                "order_configuration": {"limit_limit_gtc": {}},
            },
        ),
    )
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert outcome == OrderRejected(
        code="INSUFFICIENT_FUND",
        message="Insufficient balance in source account",
        details="",
        preview_failure_reason="PREVIEW_INSUFFICIENT_FUND",
        new_order_failure_reason=None,
    )


async def test_rejection_code_falls_back_to_new_order_failure_reason(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "POST",
        "/orders",
        json_response(
            200,
            {
                "success": False,
                "error_response": {
                    "error": "UNKNOWN_FAILURE_REASON",
                    "new_order_failure_reason": "INVALID_LIMIT_PRICE_POST_ONLY",
                    "error_details": "post-only order would cross",
                },
            },
        ),
    )
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert isinstance(outcome, OrderRejected)
    assert outcome.code == "INVALID_LIMIT_PRICE_POST_ONLY"
    assert outcome.new_order_failure_reason == "INVALID_LIMIT_PRICE_POST_ONLY"
    assert outcome.details == "post-only order would cross"
    assert outcome.message == "INVALID_LIMIT_PRICE_POST_ONLY"


async def test_success_false_without_any_reason(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on("POST", "/orders", json_response(200, {"success": False}))
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert isinstance(outcome, OrderRejected)
    assert outcome.code == "UNKNOWN_FAILURE_REASON"


@pytest.mark.parametrize(
    "reply",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.Response(500, text="internal error"),
        httpx.Response(
            502,
            text="<html><title>502 Bad Gateway</title></html>",
            headers={"content-type": "text/html"},
        ),
        httpx.Response(504, text=""),
        httpx.Response(408, text="request timeout"),
        httpx.Response(200, text="<html>oops</html>"),
    ],
    ids=[
        "read-timeout",
        "refused",
        "disconnected",
        "500",
        "502-html",
        "504",
        "408",
        "200-not-json",
    ],
)
async def test_unknown_outcomes_send_exactly_one_request(
    reply: httpx.Response | Exception,
    client: CoinbaseRestClient,
    exchange: ScriptedExchange,
    fake_sleep: FakeSleep,
) -> None:
    exchange.on("POST", "/orders", reply)
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert isinstance(outcome, OrderOutcomeUnknown)
    assert outcome.reason
    assert len(exchange.requests) == 1
    assert fake_sleep.delays == []


async def test_429_on_create_is_a_rejection_and_not_retried(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "POST",
        "/orders",
        httpx.Response(
            429,
            text="<!DOCTYPE html><html><head><title>Too Many Requests</title></head><body>slow down</body></html>",
            headers={"content-type": "text/html; charset=utf-8"},
        ),
    )
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert outcome == OrderRejected("RATE_LIMITED", "Too Many Requests", "")
    assert len(exchange.requests) == 1


@pytest.mark.parametrize(
    ("reply", "code", "message"),
    [
        (
            json_response(
                400,
                {
                    "error": "INVALID_ARGUMENT",
                    "message": "invalid product_id",
                    "error_details": "product_id XYZ",
                },
            ),
            "INVALID_ARGUMENT",
            "invalid product_id",
        ),
        (httpx.Response(401, text="Unauthorized"), "UNAUTHENTICATED", "Unauthorized"),
        (
            json_response(
                403, {"error": "PERMISSION_DENIED", "error_details": "Missing required scopes"}
            ),
            "PERMISSION_DENIED",
            "Missing required scopes",
        ),
        (httpx.Response(404, text=""), "NOT_FOUND", "empty body"),
        (httpx.Response(409, text="conflict"), "HTTP_409", "conflict"),
    ],
    ids=["400", "401", "403", "404", "409"],
)
async def test_4xx_on_create_is_rejected_with_the_body_code(
    reply: httpx.Response,
    code: str,
    message: str,
    client: CoinbaseRestClient,
    exchange: ScriptedExchange,
) -> None:
    exchange.on("POST", "/orders", reply)
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert isinstance(outcome, OrderRejected)
    assert (outcome.code, outcome.message) == (code, message)
    assert len(exchange.requests) == 1  # a 401 on a POST is not retried either


async def test_retry_create_order_resends_the_same_client_order_id(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on("POST", "/orders", httpx.ReadTimeout("lost"), json_response(200, create_success()))
    first = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert isinstance(first, OrderOutcomeUnknown)
    second = await client.retry_create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert isinstance(second, OrderAccepted)
    bodies = [r.json() for r in exchange.requests]
    assert bodies[0] == bodies[1]
    assert bodies[0]["client_order_id"] == CLIENT_ORDER_ID
    assert exchange.requests[0].token != exchange.requests[1].token


# --------------------------------------------------------------------------- cancel


async def test_batch_cancel_of_250_ids_sends_three_requests(
    client: CoinbaseRestClient, exchange: ScriptedExchange, es256_key: KeyMaterial
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ids = httpx.Response(200, content=request.content).json()["order_ids"]
        return json_response(
            200,
            {
                "results": [
                    {
                        "success": True,
                        "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                        "order_id": oid,
                    }
                    for oid in ids
                ]
            },
        )

    exchange.on("POST", "/orders/batch_cancel", answer)
    ids = [f"order-{i:03d}" for i in range(250)]
    results = await client.cancel_orders(ids)

    sizes = [len(r.json()["order_ids"]) for r in exchange.requests]
    assert sizes == [100, 100, 50]
    assert [oid for r in exchange.requests for oid in r.json()["order_ids"]] == ids
    assert all(set(r.json()) == {"order_ids"} for r in exchange.requests)
    assert [r.order_id for r in results] == ids
    assert all(r.success and r.failure_reason is None for r in results)
    for sent in exchange.requests:
        assert_signed(sent, es256_key)


async def test_cancel_is_best_effort_across_batches(
    client: CoinbaseRestClient, exchange: ScriptedExchange, fake_sleep: FakeSleep
) -> None:
    exchange.on(
        "POST",
        "/orders/batch_cancel",
        json_response(
            200,
            {
                "results": [
                    {
                        "success": True,
                        "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                        "order_id": "a0",
                    },
                    {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": "a1"},
                ]
            },
        ),
        httpx.Response(503, text="unavailable"),
        httpx.ReadTimeout("slow"),
    )
    # Batch 1: a0..a2 and b0..b96 (100 ids); batch 2: x0..x99; batch 3: y0.
    ids = ["a0", "a1", "a2", *[f"b{i}" for i in range(97)], *[f"x{i}" for i in range(100)], "y0"]
    results = await client.cancel_orders(ids)
    by_id = {r.order_id: r for r in results}
    assert by_id["a0"] == CancelResult("a0", True, None)
    assert by_id["a1"] == CancelResult("a1", False, "UNKNOWN_CANCEL_ORDER")
    assert by_id["a2"] == CancelResult("a2", False, "MISSING_FROM_RESPONSE")
    assert by_id["x0"] == CancelResult("x0", False, "HTTP_503")
    assert by_id["y0"] == CancelResult("y0", False, "TIMEOUT")
    assert len(results) == len(ids)
    assert len(exchange.requests) == 3  # no automatic retry of the POST
    assert fake_sleep.delays == []


async def test_cancel_deduplicates_and_skips_empty(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    assert await client.cancel_orders([]) == []
    assert exchange.requests == []
    exchange.on(
        "POST",
        "/orders/batch_cancel",
        json_response(200, {"results": [{"success": True, "order_id": "o1"}]}),
    )
    assert await client.cancel_orders(["o1", "o1"]) == [CancelResult("o1", True, None)]
    assert exchange.requests[0].json() == {"order_ids": ["o1"]}


# --------------------------------------------------------------------------- orders and fills


async def test_get_order_decodes_the_order_object(
    client: CoinbaseRestClient, exchange: ScriptedExchange, es256_key: KeyMaterial
) -> None:
    exchange.on(
        "GET", f"/orders/historical/{ORDER_ID}", json_response(200, {"order": order_payload()})
    )
    order = await client.get_order(ORDER_ID)
    assert_signed(exchange.requests[0], es256_key)
    assert order.order_id == ORDER_ID
    assert order.client_order_id == CLIENT_ORDER_ID
    assert order.side is Side.BUY
    assert order.status is ExchangeOrderStatus.OPEN
    assert order.order_type == "LIMIT"
    assert order.time_in_force == "GOOD_UNTIL_CANCELLED"
    assert order.base_size == Decimal("0.001")
    assert order.limit_price == Decimal("10000.00")
    assert order.post_only is True
    assert order.filled_size == Decimal("0.0005")
    assert order.average_filled_price == Decimal(10000)
    assert order.filled_value == Decimal(5)
    assert order.total_fees == Decimal("0.03")
    assert order.number_of_fills == 2
    assert order.created_time == datetime(2026, 1, 1, 0, 0, 1, 123456, tzinfo=UTC)
    assert order.reject_reason is None
    assert order.cancel_reason is None
    assert order.pending_cancel is False


def test_order_decoding_edge_cases() -> None:
    order = decode_order(
        order_payload(
            status="SOMETHING_NEW",
            order_configuration={
                "stop_limit_stop_limit_gtc": {
                    "base_size": "2",
                    "limit_price": "1.5",
                    "stop_price": "1.6",
                    "stop_direction": "STOP_DIRECTION_STOP_UP",
                }
            },
            reject_reason="",
            reject_message="price too far",
            cancel_message="User requested cancel",
            average_filled_price="",
            number_of_fills=3,
            client_order_id=None,
            created_time="2026-01-01T00:00:01+00:00",
        )
    )
    assert order.status is ExchangeOrderStatus.UNKNOWN
    assert (order.base_size, order.limit_price, order.stop_price) == (
        Decimal(2),
        Decimal("1.5"),
        Decimal("1.6"),
    )
    assert order.post_only is False
    assert order.reject_reason == "price too far"
    assert order.cancel_reason == "User requested cancel"
    assert order.average_filled_price == Decimal(0)
    assert order.number_of_fills == 3
    assert order.client_order_id == ""
    market = decode_order(
        order_payload(
            order_configuration={"market_market_ioc": {"quote_size": "10"}},
            reject_reason="INSUFFICIENT_FUNDS",
        )
    )
    assert (
        market.quote_size == Decimal(10) and market.base_size is None and market.limit_price is None
    )
    assert market.reject_reason == "INSUFFICIENT_FUNDS"
    bare = decode_order(order_payload(order_configuration=None))
    assert bare.base_size is None


async def test_list_orders_sends_filters_and_follows_cursors(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "GET",
        "/orders/historical/batch",
        json_response(
            200,
            {
                "orders": [order_payload(order_id="o1")],
                "sequence": "0",
                "has_next": True,
                "cursor": "c2",
            },
        ),
        json_response(
            200,
            {
                "orders": [order_payload(order_id="o2", status="FILLED")],
                "sequence": "0",
                "has_next": False,
                "cursor": "",
            },
        ),
    )
    orders = await client.list_orders(
        product_ids=["BTC-USD", "ETH-USD"],
        order_status=[ExchangeOrderStatus.OPEN, "FILLED"],
        order_ids=["o1", "o2"],
        start_date=datetime(2026, 1, 1, 1, 0, 0, 999, tzinfo=timezone(timedelta(hours=1))),
    )
    assert [o.order_id for o in orders] == ["o1", "o2"]
    assert orders[1].status is ExchangeOrderStatus.FILLED
    first, second = exchange.requests
    for sent in (first, second):
        assert sent.query("product_ids") == ["BTC-USD", "ETH-USD"]
        assert sent.query("order_status") == ["OPEN", "FILLED"]
        assert sent.query("order_ids") == ["o1", "o2"]
        assert sent.query("start_date") == ["2026-01-01T00:00:00Z"]
        assert sent.query("limit") == []
    assert first.query("cursor") == []
    assert second.query("cursor") == ["c2"]


async def test_list_orders_limit_caps_the_total(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "GET",
        "/orders/historical/batch",
        json_response(
            200,
            {
                "orders": [order_payload(order_id=f"o{i}") for i in range(3)],
                "has_next": True,
                "cursor": "more",
            },
        ),
    )
    orders = await client.list_orders(limit=2)
    assert [o.order_id for o in orders] == ["o0", "o1"]
    assert len(exchange.requests) == 1
    assert exchange.requests[0].query("limit") == ["2"]


async def test_list_open_orders_does_not_rely_on_the_open_filter(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        statuses = request.url.params.get_list("order_status")
        if statuses == ["OPEN"]:
            orders = [
                order_payload(order_id="open-1"),
                order_payload(order_id="dup", status="OPEN"),
            ]
        else:
            orders = [
                order_payload(order_id="pending-1", status="PENDING"),
                order_payload(order_id="queued-1", status="QUEUED"),
                order_payload(order_id="cancel-queued-1", status="CANCEL_QUEUED"),
                order_payload(order_id="dup", status="QUEUED"),
                order_payload(order_id="filled-meanwhile", status="FILLED"),
            ]
        return json_response(200, {"orders": orders, "has_next": False, "cursor": ""})

    exchange.on("GET", "/orders/historical/batch", answer)
    orders = await client.list_open_orders(["BTC-USD"])
    assert [o.order_id for o in orders] == [
        "open-1",
        "dup",
        "pending-1",
        "queued-1",
        "cancel-queued-1",
    ]
    first, second = exchange.requests
    assert first.query("order_status") == ["OPEN"]
    assert second.query("order_status") == ["PENDING", "QUEUED", "CANCEL_QUEUED", "EDIT_QUEUED"]
    assert first.query("product_ids") == second.query("product_ids") == ["BTC-USD"]


async def test_list_fills_follows_the_cursor_without_has_next(
    client: CoinbaseRestClient, exchange: ScriptedExchange, es256_key: KeyMaterial
) -> None:
    exchange.on(
        "GET",
        "/orders/historical/fills",
        json_response(200, {"fills": [fill_payload("t1"), fill_payload("t2")], "cursor": "next"}),
        json_response(
            200,
            {"fills": [fill_payload("t3", liquidity_indicator="TAKER", side="SELL")], "cursor": ""},
        ),
    )
    since = datetime(2026, 1, 1, tzinfo=UTC)
    fills = await client.list_fills(
        order_ids=[ORDER_ID], product_ids=["BTC-USD"], start_sequence_timestamp=since, limit=10
    )
    assert [f.trade_id for f in fills] == ["t1", "t2", "t3"]
    first, second = exchange.requests
    assert first.query("order_ids") == [ORDER_ID]
    assert first.query("product_ids") == ["BTC-USD"]
    assert first.query("start_sequence_timestamp") == ["2026-01-01T00:00:00Z"]
    assert first.query("limit") == ["10"]
    assert second.query("cursor") == ["next"]
    assert_signed(second, es256_key)
    fill = fills[0]
    assert fill.price == Decimal("10000.00") and fill.size == Decimal("0.00025")
    assert fill.commission == Decimal("0.015")
    assert fill.liquidity is LiquidityIndicator.MAKER
    assert fill.side is Side.BUY
    assert fill.sequence_timestamp == datetime(2026, 1, 1, 0, 0, 2, 123456, tzinfo=UTC)
    assert fills[2].liquidity is LiquidityIndicator.TAKER and fills[2].side is Side.SELL


def test_fill_decoding_defaults() -> None:
    fill = decode_fill(
        fill_payload(
            "", entry_id="entry-9", liquidity_indicator="SOMETHING", commission="", trade_time=None
        )
    )
    assert fill.trade_id == "entry-9"
    assert fill.liquidity is LiquidityIndicator.UNKNOWN
    assert fill.commission == Decimal(0)
    assert fill.trade_time is None


# --------------------------------------------------------------------------- retries


async def test_get_retries_5xx_with_growing_jittered_backoff(
    client: CoinbaseRestClient, exchange: ScriptedExchange, fake_sleep: FakeSleep
) -> None:
    exchange.on(
        "GET",
        "/key_permissions",
        httpx.Response(500, text="boom"),
        httpx.Response(503, text="busy"),
        httpx.ConnectError("refused"),
        json_response(200, {"can_view": True}),
    )
    permissions = await client.get_key_permissions()
    assert permissions.can_view
    assert len(exchange.requests) == 4
    first, second, third = fake_sleep.delays
    assert 0.125 <= first <= 0.25
    assert 0.25 <= second <= 0.5
    assert 0.5 <= third <= 1.0
    tokens = {r.token for r in exchange.requests}
    assert len(tokens) == 4  # a fresh JWT on every attempt


async def test_get_gives_up_after_retry_attempts(
    client: CoinbaseRestClient, exchange: ScriptedExchange, fake_sleep: FakeSleep
) -> None:
    exchange.on("GET", "/key_permissions", httpx.ReadTimeout("slow"))
    with pytest.raises(TransportError) as caught:
        await client.get_key_permissions()
    assert caught.value.timed_out
    assert len(exchange.requests) == 4  # 1 + retry_attempts (3)
    assert len(fake_sleep.delays) == 3


async def test_html_429_becomes_rate_limited_error_honouring_retry_after(
    make_client: ClientFactory, exchange: ScriptedExchange, fake_sleep: FakeSleep
) -> None:
    client = make_client(retry_attempts=1)
    html = "<html><head><title>429 Too Many Requests</title></head><body><h1>Slow down</h1></body></html>"
    exchange.on(
        "GET",
        "/accounts",
        httpx.Response(429, text=html, headers={"content-type": "text/html", "retry-after": "2"}),
    )
    with pytest.raises(RateLimitedError) as caught:
        await client.list_accounts()
    error = caught.value
    assert error.status == 429
    assert error.retry_after_s == 2.0
    assert error.message == "429 Too Many Requests"
    assert "<" not in str(error)
    assert len(exchange.requests) == 2
    assert fake_sleep.delays[0] >= 2.0


async def test_401_on_a_get_is_retried_once_with_a_new_token(
    client: CoinbaseRestClient,
    exchange: ScriptedExchange,
    es256_key: KeyMaterial,
    fake_sleep: FakeSleep,
) -> None:
    exchange.on(
        "GET",
        "/key_permissions",
        httpx.Response(401, text="Unauthorized", headers={"content-type": "text/plain"}),
        json_response(200, {"can_view": True, "can_trade": True}),
    )
    assert (await client.get_key_permissions()).can_trade
    first, second = exchange.requests
    assert first.token != second.token
    first_header = jwt.get_unverified_header(first.token or "")
    second_header = jwt.get_unverified_header(second.token or "")
    assert first_header["nonce"] != second_header["nonce"]
    assert_signed(second, es256_key)
    assert len(fake_sleep.delays) == 1


async def test_401_twice_raises_authentication_error(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on("GET", "/key_permissions", httpx.Response(401, text="Unauthorized"))
    with pytest.raises(AuthenticationError) as caught:
        await client.get_key_permissions()
    assert str(caught.value) == "HTTP 401: Unauthorized"
    assert len(exchange.requests) == 2


@pytest.mark.parametrize(
    ("reply", "error_type", "text"),
    [
        (
            json_response(
                400,
                {
                    "error": "INVALID_ARGUMENT",
                    "message": "bad limit",
                    "error_details": "limit > 250",
                },
            ),
            InvalidRequestError,
            "HTTP 400 INVALID_ARGUMENT: bad limit (limit > 250)",
        ),
        (
            json_response(
                403,
                {
                    "error": "PERMISSION_DENIED",
                    "message": "",
                    "error_details": "Missing required scopes",
                },
            ),
            PermissionDeniedError,
            "HTTP 403 PERMISSION_DENIED: Missing required scopes",
        ),
        (
            json_response(
                404, {"error": "NOT_FOUND", "message": "order with this orderID was not found"}
            ),
            NotFoundError,
            "HTTP 404 NOT_FOUND: order with this orderID was not found",
        ),
        (
            json_response(200, ["not", "an", "object"]),
            DecodeError,
            "expected a JSON object, got list",
        ),
        (httpx.Response(200, text="Service OK"), DecodeError, "not JSON (Service OK)"),
        (json_response(200, {"order": "nope"}), DecodeError, "field 'order'"),
    ],
    ids=["400", "403", "404", "200-list", "200-text", "200-bad-shape"],
)
async def test_non_retryable_errors_are_typed_and_sent_once(
    reply: httpx.Response,
    error_type: type[CoinbaseError],
    text: str,
    client: CoinbaseRestClient,
    exchange: ScriptedExchange,
) -> None:
    exchange.on("GET", "/orders/historical/x", reply)
    with pytest.raises(error_type) as caught:
        await client.get_order("x")
    assert text in str(caught.value)
    assert "\n" not in str(caught.value)
    assert len(exchange.requests) == 1


async def test_retry_attempts_zero_sends_once(
    make_client: ClientFactory, exchange: ScriptedExchange
) -> None:
    client = make_client(retry_attempts=0)
    exchange.on("GET", "/time", httpx.Response(500, text="boom"))
    with pytest.raises(ServerError):
        await client.get_server_time()
    assert len(exchange.requests) == 1


async def test_failures_are_logged_without_tokens(
    client: CoinbaseRestClient,
    exchange: ScriptedExchange,
    caplog_rest: pytest.LogCaptureFixture,
) -> None:
    exchange.on("GET", "/key_permissions", httpx.Response(401, text="Unauthorized"))
    with pytest.raises(AuthenticationError):
        await client.get_key_permissions()
    text = caplog_rest.text
    assert "GET /key_permissions failed after 2 attempt(s): HTTP 401: Unauthorized" in text
    assert "Bearer" not in text
    for sent in exchange.requests:
        assert (sent.token or "")[:20] not in text
    assert not any(record.levelno >= logging.ERROR for record in caplog_rest.records)


# --------------------------------------------------------------------------- construction, keys, pacing


async def test_private_endpoints_without_a_key_fail_before_sending(
    make_client: ClientFactory, exchange: ScriptedExchange
) -> None:
    client = make_client(signer=None)
    for call in (
        client.list_accounts(),
        client.get_key_permissions(),
        client.get_order("x"),
        client.cancel_orders(["x"]),
        client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID),
        client.list_open_orders(),
        client.list_fills(),
    ):
        with pytest.raises(AuthenticationError, match="no API key configured"):
            await call
    assert exchange.requests == []
    assert client.signer is None


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.mark.parametrize(
    ("base_url", "verify"),
    [
        ("https://api.coinbase.com", False),
        ("https://api.coinbase.com", "insecure-context"),
        ("http://api.coinbase.com", True),
        ("https://api-sandbox.coinbase.com", False),
    ],
)
def test_tls_cannot_be_disabled_for_coinbase(
    base_url: str, verify: object, clock: ManualClock
) -> None:
    verify_value = _insecure_context() if verify == "insecure-context" else verify
    with pytest.raises(ValueError):
        CoinbaseRestClient(base_url, None, clock=clock, verify=verify_value)  # type: ignore[arg-type]


def test_coinbase_host_detection() -> None:
    assert is_coinbase_host("api.coinbase.com")
    assert is_coinbase_host("COINBASE.COM.")
    assert not is_coinbase_host("coinbase.com.evil.example")
    assert not is_coinbase_host("127.0.0.1")
    assert not is_coinbase_host(None)


async def test_signer_host_must_match_the_base_url(signer: JwtSigner, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="signs for host"):
        CoinbaseRestClient("http://127.0.0.1:8123", signer, clock=clock)
    with pytest.raises(ValueError, match="retry_attempts"):
        CoinbaseRestClient("https://api.coinbase.com", signer, clock=clock, retry_attempts=-1)


async def test_works_against_a_loopback_simulator_url(
    make_client: ClientFactory,
    exchange: ScriptedExchange,
    clock: ManualClock,
    es256_key: KeyMaterial,
) -> None:
    signer = JwtSigner(Credentials(KEY_NAME, es256_key.private_key), clock, "127.0.0.1:8123")
    client = make_client(base_url="http://127.0.0.1:8123/", signer=signer, verify=False)
    exchange.on("GET", "/accounts", json_response(200, {"accounts": [], "has_next": False}))
    assert await client.list_accounts() == []
    [sent] = exchange.requests
    assert str(sent.request.url) == "http://127.0.0.1:8123/api/v3/brokerage/accounts?limit=250"
    assert sent.request.headers["host"] == "127.0.0.1:8123"
    assert_signed(sent, es256_key, host="127.0.0.1:8123")


async def test_explicit_timeouts_reach_the_transport(
    make_client: ClientFactory, exchange: ScriptedExchange
) -> None:
    client = make_client(timeout_s=7, connect_timeout_s=2)
    exchange.on("GET", "/time", json_response(200, {"epochSeconds": "1"}))
    await client.get_server_time()
    assert exchange.requests[0].request.extensions["timeout"] == {
        "connect": 2,
        "read": 7,
        "write": 7,
        "pool": 7,
    }


async def test_from_settings_and_context_manager(
    exchange: ScriptedExchange, clock: ManualClock, fake_sleep: FakeSleep
) -> None:
    settings = ExchangeSettings(rest_url="http://127.0.0.1:9000", public_rate_per_s=2)
    async with CoinbaseRestClient.from_settings(
        settings, None, clock=clock, transport=httpx.MockTransport(exchange), sleep=fake_sleep
    ) as client:
        assert client.rate_limits.public.rate_per_s == 2
        assert client.rate_limits.private.rate_per_s == 25
        exchange.on("GET", "/time", json_response(200, {"epochSeconds": "1"}))
        await client.get_server_time()
    assert str(exchange.requests[0].request.url) == "http://127.0.0.1:9000/api/v3/brokerage/time"
    with pytest.raises(RuntimeError):
        await client.get_server_time()


async def test_requests_are_paced_by_the_public_bucket(
    make_client: ClientFactory, exchange: ScriptedExchange, fake_sleep: FakeSleep
) -> None:
    client = make_client(public_rate_per_s=2)
    exchange.on("GET", "/time", json_response(200, {"epochSeconds": "1"}))
    for _ in range(4):
        await client.get_server_time()
    assert [r.at for r in exchange.requests] == pytest.approx([0, 0.5, 1.0, 1.5])


async def test_private_and_public_buckets_are_separate(
    make_client: ClientFactory, exchange: ScriptedExchange, fake_sleep: FakeSleep
) -> None:
    client = make_client(public_rate_per_s=1, private_rate_per_s=25)
    exchange.on("GET", "/time", json_response(200, {"epochSeconds": "1"}))
    exchange.on("GET", "/key_permissions", json_response(200, {"can_view": True}))
    await client.get_server_time()
    for _ in range(5):
        await client.get_key_permissions()  # private burst of 5: no waiting
    assert fake_sleep.delays == []
    await client.get_server_time()  # the public bucket is empty: waits a full second
    assert fake_sleep.delays == [pytest.approx(1.0)]


# --------------------------------------------------------------------------- decoding helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.5Z", datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("2026-01-01T00:00:00.123456789Z", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_rfc3339_variants(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_bad_time_names_the_field() -> None:
    with pytest.raises(DecodeError, match="'created_time'"):
        decode_order(order_payload(created_time="yesterday"))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"product_id": ""}, "product_id"),
        ({"base_increment": "abc"}, "base_increment"),
        ({"base_min_size": None}, "base_min_size"),
        ({"quote_increment": True}, "quote_increment"),
        ({"quote_max_size": "Infinity"}, "quote_max_size"),
        ({"trading_disabled": "maybe"}, "trading_disabled"),
        ({"status": {"a": 1}}, "status"),
    ],
)
def test_bad_product_fields_raise_decode_error_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(DecodeError, match=f"'{field}'"):
        decode_product({**BTC_USD, **overrides})


def test_product_with_minimal_fields() -> None:
    minimal = {
        "product_id": "SOL-USD",
        "base_increment": "0.001",
        "quote_increment": "0.01",
        "base_min_size": "0.001",
        "base_max_size": "10000",
        "trading_disabled": "false",
        "price": 150.5,
    }
    product = decode_product(minimal)
    assert (product.base_currency, product.quote_currency) == ("SOL", "USD")
    assert product.quote_min_size == 0
    assert product.price == Decimal("150.5")
    assert product.status == "online"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"side": "HOLD"}, "side"),
        ({"order_id": None}, "order_id"),
        ({"filled_size": [1]}, "filled_size"),
    ],
)
def test_bad_order_fields(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(DecodeError, match=f"'{field}'"):
        decode_order(order_payload(**payload))


@pytest.mark.parametrize("count", ["two", True, -3, [1]])
def test_an_unreadable_fill_count_costs_only_that_field(count: object) -> None:
    order = decode_order(order_payload(number_of_fills=count))
    assert order.number_of_fills == 0
    assert order.order_id == order_payload()["order_id"]


async def test_bad_list_shapes(client: CoinbaseRestClient, exchange: ScriptedExchange) -> None:
    exchange.on("GET", "/accounts", json_response(200, {"accounts": "none"}))
    exchange.on("GET", "/orders/historical/fills", json_response(200, {"fills": [1, 2]}))
    with pytest.raises(DecodeError, match="'accounts'"):
        await client.list_accounts()
    before = REFUSED_EXCHANGE_DATA.count("bad_rest_fill")
    # Each item that is not a fill costs only itself (counted), not the whole page.
    assert await client.list_fills() == []
    assert REFUSED_EXCHANGE_DATA.count("bad_rest_fill") == before + 2


def test_server_time_fallbacks() -> None:
    assert decode_server_time({"epochSeconds": 1767225600}).epoch_seconds == 1767225600
    assert decode_server_time({"iso": "2026-01-01T00:00:01Z"}).epoch_seconds == 1767225601
    with pytest.raises(DecodeError, match="epochSeconds"):
        decode_server_time({})


@pytest.mark.parametrize(
    ("body", "content_type", "code", "message", "details"),
    [
        (
            b'{"error":"NOT_FOUND","message":"nope","error_details":"order not found"}',
            "application/json",
            "NOT_FOUND",
            "nope",
            "order not found",
        ),
        (
            b'{"errors":[{"id":"rate_limit_exceeded","message":"Too many requests"}]}',
            "application/json",
            "rate_limit_exceeded",
            "Too many requests",
            None,
        ),
        (b"Unauthorized\n", "text/plain", None, "Unauthorized", None),
        (b"<html><body>no title</body></html>", None, None, "HTML error page", None),
        (b"", None, None, "empty body", None),
        (b'{"code": 5, "error_details": "x"}', "application/json", "5", "x", "x"),
        (b"x" * 500, "text/plain", None, "x" * 200 + "…", None),
    ],
    ids=["json", "json-errors-list", "plain", "html-no-title", "empty", "numeric-code", "long"],
)
def test_error_bodies(
    body: bytes, content_type: str | None, code: str | None, message: str, details: str | None
) -> None:
    decoded = decode_error_body(body, content_type)
    assert (decoded.code, decoded.message, decoded.details) == (code, message, details)


def test_parse_json_object_rejects_non_objects() -> None:
    with pytest.raises(DecodeError, match="empty body"):
        parse_json_object(b"", "GET /x")


def test_error_repr_and_transport_error_codes() -> None:
    error = TransportError("GET /x: refused", timed_out=False)
    assert error.code == "TRANSPORT" and not error.timed_out
    assert str(error) == "TRANSPORT: GET /x: refused"
    assert "TransportError('GET /x: refused'" in repr(error)
    assert str(CoinbaseError("plain")) == "plain"


# --------------------------------------------------------------------------- remaining edges


async def test_clock_offset_without_a_key(
    make_client: ClientFactory, exchange: ScriptedExchange, clock: ManualClock
) -> None:
    client = make_client(signer=None)
    exchange.on(
        "GET", "/time", json_response(200, {"epochMillis": str(int(clock.time() * 1000) - 1500)})
    )
    assert await client.measure_clock_offset() == pytest.approx(-1.5)


@pytest.mark.parametrize(
    ("header", "minimum_delay"),
    [("Wed, 21 Oct 2015 07:28:00 GMT", 0.125), ("-3", 0.125), ("1.5", 1.5)],
)
async def test_retry_after_forms(
    header: str,
    minimum_delay: float,
    make_client: ClientFactory,
    exchange: ScriptedExchange,
    fake_sleep: FakeSleep,
) -> None:
    client = make_client(retry_attempts=1)
    exchange.on(
        "GET",
        "/time",
        httpx.Response(429, text="slow down", headers={"retry-after": header}),
        json_response(200, {"epochSeconds": "1"}),
    )
    await client.get_server_time()
    [delay] = fake_sleep.delays
    assert minimum_delay <= delay <= max(minimum_delay, 0.25)


async def test_cancel_failure_codes_for_429_and_garbage(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "POST",
        "/orders/batch_cancel",
        httpx.Response(429, text="<html><title>429</title></html>"),
        json_response(200, {"results": "nope"}),
    )
    ids = [f"o{i}" for i in range(101)]
    results = await client.cancel_orders(ids)
    assert {r.failure_reason for r in results[:100]} == {"RATE_LIMITED"}
    assert results[100] == CancelResult("o100", False, "DecodeError")


async def test_pagination_is_bounded(
    client: CoinbaseRestClient, exchange: ScriptedExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.coinbase.rest as rest_module

    monkeypatch.setattr(rest_module, "MAX_PAGES", 2)
    pages = iter(range(10))
    exchange.on(
        "GET",
        "/orders/historical/fills",
        lambda request: json_response(200, {"fills": [], "cursor": f"c{next(pages)}"}),
    )
    with pytest.raises(DecodeError, match="more than 2 pages"):
        await client.list_fills()


def test_tolerant_decoding_of_odd_but_usable_values() -> None:
    order = decode_order(
        order_payload(order_id=12345, order_configuration={"limit_limit_gtc": "?"})
    )
    assert order.order_id == "12345"
    assert order.limit_price is None


async def test_accepted_order_with_an_odd_side_keeps_the_spec_side(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "POST",
        "/orders",
        json_response(
            200,
            {"success": True, "success_response": {"order_id": "o9", "side": "UNKNOWN_ORDER_SIDE"}},
        ),
    )
    outcome = await client.create_order(limit_gtc_spec(), CLIENT_ORDER_ID)
    assert outcome == OrderAccepted(PlacedOrder("o9", CLIENT_ORDER_ID, "BTC-USD", Side.BUY))


async def test_book_side_may_be_absent_and_candle_start_is_required(
    client: CoinbaseRestClient, exchange: ScriptedExchange
) -> None:
    exchange.on(
        "GET",
        "/product_book",
        json_response(
            200, {"pricebook": {"product_id": "BTC-USD", "bids": [{"price": "1", "size": "2"}]}}
        ),
    )
    book = await client.get_product_book("BTC-USD")
    assert book.asks == [] and book.bids == [(Decimal(1), Decimal(2))]
    exchange.on(
        "GET",
        "/products/BTC-USD/candles",
        json_response(
            200, {"candles": [{"open": "1", "high": "1", "low": "1", "close": "1", "volume": "1"}]}
        ),
    )
    with pytest.raises(DecodeError, match="'start'"):
        await client.get_candles("BTC-USD", 0, 60, "ONE_MINUTE")
