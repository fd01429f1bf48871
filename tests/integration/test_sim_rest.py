"""The simulated exchange's REST API over loopback: shapes, auth, orders, rejections."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.clock import ManualClock
from core.sim.exchange import SimExchange
from core.sim.jwt_verify import DemoKey
from core.sim.runner import DEMO_BALANCES
from core.sim.server import API_PREFIX, SimEndpoints, SimServer
from tests.integration.loopback import LEVELS_PER_SIDE, RestClient, make_jwt

LIMIT_GTC = {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "60000.00"}}


# ----------------------------------------------------------------------------- auth


async def test_time_is_public(rest: RestClient, sim_clock: ManualClock) -> None:
    response = await rest.get("/time", auth=False)
    assert response.status_code == 200
    body = response.json()
    assert body["epochSeconds"] == str(int(sim_clock.time()))
    assert body["iso"] == "2026-01-01T00:00:00.000000Z"
    assert body["epochMillis"] == str(int(sim_clock.time() * 1000))


async def test_private_endpoint_without_token_is_401_plain_text(rest: RestClient) -> None:
    response = await rest.get("/accounts", auth=False)
    assert response.status_code == 401
    assert response.text == "Unauthorized"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_is_accepted(rest: RestClient, endpoints: SimEndpoints) -> None:
    uri = f"GET {endpoints.rest_host}{API_PREFIX}/accounts"
    token = make_jwt(endpoints.credentials, rest.clock, uri)
    response = await rest.http.get(f"{API_PREFIX}/accounts", headers=_bearer(token))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("case", "uri_suffix", "options"),
    [
        ("query in uri", "/accounts?limit=5", {}),
        ("other path", "/products", {}),
        ("expired", "/accounts", {"not_before_offset_s": -600}),
        ("not yet valid", "/accounts", {"not_before_offset_s": 600}),
        ("wrong issuer", "/accounts", {"claims": {"iss": "coinbase-cloud"}}),
        ("sub differs from kid", "/accounts", {"claims": {"sub": "someone-else"}}),
        ("too long lifetime", "/accounts", {"lifetime_s": 3600}),
    ],
)
async def test_bad_tokens_are_401(
    rest: RestClient, endpoints: SimEndpoints, case: str, uri_suffix: str, options: dict[str, Any]
) -> None:
    uri = f"GET {endpoints.rest_host}{API_PREFIX}{uri_suffix}"
    token = make_jwt(endpoints.credentials, rest.clock, uri, **options)
    response = await rest.http.get(
        f"{API_PREFIX}/accounts", params={"limit": 5}, headers=_bearer(token)
    )
    assert response.status_code == 401, case
    assert response.text == "Unauthorized"


async def test_wrong_method_and_scheme_in_uri_are_401(
    rest: RestClient, endpoints: SimEndpoints
) -> None:
    for uri in (
        f"POST {endpoints.rest_host}{API_PREFIX}/accounts",
        f"GET http://{endpoints.rest_host}{API_PREFIX}/accounts",
        f"GET api.coinbase.com{API_PREFIX}/accounts",
    ):
        token = make_jwt(endpoints.credentials, rest.clock, uri)
        response = await rest.http.get(f"{API_PREFIX}/accounts", headers=_bearer(token))
        assert response.status_code == 401, uri


async def test_signature_by_another_key_is_401(rest: RestClient, endpoints: SimEndpoints) -> None:
    other = DemoKey.derive(seed=999)
    from core.config import Credentials

    forged = Credentials(endpoints.credentials.key_name, other.private_key)
    uri = f"GET {endpoints.rest_host}{API_PREFIX}/accounts"
    response = await rest.http.get(
        f"{API_PREFIX}/accounts", headers=_bearer(make_jwt(forged, rest.clock, uri))
    )
    assert response.status_code == 401


async def test_garbage_bearer_and_wrong_scheme_are_401(rest: RestClient) -> None:
    for header in ("Bearer not.a.jwt", "Basic abc", "Bearer"):
        response = await rest.http.get(f"{API_PREFIX}/accounts", headers={"Authorization": header})
        assert response.status_code == 401, header


# ----------------------------------------------------------------------------- account


async def test_key_permissions(rest: RestClient) -> None:
    body = (await rest.get("/key_permissions")).json()
    assert body["can_view"] is True and body["can_trade"] is True
    assert body["can_transfer"] is False
    assert body["portfolio_type"] == "DEFAULT"
    assert body["portfolio_uuid"]


async def test_accounts_hold_the_demo_balances_and_paginate(rest: RestClient) -> None:
    body = (await rest.get("/accounts")).json()
    balances = {a["currency"]: Decimal(a["available_balance"]["value"]) for a in body["accounts"]}
    assert balances == DEMO_BALANCES
    assert body["has_next"] is False and body["cursor"] == "" and body["size"] == 4
    usd = next(a for a in body["accounts"] if a["currency"] == "USD")
    assert usd["type"] == "ACCOUNT_TYPE_FIAT"
    assert usd["hold"] == {"value": "0", "currency": "USD"}

    first = (await rest.get("/accounts", {"limit": 3})).json()
    assert first["has_next"] is True and len(first["accounts"]) == 3
    second = (await rest.get("/accounts", {"limit": 3, "cursor": first["cursor"]})).json()
    assert second["has_next"] is False and len(second["accounts"]) == 1
    uuids = {a["uuid"] for a in first["accounts"] + second["accounts"]}
    assert uuids == {a["uuid"] for a in body["accounts"]}

    one = (await rest.get(f"/accounts/{usd['uuid']}")).json()
    assert one["account"]["currency"] == "USD"
    missing = await rest.get(f"/accounts/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NOT_FOUND"


@pytest.mark.parametrize("query", [{"limit": "x"}, {"limit": "0"}, {"cursor": "nope"}])
async def test_bad_query_parameters_are_400(rest: RestClient, query: dict[str, str]) -> None:
    response = await rest.get("/accounts", query)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_ARGUMENT"


# ----------------------------------------------------------------------------- market data


@pytest.mark.parametrize("prefix", ["", "/market"])
async def test_products(rest: RestClient, prefix: str) -> None:
    body = (await rest.get(f"{prefix}/products", auth=not prefix)).json()
    ids = [p["product_id"] for p in body["products"]]
    assert ids == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert body["num_products"] == 3
    btc = body["products"][0]
    assert btc["base_increment"] == "0.00000001"
    assert btc["price_increment"] == "0.01"
    assert btc["quote_min_size"] == "1"
    assert btc["status"] == "online" and btc["product_type"] == "SPOT"

    some = await rest.get(
        f"{prefix}/products",
        [("product_ids", "ETH-USD"), ("product_ids", "SOL-USD")],
        auth=not prefix,
    )
    assert [p["product_id"] for p in some.json()["products"]] == ["ETH-USD", "SOL-USD"]

    one = (await rest.get(f"{prefix}/products/BTC-USD", auth=not prefix)).json()
    assert one["product_id"] == "BTC-USD" and one["base_name"] == "BTC"
    missing = await rest.get(f"{prefix}/products/DOGE-USD", auth=not prefix)
    assert missing.status_code == 404


@pytest.mark.parametrize("prefix", ["", "/market"])
async def test_product_book(rest: RestClient, prefix: str) -> None:
    response = await rest.get(
        f"{prefix}/product_book", {"product_id": "BTC-USD", "limit": 3}, auth=not prefix
    )
    body = response.json()
    book = body["pricebook"]
    assert book["product_id"] == "BTC-USD"
    assert [b["price"] for b in book["bids"]] == ["67990.00", "67980.00", "67970.00"]
    assert [a["price"] for a in book["asks"]] == ["68010.00", "68020.00", "68030.00"]
    assert Decimal(book["bids"][0]["size"]) == Decimal("0.5")
    assert Decimal(body["mid_market"]) == Decimal("68000")
    assert Decimal(body["spread_absolute"]) == 20
    full = await rest.get(f"{prefix}/product_book", {"product_id": "BTC-USD"}, auth=not prefix)
    assert len(full.json()["pricebook"]["bids"]) == LEVELS_PER_SIDE
    assert (await rest.get(f"{prefix}/product_book", auth=not prefix)).status_code == 400


async def test_best_bid_ask(rest: RestClient) -> None:
    body = (await rest.get("/best_bid_ask", [("product_ids", "BTC-USD")])).json()
    (book,) = body["pricebooks"]
    assert book["bids"] == [{"price": "67990.00", "size": "0.50000000"}]
    assert book["asks"] == [{"price": "68010.00", "size": "0.50000000"}]
    every = (await rest.get("/best_bid_ask")).json()
    assert [b["product_id"] for b in every["pricebooks"]] == ["BTC-USD", "ETH-USD", "SOL-USD"]


@pytest.mark.parametrize("prefix", ["", "/market"])
async def test_candles_and_trades_after_a_trade(
    rest: RestClient, sim_clock: ManualClock, prefix: str
) -> None:
    response = await rest.create_order(
        "BTC-USD", "BUY", {"market_market_ioc": {"base_size": "0.1"}}
    )
    assert response.json()["success"] is True
    now = int(sim_clock.time())
    candles = await rest.get(
        f"{prefix}/products/BTC-USD/candles",
        {"start": now - 3600, "end": now + 60, "granularity": "ONE_MINUTE"},
        auth=not prefix,
    )
    (candle,) = candles.json()["candles"]
    assert candle["open"] == candle["close"] == "68010.00"
    assert Decimal(candle["volume"]) == Decimal("0.1")
    assert candle["start"] == str(now - now % 60)

    trades = (
        await rest.get(f"{prefix}/products/BTC-USD/ticker", {"limit": 5}, auth=not prefix)
    ).json()
    (trade,) = trades["trades"]
    assert trade["price"] == "68010.00" and trade["side"] == "BUY"
    assert Decimal(trade["size"]) == Decimal("0.1")
    assert trades["best_bid"] == "67990.00" and trades["best_ask"] == "68010.00"


@pytest.mark.parametrize(
    "query",
    [
        {"start": 0, "end": 60, "granularity": "TEN_MINUTE"},
        {"start": 0, "end": 60_000, "granularity": "ONE_MINUTE"},
        {"start": 100, "end": 50, "granularity": "ONE_MINUTE"},
        {"granularity": "ONE_MINUTE"},
    ],
)
async def test_bad_candle_requests_are_400(rest: RestClient, query: dict[str, Any]) -> None:
    response = await rest.get("/products/BTC-USD/candles", query)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_ARGUMENT"


# ----------------------------------------------------------------------------- orders


async def _order(rest: RestClient, order_id: str) -> dict[str, Any]:
    response = await rest.get(f"/orders/historical/{order_id}")
    assert response.status_code == 200
    order: dict[str, Any] = response.json()["order"]
    return order


@pytest.mark.parametrize(
    ("side", "configuration", "status", "order_type", "time_in_force", "filled"),
    [
        (
            "BUY",
            {"market_market_ioc": {"quote_size": "1000.00"}},
            "FILLED",
            "MARKET",
            "IMMEDIATE_OR_CANCEL",
            None,
        ),
        (
            "SELL",
            {"market_market_ioc": {"base_size": "0.2"}},
            "FILLED",
            "MARKET",
            "IMMEDIATE_OR_CANCEL",
            "0.2",
        ),
        (
            "BUY",
            {"sor_limit_ioc": {"base_size": "0.7", "limit_price": "68010.00"}},
            "CANCELLED",
            "LIMIT",
            "IMMEDIATE_OR_CANCEL",
            "0.5",
        ),
        (
            "BUY",
            {
                "limit_limit_gtc": {
                    "base_size": "0.01",
                    "limit_price": "60000.00",
                    "post_only": True,
                }
            },
            "OPEN",
            "LIMIT",
            "GOOD_UNTIL_CANCELLED",
            "0",
        ),
        (
            "SELL",
            {
                "limit_limit_gtd": {
                    "base_size": "0.01",
                    "limit_price": "70000.00",
                    "end_time": "2026-01-02T00:00:00Z",
                }
            },
            "OPEN",
            "LIMIT",
            "GOOD_UNTIL_DATE_TIME",
            "0",
        ),
        (
            "BUY",
            {"limit_limit_fok": {"base_size": "0.6", "limit_price": "68020.00"}},
            "FILLED",
            "LIMIT",
            "FILL_OR_KILL",
            "0.6",
        ),
        (
            "SELL",
            {
                "stop_limit_stop_limit_gtc": {
                    "base_size": "0.01",
                    "limit_price": "60000.00",
                    "stop_price": "61000.00",
                    "stop_direction": "STOP_DIRECTION_STOP_DOWN",
                }
            },
            "OPEN",
            "STOP_LIMIT",
            "GOOD_UNTIL_CANCELLED",
            "0",
        ),
        (
            "BUY",
            {
                "stop_limit_stop_limit_gtd": {
                    "base_size": "0.01",
                    "limit_price": "75000.00",
                    "stop_price": "74000.00",
                    "stop_direction": "STOP_DIRECTION_STOP_UP",
                    "end_time": "2026-01-05T00:00:00Z",
                }
            },
            "OPEN",
            "STOP_LIMIT",
            "GOOD_UNTIL_DATE_TIME",
            "0",
        ),
    ],
)
async def test_each_order_type(
    rest: RestClient,
    side: str,
    configuration: dict[str, Any],
    status: str,
    order_type: str,
    time_in_force: str,
    filled: str | None,
) -> None:
    client_order_id = str(uuid.uuid4())
    response = await rest.create_order("BTC-USD", side, configuration, client_order_id)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True, body
    success = body["success_response"]
    assert success["client_order_id"] == client_order_id
    assert success["product_id"] == "BTC-USD" and success["side"] == side
    (kind,) = configuration
    assert set(body["order_configuration"]) == {kind}
    for field, value in configuration[kind].items():
        assert body["order_configuration"][kind][field] == value

    order = await _order(rest, success["order_id"])
    assert order["status"] == status
    assert order["order_type"] == order_type
    assert order["time_in_force"] == time_in_force
    assert order["client_order_id"] == client_order_id
    if filled is not None:
        assert Decimal(order["filled_size"]) == Decimal(filled)
    if order_type == "STOP_LIMIT":
        assert order["trigger_status"] == "STOP_PENDING"
    if Decimal(order["filled_size"]) > 0:
        fills = (
            await rest.get("/orders/historical/fills", {"order_ids": success["order_id"]})
        ).json()
        assert fills["fills"], "a filled order has fills"
        quote_sized = "quote_size" in configuration[kind]
        # Coinbase reports a quote-sized market order's fills in quote currency.
        assert all(f["size_in_quote"] is quote_sized for f in fills["fills"])
        base_sizes = [
            Decimal(f["size"]) / Decimal(f["price"]) if quote_sized else Decimal(f["size"])
            for f in fills["fills"]
        ]
        assert sum(base_sizes) == Decimal(order["filled_size"])
        fill = fills["fills"][0]
        assert fill["liquidity_indicator"] == "TAKER"
        assert fill["order_id"] == success["order_id"]
        assert Decimal(fill["commission"]) > 0
        assert Decimal(order["total_fees"]) == sum(Decimal(f["commission"]) for f in fills["fills"])

    listed = (await rest.get("/orders/historical/batch", {"product_ids": "BTC-USD"})).json()
    assert success["order_id"] in [o["order_id"] for o in listed["orders"]]


async def test_open_order_can_be_listed_and_cancelled(rest: RestClient) -> None:
    created = (
        await rest.create_order(
            "ETH-USD", "BUY", {"limit_limit_gtc": {"base_size": "0.1", "limit_price": "3000.00"}}
        )
    ).json()
    order_id = created["success_response"]["order_id"]
    open_orders = (await rest.get("/orders/historical/batch", {"order_status": "OPEN"})).json()
    assert [o["order_id"] for o in open_orders["orders"]] == [order_id]
    assert open_orders["has_next"] is False

    response = await rest.post("/orders/batch_cancel", {"order_ids": [order_id, "no-such-order"]})
    results = response.json()["results"]
    assert results[0] == {
        "success": True,
        "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
        "order_id": order_id,
    }
    assert results[1]["success"] is False
    assert results[1]["failure_reason"] != "UNKNOWN_CANCEL_FAILURE_REASON"
    assert (await _order(rest, order_id))["status"] == "CANCELLED"
    still_open = (await rest.get("/orders/historical/batch", {"order_status": "OPEN"})).json()
    assert still_open["orders"] == []


async def test_batch_cancel_limits(rest: RestClient) -> None:
    too_many = await rest.post("/orders/batch_cancel", {"order_ids": [str(i) for i in range(101)]})
    assert too_many.status_code == 400
    body = too_many.json()
    assert body["error"] == "InvalidArgument"
    assert body["message"] == "Too many orderIDs entered, limit is 100"
    bad = await rest.post("/orders/batch_cancel", {"order_ids": "abc"})
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_ARGUMENT"


async def test_order_list_pagination_and_filters(rest: RestClient) -> None:
    ids = []
    for price in ("60000.00", "60001.00", "60002.00"):
        created = (
            await rest.create_order(
                "BTC-USD", "BUY", {"limit_limit_gtc": {"base_size": "0.01", "limit_price": price}}
            )
        ).json()
        ids.append(created["success_response"]["order_id"])
    page1 = (await rest.get("/orders/historical/batch", {"limit": 2})).json()
    assert page1["has_next"] is True and len(page1["orders"]) == 2
    page2 = (
        await rest.get("/orders/historical/batch", {"limit": 2, "cursor": page1["cursor"]})
    ).json()
    assert page2["has_next"] is False and page2["cursor"] == ""
    seen = [o["order_id"] for o in page1["orders"] + page2["orders"]]
    assert seen == list(reversed(ids)), "newest first"
    only = (
        await rest.get("/orders/historical/batch", [("order_ids", ids[0]), ("order_ids", ids[2])])
    ).json()
    assert {o["order_id"] for o in only["orders"]} == {ids[0], ids[2]}
    assert (await rest.get("/orders/historical/batch", {"product_ids": "ETH-USD"})).json()[
        "orders"
    ] == []
    assert (await rest.get("/orders/historical/batch", {"order_side": "SELL"})).json()[
        "orders"
    ] == []
    assert (
        await rest.get("/orders/historical/batch", {"order_status": "BOGUS"})
    ).status_code == 400
    assert (
        await rest.get("/orders/historical/batch", {"start_date": "yesterday"})
    ).status_code == 400
    window = await rest.get(
        "/orders/historical/batch",
        {"start_date": "2025-12-31T00:00:00Z", "end_date": "2026-01-02T00:00:00Z"},
    )
    assert len(window.json()["orders"]) == 3


async def test_unknown_order_is_404(rest: RestClient) -> None:
    response = await rest.get(f"/orders/historical/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"] == "NOT_FOUND"


async def test_client_order_id_dedup_returns_the_original_order(rest: RestClient) -> None:
    client_order_id = str(uuid.uuid4())
    first = (await rest.create_order("BTC-USD", "BUY", LIMIT_GTC, client_order_id)).json()
    again = (await rest.create_order("BTC-USD", "BUY", LIMIT_GTC, client_order_id)).json()
    assert again["success"] is True
    assert again["success_response"]["order_id"] == first["success_response"]["order_id"]
    listed = (await rest.get("/orders/historical/batch")).json()["orders"]
    assert [o["client_order_id"] for o in listed] == [client_order_id]


async def test_fills_pagination(rest: RestClient) -> None:
    for _ in range(3):
        await rest.create_order("SOL-USD", "BUY", {"market_market_ioc": {"base_size": "1"}})
    first = (
        await rest.get("/orders/historical/fills", {"limit": 2, "product_ids": "SOL-USD"})
    ).json()
    assert len(first["fills"]) == 2 and first["cursor"]
    rest_of = (
        await rest.get("/orders/historical/fills", {"limit": 2, "cursor": first["cursor"]})
    ).json()
    assert len(rest_of["fills"]) == 1 and rest_of["cursor"] == ""
    fill = rest_of["fills"][0]
    for field in (
        "entry_id",
        "trade_id",
        "trade_time",
        "sequence_timestamp",
        "price",
        "size",
        "commission",
        "user_id",
    ):
        assert fill[field], field
    assert fill["trade_type"] == "FILL" and fill["side"] == "BUY"


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "INVALID_ARGUMENT"),
        (b"[1, 2]", "INVALID_ARGUMENT"),
        (
            {"product_id": "BTC-USD", "side": "BUY", "order_configuration": LIMIT_GTC},
            "INVALID_ARGUMENT",
        ),
        (
            {"client_order_id": "a", "side": "BUY", "order_configuration": LIMIT_GTC},
            "INVALID_ARGUMENT",
        ),
        (
            {"client_order_id": "a", "product_id": "BTC-USD", "order_configuration": LIMIT_GTC},
            "INVALID_ARGUMENT",
        ),
        ({"client_order_id": "a", "product_id": "BTC-USD", "side": "BUY"}, "INVALID_ARGUMENT"),
        (
            {
                "client_order_id": "a",
                "product_id": "BTC-USD",
                "side": "BUY",
                "order_configuration": {"limit_limit_xyz": {}},
            },
            "INVALID_ARGUMENT",
        ),
        (
            {
                "client_order_id": "a",
                "product_id": "BTC-USD",
                "side": "BUY",
                "order_configuration": {**LIMIT_GTC, "market_market_ioc": {"base_size": "1"}},
            },
            "INVALID_ARGUMENT",
        ),
        (
            {
                "client_order_id": "a",
                "product_id": "BTC-USD",
                "side": "BUY",
                "order_configuration": {
                    "limit_limit_gtc": {"base_size": "abc", "limit_price": "1"}
                },
            },
            "INVALID_ARGUMENT",
        ),
        (
            {
                "client_order_id": "a",
                "product_id": "BTC-USD",
                "side": "BUY",
                "order_configuration": {"limit_limit_gtc": {"base_size": 0.1, "limit_price": "1"}},
            },
            "INVALID_ARGUMENT",
        ),
    ],
)
async def test_malformed_requests_are_400(rest: RestClient, body: Any, error: str) -> None:
    response = await rest.post("/orders", body)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert (await rest.get("/orders/historical/batch")).json()["orders"] == []


@pytest.mark.parametrize(
    ("product_id", "side", "configuration", "error"),
    [
        (
            "BTC-USD",
            "BUY",
            {"market_market_fok": {"base_size": "0.1"}},
            "UNSUPPORTED_ORDER_CONFIGURATION",
        ),
        ("BTC-USD", "HOLD", LIMIT_GTC, "INVALID_SIDE"),
        (
            "BTC-USD",
            "BUY",
            {"limit_limit_gtc": {"base_size": "0.000000001", "limit_price": "60000.00"}},
            "INVALID_SIZE_PRECISION",
        ),
        (
            "BTC-USD",
            "BUY",
            {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "60000.001"}},
            "INVALID_PRICE_PRECISION",
        ),
        (
            "BTC-USD",
            "BUY",
            {"limit_limit_gtc": {"base_size": "10", "limit_price": "60000.00"}},
            "INSUFFICIENT_FUND",
        ),
        (
            "BTC-USD",
            "BUY",
            {
                "limit_limit_gtc": {
                    "base_size": "0.01",
                    "limit_price": "68010.00",
                    "post_only": True,
                }
            },
            "INVALID_LIMIT_PRICE_POST_ONLY",
        ),
        ("DOGE-USD", "BUY", LIMIT_GTC, "INVALID_PRODUCT_ID"),
        (
            "BTC-USD",
            "BUY",
            {"limit_limit_gtd": {"base_size": "0.01", "limit_price": "60000.00"}},
            "GTD_ORDERS_MUST_HAVE_END_TIME",
        ),
    ],
)
async def test_business_rejections_are_200_success_false(
    rest: RestClient, product_id: str, side: str, configuration: dict[str, Any], error: str
) -> None:
    response = await rest.create_order(product_id, side, configuration)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["error_response"]["error"] == error
    assert body["error_response"]["new_order_failure_reason"] == error
    assert "order_configuration" in body
    assert (await rest.get("/orders/historical/batch")).json()["orders"] == []


async def test_preview(rest: RestClient) -> None:
    body = {
        "product_id": "BTC-USD",
        "side": "BUY",
        "order_configuration": {"market_market_ioc": {"base_size": "0.6"}},
    }
    preview = (await rest.post("/orders/preview", body)).json()
    assert preview["errs"] == []
    # 0.5 at 68010 + 0.1 at 68020, plus the taker fee
    assert Decimal(preview["quote_size"]) == Decimal("0.5") * 68010 + Decimal("0.1") * 68020
    assert Decimal(preview["commission_total"]) > 0
    assert Decimal(preview["order_total"]) == Decimal(preview["quote_size"]) + Decimal(
        preview["commission_total"]
    )
    assert preview["best_bid"] == "67990.00" and preview["best_ask"] == "68010.00"

    big = {
        **body,
        "order_configuration": {"limit_limit_gtc": {"base_size": "100", "limit_price": "60000.00"}},
    }
    assert "PREVIEW_INSUFFICIENT_FUND" in (await rest.post("/orders/preview", big)).json()["errs"]
    odd = {
        **body,
        "order_configuration": {
            "limit_limit_gtc": {"base_size": "0.000000001", "limit_price": "60000.001"}
        },
    }
    errs = (await rest.post("/orders/preview", odd)).json()["errs"]
    assert "PREVIEW_INVALID_SIZE_PRECISION" in errs and "PREVIEW_INVALID_PRICE_PRECISION" in errs
    unsupported = {**body, "order_configuration": {"trigger_bracket_gtc": {}}}
    assert (await rest.post("/orders/preview", unsupported)).json()["errs"] == [
        "PREVIEW_UNSUPPORTED_ORDER_CONFIGURATION"
    ]
    unknown = {**body, "product_id": "DOGE-USD"}
    assert (await rest.post("/orders/preview", unknown)).json()["errs"] == [
        "PREVIEW_INVALID_PRODUCT_ID"
    ]
    assert (await rest.post("/orders/preview", b"nope")).status_code == 400
    assert (await rest.get("/orders/historical/batch")).json()["orders"] == [], (
        "preview creates nothing"
    )


async def test_bug_in_a_handler_is_a_json_500_and_the_server_survives(
    rest: RestClient, sim_exchange: SimExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(product_id: str) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(sim_exchange, "ticker", broken)
    response = await rest.get("/products")
    assert response.status_code == 500
    assert response.json()["error"] == "INTERNAL"
    monkeypatch.undo()
    assert (await rest.get("/products")).status_code == 200


async def test_unknown_route_is_404(rest: RestClient) -> None:
    response = await rest.get("/no/such/thing")
    assert response.status_code in (401, 404)
    response = await rest.http.get("/elsewhere")
    assert response.status_code == 404


async def test_get_with_a_json_body_like_the_sdk_sends(rest: RestClient) -> None:
    headers = {**rest.auth("GET", "/accounts"), "Content-Type": "application/json"}
    response = await rest.http.request(
        "GET", f"{API_PREFIX}/accounts", content=b"{}", headers=headers
    )
    assert response.status_code == 200


async def test_server_answers_on_its_endpoints(
    sim_server: SimServer, endpoints: SimEndpoints
) -> None:
    assert endpoints.rest_url == f"http://127.0.0.1:{sim_server.port}"
    assert endpoints.ws_market_url.endswith("/ws") and endpoints.ws_user_url.endswith("/ws/user")
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{endpoints.rest_url}{API_PREFIX}/time")
    assert response.status_code == 200


async def test_preview_market_by_quote_and_sells(rest: RestClient) -> None:
    by_quote = {
        "product_id": "BTC-USD",
        "side": "BUY",
        "order_configuration": {"market_market_ioc": {"quote_size": "0.50"}},
    }
    preview = (await rest.post("/orders/preview", by_quote)).json()
    assert "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL" in preview["errs"]
    assert Decimal(preview["quote_size"]) == Decimal("0.50")
    sell = {
        "product_id": "BTC-USD",
        "side": "SELL",
        "order_configuration": {
            "limit_limit_gtc": {"base_size": "5000", "limit_price": "70000.00"}
        },
    }
    errs = (await rest.post("/orders/preview", sell)).json()["errs"]
    assert "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE" in errs and "PREVIEW_INSUFFICIENT_FUND" in errs
    fine = {
        **sell,
        "order_configuration": {
            "limit_limit_gtc": {"base_size": "0.5", "limit_price": "70000.00", "post_only": True}
        },
    }
    preview = (await rest.post("/orders/preview", fine)).json()
    assert preview["errs"] == []
    assert Decimal(preview["order_total"]) == 35000 - Decimal(preview["commission_total"])


async def test_more_list_filters(rest: RestClient) -> None:
    await rest.create_order("SOL-USD", "BUY", {"market_market_ioc": {"base_size": "1"}})
    await rest.create_order(
        "SOL-USD", "BUY", {"limit_limit_gtc": {"base_size": "1", "limit_price": "100.00"}}
    )
    markets = (await rest.get("/orders/historical/batch", {"order_types": "MARKET"})).json()[
        "orders"
    ]
    assert [o["order_type"] for o in markets] == ["MARKET"]
    fills = (await rest.get("/orders/historical/fills")).json()["fills"]
    only = (await rest.get("/orders/historical/fills", {"trade_ids": fills[0]["trade_id"]})).json()
    assert [f["trade_id"] for f in only["fills"]] == [fills[0]["trade_id"]]
    futures = (await rest.get("/products", {"product_type": "FUTURE"})).json()
    assert futures["products"] == [] and futures["num_products"] == 0
    page = (await rest.get("/products", {"limit": 1, "offset": 1})).json()
    assert [p["product_id"] for p in page["products"]] == ["ETH-USD"]
    assert (await rest.get("/accounts", {"cursor": "-5"})).status_code == 400
